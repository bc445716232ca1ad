//! `prism generate --untrusted`: specs from a pull request read only remote repositories
//! and the `--repo` mappings the person running the command chose, at the default limits.
//! Each refused form is checked with a `git` on PATH that would leave a mark if it ran.

mod common;

use common::{prism, stderr, stdout, write, EXAMPLE};
use std::path::Path;
use std::process::Command;

fn spec(dir: &Path, repo_url: &str) -> String {
    write(
        dir,
        "appset.yaml",
        &format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: pr, namespace: argocd}}
spec:
  generators:
  - git:
      repoURL: '{}'
      revision: HEAD
      files: [{{path: '*.yaml'}}]
  template:
    metadata: {{name: 'x-{{{{path.basename}}}}'}}
    spec:
      project: default
      source: {{repoURL: 'https://git.example/x.git', targetRevision: HEAD, path: x}}
      destination: {{server: 'https://kubernetes.default.svc', namespace: x}}
"#,
            repo_url.replace('\'', "''")
        ),
    )
}

/// A directory with a `git` that records that it ran, then runs the real one.
fn git_shim(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mark = dir.join("git-ran");
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let shim = bin.join("git");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\ntouch '{}'\nexec '{}' \"$@\"\n",
            mark.display(),
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, mark)
}

#[test]
fn untrusted_specs_cannot_name_local_paths_helpers_or_options() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, mark) = git_shim(dir.path());
    let cache = dir.path().join("cache");
    let pwned = dir.path().join("pwned");
    // A repository already in the cache, as another tenant's would be.
    let other = cache.join("github.com_other_private");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for (url, rule) in [
        ("file:///etc".to_string(), "file:// reads the local machine"),
        (
            "/var/run/secrets/kubernetes.io/serviceaccount".to_string(),
            "it is a local path",
        ),
        (other.display().to_string(), "it is a local path"),
        (
            format!("ext::sh -c touch% {}", pwned.display()),
            "ext:: is a git transport helper",
        ),
        ("-uexploit".to_string(), "it starts with '-'"),
        (
            format!("--upload-pack=touch {}", pwned.display()),
            "it starts with '-'",
        ),
        ("fd::17".to_string(), "fd:: is a git transport helper"),
    ] {
        let spec = spec(dir.path(), &url);
        let out = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(["generate", &spec, "--untrusted", "--cache-dir"])
            .arg(&cache)
            .env("PATH", &path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{url}");
        let err = stderr(&out);
        assert!(
            err.contains("spec.generators[0].git")
                && err.contains(&format!("{url:?} is refused: {rule}")),
            "{url}: {err}"
        );
        assert!(!mark.exists(), "{url}: git ran");
        assert!(!cache.exists(), "{url}: the cache directory was created");
        assert!(!pwned.exists(), "{url}: the helper's command ran");
    }
}

/// The person running the command chose the `--repo` mappings: the bundled example,
/// mapped to its directory, renders the same under `--untrusted`.
#[test]
fn untrusted_still_renders_the_mapped_example() {
    let plain = prism(EXAMPLE);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let mut args = EXAMPLE.to_vec();
    args.push("--untrusted");
    let out = prism(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), stdout(&plain));
}

#[test]
fn untrusted_keeps_the_render_limits_at_their_defaults() {
    let mut args = EXAMPLE.to_vec();
    args.extend(["--untrusted", "--max-template-steps", "999999999999"]);
    let out = prism(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "--untrusted keeps every render limit at its default; drop --max-template-steps"
        ),
        "{}",
        stderr(&out)
    );
    // Lowering a limit is fine.
    let mut args = EXAMPLE.to_vec();
    args.extend(["--untrusted", "--max-parameter-sets", "1000"]);
    assert!(prism(&args).status.success());
}

/// Unencrypted schemes need the admin's `--allow-insecure-repos`; `--allowed-repo-hosts`
/// narrows the hosts. Both refuse before any network access.
#[test]
fn insecure_schemes_and_unlisted_hosts_are_refused_under_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let insecure = spec(dir.path(), "http://127.0.0.1:9/x.git");
    let out = prism(&["generate", &insecure, "--untrusted"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("http:// is not encrypted; use https:// or ssh://"),
        "{}",
        stderr(&out)
    );
    let elsewhere = spec(dir.path(), "https://gitlab.example/x.git");
    let out = prism(&[
        "generate",
        &elsewhere,
        "--untrusted",
        "--allowed-repo-hosts",
        "github.com,*.corp.example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "host gitlab.example is not in --allowed-repo-hosts (github.com, *.corp.example)"
        ),
        "{}",
        stderr(&out)
    );
}

/// An admin's plugin limits have ceilings too: a timeout that means "never" is refused.
#[test]
fn plugin_run_refuses_limits_over_their_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = write(dir.path(), "p.wasm", "not really");
    let out = prism(&[
        "plugin",
        "run",
        &wasm,
        "--timeout-ms",
        "18446744073709551615",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("--timeout-ms: 18446744073709551615 is not between 1 and the maximum 600000"),
        "{}",
        stderr(&out)
    );
}
