//! Path globs with the three dialects Argo CD's git generators use.
//!
//! Argo matches git directories with Go's `path.Match`, git files with
//! `git ls-files` pathspecs by default and with `doublestar` when the new file
//! globbing is on. The three differ in what `*` and `**` may cross, so one small
//! matcher takes the dialect as a parameter rather than bending a general glob crate.

/// Which glob dialect a pattern is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Go's `path.Match` (git directories): `*` and `?` never match `/`.
    PathMatch,
    /// `git ls-files` pathspecs (git files, Argo's default): `*` matches across `/`; a
    /// pattern without wildcards also matches every path below it.
    GitPathspec,
    /// `doublestar` (git files with `--git-file-globbing new`): `*` stays inside one
    /// path segment, a whole-segment `**` matches zero or more directories.
    Doublestar,
}

/// How `files[].path` patterns are read: Argo's default or its newer doublestar mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileGlobbing {
    /// `git ls-files` pathspecs: `*` and `**` match across `/`.
    #[default]
    Default,
    /// doublestar: `*` within one segment, `**` zero or more directories.
    New,
}

/// A malformed pattern (an unclosed `[` or a trailing `\`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob pattern {pattern:?}: {reason}")]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The longest pattern accepted: matching recurses once per run of stars.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// A pattern checked once, matched many times.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    dialect: Dialect,
    literal: bool,
}

