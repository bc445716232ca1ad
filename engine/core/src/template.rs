//! Template engines: Argo's default (fasttemplate) syntax, Go templates and handlebars.
//!
//! A [`Renderer`] renders one string, or every string (and map key) in a JSON tree,
//! against a parameter set. Argo renders the Application template field by field,
//! map keys included, so [`Renderer::render_value`] walks the tree the same way.
//! Go templates (`goTemplate: true`) run on [`crate::gotemplate`].

use crate::limits::{Budget, Limit, Limits};
use crate::params::{normalize, slugify, ParamSet, ParamShape};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;
use std::cell::{Cell, RefCell};

/// Which template language renders the Application template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateEngine {
    /// Argo's default `{{param}}` substitution (fasttemplate).
    Fast,
    /// Go's `text/template` with Argo's function set (`goTemplate: true`).
    Go {
        /// `goTemplateOptions`, e.g. `missingkey=error`.
        options: Vec<String>,
    },
    /// handlebars in strict mode (`templateEngine: handlebars`, `prism.dev` only).
    Handlebars,
}

/// Renders strings and trees of strings with one template engine, within one
/// ApplicationSet render's [`Budget`].
pub struct Renderer {
    engine: TemplateEngine,
    handlebars: Option<RefCell<Handlebars<'static>>>,
    go: RefCell<crate::gotemplate::Cache>,
    missing_key_error: bool,
    budget: Budget,
    /// Handlebars templates by source: the names of their compiled pieces.
    pieces: RefCell<std::collections::HashMap<String, Vec<String>>>,
}

impl Renderer {
    /// A renderer for `engine` with the default limits; fails on an unknown
    /// `goTemplateOptions` entry.
    pub fn new(engine: &TemplateEngine) -> Result<Renderer, String> {
        Renderer::with_limits(engine, &Limits::default())
    }

    /// A renderer for `engine` within `limits` (one per ApplicationSet render: the
    /// step budget is shared by all its templates).
    pub fn with_limits(engine: &TemplateEngine, limits: &Limits) -> Result<Renderer, String> {
        let mut missing_key_error = false;
        let handlebars = match engine {
            TemplateEngine::Fast => None,
            TemplateEngine::Handlebars => Some(RefCell::new(new_handlebars(limits))),
            TemplateEngine::Go { options } => {
                for option in options {
                    match option.as_str() {
                        "missingkey=error" => missing_key_error = true,
                        // With map data Go prints <no value> for zero too (golang/go#24963).
                        "missingkey=default" | "missingkey=invalid" | "missingkey=zero" => {
                            missing_key_error = false
                        }
                        other => {
                            return Err(format!(
                                "goTemplateOptions: unknown option {other:?}; \
                                 use missingkey=error, missingkey=zero or missingkey=default"
                            ))
                        }
                    }
                }
                None
            }
        };
        Ok(Renderer {
            engine: engine.clone(),
            handlebars,
            go: RefCell::new(crate::gotemplate::Cache::default()),
            missing_key_error,
            budget: Budget::new(*limits),
            pieces: RefCell::default(),
        })
    }

    /// What another thread needs to build a renderer like this one, spending from the
    /// same step budget (a renderer holds caches that stay on their thread).
    pub fn seed(&self) -> RendererSeed {
        RendererSeed {
            engine: self.engine.clone(),
            missing_key_error: self.missing_key_error,
            budget: self.budget.share(),
        }
    }

    /// The render's budget (limits and steps left).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Whether this renderer runs handlebars.
    pub fn is_handlebars(&self) -> bool {
        self.handlebars.is_some()
    }

    /// The parameter shape this engine's templates expect.
    pub fn shape(&self) -> ParamShape {
        match self.engine {
            TemplateEngine::Fast => ParamShape::Flat,
            _ => ParamShape::Nested,
        }
    }

