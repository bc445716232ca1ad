//! Executing a parsed template against data, with Go's builtins.

use super::funcs;
use super::parse::{Arg, List, Node, Pipe, Pos, Tree};
use super::printf::{sprint, sprintf, sprintln};
use super::value::{format_v, V};
use std::rc::Rc;

/// An execution error at the action that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    /// Where the action starts.
    pub pos: Pos,
    /// The action's source.
    pub action: String,
    /// What went wrong.
    pub message: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
}

/// Limits nested `template` calls, as Go limits recursion depth (Go allows 100,000; a
/// Rust stack would overflow long before that).
const MAX_DEPTH: usize = 1000;

/// One execution of a template.
pub struct Exec<'a> {
    tree: &'a Tree,
    missing_error: bool,
    vars: Vec<(String, V)>,
    depth: usize,
    pos: Pos,
    action: String,
}

type R<T> = Result<T, String>;

impl<'a> Exec<'a> {
    /// Runs `tree` with `data` as `.` and `$`; `missing_error` is `missingkey=error`.
    pub fn run(tree: &'a Tree, data: V, missing_error: bool) -> Result<String, ExecError> {
        let mut e = Exec {
            tree,
            missing_error,
            vars: vec![("$".into(), data.clone())],
            depth: 0,
            pos: Pos::default(),
            action: String::new(),
        };
        let mut out = String::new();
        match e.walk(&mut out, &data, &tree.root) {
            Ok(_) => Ok(out),
            Err(message) => Err(ExecError {
                pos: e.pos,
                action: e.action,
                message,
            }),
        }
    }

    fn walk(&mut self, out: &mut String, dot: &V, list: &List) -> R<Flow> {
        for node in list {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(dot, pipe)?;
                    if pipe.decls.is_empty() {
                        out.push_str(&format_v(&v));
                    }
                }
                Node::If(pipe, body, else_list) | Node::With(pipe, body, else_list) => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    // `with` moves dot to the value; `if` keeps it.
                    let inner = if matches!(node, Node::With(..)) {
                        &v
                    } else {
                        dot
                    };
                    let flow = if v.truthy() {
                        self.walk(out, inner, body)?
                    } else if let Some(e) = else_list {
                        self.walk(out, dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(pipe, body, else_list) => {
                    let mark = self.vars.len();
                    let mut p = pipe.clone();
                    let decls = std::mem::take(&mut p.decls);
                    let v = self.pipe(dot, &p)?;
                    let items: Vec<(V, V)> = match &v {
                        V::List(l) => l
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (V::Int(i as i64), x.clone()))
                            .collect(),
                        V::Map(m) => m
                            .iter()
                            .map(|(k, x)| (V::Str(k.as_str().into()), x.clone()))
                            .collect(),
                        V::Int(n) => (0..*n).map(|i| (V::Int(i), V::Int(i))).collect(),
                        V::Missing | V::Nil => Vec::new(),
                        other => {
                            return Err(format!("range can't iterate over {}", format_v(other)))
                        }
                    };
                    if items.is_empty() {
                        if let Some(e) = else_list {
                            self.walk(out, dot, e)?;
                        }
                    }
                    for (k, x) in items {
                        let inner = self.vars.len();
                        match decls.as_slice() {
                            [] => {}
                            [one] => self.vars.push((one.clone(), x.clone())),
                            [a, b, ..] => {
                                self.vars.push((a.clone(), k));
                                self.vars.push((b.clone(), x.clone()));
                            }
                        }
                        let flow = self.walk(out, &x, body)?;
                        self.vars.truncate(inner);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Template(pos, name, pipe) => {
                    self.pos = *pos;
                    self.action = format!("template {name:?}");
                    let body = self
                        .tree
                        .defines
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("no such template {name:?}"))?;
                    let data = match pipe {
                        Some(p) => self.pipe(dot, p)?,
                        None => V::Nil,
                    };
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                    }
                    let saved = std::mem::replace(&mut self.vars, vec![("$".into(), data.clone())]);
                    self.walk(out, &data, &body)?;
                    self.vars = saved;
                    self.depth -= 1;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, dot: &V, pipe: &Pipe) -> R<V> {
        if !pipe.text.is_empty() {
            self.pos = pipe.pos;
            self.action = pipe.text.clone();
        }
        let mut last: Option<V> = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(dot, cmd, last)?);
        }
        let v = last.unwrap_or(V::Missing);
        if pipe.assign {
            for name in &pipe.decls {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(format!("undefined variable: {name}")),
                }
            }
        } else {
            for name in &pipe.decls {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn command(&mut self, dot: &V, args: &[Arg], last: Option<V>) -> R<V> {
        let Some(first) = args.first() else {
            return Err("empty command".into());
        };
        if let Arg::Ident(name) = first {
            if name == "and" || name == "or" {
                let mut operands: Vec<&Arg> = args[1..].iter().collect();
                let mut v = V::Missing;
                let n = operands.len() + usize::from(last.is_some());
                if n == 0 {
                    return Err(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    ));
                }
                for a in operands.drain(..) {
                    v = self.arg(dot, a)?;
                    if (name == "and") != v.truthy() {
                        return Ok(v);
                    }
                }
                if let Some(l) = last {
                    v = l;
                }
                return Ok(v);
            }
            let mut values = Vec::with_capacity(args.len());
            for a in &args[1..] {
                values.push(self.arg(dot, a)?);
            }
            if let Some(l) = last {
                values.push(l);
            }
            let result = self.call(name, values)?;
            // sprig's set, unset and merge change the dict they are given; values here are
            // immutable, so the changed dict is written back to the variable it came from.
            let mutates = matches!(
                name.as_str(),
                "set" | "unset" | "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite"
            );
            if let (true, Some(Arg::Var(var, fields)), V::Map(_)) = (mutates, args.get(1), &result)
            {
                self.write_back(var, fields, result.clone());
            }
            return Ok(result);
        }
        if args.len() > 1 || last.is_some() {
            return Err(format!(
                "can't give argument to non-function {}",
                describe(first)
            ));
        }
        self.arg(dot, first)
    }

    fn arg(&mut self, dot: &V, a: &Arg) -> R<V> {
        match a {
            Arg::Field(fields) => self.fields(dot.clone(), fields),
            Arg::Var(name, fields) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable: {name}"))?;
                self.fields(v, fields)
            }
            Arg::Const(v) => Ok(v.clone()),
            Arg::Nil => Ok(V::Nil),
            Arg::Ident(name) => self.call(name, Vec::new()),
            Arg::Sub(pipe, fields) => {
                let v = self.pipe(dot, pipe)?;
                self.fields(v, fields)
            }
        }
    }

