//! `spec.ignoreApplicationDifferences`: fields the controller leaves as they are
//! live (someone scaled a rollout by hand, an image updater bumped a tag).
//!
//! Paths are RFC 6901 JSON pointers or jq *paths*: `.a.b`, `.a["b.c"]`, `.a[0]`
//! and `.a[]` (every element). jq filters (`select(...)`, pipes, functions) are
//! refused with a message rather than run: a path language is what the field is
//! for, and a jq interpreter is a large dependency for the rare filter.

use prism_engine::model::IgnoreDifference;
use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
    /// Every array element (`[]`).
    All,
}

/// Reads an RFC 6901 pointer (`/spec/source/targetRevision`, `~1` for `/`, `~0` for `~`).
pub fn parse_pointer(pointer: &str) -> Result<Vec<Step>, String> {
    if pointer.is_empty() {
        return Err("an empty JSON pointer would ignore the whole Application".into());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {pointer:?} must start with /"))?;
    Ok(rest
        .split('/')
        .map(|s| {
            let s = s.replace("~1", "/").replace("~0", "~");
            match s.parse::<usize>() {
                Ok(i) if !s.starts_with('+') => Step::Index(i),
                _ => Step::Key(s),
            }
        })
        .collect())
}

/// Reads a jq path expression (`.spec.source.helm.parameters`, `.a["b"][0]`, `.a[]`).
pub fn parse_jq(expr: &str) -> Result<Vec<Step>, String> {
    let unsupported = || {
        format!(
            "jq expression {expr:?} is not a plain path; Prism supports .key, .[\"key\"], .[N] and .[] \
             (use jsonPointers for anything else)"
        )
    };
    let s = expr.trim();
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'.') {
        return Err(unsupported());
    }
    let mut steps = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => {
                i += 1;
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if i > start {
                    steps.push(Step::Key(s[start..i].to_string()));
                } else if bytes.get(i) != Some(&b'[') {
                    return Err(unsupported());
                }
            }
            b'[' => {
                let close = s[i..].find(']').ok_or_else(unsupported)? + i;
                let inner = s[i + 1..close].trim();
                if inner.is_empty() {
                    steps.push(Step::All);
                } else if let Some(key) = inner.strip_prefix('"').and_then(|k| k.strip_suffix('"'))
                {
                    if key.contains('"') {
                        return Err(unsupported());
                    }
                    steps.push(Step::Key(key.to_string()));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| unsupported())?));
                }
                i = close + 1;
            }
            _ => return Err(unsupported()),
        }
    }
    if steps.is_empty() {
        return Err("the jq path . would ignore the whole Application".into());
    }
    Ok(steps)
}

/// One `ignoreApplicationDifferences` entry with its paths parsed (once per pass,
/// not once per Application).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Only for the Application of this name (all when `None` or empty).
    pub name: Option<String>,
    /// Its JSON pointers and jq paths.
    pub paths: Vec<Vec<Step>>,
}

/// Parses every entry, named ones included; the error names the entry.
pub fn parse(rules: &[IgnoreDifference]) -> Result<Vec<Rule>, String> {
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let mut paths = Vec::new();
            for (j, p) in rule.json_pointers.iter().enumerate() {
                paths.push(parse_pointer(p).map_err(|e| {
                    format!("spec.ignoreApplicationDifferences[{i}].jsonPointers[{j}]: {e}")
                })?);
            }
            for (j, p) in rule.jq_path_expressions.iter().enumerate() {
                paths.push(parse_jq(p).map_err(|e| {
                    format!("spec.ignoreApplicationDifferences[{i}].jqPathExpressions[{j}]: {e}")
                })?);
            }
            Ok(Rule {
                name: rule.name.clone().filter(|n| !n.is_empty()),
                paths,
            })
        })
        .collect()
}

/// The paths that apply to the Application `name`.
pub fn paths_for<'a>(rules: &'a [Rule], name: &str) -> Vec<&'a Vec<Step>> {
    rules
        .iter()
        .filter(|r| r.name.as_deref().is_none_or(|n| n == name))
        .flat_map(|r| &r.paths)
        .collect()
}

/// Makes `desired` carry `live`'s value at every ignored path (or no value where
/// live has none), so applying it changes nothing there.
pub fn keep_live<P: AsRef<[Step]>>(desired: &mut Value, live: Option<&Value>, paths: &[P]) {
    for path in paths {
        keep_at(desired, live, path.as_ref());
    }
}

