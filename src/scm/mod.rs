//! The SCM providers' edge: pull requests (the `pullRequest` generator) and
//! repositories, branches and paths (the `scmProvider` generator) from GitHub (and
//! Enterprise), GitLab, Gitea, Bitbucket Server and Cloud, and Azure DevOps.
//!
//! Careful with the rate limit (Argo CD issues 9413, 21887): every GET is a
//! conditional request (`If-None-Match` with the last `ETag`; GitHub does not count a
//! `304` against the limit), the client stops before the limit instead of hammering
//! (when `X-RateLimit-Remaining` is down to 1% of `X-RateLimit-Limit`, until
//! `X-RateLimit-Reset`; `Retry-After` after a 429 or 403), and every failure is an error naming the provider, the repository and the
//! HTTP status, never an empty list, so nothing is deleted on a bad answer (Argo CD
//! issue 14318). Tokens never appear in errors or logs.
//!
//! `pull_requests.rs` and `repositories.rs` hold what each provider's API looks like;
//! `github_app.rs` signs GitHub App JWTs; this file holds what they share: tokens,
//! TLS, paging, the conditional-request cache and the rate-limit state.

mod github_app;
mod pull_requests;
mod repositories;

use prism_engine::generators::pull_request::{ConfigMapKeyRef, SecretRef};
use prism_engine::sources::ScmError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most pages one listing follows (100 items a page).
const MAX_PAGES: usize = 100;
/// Largest page body read.
const MAX_BODY: u64 = 32 << 20;
/// Most bytes of answers the conditional-request cache keeps; the oldest pages go first.
const MAX_CACHED_BYTES: usize = 256 << 20;
/// Most pages the conditional-request cache keeps.
const MAX_CACHED_PAGES: usize = 50_000;

/// What the specs' credential references may name, read from Secrets and ConfigMaps:
/// `tokenRef`s and passwords (`(secretName, key)` → value), GitHub App Secrets
/// (`appSecretName`), and `caRef` certificates (`(configMapName, key)` → PEM).
#[derive(Clone, Default)]
pub struct ScmTokens {
    secrets: HashMap<(String, String), String>,
    config_maps: HashMap<(String, String), String>,
}

impl std::fmt::Debug for ScmTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_list().entries(self.secrets.keys()).finish()
    }
}

