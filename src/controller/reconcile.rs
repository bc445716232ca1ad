//! One reconcile pass, the parts that need no cluster: which ApplicationSet this is,
//! what it wants written (labels, ownerReference, applied-hash, ignored fields),
//! which existing Applications it owns, what status to report, when to look again,
//! and which repositories and clusters it reads (for webhooks and watches).

use crate::controller::application::CachedApplication;
use crate::controller::crd::{ApplicationSetStatus, Condition, Counts, ResourceStatus};
use crate::controller::ignore;
use crate::controller::plan::{Action, Existing, Guard, Keep, Live, Owner, Plan, Policy};
use prism_engine::model::{ApplicationSetSpec, PreservedFields};
use prism_engine::render::RESOURCES_FINALIZER;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Label on every Application a set owns: `<namespace>.<name>` of the set.
pub const OWNER_LABEL: &str = "prism.dev/application-set";
/// Annotation on an existing Application that lets the set named by its value (`<namespace>.<name>`) adopt it.
pub const ADOPT_ANNOTATION: &str = "prism.dev/adopt";
/// Annotation on an ApplicationSet that releases held deletes for that generation.
pub const ALLOW_MASS_DELETE: &str = "prism.dev/allow-mass-delete";
/// Annotation with the hash of what Prism last applied (the "last applied" comparison).
pub const APPLIED_HASH: &str = "prism.dev/applied-hash";
/// Default cap on `status.resources`, far below etcd's object size limit.
pub const DEFAULT_RESOURCE_CAP: usize = 5000;

/// The ApplicationSet under reconcile: identity, generation and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMeta {
    /// `argoproj.io/v1alpha1` or `prism.dev/v1alpha1`.
    pub api_version: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (for ownerReferences).
    pub uid: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `metadata.resourceVersion` (a patch of the set's metadata fails on a newer one).
    pub resource_version: String,
}

