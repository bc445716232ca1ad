//! `plugin`: parameter sets from a WebAssembly plugin (Argo's plugin generator, run
//! in-process by the host instead of over HTTP).
//!
//! Written as Argo writes it: `configMapRef.name` names a plugin definition in the
//! admin's plugins file (never in the ApplicationSet), `input.parameters` is passed
//! through as written. The request also carries the parameter set of earlier matrix
//! children. Each returned parameter set gets `generator.input.parameters` (as
//! Argo adds it) and the generator's templated `values`. In the default (flat)
//! mode nested values are flattened to dotted keys with Go's `%v` formatting, as
//! Argo flattens them. Order: the plugin's.

use super::{append_values, Context};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::{flatten_value, ParamSet, ParamShape};
use prism_core::sources::PluginCall;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The `plugin` generator's spec (Argo's field names).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginGenerator {
    /// Which plugin definition to run.
    pub config_map_ref: ConfigMapRef,
    /// Passed to the plugin as written.
    #[serde(default)]
    pub input: PluginInput,
    /// Extra parameters, templated per parameter set, as `values.<key>`.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// How often the controller asks again (ignored offline).
    #[serde(default)]
    pub requeue_after_seconds: Option<i64>,
}

/// `configMapRef`: in Argo a ConfigMap naming an HTTP service; in Prism a plugin definition.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigMapRef {
    /// The plugin definition's `name`.
    pub name: String,
}

/// `input`: what the plugin is given.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInput {
    /// Any JSON the plugin understands.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Value>")]
    pub parameters: Map<String, Value>,
}

impl PluginGenerator {
    pub(super) fn check_spec(&self, path: &str) -> Result<(), Error> {
        if self.config_map_ref.name.is_empty() {
            return Err(Error::invalid(
                format!("{path}.configMapRef.name"),
                "must name a plugin definition from the plugins file",
            ));
        }
        Ok(())
    }

    /// Runs the plugin and shapes its answer into parameter sets.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let name = &self.config_map_ref.name;
        let upstream = ctx.upstream.cloned().unwrap_or_default();
        let request = json!({
            "apiVersion": "prism.dev/plugin/v1",
            "applicationSetName": ctx.appset_name,
            "input": {"parameters": self.input.parameters},
            "parameters": upstream,
        });
        let call = PluginCall {
            name,
            path,
            request: &request,
            repositories: ctx.repositories,
        };
        let sets = ctx.sources.plugin(&call).map_err(|message| {
            Error::new(
                path,
                ErrorKind::Plugin {
                    name: name.clone(),
                    message,
                },
            )
        })?;
        let mut out = Vec::with_capacity(sets.len());
        for found in sets {
            let mut params = match ctx.shape() {
                ParamShape::Nested => found,
                ParamShape::Flat => {
                    let mut flat = Map::new();
                    flatten_value("", &Value::Object(found), &mut flat);
                    flat
                }
            };
            match ctx.shape() {
                ParamShape::Nested => {
                    params.insert(
                        "generator".into(),
                        json!({"input": {"parameters": self.input.parameters}}),
                    );
                }
                ParamShape::Flat => {
                    flatten_value(
                        "generator.input.parameters",
                        &Value::Object(self.input.parameters.clone()),
                        &mut params,
                    );
                }
            }
            append_values(&self.values, &mut params, ctx, path)?;
            out.push(params);
        }
        Ok(out)
    }
}

/// The `plugin` generator's registration.
pub struct Plugin;

impl super::GeneratorKind for Plugin {
    fn key(&self) -> &'static str {
        "plugin"
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(super::PLUGIN_REQUEUE)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<PluginGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<PluginGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        let _ = body;
        e.anything = true; // whatever the plugin answers
    }
}