    /// Renders one template string.
    pub fn render_str(&self, template: &str, params: &ParamSet) -> Result<String, String> {
        if find_pair(template, b'{').is_none() {
            return Ok(template.to_string());
        }
        if let TemplateEngine::Go { .. } = self.engine {
            return self.render_go(
                template,
                &crate::gotemplate::data_of(params),
                self.missing_key_error,
            );
        }
        self.budget.step(1)?;
        match &self.handlebars {
            None if !is_templated(template) => Ok(template.to_string()),
            None => {
                let out = fasttemplate(template, params)?;
                self.budget
                    .check(Limit::FieldBytes, out.len())
                    .map_err(|e| format!("template {template:?}: the output is {e}"))?;
                Ok(out)
            }
            Some(hb) => {
                if !self.pieces.borrow().contains_key(template) {
                    let compiled = compile_handlebars(template, &self.budget.limits)
                        .map_err(|e| format!("template {template:?}: {e}"))?;
                    let mut names = Vec::with_capacity(compiled.len());
                    let mut hb = hb.borrow_mut();
                    for (piece, t) in compiled {
                        hb.register_template(&piece, t);
                        names.push(piece);
                    }
                    self.pieces.borrow_mut().insert(template.to_string(), names);
                }
                let hb = hb.borrow();
                let mut out = CappedWriter {
                    out: Vec::new(),
                    cap: self.budget.limits.field_bytes,
                };
                let pieces = self.pieces.borrow();
                for piece in pieces.get(template).into_iter().flatten() {
                    match hb.render_to_write(piece, params, &mut out) {
                        Ok(()) => {}
                        Err(_) if out.out.len() > out.cap => {
                            return Err(format!(
                                "template {template:?}: the output is {}",
                                Limit::FieldBytes.exceeded(&self.budget.limits)
                            ))
                        }
                        Err(e) => return Err(describe_handlebars_error(template, &e)),
                    }
                }
                String::from_utf8(out.out)
                    .map_err(|_| format!("template {template:?}: output is not UTF-8"))
            }
        }
    }

    /// Renders a Go template with `missingkey=error` on or off.
    pub fn render_go(
        &self,
        template: &str,
        data: &crate::gotemplate::V,
        missing_key_error: bool,
    ) -> Result<String, String> {
        self.go
            .borrow_mut()
            .render(template, data, missing_key_error, &self.budget)
            .map_err(|e| format!("template {template:?}: {e}"))
    }

    /// Renders every string value and every map key in `value` (a generator's fields).
    pub fn render_value(&self, value: &Value, params: &ParamSet) -> Result<Value, FieldError> {
        self.render_tree(value, params, usize::MAX)
    }

    /// Renders an Application template like [`Renderer::render_value`]; all its
    /// templated fields together may not outgrow one Application's limit.
    pub fn render_application(
        &self,
        value: &Value,
        params: &ParamSet,
    ) -> Result<Value, FieldError> {
        self.render_tree(value, params, self.budget.limits.application_bytes)
    }

    fn render_tree(
        &self,
        value: &Value,
        params: &ParamSet,
        cap: usize,
    ) -> Result<Value, FieldError> {
        let total = Cell::new(0usize);
        let count = |out: String| -> Result<String, String> {
            total.set(total.get().saturating_add(out.len()));
            if total.get() > cap {
                return Err(format!(
                    "the rendered fields are {}",
                    Limit::ApplicationBytes.exceeded(&self.budget.limits)
                ));
            }
            Ok(out)
        };
        if let TemplateEngine::Go { .. } = self.engine {
            // Convert the parameters once for the whole tree.
            let data = crate::gotemplate::data_of(params);
            return walk(value, &|s: &str| {
                if find_pair(s, b'{').is_some() {
                    count(self.render_go(s, &data, self.missing_key_error)?)
                } else {
                    count(s.to_string())
                }
            });
        }
        walk(value, &|s: &str| count(self.render_str(s, params)?))
    }
}

/// A [`Renderer`] to be built on another thread: same engine and options, same
/// render's step budget ([`Renderer::seed`]).
#[derive(Debug)]
pub struct RendererSeed {
    engine: TemplateEngine,
    missing_key_error: bool,
    budget: Budget,
}

impl RendererSeed {
    /// The renderer, with empty template caches.
    pub fn renderer(self) -> Renderer {
        let handlebars = match self.engine {
            TemplateEngine::Handlebars => Some(RefCell::new(new_handlebars(&self.budget.limits))),
            _ => None,
        };
        Renderer {
            engine: self.engine,
            handlebars,
            go: RefCell::new(crate::gotemplate::Cache::default()),
            missing_key_error: self.missing_key_error,
            budget: self.budget,
            pieces: RefCell::default(),
        }
    }
}