impl SetMeta {
    /// Reads the identity from an ApplicationSet object as the API returns it.
    pub fn from_object(obj: &Value) -> Result<SetMeta, String> {
        let meta = &obj["metadata"];
        let text = |v: &Value, what: &str| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("the ApplicationSet has no {what}"))
        };
        Ok(SetMeta {
            api_version: text(&obj["apiVersion"], "apiVersion")?,
            namespace: text(&meta["namespace"], "metadata.namespace")?,
            name: text(&meta["name"], "metadata.name")?,
            uid: text(&meta["uid"], "metadata.uid")?,
            generation: meta["generation"].as_i64().unwrap_or(0),
            annotations: crate::controller::plan::string_map(&meta["annotations"]),
            finalizers: meta["finalizers"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            resource_version: meta["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// `<namespace>.<name>`: how Events, logs and the adopt annotation name the set.
    pub fn key(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// The owner label's value: the key, or (over 63 characters, a label's limit) a
    /// prefix plus a hash of it, still unique per set.
    pub fn label_value(&self) -> String {
        let key = self.key();
        if key.len() <= 63 {
            return key;
        }
        let hash = crate::digest::sha256_hex(key.as_bytes());
        let mut prefix: String = key.chars().take(50).collect();
        while prefix.ends_with(['.', '-', '_']) {
            prefix.pop();
        }
        format!("{prefix}-{}", &hash[..12])
    }

    /// The ownerReference every owned Application carries (garbage collection when the set goes).
    pub fn owner_reference(&self) -> Value {
        json!({
            "apiVersion": self.api_version,
            "kind": "ApplicationSet",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }

    /// The deletion guard for this pass.
    pub fn guard(&self, settings: &Settings) -> Guard {
        Guard {
            max_percent: settings.max_percent,
            generation: self.generation,
            allowed_generation: self
                .annotations
                .get(ALLOW_MASS_DELETE)
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// The controller-relevant parts of the spec (the engine reads the rest).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `applicationsSync`, already under the controller's ceiling.
    pub policy: Policy,
    /// `preserveResourcesOnDeletion`.
    pub preserve_resources_on_deletion: bool,
    /// `deletionGuard.maxPercent` (default 50).
    pub max_percent: u32,
    /// `ignoreApplicationDifferences`, parsed.
    pub ignore: Vec<ignore::Rule>,
    /// `preservedFields` with the controller's global keys and Argo's defaults.
    pub preserved: Preserved,
}

/// The settings of a parsed spec under the controller's ceiling; errors name the field.
pub fn settings(
    spec: &ApplicationSetSpec,
    ceiling: Policy,
    global: &Preserved,
) -> Result<Settings, String> {
    let max_percent = spec
        .deletion_guard
        .as_ref()
        .and_then(|g| g.max_percent)
        .unwrap_or(50);
    let max_percent = u32::try_from(max_percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| {
            format!("spec.deletionGuard.maxPercent: {max_percent} is not a percentage (0 to 100)")
        })?;
    // Every path parsed now, once, so a bad one is reported before anything is written.
    let ignore = ignore::parse(
        spec.ignore_application_differences
            .as_deref()
            .unwrap_or_default(),
    )?;
    Ok(Settings {
        policy: spec.policy().under(ceiling),
        preserve_resources_on_deletion: spec.preserve_resources_on_deletion(),
        max_percent,
        ignore,
        preserved: Preserved::of(spec.preserved_fields.as_ref(), global),
    })
}

/// Annotation and label keys whose live values win over rendered ones (Argo's
/// `preservedFields`, its global flags and its default annotations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preserved {
    /// Annotation keys.
    pub annotations: Vec<String>,
    /// Label keys.
    pub labels: Vec<String>,
}

/// Annotations Argo CD always preserves: notifications' state, refresh and hydrate
/// requests (`defaultPreservedAnnotations` in Argo's controller).
pub const DEFAULT_PRESERVED_ANNOTATIONS: &[&str] = &[
    "notified.notifications.argoproj.io",
    "argocd.argoproj.io/refresh",
    "argocd.argoproj.io/hydrate",
];

impl Preserved {
    /// The spec's `preservedFields` plus the controller's global keys and Argo's defaults.
    pub fn of(spec: Option<&PreservedFields>, global: &Preserved) -> Preserved {
        let mut annotations: Vec<String> = spec.map(|p| p.annotations.clone()).unwrap_or_default();
        annotations.extend(global.annotations.iter().cloned());
        annotations.extend(DEFAULT_PRESERVED_ANNOTATIONS.iter().map(|a| a.to_string()));
        let mut labels: Vec<String> = spec.map(|p| p.labels.clone()).unwrap_or_default();
        labels.extend(global.labels.iter().cloned());
        annotations.sort();
        annotations.dedup();
        labels.sort();
        labels.dedup();
        Preserved {
            annotations,
            labels,
        }
    }

    fn keys(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.annotations
            .iter()
            .map(|k| ("annotations", k))
            .chain(self.labels.iter().map(|k| ("labels", k)))
    }
}

/// The objects to apply, by name: each rendered Application with the owner label,
/// the ownerReference and the applied-hash, live values at ignored paths, and the
/// live values of preserved annotations and labels (`live_meta(name, kind, key)`: a
/// live Application's `annotations` or `labels` value, without decoding the rest). Preserved keys are left out of the hash, so
/// a person or tool changing one causes no write.
pub fn desired(
    set: &SetMeta,
    rendered: Vec<Value>,
    ignore_rules: &[ignore::Rule],
    preserved: &Preserved,
    live: &dyn Fn(&str) -> Option<Value>,
    live_meta: &dyn Fn(&str, &str, &str) -> Option<String>,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    for mut app in rendered {
        let name = app["metadata"]["name"]
            .as_str()
            .ok_or("a rendered Application has no metadata.name")?
            .to_string();
        let paths = ignore::paths_for(ignore_rules, &name);
        let mut hashed = app.clone();
        ignore::strip(&mut hashed, &paths);
        for (kind, key) in preserved.keys() {
            // `get_mut`, not indexing: indexing would insert a null and change the hash.
            if let Some(m) = hashed
                .get_mut("metadata")
                .and_then(|m| m.get_mut(kind))
                .and_then(Value::as_object_mut)
            {
                m.remove(key);
            }
        }
        let hash = crate::digest::sha256_hex(hashed.to_string().as_bytes());
        let meta = app["metadata"]
            .as_object_mut()
            .ok_or("a rendered Application's metadata is not a mapping")?;
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        labels[OWNER_LABEL] = json!(set.label_value());
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        annotations[APPLIED_HASH] = json!(&hash[..16]);
        meta.insert("ownerReferences".into(), json!([set.owner_reference()]));
        if !paths.is_empty() {
            let live = live(&name);
            ignore::keep_live(&mut app, live.as_ref(), &paths);
        }
        for (kind, key) in preserved.keys() {
            if let Some(v) = live_meta(&name, kind, key) {
                let map = app["metadata"]
                    .as_object_mut()
                    .map(|m| m.entry(kind).or_insert_with(|| json!({})));
                if let Some(map) = map.and_then(Value::as_object_mut) {
                    map.insert(key.clone(), Value::String(v));
                }
            }
        }
        if out.insert(name.clone(), app).is_some() {
            return Err(format!(
                "two Applications are named {name}; make the template's metadata.name unique"
            ));
        }
    }
    Ok(out)
}

/// Who owns a live Application: this set (its label and an ownerReference to it),
/// or another owner, adoptable when annotated with this set's key.
pub fn owner_of(set: &SetMeta, live: &Live) -> Owner {
    Ownership::of(set).owner(live)
}

/// What [`owner_of`] compares, worked out once per pass.
struct Ownership<'s> {
    name: &'s str,
    label: String,
    key: String,
}

impl<'s> Ownership<'s> {
    fn of(set: &'s SetMeta) -> Ownership<'s> {
        Ownership {
            name: &set.name,
            label: set.label_value(),
            key: set.key(),
        }
    }

    fn owner(&self, live: &Live) -> Owner {
        if live.meta("labels", OWNER_LABEL) == Some(self.label.as_str())
            && live.owned_by_set(self.name)
        {
            Owner::Us
        } else {
            Owner::Other {
                adoptable: live.meta("annotations", ADOPT_ANNOTATION) == Some(self.key.as_str()),
            }
        }
    }
}

/// The Applications of one namespace in a snapshot of the cache, by name.
pub fn by_name<'a>(
    apps: &'a [Arc<CachedApplication>],
    namespace: &str,
) -> HashMap<&'a str, &'a Arc<CachedApplication>> {
    let mut out = HashMap::with_capacity(apps.len());
    out.extend(
        apps.iter()
            .filter(|a| a.metadata.namespace.as_deref() == Some(namespace))
            .filter_map(|a| Some((a.metadata.name.as_deref()?, a))),
    );
    out
}

/// [`existing`] over the cache: the Applications labelled as this set's, and any of a
/// desired name, read in the cached form.
pub fn existing_in(
    set: &SetMeta,
    live: &HashMap<&str, &Arc<CachedApplication>>,
    desired: &BTreeMap<String, Value>,
) -> BTreeMap<String, Existing> {
    let label = set.label_value();
    let candidates = live
        .iter()
        .filter(|(name, a)| {
            a.metadata.labels.as_ref().and_then(|l| l.get(OWNER_LABEL)) == Some(&label)
                || desired.contains_key(**name)
        })
        .map(|(_, a)| Live::Cached(Arc::clone(a)));
    existing(set, candidates, desired)
}

/// The Applications of interest, from every Application in the set's namespace:
/// the ones it owns and any of a desired name.
pub fn existing(
    set: &SetMeta,
    apps: impl IntoIterator<Item = Live>,
    desired: &BTreeMap<String, Value>,
) -> BTreeMap<String, Existing> {
    let ownership = Ownership::of(set);
    // Collected, then built sorted in one go (names are unique in a namespace; of two
    // equal ones the last wins, as inserting would).
    apps.into_iter()
        .filter_map(|live| {
            let name = live.name()?.to_string();
            let owner = ownership.owner(&live);
            if owner != Owner::Us && !desired.contains_key(&name) {
                return None;
            }
            let has_finalizer = live.has_finalizer(RESOURCES_FINALIZER);
            let deleting = live.deleting();
            Some((
                name,
                Existing {
                    owner,
                    live,
                    has_finalizer,
                    deleting,
                },
            ))
        })
        .collect()
}

/// What applying a plan did: counts, and the errors of calls that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Applications created.
    pub created: i64,
    /// Applications updated.
    pub updated: i64,
    /// Applications deleted.
    pub deleted: i64,
    /// One message per failed call, `<application>: <error>`.
    pub errors: Vec<String>,
}

/// The status after a pass. Conditions keep their `lastTransitionTime` while their
/// status is unchanged, and counts keep the last pass that wrote something, so a
/// no-change pass leaves the status equal to the one before (no status write).
#[allow(clippy::too_many_arguments)]
pub fn status(
    previous: &ApplicationSetStatus,
    set: &SetMeta,
    plan: &Plan,
    desired_count: usize,
    applied: &Applied,
    now: &str,
    cap: usize,
    rollout: Option<&crate::controller::rollout::Output>,
) -> ApplicationSetStatus {
    let held = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Keep(_, Keep::DeletionHeld)))
        .count() as i64;
    let out_of_sync: std::collections::BTreeSet<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Keep(n, Keep::PolicyNoUpdate | Keep::ForeignOwner | Keep::GeneratorError) => {
                Some(n.as_str())
            }
            _ => None,
        })
        .collect();
    let mut conditions = conditions(previous, plan, applied, now);
    if let Some(out) = rollout {
        conditions.extend(crate::controller::rollout::conditions(
            out,
            &previous.conditions,
            now,
        ));
        conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    }

    // Applications the set has after this pass: desired and present, plus held and kept ones.
    let mut names: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Delete { .. } => None,
            Action::Keep(_, Keep::ForeignOwner | Keep::Deleting) => None,
            Action::Create(n) | Action::Update(n) | Action::Keep(n, _) => Some(n.as_str()),
        })
        .collect();
    names.sort_unstable();
    let total = names.len();
    let resources = names
        .iter()
        .take(cap)
        .map(|n| ResourceStatus {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            kind: "Application".into(),
            name: n.to_string(),
            namespace: set.namespace.clone(),
            status: if out_of_sync.contains(n) {
                "OutOfSync"
            } else {
                "Synced"
            }
            .into(),
        })
        .collect();
    let wrote = applied.created + applied.updated + applied.deleted > 0;
    let applications = Counts {
        desired: desired_count as i64,
        held,
        ..if wrote {
            Counts {
                created: applied.created,
                updated: applied.updated,
                deleted: applied.deleted,
                ..Counts::default()
            }
        } else {
            previous.applications.clone()
        }
    };
    ApplicationSetStatus {
        conditions,
        observed_generation: Some(set.generation),
        applications,
        resources,
        resources_count: total as i64,
        resources_truncated: total > cap,
        application_status: rollout.map(|r| r.statuses.clone()).unwrap_or_default(),
        rollout_step: rollout.map(|r| match r.progressing_step {
            Some(step) => format!("{step}/{}", r.steps),
            None => "done".into(),
        }),
    }
}

