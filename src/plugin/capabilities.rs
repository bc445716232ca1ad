//! What a running plugin may reach, as granted by its definition: the log, the
//! repositories its ApplicationSet names (`repoAccess`), and HTTP to `allowedHosts`.
//!
//! Every call checks the grant first and answers `denied: …` otherwise, checks the
//! call's deadline, and records what it read (commit SHAs, ref lists) so a cached
//! result can be reused only while those are unchanged.

use super::config::PluginDefinition;
use prism_engine::glob::{Dialect, Glob};
use prism_engine::{GitRef, Repository, Sources};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most log lines a call may write, and the longest line kept.
const MAX_LOG_LINES: usize = 200;
const MAX_LOG_LINE: usize = 2000;

/// Something a call read that a cached result depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// A repository revision resolved to this commit (`None` for a plain directory).
    Revision {
        /// Repository URL.
        repo: String,
        /// Revision as asked.
        revision: String,
        /// What it resolved to.
        commit: Option<String>,
    },
    /// The ref list of a repository, as a digest.
    Refs {
        /// Repository URL.
        repo: String,
        /// Digest of every (kind, name, sha).
        digest: String,
    },
}

impl Dependency {
    /// Whether `sources` still gives the same answer.
    pub fn still_holds(&self, sources: &dyn Sources) -> bool {
        match self {
            Dependency::Revision {
                repo,
                revision,
                commit,
            } => sources
                .repository(repo, revision)
                .map(|r| r.commit().map(str::to_string) == *commit)
                .unwrap_or(false),
            Dependency::Refs { repo, digest } => sources
                .refs(repo)
                .map(|refs| refs_digest(&refs) == *digest)
                .unwrap_or(false),
        }
    }
}

fn refs_digest(refs: &[GitRef]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for r in refs {
        h.update(r.kind.as_bytes());
        h.update([0]);
        h.update(r.name.as_bytes());
        h.update([0]);
        h.update(r.sha.as_bytes());
        h.update([0]);
    }
    crate::digest::hex(&h.finalize())
}

/// The capabilities of one call.
pub struct Capabilities {
    /// The plugin's name, for logs and messages.
    pub plugin: String,
    allowed_hosts: Vec<String>,
    repo_access: bool,
    http_max_bytes: usize,
    /// Repository URLs the ApplicationSet names.
    repositories: Vec<String>,
    sources: Option<Arc<dyn Sources + Send + Sync>>,
    deadline: Instant,
    log_lines: usize,
    /// What the call read.
    pub dependencies: Vec<Dependency>,
    /// Whether the call used HTTP (its result then expires).
    pub used_http: bool,
}

/// A GET response.
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body (at most `httpMaxBytes`).
    pub body: Vec<u8>,
}

impl Capabilities {
    /// The grants of `def` for one call ending at `deadline`.
    pub fn new(
        def: &PluginDefinition,
        repositories: &[String],
        sources: Option<Arc<dyn Sources + Send + Sync>>,
        deadline: Instant,
    ) -> Capabilities {
        Capabilities {
            plugin: def.name.clone(),
            allowed_hosts: def
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            repo_access: def.repo_access,
            http_max_bytes: def.http_max_bytes,
            repositories: repositories.to_vec(),
            sources,
            deadline,
            log_lines: 0,
            dependencies: vec![],
            used_http: false,
        }
    }

