//! Rendering: an ApplicationSet and its sources in, Argo CD Applications out.
//!
//! For each top-level generator: expand it, merge its `template` override over
//! `spec.template`, render the template once per parameter set, apply `templatePatch`,
//! then do what Argo's controller does to every generated Application (namespace of
//! the ApplicationSet, the resources finalizer). Nothing is returned unless every
//! step succeeded for every Application: no partial output. The result is sorted by
//! name, so the same input gives byte-identical output.

use crate::error::{Error, ErrorKind};
use crate::generators::{Context, Generated, Sets};
use crate::limits::{Limit, Limits};
use crate::params::{flat_view, ParamSet};
use crate::sources::Sources;
use crate::spec::ApplicationSet;
use crate::template::Renderer;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Argo CD's finalizer that deletes an Application's resources with it.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

pub use crate::options::RenderOptions;

/// One rendered Application and where it came from.
#[derive(Debug, Clone)]
pub struct RenderedApplication {
    /// `metadata.name`.
    pub name: String,
    /// The full `argoproj.io/v1alpha1` Application object.
    pub manifest: Value,
    /// Spec paths of the generators whose parameters made it.
    pub generators: Vec<String>,
    /// The parameters it was rendered from.
    pub params: ParamSet,
}

/// Everything one ApplicationSet renders to.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// The Applications, sorted by name.
    pub applications: Vec<RenderedApplication>,
    /// Things the user should know that are not errors (a glob that matched nothing).
    pub warnings: Vec<String>,
}

/// Checks what can be checked without sources: the template engine is supported and
/// every template string of a Go template or handlebars spec compiles.
pub fn check(appset: &ApplicationSet) -> Result<(), Error> {
    let limits = Limits::default();
    Renderer::new(&appset.engine).map_err(|e| Error::invalid("spec.goTemplateOptions", e))?;
    if let crate::spec::TemplateEngine::Go { .. } = appset.engine {
        let mut strings = Vec::new();
        collect_strings(&appset.spec.template, &mut strings);
        if let Some(p) = &appset.spec.template_patch {
            strings.push(p);
        }
        for s in strings.into_iter().filter(|s| s.contains("{{")) {
            crate::gotemplate::GoTemplate::parse(s, &limits).map_err(|e| {
                Error::new(
                    "spec.template",
                    ErrorKind::RenderTemplate(format!("template {s:?}: {e}")),
                )
            })?;
        }
    }
    if appset.engine == crate::spec::TemplateEngine::Handlebars {
        let mut strings = Vec::new();
        collect_strings(&appset.spec.template, &mut strings);
        if let Some(p) = &appset.spec.template_patch {
            strings.push(p);
        }
        for s in strings.into_iter().filter(|s| s.contains("{{")) {
            crate::template::compile_handlebars(s, &limits).map_err(|e| {
                Error::new(
                    "spec.template",
                    ErrorKind::RenderTemplate(format!("template {s:?}: {e}")),
                )
            })?;
        }
    }
    Ok(())
}

