//! `pullRequest`: one parameter set per open pull request of one repository: preview
//! environments.
//!
//! The spec is Argo CD 3.x's, with the same six providers (`github`, `gitlab`, `gitea`,
//! `bitbucketServer`, `bitbucket`, `azuredevops`). Listing is the front end's job (HTTP,
//! tokens, caching, through [`Sources::pull_requests`]); this file reads the spec,
//! applies `filters` and makes the parameters exactly as Argo's
//! `applicationset/generators/pull_request.go` does: `number`, `title`, `branch`,
//! `branch_slug`, `target_branch`, `target_branch_slug`, `head_sha`, `head_short_sha`
//! (8 characters), `head_short_sha_7`, `author`, and `labels` in the nested (Go template)
//! mode only; then the templated `values`.
//!
//! [`Sources::pull_requests`]: prism_core::sources::Sources::pull_requests

use super::{append_values, Context};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::{ParamSet, ParamShape};
use prism_core::sources::{PullRequest, ScmError, ScmQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How often a set with a `pullRequest` generator is rendered again (Argo's default).
pub const PULL_REQUEST_REQUEUE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The `pullRequest` generator's spec: exactly one provider, plus filters.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequestGenerator {
    /// GitHub or GitHub Enterprise.
    #[serde(default)]
    pub github: Option<GithubPullRequests>,
    /// GitLab merge requests.
    #[serde(default)]
    pub gitlab: Option<GitlabPullRequests>,
    /// Gitea.
    #[serde(default)]
    pub gitea: Option<GiteaPullRequests>,
    /// Bitbucket Server (Data Center).
    #[serde(default)]
    pub bitbucket_server: Option<BitbucketServerPullRequests>,
    /// Bitbucket Cloud.
    #[serde(default)]
    pub bitbucket: Option<BitbucketPullRequests>,
    /// Azure DevOps.
    #[serde(default)]
    pub azuredevops: Option<AzureDevOpsPullRequests>,
    /// Pull requests matching any filter are kept (all when none); inside one filter
    /// every given pattern must match.
    #[serde(default)]
    pub filters: Vec<PullRequestFilter>,
    /// How often to list again (default 1800).
    #[serde(default)]
    pub requeue_after_seconds: Option<i64>,
    /// Extra parameters, templated with the pull request's.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// A repository that is not found yields no parameter sets instead of an error.
    #[serde(default)]
    pub continue_on_repo_not_found_error: bool,
}

/// `{secretName, key}`: a token in a Secret of the ApplicationSet's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret.
    pub secret_name: String,
    /// Its key.
    pub key: String,
}

/// `{configMapName, key}`: CA certificates in a ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// The ConfigMap.
    pub config_map_name: String,
    /// Its key.
    pub key: String,
}

/// Basic auth: a user name and a password in a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// The password's Secret.
    pub password_ref: SecretRef,
}

/// A bearer token in a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BearerToken {
    /// The token's Secret.
    pub token_ref: SecretRef,
}

/// `pullRequest.github`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubPullRequests {
    /// The owner (user or organization).
    pub owner: String,
    /// The repository.
    pub repo: String,
    /// GitHub Enterprise API URL (default `https://api.github.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The token's Secret (default: none, or `GITHUB_TOKEN` on the command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// A GitHub App's Secret (app id, installation id, private key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret_name: Option<String>,
    /// Only pull requests carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `pullRequest.gitlab`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitlabPullRequests {
    /// Project id or path.
    pub project: String,
    /// API URL (default `https://gitlab.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The token's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// Only merge requests carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `opened` (default), `closed`, `merged`, `locked` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_state: Option<String>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// CA certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_ref: Option<ConfigMapKeyRef>,
}

/// `pullRequest.gitea`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GiteaPullRequests {
    /// The owner.
    pub owner: String,
    /// The repository.
    pub repo: String,
    /// The server's URL.
    pub api: String,
    /// The token's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// Skip TLS verification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Only pull requests carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// `pullRequest.bitbucketServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BitbucketServerPullRequests {
    /// The project key.
    pub project: String,
    /// The repository slug.
    pub repo: String,
    /// The server's URL.
    pub api: String,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
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

/// `pullRequest.bitbucket` (Cloud).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BitbucketPullRequests {
    /// The workspace.
    pub owner: String,
    /// The repository.
    pub repo: String,
    /// API URL (default `https://api.bitbucket.org/2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// A bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<BearerToken>,
}