/// A condition that keeps its `lastTransitionTime` from `previous` while its status
/// stays the same (so a pass that changes nothing writes nothing).
pub fn condition(
    previous: &[Condition],
    now: &str,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: Some(since),
    }
}

/// Argo's conditions for a pass, each keeping its `lastTransitionTime` while its status
/// stays the same.
fn conditions(
    previous: &ApplicationSetStatus,
    plan: &Plan,
    applied: &Applied,
    now: &str,
) -> Vec<Condition> {
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        condition(&previous.conditions, now, type_, ok, reason, message)
    };
    let failed = !applied.errors.is_empty();
    let error = match (&plan.error, failed) {
        (Some(e), _) => Some(("ApplicationGenerationFromParamsError", e.clone())),
        (None, true) => Some((
            "UpdateApplicationError",
            format!(
                "{} of the Application writes failed: {}",
                applied.errors.len(),
                applied.errors.join("; ")
            ),
        )),
        (None, false) => None,
    };
    let up_to_date = error.is_none() && plan.held.is_none();
    let mut conditions = vec![
        match &error {
            Some((reason, message)) => cond("ErrorOccurred", true, reason, message.clone()),
            None => cond(
                "ErrorOccurred",
                false,
                "ApplicationSetUpToDate",
                "Successfully generated parameters for all Applications".into(),
            ),
        },
        match &plan.error {
            Some(e) => cond("ParametersGenerated", false, "ErrorOccurred", e.clone()),
            None => cond(
                "ParametersGenerated",
                true,
                "ParametersGenerated",
                "Successfully generated parameters for all Applications".into(),
            ),
        },
        if up_to_date {
            cond(
                "ResourcesUpToDate",
                true,
                "ApplicationSetUpToDate",
                "All applications have been generated successfully".into(),
            )
        } else {
            cond(
                "ResourcesUpToDate",
                false,
                if plan.held.is_some() && error.is_none() {
                    "DeletionHeld"
                } else {
                    "ErrorOccurred"
                },
                error
                    .as_ref()
                    .map(|(_, m)| m.clone())
                    .or_else(|| plan.held.clone())
                    .unwrap_or_default(),
            )
        },
        match &plan.held {
            Some(m) => cond("DeletionHeld", true, "MassDeleteNotConfirmed", m.clone()),
            None => cond(
                "DeletionHeld",
                false,
                "NoDeletesHeld",
                "No deletes are held".into(),
            ),
        },
    ];
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    conditions
}

