//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) started on
//! 127.0.0.1 with a temporary config, and images pushed through its HTTP API.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Included by path from the benches too, so it brings its own installer.
#[path = "packages.rs"]
mod packages;
pub use packages::ensure_package;

const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry; stopped on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
    scheme: &'static str,
    agent: ureq::Agent,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `docker-registry serve CONFIG`, quietly.
fn spawn(config: &Path) -> Child {
    Command::new(BINARY)
        .arg("serve")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting docker-registry")
}

/// Installs Debian's `docker-registry` when it is missing.
fn ensure_installed() {
    ensure_package(BINARY, "docker-registry");
}

impl Registry {
    /// Starts a plain-HTTP registry on a free port and waits until it answers.
    pub fn start() -> Registry {
        Self::start_with(false)
    }

    /// Starts an HTTPS registry whose certificate is signed by a throwaway CA
    /// (see [`Registry::ca_file`]).
    pub fn start_tls() -> Registry {
        Self::start_with(true)
    }

    /// The CA that signed a TLS registry's certificate (PEM).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Stops the registry and starts it again on the same storage with token auth:
    /// clients must fetch a JWT from `realm`, signed by the key of `cert` (PEM).
    pub fn restart_with_token_auth(&mut self, realm: &str, cert: &Path) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let config_path = self.dir.path().join("config.yml");
        let mut config = std::fs::read_to_string(&config_path).unwrap();
        config.push_str(&format!(
            "auth:\n  token:\n    realm: {realm}\n    service: prism-test\n    issuer: prism-test-issuer\n    rootcertbundle: {}\n",
            cert.display()
        ));
        std::fs::write(&config_path, config).unwrap();
        self.child = spawn(&config_path);
        self.wait_for(401);
    }

    fn start_with(tls: bool) -> Registry {
        ensure_installed();
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if tls {
            make_certificates(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.pem").display(),
                dir.path().join("server.key").display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = spawn(&config_path);
        // The test's own pushes skip verification; the client under test does not.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            )
            .build()
            .into();
        let registry = Registry {
            child,
            dir,
            host: format!("127.0.0.1:{port}"),
            scheme: if tls { "https" } else { "http" },
            agent,
        };
        registry.wait_for(200);
        registry
    }

    /// Waits until `/v2/` answers `status` (200 open, 401 with auth), at most 20 s.
    fn wait_for(&self, status: u16) {
        let started = Instant::now();
        loop {
            let probe = self
                .agent
                .get(&self.url("/v2/"))
                .config()
                .http_status_as_error(false)
                .build()
                .call();
            if probe.map(|r| r.status() == status).unwrap_or(false) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "registry did not answer /v2/ with {status}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.host)
    }

    /// Uploads a blob; returns its digest.
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", prism::digest::sha256_hex(bytes));
        let r = self
            .agent
            .post(&self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .send_empty()
            .unwrap();
        assert_eq!(r.status(), 202);
        let location = r
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .agent
            .put(&format!("{location}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        assert_eq!(r.status(), 201, "blob upload");
        digest
    }

    /// Pushes a single-platform image built at `created` under `reference` (a tag, or
    /// nothing for an untagged child of an index); returns (manifest digest, size).
    pub fn push(
        &self,
        repo: &str,
        reference: Option<&str>,
        created: &str,
        arch: &str,
    ) -> (String, usize) {
        let layer = format!("layer of {repo} {created} {arch}");
        let layer_digest = self.blob(repo, layer.as_bytes());
        let config = json!({"architecture": arch, "os": "linux", "created": created,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]}, "config": {}});
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = self.blob(repo, &config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config_bytes.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.len(), "digest": layer_digest}]
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = format!("sha256:{}", prism::digest::sha256_hex(&bytes));
        let reference = reference
            .map(str::to_string)
            .unwrap_or_else(|| digest.clone());
        self.put_manifest(
            repo,
            &reference,
            "application/vnd.docker.distribution.manifest.v2+json",
            &bytes,
        );
        (digest, bytes.len())
    }

    /// Pushes one image and tags it with every one of `tags` (one manifest PUT each).
    pub fn push_tags(&self, repo: &str, tags: &[String], created: &str) {
        let (digest, _) = self.push(repo, None, created, "amd64");
        let r = self
            .agent
            .get(&self.url(&format!("/v2/{repo}/manifests/{digest}")))
            .header(
                "Accept",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .unwrap();
        let bytes = r.into_body().read_to_vec().unwrap();
        for tag in tags {
            self.put_manifest(
                repo,
                tag,
                "application/vnd.docker.distribution.manifest.v2+json",
                &bytes,
            );
        }
    }

    /// Pushes an OCI index of one image per `(arch, created)`, tagged `tag`; returns its digest.
    pub fn push_index(&self, repo: &str, tag: &str, children: &[(&str, &str)]) -> String {
        let manifests: Vec<Value> = children
            .iter()
            .map(|(arch, created)| {
                let (digest, size) = self.push(repo, None, created, arch);
                json!({"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": size,
                       "digest": digest, "platform": {"architecture": arch, "os": "linux"}})
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        let bytes = serde_json::to_vec(&index).unwrap();
        self.put_manifest(repo, tag, "application/vnd.oci.image.index.v1+json", &bytes);
        format!("sha256:{}", prism::digest::sha256_hex(&bytes))
    }

    fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let r = self
            .agent
            .put(&self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .config()
            .http_status_as_error(false)
            .build()
            .send(bytes)
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "manifest push: {}",
            r.into_body().read_to_string().unwrap_or_default()
        );
    }
}

/// Runs `openssl` in `dir` with `stdin`; its stdout. Panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with `openssl`.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| openssl(dir, args, b"");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=prism test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
}

/// A token service for a registry in token-auth mode: an RSA key and self-signed
/// certificate (the registry's `rootcertbundle`), and RS256 JWTs signed with `openssl`.
pub struct TokenIssuer {
    dir: tempfile::TempDir,
    /// The certificate, DER (for the tokens' `x5c` header).
    der: Vec<u8>,
}

impl TokenIssuer {
    /// Makes the key and certificate.
    pub fn new() -> TokenIssuer {
        let dir = tempfile::tempdir().unwrap();
        let req = [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.pem",
            "-days",
            "2",
            "-subj",
            "/CN=prism test token issuer",
        ];
        openssl(dir.path(), &req, b"");
        let der = openssl(
            dir.path(),
            &["x509", "-in", "token.pem", "-outform", "DER"],
            b"",
        );
        TokenIssuer { dir, der }
    }

    /// The certificate the registry trusts.
    pub fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("token.pem")
    }

    /// A JWT granting `actions` on `repository`, as Docker's token spec describes.
    pub fn token(&self, subject: &str, repository: &str, actions: &[&str]) -> String {
        use base64::Engine as _;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let std_b64 = base64::engine::general_purpose::STANDARD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [std_b64.encode(&self.der)]});
        let claims = json!({"iss": "prism-test-issuer", "sub": subject, "aud": "prism-test",
            "exp": now + 600, "nbf": now - 10, "iat": now, "jti": format!("{now}-{repository}"),
            "access": [{"type": "repository", "name": repository, "actions": actions}]});
        let signing_input = format!(
            "{}.{}",
            url.encode(header.to_string()),
            url.encode(claims.to_string())
        );
        let sig = openssl(
            self.dir.path(),
            &["dgst", "-sha256", "-sign", "token.key"],
            signing_input.as_bytes(),
        );
        format!("{signing_input}.{}", url.encode(sig))
    }
}