/// `pullRequest.azuredevops`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzureDevOpsPullRequests {
    /// The organization.
    pub organization: String,
    /// The project.
    pub project: String,
    /// The repository.
    pub repo: String,
    /// API URL (default `https://dev.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The token's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<SecretRef>,
    /// Only pull requests carrying every one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// One `filters[]` entry: regular expressions (Go's RE2 syntax) the pull request must all match.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequestFilter {
    /// Over the head branch.
    #[serde(default)]
    pub branch_match: Option<String>,
    /// Over the target branch.
    #[serde(default)]
    pub target_branch_match: Option<String>,
    /// Over the title.
    #[serde(default)]
    pub title_match: Option<String>,
}

/// A filter compiled.
struct Compiled {
    branch: Option<regex::Regex>,
    target_branch: Option<regex::Regex>,
    title: Option<regex::Regex>,
}

impl Compiled {
    fn matches(&self, pr: &PullRequest) -> bool {
        let ok =
            |re: &Option<regex::Regex>, text: &str| re.as_ref().is_none_or(|r| r.is_match(text));
        ok(&self.branch, &pr.branch)
            && ok(&self.target_branch, &pr.target_branch)
            && ok(&self.title, &pr.title)
    }
}

impl PullRequestGenerator {
    /// The providers given (one, when the spec is right): name and block.
    fn provider(&self) -> Vec<(&'static str, Value)> {
        use super::provider_block as block;
        super::given_providers([
            ("github", block(&self.github)),
            ("gitlab", block(&self.gitlab)),
            ("gitea", block(&self.gitea)),
            ("bitbucketServer", block(&self.bitbucket_server)),
            ("bitbucket", block(&self.bitbucket)),
            ("azuredevops", block(&self.azuredevops)),
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
                Ok(Compiled {
                    branch: one(&f.branch_match, at("branchMatch"))?,
                    target_branch: one(&f.target_branch_match, at("targetBranchMatch"))?,
                    title: one(&f.title_match, at("titleMatch"))?,
                })
            })
            .collect()
    }

    /// The parameter sets: listed by the source, filtered, in the provider's order.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let filters = self.compile(path, ctx.options.limits.regex_bytes)?;
        let provider = self.provider();
        let Some((name, config)) = provider.first() else {
            return Err(no_provider(path));
        };
        let query = ScmQuery {
            provider: name,
            config,
            path,
        };
        let pulls = match ctx.sources.pull_requests(&query) {
            Ok(pulls) => pulls,
            Err(ScmError::RepositoryNotFound(what)) if self.continue_on_repo_not_found_error => {
                ctx.warn(format!(
                    "{path}: {what}: repository not found; no pull requests (continueOnRepoNotFoundError)"
                ));
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(Error::new(
                    format!("{path}.{name}"),
                    ErrorKind::PullRequests {
                        provider: name.to_string(),
                        message: e.to_string(),
                    },
                ))
            }
        };
        let mut out = Vec::with_capacity(pulls.len());
        for pr in pulls {
            if !filters.is_empty() && !filters.iter().any(|f| f.matches(&pr)) {
                continue;
            }
            let mut params = parameters(&pr, ctx.shape());
            append_values(&self.values, &mut params, ctx, path)?;
            out.push(params);
        }
        Ok(out)
    }
}

fn no_provider(path: &str) -> Error {
    Error::invalid(
        path,
        "give one provider: github, gitlab, gitea, bitbucketServer, bitbucket or azuredevops",
    )
}

/// One pull request's parameters, named as Argo names them.
pub fn parameters(pr: &PullRequest, shape: ParamShape) -> ParamSet {
    let short = |n: usize| pr.head_sha.chars().take(n).collect::<String>();
    let mut params = ParamSet::new();
    params.insert("number".into(), json!(pr.number.to_string()));
    params.insert("title".into(), json!(pr.title));
    params.insert("branch".into(), json!(pr.branch));
    params.insert("branch_slug".into(), json!(slug(&pr.branch)));
    params.insert("target_branch".into(), json!(pr.target_branch));
    params.insert("target_branch_slug".into(), json!(slug(&pr.target_branch)));
    params.insert("head_sha".into(), json!(pr.head_sha));
    params.insert("head_short_sha".into(), json!(short(8)));
    params.insert("head_short_sha_7".into(), json!(short(7)));
    params.insert("author".into(), json!(pr.author));
    if shape == ParamShape::Nested {
        params.insert("labels".into(), json!(pr.labels));
    }
    params
}

