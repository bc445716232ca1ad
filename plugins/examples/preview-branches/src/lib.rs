//! `preview-branches`: one parameter set per git branch matching a pattern, for
//! preview environments per branch without an SCM API token (needs `repoAccess`).
//!
//! Input: `repoURL` (a repository the ApplicationSet names), `pattern` (default
//! `feature/*`). Output per branch: `branch`, `branchSlug` (DNS-label safe, at most
//! 50 characters), `sha`, `shortSha`.

use prism_plugin_sdk::host::{self, Level};
use prism_plugin_sdk::{Error, Params, Request};
use serde_json::Value;

fn generate(req: Request) -> Result<Vec<Params>, Error> {
    let repo = req.input_str("repoURL")?;
    let pattern = req.input_str("pattern").unwrap_or("feature/*");
    let refs = host::list_refs(repo, pattern)?;
    let mut out = Vec::new();
    for r in refs.into_iter().filter(|r| r.kind == "branch") {
        let mut p = Params::new();
        p.insert("branchSlug".into(), Value::String(slug(&r.name)));
        p.insert("shortSha".into(), Value::String(r.sha.chars().take(8).collect()));
        p.insert("branch".into(), Value::String(r.name));
        p.insert("sha".into(), Value::String(r.sha));
        out.push(p);
    }
    host::log(
        Level::Info,
        &format!("{} branches of {repo} match {pattern}", out.len()),
    );
    Ok(out)
}

/// Lower case, runs of other characters as one `-`, trimmed, at most 50 characters.
fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s: String = s.trim_matches('-').chars().take(50).collect();
    s.trim_end_matches('-').to_string()
}

prism_plugin_sdk::export_generator!(generate);
