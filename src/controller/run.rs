//! The watch loop of `prism controller`: leader election, caches of Applications
//! and cluster Secrets, one kube-rs `Controller` per ApplicationSet API
//! (`prism.dev`, and `argoproj.io` with `--watch-argo-applicationsets`), the HTTP
//! endpoints, and graceful shutdown on SIGTERM.
//!
//! A reconcile renders with the engine (on a blocking thread, reading the shared git
//! cache), plans ([`plan`]), applies ([`apply`]) and reports status. Nothing starts
//! before both caches are filled, so a first pass never mistakes "not listed yet"
//! for "not there".

use crate::controller::application::CachedApplication;
use crate::controller::apply::{self, application_set_resource};
use crate::controller::gitcache::{ControllerSources, GitCache, Reader};
use crate::controller::lease::Elector;
use crate::controller::metrics::Metrics;
use crate::controller::plan::{self, Action as Step, Input, Keep, Policy};
use crate::controller::reconcile::{self, SetMeta, OWNER_LABEL};
use crate::controller::rollout;
use crate::controller::server::{self, Endpoints};
use crate::controller::webhook::{self, Push, Secrets};
use crate::credentials::Access;
use crate::plugin::{PluginHost, PluginSources};
use crate::registry::RegistryClient;
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ResourceExt};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use prism_engine::render::RESOURCES_FINALIZER;
use prism_engine::{ApplicationSet, Cluster, RenderOptions, Sources};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Everything `prism controller` is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespaces whose ApplicationSets and Applications are reconciled (empty: all).
    pub namespace: Option<String>,
    /// Where Argo CD's cluster Secrets live.
    pub argocd_namespace: String,
    /// The controller-wide policy ceiling (`--policy`).
    pub policy: Policy,
    /// Parallel reconciles.
    pub concurrency: u16,
    /// Also reconcile `argoproj.io` ApplicationSets.
    pub watch_argo: bool,
    /// Leader election on a Lease (off for a single replica run by hand).
    pub leader_election: bool,
    /// The Lease's name and namespace.
    pub lease: (String, String),
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Webhook, metrics and health address.
    pub listen: SocketAddr,
    /// Webhook secrets.
    pub secrets: Secrets,
    /// How long one git fetch serves every set (a webhook push cuts it short).
    pub git_refresh: Duration,
    /// Git and plugin cache directory.
    pub cache_dir: PathBuf,
    /// Cap on `status.resources`.
    pub resource_cap: usize,
    /// Render options (in-cluster, git file globbing).
    pub render: RenderOptions,
    /// Which repository URLs a spec may name (remote only; the admin's flags).
    pub repo_policy: crate::repo_policy::RepoPolicy,
    /// Only Secrets labelled `scm-creds` may hold `tokenRef` tokens.
    pub token_ref_strict_mode: bool,
    /// API URLs a spec's SCM generators may name in `api` (empty: any).
    pub allowed_scm_providers: Vec<String>,
    /// Act on `strategy` (RollingSync, `deletionOrder: Reverse`), as Argo's
    /// `--enable-progressive-syncs`.
    pub progressive_syncs: bool,
    /// Annotations and labels preserved on every set's Applications
    /// (`--preserved-annotations`, `--preserved-labels`).
    pub preserved: reconcile::Preserved,
    /// Namespaces besides Argo CD's whose sets are reconciled (globs or `/regex/`;
    /// empty: every watched namespace).
    pub applicationset_namespaces: Vec<String>,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    config: Config,
    git: Arc<GitCache>,
    apps: Store<CachedApplication>,
    secrets: Store<Secret>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    registry: Arc<RegistryClient>,
    plugins: Option<Arc<PluginHost>>,
    /// The SCM client of `pullRequest` generators (its ETag cache serves every set).
    scm: Arc<crate::scm::ScmClient>,
    /// Transient failures in a row, by set (`namespace.name`), for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The triggers, to which the decision resources' watches report.
    triggers: Arc<OnceLock<Triggers>>,
    /// The decision resource kinds (`apiVersion`, plural) already watched.
    decision_watches: Mutex<std::collections::BTreeSet<(String, String)>>,
    /// The Applications as last seen, by the watch or in the answers to own applies.
    seen: Arc<Seen>,
}

/// Per Application, the fingerprints of what triggers any set and of what a
/// RollingSync reads, as last seen: by the watch, or in the answer to this process's
/// own apply, so that apply's watch event is no change (the pass that wrote it knows).
#[derive(Default)]
pub struct Seen(Mutex<HashMap<ObjectRef<CachedApplication>, (u64, u64)>>);

impl Seen {
    /// Remembers `app` as an own apply's answer left it.
    fn record(&self, app: &CachedApplication) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(
                ObjectRef::from_obj(app),
                (app.fingerprint(), progress_print(app)),
            );
        }
    }

    /// Whether a watch event of `app` changed what triggers its set, and what a
    /// RollingSync reads. A deleted Application leaves the map (it would otherwise only
    /// grow) and is a change (a hand-deleted Application comes back).
    fn observe(&self, app: &CachedApplication, deleted: bool) -> (bool, bool) {
        let key = ObjectRef::from_obj(app);
        let (print, progress) = (app.fingerprint(), progress_print(app));
        self.0
            .lock()
            .map(|mut s| {
                if deleted {
                    (s.remove(&key).is_some(), false)
                } else {
                    match s.insert(key, (print, progress)) {
                        Some((p, q)) => (p != print, q != progress),
                        None => (true, false),
                    }
                }
            })
            .unwrap_or((true, false))
    }
}

/// Why a reconcile could not finish, and so how it is retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// API, git or network trouble: retried with exponential backoff from 5 s to 5 min.
    #[error("{0}")]
    Transient(String),
    /// The ApplicationSet itself cannot be read: retried when it changes, or after 10 min.
    #[error("{0}")]
    Permanent(String),
}

/// First retry after a transient failure; it doubles with each failure in a row.
const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest wait between retries after transient failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// When a permanently failing set is tried again if it does not change first.
const PERMANENT_RETRY: Duration = Duration::from_secs(600);

/// Sends reconcile requests: to the set owning a changed Application, to every set
/// using clusters when a cluster Secret changes, and to the sets a push concerns.
#[derive(Default)]
pub struct Triggers {
    kinds: Vec<SetKind>,
}

struct SetKind {
    resource: ApiResource,
    store: Store<DynamicObject>,
    send: mpsc::UnboundedSender<ObjectRef<DynamicObject>>,
}

impl Triggers {
    fn send_all(&self, mut wanted: impl FnMut(&DynamicObject) -> bool) -> usize {
        let mut n = 0;
        for kind in &self.kinds {
            for set in kind.store.state() {
                if wanted(&set) {
                    n += 1;
                    let _ = kind.send.unbounded_send(ObjectRef::from_obj_with(
                        set.as_ref(),
                        kind.resource.clone(),
                    ));
                }
            }
        }
        n
    }

    /// The owning set of an Application that changed (drift repair).
    fn application_changed(&self, app: &CachedApplication) {
        for owner in app.owner_references() {
            if owner.kind != "ApplicationSet" {
                continue;
            }
            for kind in &self.kinds {
                if kind.resource.api_version == owner.api_version {
                    let r = ObjectRef::new_with(&owner.name, kind.resource.clone())
                        .within(&app.namespace().unwrap_or_default());
                    let _ = kind.send.unbounded_send(r);
                }
            }
        }
    }

    /// The owning set of an Application whose health, sync or operation changed, when
    /// that set is a RollingSync (no other set reads them).
    fn application_progressed(&self, app: &CachedApplication) {
        for owner in app.owner_references() {
            if owner.kind != "ApplicationSet" {
                continue;
            }
            for kind in &self.kinds {
                if kind.resource.api_version != owner.api_version {
                    continue;
                }
                let r = ObjectRef::new_with(&owner.name, kind.resource.clone())
                    .within(&app.namespace().unwrap_or_default());
                let rolling = kind.store.get(&r).is_some_and(|set| {
                    set.data["spec"]["strategy"]["type"].as_str() == Some("RollingSync")
                });
                if rolling {
                    let _ = kind.send.unbounded_send(r);
                }
            }
        }
    }

    /// Sets with a clusters generator (a cluster Secret changed).
    fn clusters_changed(&self) -> usize {
        self.send_all(|set| reconcile::uses_clusters(generators(&set.data)))
    }

    /// Sets whose git generators read the pushed repository and branch.
    pub fn push(&self, push: &Push, git: &GitCache) -> usize {
        for url in &push.repo_urls {
            git.mark_stale(url);
        }
        self.send_all(|set| {
            reconcile::git_sources(generators(&set.data))
                .iter()
                .any(|(url, rev)| webhook::reads(push, url, rev))
        })
    }
}

impl Triggers {
    /// Sets whose `pullRequest` generators list the repository of a pull request event;
    /// the SCM cache serves that repository fresh from now on.
    pub fn pull_request(
        &self,
        event: &webhook::PullRequestEvent,
        scm: &crate::scm::ScmClient,
    ) -> usize {
        let repo = match event.provider {
            "gitlab" => event.owner.clone(),
            _ => format!("{}/{}", event.owner, event.repo),
        };
        scm.forget(&repo);
        self.send_all(|set| {
            reconcile::pull_request_sources(generators(&set.data))
                .iter()
                .any(|source| webhook::lists(event, source))
        })
    }
}

