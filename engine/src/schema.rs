//! The JSON Schema of an ApplicationSet manifest, for editors (yaml-language-server)
//! and CI, generated from the generators' own Rust types.
//!
//! The spec is [`crate::model::ApplicationSetSpec`] and the generators are the
//! registry's typed specs: the types the engine deserializes, so the schema cannot
//! drift from what Prism accepts. Only the envelope (apiVersion, kind, metadata) is
//! described by schema-only types here.

use crate::model::ApplicationSetSpec;
use schemars::JsonSchema;
use serde_json::Value;
use std::collections::BTreeMap;

pub use crate::generators::GeneratorEntry;

#[derive(JsonSchema)]
#[allow(dead_code)]
enum ApiVersion {
    #[serde(rename = "argoproj.io/v1alpha1")]
    Argo,
    #[serde(rename = "prism.dev/v1alpha1")]
    Prism,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
enum Kind {
    ApplicationSet,
}

/// Metadata of the ApplicationSet itself.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ObjectMeta {
    name: String,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// An ApplicationSet manifest, Argo's or Prism's.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ApplicationSet {
    api_version: ApiVersion,
    kind: Kind,
    metadata: ObjectMeta,
    spec: ApplicationSetSpec,
}

/// The JSON Schema (draft 2020-12) of an ApplicationSet manifest.
pub fn application_set_schema() -> Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(ApplicationSet)).unwrap_or(Value::Null);
    // Every generator body may carry Argo's per-generator `template` override, which the
    // engine takes off before it reads the body.
    let bodies: Vec<String> = crate::generators::REGISTRY
        .iter()
        .filter_map(|kind| {
            schema["$defs"]["GeneratorEntry"]["properties"][kind.key()]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .map(String::from)
        })
        .collect();
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        for name in bodies {
            if let Some(props) = defs
                .get_mut(&name)
                .and_then(|d| d.get_mut("properties"))
                .and_then(Value::as_object_mut)
            {
                props.insert(
                    "template".into(),
                    serde_json::json!({"$ref": "#/$defs/Template", "description": "Overrides spec.template for this generator's Applications."}),
                );
            }
        }
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            "ApplicationSet (argoproj.io/v1alpha1, prism.dev/v1alpha1)".into(),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_has_generators_and_template_override() {
        let s = super::application_set_schema();
        let defs = &s["$defs"];
        assert!(defs["GitGenerator"]["properties"]["repoURL"].is_object());
        assert_eq!(
            defs["GitGenerator"]["properties"]["template"]["$ref"],
            "#/$defs/Template"
        );
        assert_eq!(defs["GeneratorEntry"]["additionalProperties"], false);
    }

    /// Every registered generator is in the schema, with Argo's template override.
    #[test]
    fn every_registered_generator_is_in_the_schema() {
        let s = super::application_set_schema();
        for kind in crate::generators::REGISTRY {
            let entry = &s["$defs"]["GeneratorEntry"]["properties"][kind.key()];
            let name = entry["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/");
            assert_eq!(
                s["$defs"][name]["properties"]["template"]["$ref"],
                "#/$defs/Template",
                "{}",
                kind.key()
            );
        }
    }
}
