//! Which repository URLs a render may read, decided before any git or git2 call.
//!
//! An ApplicationSet's `repoURL` is input from whoever wrote the spec. In the controller
//! (always) and under `prism generate --untrusted`, only remote repositories are read:
//! `https://`, `ssh://` and scp-like `user@host:path`, plus `http://` and `git://` when
//! the admin allows them. Local paths and `file://` would read the machine's files (a
//! pod's mounted Secrets, other tenants' repositories in the shared cache), so they are
//! refused, as are git's transport helpers (`ext::…` runs a command, `fd::…` reads a
//! descriptor) and URLs starting with `-` (git would read them as options). On a
//! developer's own machine, without `--untrusted`, local paths stay a feature; helpers
//! and leading dashes are refused everywhere.

use prism_engine::glob::{Dialect, Glob};

/// The repository URL policy of one process.
#[derive(Debug, Clone)]
pub struct RepoPolicy {
    remote_only: bool,
    insecure: bool,
    hosts: Vec<Glob>,
}

/// Longest URL accepted (git's own limits are far above any real repository URL).
const MAX_URL_BYTES: usize = 2048;

impl RepoPolicy {
    /// A developer's machine: local paths and `file://` are read too.
    pub fn local() -> RepoPolicy {
        RepoPolicy {
            remote_only: false,
            insecure: true,
            hosts: Vec::new(),
        }
    }

    /// Remote repositories only (the controller, `--untrusted`): `https://`, `ssh://` and
    /// scp-like URLs, and `http://` and `git://` only when `insecure`.
    pub fn remote_only(insecure: bool) -> RepoPolicy {
        RepoPolicy {
            remote_only: true,
            insecure,
            hosts: Vec::new(),
        }
    }

