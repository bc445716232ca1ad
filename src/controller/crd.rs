//! The `applicationsets.prism.dev` custom resource: the engine's typed spec
//! ([`prism_engine::model::ApplicationSetSpec`], Argo's fields plus Prism's), with a
//! status Argo CD users recognise.
//!
//! The CRD's schema is generated from the same types as `prism schema` and the engine's
//! input, so the three cannot drift. Generators and the template stay free-form here
//! (`x-kubernetes-preserve-unknown-fields`): the engine checks them on every reconcile
//! and reports a bad one by its spec path in the `ErrorOccurred` condition, the way
//! Argo's controller does; a structural schema for every generator would only repeat
//! that check less precisely.

use prism_engine::model::ApplicationSetSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The CRD's group.
pub const GROUP: &str = "prism.dev";
/// The CRD's one version.
pub const VERSION: &str = "v1alpha1";

/// The CustomResourceDefinition of `applicationsets.prism.dev` (`prism crd`, `deploy/crd.yaml`).
pub fn crd() -> Value {
    let mut spec = structural_schema::<ApplicationSetSpec>();
    spec["properties"]["generators"] = json!({
        "description": "`spec.generators`: one registered generator per entry (see `prism schema`).",
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
    });
    spec["properties"]["template"] = json!({
        "description": "`spec.template`: `metadata` and `spec` of every Application.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    });
    let status = structural_schema::<ApplicationSetStatus>();
    let column = |name: &str, type_: &str, path: &str| json!({"name": name, "type": type_, "jsonPath": path});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("applicationsets.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": "ApplicationSet",
                "plural": "applicationsets",
                "shortNames": ["pappset"],
                "singular": "applicationset"
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    column("Applications", "integer", ".status.resourcesCount"),
                    column("Up-To-Date", "string", ".status.conditions[?(@.type==\"ResourcesUpToDate\")].status"),
                    column("Error", "string", ".status.conditions[?(@.type==\"ErrorOccurred\")].status"),
                    column("Held", "string", ".status.conditions[?(@.type==\"DeletionHeld\")].status"),
                    column("Step", "string", ".status.rolloutStep"),
                    column("Age", "date", ".metadata.creationTimestamp"),
                ],
                "schema": {"openAPIV3Schema": {
                    "description": "An ApplicationSet of Prism (prism.dev/v1alpha1): Argo CD's spec plus Prism's fields.",
                    "type": "object",
                    "required": ["spec"],
                    "properties": {"spec": spec, "status": status}
                }}
            }]
        }
    })
}

/// `T`'s schema as the API server wants it: OpenAPI v3, inlined, structural (the
/// settings and transforms kube-rs's `CustomResource` derive uses).
fn structural_schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        // A root schema's own keys, which a CRD's property schema may not carry.
        for key in ["title", "$schema", "$defs", "definitions", "components"] {
            obj.remove(key);
        }
    }
    schema
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
    /// A RollingSync's progress per Application (Argo's field).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_status: Vec<ApplicationStatusEntry>,
    /// A RollingSync's step in progress (`2/3`), or `done` (Prism's, for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_step: Option<String>,
}

/// One `status.applicationStatus[]` entry, with Argo's field names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatusEntry {
    /// The Application.
    pub application: String,
    /// `Waiting`, `Pending`, `Progressing` or `Healthy`.
    pub status: String,
    /// Its step, 1-based (`-1`: no step selects it).
    pub step: String,
    /// The revisions Argo CD reported when the status last changed.
    #[serde(default)]
    pub target_revisions: Vec<String>,
    /// Why, for people.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
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

/// The CRD manifest as YAML (`prism crd`, `deploy/crd.yaml`).
pub fn crd_yaml() -> Result<String, String> {
    serde_yaml::to_string(&crd()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_has_status_columns_and_short_name() {
        let crd = crd();
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
            ["Applications", "Up-To-Date", "Error", "Held", "Step", "Age"]
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
        assert_eq!(spec.policy(), prism_engine::spec::Policy::Sync);
        assert!(!spec.generators.is_empty());
        assert!(spec.template["spec"].is_object());
    }

    fn spec_fields(schema: &Value) -> std::collections::BTreeSet<String> {
        schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    /// One model: the CRD, `prism schema` and Argo's CRD name the same spec fields
    /// (Prism's three are the only additions), and the settings the controller reads are
    /// typed in the CRD, with Argo's policy names.
    #[test]
    fn crd_schema_and_argo_agree_on_the_spec() {
        let ours = crd();
        let version = &ours["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let crd_spec = &version["properties"]["spec"];
        let schema = prism_engine::schema::application_set_schema();
        let schema_spec = &schema["$defs"]["ApplicationSetSpec"];
        assert_eq!(spec_fields(crd_spec), spec_fields(schema_spec));
        let argo: Value = serde_yaml::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/crds/applicationset-crd.yaml"
            ))
            .unwrap(),
        )
        .unwrap();
        let argo_spec =
            &argo["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let argo_fields = spec_fields(argo_spec);
        let extra: Vec<String> = spec_fields(crd_spec)
            .difference(&argo_fields)
            .cloned()
            .collect();
        assert_eq!(extra, ["deletionGuard", "templateEngine", "writeBack"]);
        assert!(argo_fields.is_subset(&spec_fields(crd_spec)));
        assert_eq!(
            crd_spec["properties"]["syncPolicy"]["properties"]["applicationsSync"]["enum"],
            argo_spec["properties"]["syncPolicy"]["properties"]["applicationsSync"]["enum"]
        );
        let step = &crd_spec["properties"]["strategy"]["properties"]["rollingSync"]["properties"]
            ["steps"]["items"];
        assert_eq!(
            step["properties"]["maxUpdate"]["x-kubernetes-int-or-string"],
            true
        );
        assert_eq!(
            spec_fields(&step["properties"]["matchExpressions"]["items"]),
            spec_fields(
                &argo_spec["properties"]["strategy"]["properties"]["rollingSync"]["properties"]
                    ["steps"]["items"]["properties"]["matchExpressions"]["items"]
            )
        );
        assert_eq!(
            spec_fields(&crd_spec["properties"]["preservedFields"]),
            spec_fields(&argo_spec["properties"]["preservedFields"])
        );
        // Structural: no references, and anyOf only where Kubernetes allows it.
        let text = serde_json::to_string(version).unwrap();
        assert!(!text.contains("$ref") && !text.contains("anyOf"), "{text}");
    }
}
