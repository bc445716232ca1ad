//! The pipeline every rendering subcommand shares: flags for sources, render options
//! and limits, reading them once ([`Shared`]), rendering each spec
//! ([`render_specs`]) and collecting the Applications ([`collect`]).
//!
//! `generate`, `diff` and `controller` use it; it uses no subcommand.

use crate::input::{read_clusters, SpecDoc};
use crate::output;
use crate::plugin::config::PluginDefinitions;
use crate::plugin::{PluginHost, PluginSources};
use crate::registry::{RegistryClient, RegistrySettings};
use crate::repo_policy::RepoPolicy;
use crate::sources::{LocalSources, RevisionChoice};
use crate::CliError;
use clap::{Args, ValueEnum};
use prism_engine::generators::git::FileGlobbing;
use prism_engine::render::{expand, Expansion};
use prism_engine::{render, Limits, RenderOptions, Rendered, Sources};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// What the engine is given besides sources, shared by `generate`, `diff` and `controller`.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// How git files patterns are matched: Argo's default, or its newer doublestar mode.
    #[arg(long, value_enum, default_value_t = Globbing::Default)]
    pub git_file_globbing: Globbing,
    /// Leave out the local cluster, as Argo CD does with cluster.inClusterEnabled: "false".
    #[arg(long)]
    pub no_in_cluster: bool,
    /// Plugin definitions for `plugin` generators (name, path, sha256, limits, capabilities).
    #[arg(long, value_name = "FILE")]
    pub plugins: Option<PathBuf>,
    /// Registry settings for `images` generators (prefix, apiURL, credentials, CA).
    #[arg(long, value_name = "FILE")]
    pub registries: Option<PathBuf>,
    /// A docker config.json with registry credentials (`auths`).
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,
    /// What one ApplicationSet render may cost.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Threads one render uses to read values files and render Applications
    /// [default: the machine's cores, at most 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
}

/// The admin's limits on untrusted specs (see the README's Limits section); a spec
/// cannot raise them.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Bytes one templated field may have.
    #[arg(long, value_name = "N", default_value_t = Limits::default().field_bytes)]
    pub max_field_bytes: usize,
    /// Templated bytes one Application may have, all fields together.
    #[arg(long, value_name = "N", default_value_t = Limits::default().application_bytes)]
    pub max_application_bytes: usize,
    /// Template execution steps in one ApplicationSet render.
    #[arg(long, value_name = "N", default_value_t = Limits::default().steps)]
    pub max_template_steps: u64,
    /// Parameter sets one ApplicationSet may produce.
    #[arg(long, value_name = "N", default_value_t = Limits::default().parameter_sets)]
    pub max_parameter_sets: usize,
    /// Nesting depth of templates (control structures, parentheses, `template` calls).
    #[arg(long, value_name = "N", default_value_t = Limits::default().depth)]
    pub max_template_depth: usize,
    /// Compiled size of one regular expression in a template, in bytes.
    #[arg(long, value_name = "N", default_value_t = Limits::default().regex_bytes)]
    pub max_regex_bytes: usize,
    /// Count and length arguments of template functions (repeat, until, seq, indent, printf widths).
    #[arg(long, value_name = "N", default_value_t = Limits::default().count)]
    pub max_template_count: usize,
    /// Bytes of one YAML or JSON document.
    #[arg(long, value_name = "N", default_value_t = Limits::default().yaml_bytes)]
    pub max_yaml_bytes: usize,
    /// Nesting depth of one YAML or JSON document.
    #[arg(long, value_name = "N", default_value_t = Limits::default().yaml_depth)]
    pub max_yaml_depth: usize,
    /// Bytes of one file Prism reads (specs, clusters, plugins, settings, repository files).
    #[arg(long, value_name = "N", default_value_t = Limits::default().file_bytes)]
    pub max_file_bytes: u64,
}

