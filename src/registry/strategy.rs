//! Choosing a tag, as Argo CD Image Updater 1.x does: filters first (`allowTags`,
//! `ignoreTags`), then the strategy. Pure functions over tag lists.

use prism_engine::generators::images::ImageQuery;
use prism_engine::glob::{Dialect, Glob};
use prism_engine::gotemplate::semver::{Constraint, Version};
use std::cmp::Ordering;

/// The tags `query` may consider, in their original order.
pub fn allowed<'a>(query: &ImageQuery, tags: &'a [String]) -> Result<Vec<&'a str>, String> {
    let allow = match query.allow_tags.as_deref() {
        None | Some("any") => None,
        Some(spec) => {
            let re = spec.strip_prefix("regexp:").unwrap_or(spec);
            Some(regex::Regex::new(re).map_err(|e| format!("allowTags {spec:?}: {e}"))?)
        }
    };
    let ignore = query
        .ignore_tags
        .iter()
        .map(|g| Glob::new(g, Dialect::PathMatch).map_err(|e| format!("ignoreTags: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tags
        .iter()
        .map(String::as_str)
        .filter(|t| allow.as_ref().is_none_or(|re| re.is_match(t)))
        .filter(|t| !ignore.iter().any(|g| g.matches(t)))
        .collect())
}

/// `semver`: the highest version within the constraint; tags that do not parse are
/// skipped; pre-releases only when the constraint carries one; ties by original string.
pub fn semver<'a>(tags: &[&'a str], constraint: &str) -> Result<Option<&'a str>, String> {
    let constraint = if constraint.is_empty() {
        None
    } else {
        Some(Constraint::parse(constraint).map_err(|e| format!("constraint {constraint:?}: {e}"))?)
    };
    let mut best: Option<(Version, &str)> = None;
    for tag in tags {
        let Ok(v) = Version::parse(tag) else { continue };
        let ok = match &constraint {
            Some(c) => c.matches(&v),
            None => v.pre.is_empty(),
        };
        if !ok {
            continue;
        }
        let better = match &best {
            None => true,
            Some((b, bt)) => match v.cmp_version(b) {
                Ordering::Greater => true,
                Ordering::Equal => *tag > *bt,
                Ordering::Less => false,
            },
        };
        if better {
            best = Some((v, tag));
        }
    }
    Ok(best.map(|(_, t)| t))
}

/// `alphabetical`: the last tag in byte order.
pub fn alphabetical<'a>(tags: &[&'a str]) -> Option<&'a str> {
    tags.iter().copied().max()
}

/// `newest-build`: the tag whose image was created last (RFC 3339 `created`); ties by name.
pub fn newest<'a>(tags: &[(&'a str, String)]) -> Option<&'a str> {
    tags.iter()
        .max_by(|a, b| created_key(&a.1).cmp(&created_key(&b.1)).then(a.0.cmp(b.0)))
        .map(|(t, _)| *t)
}

/// RFC 3339 times compare as strings once the fraction is normalised and the zone is `Z`.
fn created_key(created: &str) -> String {
    let (main, zone) = match created.find(['Z', 'z', '+']) {
        Some(i) => created.split_at(i),
        None => (created, ""),
    };
    let (secs, frac) = main.split_once('.').unwrap_or((main, ""));
    format!("{secs}.{frac:0<9}{zone}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::generators::images::Strategy;

    fn query(allow: Option<&str>, ignore: &[&str]) -> ImageQuery {
        ImageQuery {
            alias: "a".into(),
            name: "r/x".into(),
            strategy: Strategy::Semver,
            constraint: String::new(),
            allow_tags: allow.map(String::from),
            ignore_tags: ignore.iter().map(|s| s.to_string()).collect(),
            platforms: vec![],
        }
    }

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters() {
        let all = tags(&["main-1", "main-2-debug", "pr-3", "1.0.0"]);
        assert_eq!(
            allowed(&query(Some("regexp:^main-"), &["*-debug"]), &all).unwrap(),
            ["main-1"]
        );
        assert_eq!(allowed(&query(None, &[]), &all).unwrap().len(), 4);
        assert!(allowed(&query(Some("regexp:("), &[]), &all)
            .unwrap_err()
            .starts_with("allowTags"));
    }

    #[test]
    fn semver_picks_highest_in_range_and_skips_prereleases_unless_asked() {
        let t = [
            "1.3.9",
            "1.4.0",
            "1.4.7",
            "1.5.0",
            "1.4.8-rc.1",
            "latest",
            "v1.4.7",
        ];
        assert_eq!(
            semver(&t, "~1.4").unwrap(),
            Some("v1.4.7"),
            "tie by original string"
        );
        assert_eq!(semver(&t, "").unwrap(), Some("1.5.0"));
        assert_eq!(semver(&t, ">=1.4.8-rc.0 <1.5").unwrap(), Some("1.4.8-rc.1"));
        assert_eq!(semver(&t, "~2").unwrap(), None);
        assert!(semver(&t, "~one").is_err());
    }

    #[test]
    fn alphabetical_and_newest() {
        assert_eq!(
            alphabetical(&["main-a", "main-c", "main-b"]),
            Some("main-c")
        );
        let t = [
            ("a", "2026-01-01T00:00:00Z".to_string()),
            ("b", "2026-01-01T00:00:00.5Z".to_string()),
            ("c", "2025-12-31T23:59:59Z".to_string()),
        ];
        assert_eq!(newest(&t), Some("b"));
        let tie = [
            ("x", "2026-01-01T00:00:00Z".to_string()),
            ("y", "2026-01-01T00:00:00Z".to_string()),
        ];
        assert_eq!(newest(&tie), Some("y"));
    }
}
