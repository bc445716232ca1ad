//! The reconcile plan: a pure function of (desired, owned-now, policy).
//!
//! Policies as Argo CD's `syncPolicy.applicationsSync` (`sync`, `create-only`,
//! `create-update`, `create-delete`), capped by the controller-wide `--policy`
//! ceiling. Prism adds the deletion guard no peer has: a generator error plans
//! nothing but keeps; a successful render that would delete more than
//! `deletionGuard.maxPercent` (default 50) of the owned Applications, or all of
//! them, holds the deletes until the ApplicationSet carries
//! `prism.dev/allow-mass-delete: "<generation>"`.

use crate::controller::application::CachedApplication;
use prism_engine::parallel;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

pub use prism_engine::spec::Policy;

/// Who owns an existing Application of a desired or owned name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This ApplicationSet (label `prism.dev/application-set` and ownerReference).
    Us,
    /// Another ApplicationSet or a person; never touched unless adoptable.
    Other {
        /// Whether it is annotated to allow adoption by this ApplicationSet.
        adoptable: bool,
    },
}

/// An Application that exists in the cluster.
#[derive(Debug, Clone)]
pub struct Existing {
    /// Its owner.
    pub owner: Owner,
    /// The live object (compared with the desired one field by field).
    pub live: Live,
    /// Whether it carries Argo's resources finalizer.
    pub has_finalizer: bool,
    /// Whether it is already being deleted (`metadata.deletionTimestamp` set; Argo CD
    /// removes its finalizer once the Application's resources are gone).
    pub deleting: bool,
}

/// The deletion guard's settings for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// `spec.deletionGuard.maxPercent` (default 50).
    pub max_percent: u32,
    /// `metadata.generation` of the ApplicationSet.
    pub generation: i64,
    /// The value of `prism.dev/allow-mass-delete`, if it parses.
    pub allowed_generation: Option<i64>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_percent: 50,
            generation: 0,
            allowed_generation: None,
        }
    }
}

/// Everything a plan depends on.
#[derive(Debug, Clone)]
pub struct Input {
    /// The rendered Applications by name, or the render's error.
    pub desired: Result<BTreeMap<String, Value>, String>,
    /// Applications of interest by name: every one this set owns, and any of a desired name.
    pub existing: BTreeMap<String, Existing>,
    /// The spec's policy already under the ceiling ([`Policy::under`]).
    pub policy: Policy,
    /// `syncPolicy.preserveResourcesOnDeletion`: drop Argo's finalizer before deleting.
    pub preserve_resources_on_deletion: bool,
    /// The deletion guard.
    pub guard: Guard,
}

/// One planned step, per Application name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Server-side apply a new Application.
    Create(String),
    /// Server-side apply over a drifted (or adopted) one.
    Update(String),
    /// Delete; first remove Argo's resources finalizer when asked.
    Delete {
        /// The Application.
        name: String,
        /// Whether to patch the finalizer away first.
        remove_finalizer: bool,
    },
    /// Leave it as it is, and why.
    Keep(String, Keep),
}

/// Why an Application is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Live already equals desired: no write.
    UpToDate,
    /// Drifted, but the policy does not update.
    PolicyNoUpdate,
    /// No longer desired, but the policy does not delete.
    PolicyNoDelete,
    /// Another owner has it and it is not annotated for adoption.
    ForeignOwner,
    /// The render failed: nothing is changed.
    GeneratorError,
    /// The deletion guard holds this delete.
    DeletionHeld,
    /// No longer desired and already being deleted: nothing to send again.
    Deleting,
}

/// The outcome of planning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Steps, sorted by Application name.
    pub actions: Vec<Action>,
    /// Why deletes are held (for the `DeletionHeld` condition and Event).
    pub held: Option<String>,
    /// The render error (for the `ErrorOccurred` condition).
    pub error: Option<String>,
}

impl Plan {
    /// How many writes the plan makes (a no-change pass makes zero).
    pub fn writes(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| !matches!(a, Action::Keep(..)))
            .count()
    }
}

