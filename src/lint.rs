//! `prism lint`: the engine's static checks, reported as `file:line:col rule message`.
//!
//! Positions come from a small locator that follows a spec path through the block-style
//! YAML text (keys and `- ` items by indentation); in flow-style YAML it stops at the
//! nearest enclosing key it can see.

use crate::input::SpecDoc;
use crate::CliError;

/// Finds the 1-based (line, column) of `path` (`spec.generators[0].git.repoURL`) in the
/// document whose text is `lines`; `None` parts fall back to the nearest found ancestor.
pub fn locate(lines: &[&str], path: &str) -> (usize, usize) {
    let mut segs: Vec<Result<&str, usize>> = Vec::new();
    for part in path.split('.') {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            segs.push(Ok(key));
        }
        for idx in rest.split('[') {
            if let Some(n) = idx
                .trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .filter(|_| !idx.is_empty())
            {
                segs.push(Err(n));
            }
        }
    }
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let mut best = (1, 1);
    let mut line = 0usize;
    let mut parent: isize = -1;
    let mut inclusive = false;
    for seg in segs {
        let start = if inclusive { line } else { line + 1 };
        let found = match seg {
            Ok(key) => {
                let mut hit = None;
                for (i, l) in lines
                    .iter()
                    .enumerate()
                    .skip(if best == (1, 1) && parent < 0 {
                        0
                    } else {
                        start
                    })
                {
                    let t = l.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    let ind = indent_of(l) as isize;
                    if ind <= parent && !(inclusive && i == line) {
                        break;
                    }
                    // Strip "- " item markers before the key.
                    let mut col = ind as usize;
                    let mut body = t;
                    while let Some(b) = body.strip_prefix("- ") {
                        body = b.trim_start();
                        col = l.len() - body.len();
                    }
                    let matches = [
                        format!("{key}:"),
                        format!("\"{key}\":"),
                        format!("'{key}':"),
                    ]
                    .iter()
                    .any(|p| body.starts_with(p.as_str()));
                    if matches {
                        hit = Some((i, col));
                        break;
                    }
                }
                hit.map(|(i, col)| (i, col, col as isize, false))
            }
            Err(n) => {
                let mut count = 0;
                let mut item_indent = None;
                let mut hit = None;
                for (i, l) in lines.iter().enumerate().skip(start) {
                    let t = l.trim_start();
                    if t.is_empty() || t.starts_with('#') {
                        continue;
                    }
                    let ind = indent_of(l);
                    if (ind as isize) < parent || (ind as isize == parent && !t.starts_with("- ")) {
                        break;
                    }
                    if t.starts_with("- ") || t == "-" {
                        let want = *item_indent.get_or_insert(ind);
                        if ind == want {
                            if count == n {
                                hit = Some((i, ind));
                                break;
                            }
                            count += 1;
                        }
                    }
                }
                hit.map(|(i, ind)| (i, ind + 2, ind as isize, true))
            }
        };
        match found {
            Some((i, col, new_parent, incl)) => {
                line = i;
                parent = new_parent;
                inclusive = incl;
                best = (i + 1, col + 1);
            }
            None => break,
        }
    }
    best
}

/// Lints every spec; returns the report and the number of findings. `evidence` (the
/// `--clusters` and `--repo` given) lets `empty-matrix-child` expand children.
pub fn lint(
    specs: &[SpecDoc],
    evidence: Option<&dyn prism_engine::Sources>,
) -> Result<(String, usize), CliError> {
    let mut out = String::new();
    let mut count = 0;
    for spec in specs {
        let lines: Vec<&str> = spec.text.lines().collect();
        for f in prism_engine::lint::lint_with(&spec.appset, evidence) {
            let (line, col) = locate(&lines, &f.path);
            out.push_str(&format!(
                "{}:{}:{} {} {}: {}\n",
                spec.file,
                line + spec.first_line - 1,
                col,
                f.rule,
                f.path,
                f.message
            ));
            count += 1;
        }
    }
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn follows_keys_and_items() {
        let text = "apiVersion: x\nspec:\n  generators:\n  - list:\n      elements: []\n  - git:\n      repoURL: r\n  template:\n    spec:\n      project: '{{p}}'\n";
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(locate(&lines, "spec.template.spec.project"), (10, 7));
        assert_eq!(locate(&lines, "spec.generators[1].git.repoURL"), (7, 7));
        assert_eq!(locate(&lines, "spec.generators[1]"), (6, 5));
        assert_eq!(locate(&lines, "spec.generators[0].list"), (4, 5));
        assert_eq!(locate(&lines, "spec.nothing"), (2, 1));
    }
}
