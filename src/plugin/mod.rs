//! The WebAssembly plugin host: runs `plugin` generators in-process, sandboxed.
//!
//! Argo CD's plugin generator calls an HTTP service the user must deploy; Prism
//! runs the plugin's `.wasm` with wasmtime instead. The admin's plugins file
//! ([`config`]) names each plugin, pins its SHA-256, sets its limits and grants its
//! capabilities ([`capabilities`]); [`runtime`] compiles (once, cached on disk) and
//! calls it in a fresh store per call. Results are cached in memory by (module
//! SHA-256, request) and reused while what the call read is unchanged.
//!
//! The engine sees none of this: [`PluginSources`] wraps any engine `Sources` and
//! answers its `plugin` calls.

pub mod capabilities;
pub mod config;
pub mod inspect;
pub mod runtime;

use capabilities::{Capabilities, Dependency};
use config::{PluginDefinition, PluginDefinitions};
use prism_engine::{Cluster, GitRef, ParamSet, PluginCall, Repository, SourceError, Sources};
use runtime::{CompileSource, Compiled, Runtime};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Loads plugins on first use and runs them.
pub struct PluginHost {
    definitions: PluginDefinitions,
    runtime: Runtime,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    results: Mutex<HashMap<(String, String), CachedResult>>,
    now: Option<i64>,
    executions: std::sync::atomic::AtomicU64,
}

/// A plugin compiled and ready.
pub struct Loaded {
    compiled: Compiled,
    sha256: String,
    /// Whether the code came from the on-disk cache.
    pub source: CompileSource,
}

struct CachedResult {
    sets: Vec<ParamSet>,
    dependencies: Vec<Dependency>,
    expires: Option<Instant>,
}

impl PluginHost {
    /// A host for `definitions`; compiled code is cached in `cache_dir` if given.
    pub fn new(definitions: PluginDefinitions, cache_dir: Option<PathBuf>) -> Result<Self, String> {
        Ok(PluginHost {
            definitions,
            runtime: Runtime::new(cache_dir)?,
            loaded: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
            now: None,
            executions: Default::default(),
        })
    }

    /// Tells plugins this time (seconds since the Unix epoch) instead of the clock,
    /// for reproducible output.
    pub fn with_now(mut self, secs: i64) -> Self {
        self.now = Some(secs);
        self
    }

    /// How many calls actually ran a plugin (cached results not counted).
    pub fn executions(&self) -> u64 {
        self.executions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The definitions.
    pub fn definitions(&self) -> &PluginDefinitions {
        &self.definitions
    }

    fn definition(&self, name: &str) -> Result<&PluginDefinition, String> {
        self.definitions.by_name.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.definitions.by_name.keys().map(String::as_str).collect();
            format!(
                "no plugin named {name:?} in {} (it defines: {}); add a definition with name, path and sha256",
                self.definitions.file,
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })
    }