fn generators(data: &Value) -> &[Value] {
    data["spec"]["generators"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// What a pass reads of an ApplicationSet: its identity, spec (by `generation`),
/// labels, annotations, finalizers and deletion; not its status, which the pass writes,
/// except a RollingSync's progress, which the next pass goes on from.
fn set_inputs(set: &DynamicObject) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let m = &set.metadata;
    let mut h = crate::digest::Fnv::default();
    m.uid.hash(&mut h);
    m.generation.hash(&mut h);
    m.labels.hash(&mut h);
    m.annotations.hash(&mut h);
    m.finalizers.hash(&mut h);
    m.deletion_timestamp.is_some().hash(&mut h);
    if set.data["spec"]["strategy"]["type"].as_str() == Some("RollingSync") {
        let status = &set.data["status"];
        status["applicationStatus"].to_string().hash(&mut h);
        status["rolloutStep"].to_string().hash(&mut h);
    }
    Some(h.finish())
}

/// What a RollingSync waits on of an Application: health, sync, revisions, operations.
fn progress_print(app: &CachedApplication) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::digest::Fnv::default();
    app.status.hash(&mut h);
    app.operation.hash(&mut h);
    h.finish()
}

/// Resolves once shutdown has been asked for.
fn stopped(rx: &tokio::sync::watch::Receiver<bool>) -> impl std::future::Future<Output = ()> {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Runs the controller until SIGTERM (or Ctrl-C); an error when leadership or the
/// API connection is lost. The parts: HTTP endpoints, leader election, the caches
/// and their triggers, then one kube-rs `Controller` per ApplicationSet API.
pub async fn run(
    config: Config,
    registry: Arc<RegistryClient>,
    plugins: Option<Arc<PluginHost>>,
) -> Result<(), String> {
    let client = Client::try_default()
        .await
        .map_err(|e| format!("connecting to the Kubernetes API: {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let git = {
        let m = metrics.clone();
        Arc::new(
            GitCache::new(config.cache_dir.join("git"), config.git_refresh)
                .with_policy(config.repo_policy.clone())
                .on_fetch(move |d| m.git_fetch.observe(d)),
        )
    };
    let triggers: Arc<OnceLock<Triggers>> = Arc::new(OnceLock::new());

    // HTTP first: probes answer while this replica waits for the Lease.
    // One SCM client for every set: one listing per repository per git refresh
    // interval, shared by every set and matrix position; a webhook ends it early.
    let scm = {
        let metrics = metrics.clone();
        Arc::new(
            crate::scm::ScmClient::default()
                .with_freshness(config.git_refresh)
                .with_allowed_apis(config.allowed_scm_providers.clone())
                .with_observer(Box::new(move |provider, status, remaining| {
                    metrics.scm_request(provider, status, remaining)
                })),
        )
    };
    let http = serve_http(&config, &metrics, &ready, &triggers, &git, &scm, &stop).await?;

    let elector = config.leader_election.then(|| {
        Elector::new(
            client.clone(),
            &config.lease.1,
            &config.lease.0,
            &config.identity,
            Duration::from_secs(15),
        )
    });
    // A standby is healthy and ready; the leader is not ready until its caches are filled.
    ready.store(true, Ordering::Relaxed);
    if let Some(elector) = &elector {
        if !acquire_leadership(elector, &config.identity, &stop).await {
            return Ok(());
        }
    }
    ready.store(false, Ordering::Relaxed);
    let lost = Arc::new(AtomicBool::new(false));
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    if let Some(elector) = elector.clone() {
        keep_leadership(elector, lost.clone(), lost_tx, &stop);
    }

    let seen = Arc::new(Seen::default());
    let apps = watch_applications(&client, &config, &triggers, &seen);
    let secrets = watch_argo_secrets(&client, &config, &triggers, &git, &stop);
    tracing::info!("filling the Application and cluster Secret caches");
    tokio::select! {
        r = futures::future::try_join(apps.wait_until_ready(), secrets.wait_until_ready()) => {
            r.map_err(|e| format!("caches: {e}"))?;
        }
        () = stopped(&stop) => return Ok(()),
    }
    tracing::info!(applications = apps.state().len(), "caches filled");

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "prism-controller".into(),
            instance: Some(config.identity.clone()),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        git: git.clone(),
        apps,
        secrets,
        metrics: metrics.clone(),
        recorder,
        registry,
        plugins,
        scm,
        failures: Mutex::default(),
        triggers: triggers.clone(),
        decision_watches: Mutex::default(),
        seen,
    });
    let (kinds, loops) = application_set_controllers(&client, &config, ctx, &stop);
    let _ = triggers.set(Triggers { kinds });
    ready.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = futures::future::join_all(loops) => {}
        _ = lost_rx => {}
    }
    ready.store(false, Ordering::Relaxed);
    let _ = http.await;
    if lost.load(Ordering::Relaxed) {
        return Err("lost the leader Lease; exiting so a standby takes over".into());
    }
    if let Some(elector) = &elector {
        if let Err(e) = elector.release().await {
            tracing::warn!("releasing the Lease: {}", apply::describe(&e));
        }
    }
    Ok(())
}

/// Starts the webhook, metrics and health endpoints.
async fn serve_http(
    config: &Config,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
    triggers: &Arc<OnceLock<Triggers>>,
    git: &Arc<GitCache>,
    scm: &Arc<crate::scm::ScmClient>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", config.listen))?;
    let endpoints = Arc::new(Endpoints {
        metrics: metrics.clone(),
        ready: ready.clone(),
        secrets: config.secrets.clone(),
        refresh: {
            let (triggers, git, scm) = (triggers.clone(), git.clone(), scm.clone());
            Box::new(move |change| {
                let t = triggers.get()?;
                Some(match change {
                    webhook::Change::Push(push) => t.push(push, &git),
                    webhook::Change::PullRequest(event) => t.pull_request(event, &scm),
                })
            })
        },
    });
    Ok(tokio::spawn(server::serve(
        listener,
        endpoints,
        stopped(stop),
    )))
}

/// Waits until this replica holds the Lease; false when shutdown came first.
async fn acquire_leadership(
    elector: &Elector,
    identity: &str,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> bool {
    tracing::info!(identity = %identity, "waiting for leadership");
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!("leader election: {}", apply::describe(&e)),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = stopped(stop) => return false,
        }
    }
    tracing::info!("leading");
    true
}

/// Renews the Lease every 2 s; when it cannot (another holder, or no renewal within
/// two thirds of the Lease, as client-go's renew deadline), marks leadership lost.
fn keep_leadership(
    elector: Elector,
    lost: Arc<AtomicBool>,
    lost_tx: tokio::sync::oneshot::Sender<()>,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = stopped(stop).boxed();
    tokio::spawn(async move {
        let mut last = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
                () = &mut stop => return,
            }
            match elector.try_acquire_or_renew().await {
                Ok(true) => last = Instant::now(),
                Ok(false) => break,
                Err(e) => tracing::warn!("renewing the Lease: {}", apply::describe(&e)),
            }
            if last.elapsed() > elector.duration() * 2 / 3 {
                break;
            }
        }
        lost.store(true, Ordering::Relaxed);
        let _ = lost_tx.send(());
    });
}

/// The Application cache (without status and managedFields); a changed or deleted
/// owned Application triggers its set.
fn watch_applications(
    client: &Client,
    config: &Config,
    triggers: &Arc<OnceLock<Triggers>>,
    seen: &Arc<Seen>,
) -> Store<CachedApplication> {
    let apps_api: Api<CachedApplication> = match &config.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let apps_writer = reflector::store::Writer::<CachedApplication>::default();
    let apps = apps_writer.as_reader();
    let app_stream = reflector::reflector(
        apps_writer,
        watcher(apps_api, watcher::Config::default())
            .modify(|app: &mut CachedApplication| app.managed_fields_mut().clear())
            .default_backoff(),
    );
    let triggers = triggers.clone();
    let seen = seen.clone();
    tokio::spawn(app_stream.for_each(move |event| {
        let (app, deleted) = match event {
            Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app)) => (app, false),
            Ok(watcher::Event::Delete(app)) => (app, true),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {
                return futures::future::ready(())
            }
            Err(e) => {
                tracing::warn!("watching Applications: {e}");
                return futures::future::ready(());
            }
        };
        let (changed, progressed) = seen.observe(&app, deleted);
        if app.labels().contains_key(OWNER_LABEL) {
            if let Some(t) = triggers.get() {
                if changed {
                    t.application_changed(&app);
                } else if progressed {
                    // Health, sync or an operation moved: only a RollingSync waits on that.
                    t.application_progressed(&app);
                }
            }
        }
        futures::future::ready(())
    }));
    apps
}

/// Argo CD's cluster, repository and repo-creds Secrets in one watch (a cluster change
/// triggers the sets using clusters; a credentials change refreshes the git cache's),
/// and the known-hosts and CA ConfigMaps read every minute.
fn watch_argo_secrets(
    client: &Client,
    config: &Config,
    triggers: &Arc<OnceLock<Triggers>>,
    git: &Arc<GitCache>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Store<Secret> {
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &config.argocd_namespace);
    let secrets_writer = reflector::store::Writer::<Secret>::default();
    let secrets = secrets_writer.as_reader();
    let secret_stream = reflector::reflector(
        secrets_writer,
        watcher(
            secrets_api,
            watcher::Config::default()
                .labels("argocd.argoproj.io/secret-type in (cluster,repository,repo-creds)"),
        )
        .default_backoff(),
    );
    let known: Arc<Mutex<Vec<Value>>> = Arc::default();
    {
        let (triggers, git, store, known) = (
            triggers.clone(),
            git.clone(),
            secrets.clone(),
            known.clone(),
        );
        tokio::spawn(secret_stream.for_each(move |event| {
            match event {
                Ok(watcher::Event::Apply(secret) | watcher::Event::Delete(secret)) => {
                    match secret.labels().get(SECRET_TYPE).map(String::as_str) {
                        Some("cluster") => {
                            if let Some(t) = triggers.get() {
                                t.clusters_changed();
                            }
                        }
                        _ => refresh_credentials(&git, &store, &known),
                    }
                }
                // The store holds a (re)list's Secrets only once it is done: read the
                // credentials then (found on a real API server: Secrets that existed at
                // start-up were never read, the list's objects arriving before the store had them).
                Ok(watcher::Event::InitDone) => refresh_credentials(&git, &store, &known),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(e) => tracing::warn!("watching Argo CD Secrets: {e}"),
            }
            futures::future::ready(())
        }));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &config.argocd_namespace);
    let (git, store) = (git.clone(), secrets.clone());
    let mut stop = stopped(stop).boxed();
    tokio::spawn(async move {
        loop {
            let mut found = Vec::new();
            for name in ["argocd-ssh-known-hosts-cm", "argocd-tls-certs-cm"] {
                match config_maps.get_opt(name).await {
                    Ok(Some(cm)) => {
                        let mut v = serde_json::to_value(&cm).unwrap_or(Value::Null);
                        v["kind"] = Value::from("ConfigMap");
                        found.push(v);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!("reading ConfigMap {name}: {}", apply::describe(&e))
                    }
                }
            }
            let changed = known.lock().map(|mut k| {
                let changed = *k != found;
                *k = found;
                changed
            });
            if changed.unwrap_or(false) {
                refresh_credentials(&git, &store, &known);
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                () = &mut stop => return,
            }
        }
    });
    secrets
}

