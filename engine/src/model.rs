//! The ApplicationSet `spec`, typed once.
//!
//! These types are what every part of Prism reads: [`crate::spec`] deserializes a
//! manifest's `spec` into them (after the checks that give Argo-style messages), `prism
//! schema` and the `applicationsets.prism.dev` CRD are generated from them, and the
//! controller reads its settings (policy, deletion guard, ignored differences,
//! strategy, preserved fields) from them. Field names are exactly those of Argo CD's CRD
//! (`../shared/argo-cd-crds/applicationset-crd.yaml`); the fields marked Prism only are
//! accepted under `prism.dev/v1alpha1`.
//!
//! `generators` and `template` stay JSON: the generators are parsed by the registry
//! (which knows each one's typed spec), and the template is rendered string by string.
//! Their schemas still come from here, through [`generators_schema`] and [`Template`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `spec` of an ApplicationSet, Argo's fields plus Prism's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSetSpec {
    /// `spec.generators`, parsed by the generator registry.
    #[schemars(schema_with = "generators_schema")]
    pub generators: Vec<Value>,
    /// `spec.template`: `metadata` and `spec` of every Application (see [`Template`]).
    #[schemars(schema_with = "template_schema")]
    pub template: Value,
    /// `spec.goTemplate`: render with Go's text/template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template: Option<bool>,
    /// `spec.goTemplateOptions`, e.g. `missingkey=error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template_options: Option<Vec<String>>,
    /// `spec.templatePatch`: a templated YAML/JSON patch merged over each Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    /// `spec.syncPolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// `spec.strategy`: how changes roll out across the Applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// `spec.preservedFields`: annotations and labels kept from the live Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserved_fields: Option<PreservedFields>,
    /// `spec.ignoreApplicationDifferences`: fields the controller leaves as they are live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_application_differences: Option<Vec<IgnoreDifference>>,
    /// `spec.applyNestedSelectors` (Argo's flag for matrix/merge children; Prism always
    /// applies nested selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_nested_selectors: Option<bool>,
    /// `spec.templateEngine` (Prism only): `fasttemplate`, `handlebars` or `goTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_engine: Option<EngineName>,
    /// `spec.deletionGuard` (Prism only): how many deletes one pass may make unconfirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_guard: Option<DeletionGuard>,
    /// `spec.writeBack` (Prism only): record resolved image tags in git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_back: Option<WriteBack>,
}

impl ApplicationSetSpec {
    /// `syncPolicy.applicationsSync`, Argo's default (`sync`) when unset.
    pub fn policy(&self) -> Policy {
        self.sync_policy
            .as_ref()
            .and_then(|s| s.applications_sync)
            .unwrap_or(Policy::Sync)
    }

    /// `syncPolicy.preserveResourcesOnDeletion`, false when unset.
    pub fn preserve_resources_on_deletion(&self) -> bool {
        self.sync_policy
            .as_ref()
            .and_then(|s| s.preserve_resources_on_deletion)
            .unwrap_or(false)
    }
}

/// The template language: `fasttemplate` (Argo's default), `handlebars` or `goTemplate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EngineName {
    /// Argo's default `{{param}}` substitution.
    #[serde(rename = "fasttemplate")]
    Fasttemplate,
    /// Handlebars (Prism only).
    #[serde(rename = "handlebars")]
    Handlebars,
    /// Go's text/template with sprig, as `goTemplate: true`.
    #[serde(rename = "goTemplate")]
    GoTemplate,
}

/// What the controller may do to Applications: `sync` (default), `create-only`,
/// `create-update` or `create-delete`.
// The one list of Argo's policy names: the spec, `prism schema`, the CRD, the planner and
// the controller's `--policy` all read it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Policy {
    /// Create only.
    #[serde(rename = "create-only")]
    CreateOnly,
    /// Create and update, never delete.
    #[serde(rename = "create-update")]
    CreateUpdate,
    /// Create and delete, never update.
    #[serde(rename = "create-delete")]
    CreateDelete,
    /// Create, update and delete (Argo's default).
    #[serde(rename = "sync")]
    Sync,
}