    /// The compiled plugin `name`, loading it (and checking its SHA-256) on first use.
    pub fn load(&self, name: &str) -> Result<Arc<Loaded>, String> {
        if let Some(l) = self.loaded.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(l);
        }
        let def = self.definition(name)?;
        let bytes = crate::fsread::read(&def.path)
            .map_err(|e| format!("cannot read {}: {e}", def.path.display()))?;
        let sha = crate::digest::sha256_hex(&bytes);
        if sha != def.sha256 {
            return Err(format!(
                "refusing to load {}: its sha256 is {sha} but the definition in {} says {}; \
                 if the plugin was replaced on purpose, update sha256",
                def.path.display(),
                self.definitions.file,
                def.sha256
            ));
        }
        let started = Instant::now();
        let (compiled, source) = self
            .runtime
            .compile(&bytes, &sha)
            .map_err(|e| format!("{}: {e}", def.path.display()))?;
        tracing::debug!(plugin = name, ?source, elapsed = ?started.elapsed(), "plugin loaded");
        let loaded = Arc::new(Loaded {
            compiled,
            sha256: sha,
            source,
        });
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(name.to_string(), loaded.clone());
        }
        Ok(loaded)
    }

    /// Runs the plugin `call.name` for a generator; `sources` serve its repository reads.
    pub fn generate(
        &self,
        call: &PluginCall<'_>,
        sources: Option<Arc<dyn Sources + Send + Sync>>,
    ) -> Result<Vec<ParamSet>, String> {
        let def = self.definition(call.name)?;
        let loaded = self.load(call.name)?;
        let request = call.request.to_string();
        let key = (loaded.sha256.clone(), request);
        if let Some(sets) = self.cached(&key, sources.as_deref()) {
            tracing::debug!(plugin = call.name, "plugin result from cache");
            return Ok(sets);
        }
        let (response, caps) = self.call(&loaded, def, call.request, call.repositories, sources)?;
        let sets = parameter_sets(&parse_json(&response)?, def)?;
        let expires = caps
            .used_http
            .then(|| Instant::now() + Duration::from_secs(def.http_cache_seconds));
        if let Ok(mut results) = self.results.lock() {
            results.insert(
                key,
                CachedResult {
                    sets: sets.clone(),
                    dependencies: caps.dependencies,
                    expires,
                },
            );
        }
        Ok(sets)
    }

    /// Runs plugin `name` on a request and returns its raw response JSON (`prism plugin run`).
    pub fn run_raw(
        &self,
        name: &str,
        request: &Value,
        repositories: &[String],
        sources: Option<Arc<dyn Sources + Send + Sync>>,
    ) -> Result<Value, String> {
        let def = self.definition(name)?;
        let loaded = self.load(name)?;
        let (response, _) = self.call(&loaded, def, request, repositories, sources)?;
        let value = parse_json(&response)?;
        parameter_sets(&value, def)?;
        Ok(value)
    }

    fn cached(
        &self,
        key: &(String, String),
        sources: Option<&(dyn Sources + Send + Sync)>,
    ) -> Option<Vec<ParamSet>> {
        let results = self.results.lock().ok()?;
        let hit = results.get(key)?;
        if hit.expires.is_some_and(|t| t <= Instant::now()) {
            return None;
        }
        if !hit.dependencies.is_empty() {
            let sources = sources?;
            if !hit.dependencies.iter().all(|d| d.still_holds(sources)) {
                return None;
            }
        }
        Some(hit.sets.clone())
    }

    fn call(
        &self,
        loaded: &Loaded,
        def: &PluginDefinition,
        request: &Value,
        repositories: &[String],
        sources: Option<Arc<dyn Sources + Send + Sync>>,
    ) -> Result<(String, Capabilities), String> {
        let now = self.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
        let mut request = request.clone();
        if let Value::Object(m) = &mut request {
            m.insert("now".into(), Value::String(rfc3339(now)));
        }
        self.executions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_millis(def.timeout_ms);
        let caps = Capabilities::new(def, repositories, sources, deadline);
        let (outcome, caps) =
            self.runtime
                .call(&loaded.compiled, def, &request.to_string(), now, caps);
        tracing::debug!(plugin = %def.name, elapsed = ?started.elapsed(), ok = outcome.is_ok(), "plugin call");
        outcome.map(|r| (r, caps))
    }
}

/// The response as JSON, or an error quoting how it starts.
fn parse_json(response: &str) -> Result<Value, String> {
    serde_json::from_str(response).map_err(|e| {
        let mut start: String = response.chars().take(80).collect();
        if response.len() > start.len() {
            start.push('…');
        }
        format!("the response is not JSON ({e}); it starts with {start:?}")
    })
}

/// Checks a response's shape and returns its parameter sets.
fn parameter_sets(value: &Value, def: &PluginDefinition) -> Result<Vec<ParamSet>, String> {
    let list = match value.pointer("/output/parameters") {
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "output.parameters must be a list of objects, found {}",
                prism_engine::params::kind_of(other)
            ))
        }
        None => return Err(
            "the response has no output.parameters; answer {\"output\": {\"parameters\": [...]}}"
                .into(),
        ),
    };
    if list.len() > def.max_parameter_sets {
        return Err(format!(
            "{} parameter sets, over maxParameterSets ({})",
            list.len(),
            def.max_parameter_sets
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) => Ok(m.clone()),
            other => Err(format!(
                "output.parameters[{i}] must be an object, found {}",
                prism_engine::params::kind_of(other)
            )),
        })
        .collect()
}