impl LimitArgs {
    /// The `--max-*` flags set above their defaults (`--untrusted` refuses them).
    pub fn raised(&self) -> Vec<&'static str> {
        let d = Limits::default();
        let l = self.limits();
        [
            ("--max-field-bytes", l.field_bytes > d.field_bytes),
            (
                "--max-application-bytes",
                l.application_bytes > d.application_bytes,
            ),
            ("--max-template-steps", l.steps > d.steps),
            ("--max-parameter-sets", l.parameter_sets > d.parameter_sets),
            ("--max-template-depth", l.depth > d.depth),
            ("--max-regex-bytes", l.regex_bytes > d.regex_bytes),
            ("--max-template-count", l.count > d.count),
            ("--max-yaml-bytes", l.yaml_bytes > d.yaml_bytes),
            ("--max-yaml-depth", l.yaml_depth > d.yaml_depth),
            ("--max-file-bytes", l.file_bytes > d.file_bytes),
        ]
        .into_iter()
        .filter(|(_, raised)| *raised)
        .map(|(flag, _)| flag)
        .collect()
    }

    /// The limits the flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            field_bytes: self.max_field_bytes,
            application_bytes: self.max_application_bytes,
            steps: self.max_template_steps,
            parameter_sets: self.max_parameter_sets,
            depth: self.max_template_depth,
            regex_bytes: self.max_regex_bytes,
            count: self.max_template_count,
            yaml_bytes: self.max_yaml_bytes,
            yaml_depth: self.max_yaml_depth,
            file_bytes: self.max_file_bytes,
        }
    }
}

impl EngineArgs {
    /// Render options from the flags.
    pub fn options(&self) -> RenderOptions {
        RenderOptions {
            git_file_globbing: match self.git_file_globbing {
                Globbing::Default => FileGlobbing::Default,
                Globbing::New => FileGlobbing::New,
            },
            in_cluster_enabled: !self.no_in_cluster,
            limits: self.limits.limits(),
            threads: self
                .threads
                .map_or_else(prism_engine::parallel::default_threads, usize::from),
        }
    }

    /// The registry client the flags configure.
    pub fn registry(&self) -> Result<Arc<RegistryClient>, CliError> {
        let settings = match &self.registries {
            Some(f) => RegistrySettings::load(f).map_err(CliError::Failed)?,
            None => RegistrySettings::default(),
        };
        RegistryClient::new(settings, self.registry_auth.as_deref())
            .map(Arc::new)
            .map_err(CliError::Failed)
    }

    /// A plugin host for `--plugins` (none without it), compiled code cached under `cache_dir`.
    pub fn plugin_host(
        &self,
        cache_dir: &std::path::Path,
        now: Option<i64>,
    ) -> Result<Option<Arc<PluginHost>>, CliError> {
        let Some(file) = &self.plugins else {
            return Ok(None);
        };
        let definitions = PluginDefinitions::load(file).map_err(CliError::Failed)?;
        new_plugin_host(definitions, cache_dir, now).map(|h| Some(Arc::new(h)))
    }
}

/// A plugin host for `definitions`, compiled code cached in `cache_dir/wasm`, telling
/// plugins the time `now` when given.
pub fn new_plugin_host(
    definitions: PluginDefinitions,
    cache_dir: &std::path::Path,
    now: Option<i64>,
) -> Result<PluginHost, CliError> {
    let host =
        PluginHost::new(definitions, Some(cache_dir.join("wasm"))).map_err(CliError::Failed)?;
    Ok(match now {
        Some(t) => host.with_now(t),
        None => host,
    })
}

/// Which repository URLs may be read (`--allow-insecure-repos`, `--allowed-repo-hosts`).
#[derive(Debug, Args, Clone, Default)]
pub struct RepoPolicyArgs {
    /// Also read unencrypted http:// and git:// repositories.
    #[arg(long)]
    pub allow_insecure_repos: bool,
    /// Read repositories only from hosts matching these globs (e.g. git.example.com,
    /// *.corp.example; comma-separated or repeated) [default: any host].
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub allowed_repo_hosts: Vec<String>,
}

impl RepoPolicyArgs {
    /// The policy: remote repositories only when `remote_only` (the controller,
    /// `--untrusted`), else local paths too.
    pub fn policy(&self, remote_only: bool) -> Result<RepoPolicy, CliError> {
        let base = if remote_only {
            RepoPolicy::remote_only(self.allow_insecure_repos)
        } else {
            RepoPolicy::local()
        };
        base.with_allowed_hosts(&self.allowed_repo_hosts)
            .map_err(CliError::Usage)
    }
}