/// Every `repoURL` the ApplicationSet names (generators and template), sorted, once each.
fn named_repositories(appset: &ApplicationSet) -> Vec<String> {
    fn walk(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) if k == "repoURL" && !s.is_empty() => {
                            out.insert(s.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    appset
        .spec
        .generators
        .iter()
        .for_each(|g| walk(g, &mut out));
    walk(&appset.spec.template, &mut out);
    out.into_iter().collect()
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k);
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

/// Renders every Application of `appset`, sorted by name: [`expand`], then every
/// parameter set rendered on up to `options.threads` threads.
pub fn render(
    appset: &ApplicationSet,
    sources: &dyn Sources,
    options: &RenderOptions,
) -> Result<Rendered, Error> {
    let expansion = expand(appset, sources, options)?;
    let parts = expansion.render_each(
        options.threads,
        Vec::new,
        |out: &mut Vec<(usize, String, Value)>, i, name, manifest| {
            out.push((i, name, manifest));
            Ok(())
        },
    )?;
    let mut done: Vec<(usize, String, Value)> = parts.into_iter().flatten().collect();
    done.sort_unstable_by_key(|(i, _, _)| *i);
    // The first clash by parameter set is reported.
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(done.len());
    for (i, name, _) in &done {
        if let Some(&first) = seen.get(name.as_str()) {
            return Err(expansion.duplicate(name, first, *i));
        }
        seen.insert(name, *i);
    }
    drop(seen);
    let Expansion {
        nodes, warnings, ..
    } = expansion;
    let sets = nodes.into_iter().flat_map(|(sets, _, _)| sets.into_vec());
    let mut applications: Vec<RenderedApplication> = done
        .into_iter()
        .zip(sets)
        .map(|((_, name, manifest), set)| RenderedApplication {
            name,
            manifest,
            generators: set.origin.iter().map(|o| o.to_string()).collect(),
            params: set.params,
        })
        .collect();
    applications.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Rendered {
        applications,
        warnings,
    })
}

/// An ApplicationSet's generators expanded: every parameter set with the template it
/// renders, before any Application is rendered. Rendering from here can be spread over
/// threads and streamed ([`Expansion::render_each`]).
pub struct Expansion<'a> {
    appset: &'a ApplicationSet,
    renderer: Renderer,
    /// Per top-level generator: its parameter sets, its template (with the generator's
    /// override merged) and that template's spec path.
    nodes: Vec<(Sets, Value, String)>,
    /// Where each node's sets start in the expansion's numbering.
    starts: Vec<usize>,
    /// How many sets in all.
    total: usize,
    /// Things the user should know that are not errors (a glob that matched nothing).
    pub warnings: Vec<String>,
}

/// Expands `appset`'s generators into parameter sets, checking the parameter-set limit.
pub fn expand<'a>(
    appset: &'a ApplicationSet,
    sources: &dyn Sources,
    options: &RenderOptions,
) -> Result<Expansion<'a>, Error> {
    let renderer = Renderer::with_limits(&appset.engine, &options.limits)
        .map_err(|e| Error::invalid("spec.goTemplateOptions", e))?;
    let warnings = RefCell::new(Vec::new());
    let repositories = named_repositories(appset);
    let ctx = Context {
        sources,
        renderer: &renderer,
        options,
        warnings: &warnings,
        prism: appset.is_prism(),
        appset_name: &appset.name,
        repositories: &repositories,
        upstream: None,
    };
    let mut nodes = Vec::with_capacity(appset.nodes.len());
    let mut starts = Vec::with_capacity(appset.nodes.len());
    let mut total = 0usize;
    for node in appset.nodes.iter() {
        let sets = node.expand_sets(&ctx)?;
        let template = match &node.template {
            Some(over) => {
                let mut t = over.clone();
                fill_zero(&mut t, &appset.spec.template);
                t
            }
            None => appset.spec.template.clone(),
        };
        let template_path = match node.template {
            Some(_) => format!("{}.template", node.path),
            None => "spec.template".to_string(),
        };
        if total + sets.len() > options.limits.parameter_sets {
            return Err(Error::new(
                &node.path,
                ErrorKind::RenderTemplate(format!(
                    "the generators make {} parameter sets: {}",
                    total + sets.len(),
                    Limit::ParameterSets.exceeded(&options.limits)
                )),
            ));
        }
        starts.push(total);
        total += sets.len();
        nodes.push((sets, template, template_path));
    }
    Ok(Expansion {
        appset,
        renderer,
        nodes,
        starts,
        total,
        warnings: warnings.into_inner(),
    })
}

/// Parameter sets a rendering thread takes at a time.
const BLOCK: usize = 64;

