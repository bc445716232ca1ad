//! Lexing and parsing Go `text/template` source into a tree.
//!
//! One pass over the text: literal text between actions, and inside `{{ }}` a small
//! token stream parsed by recursive descent. `define` and `block` bodies are collected
//! into a name → tree map, as Go's parser does.

use super::table;
use super::value::V;
use crate::limits::{Limit, Limits};
use std::collections::HashMap;
use std::rc::Rc;

/// A position in the template source (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub col: usize,
}

/// A parse error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

/// A list of nodes.
pub type List = Vec<Node>;

/// A template tree node.
#[derive(Debug, Clone)]
pub enum Node {
    /// Literal text.
    Text(String),
    /// `{{pipeline}}`: evaluate and print (unless it declares variables).
    Action(Pipe),
    /// `{{if}}`.
    If(Pipe, List, Option<List>),
    /// `{{range}}`.
    Range(Pipe, List, Option<List>),
    /// `{{with}}`.
    With(Pipe, List, Option<List>),
    /// `{{template "name" pipeline}}`.
    Template(Pos, String, Option<Pipe>),
    /// `{{break}}`.
    Break,
    /// `{{continue}}`.
    Continue,
}

/// A pipeline, with optional variable declarations (`$x := ...`, `$i, $v := ...`).
#[derive(Debug, Clone)]
pub struct Pipe {
    /// Where the action starts.
    pub pos: Pos,
    /// The action's source text, for error messages.
    pub text: Rc<str>,
    /// Declared or assigned variables.
    pub decls: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    /// Commands separated by `|`.
    pub cmds: Vec<Vec<Arg>>,
}

/// One operand of a command.
#[derive(Debug, Clone)]
pub enum Arg {
    /// `.` possibly followed by fields: `.a.b` is `Field(["a","b"])`, `.` is `Field([])`.
    Field(Vec<String>),
    /// `$name.fields`.
    Var(String, Vec<String>),
    /// A function name.
    Ident(String),
    /// A constant.
    Const(V),
    /// `nil`.
    Nil,
    /// `(pipeline).fields`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    /// A `.field` glued to the operand before it (`.a.b`, `$x.y`, `(pipe).z`).
    Chain(String),
    Var(String),
    Str(String),
    Num(String),
    Char(char),
    Declare,
    Assign,
    Pipe,
    LParen,
    RParen,
    Comma,
}

/// A parsed template: the main tree and the `define`d ones.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// The top-level node list.
    pub root: List,
    /// Templates defined with `define` or `block`.
    pub defines: HashMap<String, Rc<List>>,
}

/// Parses `src`; nesting deeper than `limits.depth` is an error, never a deep recursion.
pub fn parse(src: &str, limits: &Limits) -> Result<Tree, ParseError> {
    let items = split(src)?;
    let mut p = Parser {
        items,
        i: 0,
        defines: HashMap::new(),
        depth: 0,
        range_depth: 0,
        limits: *limits,
    };
    let (root, end) = p.list()?;
    if let Some((pos, kw)) = end {
        return Err(ParseError {
            pos,
            message: format!("unexpected {{{{{kw}}}}}"),
        });
    }
    Ok(Tree {
        root,
        defines: p.defines,
    })
}

/// Text or an action's inner source.
#[derive(Debug)]
enum Item {
    Text(String),
    Action(Pos, String),
}

/// Line and column of offsets visited in increasing order, in one pass over the source.
struct Positions<'a> {
    src: &'a str,
    offset: usize,
    line: usize,
    col: usize,
}

impl Positions<'_> {
    fn at(&mut self, offset: usize) -> Pos {
        for c in self.src[self.offset..offset].chars() {
            if c == '\n' {
                self.line += 1;
                self.col = 1;
            } else {
                self.col += 1;
            }
        }
        self.offset = offset;
        Pos {
            line: self.line,
            col: self.col,
        }
    }
}