/// Where sources come from; shared by `generate` and `diff`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A file of Argo CD cluster Secrets (repeatable).
    #[arg(long, value_name = "FILE")]
    pub clusters: Vec<PathBuf>,
    /// Read repository URL from a local clone or directory (repeatable).
    #[arg(long, value_name = "URL=PATH", value_parser = parse_repo_mapping)]
    pub repo: Vec<(String, PathBuf)>,
    /// Namespace of ApplicationSets whose manifest names none.
    #[arg(long, default_value = prism_engine::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Where remote repositories are cloned [default: ~/.cache/prism/repos].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Plugins, registries and render options.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Argo CD repository credentials: `repository`/`repo-creds` Secrets and the
    /// `argocd-ssh-known-hosts-cm`/`argocd-tls-certs-cm` ConfigMaps, as YAML.
    #[arg(long, value_name = "FILE")]
    pub repo_creds: Option<PathBuf>,
    /// The time plugins are told, RFC 3339 in UTC (e.g. 2026-01-01T00:00:00Z) [default: now].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<i64>,
    /// Secrets holding the tokens `pullRequest` generators name in `tokenRef` (YAML;
    /// without a tokenRef, GitHub's token is $GITHUB_TOKEN, as in Argo CD).
    #[arg(long, value_name = "FILE")]
    pub scm_creds: Option<PathBuf>,
    /// The ConfigMaps and decision resources `clusterDecisionResource` generators read
    /// (YAML, as `kubectl get … -o yaml` prints them).
    #[arg(long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Treat the specs as untrusted (say, from a pull request): read only remote
    /// repositories and the --repo mappings, never local paths or file://, and keep every
    /// render limit at its default.
    #[arg(long)]
    pub untrusted: bool,
    /// Repository URL policy.
    #[command(flatten)]
    pub repo_policy: RepoPolicyArgs,
}

/// What every render of one run shares, read once: the cluster list, the registry
/// client (so `diff` resolves each image once) and the plugin host.
pub struct Shared {
    clusters: Vec<prism_engine::Cluster>,
    registry: Arc<RegistryClient>,
    plugins: Option<Arc<PluginHost>>,
    credentials: Arc<crate::credentials::Credentials>,
    policy: RepoPolicy,
    scm: Arc<crate::scm::ScmClient>,
    scm_tokens: Arc<crate::scm::ScmTokens>,
    resources: Option<Arc<Vec<serde_json::Value>>>,
}

impl SourceArgs {
    /// Reads the cluster, registry and plugin files the flags name.
    pub fn shared(&self) -> Result<Shared, CliError> {
        if self.untrusted {
            let raised = self.engine.limits.raised();
            if !raised.is_empty() {
                return Err(CliError::Usage(format!(
                    "--untrusted keeps every render limit at its default; drop {}",
                    raised.join(", ")
                )));
            }
        }
        let policy = self.repo_policy.policy(self.untrusted)?;
        let clusters = read_clusters(&self.clusters, &self.engine.limits.limits())?;
        let registry = self.engine.registry()?;
        let cache = self
            .cache_dir
            .clone()
            .unwrap_or_else(crate::git::default_cache_dir);
        let plugins = self.engine.plugin_host(&cache, self.now)?;
        let credentials = match &self.repo_creds {
            Some(f) => crate::credentials::Credentials::load(f).map_err(CliError::Failed)?,
            None => crate::credentials::Credentials::default(),
        };
        let scm_tokens = match &self.scm_creds {
            Some(f) => crate::scm::ScmTokens::load(f).map_err(CliError::Failed)?,
            None => crate::scm::ScmTokens::default(),
        };
        let resources = match &self.resources {
            Some(f) => Some(Arc::new(
                crate::credentials::read_objects(f).map_err(CliError::Failed)?,
            )),
            None => None,
        };
        Ok(Shared {
            resources,
            clusters,
            registry,
            plugins,
            credentials: Arc::new(credentials),
            policy,
            // One run lists each repository once, however many sets and matrix positions ask.
            scm: Arc::new(
                crate::scm::ScmClient::default()
                    .with_freshness(std::time::Duration::from_secs(3600)),
            ),
            scm_tokens: Arc::new(scm_tokens),
        })
    }

