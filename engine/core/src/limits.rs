//! What one ApplicationSet render may cost, and the YAML and file guards in front of it.
//!
//! Whoever may create an ApplicationSet may be a tenant, so every size, loop and
//! recursion a spec controls has a limit here. The checks count rather than measure
//! (a step counter, lengths of what is built), so they cost next to nothing on real
//! specs. The admin sets the limits (CLI and controller flags); a spec never can.
//! Going over one is an error that names the limit, its value and the flag that
//! raises it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The limits of one ApplicationSet render, and of the files and YAML documents Prism reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one templated field (or one value built by a template) may have.
    pub field_bytes: usize,
    /// Bytes of templated text one Application may have, all fields together.
    pub application_bytes: usize,
    /// Template execution steps (executed nodes, range iterations, function calls and
    /// the elements they walk) in one ApplicationSet render, all templates together.
    pub steps: u64,
    /// Parameter sets one ApplicationSet may produce (checked before a matrix product is built).
    pub parameter_sets: usize,
    /// Nesting of template control structures and parentheses, and depth of
    /// `template` calls, handlebars blocks and values built by templates.
    pub depth: usize,
    /// Compiled size of one regular expression, in bytes.
    pub regex_bytes: usize,
    /// The count and length arguments of `repeat`, `until`, `untilStep`, `seq`, `indent`,
    /// `nindent`, `randAlpha…` and printf widths and precisions; elements of a list a template builds.
    pub count: usize,
    /// Bytes of one YAML or JSON document Prism parses (spec, clusters, git files, `fromYaml`).
    pub yaml_bytes: usize,
    /// Nesting of one YAML or JSON document.
    pub yaml_depth: usize,
    /// Bytes of one file Prism reads (specs, clusters, plugins, settings).
    pub file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            field_bytes: 1 << 20,
            application_bytes: 4 << 20,
            steps: 50_000_000,
            parameter_sets: 100_000,
            depth: 100,
            regex_bytes: 1 << 20,
            count: 1_000_000,
            yaml_bytes: 16 << 20,
            yaml_depth: 100,
            file_bytes: 64 << 20,
        }
    }
}

/// How a limit is named in errors: its meaning and the flag that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::field_bytes`].
    FieldBytes,
    /// [`Limits::application_bytes`].
    ApplicationBytes,
    /// [`Limits::steps`].
    Steps,
    /// [`Limits::parameter_sets`].
    ParameterSets,
    /// [`Limits::depth`].
    Depth,
    /// [`Limits::regex_bytes`].
    RegexBytes,
    /// [`Limits::count`].
    Count,
    /// [`Limits::yaml_bytes`].
    YamlBytes,
    /// [`Limits::yaml_depth`].
    YamlDepth,
    /// [`Limits::file_bytes`].
    FileBytes,
}

impl Limit {
    /// What the limit bounds, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Limit::FieldBytes => "bytes in one templated field",
            Limit::ApplicationBytes => "templated bytes in one Application",
            Limit::Steps => "template execution steps in one ApplicationSet render",
            Limit::ParameterSets => "parameter sets in one ApplicationSet",
            Limit::Depth => "template nesting depth",
            Limit::RegexBytes => "compiled size of a regular expression",
            Limit::Count => "count or length argument",
            Limit::YamlBytes => "bytes in one YAML document",
            Limit::YamlDepth => "nesting depth of one YAML document",
            Limit::FileBytes => "bytes in one file",
        }
    }

    /// The command-line flag (of `prism generate`, `diff` and `controller`) that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::FieldBytes => "--max-field-bytes",
            Limit::ApplicationBytes => "--max-application-bytes",
            Limit::Steps => "--max-template-steps",
            Limit::ParameterSets => "--max-parameter-sets",
            Limit::Depth => "--max-template-depth",
            Limit::RegexBytes => "--max-regex-bytes",
            Limit::Count => "--max-template-count",
            Limit::YamlBytes => "--max-yaml-bytes",
            Limit::YamlDepth => "--max-yaml-depth",
            Limit::FileBytes => "--max-file-bytes",
        }
    }

    /// This limit's value in `limits`.
    pub fn value(self, limits: &Limits) -> u64 {
        match self {
            Limit::FieldBytes => limits.field_bytes as u64,
            Limit::ApplicationBytes => limits.application_bytes as u64,
            Limit::Steps => limits.steps,
            Limit::ParameterSets => limits.parameter_sets as u64,
            Limit::Depth => limits.depth as u64,
            Limit::RegexBytes => limits.regex_bytes as u64,
            Limit::Count => limits.count as u64,
            Limit::YamlBytes => limits.yaml_bytes as u64,
            Limit::YamlDepth => limits.yaml_depth as u64,
            Limit::FileBytes => limits.file_bytes,
        }
    }

    /// The error text for going over this limit.
    pub fn exceeded(self, limits: &Limits) -> String {
        format!(
            "over the limit of {} {} (an admin can raise it with {})",
            self.value(limits),
            self.what(),
            self.flag()
        )
    }
}

