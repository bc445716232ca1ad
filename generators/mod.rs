//! Generators: each turns its part of the spec into parameter sets.
//!
//! One file per generator, named as in Argo CD (`list`, `clusters`, `git`, `matrix`,
//! `merge`, `plugin`) plus Prism's own (`values`, `images`). Each file holds the generator's serde spec,
//! its [`Generate`] implementation, its ordering rules in the `//!` doc, its
//! registration (a unit struct implementing [`GeneratorKind`]: key, schema, the
//! parameters it can emit for lint, requeue and what it reads for the controller) and
//! its table tests. To add a generator: add a file and one line to [`REGISTRY`];
//! render, validate, lint, `prism schema` and the controller all ask the registry.
//!
//! This module also holds what every generator shares: the per-generator `selector`
//! and `template`, the matrix-style interpolation of a generator's own fields from
//! earlier parameters, and Argo's templated `values`.

pub mod cluster_decision_resource;
pub mod clusters;
pub mod git;
pub mod images;
pub mod list;
pub mod matrix;
pub mod merge;
pub mod plugin;
pub mod pull_request;
pub mod scm_provider;
pub mod values;

use prism_core::error::{Error, ErrorKind};
use prism_core::options::RenderOptions;
use prism_core::params::{flat_view, ParamSet, ParamShape};
use prism_core::selector::LabelSelector;
use prism_core::sources::Sources;
use prism_core::template::Renderer;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What generators read and write while expanding one ApplicationSet.
pub struct Context<'a> {
    /// Repositories and clusters.
    pub sources: &'a dyn Sources,
    /// The spec's template engine (generators template their own `values`).
    pub renderer: &'a Renderer,
    /// Caller's options (glob mode, in-cluster).
    pub options: &'a RenderOptions,
    /// Warnings for the user (a glob that matched nothing); not errors.
    pub warnings: &'a RefCell<Vec<String>>,
    /// Whether the spec is `prism.dev` (Prism's own generators allowed).
    pub prism: bool,
    /// `metadata.name` of the ApplicationSet (plugins are told it).
    pub appset_name: &'a str,
    /// Every repository URL the ApplicationSet names (what plugins may read).
    pub repositories: &'a [String],
    /// Inside a matrix: the parameter set of the earlier children (plugins are told it).
    pub upstream: Option<&'a ParamSet>,
}

impl Context<'_> {
    /// Which parameter shape to emit.
    pub fn shape(&self) -> ParamShape {
        self.renderer.shape()
    }

    /// Records a warning.
    pub fn warn(&self, message: String) {
        self.warnings.borrow_mut().push(message);
    }

    /// The same context with `upstream` as the earlier matrix children's parameters.
    pub fn with_upstream<'b>(&'b self, upstream: &'b ParamSet) -> Context<'b> {
        Context {
            sources: self.sources,
            renderer: self.renderer,
            options: self.options,
            warnings: self.warnings,
            prism: self.prism,
            appset_name: self.appset_name,
            repositories: self.repositories,
            upstream: Some(upstream),
        }
    }
}

/// A parameter set and the generators that made it (for `--explain` and error messages).
#[derive(Debug, Clone)]
pub struct Generated {
    /// The parameters.
    pub params: ParamSet,
    /// Spec paths of the leaf generators that contributed, in order.
    pub origin: Vec<Arc<str>>,
}

/// A generator's parameter sets as the engine keeps them for rendering: made, or (a
/// matrix's last step) a product of two lists still to be combined, so that a large
/// matrix costs the memory of its children, and each combined set lives only while its
/// Application is rendered.
#[derive(Debug)]
pub enum Sets {
    /// Every set, made.
    Made(Vec<Generated>),
    /// Pairs of sets, combined when asked for.
    Product(Product),
}

/// Pairs of parameter sets, already checked to combine without conflict.
#[derive(Debug)]
pub struct Product {
    left: Vec<Generated>,
    /// The later child's sets, once per distinct expansion of it.
    right: Vec<Arc<Vec<Generated>>>,
    /// (left set, right group, set in that group), in the product's order.
    pairs: Vec<(u32, u32, u32)>,
    shape: ParamShape,
}

impl Product {
    /// The pairs of `left` with `right[groups[i]]` (every set of that group), in order.
    pub fn new(
        left: Vec<Generated>,
        right: Vec<Arc<Vec<Generated>>>,
        groups: &[usize],
        shape: ParamShape,
    ) -> Product {
        let mut pairs = Vec::new();
        for (a, &g) in groups.iter().enumerate() {
            let n = right.get(g).map_or(0, |r| r.len());
            pairs.extend((0..n).map(|b| (a as u32, g as u32, b as u32)));
        }
        Product {
            left,
            right,
            pairs,
            shape,
        }
    }

