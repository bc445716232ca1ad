//! Repository credentials as Argo CD stores them: `repository` Secrets (one URL) and
//! `repo-creds` Secrets (a URL prefix, longest first), plus the SSH known hosts of
//! `argocd-ssh-known-hosts-cm` and the CA certificates of `argocd-tls-certs-cm`.
//!
//! They reach `git` without touching its command line or the logs: passwords through
//! a credential helper that reads the child's environment, keys and certificates
//! through files only the user can read, in a temporary directory removed after
//! the fetch. With no credential for a URL, git's own helpers and the SSH agent apply.

use base64::Engine;
use prism_engine::sources::normalize_url;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoCredential {
    /// The repository URL (`repository`) or URL prefix (`repo-creds`).
    pub url: String,
    /// Whether this is a `repo-creds` template (prefix match).
    pub template: bool,
    /// HTTPS user name.
    pub username: Option<String>,
    /// HTTPS password or token.
    pub password: Option<String>,
    /// SSH private key (PEM/OpenSSH).
    pub ssh_private_key: Option<String>,
    /// TLS client certificate (PEM).
    pub tls_client_cert_data: Option<String>,
    /// TLS client key (PEM).
    pub tls_client_cert_key: Option<String>,
    /// Skip TLS verification and SSH host key checking (Argo's `insecure`).
    pub insecure: bool,
    /// The Secret it came from, for messages.
    pub secret: String,
    /// The Argo CD project it is scoped to (the Secret's `project` key), if any.
    pub project: Option<String>,
}

/// Which credentials a reader may use: Argo CD's project scoping, and Prism's rule for
/// ApplicationSets outside the Argo CD namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// Any credential for the URL (`prism generate`: the person running it chose them).
    #[default]
    Any,
    /// A set of this project (its template's `spec.project`; `None` when templated):
    /// credentials scoped to that project, else unscoped ones unless `scoped_only` (a set
    /// outside the Argo CD namespace). Never another project's.
    Project {
        /// The project, when the template names one plainly.
        name: Option<String>,
        /// Only credentials scoped to `name`.
        scoped_only: bool,
    },
}

impl Access {
    fn allows(&self, c: &RepoCredential) -> bool {
        match self {
            Access::Any => true,
            Access::Project { name, scoped_only } => match (&c.project, name) {
                (Some(scope), Some(name)) => scope == name,
                (Some(_), None) => false,
                (None, _) => !scoped_only,
            },
        }
    }
}

impl std::fmt::Debug for RepoCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("RepoCredential")
            .field("url", &self.url)
            .field("template", &self.template)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// Every credential Prism knows, with known hosts and CA certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `repository` and `repo-creds` entries.
    pub repos: Vec<RepoCredential>,
    /// `ssh_known_hosts` of `argocd-ssh-known-hosts-cm` (OpenSSH known_hosts format).
    pub known_hosts: Option<String>,
    /// `argocd-tls-certs-cm`: server host name → PEM CA certificates.
    pub tls_certs: BTreeMap<String, String>,
}

fn field(obj: &Value, key: &str) -> Result<Option<String>, String> {
    if let Some(s) = obj["stringData"][key].as_str() {
        return Ok(Some(s.to_string()));
    }
    match obj["data"][key].as_str() {
        None => Ok(None),
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| format!("data.{key} is not base64"))?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| format!("data.{key} is not UTF-8"))
        }
    }
}