/// Splits the source into text and actions, applying `{{-` / `-}}` trimming and dropping comments.
fn split(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    let mut positions = Positions {
        src,
        offset: 0,
        line: 1,
        col: 1,
    };
    while let Some(found) = src[rest..].find("{{") {
        let start = rest + found;
        let mut text = &src[rest..start];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let mut inner_start = start + 2;
        let left_trim = src[inner_start..].starts_with("- ")
            || src[inner_start..].starts_with("-\t")
            || src[inner_start..].starts_with("-\n")
            || src[inner_start..].starts_with("-\r");
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner_start += 1;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let pos = positions.at(start);
        // Find the closing delimiter, skipping quoted strings and comments.
        let end = find_close(src, inner_start).ok_or_else(|| ParseError {
            pos,
            message: "unclosed action".into(),
        })?;
        let mut inner_end = end;
        let right_trim = end > inner_start
            && src[..end].ends_with('-')
            && src[..end - 1].ends_with([' ', '\t', '\r', '\n']);
        if right_trim {
            inner_end -= 1;
        }
        let inner = src[inner_start..inner_end].trim();
        if inner.starts_with("/*") {
            if !inner.ends_with("*/") {
                return Err(ParseError {
                    pos,
                    message: "unclosed comment".into(),
                });
            }
        } else {
            items.push(Item::Action(pos, inner.to_string()));
        }
        trim_next = right_trim;
        rest = end + 2;
    }
    let mut text = &src[rest..];
    if trim_next {
        text = text.trim_start_matches([' ', '\t', '\r', '\n']);
    }
    if !text.is_empty() {
        items.push(Item::Text(text.to_string()));
    }
    Ok(items)
}

fn find_close(src: &str, from: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    if src[from..].trim_start().starts_with("/*") {
        let c = src[from..].find("*/")? + from + 2;
        return src[c..].find("}}").map(|e| c + e);
    }
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A double-quoted string's body from `chars[*i]` on, with Go's escapes; `*i` ends
/// after the closing quote.
fn quoted(chars: &[char], i: &mut usize) -> Result<String, String> {
    let mut v = String::new();
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err("unterminated quoted string".into());
        };
        *i += 1;
        match c {
            '"' => return Ok(v),
            '\\' => {
                let e = chars
                    .get(*i)
                    .copied()
                    .ok_or_else(|| "unterminated quoted string".to_string())?;
                *i += 1;
                match e {
                    'n' => v.push('\n'),
                    't' => v.push('\t'),
                    'r' => v.push('\r'),
                    '\\' => v.push('\\'),
                    '"' => v.push('"'),
                    '\'' => v.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.get(*i..*i + n).unwrap_or(&[]).iter().collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid escape \\{e}{hex}"))?;
                        v.push(code);
                        *i += n;
                    }
                    other => return Err(format!("unknown escape sequence \\{other}")),
                }
            }
            c => v.push(c),
        }
    }
}

fn lex(pos: Pos, s: &str) -> Result<Vec<Tok>, ParseError> {
    let err = |m: String| ParseError { pos, message: m };
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1
            }
            '$' => {
                i += 1;
                let name = word(&mut i);
                out.push(Tok::Var(format!("${name}")));
            }
            '.' if chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                && !matches!(
                    out.last(),
                    Some(Tok::RParen) | Some(Tok::Var(_)) | Some(Tok::Field(_))
                ) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            '.' => {
                let glued = i > 0
                    && !chars[i - 1].is_whitespace()
                    && matches!(
                        out.last(),
                        Some(Tok::Field(_) | Tok::Chain(_) | Tok::Var(_) | Tok::RParen)
                    );
                i += 1;
                let name = word(&mut i);
                out.push(if glued {
                    Tok::Chain(name)
                } else {
                    Tok::Field(name)
                });
            }
            '"' => {
                i += 1;
                let v = quoted(&chars, &mut i).map_err(err)?;
                out.push(Tok::Str(v));
            }
            '`' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(err("unterminated raw quoted string".into()));
                }
                out.push(Tok::Str(chars[start..i].iter().collect()));
                i += 1;
            }
            '\'' => {
                let c = *chars
                    .get(i + 1)
                    .ok_or_else(|| err("unterminated character constant".into()))?;
                let (ch, len) = if c == '\\' {
                    let e = chars.get(i + 2).copied().unwrap_or('\\');
                    (
                        match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        },
                        3,
                    )
                } else {
                    (c, 2)
                };
                if chars.get(i + len) != Some(&'\'') {
                    return Err(err("unterminated character constant".into()));
                }
                out.push(Tok::Char(ch));
                i += len + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || chars[i] == '_'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E' | 'p' | 'P')))
                {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            c if c.is_alphabetic() || c == '_' => {
                let w = word(&mut i);
                out.push(Tok::Ident(w));
            }
            other => return Err(err(format!("unexpected {other:?} in action"))),
        }
    }
    Ok(out)
}

