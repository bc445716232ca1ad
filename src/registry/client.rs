//! A small blocking client for the OCI distribution API: `/v2/` challenge, Bearer
//! token and Basic auth, `tags/list` with `Link` pagination, manifests with the full
//! Accept set (OCI manifest and index, Docker v2 manifest and list), config blobs for
//! `created`; retries on 429/5xx honouring `Retry-After`.

use super::strategy;
use prism_engine::generators::images::{ImageQuery, ResolvedImage, Strategy};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";
const RETRIES: u32 = 3;

/// `--registries FILE`: per-registry settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registries, matched by longest prefix.
    #[serde(default)]
    pub registries: Vec<RegistrySetting>,
}

/// How to reach one registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrySetting {
    /// Matched against the image name (`host[:port][/path]`).
    pub prefix: String,
    /// Where the API is (`http://` for plain-HTTP registries) [default: `https://<host>`].
    #[serde(rename = "apiURL", default)]
    pub api_url: Option<String>,
    /// A PEM file of CAs to trust (self-signed registries).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM text of CAs to trust.
    #[serde(default)]
    pub ca_data: Option<String>,
    /// Skip TLS verification (logged loudly).
    #[serde(default)]
    pub insecure: bool,
    /// Credentials.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// Requests per second at most (requests are spaced to stay under it).
    #[serde(default)]
    pub rate_per_second: Option<f64>,
}

/// Registry credentials, one of the forms.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// User name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token.
    #[serde(default)]
    pub password: Option<String>,
    /// A docker `config.json` whose `auths` has this registry.
    #[serde(default)]
    pub docker_config_file: Option<PathBuf>,
    /// An environment variable holding `user:pass`.
    #[serde(default)]
    pub env: Option<String>,
}

impl RegistrySetting {
    /// A registry at `api_url` for names starting with `prefix`, anonymous, no TLS options.
    pub fn new(prefix: &str, api_url: &str) -> RegistrySetting {
        RegistrySetting {
            prefix: prefix.to_string(),
            api_url: Some(api_url.to_string()),
            ca_file: None,
            ca_data: None,
            insecure: false,
            credentials: None,
            rate_per_second: None,
        }
    }
}

impl RegistrySettings {
    /// Reads a settings file.
    pub fn load(file: &Path) -> Result<RegistrySettings, String> {
        let text = crate::fsread::read_to_string(file)
            .map_err(|e| format!("{}: cannot read registries file: {e}", file.display()))?;
        serde_yaml::from_str(&text).map_err(|e| {
            format!(
                "{}: not a registries file ({e}); expected `registries:` with prefix, apiURL, credentials",
                file.display()
            )
        })
    }
}

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path inside the registry (`library/nginx` for Docker Hub's short names).
    pub repository: String,
}

impl ImageRef {
    /// Splits an image name as Docker does: the first part is a registry only if it has
    /// a `.` or `:` or is `localhost`; Docker Hub names without a `/` are in `library/`.
    pub fn parse(name: &str) -> Result<ImageRef, String> {
        let name = name.trim();
        if name.is_empty() || name.contains(['@', ' ']) || name.ends_with('/') {
            return Err(format!(
                "{name:?} is not an image name (registry/path/name, no tag)"
            ));
        }
        match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                Ok(ImageRef {
                    registry: first.to_string(),
                    repository: rest.to_string(),
                })
            }
            Some(_) => Ok(ImageRef {
                registry: "docker.io".into(),
                repository: name.to_string(),
            }),
            None => Ok(ImageRef {
                registry: "docker.io".into(),
                repository: format!("library/{name}"),
            }),
        }
    }
}

/// Resolves images; shared by every ApplicationSet of a run.
pub struct RegistryClient {
    settings: RegistrySettings,
    docker_auth: HashMap<String, String>,
    tokens: Mutex<HashMap<(String, String), String>>,
    resolved: Mutex<HashMap<String, ResolvedImage>>,
    requests: AtomicU64,
    agents: Mutex<HashMap<String, ureq::Agent>>,
    last_request: Mutex<HashMap<String, std::time::Instant>>,
}

