//! Printing rendered Applications: YAML stream, kubectl-style JSON List, names, or
//! the `--explain` report of which generator and parameters made each one.

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

/// The generators and parameters behind one Application: the parameters exactly as the
/// template saw them (flat in the default mode, nested for Go templates and handlebars).
fn explanation(r: &Rendered) -> Value {
    json!({
        "application": r.app.name,
        "applicationSet": r.application_set,
        "generators": r.app.generators,
        "parameters": r.app.params,
    })
}
