//! `scmProvider`: one parameter set per repository (or per branch, with `allBranches`)
//! of an organization on an SCM provider: every service's repository, found instead of
//! listed by hand.
//!
//! The spec is Argo CD 3.x's, with its providers `github`, `gitlab`, `gitea`,
//! `bitbucketServer`, `bitbucket` (Cloud) and `azureDevOps`; `awsCodeCommit` is refused
//! (it needs AWS credentials Prism does not hold). Talking to the provider is the front
//! end's job ([`Sources::scm_provider`]); this file runs Argo's
//! `scm_provider.ListRepos` (`applicationset/services/scm_provider/utils.go`) over it:
//! - a filter is a *repository* filter when it has only `repositoryMatch` and/or
//!   `labelMatch`, a *branch* filter when it has `branchMatch`, `pathsExist` or
//!   `pathsDoNotExist`, and is ignored when empty;
//! - repositories are kept when any repository filter matches (all when there is
//!   none); then their branches are listed, and a branch is kept when any branch
//!   filter matches (all when there is none). Inside a filter every field must match;
//! - `labelMatch` matches when any label (topic) matches; paths are trimmed of a
//!   trailing `/` and looked up on the branch.
//!
//! Parameters are Argo's (`applicationset/generators/scm_provider.go`): `organization`,
//! `repository`, `repository_id` (the provider's number or UUID, as it gives it),
//! `url`, `branch`, `branchNormalized`, `sha`, `short_sha` (8), `short_sha_7`, and
//! `labels` joined with commas; then the templated `values`.
//!
//! [`Sources::scm_provider`]: prism_core::sources::Sources::scm_provider

use super::pull_request::{BasicAuth, BearerToken, ConfigMapKeyRef, SecretRef};
use super::{append_values, Context};
use prism_core::error::{Error, ErrorKind};
use prism_core::limits::Limit;
use prism_core::params::{normalize, ParamSet};
use prism_core::sources::{ScmError, ScmProviderService, ScmQuery, ScmRepository};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Most path lookups (one provider request each) one generator's filters may make.
pub const MAX_PATH_CHECKS: usize = 10_000;

/// How often a set with an `scmProvider` generator is rendered again (Argo's default).
pub const SCM_PROVIDER_REQUEUE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The `scmProvider` generator's spec: exactly one provider, plus filters.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScmProviderGenerator {
    /// GitHub or GitHub Enterprise.
    #[serde(default)]
    pub github: Option<GithubScm>,
    /// A GitLab group.
    #[serde(default)]
    pub gitlab: Option<GitlabScm>,
    /// A Bitbucket Cloud workspace.
    #[serde(default)]
    pub bitbucket: Option<BitbucketScm>,
    /// A Bitbucket Server (Data Center) project.
    #[serde(default)]
    pub bitbucket_server: Option<BitbucketServerScm>,
    /// A Gitea organization or user.
    #[serde(default)]
    pub gitea: Option<GiteaScm>,
    /// An Azure DevOps team project.
    #[serde(default)]
    pub azure_dev_ops: Option<AzureDevOpsScm>,
    /// AWS CodeCommit: refused (Prism holds no AWS credentials).
    #[serde(default)]
    pub aws_code_commit: Option<Value>,
    /// Which repositories and branches to keep (see the module doc).
    #[serde(default)]
    pub filters: Vec<ScmProviderFilter>,
    /// `ssh` (default) or `https`: which clone URL `url` is.
    #[serde(default)]
    pub clone_protocol: Option<String>,
    /// How often to list again (default 1800).
    #[serde(default)]
    pub requeue_after_seconds: Option<i64>,
    /// Extra parameters, templated with the repository's.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

/// `scmProvider.github`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubScm {
    /// The organization (or user).
    pub organization: String,
    /// GitHub Enterprise API URL (default `https://api.github.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The token's Secret (default: none, or `GITHUB_TOKEN` on the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// A GitHub App's Secret (app id, installation id, private key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret_name: Option<String>,
    /// Every branch, not only the default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
    /// Leave archived repositories out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_archived_repos: bool,
}

/// `scmProvider.gitlab`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitlabScm {
    /// The group (id or full path).
    pub group: String,
    /// Include the subgroups' projects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_subgroups: bool,
    /// API URL (default `https://gitlab.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The token's Secret (default: none, or `GITLAB_TOKEN` on the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// Every branch, not only the default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Include projects shared with the group (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_shared_projects: Option<bool>,
    /// Only projects with this topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_ref: Option<ConfigMapKeyRef>,
    /// Only archived projects (GitLab's `archived=true`), as Argo asks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_archived_repos: bool,
}