impl Expansion<'_> {
    /// How many Applications the generators asked for.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the generators produced no parameter set.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// What rendering threads share: everything but the renderer, whose caches stay on
    /// the thread that made them.
    fn shared(&self) -> Shared<'_> {
        Shared {
            appset: self.appset,
            nodes: &self.nodes,
            starts: &self.starts,
        }
    }

    /// Renders every Application on up to `threads` threads. Each thread starts a state
    /// with `init` and hands `each` the index, name and manifest of every Application it
    /// renders; the states are returned. The first failure by index is the error, as a
    /// one-thread run would report it; nothing is kept from a failed run.
    pub fn render_each<S, I, F>(&self, threads: usize, init: I, each: F) -> Result<Vec<S>, Error>
    where
        S: Send,
        I: Fn() -> S + Sync,
        F: Fn(&mut S, usize, String, Value) -> Result<(), Error> + Sync,
    {
        let blocks = self.total.div_ceil(BLOCK);
        let threads = threads.clamp(1, blocks.max(1));
        if threads == 1 {
            let mut state = init();
            for i in 0..self.total {
                let (name, manifest) = self.shared().render_one(&self.renderer, i)?;
                each(&mut state, i, name, manifest)?;
            }
            return Ok(vec![state]);
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let seeds: Vec<_> = (0..threads).map(|_| self.renderer.seed()).collect();
        let total = self.total;
        let shared = self.shared();
        let results: Vec<Result<S, (usize, Error)>> = std::thread::scope(|scope| {
            let workers: Vec<_> =
                seeds
                    .into_iter()
                    .map(|seed| {
                        let (next, failed, init, each, shared) =
                            (&next, &failed, &init, &each, &shared);
                        scope.spawn(move || {
                            let renderer = seed.renderer();
                            let mut state = init();
                            // Blocks are taken in order, so every set before a failure is
                            // still rendered by whoever holds it: the lowest failure wins.
                            while !failed.load(Ordering::Relaxed) {
                                let b = next.fetch_add(1, Ordering::Relaxed);
                                if b >= blocks {
                                    break;
                                }
                                for i in b * BLOCK..((b + 1) * BLOCK).min(total) {
                                    let done = shared.render_one(&renderer, i).and_then(
                                        |(name, manifest)| each(&mut state, i, name, manifest),
                                    );
                                    if let Err(e) = done {
                                        failed.store(true, Ordering::Relaxed);
                                        return Err((i, e));
                                    }
                                }
                            }
                            Ok(state)
                        })
                    })
                    .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err((
                            0,
                            Error::new(
                                "spec.template",
                                ErrorKind::RenderTemplate("a rendering thread panicked".into()),
                            ),
                        ))
                    })
                })
                .collect()
        });
        let steps_exceeded = Limit::Steps.exceeded(&self.renderer.budget().limits);
        let mut states = Vec::with_capacity(results.len());
        let mut first: Option<(usize, Error)> = None;
        for r in results {
            match r {
                Ok(s) => states.push(s),
                Err((i, e)) if first.as_ref().is_none_or(|(j, _)| i < *j) => first = Some((i, e)),
                Err(_) => {}
            }
        }
        match first {
            // Which set runs out of steps depends on how the threads interleaved: the
            // message names none, so it is the same every run.
            Some((_, e)) if e.to_string().contains(&steps_exceeded) => Err(Error::new(
                "spec.template",
                ErrorKind::RenderTemplate(format!(
                    "rendering the Applications ran {steps_exceeded}"
                )),
            )),
            Some((_, e)) => Err(e),
            None => Ok(states),
        }
    }

    /// Spec paths of the generators behind parameter set `i`.
    pub fn origin(&self, i: usize) -> Vec<std::sync::Arc<str>> {
        self.shared()
            .set(i)
            .map(|(set, _, _)| set.origin.clone())
            .unwrap_or_default()
    }

    /// The error for two parameter sets (by index) that render the same name.
    pub fn duplicate(&self, name: &str, first: usize, second: usize) -> Error {
        let shared = self.shared();
        let describe = |i: usize| match shared.set(i) {
            Some((set, _, _)) => {
                let origin: Vec<String> = set.origin.iter().map(|o| o.to_string()).collect();
                describe_set(&origin, &set.params)
            }
            None => String::new(),
        };
        Error::new(
            "spec.template.metadata.name",
            ErrorKind::DuplicateName {
                name: name.to_string(),
                first: describe(first.min(second)),
                second: describe(first.max(second)),
            },
        )
    }
}

/// The parts of an [`Expansion`] rendering threads share.
struct Shared<'e> {
    appset: &'e ApplicationSet,
    nodes: &'e [(Sets, Value, String)],
    starts: &'e [usize],
}

