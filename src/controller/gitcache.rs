//! The controller's shared git cache: one fetch per repository serves every
//! ApplicationSet that reads it, and one tree walk per (repository, revision) serves
//! every render until the next fetch.
//!
//! A repository is fetched again when its last fetch is older than the refresh
//! interval or a webhook marked it stale. Concurrent readers of one repository wait
//! for the fetch in progress instead of starting their own.

use crate::credentials::{Access, Credentials};
use crate::git::{GitSnapshot, GitSource};
use crate::repo_policy::RepoPolicy;
use prism_engine::generators::images::{ImageQuery, ResolvedImage};
use prism_engine::sources::normalize_url;
use prism_engine::{Cluster, GitRef, Repository, SourceError, Sources};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Fetched repositories shared by every reconcile.
pub struct GitCache {
    dir: PathBuf,
    refresh: Duration,
    /// By (normalized URL, the credential it is fetched with): readers with different
    /// credentials never share a fetch.
    repos: Mutex<HashMap<(String, String), Arc<Entry>>>,
    fetches: AtomicU64,
    /// Called with each fetch's duration (the metrics' histogram).
    on_fetch: Option<Box<dyn Fn(Duration) + Send + Sync>>,
    /// Repository credentials, replaced when Argo CD's repository Secrets change.
    credentials: RwLock<Arc<Credentials>>,
    /// Which repository URLs may be read at all.
    policy: RepoPolicy,
}

#[derive(Default)]
struct Entry {
    stale: AtomicBool,
    state: Mutex<Option<Fetched>>,
}

struct Fetched {
    at: Instant,
    source: Arc<GitSource>,
    snapshots: HashMap<String, Arc<GitSnapshot>>,
}

impl GitCache {
    /// A cache in `dir` that fetches a repository at most once per `refresh` unless marked stale.
    pub fn new(dir: PathBuf, refresh: Duration) -> GitCache {
        GitCache {
            dir,
            refresh,
            repos: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
            on_fetch: None,
            credentials: RwLock::default(),
            policy: RepoPolicy::remote_only(false),
        }
    }

    /// Reads only the repositories `policy` allows (remote https/ssh by default).
    pub fn with_policy(mut self, policy: RepoPolicy) -> GitCache {
        self.policy = policy;
        self
    }

    /// Uses `credentials` from the next fetch on.
    pub fn set_credentials(&self, credentials: Credentials) {
        if let Ok(mut c) = self.credentials.write() {
            *c = Arc::new(credentials);
        }
    }

    /// Reports every fetch's duration to `f`.
    pub fn on_fetch(mut self, f: impl Fn(Duration) + Send + Sync + 'static) -> GitCache {
        self.on_fetch = Some(Box::new(f));
        self
    }

