//! Pull requests from each provider's API (the `pullRequest` generator), read as
//! Argo CD's `applicationset/services/pull_request/` reads them.

use super::{
    bitbucket_server_base, encode_component, gitlab_api_base, Api, Call, ScmClient, ScmTokens, Tls,
    AZURE_DEVOPS, BITBUCKET_CLOUD, BITBUCKET_SERVER, GITEA, GITHUB, GITLAB,
};
use prism_engine::generators::pull_request::{
    AzureDevOpsPullRequests, BasicAuth, BearerToken, BitbucketPullRequests,
    BitbucketServerPullRequests, GiteaPullRequests, GithubPullRequests, GitlabPullRequests,
};
use prism_engine::sources::{PullRequest, ScmError, ScmQuery};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A provider block read as its type.
pub(super) fn block<T: DeserializeOwned>(query: &ScmQuery<'_>) -> Result<T, ScmError> {
    serde_json::from_value(query.config.clone()).map_err(|e| ScmError::Other(e.to_string()))
}

impl ScmClient {
    /// The open pull requests `query` names, with `tokens` for its credentials.
    pub fn pull_requests(
        &self,
        query: &ScmQuery<'_>,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        match query.provider {
            "github" => self.github_pulls(&block(query)?, tokens),
            "gitlab" => self.gitlab_pulls(&block(query)?, tokens),
            "gitea" => self.gitea_pulls(&block(query)?, tokens),
            "bitbucketServer" => self.bitbucket_server_pulls(&block(query)?, tokens),
            "bitbucket" => self.bitbucket_cloud_pulls(&block(query)?, tokens),
            "azuredevops" => self.azure_devops_pulls(&block(query)?, tokens),
            other => Err(ScmError::Other(format!(
                "{other} is not a pullRequest provider"
            ))),
        }
    }

    /// Lists `first` and reads each item as a pull request, keeping what `keep` keeps.
    fn pulls(
        &self,
        api: &Api,
        call: &Call,
        first: String,
        repo: &str,
        read: fn(&Value) -> Result<PullRequest, String>,
        keep: impl Fn(&PullRequest) -> bool,
    ) -> Result<Vec<PullRequest>, ScmError> {
        let mut out = Vec::new();
        for item in self.list(api, call, first, repo)? {
            let pr = read(&item).map_err(|e| ScmError::Other(format!("{repo}: {e}")))?;
            if keep(&pr) {
                out.push(pr);
            }
        }
        Ok(out)
    }

    fn github_pulls(
        &self,
        spec: &GithubPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        let (base, auth) = self.github_auth(
            spec.api.as_deref(),
            spec.token_ref.as_ref(),
            spec.app_secret_name.as_deref(),
            &spec.owner,
            tokens,
        )?;
        let call = Call {
            auth,
            tls: Tls::default(),
        };
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let first = format!(
            "{base}repos/{}/{}/pulls?per_page=100",
            encode_component(&spec.owner),
            encode_component(&spec.repo)
        );
        self.pulls(
            &GITHUB,
            &call,
            first,
            &repo,
            |i| pull_from(i, &GITHUB_FIELDS),
            |pr| spec.labels.iter().all(|l| pr.labels.contains(l)),
        )
    }

    /// GitLab merge requests, as Argo's `GitLabService.List`: the state filter only
    /// when `pullRequestState` is given (GitLab's default is every state), labels asked
    /// of the server, `X-Next-Page` pagination, the token in `PRIVATE-TOKEN`.
    fn gitlab_pulls(
        &self,
        spec: &GitlabPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        self.check_api(spec.api.as_deref())?;
        let call = Call {
            auth: tokens
                .token(spec.token_ref.as_ref(), "GITLAB_TOKEN")?
                .map(|t| ("PRIVATE-TOKEN", t)),
            tls: tls_of(spec.insecure, spec.ca_ref.as_ref(), tokens)?,
        };
        let mut url = format!(
            "{}projects/{}/merge_requests?per_page=100",
            gitlab_api_base(spec.api.as_deref()),
            encode_component(&spec.project)
        );
        if !spec.labels.is_empty() {
            url.push_str(&format!(
                "&labels={}",
                encode_component(&spec.labels.join(","))
            ));
        }
        if let Some(state) = spec.pull_request_state.as_deref().filter(|s| !s.is_empty()) {
            url.push_str(&format!("&state={}", encode_component(state)));
        }
        self.pulls(
            &GITLAB,
            &call,
            url,
            &spec.project,
            |i| pull_from(i, &GITLAB_FIELDS),
            |_| true,
        )
    }

    /// Gitea's open pull requests (`/api/v1/repos/{owner}/{repo}/pulls?state=open`), the
    /// token as `Authorization: token …`, labels filtered here. Argo reads one page; Prism
    /// follows `page`/`limit` through Gitea's `Link` headers, so no pull request is lost.
    fn gitea_pulls(
        &self,
        spec: &GiteaPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        self.check_api(Some(&spec.api))?;
        let call = Call {
            auth: tokens
                .token(spec.token_ref.as_ref(), "GITEA_TOKEN")?
                .map(|t| ("Authorization", format!("token {t}"))),
            tls: tls_of(spec.insecure, None, tokens)?,
        };
        let base = spec.api.trim_end_matches('/');
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let first = format!(
            "{base}/api/v1/repos/{}/{}/pulls?state=open&limit=50&page=1",
            encode_component(&spec.owner),
            encode_component(&spec.repo)
        );
        // Gitea's SDK reads the same fields of the same JSON shape as GitHub's
        // (`number`, `head.ref`, `head.sha`, `base.ref`, `user.login`, `labels[].name`).
        self.pulls(
            &GITEA,
            &call,
            first,
            &repo,
            |i| pull_from(i, &GITHUB_FIELDS),
            |pr| spec.labels.iter().all(|l| pr.labels.contains(l)),
        )
    }

    /// Bitbucket Server's open pull requests, as Argo's `BitbucketService` asks them
    /// (`<api>/rest/api/1.0/projects/{project}/repos/{repo}/pull-requests?limit=100`,
    /// `start` paging): basic auth, a bearer token, or none; no labels (the API has none).
    fn bitbucket_server_pulls(
        &self,
        spec: &BitbucketServerPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        self.check_api(Some(&spec.api))?;
        let call = Call {
            auth: bitbucket_auth(spec.bearer_token.as_ref(), spec.basic_auth.as_ref(), tokens)?,
            tls: tls_of(spec.insecure, spec.ca_ref.as_ref(), tokens)?,
        };
        let repo = format!("{}/{}", spec.project, spec.repo);
        let first = format!(
            "{}/api/1.0/projects/{}/repos/{}/pull-requests?limit=100",
            bitbucket_server_base(&spec.api),
            encode_component(&spec.project),
            encode_component(&spec.repo)
        );
        self.pulls(
            &BITBUCKET_SERVER,
            &call,
            first,
            &repo,
            |i| pull_from(i, &BITBUCKET_SERVER_FIELDS),
            |_| true,
        )
    }

    /// Bitbucket Cloud's open pull requests (`<api>/repositories/{owner}/{repo}/pullrequests`,
    /// default api `https://api.bitbucket.org/2.0`), every page through the body's `next`,
    /// as the library Argo uses follows them; basic auth, a bearer token, or none.
    fn bitbucket_cloud_pulls(
        &self,
        spec: &BitbucketPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        self.check_api(spec.api.as_deref())?;
        let call = Call {
            auth: bitbucket_auth(spec.bearer_token.as_ref(), spec.basic_auth.as_ref(), tokens)?,
            tls: Tls::default(),
        };
        let api = spec
            .api
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or("https://api.bitbucket.org/2.0")
            .trim_end_matches('/');
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let first = format!(
            "{api}/repositories/{}/{}/pullrequests",
            encode_component(&spec.owner),
            encode_component(&spec.repo)
        );
        self.pulls(
            &BITBUCKET_CLOUD,
            &call,
            first,
            &repo,
            |i| pull_from(i, &BITBUCKET_CLOUD_FIELDS),
            |_| true,
        )
    }

    /// Azure DevOps' active pull requests of the project, kept for `repo` by name and
    /// for every label asked, as Argo's `AzureDevOpsService`; the token as a PAT (basic
    /// auth with an empty user); `x-ms-continuationtoken` paging. Entries missing a
    /// field Argo needs are skipped, as Argo skips them.
    fn azure_devops_pulls(
        &self,
        spec: &AzureDevOpsPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, ScmError> {
        self.check_api(spec.api.as_deref())?;
        let call = Call {
            auth: match &spec.token_ref {
                Some(r) => Some(azure_pat(tokens.get(r)?)),
                None => None,
            },
            tls: Tls::default(),
        };
        let repo = format!("{}/{}/{}", spec.organization, spec.project, spec.repo);
        let first = format!(
            "{}/{}/{}/_apis/git/pullrequests?searchCriteria.status=active&api-version=7.1",
            azure_api(spec.api.as_deref()),
            encode_component(&spec.organization),
            encode_component(&spec.project)
        );
        let mut out = Vec::new();
        for item in self.list(&AZURE_DEVOPS, &call, first, &repo)? {
            if let Some(pr) = azure_pull(&item) {
                if pr.repository == spec.repo && spec.labels.iter().all(|l| pr.labels.contains(l)) {
                    out.push(pr);
                }
            }
        }
        Ok(out)
    }
}