impl Policy {
    /// Reads Argo's spelling.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "sync" => Ok(Policy::Sync),
            "create-only" => Ok(Policy::CreateOnly),
            "create-update" => Ok(Policy::CreateUpdate),
            "create-delete" => Ok(Policy::CreateDelete),
            other => Err(format!(
                "{other:?} is not a policy; use sync, create-only, create-update or create-delete"
            )),
        }
    }

    /// Argo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Sync => "sync",
            Policy::CreateOnly => "create-only",
            Policy::CreateUpdate => "create-update",
            Policy::CreateDelete => "create-delete",
        }
    }

    /// Whether Applications may be updated.
    pub fn updates(self) -> bool {
        matches!(self, Policy::Sync | Policy::CreateUpdate)
    }

    /// Whether Applications may be deleted.
    pub fn deletes(self) -> bool {
        matches!(self, Policy::Sync | Policy::CreateDelete)
    }

    /// The spec's policy under the controller's ceiling: an action is allowed only
    /// when both allow it (Argo's `--policy` with policy override off).
    pub fn under(self, ceiling: Policy) -> Policy {
        match (
            self.updates() && ceiling.updates(),
            self.deletes() && ceiling.deletes(),
        ) {
            (true, true) => Policy::Sync,
            (true, false) => Policy::CreateUpdate,
            (false, true) => Policy::CreateDelete,
            (false, false) => Policy::CreateOnly,
        }
    }
}

/// `spec.syncPolicy`, as Argo's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncPolicy {
    /// `sync` (default), `create-only`, `create-update` or `create-delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<Policy>,
    /// Drop Argo's resources finalizer before deleting an Application, so its
    /// resources stay in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
}

/// `spec.strategy`: Argo's progressive syncs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "ApplicationSetStrategy")]
pub struct Strategy {
    /// `AllAtOnce` (Argo's default) or `RollingSync`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The steps of a `RollingSync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_sync: Option<RollingSync>,
    /// `AllAtOnce` (default) or `Reverse`: delete Applications step by step, last step first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_order: Option<String>,
}

/// `spec.strategy.rollingSync`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingSync {
    /// Steps in order; an Application belongs to the first step whose expressions all match.
    #[serde(default)]
    pub steps: Vec<RollingSyncStep>,
}

/// One `rollingSync.steps[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingSyncStep {
    /// Label requirements over the Application's labels (`In`, `NotIn`).
    #[serde(default)]
    pub match_expressions: Vec<MatchExpression>,
    /// How many Applications of the step sync at once: a count or a percentage (default 100%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_update: Option<IntOrString>,
    /// `prism.dev` only: the step counts as done once its Applications have stayed
    /// Healthy this many seconds (a soak time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_seconds: Option<u64>,
}

/// A label requirement, as Argo's `ApplicationMatchExpression`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchExpression {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// `In` or `NotIn`.
    #[serde(default)]
    pub operator: String,
    /// Label values.
    #[serde(default)]
    pub values: Vec<String>,
}

/// Kubernetes' IntOrString (`maxUpdate: 2` or `maxUpdate: 25%`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A count.
    Int(i64),
    /// A percentage such as `25%`.
    String(String),
}

impl JsonSchema for IntOrString {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrString".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // Kubernetes' own spelling: an API server takes no other schema for int-or-string.
        schemars::json_schema!({"x-kubernetes-int-or-string": true})
    }
}

/// `spec.preservedFields`: keys of annotations and labels that the controller keeps
/// from the live Application instead of the rendered one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreservedFields {
    /// Annotation keys.
    #[serde(default)]
    pub annotations: Vec<String>,
    /// Label keys.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// One `spec.ignoreApplicationDifferences` entry, as Argo's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IgnoreDifference {
    /// Only for the Application of this name (all when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// RFC 6901 pointers, e.g. `/spec/source/targetRevision`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    /// jq paths; the path subset (`.a.b`, `.a["b"]`, `.a[0]`, `.a[]`) is supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
}

/// `spec.deletionGuard` (Prism only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletionGuard {
    /// Largest share of owned Applications one pass deletes unconfirmed (0 to 100, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_percent: Option<i32>,
}

/// `spec.writeBack` (Prism only): where `prism generate --write-back` records the
/// resolved image tags, as Argo CD Image Updater's `.argocd-source-<app>.yaml` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WriteBack {
    /// Only `git`.
    pub method: String,
    /// The repository holding the `.argocd-source-<app>.yaml` files.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch to commit to (default `main`).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Directory inside the repository (default: the root).
    #[serde(default)]
    pub path: String,
    /// Helm parameter name → parameter key (`image.tag: images.api.tag`). Default: Image
    /// Updater's `image.name`/`image.tag` for one image, `<alias>.image.name`/`.tag` for several.
    #[serde(default)]
    pub helm_parameters: BTreeMap<String, String>,
    /// Commit author (default: Prism <prism@localhost>).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Author>,
    /// Commit message (default: names the ApplicationSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl WriteBack {
    /// The checks serde cannot make: the method, and a path that stays inside the repository.
    pub fn check(&self) -> Result<(), crate::Error> {
        if self.method != "git" {
            return Err(crate::Error::invalid(
                "spec.writeBack.method",
                format!("{:?} is not supported; use git", self.method),
            ));
        }
        if self.path.split('/').any(|s| s == "..") || self.path.starts_with('/') {
            return Err(crate::Error::invalid(
                "spec.writeBack.path",
                format!("{:?} must stay inside the repository", self.path),
            ));
        }
        Ok(())
    }
}