    /// How many fetches ran.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Makes the next read of `repo_url` fetch (a push arrived), whatever credential
    /// reads it.
    pub fn mark_stale(&self, repo_url: &str) {
        let wanted = normalize_url(repo_url);
        if let Ok(repos) = self.repos.lock() {
            for ((url, _), e) in repos.iter() {
                if *url == wanted {
                    e.stale.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn entry(&self, repo_url: &str, identity: String) -> Result<Arc<Entry>, SourceError> {
        let mut repos = self
            .repos
            .lock()
            .map_err(|_| SourceError::Other("git cache lock poisoned".into()))?;
        Ok(repos
            .entry((normalize_url(repo_url), identity))
            .or_default()
            .clone())
    }

    fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Runs `f` on the fresh fetch of `repo_url` with the credential `access` may use
    /// (fetching first when due). A URL the policy refuses gets no cache entry, no
    /// directory and no git run.
    fn with_fetched<T>(
        &self,
        repo_url: &str,
        access: &Access,
        f: impl FnOnce(&mut Fetched) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        self.policy.check(repo_url).map_err(SourceError::Other)?;
        let credentials = self.credentials();
        let entry = self.entry(repo_url, credentials.identity(repo_url, access))?;
        let mut state = entry
            .state
            .lock()
            .map_err(|_| SourceError::Other("git cache entry lock poisoned".into()))?;
        let due = match &*state {
            None => true,
            Some(f) => f.at.elapsed() >= self.refresh || entry.stale.load(Ordering::Relaxed),
        };
        if due {
            entry.stale.store(false, Ordering::Relaxed);
            let started = Instant::now();
            let fetched = GitSource::fetch_into_cache(
                repo_url,
                &self.dir,
                &credentials,
                access,
                &self.policy,
            );
            self.fetches.fetch_add(1, Ordering::Relaxed);
            if let Some(cb) = &self.on_fetch {
                cb(started.elapsed());
            }
            match fetched {
                Ok(source) => {
                    *state = Some(Fetched {
                        at: Instant::now(),
                        source: Arc::new(source),
                        snapshots: HashMap::new(),
                    })
                }
                // A failed fetch fails this render (which then changes nothing) and drops
                // the previous fetch, so no render silently reads stale data.
                Err(e) => {
                    *state = None;
                    return Err(e);
                }
            }
        }
        match state.as_mut() {
            Some(fetched) => f(fetched),
            None => Err(SourceError::Other(format!("{repo_url}: not fetched"))),
        }
    }

    /// The tree of `repo_url` at `revision`, from the current fetch.
    pub fn snapshot(
        &self,
        repo_url: &str,
        revision: &str,
        access: &Access,
    ) -> Result<Arc<GitSnapshot>, SourceError> {
        self.with_fetched(repo_url, access, |fetched| {
            if let Some(s) = fetched.snapshots.get(revision) {
                return Ok(s.clone());
            }
            let snapshot = Arc::new(fetched.source.snapshot(revision)?);
            fetched
                .snapshots
                .insert(revision.to_string(), snapshot.clone());
            Ok(snapshot)
        })
    }

    /// Branches and tags of `repo_url`, from the current fetch.
    pub fn refs(&self, repo_url: &str, access: &Access) -> Result<Vec<GitRef>, SourceError> {
        self.with_fetched(repo_url, access, |fetched| fetched.source.refs())
    }
}

/// Who reads, for one ApplicationSet's render: which credentials it may use, and which
/// repositories its AppProject allows (for a set outside the Argo CD namespace).
#[derive(Debug, Clone, Default)]
pub struct Reader {
    /// The credentials it may use.
    pub access: Access,
    /// `(project, sourceRepos)` of its AppProject, when that restricts it.
    pub source_repos: Option<(String, Vec<String>)>,
}

impl Reader {
    /// Whether the AppProject allows `repo_url`, as Argo CD's `IsSourcePermitted`:
    /// normalized URLs, `*` globs, `!` patterns that deny.
    pub fn permits(&self, repo_url: &str) -> Result<(), SourceError> {
        let Some((project, patterns)) = &self.source_repos else {
            return Ok(());
        };
        let url = normalize_url(repo_url);
        let mut matched = false;
        for pattern in patterns {
            match pattern.strip_prefix('!') {
                Some(deny) if wildcard(&normalize_url(deny), &url) => {
                    matched = false;
                    break;
                }
                Some(_) => {}
                None => matched |= pattern == "*" || wildcard(&normalize_url(pattern), &url),
            }
        }
        if matched {
            Ok(())
        } else {
            Err(SourceError::Other(format!(
                "repository {repo_url} is not permitted by AppProject {project}'s sourceRepos; \
                 an ApplicationSet outside the Argo CD namespace reads only those"
            )))
        }
    }
}

/// `*` (any run, `/` included) and `?` (one character) over the whole text; linear in
/// practice, and the URL policy bounds both sides.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// What one reconcile's render reads: the shared git cache, the cluster list as the
/// cluster Secrets say now, and the registry client.
pub struct ControllerSources {
    /// The shared git cache.
    pub git: Arc<GitCache>,
    /// Clusters from Argo CD's cluster Secrets.
    pub clusters: Arc<[Cluster]>,
    /// The registry client for `images` generators.
    pub registry: Option<Arc<crate::registry::RegistryClient>>,
    /// The set that reads: its credentials and allowed repositories.
    pub reader: Reader,
    /// The SCM client and the tokens the set's `pullRequest` generators name.
    pub scm: (Arc<crate::scm::ScmClient>, Arc<crate::scm::ScmTokens>),
    /// The decision resources the set's `clusterDecisionResource` generators read, read
    /// before the render (or why not).
    pub decisions: Decisions,
}

/// Decision resources by what a generator asks for.
pub type Decisions = BTreeMap<
    prism_engine::generators::DecisionSource,
    Result<prism_engine::sources::DecisionResources, String>,
>;

impl Sources for ControllerSources {
    fn repository(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<Arc<dyn Repository>, SourceError> {
        self.reader.permits(repo_url)?;
        Ok(self.git.snapshot(repo_url, revision, &self.reader.access)?)
    }

    fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
        Ok(self.clusters.clone())
    }

    fn pull_requests(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<Vec<prism_engine::sources::PullRequest>, prism_engine::sources::ScmError> {
        self.scm.0.pull_requests(query, &self.scm.1)
    }

    fn decision_resources(
        &self,
        query: &prism_engine::sources::DecisionQuery<'_>,
    ) -> Result<prism_engine::sources::DecisionResources, String> {
        let key = prism_engine::generators::DecisionSource {
            config_map: query.config_map.to_string(),
            name: query.name.map(str::to_string),
            label_selector: query.label_selector.map(|s| s.to_query()),
        };
        self.decisions.get(&key).cloned().unwrap_or_else(|| {
            Err(
                "not read before the render (a templated configMapRef, name or labelSelector \
                 cannot be read by the controller)"
                    .into(),
            )
        })
    }

    fn scm_provider(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<
        Box<dyn prism_engine::sources::ScmProviderService + '_>,
        prism_engine::sources::ScmError,
    > {
        Ok(Box::new(self.scm.0.scm_provider(query, &self.scm.1)?))
    }

    fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        self.reader.permits(repo_url)?;
        self.git.refs(repo_url, &self.reader.access)
    }

    fn image(&self, query: &ImageQuery) -> Result<ResolvedImage, String> {
        crate::registry::resolve(self.registry.as_deref(), query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real repository made with git2, fetched by path as a remote would be.
    fn origin(dir: &std::path::Path, file: &str) -> git2::Repository {
        let repo = git2::Repository::init(dir).unwrap();
        commit(&repo, file);
        repo
    }

    fn commit(repo: &git2::Repository, file: &str) {
        let root = repo.workdir().unwrap().to_path_buf();
        std::fs::write(root.join(file), "x: 1\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(std::path::Path::new(file)).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, file, &tree, &parents)
            .unwrap();
    }

    #[test]
    fn one_fetch_serves_every_reader_until_stale_or_old() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = origin(&tmp.path().join("origin"), "a.yaml");
        let url = tmp.path().join("origin").display().to_string();
        let cache = GitCache::new(tmp.path().join("cache"), Duration::from_secs(3600))
            .with_policy(RepoPolicy::local());
        // Many ApplicationSets reading the same repository, in any URL spelling.
        for spelling in [url.clone(), format!("{url}/")] {
            let s = cache.snapshot(&spelling, "HEAD", &Access::Any).unwrap();
            assert_eq!(s.files(), ["a.yaml"]);
        }
        cache.refs(&url, &Access::Any).unwrap();
        assert_eq!(cache.fetches(), 1);

        commit(&repo, "b.yaml");
        assert_eq!(
            cache.snapshot(&url, "HEAD", &Access::Any).unwrap().files(),
            ["a.yaml"]
        );
        cache.mark_stale(&url);
        assert_eq!(
            cache.snapshot(&url, "HEAD", &Access::Any).unwrap().files(),
            ["a.yaml", "b.yaml"]
        );
        assert_eq!(cache.fetches(), 2);

        let always = GitCache::new(tmp.path().join("cache2"), Duration::ZERO)
            .with_policy(RepoPolicy::local());
        always.snapshot(&url, "HEAD", &Access::Any).unwrap();
        always.snapshot(&url, "HEAD", &Access::Any).unwrap();
        assert_eq!(always.fetches(), 2);
    }

    #[test]
    fn a_failed_fetch_is_an_error_naming_the_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = GitCache::new(tmp.path().join("cache"), Duration::from_secs(60))
            .with_policy(RepoPolicy::local());
        let missing = tmp.path().join("nowhere").display().to_string();
        let e = match cache.snapshot(&missing, "HEAD", &Access::Any) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("fetched a repository that does not exist"),
        };
        assert!(e.contains(&missing), "{e}");
    }

    /// The controller's default policy refuses every local or helper form before any
    /// fetch: no git runs (the fetch counter stays at 0), no cache directory appears, and
    /// the command a helper URL carries never runs.
    #[test]
    fn refused_urls_run_no_git_and_create_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cache_dir = tmp.path().join("cache");
        let cache = GitCache::new(cache_dir.clone(), Duration::from_secs(60));
        let pwned = tmp.path().join("pwned");
        let other = cache_dir.join("github.com_org_private");
        for (url, rule) in [
            ("file:///etc".to_string(), "file:// reads the local machine"),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
                "it is a local path",
            ),
            (other.display().to_string(), "it is a local path"),
            (
                format!("ext::sh -c touch% {}", pwned.display()),
                "ext:: is a git transport helper",
            ),
            ("-uexploit".to_string(), "it starts with '-'"),
            (
                format!("--upload-pack=touch {}", pwned.display()),
                "it starts with '-'",
            ),
            ("fd::17".to_string(), "fd:: is a git transport helper"),
        ] {
            let e = match cache.snapshot(&url, "HEAD", &Access::Any) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{url} was read"),
            };
            assert!(e.contains(&format!("{url:?} is refused: {rule}")), "{e}");
            assert!(cache.refs(&url, &Access::Any).is_err());
        }
        assert_eq!(cache.fetches(), 0);
        assert!(
            !cache_dir.exists(),
            "a refused URL created the cache directory"
        );
        assert!(!pwned.exists());
    }

    /// Argo CD's `IsSourcePermitted` (pkg/apis/application/v1alpha1/app_project_types.go):
    /// `*` any repository, globs over normalized URLs, `!` patterns deny.
    #[test]
    fn an_app_project_permits_its_source_repos_only() {
        let reader = |repos: &[&str]| Reader {
            access: Access::Any,
            source_repos: Some(("team".into(), repos.iter().map(|r| r.to_string()).collect())),
        };
        let ok = |repos: &[&str], url: &str| reader(repos).permits(url).is_ok();
        assert!(ok(&["*"], "https://git.example/any/thing.git"));
        assert!(ok(
            &["https://git.example/team/*"],
            "https://git.example/team/app.git"
        ));
        assert!(ok(
            &["https://git.example/team/*"],
            "https://GIT.example/team/app"
        ));
        assert!(!ok(
            &["https://git.example/team/*"],
            "https://git.example/other/app.git"
        ));
        assert!(!ok(
            &["https://git.example/*", "!https://git.example/secret/*"],
            "https://git.example/secret/keys.git"
        ));
        assert!(ok(
            &["https://git.example/*", "!https://git.example/secret/*"],
            "https://git.example/team/app.git"
        ));
        assert!(!ok(&[], "https://git.example/team/app.git"));
        let e = reader(&["https://git.example/team/*"])
            .permits("https://git.example/other/app.git")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not permitted by AppProject team's sourceRepos"),
            "{e}"
        );
        assert!(Reader::default().permits("https://anything/x.git").is_ok());
    }
}