/// One kube-rs `Controller` per ApplicationSet API (`prism.dev`, and `argoproj.io` with
/// `--watch-argo-applicationsets`): what triggers send to, and the loops to run.
fn application_set_controllers(
    client: &Client,
    config: &Config,
    ctx: Arc<Context>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> (Vec<SetKind>, Vec<futures::future::BoxFuture<'static, ()>>) {
    let mut groups = vec!["prism.dev"];
    if config.watch_argo {
        groups.push("argoproj.io");
    }
    let mut kinds = Vec::new();
    let mut loops = Vec::new();
    for group in groups {
        let resource = application_set_resource(group);
        let api: Api<DynamicObject> = match &config.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let (send, receive) = mpsc::unbounded();
        // A set's own status writes (each pass ends with one) are not a reason for
        // another pass: only what a pass reads of the set triggers it.
        let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
        let reader = writer.as_reader();
        let sets = watcher(api, watcher::Config::default())
            .reflect(writer)
            .applied_objects()
            .predicate_filter(set_inputs, kube::runtime::PredicateConfig::default());
        let controller = Controller::for_stream_with(sets, reader, resource.clone())
            .with_config(ControllerConfig::default().concurrency(config.concurrency))
            .reconcile_on(receive)
            .graceful_shutdown_on(stopped(stop));
        kinds.push(SetKind {
            resource: resource.clone(),
            store: controller.store(),
            send,
        });
        loops.push(
            controller
                .run(
                    move |set, ctx: Arc<Context>| {
                        // The set in every log line of its pass (an entered span would leak
                        // across the awaits into other passes on the same thread).
                        let span = tracing::info_span!(
                            "reconcile",
                            applicationset = %format!(
                                "{}.{}",
                                set.namespace().unwrap_or_default(),
                                set.name_any()
                            )
                        );
                        reconcile_set(set, ctx, resource.clone()).instrument(span)
                    },
                    error_policy,
                    ctx.clone(),
                )
                .for_each(|result| {
                    if let Err(e) = result {
                        tracing::debug!("reconcile: {e}");
                    }
                    futures::future::ready(())
                })
                .boxed(),
        );
    }
    (kinds, loops)
}

/// Argo CD's label that says what a Secret is.
const SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";

/// Rebuilds the git cache's credentials from the repository Secrets and the known
/// hosts / CA ConfigMaps. A bad Secret is logged by name and skipped, never printed.
fn refresh_credentials(git: &GitCache, secrets: &Store<Secret>, config_maps: &Mutex<Vec<Value>>) {
    let mut objects: Vec<Value> = config_maps.lock().map(|c| c.clone()).unwrap_or_default();
    for secret in secrets.state() {
        if matches!(
            secret.labels().get(SECRET_TYPE).map(String::as_str),
            Some("repository" | "repo-creds")
        ) {
            let mut v = serde_json::to_value(secret.as_ref()).unwrap_or(Value::Null);
            v["kind"] = Value::from("Secret");
            match crate::credentials::Credentials::from_objects([&v]) {
                Ok(_) => objects.push(v),
                Err(e) => tracing::warn!("repository credentials skipped: {e}"),
            }
        }
    }
    match crate::credentials::Credentials::from_objects(&objects) {
        Ok(c) => {
            tracing::info!(
                repositories = c.repos.len(),
                "repository credentials updated"
            );
            git.set_credentials(c);
        }
        Err(e) => tracing::warn!("repository credentials: {e}"),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn error_policy(set: Arc<DynamicObject>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = format!("{}.{}", set.namespace().unwrap_or_default(), set.name_any());
    tracing::warn!(applicationset = %key, "reconcile failed: {error}");
    match error {
        ReconcileError::Permanent(_) => Action::requeue(PERMANENT_RETRY),
        ReconcileError::Transient(_) => {
            let mut failures = ctx.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            let delay = BACKOFF_START.saturating_mul(1 << (*n - 1).min(16));
            Action::requeue(delay.min(BACKOFF_MAX))
        }
    }
}

/// The cluster list as the cluster Secrets say now, sorted for stable output.
fn clusters(store: &Store<Secret>) -> Arc<[Cluster]> {
    let mut out: Vec<Cluster> = store
        .state()
        .iter()
        .filter_map(|s| {
            let mut v = serde_json::to_value(s.as_ref()).ok()?;
            v["kind"] = Value::from("Secret");
            match Cluster::from_secret(&v) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(secret = %s.name_any(), "cluster Secret skipped: {e}");
                    None
                }
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.server).cmp(&(&b.name, &b.server)));
    out.into()
}

/// Runs `f`; a panic becomes an error naming the step, so one ApplicationSet cannot
/// take the controller (or the other sets' passes) down with it.
fn isolated<T>(step: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = panic_message(step, payload.as_ref());
        tracing::error!("{message}");
        Err(message)
    })
}

fn panic_message(step: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!(
        "internal error while {step} this ApplicationSet (a bug in Prism; please report it): {what}; \
         nothing was applied or deleted"
    )
}

/// One pass over one ApplicationSet: render → plan → apply → status.
async fn reconcile_set(
    set: Arc<DynamicObject>,
    ctx: Arc<Context>,
    resource: ApiResource,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let mut object =
        serde_json::to_value(set.as_ref()).map_err(|e| ReconcileError::Permanent(e.to_string()))?;
    object["apiVersion"] = Value::from(resource.api_version.clone());
    object["kind"] = Value::from("ApplicationSet");
    let meta = SetMeta::from_object(&object).map_err(ReconcileError::Permanent)?;
    if !namespace_allowed(&ctx.config, &meta.namespace) {
        // Argo's `--applicationset-namespaces`: other namespaces' sets are not ours.
        return Ok(Action::await_change());
    }
    if set.meta().deletion_timestamp.is_some() {
        if meta.finalizers.iter().any(|f| f == RESOURCES_FINALIZER) {
            // `deletionOrder: Reverse`: the last step's Applications go first.
            let strategy = match read_set(object.clone(), &meta).await? {
                Ok(set) if ctx.config.progressive_syncs => Strategy::of(&set.spec),
                _ => Strategy::default(),
            };
            if let (true, Some(steps)) = (strategy.reverse, &strategy.steps) {
                if let Some(wait) = reverse_delete(&ctx, &meta, steps).await? {
                    return Ok(Action::requeue(wait));
                }
            }
            remove_finalizer(&ctx, &resource, &meta).await?;
        }
        // Its Applications go with it by their ownerReferences.
        ctx.metrics.forget(&meta.key());
        return Ok(Action::await_change());
    }
    let requeue = reconcile::requeue_after(generators(&object));
    let parsed = read_set(object.clone(), &meta).await?;
    let strategy = match &parsed {
        Ok(set) if ctx.config.progressive_syncs => Strategy::of(&set.spec),
        _ => Strategy::default(),
    };
    if strategy.reverse && !meta.finalizers.iter().any(|f| f == RESOURCES_FINALIZER) {
        // Argo adds its finalizer so the set outlives its Applications' ordered deletion.
        add_finalizer(&ctx, &resource, &meta).await?;
    }
    let settings = parsed
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|set| reconcile::settings(&set.spec, ctx.config.policy, &ctx.config.preserved));
    let rendered = match (parsed, &settings) {
        (Ok(set), Ok(_)) => render_set(&ctx, set).await?,
        (_, Err(e)) => Err(e.clone()),
        (Err(e), _) => Err(e),
    };
    // A RollingSync turns automated sync off and starts the syncs itself, in order.
    let mut prunes = BTreeMap::new();
    let rendered = match (&strategy.steps, rendered) {
        (Some(steps), Ok(_)) if steps.is_empty() => Err("No steps defined for rollout".into()),
        (Some(_), Ok(mut apps)) => {
            for app in &mut apps {
                let name = app["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let prune = rollout::disable_automated_sync(app);
                prunes.insert(name, prune);
            }
            Ok(apps)
        }
        (_, rendered) => rendered,
    };
    let settings = settings.unwrap_or(reconcile::Settings {
        policy: Policy::CreateOnly,
        preserve_resources_on_deletion: false,
        max_percent: 50,
        ignore: Vec::new(),
        preserved: reconcile::Preserved::default(),
    });
    let (plan, desired, existing) = plan_set(&ctx, &meta, &settings, rendered);
    let desired_count = desired.as_ref().map_or(0, |d| d.len());
    let reference = set.object_ref(&resource);
    if let Some(e) = &plan.error {
        ctx.metrics.generator_error(e);
        tracing::warn!("render failed, nothing changed: {e}");
        publish(&ctx, &reference, EventType::Warning, "RenderFailed", e).await;
    }
    if let Some(held) = &plan.held {
        tracing::warn!("{held}");
        publish(&ctx, &reference, EventType::Warning, "DeletionHeld", held).await;
    }
    let previous: crate::controller::crd::ApplicationSetStatus = object
        .get("status")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let now = crate::plugin::rfc3339(now_secs);
    let rollout = strategy
        .steps
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|steps| {
            rollout_pass(
                &ctx, &meta, steps, &plan, &desired, &existing, &previous, &now, now_secs,
            )
        });
    let desired = desired.unwrap_or_default();
    let applied = apply_plan(&ctx, &meta, &plan, &desired, &existing, &reference).await;
    let mut sync_errors = Vec::new();
    for name in rollout.iter().flat_map(|r| &r.sync) {
        let Some(app) = desired.get(name) else {
            continue;
        };
        let operation = rollout::sync_operation(app, prunes.get(name).copied().unwrap_or(false));
        match apply::start_sync(&ctx.client, &meta.namespace, name, &operation).await {
            Ok(()) => tracing::info!(application = %name, "RollingSync: sync started"),
            Err(e) => sync_errors.push(e),
        }
    }
    let mut applied = applied;
    applied.errors.extend(sync_errors);
    report_status(
        &ctx,
        &resource,
        &object,
        &meta,
        &plan,
        desired_count,
        &applied,
        (&previous, &now, rollout.as_ref()),
    )
    .await?;
    ctx.metrics.reconcile.observe(started.elapsed());
    tracing::debug!(writes = plan.writes(), elapsed = ?started.elapsed(), "reconciled");
    if !applied.errors.is_empty() {
        return Err(ReconcileError::Transient(format!(
            "{} Application writes failed",
            applied.errors.len()
        )));
    }
    ctx.failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&meta.key());
    // A rollout in progress is looked at again soon even without an Application event;
    // a soaking step exactly when its soak ends.
    let requeue = match &rollout {
        Some(r) if r.progressing_step.is_some() => {
            let soon = Duration::from_secs(r.requeue_secs.map_or(30, |s| s.clamp(1, 30) as u64));
            Some(requeue.map_or(soon, |d| d.min(soon)))
        }
        _ => requeue,
    };
    Ok(match (requeue, &plan.error) {
        // A failed render is retried sooner than the normal interval.
        (Some(d), Some(_)) => Action::requeue(d.min(Duration::from_secs(60))),
        (None, Some(_)) => Action::requeue(Duration::from_secs(60)),
        (Some(d), None) => Action::requeue(d),
        (None, None) => Action::await_change(),
    })
}