    /// How many sets.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The two sets of pair `i`.
    pub fn parts(&self, i: usize) -> Option<(&Generated, &Generated)> {
        let &(a, g, b) = self.pairs.get(i)?;
        Some((
            self.left.get(a as usize)?,
            self.right.get(g as usize)?.get(b as usize)?,
        ))
    }

    /// Set `i`, combined.
    pub fn get(&self, i: usize) -> Option<Generated> {
        let (a, b) = self.parts(i)?;
        Some(combine_checked(a, b, self.shape))
    }

    /// Keeps the sets `keep` says yes to.
    pub fn retain(&mut self, keep: impl Fn(&Generated) -> bool) {
        let pairs = std::mem::take(&mut self.pairs);
        self.pairs = pairs
            .into_iter()
            .filter(|&(a, g, b)| {
                let (a, b) = (&self.left[a as usize], &self.right[g as usize][b as usize]);
                keep(&combine_checked(a, b, self.shape))
            })
            .collect();
    }
}

/// Two sets combined (the later child's under the earlier's), once
/// [`check_combinable`] has passed.
pub fn combine_checked(a: &Generated, b: &Generated, shape: ParamShape) -> Generated {
    let params = match shape {
        ParamShape::Flat => {
            let mut out = a.params.clone();
            for (k, vb) in &b.params {
                if !out.contains_key(k) {
                    out.insert(k.clone(), vb.clone());
                }
            }
            out
        }
        ParamShape::Nested => {
            let mut out = b.params.clone();
            merge_override(&mut out, &a.params);
            out
        }
    };
    let mut origin = a.origin.clone();
    origin.extend(b.origin.iter().cloned());
    Generated { params, origin }
}

