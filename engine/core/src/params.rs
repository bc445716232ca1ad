//! The parameter model: one parameter set per Application, as Argo CD generators emit them.
//!
//! A [`ParamSet`] is a JSON object. In Argo's default template mode generators emit it
//! *flat* (`{"path.basename": "api", "path[0]": "apps"}`: the dots are part of the key);
//! in the nested modes (Go templates, handlebars) they emit the same data *nested*
//! (`{"path": {"basename": "api", "segments": ["apps", "api"]}}`). [`ParamShape`] tells a
//! generator which to emit; [`flat_view`] turns either into the flat `key → string`
//! view that selectors and `--explain` use, exactly as Argo flattens for selectors.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One parameter set: the data one Application is rendered from.
pub type ParamSet = Map<String, Value>;

/// How generators shape their parameters; follows the spec's template engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamShape {
    /// Argo's default (fasttemplate) mode: dotted keys, string values.
    Flat,
    /// Go template and handlebars modes: nested objects, typed values.
    Nested,
}

/// The flat `key → string` view of a parameter set, as Argo's `flattenParameters`:
/// nested objects and arrays become dotted keys (`a.b`, `list.0`), empty ones vanish,
/// and leaves print as Go's `%v` would.
pub fn flat_view(params: &ParamSet) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in params {
        flatten_into(&mut out, k.clone(), v);
    }
    out
}

/// Flattens `params` into dotted keys with string values, as Argo's default mode does
/// for git files content (`github.com/jeremywohl/flatten` in dot style, values via `%v`).
pub fn flatten_value(prefix: &str, value: &Value, out: &mut ParamSet) {
    let mut flat = BTreeMap::new();
    flatten_into(&mut flat, prefix.to_string(), value);
    for (k, v) in flat {
        out.insert(k, Value::String(v));
    }
}

fn flatten_into(out: &mut BTreeMap<String, String>, key: String, value: &Value) {
    let join = |k: &str| {
        if key.is_empty() {
            k.to_string()
        } else {
            format!("{key}.{k}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(out, join(k), v);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(out, join(&i.to_string()), v);
            }
        }
        leaf => {
            out.insert(key, go_format(leaf));
        }
    }
}

/// Formats a value as Go's `fmt.Sprintf("%v", v)` does for data decoded from JSON/YAML:
/// numbers are float64 (`1e+06`, `1.5`), null is `<nil>`, arrays `[a b]`, maps `map[k:v]`.
pub fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => go_format_float(n.as_f64().unwrap_or(0.0)),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest round-trip
/// digits, in `%e` form when the decimal exponent is below -4 or at least 6.
pub fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e8".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    } else if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        }
    }
}

/// Go's `path.Base`: the last element, `.` for an empty path.
pub fn go_base(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "." } else { "/" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's `path.Dir` for a clean relative path: everything before the last `/`, or `.`.
pub fn go_dir(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir,
        Some(_) => "/",
        None => ".",
    }
}

/// The length of `text.replace(old, new)`, without building it: an empty `old` inserts
/// `new` around every character, so a template could otherwise ask for a quadratic string.
pub fn replaced_len(text: &str, old: &str, new: &str) -> usize {
    let matches = if old.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(old).count()
    };
    (text.len() - matches.saturating_mul(old.len()).min(text.len()))
        .saturating_add(matches.saturating_mul(new.len()))
}

/// Argo's `SanitizeName` (the `*Normalized` parameters and the `normalize` function):
/// lowercase, anything but `[-a-z0-9.]` becomes `-`, at most 253 bytes, `-` and `.`
/// trimmed from both ends.
pub fn normalize(name: &str) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.len() > 253 {
        s.truncate(253);
    }
    s.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Argo's `slugify` (`SlugifyName` in `applicationset/utils/utils.go`): `SanitizeName`
/// ([`normalize`]), then gosimple/slug's `Make` with `MaxLength = max_size` and
/// `EnableSmartTruncate = smart_truncate`: characters outside `[a-zA-Z0-9-_]` become
/// `-`, runs of `-` collapse, `-`/`_` are trimmed, and the slug is cut to `max_size`
/// (at a word boundary when smart, before the clean-up otherwise).
pub fn slugify(text: &str, max_size: usize, smart_truncate: bool) -> String {
    let mut slug = normalize(text);
    if !smart_truncate && slug.len() >= max_size {
        slug.truncate(max_size);
    }
    let mut out = String::with_capacity(slug.len());
    for c in slug.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let slug = out.trim_matches(|c| c == '-' || c == '_');
    if max_size == 0 || !smart_truncate || slug.len() <= max_size {
        return slug.to_string();
    }
    // gosimple/slug's smartTruncate: whole words (with their trailing '-') while they fit.
    let words: Vec<&str> = slug.split_inclusive('-').collect();
    if words[0].len() > max_size {
        return words[0][..max_size].to_string();
    }
    let mut truncated = String::new();
    for word in words {
        if truncated.len() + word.len() - 1 <= max_size {
            truncated.push_str(word);
        } else {
            break;
        }
    }
    truncated.trim_matches('-').to_string()
}

/// How a value's type is named in error messages ("a string", "a mapping").
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_float_formatting_matches_go() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (123456789.0, "1.23456789e+08"),
            (0.1, "0.1"),
        ];
        for (f, want) in cases {
            assert_eq!(go_format_float(f), want, "{f}");
        }
    }

    #[test]
    fn flat_view_flattens_like_argo() {
        let p = json!({"a": {"b": 1, "c": [true, "x"], "e": {}}, "n": null, "k.dot": "v"});
        let flat = flat_view(p.as_object().unwrap());
        let got: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("a.b", "1"),
                ("a.c.0", "true"),
                ("a.c.1", "x"),
                ("k.dot", "v"),
                ("n", "<nil>")
            ]
        );
    }

    #[test]
    fn normalize_matches_sanitize_name() {
        assert_eq!(normalize("My_Cluster.Prod-"), "my-cluster.prod");
        assert_eq!(normalize("--a--"), "a");
        assert_eq!(normalize(&"x".repeat(300)).len(), 253);
    }

    #[test]
    fn slugify_truncates_at_words() {
        assert_eq!(slugify("Hello, World!", 50, true), "hello-world");
        assert_eq!(slugify("aaa-bbb-ccc", 8, true), "aaa-bbb");
        assert_eq!(slugify("aaa-bbb-ccc", 8, false), "aaa-bbb");
        // Argo's SanitizeName comes first, so underscores become hyphens.
        assert_eq!(
            slugify("Feature/New_Login Page", 50, true),
            "feature-new-login-page"
        );
        assert_eq!(slugify("Feature/New_Login Page", 12, true), "feature-new");
        assert_eq!(slugify("Feature/New_Login Page", 5, false), "featu");
        assert_eq!(slugify("abcdefghijklmnop", 5, true), "abcde");
        assert_eq!(slugify("a.b..c", 50, true), "a-b-c");
    }
}