impl Glob {
    /// Checks `pattern` in `dialect`.
    pub fn new(pattern: &str, dialect: Dialect) -> Result<Glob, GlobError> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(GlobError {
                pattern: format!("{}…", pattern.chars().take(64).collect::<String>()),
                reason: "it is longer than 1024 bytes",
            });
        }
        check(pattern)?;
        let literal = !pattern
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
        Ok(Glob {
            pattern: pattern.to_string(),
            dialect,
            literal,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `path` (relative, `/`-separated) matches.
    pub fn matches(&self, path: &str) -> bool {
        if self.dialect == Dialect::GitPathspec && self.literal {
            let spec = self.pattern.trim_end_matches('/');
            return spec.is_empty()
                || spec == "."
                || path == spec
                || (path.starts_with(spec) && path.as_bytes().get(spec.len()) == Some(&b'/'));
        }
        match_from(self.pattern.as_bytes(), path.as_bytes(), self.dialect)
    }
}

fn check(pattern: &str) -> Result<(), GlobError> {
    let b = pattern.as_bytes();
    let err = |reason| GlobError {
        pattern: pattern.to_string(),
        reason,
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 1 >= b.len() {
                    return Err(err("it ends with a lone '\\'"));
                }
                i += 2;
            }
            b'[' => match class_end(b, i) {
                Some(end) => i = end + 1,
                None => return Err(err("a '[' is never closed by ']'")),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class that opens at `start`.
fn class_end(p: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < p.len() && (p[i] == b'^' || p[i] == b'!') {
        i += 1;
    }
    // A ']' right after the opening (or negation) is literal.
    if i < p.len() && p[i] == b']' {
        i += 1;
    }
    while i < p.len() {
        match p[i] {
            b'\\' => i += 2,
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Whether byte `c` is in the class `p[start..=end]`.
fn class_matches(p: &[u8], start: usize, end: usize, c: u8) -> bool {
    let mut i = start + 1;
    let negated = i < end && (p[i] == b'^' || p[i] == b'!');
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while i < end && (first || p[i] != b']') {
        first = false;
        let mut lo = p[i];
        if lo == b'\\' && i + 1 < end {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if i + 2 < end && p[i + 1] == b'-' && p[i + 2] != b']' {
            hi = p[i + 2];
            if hi == b'\\' && i + 3 < end {
                hi = p[i + 3];
                i += 1;
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            found = true;
        }
        i += 1;
    }
    found != negated
}

/// Matches `s` against `p` with memoized backtracking: each (pattern position, path
/// position) state fails at most once, so a pattern full of stars stays polynomial
/// (plain backtracking was exponential: `*?*?*-*?*?*-` against a long path).
fn match_from(p: &[u8], s: &[u8], d: Dialect) -> bool {
    // One run of stars cannot blow up; the memo is only needed (and paid for) past that.
    let star_runs = p
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'*' && (i == 0 || p[i - 1] != b'*'))
        .count();
    let cells = if star_runs > 1 {
        (p.len() + 1) * (s.len() + 1)
    } else {
        0
    };
    let mut m = Matcher {
        p,
        s,
        d,
        failed: vec![0; cells.div_ceil(64)],
    };
    m.at(0, 0)
}

struct Matcher<'a> {
    p: &'a [u8],
    s: &'a [u8],
    d: Dialect,
    /// Failed (pattern, path) positions, one bit each (empty: no memo needed).
    failed: Vec<u64>,
}

impl Matcher<'_> {
    fn at(&mut self, pi: usize, si: usize) -> bool {
        let cell = pi * (self.s.len() + 1) + si;
        let (word, bit) = (cell / 64, 1u64 << (cell % 64));
        if self.failed.get(word).is_some_and(|w| w & bit != 0) {
            return false;
        }
        let ok = self.step(pi, si);
        if !ok {
            if let Some(w) = self.failed.get_mut(word) {
                *w |= bit;
            }
        }
        ok
    }

    fn step(&mut self, mut pi: usize, mut si: usize) -> bool {
        let (p, s, d) = (self.p, self.s, self.d);
        let crosses = d == Dialect::GitPathspec;
        while pi < p.len() {
            match p[pi] {
                b'*' => {
                    let at_segment_start = pi == 0 || p[pi - 1] == b'/';
                    let double = p.get(pi + 1) == Some(&b'*');
                    if d == Dialect::Doublestar && double && at_segment_start {
                        let after = pi + 2;
                        if after == p.len() {
                            return true;
                        }
                        if p[after] == b'/' {
                            // Zero directories, or skip whole segments one at a time.
                            if self.at(after + 1, si) {
                                return true;
                            }
                            for (k, &c) in s.iter().enumerate().skip(si) {
                                if c == b'/' && self.at(after + 1, k + 1) {
                                    return true;
                                }
                            }
                            return false;
                        }
                    }
                    // Collapse a run of stars, then try every split point.
                    let mut next = pi;
                    while next < p.len() && p[next] == b'*' {
                        next += 1;
                    }
                    let mut k = si;
                    loop {
                        if self.at(next, k) {
                            return true;
                        }
                        if k == s.len() || (!crosses && s[k] == b'/') {
                            return false;
                        }
                        k += 1;
                    }
                }
                b'?' => {
                    if si >= s.len() || (!crosses && s[si] == b'/') {
                        return false;
                    }
                    pi += 1;
                    si += 1;
                }
                b'[' => {
                    let Some(end) = class_end(p, pi) else {
                        return false;
                    };
                    if si >= s.len()
                        || (!crosses && s[si] == b'/')
                        || !class_matches(p, pi, end, s[si])
                    {
                        return false;
                    }
                    pi = end + 1;
                    si += 1;
                }
                c => {
                    let c = if c == b'\\' && pi + 1 < p.len() {
                        pi += 1;
                        p[pi]
                    } else {
                        c
                    };
                    if si >= s.len() || s[si] != c {
                        return false;
                    }
                    pi += 1;
                    si += 1;
                }
            }
        }
        si == s.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, d: Dialect, s: &str) -> bool {
        Glob::new(p, d).unwrap().matches(s)
    }

    /// Found by fuzzing: plain backtracking was exponential in the number of stars.
    #[test]
    fn many_stars_match_in_polynomial_time() {
        let pattern = "*?*?*-".repeat(30) + "x";
        let path = "ab-".repeat(200);
        for d in [
            Dialect::PathMatch,
            Dialect::GitPathspec,
            Dialect::Doublestar,
        ] {
            let start = std::time::Instant::now();
            assert!(!m(&pattern, d, &path));
            assert!(
                start.elapsed().as_secs() < 5,
                "{d:?}: {:?}",
                start.elapsed()
            );
        }
        assert!(m(&"**/".repeat(40), Dialect::Doublestar, &"a/".repeat(40)));
        assert_eq!(
            Glob::new(&"*".repeat(2000), Dialect::PathMatch)
                .unwrap_err()
                .reason,
            "it is longer than 1024 bytes"
        );
    }

    #[test]
    fn path_match_star_stays_in_segment() {
        assert!(m("apps/*", Dialect::PathMatch, "apps/api"));
        assert!(!m("apps/*", Dialect::PathMatch, "apps/api/v1"));
        assert!(m("*/*", Dialect::PathMatch, "apps/api"));
        assert!(!m("apps", Dialect::PathMatch, "apps/api"));
        assert!(m("apps/[a-c]pi", Dialect::PathMatch, "apps/api"));
        assert!(!m("apps/[^a]pi", Dialect::PathMatch, "apps/api"));
        assert!(m("a?c", Dialect::PathMatch, "abc"));
        assert!(!m("a?c", Dialect::PathMatch, "a/c"));
    }

    #[test]
    fn git_pathspec_star_crosses_slash_and_literal_matches_below() {
        assert!(m(
            "apps/*.yaml",
            Dialect::GitPathspec,
            "apps/a/b/config.yaml"
        ));
        assert!(m(
            "apps/**/config.json",
            Dialect::GitPathspec,
            "apps/x/config.json"
        ));
        assert!(!m(
            "apps/**/config.json",
            Dialect::GitPathspec,
            "apps/config.json"
        ));
        assert!(m("apps", Dialect::GitPathspec, "apps/x/config.json"));
        assert!(!m("apps", Dialect::GitPathspec, "apps2/x.json"));
        assert!(m("config.json", Dialect::GitPathspec, "config.json"));
    }

    #[test]
    fn doublestar_matches_zero_or_more_directories() {
        let d = Dialect::Doublestar;
        assert!(m("**/values-*.yaml", d, "values-prod.yaml"));
        assert!(m("**/values-*.yaml", d, "svc/a/values-prod.yaml"));
        assert!(!m("apps/*.yaml", d, "apps/a/b.yaml"));
        assert!(m("apps/**/config.json", d, "apps/config.json"));
        assert!(m("apps/**/config.json", d, "apps/a/b/config.json"));
        assert!(m("apps/**", d, "apps/a/b/c"));
        assert!(!m("apps/**/c.json", d, "other/c.json"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        let e = Glob::new("apps/[a-", Dialect::PathMatch).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid glob pattern \"apps/[a-\": a '[' is never closed by ']'"
        );
        assert!(Glob::new("x\\", Dialect::Doublestar).is_err());
    }
}
