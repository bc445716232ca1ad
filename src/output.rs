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
    /// For people: one row per Application (name, project, cluster, namespace, source),
    /// in aligned columns as `kubectl get` prints them.
    Table,
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
    if format == Format::Table {
        return table(apps);
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

/// `-o table`: NAME, PROJECT, CLUSTER (the destination's name or server), NAMESPACE,
/// SOURCE (repository path or chart, with the revision), two spaces between columns.
fn table(apps: &[Rendered]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let mut rows = vec![["NAME", "PROJECT", "CLUSTER", "NAMESPACE", "SOURCE"].map(String::from)];
    for r in apps {
        let spec = &r.app.manifest["spec"];
        let dest = &spec["destination"];
        let cluster = Some(text(&dest["name"]))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| text(&dest["server"]));
        // A single source, or the first of several (with how many more).
        let (source, more) = match spec["sources"].as_array() {
            Some(list) if !list.is_empty() => (&list[0], list.len() - 1),
            _ => (&spec["source"], 0),
        };
        let what = match (text(&source["chart"]), text(&source["path"])) {
            (chart, _) if !chart.is_empty() => format!("{} {chart}", text(&source["repoURL"])),
            (_, path) => format!("{} {path}", text(&source["repoURL"])),
        };
        let mut source_text = match text(&source["targetRevision"]) {
            rev if rev.is_empty() => what.trim_end().to_string(),
            rev => format!("{}@{rev}", what.trim_end()),
        };
        if more > 0 {
            source_text.push_str(&format!(" (+{more})"));
        }
        rows.push([
            r.app.name.clone(),
            text(&spec["project"]),
            cluster,
            text(&dest["namespace"]),
            source_text,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