/// Plans one reconcile pass.
pub fn plan(input: &Input) -> Plan {
    let desired = match &input.desired {
        Ok(d) => d,
        Err(e) => {
            return Plan {
                actions: input
                    .existing
                    .iter()
                    .filter(|(_, e)| e.owner == Owner::Us)
                    .map(|(n, _)| Action::Keep(n.clone(), Keep::GeneratorError))
                    .collect(),
                held: None,
                error: Some(e.clone()),
            }
        }
    };
    // Comparing 10,000 Applications with their live forms is most of a no-change pass:
    // spread over the cores, the actions kept in name order.
    let wanted: Vec<(&String, &Value)> = desired.iter().collect();
    let mut actions = Vec::with_capacity(desired.len() + input.existing.len());
    actions.extend(parallel::map(
        &wanted,
        parallel::default_threads(),
        |&(name, want)| match input.existing.get(name) {
            None => Action::Create(name.clone()),
            Some(e) => match e.owner {
                Owner::Other { adoptable: false } => Action::Keep(name.clone(), Keep::ForeignOwner),
                Owner::Other { adoptable: true } if input.policy.updates() => {
                    Action::Update(name.clone())
                }
                Owner::Other { adoptable: true } => {
                    Action::Keep(name.clone(), Keep::PolicyNoUpdate)
                }
                Owner::Us if e.live.contains(want) => Action::Keep(name.clone(), Keep::UpToDate),
                Owner::Us if input.policy.updates() => Action::Update(name.clone()),
                Owner::Us => Action::Keep(name.clone(), Keep::PolicyNoUpdate),
            },
        },
    ));
    // Applications already being deleted are neither deleted again nor counted by the guard.
    let owned = input
        .existing
        .values()
        .filter(|e| e.owner == Owner::Us && !e.deleting)
        .count();
    type Named<'a> = Vec<(&'a String, &'a Existing)>;
    let (going, stale): (Named, Named) = input
        .existing
        .iter()
        .filter(|(n, e)| e.owner == Owner::Us && !desired.contains_key(*n))
        .partition(|(_, e)| e.deleting);
    actions.extend(
        going
            .into_iter()
            .map(|(name, _)| Action::Keep(name.clone(), Keep::Deleting)),
    );
    let mut held = None;
    let deleting = input.policy.deletes() && !stale.is_empty();
    if deleting {
        let g = input.guard;
        let too_many = stale.len() == owned || stale.len() * 100 > g.max_percent as usize * owned;
        if too_many && g.allowed_generation != Some(g.generation) {
            held =
                Some(format!(
                "holding {} of {owned} deletes (over deletionGuard.maxPercent {}%{}); to go on, \
                 annotate the ApplicationSet with prism.dev/allow-mass-delete: \"{}\"",
                stale.len(),
                g.max_percent,
                if stale.len() == owned { ", all of them" } else { "" },
                g.generation
            ));
        }
    }
    for (name, e) in stale {
        actions.push(if !input.policy.deletes() {
            Action::Keep(name.clone(), Keep::PolicyNoDelete)
        } else if held.is_some() {
            Action::Keep(name.clone(), Keep::DeletionHeld)
        } else {
            Action::Delete {
                name: name.clone(),
                remove_finalizer: input.preserve_resources_on_deletion && e.has_finalizer,
            }
        });
    }
    actions.sort_by(|a, b| action_name(a).cmp(action_name(b)));
    Plan {
        actions,
        held,
        error: None,
    }
}

fn action_name(a: &Action) -> &str {
    match a {
        Action::Create(n) | Action::Update(n) | Action::Keep(n, _) => n,
        Action::Delete { name, .. } => name,
    }
}

/// A live Application: a whole JSON object, or the controller's cached form, read
/// field by field where it is, and decoded to JSON only where it must be.
#[derive(Debug, Clone)]
pub enum Live {
    /// A whole object.
    Value(Value),
    /// As the controller's cache holds it.
    Cached(Arc<CachedApplication>),
}

impl From<Value> for Live {
    fn from(v: Value) -> Live {
        Live::Value(v)
    }
}

