//! Sprig's functions (Argo's set) and Argo's own (`normalize`, `slugify`, `toYaml`,
//! `fromYaml`, `fromYamlArray`), with sprig's argument order and semantics.
//!
//! A sprig function Prism does not implement yet (`supported: false` in the function
//! table) fails when called with `function "X" is not supported by prism`, never with
//! wrong output. Arguments were counted against the table before any function runs.
//! Counts, lengths and regular expressions are bounded by the render's [`Budget`].

use super::printf::quote;
use super::time::Time;
use super::value::{format_v, V};
use crate::limits::{Budget, Limit};
use crate::params::{normalize, slugify};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::rc::Rc;

type R<T> = Result<T, String>;

fn want(name: &str, args: &[V], n: usize) -> R<()> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn at_least(name: &str, args: &[V], n: usize) -> R<()> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn s<'a>(name: &str, v: &'a V) -> R<&'a str> {
    v.as_str().ok_or_else(|| match v {
        V::Missing | V::Nil => format!("error calling {name}: invalid value; expected string"),
        other => format!(
            "error calling {name}: wrong type for value; expected string; got {}",
            other.type_name()
        ),
    })
}

/// sprig's `strval`: strings as they are, anything else as `%v`.
pub fn strval(v: &V) -> String {
    match v {
        V::Str(s) => s.to_string(),
        V::Missing => "<nil>".into(),
        other => format_v(other),
    }
}

/// sprig's `empty`.
pub fn empty(v: &V) -> bool {
    !v.truthy()
}