    /// Sources reading repositories at `revision`.
    pub fn sources(&self, revision: RevisionChoice, shared: &Shared) -> LocalSources {
        let sources = LocalSources::new(
            self.repo.clone(),
            self.cache_dir
                .clone()
                .unwrap_or_else(crate::git::default_cache_dir),
            shared.clusters.clone(),
        )
        .with_revision(revision)
        .with_registry(shared.registry.clone())
        .with_credentials(shared.credentials.clone())
        .with_policy(shared.policy.clone())
        .with_scm(shared.scm.clone(), shared.scm_tokens.clone());
        match &shared.resources {
            Some(objects) => sources.with_resources(objects.clone()),
            None => sources,
        }
    }

    /// Sources as the engine sees them: the local sources, plus the plugin host when
    /// `--plugins` is given.
    pub fn build(&self, revision: RevisionChoice, shared: &Shared) -> Box<dyn Sources> {
        let local = self.sources(revision, shared);
        match &shared.plugins {
            Some(host) => Box::new(PluginSources::new(Arc::new(local), host.clone())),
            None => Box::new(local),
        }
    }

    /// Render options from the flags.
    pub fn options(&self) -> RenderOptions {
        self.engine.options()
    }
}

/// `--git-file-globbing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Globbing {
    /// `git ls-files` pathspecs: `*` matches across `/`.
    Default,
    /// doublestar: `*` stays in one path segment, `**` spans directories.
    New,
}

fn parse_time(s: &str) -> Result<i64, String> {
    prism_engine::gotemplate::time::Time::parse(crate::plugin::RFC3339, s)
        .map(|t| t.secs)
        .map_err(|_| format!("expected RFC 3339 UTC time like 2026-01-01T00:00:00Z, got {s:?}"))
}

