//! The controller's shared git cache: one fetch per repository serves every
//! ApplicationSet that reads it, and one tree walk per (repository, revision) serves
//! every render until the next fetch.
//!
//! A repository is fetched again when its last fetch is older than the refresh
//! interval or a webhook marked it stale. Concurrent readers of one repository wait
//! for the fetch in progress instead of starting their own.

use crate::credentials::Credentials;
use crate::git::{GitSnapshot, GitSource};
use crate::repo_policy::RepoPolicy;
use prism_engine::generators::images::{ImageQuery, ResolvedImage};
use prism_engine::sources::normalize_url;
use prism_engine::{Cluster, GitRef, Repository, SourceError, Sources};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Fetched repositories shared by every reconcile.
pub struct GitCache {
    dir: PathBuf,
    refresh: Duration,
    repos: Mutex<HashMap<String, Arc<Entry>>>,
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

    /// Makes the next read of `repo_url` fetch (a push arrived).
    pub fn mark_stale(&self, repo_url: &str) {
        if let Ok(repos) = self.repos.lock() {
            if let Some(e) = repos.get(&normalize_url(repo_url)) {
                e.stale.store(true, Ordering::Relaxed);
            }
        }
    }

    fn entry(&self, repo_url: &str) -> Result<Arc<Entry>, SourceError> {
        let mut repos = self
            .repos
            .lock()
            .map_err(|_| SourceError::Other("git cache lock poisoned".into()))?;
        Ok(repos.entry(normalize_url(repo_url)).or_default().clone())
    }

    /// Runs `f` on the fresh fetch of `repo_url` (fetching first when due). A URL the
    /// policy refuses gets no cache entry, no directory and no git run.
    fn with_fetched<T>(
        &self,
        repo_url: &str,
        f: impl FnOnce(&mut Fetched) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        self.policy.check(repo_url).map_err(SourceError::Other)?;
        let entry = self.entry(repo_url)?;
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
            let credentials = self
                .credentials
                .read()
                .map(|c| c.clone())
                .unwrap_or_default();
            let fetched =
                GitSource::fetch_into_cache(repo_url, &self.dir, &credentials, &self.policy);
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
    ) -> Result<Arc<GitSnapshot>, SourceError> {
        self.with_fetched(repo_url, |fetched| {
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
    pub fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        self.with_fetched(repo_url, |fetched| fetched.source.refs())
    }
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
}

impl Sources for ControllerSources {
    fn repository(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<Arc<dyn Repository>, SourceError> {
        Ok(self.git.snapshot(repo_url, revision)?)
    }

    fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
        Ok(self.clusters.clone())
    }

    fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        self.git.refs(repo_url)
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
            let s = cache.snapshot(&spelling, "HEAD").unwrap();
            assert_eq!(s.files(), ["a.yaml"]);
        }
        cache.refs(&url).unwrap();
        assert_eq!(cache.fetches(), 1);

        commit(&repo, "b.yaml");
        assert_eq!(cache.snapshot(&url, "HEAD").unwrap().files(), ["a.yaml"]);
        cache.mark_stale(&url);
        assert_eq!(
            cache.snapshot(&url, "HEAD").unwrap().files(),
            ["a.yaml", "b.yaml"]
        );
        assert_eq!(cache.fetches(), 2);

        let always = GitCache::new(tmp.path().join("cache2"), Duration::ZERO)
            .with_policy(RepoPolicy::local());
        always.snapshot(&url, "HEAD").unwrap();
        always.snapshot(&url, "HEAD").unwrap();
        assert_eq!(always.fetches(), 2);
    }

    #[test]
    fn a_failed_fetch_is_an_error_naming_the_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = GitCache::new(tmp.path().join("cache"), Duration::from_secs(60))
            .with_policy(RepoPolicy::local());
        let missing = tmp.path().join("nowhere").display().to_string();
        let e = match cache.snapshot(&missing, "HEAD") {
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
            let e = match cache.snapshot(&url, "HEAD") {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{url} was read"),
            };
            assert!(e.contains(&format!("{url:?} is refused: {rule}")), "{e}");
            assert!(cache.refs(&url).is_err());
        }
        assert_eq!(cache.fetches(), 0);
        assert!(
            !cache_dir.exists(),
            "a refused URL created the cache directory"
        );
        assert!(!pwned.exists());
    }
}
