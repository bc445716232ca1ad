//! Go's `fmt.Sprint`, `Sprintln` and `Sprintf` for template values.

use super::value::{format_v, V};
use crate::params::go_format_float;

fn plain(v: &V) -> String {
    match v {
        V::Missing => "<nil>".into(),
        other => format_v(other),
    }
}

/// An error once `out` is longer than `cap` bytes (one field's limit).
fn capped(out: &str, cap: usize) -> Result<(), String> {
    if out.len() > cap {
        return Err(format!(
            "the formatted text is over the limit of {cap} bytes in one templated field \
             (an admin can raise it with --max-field-bytes)"
        ));
    }
    Ok(())
}

/// `fmt.Sprint`: operands joined, with a space between two operands when neither is a
/// string; at most `cap` bytes.
pub fn sprint(args: &[V], cap: usize) -> Result<String, String> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, V::Str(_)) && !matches!(args[i - 1], V::Str(_)) {
            out.push(' ');
        }
        match a {
            V::Str(s) => out.push_str(s),
            other => out.push_str(&plain(other)),
        }
        capped(&out, cap)?;
    }
    Ok(out)
}

/// `fmt.Sprintln`: operands joined by spaces, then a newline; at most `cap` bytes.
pub fn sprintln(args: &[V], cap: usize) -> Result<String, String> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&plain(a));
        capped(&out, cap)?;
    }
    out.push('\n');
    Ok(out)
}

/// Go's fmt refuses widths and precisions over a million (`%!(BADWIDTH)`).
const FMT_MAX: usize = 1_000_000;

/// Past this many fractional digits a float64's decimal expansion is all zeros.
const EXACT_DIGITS: usize = 1100;

/// `{f:.prec$}` for any precision (Rust's formatter takes at most 65,535).
fn fixed(f: f64, prec: usize) -> String {
    if prec <= EXACT_DIGITS {
        return format!("{f:.prec$}");
    }
    let mut s = format!("{f:.EXACT_DIGITS$}");
    if f.is_finite() {
        s.extend(std::iter::repeat_n('0', prec - EXACT_DIGITS));
    }
    s
}

fn bad(verb: char, v: &V) -> String {
    match v {
        V::Missing | V::Nil => format!("%!{verb}(<nil>)"),
        other => format!("%!{verb}({}={})", other.type_name(), plain(other)),
    }
}

/// Go's `%q` for a string.
pub fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn exp_form(f: f64, prec: usize, upper: bool) -> String {
    let exact = prec.min(EXACT_DIGITS);
    let mut s = format!("{f:.exact$e}");
    if prec > exact && f.is_finite() {
        if let Some(e) = s.find('e') {
            s.insert_str(e, &"0".repeat(prec - exact));
        }
    }
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let out = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    if upper {
        out.to_uppercase()
    } else {
        out
    }
}

/// `fmt.Sprintf` with Go's common verbs (`v s d f e g x X o b c q t T %`), flags
/// (`-+ 0#`), width and precision; mismatches print as Go does (`%!d(string=x)`).
/// At most `cap` bytes.
pub fn sprintf(format: &str, args: &[V], cap: usize) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    let mut next = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let (mut minus, mut plus, mut zero, mut space, mut sharp) =
            (false, false, false, false, false);
        while i < chars.len() {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => sharp = true,
                _ => break,
            }
            i += 1;
        }
        let number = |i: &mut usize| -> Option<usize> {
            let start = *i;
            let mut n: usize = 0;
            while *i < chars.len() && chars[*i].is_ascii_digit() {
                n = n
                    .saturating_mul(10)
                    .saturating_add(chars[*i] as usize - '0' as usize);
                *i += 1;
            }
            (*i > start).then_some(n)
        };
        let mut width = number(&mut i);
        if width.is_some_and(|w| w > FMT_MAX) {
            out.push_str("%!(BADWIDTH)");
            width = None;
        }
        let mut prec = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            prec = Some(number(&mut i).unwrap_or(0));
            if prec.is_some_and(|p| p > FMT_MAX) {
                out.push_str("%!(BADPREC)");
                prec = None;
            }
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let numeric = matches!(arg, V::Int(_) | V::Float(_));
        let sign = |s: String, negative: bool| -> String {
            if negative {
                s
            } else if plus {
                format!("+{s}")
            } else if space {
                format!(" {s}")
            } else {
                s
            }
        };
        let body = match (verb, arg) {
            ('v', V::Int(n)) | ('d', V::Int(n)) => sign(n.to_string(), *n < 0),
            ('v', V::Float(f)) => sign(go_format_float(*f), *f < 0.0),
            ('v', V::Str(s)) if sharp => quote(s),
            ('v', other) => plain(other),
            ('s', V::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            },
            ('s', V::List(_) | V::Map(_)) => plain(arg),
            ('q', V::Str(s)) => quote(s),
            ('q', V::Int(n)) => format!("'{}'", char::from_u32(*n as u32).unwrap_or('\u{FFFD}')),
            ('t', V::Bool(b)) => b.to_string(),
            ('c', V::Int(n)) => char::from_u32(*n as u32).unwrap_or('\u{FFFD}').to_string(),
            ('x', V::Int(n)) => sign(format!("{}{:x}", if sharp { "0x" } else { "" }, n), *n < 0),
            ('X', V::Int(n)) => sign(format!("{}{:X}", if sharp { "0X" } else { "" }, n), *n < 0),
            ('o', V::Int(n)) => format!("{n:o}"),
            ('b', V::Int(n)) => format!("{n:b}"),
            ('x', V::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', V::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('f' | 'F', V::Float(f)) => sign(fixed(*f, prec.unwrap_or(6)), *f < 0.0),
            ('e' | 'E', V::Float(f)) => {
                sign(exp_form(*f, prec.unwrap_or(6), verb == 'E'), *f < 0.0)
            }
            ('g' | 'G', V::Float(f)) => sign(go_format_float(*f), *f < 0.0),
            ('T', other) => other.type_name().to_string(),
            (verb, other) => bad(verb, other),
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.push_str(&" ".repeat(pad));
                } else if zero && numeric {
                    let (s, digits) = match body.strip_prefix(['-', '+']) {
                        Some(d) => (&body[..1], d),
                        None => ("", body.as_str()),
                    };
                    out.push_str(s);
                    out.push_str(&"0".repeat(pad));
                    out.push_str(digits);
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
        capped(&out, cap)?;
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), plain(a)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    capped(&out, cap)?;
    Ok(out)
}
