//! Command-line arguments and the commands they run.

use crate::diff::DiffArgs;
use crate::input::read_specs;
use crate::input::SpecDoc;
use crate::output::{self, Format};
use crate::pipeline::{collect, new_plugin_host, render_specs};
pub use crate::pipeline::{EngineArgs, Globbing, LimitArgs, Shared, SourceArgs};
use crate::plugin::config::{PluginDefinition, PluginDefinitions};
use crate::sources::RevisionChoice;
use crate::CliError;
use clap::{Args, Parser, Subcommand};
use prism_engine::{Rendered, Sources};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Render Argo CD ApplicationSets into Applications, offline.
#[derive(Debug, Parser)]
#[command(name = "prism", version, about, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// More logging on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Prism's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the Applications an ApplicationSet produces.
    Generate(GenerateArgs),
    /// Show which Applications a change to a spec or its repositories adds, removes or changes.
    ///
    /// Exit status 0: no difference, 3: differences, 1: error.
    Diff(DiffArgs),
    /// Check ApplicationSets without reading any repository or cluster.
    Validate(ValidateArgs),
    /// Print the JSON Schema of ApplicationSet manifests, for editors and CI.
    Schema,
    /// Run or inspect a WebAssembly generator plugin.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Static checks: `file:line:col rule message`; warnings unless --strict.
    Lint(LintArgs),
    /// Print the CustomResourceDefinition of applicationsets.prism.dev.
    Crd,
    /// Run in a cluster: keep Argo CD Applications equal to what the ApplicationSets say.
    Controller(ControllerArgs),
    /// Print the version.
    Version,
    /// Print a shell completion script: `prism completions bash > /etc/bash_completion.d/prism`.
    Completions {
        /// bash, zsh, fish, powershell or elvish.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `prism man > prism.1`.
    Man,
}

/// `prism controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Reconcile only this namespace's ApplicationSets and Applications [default: all].
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The namespace of Argo CD's cluster Secrets.
    #[arg(long, default_value = "argocd", value_name = "NS")]
    pub argocd_namespace: String,
    /// The most any ApplicationSet may do: sync, create-update, create-delete, create-only.
    #[arg(long, default_value = "sync", value_parser = parse_policy)]
    pub policy: crate::controller::plan::Policy,
    /// ApplicationSets reconciled in parallel.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
    /// Also reconcile Argo CD's own ApplicationSets (scale Argo's ApplicationSet controller to zero first).
    #[arg(long)]
    pub watch_argo_applicationsets: bool,
    /// Run without a Lease (a single replica only).
    #[arg(long)]
    pub no_leader_election: bool,
    /// The leader election Lease.
    #[arg(long, default_value = "prism-controller")]
    pub lease_name: String,
    /// The Lease's namespace [default: --argocd-namespace].
    #[arg(long, value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// Address of the webhook, metrics and health endpoints.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// A directory with the webhook secrets as files `github`, `gitlab`, `gitea`,
    /// `bitbucketserver` and `azuredevops` (`user:password`): a mounted Secret.
    #[arg(long, value_name = "DIR")]
    pub webhook_secrets: Option<PathBuf>,
    /// Seconds one git fetch serves every ApplicationSet (a webhook push refreshes at once).
    #[arg(long, default_value_t = 60)]
    pub git_refresh_seconds: u64,
    /// Git and plugin cache [default: ~/.cache/prism/repos].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// At most this many Applications are listed in an ApplicationSet's status.
    #[arg(long, default_value_t = crate::controller::reconcile::DEFAULT_RESOURCE_CAP)]
    pub status_resource_cap: usize,
    /// Log lines as JSON.
    #[arg(long)]
    pub log_json: bool,
    /// Plugins, registries and render options, as `prism generate` takes them.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Repository URL policy (always remote repositories only in the controller).
    #[command(flatten)]
    pub repo_policy: crate::pipeline::RepoPolicyArgs,
    /// `tokenRef` Secrets must be labelled argocd.argoproj.io/secret-type: scm-creds (Argo's flag).
    #[arg(long)]
    pub token_ref_strict_mode: bool,
    /// SCM API URLs the specs' `scmProvider` and `pullRequest` generators may name in
    /// `api` (comma-separated; default: any), as Argo CD's `--allowed-scm-providers`.
    #[arg(long, value_delimiter = ',', value_name = "URL")]
    pub allowed_scm_providers: Vec<String>,
    /// Act on `spec.strategy`: RollingSync steps and `deletionOrder: Reverse` (Argo CD's
    /// flag of the same name; without it the strategy is read and ignored, as Argo's).
    #[arg(long)]
    pub enable_progressive_syncs: bool,
    /// Namespaces besides Argo CD's whose ApplicationSets are reconciled (comma-separated
    /// globs, or `/regex/`), as Argo's flag; default: every watched namespace.
    #[arg(long, value_delimiter = ',', value_name = "NAMESPACE")]
    pub applicationset_namespaces: Vec<String>,
    /// Annotation keys whose live values every set's Applications keep (comma-separated;
    /// Argo's flag, added to each set's `preservedFields`).
    #[arg(long, value_delimiter = ',', value_name = "KEY")]
    pub preserved_annotations: Vec<String>,
    /// Label keys whose live values every set's Applications keep (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "KEY")]
    pub preserved_labels: Vec<String>,
}

