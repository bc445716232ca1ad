//! The CLI's [`Sources`]: repositories from local paths, `--repo` mappings or a clone
//! cache, and clusters from Argo CD cluster Secret files.

use crate::git::GitSource;
use crate::workdir::DirSnapshot;
use prism_engine::generators::images::{ImageQuery, ResolvedImage};
use prism_engine::sources::normalize_url;
use prism_engine::{Cluster, GitRef, Repository, SourceError, Sources};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Which revision of each repository to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RevisionChoice {
    /// The revision each generator names (normal rendering).
    #[default]
    Spec,
    /// This revision for every repository (`prism diff --from/--to`).
    At(String),
    /// The working tree of local repositories, committed or not; remote ones at the spec's revision.
    WorkTree,
}

/// Sources for one CLI run. Every repository is opened, and every revision resolved
/// and listed, at most once per run.
pub struct LocalSources {
    revision: RevisionChoice,
    repo_map: Vec<(String, PathBuf)>,
    cache_dir: PathBuf,
    clusters: Arc<[Cluster]>,
    git: Mutex<HashMap<String, Arc<GitSource>>>,
    snapshots: Mutex<HashMap<(String, String), Arc<dyn Repository>>>,
    registry: Option<Arc<crate::registry::RegistryClient>>,
    credentials: Arc<crate::credentials::Credentials>,
    policy: crate::repo_policy::RepoPolicy,
    scm: (Arc<crate::scm::ScmClient>, Arc<crate::scm::ScmTokens>),
    /// `--resources`: ConfigMaps and decision resources, when given.
    resources: Option<Arc<Vec<serde_json::Value>>>,
}

impl LocalSources {
    /// Sources with `--repo URL=PATH` mappings, a clone cache and a cluster list.
    pub fn new(
        repo_map: Vec<(String, PathBuf)>,
        cache_dir: PathBuf,
        clusters: Vec<Cluster>,
    ) -> Self {
        LocalSources {
            revision: RevisionChoice::Spec,
            repo_map,
            cache_dir,
            clusters: clusters.into(),
            git: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(HashMap::new()),
            registry: None,
            credentials: Arc::default(),
            policy: crate::repo_policy::RepoPolicy::local(),
            scm: Default::default(),
            resources: None,
        }
    }

    /// Lists pull requests with this client and these `tokenRef` tokens (`--scm-creds`).
    pub fn with_scm(
        mut self,
        client: Arc<crate::scm::ScmClient>,
        tokens: Arc<crate::scm::ScmTokens>,
    ) -> Self {
        self.scm = (client, tokens);
        self
    }

    /// Reads `clusterDecisionResource` inputs from these objects (`--resources`).
    pub fn with_resources(mut self, objects: Arc<Vec<serde_json::Value>>) -> Self {
        self.resources = Some(objects);
        self
    }

