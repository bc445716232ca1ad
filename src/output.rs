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
pub fn format(apps: &[Rendered], format: Format, explain: bool) -> String {
    if format == Format::Names {
        return apps.iter().map(|r| format!("{}\n", r.app.name)).collect();
    }
    let explanations: Vec<Value> = if explain {
        apps.iter().map(explanation).collect()
    } else {
        Vec::new()
    };
    let items: Vec<&Value> = if explain {
        explanations.iter().collect()
    } else {
        apps.iter().map(|r| &r.app.manifest).collect()
    };
    match format {
        Format::Json => {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
            s.push('\n');
            s
        }
        _ => {
            let mut out = String::with_capacity(items.len() * 1024);
            for item in items {
                out.push_str("---\n");
                crate::yaml::write_document(&mut out, item);
            }
            out
        }
    }
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
