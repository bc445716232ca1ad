//! The ApplicationSet manifest, as Argo CD (`argoproj.io/v1alpha1`) and Prism
//! (`prism.dev/v1alpha1`, a superset) write it.
//!
//! Field names are exactly those of Argo's CRD. Parsing checks the whole shape up
//! front, generators included, so `prism validate` catches a typo without reading
//! any source; the generators keep their raw JSON too, because a later matrix child
//! is re-read after an earlier child's parameters are templated into it.

use crate::error::Error;
use crate::generators::{check_template, GeneratorNode};
use serde_json::Value;

/// Argo CD's API version.
pub const ARGO_API_VERSION: &str = "argoproj.io/v1alpha1";
/// Prism's own API version (a superset of Argo's).
pub const PRISM_API_VERSION: &str = "prism.dev/v1alpha1";
/// Namespace assumed when a manifest names none (Argo CD's usual home).
pub const DEFAULT_NAMESPACE: &str = "argocd";

pub use crate::model::{ApplicationSetSpec, Policy};
pub use crate::template::TemplateEngine;

/// A parsed ApplicationSet.
#[derive(Debug, Clone)]
pub struct ApplicationSet {
    /// `apiVersion` as written (Argo's or Prism's).
    pub api_version: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, or the namespace the caller chose as default.
    pub namespace: String,
    /// The template language (from `goTemplate`, `goTemplateOptions` and `templateEngine`).
    pub engine: TemplateEngine,
    /// `spec.generators`, parsed and checked once: what [`crate::render`] expands.
    pub nodes: std::sync::Arc<[GeneratorNode]>,
    /// The typed `spec`: the generators as written (lint reads them; a matrix re-reads
    /// its children after templating them), the template, and every setting.
    pub spec: ApplicationSetSpec,
}

const SPEC_FIELDS: &[&str] = &[
    "applyNestedSelectors",
    "generators",
    "goTemplate",
    "goTemplateOptions",
    "ignoreApplicationDifferences",
    "preservedFields",
    "strategy",
    "syncPolicy",
    "template",
    "templatePatch",
];
const PRISM_SPEC_FIELDS: &[&str] = &["templateEngine", "deletionGuard", "writeBack"];

impl ApplicationSet {
    /// Whether `value` looks like an ApplicationSet of either API (other objects are skipped by callers).
    pub fn is_application_set(value: &Value) -> bool {
        value.get("kind").and_then(Value::as_str) == Some("ApplicationSet")
    }