    /// Reads only the repository URLs `policy` allows (`--repo` mappings always: the
    /// person running the command chose them).
    pub fn with_policy(mut self, policy: crate::repo_policy::RepoPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Fetches remote repositories with these credentials (`--repo-creds`).
    pub fn with_credentials(mut self, credentials: Arc<crate::credentials::Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Resolves `images` generators with this registry client.
    pub fn with_registry(mut self, client: Arc<crate::registry::RegistryClient>) -> Self {
        self.registry = Some(client);
        self
    }

    /// Reads every repository at `choice` instead of the generators' own revisions.
    pub fn with_revision(mut self, choice: RevisionChoice) -> Self {
        self.revision = choice;
        self
    }

    /// Where `repo_url` lives: a local path, or `None` for a remote to fetch.
    fn locate(&self, repo_url: &str) -> Result<Option<PathBuf>, SourceError> {
        let wanted = normalize_url(repo_url);
        if let Some((_, path)) = self
            .repo_map
            .iter()
            .find(|(url, _)| normalize_url(url) == wanted)
        {
            return Ok(Some(path.clone()));
        }
        self.policy.check(repo_url).map_err(SourceError::Other)?;
        if let Some(path) = repo_url.strip_prefix("file://") {
            return Ok(Some(PathBuf::from(path)));
        }
        let remote = ["https://", "http://", "ssh://", "git://"]
            .iter()
            .any(|s| repo_url.starts_with(s))
            || (repo_url.contains('@') && repo_url.contains(':') && !repo_url.contains("://"));
        if remote {
            return Ok(None);
        }
        let path = Path::new(repo_url);
        if path.exists() {
            return Ok(Some(path.to_path_buf()));
        }
        Err(SourceError::RepoNotFound(format!(
            "{repo_url} is neither a local path nor a git URL; map it with --repo {repo_url}=PATH"
        )))
    }

    fn open(&self, repo_url: &str, revision: &str) -> Result<Arc<dyn Repository>, SourceError> {
        match self.source(repo_url, revision)? {
            Opened::Git(git) => Ok(Arc::new(git.snapshot(revision)?)),
            Opened::Dir(dir) => Ok(Arc::new(dir)),
        }
    }

    /// The git repository behind `repo_url` (opened or fetched once per run), or a plain directory.
    fn source(&self, repo_url: &str, revision: &str) -> Result<Opened, SourceError> {
        let location = self.locate(repo_url)?;
        let key = match &location {
            Some(path) => path.display().to_string(),
            None => repo_url.to_string(),
        };
        let existing = self.git.lock().ok().and_then(|g| g.get(&key).cloned());
        let git = match existing {
            Some(g) => g,
            None => {
                let source = match location {
                    Some(path) => {
                        if !path.exists() {
                            return Err(SourceError::RepoNotFound(format!(
                                "{repo_url}: {} does not exist; check the path or the --repo mapping",
                                path.display()
                            )));
                        }
                        match GitSource::open(&path)? {
                            Some(g) => g,
                            None if path.is_dir() => {
                                if !revision.is_empty() && revision != "HEAD" {
                                    tracing::warn!(
                                        "{repo_url}: {} is not a git repository; reading the directory as it is, \
                                         not revision {revision:?}",
                                        path.display()
                                    );
                                }
                                return Ok(Opened::Dir(DirSnapshot::open(&path)?));
                            }
                            None => {
                                return Err(SourceError::RepoNotFound(format!(
                                    "{repo_url}: {} is neither a git repository nor a directory",
                                    path.display()
                                )))
                            }
                        }
                    }
                    None => GitSource::fetch_into_cache(
                        repo_url,
                        &self.cache_dir,
                        &self.credentials,
                        &crate::credentials::Access::Any,
                        &self.policy,
                    )?,
                };
                let source = Arc::new(source);
                if let Ok(mut g) = self.git.lock() {
                    g.insert(key, source.clone());
                }
                source
            }
        };
        Ok(Opened::Git(git))
    }
}

impl LocalSources {
    /// The SCM client and the credentials the specs may name.
    fn scm(&self) -> (&crate::scm::ScmClient, &crate::scm::ScmTokens) {
        (&self.scm.0, &self.scm.1)
    }
}

impl Sources for LocalSources {
    fn pull_requests(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<Vec<prism_engine::sources::PullRequest>, prism_engine::sources::ScmError> {
        let (client, tokens) = self.scm();
        client.pull_requests(query, tokens)
    }

    fn decision_resources(
        &self,
        query: &prism_engine::sources::DecisionQuery<'_>,
    ) -> Result<prism_engine::sources::DecisionResources, String> {
        match &self.resources {
            Some(objects) => crate::decisions::select(objects, query),
            None => Err(format!(
                "configMapRef {:?} cannot be read here: pass --resources FILE with the ConfigMap \
                 and the decision resources (`kubectl get … -o yaml`)",
                query.config_map
            )),
        }
    }

    fn scm_provider(
        &self,
        query: &prism_engine::sources::ScmQuery<'_>,
    ) -> Result<
        Box<dyn prism_engine::sources::ScmProviderService + '_>,
        prism_engine::sources::ScmError,
    > {
        let (client, tokens) = self.scm();
        Ok(Box::new(client.scm_provider(query, tokens)?))
    }

    fn repository(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<Arc<dyn Repository>, SourceError> {
        let worktree = match (&self.revision, self.locate(repo_url)) {
            (RevisionChoice::WorkTree, Ok(Some(path))) if path.is_dir() => Some(path),
            _ => None,
        };
        let revision = match &self.revision {
            RevisionChoice::At(r) => r.as_str(),
            _ if worktree.is_some() => "\0worktree",
            _ => revision,
        };
        let key = (repo_url.to_string(), revision.to_string());
        if let Some(found) = self
            .snapshots
            .lock()
            .ok()
            .and_then(|s| s.get(&key).cloned())
        {
            return Ok(found);
        }
        let repo: Arc<dyn Repository> = match worktree {
            Some(path) => Arc::new(DirSnapshot::open(&path)?),
            None => self.open(repo_url, revision)?,
        };
        if let Ok(mut s) = self.snapshots.lock() {
            s.insert(key, repo.clone());
        }
        Ok(repo)
    }

    fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
        Ok(self.clusters.clone())
    }

    fn image(&self, query: &ImageQuery) -> Result<ResolvedImage, String> {
        crate::registry::resolve(self.registry.as_deref(), query)
    }

    fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        match self.source(repo_url, "")? {
            Opened::Git(git) => git.refs(),
            Opened::Dir(_) => Err(SourceError::Other(format!(
                "{repo_url} is a plain directory, not a git repository: it has no branches"
            ))),
        }
    }
}

/// A repository location, opened.
enum Opened {
    Git(Arc<GitSource>),
    Dir(DirSnapshot),
}