/// Argo's `CombineStringMaps` conflict in the default mode: a key both sets have with
/// different values (the nested modes let the earlier set win instead).
pub fn check_combinable(
    a: &Generated,
    b: &Generated,
    shape: ParamShape,
    path: &str,
) -> Result<(), Error> {
    if shape == ParamShape::Nested {
        return Ok(());
    }
    for (k, vb) in &b.params {
        match a.params.get(k) {
            Some(va) if va != vb => {
                return Err(Error::new(
                    path,
                    ErrorKind::Combine(format!(
                        "found duplicate key {k} with different value, a: {} ,b: {}; \
                         rename the parameter in one child (for git: pathParamPrefix)",
                        prism_core::params::go_format(va),
                        prism_core::params::go_format(vb)
                    )),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

impl Sets {
    /// How many sets.
    pub fn len(&self) -> usize {
        match self {
            Sets::Made(v) => v.len(),
            Sets::Product(p) => p.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set `i`: borrowed when made, combined now from a product.
    pub fn get(&self, i: usize) -> Option<std::borrow::Cow<'_, Generated>> {
        match self {
            Sets::Made(v) => v.get(i).map(std::borrow::Cow::Borrowed),
            Sets::Product(p) => p.get(i).map(std::borrow::Cow::Owned),
        }
    }

    /// Keeps the sets `keep` says yes to (a product's are combined to be asked).
    pub fn retain(&mut self, keep: impl Fn(&Generated) -> bool) {
        match self {
            Sets::Made(v) => v.retain(keep),
            Sets::Product(p) => p.retain(keep),
        }
    }

    /// Every set, made.
    pub fn into_vec(self) -> Vec<Generated> {
        match self {
            Sets::Made(v) => v,
            Sets::Product(p) => (0..p.len()).filter_map(|i| p.get(i)).collect(),
        }
    }
}

/// A parsed generator of any kind, ready to expand.
pub trait Generate: std::fmt::Debug + Send + Sync {
    /// Checks what serde cannot (patterns, children, selectors); `prism` is whether the
    /// spec is `prism.dev` (children may use Prism's own generators).
    fn check(&self, _path: &str, _prism: bool) -> Result<(), Error> {
        Ok(())
    }

    /// Expands into parameter sets; `path` is this generator's spec path.
    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<Generated>, Error>;

    /// The sets as the engine keeps them to render ([`Sets::Product`] lets a matrix
    /// defer combining); by default [`Generate::generate`]'s, made.
    fn generate_sets(&self, ctx: &Context, path: &str) -> Result<Sets, Error> {
        Ok(Sets::Made(self.generate(ctx, path)?))
    }
}

/// One kind of generator: its spec key and everything the rest of Prism asks of it
/// (render, validate, lint, schema, the controller's requeue and triggers). Each
/// generator file implements it once; [`REGISTRY`] lists them.
pub trait GeneratorKind: Sync {
    /// The key in a `generators` entry (`list`, `git`, …), as Argo CD names it.
    fn key(&self) -> &'static str;

    /// Whether only `prism.dev/v1alpha1` specs may use it.
    fn prism_only(&self) -> bool {
        false
    }

    /// Reads the generator's body (its `template` already removed) at `path`.
    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn Generate>, Error>;

    /// The JSON Schema of the body (for `prism schema`).
    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;

    /// The parameters a body can emit (for `lint`'s `unknown-parameter`).
    fn emits(&self, body: &Value, out: &mut Emits);

    /// How often the controller renders a set using it again when nothing else
    /// triggers it (a generator's own `requeueAfterSeconds` wins).
    fn requeue(&self) -> Option<std::time::Duration> {
        None
    }

    /// The (`repoURL`, `revision`) a body reads, so a push to it triggers the set.
    fn reads_git(&self, _body: &Value) -> Option<(String, String)> {
        None
    }

    /// Whether it reads Argo CD's cluster Secrets, so a change to them triggers the set.
    fn reads_clusters(&self) -> bool {
        false
    }

    /// The SCM repository whose pull requests a body lists, so a pull request webhook
    /// for it triggers the set.
    fn reads_pull_requests(&self, _body: &Value) -> Option<PullRequestSource> {
        None
    }

    /// The decision resources a body reads, so the controller reads and watches them.
    fn reads_decisions(&self, _body: &Value) -> Option<DecisionSource> {
        None
    }

    /// The Secrets and ConfigMaps a body names (tokens, passwords, CAs, GitHub Apps),
    /// so the controller reads them before rendering.
    fn references(&self, _body: &Value, _out: &mut References) {}
}

/// Where a `pullRequest` generator lists pull requests, as a webhook names it. A field
/// that is templated (from a matrix's earlier child) matches anything.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PullRequestSource {
    /// `github`, `gitlab`, `gitea`, `bitbucketServer`, `bitbucket` or `azuredevops`.
    pub provider: String,
    /// The spec's `api`, or the public service's.
    pub api: String,
    /// Owner, GitLab project (id or path), Bitbucket project key, or Azure project.
    pub owner: String,
    /// The repository (empty for GitLab, whose project is in `owner`).
    pub repo: String,
}

/// What a `clusterDecisionResource` generator reads: its ConfigMap and selection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DecisionSource {
    /// `configMapRef`.
    pub config_map: String,
    /// `name`, when it picks one resource.
    pub name: Option<String>,
    /// `labelSelector` in Kubernetes' query syntax, when it selects by labels.
    pub label_selector: Option<String>,
}

/// What a set's generators name outside the spec, for the controller to read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// Secrets in the set's namespace (`tokenRef`, `passwordRef`, …).
    pub secrets: std::collections::BTreeSet<String>,
    /// ConfigMaps in the set's namespace (`caRef`).
    pub config_maps: std::collections::BTreeSet<String>,
    /// GitHub App Secrets (`appSecretName`), Argo CD's repo-creds in its namespace.
    pub app_secrets: std::collections::BTreeSet<String>,
}

impl References {
    /// Adds every credential reference of a provider body: `{secretName, key}` objects
    /// (`tokenRef`, `passwordRef`, `appPasswordRef`, `accessTokenRef`, …), `caRef`s and
    /// `appSecretName`s, wherever the provider keeps them.
    pub fn scan(&mut self, body: &Value) {
        match body {
            Value::Object(o) => {
                for (k, v) in o {
                    match k.as_str() {
                        "template" | "values" | "generators" => {}
                        "appSecretName" => {
                            if let Some(name) = v.as_str().filter(|n| !n.is_empty()) {
                                self.app_secrets.insert(name.to_string());
                            }
                        }
                        "caRef" => {
                            if let Some(name) = v["configMapName"].as_str() {
                                self.config_maps.insert(name.to_string());
                            }
                        }
                        _ => match v["secretName"].as_str() {
                            Some(name) if v.get("key").is_some() => {
                                self.secrets.insert(name.to_string());
                            }
                            _ => self.scan(v),
                        },
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.scan(v)),
            _ => {}
        }
    }
}

/// How often a set reading git, values or images is rendered again without a trigger.
pub const GIT_REQUEUE: std::time::Duration = std::time::Duration::from_secs(180);
/// How often a set with a plugin is rendered again without a trigger (Argo's default).
pub const PLUGIN_REQUEUE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A body's `repoURL` and `revision` (empty when unset).
pub fn repo_and_revision(body: &Value) -> Option<(String, String)> {
    let url = body.get("repoURL")?.as_str()?;
    let rev = body
        .get("revision")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((url.to_string(), rev.to_string()))
}

/// A filter's regular expression (Go's RE2 syntax) under the size `limit`; the error
/// names the spec path `at` and the pattern, as Argo's "error compiling regexp".
pub fn filter_regex(
    pattern: Option<&str>,
    at: String,
    limit: usize,
) -> Result<Option<regex::Regex>, Error> {
    pattern
        .map(|p| {
            regex::RegexBuilder::new(p)
                .size_limit(limit)
                .dfa_size_limit(limit)
                .build()
                .map_err(|e| Error::invalid(at, format!("error compiling regexp {p:?}: {e}")))
        })
        .transpose()
}

/// A provider block of an SCM generator (`github`, `gitlab`, …) as JSON, when given.
pub(crate) fn provider_block<T: serde::Serialize>(block: &Option<T>) -> Option<Value> {
    block
        .as_ref()
        .map(|b| serde_json::to_value(b).unwrap_or_default())
}

/// The provider blocks an SCM generator's body gives, by key (one, when it is right).
pub(crate) fn given_providers<const N: usize>(
    blocks: [(&'static str, Option<Value>); N],
) -> Vec<(&'static str, Value)> {
    blocks
        .into_iter()
        .filter_map(|(name, b)| Some((name, b?)))
        .collect()
}

/// Every generator Prism knows; adding a generator is a file and a line here.
pub const REGISTRY: &[&dyn GeneratorKind] = &[
    &list::List,
    &clusters::Clusters,
    &cluster_decision_resource::ClusterDecisionResource,
    &git::Git,
    &matrix::Matrix,
    &merge::Merge,
    &plugin::Plugin,
    &pull_request::PullRequests,
    &scm_provider::ScmProvider,
    &values::Values,
    &images::Images,
];

/// The generator kind registered under `key`.
pub fn lookup(key: &str) -> Option<&'static dyn GeneratorKind> {
    REGISTRY.iter().copied().find(|g| g.key() == key)
}

/// The generator keys for messages: Argo's, then Prism's own.
pub fn known_generators() -> String {
    let argo: Vec<&str> = REGISTRY
        .iter()
        .filter(|g| !g.prism_only())
        .map(|g| g.key())
        .collect();
    let prism: Vec<&str> = REGISTRY
        .iter()
        .filter(|g| g.prism_only())
        .map(|g| g.key())
        .collect();
    format!(
        "{}, {} (prism.dev only)",
        argo.join(", "),
        prism.join(" and ")
    )
}

/// One entry of a `generators` list: exactly one generator, plus Argo's `selector`.
/// Its properties come from the generator registry.
pub struct GeneratorEntry;

impl schemars::JsonSchema for GeneratorEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GeneratorEntry".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut props = serde_json::Map::new();
        for kind in REGISTRY {
            let mut schema = kind.schema(generator).to_value();
            if kind.prism_only() {
                if let Some(obj) = schema.as_object_mut() {
                    obj.insert("description".into(), "prism.dev/v1alpha1 only.".into());
                }
            }
            props.insert(kind.key().into(), schema);
        }
        props.insert(
            "selector".into(),
            generator
                .subschema_for::<prism_core::selector::LabelSelector>()
                .to_value(),
        );
        schemars::json_schema!({
            "description": "One entry of a `generators` list: exactly one generator, plus Argo's `selector`.",
            "type": "object",
            "properties": props,
            "additionalProperties": false,
        })
    }
}

/// Deserializes a body as `T` (the common [`GeneratorKind::parse`]).
pub fn parse_as<T: DeserializeOwned + Generate + 'static>(
    body: Value,
    path: &str,
) -> Result<Box<dyn Generate>, Error> {
    Ok(Box::new(from_body::<T>(body, path)?))
}

/// Leaf parameter sets with their origin, the generator at `path`.
pub fn leaf(sets: Vec<ParamSet>, path: &str) -> Vec<Generated> {
    let origin: Arc<str> = Arc::from(path);
    sets.into_iter()
        .map(|params| Generated {
            params,
            origin: vec![origin.clone()],
        })
        .collect()
}

/// Which parameters a generator can emit: exact names, prefixes (`values.`), or anything.
#[derive(Debug, Default, Clone)]
pub struct Emits {
    /// Exact parameter names.
    pub names: Vec<String>,
    /// Prefixes of parameter names (`values.`).
    pub prefixes: Vec<String>,
    /// Whether any name may come (file contents, plugin answers).
    pub anything: bool,
}

impl Emits {
    /// Whether `key` may be emitted.
    pub fn allows(&self, key: &str) -> bool {
        self.anything
            || self.names.iter().any(|n| n == key)
            || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    /// Adds what `other` may emit.
    pub fn add(&mut self, other: Emits) {
        self.names.extend(other.names);
        self.prefixes.extend(other.prefixes);
        self.anything |= other.anything;
    }

    /// Adds exact names.
    pub fn names(&mut self, names: &[&str]) {
        self.names.extend(names.iter().map(|s| s.to_string()));
    }

    /// Adds `values` and `values.*` when the body has templated `values`.
    pub fn values_of(&mut self, body: &Value) {
        if body.get("values").is_some() {
            self.prefixes.push("values.".into());
            self.names.push("values".into());
        }
    }
}

/// What the `generators` children of a matrix or merge body can emit, together.
pub fn emits_of_children(body: &Value, e: &mut Emits) {
    for child in body
        .get("generators")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        e.add(emits(child));
    }
}

/// What a raw `generators` entry can emit; unknown generators may emit anything.
pub fn emits(raw: &Value) -> Emits {
    let mut e = Emits::default();
    let Some(obj) = raw.as_object() else {
        e.anything = true;
        return e;
    };
    for (key, body) in obj {
        match lookup(key) {
            Some(kind) => kind.emits(body, &mut e),
            None if key == "selector" => {}
            None => e.anything = true,
        }
    }
    e
}

/// One entry of a `generators` list: a generator plus Argo's per-generator `selector`
/// and `template` override.
#[derive(Debug)]
pub struct GeneratorNode {
    /// The generator.
    pub generator: Box<dyn Generate>,
    /// Spec path of the generator itself, e.g. `spec.generators[0].list`.
    pub path: String,
    /// Parameter sets whose flat view does not match are dropped.
    pub selector: Option<LabelSelector>,
    /// Template fields that override `spec.template` for this generator's Applications.
    pub template: Option<Value>,
}

impl GeneratorNode {
    /// Reads a `generators` entry at `path` (e.g. `spec.generators[0]`).
    pub fn parse(raw: &Value, path: &str, prism: bool) -> Result<GeneratorNode, Error> {
        let obj = raw.as_object().ok_or_else(|| {
            Error::invalid(path, "a generator must be a mapping such as `list: {...}`")
        })?;
        let mut key = None;
        for k in obj.keys() {
            if k == "selector" {
                continue;
            }
            #[cfg(feature = "test-panic")]
            if k == "testPanic" {
                panic!("the testPanic generator panics on purpose (test builds only)");
            }
            if lookup(k).is_none() {
                return Err(Error::new(
                    format!("{path}.{k}"),
                    ErrorKind::UnknownGenerator {
                        key: k.clone(),
                        expected: known_generators(),
                    },
                ));
            }
            if let Some(first) = key {
                return Err(Error::invalid(
                    path,
                    format!("one generator per entry, found both {first} and {k}; split them into two entries"),
                ));
            }
            key = Some(k.as_str());
        }
        let key = key.ok_or_else(|| {
            Error::invalid(
                path,
                format!(
                    "no generator in this entry; use one of {}",
                    known_generators()
                ),
            )
        })?;
        let gen_path = format!("{path}.{key}");
        let mut body = match obj.get(key) {
            Some(Value::Object(m)) => m.clone(),
            // Argo CD reads a null generator as no generator at all ("unrecognized generators").
            Some(Value::Null) | None => {
                return Err(Error::invalid(
                    &gen_path,
                    format!("is null, so Argo CD sees no generator here; write its fields, e.g. `{key}: {{...}}`"),
                ))
            }
            Some(_) => return Err(Error::invalid(&gen_path, "must be a mapping")),
        };
        let template = body.remove("template").filter(|t| !t.is_null());
        if let Some(t) = &template {
            check_template(t, &format!("{gen_path}.template"))?;
        }
        let selector = match obj.get("selector") {
            None | Some(Value::Null) => None,
            Some(s) => {
                let sel: LabelSelector = serde_json::from_value(s.clone())
                    .map_err(|e| Error::invalid(format!("{path}.selector"), e.to_string()))?;
                sel.validate()
                    .map_err(|e| Error::invalid(format!("{path}.selector"), e))?;
                Some(sel)
            }
        };
        let kind = lookup(key).ok_or_else(|| {
            Error::new(
                &gen_path,
                ErrorKind::UnknownGenerator {
                    key: key.to_string(),
                    expected: known_generators(),
                },
            )
        })?;
        if kind.prism_only() && !prism {
            return Err(Error::invalid(
                &gen_path,
                format!("the {key} generator is Prism's own; set apiVersion: prism.dev/v1alpha1 to use it"),
            ));
        }
        let generator = kind.parse(Value::Object(body), &gen_path)?;
        generator.check(&gen_path, prism)?;
        Ok(GeneratorNode {
            generator,
            path: gen_path,
            selector,
            template,
        })
    }

    /// Checks a `generators` entry without expanding it.
    pub fn check(raw: &Value, path: &str, prism: bool) -> Result<(), Error> {
        GeneratorNode::parse(raw, path, prism).map(|_| ())
    }

    /// Expands the generator and applies the node's selector.
    pub fn expand(&self, ctx: &Context) -> Result<Vec<Generated>, Error> {
        let mut sets = self.generator.generate(ctx, &self.path)?;
        check_set_count(sets.len(), ctx, &self.path)?;
        if let Some(selector) = &self.selector {
            sets.retain(|g| selector.matches(&flat_view(&g.params)));
        }
        Ok(sets)
    }

    /// [`GeneratorNode::expand`] as the engine keeps the sets to render (see [`Sets`]).
    pub fn expand_sets(&self, ctx: &Context) -> Result<Sets, Error> {
        let mut sets = self.generator.generate_sets(ctx, &self.path)?;
        check_set_count(sets.len(), ctx, &self.path)?;
        if let Some(selector) = &self.selector {
            sets.retain(|g| selector.matches(&flat_view(&g.params)));
        }
        Ok(sets)
    }
}

/// Checks the shape of an Application template (`metadata`, `spec`).
pub fn check_template(template: &Value, path: &str) -> Result<(), Error> {
    let obj = template.as_object().ok_or_else(|| {
        Error::invalid(path, "a template must be a mapping with metadata and spec")
    })?;
    for key in obj.keys() {
        if key != "metadata" && key != "spec" {
            return Err(Error::invalid(
                format!("{path}.{key}"),
                format!("unknown field {key:?}; a template has only metadata and spec"),
            ));
        }
    }
    if let Some(meta) = obj.get("metadata") {
        let meta = meta
            .as_object()
            .ok_or_else(|| Error::invalid(format!("{path}.metadata"), "must be a mapping"))?;
        for key in meta.keys() {
            if !["name", "namespace", "labels", "annotations", "finalizers"].contains(&key.as_str())
            {
                return Err(Error::invalid(
                    format!("{path}.metadata.{key}"),
                    format!(
                        "unknown field {key:?}; template metadata has name, namespace, labels, annotations and finalizers"
                    ),
                ));
            }
        }
    }
    if let Some(spec) = obj.get("spec") {
        if !spec.is_object() {
            return Err(Error::invalid(format!("{path}.spec"), "must be a mapping"));
        }
    }
    Ok(())
}

/// Reads and expands a raw `generators` entry at `path` (a matrix templates later
/// children with [`interpolate`] first).
pub fn expand_raw(raw: &Value, path: &str, ctx: &Context) -> Result<Vec<Generated>, Error> {
    GeneratorNode::parse(raw, path, ctx.prism)?.expand(ctx)
}

/// An error once a generator would make more than `Limits::parameter_sets` sets.
pub fn check_set_count(n: usize, ctx: &Context, path: &str) -> Result<(), Error> {
    let limits = &ctx.options.limits;
    if n > limits.parameter_sets {
        return Err(Error::new(
            path,
            ErrorKind::Combine(format!(
                "this generator would make {n} parameter sets or more: {}",
                prism_core::limits::Limit::ParameterSets.exceeded(limits)
            )),
        ));
    }
    Ok(())
}

/// Templates every string of a raw generator with `params` (Argo's `RenderGeneratorParams`).
///
/// In Go template mode a generator's `values` are resolved with `missingkey=error`, and
/// a value whose keys the earlier parameters lack is kept as written, for the child's
/// own rendering to fill (a clusters child's `{{.name}}`); other errors fail.
pub fn interpolate(
    raw: &Value,
    params: &ParamSet,
    ctx: &Context,
    path: &str,
) -> Result<Value, Error> {
    let fail = |e: String| Error::new(path, ErrorKind::RenderTemplate(e));
    if ctx.shape() == ParamShape::Flat || ctx.renderer.is_handlebars() {
        return ctx
            .renderer
            .render_value(raw, params)
            .map_err(|e| fail(e.to_string()));
    }
    let mut raw = raw.clone();
    let mut held: Vec<(String, Map<String, Value>)> = Vec::new();
    if let Value::Object(entry) = &mut raw {
        for (key, body) in entry.iter_mut() {
            if let Some(Value::Object(values)) =
                body.as_object_mut().and_then(|b| b.remove("values"))
            {
                held.push((key.clone(), values));
            }
        }
    }
    let mut out = ctx
        .renderer
        .render_value(&raw, params)
        .map_err(|e| fail(e.to_string()))?;
    let data = prism_core::gotemplate::data_of(params);
    for (key, values) in held {
        let mut resolved = Map::new();
        for (k, v) in values {
            let value = match &v {
                Value::String(t) if t.contains("{{") => {
                    match ctx.renderer.render_go(t, &data, true) {
                        Ok(r) => Value::String(r),
                        Err(e) if is_missing_key(&e) => v,
                        Err(e) => {
                            return Err(fail(format!(
                            "field {key}.values.{k}: failed to pre-resolve Values key {k:?}: {e}"
                        )))
                        }
                    }
                }
                _ => v,
            };
            resolved.insert(k, value);
        }
        if let Some(body) = out.get_mut(&key).and_then(Value::as_object_mut) {
            body.insert("values".into(), Value::Object(resolved));
        }
    }
    Ok(out)
}

/// Argo's `isMissingKeyError`.
fn is_missing_key(e: &str) -> bool {
    e.contains("map has no entry for key")
        || e.contains("can't evaluate field")
        || e.contains("nil data; no entry for key")
}

/// Argo's `appendTemplatedValues`: each of a generator's `values` is rendered against
/// the parameters made so far and added as `values.<key>` (flat) or `values: {key}` (nested).
pub fn append_values(
    values: &BTreeMap<String, String>,
    params: &mut ParamSet,
    ctx: &Context,
    path: &str,
) -> Result<(), Error> {
    if values.is_empty() {
        return Ok(());
    }
    let mut rendered = Map::new();
    for (k, v) in values {
        let value = ctx
            .renderer
            .render_str(v, params)
            .map_err(|e| Error::new(format!("{path}.values.{k}"), ErrorKind::RenderTemplate(e)))?;
        rendered.insert(k.clone(), Value::String(value));
    }
    match ctx.shape() {
        ParamShape::Flat => {
            for (k, v) in rendered {
                params.insert(format!("values.{k}"), v);
            }
        }
        ParamShape::Nested => {
            params.insert("values".into(), Value::Object(rendered));
        }
    }
    Ok(())
}

/// The error for a repository or file that could not be read.
pub fn read_error(
    path: &str,
    repo_url: &str,
    revision: &str,
    source: prism_core::sources::SourceError,
) -> Error {
    Error::new(
        path,
        ErrorKind::ReadRepo {
            repo_url: repo_url.to_string(),
            revision: revision.to_string(),
            source,
        },
    )
}

/// The error for a repository file that is not valid YAML or JSON (or not the expected shape).
pub fn parse_error(path: &str, repo_url: &str, file: &str, message: String) -> Error {
    Error::new(
        path,
        ErrorKind::ParseFile {
            file: file.to_string(),
            repo_url: repo_url.to_string(),
            message,
        },
    )
}

/// Deserializes a generator body, naming the path on error.
fn from_body<T: DeserializeOwned>(body: Value, path: &str) -> Result<T, Error> {
    serde_json::from_value(body).map_err(|e| Error::invalid(path, e.to_string()))
}

/// Deep merge where `over` wins (mergo's `WithOverride`), for nested parameter sets.
pub fn merge_override(base: &mut ParamSet, over: &ParamSet) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge_override(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The path parameters Argo emits for a repository path, flat or nested.
pub fn path_params(
    params: &mut ParamSet,
    shape: ParamShape,
    prefix: &str,
    dir: &str,
    file: Option<&str>,
) {
    let basename = go_base(dir).to_string();
    let basename_normalized = prism_core::params::normalize(&basename);
    let segments: Vec<&str> = dir.split('/').collect();
    match shape {
        ParamShape::Flat => {
            let name = if prefix.is_empty() {
                "path".to_string()
            } else {
                format!("{prefix}.path")
            };
            params.insert(name.clone(), dir.into());
            params.insert(format!("{name}.basename"), basename.into());
            params.insert(
                format!("{name}.basenameNormalized"),
                basename_normalized.into(),
            );
            if let Some(f) = file {
                params.insert(format!("{name}.filename"), f.into());
                params.insert(
                    format!("{name}.filenameNormalized"),
                    prism_core::params::normalize(f).into(),
                );
            }
            for (i, s) in segments.iter().enumerate() {
                if !s.is_empty() {
                    params.insert(format!("{name}[{i}]"), (*s).into());
                }
            }
        }
        ParamShape::Nested => {
            let mut p = Map::new();
            p.insert("path".into(), dir.into());
            p.insert("basename".into(), basename.into());
            p.insert("basenameNormalized".into(), basename_normalized.into());
            if let Some(f) = file {
                p.insert("filename".into(), f.into());
                p.insert(
                    "filenameNormalized".into(),
                    prism_core::params::normalize(f).into(),
                );
            }
            p.insert(
                "segments".into(),
                Value::Array(
                    segments
                        .iter()
                        .map(|s| Value::String(s.to_string()))
                        .collect(),
                ),
            );
            if prefix.is_empty() {
                params.insert("path".into(), Value::Object(p));
            } else {
                let mut outer = Map::new();
                outer.insert("path".into(), Value::Object(p));
                params.insert(prefix.into(), Value::Object(outer));
            }
        }
    }
}

pub use prism_core::params::{go_base, go_dir};

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers for the generators' table tests.
    use super::*;
    use prism_core::sources::memory::MemorySources;
    use prism_core::template::TemplateEngine;

    /// Expands one raw generator entry at `spec.generators[0]`; params as JSON values.
    pub fn expand_with(
        raw: Value,
        engine: TemplateEngine,
        sources: &dyn Sources,
        options: &RenderOptions,
    ) -> Result<Vec<Value>, String> {
        let renderer = Renderer::new(&engine).map_err(|e| e.to_string())?;
        let warnings = RefCell::new(vec![]);
        let ctx = Context {
            sources,
            renderer: &renderer,
            options,
            warnings: &warnings,
            prism: true,
            appset_name: "test",
            repositories: &[],
            upstream: None,
        };
        let sets = expand_raw(&raw, "spec.generators[0]", &ctx).map_err(|e| e.to_string())?;
        Ok(sets.into_iter().map(|g| Value::Object(g.params)).collect())
    }

    fn engine(nested: bool) -> TemplateEngine {
        if nested {
            TemplateEngine::Handlebars
        } else {
            TemplateEngine::Fast
        }
    }

    /// Expands with empty sources; `nested` picks handlebars (nested params) over fasttemplate.
    pub fn expand_one(raw: Value, nested: bool) -> Vec<Value> {
        expand_with(
            raw,
            engine(nested),
            &MemorySources::new(),
            &RenderOptions::default(),
        )
        .unwrap()
    }

    /// A top-level node's sets as the engine keeps them ([`Sets`], possibly a deferred
    /// product) and as generators get them: (deferred ones, made ones, whether deferred).
    pub fn expand_both(raw: Value, nested: bool) -> (Vec<Value>, Vec<Value>, bool) {
        let renderer = Renderer::new(&engine(nested)).unwrap();
        let warnings = RefCell::new(vec![]);
        let sources = MemorySources::new();
        let options = RenderOptions::default();
        let ctx = Context {
            sources: &sources,
            renderer: &renderer,
            options: &options,
            warnings: &warnings,
            prism: true,
            appset_name: "test",
            repositories: &[],
            upstream: None,
        };
        let node = GeneratorNode::parse(&raw, "spec.generators[0]", true).unwrap();
        let sets = node.expand_sets(&ctx).unwrap();
        let deferred = matches!(sets, Sets::Product(_));
        let show = |g: &Generated| serde_json::json!({"params": g.params, "origin": g.origin.iter().map(|o| o.to_string()).collect::<Vec<_>>()});
        let lazily = (0..sets.len())
            .map(|i| show(&sets.get(i).unwrap()))
            .collect();
        let made = node.expand(&ctx).unwrap().iter().map(show).collect();
        (lazily, made, deferred)
    }

    /// The error text of expanding with empty sources.
    pub fn expand_err(raw: Value, nested: bool) -> String {
        expand_with(
            raw,
            engine(nested),
            &MemorySources::new(),
            &RenderOptions::default(),
        )
        .unwrap_err()
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    /// A registered generator is documented in the README's generator table, and its
    /// key is unique.
    #[test]
    fn every_registered_generator_is_documented() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Generators")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        for kind in REGISTRY {
            assert!(
                table.contains(&format!("| `{}`", kind.key())),
                "README's generator table lacks `{}`",
                kind.key()
            );
            assert_eq!(
                REGISTRY.iter().filter(|k| k.key() == kind.key()).count(),
                1,
                "{} is registered twice",
                kind.key()
            );
        }
        assert_eq!(
            known_generators(),
            "list, clusters, clusterDecisionResource, git, matrix, merge, plugin, pullRequest, scmProvider, values and images (prism.dev only)"
        );
    }

    /// Lint asks the registry: a generator's own parameters are known, anything from an
    /// unregistered key is allowed.
    #[test]
    fn lint_emits_come_from_the_registry() {
        let e = emits(&serde_json::json!({"clusters": {"values": {"a": "b"}}}));
        assert!(e.allows("nameNormalized") && e.allows("values.a") && !e.allows("nope"));
        let e = emits(&serde_json::json!({"matrix": {"generators": [
            {"git": {"repoURL": "r", "directories": [{"path": "*"}], "pathParamPrefix": "p"}},
            {"values": {"repoURL": "r"}}
        ]}}));
        assert!(e.allows("p.path.basename") && e.allows("service") && !e.allows("nope"));
        assert!(emits(&serde_json::json!({"unknownKind": {}})).allows("anything"));
    }
}