/// What one request is for: the registry's base URL, auth and TLS.
struct Target {
    base: String,
    registry: String,
    repository: String,
    basic: Option<String>,
    agent: ureq::Agent,
    rate: Option<f64>,
}

impl RegistryClient {
    /// A client with these settings and, optionally, a docker `config.json` (`--registry-auth`).
    pub fn new(settings: RegistrySettings, docker_config: Option<&Path>) -> Result<Self, String> {
        let docker_auth = match docker_config {
            Some(p) => read_docker_config(p)?,
            None => HashMap::new(),
        };
        Ok(RegistryClient {
            settings,
            docker_auth,
            tokens: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            agents: Mutex::new(HashMap::new()),
            last_request: Mutex::new(HashMap::new()),
        })
    }

    /// HTTP requests made so far (the benchmark reports it per resolution).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Resolves `query` to a tag and digest, once per distinct query.
    pub fn resolve(&self, query: &ImageQuery) -> Result<ResolvedImage, String> {
        // The alias only names the parameters: equal queries under two aliases resolve once.
        let key = format!(
            "{:?}",
            (
                &query.name,
                query.strategy,
                &query.constraint,
                &query.allow_tags,
                &query.ignore_tags,
                &query.platforms
            )
        );
        if let Some(hit) = self.resolved.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(hit);
        }
        let resolved = self.resolve_uncached(query)?;
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    fn resolve_uncached(&self, query: &ImageQuery) -> Result<ResolvedImage, String> {
        let image = ImageRef::parse(&query.name)?;
        let target = self.target(&query.name, &image)?;
        let pick = |tag: &str| -> Result<ResolvedImage, String> {
            Ok(ResolvedImage {
                digest: self.digest(&target, tag)?,
                tag: tag.to_string(),
            })
        };
        if query.strategy == Strategy::Digest {
            // No tag list needed: follow the one tag.
            return pick(&query.constraint);
        }
        let tags = self.tags(&target)?;
        let allowed = strategy::allowed(query, &tags)?;
        let none = || {
            format!(
                "no tag of {} passes the filters (strategy {:?}, constraint {:?}, allowTags {}, ignoreTags {:?}); \
                 check them against the registry's tags",
                tags.len(),
                query.strategy,
                query.constraint,
                query.allow_tags.as_deref().unwrap_or("any"),
                query.ignore_tags
            )
        };
        match query.strategy {
            Strategy::Semver => {
                pick(strategy::semver(&allowed, &query.constraint)?.ok_or_else(none)?)
            }
            Strategy::Alphabetical => pick(strategy::alphabetical(&allowed).ok_or_else(none)?),
            Strategy::Digest => pick(&query.constraint),
            Strategy::NewestBuild => {
                // Reading `created` already fetched each manifest, so its digest is known.
                let mut created = Vec::new();
                let mut digests = HashMap::new();
                for tag in &allowed {
                    if let Some((digest, when)) = self.created(&target, tag, &query.platforms)? {
                        digests.insert(*tag, digest);
                        created.push((*tag, when));
                    }
                }
                let tag = strategy::newest(&created).ok_or_else(none)?;
                Ok(ResolvedImage {
                    digest: digests.remove(tag).unwrap_or_default(),
                    tag: tag.to_string(),
                })
            }
        }
    }

    fn target(&self, name: &str, image: &ImageRef) -> Result<Target, String> {
        // Matched against the name as written and in full (`docker.io/library/nginx`).
        let full = format!("{}/{}", image.registry, image.repository);
        let setting = self
            .settings
            .registries
            .iter()
            .filter(|s| {
                let p = s.prefix.trim_end_matches('/');
                name.starts_with(p) || full.starts_with(p)
            })
            .max_by_key(|s| s.prefix.len());
        let base = match setting.and_then(|s| s.api_url.clone()) {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if image.registry == "docker.io" => "https://registry-1.docker.io".into(),
            None => format!("https://{}", image.registry),
        };
        let basic = match setting.and_then(|s| s.credentials.as_ref()) {
            Some(c) => Some(basic_from(c, &image.registry)?),
            None => self.docker_auth.get(&image.registry).cloned(),
        };
        let key = setting.map(|s| s.prefix.clone()).unwrap_or_default();
        let cached = self.agents.lock().ok().and_then(|a| a.get(&key).cloned());
        let agent = match cached {
            Some(a) => a,
            None => {
                let a = make_agent(setting, &image.registry)?;
                if let Ok(mut agents) = self.agents.lock() {
                    agents.insert(key, a.clone());
                }
                a
            }
        };
        Ok(Target {
            base,
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            basic,
            agent,
            rate: setting.and_then(|s| s.rate_per_second).filter(|r| *r > 0.0),
        })
    }

