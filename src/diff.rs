//! `prism diff`: which Applications a change adds, removes or changes.
//!
//! Renders twice — the "before" side from `--from-spec` (or SPEC) with repositories at
//! `--from` (or the spec's own revisions), the "after" side from SPEC with repositories
//! at `--to` (or the working tree of `--repo` paths) — and compares Applications by name.

use crate::input::read_specs;
use crate::pipeline::{render_all, Shared, SourceArgs};
use crate::sources::RevisionChoice;
use crate::CliError;
use clap::Args;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;

/// `prism diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The ApplicationSet(s) as they are now (file, directory, or -).
    pub spec: String,
    /// Read repositories at this revision for the "before" side [default: the spec's own revisions].
    #[arg(long, value_name = "REV")]
    pub from: Option<String>,
    /// Read repositories at this revision for the "after" side [default: the working tree of --repo paths].
    #[arg(long, value_name = "REV")]
    pub to: Option<String>,
    /// The ApplicationSet(s) as they were (e.g. the file on the base branch) [default: SPEC].
    #[arg(long, value_name = "FILE")]
    pub from_spec: Option<String>,
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
}

/// `prism diff -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Added, removed and changed Applications with a unified YAML diff of each change.
    Text,
    /// `{added: [...], removed: [...], changed: [{name, before, after}]}` for bots.
    Json,
}

/// One side: Application name → (manifest, generators that made it).
/// One side of the diff: by name, the Application as compact JSON (equal text, equal
/// object: maps print with sorted keys) and the generators behind it. Text costs a
/// fraction of a parsed tree; only changed Applications are parsed back to print.
type Side = BTreeMap<String, (String, Vec<Arc<str>>)>;

/// Renders every spec in `spec` with repositories at `revision`.
fn render_side(
    spec: &str,
    args: &DiffArgs,
    revision: RevisionChoice,
    shared: &Shared,
) -> Result<Side, CliError> {
    let specs = read_specs(
        spec,
        &args.sources.namespace,
        &args.sources.engine.limits.limits(),
    )?;
    let sources = args.sources.build(revision, shared);
    let (expansions, records) = render_all(
        &specs,
        sources.as_ref(),
        &args.sources.options(),
        || (),
        |_, _, manifest| serde_json::to_string(manifest).map_err(|e| e.to_string()),
        |_| {},
    )?;
    Ok(records
        .into_iter()
        .map(|r| {
            let origin = expansions[r.spec as usize]
                .origin(r.index as usize)
                .to_vec();
            (r.name, (r.item, origin))
        })
        .collect())
}

/// Runs the diff; returns the output and whether anything differs.
pub fn diff(args: &DiffArgs) -> Result<(String, bool), CliError> {
    let before_spec = args.from_spec.as_deref().unwrap_or(&args.spec);
    let before_rev = match &args.from {
        Some(r) => RevisionChoice::At(r.clone()),
        None => RevisionChoice::Spec,
    };
    let after_rev = match &args.to {
        Some(r) => RevisionChoice::At(r.clone()),
        None => RevisionChoice::WorkTree,
    };
    let shared = args.sources.shared()?;
    let before = render_side(before_spec, args, before_rev, &shared)?;
    let after = render_side(&args.spec, args, after_rev, &shared)?;

    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<&String> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, (v, _))| before.get(*k).is_some_and(|(b, _)| b != v))
        .map(|(k, _)| k)
        .collect();
    let unchanged = after.len() - added.len() - changed.len();
    let differs = !(added.is_empty() && removed.is_empty() && changed.is_empty());

    if removed.len() * 2 > before.len() && !removed.is_empty() {
        eprintln!(
            "warning: {}",
            shrink_warning(&before, &after, removed.len())
        );
    }

    let text = match args.output {
        DiffFormat::Json => {
            let parsed = |side: &Side, k: &str| -> Value {
                serde_json::from_str(&side[k].0).unwrap_or(Value::Null)
            };
            let out = json!({
                "added": added.iter().map(|k| parsed(&after, k)).collect::<Vec<_>>(),
                "removed": removed.iter().map(|k| parsed(&before, k)).collect::<Vec<_>>(),
                "changed": changed.iter().map(|k| json!({"name": k, "before": parsed(&before, k), "after": parsed(&after, k)})).collect::<Vec<_>>(),
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&out).unwrap_or_default()
            )
        }
        DiffFormat::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let paint = |code: &str, s: &str| {
                if color {
                    format!("\x1b[{code}m{s}\x1b[0m")
                } else {
                    s.to_string()
                }
            };
            let mut out = String::new();
            for k in &added {
                out.push_str(&paint("32", &format!("+ {k} (added)")));
                out.push('\n');
            }
            for k in &removed {
                out.push_str(&paint("31", &format!("- {k} (removed)")));
                out.push('\n');
            }
            for k in &changed {
                out.push_str(&paint("33", &format!("~ {k} (changed)")));
                out.push('\n');
                let a = yaml(&before[*k].0);
                let b = yaml(&after[*k].0);
                let udiff = similar::TextDiff::from_lines(&a, &b)
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("{k} (before)"), &format!("{k} (after)"))
                    .to_string();
                for line in udiff.lines() {
                    let code = match line.as_bytes().first() {
                        Some(b'+') if !line.starts_with("+++") => "32",
                        Some(b'-') if !line.starts_with("---") => "31",
                        Some(b'@') => "36",
                        _ => "",
                    };
                    out.push_str("    ");
                    out.push_str(&if code.is_empty() {
                        line.to_string()
                    } else {
                        paint(code, line)
                    });
                    out.push('\n');
                }
            }
            out.push_str(&format!(
                "+{} -{} ~{} (={} unchanged)\n",
                added.len(),
                removed.len(),
                changed.len(),
                unchanged
            ));
            out
        }
    };
    Ok((text, differs))
}

/// A side's JSON text as YAML, for the unified diff.
fn yaml(json: &str) -> String {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let mut s = String::new();
    crate::yaml::write_document(&mut s, &v);
    s
}

/// Names the generator whose output shrank the most.
fn shrink_warning(before: &Side, after: &Side, removed: usize) -> String {
    let count = |side: &Side| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for (_, gens) in side.values() {
            let unique: BTreeSet<&str> = gens.iter().map(|g| &**g).collect();
            for g in unique {
                *by.entry(g.to_string()).or_default() += 1;
            }
        }
        by
    };
    let (b, a) = (count(before), count(after));
    let worst = b
        .iter()
        .map(|(g, n)| (g, *n, a.get(g).copied().unwrap_or(0)))
        .max_by_key(|(_, n, m)| n.saturating_sub(*m));
    let cause = match worst {
        Some((g, n, m)) if n > m => format!("; {g} made {n} Applications before and {m} after"),
        _ => String::new(),
    };
    format!(
        "this change removes {removed} of {} Applications ({}%){cause}",
        before.len(),
        removed * 100 / before.len().max(1)
    )
}