impl Shared<'_> {
    /// Parameter set `i` (combined now if its matrix deferred it), with the template
    /// and template path it renders with.
    fn set(&self, i: usize) -> Option<(Cow<'_, Generated>, &Value, &str)> {
        let n = self
            .starts
            .partition_point(|&start| start <= i)
            .checked_sub(1)?;
        let (sets, template, path) = self.nodes.get(n)?;
        Some((sets.get(i - self.starts[n])?, template, path))
    }

    /// Renders parameter set `i` into its Application's name and manifest.
    fn render_one(&self, renderer: &Renderer, i: usize) -> Result<(String, Value), Error> {
        let (set, template, path) = self.set(i).ok_or_else(|| {
            Error::new(
                "spec.generators",
                ErrorKind::RenderTemplate(format!("no parameter set {i}")),
            )
        })?;
        render_application(self.appset, renderer, template, path, &set)
    }
}

/// Renders one parameter set into its Application's name and manifest.
fn render_application(
    appset: &ApplicationSet,
    renderer: &Renderer,
    template: &Value,
    template_path: &str,
    set: &Generated,
) -> Result<(String, Value), Error> {
    let describe = || {
        let origin: Vec<String> = set.origin.iter().map(|o| o.to_string()).collect();
        describe_set(&origin, &set.params)
    };
    let render_error = |path: &str, e: String| {
        Error::new(
            path,
            ErrorKind::RenderTemplate(format!("{e} (parameters from {})", describe())),
        )
    };
    // Argo returns the template untouched for an empty parameter set (no finalizer either).
    let empty = set.params.is_empty();
    let rendered = if empty {
        template.clone()
    } else {
        renderer
            .render_application(template, &set.params)
            .map_err(|e| {
                let path = if e.field.is_empty() {
                    template_path.to_string()
                } else {
                    format!("{template_path}.{}", e.field)
                };
                render_error(&path, e.message)
            })?
    };
    let mut rendered = match rendered {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut meta = match rendered.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut metadata = Map::new();
    for key in ["name", "labels", "annotations", "finalizers"] {
        if let Some(v) = meta.remove(key) {
            let is_empty = match &v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Null => true,
                _ => false,
            };
            if !is_empty {
                metadata.insert(key.to_string(), v);
            }
        }
    }
    if !empty
        && !appset.spec.preserve_resources_on_deletion()
        && !metadata.contains_key("finalizers")
    {
        metadata.insert(
            "finalizers".into(),
            Value::Array(vec![RESOURCES_FINALIZER.into()]),
        );
    }
    let mut app = Map::new();
    app.insert("apiVersion".into(), "argoproj.io/v1alpha1".into());
    app.insert("kind".into(), "Application".into());
    app.insert("metadata".into(), Value::Object(metadata));
    app.insert(
        "spec".into(),
        rendered
            .remove("spec")
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    let mut app = Value::Object(app);

    if let Some(patch) = &appset.spec.template_patch {
        let text = renderer
            .render_str(patch, &set.params)
            .map_err(|e| render_error("spec.templatePatch", e))?;
        let patch: Value =
            crate::limits::parse_yaml(&text, &renderer.budget().limits).map_err(|e| {
                Error::invalid(
                    "spec.templatePatch",
                    format!(
                        "the rendered patch is not valid YAML or JSON: {e} (parameters from {})",
                        describe()
                    ),
                )
            })?;
        if !patch.is_null() {
            // Argo keeps the template's project whatever the patch says: the project is
            // Argo CD's RBAC boundary (applicationset/controllers/template/patch.go).
            let project = app.get("spec").and_then(|s| s.get("project")).cloned();
            merge_patch(&mut app, &patch);
            match (project, app.get_mut("spec").and_then(Value::as_object_mut)) {
                (Some(p), Some(spec)) => {
                    spec.insert("project".into(), p);
                }
                (None, Some(spec)) => {
                    spec.remove("project");
                }
                _ => {}
            }
        }
    }
    if let Some(meta) = app.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), appset.namespace.clone().into());
    }
    let name = app
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    validate_application(&app, &name).map_err(|reason| {
        Error::new(
            template_path,
            ErrorKind::InvalidApplication {
                name: name.clone(),
                reason: format!("{reason} (parameters from {})", describe()),
            },
        )
    })?;
    Ok((name, canonical(app)))
}