    /// Sends a request with auth, answering the registry's challenge once and retrying
    /// 429/5xx with backoff.
    fn send(
        &self,
        t: &Target,
        head: bool,
        url: &str,
    ) -> Result<ureq::http::Response<ureq::Body>, String> {
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            let token = self
                .tokens
                .lock()
                .ok()
                .and_then(|m| m.get(&(t.registry.clone(), t.repository.clone())).cloned());
            let auth = match (&token, &t.basic) {
                (Some(tok), _) => Some(format!("Bearer {tok}")),
                (None, Some(b)) if challenged => Some(format!("Basic {b}")),
                _ => None,
            };
            self.pace(t);
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut request = if head {
                t.agent.head(url)
            } else {
                t.agent.get(url)
            }
            .header("Accept", ACCEPT);
            if let Some(a) = &auth {
                request = request.header("Authorization", a.as_str());
            }
            let result = request.call();
            let response = result.map_err(|e| describe_transport(&t.base, e))?;
            let status = response.status().as_u16();
            if status == 401 && !challenged {
                challenged = true;
                let header = response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if let Some(params) = header.strip_prefix("Bearer ") {
                    let token = self.token(t, params)?;
                    if let Ok(mut m) = self.tokens.lock() {
                        m.insert((t.registry.clone(), t.repository.clone()), token);
                    }
                } else if t.basic.is_none() {
                    return Err(format!(
                        "{} asks for credentials ({header}); set credentials for it in --registries or pass --registry-auth",
                        t.registry
                    ));
                }
                continue;
            }
            if (status == 429 || status >= 500) && attempt < RETRIES {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)))
                    .unwrap_or(Duration::from_millis(200 << attempt));
                attempt += 1;
                tracing::debug!(url, status, ?wait, "registry busy; retrying");
                std::thread::sleep(wait);
                continue;
            }
            if status == 401 || status == 403 {
                return Err(format!(
                    "{} refused the credentials for {} (HTTP {status}); check the registry credentials",
                    t.registry, t.repository
                ));
            }
            return Ok(response);
        }
    }

    /// Waits so that requests to `t`'s registry stay under its `ratePerSecond`.
    fn pace(&self, t: &Target) {
        let Some(rate) = t.rate else { return };
        let interval = Duration::from_secs_f64(1.0 / rate);
        let wait = match self.last_request.lock() {
            Ok(mut last) => {
                let now = std::time::Instant::now();
                let next = last
                    .get(&t.base)
                    .map(|l| *l + interval)
                    .unwrap_or(now)
                    .max(now);
                last.insert(t.base.clone(), next);
                next - now
            }
            Err(_) => Duration::ZERO,
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// The Bearer token flow: GET realm?service=&scope=, with Basic credentials if any.
    fn token(&self, t: &Target, params: &str) -> Result<String, String> {
        let fields = parse_challenge(params);
        let realm = fields
            .get("realm")
            .ok_or_else(|| format!("{}: Bearer challenge without realm", t.registry))?;
        let scope = fields
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", t.repository));
        let mut req = t.agent.get(realm.as_str()).query("scope", &scope);
        if let Some(service) = fields.get("service") {
            req = req.query("service", service);
        }
        if let Some(b) = &t.basic {
            req = req.header("Authorization", format!("Basic {b}"));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = req.call().map_err(|e| describe_transport(realm, e))?;
        if response.status().as_u16() != 200 {
            return Err(format!(
                "token service {realm} refused access to {} (HTTP {}); check the registry credentials",
                t.repository,
                response.status().as_u16()
            ));
        }
        let body: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| format!("token service {realm}: {e}"))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("token service {realm} answered without a token"))
    }

    /// Every tag, following `Link` pagination.
    fn tags(&self, t: &Target) -> Result<Vec<String>, String> {
        let mut url = format!("{}/v2/{}/tags/list?n=1000", t.base, t.repository);
        let mut tags = Vec::new();
        for _ in 0..10_000 {
            let mut response = self.send(t, false, &url)?;
            let status = response.status().as_u16();
            if status == 404 {
                return Err(format!(
                    "{}/{} does not exist in the registry",
                    t.registry, t.repository
                ));
            }
            if status != 200 {
                return Err(format!("listing tags of {}: HTTP {status}", t.repository));
            }
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body: Value = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_json()
                .map_err(|e| format!("listing tags of {}: {e}", t.repository))?;
            if let Some(list) = body.get("tags").and_then(Value::as_array) {
                tags.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
            }
            match next {
                Some(n) if n.starts_with("http") => url = n,
                Some(n) => url = format!("{}{n}", t.base),
                None => return Ok(tags),
            }
        }
        Err(format!("listing tags of {}: too many pages", t.repository))
    }

    /// The manifest digest of `tag` (HEAD; GET and hash when the header is missing).
    fn digest(&self, t: &Target, tag: &str) -> Result<String, String> {
        let url = format!("{}/v2/{}/manifests/{tag}", t.base, t.repository);
        let response = self.send(t, true, &url)?;
        match response.status().as_u16() {
            200 => {}
            404 => {
                return Err(format!(
                    "{}/{}:{tag} does not exist",
                    t.registry, t.repository
                ))
            }
            s => return Err(format!("{}:{tag}: HTTP {s}", t.repository)),
        }
        if let Some(d) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            return Ok(d.to_string());
        }
        let (_, digest) = self.manifest(t, tag)?;
        Ok(digest)
    }

    /// A manifest's JSON and digest.
    fn manifest(&self, t: &Target, reference: &str) -> Result<(Value, String), String> {
        let url = format!("{}/v2/{}/manifests/{reference}", t.base, t.repository);
        let mut response = self.send(t, false, &url)?;
        if response.status().as_u16() != 200 {
            return Err(format!(
                "{}@{reference}: HTTP {}",
                t.repository,
                response.status().as_u16()
            ));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| format!("{}@{reference}: {e}", t.repository))?;
        let digest = format!("sha256:{}", crate::digest::sha256_hex(&body));
        let json = serde_json::from_slice(&body)
            .map_err(|e| format!("{}@{reference}: {e}", t.repository))?;
        Ok((json, digest))
    }

    /// For newest-build: the tag's digest and its image's `created`, from the
    /// manifest (an index's first child matching `platforms`) and config blob.
    fn created(
        &self,
        t: &Target,
        tag: &str,
        platforms: &[String],
    ) -> Result<Option<(String, String)>, String> {
        let (manifest, digest) = self.manifest(t, tag)?;
        let manifest = match manifest.get("manifests").and_then(Value::as_array) {
            Some(children) => {
                let child = children.iter().find(|c| {
                    let p = &c["platform"];
                    let name = format!(
                        "{}/{}{}",
                        p["os"].as_str().unwrap_or(""),
                        p["architecture"].as_str().unwrap_or(""),
                        p["variant"]
                            .as_str()
                            .map(|v| format!("/{v}"))
                            .unwrap_or_default()
                    );
                    platforms.is_empty() || platforms.contains(&name)
                });
                let Some(child) = child.and_then(|c| c["digest"].as_str()) else {
                    return Ok(None);
                };
                self.manifest(t, child)?.0
            }
            None => manifest,
        };
        let Some(config) = manifest["config"]["digest"].as_str() else {
            return Ok(None);
        };
        let url = format!("{}/v2/{}/blobs/{config}", t.base, t.repository);
        let mut response = self.send(t, false, &url)?;
        if response.status().as_u16() != 200 {
            return Err(format!(
                "{}: config blob {config}: HTTP {}",
                t.repository,
                response.status().as_u16()
            ));
        }
        let config: Value = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_json()
            .map_err(|e| format!("{}: config blob: {e}", t.repository))?;
        Ok(config["created"].as_str().map(|c| (digest, c.to_string())))
    }
}

