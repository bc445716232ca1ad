//! The `pullRequest` generator's edge: listing pull requests from an SCM provider's
//! HTTP API: GitHub (and Enterprise), GitLab, Gitea, Bitbucket Server and Cloud, and
//! Azure DevOps.
//!
//! Careful with the rate limit (Argo CD issues 9413, 21887): every listing is a
//! conditional request (`If-None-Match` with the last `ETag`; GitHub does not count a
//! `304` against the limit), the client stops before the limit instead of hammering
//! (`X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`, `Retry-After` after a 429 or
//! 403), and every failure is an error naming the provider, the repository and the
//! HTTP status, never an empty list, so nothing is deleted on a bad answer (Argo CD
//! issue 14318). Tokens never appear in errors or logs.

use prism_engine::generators::pull_request::{
    AzureDevOpsPullRequests, BitbucketPullRequests, BitbucketServerPullRequests, GiteaPullRequests,
    GithubPullRequests, GitlabPullRequests, SecretRef,
};
use prism_engine::sources::{PullRequest, PullRequestError, PullRequestQuery};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most pages one listing follows (100 pull requests a page).
const MAX_PAGES: usize = 100;
/// Largest page body read.
const MAX_BODY: u64 = 32 << 20;

/// Tokens the `tokenRef`s of the specs may name: `(secretName, key)` → value.
#[derive(Clone, Default)]
pub struct ScmTokens(HashMap<(String, String), String>);

impl std::fmt::Debug for ScmTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl ScmTokens {
    /// Reads every key of every Secret (whole objects, `data` base64 or `stringData`).
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Value>) -> Result<Self, String> {
        use base64::Engine;
        let mut out = HashMap::new();
        for s in secrets {
            if s["kind"].as_str().is_some_and(|k| k != "Secret") {
                continue;
            }
            let name = s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(data) = s["data"].as_object() {
                for (k, v) in data {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap_or_default().trim())
                        .map_err(|_| format!("Secret {name}: data.{k} is not base64"))?;
                    let text = String::from_utf8(bytes)
                        .map_err(|_| format!("Secret {name}: data.{k} is not UTF-8"))?;
                    out.insert((name.clone(), k.clone()), text);
                }
            }
            if let Some(data) = s["stringData"].as_object() {
                for (k, v) in data {
                    out.insert(
                        (name.clone(), k.clone()),
                        v.as_str().unwrap_or_default().into(),
                    );
                }
            }
        }
        Ok(ScmTokens(out))
    }

    /// Reads a YAML file of Secrets (`--scm-creds`).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let docs = crate::credentials::read_objects(path)?;
        ScmTokens::from_secrets(&docs).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The token `r` names, or (as Argo) the environment variable `env` without one.
    fn token(&self, r: Option<&SecretRef>, env: &str) -> Result<Option<String>, PullRequestError> {
        match r {
            Some(r) => Ok(Some(self.get(r)?.trim().to_string())),
            None => Ok(std::env::var(env).ok().filter(|t| !t.is_empty())),
        }
    }

    fn get(&self, r: &SecretRef) -> Result<&str, PullRequestError> {
        self.0
            .get(&(r.secret_name.clone(), r.key.clone()))
            .map(String::as_str)
            .ok_or_else(|| {
                PullRequestError::Other(format!(
                    "tokenRef: Secret {} has no key {} (or is not given: pass it in --scm-creds)",
                    r.secret_name, r.key
                ))
            })
    }
}

/// A page as last seen: its `ETag`, and what it held.
struct Cached {
    etag: String,
    pulls: Vec<PullRequest>,
    next: Option<String>,
}

/// The SCM client of one process: one HTTP agent, the conditional-request cache and the
/// rate-limit state, shared by every ApplicationSet.
pub struct ScmClient {
    agent: ureq::Agent,
    pages: Mutex<HashMap<String, Cached>>,
    /// GitHub host → Unix second until which the rate limit is spent.
    blocked_until: Mutex<HashMap<String, u64>>,
    requests: Mutex<HashMap<(String, u16), u64>>,
    /// Told of every request: provider, HTTP status (0: no answer), rate limit left.
    observer: Option<Observer>,
}