/// `scmProvider.bitbucket` (Cloud).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BitbucketScm {
    /// The workspace.
    pub owner: String,
    /// The user of the app password.
    pub user: String,
    /// The app password's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_password_ref: Option<SecretRef>,
    /// Every branch, not only the main one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
}

/// `scmProvider.bitbucketServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BitbucketServerScm {
    /// The project key.
    pub project: String,
    /// The server's URL.
    pub api: String,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// Every branch, not only the default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<BearerToken>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_ref: Option<ConfigMapKeyRef>,
}

/// `scmProvider.gitea`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GiteaScm {
    /// The organization or user.
    pub owner: String,
    /// The server's URL.
    pub api: String,
    /// The token's Secret (default: none, or `GITEA_TOKEN` on the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// Every branch, not only the default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Leave archived repositories out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exclude_archived_repos: bool,
}

/// `scmProvider.azureDevOps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDevOpsScm {
    /// The organization.
    pub organization: String,
    /// API URL (default `https://dev.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The team project.
    pub team_project: String,
    /// The personal access token's Secret (required, as Argo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_ref: Option<SecretRef>,
    /// Every branch, not only the default one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_branches: bool,
}

/// One `filters[]` entry (regular expressions in Go's RE2 syntax; paths on the branch).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScmProviderFilter {
    /// Over the repository's name.
    #[serde(default)]
    pub repository_match: Option<String>,
    /// Paths that must all exist on the branch.
    #[serde(default)]
    pub paths_exist: Option<Vec<String>>,
    /// Paths none of which may exist on the branch.
    #[serde(default)]
    pub paths_do_not_exist: Option<Vec<String>>,
    /// Over the repository's labels (topics): any may match.
    #[serde(default)]
    pub label_match: Option<String>,
    /// Over the branch's name.
    #[serde(default)]
    pub branch_match: Option<String>,
}

/// When a filter applies: Argo's `FilterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Empty: applies nowhere.
    None,
    Repository,
    Branch,
}

/// A filter compiled.
struct Compiled {
    repository: Option<regex::Regex>,
    label: Option<regex::Regex>,
    branch: Option<regex::Regex>,
    paths_exist: Vec<String>,
    paths_do_not_exist: Vec<String>,
    stage: Stage,
}