/// An HTTP agent for a registry's settings (TLS roots, verification); reused, so
/// connections are kept alive across requests.
fn make_agent(setting: Option<&RegistrySetting>, registry: &str) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(s) = setting {
        if s.insecure {
            tracing::warn!(
                registry,
                "TLS verification is OFF for this registry (insecure: true)"
            );
            tls = tls.disable_verification(true);
        }
        let pem = match (&s.ca_file, &s.ca_data) {
            (Some(f), _) => {
                Some(std::fs::read(f).map_err(|e| format!("caFile {}: {e}", f.display()))?)
            }
            (None, Some(d)) => Some(d.as_bytes().to_vec()),
            _ => None,
        };
        if let Some(pem) = pem {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "{}: caFile/caData holds no PEM certificate",
                    s.prefix
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
    }
    Ok(ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .tls_config(tls.build())
        .build()
        .into())
}

/// `Link: </v2/x/tags/list?last=a&n=2>; rel="next"` → the URL.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// `realm="…",service="…",scope="…"` → map.
fn parse_challenge(params: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = params.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, t)) => (v.to_string(), t),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, t)) => (v.to_string(), t),
                None => (after.to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = tail.trim_start_matches(',');
    }
    out
}

fn basic_from(c: &Credentials, registry: &str) -> Result<String, String> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        return Ok(b64(&format!("{u}:{p}")));
    }
    if let Some(var) = &c.env {
        let v = std::env::var(var).map_err(|_| format!("credentials.env: {var} is not set"))?;
        if !v.contains(':') {
            return Err(format!("credentials.env: {var} must hold user:password"));
        }
        return Ok(b64(&v));
    }
    if let Some(file) = &c.docker_config_file {
        return read_docker_config(file)?
            .remove(registry)
            .ok_or_else(|| format!("{} has no auths entry for {registry}", file.display()));
    }
    Err("credentials: give username and password, env, or dockerConfigFile".into())
}

