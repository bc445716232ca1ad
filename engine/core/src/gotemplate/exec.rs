//! Executing a parsed template against data, with Go's builtins.

use super::funcs;
use super::parse::{Arg, List, Node, Pipe, Pos, Tree};
use super::printf::{sprint, sprintf, sprintln};
use super::value::{format_v, V};
use crate::limits::{Budget, Limit};
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

/// One execution of a template.
pub struct Exec<'a> {
    tree: &'a Tree,
    missing_error: bool,
    vars: Vec<(String, V)>,
    /// Nested bodies and `template` calls being executed (bounded by `Limits::depth`,
    /// where Go allows 100,000 `template` calls: a Rust stack would overflow first).
    depth: usize,
    pos: Pos,
    action: Rc<str>,
    budget: &'a Budget,
    /// The maps that are Go `map[string]string` in Argo: a cluster's
    /// `.metadata.labels` and `.metadata.annotations` (all values strings).
    string_maps: Vec<*const std::collections::BTreeMap<String, V>>,
}

type R<T> = Result<T, String>;

impl<'a> Exec<'a> {
    /// Runs `tree` with `data` as `.` and `$`; `missing_error` is `missingkey=error`.
    /// Every step is paid from `budget`, and the output may not outgrow one field.
    pub fn run(
        tree: &'a Tree,
        data: V,
        missing_error: bool,
        budget: &'a Budget,
    ) -> Result<String, ExecError> {
        let mut string_maps = Vec::new();
        if let V::Map(root) = &data {
            if let Some(V::Map(meta)) = root.get("metadata") {
                for key in ["labels", "annotations"] {
                    if let Some(V::Map(m)) = meta.get(key) {
                        if m.values().all(|v| matches!(v, V::Str(_))) {
                            string_maps.push(&**m as *const _);
                        }
                    }
                }
            }
        }
        let mut e = Exec {
            tree,
            missing_error,
            vars: vec![("$".into(), data.clone())],
            depth: 0,
            pos: Pos::default(),
            action: Rc::from(""),
            budget,
            string_maps,
        };
        let mut out = String::new();
        match e.walk(&mut out, &data, &tree.root) {
            Ok(_) => Ok(out),
            Err(message) => Err(ExecError {
                pos: e.pos,
                action: e.action.to_string(),
                message,
            }),
        }
    }

    /// Walks a nested body: one level deeper, within the depth limit.
    fn nested(&mut self, out: &mut String, dot: &V, list: &List) -> R<Flow> {
        self.depth += 1;
        if self.depth > self.budget.limits.depth {
            return Err(Limit::Depth.exceeded(&self.budget.limits));
        }
        let flow = self.walk(out, dot, list);
        self.depth -= 1;
        flow
    }

