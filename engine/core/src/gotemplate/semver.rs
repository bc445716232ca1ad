//! Semantic versions and constraints with Masterminds/semver v3's rules, for sprig's
//! `semver` and `semverCompare`.
//!
//! Versions may have a `v` prefix and omit minor/patch (`1.2` is `1.2.0`). Constraints:
//! `=`, `!=`, `>`, `<`, `>=`, `<=`, `~` (patch-level, or minor when only a major is given),
//! `^` (same major; same minor below 1.0), wildcards (`1.2.x`, `*`), hyphen ranges
//! (`1.2 - 1.4.5`), `,` or space for AND, `||` for OR. As in Masterminds, a pre-release
//! version matches only a constraint that carries a pre-release.

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Pre-release (after `-`).
    pub pre: String,
    /// Build metadata (after `+`).
    pub build: String,
}

impl Version {
    /// Parses `1`, `1.2`, `v1.2.3`, `1.2.3-rc.1+build`.
    pub fn parse(s: &str) -> Result<Version, String> {
        let t = s.trim().trim_start_matches(['v', 'V']);
        let (rest, build) = t.split_once('+').unwrap_or((t, ""));
        let (core, pre) = rest.split_once('-').unwrap_or((rest, ""));
        let parts: Vec<&str> = core.split('.').collect();
        if parts.is_empty()
            || parts.len() > 3
            || parts
                .iter()
                .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("invalid semantic version: {s:?}"));
        }
        let n = |i: usize| {
            parts
                .get(i)
                .map(|p| p.parse::<u64>().unwrap_or(0))
                .unwrap_or(0)
        };
        Ok(Version {
            major: n(0),
            minor: n(1),
            patch: n(2),
            pre: pre.to_string(),
            build: build.to_string(),
        })
    }

    /// Semantic-version precedence (build metadata ignored).
    pub fn cmp_version(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(&self.pre, &other.pre))
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in a.split('.').zip(b.split('.')) {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.split('.').count().cmp(&b.split('.').count())
        }
    }
}

#[derive(Debug, Clone)]
struct Cmp {
    op: &'static str,
    v: Version,
}

/// A constraint: OR of ANDs of comparisons.
#[derive(Debug, Clone)]
pub struct Constraint {
    any: Vec<Vec<Cmp>>,
    has_pre: bool,
}

/// A partial version with wildcards: how many leading parts were given.
fn partial(s: &str) -> Result<(Version, usize), String> {
    let t = s.trim().trim_start_matches(['v', 'V']);
    if t.is_empty() || t == "*" || t == "x" || t == "X" {
        return Ok((Version::parse("0.0.0")?, 0));
    }
    let (core, suffix) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let given = parts
        .iter()
        .take_while(|p| !matches!(**p, "x" | "X" | "*"))
        .count();
    let concrete: Vec<&str> = parts[..given].to_vec();
    let mut text = if concrete.is_empty() {
        "0".to_string()
    } else {
        concrete.join(".")
    };
    if given == parts.len() {
        text.push_str(suffix);
    }
    Ok((Version::parse(&text)?, given))
}

fn bump(v: &Version, level: usize) -> Version {
    match level {
        0 => Version {
            major: v.major + 1,
            minor: 0,
            patch: 0,
            pre: String::new(),
            build: String::new(),
        },
        1 => Version {
            major: v.major,
            minor: v.minor + 1,
            patch: 0,
            pre: String::new(),
            build: String::new(),
        },
        _ => Version {
            major: v.major,
            minor: v.minor,
            patch: v.patch + 1,
            pre: String::new(),
            build: String::new(),
        },
    }
}