/// Whether sets in `namespace` are reconciled: Argo CD's namespace always; others when
/// `--applicationset-namespaces` lists them (globs, or `/regex/`), or when it is not given.
fn namespace_allowed(config: &Config, namespace: &str) -> bool {
    namespace == config.argocd_namespace
        || config.applicationset_namespaces.is_empty()
        || matches_list(&config.applicationset_namespaces, namespace)
}

/// Argo's `glob.MatchStringInList` in its `regexp` mode: `/…/` is a regular expression,
/// anything else a glob.
pub fn matches_list(patterns: &[String], item: &str) -> bool {
    patterns.iter().any(
        |p| match p.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) if p.len() > 1 => regex::RegexBuilder::new(re)
                .size_limit(1 << 20)
                .build()
                .is_ok_and(|r| r.is_match(item)),
            _ => crate::controller::gitcache::wildcard(p, item),
        },
    )
}

/// What the controller does with a set's `strategy` (nothing unless
/// `--enable-progressive-syncs`).
#[derive(Debug, Default)]
struct Strategy {
    /// A RollingSync's steps (`Some(empty)`: a RollingSync without steps, an error).
    steps: Option<Vec<prism_engine::model::RollingSyncStep>>,
    /// `deletionOrder: Reverse` on a RollingSync with steps.
    reverse: bool,
}

impl Strategy {
    /// Argo's `IsRollingSyncStrategy` and `IsDeletionOrderReversed`.
    fn of(spec: &prism_engine::model::ApplicationSetSpec) -> Strategy {
        let Some(s) = &spec.strategy else {
            return Strategy::default();
        };
        let steps = match (s.type_.as_deref(), &s.rolling_sync) {
            (Some("RollingSync"), Some(r)) => Some(r.steps.clone()),
            _ => None,
        };
        let reverse = steps.as_ref().is_some_and(|s| !s.is_empty())
            && s.deletion_order
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case("Reverse"));
        Strategy { steps, reverse }
    }
}

/// One RollingSync pass over the set's live Applications (see `rollout.rs`).
#[allow(clippy::too_many_arguments)]
fn rollout_pass(
    ctx: &Context,
    meta: &SetMeta,
    steps: &[prism_engine::model::RollingSyncStep],
    plan: &plan::Plan,
    desired: &Result<BTreeMap<String, Value>, String>,
    existing: &BTreeMap<String, plan::Existing>,
    previous: &crate::controller::crd::ApplicationSetStatus,
    now: &str,
    now_secs: i64,
) -> rollout::Output {
    let updated: std::collections::BTreeSet<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Step::Update(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    // Rendered labels are strings (the engine checks them).
    let labels_of = |app: &Value| plan::string_map(&app["metadata"]["labels"]);
    let mut live = BTreeMap::new();
    let mut live_labels = BTreeMap::new();
    for (name, e) in existing {
        if e.owner != plan::Owner::Us || e.deleting {
            continue;
        }
        let Some(app) = ctx.apps.get(&ObjectRef::new(name).within(&meta.namespace)) else {
            continue;
        };
        live.insert(
            name.clone(),
            rollout::AppState {
                progress: app.status.clone(),
                has_operation: app.operation,
                // Worked out once per version of the object.
                compared_current: app.compared_current(),
                spec_changed: updated.contains(name.as_str()),
            },
        );
        live_labels.insert(name.clone(), e.live.labels());
    }
    let desired_labels = match desired {
        Ok(d) => d.iter().map(|(n, a)| (n.clone(), labels_of(a))).collect(),
        // A failed render changes nothing: the steps are those of the live Applications.
        Err(_) => live_labels,
    };
    let mut out = rollout::run(&rollout::Input {
        steps,
        desired: desired_labels,
        live,
        previous: &previous.application_status,
        now,
        now_secs,
    });
    if desired.is_err() {
        out.sync.clear();
    }
    out
}

/// Deletes a deleted set's Applications step by step, last step first (Argo's
/// `PerformReverseDeletion`, a step at a time rather than an Application at a time):
/// the next step starts once every Application of the one before is gone. `Some`: look
/// again after that long; `None`: all are gone.
async fn reverse_delete(
    ctx: &Context,
    meta: &SetMeta,
    steps: &[prism_engine::model::RollingSyncStep],
) -> Result<Option<Duration>, ReconcileError> {
    let label = meta.label_value();
    let owned: BTreeMap<String, Arc<CachedApplication>> = ctx
        .apps
        .state()
        .into_iter()
        .filter(|a| {
            a.namespace().as_deref() == Some(meta.namespace.as_str())
                && a.labels().get(OWNER_LABEL) == Some(&label)
        })
        .map(|a| (a.name_any(), a))
        .collect();
    let labels = owned
        .iter()
        .map(|(n, a)| (n.clone(), a.labels().clone().into_iter().collect()))
        .collect();
    let Some(step) = rollout::reverse_deletion_order(steps, &labels)
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &meta.namespace,
        &apply::application_resource(),
    );
    for name in &step {
        let app = &owned[name];
        if app.meta().deletion_timestamp.is_some() {
            continue;
        }
        let dp = kube::api::DeleteParams {
            preconditions: app.meta().uid.clone().map(|uid| kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..kube::api::DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => tracing::info!(application = %name, "deletionOrder Reverse: deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(ReconcileError::Transient(format!(
                    "{name}: delete: {}",
                    apply::describe(&e)
                )))
            }
        }
    }
    Ok(Some(Duration::from_secs(5)))
}

/// Removes Argo's resources finalizer from a deleted set, so it goes.
async fn remove_finalizer(
    ctx: &Context,
    resource: &ApiResource,
    meta: &SetMeta,
) -> Result<(), ReconcileError> {
    set_finalizers(
        ctx,
        resource,
        meta,
        meta.finalizers
            .iter()
            .filter(|f| *f != RESOURCES_FINALIZER)
            .cloned()
            .collect(),
    )
    .await
}

/// Adds Argo's resources finalizer to the set (`deletionOrder: Reverse`).
async fn add_finalizer(
    ctx: &Context,
    resource: &ApiResource,
    meta: &SetMeta,
) -> Result<(), ReconcileError> {
    let mut finalizers = meta.finalizers.clone();
    finalizers.push(RESOURCES_FINALIZER.to_string());
    set_finalizers(ctx, resource, meta, finalizers).await
}

/// Sets the set's finalizers, failing rather than overwriting a newer change.
async fn set_finalizers(
    ctx: &Context,
    resource: &ApiResource,
    meta: &SetMeta,
    finalizers: Vec<String>,
) -> Result<(), ReconcileError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &meta.namespace, resource);
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers,
                                                "resourceVersion": meta.resource_version}});
    api.patch(
        &meta.name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(|e| {
        ReconcileError::Transient(format!("updating the finalizers: {}", apply::describe(&e)))
    })
}