pub(crate) fn parse_repo_mapping(s: &str) -> Result<(String, PathBuf), String> {
    match s.rsplit_once('=') {
        Some((url, path)) if !url.is_empty() && !path.is_empty() => {
            Ok((url.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected URL=PATH, got {s:?}")),
    }
}

/// Renders each spec, printing its warnings to stderr.
pub fn render_specs(
    specs: &[SpecDoc],
    sources: &dyn Sources,
    options: &RenderOptions,
) -> Result<Vec<Rendered>, CliError> {
    let mut results = Vec::with_capacity(specs.len());
    for spec in specs {
        let _span = tracing::info_span!("applicationset", name = %spec.appset.name).entered();
        let started = std::time::Instant::now();
        let rendered = render(&spec.appset, sources, options).map_err(|e| {
            CliError::Failed(format!(
                "{}: ApplicationSet {}: {e}",
                spec.file, spec.appset.name
            ))
        })?;
        for w in &rendered.warnings {
            eprintln!(
                "warning: {}: ApplicationSet {}: {w}",
                spec.file, spec.appset.name
            );
        }
        tracing::debug!(applications = rendered.applications.len(), elapsed = ?started.elapsed(), "rendered");
        results.push(rendered);
    }
    Ok(results)
}

/// Every Application of every spec, sorted by name; Applications of different
/// ApplicationSets in one namespace must not clash.
pub fn collect<'a>(
    specs: &'a [SpecDoc],
    results: &'a [Rendered],
) -> Result<Vec<output::Rendered<'a>>, CliError> {
    let mut all: Vec<output::Rendered> = Vec::new();
    let mut owner: HashMap<(&str, &str), &str> = HashMap::new();
    for (spec, rendered) in specs.iter().zip(results) {
        for app in &rendered.applications {
            let key = (spec.appset.namespace.as_str(), app.name.as_str());
            if let Some(other) = owner.insert(key, spec.appset.name.as_str()) {
                return Err(clash(spec, other, &app.name));
            }
            all.push(output::Rendered {
                application_set: &spec.appset.name,
                app,
            });
        }
    }
    all.sort_by(|a, b| {
        a.app
            .name
            .cmp(&b.app.name)
            .then(a.application_set.cmp(b.application_set))
    });
    Ok(all)
}

/// Two ApplicationSets, `other` and `spec`'s, render Application `name` in one namespace.
fn clash(spec: &SpecDoc, other: &str, name: &str) -> CliError {
    CliError::Failed(format!(
        "{}: ApplicationSets {other} and {} both render Application {name} in namespace {}; make the names unique",
        spec.file, spec.appset.name, spec.appset.namespace
    ))
}

/// One Application of a run over several specs: which spec and parameter set made it,
/// its name, and what the caller kept of it.
pub struct Record<T> {
    /// `metadata.name`.
    pub name: String,
    /// Index of its spec in the run.
    pub spec: u32,
    /// Index of its parameter set in the spec's [`Expansion`].
    pub index: u32,
    /// What the caller's `each` returned for it.
    pub item: T,
}

/// Renders every spec on `options.threads` threads without keeping the Applications:
/// each is handed to `each` (with its thread's state, made by `start` and handed back
/// to `finish` after each spec) and only what `each` returns is kept. Warnings go to
/// stderr. Names must be unique within a set and across sets in one namespace (the
/// errors [`collect`] gives). Returns the expansions (for what the records point at)
/// and the records sorted by name, then ApplicationSet.
pub fn render_all<'a, S, T, I, F>(
    specs: &'a [SpecDoc],
    sources: &dyn Sources,
    options: &RenderOptions,
    start: I,
    each: F,
    mut finish: impl FnMut(S),
) -> Result<(Vec<Expansion<'a>>, Vec<Record<T>>), CliError>
where
    S: Send,
    T: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &str, &serde_json::Value) -> Result<T, String> + Sync,
{
    let mut records: Vec<Record<T>> = Vec::new();
    let mut expansions = Vec::with_capacity(specs.len());
    for (s, spec) in specs.iter().enumerate() {
        let _span = tracing::info_span!("applicationset", name = %spec.appset.name).entered();
        let failed = |e: String| {
            CliError::Failed(format!(
                "{}: ApplicationSet {}: {e}",
                spec.file, spec.appset.name
            ))
        };
        let started = std::time::Instant::now();
        let expansion =
            expand(&spec.appset, sources, options).map_err(|e| failed(e.to_string()))?;
        tracing::debug!(parameter_sets = expansion.len(), elapsed = ?started.elapsed(), "expanded");
        let parts = expansion
            .render_each(
                options.threads,
                || (start(), Vec::new()),
                |(state, out): &mut (S, Vec<Record<T>>), i, name, manifest| {
                    let item = each(state, &name, &manifest).map_err(|m| {
                        prism_engine::Error::new(
                            "spec.template",
                            prism_engine::ErrorKind::RenderTemplate(m),
                        )
                    })?;
                    out.push(Record {
                        name,
                        spec: s as u32,
                        index: i as u32,
                        item,
                    });
                    Ok(())
                },
            )
            .map_err(|e| failed(e.to_string()))?;
        for w in &expansion.warnings {
            eprintln!(
                "warning: {}: ApplicationSet {}: {w}",
                spec.file, spec.appset.name
            );
        }
        let first = records.len();
        for (state, out) in parts {
            records.extend(out);
            finish(state);
        }
        // The first clash by parameter set is reported, as one thread would find it.
        records[first..].sort_unstable_by_key(|r| r.index);
        let mut seen: HashMap<&str, u32> = HashMap::with_capacity(records.len() - first);
        for r in &records[first..] {
            if let Some(&before) = seen.get(r.name.as_str()) {
                let dup = expansion.duplicate(&r.name, before as usize, r.index as usize);
                return Err(failed(dup.to_string()));
            }
            seen.insert(&r.name, r.index);
        }
        drop(seen);
        // By name, as the check across sets below reads them.
        records[first..].sort_unstable_by(|a, b| a.name.cmp(&b.name));
        tracing::debug!(applications = records.len() - first, elapsed = ?started.elapsed(), "rendered");
        expansions.push(expansion);
    }
    // Applications of different sets in one namespace must not clash.
    let mut owner: HashMap<(&str, &str), u32> = HashMap::with_capacity(records.len());
    for r in &records {
        let spec = &specs[r.spec as usize];
        let key = (spec.appset.namespace.as_str(), r.name.as_str());
        if let Some(other) = owner.insert(key, r.spec) {
            if other != r.spec {
                return Err(clash(spec, &specs[other as usize].appset.name, &r.name));
            }
        }
    }
    drop(owner);
    records.sort_unstable_by(|a, b| {
        a.name.cmp(&b.name).then_with(|| {
            specs[a.spec as usize]
                .appset
                .name
                .cmp(&specs[b.spec as usize].appset.name)
        })
    });
    Ok((expansions, records))
}