fn parse_policy(s: &str) -> Result<crate::controller::plan::Policy, String> {
    crate::controller::plan::Policy::parse(s)
}

/// `prism controller`: reads its files, then runs until SIGTERM.
pub fn controller(args: &ControllerArgs) -> Result<(), CliError> {
    let read_secret = |name: &str| -> Result<Option<Vec<u8>>, CliError> {
        let Some(dir) = &args.webhook_secrets else {
            return Ok(None);
        };
        let path = dir.join(name);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b.trim_ascii_end().to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::Failed(format!("{}: {e}", path.display()))),
        }
    };
    let secrets = crate::controller::webhook::Secrets {
        github: read_secret("github")?,
        gitlab: read_secret("gitlab")?,
        gitea: read_secret("gitea")?,
        bitbucket_server: read_secret("bitbucketserver")?,
        azuredevops: read_secret("azuredevops")?,
    };
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(crate::git::default_cache_dir);
    let registry = args.engine.registry()?;
    let plugins = args.engine.plugin_host(&cache_dir, None)?;
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("prism-{}", std::process::id()));
    let config = crate::controller::run::Config {
        namespace: args.namespace.clone(),
        argocd_namespace: args.argocd_namespace.clone(),
        policy: args.policy,
        concurrency: args.concurrency.max(1),
        watch_argo: args.watch_argo_applicationsets,
        leader_election: !args.no_leader_election,
        lease: (
            args.lease_name.clone(),
            args.lease_namespace
                .clone()
                .unwrap_or_else(|| args.argocd_namespace.clone()),
        ),
        identity,
        listen: args.listen,
        secrets,
        git_refresh: std::time::Duration::from_secs(args.git_refresh_seconds),
        cache_dir,
        resource_cap: args.status_resource_cap,
        render: args.engine.options(),
        repo_policy: args.repo_policy.policy(true)?,
        token_ref_strict_mode: args.token_ref_strict_mode,
        allowed_scm_providers: args.allowed_scm_providers.clone(),
        progressive_syncs: args.enable_progressive_syncs,
        applicationset_namespaces: args.applicationset_namespaces.clone(),
        preserved: crate::controller::reconcile::Preserved {
            annotations: args.preserved_annotations.clone(),
            labels: args.preserved_labels.clone(),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("starting the runtime: {e}")))?;
    runtime
        .block_on(crate::controller::run::run(config, registry, plugins))
        .map_err(CliError::Failed)
}

/// `prism generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// An ApplicationSet file, a directory of them, or - for stdin.
    pub spec: String,
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// For each Application, print the generators and parameters that made it.
    #[arg(long)]
    pub explain: bool,
    /// Commit the chosen image tags to git as each spec's `writeBack` says, then print.
    #[arg(long)]
    pub write_back: bool,
}

