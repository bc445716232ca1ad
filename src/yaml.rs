//! A small YAML emitter for JSON values, for printing thousands of Applications fast.
//!
//! serde_yaml's emitter (a port of libyaml) took 40% of `prism generate` on the scale
//! benchmark; Applications are plain JSON trees, so this emitter writes block-style
//! YAML directly. It quotes conservatively: a string is written plain only when no
//! YAML 1.1 or 1.2 reader could take it for anything but that string; otherwise it is
//! a JSON-style double-quoted string (valid YAML), or a literal block when it spans
//! lines. Tests check that serde_yaml reads every output back to the same value.

use serde_json::Value;

/// Appends `value` as a YAML document body (no `---`) to `out`.
pub fn write_document(out: &mut String, value: &Value) {
    match value {
        Value::Object(m) if !m.is_empty() => write_map(out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(out, a, 0),
        scalar => {
            write_scalar(out, scalar, 0);
            out.push('\n');
        }
    }
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, level: usize) {
    let mut first = true;
    for (k, v) in map {
        if !first {
            indent(out, level);
        }
        first = false;
        write_key(out, k);
        out.push(':');
        write_value_after_key(out, v, level);
    }
}

fn write_value_after_key(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(out, level + 2);
            write_map(out, m, level + 2);
        }
        // Sequences sit at the key's own indentation, as kubectl and serde_yaml print them.
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            indent(out, level);
            write_seq(out, a, level);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, level);
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], level: usize) {
    let mut first = true;
    for item in items {
        if !first {
            indent(out, level);
        }
        first = false;
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_map(out, m, level + 2),
            Value::Array(a) if !a.is_empty() => write_seq(out, a, level + 2),
            scalar => {
                write_scalar(out, scalar, level);
                out.push('\n');
            }
        }
    }
}

fn write_scalar(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s, level),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn write_str(out: &mut String, s: &str, level: usize) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if can_be_literal_block(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push_str(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        for line in s
            .split('\n')
            .take(body.split('\n').count() + trailing.saturating_sub(1))
        {
            out.push('\n');
            if !line.is_empty() {
                indent(out, level + 2);
                out.push_str(line);
            }
        }
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

/// Keys are plain or double-quoted, never blocks.
fn write_key(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }
}

fn can_be_literal_block(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.chars()
            .all(|c| c == '\n' || (!c.is_control() && c != '\u{feff}'))
        && !s.split('\n').any(|l| l.ends_with(' '))
}

const PLAIN: u8 = 1; // may appear in a plain scalar (further checks below)
const NUMERIC: u8 = 2; // may appear in an int, float, hex, octal or sexagesimal
const TIME: u8 = 4; // may appear in a YAML 1.1 timestamp

/// Per-byte classes, so the check is one lookup per byte.
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        if c.is_ascii_alphanumeric() {
            t[i] |= PLAIN;
        }
        if c.is_ascii_hexdigit() {
            t[i] |= NUMERIC;
        }
        if c.is_ascii_digit() {
            t[i] |= TIME;
        }
        i += 1;
    }
    let sets: [(&[u8], u8); 3] = [
        (b" ._/-:=+@()~^$;<>*&!%?", PLAIN),
        (b"xXoO_.:+-", NUMERIC),
        (b"-:.T tZz+", TIME),
    ];
    let mut k = 0;
    while k < sets.len() {
        let (bytes, class) = sets[k];
        let mut j = 0;
        while j < bytes.len() {
            t[bytes[j] as usize] |= class;
            j += 1;
        }
        k += 1;
    }
    t
};

/// Whether `s` reads back as the same string when written without quotes.
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
        return false;
    };
    if first == b' ' || last == b' ' || last == b':' {
        return false;
    }
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) || s == "<<" || s == "=" {
        return false;
    }
    let mut all = PLAIN | NUMERIC | TIME;
    let mut prev = 0u8;
    for &c in b {
        let class = CLASS[c as usize];
        // ": " starts a mapping value ('#' itself is not in PLAIN, so no " #" comment).
        if class & PLAIN == 0 || (prev == b':' && c == b' ') {
            return false;
        }
        all &= class;
        prev = c;
    }
    let numeric_chars = all & NUMERIC != 0;
    let time_chars = all & TIME != 0;
    if b.len() <= 6 {
        const WORDS: [&str; 14] = [
            "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "+.inf",
            "-.inf", ".nan",
        ];
        if WORDS.iter().any(|w| w.eq_ignore_ascii_case(s)) {
            return false;
        }
    }
    // Anything number-, date- or time-like (ints, floats, hex, octal, 1:30, 2001-12-14).
    if (first.is_ascii_digit() || b"+-.".contains(&first)) && numeric_chars {
        return false;
    }
    !(first.is_ascii_digit() && time_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn emit(v: &Value) -> String {
        let mut s = String::new();
        write_document(&mut s, v);
        s
    }

    #[test]
    fn block_layout_like_kubectl() {
        let v = json!({"a": {"b": "x", "list": ["one", {"k": "v", "num": 1}], "empty": {}, "none": []}, "t": true});
        assert_eq!(
            emit(&v),
            "a:\n  b: x\n  empty: {}\n  list:\n  - one\n  - k: v\n    num: 1\n  none: []\nt: true\n"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_read_back_the_same() {
        let strings = [
            "true",
            "False",
            "yes",
            "NO",
            "on",
            "null",
            "~",
            "",
            " lead",
            "trail ",
            "1",
            "1.5",
            "0x1F",
            "0o17",
            "1e3",
            "-1",
            "+1",
            ".inf",
            ".NaN",
            "1:30",
            "2001-12-14",
            "2001-12-14T21:59:43.10-05:00",
            "a: b",
            "a #b",
            "#c",
            "-x",
            "- x",
            "*ref",
            "&anchor",
            "!tag",
            "|",
            ">",
            "'q'",
            "\"q\"",
            "%p",
            "@a",
            "`b",
            "key:",
            "a,b",
            "[x]",
            "{y}",
            "<<",
            "=",
            "tab\there",
            "multi\nline",
            "multi\nline\n",
            "multi\n\n\n",
            " indented\nblock",
            "ünïcode",
            "CreateNamespace=true",
            "https://x.example.com:443/a?b=c",
            "resources-finalizer.argocd.argoproj.io",
            "values-prod.yaml",
            "500m",
            "1Gi",
            "v1.2.3",
            "main-3f1c2ab",
        ];
        for s in strings {
            let v = json!({ s: s, "list": [s], "nested": {"k": s} });
            let text = emit(&v);
            let back: Value =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{s:?}: {e}\n{text}"));
            assert_eq!(back, v, "{s:?} emitted as\n{text}");
        }
    }

    #[test]
    fn common_values_stay_plain() {
        for s in [
            "CreateNamespace=true",
            "https://kubernetes.default.svc",
            "values-prod.yaml",
            "api-prod-eu-1",
            "500m",
        ] {
            assert_eq!(emit(&json!({"k": s})), format!("k: {s}\n"));
        }
    }
}
