//! What the engine reads: repositories at a revision and the cluster list.
//!
//! The engine only sees these traits. The CLI implements them over git2 and files,
//! the controller over the cluster API and a shared git cache; [`memory`] holds an
//! in-memory implementation for tests and embedding.

use crate::cluster::Cluster;
use crate::params::ParamSet;
use std::sync::Arc;

/// Why a source could not be read. Messages say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No repository is known or found at that URL.
    #[error("repository not found: {0}")]
    RepoNotFound(String),
    /// The repository exists but the revision does not resolve.
    #[error("unknown revision {revision:?}: {detail}")]
    UnknownRevision {
        /// The revision as asked for.
        revision: String,
        /// What was tried.
        detail: String,
    },
    /// A path listed in the repository could not be read.
    #[error("cannot read {path}: {detail}")]
    ReadFile {
        /// Path inside the repository.
        path: String,
        /// The underlying error.
        detail: String,
    },
    /// Anything else (I/O, fetch failures), already described.
    #[error("{0}")]
    Other(String),
}

/// One repository at one resolved revision: a snapshot of its tree.
pub trait Repository: Send + Sync {
    /// The commit the revision resolved to, or `None` for a plain directory.
    fn commit(&self) -> Option<&str>;
    /// Every directory in the tree (relative, `/`-separated, sorted), dot-directories included.
    fn directories(&self) -> &[String];
    /// Every file in the tree (relative, `/`-separated, sorted).
    fn files(&self) -> &[String];
    /// The bytes of the file at `path` (one of [`Repository::files`]).
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError>;
}

/// Everything generators read.
pub trait Sources {
    /// The repository `repo_url` at `revision` (branch, tag, SHA, `HEAD`, or empty for the default).
    fn repository(
        &self,
        repo_url: &str,
        revision: &str,
    ) -> Result<Arc<dyn Repository>, SourceError>;
    /// The clusters Argo CD knows, from its cluster Secrets (the local cluster is not included;
    /// the clusters generator adds it as Argo does).
    fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError>;

    /// The branches and tags of `repo_url`, sorted by kind then name (for plugins'
    /// `list-refs`). Sources that cannot list refs say so.
    fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
        Err(SourceError::Other(format!(
            "listing the branches of {repo_url} is not supported by this source"
        )))
    }

    /// Resolves an `images` generator entry to its chosen tag and digest. Sources
    /// without a registry client refuse.
    fn image(&self, query: &ImageQuery) -> Result<ResolvedImage, String> {
        Err(format!(
            "no registry client is configured to resolve {}",
            query.name
        ))
    }

    /// The open pull requests a `pullRequest` generator's provider block names, after
    /// the provider's own label filter. Sources without an SCM client refuse.
    fn pull_requests(&self, query: &ScmQuery<'_>) -> Result<Vec<PullRequest>, ScmError> {
        Err(ScmError::Other(format!(
            "listing pull requests from {} is not available here yet",
            query.provider
        )))
    }

    /// The SCM provider an `scmProvider` generator's provider block names, with its
    /// credentials resolved. Sources without an SCM client refuse.
    fn scm_provider(
        &self,
        query: &ScmQuery<'_>,
    ) -> Result<Box<dyn ScmProviderService + '_>, ScmError> {
        Err(ScmError::Other(format!(
            "listing repositories from {} is not available here",
            query.provider
        )))
    }

    /// The ConfigMap a `clusterDecisionResource` generator names and the decision
    /// resources it selects. Sources that cannot read them refuse, saying how.
    fn decision_resources(&self, query: &DecisionQuery<'_>) -> Result<DecisionResources, String> {
        Err(format!(
            "no cluster decision resources are available here to read configMapRef {:?}; \
             pass --resources FILE (the ConfigMap and the resources, as `kubectl get -o yaml` prints them)",
            query.config_map
        ))
    }

    /// Runs the plugin a `plugin` generator names and returns its parameter sets.
    /// Sources without plugin definitions refuse, saying how to provide them.
    fn plugin(&self, call: &PluginCall<'_>) -> Result<Vec<ParamSet>, String> {
        Err(format!(
            "no plugin definitions are loaded, so plugin {:?} is unknown; pass --plugins FILE \
             (a list of name, path and sha256 of each .wasm plugin)",
            call.name
        ))
    }
}

/// One open pull (or merge) request, as every provider of the `pullRequest` generator
/// reports it (Argo CD's `pullrequest.PullRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PullRequest {
    /// Its number (GitHub's, GitLab's `iid`, …).
    pub number: i64,
    /// Its title.
    pub title: String,
    /// The head (source) branch.
    pub branch: String,
    /// The base (target) branch.
    pub target_branch: String,
    /// The head commit.
    pub head_sha: String,
    /// Who opened it (login).
    pub author: String,
    /// Its labels.
    pub labels: Vec<String>,
    /// The repository's name, for providers that list a whole project's (Azure DevOps);
    /// empty otherwise.
    #[serde(default)]
    pub repository: String,
}