impl super::Generate for PluginGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        self.check_spec(path)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{expand_err, expand_with};
    use prism_core::cluster::Cluster;
    use prism_core::options::RenderOptions;
    use prism_core::params::ParamSet;
    use prism_core::sources::memory::MemorySources;
    use prism_core::sources::{PluginCall, Repository, SourceError, Sources};
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};
    use std::cell::RefCell;
    use std::sync::Arc;

    /// Sources whose plugin echoes its request as one parameter set and records calls.
    struct Echo {
        calls: RefCell<Vec<Value>>,
    }

    impl Sources for Echo {
        fn repository(&self, url: &str, rev: &str) -> Result<Arc<dyn Repository>, SourceError> {
            MemorySources::new().repository(url, rev)
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            Ok(Arc::from(vec![]))
        }
        fn plugin(&self, call: &PluginCall<'_>) -> Result<Vec<ParamSet>, String> {
            self.calls.borrow_mut().push(json!({
                "name": call.name, "path": call.path, "request": call.request,
                "repositories": call.repositories,
            }));
            match call.request["input"]["parameters"]["fail"].as_str() {
                Some(m) => Err(m.to_string()),
                None => Ok(vec![
                    json!({"env": "prod", "nested": {"n": 3, "list": [true]}})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ]),
            }
        }
    }

    fn run(raw: Value, engine: TemplateEngine) -> (Result<Vec<Value>, String>, Vec<Value>) {
        let echo = Echo {
            calls: RefCell::new(vec![]),
        };
        let out = expand_with(raw, engine, &echo, &RenderOptions::default());
        (out, echo.calls.into_inner())
    }

    #[test]
    fn flat_mode_flattens_output_and_input_like_argo() {
        let (sets, calls) = run(
            json!({"plugin": {"configMapRef": {"name": "p"}, "input": {"parameters": {"k": ["a"]}},
                   "values": {"x": "{{env}}-v"}}}),
            TemplateEngine::Fast,
        );
        assert_eq!(
            sets.unwrap(),
            vec![
                json!({"env": "prod", "nested.n": "3", "nested.list.0": "true",
                        "generator.input.parameters.k.0": "a", "values.x": "prod-v"})
            ]
        );
        assert_eq!(calls[0]["request"]["apiVersion"], "prism.dev/plugin/v1");
        assert_eq!(
            calls[0]["request"]["input"],
            json!({"parameters": {"k": ["a"]}})
        );
        assert_eq!(calls[0]["request"]["parameters"], json!({}));
        assert_eq!(calls[0]["path"], "spec.generators[0].plugin");
    }

    #[test]
    fn nested_mode_keeps_values_and_adds_generator_input() {
        let (sets, _) = run(
            json!({"plugin": {"configMapRef": {"name": "p"}, "input": {"parameters": {"k": 1}}}}),
            TemplateEngine::Handlebars,
        );
        assert_eq!(
            sets.unwrap(),
            vec![json!({"env": "prod", "nested": {"n": 3, "list": [true]},
                        "generator": {"input": {"parameters": {"k": 1}}}})]
        );
    }

    #[test]
    fn matrix_passes_earlier_parameters_and_templates_the_input() {
        let (sets, calls) = run(
            json!({"matrix": {"generators": [
                {"list": {"elements": [{"cluster": "a"}, {"cluster": "b"}]}},
                {"plugin": {"configMapRef": {"name": "p"}, "input": {"parameters": {"c": "{{cluster}}"}}}}
            ]}}),
            TemplateEngine::Fast,
        );
        assert_eq!(sets.unwrap().len(), 2);
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1]["request"]["parameters"], json!({"cluster": "b"}));
        assert_eq!(calls[1]["request"]["input"]["parameters"]["c"], "b");
        assert_eq!(
            calls[1]["path"],
            "spec.generators[0].matrix.generators[1].plugin"
        );
    }

    #[test]
    fn plugin_errors_name_the_plugin_and_path() {
        let (out, _) = run(
            json!({"plugin": {"configMapRef": {"name": "p"}, "input": {"parameters": {"fail": "boom"}}}}),
            TemplateEngine::Fast,
        );
        assert_eq!(
            out.unwrap_err(),
            "spec.generators[0].plugin: plugin \"p\": boom"
        );
    }

    #[test]
    fn without_plugin_definitions_the_error_says_what_to_pass() {
        let err = expand_err(
            json!({"plugin": {"configMapRef": {"name": "tiers"}}}),
            false,
        );
        assert!(
            err.contains("plugin \"tiers\" is unknown; pass --plugins FILE"),
            "{err}"
        );
    }

    #[test]
    fn missing_config_map_ref_is_a_spec_error() {
        let err = expand_err(json!({"plugin": {"input": {}}}), false);
        assert!(err.contains("missing field `configMapRef`"), "{err}");
    }
}