impl Compiled {
    /// Argo's `matchFilter`: every given field must match; paths are asked of the provider.
    fn matches(
        &self,
        provider: &dyn ScmProviderService,
        repo: &ScmRepository,
        checks: &std::cell::Cell<usize>,
    ) -> Result<bool, ScmError> {
        // Each path is a request to the provider: a spec may not ask for unboundedly many.
        let has_path = |path: &str| {
            checks.set(checks.get() + 1);
            if checks.get() > MAX_PATH_CHECKS {
                return Err(ScmError::Other(format!(
                    "more than {MAX_PATH_CHECKS} path checks (pathsExist, pathsDoNotExist \
                     over every branch); narrow the filters with repositoryMatch or branchMatch"
                )));
            }
            provider.has_path(repo, path.trim_end_matches('/'))
        };
        if self
            .repository
            .as_ref()
            .is_some_and(|r| !r.is_match(&repo.repository))
            || self
                .branch
                .as_ref()
                .is_some_and(|r| !r.is_match(&repo.branch))
            || self
                .label
                .as_ref()
                .is_some_and(|r| !repo.labels.iter().any(|l| r.is_match(l)))
        {
            return Ok(false);
        }
        for path in &self.paths_exist {
            if !has_path(path)? {
                return Ok(false);
            }
        }
        for path in &self.paths_do_not_exist {
            if has_path(path)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The provider keys, in the order messages list them.
const PROVIDERS: &str = "github, gitlab, gitea, bitbucketServer, bitbucket or azureDevOps";

impl ScmProviderGenerator {
    /// The providers given (one, when the spec is right): name and block.
    fn provider(&self) -> Vec<(&'static str, Value)> {
        use super::provider_block as block;
        super::given_providers([
            ("github", block(&self.github)),
            ("gitlab", block(&self.gitlab)),
            ("gitea", block(&self.gitea)),
            ("bitbucketServer", block(&self.bitbucket_server)),
            ("bitbucket", block(&self.bitbucket)),
            ("azureDevOps", block(&self.azure_dev_ops)),
            ("awsCodeCommit", self.aws_code_commit.clone()),
        ])
    }

    fn compile(&self, path: &str, limit: usize) -> Result<Vec<Compiled>, Error> {
        let one = |pattern: &Option<String>, at: String| {
            super::filter_regex(pattern.as_deref(), at, limit)
        };
        self.filters
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let at = |field: &str| format!("{path}.filters[{i}].{field}");
                // Argo sets the type field by field, the last one given winning.
                let stage = if f.branch_match.is_some()
                    || f.paths_exist.is_some()
                    || f.paths_do_not_exist.is_some()
                {
                    Stage::Branch
                } else if f.repository_match.is_some() || f.label_match.is_some() {
                    Stage::Repository
                } else {
                    Stage::None
                };
                Ok(Compiled {
                    repository: one(&f.repository_match, at("repositoryMatch"))?,
                    label: one(&f.label_match, at("labelMatch"))?,
                    branch: one(&f.branch_match, at("branchMatch"))?,
                    paths_exist: f.paths_exist.clone().unwrap_or_default(),
                    paths_do_not_exist: f.paths_do_not_exist.clone().unwrap_or_default(),
                    stage,
                })
            })
            .collect()
    }

    fn check_provider(&self, path: &str) -> Result<(&'static str, Value), Error> {
        let mut provider = self.provider();
        match provider.len() {
            1 => {}
            0 => {
                return Err(Error::invalid(
                    path,
                    format!("give one provider: {PROVIDERS}"),
                ))
            }
            _ => {
                return Err(Error::invalid(
                    path,
                    format!("give only one provider: {PROVIDERS}"),
                ))
            }
        }
        let (name, block) = provider.remove(0);
        if name == "awsCodeCommit" {
            return Err(Error::invalid(
                format!("{path}.awsCodeCommit"),
                "awsCodeCommit is not supported by prism: it needs AWS credentials and the \
                 resource-group tagging API; mirror the repositories to a supported provider \
                 or list them with a plugin generator",
            ));
        }
        if name == "azureDevOps"
            && self
                .azure_dev_ops
                .as_ref()
                .is_some_and(|a| a.access_token_ref.is_none())
        {
            // Argo's NewAzureDevOpsProvider: "no access token provided".
            return Err(Error::invalid(
                format!("{path}.azureDevOps.accessTokenRef"),
                "no access token provided: give accessTokenRef",
            ));
        }
        match self.clone_protocol.as_deref().unwrap_or("") {
            "" | "ssh" | "https" => {}
            other => {
                return Err(Error::invalid(
                    format!("{path}.cloneProtocol"),
                    format!("unknown clone protocol {other:?}: use ssh or https"),
                ))
            }
        }
        Ok((name, block))
    }

    /// The parameter sets: Argo's `ListRepos` over the source's provider.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let filters = self.compile(path, ctx.options.limits.regex_bytes)?;
        let (name, config) = self.check_provider(path)?;
        let fail = |e: ScmError| {
            Error::new(
                format!("{path}.{name}"),
                ErrorKind::ScmProvider {
                    provider: name.to_string(),
                    message: e.to_string(),
                },
            )
        };
        let limits = &ctx.options.limits;
        let too_many = |n: usize| -> Result<(), Error> {
            if n > limits.parameter_sets {
                return Err(Error::invalid(path, Limit::ParameterSets.exceeded(limits)));
            }
            Ok(())
        };
        let query = ScmQuery {
            provider: name,
            config: &config,
            path,
        };
        let provider = ctx.sources.scm_provider(&query).map_err(fail)?;
        let provider = provider.as_ref();
        let repos = provider
            .list_repos(self.clone_protocol.as_deref().unwrap_or(""))
            .map_err(fail)?;
        too_many(repos.len())?;
        let checks = std::cell::Cell::new(0);
        let keep = |stage: Stage, repos: Vec<ScmRepository>| -> Result<Vec<ScmRepository>, Error> {
            let stage_filters: Vec<&Compiled> =
                filters.iter().filter(|f| f.stage == stage).collect();
            if stage_filters.is_empty() {
                return Ok(repos);
            }
            let mut kept = Vec::with_capacity(repos.len());
            for repo in repos {
                for f in &stage_filters {
                    if f.matches(provider, &repo, &checks).map_err(fail)? {
                        kept.push(repo);
                        break;
                    }
                }
            }
            Ok(kept)
        };
        let repos = keep(Stage::Repository, repos)?;
        let mut branches = Vec::new();
        for repo in &repos {
            branches.extend(provider.branches(repo).map_err(fail)?);
            too_many(branches.len())?;
        }
        let branches = keep(Stage::Branch, branches)?;
        let mut out = Vec::with_capacity(branches.len());
        for repo in &branches {
            let mut params = parameters(repo);
            append_values(&self.values, &mut params, ctx, path)?;
            out.push(params);
        }
        Ok(out)
    }
}