/// `cast.ToInt64` as sprig uses it: numbers truncate, numeric strings parse, else 0.
pub fn to_i64(v: &V) -> i64 {
    match v {
        V::Int(i) => *i,
        V::Float(f) => *f as i64,
        V::Bool(b) => i64::from(*b),
        V::Str(s) => s
            .trim()
            .parse::<i64>()
            .or_else(|_| s.trim().parse::<f64>().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

fn to_f64(v: &V) -> f64 {
    match v {
        V::Int(i) => *i as f64,
        V::Float(f) => *f,
        V::Bool(b) => f64::from(u8::from(*b)),
        V::Str(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn list_of<'a>(name: &str, v: &'a V) -> R<&'a [V]> {
    match v {
        V::List(l) => Ok(l),
        V::Missing | V::Nil => Ok(&[]),
        other => Err(format!(
            "error calling {name}: cannot find {name} on type {}",
            other.type_name()
        )),
    }
}

fn map_of<'a>(name: &str, v: &'a V) -> R<&'a BTreeMap<String, V>> {
    match v {
        V::Map(m) => Ok(m),
        other => Err(format!("error calling {name}: wrong type for value; expected map[string]interface {{}}; got {}", other.type_name())),
    }
}

fn str_v(s: impl Into<Rc<str>>) -> V {
    V::Str(s.into())
}

fn list_v(items: Vec<V>) -> V {
    V::List(Rc::new(items))
}

/// Go's `json.Marshal`: keys sorted, `<`, `>` and `&` escaped.
fn go_json(v: &V, pretty: bool, escape_html: bool) -> String {
    let j = v.to_json();
    let s = if pretty {
        serde_json::to_string_pretty(&j)
    } else {
        serde_json::to_string(&j)
    }
    .unwrap_or_default();
    if escape_html {
        s.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    } else {
        s
    }
}

fn yaml_value(text: &str, budget: &Budget) -> R<serde_json::Value> {
    crate::limits::parse_yaml(text, &budget.limits)
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Splits into words at case changes, `-`, `_` and spaces (xstrings' rules, simplified).
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '_' || c.is_whitespace() || c == '.' {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (chars[i - 1].is_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if boundary {
            words.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn merge_into(dst: &mut BTreeMap<String, V>, src: &BTreeMap<String, V>, overwrite: bool) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(V::Map(d)), V::Map(s)) => merge_into(Rc::make_mut(d), s, overwrite),
            (Some(existing), _) if !overwrite && !empty(existing) => {}
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Compiles a regular expression within the compiled-size limit; a bad one is an
/// error in every regex function (sprig's plain variants panic, which Argo reports).
fn regex(name: &str, pattern: &V, budget: &Budget) -> R<regex::Regex> {
    let limit = budget.limits.regex_bytes;
    regex::RegexBuilder::new(s(name, pattern)?)
        .size_limit(limit)
        .dfa_size_limit(limit)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "error calling {name}: the regular expression is {}",
                Limit::RegexBytes.exceeded(&budget.limits)
            ),
            other => format!(
                "error calling {name}: regexp: Compile({:?}): {}",
                pattern.as_str().unwrap_or_default(),
                other
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
            ),
        })
}

/// A count or length argument, within [`Limits::count`](crate::limits::Limits::count).
fn count(name: &str, v: &V, budget: &Budget) -> R<usize> {
    let n = to_i64(v).max(0);
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    budget
        .check(Limit::Count, n)
        .map_err(|e| format!("error calling {name}: {n} is {e}"))?;
    Ok(n)
}

/// An error unless `len` bytes fit in one field.
fn fits(name: &str, len: usize, budget: &Budget) -> R<()> {
    budget
        .check(Limit::FieldBytes, len)
        .map_err(|e| format!("error calling {name}: the result would be {e}"))
}

/// Joins strings, stopping with an error past one field's limit.
fn join_capped(
    name: &str,
    parts: impl Iterator<Item = String>,
    sep: &str,
    budget: &Budget,
) -> R<String> {
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&p);
        fits(name, out.len(), budget)?;
    }
    Ok(out)
}

/// `strings.ReplaceAll`, stopping with an error past one field's limit (an empty
/// `old` inserts `new` between every character, so the result can be quadratic).
fn replace_capped(name: &str, text: &str, old: &str, new: &str, budget: &Budget) -> R<String> {
    fits(name, crate::params::replaced_len(text, old, new), budget)?;
    Ok(text.replace(old, new))
}

/// Checked integer arithmetic: an overflow is an error, never a wrapped number.
fn checked(name: &str, v: Option<i64>) -> R<V> {
    v.map(V::Int)
        .ok_or_else(|| format!("error calling {name}: integer overflow"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adler-32, as Go's `hash/adler32`.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// goutils' `WordWrap`: breaks lines at spaces so they fit `width`; longer words stay whole.
fn word_wrap(text: &str, width: usize, sep: &str) -> String {
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut cur = String::new();
        for word in line.split(' ').filter(|w| !w.is_empty()) {
            if !cur.is_empty() && cur.len() + 1 + word.len() > width {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        out.push(cur);
    }
    out.join(sep)
}

/// `n` bytes from the operating system's random source.
fn random_bytes(n: usize) -> R<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(buf)
}

/// sprig's date argument: a time, or Unix seconds as an int; anything else is "now", as sprig does.
fn time_arg(v: &V) -> Time {
    match v {
        V::Time(t) => *t,
        V::Int(secs) => Time {
            secs: *secs,
            nanos: 0,
        },
        _ => Time::now(),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds (`1h30m`, `-1.5h`, `300ms`).
fn parse_duration(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .bytes()
            .take_while(|b| !b.is_ascii_digit() && *b != b'.')
            .count();
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Some(if neg { -(total as i128) } else { total as i128 })
}

/// Go's `reflect.Kind` name of a value.
pub fn kind_of(v: &V) -> &'static str {
    match v {
        V::Missing | V::Nil => "invalid",
        V::Bool(_) => "bool",
        V::Int(_) => "int",
        V::Float(_) => "float64",
        V::Str(_) => "string",
        V::List(_) => "slice",
        V::Map(_) => "map",
        V::Time(_) => "struct",
    }
}

/// Calls function `name` (its argument count already checked against the table).
pub fn call(name: &str, args: Vec<V>, budget: &Budget) -> R<V> {
    // The `must` forms differ only in returning errors the plain forms swallow; these
    // plain forms never swallow one, so they are the same function here.
    let unmust: String;
    let name = match name {
        "mustFirst" | "mustLast" | "mustRest" | "mustInitial" | "mustAppend" | "mustPrepend"
        | "mustUniq" | "mustWithout" | "mustHas" | "mustCompact" | "mustReverse" | "mustMerge"
        | "mustMergeOverwrite" | "mustToJson" | "mustToPrettyJson" | "mustToRawJson"
        | "mustPush" | "mustChunk" | "mustDeepCopy" => {
            unmust = name[4..5].to_lowercase() + &name[5..];
            if unmust == "push" {
                "append"
            } else {
                unmust.as_str()
            }
        }
        "push" => "append",
        "trimall" => "trimAll",
        "date_in_zone" => "dateInZone",
        "date_modify" => "dateModify",
        "must_date_modify" => "mustDateModify",
        "biggest" => "max",
        "tuple" => "list",
        "osBase" => "base",
        "osDir" => "dir",
        "osExt" => "ext",
        "osClean" => "clean",
        "osIsAbs" => "isAbs",
        other => other,
    };
    for implementation in IMPLEMENTATIONS {
        if let Some(v) = implementation(name, &args, budget)? {
            return Ok(v);
        }
    }
    match super::table::lookup(name) {
        Some(f) if !f.supported => Err(format!("function {name:?} is not supported by prism")),
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// The implementations, each a `match` over its share of the function table.
type Implementation = fn(&str, &[V], &Budget) -> R<Option<V>>;
const IMPLEMENTATIONS: &[Implementation] = &[
    strings,
    strings_and_dicts,
    lists_and_integers,
    encodings_and_regexes,
    hashes_and_time,
    dates_and_floats,
    types_and_paths,
];

/// Defaults and strings (`None`: not one of them).
fn strings(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "default" => {
            at_least(name, a, 1)?;
            match a.get(1) {
                Some(given) if !empty(given) => given.clone(),
                _ => a[0].clone(),
            }
        }
        "empty" => {
            want(name, a, 1)?;
            V::Bool(empty(&a[0]))
        }
        "coalesce" => a.iter().find(|v| !empty(v)).cloned().unwrap_or(V::Nil),
        "ternary" => {
            want(name, a, 3)?;
            if a[2].truthy() {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "lower" => str_v(s(name, &a[0])?.to_lowercase()),
        "upper" => str_v(s(name, &a[0])?.to_uppercase()),
        "title" => str_v(title(s(name, &a[0])?)),
        "trim" => str_v(s(name, &a[0])?.trim()),
        "trimPrefix" => {
            want(name, a, 2)?;
            let (p, x) = (s(name, &a[0])?, s(name, &a[1])?);
            str_v(x.strip_prefix(p).unwrap_or(x))
        }
        "trimSuffix" => {
            want(name, a, 2)?;
            let (p, x) = (s(name, &a[0])?, s(name, &a[1])?);
            str_v(x.strip_suffix(p).unwrap_or(x))
        }
        "trimAll" => {
            want(name, a, 2)?;
            let (cut, x) = (s(name, &a[0])?, s(name, &a[1])?);
            str_v(x.trim_matches(|c| cut.contains(c)))
        }
        "replace" => {
            want(name, a, 3)?;
            str_v(replace_capped(
                name,
                s(name, &a[2])?,
                s(name, &a[0])?,
                s(name, &a[1])?,
                budget,
            )?)
        }
        "trunc" => {
            want(name, a, 2)?;
            let (n, x) = (to_i64(&a[0]), s(name, &a[1])?);
            let len = x.len() as i64;
            str_v(if n < 0 {
                x.get((len + n).max(0) as usize..).unwrap_or(x)
            } else {
                x.get(..(n.min(len)) as usize).unwrap_or(x)
            })
        }
        "substr" => {
            want(name, a, 3)?;
            let (start, end, x) = (to_i64(&a[0]), to_i64(&a[1]), s(name, &a[2])?);
            let len = x.len() as i64;
            let start = start.clamp(0, len) as usize;
            let end = if end < 0 || end > len {
                len as usize
            } else {
                end as usize
            };
            str_v(if start > end {
                ""
            } else {
                x.get(start..end).unwrap_or("")
            })
        }
        "contains" => {
            want(name, a, 2)?;
            V::Bool(s(name, &a[1])?.contains(s(name, &a[0])?))
        }
        "hasPrefix" => {
            want(name, a, 2)?;
            V::Bool(s(name, &a[1])?.starts_with(s(name, &a[0])?))
        }
        "hasSuffix" => {
            want(name, a, 2)?;
            V::Bool(s(name, &a[1])?.ends_with(s(name, &a[0])?))
        }
        "quote" => str_v(join_capped(
            name,
            a.iter()
                .filter(|v| !matches!(v, V::Nil | V::Missing))
                .map(|v| quote(&strval(v))),
            " ",
            budget,
        )?),
        "squote" => str_v(join_capped(
            name,
            a.iter()
                .filter(|v| !matches!(v, V::Nil | V::Missing))
                .map(|v| format!("'{}'", strval(v))),
            " ",
            budget,
        )?),
        "cat" => str_v(join_capped(
            name,
            a.iter()
                .filter(|v| !matches!(v, V::Nil | V::Missing))
                .map(strval),
            " ",
            budget,
        )?),
        "indent" | "nindent" => {
            want(name, a, 2)?;
            let width = count(name, &a[0], budget)?;
            let text = s(name, &a[1])?;
            let lines = text.matches('\n').count() + 1;
            fits(
                name,
                lines.saturating_mul(width + 1).saturating_add(text.len()),
                budget,
            )?;
            let pad = " ".repeat(width);
            let indented = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
            str_v(if name == "nindent" {
                format!("\n{indented}")
            } else {
                indented
            })
        }
        _ => return Ok(None),
    }))
}

/// Case conversion, splitting, lists and dicts (`None`: not one of them).
fn strings_and_dicts(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "repeat" => {
            want(name, a, 2)?;
            let n = count(name, &a[0], budget)?;
            let text = s(name, &a[1])?;
            fits(name, n.saturating_mul(text.len()), budget)?;
            str_v(text.repeat(n))
        }
        "plural" => {
            want(name, a, 3)?;
            if to_i64(&a[2]) == 1 {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "kebabcase" => str_v(
            words(s(name, &a[0])?)
                .iter()
                .map(|w| w.to_lowercase())
                .collect::<Vec<_>>()
                .join("-"),
        ),
        "snakecase" => str_v(
            words(s(name, &a[0])?)
                .iter()
                .map(|w| w.to_lowercase())
                .collect::<Vec<_>>()
                .join("_"),
        ),
        "camelcase" => str_v(
            words(s(name, &a[0])?)
                .iter()
                .map(|w| title(&w.to_lowercase()))
                .collect::<String>(),
        ),
        "splitList" => {
            want(name, a, 2)?;
            list_v(s(name, &a[1])?.split(s(name, &a[0])?).map(str_v).collect())
        }
        "split" => {
            want(name, a, 2)?;
            let parts: BTreeMap<String, V> = s(name, &a[1])?
                .split(s(name, &a[0])?)
                .enumerate()
                .map(|(i, p)| (format!("_{i}"), str_v(p)))
                .collect();
            V::Map(Rc::new(parts))
        }
        "join" => {
            want(name, a, 2)?;
            let sep = s(name, &a[0])?;
            let items: Vec<String> = match &a[1] {
                V::List(l) => l.iter().map(strval).collect(),
                other => vec![strval(other)],
            };
            str_v(items.join(sep))
        }
        "list" => list_v(a.to_vec()),
        "dict" => {
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                m.insert(strval(&pair[0]), pair.get(1).cloned().unwrap_or(str_v("")));
            }
            V::Map(Rc::new(m))
        }
        "get" => {
            want(name, a, 2)?;
            map_of(name, &a[0])?
                .get(s(name, &a[1])?)
                .cloned()
                .unwrap_or(str_v(""))
        }
        "set" => {
            want(name, a, 3)?;
            let mut m = map_of(name, &a[0])?.clone();
            m.insert(s(name, &a[1])?.to_string(), a[2].clone());
            V::Map(Rc::new(m))
        }
        "unset" => {
            want(name, a, 2)?;
            let mut m = map_of(name, &a[0])?.clone();
            m.remove(s(name, &a[1])?);
            V::Map(Rc::new(m))
        }
        "hasKey" => {
            want(name, a, 2)?;
            V::Bool(map_of(name, &a[0])?.contains_key(s(name, &a[1])?))
        }
        "keys" => list_v(
            a.iter()
                .map(|m| map_of(name, m))
                .collect::<R<Vec<_>>>()?
                .into_iter()
                .flat_map(|m| m.keys().map(|k| str_v(k.as_str())))
                .collect(),
        ),
        "values" => {
            want(name, a, 1)?;
            list_v(map_of(name, &a[0])?.values().cloned().collect())
        }
        "pluck" => {
            at_least(name, a, 1)?;
            let key = s(name, &a[0])?;
            list_v(
                a[1..]
                    .iter()
                    .filter_map(|m| match m {
                        V::Map(m) => m.get(key).cloned(),
                        _ => None,
                    })
                    .collect(),
            )
        }
        "dig" => {
            at_least(name, a, 3)?;
            let (map, rest) = a.split_last().ok_or("dig needs a map")?;
            let (default, keys) = rest.split_last().ok_or("dig needs a default")?;
            let mut cur = map.clone();
            for k in keys {
                let k = s(name, k)?;
                cur = match &cur {
                    V::Map(m) => match m.get(k) {
                        Some(v) => v.clone(),
                        None => return Ok(Some(default.clone())),
                    },
                    _ => return Ok(Some(default.clone())),
                };
            }
            cur
        }
        _ => return Ok(None),
    }))
}

/// Lists and integer arithmetic (`None`: not one of them).
fn lists_and_integers(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "merge" | "mergeOverwrite" => {
            at_least(name, a, 1)?;
            let mut dst = map_of(name, &a[0])?.clone();
            for src in &a[1..] {
                merge_into(&mut dst, map_of(name, src)?, name == "mergeOverwrite");
            }
            V::Map(Rc::new(dst))
        }
        "first" => list_of(name, &a[0])?.first().cloned().unwrap_or(V::Nil),
        "last" => list_of(name, &a[0])?.last().cloned().unwrap_or(V::Nil),
        "rest" => list_v(list_of(name, &a[0])?.iter().skip(1).cloned().collect()),
        "initial" => {
            let l = list_of(name, &a[0])?;
            list_v(l[..l.len().saturating_sub(1)].to_vec())
        }
        "append" => {
            want(name, a, 2)?;
            let mut l = list_of(name, &a[0])?.to_vec();
            l.push(a[1].clone());
            list_v(l)
        }
        "prepend" => {
            want(name, a, 2)?;
            let mut l = vec![a[1].clone()];
            l.extend(list_of(name, &a[0])?.iter().cloned());
            list_v(l)
        }
        "uniq" => {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for v in list_of(name, &a[0])? {
                let key = go_json(v, false, false) + v.type_name();
                if seen.insert(key) {
                    out.push(v.clone());
                }
            }
            list_v(out)
        }
        "without" => {
            at_least(name, a, 1)?;
            let drop: Vec<String> = a[1..].iter().map(|v| go_json(v, false, false)).collect();
            list_v(
                list_of(name, &a[0])?
                    .iter()
                    .filter(|v| !drop.contains(&go_json(v, false, false)))
                    .cloned()
                    .collect(),
            )
        }
        "has" => {
            want(name, a, 2)?;
            let needle = go_json(&a[0], false, false);
            V::Bool(
                list_of(name, &a[1])?
                    .iter()
                    .any(|v| go_json(v, false, false) == needle),
            )
        }
        "compact" => list_v(
            list_of(name, &a[0])?
                .iter()
                .filter(|v| !empty(v))
                .cloned()
                .collect(),
        ),
        "reverse" => list_v(list_of(name, &a[0])?.iter().rev().cloned().collect()),
        "sortAlpha" => {
            let mut l: Vec<String> = list_of(name, &a[0])?.iter().map(strval).collect();
            l.sort();
            list_v(l.into_iter().map(str_v).collect())
        }
        "until" => list_v(
            (0..count(name, &a[0], budget)? as i64)
                .map(V::Int)
                .collect(),
        ),
        "untilStep" => {
            want(name, a, 3)?;
            let (start, stop, step) = (to_i64(&a[0]), to_i64(&a[1]), to_i64(&a[2]));
            let mut out = Vec::new();
            let mut i = Some(start);
            while let Some(x) =
                i.filter(|x| step != 0 && ((step > 0 && *x < stop) || (step < 0 && *x > stop)))
            {
                out.push(V::Int(x));
                budget
                    .check(Limit::Count, out.len())
                    .map_err(|e| format!("error calling {name}: the list would be {e}"))?;
                i = x.checked_add(step);
            }
            list_v(out)
        }
        "add" => checked(
            name,
            a.iter().map(to_i64).try_fold(0i64, |x, y| x.checked_add(y)),
        )?,
        "add1" => checked(name, to_i64(&a[0]).checked_add(1))?,
        "sub" => {
            want(name, a, 2)?;
            checked(name, to_i64(&a[0]).checked_sub(to_i64(&a[1])))?
        }
        "mul" => checked(
            name,
            a.iter().map(to_i64).try_fold(1i64, |x, y| x.checked_mul(y)),
        )?,
        "div" | "mod" => {
            want(name, a, 2)?;
            let d = to_i64(&a[1]);
            if d == 0 {
                return Err(format!(
                    "error calling {name}: runtime error: integer divide by zero"
                ));
            }
            let n = to_i64(&a[0]);
            checked(
                name,
                if name == "div" {
                    n.checked_div(d)
                } else {
                    n.checked_rem(d)
                },
            )?
        }
        "max" => V::Int(a.iter().map(to_i64).max().ok_or("max needs an argument")?),
        "min" => V::Int(a.iter().map(to_i64).min().ok_or("min needs an argument")?),
        "int" | "int64" => V::Int(to_i64(&a[0])),
        "float64" => V::Float(to_f64(&a[0])),
        "atoi" => V::Int(s(name, &a[0])?.parse().unwrap_or(0)),
        "toString" => str_v(strval(&a[0])),
        _ => return Ok(None),
    }))
}

/// JSON, YAML, base64, Argo's normalize and slugify, regexes (`None`: not one of them).
fn encodings_and_regexes(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "toStrings" => list_v(
            list_of(name, &a[0])?
                .iter()
                .map(|v| str_v(strval(v)))
                .collect(),
        ),
        "toJson" => str_v(go_json(&a[0], false, true)),
        "toPrettyJson" => str_v(go_json(&a[0], true, true)),
        "toRawJson" => str_v(go_json(&a[0], false, false)),
        "fromJson" => serde_json::from_str(s(name, &a[0])?)
            .map(|v| V::from_json(&v))
            .unwrap_or(V::Map(Rc::default())),
        "toYaml" => str_v(
            serde_yaml::to_string(&a[0].to_json())
                .map(|y| y.trim_end_matches('\n').to_string())
                .unwrap_or_default(),
        ),
        "fromYaml" => match yaml_value(s(name, &a[0])?, budget) {
            Ok(v @ serde_json::Value::Object(_)) => V::from_json(&v),
            Ok(_) => V::Map(Rc::default()),
            Err(e) => V::Map(Rc::new(BTreeMap::from([("Error".to_string(), str_v(e))]))),
        },
        "fromYamlArray" => match yaml_value(s(name, &a[0])?, budget) {
            Ok(v @ serde_json::Value::Array(_)) => V::from_json(&v),
            Ok(_) => list_v(vec![]),
            Err(e) => list_v(vec![str_v(e)]),
        },
        "b64enc" => str_v(base64::engine::general_purpose::STANDARD.encode(strval(&a[0]))),
        "b64dec" => str_v(
            base64::engine::general_purpose::STANDARD
                .decode(strval(&a[0]))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_else(|| "illegal base64 data at input byte 0".into()),
        ),
        "normalize" => str_v(normalize(s(name, &a[0])?)),
        // Argo's SlugifyName(args ...any): the last argument is the text, the first
        // (of two or more) the maximum size, the second (of three or more) smart truncation;
        // each must have its Go type (int, bool, string), as Argo's type assertions demand.
        "slugify" => {
            let (mut text, mut max, mut smart) = ("", 50usize, true);
            for (i, arg) in a.iter().enumerate() {
                let wrong = |want: &str| {
                    format!(
                        "error calling slugify: interface conversion: interface {{}} is {}, not {want}",
                        arg.type_name()
                    )
                };
                if i == a.len() - 1 {
                    text = arg.as_str().ok_or_else(|| wrong("string"))?;
                } else if i == 0 {
                    let V::Int(n) = arg else {
                        return Err(wrong("int"));
                    };
                    max = usize::try_from(*n).unwrap_or(0);
                } else if i == 1 {
                    let V::Bool(b) = arg else {
                        return Err(wrong("bool"));
                    };
                    smart = *b;
                }
            }
            str_v(slugify(text, max, smart))
        }
        "regexMatch" | "mustRegexMatch" => {
            want(name, a, 2)?;
            V::Bool(regex(name, &a[0], budget)?.is_match(s(name, &a[1])?))
        }
        "regexFind" | "mustRegexFind" => {
            want(name, a, 2)?;
            let re = regex(name, &a[0], budget)?;
            str_v(re.find(s(name, &a[1])?).map(|m| m.as_str()).unwrap_or(""))
        }
        "regexFindAll" | "mustRegexFindAll" => {
            want(name, a, 3)?;
            let n = to_i64(&a[2]);
            let re = regex(name, &a[0], budget)?;
            let all = re.find_iter(s(name, &a[1])?).map(|m| str_v(m.as_str()));
            list_v(if n < 0 {
                all.collect()
            } else {
                all.take(n as usize).collect()
            })
        }
        "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral" => {
            want(name, a, 3)?;
            let text = s(name, &a[1])?;
            let re = regex(name, &a[0], budget)?;
            let repl = s(name, &a[2])?;
            let literal = name.ends_with("Literal");
            // Built match by match, so a replacement cannot grow past one field.
            let mut out = String::new();
            let mut last = 0;
            for caps in re.captures_iter(text) {
                let Some(m) = caps.get(0) else { continue };
                out.push_str(&text[last..m.start()]);
                if literal {
                    out.push_str(repl);
                } else {
                    caps.expand(repl, &mut out);
                }
                last = m.end();
                fits(name, out.len(), budget)?;
            }
            out.push_str(&text[last..]);
            str_v(out)
        }
        "regexSplit" | "mustRegexSplit" => {
            want(name, a, 3)?;
            let n = to_i64(&a[2]);
            let text = s(name, &a[1])?;
            let re = regex(name, &a[0], budget)?;
            if n < 0 {
                list_v(re.split(text).map(str_v).collect())
            } else {
                list_v(re.splitn(text, n as usize).map(str_v).collect())
            }
        }
        _ => return Ok(None),
    }))
}