struct Parser {
    items: Vec<Item>,
    i: usize,
    defines: HashMap<String, Rc<List>>,
    /// Nesting of control structures around the current list.
    depth: usize,
    /// How many `range` bodies enclose the current list (`break`/`continue` need one).
    range_depth: usize,
    limits: Limits,
}

/// What ended a list: `end`, `else` (with the rest of the action), or nothing.
type End = Option<(Pos, String)>;

impl Parser {
    fn list(&mut self) -> Result<(List, End), ParseError> {
        let mut nodes = Vec::new();
        while self.i < self.items.len() {
            let item = std::mem::replace(&mut self.items[self.i], Item::Text(String::new()));
            self.i += 1;
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action(pos, src) => {
                    let kw = src.split_whitespace().next().unwrap_or("").to_string();
                    let rest = src[kw.len()..].trim().to_string();
                    match kw.as_str() {
                        "end" => return Ok((nodes, Some((pos, "end".into())))),
                        "else" => {
                            return Ok((
                                nodes,
                                Some((pos, format!("else {rest}").trim().to_string())),
                            ))
                        }
                        "if" | "range" | "with" => nodes.push(self.control(pos, &kw, &rest)?),
                        "define" if self.depth > 0 => {
                            return Err(ParseError {
                                pos,
                                message: "unexpected <define> in command".into(),
                            })
                        }
                        "define" | "block" => {
                            let toks = lex(pos, &rest)?;
                            let Some(Tok::Str(name)) = toks.first().cloned() else {
                                return Err(ParseError {
                                    pos,
                                    message: format!("{kw} needs a quoted template name"),
                                });
                            };
                            self.enter(pos)?;
                            let ranges = std::mem::take(&mut self.range_depth);
                            let (body, end) = self.list()?;
                            self.range_depth = ranges;
                            self.depth -= 1;
                            match end {
                                Some((_, e)) if e == "end" => {}
                                _ => {
                                    return Err(ParseError {
                                        pos,
                                        message: format!("unexpected EOF in {kw}"),
                                    })
                                }
                            }
                            self.defines.insert(name.clone(), Rc::new(body));
                            if kw == "block" {
                                let pipe = if toks.len() > 1 {
                                    Some(pipe_of(pos, &rest, &toks[1..], &self.limits)?)
                                } else {
                                    None
                                };
                                nodes.push(Node::Template(pos, name, pipe));
                            }
                        }
                        "template" => {
                            let toks = lex(pos, &rest)?;
                            let Some(Tok::Str(name)) = toks.first().cloned() else {
                                return Err(ParseError {
                                    pos,
                                    message: "template needs a quoted template name".into(),
                                });
                            };
                            let pipe = if toks.len() > 1 {
                                Some(pipe_of(pos, &rest, &toks[1..], &self.limits)?)
                            } else {
                                None
                            };
                            nodes.push(Node::Template(pos, name, pipe));
                        }
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err(ParseError {
                                    pos,
                                    message: format!("{{{{{kw}}}}} outside {{{{range}}}}"),
                                });
                            }
                            if !rest.is_empty() {
                                return Err(ParseError {
                                    pos,
                                    message: format!("unexpected {rest:?} in {{{{{kw}}}}}"),
                                });
                            }
                            nodes.push(if kw == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        _ => {
                            let toks = lex(pos, &src)?;
                            let pipe = pipe_of(pos, &src, &toks, &self.limits)?;
                            if pipe.cmds.is_empty() {
                                return Err(ParseError {
                                    pos,
                                    message: "missing value for command".into(),
                                });
                            }
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    /// One level deeper; an error past the depth limit.
    fn enter(&mut self, pos: Pos) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.limits.depth {
            return Err(ParseError {
                pos,
                message: Limit::Depth.exceeded(&self.limits),
            });
        }
        Ok(())
    }

    fn control(&mut self, pos: Pos, kw: &str, rest: &str) -> Result<Node, ParseError> {
        self.enter(pos)?;
        let node = self.control_body(pos, kw, rest);
        self.depth -= 1;
        node
    }

    fn control_body(&mut self, pos: Pos, kw: &str, rest: &str) -> Result<Node, ParseError> {
        let toks = lex(pos, rest)?;
        let pipe = pipe_of(pos, rest, &toks, &self.limits)?;
        if pipe.cmds.is_empty() {
            return Err(ParseError {
                pos,
                message: format!("missing value for {kw}"),
            });
        }
        if kw == "range" {
            self.range_depth += 1;
        }
        let body = self.list();
        if kw == "range" {
            self.range_depth -= 1;
        }
        let (body, end) = body?;
        let else_list = match end {
            Some((_, e)) if e == "end" => None,
            Some((epos, e)) if e == "else" => {
                let (l, end2) = self.list()?;
                match end2 {
                    Some((_, e2)) if e2 == "end" => Some(l),
                    _ => {
                        return Err(ParseError {
                            pos: epos,
                            message: format!("unexpected EOF in {kw}"),
                        })
                    }
                }
            }
            Some((epos, e)) => {
                // `else if ...` / `else with ...`: a nested control that shares our `end`.
                let chained = e.trim_start_matches("else").trim();
                let ckw = chained.split_whitespace().next().unwrap_or("").to_string();
                if ckw != "if" && ckw != "with" {
                    return Err(ParseError {
                        pos: epos,
                        message: format!("unexpected {{{{{e}}}}}"),
                    });
                }
                let crest = chained[ckw.len()..].trim().to_string();
                Some(vec![self.control(epos, &ckw, &crest)?])
            }
            None => {
                return Err(ParseError {
                    pos,
                    message: format!("unexpected EOF in {kw}"),
                })
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, else_list),
            "range" => Node::Range(pipe, body, else_list),
            _ => Node::With(pipe, body, else_list),
        })
    }
}

fn pipe_of(pos: Pos, text: &str, toks: &[Tok], limits: &Limits) -> Result<Pipe, ParseError> {
    // Parentheses nest by recursion below: refuse deep nesting before descending.
    let mut depth = 0usize;
    for t in toks {
        match t {
            Tok::LParen => {
                depth += 1;
                if depth > limits.depth {
                    return Err(ParseError {
                        pos,
                        message: Limit::Depth.exceeded(limits),
                    });
                }
            }
            Tok::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    pipe_at(pos, text, toks)
}

fn pipe_at(pos: Pos, text: &str, toks: &[Tok]) -> Result<Pipe, ParseError> {
    let err = |m: &str| ParseError {
        pos,
        message: m.to_string(),
    };
    let mut decls = Vec::new();
    let mut assign = false;
    let mut start = 0;
    // Declarations: $x := / $x = / $i, $v :=
    let decl_end = toks
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(d) = decl_end {
        let head = &toks[..d];
        let all_vars =
            head.iter().all(|t| matches!(t, Tok::Var(_) | Tok::Comma)) && !head.is_empty();
        if all_vars {
            for t in head {
                if let Tok::Var(v) = t {
                    decls.push(v.clone());
                }
            }
            assign = toks[d] == Tok::Assign;
            start = d + 1;
        }
    }
    let mut cmds = Vec::new();
    let mut cur = Vec::new();
    let mut i = start;
    while i < toks.len() {
        match &toks[i] {
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err(err("missing command before |"));
                }
                cmds.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                let (arg, next) = operand(pos, toks, i)?;
                cur.push(arg);
                i = next;
            }
        }
    }
    if !cur.is_empty() {
        cmds.push(cur);
    } else if !cmds.is_empty() {
        return Err(err("missing command after |"));
    }
    if cmds.is_empty() && !decls.is_empty() {
        return Err(err("missing value for command"));
    }
    check_calls(pos, &cmds)?;
    Ok(Pipe {
        pos,
        text: text.into(),
        decls,
        assign,
        cmds,
    })
}

/// Go's parse-time checks of a pipeline, and every call's argument count against the
/// function table (Go checks that when executing; Prism as soon as it can).
fn check_calls(pos: Pos, cmds: &[Vec<Arg>]) -> Result<(), ParseError> {
    let err = |message: String| ParseError { pos, message };
    for (stage, cmd) in cmds.iter().enumerate() {
        let piped = usize::from(stage > 0);
        match cmd.first() {
            Some(Arg::Ident(name)) => check_call(name, cmd.len() - 1 + piped).map_err(err)?,
            Some(Arg::Nil) => return Err(err("nil is not a command".into())),
            Some(Arg::Const(_) | Arg::Field(_)) if stage > 0 && cmd.len() == 1 => {
                return Err(err(format!(
                    "non executable command in pipeline stage {}",
                    stage + 1
                )))
            }
            _ => {}
        }
        for arg in cmd.iter().skip(1) {
            if let Arg::Ident(name) = arg {
                check_call(name, 0).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Collects the names of the functions `list` calls.
pub fn functions(list: &List, out: &mut std::collections::BTreeSet<String>) {
    fn pipe(p: &Pipe, out: &mut std::collections::BTreeSet<String>) {
        for arg in p.cmds.iter().flatten() {
            match arg {
                Arg::Ident(name) => {
                    out.insert(name.clone());
                }
                Arg::Sub(inner, _) => pipe(inner, out),
                _ => {}
            }
        }
    }
    for node in list {
        match node {
            Node::Action(p) => pipe(p, out),
            Node::If(p, body, other) | Node::Range(p, body, other) | Node::With(p, body, other) => {
                pipe(p, out);
                functions(body, out);
                if let Some(o) = other {
                    functions(o, out);
                }
            }
            Node::Template(_, _, Some(p)) => pipe(p, out),
            _ => {}
        }
    }
}

/// Whether `name` is a function that takes `args` arguments.
pub fn check_call(name: &str, args: usize) -> Result<(), String> {
    let f = table::lookup(name).ok_or_else(|| format!("function {name:?} not defined"))?;
    if !f.arity.accepts(args) {
        return Err(f.arity.error(name, args));
    }
    Ok(())
}

fn operand(pos: Pos, toks: &[Tok], i: usize) -> Result<(Arg, usize), ParseError> {
    let err = |m: String| ParseError { pos, message: m };
    let fields_after = |mut j: usize| {
        let mut f = Vec::new();
        while let Some(Tok::Chain(name)) = toks.get(j) {
            f.push(name.clone());
            j += 1;
        }
        (f, j)
    };
    Ok(match &toks[i] {
        Tok::Field(name) => {
            let (mut f, j) = fields_after(i + 1);
            if !name.is_empty() {
                f.insert(0, name.clone());
            }
            (Arg::Field(f), j)
        }
        Tok::Var(v) => {
            let (f, j) = fields_after(i + 1);
            (Arg::Var(v.clone(), f), j)
        }
        Tok::Str(s) => (Arg::Const(V::Str(s.as_str().into())), i + 1),
        Tok::Char(c) => (Arg::Const(V::Int(*c as i64)), i + 1),
        Tok::Num(n) => (
            Arg::Const(parse_number(n).ok_or_else(|| err(format!("bad number syntax: {n:?}")))?),
            i + 1,
        ),
        Tok::Ident(w) => match w.as_str() {
            "true" => (Arg::Const(V::Bool(true)), i + 1),
            "false" => (Arg::Const(V::Bool(false)), i + 1),
            "nil" => (Arg::Nil, i + 1),
            _ => (Arg::Ident(w.clone()), i + 1),
        },
        Tok::LParen => {
            let mut depth = 0;
            let mut j = i;
            loop {
                match toks.get(j) {
                    Some(Tok::LParen) => depth += 1,
                    Some(Tok::RParen) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => return Err(err("unclosed left paren".into())),
                }
                j += 1;
            }
            let inner = pipe_at(pos, "", &toks[i + 1..j])?;
            if inner.cmds.is_empty() {
                return Err(err("missing value in parentheses".into()));
            }
            let (f, k) = fields_after(j + 1);
            (Arg::Sub(Box::new(inner), f), k)
        }
        other => return Err(err(format!("unexpected {other:?} in operand"))),
    })
}

fn parse_number(n: &str) -> Option<V> {
    let clean = n.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Some(V::Int(if neg { -i } else { i }));
    }
    lower
        .parse::<f64>()
        .ok()
        .map(|f| V::Float(if neg { -f } else { f }))
}
