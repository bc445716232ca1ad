//! The `applicationsets.prism.dev` custom resource: the same spec the engine reads
//! (Argo's fields plus Prism's), with a status Argo CD users recognise.
//!
//! Generators and the template stay free-form (`x-kubernetes-preserve-unknown-fields`):
//! the engine checks them on every reconcile and reports a bad one by its spec
//! path in the `ErrorOccurred` condition, the way Argo's controller does; a CRD
//! schema for every generator would only repeat that check less precisely.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `spec` of a Prism ApplicationSet (`prism.dev/v1alpha1`), a superset of Argo's.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "prism.dev",
    version = "v1alpha1",
    kind = "ApplicationSet",
    plural = "applicationsets",
    shortname = "pappset",
    namespaced,
    status = "ApplicationSetStatus",
    printcolumn = r#"{"name":"Applications","type":"integer","jsonPath":".status.resourcesCount"}"#,
    printcolumn = r#"{"name":"Up-To-Date","type":"string","jsonPath":".status.conditions[?(@.type==\"ResourcesUpToDate\")].status"}"#,
    printcolumn = r#"{"name":"Error","type":"string","jsonPath":".status.conditions[?(@.type==\"ErrorOccurred\")].status"}"#,
    printcolumn = r#"{"name":"Held","type":"string","jsonPath":".status.conditions[?(@.type==\"DeletionHeld\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// `spec.generators`: list, clusters, git, values, matrix, merge, plugin, images.
    #[schemars(schema_with = "free_form_list")]
    pub generators: Vec<Value>,
    /// `spec.template`: the Application's `metadata` and `spec`.
    #[schemars(schema_with = "free_form")]
    pub template: Value,
    /// `spec.goTemplate`: render with Go's text/template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template: Option<bool>,
    /// `spec.goTemplateOptions`, e.g. `missingkey=error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template_options: Option<Vec<String>>,
    /// `spec.templatePatch`: a templated patch merged over each Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    /// `spec.syncPolicy`: `applicationsSync`, `preserveResourcesOnDeletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// `spec.ignoreApplicationDifferences`: fields the controller leaves as they are live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_application_differences: Option<Vec<IgnoreDifference>>,
    /// `spec.strategy` (Argo's progressive sync; accepted, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_optional")]
    pub strategy: Option<Value>,
    /// `spec.preservedFields` (annotations and labels kept from the live Application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_optional")]
    pub preserved_fields: Option<Value>,
    /// `spec.applyNestedSelectors` (Argo's flag; Prism always applies them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_nested_selectors: Option<bool>,
    /// `spec.templateEngine`: `handlebars` (Prism only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_engine: Option<String>,
    /// `spec.deletionGuard`: how many deletes one pass may make without confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_guard: Option<DeletionGuard>,
    /// `spec.writeBack`: record resolved image tags in git (Prism only; `prism generate --write-back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_optional")]
    pub write_back: Option<Value>,
}

/// `spec.syncPolicy`, as Argo's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// `sync` (default), `create-only`, `create-update` or `create-delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<String>,
    /// Drop Argo's resources finalizer before deleting an Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
}

/// One `spec.ignoreApplicationDifferences` entry, as Argo's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionGuard {
    /// Largest share of owned Applications one pass deletes unconfirmed (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_percent: Option<i32>,
}

/// `status`: Argo's conditions and resources, plus Prism's counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetStatus {
    /// `ErrorOccurred`, `ParametersGenerated`, `ResourcesUpToDate`, `DeletionHeld`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What the last pass did.
    #[serde(default)]
    pub applications: Counts,
    /// The owned Applications, capped (see `resourcesTruncated`).
    #[serde(default)]
    pub resources: Vec<ResourceStatus>,
    /// How many Applications the set has, even when `resources` is capped.
    #[serde(default)]
    pub resources_count: i64,
    /// Whether `resources` was cut at the cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resources_truncated: bool,
}

/// One status condition, with Argo's field names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// Counts from the last reconcile pass.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Applications the render produced.
    pub desired: i64,
    /// Created this pass.
    pub created: i64,
    /// Updated this pass.
    pub updated: i64,
    /// Deleted this pass.
    pub deleted: i64,
    /// Deletes held by the deletion guard.
    pub held: i64,
}

/// One Application in `status.resources` (Argo's ResourceStatus fields).
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// `argoproj.io`.
    pub group: String,
    /// `v1alpha1`.
    pub version: String,
    /// `Application`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `Synced` when live matches desired, else `OutOfSync`.
    pub status: String,
}

fn free_form(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn free_form_optional(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "object", "nullable": true, "x-kubernetes-preserve-unknown-fields": true})
}

fn free_form_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    })
}

/// The CRD manifest as YAML (`prism crd`, `deploy/crd.yaml`).
pub fn crd_yaml() -> Result<String, String> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&ApplicationSet::crd()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn crd_has_status_columns_and_short_name() {
        let crd = serde_json::to_value(ApplicationSet::crd()).unwrap();
        assert_eq!(crd["metadata"]["name"], "applicationsets.prism.dev");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "pappset");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert!(version["subresources"]["status"].is_object());
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            ["Applications", "Up-To-Date", "Error", "Held", "Age"]
        );
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["properties"]["generators"]["items"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            spec["properties"]["syncPolicy"]["properties"]["applicationsSync"]["type"],
            "string"
        );
        // Structural: no $ref, no anyOf left for the API server to refuse.
        let text = serde_json::to_string(&version["schema"]).unwrap();
        assert!(!text.contains("$ref"), "{text}");
    }

    #[test]
    fn the_bundled_example_reads_as_the_custom_resource() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/multi-env/applicationset.yaml"
        ))
        .unwrap();
        let value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let spec: ApplicationSetSpec = serde_json::from_value(value["spec"].clone()).unwrap();
        assert!(!spec.generators.is_empty());
        assert!(spec.template["spec"].is_object());
    }
}