/// `prism lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// ApplicationSet files, directories of them, or - for stdin; with several, files
    /// holding no ApplicationSet are skipped (pre-commit passes every changed YAML file).
    #[arg(required = true, num_args = 1..)]
    pub spec: Vec<String>,
    /// Treat findings as errors (exit status 1).
    #[arg(long)]
    pub strict: bool,
    /// Argo CD cluster Secrets (repeatable): `empty-matrix-child` then reports a matrix
    /// child whose selector matches none of them.
    #[arg(long, value_name = "FILE")]
    pub clusters: Vec<PathBuf>,
    /// Read repository URL from a local clone or directory (repeatable):
    /// `empty-matrix-child` then reports a matrix child whose pattern matches no path.
    #[arg(long, value_name = "URL=PATH", value_parser = crate::pipeline::parse_repo_mapping)]
    pub repo: Vec<(String, PathBuf)>,
    /// Accepted as `generate --untrusted` takes it: lint reads no repository and runs no
    /// plugin, at the default limits, so every spec is already read as untrusted.
    #[arg(long)]
    pub untrusted: bool,
    /// Namespace of ApplicationSets whose manifest names none.
    #[arg(long, default_value = prism_engine::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `prism validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// ApplicationSet files, directories of them, or - for stdin; with several, files
    /// holding no ApplicationSet are skipped (pre-commit passes every changed YAML file).
    #[arg(required = true, num_args = 1..)]
    pub spec: Vec<String>,
    /// Accepted as `generate --untrusted` takes it: validate reads no repository and runs
    /// no plugin, at the default limits, so every spec is already read as untrusted.
    #[arg(long)]
    pub untrusted: bool,
    /// Namespace of ApplicationSets whose manifest names none.
    #[arg(long, default_value = prism_engine::spec::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `prism plugin`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a plugin on an input and print its response.
    Run(Box<PluginRunArgs>),
    /// Print a plugin's ABI, WIT world, imports, size and sha256.
    Inspect(PluginInspectArgs),
}

/// `prism plugin run`.
#[derive(Debug, Args)]
pub struct PluginRunArgs {
    /// The plugin's .wasm file.
    pub file: PathBuf,
    /// The generator's `input` as JSON: {"parameters": {...}}.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Parameters of earlier matrix children as a JSON object.
    #[arg(long, default_value = "{}")]
    pub parameters: String,
    /// The ApplicationSet name the plugin is told.
    #[arg(long, default_value = "prism-plugin-run")]
    pub appset: String,
    /// Memory cap in MiB.
    #[arg(long, default_value_t = 64)]
    pub memory_mib: u64,
    /// Time cap in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Response size cap in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_output_bytes: usize,
    /// Grant http-get to this host (`host`, `host:port`, `*.domain`; repeatable).
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// Grant repository reads of the --repo mappings.
    #[arg(long)]
    pub repo_access: bool,
    /// Sources (--repo mappings are the repositories the plugin may read).
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// `prism plugin inspect`.
#[derive(Debug, Args)]
pub struct PluginInspectArgs {
    /// The plugin's .wasm file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line, writing results to `out` and warnings to stderr.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let limits = match &cli.command {
        Command::Generate(a) => Some(&a.sources.engine.limits),
        Command::Diff(a) => Some(&a.sources.engine.limits),
        Command::Controller(a) => Some(&a.engine.limits),
        _ => None,
    };
    if let Some(l) = limits {
        crate::fsread::set_max_file_bytes(l.max_file_bytes);
    }
    let text = match cli.command {
        Command::Generate(args) => return generate(&args, out),
        Command::Diff(args) => {
            let (text, differs) = crate::diff::diff(&args)?;
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| CliError::Failed(format!("writing output: {e}")))?;
            return if differs {
                Err(CliError::Differs)
            } else {
                Ok(())
            };
        }
        Command::Validate(args) => validate(&args)?,
        Command::Version => format!("prism {}\n", env!("CARGO_PKG_VERSION")),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "prism", &mut out);
            String::from_utf8(out).map_err(|e| CliError::Failed(e.to_string()))?
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| CliError::Failed(e.to_string()))?;
            String::from_utf8(out).map_err(|e| CliError::Failed(e.to_string()))?
        }
        Command::Crd => crate::controller::crd::crd_yaml().map_err(CliError::Failed)?,
        Command::Controller(args) => {
            controller(&args)?;
            String::new()
        }
        Command::Lint(args) => {
            let specs =
                crate::input::read_many_specs(&args.spec, &args.namespace, &Default::default())?;
            let evidence = if args.clusters.is_empty() && args.repo.is_empty() {
                None
            } else {
                let limits = prism_engine::Limits::default();
                let clusters = crate::input::read_clusters(&args.clusters, &limits)?;
                // Only what the person named: no fetch, no other local path.
                Some(
                    crate::sources::LocalSources::new(
                        args.repo.clone(),
                        crate::git::default_cache_dir(),
                        clusters,
                    )
                    .with_policy(crate::repo_policy::RepoPolicy::remote_only(false)),
                )
            };
            let evidence_ref = evidence.as_ref().map(|s| s as &dyn prism_engine::Sources);
            let (report, findings) = crate::lint::lint(&specs, evidence_ref)?;
            if args.strict && findings > 0 {
                out.write_all(report.as_bytes())
                    .map_err(|e| CliError::Failed(format!("writing output: {e}")))?;
                return Err(CliError::Failed(format!(
                    "{findings} lint findings (--strict)"
                )));
            }
            report
        }
        Command::Plugin(PluginCommand::Run(args)) => plugin_run(&args)?,
        Command::Plugin(PluginCommand::Inspect(args)) => plugin_inspect(&args)?,
        Command::Schema => {
            let schema = prism_engine::schema::application_set_schema();
            format!(
                "{}\n",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            )
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| CliError::Failed(format!("writing output: {e}")))
}