/// Argo's `branch_slug`: gosimple/slug's `Make` with `MaxLength = 50` and `_` → `-`
/// (trim, `&` → `and`, `@` → `at`, lower case, every run of characters other than
/// `[a-z0-9-_]` → `-`, trim `-`/`_`, then cut after the last `-` at or before 50, or
/// at 50). Argo transliterates non-ASCII letters first (é → e); Prism treats them as
/// other characters (→ `-`).
pub fn slug(text: &str) -> String {
    const MAX: usize = 50;
    let mut s = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '_' => s.push('-'),
            '&' => s.push_str("and"),
            '@' => s.push_str("at"),
            c if c.is_ascii_alphanumeric() || c == '-' => s.push(c.to_ascii_lowercase()),
            _ => s.push('-'),
        }
    }
    let mut collapsed = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let trimmed = collapsed.trim_matches(['-', '_']);
    if trimmed.len() <= MAX {
        return trimmed.to_string();
    }
    let bytes = trimmed.as_bytes();
    for i in (0..=MAX).rev() {
        if bytes[i] == b'-' {
            return trimmed[..i].to_string();
        }
    }
    trimmed[..MAX].to_string()
}

/// The registry entry.
pub struct PullRequests;

impl super::GeneratorKind for PullRequests {
    fn key(&self) -> &'static str {
        "pullRequest"
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(PULL_REQUEST_REQUEUE)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<PullRequestGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<PullRequestGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        let _ = body;
        for name in [
            "number",
            "title",
            "branch",
            "branch_slug",
            "target_branch",
            "target_branch_slug",
            "head_sha",
            "head_short_sha",
            "head_short_sha_7",
            "author",
            "labels",
        ] {
            e.names.push(name.into());
        }
        e.prefixes.push("labels.".into());
    }

    fn reads_pull_requests(&self, body: &Value) -> Option<super::PullRequestSource> {
        let g = typed::<PullRequestGenerator>(body)?;
        let source = |provider: &str, api: Option<&str>, default: &str, owner: &str, repo: &str| {
            super::PullRequestSource {
                provider: provider.into(),
                api: api.filter(|a| !a.is_empty()).unwrap_or(default).into(),
                owner: owner.into(),
                repo: repo.into(),
            }
        };
        if let Some(p) = &g.github {
            return Some(source(
                "github",
                p.api.as_deref(),
                "https://api.github.com/",
                &p.owner,
                &p.repo,
            ));
        }
        if let Some(p) = &g.gitlab {
            return Some(source(
                "gitlab",
                p.api.as_deref(),
                "https://gitlab.com/",
                &p.project,
                "",
            ));
        }
        if let Some(p) = &g.gitea {
            return Some(source("gitea", Some(&p.api), "", &p.owner, &p.repo));
        }
        if let Some(p) = &g.bitbucket_server {
            return Some(source(
                "bitbucketServer",
                Some(&p.api),
                "",
                &p.project,
                &p.repo,
            ));
        }
        if let Some(p) = &g.bitbucket {
            return Some(source(
                "bitbucket",
                p.api.as_deref(),
                "https://api.bitbucket.org/2.0",
                &p.owner,
                &p.repo,
            ));
        }
        let p = g.azuredevops.as_ref()?;
        Some(source(
            "azuredevops",
            p.api.as_deref(),
            "https://dev.azure.com",
            &p.project,
            &p.repo,
        ))
    }

    fn references(&self, body: &Value, out: &mut super::References) {
        out.scan(body);
    }
}

/// A body read only for what it names; `None` when it does not parse (the render says why).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(body: &Value) -> Option<T> {
    let mut body = body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("template");
    }
    serde_json::from_value(body).ok()
}