/// Reads the set into the engine's typed model on a blocking thread: the outer error
/// is the task's, the inner one the spec's (a permanent error, reported in status).
async fn read_set(
    object: Value,
    meta: &SetMeta,
) -> Result<Result<Arc<ApplicationSet>, String>, ReconcileError> {
    let namespace = meta.namespace.clone();
    tokio::task::spawn_blocking(move || {
        // Reading the spec is the render's first step, and reported as such.
        isolated("rendering", || {
            ApplicationSet::from_value(&object, &namespace)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
    })
    .await
    .map_err(|e| ReconcileError::Transient(format!("read task: {e}")))
}

/// Who the set reads as: the credentials of its project (only those, outside the Argo
/// CD namespace), and there also only what its AppProject's `sourceRepos` allow. The
/// outer error is the API's, the inner one the set's.
async fn reader_of(
    ctx: &Context,
    appset: &ApplicationSet,
) -> Result<Result<Reader, String>, ReconcileError> {
    let project = appset.spec.template["spec"]["project"]
        .as_str()
        .filter(|p| !p.is_empty() && !p.contains("{{"))
        .map(str::to_string);
    let argocd = &ctx.config.argocd_namespace;
    let outside = appset.namespace != *argocd;
    let access = Access::Project {
        name: project.clone(),
        scoped_only: outside,
    };
    if !outside {
        return Ok(Ok(Reader {
            access,
            source_repos: None,
        }));
    }
    let Some(project) = project else {
        return Ok(Err(format!(
            "spec.template.spec.project: an ApplicationSet outside the Argo CD namespace ({argocd}) \
             must name its AppProject plainly (not templated): it decides which repositories it reads"
        )));
    };
    let projects: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        argocd,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "AppProject"),
            "appprojects",
        ),
    );
    let found = match projects.get_opt(&project).await {
        Ok(found) => found,
        Err(e) => {
            return Err(ReconcileError::Transient(format!(
                "reading AppProject {project}: {e}"
            )))
        }
    };
    let Some(found) = found else {
        return Ok(Err(format!(
            "spec.template.spec.project: AppProject {project} does not exist in {argocd}"
        )));
    };
    // Argo's IsAppNamespacePermitted: Applications outside Argo CD's namespace only in
    // the namespaces the project lists.
    let source_namespaces: Vec<String> = found.data["spec"]["sourceNamespaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if !matches_list(&source_namespaces, &appset.namespace) {
        return Ok(Err(format!(
            "AppProject {project} does not permit Applications in namespace {} \
             (add it to the project's spec.sourceNamespaces)",
            appset.namespace
        )));
    }
    let repos = found.data["spec"]["sourceRepos"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Ok(Reader {
        access,
        source_repos: Some((project, repos)),
    }))
}

/// The credentials the set's SCM generators name (`pullRequest`, `scmProvider`, as each
/// generator reports them): `tokenRef`-style Secrets and `caRef` ConfigMaps from the
/// set's own namespace (as Argo CD reads them; with `--token-ref-strict-mode` only
/// Secrets labelled `argocd.argoproj.io/secret-type: scm-creds`), and GitHub App
/// Secrets (`appSecretName`) from Argo CD's repository credentials. The outer error is
/// the API's, the inner one the set's. Tokens never reach a message.
async fn scm_tokens_of(
    ctx: &Context,
    appset: &ApplicationSet,
) -> Result<Result<crate::scm::ScmTokens, String>, ReconcileError> {
    let refs = reconcile::references(&appset.spec.generators);
    if refs == prism_engine::generators::References::default() {
        return Ok(Ok(crate::scm::ScmTokens::default()));
    }
    let ns = &appset.namespace;
    let transient = |what: &str, e: kube::Error| {
        ReconcileError::Transient(format!("reading {what}: {}", apply::describe(&e)))
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = Vec::new();
    for name in &refs.secrets {
        let secret = match secrets.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Ok(Err(format!(
                    "tokenRef: Secret {name} does not exist in {ns}"
                )))
            }
            Err(e) => return Err(transient(&format!("Secret {name}"), e)),
        };
        if ctx.config.token_ref_strict_mode
            && secret.labels().get(SECRET_TYPE).map(String::as_str) != Some("scm-creds")
        {
            return Ok(Err(format!(
                "tokenRef: Secret {name} is not labelled {SECRET_TYPE}: scm-creds \
                 (--token-ref-strict-mode)"
            )));
        }
        found.push(as_object(&secret, "Secret"));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for name in &refs.config_maps {
        match config_maps.get_opt(name).await {
            Ok(Some(c)) => found.push(as_object(&c, "ConfigMap")),
            Ok(None) => {
                return Ok(Err(format!(
                    "caRef: ConfigMap {name} does not exist in {ns}"
                )))
            }
            Err(e) => return Err(transient(&format!("ConfigMap {name}"), e)),
        }
    }
    for name in &refs.app_secrets {
        // Argo's GetRepoCredsBySecretName: a repository credential Secret of its namespace.
        let secret = ctx.secrets.state().into_iter().find(|s| {
            s.name_any() == *name
                && matches!(
                    s.labels().get(SECRET_TYPE).map(String::as_str),
                    Some("repository" | "repo-creds")
                )
        });
        match secret {
            Some(s) => found.push(as_object(s.as_ref(), "Secret")),
            None => {
                return Ok(Err(format!(
                    "appSecretName: no repository or repo-creds Secret {name} in {}",
                    ctx.config.argocd_namespace
                )))
            }
        }
    }
    Ok(crate::scm::ScmTokens::from_secrets(&found))
}

/// A Kubernetes object as JSON with its `kind` (typed objects serialize without it).
fn as_object<T: serde::Serialize>(object: &T, kind: &str) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or(Value::Null);
    v["kind"] = Value::from(kind);
    v
}

/// Renders the set's Applications on a blocking thread (git, plugins, registries):
/// the outer error is the task's, the inner one the render's.
async fn render_set(
    ctx: &Context,
    appset: Arc<ApplicationSet>,
) -> Result<Result<Vec<Value>, String>, ReconcileError> {
    let reader = match reader_of(ctx, &appset).await? {
        Ok(reader) => reader,
        Err(e) => return Ok(Err(e)),
    };
    let tokens = match scm_tokens_of(ctx, &appset).await? {
        Ok(tokens) => tokens,
        Err(e) => return Ok(Err(e)),
    };
    let decisions = decisions_of(ctx, &appset).await?;
    // A set outside Argo CD's namespace was checked against one project: its
    // Applications may name no other (a generator's template could try).
    let checked_project = reader.source_repos.as_ref().map(|(p, _)| p.clone());
    let sources = ControllerSources {
        git: ctx.git.clone(),
        clusters: clusters(&ctx.secrets),
        registry: Some(ctx.registry.clone()),
        reader,
        scm: (ctx.scm.clone(), Arc::new(tokens)),
        decisions,
    };
    let plugins = ctx.plugins.clone();
    let options = ctx.config.render.clone();
    tokio::task::spawn_blocking(move || {
        // Last line of defence behind the engine's limits: a panic while rendering this
        // set fails this pass only, as a render error (status, Event, nothing applied or
        // deleted); the other sets go on.
        isolated("rendering", || {
            let sources: Box<dyn Sources> = match plugins {
                Some(host) => Box::new(PluginSources::new(Arc::new(sources), host)),
                None => Box::new(sources),
            };
            let out = prism_engine::render(&appset, sources.as_ref(), &options)
                .map_err(|e| e.to_string())?;
            for w in &out.warnings {
                tracing::warn!("{w}");
            }
            if let Some(project) = &checked_project {
                if let Some(app) = out
                    .applications
                    .iter()
                    .find(|a| a.manifest["spec"]["project"].as_str() != Some(project.as_str()))
                {
                    return Err(format!(
                        "Application {} names project {}, but this set (outside the Argo CD \
                         namespace) was checked against project {project} only",
                        app.manifest["metadata"]["name"].as_str().unwrap_or("?"),
                        app.manifest["spec"]["project"]
                    ));
                }
            }
            Ok(out.applications.into_iter().map(|a| a.manifest).collect())
        })
    })
    .await
    .map_err(|e| ReconcileError::Transient(format!("render task: {e}")))
}

/// The decision resources the set's `clusterDecisionResource` generators read: the
/// ConfigMap (in Argo CD's namespace) and the resources it describes, listed there by
/// name or label selector with the dynamic API. Each kind is watched from its first read
/// on, so a changed decision re-renders the sets that read decisions. A read the API
/// refuses is that generator's error (the admin grants `list`/`watch` on the kind).
async fn decisions_of(
    ctx: &Context,
    appset: &ApplicationSet,
) -> Result<crate::controller::gitcache::Decisions, ReconcileError> {
    let mut out = crate::controller::gitcache::Decisions::new();
    let ns = &ctx.config.argocd_namespace;
    for source in reconcile::decision_sources(&appset.spec.generators) {
        let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let config = match config_maps.get_opt(&source.config_map).await {
            Ok(Some(cm)) => cm.data.unwrap_or_default(),
            Ok(None) => {
                out.insert(source, Err(format!("ConfigMap does not exist in {ns}")));
                continue;
            }
            Err(e) => {
                return Err(ReconcileError::Transient(format!(
                    "reading ConfigMap {}: {}",
                    source.config_map,
                    apply::describe(&e)
                )))
            }
        };
        let config: BTreeMap<String, String> = config.into_iter().collect();
        let api_version = config.get("apiVersion").cloned().unwrap_or_default();
        let plural = config.get("kind").cloned().unwrap_or_default();
        let Some((group, version)) = api_version.split_once('/').filter(|(g, _)| !g.is_empty())
        else {
            // The generator reports the ConfigMap's problem.
            out.insert(
                source,
                Ok(prism_engine::sources::DecisionResources {
                    config,
                    resources: vec![],
                }),
            );
            continue;
        };
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.clone(),
            kind: plural.clone(),
            plural: plural.clone(),
        };
        watch_decisions(ctx, &resource);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &resource);
        let params = match (&source.name, &source.label_selector) {
            (Some(name), _) => {
                kube::api::ListParams::default().fields(&format!("metadata.name={name}"))
            }
            (None, Some(selector)) => kube::api::ListParams::default().labels(selector),
            (None, None) => kube::api::ListParams::default(),
        };
        let listed = match api.list(&params).await {
            Ok(list) => {
                let mut resources: Vec<Value> = list
                    .items
                    .iter()
                    .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                    .collect();
                resources.sort_by(|a, b| {
                    a["metadata"]["name"]
                        .as_str()
                        .cmp(&b["metadata"]["name"].as_str())
                });
                Ok(prism_engine::sources::DecisionResources { config, resources })
            }
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Err(format!(
                "listing {plural}.{group} in {ns}: {} (grant the controller list and watch on it)",
                s.message
            )),
            Err(e) => {
                return Err(ReconcileError::Transient(format!(
                    "listing {plural}.{group}: {}",
                    apply::describe(&e)
                )))
            }
        };
        out.insert(source, listed);
    }
    Ok(out)
}