impl ScmTokens {
    /// Reads every key of every Secret (`data` base64 or `stringData`) and ConfigMap
    /// (`data`) given as whole objects.
    pub fn from_secrets<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Result<Self, String> {
        use base64::Engine;
        let mut out = ScmTokens::default();
        for s in objects {
            let name = s["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match s["kind"].as_str() {
                Some("ConfigMap") => {
                    for (k, v) in s["data"].as_object().into_iter().flatten() {
                        let text = v.as_str().unwrap_or_default().to_string();
                        out.config_maps.insert((name.clone(), k.clone()), text);
                    }
                    continue;
                }
                Some("Secret") | None => {}
                Some(_) => continue,
            }
            if let Some(data) = s["data"].as_object() {
                for (k, v) in data {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(v.as_str().unwrap_or_default().trim())
                        .map_err(|_| format!("Secret {name}: data.{k} is not base64"))?;
                    let text = String::from_utf8(bytes)
                        .map_err(|_| format!("Secret {name}: data.{k} is not UTF-8"))?;
                    out.secrets.insert((name.clone(), k.clone()), text);
                }
            }
            if let Some(data) = s["stringData"].as_object() {
                for (k, v) in data {
                    out.secrets.insert(
                        (name.clone(), k.clone()),
                        v.as_str().unwrap_or_default().into(),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Reads a YAML file of Secrets and ConfigMaps (`--scm-creds`).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let docs = crate::credentials::read_objects(path)?;
        ScmTokens::from_secrets(&docs).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The token `r` names, or (as Argo) the environment variable `env` without one.
    fn token(&self, r: Option<&SecretRef>, env: &str) -> Result<Option<String>, ScmError> {
        match r {
            Some(r) => Ok(Some(self.get(r)?.trim().to_string())),
            None => Ok(std::env::var(env).ok().filter(|t| !t.is_empty())),
        }
    }

    fn get(&self, r: &SecretRef) -> Result<&str, ScmError> {
        self.secret_key(&r.secret_name, &r.key).ok_or_else(|| {
            ScmError::Other(format!(
                "tokenRef: Secret {} has no key {} (or is not given: pass it in --scm-creds)",
                r.secret_name, r.key
            ))
        })
    }

    fn secret_key(&self, name: &str, key: &str) -> Option<&str> {
        self.secrets
            .get(&(name.to_string(), key.to_string()))
            .map(String::as_str)
    }

    /// The PEM certificates `caRef` names.
    fn ca(&self, r: &ConfigMapKeyRef) -> Result<&str, ScmError> {
        self.config_maps
            .get(&(r.config_map_name.clone(), r.key.clone()))
            .map(String::as_str)
            .ok_or_else(|| {
                ScmError::Other(format!(
                    "caRef: ConfigMap {} has no key {} (or is not given: pass it in --scm-creds)",
                    r.config_map_name, r.key
                ))
            })
    }
}

/// The header that carries a credential, if any: (name, value).
type Auth = Option<(&'static str, String)>;

/// How a provider block wants TLS checked: `insecure` skips verification, `ca` (PEM)
/// replaces the public roots.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct Tls {
    insecure: bool,
    ca: Option<String>,
}

/// A page as last seen: its `ETag` (when the API sends one), what it held, and when.
struct Cached {
    etag: Option<String>,
    items: Arc<[Value]>,
    next: Option<String>,
    /// The repository or organization it belongs to (for webhooks' invalidation).
    what: String,
    bytes: usize,
    seq: u64,
    fetched: std::time::Instant,
}

/// The page cache: pages by URL, and their total size.
#[derive(Default)]
struct PageCache {
    pages: HashMap<String, Cached>,
    bytes: usize,
    seq: u64,
}

impl PageCache {
    fn insert(&mut self, url: String, mut page: Cached) {
        self.seq += 1;
        page.seq = self.seq;
        self.bytes += page.bytes;
        if let Some(old) = self.pages.insert(url, page) {
            self.bytes -= old.bytes;
        }
        if self.bytes > MAX_CACHED_BYTES || self.pages.len() > MAX_CACHED_PAGES {
            // Drop the oldest quarter: the cache only saves requests, never answers.
            let mut seqs: Vec<u64> = self.pages.values().map(|c| c.seq).collect();
            seqs.sort_unstable();
            let cut = seqs[seqs.len() / 4];
            let bytes = &mut self.bytes;
            self.pages.retain(|_, c| {
                let keep = c.seq > cut;
                if !keep {
                    *bytes -= c.bytes;
                }
                keep
            });
        }
    }
}

/// The SCM client of one process: HTTP agents, the conditional-request cache, the
/// rate-limit state and GitHub App installation tokens, shared by every ApplicationSet.
pub struct ScmClient {
    timeout: Duration,
    agents: Mutex<HashMap<Tls, ureq::Agent>>,
    cache: Mutex<PageCache>,
    /// Host → Unix second until which the rate limit is spent.
    blocked_until: Mutex<HashMap<String, u64>>,
    requests: Mutex<HashMap<(String, u16), u64>>,
    /// Told of every request: provider, HTTP status (0: no answer), rate limit left.
    observer: Option<Observer>,
    /// Pages fetched less than this long ago are served without asking again.
    fresh_for: Duration,
    /// API URLs a spec may name in `api` (empty: any), as Argo's `--allowed-scm-providers`.
    allowed_apis: Vec<String>,
    apps: github_app::Installations,
    /// Bitbucket Cloud's API root (its `scmProvider` block has no `api`).
    bitbucket_cloud_api: String,
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
        ScmClient {
            timeout,
            agents: Mutex::default(),
            cache: Mutex::default(),
            blocked_until: Mutex::default(),
            requests: Mutex::default(),
            observer: None,
            fresh_for: Duration::ZERO,
            allowed_apis: Vec::new(),
            apps: github_app::Installations::default(),
            bitbucket_cloud_api: "https://api.bitbucket.org/2.0".into(),
        }
    }

    /// Tells `f` of every request (provider, HTTP status, rate limit left).
    pub fn with_observer(mut self, f: Observer) -> ScmClient {
        self.observer = Some(f);
        self
    }

    /// Serves a page fetched less than `d` ago from the cache without asking: one
    /// listing per repository per refresh, shared by every ApplicationSet and matrix
    /// position. A webhook for the repository ends it early ([`ScmClient::forget`]).
    pub fn with_freshness(mut self, d: Duration) -> ScmClient {
        self.fresh_for = d;
        self
    }

    /// Accepts only these API URLs in a spec's `api` (Argo's `--allowed-scm-providers`;
    /// empty: any). Specs without `api` use the public service.
    pub fn with_allowed_apis(mut self, apis: Vec<String>) -> ScmClient {
        self.allowed_apis = apis;
        self
    }

    /// Asks Bitbucket Cloud's API at `url` instead of `https://api.bitbucket.org/2.0`
    /// for `scmProvider` blocks, which cannot name an `api` (a mirror or proxy; tests).
    pub fn with_bitbucket_cloud_api(mut self, url: &str) -> ScmClient {
        self.bitbucket_cloud_api = url.trim_end_matches('/').to_string();
        self
    }

    /// Requests made, by (provider, HTTP status; 0 for no answer).
    pub fn requests(&self) -> HashMap<(String, u16), u64> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Ends the freshness of every page of `repo` (`owner/name`, any case): a webhook
    /// said it changed, so the next listing asks (conditionally) again.
    pub fn forget(&self, repo: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            let stale = std::time::Instant::now() - self.fresh_for.max(Duration::from_secs(1));
            for page in cache.pages.values_mut() {
                if page.what.eq_ignore_ascii_case(repo) {
                    page.fetched = stale.min(page.fetched);
                }
            }
        }
    }

    /// Refuses an `api` the operator has not allowed.
    fn check_api(&self, api: Option<&str>) -> Result<(), ScmError> {
        match api.filter(|a| !a.is_empty()) {
            Some(api)
                if !self.allowed_apis.is_empty() && !self.allowed_apis.iter().any(|a| a == api) =>
            {
                Err(ScmError::Other(format!(
                    "scm provider {api:?} not allowed, must use one of the following: {}",
                    self.allowed_apis.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    fn count(&self, provider: &str, status: u16, remaining: Option<u64>) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((provider.to_string(), status)).or_default() += 1;
        }
        if let Some(f) = &self.observer {
            f(provider, status, remaining);
        }
    }

    /// The agent for `tls` (one per setting, made once).
    fn agent(&self, tls: &Tls) -> Result<ureq::Agent, ScmError> {
        if let Some(a) = self.agents.lock().ok().and_then(|a| a.get(tls).cloned()) {
            return Ok(a);
        }
        let mut config = ureq::tls::TlsConfig::builder().disable_verification(tls.insecure);
        if let Some(pem) = &tls.ca {
            let certs = ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ScmError::Other(format!("caRef: the certificates do not parse: {e}"))
                })?;
            if certs.is_empty() {
                return Err(ScmError::Other(
                    "caRef: the ConfigMap key holds no PEM certificate".into(),
                ));
            }
            config = config.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(config.build())
            .build()
            .into();
        if let Ok(mut a) = self.agents.lock() {
            a.insert(tls.clone(), agent.clone());
        }
        Ok(agent)
    }

    /// Every item of every page from `first`, following the provider's paging.
    fn list(
        &self,
        api: &Api,
        call: &Call,
        first: String,
        what: &str,
    ) -> Result<Vec<Value>, ScmError> {
        let mut next = Some(first);
        let mut out = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(ScmError::Other(format!(
                    "{what}: more than {MAX_PAGES} pages from {}",
                    api.title
                )));
            }
            let page = self.page(api, call, &page_url, what, api.items)?;
            out.extend(page.items.iter().cloned());
            next = page.next;
        }
        Ok(out)
    }

    /// One object (a branch, a file): `None` when the provider answers 404.
    fn get(
        &self,
        api: &Api,
        call: &Call,
        url: &str,
        what: &str,
    ) -> Result<Option<Value>, ScmError> {
        match self.page(api, call, url, what, |v, _| Ok((vec![v], None))) {
            Ok(page) => Ok(page.items.first().cloned()),
            Err(ScmError::RepositoryNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of `api`, conditionally on its last ETag, its items cut out by `items`.
    fn page(
        &self,
        api: &Api,
        call: &Call,
        url: &str,
        what: &str,
        items: ItemsOf,
    ) -> Result<Page, ScmError> {
        let provider = api.name;
        let host = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_default()
            .to_string();
        let now = unix_now();
        let cached_etag = {
            let cache = self
                .cache
                .lock()
                .map_err(|_| ScmError::Other("the SCM page cache is poisoned".into()))?;
            match cache.pages.get(url) {
                Some(c) if !self.fresh_for.is_zero() && c.fetched.elapsed() < self.fresh_for => {
                    return Ok(Page {
                        items: c.items.clone(),
                        next: c.next.clone(),
                    })
                }
                Some(c) => c.etag.clone(),
                None => None,
            }
        };
        if let Some(until) = self
            .blocked_until
            .lock()
            .ok()
            .and_then(|b| b.get(&host).copied())
        {
            if until > now {
                return Err(ScmError::Other(format!(
                    "{what}: {}'s rate limit is spent (or down to the 1% Prism leaves to other \
                     users of the token) until {until} (Unix time); not asking before then",
                    api.title
                )));
            }
        }
        let mut request = self
            .agent(&call.tls)?
            .get(url)
            .header("User-Agent", "prism");
        for (name, value) in api.headers {
            request = request.header(*name, *value);
        }
        if let Some((name, value)) = &call.auth {
            request = request.header(*name, value);
        }
        if let Some(etag) = &cached_etag {
            request = request.header("If-None-Match", etag);
        }
        let mut response = request.call().map_err(|e| {
            self.count(provider, 0, None);
            ScmError::Other(format!("{what}: GET {url}: {e}"))
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
        // Stop before the limit, not at it: 1% of it stays for the token's other users
        // (people, CI) until the window resets.
        let limit = header("x-ratelimit-limit").and_then(|v| v.parse::<u64>().ok());
        let reserve = limit.map(|l| l / 100).unwrap_or(0);
        if let (Some(left), Some(reset)) = (remaining, reset) {
            if left <= reserve {
                if let Ok(mut b) = self.blocked_until.lock() {
                    b.insert(host.clone(), reset);
                }
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
                let mut cache = self
                    .cache
                    .lock()
                    .map_err(|_| ScmError::Other("the SCM page cache is poisoned".into()))?;
                let cached = cache
                    .pages
                    .get_mut(url)
                    .ok_or_else(|| ScmError::Other(format!("{what}: 304 for a page never seen")))?;
                cached.fetched = std::time::Instant::now();
                Ok(Page {
                    items: cached.items.clone(),
                    next: cached.next.clone(),
                })
            }
            200 => {
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BODY)
                    .read_to_string()
                    .map_err(|e| ScmError::Other(format!("{what}: reading {url}: {e}")))?;
                let value: Value = serde_json::from_str(&body).map_err(|e| {
                    ScmError::Other(format!("{what}: {url}: the answer is not JSON: {e}"))
                })?;
                let (items, body_next) = items(value, url)
                    .map_err(|e| ScmError::Other(format!("{what}: {url}: {e}")))?;
                let items: Arc<[Value]> = items.into();
                let next = next.or(body_next);
                // Kept for conditional requests (with an `ETag`) and for the freshness
                // window (with or without one: not every API sends `ETag`s).
                let keep = etag.is_some() || !self.fresh_for.is_zero();
                if let (true, Ok(mut cache)) = (keep, self.cache.lock()) {
                    cache.insert(
                        url.to_string(),
                        Cached {
                            etag,
                            items: items.clone(),
                            next: next.clone(),
                            what: what.to_string(),
                            bytes: body.len() + url.len(),
                            seq: 0,
                            fetched: std::time::Instant::now(),
                        },
                    );
                }
                Ok(Page { items, next })
            }
            404 => Err(ScmError::RepositoryNotFound(what.to_string())),
            401 => Err(ScmError::Other(format!(
                "{what}: HTTP 401: {} refused the credentials; check the Secret the spec names",
                api.title
            ))),
            403 | 429 => Err(ScmError::Other(format!(
                "{what}: HTTP {status}: rate limited or forbidden{}",
                retry_after
                    .map(|s| format!("; retry after {s} s"))
                    .unwrap_or_default()
            ))),
            other => Err(ScmError::Other(format!(
                "{what}: HTTP {other} from GET {url}"
            ))),
        }
    }
}

/// How one provider block's requests are made: the credential header and TLS.
struct Call {
    auth: Auth,
    tls: Tls,
}

/// A page's items and the next page's URL.
struct Page {
    items: Arc<[Value]>,
    next: Option<String>,
}

/// What differs between providers' APIs: headers, paging, where a page keeps its items.
struct Api {
    name: &'static str,
    title: &'static str,
    headers: &'static [(&'static str, &'static str)],
    /// The next page's URL from the answer's headers (by lower-case name) and this page's URL.
    next: fn(&Headers<'_>, &str) -> Option<String>,
    /// A page's items and, when the body says it, the next page's URL.
    items: ItemsOf,
}

/// Cuts a page's items (and the next page's URL, when the body says it) out of its JSON.
type ItemsOf = fn(Value, &str) -> Result<(Vec<Value>, Option<String>), String>;

/// An answer's headers, by lower-case name.
type Headers<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// An answer that is a JSON list.
fn json_list(body: Value, _: &str) -> Result<(Vec<Value>, Option<String>), String> {
    match body {
        Value::Array(items) => Ok((items, None)),
        _ => Err("the answer is not a JSON list".into()),
    }
}

const GITHUB: Api = Api {
    name: "github",
    title: "GitHub",
    headers: &[
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
    ],
    next: |header, _| header("link").as_deref().and_then(next_link),
    items: json_list,
};

const GITLAB: Api = Api {
    name: "gitlab",
    title: "GitLab",
    headers: &[("Accept", "application/json")],
    next: |header, url| {
        let page = header("x-next-page")?;
        let page = Some(page.trim()).filter(|p| !p.is_empty())?;
        Some(with_query(url, "page", page))
    },
    items: json_list,
};

const GITEA: Api = Api {
    name: "gitea",
    title: "Gitea",
    headers: &[("Accept", "application/json")],
    next: |header, _| header("link").as_deref().and_then(next_link),
    items: json_list,
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
    // `values`; the next page is `start=<nextPageStart>` until `isLastPage`.
    items: |mut page, url| {
        let next = match (page["isLastPage"].as_bool(), page["nextPageStart"].as_i64()) {
            (Some(false), Some(start)) => Some(with_query(url, "start", &start.to_string())),
            _ => None,
        };
        match page["values"].take() {
            Value::Array(items) => Ok((items, next)),
            _ => Err("the answer has no values list".into()),
        }
    },
};

const BITBUCKET_CLOUD: Api = Api {
    name: "bitbucket",
    title: "Bitbucket Cloud",
    headers: &[("Accept", "application/json")],
    next: |_, _| None,
    // `values`; the next page is the body's `next` URL.
    items: |mut page, _| {
        let next = page["next"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        match page["values"].take() {
            Value::Array(items) => Ok((items, next)),
            _ => Err("the answer has no values list".into()),
        }
    },
};

const AZURE_DEVOPS: Api = Api {
    name: "azuredevops",
    title: "Azure DevOps",
    headers: &[("Accept", "application/json")],
    next: |header, url| {
        let token = header("x-ms-continuationtoken")?;
        let token = Some(token.trim()).filter(|t| !t.is_empty())?;
        Some(with_query(
            url,
            "continuationToken",
            &encode_component(token),
        ))
    },
    items: |mut page, _| match page["value"].take() {
        Value::Array(items) => Ok((items, None)),
        _ => Err("the answer has no value list".into()),
    },
};

/// `url` with its query parameter `name` set to `value` (appended, or replaced when
/// it is the last one, as every pager here leaves it).
fn with_query(url: &str, name: &str, value: &str) -> String {
    let base = url
        .split(&format!("&{name}="))
        .next()
        .unwrap_or(url)
        .split(&format!("?{name}="))
        .next()
        .unwrap_or(url);
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{name}={value}")
}

/// The current Unix time in seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

    fn page(bytes: usize) -> Cached {
        Cached {
            etag: Some("\"e\"".into()),
            items: Arc::from(Vec::new()),
            next: None,
            what: "o/r".into(),
            bytes,
            seq: 0,
            fetched: std::time::Instant::now(),
        }
    }

    /// The conditional-request cache stays under its size: over it, the oldest quarter
    /// goes, and the newest page is kept.
    #[test]
    fn the_page_cache_drops_its_oldest_pages_when_full() {
        let mut cache = PageCache::default();
        let each = MAX_CACHED_BYTES / 10;
        for i in 0..10 {
            cache.insert(format!("https://api/{i}"), page(each));
        }
        assert_eq!(cache.pages.len(), 10);
        cache.insert("https://api/10".into(), page(each));
        assert!(cache.bytes <= MAX_CACHED_BYTES, "{}", cache.bytes);
        assert!(cache.pages.contains_key("https://api/10"));
        assert!(!cache.pages.contains_key("https://api/0"));
        assert_eq!(
            cache.bytes,
            cache.pages.values().map(|c| c.bytes).sum::<usize>()
        );
        // Replacing a page counts its size once.
        let before = cache.bytes;
        cache.insert("https://api/10".into(), page(each));
        assert_eq!(cache.bytes, before);
    }

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