impl super::Generate for PullRequestGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        match self.provider().len() {
            1 => {}
            0 => return Err(no_provider(path)),
            _ => {
                return Err(Error::invalid(
                    path,
                    "give only one provider: github, gitlab, gitea, bitbucketServer, bitbucket or azuredevops",
                ))
            }
        }
        self.compile(path, prism_core::limits::Limits::default().regex_bytes)
            .map(drop)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use super::slug;
    use crate::tests::{expand_err, expand_with};
    use prism_core::cluster::Cluster;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::MemorySources;
    use prism_core::sources::{PullRequest, Repository, ScmError, ScmQuery, SourceError, Sources};
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};
    use std::cell::RefCell;
    use std::sync::Arc;

    /// Sources answering every listing with `answer`, recording the queries.
    struct Provider {
        answer: Result<Vec<PullRequest>, ScmError>,
        queries: RefCell<Vec<Value>>,
    }

    impl Sources for Provider {
        fn repository(&self, url: &str, rev: &str) -> Result<Arc<dyn Repository>, SourceError> {
            MemorySources::new().repository(url, rev)
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            Ok(Arc::from(vec![]))
        }
        fn pull_requests(&self, q: &ScmQuery<'_>) -> Result<Vec<PullRequest>, ScmError> {
            self.queries
                .borrow_mut()
                .push(json!({"provider": q.provider, "config": q.config, "path": q.path}));
            self.answer.clone()
        }
    }

    fn pr(number: i64, branch: &str, title: &str, sha: &str) -> PullRequest {
        PullRequest {
            number,
            title: title.into(),
            branch: branch.into(),
            target_branch: "main".into(),
            head_sha: sha.into(),
            author: "octocat".into(),
            labels: vec!["preview".into()],
            repository: String::new(),
        }
    }

    fn run(
        body: Value,
        answer: Result<Vec<PullRequest>, ScmError>,
        nested: bool,
    ) -> (Result<Vec<Value>, String>, Vec<Value>) {
        let sources = Provider {
            answer,
            queries: RefCell::new(vec![]),
        };
        let engine = if nested {
            TemplateEngine::Go { options: vec![] }
        } else {
            TemplateEngine::Fast
        };
        let out = expand_with(
            json!({"pullRequest": body}),
            engine,
            &sources,
            &RenderOptions::default(),
        );
        (out, sources.queries.into_inner())
    }

    /// Argo's parameters (applicationset/generators/pull_request.go): numbers as strings,
    /// slugs of both branches, 8- and 7-character short SHAs, the author; `labels` only in
    /// the Go template mode; `values` templated with them.
    #[test]
    fn parameters_are_argos() {
        let body = json!({"github": {"owner": "org", "repo": "svc", "labels": ["preview"]},
                          "values": {"host": "pr-{{number}}.preview.example.com"}});
        let pulls = vec![pr(
            42,
            "Feature/Login_Page",
            "Add login",
            "0123456789abcdef0123456789abcdef01234567",
        )];
        let (out, queries) = run(body.clone(), Ok(pulls.clone()), false);
        let sets = out.unwrap();
        assert_eq!(
            sets[0],
            json!({"number": "42", "title": "Add login", "branch": "Feature/Login_Page",
                   "branch_slug": "feature-login-page", "target_branch": "main",
                   "target_branch_slug": "main",
                   "head_sha": "0123456789abcdef0123456789abcdef01234567",
                   "head_short_sha": "01234567", "head_short_sha_7": "0123456",
                   "author": "octocat", "values.host": "pr-42.preview.example.com"})
        );
        assert_eq!(
            queries[0],
            json!({"provider": "github", "path": "spec.generators[0].pullRequest",
                   "config": {"owner": "org", "repo": "svc", "labels": ["preview"]}})
        );
        let mut go = body;
        go["values"]["host"] = json!("pr-{{ .number }}.preview.example.com");
        let (out, _) = run(go, Ok(pulls), true);
        let sets = out.unwrap();
        assert_eq!(sets[0]["labels"], json!(["preview"]));
        assert_eq!(sets[0]["values"]["host"], "pr-42.preview.example.com");
        // A SHA shorter than 8 is used whole, as Argo's min() does.
        let (out, _) = run(
            json!({"github": {"owner": "o", "repo": "r"}}),
            Ok(vec![pr(1, "b", "t", "abc")]),
            false,
        );
        assert_eq!(out.unwrap()[0]["head_short_sha"], "abc");
    }

    /// Argo's `ListPullRequests` (applicationset/services/pull_request/utils.go): a pull
    /// request is kept when any filter matches, and inside a filter every pattern must.
    #[test]
    fn filters_or_across_and_within() {
        let pulls = vec![
            pr(1, "feature-a", "WIP: a", "1111111111"),
            pr(2, "feature-b", "b", "2222222222"),
            pr(3, "fix-c", "c", "3333333333"),
        ];
        let numbers = |filters: Value| -> Vec<String> {
            let (out, _) = run(
                json!({"github": {"owner": "o", "repo": "r"}, "filters": filters}),
                Ok(pulls.clone()),
                false,
            );
            out.unwrap()
                .iter()
                .map(|s| s["number"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(numbers(json!([])), ["1", "2", "3"]);
        assert_eq!(numbers(json!([{"branchMatch": "^feature-"}])), ["1", "2"]);
        assert_eq!(
            numbers(json!([{"branchMatch": "^feature-", "titleMatch": "^[^W]"}])),
            ["2"]
        );
        assert_eq!(
            numbers(json!([{"branchMatch": "^fix-"}, {"titleMatch": "^WIP"}])),
            ["1", "3"]
        );
        assert_eq!(
            numbers(json!([{"targetBranchMatch": "^release"}])),
            Vec::<String>::new()
        );
    }

    /// A failed listing is an error naming the provider (nothing applied or deleted); a
    /// repository that is not found is skipped only with continueOnRepoNotFoundError.
    #[test]
    fn errors_and_missing_repositories() {
        let body = json!({"github": {"owner": "o", "repo": "gone"}});
        let (out, _) = run(
            body.clone(),
            Err(ScmError::Other("GET .../pulls: HTTP 502".into())),
            false,
        );
        let e = out.unwrap_err();
        assert!(e.contains("spec.generators[0].pullRequest.github: listing pull requests from github: GET .../pulls: HTTP 502"), "{e}");
        let gone = || Err(ScmError::RepositoryNotFound("o/gone".into()));
        let e = run(body.clone(), gone(), false).0.unwrap_err();
        assert!(e.contains("repository not found: o/gone"), "{e}");
        let mut tolerant = body;
        tolerant["continueOnRepoNotFoundError"] = json!(true);
        assert_eq!(run(tolerant, gone(), false).0.unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn one_provider_and_valid_filters_are_required() {
        let e = expand_err(json!({"pullRequest": {"filters": []}}), false);
        assert!(e.contains("give one provider: github, gitlab"), "{e}");
        let e = expand_err(
            json!({"pullRequest": {"github": {"owner": "o", "repo": "r"},
                                   "gitea": {"owner": "o", "repo": "r", "api": "https://g"}}}),
            false,
        );
        assert!(e.contains("give only one provider"), "{e}");
        let e = expand_err(
            json!({"pullRequest": {"github": {"owner": "o", "repo": "r"},
                                   "filters": [{"branchMatch": "(unclosed"}]}}),
            false,
        );
        assert!(
            e.contains("spec.generators[0].pullRequest.filters[0].branchMatch: error compiling regexp \"(unclosed\""),
            "{e}"
        );
        let e = expand_err(json!({"pullRequest": {"github": {"owner": "o"}}}), false);
        assert!(e.contains("missing field `repo`"), "{e}");
    }

    /// gosimple/slug v1.15.0 as Argo configures it (MaxLength 50, `_` → `-`): its
    /// slug.go `MakeLang` and `smartTruncate`. Every expected value was printed by that
    /// library itself (a Go program calling `slug.Make` with Argo's settings).
    #[test]
    fn branch_slugs_follow_gosimple_slug() {
        for (branch, want) in [
            ("main", "main"),
            ("feature/Login_Page", "feature-login-page"),
            ("  fix//double--dash  ", "fix-double-dash"),
            ("_leading-and-trailing_", "leading-and-trailing"),
            ("ops&dev@home", "opsanddevathome"),
            ("release/v1.2.3", "release-v1-2-3"),
            // Over 50: cut after the last '-' at or before position 50.
            (
                "feature/a-very-long-branch-name-that-goes-on-and-on-forever",
                "feature-a-very-long-branch-name-that-goes-on-and",
            ),
            // One long word: cut at 50.
            (&"x".repeat(60), &"x".repeat(50)),
            ("", ""),
            ("a_-_b", "a-b"),
            (
                "renovate/github.com-foo-bar-1.x",
                "renovate-github-com-foo-bar-1-x",
            ),
        ] {
            assert_eq!(slug(branch), want, "{branch:?}");
        }
    }
}