/// A function told of every request (the controller's metrics).
pub type Observer = Box<dyn Fn(&str, u16, Option<u64>) + Send + Sync>;

impl Default for ScmClient {
    fn default() -> Self {
        ScmClient::new(Duration::from_secs(30))
    }
}

impl ScmClient {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> ScmClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        ScmClient {
            agent,
            pages: Mutex::default(),
            blocked_until: Mutex::default(),
            requests: Mutex::default(),
            observer: None,
        }
    }

    /// Tells `f` of every request (provider, HTTP status, rate limit left).
    pub fn with_observer(mut self, f: Observer) -> ScmClient {
        self.observer = Some(f);
        self
    }

    /// Requests made, by (provider, HTTP status; 0 for no answer).
    pub fn requests(&self) -> HashMap<(String, u16), u64> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn count(&self, provider: &str, status: u16, remaining: Option<u64>) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((provider.to_string(), status)).or_default() += 1;
        }
        if let Some(f) = &self.observer {
            f(provider, status, remaining);
        }
    }

    /// The open pull requests `query` names, with `tokens` for its `tokenRef`.
    pub fn pull_requests(
        &self,
        query: &PullRequestQuery<'_>,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        match query.provider {
            "github" => {
                let spec: GithubPullRequests = serde_json::from_value(query.config.clone())
                    .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.github(&spec, tokens)
            }
            "gitlab" => {
                let spec: GitlabPullRequests = serde_json::from_value(query.config.clone())
                    .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.gitlab(&spec, tokens)
            }
            "gitea" => {
                let spec: GiteaPullRequests = serde_json::from_value(query.config.clone())
                    .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.gitea(&spec, tokens)
            }
            "bitbucketServer" => {
                let spec: BitbucketServerPullRequests =
                    serde_json::from_value(query.config.clone())
                        .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.bitbucket_server(&spec, tokens)
            }
            "bitbucket" => {
                let spec: BitbucketPullRequests = serde_json::from_value(query.config.clone())
                    .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.bitbucket_cloud(&spec, tokens)
            }
            "azuredevops" => {
                let spec: AzureDevOpsPullRequests = serde_json::from_value(query.config.clone())
                    .map_err(|e| PullRequestError::Other(e.to_string()))?;
                self.azure_devops(&spec, tokens)
            }
            other => Err(PullRequestError::Other(format!(
                "{other} is not a pullRequest provider"
            ))),
        }
    }

    /// GitLab merge requests, as Argo's `GitLabService.List`: the state filter only
    /// when `pullRequestState` is given (GitLab's default is every state), labels asked
    /// of the server, `X-Next-Page` pagination, the token in `PRIVATE-TOKEN`.
    fn gitlab(
        &self,
        spec: &GitlabPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        if spec.insecure || spec.ca_ref.is_some() {
            return Err(PullRequestError::Other(
                "insecure and caRef are not wired yet for gitlab; see issue 14".into(),
            ));
        }
        let token = tokens.token(spec.token_ref.as_ref(), "GITLAB_TOKEN")?;
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
        let auth = token.map(|t| ("PRIVATE-TOKEN", t));
        self.list(&GITLAB, url, &spec.project, auth, |_| true)
    }

    /// Gitea's open pull requests (`/api/v1/repos/{owner}/{repo}/pulls?state=open`), the
    /// token as `Authorization: token …`, labels filtered here. Argo reads one page; Prism
    /// follows `page`/`limit` through Gitea's `Link` headers, so no pull request is lost.
    fn gitea(
        &self,
        spec: &GiteaPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        if spec.insecure {
            return Err(PullRequestError::Other(
                "insecure is not wired yet for gitea; see issue 14".into(),
            ));
        }
        let token = tokens.token(spec.token_ref.as_ref(), "GITEA_TOKEN")?;
        let base = spec.api.trim_end_matches('/');
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let first = format!(
            "{base}/api/v1/repos/{}/{}/pulls?state=open&limit=50&page=1",
            encode_component(&spec.owner),
            encode_component(&spec.repo)
        );
        let auth = token.map(|t| ("Authorization", format!("token {t}")));
        self.list(&GITEA, first, &repo, auth, |pr| {
            spec.labels.iter().all(|l| pr.labels.contains(l))
        })
    }

    /// Bitbucket Server's open pull requests, as Argo's `BitbucketService` asks them
    /// (`<api>/rest/api/1.0/projects/{project}/repos/{repo}/pull-requests?limit=100`,
    /// `start` paging): basic auth, a bearer token, or none; no labels (the API has none).
    fn bitbucket_server(
        &self,
        spec: &BitbucketServerPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        if spec.insecure || spec.ca_ref.is_some() {
            return Err(PullRequestError::Other(
                "insecure and caRef are not wired yet for bitbucketServer; see issue 14".into(),
            ));
        }
        let auth =
            self.bitbucket_auth(spec.bearer_token.as_ref(), spec.basic_auth.as_ref(), tokens)?;
        let repo = format!("{}/{}", spec.project, spec.repo);
        let first = format!(
            "{}/api/1.0/projects/{}/repos/{}/pull-requests?limit=100",
            bitbucket_server_base(&spec.api),
            encode_component(&spec.project),
            encode_component(&spec.repo)
        );
        let auth = auth.map(|a| ("Authorization", a));
        self.list(&BITBUCKET_SERVER, first, &repo, auth, |_| true)
    }

    /// Bitbucket Cloud's open pull requests (`<api>/repositories/{owner}/{repo}/pullrequests`,
    /// default api `https://api.bitbucket.org/2.0`), every page through the body's `next`,
    /// as the library Argo uses follows them; basic auth, a bearer token, or none.
    fn bitbucket_cloud(
        &self,
        spec: &BitbucketPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        let auth =
            self.bitbucket_auth(spec.bearer_token.as_ref(), spec.basic_auth.as_ref(), tokens)?;
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
        let auth = auth.map(|a| ("Authorization", a));
        self.list(&BITBUCKET_CLOUD, first, &repo, auth, |_| true)
    }

    /// The `Authorization` value of Bitbucket's bearer token or basic auth, if any.
    fn bitbucket_auth(
        &self,
        bearer: Option<&prism_engine::generators::pull_request::BearerToken>,
        basic: Option<&prism_engine::generators::pull_request::BasicAuth>,
        tokens: &ScmTokens,
    ) -> Result<Option<String>, PullRequestError> {
        use base64::Engine;
        if let Some(bearer) = bearer {
            return Ok(Some(format!(
                "Bearer {}",
                tokens.get(&bearer.token_ref)?.trim()
            )));
        }
        if let Some(basic) = basic {
            let password = tokens.get(&basic.password_ref)?;
            return Ok(Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{password}", basic.username))
            )));
        }
        Ok(None)
    }

    /// Azure DevOps' active pull requests of the project, kept for `repo` by name and
    /// for every label asked, as Argo's `AzureDevOpsService`; the token as a PAT (basic
    /// auth with an empty user); `x-ms-continuationtoken` paging.
    fn azure_devops(
        &self,
        spec: &AzureDevOpsPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        use base64::Engine;
        let auth = match &spec.token_ref {
            Some(r) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!(":{}", tokens.get(r)?.trim()))
            )),
            None => None,
        };
        let api = spec
            .api
            .as_deref()
            .filter(|a| !a.is_empty())
            .unwrap_or("https://dev.azure.com")
            .trim_end_matches('/');
        let repo = format!("{}/{}/{}", spec.organization, spec.project, spec.repo);
        let first = format!(
            "{api}/{}/{}/_apis/git/pullrequests?searchCriteria.status=active&api-version=7.1",
            encode_component(&spec.organization),
            encode_component(&spec.project)
        );
        let auth = auth.map(|a| ("Authorization", a));
        self.list(&AZURE_DEVOPS, first, &repo, auth, |pr| {
            pr.repository == spec.repo && spec.labels.iter().all(|l| pr.labels.contains(l))
        })
    }

    fn github(
        &self,
        spec: &GithubPullRequests,
        tokens: &ScmTokens,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        if spec.app_secret_name.is_some() {
            return Err(PullRequestError::Other(
                "appSecretName (GitHub App authentication) is not wired yet; use tokenRef".into(),
            ));
        }
        let token = tokens.token(spec.token_ref.as_ref(), "GITHUB_TOKEN")?;
        let base = github_api_base(spec.api.as_deref());
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let first = format!(
            "{base}repos/{}/{}/pulls?per_page=100",
            spec.owner, spec.repo
        );
        let auth = token.map(|t| ("Authorization", format!("Bearer {t}")));
        self.list(&GITHUB, first, &repo, auth, |pr| {
            spec.labels.iter().all(|l| pr.labels.contains(l))
        })
    }

    /// Every page from `first`, following the provider's paging, keeping what `keep` keeps.
    fn list(
        &self,
        api: &Api,
        first: String,
        repo: &str,
        auth: Option<(&str, String)>,
        keep: impl Fn(&PullRequest) -> bool,
    ) -> Result<Vec<PullRequest>, PullRequestError> {
        let mut next = Some(first);
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(PullRequestError::Other(format!(
                    "{repo}: more than {MAX_PAGES} pages of pull requests"
                )));
            }
            let page = self.page(api, &page_url, repo, auth.clone())?;
            out.extend(page.pulls.into_iter().filter(|pr| keep(pr)));
            next = page.next;
        }
        Ok(out)
    }

    /// One page of `provider`'s API, conditionally on its last ETag; `auth` is the
    /// header that carries the token.
    fn page(
        &self,
        api: &Api,
        url: &str,
        repo: &str,
        auth: Option<(&str, String)>,
    ) -> Result<Page, PullRequestError> {
        let provider = api.name;
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_string();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some(until) = self
            .blocked_until
            .lock()
            .ok()
            .and_then(|b| b.get(&host).copied())
        {
            if until > now {
                return Err(PullRequestError::Other(format!(
                    "{repo}: {}'s rate limit is spent until {until} (Unix time); not asking before then",
                    api.title
                )));
            }
        }
        let cached_etag = self
            .pages
            .lock()
            .ok()
            .and_then(|p| p.get(url).map(|c| c.etag.clone()));
        let mut request = self.agent.get(url).header("User-Agent", "prism");
        for (name, value) in api.headers {
            request = request.header(*name, *value);
        }
        if let Some((name, value)) = &auth {
            request = request.header(*name, value);
        }
        if let Some(etag) = &cached_etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().map_err(|e| {
            self.count(provider, 0, None);
            PullRequestError::Other(format!("{repo}: GET {url}: {e}"))
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        self.count(provider, status, remaining);
        let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<u64>().ok());
        let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
        if let (Some(0), Some(reset)) = (remaining, reset) {
            if let Ok(mut b) = self.blocked_until.lock() {
                b.insert(host.clone(), reset);
            }
        }
        if let Some(wait) = retry_after.filter(|_| status == 429 || status == 403) {
            if let Ok(mut b) = self.blocked_until.lock() {
                b.insert(host.clone(), now + wait);
            }
        }
        let next = (api.next)(&header, url);
        let etag = header("etag");
        match status {
            304 => {
                let pages = self.pages.lock().map_err(|_| {
                    PullRequestError::Other("the SCM page cache is poisoned".into())
                })?;
                let cached = pages.get(url).ok_or_else(|| {
                    PullRequestError::Other(format!("{repo}: 304 for a page never seen"))
                })?;
                Ok(Page {
                    pulls: cached.pulls.clone(),
                    next: cached.next.clone(),
                })
            }
            200 => {
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_string()
                    .map_err(|e| PullRequestError::Other(format!("{repo}: reading {url}: {e}")))?;
                let (pulls, body_next) = (api.parse)(&body, url)
                    .map_err(|e| PullRequestError::Other(format!("{repo}: {url}: {e}")))?;
                let next = next.or(body_next);
                if let (Some(etag), Ok(mut pages)) = (etag, self.pages.lock()) {
                    pages.insert(
                        url.to_string(),
                        Cached {
                            etag,
                            pulls: pulls.clone(),
                            next: next.clone(),
                        },
                    );
                }
                Ok(Page { pulls, next })
            }
            404 => Err(PullRequestError::RepositoryNotFound(repo.to_string())),
            401 => Err(PullRequestError::Other(format!(
                "{repo}: HTTP 401: {} refused the token; check the tokenRef Secret",
                api.title
            ))),
            403 | 429 => Err(PullRequestError::Other(format!(
                "{repo}: HTTP {status}: rate limited or forbidden{}",
                retry_after
                    .map(|s| format!("; retry after {s} s"))
                    .unwrap_or_default()
            ))),
            other => Err(PullRequestError::Other(format!(
                "{repo}: HTTP {other} from GET {url}"
            ))),
        }
    }
}