/// At most `max` bytes of `s`, cut at a character boundary (for bounded logs and messages).
pub fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Go's RFC 3339 layout, for the engine's time formatting and parsing.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// `secs` since the epoch as RFC 3339 in UTC (`2026-11-23T13:05:20Z`).
pub fn rfc3339(secs: i64) -> String {
    prism_engine::gotemplate::time::Time { secs, nanos: 0 }.format(RFC3339)
}

/// An RFC 3339 time (`2016-07-11T22:14:10Z`, what Kubernetes and GitHub write) in Unix
/// seconds; the inverse of [`rfc3339`].
pub fn unix_of_rfc3339(t: &str) -> Option<i64> {
    prism_engine::gotemplate::time::Time::parse(RFC3339, t)
        .ok()
        .map(|t| t.secs)
}

/// Any engine [`Sources`] plus a plugin host: what `prism generate --plugins` renders with.
pub struct PluginSources<S> {
    inner: Arc<S>,
    host: Arc<PluginHost>,
}

impl<S: Sources + Send + Sync + 'static> PluginSources<S> {
    /// `inner` answers everything but `plugin`, which `host` runs.
    pub fn new(inner: Arc<S>, host: Arc<PluginHost>) -> Self {
        PluginSources { inner, host }
    }
}

impl<S: Sources + Send + Sync + 'static> Sources for PluginSources<S> {
    fn repository(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<Arc<dyn Repository>, SourceError> {
        self.inner.repository(repo_url, revision)
    }

    fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
        self.inner.clusters()
    }

    fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        self.inner.refs(repo_url)
    }

    fn image(
        &self,
        query: &prism_engine::generators::images::ImageQuery,
    ) -> Result<prism_engine::generators::images::ResolvedImage, String> {
        self.inner.image(query)
    }

    fn pull_requests(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<Vec<prism_engine::sources::PullRequest>, prism_engine::sources::ScmError> {
        self.inner.pull_requests(query)
    }

    fn scm_provider(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<
        Box<dyn prism_engine::sources::ScmProviderService + '_>,
        prism_engine::sources::ScmError,
    > {
        self.inner.scm_provider(query)
    }

    fn decision_resources(
        &self,
        query: &prism_engine::sources::DecisionQuery<'_>,
    ) -> Result<prism_engine::sources::DecisionResources, String> {
        self.inner.decision_resources(query)
    }

    fn plugin(&self, call: &PluginCall<'_>) -> Result<Vec<ParamSet>, String> {
        let sources: Arc<dyn Sources + Send + Sync> = self.inner.clone();
        self.host.generate(call, Some(sources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_response(response: &str, def: &PluginDefinition) -> Result<Vec<ParamSet>, String> {
        parameter_sets(&parse_json(response)?, def)
    }

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_439_120), "2026-11-23T13:05:20Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn responses_must_have_the_argo_shape() {
        let def = PluginDefinition::for_file(std::path::Path::new("p.wasm"), String::new());
        assert_eq!(
            parse_response(r#"{"output":{"parameters":[{"a":"1"}]}}"#, &def)
                .unwrap()
                .len(),
            1
        );
        assert!(parse_response("nope", &def)
            .unwrap_err()
            .starts_with("the response is not JSON"));
        assert_eq!(
            parse_response(r#"{"output":{"parameters":"x"}}"#, &def).unwrap_err(),
            "output.parameters must be a list of objects, found a string"
        );
        assert_eq!(
            parse_response(r#"{"output":{"parameters":[1]}}"#, &def).unwrap_err(),
            "output.parameters[0] must be an object, found a number"
        );
        assert!(parse_response(r#"{"parameters":[]}"#, &def)
            .unwrap_err()
            .contains("no output.parameters"));
        let mut small = def.clone();
        small.max_parameter_sets = 1;
        assert!(
            parse_response(r#"{"output":{"parameters":[{},{}]}}"#, &small)
                .unwrap_err()
                .contains("over maxParameterSets (1)")
        );
    }
}