use prism_engine::generators::lookup;
pub use prism_engine::generators::{GIT_REQUEUE, PLUGIN_REQUEUE};

/// When to render again without an event: the shortest of the generators'
/// intervals (git and values 180 s, images 180 s, plugin its
/// `requeueAfterSeconds` or 30 min), each overridable by the generator's own
/// `requeueAfterSeconds`. `None` when only watches matter (list, clusters).
pub fn requeue_after(generators: &[Value]) -> Option<Duration> {
    let mut best: Option<Duration> = None;
    walk(generators, &mut |kind, body| {
        let own = body
            .get("requeueAfterSeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        let default = lookup(kind).and_then(|k| k.requeue());
        if let Some(d) = own.or(default).filter(|d| !d.is_zero()) {
            best = Some(best.map_or(d, |b| b.min(d)));
        }
    });
    best
}

/// What every generator of a set (nested ones included) answers to `ask`, sorted, once each.
fn collect<T: Ord>(
    generators: &[Value],
    ask: impl Fn(&dyn prism_engine::generators::GeneratorKind, &Value) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    walk(generators, &mut |kind, body| {
        out.extend(lookup(kind).and_then(|k| ask(k, body)));
    });
    out.sort();
    out.dedup();
    out
}

/// Every (`repoURL`, `revision`) a set's git and values generators read.
pub fn git_sources(generators: &[Value]) -> Vec<(String, String)> {
    collect(generators, |k, body| k.reads_git(body))
}

/// Where the set's `pullRequest` generators list pull requests.
pub fn pull_request_sources(
    generators: &[Value],
) -> Vec<prism_engine::generators::PullRequestSource> {
    collect(generators, |k, body| k.reads_pull_requests(body))
}

/// The Secrets and ConfigMaps the set's generators name (tokens, passwords, CAs,
/// GitHub Apps), for the controller to read before rendering.
pub fn references(generators: &[Value]) -> prism_engine::generators::References {
    let mut out = prism_engine::generators::References::default();
    walk(generators, &mut |kind, body| {
        if let Some(k) = lookup(kind) {
            k.references(body, &mut out);
        }
    });
    out
}

/// What the set's `clusterDecisionResource` generators read.
pub fn decision_sources(generators: &[Value]) -> Vec<prism_engine::generators::DecisionSource> {
    collect(generators, |k, body| k.reads_decisions(body))
}

/// Whether a set reads Argo CD's cluster Secrets (a `clusters` generator anywhere).
pub fn uses_clusters(generators: &[Value]) -> bool {
    let mut found = false;
    walk(generators, &mut |kind, _| {
        found |= lookup(kind).is_some_and(|k| k.reads_clusters())
    });
    found
}

/// Calls `f(kind, body)` for every generator, descending into matrix and merge.
fn walk(generators: &[Value], f: &mut dyn FnMut(&str, &Value)) {
    for g in generators {
        let Some(obj) = g.as_object() else { continue };
        for (kind, body) in obj {
            if matches!(kind.as_str(), "selector" | "template") {
                continue;
            }
            f(kind, body);
            if let Some(children) = body.get("generators").and_then(Value::as_array) {
                walk(children, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::{plan, Input};

    fn set() -> SetMeta {
        SetMeta::from_object(&json!({
            "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "shop", "namespace": "argocd", "uid": "u-1", "generation": 4,
                         "annotations": {"prism.dev/allow-mass-delete": "4"}}
        }))
        .unwrap()
    }

    fn rendered(name: &str, rev: &str) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": name, "namespace": "argocd", "labels": {"team": "a"}},
               "spec": {"project": "default", "source": {"targetRevision": rev}}})
    }

    /// The SCM generators report the Secrets and ConfigMaps they name, in matrix children
    /// too; a list element that merely looks like a reference is no reference.
    #[test]
    fn the_controller_learns_which_secrets_and_config_maps_a_set_names() {
        let refs = references(&[
            json!({"pullRequest": {"bitbucketServer": {"project": "P", "repo": "r", "api": "https://bb",
                "basicAuth": {"username": "u", "passwordRef": {"secretName": "bb-pass", "key": "p"}},
                "caRef": {"configMapName": "corp-ca", "key": "ca.crt"}},
                "template": {"metadata": {"name": "x"}}}}),
            json!({"matrix": {"generators": [
                {"scmProvider": {"github": {"organization": "o", "appSecretName": "gh-app"}}},
                {"scmProvider": {"azureDevOps": {"organization": "o", "teamProject": "t",
                    "accessTokenRef": {"secretName": "az", "key": "pat"}}}},
                {"list": {"elements": [{"tokenRef": {"secretName": "not-a-ref", "key": "k"}}]}}]}}),
        ]);
        let names = |s: &std::collections::BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(&refs.secrets), ["az", "bb-pass"]);
        assert_eq!(names(&refs.config_maps), ["corp-ca"]);
        assert_eq!(names(&refs.app_secrets), ["gh-app"]);
    }

    #[test]
    fn identity_label_and_guard_come_from_the_object() {
        let s = set();
        assert_eq!(s.key(), "argocd.shop");
        assert_eq!(s.label_value(), "argocd.shop");
        let settings = read_settings(json!({}), Policy::Sync).unwrap();
        assert_eq!(s.guard(&settings).allowed_generation, Some(4));
        let long = SetMeta {
            name: "x".repeat(80),
            ..s.clone()
        };
        let v = long.label_value();
        assert!(v.len() <= 63, "{v}");
        assert_ne!(
            v,
            SetMeta {
                name: format!("{}y", "x".repeat(79)),
                ..s
            }
            .label_value()
        );
        let e = SetMeta::from_object(&json!({"apiVersion": "x", "metadata": {"name": "a"}}))
            .unwrap_err();
        assert!(e.contains("metadata.namespace"), "{e}");
    }

    /// The settings of a prism.dev set with these spec fields, read as the controller does.
    fn read_settings(fields: Value, ceiling: Policy) -> Result<Settings, String> {
        let mut spec = json!({"generators": [{"list": {"elements": []}}],
                              "template": {"metadata": {}, "spec": {}}});
        for (k, v) in fields.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let manifest = json!({"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
                              "metadata": {"name": "s"}, "spec": spec});
        let set = prism_engine::ApplicationSet::from_value(&manifest, "argocd")
            .map_err(|e| e.to_string())?;
        settings(&set.spec, ceiling, &Preserved::default())
    }

    #[test]
    fn settings_read_policy_ceiling_guard_and_ignore_rules() {
        let spec = json!({"syncPolicy": {"applicationsSync": "create-update",
                                          "preserveResourcesOnDeletion": true},
                          "deletionGuard": {"maxPercent": 20},
                          "ignoreApplicationDifferences": [{"jsonPointers": ["/spec/source/targetRevision"]}]});
        let s = read_settings(spec, Policy::Sync).unwrap();
        assert_eq!(s.policy, Policy::CreateUpdate);
        assert!(s.preserve_resources_on_deletion);
        assert_eq!(s.max_percent, 20);
        assert_eq!(s.ignore.len(), 1);
        assert_eq!(
            read_settings(json!({}), Policy::CreateOnly).unwrap().policy,
            Policy::CreateOnly
        );
        for (spec, field) in [
            (
                json!({"syncPolicy": {"applicationsSync": "all"}}),
                "spec.syncPolicy.applicationsSync",
            ),
            (
                json!({"deletionGuard": {"maxPercent": 150}}),
                "spec.deletionGuard.maxPercent",
            ),
            (
                json!({"ignoreApplicationDifferences": [{"jqPathExpressions": [".a | b"]}]}),
                "spec.ignoreApplicationDifferences[0].jqPathExpressions[0]",
            ),
        ] {
            let e = read_settings(spec, Policy::Sync).unwrap_err();
            assert!(e.starts_with(field), "{e}");
        }
    }

    #[test]
    fn desired_objects_carry_ownership_hash_and_live_ignored_fields() {
        let s = set();
        let rules = ignore::parse(&[prism_engine::model::IgnoreDifference {
            name: None,
            json_pointers: vec!["/spec/source/targetRevision".into()],
            jq_path_expressions: vec![],
        }])
        .unwrap();
        let live = rendered("a", "hand-set");
        let d = desired(
            &s,
            vec![rendered("a", "main")],
            &rules,
            &Preserved::default(),
            &|n| (n == "a").then(|| live.clone()),
            &|_, _, _| None,
        )
        .unwrap();
        let a = &d["a"];
        assert_eq!(a["metadata"]["labels"][OWNER_LABEL], "argocd.shop");
        assert_eq!(a["metadata"]["labels"]["team"], "a");
        assert_eq!(a["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(a["spec"]["source"]["targetRevision"], "hand-set");
        // The hash ignores ignored fields and follows every other change.
        let again = desired(
            &s,
            vec![rendered("a", "other")],
            &rules,
            &Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        )
        .unwrap();
        assert_eq!(
            a["metadata"]["annotations"][APPLIED_HASH],
            again["a"]["metadata"]["annotations"][APPLIED_HASH]
        );
        let mut changed = rendered("a", "main");
        changed["spec"]["project"] = json!("team-a");
        let changed = desired(
            &s,
            vec![changed],
            &rules,
            &Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        )
        .unwrap();
        assert_ne!(
            a["metadata"]["annotations"][APPLIED_HASH],
            changed["a"]["metadata"]["annotations"][APPLIED_HASH]
        );
        let dup = desired(
            &s,
            vec![rendered("a", "x"), rendered("a", "y")],
            &[],
            &Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        );
        assert!(dup.unwrap_err().contains("two Applications are named a"));
    }

    /// Argo's `preservedFields` (applicationset_controller.go, createOrUpdateInCluster):
    /// a preserved annotation or label keeps its live value, even where the template
    /// renders another or none; a key the live Application lacks takes the rendered
    /// value; Argo's default annotations (refresh, hydrate, notifications) always; the
    /// controller's global keys join the spec's; changing a preserved value by hand
    /// changes no hash, so it costs no write.
    #[test]
    fn preserved_fields_keep_their_live_values() {
        let s = set();
        let spec: ApplicationSetSpec = serde_json::from_value(json!({
            "generators": [], "template": {"metadata": {}, "spec": {}},
            "preservedFields": {"annotations": ["team/owner"], "labels": ["tier"]}}))
        .unwrap();
        let global = Preserved {
            annotations: vec![],
            labels: vec!["cost-center".into()],
        };
        let settings = settings(&spec, Policy::Sync, &global).unwrap();
        assert_eq!(settings.preserved.labels, ["cost-center", "tier"]);
        assert!(settings
            .preserved
            .annotations
            .contains(&"argocd.argoproj.io/refresh".to_string()));
        let mut app = rendered("a", "main");
        app["metadata"]["labels"]["tier"] = json!("gold");
        app["metadata"]["annotations"] = json!({"team/owner": "rendered", "other": "x"});
        let live_meta = |live: Value| {
            move |_: &str, kind: &str, key: &str| live[kind][key].as_str().map(str::to_string)
        };
        let run = |live: Value| {
            desired(
                &s,
                vec![app.clone()],
                &[],
                &settings.preserved,
                &|_| None,
                &live_meta(live),
            )
            .unwrap()["a"]
                .clone()
        };
        let a = run(
            json!({"annotations": {"team/owner": "by-hand", "argocd.argoproj.io/refresh": "hard"},
                           "labels": {"tier": "silver", "cost-center": "42", "unrelated": "y"}}),
        );
        assert_eq!(a["metadata"]["annotations"]["team/owner"], "by-hand");
        assert_eq!(
            a["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
            "hard"
        );
        assert_eq!(a["metadata"]["annotations"]["other"], "x");
        assert_eq!(a["metadata"]["labels"]["tier"], "silver");
        assert_eq!(a["metadata"]["labels"]["cost-center"], "42");
        assert!(a["metadata"]["labels"].get("unrelated").is_none());
        let b = run(json!({"annotations": {}, "labels": {}}));
        assert_eq!(b["metadata"]["annotations"]["team/owner"], "rendered");
        assert_eq!(b["metadata"]["labels"]["tier"], "gold");
        assert_eq!(
            a["metadata"]["annotations"][APPLIED_HASH],
            b["metadata"]["annotations"][APPLIED_HASH]
        );
    }

    /// `owner_of` of a whole object and of the controller's cached form agree.
    fn owner_of_both(s: &SetMeta, v: &Value) -> Owner {
        let whole = owner_of(s, &Live::from(v.clone()));
        let cached = crate::controller::application::CachedApplication::from_value(v).unwrap();
        assert_eq!(
            owner_of(s, &Live::Cached(std::sync::Arc::new(cached))),
            whole
        );
        whole
    }

    #[test]
    fn ownership_needs_label_and_owner_reference_and_adoption_needs_the_key() {
        let s = set();
        let mut ours = desired(
            &s,
            vec![rendered("a", "main")],
            &[],
            &Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        )
        .unwrap()["a"]
            .clone();
        assert_eq!(owner_of_both(&s, &ours), Owner::Us);
        ours["metadata"]["ownerReferences"] = json!([]);
        assert_eq!(owner_of_both(&s, &ours), Owner::Other { adoptable: false });
        let mut hand = rendered("a", "main");
        assert_eq!(owner_of_both(&s, &hand), Owner::Other { adoptable: false });
        hand["metadata"]["annotations"] = json!({ADOPT_ANNOTATION: "argocd.shop"});
        assert_eq!(owner_of_both(&s, &hand), Owner::Other { adoptable: true });
        hand["metadata"]["annotations"] = json!({ADOPT_ANNOTATION: "argocd.other"});
        assert_eq!(owner_of_both(&s, &hand), Owner::Other { adoptable: false });
    }

    /// The pure pass end to end: live state → plan → status, then the same state
    /// after applying plans nothing and leaves the status as it was.
    #[test]
    fn a_converged_pass_plans_no_writes_and_keeps_the_status() {
        let s = set();
        let want = desired(
            &s,
            vec![rendered("a", "main"), rendered("b", "main")],
            &[],
            &Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        )
        .unwrap();
        let mut stale = want["a"].clone();
        stale["metadata"]["name"] = json!("old");
        stale["metadata"]["finalizers"] = json!([RESOURCES_FINALIZER]);
        let foreign = rendered("c", "x");
        let live = [want["a"].clone(), stale, foreign];
        let input = |live: &[Value]| Input {
            existing: existing(&s, live.iter().cloned().map(Live::from), &want),
            desired: Ok(want.clone()),
            policy: Policy::Sync,
            preserve_resources_on_deletion: true,
            guard: Guard::default(),
        };
        let p = plan(&input(&live));
        assert_eq!(
            p.actions,
            vec![
                Action::Keep("a".into(), Keep::UpToDate),
                Action::Create("b".into()),
                Action::Delete {
                    name: "old".into(),
                    remove_finalizer: true
                },
            ]
        );
        let applied = Applied {
            created: 1,
            deleted: 1,
            ..Applied::default()
        };
        let first = status(&Default::default(), &s, &p, 2, &applied, "T1", 5000, None);
        assert_eq!(first.applications.created, 1);
        assert_eq!(first.resources_count, 2);
        assert_eq!(first.observed_generation, Some(4));
        let up = first
            .conditions
            .iter()
            .find(|c| c.type_ == "ResourcesUpToDate")
            .unwrap();
        assert_eq!(
            (up.status.as_str(), up.last_transition_time.as_deref()),
            ("True", Some("T1"))
        );

        let converged = [want["a"].clone(), want["b"].clone()];
        let p2 = plan(&input(&converged));
        assert_eq!(p2.writes(), 0);
        let second = status(&first, &s, &p2, 2, &Applied::default(), "T2", 5000, None);
        assert_eq!(second, first);
    }

    #[test]
    fn errors_held_deletes_and_the_resource_cap_show_in_status() {
        let s = set();
        let p = Plan {
            actions: vec![Action::Keep("a".into(), Keep::GeneratorError)],
            held: None,
            error: Some("spec.generators[0].git: repository not found".into()),
        };
        let st = status(
            &Default::default(),
            &s,
            &p,
            0,
            &Applied::default(),
            "T",
            5000,
            None,
        );
        let by = |t: &str| st.conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(by("ErrorOccurred").status, "True");
        assert!(by("ErrorOccurred")
            .message
            .contains("spec.generators[0].git"));
        assert_eq!(by("ParametersGenerated").status, "False");
        assert_eq!(st.resources[0].status, "OutOfSync");

        let p = Plan {
            actions: (0..10)
                .map(|i| Action::Keep(format!("app-{i:02}"), Keep::DeletionHeld))
                .collect(),
            held: Some("holding 10 of 10 deletes".into()),
            error: None,
        };
        let st = status(
            &Default::default(),
            &s,
            &p,
            0,
            &Applied::default(),
            "T",
            3,
            None,
        );
        let by = |t: &str| st.conditions.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(by("DeletionHeld").status, "True");
        assert_eq!(by("ResourcesUpToDate").reason, "DeletionHeld");
        assert_eq!(by("ErrorOccurred").status, "False");
        assert_eq!(st.applications.held, 10);
        assert_eq!(st.resources.len(), 3);
        assert_eq!(st.resources_count, 10);
        assert!(st.resources_truncated);

        let failed = Applied {
            errors: vec!["a: 409 conflict".into()],
            ..Applied::default()
        };
        let st = status(
            &Default::default(),
            &s,
            &Plan::default(),
            0,
            &failed,
            "T",
            3,
            None,
        );
        let err = st
            .conditions
            .iter()
            .find(|c| c.type_ == "ErrorOccurred")
            .unwrap();
        assert_eq!(
            (err.status.as_str(), err.reason.as_str()),
            ("True", "UpdateApplicationError")
        );
    }

    #[test]
    fn requeue_git_sources_and_cluster_use_are_read_through_matrix_and_merge() {
        let gens = vec![
            json!({"list": {"elements": []}}),
            json!({"matrix": {"generators": [
                {"git": {"repoURL": "https://g/a.git", "revision": "main", "directories": [{"path": "*"}]}},
                {"clusters": {"selector": {"matchLabels": {"env": "x"}}}}
            ]}}),
            json!({"plugin": {"configMapRef": {"name": "p"}, "requeueAfterSeconds": 60}}),
            json!({"merge": {"generators": [{"values": {"repoURL": "https://g/b.git", "revision": ""}}]}}),
        ];
        assert_eq!(requeue_after(&gens), Some(Duration::from_secs(60)));
        assert_eq!(requeue_after(&gens[..2]), Some(GIT_REQUEUE));
        assert_eq!(requeue_after(&gens[..1]), None);
        assert_eq!(
            git_sources(&gens),
            vec![
                ("https://g/a.git".to_string(), "main".to_string()),
                ("https://g/b.git".to_string(), String::new())
            ]
        );
        assert!(uses_clusters(&gens));
        assert!(!uses_clusters(&gens[2..]));
    }
}