/// Starts a watch of a decision resource kind (once per kind): any change re-renders
/// the sets with a `clusterDecisionResource` generator.
fn watch_decisions(ctx: &Context, resource: &ApiResource) {
    let key = (resource.api_version.clone(), resource.plural.clone());
    let new = ctx
        .decision_watches
        .lock()
        .map(|mut w| w.insert(key))
        .unwrap_or(false);
    if !new {
        return;
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ctx.config.argocd_namespace, resource);
    let triggers = ctx.triggers.clone();
    let what = format!("{}.{}", resource.plural, resource.group);
    tokio::spawn(
        watcher(api, watcher::Config::default())
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                        if let Some(t) = triggers.get() {
                            let n = t.send_all(|set| {
                                !reconcile::decision_sources(generators(&set.data)).is_empty()
                            });
                            tracing::debug!(sets = n, "{what} changed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("watching {what}: {e}"),
                }
                futures::future::ready(())
            }),
    );
}

/// A plan, with the desired Applications (or the render's error) and the existing ones.
type Planned = (
    plan::Plan,
    Result<BTreeMap<String, Value>, String>,
    BTreeMap<String, plan::Existing>,
);

/// The desired and existing Applications, and the plan between them, against the cache.
fn plan_set(
    ctx: &Context,
    meta: &SetMeta,
    settings: &reconcile::Settings,
    rendered: Result<Vec<Value>, String>,
) -> Planned {
    let state = ctx.apps.state();
    let live = reconcile::by_name(&state, &meta.namespace);
    let desired = rendered.and_then(|apps| {
        isolated("planning", || {
            reconcile::desired(
                meta,
                apps,
                &settings.ignore,
                &settings.preserved,
                &|name| live.get(name).map(|a| a.to_value()),
                &|name, kind, key| {
                    let a = live.get(name)?;
                    let map = if kind == "labels" {
                        a.labels()
                    } else {
                        a.annotations()
                    };
                    map.get(key).cloned()
                },
            )
        })
    });
    let empty = BTreeMap::new();
    let existing = reconcile::existing_in(meta, &live, desired.as_ref().unwrap_or(&empty));
    let input = Input {
        desired,
        existing,
        policy: settings.policy,
        preserve_resources_on_deletion: settings.preserve_resources_on_deletion,
        guard: meta.guard(settings),
    };
    let plan = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan::plan(&input))) {
        Ok(plan) => plan,
        Err(payload) => {
            // Nothing is written on a plan that failed: every Application is kept.
            let message = panic_message("planning", payload.as_ref());
            tracing::error!("{message}");
            plan::plan(&Input {
                desired: Err(message),
                existing: input.existing.clone(),
                policy: input.policy,
                preserve_resources_on_deletion: input.preserve_resources_on_deletion,
                guard: input.guard,
            })
        }
    };
    // The plan's input is what gets applied: moved out, not copied.
    (plan, input.desired, input.existing)
}

/// Carries out the plan's writes, counts them and announces changes with an Event.
async fn apply_plan(
    ctx: &Context,
    meta: &SetMeta,
    plan: &plan::Plan,
    desired: &BTreeMap<String, Value>,
    existing: &BTreeMap<String, plan::Existing>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) -> reconcile::Applied {
    let seen = |app: &CachedApplication| ctx.seen.record(app);
    let applied = apply::execute(
        &ctx.client,
        &meta.namespace,
        plan,
        desired,
        existing,
        8,
        &seen,
    )
    .await;
    ctx.metrics.applied.fetch_add(
        (applied.created + applied.updated) as u64,
        Ordering::Relaxed,
    );
    ctx.metrics
        .deleted
        .fetch_add(applied.deleted as u64, Ordering::Relaxed);
    let held = plan
        .actions
        .iter()
        .filter(|a| matches!(a, Step::Keep(_, Keep::DeletionHeld)))
        .count();
    let desired_count = desired.len();
    ctx.metrics.pass(&meta.key(), desired_count, held);
    if applied.created + applied.updated + applied.deleted > 0 {
        let note = format!(
            "created {}, updated {}, deleted {} Applications",
            applied.created, applied.updated, applied.deleted
        );
        tracing::info!("{note}");
        publish(
            ctx,
            reference,
            EventType::Normal,
            "ApplicationsChanged",
            &note,
        )
        .await;
    }
    for e in &applied.errors {
        tracing::warn!("{e}");
    }
    applied
}

/// Writes the set's status (only when it changed).
#[allow(clippy::too_many_arguments)]
async fn report_status(
    ctx: &Context,
    resource: &ApiResource,
    object: &Value,
    meta: &SetMeta,
    plan: &plan::Plan,
    desired_count: usize,
    applied: &reconcile::Applied,
    (previous, now, rollout): (
        &crate::controller::crd::ApplicationSetStatus,
        &str,
        Option<&rollout::Output>,
    ),
) -> Result<(), ReconcileError> {
    let status = reconcile::status(
        previous,
        meta,
        plan,
        desired_count,
        applied,
        now,
        ctx.config.resource_cap,
        rollout,
    );
    apply::patch_status(
        &ctx.client,
        resource,
        &meta.namespace,
        &meta.name,
        object.get("status"),
        &status,
    )
    .await
    .map(|_| ())
    .map_err(ReconcileError::Transient)
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(crate::plugin::truncate(note, 1000).to_string()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        tracing::debug!("publishing an Event: {}", apply::describe(&e));
    }
}

#[cfg(test)]
mod tests {

    //! Whole reconcile passes against kube-rs's mocked tower service: every request
    //! the pass makes is recorded and answered, then asserted by method and path.

    use super::*;
    use crate::registry::RegistrySettings;
    use http::{Request, Response};
    use kube::client::Body;
    use kube::runtime::reflector::store::Writer;
    use serde_json::json;

    /// A controller configuration for tests.
    fn test_config() -> Config {
        Config {
            namespace: None,
            argocd_namespace: "argocd".into(),
            policy: Policy::Sync,
            concurrency: 1,
            watch_argo: false,
            leader_election: false,
            lease: ("l".into(), "argocd".into()),
            identity: "test".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            secrets: Secrets::default(),
            git_refresh: Duration::from_secs(60),
            cache_dir: PathBuf::from("/nonexistent"),
            resource_cap: 5000,
            render: RenderOptions::default(),
            repo_policy: crate::repo_policy::RepoPolicy::remote_only(false),
            token_ref_strict_mode: false,
            allowed_scm_providers: Vec::new(),
            progressive_syncs: true,
            preserved: reconcile::Preserved::default(),
            applicationset_namespaces: Vec::new(),
        }
    }