/// Describes a parameter set for messages: its generators and a few parameters.
fn describe_set(origin: &[String], params: &ParamSet) -> String {
    let flat = flat_view(params);
    let mut shown: Vec<String> = flat
        .iter()
        .take(6)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if flat.len() > 6 {
        shown.push(format!("… {} more", flat.len() - 6));
    }
    format!("{} {{{}}}", origin.join(" × "), shown.join(", "))
}

/// What Kubernetes and Argo CD would refuse: a bad name, bad labels, no project or destination.
fn validate_application(app: &Value, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("metadata.name is empty; set spec.template.metadata.name".into());
    }
    if let Err(why) = check_dns_subdomain(name) {
        return Err(format!(
            "metadata.name is not a valid DNS-1123 subdomain: {why}; \
             use a *Normalized parameter or the normalize function"
        ));
    }
    let meta = app.get("metadata");
    if let Some(labels) = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            check_qualified_name(k).map_err(|why| format!("label key {k:?} is invalid: {why}"))?;
            let Some(v) = v.as_str() else {
                return Err(format!("label {k:?} is not a string"));
            };
            check_label_value(v)
                .map_err(|why| format!("label {k:?} has invalid value {v:?}: {why}"))?;
        }
    }
    if let Some(annotations) = meta
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        if let Some((k, _)) = annotations.iter().find(|(_, v)| !v.is_string()) {
            return Err(format!("annotation {k:?} is not a string"));
        }
        for k in annotations.keys() {
            check_qualified_name(k)
                .map_err(|why| format!("annotation key {k:?} is invalid: {why}"))?;
        }
    }
    let spec = app.get("spec");
    let project = spec.and_then(|s| s.get("project"));
    if project.and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err(
            "spec.project is missing or empty; Argo CD requires a project (e.g. default)".into(),
        );
    }
    if !spec
        .and_then(|s| s.get("destination"))
        .is_some_and(Value::is_object)
    {
        return Err("spec.destination is missing; set server or name and namespace".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain: at most 253 characters of `[a-z0-9.-]`, starting and ending alphanumeric.
pub fn check_dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{} characters, at most 253 allowed", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "{c:?} is not allowed (only lowercase letters, digits, '-' and '.')"
        ));
    }
    for label in name.split('.') {
        let ok = label
            .chars()
            .next()
            .zip(label.chars().last())
            .is_some_and(|(a, b)| a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric());
        if !ok {
            return Err("each dot-separated part must start and end with a letter or digit".into());
        }
    }
    Ok(())
}