/// The running cost of one ApplicationSet render: the limits and the steps left.
///
/// Renderers on several threads share one render's steps: each draws them from the
/// shared pool in batches, so the total stays [`Limits::steps`] however the work is split.
#[derive(Debug)]
pub struct Budget {
    /// The limits in force.
    pub limits: Limits,
    /// Steps drawn from the pool and not spent yet.
    local: Cell<u64>,
    /// Steps nobody has drawn yet.
    pool: Arc<AtomicU64>,
}

/// Steps a renderer draws from the shared pool at a time.
const STEP_BATCH: u64 = 4096;

impl Budget {
    /// A fresh budget for one render.
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            local: Cell::new(0),
            pool: Arc::new(AtomicU64::new(limits.steps)),
        }
    }

    /// Another budget spending from the same render's steps (for a renderer on another thread).
    pub fn share(&self) -> Budget {
        Budget {
            limits: self.limits,
            local: Cell::new(0),
            pool: self.pool.clone(),
        }
    }

    /// Spends `n` steps; an error once the render has used more than [`Limits::steps`].
    #[inline]
    pub fn step(&self, n: u64) -> Result<(), String> {
        let left = self.local.get();
        if left >= n {
            self.local.set(left - n);
            return Ok(());
        }
        self.refill(n)
    }

    #[cold]
    fn refill(&self, n: u64) -> Result<(), String> {
        let want = (n - self.local.get()).max(STEP_BATCH);
        let taken = match self
            .pool
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                Some(p.saturating_sub(want))
            }) {
            Ok(before) | Err(before) => before.min(want),
        };
        let left = self.local.get() + taken;
        if left < n {
            self.local.set(0);
            return Err(Limit::Steps.exceeded(&self.limits));
        }
        self.local.set(left - n);
        Ok(())
    }

    /// An error if `len` is over `limit`.
    #[inline]
    pub fn check(&self, limit: Limit, len: usize) -> Result<(), String> {
        if len as u64 > limit.value(&self.limits) {
            return Err(Limit::exceeded(limit, &self.limits));
        }
        Ok(())
    }
}

/// Checks a YAML or JSON text against the document limits before a parser sees it:
/// its size, and how deep its flow collections (`{`, `[`) and compact block
/// sequences (`- - -`) nest. The YAML parser is quadratic in that depth and
/// serde_yaml stops only after parsing, so this runs first. Alias expansion is
/// bounded by serde_yaml itself (a billion-laughs document fails fast).
pub fn check_yaml(text: &str, limits: &Limits) -> Result<(), String> {
    if text.len() > limits.yaml_bytes {
        return Err(format!(
            "{} bytes: {}",
            text.len(),
            Limit::YamlBytes.exceeded(limits)
        ));
    }
    let too_deep = || Limit::YamlDepth.exceeded(limits);
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    let mut line_start = true;
    // The last non-blank byte of the line so far (0 at its start): a quote opens a
    // quoted scalar only where a scalar starts, as in YAML; elsewhere (`a: it's`) it is
    // plain text, and skipping to a closing quote would hide the brackets after it.
    let mut prev = 0u8;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                line_start = true;
                prev = 0;
                i += 1;
                continue;
            }
            b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            q @ (b'"' | b'\'') if matches!(prev, 0 | b':' | b'-' | b'[' | b'{' | b',' | b'?') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if q == b'"' && b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limits.yaml_depth {
                    return Err(too_deep());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'-' | b'?' if line_start => {
                // A line of compact nested block entries: `- - - x`.
                let mut nested = 0;
                let mut j = i;
                while j + 1 < b.len() && matches!(b[j], b'-' | b'?') && b[j + 1] == b' ' {
                    nested += 1;
                    j += 2;
                    while j < b.len() && b[j] == b' ' {
                        j += 1;
                    }
                }
                if nested > limits.yaml_depth {
                    return Err(too_deep());
                }
                line_start = false;
                prev = b'-';
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        line_start = false;
        prev = b.get(i).copied().unwrap_or(0);
        i += 1;
    }
    Ok(())
}