/// Hashes, sequences, semver, random values and dates (`None`: not one of them).
fn hashes_and_time(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "regexQuoteMeta" => {
            let mut out = String::new();
            for c in s(name, &a[0])?.chars() {
                if "\\.+*?()|[]{}^$".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            str_v(out)
        }
        "sha1sum" => {
            use sha1::Digest;
            str_v(hex(&sha1::Sha1::digest(strval(&a[0]).as_bytes())))
        }
        "sha256sum" => {
            use sha2::Digest;
            str_v(hex(&sha2::Sha256::digest(strval(&a[0]).as_bytes())))
        }
        "adler32sum" => str_v(adler32(strval(&a[0]).as_bytes()).to_string()),
        // sprig's seq: one to three ints; none or more than three give "".
        "seq" => {
            let n: Vec<i64> = a.iter().map(to_i64).collect();
            let (start, step, end) = match n.as_slice() {
                [e] => (1, if *e >= 1 { 1 } else { -1 }, *e),
                [st, e] => (*st, if e >= st { 1 } else { -1 }, *e),
                [st, sp, e] => (*st, *sp, *e),
                _ => return Ok(Some(str_v(""))),
            };
            let mut out = String::new();
            let mut items = 0usize;
            let mut i = Some(start);
            while let Some(x) =
                i.filter(|x| step != 0 && ((step > 0 && *x <= end) || (step < 0 && *x >= end)))
            {
                if items > 0 {
                    out.push(' ');
                }
                out.push_str(&x.to_string());
                items += 1;
                budget
                    .check(Limit::Count, items)
                    .map_err(|e| format!("error calling {name}: the sequence would be {e}"))?;
                fits(name, out.len(), budget)?;
                i = x.checked_add(step);
            }
            str_v(out)
        }
        "wrap" | "wrapWith" => {
            let (width, sep, text) = match (name, a) {
                ("wrap", [w, t]) => (to_i64(w), "\n", s(name, t)?),
                ("wrapWith", [w, sep, t]) => (to_i64(w), s(name, sep)?, s(name, t)?),
                _ => return Err(format!("wrong number of args for {name}")),
            };
            let breaks = text.bytes().filter(|b| *b == b' ' || *b == b'\n').count() + 1;
            fits(
                name,
                text.len().saturating_add(breaks.saturating_mul(sep.len())),
                budget,
            )?;
            str_v(word_wrap(text, width.max(1) as usize, sep))
        }
        "semver" => {
            want(name, a, 1)?;
            let v = super::semver::Version::parse(s(name, &a[0])?)
                .map_err(|e| format!("error calling semver: {e}"))?;
            V::Map(Rc::new(BTreeMap::from([
                ("Major".to_string(), V::Int(v.major as i64)),
                ("Minor".to_string(), V::Int(v.minor as i64)),
                ("Patch".to_string(), V::Int(v.patch as i64)),
                ("Prerelease".to_string(), str_v(v.pre.as_str())),
                ("Metadata".to_string(), str_v(v.build.as_str())),
                ("Original".to_string(), str_v(s(name, &a[0])?)),
            ])))
        }
        "semverCompare" => {
            want(name, a, 2)?;
            let c = super::semver::Constraint::parse(s(name, &a[0])?)
                .map_err(|e| format!("error calling semverCompare: {e}"))?;
            let v = super::semver::Version::parse(s(name, &a[1])?)
                .map_err(|e| format!("error calling semverCompare: {e}"))?;
            V::Bool(c.matches(&v))
        }
        // Random by nature, in Argo too: each render differs.
        "uuidv4" => {
            let mut b = random_bytes(16)?;
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex(&b);
            str_v(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" => {
            want(name, a, 1)?;
            let alphabet: Vec<u8> = match name {
                "randAlphaNum" => (b'0'..=b'9')
                    .chain(b'A'..=b'Z')
                    .chain(b'a'..=b'z')
                    .collect(),
                "randAlpha" => (b'A'..=b'Z').chain(b'a'..=b'z').collect(),
                "randNumeric" => (b'0'..=b'9').collect(),
                _ => (b' '..=b'~').collect(),
            };
            let n = count(name, &a[0], budget)?;
            fits(name, n, budget)?;
            let bytes = random_bytes(n)?;
            str_v(
                bytes
                    .iter()
                    .map(|b| alphabet[*b as usize % alphabet.len()] as char)
                    .collect::<String>(),
            )
        }
        // Dates, in UTC. `now` differs on every render, as in Argo.
        "now" => V::Time(Time::now()),
        "date" | "htmlDate" => {
            let (layout, t) = match (name, a) {
                ("date", [f, t]) => (s(name, f)?.to_string(), t),
                ("htmlDate", [t]) => ("2006-01-02".to_string(), t),
                _ => return Err(format!("wrong number of args for {name}")),
            };
            str_v(time_arg(t).format(&layout))
        }
        _ => return Ok(None),
    }))
}