fn keep_at(desired: &mut Value, live: Option<&Value>, path: &[Step]) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    match step {
        Step::All => {
            if let Value::Array(items) = desired {
                for (i, item) in items.iter_mut().enumerate() {
                    keep_at(item, live.and_then(|l| l.get(i)), rest);
                }
            }
        }
        Step::Key(k) => {
            let Value::Object(map) = desired else { return };
            let live_child = live.and_then(|l| l.get(k));
            if rest.is_empty() {
                match live_child {
                    Some(v) => {
                        map.insert(k.clone(), v.clone());
                    }
                    None => {
                        map.remove(k);
                    }
                }
            } else if let Some(child) = map.get_mut(k) {
                keep_at(child, live_child, rest);
            } else if let Some(v) = live_child {
                // Desired has no such subtree: keep live's whole value at the ignored path.
                let mut fresh = Value::Object(Default::default());
                keep_at(&mut fresh, Some(v), rest);
                map.insert(k.clone(), fresh);
            }
        }
        Step::Index(i) => {
            let Value::Array(items) = desired else { return };
            let live_child = live.and_then(|l| l.get(*i));
            if rest.is_empty() {
                if let (Some(slot), Some(v)) = (items.get_mut(*i), live_child) {
                    *slot = v.clone();
                }
            } else if let Some(child) = items.get_mut(*i) {
                keep_at(child, live_child, rest);
            }
        }
    }
}

/// Removes every ignored path from `value` (so the applied-hash does not change
/// when only an ignored field's rendered value does).
pub fn strip<P: AsRef<[Step]>>(value: &mut Value, paths: &[P]) {
    for path in paths {
        keep_at(value, None, path.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_and_jq_paths_parse_to_the_same_steps() {
        let want = vec![
            Step::Key("spec".into()),
            Step::Key("source".into()),
            Step::Key("targetRevision".into()),
        ];
        assert_eq!(parse_pointer("/spec/source/targetRevision").unwrap(), want);
        assert_eq!(parse_jq(".spec.source.targetRevision").unwrap(), want);
        assert_eq!(parse_jq(".spec[\"source\"].targetRevision").unwrap(), want);
        assert_eq!(
            parse_pointer("/metadata/annotations/a~1b~0c").unwrap()[2],
            Step::Key("a/b~c".into())
        );
        assert_eq!(
            parse_jq(".spec.sources[].helm").unwrap(),
            vec![
                Step::Key("spec".into()),
                Step::Key("sources".into()),
                Step::All,
                Step::Key("helm".into())
            ]
        );
        assert_eq!(parse_jq(".a[0]").unwrap()[1], Step::Index(0));
    }

    #[test]
    fn filters_and_empty_paths_are_refused_with_the_alternative() {
        for bad in [
            ".spec | select(.x)",
            "spec.source",
            ".",
            ".a[\"b",
            ".spec.sources[] | .helm",
        ] {
            let e = parse_jq(bad).unwrap_err();
            assert!(
                e.contains("not a plain path") || e.contains("whole"),
                "{bad}: {e}"
            );
        }
        assert!(parse_pointer("").is_err());
        assert!(parse_pointer("spec")
            .unwrap_err()
            .contains("must start with /"));
    }

    #[test]
    fn live_values_are_kept_at_ignored_paths_and_only_there() {
        let live = json!({"spec": {"source": {"targetRevision": "hand-picked", "path": "old"},
                                    "syncPolicy": {"automated": {}}}});
        let mut desired = json!({"spec": {"source": {"targetRevision": "main", "path": "new"}}});
        let paths = vec![
            parse_pointer("/spec/source/targetRevision").unwrap(),
            parse_jq(".spec.syncPolicy").unwrap(),
        ];
        keep_live(&mut desired, Some(&live), &paths);
        assert_eq!(
            desired,
            json!({"spec": {"source": {"targetRevision": "hand-picked", "path": "new"},
                            "syncPolicy": {"automated": {}}}})
        );
        // Live lacks the field: desired drops it too (nothing to overwrite).
        let mut desired = json!({"spec": {"source": {"targetRevision": "main"}}});
        keep_live(
            &mut desired,
            Some(&json!({"spec": {"source": {}}})),
            &paths[..1],
        );
        assert_eq!(desired, json!({"spec": {"source": {}}}));
    }

    #[test]
    fn every_element_and_rule_names_apply() {
        let live = json!({"spec": {"sources": [{"targetRevision": "a"}, {"targetRevision": "b"}]}});
        let mut desired =
            json!({"spec": {"sources": [{"targetRevision": "x"}, {"targetRevision": "y"}]}});
        keep_live(
            &mut desired,
            Some(&live),
            &[parse_jq(".spec.sources[].targetRevision").unwrap()],
        );
        assert_eq!(desired, live);

        let rules = vec![
            IgnoreDifference {
                name: Some("only-this".into()),
                json_pointers: vec!["/spec/a".into()],
                jq_path_expressions: vec![],
            },
            IgnoreDifference {
                name: None,
                json_pointers: vec![],
                jq_path_expressions: vec![".spec.b".into()],
            },
        ];
        let rules = parse(&rules).unwrap();
        assert_eq!(paths_for(&rules, "only-this").len(), 2);
        assert_eq!(paths_for(&rules, "other").len(), 1);
        let bad = vec![IgnoreDifference {
            name: None,
            json_pointers: vec![],
            jq_path_expressions: vec!["select(.x)".into()],
        }];
        assert!(parse(&bad)
            .unwrap_err()
            .starts_with("spec.ignoreApplicationDifferences[0].jqPathExpressions[0]"));
    }
}