/// Parses a YAML or JSON document after [`check_yaml`].
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    limits: &Limits,
) -> Result<T, String> {
    check_yaml(text, limits)?;
    serde_yaml::from_str(text).map_err(|e| e.to_string())
}

/// Parses every document of a YAML stream after [`check_yaml`]; empty documents are kept as null.
pub fn parse_yaml_stream(text: &str, limits: &Limits) -> Result<Vec<serde_json::Value>, String> {
    check_yaml(text, limits)?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| format!("document {}: malformed YAML: {e}", i + 1))?;
        out.push(value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Budgets shared between threads draw from one pool: together they spend exactly
    /// the limit, however the steps are split between them.
    #[test]
    fn shared_budgets_spend_one_limit() {
        let limits = Limits {
            steps: 10_000,
            ..Limits::default()
        };
        let a = Budget::new(limits);
        let b = a.share();
        let mut spent = 0u64;
        loop {
            let one = a.step(3).is_ok();
            let two = b.step(7).is_ok();
            spent += if one { 3 } else { 0 } + if two { 7 } else { 0 };
            if !one && !two {
                break;
            }
        }
        assert!(
            spent <= 10_000 && spent > 10_000 - 2 * STEP_BATCH,
            "spent {spent}"
        );
        assert!(a.step(1).is_err() && b.step(1).is_err());
        // One budget alone spends all of it.
        let alone = Budget::new(limits);
        assert!(alone.step(10_000).is_ok());
        assert!(alone.step(1).is_err());
    }

    #[test]
    fn budget_counts_steps_and_names_the_flag() {
        let b = Budget::new(Limits {
            steps: 10,
            ..Limits::default()
        });
        assert!(b.step(10).is_ok());
        assert_eq!(
            b.step(1).unwrap_err(),
            "over the limit of 10 template execution steps in one ApplicationSet render \
             (an admin can raise it with --max-template-steps)"
        );
    }

    #[test]
    fn deep_flow_yaml_fails_fast() {
        let limits = Limits::default();
        let text = "{a: ".repeat(100_000);
        let start = std::time::Instant::now();
        let err = parse_yaml::<serde_json::Value>(&text, &limits).unwrap_err();
        assert!(err.contains("nesting depth of one YAML document"), "{err}");
        assert!(start.elapsed().as_secs() < 2);
        let seq = format!("{}x\n", "- ".repeat(5_000));
        assert!(check_yaml(&seq, &limits).is_err());
        // Real documents pass: brackets in strings and comments do not count.
        let ok = "a: '{{{{{{'\nb: \"[[[[\"\n# {{{{{\nc: [1, {d: 2}]\n- - x\nd: ['[[[', \"{{{\"]\n";
        assert!(check_yaml(ok, &limits).is_ok());
        // A quote inside a plain scalar opens nothing: the brackets after it count.
        let hidden = format!("a: it's\nb: {}", "{a: ".repeat(5_000));
        assert!(check_yaml(&hidden, &limits).is_err());
        let hidden = format!("a: x \"y\nb: {}", "[".repeat(5_000));
        assert!(check_yaml(&hidden, &limits).is_err());
    }

    #[test]
    fn billion_laughs_fails() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                std::iter::repeat_n(prev.as_str(), 10)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let err = parse_yaml::<serde_json::Value>(&doc, &Limits::default()).unwrap_err();
        assert!(err.contains("repetition limit exceeded"), "{err}");
    }

    #[test]
    fn big_document_is_refused_by_size() {
        let limits = Limits {
            yaml_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            check_yaml("a: 12345678901", &limits).unwrap_err(),
            "14 bytes: over the limit of 10 bytes in one YAML document (an admin can raise it with --max-yaml-bytes)"
        );
    }
}