/// Renders every ApplicationSet in `args.spec`; returns the whole output.
pub fn generate(args: &GenerateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let _span = tracing::info_span!("generate", spec = %args.spec).entered();
    let specs = read_specs(
        &args.spec,
        &args.sources.namespace,
        &args.sources.engine.limits.limits(),
    )?;
    let sources = args
        .sources
        .build(RevisionChoice::Spec, &args.sources.shared()?);
    let streams = matches!(args.output, Format::Yaml | Format::Json | Format::Names);
    if streams && !args.explain && !args.write_back {
        return crate::stream::generate(
            &specs,
            sources.as_ref(),
            &args.sources.options(),
            args.output,
            out,
        );
    }
    let results = render_specs(&specs, sources.as_ref(), &args.sources.options())?;
    let all = collect(&specs, &results)?;
    let text = output::format(&all, args.output, args.explain);
    drop(all);
    if args.write_back {
        let policy = args.sources.repo_policy.policy(args.sources.untrusted)?;
        write_back(&specs, &results, &args.sources.repo, &policy)?;
    }
    // The process ends right after printing: freeing a fleet's worth of small
    // allocations one by one would cost more than rendering them (benches/scale.rs).
    std::mem::forget(results);
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| CliError::Failed(format!("writing output: {e}")))
}

/// Runs every spec's `writeBack`, reporting on stderr.
fn write_back(
    specs: &[SpecDoc],
    results: &[Rendered],
    repo_map: &[(String, PathBuf)],
    policy: &crate::repo_policy::RepoPolicy,
) -> Result<(), CliError> {
    for (spec, rendered) in specs.iter().zip(results) {
        let fail = |e: String| {
            CliError::Failed(format!(
                "{}: ApplicationSet {}: {e}",
                spec.file, spec.appset.name
            ))
        };
        let Some(wb) = crate::writeback::WriteBack::of(&spec.appset.spec) else {
            continue;
        };
        let wanted = prism_engine::sources::normalize_url(&wb.repo_url);
        let source = repo_map
            .iter()
            .find(|(url, _)| prism_engine::sources::normalize_url(url) == wanted)
            .map(|(_, path)| Ok(path.display().to_string()))
            .unwrap_or_else(|| policy.check(&wb.repo_url).map(|_| wb.repo_url.clone()))
            .map_err(fail)?;
        match wb.run(&source, &spec.appset.name, rendered).map_err(fail)? {
            crate::writeback::Outcome::Unchanged => eprintln!(
                "write-back: ApplicationSet {}: {} {} is up to date",
                spec.appset.name, wb.repo_url, wb.branch
            ),
            crate::writeback::Outcome::Pushed { commit, files } => eprintln!(
                "write-back: ApplicationSet {}: pushed {commit} to {} {} ({files} files)",
                spec.appset.name, wb.repo_url, wb.branch
            ),
        }
    }
    Ok(())
}