impl Credentials {
    /// Reads Secrets and ConfigMaps (whole objects); other objects are skipped.
    /// Errors name the object (never its content).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Credentials, String> {
        let mut out = Credentials::default();
        for obj in objects {
            let name = obj["metadata"]["name"].as_str().unwrap_or("(unnamed)");
            match obj["kind"].as_str() {
                Some("ConfigMap") if name == "argocd-ssh-known-hosts-cm" => {
                    out.known_hosts = obj["data"]["ssh_known_hosts"].as_str().map(str::to_string);
                }
                Some("ConfigMap") if name == "argocd-tls-certs-cm" => {
                    if let Some(data) = obj["data"].as_object() {
                        for (host, pem) in data {
                            if let Some(pem) = pem.as_str() {
                                out.tls_certs
                                    .insert(host.to_ascii_lowercase(), pem.to_string());
                            }
                        }
                    }
                }
                Some("Secret") | None => {
                    let kind = obj["metadata"]["labels"]["argocd.argoproj.io/secret-type"].as_str();
                    let template = match kind {
                        Some("repository") => false,
                        Some("repo-creds") => true,
                        _ => continue,
                    };
                    let get = |k: &str| field(obj, k).map_err(|e| format!("Secret {name}: {e}"));
                    let url = get("url")?.ok_or_else(|| format!("Secret {name}: no url"))?;
                    out.repos.push(RepoCredential {
                        url,
                        template,
                        username: get("username")?,
                        password: get("password")?,
                        ssh_private_key: get("sshPrivateKey")?,
                        tls_client_cert_data: get("tlsClientCertData")?,
                        tls_client_cert_key: get("tlsClientCertKey")?,
                        insecure: get("insecure")?.is_some_and(|v| v == "true"),
                        secret: name.to_string(),
                        project: get("project")?.filter(|p| !p.is_empty()),
                    });
                }
                _ => {}
            }
        }
        // Stable: the same input, the same choice.
        out.repos
            .sort_by(|a, b| (&a.url, &a.secret).cmp(&(&b.url, &b.secret)));
        Ok(out)
    }

    /// Reads a YAML file of Secrets and ConfigMaps (`--repo-creds`); a `kind: List` works too.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let objects = read_objects(path)?;
        Credentials::from_objects(&objects).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The credential `access` may use for `url`: a `repository` entry of the same URL
    /// (one scoped to the reader's project before an unscoped one, as Argo CD chooses),
    /// else the `repo-creds` template with the longest matching prefix.
    pub fn for_url(&self, url: &str, access: &Access) -> Option<&RepoCredential> {
        let wanted = normalize_url(url);
        let exact: Vec<&RepoCredential> = self
            .repos
            .iter()
            .filter(|c| !c.template && access.allows(c) && normalize_url(&c.url) == wanted)
            .collect();
        exact
            .iter()
            .find(|c| c.project.is_some())
            .or(exact.first())
            .copied()
            .or_else(|| {
                let lower = url.to_lowercase();
                self.repos
                    .iter()
                    .filter(|c| {
                        c.template && access.allows(c) && lower.starts_with(&c.url.to_lowercase())
                    })
                    .max_by_key(|c| (c.url.len(), c.project.is_some()))
            })
    }

    /// Which credential `access` fetches `url` with: its Secret's name, or empty for
    /// none. Fetches with different credentials never share a cache entry, so no reader
    /// sees what another's credential fetched.
    pub fn identity(&self, url: &str, access: &Access) -> String {
        self.for_url(url, access)
            .map(|c| c.secret.clone())
            .unwrap_or_default()
    }

    /// Prepares `cmd` (a `git` command that talks to `url`) with what it needs to
    /// authenticate; the returned guard owns the temporary files and must live until
    /// the command has run.
    pub fn apply(
        &self,
        url: &str,
        access: &Access,
        cmd: &mut Command,
    ) -> Result<Option<tempfile::TempDir>, String> {
        let host = host_of(url);
        let cred = self.for_url(url, access);
        let ca = host.as_deref().and_then(|h| self.tls_certs.get(h));
        if cred.is_none() && ca.is_none() {
            return Ok(None);
        }
        let dir = tempfile::Builder::new()
            .prefix("prism-git-auth-")
            .tempdir()
            .map_err(|e| format!("creating a directory for {url}'s credentials: {e}"))?;
        let write = |name: &str, content: &str| -> Result<String, String> {
            let path = dir.path().join(name);
            write_private(&path, content)
                .map_err(|e| format!("writing {url}'s {name} to a private file: {e}"))?;
            Ok(path.display().to_string())
        };
        let mut config: Vec<(String, String)> = Vec::new();
        if let Some(pem) = ca {
            config.push(("http.sslCAInfo".into(), write("ca.pem", pem)?));
        }
        if let Some(c) = cred {
            if c.username.is_some() || c.password.is_some() {
                // Reset inherited helpers, then answer from this child's environment only.
                config.push(("credential.helper".into(), String::new()));
                config.push((
                    "credential.helper".into(),
                    "!f() { test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \"$PRISM_GIT_USERNAME\" \"$PRISM_GIT_PASSWORD\"; }; f".into(),
                ));
                cmd.env("PRISM_GIT_USERNAME", c.username.as_deref().unwrap_or("git"));
                cmd.env("PRISM_GIT_PASSWORD", c.password.as_deref().unwrap_or(""));
            }
            if let (Some(cert), Some(key)) = (&c.tls_client_cert_data, &c.tls_client_cert_key) {
                config.push(("http.sslCert".into(), write("client.pem", cert)?));
                config.push(("http.sslKey".into(), write("client-key.pem", key)?));
            }
            if c.insecure {
                config.push(("http.sslVerify".into(), "false".into()));
            }
            if let Some(key) = &c.ssh_private_key {
                let key_path = write("id", &format!("{}\n", key.trim_end()))?;
                let checking = if c.insecure {
                    "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null".to_string()
                } else {
                    match &self.known_hosts {
                        Some(kh) => format!(
                            "-o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
                            shell_quote(&write("known_hosts", kh)?)
                        ),
                        None => "-o StrictHostKeyChecking=yes".to_string(),
                    }
                };
                config.push((
                    "core.sshCommand".into(),
                    format!(
                        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes {checking}",
                        shell_quote(&key_path)
                    ),
                ));
            }
        }
        // GIT_CONFIG_COUNT/KEY/VALUE: configuration without arguments anyone can read in `ps`.
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), k);
            cmd.env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        Ok(Some(dir))
    }
}