    /// Replaces the value at `$var.fields...` with `value`.
    fn write_back(&mut self, var: &str, fields: &[String], value: V) {
        fn replace(target: &mut V, fields: &[String], value: V) {
            match fields.split_first() {
                None => *target = value,
                Some((first, rest)) => {
                    if let V::Map(m) = target {
                        if let Some(child) = Rc::make_mut(m).get_mut(first) {
                            replace(child, rest, value);
                        }
                    }
                }
            }
        }
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == var) {
            replace(&mut slot.1, fields, value);
        }
    }

    fn fields(&self, mut v: V, fields: &[String]) -> R<V> {
        for f in fields {
            v = match &v {
                V::Map(m) => match m.get(f) {
                    Some(x) => x.clone(),
                    None if self.missing_error => {
                        return Err(format!("map has no entry for key {f:?}"))
                    }
                    None => V::Missing,
                },
                V::Missing if self.missing_error => {
                    return Err(format!("nil data; no entry for key {f:?}"))
                }
                V::Missing => V::Missing,
                V::Nil => return Err(format!("nil pointer evaluating interface {{}}.{f}")),
                other => {
                    return Err(format!(
                        "can't evaluate field {f} in type {}",
                        other.type_name()
                    ))
                }
            };
        }
        Ok(v)
    }

    fn call(&mut self, name: &str, args: Vec<V>) -> R<V> {
        let want = |n: usize| -> R<()> {
            if args.len() != n {
                return Err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ));
            }
            Ok(())
        };
        match name {
            "not" => {
                want(1)?;
                Ok(V::Bool(!args[0].truthy()))
            }
            "len" => {
                want(1)?;
                Ok(V::Int(match &args[0] {
                    V::Str(s) => s.len(),
                    V::List(l) => l.len(),
                    V::Map(m) => m.len(),
                    other => {
                        return Err(format!(
                            "error calling len: len of type {}",
                            other.type_name()
                        ))
                    }
                } as i64))
            }
            "index" => {
                let Some((first, keys)) = args.split_first() else {
                    return Err("wrong number of args for index: want at least 1 got 0".into());
                };
                let mut v = first.clone();
                for k in keys {
                    v = match (&v, k) {
                        (V::List(l), V::Int(i)) => l
                            .get(usize::try_from(*i).map_err(|_| {
                                format!("error calling index: index out of range: {i}")
                            })?)
                            .cloned()
                            .ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })?,
                        (V::Str(s), V::Int(i)) => {
                            V::Int(*s.as_bytes().get(*i as usize).ok_or_else(|| {
                                format!("error calling index: index out of range: {i}")
                            })? as i64)
                        }
                        (V::Map(m), V::Str(key)) => m.get(key.as_ref()).cloned().unwrap_or(V::Nil),
                        (V::Missing | V::Nil, _) => {
                            return Err("error calling index: index of untyped nil".into())
                        }
                        (V::Map(_), other) => {
                            return Err(format!(
                                "error calling index: value has type {}; should be string",
                                other.type_name()
                            ))
                        }
                        (other, _) => {
                            return Err(format!(
                                "error calling index: can't index item of type {}",
                                other.type_name()
                            ))
                        }
                    };
                }
                Ok(v)
            }
            "slice" => {
                let Some((first, idx)) = args.split_first() else {
                    return Err("wrong number of args for slice: want at least 1 got 0".into());
                };
                let bounds: Vec<usize> = idx
                    .iter()
                    .map(|i| match i {
                        V::Int(n) if *n >= 0 => Ok(*n as usize),
                        other => Err(format!(
                            "error calling slice: cannot index slice/array with type {}",
                            other.type_name()
                        )),
                    })
                    .collect::<R<_>>()?;
                let len = match first {
                    V::Str(s) => s.len(),
                    V::List(l) => l.len(),
                    other => {
                        return Err(format!(
                            "error calling slice: can't slice item of type {}",
                            other.type_name()
                        ))
                    }
                };
                let lo = bounds.first().copied().unwrap_or(0);
                let hi = bounds.get(1).copied().unwrap_or(len);
                if lo > hi || hi > len {
                    return Err(format!("error calling slice: index out of range: {hi}"));
                }
                Ok(match first {
                    V::Str(s) => V::Str(
                        s.get(lo..hi)
                            .ok_or("error calling slice: not at a character boundary")?
                            .into(),
                    ),
                    V::List(l) => V::List(Rc::new(l[lo..hi].to_vec())),
                    _ => V::Nil,
                })
            }
            "print" => Ok(V::Str(sprint(&args).into())),
            "println" => Ok(V::Str(sprintln(&args).into())),
            "printf" => {
                let Some((f, rest)) = args.split_first() else {
                    return Err("wrong number of args for printf: want at least 1 got 0".into());
                };
                let f = f.as_str().ok_or("printf: format must be a string")?;
                Ok(V::Str(sprintf(f, rest).into()))
            }
            "eq" => {
                if args.len() < 2 {
                    return Err("missing argument for comparison".into());
                }
                for other in &args[1..] {
                    if compare_eq(&args[0], other)? {
                        return Ok(V::Bool(true));
                    }
                }
                Ok(V::Bool(false))
            }
            "ne" => {
                want(2)?;
                Ok(V::Bool(!compare_eq(&args[0], &args[1])?))
            }
            "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let ord = compare_ord(&args[0], &args[1])?;
                Ok(V::Bool(match name {
                    "lt" => ord.is_lt(),
                    "le" => ord.is_le(),
                    "gt" => ord.is_gt(),
                    _ => ord.is_ge(),
                }))
            }
            "html" => Ok(V::Str(html_escape(&sprint(&args)).into())),
            "js" => Ok(V::Str(js_escape(&sprint(&args)).into())),
            "urlquery" => Ok(V::Str(funcs::query_escape(&sprint(&args)).into())),
            "call" => {
                Err("error calling call: prism templates have no function values to call".into())
            }
            _ => funcs::call(name, args),
        }
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Field(f) => format!(".{}", f.join(".")),
        Arg::Var(n, f) if f.is_empty() => n.clone(),
        Arg::Var(n, f) => format!("{n}.{}", f.join(".")),
        Arg::Const(v) => format_v(v),
        Arg::Nil => "nil".into(),
        Arg::Ident(n) => n.clone(),
        Arg::Sub(..) => "(pipeline)".into(),
    }
}

/// Go's `eq` on basic kinds: ints with ints, floats with floats, strings, bools; nil with nil.
fn compare_eq(a: &V, b: &V) -> R<bool> {
    Ok(match (a, b) {
        (V::Int(x), V::Int(y)) => x == y,
        (V::Float(x), V::Float(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Missing | V::Nil, V::Missing | V::Nil) => true,
        (V::List(_) | V::Map(_), _) | (_, V::List(_) | V::Map(_)) => {
            return Err("error calling eq: non-comparable types".into())
        }
        (V::Missing | V::Nil, _) | (_, V::Missing | V::Nil) => {
            return Err("error calling eq: invalid type for comparison".into())
        }
        _ => return Err("error calling eq: incompatible types for comparison".into()),
    })
}

fn compare_ord(a: &V, b: &V) -> R<std::cmp::Ordering> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Ok(x.cmp(y)),
        (V::Float(x), V::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "error calling lt: NaN".into()),
        (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
        (V::Bool(_), V::Bool(_)) | (V::List(_), _) | (V::Map(_), _) => {
            Err("error calling lt: invalid type for comparison".into())
        }
        _ => Err("error calling lt: incompatible types for comparison".into()),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
