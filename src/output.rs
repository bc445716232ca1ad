//! Printing rendered Applications: YAML stream, kubectl-style JSON List, names, or
//! the `--explain` report of which generator and parameters made each one.

use prism_engine::params::flat_view;
use prism_engine::RenderedApplication;
use serde_json::{json, Value};

/// The `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A multi-document YAML stream, sorted by name.
    Yaml,
    /// One `{"apiVersion":"v1","kind":"List","items":[...]}` object, as kubectl prints.
    Json,
    /// One name a line.
    Names,
}

/// An Application with the ApplicationSet that made it.
pub struct Rendered<'a> {
    /// The ApplicationSet's name.
    pub application_set: &'a str,
    /// The Application.
    pub app: &'a RenderedApplication,
}

/// The whole output as one string, so nothing is written unless everything rendered.
pub fn format(
    apps: &[Rendered],
    format: Format,
    explain: bool,
) -> Result<String, serde_yaml::Error> {
    let items: Vec<Value> = apps
        .iter()
        .map(|r| {
            if explain {
                explanation(r)
            } else {
                r.app.manifest.clone()
            }
        })
        .collect();
    Ok(match format {
        Format::Names => apps.iter().map(|r| format!("{}\n", r.app.name)).collect(),
        Format::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Yaml => {
            let mut out = String::new();
            for item in &items {
                out.push_str("---\n");
                out.push_str(&serde_yaml::to_string(item)?);
            }
            out
        }
    })
}

fn explanation(r: &Rendered) -> Value {
    let params: serde_json::Map<String, Value> = flat_view(&r.app.params)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({
        "application": r.app.name,
        "applicationSet": r.application_set,
        "generators": r.app.generators,
        "parameters": params,
    })
}