    /// Writes a plugin's log line to tracing, bounded in length and count.
    pub fn log(&mut self, level: tracing::Level, message: &str) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(plugin = %self.plugin, "more than {MAX_LOG_LINES} log lines in one call; dropping the rest");
            }
            return;
        }
        let line = super::truncate(message, MAX_LOG_LINE);
        let plugin = self.plugin.as_str();
        match level {
            tracing::Level::ERROR => tracing::error!(plugin, "{line}"),
            tracing::Level::WARN => tracing::warn!(plugin, "{line}"),
            tracing::Level::INFO => tracing::info!(plugin, "{line}"),
            _ => tracing::debug!(plugin, "{line}"),
        }
    }

    /// Time left in the call, or an error once it is over.
    fn remaining(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(format!(
                "plugin {} ran out of time (timeoutMs)",
                self.plugin
            ))
        } else {
            Ok(left)
        }
    }

    /// The sources, if `repoAccess` is granted and `repo` is one the ApplicationSet names.
    fn repo(&self, repo: &str) -> Result<Arc<dyn Sources + Send + Sync>, String> {
        if !self.repo_access {
            return Err(format!(
                "denied: plugin {} has no repository access; set repoAccess: true in its definition",
                self.plugin
            ));
        }
        let wanted = prism_engine::sources::normalize_url(repo);
        if !self
            .repositories
            .iter()
            .any(|r| prism_engine::sources::normalize_url(r) == wanted)
        {
            return Err(format!(
                "denied: {repo} is not a repository this ApplicationSet names (it names: {}); \
                 plugins may only read repositories the spec refers to",
                if self.repositories.is_empty() {
                    "none".to_string()
                } else {
                    self.repositories.join(", ")
                }
            ));
        }
        self.remaining()?;
        self.sources
            .clone()
            .ok_or_else(|| "denied: no repositories are available to this call".to_string())
    }

    /// A named repository at `revision`, recording the commit it resolved to.
    fn snapshot(&mut self, repo: &str, revision: &str) -> Result<Arc<dyn Repository>, String> {
        let snapshot = self
            .repo(repo)?
            .repository(repo, revision)
            .map_err(|e| format!("{repo} at {revision:?}: {e}"))?;
        self.dependencies.push(Dependency::Revision {
            repo: repo.to_string(),
            revision: revision.to_string(),
            commit: snapshot.commit().map(str::to_string),
        });
        Ok(snapshot)
    }

    /// `read-file`: a file of a named repository at a revision.
    pub fn read_file(&mut self, repo: &str, revision: &str, path: &str) -> Result<Vec<u8>, String> {
        check_path(path)?;
        self.snapshot(repo, revision)?
            .read(path)
            .map_err(|e| format!("{repo} at {revision:?}: {e}"))
    }

    /// `list-files`: files of a named repository matching a glob (`**` crosses directories).
    pub fn list_files(
        &mut self,
        repo: &str,
        revision: &str,
        pattern: &str,
    ) -> Result<Vec<String>, String> {
        check_path(pattern.trim_start_matches("**/"))?;
        let glob = Glob::new(pattern, Dialect::Doublestar).map_err(|e| e.to_string())?;
        Ok(self
            .snapshot(repo, revision)?
            .files()
            .iter()
            .filter(|f| glob.matches(f))
            .cloned()
            .collect())
    }

    /// `list-refs`: branches and tags whose short name matches a glob (`*` stays in one segment).
    pub fn list_refs(&mut self, repo: &str, pattern: &str) -> Result<Vec<GitRef>, String> {
        let sources = self.repo(repo)?;
        let glob = Glob::new(pattern, Dialect::PathMatch).map_err(|e| e.to_string())?;
        let refs = sources.refs(repo).map_err(|e| format!("{repo}: {e}"))?;
        self.dependencies.push(Dependency::Refs {
            repo: repo.to_string(),
            digest: refs_digest(&refs),
        });
        let mut out: Vec<GitRef> = refs.into_iter().filter(|r| glob.matches(&r.name)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.kind.cmp(b.kind)));
        Ok(out)
    }

    /// `http-get`: a GET to an allowed host, no redirects, body and time capped.
    pub fn http_get(
        &mut self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<HttpResponse, String> {
        let uri: ureq::http::Uri = url
            .parse()
            .map_err(|e| format!("denied: {url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(format!(
                    "denied: {url}: only http and https URLs are allowed"
                ))
            }
        }
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let port = uri.port_u16();
        if !host_allowed(&self.allowed_hosts, &host, port) {
            return Err(format!(
                "denied: plugin {} may not reach {host}{}; allowedHosts is [{}]",
                self.plugin,
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                self.allowed_hosts.join(", ")
            ));
        }
        let timeout = self.remaining()?;
        self.used_http = true;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(url);
        for (k, v) in headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let mut response = request.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.http_max_bytes as u64)
            .read_to_vec()
            .map_err(|e| {
                format!(
                    "GET {url}: reading the body: {e} (the cap is httpMaxBytes = {} bytes)",
                    self.http_max_bytes
                )
            })?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// Whether `host[:port]` is in `allowed` (`host`, `host:port`, `*.domain`).
fn host_allowed(allowed: &[String], host: &str, port: Option<u16>) -> bool {
    allowed.iter().any(|a| {
        if let Some(domain) = a.strip_prefix("*.") {
            return host.ends_with(&format!(".{domain}"));
        }
        match (a.rsplit_once(':'), port) {
            (Some((h, p)), Some(port)) if p.parse::<u16>().is_ok() => {
                h == host && p == port.to_string()
            }
            (Some((_, p)), None) if p.parse::<u16>().is_ok() => false,
            _ => a == host,
        }
    })
}

/// A repository path must stay inside the repository.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.split('/').any(|s| s == "..")
    {
        return Err(format!(
            "denied: path {path:?} is not a relative path inside the repository"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_with_port_or_by_domain() {
        let allowed = vec![
            "catalog.internal".to_string(),
            "127.0.0.1:8080".to_string(),
            "*.example.com".to_string(),
        ];
        assert!(host_allowed(&allowed, "catalog.internal", None));
        assert!(host_allowed(&allowed, "catalog.internal", Some(443)));
        assert!(host_allowed(&allowed, "127.0.0.1", Some(8080)));
        assert!(!host_allowed(&allowed, "127.0.0.1", Some(8081)));
        assert!(!host_allowed(&allowed, "127.0.0.1", None));
        assert!(host_allowed(&allowed, "a.example.com", None));
        assert!(!host_allowed(&allowed, "example.com", None));
        assert!(!host_allowed(&allowed, "evilexample.com", None));
        assert!(!host_allowed(&allowed, "catalog.internal.evil", None));
    }

    #[test]
    fn paths_cannot_escape() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a\\b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b.yaml", "a/..b/c"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
