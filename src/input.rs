//! Reading ApplicationSet manifests and cluster Secret files from disk or stdin.
//!
//! A spec argument is a file (one or more YAML documents), a directory (every
//! `*.yaml`/`*.yml` in it, sorted, not recursive) or `-` (stdin). Documents that are
//! not ApplicationSets are skipped, so a directory of mixed manifests works.

use crate::CliError;
use prism_engine::{ApplicationSet, Cluster, Limits};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One ApplicationSet and where it was read from.
pub struct SpecDoc {
    /// The file it came from (`<stdin>` for `-`).
    pub file: String,
    /// The parsed spec.
    pub appset: ApplicationSet,
    /// The manifest as written.
    pub raw: Value,
    /// The document's own text (for positions in lint reports).
    pub text: String,
    /// The line of the file the document starts at (1-based).
    pub first_line: usize,
}

/// The error for an argument holding no ApplicationSet.
fn no_application_set(arg: &str) -> CliError {
    CliError::Failed(format!(
        "{arg}: no ApplicationSet found (looked for kind: ApplicationSet with apiVersion argoproj.io/v1alpha1 or prism.dev/v1alpha1)"
    ))
}

/// The ApplicationSets of several arguments (`lint` and `validate` as pre-commit hooks
/// call them, one file each): files holding none are skipped, as long as one holds some.
pub fn read_many_specs(
    args: &[String],
    default_namespace: &str,
    limits: &Limits,
) -> Result<Vec<SpecDoc>, CliError> {
    if let [one] = args {
        return read_specs(one, default_namespace, limits);
    }
    let mut all = Vec::new();
    for arg in args {
        match read_specs(arg, default_namespace, limits) {
            Ok(specs) => all.extend(specs),
            Err(CliError::Failed(m)) if m == no_application_set(arg).to_string() => {}
            Err(e) => return Err(e),
        }
    }
    if all.is_empty() {
        return Err(no_application_set(&args.join(", ")));
    }
    Ok(all)
}

/// Reads every ApplicationSet named by `arg`.
pub fn read_specs(
    arg: &str,
    default_namespace: &str,
    limits: &Limits,
) -> Result<Vec<SpecDoc>, CliError> {
    let mut sources: Vec<(String, String)> = Vec::new();
    if arg == "-" {
        let text = crate::fsread::read_stream(std::io::stdin().lock())
            .map_err(|e| CliError::Failed(format!("<stdin>: cannot read: {e}")))?;
        sources.push(("<stdin>".into(), text));
    } else {
        let path = Path::new(arg);
        let files = if path.is_dir() {
            yaml_files_in(path)?
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            let text = crate::fsread::read_to_string(&file).map_err(|e| {
                CliError::Failed(format!(
                    "{}: cannot read: {e}; check the path",
                    file.display()
                ))
            })?;
            sources.push((file.display().to_string(), text));
        }
    }
    let mut specs = Vec::new();
    for (file, text) in sources {
        let docs =
            documents(&text, limits).map_err(|e| CliError::Failed(format!("{file}: {e}")))?;
        let chunks = chunks(&text);
        for (i, doc) in docs.into_iter().enumerate() {
            if !ApplicationSet::is_application_set(&doc) {
                continue;
            }
            let appset = ApplicationSet::from_value(&doc, default_namespace).map_err(|e| {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                CliError::Failed(format!(
                    "{file}: document {}: ApplicationSet {name}: {e}",
                    i + 1
                ))
            })?;
            // The i-th non-empty document is the i-th non-empty chunk (fallback: whole file).
            let (first_line, doc_text) = chunks.get(i).cloned().unwrap_or((1, text.clone()));
            specs.push(SpecDoc {
                file: file.clone(),
                appset,
                raw: doc,
                text: doc_text,
                first_line,
            });
        }
    }
    if specs.is_empty() {
        return Err(no_application_set(arg));
    }
    Ok(specs)
}

/// Reads every cluster Secret in the given files, in order.
pub fn read_clusters(files: &[PathBuf], limits: &Limits) -> Result<Vec<Cluster>, CliError> {
    let mut clusters = Vec::new();
    for file in files {
        let text = crate::fsread::read_to_string(file).map_err(|e| {
            CliError::Failed(format!(
                "{}: cannot read clusters file: {e}",
                file.display()
            ))
        })?;
        let found = Cluster::parse_secrets(&text, limits)
            .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
        if found.is_empty() {
            return Err(CliError::Failed(format!(
                "{}: no Argo CD cluster Secrets (kind: Secret with the label \
                 argocd.argoproj.io/secret-type: cluster) found; check the file, or leave out --clusters",
                file.display()
            )));
        }
        clusters.extend(found);
    }
    Ok(clusters)
}

fn yaml_files_in(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::Failed(format!("{}: cannot list: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| CliError::Failed(format!("{}: cannot list: {e}", dir.display())))?
            .path();
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The text of each non-empty document and the line it starts on.
fn chunks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker {
            if cur
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            {
                out.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = i + 2;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if cur
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    {
        out.push((start, cur));
    }
    out
}

/// Splits a YAML stream into documents (empty documents dropped).
fn documents(text: &str, limits: &Limits) -> Result<Vec<Value>, String> {
    let docs = prism_engine::limits::parse_yaml_stream(text, limits)?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}
