//! The `pullRequest` generator's edge: listing pull requests from an SCM provider's
//! HTTP API. GitHub and GitHub Enterprise so far; the other providers answer that they
//! are not wired yet.
//!
//! Careful with the rate limit (Argo CD issues 9413, 21887): every listing is a
//! conditional request (`If-None-Match` with the last `ETag`; GitHub does not count a
//! `304` against the limit), the client stops before the limit instead of hammering
//! (`X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`, `Retry-After` after a 429 or
//! 403), and every failure is an error naming the provider, the repository and the
//! HTTP status, never an empty list, so nothing is deleted on a bad answer (Argo CD
//! issue 14318). Tokens never appear in errors or logs.

use prism_engine::generators::pull_request::{GithubPullRequests, SecretRef};
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
        use serde::Deserialize;
        let text =
            crate::fsread::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        prism_engine::limits::check_yaml(&text, &prism_engine::Limits::default())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_yaml::Value::deserialize(doc)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let v: Value =
                serde_json::to_value(v).map_err(|e| format!("{}: {e}", path.display()))?;
            match v["items"].as_array() {
                Some(items) if v["kind"] == "List" => docs.extend(items.iter().cloned()),
                _ if v.is_null() => {}
                _ => docs.push(v),
            }
        }
        ScmTokens::from_secrets(&docs).map_err(|e| format!("{}: {e}", path.display()))
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
}

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
        }
    }

    /// Requests made, by (provider, HTTP status; 0 for no answer).
    pub fn requests(&self) -> HashMap<(String, u16), u64> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn count(&self, provider: &str, status: u16) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((provider.to_string(), status)).or_default() += 1;
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
            other => Err(PullRequestError::Other(format!(
                "the {other} provider is not wired yet (GitHub is); see issue 14"
            ))),
        }
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
        let token = match &spec.token_ref {
            Some(r) => Some(tokens.get(r)?.trim().to_string()),
            // As Argo: without a tokenRef, the process's GITHUB_TOKEN.
            None => std::env::var("GITHUB_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        let base = github_api_base(spec.api.as_deref());
        let repo = format!("{}/{}", spec.owner, spec.repo);
        let mut url = Some(format!(
            "{base}repos/{}/{}/pulls?per_page=100",
            spec.owner, spec.repo
        ));
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = url.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(PullRequestError::Other(format!(
                    "{repo}: more than {MAX_PAGES} pages of pull requests"
                )));
            }
            let page = self.github_page(&page_url, &repo, token.as_deref())?;
            out.extend(
                page.pulls
                    .into_iter()
                    .filter(|pr| spec.labels.iter().all(|l| pr.labels.contains(l))),
            );
            url = page.next;
        }
        Ok(out)
    }

    /// One page, conditionally on its last ETag.
    fn github_page(
        &self,
        url: &str,
        repo: &str,
        token: Option<&str>,
    ) -> Result<Page, PullRequestError> {
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
                    "{repo}: GitHub's rate limit is spent until {until} (Unix time); not asking before then"
                )));
            }
        }
        let cached_etag = self
            .pages
            .lock()
            .ok()
            .and_then(|p| p.get(url).map(|c| c.etag.clone()));
        let mut request = self
            .agent
            .get(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "prism");
        if let Some(t) = token {
            request = request.header("Authorization", &format!("Bearer {t}"));
        }
        if let Some(etag) = &cached_etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().map_err(|e| {
            self.count("github", 0);
            PullRequestError::Other(format!("{repo}: GET {url}: {e}"))
        })?;
        let status = response.status().as_u16();
        self.count("github", status);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
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
        let next = header("link").and_then(|l| next_link(&l));
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
                let pulls = parse_github_pulls(&body)
                    .map_err(|e| PullRequestError::Other(format!("{repo}: {url}: {e}")))?;
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
                "{repo}: HTTP 401: GitHub refused the token; check the tokenRef Secret"
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

/// GitHub's `GET /repos/{owner}/{repo}/pulls` answer.
fn parse_github_pulls(body: &str) -> Result<Vec<PullRequest>, String> {
    let items: Vec<Value> = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not a JSON list of pull requests: {e}"))?;
    items
        .iter()
        .map(|p| {
            let text = |v: &Value, what: &str| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("a pull request has no {what}"))
            };
            Ok(PullRequest {
                number: p["number"].as_i64().ok_or("a pull request has no number")?,
                title: text(&p["title"], "title")?,
                branch: text(&p["head"]["ref"], "head.ref")?,
                target_branch: text(&p["base"]["ref"], "base.ref")?,
                head_sha: text(&p["head"]["sha"], "head.sha")?,
                author: text(&p["user"]["login"], "user.login")?,
                labels: p["labels"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|x| x["name"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
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
    fn link_headers_give_the_next_page() {
        let link = r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=5>; rel="last""#;
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repositories/1/pulls?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }
}