/// What a `pullRequest` or `scmProvider` generator asks for: its provider's block as written.
#[derive(Debug)]
pub struct ScmQuery<'a> {
    /// `github`, `gitlab`, `gitea`, `bitbucketServer`, `bitbucket` or `azuredevops`.
    pub provider: &'a str,
    /// The provider's block (`owner`, `repo`, `api`, `tokenRef`, `labels`, …).
    pub config: &'a serde_json::Value,
    /// Spec path of the generator, for messages.
    pub path: &'a str,
}

/// Why an SCM provider could not answer (pull requests, repositories, branches).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScmError {
    /// The repository does not exist (or is not visible): skipped with
    /// `continueOnRepoNotFoundError`, an error otherwise.
    #[error("repository not found: {0}")]
    RepositoryNotFound(String),
    /// Anything else (auth, rate limit, server error, malformed answer), described.
    #[error("{0}")]
    Other(String),
}

/// A repository (and, once branches are listed, one of its branches) as an SCM
/// provider reports it (Argo CD's `scm_provider.Repository`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScmRepository {
    /// The organization, group, workspace or project key.
    pub organization: String,
    /// The repository's name.
    pub repository: String,
    /// The provider's id of the repository: a number, or a UUID string.
    pub repository_id: serde_json::Value,
    /// The clone URL for the generator's `cloneProtocol`.
    pub url: String,
    /// The branch: the default one until branches are listed.
    pub branch: String,
    /// The branch's head commit (empty until branches are listed).
    pub sha: String,
    /// Topics or labels.
    pub labels: Vec<String>,
}

/// What an `scmProvider` generator needs of a provider (Argo CD's
/// `SCMProviderService`): the organization's repositories, their branches, and whether a
/// path exists on a branch. The generator applies Argo's filters in between.
pub trait ScmProviderService {
    /// Every repository, with its default branch, URLs in `clone_protocol` (`ssh` when empty).
    fn list_repos(&self, clone_protocol: &str) -> Result<Vec<ScmRepository>, ScmError>;
    /// The repository's branches with their commits: the default branch only unless the
    /// provider block asks for `allBranches`.
    fn branches(&self, repo: &ScmRepository) -> Result<Vec<ScmRepository>, ScmError>;
    /// Whether `path` (a file or a directory) exists on the repository's branch.
    fn has_path(&self, repo: &ScmRepository, path: &str) -> Result<bool, ScmError>;
}

/// What a `clusterDecisionResource` generator asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionQuery<'a> {
    /// `configMapRef`: the ConfigMap (in Argo CD's namespace) describing the resource kind.
    pub config_map: &'a str,
    /// `name`: one resource by name, or
    pub name: Option<&'a str>,
    /// `labelSelector`: the resources whose labels match.
    pub label_selector: Option<&'a crate::selector::LabelSelector>,
}

/// The ConfigMap's `data` and the selected resources (whole objects).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecisionResources {
    /// `apiVersion`, `kind`, `statusListKey`, `matchKey`.
    pub config: std::collections::BTreeMap<String, String>,
    /// The decision resources, in name order.
    pub resources: Vec<serde_json::Value>,
}

/// A branch or tag and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GitRef {
    /// `branch` or `tag`.
    pub kind: &'static str,
    /// Short name (`main`, `feature/login`, `v1.2.0`).
    pub name: String,
    /// Commit SHA.
    pub sha: String,
}

/// What a `plugin` generator asks its plugin for (Argo's plugin request, plus Prism's fields).
#[derive(Debug)]
pub struct PluginCall<'a> {
    /// `configMapRef.name`: which plugin definition to run.
    pub name: &'a str,
    /// Spec path of the generator, for messages.
    pub path: &'a str,
    /// The request without `now` (the host adds the clock): `apiVersion`,
    /// `applicationSetName`, `input`, `parameters`.
    pub request: &'a serde_json::Value,
    /// The repository URLs the ApplicationSet names: the only ones a plugin with
    /// `repoAccess` may read.
    pub repositories: &'a [String],
}

/// One image and how to choose its tag.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageQuery {
    /// Parameter name: `images.<alias>.tag`.
    pub alias: String,
    /// `registry[:port]/path/name` (Docker Hub when no registry host is given).
    pub name: String,
    /// How the tag is chosen.
    #[serde(default)]
    pub strategy: Strategy,
    /// A semver range (`semver`), or the tag to follow (`digest`).
    #[serde(default)]
    pub constraint: String,
    /// `any` (default) or `regexp:<regex>`: tags considered at all.
    #[serde(default)]
    pub allow_tags: Option<String>,
    /// Globs of tags never considered (`*-debug`).
    #[serde(default)]
    pub ignore_tags: Vec<String>,
    /// `os/arch[/variant]` an image index must offer (newest-build reads that child).
    #[serde(default)]
    pub platforms: Vec<String>,
}