    /// Only hosts matching one of these globs (`git.example.com`, `*.corp.example`); no
    /// restriction when `hosts` is empty.
    pub fn with_allowed_hosts(mut self, hosts: &[String]) -> Result<RepoPolicy, String> {
        self.hosts = hosts
            .iter()
            .map(|h| {
                Glob::new(&h.to_ascii_lowercase(), Dialect::PathMatch)
                    .map_err(|e| format!("--allowed-repo-hosts {h:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Whether local paths and `file://` URLs are refused.
    pub fn is_remote_only(&self) -> bool {
        self.remote_only
    }

    /// The value of `GIT_ALLOW_PROTOCOL` for every `git` run under this policy: git itself
    /// then refuses any other transport, whatever a configuration rewrites a URL to.
    pub fn git_allow_protocol(&self) -> &'static str {
        match (self.remote_only, self.insecure) {
            (false, _) => "https:ssh:http:git:file",
            (true, true) => "https:ssh:http:git",
            (true, false) => "https:ssh",
        }
    }

    /// Checks `url`; the error names the URL and the rule it breaks.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let refuse = |rule: &str| Err(format!("repository URL {url:?} is refused: {rule}"));
        if url.len() > MAX_URL_BYTES {
            return refuse(&format!("it is longer than {MAX_URL_BYTES} bytes"));
        }
        if url.starts_with('-') {
            return refuse("it starts with '-', which git would read as an option");
        }
        if let Some(transport) = transport_helper(url) {
            return refuse(&format!(
                "{transport}:: is a git transport helper, which runs commands or opens local resources"
            ));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return refuse("it contains whitespace or control characters");
        }
        let lower = url.to_ascii_lowercase();
        let (scheme, host) = match lower.split_once("://") {
            Some((scheme, rest)) => (Some(scheme), authority_host(rest)),
            None => match scp_like_host(&lower) {
                Some(host) => (None, host),
                None if self.remote_only => {
                    return refuse(
                        "it is a local path; only remote repositories (https://, ssh://, user@host:path) are read here",
                    )
                }
                None => return Ok(()),
            },
        };
        match scheme {
            None | Some("https") | Some("ssh") => {}
            Some("http") | Some("git") if self.insecure => {}
            Some("http") | Some("git") => {
                return refuse(&format!(
                    "{}:// is not encrypted; use https:// or ssh://, or have the admin allow it (--allow-insecure-repos)",
                    scheme.unwrap_or_default()
                ))
            }
            Some("file") if !self.remote_only => return Ok(()),
            Some("file") => {
                return refuse(
                    "file:// reads the local machine; only remote repositories are read here",
                )
            }
            Some(other) => {
                return refuse(&format!(
                    "{other}:// is not a supported scheme; use https://, ssh:// or user@host:path"
                ))
            }
        }
        if host.is_empty() {
            return refuse("it names no host");
        }
        if host.starts_with('-') {
            return refuse("its host starts with '-', which ssh would read as an option");
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|g| g.matches(host)) {
            let allowed: Vec<&str> = self.hosts.iter().map(Glob::as_str).collect();
            return refuse(&format!(
                "host {host} is not in --allowed-repo-hosts ({})",
                allowed.join(", ")
            ));
        }
        Ok(())
    }
}

/// `ext` in `ext::sh -c …`: git's `<transport>::<address>` syntax.
fn transport_helper(url: &str) -> Option<&str> {
    let (name, _) = url.split_once("::")?;
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(name)
}

/// The host of `[user@]host[:port]/path`.
fn authority_host(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    host.split(':').next().unwrap_or_default()
}

/// The host of git's scp-like syntax `[user@]host:path`: a colon before any slash.
fn scp_like_host(url: &str) -> Option<&str> {
    let colon = url.find(':')?;
    if url[..colon].contains('/') {
        return None;
    }
    let host = &url[..colon];
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> RepoPolicy {
        RepoPolicy::remote_only(false)
    }

    #[test]
    fn remote_urls_pass() {
        for url in [
            "https://github.com/example-org/services.git",
            "ssh://git@github.com/example-org/services.git",
            "git@github.com:example-org/services.git",
            "https://[::1]:8443/x.git",
        ] {
            assert_eq!(controller().check(url), Ok(()), "{url}");
        }
    }

    /// The forms issue 19 lists, each refused with the rule it breaks.
    #[test]
    fn local_helpers_and_options_are_refused() {
        for (url, rule) in [
            ("file:///etc", "file:// reads the local machine"),
            (
                "/var/run/secrets/kubernetes.io/serviceaccount",
                "it is a local path",
            ),
            (
                "/home/prism/.cache/prism/repos/github.com_org_private",
                "it is a local path",
            ),
            ("repos/other", "it is a local path"),
            (
                "ext::sh -c touch% /tmp/pwned",
                "ext:: is a git transport helper",
            ),
            ("-uexploit", "it starts with '-'"),
            ("--upload-pack=touch /tmp/pwned", "it starts with '-'"),
            ("fd::17", "fd:: is a git transport helper"),
            ("http://git.example.com/x.git", "http:// is not encrypted"),
            ("git://git.example.com/x.git", "git:// is not encrypted"),
            (
                "ftp://git.example.com/x.git",
                "ftp:// is not a supported scheme",
            ),
            ("ssh://-oProxyCommand=touch/x", "its host starts with '-'"),
            ("https:///x.git", "it names no host"),
        ] {
            let e = controller().check(url).unwrap_err();
            assert!(e.contains(&format!("{url:?} is refused: {rule}")), "{e}");
        }
    }

    #[test]
    fn insecure_schemes_and_hosts_follow_the_admin() {
        let p = RepoPolicy::remote_only(true)
            .with_allowed_hosts(&["*.corp.example".into(), "github.com".into()])
            .unwrap();
        assert_eq!(p.check("http://git.corp.example/x.git"), Ok(()));
        assert_eq!(p.check("git@GitHub.com:org/x.git"), Ok(()));
        let e = p.check("https://gitlab.com/org/x.git").unwrap_err();
        assert!(
            e.contains(
                "host gitlab.com is not in --allowed-repo-hosts (*.corp.example, github.com)"
            ),
            "{e}"
        );
        assert_eq!(p.git_allow_protocol(), "https:ssh:http:git");
        assert_eq!(controller().git_allow_protocol(), "https:ssh");
    }

    /// On a developer's machine local paths are a feature; helpers and dashes never are.
    #[test]
    fn the_local_policy_reads_paths_but_not_helpers() {
        let p = RepoPolicy::local();
        assert_eq!(p.check("/srv/git/services.git"), Ok(()));
        assert_eq!(p.check("file:///srv/git/services.git"), Ok(()));
        assert_eq!(p.check("examples/multi-env/repo"), Ok(()));
        assert!(p.check("ext::sh -c true").is_err());
        assert!(p.check("--upload-pack=x").is_err());
    }
}