impl Constraint {
    /// Parses a constraint string.
    pub fn parse(s: &str) -> Result<Constraint, String> {
        let mut any = Vec::new();
        let has_pre = s.contains('-')
            && s.split("||").any(|p| {
                p.split([',', ' ']).any(|t| {
                    let t = t.trim_start_matches(|c: char| "<>=!~^".contains(c));
                    t.contains('-') && !t.is_empty() && t != "-"
                })
            });
        for alt in s.split("||") {
            let mut all = Vec::new();
            // Hyphen ranges first: "a - b".
            let alt = alt.trim();
            let tokens: Vec<String> = {
                let raw: Vec<&str> = alt.split([',', ' ']).filter(|t| !t.is_empty()).collect();
                let mut out = Vec::new();
                let mut i = 0;
                while i < raw.len() {
                    if raw.get(i + 1) == Some(&"-") && i + 2 < raw.len() {
                        out.push(format!(">={}", raw[i]));
                        let (hi, given) = partial(raw[i + 2])?;
                        if given < 3 && given > 0 {
                            out.push(format!("<{}", fmt(&bump(&hi, given - 1))));
                        } else {
                            out.push(format!("<={}", raw[i + 2]));
                        }
                        i += 3;
                    } else {
                        out.push(raw[i].to_string());
                        i += 1;
                    }
                }
                out
            };
            for tok in tokens {
                let (op, ver) = ["!=", ">=", "<=", "=>", "=<", ">", "<", "=", "~>", "~", "^"]
                    .iter()
                    .find_map(|op| tok.strip_prefix(op).map(|v| (*op, v)))
                    .unwrap_or(("", tok.as_str()));
                let (v, given) = partial(ver)?;
                let mut push = |op: &'static str, v: Version| all.push(Cmp { op, v });
                match op {
                    "~" | "~>" => {
                        push(">=", v.clone());
                        push("<", bump(&v, if given <= 1 { 0 } else { 1 }));
                    }
                    "^" => {
                        push(">=", v.clone());
                        let level = if v.major > 0 || given <= 1 {
                            0
                        } else if v.minor > 0 || given == 2 {
                            1
                        } else {
                            2
                        };
                        push("<", bump(&v, level));
                    }
                    "" | "=" if given < 3 => {
                        if given > 0 {
                            push(">=", v.clone());
                            push("<", bump(&v, given - 1));
                        }
                    }
                    "" | "=" => push("=", v),
                    "!=" => push("!=", v),
                    ">" if given < 3 && given > 0 => push(">=", bump(&v, given - 1)),
                    ">" => push(">", v),
                    "<" => push("<", v),
                    ">=" | "=>" => push(">=", v),
                    "<=" | "=<" if given < 3 && given > 0 => push("<", bump(&v, given - 1)),
                    _ => push("<=", v),
                }
            }
            any.push(all);
        }
        Ok(Constraint { any, has_pre })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        if !v.pre.is_empty() && !self.has_pre {
            return false;
        }
        self.any.iter().any(|all| {
            all.iter().all(|c| {
                let o = v.cmp_version(&c.v);
                match c.op {
                    "=" => o == Ordering::Equal,
                    "!=" => o != Ordering::Equal,
                    ">" => o == Ordering::Greater,
                    "<" => o == Ordering::Less,
                    ">=" => o != Ordering::Less,
                    _ => o != Ordering::Greater,
                }
            })
        })
    }
}

fn fmt(v: &Version) -> String {
    format!("{}.{}.{}", v.major, v.minor, v.patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_as_masterminds() {
        let cases = [
            (">=1.2.3", "1.2.3", true),
            (">1.2.3", "1.2.3", false),
            ("~1.2.3", "1.2.9", true),
            ("~1.2.3", "1.3.0", false),
            ("~1", "1.9.0", true),
            ("^1.2.3", "1.9.9", true),
            ("^1.2.3", "2.0.0", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("1.2.x", "1.2.7", true),
            ("1.2.x", "1.3.0", false),
            ("*", "4.5.6", true),
            (">=1.0, <2.0", "1.5.0", true),
            (">=1.0 <2.0", "2.0.0", false),
            ("<1.0 || >=3.0", "3.1.0", true),
            ("1.2 - 1.4.5", "1.4.5", true),
            ("1.2 - 1.4.5", "1.4.6", false),
            (">=1.2.0", "1.3.0-rc.1", false),
            (">=1.2.0-0", "1.3.0-rc.1", true),
            ("!=1.2.3", "v1.2.4", true),
        ];
        for (c, v, want) in cases {
            let got = Constraint::parse(c)
                .unwrap()
                .matches(&Version::parse(v).unwrap());
            assert_eq!(got, want, "{c} vs {v}");
        }
        assert!(Version::parse("1.x").is_err());
    }
}