/// The Kubernetes objects of a YAML file (`---` documents; a `kind: List` is unpacked),
/// as JSON, under the default YAML limits (`--repo-creds`, `--scm-creds`).
pub fn read_objects(path: &Path) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let text = crate::fsread::read_to_string(path).map_err(|e| at(&e))?;
    prism_engine::limits::check_yaml(&text, &prism_engine::Limits::default())
        .map_err(|e| at(&e))?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).map_err(|e| at(&e))?;
        let v: Value = serde_json::to_value(v).map_err(|e| at(&e))?;
        match v["items"].as_array() {
            Some(items) if v["kind"] == "List" => objects.extend(items.iter().cloned()),
            _ if v.is_null() => {}
            _ => objects.push(v),
        }
    }
    Ok(objects)
}

/// Writes `content` to a new file readable only by its owner.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(content.as_bytes())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The host of an `https://`, `ssh://` or scp-like (`git@host:path`) URL, lower case.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .or_else(|| (url.contains('@') && url.contains(':')).then_some(url))?;
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Turns git's error output into what to do, naming the repository.
pub fn explain(url: &str, stderr: &str) -> Option<String> {
    let e = stderr.to_ascii_lowercase();
    if e.contains("host key verification failed")
        || e.contains("no matching host key")
        || e.contains("remote host identification has changed")
    {
        return Some(format!(
            "{url}: the SSH host key of {} is not known; add it to the argocd-ssh-known-hosts-cm ConfigMap \
             (argocd cert add-ssh) or to the --repo-creds file",
            host_of(url).unwrap_or_else(|| "the server".into())
        ));
    }
    if e.contains("authentication failed")
        || e.contains("invalid username or password")
        || e.contains("http basic: access denied")
        || e.contains("403")
    {
        return Some(format!(
            "{url}: authentication failed: the username/password or token was refused; fix the repository Secret \
             (argocd repo add {url} --username … --password …) or the --repo-creds file"
        ));
    }
    if e.contains("could not read username")
        || e.contains("terminal prompts disabled")
        || e.contains("permission denied (publickey")
    {
        return Some(format!(
            "{url}: the server asks for credentials and none are configured for it; add a repository Secret \
             (argocd repo add {url} --username … --password …), a repo-creds template, or pass --repo-creds FILE"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(name: &str, kind: &str, data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "labels": {"argocd.argoproj.io/secret-type": kind}},
               "stringData": data})
    }

    #[test]
    fn exact_repository_wins_then_the_longest_template_prefix() {
        let creds = Credentials::from_objects(&[
            secret("org", "repo-creds", json!({"url": "https://git.example/org", "username": "org"})),
            secret("team", "repo-creds", json!({"url": "https://git.example/org/team", "username": "team"})),
            secret("one", "repository", json!({"url": "https://git.example/org/team/app.git", "username": "one"})),
            json!({"kind": "Secret", "metadata": {"name": "cluster", "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
                   "stringData": {"server": "x"}}),
        ])
        .unwrap();
        assert_eq!(creds.repos.len(), 3);
        let user = |u: &str| {
            creds
                .for_url(u, &Access::Any)
                .and_then(|c| c.username.clone())
        };
        assert_eq!(user("https://git.example/org/team/APP"), Some("one".into()));
        assert_eq!(
            user("https://git.example/org/team/other.git"),
            Some("team".into())
        );
        assert_eq!(user("https://git.example/org/x.git"), Some("org".into()));
        assert_eq!(user("https://elsewhere/org/x.git"), None);
    }

    /// Argo CD's `getRepositorySecret` (util/db/repository_secrets.go): the Secret scoped to
    /// the reader's project wins, an unscoped one is the fallback, another project's is
    /// never used. Prism's rule beyond Argo: a set outside the Argo CD namespace gets only
    /// its own project's.
    #[test]
    fn project_scoped_credentials_stay_with_their_project() {
        let url = "https://git.example/team/app.git";
        let creds = Credentials::from_objects(&[
            secret(
                "open",
                "repository",
                json!({"url": url, "username": "open"}),
            ),
            secret(
                "a",
                "repository",
                json!({"url": url, "username": "a", "project": "team-a"}),
            ),
            secret(
                "b",
                "repository",
                json!({"url": url, "username": "b", "project": "team-b"}),
            ),
            secret(
                "b-all",
                "repo-creds",
                json!({"url": "https://git.example/", "username": "b-all", "project": "team-b"}),
            ),
        ])
        .unwrap();
        let user = |access: Access| creds.for_url(url, &access).and_then(|c| c.username.clone());
        let project = |name: Option<&str>, scoped_only| Access::Project {
            name: name.map(str::to_string),
            scoped_only,
        };
        assert_eq!(user(project(Some("team-a"), false)), Some("a".into()));
        assert_eq!(user(project(Some("team-c"), false)), Some("open".into()));
        assert_eq!(user(project(None, false)), Some("open".into()));
        assert_eq!(user(project(Some("team-a"), true)), Some("a".into()));
        assert_eq!(user(project(Some("team-c"), true)), None);
        // A template scoped to team-b serves team-b's other repositories only.
        let other = "https://git.example/team/other.git";
        let templ = |access: Access| creds.for_url(other, &access).map(|c| c.secret.clone());
        assert_eq!(templ(project(Some("team-b"), true)), Some("b-all".into()));
        assert_eq!(templ(project(Some("team-a"), false)), None);
        assert_eq!(creds.identity(url, &project(Some("team-c"), true)), "");
        assert_eq!(creds.identity(url, &project(Some("team-b"), true)), "b");
    }

    #[test]
    fn base64_data_configmaps_and_errors_that_name_the_secret_only() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let creds = Credentials::from_objects(&[
            json!({"kind": "Secret", "metadata": {"name": "r", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
                   "data": {"url": b64("git@github.com:org/repo.git"), "sshPrivateKey": b64("KEY"), "insecure": b64("false")}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "argocd-ssh-known-hosts-cm"}, "data": {"ssh_known_hosts": "github.com ssh-ed25519 AAAA"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "argocd-tls-certs-cm"}, "data": {"Git.Example": "PEM"}}),
        ])
        .unwrap();
        assert_eq!(creds.repos[0].ssh_private_key.as_deref(), Some("KEY"));
        assert!(!creds.repos[0].insecure);
        assert_eq!(
            creds.known_hosts.as_deref(),
            Some("github.com ssh-ed25519 AAAA")
        );
        assert_eq!(creds.tls_certs["git.example"], "PEM");
        let bad = Credentials::from_objects(&[json!({"kind": "Secret",
            "metadata": {"name": "broken", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
            "data": {"url": "!!!", "password": "hunter2"}})])
        .unwrap_err();
        assert_eq!(bad, "Secret broken: data.url is not base64");
        assert!(!format!("{:?}", creds.repos[0]).contains("KEY"));
    }

    #[test]
    fn git_gets_credentials_through_env_and_private_files_never_arguments() {
        let creds = Credentials {
            repos: vec![
                RepoCredential {
                    url: "https://git.example/org".into(),
                    template: true,
                    username: Some("u".into()),
                    password: Some("p4ss".into()),
                    ..RepoCredential::default()
                },
                RepoCredential {
                    url: "git@git.example:org/ssh.git".into(),
                    ssh_private_key: Some("-----BEGIN KEY-----".into()),
                    ..RepoCredential::default()
                },
            ],
            known_hosts: Some("git.example ssh-ed25519 AAAA".into()),
            tls_certs: [("git.example".to_string(), "CA PEM".to_string())].into(),
        };
        let mut cmd = Command::new("git");
        let guard = creds
            .apply("https://git.example/org/app.git", &Access::Any, &mut cmd)
            .unwrap()
            .unwrap();
        let env: BTreeMap<String, String> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .collect();
        assert_eq!(env["PRISM_GIT_PASSWORD"], "p4ss");
        assert_eq!(env["GIT_CONFIG_KEY_0"], "http.sslCAInfo");
        assert_eq!(
            std::fs::read_to_string(&env["GIT_CONFIG_VALUE_0"]).unwrap(),
            "CA PEM"
        );
        assert_eq!(env["GIT_CONFIG_KEY_2"], "credential.helper");
        assert!(!env["GIT_CONFIG_VALUE_2"].contains("p4ss"));
        assert_eq!(cmd.get_args().count(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&env["GIT_CONFIG_VALUE_0"])
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ca = env["GIT_CONFIG_VALUE_0"].clone();
        drop(guard);
        assert!(
            !Path::new(&ca).exists(),
            "credential files are removed after the fetch"
        );

        let mut cmd = Command::new("git");
        let _guard = creds
            .apply("git@git.example:org/ssh.git", &Access::Any, &mut cmd)
            .unwrap()
            .unwrap();
        let ssh = cmd
            .get_envs()
            .find(|(k, _)| *k == "GIT_CONFIG_VALUE_1")
            .and_then(|(_, v)| v?.to_str().map(str::to_string))
            .unwrap();
        assert!(ssh.starts_with("ssh -i '"), "{ssh}");
        assert!(
            ssh.contains("StrictHostKeyChecking=yes -o UserKnownHostsFile='"),
            "{ssh}"
        );

        let mut cmd = Command::new("git");
        assert!(creds
            .apply("https://other.example/x.git", &Access::Any, &mut cmd)
            .unwrap()
            .is_none());
        assert_eq!(cmd.get_envs().count(), 0);
    }

    #[test]
    fn hosts_and_error_explanations() {
        assert_eq!(
            host_of("https://Git.Example:8443/org/x.git").as_deref(),
            Some("git.example")
        );
        assert_eq!(
            host_of("git@github.com:org/x.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            host_of("ssh://git@h.example/x").as_deref(),
            Some("h.example")
        );
        let url = "https://git.example/org/x.git";
        assert!(explain(
            url,
            "fatal: Authentication failed for 'https://git.example/org/x.git/'"
        )
        .unwrap()
        .contains("authentication failed"));
        assert!(explain(
            url,
            "fatal: could not read Username for 'https://git.example': terminal prompts disabled"
        )
        .unwrap()
        .contains("none are configured"));
        assert!(explain(
            "git@h:x",
            "Host key verification failed.\nfatal: Could not read from remote repository."
        )
        .unwrap()
        .contains("SSH host key of h is not known"));
        assert_eq!(explain(url, "fatal: repository not found"), None);
    }
}