/// Argo CD Image Updater's update strategies.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The highest semantic version within `constraint`.
    #[default]
    Semver,
    /// The most recently built image (its config's `created`).
    NewestBuild,
    /// The last tag in byte order.
    Alphabetical,
    /// The current digest of the tag named by `constraint`.
    Digest,
}

/// A resolved image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The chosen tag.
    pub tag: String,
    /// Its manifest digest (`sha256:…`).
    pub digest: String,
}

/// Repository URLs compare as Argo CD compares them: case-insensitive, without a
/// trailing `/` or `.git`.
pub fn normalize_url(url: &str) -> String {
    let url = url.trim().to_lowercase();
    let url = url.trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url).to_string()
}

#[cfg(test)]
mod url_tests {
    use super::normalize_url;

    #[test]
    fn urls_compare_like_argo() {
        assert_eq!(
            normalize_url("https://GitHub.com/Org/Repo.git"),
            normalize_url("https://github.com/org/repo/")
        );
    }
}

pub mod memory {
    //! An in-memory [`Sources`](super::Sources): repositories as path → content maps.

    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    /// A repository snapshot held in memory.
    #[derive(Debug, Default, Clone)]
    pub struct MemoryRepository {
        files: BTreeMap<String, Vec<u8>>,
        file_list: Vec<String>,
        dir_list: Vec<String>,
    }

    impl MemoryRepository {
        /// A repository holding `files` (path, content).
        pub fn new<P: Into<String>, C: Into<Vec<u8>>>(
            files: impl IntoIterator<Item = (P, C)>,
        ) -> Self {
            let files: BTreeMap<String, Vec<u8>> = files
                .into_iter()
                .map(|(p, c)| (p.into(), c.into()))
                .collect();
            let mut dirs = BTreeSet::new();
            for path in files.keys() {
                let mut cur = path.as_str();
                while let Some((parent, _)) = cur.rsplit_once('/') {
                    dirs.insert(parent.to_string());
                    cur = parent;
                }
            }
            MemoryRepository {
                file_list: files.keys().cloned().collect(),
                dir_list: dirs.into_iter().collect(),
                files,
            }
        }
    }

    impl Repository for MemoryRepository {
        fn commit(&self) -> Option<&str> {
            None
        }
        fn directories(&self) -> &[String] {
            &self.dir_list
        }
        fn files(&self) -> &[String] {
            &self.file_list
        }
        fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| SourceError::ReadFile {
                    path: path.to_string(),
                    detail: "no such file".into(),
                })
        }
    }

    /// Sources held in memory: repositories by URL (any revision), their refs and a cluster list.
    #[derive(Default)]
    pub struct MemorySources {
        repos: HashMap<String, Arc<MemoryRepository>>,
        refs: HashMap<String, Vec<GitRef>>,
        clusters: Vec<Cluster>,
    }

    impl MemorySources {
        /// Empty sources.
        pub fn new() -> Self {
            Self::default()
        }
        /// Adds a repository served for every revision of `url`.
        pub fn with_repo(mut self, url: &str, repo: MemoryRepository) -> Self {
            self.repos.insert(url.to_string(), Arc::new(repo));
            self
        }
        /// Adds the branches and tags of `url`.
        pub fn with_refs(mut self, url: &str, refs: impl IntoIterator<Item = GitRef>) -> Self {
            let mut refs: Vec<GitRef> = refs.into_iter().collect();
            refs.sort();
            self.refs.insert(url.to_string(), refs);
            self
        }
        /// Adds clusters.
        pub fn with_clusters(mut self, clusters: impl IntoIterator<Item = Cluster>) -> Self {
            self.clusters.extend(clusters);
            self
        }
    }

    impl Sources for MemorySources {
        fn repository(
            &self,
            repo_url: &str,
            _revision: &str,
        ) -> Result<Arc<dyn Repository>, SourceError> {
            match self.repos.get(repo_url) {
                Some(r) => Ok(r.clone() as Arc<dyn Repository>),
                None => Err(SourceError::RepoNotFound(repo_url.to_string())),
            }
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            Ok(self.clusters.clone().into())
        }
        fn refs(&self, repo_url: &str) -> Result<Vec<GitRef>, SourceError> {
            self.refs
                .get(repo_url)
                .cloned()
                .ok_or_else(|| SourceError::RepoNotFound(repo_url.to_string()))
        }
    }
}