impl Live {
    /// The object as JSON (`apiVersion`, `kind`, `metadata`, `spec`).
    pub fn to_value(&self) -> Value {
        match self {
            Live::Value(v) => v.clone(),
            Live::Cached(a) => a.to_value(),
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> Option<&str> {
        match self {
            Live::Value(v) => v["metadata"]["name"].as_str(),
            Live::Cached(a) => a.metadata.name.as_deref(),
        }
    }

    /// The value of label (`labels`) or annotation (`annotations`) `key`.
    pub fn meta(&self, kind: &str, key: &str) -> Option<&str> {
        match self {
            Live::Value(v) => v["metadata"][kind][key].as_str(),
            Live::Cached(a) => {
                let map = match kind {
                    "labels" => a.metadata.labels.as_ref(),
                    _ => a.metadata.annotations.as_ref(),
                };
                map.and_then(|m| m.get(key)).map(String::as_str)
            }
        }
    }

    /// Every label.
    pub fn labels(&self) -> BTreeMap<String, String> {
        match self {
            Live::Value(v) => string_map(&v["metadata"]["labels"]),
            Live::Cached(a) => a.metadata.labels.clone().unwrap_or_default(),
        }
    }

    /// Whether an ownerReference names the ApplicationSet `name`.
    pub fn owned_by_set(&self, name: &str) -> bool {
        match self {
            Live::Value(v) => v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|r| r["kind"] == "ApplicationSet" && r["name"].as_str() == Some(name))
                }),
            Live::Cached(a) => a
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.kind == "ApplicationSet" && r.name == name),
        }
    }

    /// Whether a finalizer starts with `prefix`.
    pub fn has_finalizer(&self, prefix: &str) -> bool {
        match self {
            Live::Value(v) => v["metadata"]["finalizers"].as_array().is_some_and(|f| {
                f.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.starts_with(prefix)))
            }),
            Live::Cached(a) => a
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f.starts_with(prefix)),
        }
    }

    /// Whether `metadata.deletionTimestamp` is set.
    pub fn deleting(&self) -> bool {
        match self {
            Live::Value(v) => v["metadata"]["deletionTimestamp"].is_string(),
            Live::Cached(a) => a.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Whether Argo CD has compared this spec (see [`CachedApplication::compared_current`]).
    pub fn compared_current(&self) -> bool {
        match self {
            Live::Value(_) => false,
            Live::Cached(a) => a.compared_current(),
        }
    }

    /// [`contains`] of the live object: the cached form compares its spec text with
    /// `want`'s printed spec first (the API server prints JSON as serde_json does for
    /// sorted maps), and decodes only what differs.
    pub fn contains(&self, want: &Value) -> bool {
        match self {
            Live::Value(v) => contains(v, want),
            Live::Cached(a) => a.contains(want),
        }
    }
}

/// The string entries of a JSON object (labels, annotations); others are left out.
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `live` has every field of `want` with the same value (what server-side
/// apply would leave unchanged); fields only the server or others set are ignored.
pub fn contains(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| l.get(k).is_some_and(|lv| contains(lv, wv))),
        (Value::Array(l), Value::Array(w)) => {
            l.len() == w.len() && l.iter().zip(w).all(|(lv, wv)| contains(lv, wv))
        }
        (l, w) => l == w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(rev: &str) -> Value {
        json!({"metadata": {"name": "x", "labels": {"prism.dev/application-set": "argocd.shop"}},
               "spec": {"source": {"targetRevision": rev}, "project": "default"}})
    }

    /// The states an Application name can be in before a pass.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum State {
        Missing,
        Same,
        Drifted,
        Extra,
        Foreign,
        ForeignAdoptable,
    }

    const STATES: [State; 6] = [
        State::Missing,
        State::Same,
        State::Drifted,
        State::Extra,
        State::Foreign,
        State::ForeignAdoptable,
    ];
    const POLICIES: [Policy; 4] = [
        Policy::Sync,
        Policy::CreateOnly,
        Policy::CreateUpdate,
        Policy::CreateDelete,
    ];

    /// One Application in `state`, plus `keep` owned Applications that stay desired
    /// and unchanged (so the guard's percentage can be steered).
    fn input(state: State, policy: Policy, keep: usize, preserve: bool) -> Input {
        let mut desired = BTreeMap::new();
        let mut existing = BTreeMap::new();
        for i in 0..keep {
            let n = format!("keep-{i}");
            desired.insert(n.clone(), app("v1"));
            existing.insert(
                n,
                Existing {
                    owner: Owner::Us,
                    live: app("v1").into(),
                    has_finalizer: false,
                    deleting: false,
                },
            );
        }
        let ours = |live: Value| Existing {
            owner: Owner::Us,
            live: live.into(),
            has_finalizer: true,
            deleting: false,
        };
        match state {
            State::Missing => {
                desired.insert("a".into(), app("v2"));
            }
            State::Same => {
                desired.insert("a".into(), app("v2"));
                let mut live = app("v2");
                live["status"] = json!({"sync": "Synced"});
                existing.insert("a".into(), ours(live));
            }
            State::Drifted => {
                desired.insert("a".into(), app("v2"));
                existing.insert("a".into(), ours(app("v1")));
            }
            State::Extra => {
                existing.insert("a".into(), ours(app("v1")));
            }
            State::Foreign | State::ForeignAdoptable => {
                desired.insert("a".into(), app("v2"));
                existing.insert(
                    "a".into(),
                    Existing {
                        owner: Owner::Other {
                            adoptable: state == State::ForeignAdoptable,
                        },
                        live: app("v1").into(),
                        has_finalizer: false,
                        deleting: false,
                    },
                );
            }
        }
        Input {
            desired: Ok(desired),
            existing,
            policy,
            preserve_resources_on_deletion: preserve,
            guard: Guard {
                max_percent: 50,
                generation: 7,
                allowed_generation: None,
            },
        }
    }

    fn action_for_a(p: &Plan) -> Action {
        p.actions
            .iter()
            .find(|a| action_name(a) == "a")
            .cloned()
            .expect("an action for a")
    }

    /// The expected action for `a` in `state` under `policy`, with the guard not tripping.
    fn expected(state: State, policy: Policy, preserve: bool) -> Action {
        let a = || "a".to_string();
        let updates = matches!(policy, Policy::Sync | Policy::CreateUpdate);
        let deletes = matches!(policy, Policy::Sync | Policy::CreateDelete);
        match state {
            State::Missing => Action::Create(a()),
            State::Same => Action::Keep(a(), Keep::UpToDate),
            State::Drifted | State::ForeignAdoptable if updates => Action::Update(a()),
            State::Drifted | State::ForeignAdoptable => Action::Keep(a(), Keep::PolicyNoUpdate),
            State::Extra if deletes => Action::Delete {
                name: a(),
                remove_finalizer: preserve,
            },
            State::Extra => Action::Keep(a(), Keep::PolicyNoDelete),
            State::Foreign => Action::Keep(a(), Keep::ForeignOwner),
        }
    }

    #[test]
    fn every_policy_and_state() {
        for policy in POLICIES {
            for state in STATES {
                for preserve in [false, true] {
                    // 3 kept + 1 extra: deleting 1 of 4 owned is under the guard.
                    let p = plan(&input(state, policy, 3, preserve));
                    assert_eq!(
                        action_for_a(&p),
                        expected(state, policy, preserve),
                        "{policy:?} {state:?} preserve={preserve}"
                    );
                    assert_eq!(p.held, None);
                    assert_eq!(p.error, None);
                    let kept_writes = p
                        .actions
                        .iter()
                        .filter(|a| action_name(a).starts_with("keep-"))
                        .all(|a| *a == Action::Keep(action_name(a).into(), Keep::UpToDate));
                    assert!(kept_writes, "unchanged Applications are never written");
                }
            }
        }
    }

    #[test]
    fn a_generator_error_changes_nothing() {
        for policy in POLICIES {
            for state in STATES {
                let mut i = input(state, policy, 2, false);
                i.desired = Err("git: repository not found".into());
                let p = plan(&i);
                assert_eq!(p.writes(), 0, "{policy:?} {state:?}");
                assert_eq!(p.error.as_deref(), Some("git: repository not found"));
                assert!(p
                    .actions
                    .iter()
                    .all(|a| matches!(a, Action::Keep(_, Keep::GeneratorError))));
                let owned = i.existing.values().filter(|e| e.owner == Owner::Us).count();
                assert_eq!(p.actions.len(), owned, "every owned Application is kept");
            }
        }
    }

    #[test]
    fn the_deletion_guard_holds_mass_and_total_deletes() {
        for policy in POLICIES {
            for (keep, trips) in [(0, true), (1, false), (3, false)] {
                // 1 extra of (keep + 1) owned: 100 % with keep 0 (all), 50 % with keep 1 (not over 50).
                let p = plan(&input(State::Extra, policy, keep, false));
                let deletes = matches!(policy, Policy::Sync | Policy::CreateDelete);
                if deletes && trips {
                    assert_eq!(
                        action_for_a(&p),
                        Action::Keep("a".into(), Keep::DeletionHeld)
                    );
                    let held = p.held.clone().unwrap();
                    assert!(held.contains("holding 1 of 1 deletes"), "{held}");
                    assert!(
                        held.contains("prism.dev/allow-mass-delete: \"7\""),
                        "{held}"
                    );
                } else {
                    assert_eq!(p.held, None, "{policy:?} keep={keep}");
                }
            }
        }
        // Over maxPercent: 3 stale of 4 owned = 75 % > 50 %.
        let mut i = input(State::Extra, Policy::Sync, 1, false);
        for n in ["b", "c"] {
            i.existing.insert(
                n.into(),
                Existing {
                    owner: Owner::Us,
                    live: app("v1").into(),
                    has_finalizer: false,
                    deleting: false,
                },
            );
        }
        let p = plan(&i);
        assert_eq!(p.writes(), 0);
        assert!(p
            .held
            .as_deref()
            .unwrap_or("")
            .contains("holding 3 of 4 deletes (over deletionGuard.maxPercent 50%)"));
        // The annotation for this generation lets them go; one for an older generation does not.
        i.guard.allowed_generation = Some(6);
        assert_eq!(plan(&i).writes(), 0);
        i.guard.allowed_generation = Some(7);
        let p = plan(&i);
        assert_eq!(p.held, None);
        assert_eq!(p.writes(), 3);
        // A higher maxPercent lets them go too.
        i.guard = Guard {
            max_percent: 80,
            ..Guard::default()
        };
        assert_eq!(plan(&i).writes(), 3);
    }

    /// Found on a real API server: a deleted Application stays, with a deletionTimestamp,
    /// until Argo CD removes its resources finalizer. The next pass must not delete it again
    /// (a request per pass for as long as Argo CD takes), count it for the guard, or list it.
    #[test]
    fn applications_already_being_deleted_are_left_to_finish() {
        let mut i = input(State::Extra, Policy::Sync, 1, false);
        for n in ["b", "c"] {
            i.existing.insert(
                n.into(),
                Existing {
                    owner: Owner::Us,
                    live: app("v1").into(),
                    has_finalizer: true,
                    deleting: true,
                },
            );
        }
        // "a" is stale; "b" and "c" are going already: 1 delete of 2 owned, 50 %, not held.
        let p = plan(&i);
        assert_eq!(p.held, None);
        assert_eq!(p.writes(), 1);
        for n in ["b", "c"] {
            assert!(p.actions.contains(&Action::Keep(n.into(), Keep::Deleting)));
        }
    }

    #[test]
    fn ceilings_cap_the_spec_policy() {
        assert_eq!(Policy::Sync.under(Policy::CreateOnly), Policy::CreateOnly);
        assert_eq!(
            Policy::Sync.under(Policy::CreateUpdate),
            Policy::CreateUpdate
        );
        assert_eq!(
            Policy::CreateDelete.under(Policy::CreateUpdate),
            Policy::CreateOnly
        );
        assert_eq!(
            Policy::CreateUpdate.under(Policy::Sync),
            Policy::CreateUpdate
        );
        assert_eq!(Policy::parse("create-delete"), Ok(Policy::CreateDelete));
        assert!(Policy::parse("upsert")
            .unwrap_err()
            .contains("use sync, create-only"));
    }

    #[test]
    fn containment_ignores_server_fields_but_not_list_changes() {
        let want = json!({"spec": {"a": [1, {"b": 2}]}});
        assert!(contains(
            &json!({"spec": {"a": [1, {"b": 2, "c": 3}]}, "status": {}}),
            &want
        ));
        assert!(!contains(&json!({"spec": {"a": [1]}}), &want));
        assert!(!contains(&json!({"spec": {"a": [1, {"b": 3}]}}), &want));
        assert!(!contains(&json!({}), &want));
    }
}