    /// Argo's `glob.MatchStringInList` (regexp mode) for `--applicationset-namespaces`
    /// and `sourceNamespaces`: globs, `/regex/`, and Argo CD's own namespace always
    /// (Argo's util/glob/list.go, applicationset/utils/utils.go IsNamespaceAllowed,
    /// pkg/apis/application/v1alpha1/app_project_types.go IsAppNamespacePermitted).
    #[test]
    fn namespaces_match_globs_and_regexes() {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches_list(&list(&["team-*"]), "team-a"));
        assert!(!matches_list(&list(&["team-*"]), "ops"));
        assert!(matches_list(&list(&["/^prod-[0-9]+$/"]), "prod-12"));
        assert!(!matches_list(&list(&["/^prod-[0-9]+$/"]), "prod-x"));
        assert!(!matches_list(&list(&[]), "anything"));
        let config = |namespaces: &[&str]| Config {
            applicationset_namespaces: list(namespaces),
            ..test_config()
        };
        assert!(namespace_allowed(&config(&[]), "anywhere"));
        assert!(namespace_allowed(&config(&["team-*"]), "argocd"));
        assert!(namespace_allowed(&config(&["team-*"]), "team-b"));
        assert!(!namespace_allowed(&config(&["team-*"]), "ops"));
    }

    type Recorded = Vec<(String, String, Value)>;

    /// Answers every request (echoing the body as the object) until the client is gone.
    fn mock_api() -> (Client, tokio::task::JoinHandle<Recorded>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request.uri().path().to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let reply = match body.get("metadata") {
                    Some(_) => body.clone(),
                    None => json!({"apiVersion": "v1", "kind": "Status", "status": "Success",
                                   "metadata": {"name": "x", "namespace": "argocd"}}),
                };
                send.send_response(
                    Response::builder()
                        .status(200)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
                seen.push((method, path, body));
            }
            seen
        });
        (Client::new(service, "argocd"), server)
    }

    fn dynamic(value: Value, resource: &ApiResource) -> DynamicObject {
        let mut obj: DynamicObject = serde_json::from_value(value).unwrap();
        obj.types = Some(kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        obj
    }

    fn set(elements: Value, annotations: Value, status: Option<Value>) -> DynamicObject {
        let mut v = json!({
            "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "shop", "namespace": "argocd", "uid": "set-uid", "generation": 3,
                         "annotations": annotations},
            "spec": {
                "generators": [{"list": {"elements": elements}}],
                "syncPolicy": {"preserveResourcesOnDeletion": true},
                "template": {
                    "metadata": {"name": "{{name}}"},
                    "spec": {"project": "default",
                             "source": {"repoURL": "https://g/x.git", "path": "{{name}}", "targetRevision": "main"},
                             "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{name}}"}}
                }
            }
        });
        if let Some(s) = status {
            v["status"] = s;
        }
        dynamic(v, &application_set_resource("prism.dev"))
    }

    /// The Application the set renders for `name`, as Prism applies it (engine and all).
    fn owned(name: &str) -> Value {
        let obj = serde_json::to_value(set(json!([{"name": name}]), json!({}), None)).unwrap();
        let meta = SetMeta::from_object(&obj).unwrap();
        let appset = ApplicationSet::from_value(&obj, "argocd").unwrap();
        let sources = prism_engine::sources::memory::MemorySources::new();
        let rendered = prism_engine::render(&appset, &sources, &RenderOptions::default()).unwrap();
        let manifests = rendered
            .applications
            .into_iter()
            .map(|a| a.manifest)
            .collect();
        let mut v = reconcile::desired(
            &meta,
            manifests,
            &[],
            &reconcile::Preserved::default(),
            &|_| None,
            &|_, _, _| None,
        )
        .unwrap()[name]
            .clone();
        v["metadata"]["uid"] = json!(format!("uid-{name}"));
        v
    }

    fn context(client: Client, apps: Vec<Value>, dir: &std::path::Path) -> Arc<Context> {
        let mut writer = Writer::<CachedApplication>::default();
        for a in apps {
            writer.apply_watcher_event(&watcher::Event::Apply(
                CachedApplication::from_value(&a).unwrap(),
            ));
        }
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "prism-controller".into(),
                instance: None,
            },
        );
        Arc::new(Context {
            client,
            config: Config {
                cache_dir: dir.to_path_buf(),
                ..test_config()
            },
            git: Arc::new(GitCache::new(dir.join("git"), Duration::from_secs(60))),
            apps: writer.as_reader(),
            secrets: Writer::<Secret>::default().as_reader(),
            metrics: Arc::new(Metrics::default()),
            recorder,
            registry: Arc::new(RegistryClient::new(RegistrySettings::default(), None).unwrap()),
            plugins: None,
            scm: Arc::new(crate::scm::ScmClient::default()),
            failures: Mutex::default(),
            triggers: Arc::default(),
            decision_watches: Mutex::default(),
            seen: Arc::default(),
        })
    }

    /// Runs one pass; returns the requests it made, sorted, as (method, path, body).
    async fn pass(
        set: DynamicObject,
        apps: Vec<Value>,
    ) -> (Result<Action, ReconcileError>, Recorded) {
        let dir = tempfile::tempdir().unwrap();
        let (client, server) = mock_api();
        let ctx = context(client, apps, dir.path());
        let result = reconcile_set(Arc::new(set), ctx, application_set_resource("prism.dev")).await;
        // The context (and with it every client handle) is gone: the mock ends.
        let mut seen = server.await.unwrap();
        seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        (result, seen)
    }

    const APPS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications";
    const STATUS: &str = "/apis/prism.dev/v1alpha1/namespaces/argocd/applicationsets/shop/status";
    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/argocd/events";

    fn calls(seen: &Recorded) -> Vec<(&str, &str)> {
        seen.iter()
            .map(|(m, p, _)| (m.as_str(), p.as_str()))
            .collect()
    }

    fn status_of(seen: &Recorded) -> Value {
        seen.iter()
            .find(|(_, p, _)| p == STATUS)
            .map(|(_, _, b)| b["status"].clone())
            .expect("a status patch")
    }

    fn condition(status: &Value, type_: &str) -> (String, String) {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .unwrap();
        (
            c["status"].as_str().unwrap().into(),
            c["message"].as_str().unwrap().into(),
        )
    }

    #[tokio::test]
    async fn a_pass_creates_updates_deletes_and_reports_then_the_next_pass_writes_nothing() {
        let mut drifted = owned("a");
        drifted["spec"]["source"]["targetRevision"] = json!("hand-edited");
        // Created before preserveResourcesOnDeletion was set: it still has the finalizer.
        let mut old = owned("old");
        old["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io", "x/keep"]);
        let apps = vec![drifted, old, owned("keep1"), owned("keep2")];
        let elements = json!([{"name": "a"}, {"name": "b"}, {"name": "keep1"}, {"name": "keep2"}]);
        let (result, seen) = pass(set(elements.clone(), json!({}), None), apps).await;
        result.unwrap();
        assert_eq!(
            calls(&seen),
            vec![
                ("DELETE", format!("{APPS}/old").as_str()),
                ("PATCH", format!("{APPS}/a").as_str()),
                ("PATCH", format!("{APPS}/b").as_str()),
                // preserveResourcesOnDeletion: the finalizer goes first.
                ("PATCH", format!("{APPS}/old").as_str()),
                ("PATCH", STATUS),
                ("POST", EVENTS),
            ]
        );
        let body = |path: String| {
            seen.iter()
                .find(|(m, p, _)| m == "PATCH" && *p == path)
                .unwrap()
                .2
                .clone()
        };
        let a = body(format!("{APPS}/a"));
        assert_eq!(
            a["spec"]["source"]["targetRevision"], "main",
            "drift repaired"
        );
        assert_eq!(a["metadata"]["labels"][OWNER_LABEL], "argocd.shop");
        assert_eq!(a["metadata"]["ownerReferences"][0]["uid"], "set-uid");
        assert_eq!(
            body(format!("{APPS}/old"))["metadata"]["finalizers"],
            json!(["x/keep"])
        );
        let status = status_of(&seen);
        assert_eq!(
            status["applications"],
            json!({"desired": 4, "created": 1, "updated": 1, "deleted": 1, "held": 0})
        );
        assert_eq!(status["resourcesCount"], 4);
        assert_eq!(condition(&status, "ResourcesUpToDate").0, "True");
        let event = &seen.iter().find(|(_, p, _)| p == EVENTS).unwrap().2;
        assert_eq!(event["reason"], "ApplicationsChanged");
        assert_eq!(event["regarding"]["name"], "shop");

        // Converged: live equals desired and the status is the one just written.
        let apps = vec![owned("a"), owned("b"), owned("keep1"), owned("keep2")];
        let (result, seen) = pass(set(elements, json!({}), Some(status)), apps).await;
        // A list generator has nothing to poll: wait for the next change.
        assert_eq!(result.unwrap(), Action::await_change());
        assert_eq!(
            calls(&seen),
            Vec::<(&str, &str)>::new(),
            "a no-change pass makes zero requests"
        );
    }

    #[tokio::test]
    async fn mass_deletes_are_held_until_the_generation_is_confirmed() {
        let apps = vec![owned("a"), owned("b"), owned("c")];
        // The list now renders one of three: two deletes, 67% > 50%.
        let (result, seen) = pass(set(json!([{"name": "a"}]), json!({}), None), apps.clone()).await;
        result.unwrap();
        assert_eq!(
            calls(&seen),
            vec![("PATCH", STATUS), ("POST", EVENTS)],
            "no DELETE"
        );
        let status = status_of(&seen);
        let (held, message) = condition(&status, "DeletionHeld");
        assert_eq!(held, "True");
        assert!(
            message.contains("prism.dev/allow-mass-delete: \"3\""),
            "{message}"
        );
        assert_eq!(status["applications"]["held"], 2);
        let event = &seen.iter().find(|(_, p, _)| p == EVENTS).unwrap().2;
        assert_eq!(event["reason"], "DeletionHeld");
        assert_eq!(event["type"], "Warning");

        // An annotation for an older generation does not release them; the current one does.
        let (_, seen) = pass(
            set(
                json!([{"name": "a"}]),
                json!({"prism.dev/allow-mass-delete": "2"}),
                None,
            ),
            apps.clone(),
        )
        .await;
        assert!(!calls(&seen).iter().any(|(m, _)| *m == "DELETE"));
        let (_, seen) = pass(
            set(
                json!([{"name": "a"}]),
                json!({"prism.dev/allow-mass-delete": "3"}),
                None,
            ),
            apps,
        )
        .await;
        let deletes: Vec<&str> = calls(&seen)
            .into_iter()
            .filter(|(m, _)| *m == "DELETE")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(deletes, [format!("{APPS}/b"), format!("{APPS}/c")]);
    }

    #[tokio::test]
    async fn a_failing_generator_changes_no_application() {
        let mut s = serde_json::to_value(set(json!([]), json!({}), None)).unwrap();
        s["spec"]["generators"] = json!([{"git": {"repoURL": "/nonexistent/prism-e2e-repo",
                                                   "revision": "main", "directories": [{"path": "*"}]}}]);
        let s = dynamic(s, &application_set_resource("prism.dev"));
        let (result, seen) = pass(s, vec![owned("a"), owned("b")]).await;
        // Retried sooner than git's 180 s, and nothing but status and an Event written.
        assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
        assert_eq!(calls(&seen), vec![("PATCH", STATUS), ("POST", EVENTS)]);
        let status = status_of(&seen);
        let (error, message) = condition(&status, "ErrorOccurred");
        assert_eq!(error, "True");
        assert!(message.contains("/nonexistent/prism-e2e-repo"), "{message}");
        assert_eq!(
            status["resourcesCount"], 2,
            "the Applications are still listed"
        );
    }

    /// Transient failures back off from 5 s, doubling to 5 min; a set that cannot be
    /// read waits 10 min (or its next change); a successful pass resets the backoff.
    #[tokio::test]
    async fn error_policy_backs_off_transient_failures_and_waits_on_permanent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (client, _server) = mock_api();
        let ctx = context(client, vec![], dir.path());
        let s = Arc::new(set(json!([]), json!({}), None));
        let transient = ReconcileError::Transient("api down".into());
        let waits: Vec<Action> = (0..8)
            .map(|_| error_policy(s.clone(), &transient, ctx.clone()))
            .collect();
        let secs = [5, 10, 20, 40, 80, 160, 300, 300];
        assert_eq!(
            waits,
            secs.map(|s| Action::requeue(Duration::from_secs(s)))
                .to_vec()
        );
        let permanent = ReconcileError::Permanent("not an ApplicationSet".into());
        assert_eq!(
            error_policy(s.clone(), &permanent, ctx.clone()),
            Action::requeue(Duration::from_secs(600))
        );
        ctx.failures.lock().unwrap().remove("argocd.shop");
        assert_eq!(
            error_policy(s, &transient, ctx),
            Action::requeue(Duration::from_secs(5))
        );
    }

    /// A hostile spec (a matrix that would be a million parameter sets, a template that
    /// would loop for ever) fails its own pass with the limit named; the next set's pass
    /// runs as usual.
    #[tokio::test]
    async fn a_hostile_spec_fails_its_pass_only() {
        let children: Vec<Value> = (0..20)
            .map(
                |i| json!({"list": {"elements": [{format!("a{i}"): "x"}, {format!("a{i}"): "y"}]}}),
            )
            .collect();
        for (generators, go) in [
            (json!([{"matrix": {"generators": children}}]), false),
            (json!([{"list": {"elements": [{"name": "a"}]}}]), true),
        ] {
            let mut s = serde_json::to_value(set(json!([]), json!({}), None)).unwrap();
            s["spec"]["generators"] = generators;
            if go {
                s["spec"]["goTemplate"] = json!(true);
                s["spec"]["template"] = json!({
                    "metadata": {"name": "{{ range 100000000000 }}{{ end }}{{ .name }}"},
                    "spec": {"project": "default",
                             "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}
                });
            }
            let s = dynamic(s, &application_set_resource("prism.dev"));
            let (result, seen) = pass(s, vec![owned("a")]).await;
            assert!(result.is_ok(), "{result:?}");
            assert_eq!(calls(&seen), vec![("PATCH", STATUS), ("POST", EVENTS)]);
            let (_, message) = condition(&status_of(&seen), "ErrorOccurred");
            assert!(
                message.contains("an admin can raise it with --max-"),
                "{message}"
            );
        }
        let (result, seen) = pass(set(json!([{"name": "a"}]), json!({}), None), vec![]).await;
        assert!(result.is_ok());
        assert!(calls(&seen).contains(&("PATCH", &*format!("{APPS}/a"))));
    }

    /// A panic while rendering one set (a test-only generator that panics on purpose)
    /// fails that pass only: ErrorOccurred, a Warning Event, nothing applied or deleted;
    /// the next set's pass runs as usual.
    #[tokio::test]
    async fn a_panic_in_one_set_fails_its_pass_only() {
        let mut s = serde_json::to_value(set(json!([]), json!({}), None)).unwrap();
        s["spec"]["generators"] = json!([{"testPanic": {}}]);
        let s = dynamic(s, &application_set_resource("prism.dev"));
        let (result, seen) = pass(s, vec![owned("a"), owned("b")]).await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls(&seen), vec![("PATCH", STATUS), ("POST", EVENTS)]);
        let status = status_of(&seen);
        let (error, message) = condition(&status, "ErrorOccurred");
        assert_eq!(error, "True");
        assert!(
            message.starts_with("internal error while rendering this ApplicationSet (a bug in Prism; please report it): the testPanic generator panics on purpose"),
            "{message}"
        );
        let event = seen.iter().find(|(_, p, _)| p == EVENTS).unwrap();
        assert_eq!(event.2["type"], "Warning");
        assert!(event.2["note"]
            .as_str()
            .unwrap()
            .contains("panics on purpose"));
        // The next set is reconciled as usual.
        let (result, seen) = pass(set(json!([{"name": "a"}]), json!({}), None), vec![]).await;
        assert!(result.is_ok());
        assert!(
            calls(&seen).contains(&("PATCH", &*format!("{APPS}/a"))),
            "{:?}",
            calls(&seen)
        );
    }

    /// `--watch-argo-applicationsets`: Argo's own ApplicationSet, reconciled the same
    /// way; its status gets only the fields Argo's schema has.
    #[tokio::test]
    async fn an_argo_application_set_is_reconciled_and_reported_in_argo_terms() {
        let argo = application_set_resource("argoproj.io");
        let mut v = serde_json::to_value(set(json!([{"name": "a"}]), json!({}), None)).unwrap();
        v["apiVersion"] = json!("argoproj.io/v1alpha1");
        let dir = tempfile::tempdir().unwrap();
        let (client, server) = mock_api();
        let ctx = context(client, vec![], dir.path());
        reconcile_set(Arc::new(dynamic(v, &argo)), ctx, argo)
            .await
            .unwrap();
        let seen = server.await.unwrap();
        let apply = seen
            .iter()
            .find(|(m, p, _)| m == "PATCH" && p == &format!("{APPS}/a"))
            .expect("the Application is applied");
        assert_eq!(
            apply.2["metadata"]["ownerReferences"][0]["apiVersion"],
            "argoproj.io/v1alpha1"
        );
        let status = seen
            .iter()
            .find(|(_, p, _)| {
                p == "/apis/argoproj.io/v1alpha1/namespaces/argocd/applicationsets/shop/status"
            })
            .map(|(_, _, b)| b["status"].clone())
            .expect("a status patch on the Argo resource");
        assert_eq!(status["resourcesCount"], 1);
        assert!(status.get("applications").is_none() && status.get("observedGeneration").is_none());
        assert_eq!(condition(&status, "ResourcesUpToDate").0, "True");
    }

    #[test]
    fn cluster_list_comes_from_cluster_secrets_only_sorted() {
        let mut writer = Writer::<Secret>::default();
        let secret = |name: &str, kind: &str, server: &str| -> Secret {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "argocd",
                    "labels": {"argocd.argoproj.io/secret-type": kind}},
                "stringData": {"name": name, "server": server, "url": server}}))
            .unwrap()
        };
        for s in [
            secret("zeta", "cluster", "https://z.example"),
            secret("alpha", "cluster", "https://a.example"),
            secret("repo", "repository", "https://git.example/x.git"),
        ] {
            // stringData is write-only in the API: a watched Secret has data.
            let mut s = s;
            s.data = s.string_data.take().map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes())))
                    .collect()
            });
            writer.apply_watcher_event(&watcher::Event::Apply(s));
        }
        let names: Vec<String> = clusters(&writer.as_reader())
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    #[tokio::test]
    async fn foreign_applications_are_left_alone_unless_annotated_for_adoption() {
        let mut foreign = owned("a");
        foreign["metadata"]["labels"] = json!({});
        foreign["metadata"]["ownerReferences"] = json!([]);
        let (_, seen) = pass(
            set(json!([{"name": "a"}]), json!({}), None),
            vec![foreign.clone()],
        )
        .await;
        assert_eq!(calls(&seen), vec![("PATCH", STATUS)]);
        foreign["metadata"]["annotations"] = json!({"prism.dev/adopt": "argocd.shop"});
        let (_, seen) = pass(set(json!([{"name": "a"}]), json!({}), None), vec![foreign]).await;
        assert!(calls(&seen).contains(&("PATCH", format!("{APPS}/a").as_str())));
    }

    /// A set's own status write does not trigger its next pass; what a pass reads of the
    /// set does, and so does a RollingSync's progress (the next step goes on from it).
    #[test]
    fn only_what_a_pass_reads_of_a_set_triggers_it() {
        let object = |v: Value| -> DynamicObject { serde_json::from_value(v).unwrap() };
        let base = json!({"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "s", "namespace": "argocd", "uid": "u1", "generation": 2,
                         "annotations": {"a": "1"}},
            "spec": {"generators": []},
            "status": {"applications": {"created": 3}}});
        let print = |v: &Value| set_inputs(&object(v.clone()));
        let changed = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            print(&v) != print(&base)
        };
        assert!(!changed(
            &|v| v["status"]["applications"]["created"] = json!(0)
        ));
        assert!(!changed(&|v| v["metadata"]["resourceVersion"] = json!("9")));
        assert!(changed(&|v| v["metadata"]["generation"] = json!(3)));
        assert!(changed(&|v| v["metadata"]["annotations"]["a"] = json!("2")));
        assert!(changed(&|v| v["metadata"]["labels"] = json!({"l": "x"})));
        assert!(changed(&|v| v["metadata"]["finalizers"] = json!(["f"])));
        assert!(changed(&|v| v["metadata"]["uid"] = json!("u2")));
        assert!(changed(&|v| {
            v["metadata"]["deletionTimestamp"] = json!("2026-12-02T00:00:00Z")
        }));
        let mut rolling = base.clone();
        rolling["spec"]["strategy"] = json!({"type": "RollingSync"});
        let mut stepped = rolling.clone();
        stepped["status"]["rolloutStep"] = json!("2/3");
        assert_ne!(print(&rolling), print(&stepped));
        let mut counted = rolling.clone();
        counted["status"]["applications"]["created"] = json!(0);
        assert_eq!(print(&rolling), print(&counted));
    }

    /// The watch event of an own apply is no change, by its exact fingerprint; any
    /// other state of the Application is, and so is its deletion.
    #[test]
    fn own_writes_are_recognised_only_as_written() {
        let app = |namespace: &str, rev: &str| {
            CachedApplication::from_value(&json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": "a", "namespace": namespace},
                "spec": {"source": {"targetRevision": rev}}}))
            .unwrap()
        };
        let (ours, theirs) = (app("argocd", "main"), app("argocd", "hand-edited"));
        let seen = Seen::default();
        seen.record(&ours);
        assert_eq!(seen.observe(&ours, false), (false, false));
        assert_eq!(seen.observe(&theirs, false), (true, false));
        assert_eq!(seen.observe(&ours, false), (true, false), "a change back");
        seen.record(&app("other", "hand-edited"));
        assert_eq!(
            seen.observe(&theirs, false),
            (true, false),
            "another namespace"
        );
        seen.record(&ours);
        assert_eq!(seen.observe(&ours, true), (true, false), "deleted");
        assert_eq!(
            seen.observe(&ours, false),
            (true, false),
            "forgotten on delete"
        );
    }
}