/// `prism plugin run`: one call with the flags' limits and grants; prints the response.
pub fn plugin_run(args: &PluginRunArgs) -> Result<String, CliError> {
    let json = |flag: &str, text: &str| -> Result<serde_json::Value, CliError> {
        match serde_json::from_str(text) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            Ok(_) => Err(CliError::Usage(format!("--{flag} must be a JSON object"))),
            Err(e) => Err(CliError::Usage(format!("--{flag} is not JSON: {e}"))),
        }
    };
    let input = json("input", &args.input)?;
    let parameters = json("parameters", &args.parameters)?;
    let bytes = crate::fsread::read(&args.file)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", args.file.display())))?;
    for (flag, value, max) in [
        (
            "--timeout-ms",
            args.timeout_ms,
            crate::plugin::config::MAX_TIMEOUT_MS,
        ),
        ("--memory-mib", args.memory_mib, 4096),
        (
            "--max-output-bytes",
            args.max_output_bytes as u64,
            crate::plugin::config::MAX_BYTES,
        ),
    ] {
        if value == 0 || value > max {
            return Err(CliError::Usage(format!(
                "{flag}: {value} is not between 1 and the maximum {max}"
            )));
        }
    }
    let mut def = PluginDefinition::for_file(&args.file, crate::digest::sha256_hex(&bytes));
    def.memory_mib = args.memory_mib;
    def.timeout_ms = args.timeout_ms;
    def.max_output_bytes = args.max_output_bytes;
    def.allowed_hosts = args.allow_host.clone();
    def.repo_access = args.repo_access;
    let name = def.name.clone();
    let definitions = PluginDefinitions {
        file: "the command line".into(),
        by_name: [(name.clone(), def)].into_iter().collect(),
    };
    let cache = args
        .sources
        .cache_dir
        .clone()
        .unwrap_or_else(crate::git::default_cache_dir);
    let host = new_plugin_host(definitions, &cache, args.sources.now)?;
    let repositories: Vec<String> = args.sources.repo.iter().map(|(u, _)| u.clone()).collect();
    let sources: Arc<dyn Sources + Send + Sync> = Arc::new(
        args.sources
            .sources(RevisionChoice::Spec, &args.sources.shared()?),
    );
    let request = serde_json::json!({
        "apiVersion": "prism.dev/plugin/v1",
        "applicationSetName": args.appset,
        "input": input,
        "parameters": parameters,
    });
    let response = host
        .run_raw(&name, &request, &repositories, Some(sources))
        .map_err(|e| CliError::Failed(format!("plugin {name}: {e}")))?;
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&response).unwrap_or_default()
    ))
}

/// `prism plugin inspect`.
pub fn plugin_inspect(args: &PluginInspectArgs) -> Result<String, CliError> {
    let bytes = crate::fsread::read(&args.file)
        .map_err(|e| CliError::Failed(format!("cannot read {}: {e}", args.file.display())))?;
    let engine = wasmtime::Engine::default();
    let report = crate::plugin::inspect::inspect(&engine, &bytes)
        .map_err(|e| CliError::Failed(format!("{}: {e}", args.file.display())))?;
    Ok(if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        )
    } else {
        report.text()
    })
}

/// Checks every ApplicationSet in `args.spec` without reading sources.
pub fn validate(args: &ValidateArgs) -> Result<String, CliError> {
    let specs = crate::input::read_many_specs(&args.spec, &args.namespace, &Default::default())?;
    let mut out = String::new();
    for spec in &specs {
        prism_engine::render::check(&spec.appset).map_err(|e| {
            CliError::Failed(format!(
                "{}: ApplicationSet {}: {e}",
                spec.file, spec.appset.name
            ))
        })?;
        out.push_str(&format!(
            "ok: {}: ApplicationSet {} ({} generators)\n",
            spec.file,
            spec.appset.name,
            spec.appset.spec.generators.len()
        ));
    }
    Ok(out)
}