/// One repository's (branch's) parameters, named as Argo names them.
pub fn parameters(repo: &ScmRepository) -> ParamSet {
    let short = |n: usize| repo.sha.chars().take(n).collect::<String>();
    let mut params = ParamSet::new();
    params.insert("organization".into(), json!(repo.organization));
    params.insert("repository".into(), json!(repo.repository));
    params.insert("repository_id".into(), repo.repository_id.clone());
    params.insert("url".into(), json!(repo.url));
    params.insert("branch".into(), json!(repo.branch));
    params.insert("sha".into(), json!(repo.sha));
    params.insert("short_sha".into(), json!(short(8)));
    params.insert("short_sha_7".into(), json!(short(7)));
    params.insert("labels".into(), json!(repo.labels.join(",")));
    params.insert("branchNormalized".into(), json!(normalize(&repo.branch)));
    params
}

/// The registry entry.
pub struct ScmProvider;

impl super::GeneratorKind for ScmProvider {
    fn key(&self) -> &'static str {
        "scmProvider"
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(SCM_PROVIDER_REQUEUE)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ScmProviderGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ScmProviderGenerator>()
    }

    fn emits(&self, _body: &Value, e: &mut super::Emits) {
        for name in [
            "organization",
            "repository",
            "repository_id",
            "url",
            "branch",
            "branchNormalized",
            "sha",
            "short_sha",
            "short_sha_7",
            "labels",
        ] {
            e.names.push(name.into());
        }
    }

    fn references(&self, body: &Value, out: &mut super::References) {
        out.scan(body);
    }
}