    fn walk(&mut self, out: &mut String, dot: &V, list: &List) -> R<Flow> {
        for node in list {
            self.budget.step(1)?;
            match node {
                Node::Text(t) => {
                    out.push_str(t);
                    self.budget.check(Limit::FieldBytes, out.len())?;
                }
                Node::Action(pipe) => {
                    let v = self.pipe(dot, pipe)?;
                    if pipe.decls.is_empty() {
                        match &v {
                            V::Str(s) => out.push_str(s),
                            other => out.push_str(&format_v(other)),
                        }
                        self.budget.check(Limit::FieldBytes, out.len())?;
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
                        self.nested(out, inner, body)?
                    } else if let Some(e) = else_list {
                        self.nested(out, dot, e)?
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
                    let v = self.pipe_with(dot, pipe, false)?;
                    let n = match &v {
                        V::List(l) => l.len(),
                        V::Map(m) => m.len(),
                        V::Int(n) => {
                            if pipe.decls.len() > 1 {
                                return Err(format!(
                                    "can't use {n} to iterate over more than one variable"
                                ));
                            }
                            usize::try_from(*n).unwrap_or(0)
                        }
                        V::Missing | V::Nil => 0,
                        other => {
                            return Err(format!("range can't iterate over {}", format_v(other)))
                        }
                    };
                    if n == 0 {
                        if let Some(e) = else_list {
                            self.nested(out, dot, e)?;
                        }
                    }
                    // Items are taken one at a time: `range 10000000000` allocates nothing.
                    let mut keys = match &v {
                        V::Map(m) => Some(m.iter()),
                        _ => None,
                    };
                    for i in 0..n {
                        self.budget.step(1)?;
                        let (k, x) = match (&v, keys.as_mut()) {
                            (V::List(l), _) => (V::Int(i as i64), l[i].clone()),
                            (V::Map(_), Some(it)) => match it.next() {
                                Some((k, x)) => (V::Str(k.as_str().into()), x.clone()),
                                None => break,
                            },
                            _ => (V::Int(i as i64), V::Int(i as i64)),
                        };
                        let inner = self.vars.len();
                        match pipe.decls.as_slice() {
                            [] => {}
                            [one] => self.vars.push((one.clone(), x.clone())),
                            [a, b, ..] => {
                                self.vars.push((a.clone(), k));
                                self.vars.push((b.clone(), x.clone()));
                            }
                        }
                        let flow = self.nested(out, &x, body)?;
                        self.vars.truncate(inner);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Template(pos, name, pipe) => {
                    self.pos = *pos;
                    self.action = format!("template {name:?}").into();
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
                    let saved = std::mem::replace(&mut self.vars, vec![("$".into(), data.clone())]);
                    self.nested(out, &data, &body)?;
                    self.vars = saved;
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, dot: &V, pipe: &Pipe) -> R<V> {
        self.pipe_with(dot, pipe, true)
    }

    /// Evaluates a pipeline; `declare` false leaves its variables to the caller (`range`).
    fn pipe_with(&mut self, dot: &V, pipe: &Pipe, declare: bool) -> R<V> {
        if !pipe.text.is_empty() {
            self.pos = pipe.pos;
            self.action = pipe.text.clone();
        }
        let mut last: Option<V> = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(dot, cmd, last)?);
        }
        let v = last.unwrap_or(V::Missing);
        if !declare {
            return Ok(v);
        }
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
        // A call costs a step, plus one per 64 bytes of string and per element of a list
        // or map it is given: what a function may walk is paid for before it runs.
        let size: usize = args
            .iter()
            .map(|a| match a {
                V::Str(s) => s.len() / 64,
                V::List(l) => l.len(),
                V::Map(m) => m.len(),
                _ => 0,
            })
            .sum();
        self.budget.step(1 + size as u64)?;
        super::parse::check_call(name, args.len())?;
        let v = self.call_checked(name, args)?;
        // What a function builds is bounded: strings by the field limit, containers by
        // their element count, expanded size and depth (paid for in steps).
        match &v {
            V::Str(s) => self.budget.check(Limit::FieldBytes, s.len())?,
            V::List(_) | V::Map(_) => super::value::weigh(&v, self.budget)?,
            _ => {}
        }
        Ok(v)
    }

    fn call_checked(&mut self, name: &str, args: Vec<V>) -> R<V> {
        let cap = self.budget.limits.field_bytes;
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
                        (V::Map(m), V::Str(key)) => match m.get(key.as_ref()) {
                            Some(v) => v.clone(),
                            // A map[string]string gives "" for a missing key, any other nil.
                            None if self.string_maps.iter().any(|s| std::ptr::eq(*s, &**m)) => {
                                V::Str("".into())
                            }
                            None => V::Nil,
                        },
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
            // sprig's `slice` (it replaces Go's builtin in Argo's function map): lists
            // only, `slice LIST [START [END]]`, further indices ignored.
            "slice" | "mustSlice" => {
                let Some((first, idx)) = args.split_first() else {
                    return Err(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    ));
                };
                let l = match first {
                    V::List(l) => l,
                    other => {
                        return Err(format!(
                            "error calling {name}: list should be type of slice or array but {}",
                            funcs::kind_of(other)
                        ))
                    }
                };
                if l.is_empty() {
                    return Ok(V::Nil);
                }
                let lo = idx.first().map(funcs::to_i64).unwrap_or(0);
                let hi = idx.get(1).map(funcs::to_i64).unwrap_or(l.len() as i64);
                if lo < 0 || lo > hi || hi > l.len() as i64 {
                    return Err(format!(
                        "error calling {name}: runtime error: slice bounds out of range [{lo}:{hi}] with capacity {}",
                        l.len()
                    ));
                }
                Ok(V::List(Rc::new(l[lo as usize..hi as usize].to_vec())))
            }
            "print" => Ok(V::Str(sprint(&args, cap)?.into())),
            "println" => Ok(V::Str(sprintln(&args, cap)?.into())),
            "printf" => {
                let Some((f, rest)) = args.split_first() else {
                    return Err("wrong number of args for printf: want at least 1 got 0".into());
                };
                let f = f.as_str().ok_or("printf: format must be a string")?;
                Ok(V::Str(sprintf(f, rest, cap)?.into()))
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
            "html" => Ok(V::Str(html_escape(&sprint(&args, cap)?).into())),
            "js" => Ok(V::Str(js_escape(&sprint(&args, cap)?).into())),
            "urlquery" => Ok(V::Str(funcs::query_escape(&sprint(&args, cap)?).into())),
            "call" => {
                Err("error calling call: prism templates have no function values to call".into())
            }
            _ => funcs::call(name, args, self.budget),
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