/// Argo's `isTemplatedRegex` (`.*{{.*}}.*`, where `.` stops at a newline): a string is
/// templated only when some line has `{{` with `}}` after it; others are kept as written.
pub fn is_templated(s: &str) -> bool {
    let b = s.as_bytes();
    let mut open = false;
    let mut i = 0;
    while i + 1 < b.len() {
        match (b[i], b[i + 1]) {
            (b'\n', _) => open = false,
            (b'{', b'{') if !open => {
                open = true;
                i += 2;
                continue;
            }
            (b'}', b'}') if open => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// An output that refuses to grow past `cap` bytes (handlebars stops at the error).
struct CappedWriter {
    out: Vec<u8>,
    cap: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(buf);
        if self.out.len() > self.cap {
            return Err(std::io::Error::other("output limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Source bytes after which a handlebars template is cut into a new piece.
const PIECE_BYTES: usize = 512;

/// Compiles a handlebars template for a spec, as pieces rendered one after another:
/// block nesting within the depth limit (checked on the text first: the handlebars
/// parser recurses per level), and no partials or decorators (`{{> p}}`,
/// `{{#*inline}}`), which could recurse forever.
///
/// The handlebars crate finds the line of every tag from the start of its source, so
/// compiling is quadratic in the template's size; cutting the source at top-level
/// tags into pieces of about [`PIECE_BYTES`] keeps it linear. The pieces render
/// exactly as the whole (see the cut rule below; a test compares them).
pub fn compile_handlebars(
    source: &str,
    limits: &Limits,
) -> Result<Vec<(String, handlebars::Template)>, String> {
    check_handlebars_depth(source, limits)?;
    let b = source.as_bytes();
    let mut depth = 0usize;
    let mut cuts = vec![0];
    let mut i = 0;
    let mut splittable = !source.contains("{{{{");
    while let Some(found) = source[i..].find("{{") {
        let start = i + found;
        // A cut never changes what handlebars sees around a block, comment or `~`: it
        // falls after a newline of text outside blocks (a new line starts either way), or
        // after a plain expression followed by a non-blank (no tag on either line can be
        // "standalone").
        let last = cuts[cuts.len() - 1];
        if depth == 0 && start - last >= PIECE_BYTES {
            if let Some(nl) = source[i..start].rfind('\n') {
                if i + nl + 1 > last {
                    cuts.push(i + nl + 1);
                }
            }
        }
        let tag = source[start + 2..].trim_start_matches(['{', '~']);
        // Where the tag ends: comments at `--}}`, other tags at the first `}}` outside quotes.
        let end = if tag.starts_with("!--") {
            source[start..].find("--}}").map(|e| start + e + 4)
        } else {
            let mut j = start + 2;
            let mut quote = None;
            let mut end = None;
            while j + 1 < b.len() {
                match (quote, b[j]) {
                    (Some(_), b'\\') => j += 1,
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(b[j]),
                    (None, b'}') if b[j + 1] == b'}' => {
                        end = Some(j + 2);
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            end
        };
        let Some(mut end) = end else {
            splittable = false;
            break;
        };
        while end < b.len() && b[end] == b'}' {
            end += 1;
        }
        if tag.starts_with('#')
            || (tag.starts_with('^') && !tag[1..].trim_start().starts_with("}}"))
        {
            depth += 1;
        } else if tag.starts_with('/') {
            depth = depth.saturating_sub(1);
        }
        let expression = tag.starts_with(|c: char| c.is_alphanumeric() || "(@.[&_".contains(c));
        let trims = source[..end].ends_with("~}}") || source[end..].starts_with("{{~");
        let next_blank = source[end..].starts_with(|c: char| c.is_whitespace());
        let last = cuts[cuts.len() - 1];
        if depth == 0
            && expression
            && !trims
            && end < source.len()
            && !next_blank
            && end - last >= PIECE_BYTES
        {
            cuts.push(end);
        }
        i = end;
    }
    if !splittable {
        cuts.truncate(1);
    }
    if cuts.last() != Some(&source.len()) {
        cuts.push(source.len());
    }
    let mut pieces = Vec::with_capacity(cuts.len());
    for w in cuts.windows(2) {
        let text = &source[w[0]..w[1]];
        let t = handlebars::Template::compile(text).map_err(|e| e.to_string())?;
        no_partials(&t)?;
        pieces.push((text.to_string(), t));
    }
    Ok(pieces)
}

/// The handlebars parser recurses once per block level and per nested `(`/`[`/`{` in a
/// tag, so both are bounded before it runs. The count ignores quoting, so it can only
/// overestimate: every tag from `{{` to the next `}}` is read as written.
fn check_handlebars_depth(source: &str, limits: &Limits) -> Result<(), String> {
    let too_deep = |what: &str| Err(format!("{what} {}", Limit::Depth.exceeded(limits)));
    let mut blocks = 0usize;
    let mut rest = source;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let tag = &after[..after.find("}}").unwrap_or(after.len())];
        let name = tag.trim_start_matches(['{', '~']);
        if name.starts_with('#') || (name.starts_with('^') && !name[1..].trim().is_empty()) {
            blocks += 1;
            if blocks > limits.depth {
                return too_deep("blocks");
            }
        } else if name.starts_with('/') {
            blocks = blocks.saturating_sub(1);
        }
        let mut nesting = 0usize;
        for c in tag.bytes() {
            match c {
                b'(' | b'[' | b'{' => {
                    nesting += 1;
                    if nesting > limits.depth {
                        return too_deep("parentheses and brackets");
                    }
                }
                b')' | b']' | b'}' => nesting = nesting.saturating_sub(1),
                _ => {}
            }
        }
        rest = &after[tag.len()..];
    }
    Ok(())
}

fn no_partials(t: &handlebars::Template) -> Result<(), String> {
    use handlebars::template::TemplateElement as E;
    for e in &t.elements {
        match e {
            E::PartialExpression(_) | E::PartialBlock(_) => {
                return Err("partials ({{> name}}) are not supported in Prism templates".into())
            }
            E::DecoratorExpression(_) | E::DecoratorBlock(_) => {
                return Err(
                    "decorators and inline partials ({{#*inline}}) are not supported in Prism templates"
                        .into(),
                )
            }
            E::HelperBlock(h) | E::Expression(h) | E::HtmlExpression(h) => {
                for inner in h.template.iter().chain(h.inverse.iter()) {
                    no_partials(inner)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A template that failed to render, and the field of the tree it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`spec.destination.server`, `spec.info[0].value`); empty at the root.
    pub field: String,
    /// What the template engine said.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field {}: {}", self.field, self.message)
        }
    }
}

/// Applies `render` to every string value and map key of `value`.
fn walk(
    value: &Value,
    render: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Value, FieldError> {
    walk_at(value, render).map_err(|(path, message)| {
        let mut field = String::new();
        for seg in path.iter().rev() {
            if !seg.starts_with('[') && !field.is_empty() {
                field.push('.');
            }
            field.push_str(seg);
        }
        FieldError { field, message }
    })
}

/// Path segments are collected innermost first, and only when an error bubbles up.
fn walk_at(
    value: &Value,
    render: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Value, (Vec<String>, String)> {
    Ok(match value {
        Value::String(s) => Value::String(render(s).map_err(|e| (Vec::new(), e))?),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                out.push(walk_at(v, render).map_err(|(mut p, e)| {
                    p.push(format!("[{i}]"));
                    (p, e)
                })?);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = render(k).map_err(|e| (vec![k.clone()], e))?;
                let v = walk_at(v, render).map_err(|(mut p, e)| {
                    p.push(k.clone());
                    (p, e)
                })?;
                out.push((key, v));
            }
            // Keys mostly come out in the order they went in (sorted): building the map
            // from them at once costs one comparison a key. Equal rendered keys keep
            // the last value, as inserting one by one would.
            Value::Object(out.into_iter().collect())
        }
        other => other.clone(),
    })
}

/// Where `cc` (two of byte `c`, `{{` or `}}`) first occurs in `s`. Templates are short
/// and most strings hold no tag: a byte scan beats setting up a substring search.
#[inline]
fn find_pair(s: &str, c: u8) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(p) = b.get(from..)?.iter().position(|&x| x == c) {
        let at = from + p;
        if b.get(at + 1) == Some(&c) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Argo's default syntax, as `valyala/fasttemplate` with Argo's tag function: `{{ key }}`
/// is replaced by the string parameter `key` (dots are part of the key); a missing or
/// non-string parameter leaves the tag as written.
pub fn fasttemplate(template: &str, params: &ParamSet) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = find_pair(rest, b'{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = find_pair(after, b'}') else {
            return Err(format!(
                "cannot find end tag \"}}}}\" in the template {template:?} starting from {:?}",
                &rest[start..]
            ));
        };
        let tag = &after[..end];
        let key = tag.trim();
        match params.get(key) {
            Some(Value::String(v)) if !key.is_empty() => out.push_str(v),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn describe_handlebars_error(template: &str, e: &RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(var)) => format!(
            "template {template:?} refers to parameter {var:?}, which this parameter set does not have \
             (handlebars runs in strict mode; use `default` for optional parameters)"
        ),
        _ => format!("template {template:?}: {e}"),
    }
}

/// The one-line helpers, in a private module (the macro makes public structs).
mod simple_helpers {
    use super::normalize;
    use handlebars::handlebars_helper;

    handlebars_helper!(lower_helper: |s: str| s.to_lowercase());
    handlebars_helper!(upper_helper: |s: str| s.to_uppercase());
    handlebars_helper!(normalize_helper: |s: str| normalize(s));
    handlebars_helper!(trim_prefix_helper: |s: str, prefix: str| s.strip_prefix(prefix).unwrap_or(s).to_string());
    handlebars_helper!(trim_suffix_helper: |s: str, suffix: str| s.strip_suffix(suffix).unwrap_or(s).to_string());
    handlebars_helper!(to_json_helper: |v: Json| serde_json::to_string(v).unwrap_or_default());
    handlebars_helper!(to_yaml_helper: |v: Json| {
        serde_yaml::to_string(v).map(|s| s.trim_end().to_string()).unwrap_or_default()
    });
}

/// `slugify TEXT [MAX_SIZE [SMART_TRUNCATE]]`, with Argo's defaults 50 and true.
struct SlugifyHelper;

impl HelperDef for SlugifyHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = h
            .param(0)
            .map(|p| render_plain(p.value()))
            .unwrap_or_default();
        let max = h.param(1).and_then(|p| p.value().as_u64()).unwrap_or(50) as usize;
        let smart = h.param(2).and_then(|p| p.value().as_bool()).unwrap_or(true);
        out.write(&slugify(&text, max, smart))?;
        Ok(())
    }
}

/// `default VALUE FALLBACK`: VALUE unless it is missing, null, false, empty or zero.
struct DefaultHelper;

impl HelperDef for DefaultHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let value = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
        let fallback = h.param(1).map(|p| p.value().clone()).unwrap_or(Value::Null);
        let empty = match &value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Number(n) => n.as_f64() == Some(0.0),
        };
        Ok(ScopedJson::Derived(if empty { fallback } else { value }))
    }
}

fn render_plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `replace TEXT OLD NEW`, refused when the result would outgrow one field.
struct ReplaceHelper {
    limits: Limits,
}

impl HelperDef for ReplaceHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let arg = |i: usize| {
            h.param(i)
                .and_then(|p| p.value().as_str())
                .unwrap_or_default()
        };
        let (text, old, new) = (arg(0), arg(1), arg(2));
        if crate::params::replaced_len(text, old, new) > self.limits.field_bytes {
            return Err(RenderErrorReason::Other(format!(
                "replace: the result would be {}",
                Limit::FieldBytes.exceeded(&self.limits)
            ))
            .into());
        }
        out.write(&text.replace(old, new))?;
        Ok(())
    }
}

fn new_handlebars(limits: &Limits) -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("lower", Box::new(simple_helpers::lower_helper));
    hb.register_helper("upper", Box::new(simple_helpers::upper_helper));
    hb.register_helper("normalize", Box::new(simple_helpers::normalize_helper));
    hb.register_helper("slugify", Box::new(SlugifyHelper));
    hb.register_helper("default", Box::new(DefaultHelper));
    hb.register_helper("trimPrefix", Box::new(simple_helpers::trim_prefix_helper));
    hb.register_helper("trimSuffix", Box::new(simple_helpers::trim_suffix_helper));
    hb.register_helper("replace", Box::new(ReplaceHelper { limits: *limits }));
    hb.register_helper("toJson", Box::new(simple_helpers::to_json_helper));
    hb.register_helper("toYaml", Box::new(simple_helpers::to_yaml_helper));
    hb
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> ParamSet {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn fasttemplate_replaces_string_params_and_keeps_unknown_tags() {
        let p = params(json!({"path.basename": "api", "path[0]": "apps", "n": 1}));
        assert_eq!(
            fasttemplate("{{path.basename}}-{{ path[0] }}-{{missing}}-{{n}}", &p).unwrap(),
            "api-apps-{{missing}}-{{n}}"
        );
    }

    #[test]
    fn fasttemplate_unclosed_tag_is_an_error() {
        let err = fasttemplate("a-{{name", &ParamSet::new()).unwrap_err();
        assert!(err.starts_with("cannot find end tag \"}}\""), "{err}");
    }

    #[test]
    fn handlebars_helpers_and_strict_mode() {
        let r = Renderer::new(&TemplateEngine::Handlebars).unwrap();
        let p = params(
            json!({"name": "My_App", "env": "", "path": {"basename": "api"}, "v": {"a": 1}}),
        );
        let render = |t: &str| r.render_str(t, &p);
        assert_eq!(render("{{normalize name}}").unwrap(), "my-app");
        assert_eq!(render("{{upper path.basename}}").unwrap(), "API");
        assert_eq!(render("{{default env \"dev\"}}").unwrap(), "dev");
        assert_eq!(
            render("{{trimSuffix (lower name) \"_app\"}}").unwrap(),
            "my"
        );
        assert_eq!(render("{{replace name \"_\" \".\"}}").unwrap(), "My.App");
        assert_eq!(render("{{toJson v}}").unwrap(), "{\"a\":1}");
        assert_eq!(render("{{toYaml v}}").unwrap(), "a: 1");
        assert_eq!(
            render("{{slugify \"Hello World!\"}}").unwrap(),
            "hello-world"
        );
        assert_eq!(
            render("<{{name}}>").unwrap(),
            "<My_App>",
            "no HTML escaping"
        );
        let err = render("{{nope}}").unwrap_err();
        assert_eq!(
            err,
            "template \"{{nope}}\" refers to parameter \"nope\", which this parameter set does not have \
             (handlebars runs in strict mode; use `default` for optional parameters)"
        );
    }

    #[test]
    fn render_value_renders_keys_and_values() {
        let r = Renderer::new(&TemplateEngine::Fast).unwrap();
        let p = params(json!({"team": "pay"}));
        let v = r
            .render_value(
                &json!({"labels": {"team-{{team}}": "{{team}}"}, "n": 3}),
                &p,
            )
            .unwrap();
        assert_eq!(v, json!({"labels": {"team-pay": "pay"}, "n": 3}));
    }

    #[test]
    fn errors_name_the_field() {
        let r = Renderer::new(&TemplateEngine::Go { options: vec![] }).unwrap();
        let err = r
            .render_value(
                &json!({"spec": {"info": [{"v": "ok"}, {"v": "{{ nope 1 }}"}]}}),
                &ParamSet::new(),
            )
            .unwrap_err();
        assert_eq!(err.field, "spec.info[1].v");
        assert_eq!(
            err.to_string(),
            "field spec.info[1].v: template \"{{ nope 1 }}\": 1:1: function \"nope\" not defined"
        );
    }

    #[test]
    fn go_templates_render_nested_params() {
        let r = Renderer::new(&TemplateEngine::Go {
            options: vec!["missingkey=error".into()],
        })
        .unwrap();
        let p = params(json!({"path": {"basename": "api"}, "replicas": 3}));
        let v = r
            .render_value(
                &json!({"name": "{{.path.basename}}-{{.replicas}}", "k": "plain"}),
                &p,
            )
            .unwrap();
        assert_eq!(v, json!({"name": "api-3", "k": "plain"}));
        let err = r.render_str("{{.nope}}", &p).unwrap_err();
        assert_eq!(
            err,
            "template \"{{.nope}}\": 1:1: executing at <.nope>: map has no entry for key \"nope\""
        );
        let bad = Renderer::new(&TemplateEngine::Go {
            options: vec!["missingkey=panic".into()],
        });
        assert!(bad
            .err()
            .unwrap()
            .starts_with("goTemplateOptions: unknown option \"missingkey=panic\""));
    }
}

#[cfg(test)]
mod templated_tests {
    use super::is_templated;

    /// Argo's `.*{{.*}}.*`, where `.` does not match a newline.
    #[test]
    fn is_templated_as_argos_regex() {
        for (s, want) in [
            ("{{a}}", true),
            ("x {{ }} y", true),
            ("}} {{", false),
            ("{{a", false),
            ("{{\n}}", false),
            ("a\n{{b}}\nc", true),
            ("{{{}}", true),
            ("{}}", false),
            ("", false),
        ] {
            assert_eq!(is_templated(s), want, "{s:?}");
        }
    }
}