/// Azure DevOps' API root (default `https://dev.azure.com`).
pub(super) fn azure_api(api: Option<&str>) -> &str {
    api.filter(|a| !a.is_empty())
        .unwrap_or("https://dev.azure.com")
        .trim_end_matches('/')
}

/// An Azure DevOps personal access token as the `Authorization` header (basic auth, no user).
pub(super) fn azure_pat(token: &str) -> (&'static str, String) {
    use base64::Engine;
    (
        "Authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(":{}", token.trim()))
        ),
    )
}

/// TLS as a provider block asks it: `insecure`, or the certificates `caRef` names.
pub(super) fn tls_of(
    insecure: bool,
    ca_ref: Option<&prism_engine::generators::pull_request::ConfigMapKeyRef>,
    tokens: &ScmTokens,
) -> Result<Tls, ScmError> {
    Ok(Tls {
        insecure,
        ca: ca_ref
            .map(|r| tokens.ca(r).map(str::to_string))
            .transpose()?,
    })
}

/// The `Authorization` header of Bitbucket's bearer token or basic auth, if any.
pub(super) fn bitbucket_auth(
    bearer: Option<&BearerToken>,
    basic: Option<&BasicAuth>,
    tokens: &ScmTokens,
) -> Result<super::Auth, ScmError> {
    if let Some(bearer) = bearer {
        return Ok(Some((
            "Authorization",
            format!("Bearer {}", tokens.get(&bearer.token_ref)?.trim()),
        )));
    }
    if let Some(basic) = basic {
        return Ok(Some(basic_auth(
            &basic.username,
            tokens.get(&basic.password_ref)?,
        )));
    }
    Ok(None)
}

