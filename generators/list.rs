//! `list`: fixed parameter sets written in the spec (`elements`, `elementsYaml`).
//!
//! Emits `elements` in order, then `elementsYaml` items. As in Argo's default
//! template mode, element values must be strings (a `values` map becomes
//! `values.<key>`); in the nested modes elements are passed through as written.
//! `elementsYaml` items are passed through as written in every mode, as Argo does.

use super::Context;
use prism_core::error::Error;
use prism_core::params::{ParamSet, ParamShape};
use serde::Deserialize;
use serde_json::Value;

/// The `list` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListGenerator {
    /// One parameter set per element.
    #[serde(default)]
    pub elements: Vec<Value>,
    /// A YAML list of parameter sets (often templated from an earlier matrix child).
    #[serde(default)]
    pub elements_yaml: Option<String>,
}

impl ListGenerator {
    /// The parameter sets.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let mut out = Vec::with_capacity(self.elements.len());
        for (i, element) in self.elements.iter().enumerate() {
            let at = format!("{path}.elements[{i}]");
            let obj = element
                .as_object()
                .ok_or_else(|| Error::invalid(&at, "an element must be a mapping of parameters"))?;
            match ctx.shape() {
                ParamShape::Nested => out.push(obj.clone()),
                ParamShape::Flat => out.push(flat_element(obj, &at)?),
            }
        }
        if let Some(yaml) = self
            .elements_yaml
            .as_deref()
            .filter(|y| !y.trim().is_empty())
        {
            let items: Vec<ParamSet> = prism_core::limits::parse_yaml(yaml, &ctx.options.limits)
                .map_err(|e| {
                    Error::invalid(
                        format!("{path}.elementsYaml"),
                        format!("must be a YAML list of mappings: {e}"),
                    )
                })?;
            out.extend(items);
        }
        Ok(out)
    }
}

fn flat_element(obj: &ParamSet, at: &str) -> Result<ParamSet, Error> {
    let not_string = |key: &str, v: &Value| {
        Error::invalid(
            format!("{at}.{key}"),
            format!(
                "is {}, not a string; Argo's default template mode needs string values: quote it (\"{}\")",
                prism_core::params::kind_of(v),
                prism_core::params::go_format(v)
            ),
        )
    };
    let mut params = ParamSet::new();
    for (key, value) in obj {
        if key == "values" {
            let values = value.as_object().ok_or_else(|| {
                Error::invalid(
                    format!("{at}.values"),
                    "values must be a mapping of strings",
                )
            })?;
            for (k, v) in values {
                let s = v
                    .as_str()
                    .ok_or_else(|| not_string(&format!("values.{k}"), v))?;
                params.insert(format!("values.{k}"), s.into());
            }
        } else {
            let s = value.as_str().ok_or_else(|| not_string(key, value))?;
            params.insert(key.clone(), s.into());
        }
    }
    Ok(params)
}

/// The `list` generator's registration.
pub struct List;

impl super::GeneratorKind for List {
    fn key(&self) -> &'static str {
        "list"
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ListGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ListGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        for el in body
            .get("elements")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, v) in el.as_object().into_iter().flatten() {
                e.names.push(k.clone());
                if k == "values" {
                    for vk in v.as_object().into_iter().flatten().map(|(k, _)| k) {
                        e.names.push(format!("values.{vk}"));
                    }
                    e.prefixes.push("values.".into());
                }
            }
        }
        if body.get("elementsYaml").is_some() {
            e.anything = true;
        }
    }
}

impl super::Generate for ListGenerator {
    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{expand_err, expand_one};
    use serde_json::json;

    #[test]
    fn flat_elements_and_values() {
        let sets = expand_one(
            json!({"list": {"elements": [{"cluster": "a", "values": {"env": "prod"}}, {"cluster": "b"}]}}),
            false,
        );
        assert_eq!(
            sets,
            vec![
                json!({"cluster": "a", "values.env": "prod"}),
                json!({"cluster": "b"})
            ]
        );
    }

    #[test]
    fn elements_yaml_is_appended_as_written() {
        let sets = expand_one(
            json!({"list": {"elements": [{"a": "1"}], "elementsYaml": "- a: '2'\n  n: {x: 1}\n"}}),
            false,
        );
        assert_eq!(
            sets,
            vec![json!({"a": "1"}), json!({"a": "2", "n": {"x": 1}})]
        );
    }

    #[test]
    fn non_string_value_is_an_error_in_flat_mode() {
        let err = expand_err(json!({"list": {"elements": [{"replicas": 3}]}}), false);
        assert_eq!(
            err,
            "spec.generators[0].list.elements[0].replicas: is a number, not a string; \
             Argo's default template mode needs string values: quote it (\"3\")"
        );
    }

    #[test]
    fn nested_mode_keeps_types() {
        let sets = expand_one(
            json!({"list": {"elements": [{"replicas": 3, "v": {"a": true}}]}}),
            true,
        );
        assert_eq!(sets, vec![json!({"replicas": 3, "v": {"a": true}})]);
    }
}