/// Dates, float arithmetic and list helpers (`None`: not one of them).
fn dates_and_floats(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "dateInZone" | "htmlDateInZone" => {
            let (layout, t, zone) = match (name, a) {
                ("dateInZone", [f, t, z]) => (s(name, f)?.to_string(), t, z),
                ("htmlDateInZone", [t, z]) => ("2006-01-02".to_string(), t, z),
                _ => return Err(format!("wrong number of args for {name}")),
            };
            let zone = s(name, zone)?;
            if !matches!(zone, "UTC" | "" | "Etc/UTC" | "Z") {
                return Err(format!(
                    "error calling {name}: time zone {zone:?} is not supported by prism (UTC only)"
                ));
            }
            str_v(time_arg(t).format(&layout))
        }
        "unixEpoch" => str_v(time_arg(&a[0]).secs.to_string()),
        "toDate" | "mustToDate" => {
            want(name, a, 2)?;
            match Time::parse(s(name, &a[0])?, s(name, &a[1])?) {
                Ok(t) => V::Time(t),
                Err(e) if name == "mustToDate" => return Err(format!("error calling {name}: {e}")),
                // sprig's toDate gives Go's zero time on a parse error.
                Err(_) => V::Time(Time {
                    secs: -62_135_596_800,
                    nanos: 0,
                }),
            }
        }
        "dateModify" | "mustDateModify" => {
            want(name, a, 2)?;
            let t = time_arg(&a[1]);
            match parse_duration(s(name, &a[0])?) {
                Some(nanos) => {
                    let total = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos) + nanos;
                    V::Time(Time {
                        secs: total.div_euclid(1_000_000_000) as i64,
                        nanos: total.rem_euclid(1_000_000_000) as u32,
                    })
                }
                None if name == "mustDateModify" => {
                    return Err(format!(
                        "error calling {name}: time: invalid duration {:?}",
                        strval(&a[0])
                    ))
                }
                None => V::Time(t),
            }
        }
        "hello" => str_v("Hello!"),
        "untitle" => str_v(
            s(name, &a[0])?
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_lowercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "splitn" => {
            want(name, a, 3)?;
            let n = to_i64(&a[1]);
            let text = s(name, &a[2])?;
            let sep = s(name, &a[0])?;
            let parts: Vec<&str> = if n < 0 {
                text.split(sep).collect()
            } else {
                text.splitn(n as usize, sep).collect()
            };
            V::Map(Rc::new(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (format!("_{i}"), str_v(p)))
                    .collect(),
            ))
        }
        "all" => V::Bool(a.iter().all(|v| !empty(v))),
        "any" => V::Bool(a.iter().any(|v| !empty(v))),
        "floor" => V::Float(to_f64(&a[0]).floor()),
        "ceil" => V::Float(to_f64(&a[0]).ceil()),
        "round" => {
            at_least(name, a, 2)?;
            let p = 10f64.powi(to_i64(&a[1]) as i32);
            V::Float((to_f64(&a[0]) * p).round() / p)
        }
        "addf" => V::Float(a.iter().map(to_f64).sum()),
        "add1f" => V::Float(to_f64(&a[0]) + 1.0),
        "subf" => V::Float(
            a.iter()
                .skip(1)
                .fold(a.first().map(to_f64).unwrap_or(0.0), |x, y| x - to_f64(y)),
        ),
        "mulf" => V::Float(a.iter().map(to_f64).product()),
        "divf" => V::Float(
            a.iter()
                .skip(1)
                .fold(a.first().map(to_f64).unwrap_or(0.0), |x, y| x / to_f64(y)),
        ),
        "maxf" => V::Float(a.iter().map(to_f64).fold(f64::MIN, f64::max)),
        "minf" => V::Float(a.iter().map(to_f64).fold(f64::MAX, f64::min)),
        "concat" => list_v(
            a.iter()
                .map(|l| list_of(name, l).map(|l| l.to_vec()))
                .collect::<R<Vec<_>>>()?
                .concat(),
        ),
        "chunk" => {
            want(name, a, 2)?;
            let size = to_i64(&a[0]).max(1) as usize;
            list_v(
                list_of(name, &a[1])?
                    .chunks(size)
                    .map(|c| list_v(c.to_vec()))
                    .collect(),
            )
        }
        "omit" | "pick" => {
            at_least(name, a, 1)?;
            let keys: Vec<String> = a[1..].iter().map(strval).collect();
            let m = map_of(name, &a[0])?;
            V::Map(Rc::new(
                m.iter()
                    .filter(|(k, _)| keys.contains(k) == (name == "pick"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
        "deepCopy" => a[0].clone(),
        _ => return Ok(None),
    }))
}

/// Types, paths and the rest (`None`: not one of them).
fn types_and_paths(name: &str, a: &[V], budget: &Budget) -> R<Option<V>> {
    let _ = budget;
    Ok(Some(match name {
        "deepEqual" => {
            want(name, a, 2)?;
            V::Bool(a[0].to_json() == a[1].to_json() && a[0].type_name() == a[1].type_name())
        }
        "typeOf" => str_v(a[0].type_name()),
        "kindOf" => str_v(kind_of(&a[0])),
        "kindIs" => {
            want(name, a, 2)?;
            V::Bool(s(name, &a[0])? == kind_of(&a[1]))
        }
        "typeIs" | "typeIsLike" => {
            want(name, a, 2)?;
            V::Bool(s(name, &a[0])? == a[1].type_name())
        }
        "base" => str_v(crate::params::go_base(s(name, &a[0])?)),
        "dir" => str_v(crate::params::go_dir(s(name, &a[0])?)),
        "ext" => {
            let b = crate::params::go_base(s(name, &a[0])?);
            str_v(b.rfind('.').map(|i| &b[i..]).unwrap_or(""))
        }
        "clean" => {
            let p = s(name, &a[0])?;
            let mut parts: Vec<&str> = Vec::new();
            for seg in p.split('/') {
                match seg {
                    "" | "." => {}
                    ".." if parts.last().is_some_and(|l| *l != "..") => {
                        parts.pop();
                    }
                    ".." if p.starts_with('/') => {}
                    other => parts.push(other),
                }
            }
            let joined = parts.join("/");
            str_v(match (p.starts_with('/'), joined.is_empty()) {
                (true, _) => format!("/{joined}"),
                (false, true) => ".".to_string(),
                (false, false) => joined,
            })
        }
        "isAbs" => V::Bool(s(name, &a[0])?.starts_with('/')),
        "nospace" => str_v(
            s(name, &a[0])?
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>(),
        ),
        "initials" => str_v(
            s(name, &a[0])?
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .collect::<String>(),
        ),
        "swapcase" => str_v(
            s(name, &a[0])?
                .chars()
                .map(|c| {
                    if c.is_uppercase() {
                        c.to_lowercase().collect::<String>()
                    } else {
                        c.to_uppercase().collect()
                    }
                })
                .collect::<String>(),
        ),
        "abbrev" => {
            want(name, a, 2)?;
            let (w, text) = (to_i64(&a[0]).max(0) as usize, s(name, &a[1])?);
            str_v(if w < 4 || text.chars().count() <= w {
                text.to_string()
            } else {
                format!("{}...", text.chars().take(w - 3).collect::<String>())
            })
        }
        "mustFromJson" => serde_json::from_str(s(name, &a[0])?)
            .map(|v| V::from_json(&v))
            .map_err(|e| format!("error calling {name}: {e}"))?,
        "fromJsonArray" => match serde_json::from_str(s(name, &a[0])?) {
            Ok(v @ serde_json::Value::Array(_)) => V::from_json(&v),
            _ => list_v(vec![]),
        },
        "toDecimal" => V::Int(i64::from_str_radix(&strval(&a[0]), 8).unwrap_or(0)),
        _ => return Ok(None),
    }))
}