    /// Reads one manifest; `default_namespace` applies when it names none.
    pub fn from_value(value: &Value, default_namespace: &str) -> Result<ApplicationSet, Error> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::invalid("", "the document is not a YAML mapping"))?;
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version != ARGO_API_VERSION && api_version != PRISM_API_VERSION {
            return Err(Error::invalid(
                "apiVersion",
                format!("{api_version:?} is not an ApplicationSet API; use {ARGO_API_VERSION} or {PRISM_API_VERSION}"),
            ));
        }
        let prism = api_version == PRISM_API_VERSION;
        if obj.get("kind").and_then(Value::as_str) != Some("ApplicationSet") {
            return Err(Error::invalid("kind", "expected kind: ApplicationSet"));
        }
        let metadata = obj.get("metadata").and_then(Value::as_object);
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid("metadata.name", "every ApplicationSet needs a name"))?
            .to_string();
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(default_namespace)
            .to_string();

        let spec = obj
            .get("spec")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid("spec", "spec is missing or not a mapping"))?;
        for key in spec.keys() {
            let known = SPEC_FIELDS.contains(&key.as_str());
            let prism_only = PRISM_SPEC_FIELDS.contains(&key.as_str());
            if prism_only && !prism {
                return Err(Error::invalid(
                    format!("spec.{key}"),
                    format!(
                        "{key} is a Prism field; set apiVersion: {PRISM_API_VERSION} to use it"
                    ),
                ));
            }
            if !known && !prism_only {
                return Err(Error::invalid(
                    format!("spec.{key}"),
                    format!(
                        "unknown field {key:?}; ApplicationSet spec fields are {}",
                        SPEC_FIELDS.join(", ")
                    ),
                ));
            }
        }

        let engine = template_engine(spec)?;

        let generators = spec
            .get("generators")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::invalid(
                    "spec.generators",
                    "spec.generators is missing or not a list",
                )
            })?;
        if generators.is_empty() {
            return Err(Error::invalid(
                "spec.generators",
                "an ApplicationSet needs at least one generator",
            ));
        }
        let nodes = generators
            .iter()
            .enumerate()
            .map(|(i, g)| GeneratorNode::parse(g, &format!("spec.generators[{i}]"), prism))
            .collect::<Result<Vec<_>, _>>()?
            .into();

        let template = spec
            .get("template")
            .filter(|t| t.is_object())
            .ok_or_else(|| {
                Error::invalid("spec.template", "spec.template is missing or not a mapping")
            })?;
        check_template(template, "spec.template")?;

        if !matches!(
            spec.get("templatePatch"),
            None | Some(Value::Null | Value::String(_))
        ) {
            return Err(Error::invalid(
                "spec.templatePatch",
                "templatePatch is a string holding YAML or JSON (use a `|` block)",
            ));
        }
        if let Some(policy) = spec
            .get("syncPolicy")
            .and_then(|s| s.get("applicationsSync"))
            .and_then(Value::as_str)
        {
            Policy::parse(policy)
                .map_err(|e| Error::invalid("spec.syncPolicy.applicationsSync", e))?;
        }
        let spec = typed_spec(spec)?;
        if let Some(write_back) = &spec.write_back {
            write_back.check()?;
        }
        let steps = spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_sync.as_ref())
            .map_or(&[][..], |r| r.steps.as_slice());
        if let Some(i) = steps.iter().position(|s| s.soak_seconds.is_some()) {
            if !prism {
                return Err(Error::invalid(
                    format!("spec.strategy.rollingSync.steps[{i}].soakSeconds"),
                    format!("soakSeconds is a Prism field; set apiVersion: {PRISM_API_VERSION} to use it"),
                ));
            }
        }

        Ok(ApplicationSet {
            nodes,
            api_version: api_version.to_string(),
            name,
            namespace,
            engine,
            spec,
        })
    }

    /// Whether this spec uses Prism's API (and so may use Prism's generators and fields).
    pub fn is_prism(&self) -> bool {
        self.api_version == PRISM_API_VERSION
    }
}

/// The template engine a spec chooses: `goTemplate` (with its options) or Prism's
/// `templateEngine`; contradicting choices are an error.
fn template_engine(spec: &serde_json::Map<String, Value>) -> Result<TemplateEngine, Error> {
    let go_template = match spec.get("goTemplate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Error::invalid("spec.goTemplate", "must be true or false")),
    };
    let options = match spec.get("goTemplateOptions") {
        None | Some(Value::Null) => vec![],
        Some(v) => serde_json::from_value::<Vec<String>>(v.clone())
            .map_err(|_| Error::invalid("spec.goTemplateOptions", "must be a list of strings"))?,
    };
    let engine = match (
        go_template,
        spec.get("templateEngine").and_then(Value::as_str),
    ) {
        (true, Some(e)) if e != "goTemplate" => {
            return Err(Error::invalid(
                "spec.templateEngine",
                format!("templateEngine {e:?} contradicts goTemplate: true; keep one"),
            ))
        }
        (true, _) | (false, Some("goTemplate")) => TemplateEngine::Go { options },
        (false, None) | (false, Some("fasttemplate")) => TemplateEngine::Fast,
        (false, Some("handlebars")) => TemplateEngine::Handlebars,
        (false, Some(other)) => {
            return Err(Error::invalid(
                "spec.templateEngine",
                format!(
                    "unknown template engine {other:?}; use fasttemplate, handlebars or goTemplate"
                ),
            ))
        }
    };
    Ok(engine)
}

/// The typed spec; a field of the wrong shape is named by its path
/// (`spec.strategy.rollingSync.steps[0].maxUpdate`).
fn typed_spec(spec: &serde_json::Map<String, Value>) -> Result<ApplicationSetSpec, Error> {
    // Nulls mean "unset", as the API server treats them.
    let present: serde_json::Map<String, Value> = spec
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_path_to_error::deserialize(Value::Object(present)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        Error::invalid(format!("spec.{path}"), message)
    })
}