struct Page {
    pulls: Vec<PullRequest>,
    next: Option<String>,
}

/// What differs between providers' list APIs.
struct Api {
    name: &'static str,
    title: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// The next page's URL from the answer's headers (by lower-case name) and this page's URL.
    next: fn(&Headers<'_>, &str) -> Option<String>,
    /// The page's pull requests, and the next page's URL when the body says it.
    parse: fn(&str, &str) -> Parsed,
}

/// An answer's headers, by lower-case name.
type Headers<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// A page's pull requests and, when the body says it, the next page's URL.
type Parsed = Result<(Vec<PullRequest>, Option<String>), String>;

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

/// An answer that is a JSON list of pull requests.
fn parse_list(body: &str, f: &Fields) -> Result<Vec<PullRequest>, String> {
    let items: Vec<Value> = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not a JSON list of pull requests: {e}"))?;
    items.iter().map(|i| pull_from(i, f)).collect()
}

/// An answer that keeps its pull requests under `values` (Bitbucket's pages).
fn parse_values(body: &str, f: &Fields) -> Result<(Vec<PullRequest>, Value), String> {
    let page: Value = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not a page of pull requests: {e}"))?;
    let pulls = page["values"]
        .as_array()
        .ok_or("the answer has no values list")?
        .iter()
        .map(|i| pull_from(i, f))
        .collect::<Result<_, _>>()?;
    Ok((pulls, page))
}

const GITHUB: Api = Api {
    name: "github",
    title: "GitHub",
    headers: &[
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
    ],
    next: |header, _| header("link").as_deref().and_then(next_link),
    parse: |body, _| parse_list(body, &GITHUB_FIELDS).map(|p| (p, None)),
};

const GITLAB: Api = Api {
    name: "gitlab",
    title: "GitLab",
    headers: &[("Accept", "application/json")],
    next: |header, url| {
        let page = header("x-next-page")?;
        let page = Some(page.trim()).filter(|p| !p.is_empty())?;
        let base = url.split("&page=").next().unwrap_or(url);
        Some(format!("{base}&page={page}"))
    },
    parse: |body, _| parse_list(body, &GITLAB_FIELDS).map(|p| (p, None)),
};

const GITEA: Api = Api {
    name: "gitea",
    title: "Gitea",
    headers: &[("Accept", "application/json")],
    next: |header, _| header("link").as_deref().and_then(next_link),
    // Gitea's SDK reads the same fields of the same JSON shape as GitHub's
    // (`number`, `head.ref`, `head.sha`, `base.ref`, `user.login`, `labels[].name`).
    parse: |body, _| parse_list(body, &GITHUB_FIELDS).map(|p| (p, None)),
};

const BITBUCKET_SERVER: Api = Api {
    name: "bitbucketServer",
    title: "Bitbucket Server",
    // As Argo's client sends them (they skip Bitbucket's XSRF check).
    headers: &[
        ("Accept", "application/json"),
        ("X-Atlassian-Token", "no-check"),
        ("X-Requested-With", "XMLHttpRequest"),
    ],
    next: |_, _| None,
    // The next page is `start=<nextPageStart>` until `isLastPage`.
    parse: |body, url| {
        let (pulls, page) = parse_values(body, &BITBUCKET_SERVER_FIELDS)?;
        let next = match (page["isLastPage"].as_bool(), page["nextPageStart"].as_i64()) {
            (Some(false), Some(start)) => {
                let base = url.split("&start=").next().unwrap_or(url);
                Some(format!("{base}&start={start}"))
            }
            _ => None,
        };
        Ok((pulls, next))
    },
};

const BITBUCKET_CLOUD: Api = Api {
    name: "bitbucket",
    title: "Bitbucket Cloud",
    headers: &[("Accept", "application/json")],
    next: |_, _| None,
    // The next page is the body's `next` URL.
    parse: |body, _| {
        let (pulls, page) = parse_values(body, &BITBUCKET_CLOUD_FIELDS)?;
        let next = page["next"].as_str().filter(|n| !n.is_empty());
        Ok((pulls, next.map(str::to_string)))
    },
};

const AZURE_DEVOPS: Api = Api {
    name: "azuredevops",
    title: "Azure DevOps",
    headers: &[("Accept", "application/json")],
    next: |header, url| {
        let token = header("x-ms-continuationtoken")?;
        let token = Some(token.trim()).filter(|t| !t.is_empty())?;
        let base = url.split("&continuationToken=").next().unwrap_or(url);
        Some(format!(
            "{base}&continuationToken={}",
            encode_component(token)
        ))
    },
    parse: |body, _| parse_azure_pulls(body).map(|p| (p, None)),
};

/// Azure DevOps' `GET {org}/{project}/_apis/git/pullrequests` answer, every repository of
/// the project (the caller keeps its own); entries missing a field Argo needs are
/// skipped, as Argo skips them.
fn parse_azure_pulls(body: &str) -> Result<Vec<PullRequest>, String> {
    let page: Value = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not Azure DevOps' JSON: {e}"))?;
    let values = page["value"]
        .as_array()
        .ok_or("the answer has no value list")?;
    Ok(values
        .iter()
        .filter_map(|p| {
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
        })
        .collect())
}

/// Argo's `NormalizeBitbucketBasePath` (applicationset/utils/utils.go): the API root ends
/// in `/rest`.
pub fn bitbucket_server_base(api: &str) -> String {
    if let Some(stripped) = api.strip_suffix("/rest/") {
        return format!("{stripped}/rest");
    }
    if api.ends_with("/rest") {
        api.to_string()
    } else {
        format!("{api}/rest")
    }
}

/// go-gitlab's base URL: `<api>/api/v4/` (default `https://gitlab.com/api/v4/`).
pub fn gitlab_api_base(api: Option<&str>) -> String {
    let mut base = api
        .filter(|a| !a.is_empty())
        .unwrap_or("https://gitlab.com")
        .to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    if !base.ends_with("api/v4/") {
        base.push_str("api/v4/");
    }
    base
}

/// `%`-encodes a GitLab project path for the URL (`group/app` → `group%2Fapp`).
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// go-github's `WithEnterpriseURLs`: `https://host/` becomes `https://host/api/v3/`
/// unless it already ends so or names an `api.` host; default `https://api.github.com/`.
pub fn github_api_base(api: Option<&str>) -> String {
    let Some(api) = api.filter(|a| !a.is_empty()) else {
        return "https://api.github.com/".into();
    };
    let mut base = api.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    let host = base
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    if !base.ends_with("/api/v3/") && !host.starts_with("api.") && !host.contains(".api.") {
        base.push_str("api/v3/");
    }
    base
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enterprise_urls_as_go_github() {
        assert_eq!(github_api_base(None), "https://api.github.com/");
        assert_eq!(
            github_api_base(Some("https://git.corp.example")),
            "https://git.corp.example/api/v3/"
        );
        assert_eq!(
            github_api_base(Some("https://git.corp.example/api/v3")),
            "https://git.corp.example/api/v3/"
        );
        assert_eq!(
            github_api_base(Some("https://api.corp.example/")),
            "https://api.corp.example/"
        );
    }

    #[test]
    fn bitbucket_server_base_paths_as_argo() {
        assert_eq!(
            bitbucket_server_base("https://bb.example"),
            "https://bb.example/rest"
        );
        assert_eq!(
            bitbucket_server_base("https://bb.example/rest"),
            "https://bb.example/rest"
        );
        assert_eq!(
            bitbucket_server_base("https://bb.example/rest/"),
            "https://bb.example/rest"
        );
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let link = r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }
}