/// Kubernetes' qualified name (label and annotation keys): an optional DNS-1123
/// subdomain prefix and `/`, then a name of at most 63 characters.
pub fn check_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        check_dns_subdomain(p).map_err(|why| format!("prefix part {why}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let alnum_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name.chars().all(ok_char) || !alnum_ends {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', \
                    and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 {
        return Err(format!("{} characters, at most 63 allowed", v.len()));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let alnum_ends = v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if !v.chars().all(ok_char) || !alnum_ends {
        return Err(
            "use letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                .into(),
        );
    }
    Ok(())
}

/// mergo's `Merge(dst, src)`: fills fields of `dst` that are zero (missing, null, "",
/// false, 0, empty list) from `src`, recursing into mappings; used for per-generator
/// template overrides.
pub fn fill_zero(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && sv.is_object() => fill_zero(dv, sv),
                    Some(dv) if !is_zero(dv) => {}
                    _ => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (d, s) => {
            if is_zero(d) {
                *d = s.clone();
            }
        }
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// JSON merge patch (RFC 7386), which is what Argo's strategic merge patch amounts to on
/// the Application type: mappings merge, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Sorts every mapping's keys, so output order never depends on the map implementation
/// (serde_json keeps insertion order when any crate in the build turns on `preserve_order`).
fn canonical(v: Value) -> Value {
    static SORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let sorted = *SORTED.get_or_init(|| {
        let mut probe = Map::new();
        probe.insert("b".into(), Value::Null);
        probe.insert("a".into(), Value::Null);
        probe.keys().next().map(String::as_str) == Some("a")
    });
    if sorted {
        return v;
    }
    sort_keys(v)
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> =
                m.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::memory::MemorySources;
    use serde_json::json;

    fn run(yaml: &str) -> Result<Vec<Value>, String> {
        let doc: Value = serde_yaml::from_str(yaml).unwrap();
        let appset = ApplicationSet::from_value(&doc, "argocd").map_err(|e| e.to_string())?;
        let rendered = render(&appset, &MemorySources::new(), &RenderOptions::default())
            .map_err(|e| e.to_string())?;
        Ok(rendered
            .applications
            .into_iter()
            .map(|a| a.manifest)
            .collect())
    }

    const BASE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: s, namespace: team-a}
spec:
  SYNC
  generators:
  - list:
      elements: [{env: prod, rev: v2}, {env: test, rev: main}]
  template:
    metadata:
      name: 'app-{{env}}'
      namespace: elsewhere
      labels: {'env-{{env}}': 'yes'}
    spec:
      project: default
      source: {repoURL: https://g/r.git, targetRevision: HEAD, path: 'envs/{{env}}'}
      destination: {server: https://kubernetes.default.svc, namespace: '{{env}}'}
"#;

    #[test]
    fn namespace_finalizer_and_templated_keys_as_argo() {
        let apps = run(&BASE.replace("SYNC", "")).unwrap();
        assert_eq!(apps.len(), 2);
        let prod = &apps[0];
        assert_eq!(prod["metadata"]["name"], "app-prod");
        assert_eq!(
            prod["metadata"]["namespace"], "team-a",
            "always the ApplicationSet's namespace"
        );
        assert_eq!(prod["metadata"]["finalizers"], json!([RESOURCES_FINALIZER]));
        assert_eq!(prod["metadata"]["labels"], json!({"env-prod": "yes"}));
        assert_eq!(prod["spec"]["source"]["path"], "envs/prod");
    }

    #[test]
    fn no_finalizer_when_preserving_resources_or_set_by_template() {
        let apps =
            run(&BASE.replace("SYNC", "syncPolicy: {preserveResourcesOnDeletion: true}")).unwrap();
        assert!(apps[0]["metadata"].get("finalizers").is_none());
        let own = BASE
            .replace("SYNC", "")
            .replace("namespace: elsewhere", "finalizers: [custom/finalizer]");
        let apps = run(&own).unwrap();
        assert_eq!(
            apps[0]["metadata"]["finalizers"],
            json!(["custom/finalizer"])
        );
    }

    #[test]
    fn template_patch_merges_and_deletes() {
        let spec = BASE.replace(
            "SYNC",
            "templatePatch: |\n    spec:\n      source:\n        targetRevision: '{{rev}}'\n        path: null\n      syncPolicy:\n        automated: {prune: true}\n",
        );
        let apps = run(&spec).unwrap();
        assert_eq!(apps[0]["spec"]["source"]["targetRevision"], "v2");
        assert!(apps[0]["spec"]["source"].get("path").is_none());
        assert_eq!(apps[0]["spec"]["syncPolicy"]["automated"]["prune"], true);
        assert_eq!(apps[1]["spec"]["source"]["targetRevision"], "main");
    }

    #[test]
    fn generator_template_overrides_fill_from_spec_template() {
        let spec = BASE.replace("SYNC", "").replace(
            "      elements: [{env: prod, rev: v2}, {env: test, rev: main}]",
            "      elements: [{env: prod, rev: v2}]\n      template:\n        metadata: {}\n        spec:\n          project: special\n          source: {path: 'custom/{{env}}'}",
        );
        let apps = run(&spec).unwrap();
        assert_eq!(apps[0]["spec"]["project"], "special");
        assert_eq!(apps[0]["spec"]["source"]["path"], "custom/prod");
        assert_eq!(
            apps[0]["spec"]["source"]["repoURL"], "https://g/r.git",
            "filled from spec.template"
        );
        assert_eq!(apps[0]["metadata"]["name"], "app-prod");
    }

    #[test]
    fn missing_project_is_an_error() {
        let spec = BASE
            .replace("SYNC", "")
            .replace("      project: default\n", "");
        let err = run(&spec).unwrap_err();
        assert!(
            err.starts_with(
                "spec.template: rendered Application \"app-prod\" is invalid: spec.project is missing or empty"
            ),
            "{err}"
        );
    }

    #[test]
    fn empty_parameter_set_renders_the_template_as_written() {
        // Argo returns the template untouched (and adds no finalizer) for an empty set.
        let spec = BASE
            .replace("SYNC", "")
            .replace("[{env: prod, rev: v2}, {env: test, rev: main}]", "[{}]")
            .replace("'app-{{env}}'", "fixed")
            .replace("labels: {'env-{{env}}': 'yes'}", "labels: {env: 'yes'}");
        let apps = run(&spec).unwrap();
        assert_eq!(apps[0]["metadata"]["name"], "fixed");
        assert!(apps[0]["metadata"].get("finalizers").is_none());
    }

    #[test]
    fn unknown_spec_field_and_prism_field_on_argo_api() {
        let err = run(&BASE.replace("SYNC", "generator: []")).unwrap_err();
        assert!(
            err.starts_with("spec.generator: unknown field \"generator\""),
            "{err}"
        );
        let err = run(&BASE.replace("SYNC", "templateEngine: handlebars")).unwrap_err();
        assert_eq!(
            err,
            "spec.templateEngine: templateEngine is a Prism field; set apiVersion: prism.dev/v1alpha1 to use it"
        );
    }

    /// goTemplate mode over every generator kind, with Argo's nested parameter names.
    #[test]
    fn go_template_mode_for_each_generator() {
        use crate::sources::memory::MemoryRepository;
        let mut c = crate::Cluster::in_cluster();
        c.name = "prod-1".into();
        c.server = "https://p1".into();
        c.labels.insert("env".into(), "prod".into());
        c.secret_name = Some("c".into());
        let sources = MemorySources::new().with_clusters([c]).with_repo(
            "https://g/r.git",
            MemoryRepository::new([("apps/api/k.yaml", "a: 1"), ("apps/web/k.yaml", "a: 2")]),
        );
        let spec = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: s}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - list:
      elements: [{name: one, replicas: 2, tags: [a, b]}]
      template: {metadata: {name: 'list-{{.name}}-{{.replicas}}-{{index .tags 1}}'}, spec: {}}
  - clusters:
      selector: {matchLabels: {env: prod}}
      values: {ns: 'apps-{{.metadata.labels.env}}'}
      template: {metadata: {name: 'cluster-{{.nameNormalized}}-{{.values.ns}}'}, spec: {}}
  - git:
      repoURL: https://g/r.git
      revision: HEAD
      directories: [{path: 'apps/*'}]
      template: {metadata: {name: 'dir-{{.path.basename}}-{{len .path.segments}}'}, spec: {}}
  - merge:
      mergeKeys: [name]
      generators:
      - list: {elements: [{name: m1, x: base}]}
      - list: {elements: [{name: m1, x: over}]}
      template: {metadata: {name: 'merge-{{.name}}-{{.x}}'}, spec: {}}
  - matrix:
      generators:
      - git: {repoURL: https://g/r.git, revision: HEAD, directories: [{path: 'apps/api'}]}
      - list: {elements: [{suffix: '{{.path.basename}}-x'}]}
      template: {metadata: {name: 'matrix-{{.suffix}}'}, spec: {}}
  template:
    metadata: {name: unused}
    spec:
      project: default
      destination: {server: https://kubernetes.default.svc, namespace: default}
"#;
        let doc: Value = serde_yaml::from_str(spec).unwrap();
        let appset = ApplicationSet::from_value(&doc, "argocd").unwrap();
        let rendered = render(&appset, &sources, &RenderOptions::default()).unwrap();
        let names: Vec<&str> = rendered
            .applications
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(
            names,
            vec![
                "cluster-prod-1-apps-prod",
                "dir-api-2",
                "dir-web-2",
                "list-one-2-b",
                "matrix-api-x",
                "merge-m1-over"
            ]
        );
    }

    #[test]
    fn dns_names() {
        assert!(check_dns_subdomain("api-prod.eu-1").is_ok());
        assert!(check_dns_subdomain("-api").is_err());
        assert!(check_dns_subdomain("api..x").is_err());
        assert!(check_dns_subdomain(&"a".repeat(254)).is_err());
    }
}