/// `auths.<registry>.auth` (base64 `user:pass`) of a docker `config.json`.
fn read_docker_config(path: &Path) -> Result<HashMap<String, String>, String> {
    let text =
        crate::fsread::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a docker config.json: {e}", path.display()))?;
    let mut out = HashMap::new();
    if let Some(auths) = v.get("auths").and_then(Value::as_object) {
        for (host, entry) in auths {
            if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
                let host = host
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches("/v1/")
                    .trim_end_matches('/');
                let host = if host == "index.docker.io" {
                    "docker.io"
                } else {
                    host
                };
                out.insert(host.to_string(), auth.to_string());
            }
        }
    }
    Ok(out)
}

/// A transport error with the fix for the common one: an unknown CA.
fn describe_transport(base: &str, e: ureq::Error) -> String {
    let text = e.to_string();
    if text.contains("certificate") || text.contains("UnknownIssuer") || text.contains("x509") {
        format!(
            "{base}: TLS certificate not trusted ({text}); for a self-signed registry set caFile (or caData) \
             for it in --registries, or insecure: true to skip verification"
        )
    } else {
        format!("{base}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_like_docker() {
        let p = |n: &str| {
            ImageRef::parse(n)
                .map(|r| (r.registry, r.repository))
                .unwrap()
        };
        assert_eq!(p("nginx"), ("docker.io".into(), "library/nginx".into()));
        assert_eq!(p("team/app"), ("docker.io".into(), "team/app".into()));
        assert_eq!(
            p("registry.example.com/team/app"),
            ("registry.example.com".into(), "team/app".into())
        );
        assert_eq!(
            p("127.0.0.1:5000/app"),
            ("127.0.0.1:5000".into(), "app".into())
        );
        assert_eq!(p("localhost/app"), ("localhost".into(), "app".into()));
        assert!(ImageRef::parse("app@sha256:x").is_err());
    }

    #[test]
    fn challenges_and_links_parse() {
        let c = parse_challenge(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(c["realm"], "https://auth.example/token");
        assert_eq!(c["service"], "registry.example");
        assert_eq!(c["scope"], "repository:a/b:pull");
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
    }
}