impl super::Generate for ScmProviderGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        self.check_provider(path)?;
        self.compile(path, prism_core::limits::Limits::default().regex_bytes)
            .map(drop)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{expand_err, expand_with};
    use prism_core::cluster::Cluster;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::MemorySources;
    use prism_core::sources::{
        Repository, ScmError, ScmProviderService, ScmQuery, ScmRepository, SourceError, Sources,
    };
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// An organization held in memory: repositories with their branches (name → sha)
    /// and the paths of each branch; every question is recorded.
    struct Org {
        repos: Vec<(ScmRepository, Vec<(&'static str, &'static str)>)>,
        paths: BTreeMap<(String, String), Vec<&'static str>>,
        asked: RefCell<Vec<String>>,
        fail: Option<ScmError>,
        all_branches: std::cell::Cell<bool>,
    }

    impl ScmProviderService for &Org {
        fn list_repos(&self, protocol: &str) -> Result<Vec<ScmRepository>, ScmError> {
            self.asked.borrow_mut().push(format!("list {protocol}"));
            if let Some(e) = &self.fail {
                return Err(e.clone());
            }
            Ok(self.repos.iter().map(|(r, _)| r.clone()).collect())
        }
        fn branches(&self, repo: &ScmRepository) -> Result<Vec<ScmRepository>, ScmError> {
            self.asked
                .borrow_mut()
                .push(format!("branches {}", repo.repository));
            let (_, branches) = self
                .repos
                .iter()
                .find(|(r, _)| r.repository == repo.repository)
                .unwrap();
            Ok(branches
                .iter()
                .filter(|(b, _)| self.all_branches.get() || *b == repo.branch)
                .map(|(b, sha)| ScmRepository {
                    branch: b.to_string(),
                    sha: sha.to_string(),
                    ..repo.clone()
                })
                .collect())
        }
        fn has_path(&self, repo: &ScmRepository, path: &str) -> Result<bool, ScmError> {
            self.asked
                .borrow_mut()
                .push(format!("path {}@{} {path}", repo.repository, repo.branch));
            Ok(self
                .paths
                .get(&(repo.repository.clone(), repo.branch.clone()))
                .is_some_and(|p| p.contains(&path)))
        }
    }

    impl Sources for Org {
        fn repository(&self, url: &str, rev: &str) -> Result<Arc<dyn Repository>, SourceError> {
            MemorySources::new().repository(url, rev)
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            Ok(Arc::from(vec![]))
        }
        fn scm_provider(
            &self,
            q: &ScmQuery<'_>,
        ) -> Result<Box<dyn ScmProviderService + '_>, ScmError> {
            self.asked
                .borrow_mut()
                .push(format!("provider {} {}", q.provider, q.config));
            self.all_branches.set(q.config["allBranches"] == true);
            Ok(Box::new(self))
        }
    }

    fn repo(name: &str, labels: &[&str]) -> ScmRepository {
        ScmRepository {
            organization: "acme".into(),
            repository: name.into(),
            repository_id: json!(7),
            url: format!("git@example.com:acme/{name}.git"),
            branch: "main".into(),
            sha: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    /// acme: `api` (labels deploy, go; branches main and feature/x; main has `deploy/`),
    /// `web` (label deploy; main has `deploy/` and `legacy`), `docs` (no labels).
    fn org() -> Org {
        let mut paths = BTreeMap::new();
        paths.insert(("api".to_string(), "main".to_string()), vec!["deploy"]);
        paths.insert(
            ("web".to_string(), "main".to_string()),
            vec!["deploy", "legacy"],
        );
        Org {
            repos: vec![
                (
                    repo("api", &["deploy", "go"]),
                    vec![
                        ("main", "0123456789abcdef0123456789abcdef01234567"),
                        ("feature/x", "89abcdef"),
                    ],
                ),
                (repo("web", &["deploy"]), vec![("main", "fedcba98765")]),
                (repo("docs", &[]), vec![("main", "abc")]),
            ],
            paths,
            asked: RefCell::new(vec![]),
            fail: None,
            all_branches: Default::default(),
        }
    }

    fn run(org: &Org, body: Value, nested: bool) -> Result<Vec<Value>, String> {
        let engine = if nested {
            TemplateEngine::Go { options: vec![] }
        } else {
            TemplateEngine::Fast
        };
        expand_with(
            json!({"scmProvider": body}),
            engine,
            org,
            &RenderOptions::default(),
        )
    }

    fn kept(org: &Org, filters: Value) -> Vec<String> {
        run(
            org,
            json!({"github": {"organization": "acme"}, "filters": filters}),
            false,
        )
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}@{}",
                s["repository"].as_str().unwrap(),
                s["branch"].as_str().unwrap()
            )
        })
        .collect()
    }

    /// Argo's parameters (applicationset/generators/scm_provider.go): `labels` joined
    /// with commas in both modes, `branchNormalized` (SanitizeName), 8- and 7-character
    /// short SHAs, `repository_id` as the provider gives it; `values` templated.
    #[test]
    fn parameters_are_argos() {
        let org = org();
        let sets = run(
            &org,
            json!({"github": {"organization": "acme", "allBranches": true},
                   "cloneProtocol": "https",
                   "values": {"app": "{{repository}}-{{branchNormalized}}", "id": "id-{{repository_id}}"}}),
            false,
        )
        .unwrap();
        assert_eq!(
            sets[0],
            json!({"organization": "acme", "repository": "api", "repository_id": 7,
                   "url": "git@example.com:acme/api.git", "branch": "main",
                   "sha": "0123456789abcdef0123456789abcdef01234567",
                   "short_sha": "01234567", "short_sha_7": "0123456",
                   "labels": "deploy,go", "branchNormalized": "main",
                   "values.app": "api-main",
                   // A number is not a string: fasttemplate leaves the tag, as Argo's Replace.
                   "values.id": "id-{{repository_id}}"})
        );
        assert_eq!(sets[1]["branchNormalized"], "feature-x");
        assert_eq!(sets[1]["short_sha"], "89abcdef");
        assert_eq!(sets.len(), 4);
        assert_eq!(org.asked.borrow()[1], "list https");
        // Go templates see the same names, labels still one string.
        let sets = run(
            &org,
            json!({"github": {"organization": "acme"},
                   "values": {"app": "{{ .repository }}/{{ .labels }}", "id": "{{ .repository_id }}"}}),
            true,
        )
        .unwrap();
        assert_eq!(sets[0]["values"]["app"], "api/deploy,go");
        assert_eq!(sets[0]["values"]["id"], "7");
    }

    /// Argo's `ListRepos` (applicationset/services/scm_provider/utils.go): repository
    /// filters (repositoryMatch, labelMatch) before branches are listed, OR among
    /// them; branch filters (branchMatch, pathsExist, pathsDoNotExist) after, OR among
    /// them; a filter with both kinds of field is a branch filter checking all of them.
    #[test]
    fn filters_run_in_argos_two_stages() {
        let org = org();
        assert_eq!(kept(&org, json!([])), ["api@main", "web@main", "docs@main"]);
        assert_eq!(
            kept(&org, json!([{"repositoryMatch": "^(api|docs)$"}])),
            ["api@main", "docs@main"]
        );
        // Any label may match.
        assert_eq!(kept(&org, json!([{"labelMatch": "^go$"}])), ["api@main"]);
        // OR across repository filters.
        assert_eq!(
            kept(
                &org,
                json!([{"labelMatch": "^go$"}, {"repositoryMatch": "^docs$"}])
            ),
            ["api@main", "docs@main"]
        );
        // A repository filter AND a branch filter: both stages must pass.
        assert_eq!(
            kept(
                &org,
                json!([{"repositoryMatch": "^(api|web)$"}, {"pathsExist": ["deploy/"]}])
            ),
            ["api@main", "web@main"]
        );
        assert_eq!(
            kept(
                &org,
                json!([{"pathsExist": ["deploy"]}, {"repositoryMatch": "^docs$"}])
            ),
            Vec::<String>::new()
        );
        // Inside one branch filter every field must match.
        assert_eq!(
            kept(
                &org,
                json!([{"repositoryMatch": "^web$", "pathsExist": ["deploy"]}])
            ),
            ["web@main"]
        );
        assert_eq!(
            kept(
                &org,
                json!([{"pathsExist": ["deploy"], "pathsDoNotExist": ["legacy"]}])
            ),
            ["api@main"]
        );
        // An empty filter applies nowhere.
        assert_eq!(
            kept(&org, json!([{}])),
            ["api@main", "web@main", "docs@main"]
        );
        // Paths are asked only of repositories the repository filters kept.
        let org2 = self::org();
        kept(
            &org2,
            json!([{"repositoryMatch": "^api$"}, {"pathsExist": ["deploy"]}]),
        );
        let asked = org2.asked.borrow();
        assert!(
            asked.contains(&"path api@main deploy".to_string()),
            "{asked:?}"
        );
        assert!(
            !asked
                .iter()
                .any(|a| a.starts_with("path web") || a.starts_with("branches web")),
            "{asked:?}"
        );
    }

    /// Path filters cost a provider request each: past MAX_PATH_CHECKS the generator
    /// fails instead of asking on.
    #[test]
    fn path_checks_are_bounded() {
        let org = org();
        let paths: Vec<String> = (0..4000).map(|i| format!("nowhere-{i}")).collect();
        let e = run(
            &org,
            json!({"github": {"organization": "acme"}, "filters": [{"pathsDoNotExist": paths}]}),
            false,
        )
        .unwrap_err();
        assert!(e.contains("more than 10000 path checks"), "{e}");
        let asked = org
            .asked
            .borrow()
            .iter()
            .filter(|a| a.starts_with("path "))
            .count();
        assert_eq!(asked, 10_000);
    }

    /// A provider error fails the generator (nothing applied or deleted), naming it.
    #[test]
    fn errors_name_the_provider_and_path() {
        let mut org = org();
        org.fail = Some(ScmError::Other(
            "acme: HTTP 502 from GET https://api/orgs/acme/repos".into(),
        ));
        let e = run(&org, json!({"github": {"organization": "acme"}}), false).unwrap_err();
        assert!(
            e.contains("spec.generators[0].scmProvider.github: listing repositories from github: acme: HTTP 502"),
            "{e}"
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        for (body, text) in [
            (json!({}), "give one provider: github, gitlab"),
            (
                json!({"github": {"organization": "a"}, "gitlab": {"group": "g"}}),
                "give only one provider",
            ),
            (
                json!({"awsCodeCommit": {"region": "eu-west-1"}}),
                "spec.generators[0].scmProvider.awsCodeCommit: awsCodeCommit is not supported by prism",
            ),
            (
                json!({"github": {"organization": "a"}, "cloneProtocol": "ftp"}),
                "spec.generators[0].scmProvider.cloneProtocol: unknown clone protocol \"ftp\"",
            ),
            (
                json!({"azureDevOps": {"organization": "o", "teamProject": "p"}}),
                "azureDevOps.accessTokenRef: no access token provided",
            ),
            (
                json!({"github": {"organization": "a"}, "filters": [{"labelMatch": "(x"}]}),
                "spec.generators[0].scmProvider.filters[0].labelMatch: error compiling regexp",
            ),
            (json!({"gitlab": {"api": "https://g"}}), "missing field `group`"),
        ] {
            let e = expand_err(json!({"scmProvider": body}), false);
            assert!(e.contains(text), "{body}: {e}");
        }
    }
}