/// HTTP basic auth as the `Authorization` header.
pub(super) fn basic_auth(user: &str, password: &str) -> (&'static str, String) {
    use base64::Engine;
    (
        "Authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        ),
    )
}

/// Where a provider's JSON keeps what Argo reads of a pull request (JSON pointers).
struct Fields {
    number: &'static str,
    title: &'static str,
    branch: &'static str,
    target_branch: &'static str,
    head_sha: &'static str,
    author: &'static str,
    /// The labels: a list of strings, or of objects with a `name`.
    labels: Option<&'static str>,
}

/// GitHub's pulls (and Gitea's, whose SDK reads the same shape).
const GITHUB_FIELDS: Fields = Fields {
    number: "/number",
    title: "/title",
    branch: "/head/ref",
    target_branch: "/base/ref",
    head_sha: "/head/sha",
    author: "/user/login",
    labels: Some("/labels"),
};

/// GitLab's merge requests (`iid`, `source_branch`, `sha`, `author.username`).
const GITLAB_FIELDS: Fields = Fields {
    number: "/iid",
    title: "/title",
    branch: "/source_branch",
    target_branch: "/target_branch",
    head_sha: "/sha",
    author: "/author/username",
    labels: Some("/labels"),
};

/// Bitbucket Server's pull requests (no labels, as Argo).
const BITBUCKET_SERVER_FIELDS: Fields = Fields {
    number: "/id",
    title: "/title",
    branch: "/fromRef/displayId",
    target_branch: "/toRef/displayId",
    head_sha: "/fromRef/latestCommit",
    author: "/author/user/name",
    labels: None,
};

/// Bitbucket Cloud's pull requests (Argo's `BitbucketCloudPullRequest`).
const BITBUCKET_CLOUD_FIELDS: Fields = Fields {
    number: "/id",
    title: "/title",
    branch: "/source/branch/name",
    target_branch: "/destination/branch/name",
    head_sha: "/source/commit/hash",
    author: "/author/nickname",
    labels: None,
};

/// One pull request from `item`; the error names the missing field.
fn pull_from(item: &Value, f: &Fields) -> Result<PullRequest, String> {
    let text = |at: &str| {
        item.pointer(at)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("a pull request has no {}", at[1..].replace('/', ".")))
    };
    Ok(PullRequest {
        number: item
            .pointer(f.number)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("a pull request has no {}", &f.number[1..]))?,
        title: text(f.title)?,
        branch: text(f.branch)?,
        target_branch: text(f.target_branch)?,
        head_sha: text(f.head_sha)?,
        author: text(f.author)?,
        labels: f
            .labels
            .and_then(|at| item.pointer(at))
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|x| x.as_str().or_else(|| x["name"].as_str()))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        repository: String::new(),
    })
}

/// One Azure DevOps pull request, or `None` when it misses a field Argo needs.
fn azure_pull(p: &Value) -> Option<PullRequest> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let strip = |r: String| r.replacen("refs/heads/", "", 1);
    Some(PullRequest {
        number: p["pullRequestId"].as_i64()?,
        title: text(&p["title"]).unwrap_or_default(),
        branch: strip(text(&p["sourceRefName"])?),
        target_branch: strip(text(&p["targetRefName"])?),
        head_sha: text(&p["lastMergeSourceCommit"]["commitId"])?,
        author: text(&p["createdBy"]["uniqueName"])
            .map(|u| u.split('@').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
        labels: p["labels"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        repository: text(&p["repository"]["name"])?,
    })
}