/// A commit author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: String,
}

fn default_branch() -> String {
    "main".into()
}

/// The shape of `spec.template` and of a generator's `template` override. The engine
/// keeps templates as JSON (it renders every string in them); this type describes them
/// for the schema, and `generators::check_template` enforces the same shape.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Metadata copied into each Application.
    pub metadata: Option<TemplateMeta>,
    /// The Application spec (Argo CD's Application CRD), with templated strings.
    pub spec: Option<BTreeMap<String, Value>>,
}

/// Template metadata: what Argo copies into each Application.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMeta {
    /// Application name.
    pub name: Option<String>,
    /// Application namespace (default: the ApplicationSet's).
    pub namespace: Option<String>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers.
    pub finalizers: Option<Vec<String>>,
}

/// `spec.generators`: a list of generator entries, each with exactly one registered key.
pub fn generators_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    <Vec<crate::generators::GeneratorEntry>>::json_schema(generator)
}

fn template_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<Template>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApplicationSet;
    use serde_json::json;

    fn read(fields: Value) -> Result<ApplicationSet, crate::Error> {
        let mut spec = json!({"generators": [{"list": {"elements": []}}],
                              "template": {"metadata": {}, "spec": {}}});
        for (k, v) in fields.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let manifest = json!({"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
                              "metadata": {"name": "s"}, "spec": spec});
        ApplicationSet::from_value(&manifest, "argocd")
    }

    /// Argo's RollingSync shape (docs/operator-manual/applicationset/Progressive-Syncs.md):
    /// steps of `matchExpressions` and a `maxUpdate` count or percentage, read typed.
    #[test]
    fn strategy_and_preserved_fields_are_read_typed() {
        let set = read(json!({
            "strategy": {"type": "RollingSync", "deletionOrder": "Reverse", "rollingSync": {"steps": [
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["test"]}]},
                {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}], "maxUpdate": "25%"},
                {"maxUpdate": 2}
            ]}},
            "preservedFields": {"annotations": ["notified"], "labels": ["team"]}
        }))
        .unwrap();
        let strategy = set.spec.strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("RollingSync"));
        assert_eq!(strategy.deletion_order.as_deref(), Some("Reverse"));
        let steps = strategy.rolling_sync.unwrap().steps;
        assert_eq!(steps[0].match_expressions[0].values, ["test"]);
        assert_eq!(steps[0].max_update, None);
        assert_eq!(steps[1].max_update, Some(IntOrString::String("25%".into())));
        assert_eq!(steps[2].max_update, Some(IntOrString::Int(2)));
        let preserved = set.spec.preserved_fields.unwrap();
        assert_eq!(preserved.annotations, ["notified"]);
        assert_eq!(preserved.labels, ["team"]);
    }

    /// A field of the wrong shape is named by its whole spec path.
    #[test]
    fn a_bad_field_is_named_by_its_path() {
        for (fields, path) in [
            (
                json!({"strategy": {"rollingSync": {"steps": [{"maxUpdate": true}]}}}),
                "spec.strategy.rollingSync.steps[0].maxUpdate",
            ),
            (
                json!({"strategy": {"rollingSync": {"steps": [{"matchExpresions": []}]}}}),
                "spec.strategy.rollingSync.steps[0].matchExpresions",
            ),
            (
                json!({"preservedFields": {"annotations": "notified"}}),
                "spec.preservedFields.annotations",
            ),
            (
                json!({"syncPolicy": {"preserveResourcesOnDeletion": "yes"}}),
                "spec.syncPolicy.preserveResourcesOnDeletion",
            ),
            (
                json!({"deletionGuard": {"maxPercnt": 10}}),
                "spec.deletionGuard.maxPercnt",
            ),
            (
                json!({"writeBack": {"method": "git", "repoURL": "https://g/x.git", "path": "../up"}}),
                "spec.writeBack.path",
            ),
            (
                json!({"writeBack": {"method": "svn", "repoURL": "https://g/x.git"}}),
                "spec.writeBack.method",
            ),
        ] {
            let e = read(fields.clone()).unwrap_err();
            assert_eq!(e.path, path, "{fields}: {e}");
        }
        let e = read(json!({"deletionGuard": {"maxPercnt": 10}})).unwrap_err();
        assert!(e.to_string().contains("expected `maxPercent`"), "{e}");
    }

    /// Nulls are unset, as the API server treats them.
    #[test]
    fn null_fields_are_unset() {
        let set = read(json!({"strategy": null, "syncPolicy": null})).unwrap();
        assert_eq!(set.spec.strategy, None);
        assert_eq!(set.spec.policy(), Policy::Sync);
        assert!(!set.spec.preserve_resources_on_deletion());
    }
}
