//! Private repositories: credentials from Argo CD repository Secrets (`--repo-creds`)
//! against a real git server on 127.0.0.1 (`git http-backend` behind Basic auth), and
//! anonymous `git daemon`. Wrong and missing credentials fail with the repository URL
//! and what to do, and never print the password.

mod common;
use common::githttp::{bare_clone, serve_daemon, serve_http};
use common::*;

const SPEC: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: private, namespace: argocd}
spec:
  generators:
  - git:
      repoURL: REPO
      revision: main
      directories:
      - path: apps/*
  template:
    metadata: {name: '{{path.basename}}'}
    spec:
      project: default
      source: {repoURL: REPO, targetRevision: main, path: '{{path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: '{{path.basename}}'}
"#;

fn creds(url: &str, kind: &str, user: &str, password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: repo\n  labels:\n    argocd.argoproj.io/secret-type: {kind}\n\
         stringData:\n  url: {url}\n  username: {user}\n  password: {password}\n"
    )
}

struct Server {
    _root: tempfile::TempDir,
    _origin: TestRepo,
    url: String,
}

fn server() -> Server {
    let origin = TestRepo::new();
    origin.commit(
        &[
            ("apps/api/k.yaml", Some("a")),
            ("apps/web/k.yaml", Some("w")),
        ],
        "apps",
    );
    let root = tempfile::tempdir().unwrap();
    bare_clone(origin.path(), root.path(), "team/apps");
    let port = serve_http(root.path(), "deployer", "s3cret-token");
    Server {
        url: format!("http://127.0.0.1:{port}/team/apps.git"),
        _root: root,
        _origin: origin,
    }
}

fn generate(dir: &std::path::Path, url: &str, creds: Option<&str>) -> std::process::Output {
    let spec = write(dir, "appset.yaml", &SPEC.replace("REPO", url));
    let cache = dir.join("cache").display().to_string();
    let mut args = vec![
        "generate",
        spec.as_str(),
        "-o",
        "names",
        "--cache-dir",
        cache.as_str(),
    ];
    let file;
    if let Some(c) = creds {
        file = write(dir, "creds.yaml", c);
        args.extend(["--repo-creds", file.as_str()]);
    }
    // No helper or prompt from the machine's git configuration may answer for us.
    std::process::Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(&args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap()
}

#[test]
fn a_repository_secret_opens_a_private_https_repository() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let out = generate(
        dir.path(),
        &s.url,
        Some(&creds(&s.url, "repository", "deployer", "s3cret-token")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "api\nweb\n");
    assert!(!stderr(&out).contains("s3cret-token"));
}

#[test]
fn a_repo_creds_template_matches_by_url_prefix() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let prefix = s.url.trim_end_matches("team/apps.git");
    let file = format!(
        "{}---\n{}",
        creds(
            &format!("{prefix}team"),
            "repo-creds",
            "deployer",
            "s3cret-token"
        ),
        creds(prefix, "repo-creds", "deployer", "wrong").replace("name: repo", "name: broader"),
    );
    let out = generate(dir.path(), &s.url, Some(&file));
    assert!(
        out.status.success(),
        "the longest prefix wins: {}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "api\nweb\n");
}

#[test]
fn a_wrong_password_names_the_repository_and_the_fix_and_not_the_password() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let out = generate(
        dir.path(),
        &s.url,
        Some(&creds(&s.url, "repository", "deployer", "not-the-token")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&s.url), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(err.contains("argocd repo add"), "{err}");
    assert!(!err.contains("not-the-token"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn missing_credentials_say_none_are_configured() {
    let s = server();
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &s.url, None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&s.url), "{err}");
    assert!(err.contains("none are configured"), "{err}");
}

#[test]
fn an_anonymous_git_daemon_needs_no_credentials() {
    let origin = TestRepo::new();
    origin.commit(&[("apps/db/k.yaml", Some("d"))], "apps");
    let root = tempfile::tempdir().unwrap();
    bare_clone(origin.path(), root.path(), "public");
    let daemon = serve_daemon(root.path());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("git://127.0.0.1:{}/public.git", daemon.port);
    let out = generate(dir.path(), &url, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "db\n");
}

/// An SSH key from a repository Secret with the server's key in the known hosts
/// ConfigMap; then the same with a known-hosts entry of another key.
#[test]
fn ssh_keys_with_strict_host_key_checking() {
    let sshd = common::sshd::Sshd::start();
    let origin = TestRepo::new();
    origin.commit(&[("apps/queue/k.yaml", Some("q"))], "apps");
    let root = tempfile::tempdir().unwrap();
    let bare = bare_clone(origin.path(), root.path(), "ssh-apps");
    let url = sshd.url(&bare);
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let file = |known: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssh-repo\n  labels:\n    argocd.argoproj.io/secret-type: repository\n\
             stringData:\n  url: {url}\n  sshPrivateKey: |\n{}---\napiVersion: v1\nkind: ConfigMap\n\
             metadata:\n  name: argocd-ssh-known-hosts-cm\ndata:\n  ssh_known_hosts: |\n{}",
            indent(&sshd.client_key()),
            indent(known)
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &url, Some(&file(&sshd.known_hosts_line())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "queue\n");

    // Another server's key under this address: refused, with the fix named.
    let other = common::sshd::Sshd::start();
    let wrong = other
        .known_hosts_line()
        .replace(&format!(":{}", other.port), &format!(":{}", sshd.port));
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &url, Some(&file(&wrong)));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("SSH host key of 127.0.0.1 is not known"),
        "{err}"
    );
    assert!(err.contains("argocd-ssh-known-hosts-cm"), "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
}
