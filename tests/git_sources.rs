//! Git sources: real repositories made with git2; revisions (branch, tag, SHA, HEAD),
//! bare repositories, file:// URLs, the clone cache, and plain directories.

mod common;
use common::*;
use prism::git::GitSource;
use prism_engine::Repository;

const DIRS_SPEC: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: team-a}
spec:
  generators:
  - git:
      repoURL: REPO
      revision: REV
      directories:
      - path: apps/*
      - path: apps/legacy
        exclude: true
  template:
    metadata:
      name: '{{path.basename}}'
    spec:
      project: default
      source: {repoURL: REPO, targetRevision: REV, path: '{{path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: '{{path[1]}}'}
"#;

fn spec(dir: &std::path::Path, repo: &str, rev: &str) -> String {
    write(
        dir,
        "appset.yaml",
        &DIRS_SPEC.replace("REPO", repo).replace("REV", rev),
    )
}

fn names(out: &std::process::Output) -> Vec<String> {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    stdout(out).lines().map(String::from).collect()
}

fn repo_with_history() -> (TestRepo, git2::Oid, git2::Oid) {
    let r = TestRepo::new();
    let first = r.commit(
        &[
            ("apps/api/k.yaml", Some("a")),
            ("apps/legacy/k.yaml", Some("l")),
            ("README.md", Some("r")),
        ],
        "first",
    );
    r.branch("release", first);
    r.tag("v1.0.0", first);
    let second = r.commit(
        &[
            ("apps/web/k.yaml", Some("w")),
            ("apps/.hidden/k.yaml", Some("h")),
        ],
        "second",
    );
    (r, first, second)
}

#[test]
fn revisions_resolve_to_their_trees() {
    let (r, first, _) = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let url = r.path().display().to_string();
    for (rev, want) in [
        ("HEAD", vec!["api", "web"]),
        ("main", vec!["api", "web"]),
        ("release", vec!["api"]),
        ("v1.0.0", vec!["api"]),
        (&first.to_string()[..], vec!["api"]),
        (&first.to_string()[..10], vec!["api"]),
    ] {
        let out = prism(&["generate", &spec(tmp.path(), &url, rev), "-o", "names"]);
        assert_eq!(names(&out), want, "revision {rev}");
    }
}

#[test]
fn working_tree_changes_are_not_read_from_a_git_repository() {
    let (r, _, _) = repo_with_history();
    std::fs::create_dir_all(r.path().join("apps/uncommitted")).unwrap();
    std::fs::write(r.path().join("apps/uncommitted/k.yaml"), "x").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = prism(&[
        "generate",
        &spec(tmp.path(), &r.path().display().to_string(), "HEAD"),
        "-o",
        "names",
    ]);
    assert_eq!(names(&out), vec!["api", "web"]);
}

#[test]
fn repo_mapping_file_url_and_bare_clone() {
    let (r, _, _) = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    // --repo maps the spec's URL (compared as Argo does: case, trailing .git) to the clone.
    let mapped = spec(tmp.path(), "https://git.example.com/Org/Apps.git", "main");
    let out = prism(&[
        "generate",
        &mapped,
        "--repo",
        &format!("https://git.example.com/org/apps={}", r.path().display()),
        "-o",
        "names",
    ]);
    assert_eq!(names(&out), vec!["api", "web"]);

    let file_url = format!("file://{}", r.path().display());
    let out = prism(&[
        "generate",
        &spec(tmp.path(), &file_url, "release"),
        "-o",
        "names",
    ]);
    assert_eq!(names(&out), vec!["api"]);

    let bare_dir = tmp.path().join("bare.git");
    git2::build::RepoBuilder::new()
        .bare(true)
        .clone(&file_url, &bare_dir)
        .unwrap();
    let out = prism(&[
        "generate",
        &spec(tmp.path(), &bare_dir.display().to_string(), "main"),
        "-o",
        "names",
    ]);
    assert_eq!(names(&out), vec!["api", "web"]);
}

#[test]
fn plain_directory_is_read_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkout");
    write(&dir, "apps/api/k.yaml", "a");
    write(&dir, "apps/draft/k.yaml", "d");
    let out = prism(&[
        "generate",
        &spec(tmp.path(), "https://git.example.com/apps.git", "HEAD"),
        "--repo",
        &format!("https://git.example.com/apps.git={}", dir.display()),
        "-o",
        "names",
    ]);
    assert_eq!(names(&out), vec!["api", "draft"]);
}

#[test]
fn remote_fetch_into_cache_and_refetch() {
    let (r, _, _) = repo_with_history();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", r.path().display());
    let source = GitSource::fetch_into_cache(
        &url,
        cache.path(),
        &Default::default(),
        &prism::credentials::Access::Any,
        &prism::repo_policy::RepoPolicy::local(),
    )
    .unwrap();
    let snap = source.snapshot("main").unwrap();
    assert!(snap.files().contains(&"apps/web/k.yaml".to_string()));
    assert_eq!(source.snapshot("HEAD").unwrap().commit(), snap.commit());
    assert!(source.snapshot("v1.0.0").is_ok(), "tags are fetched");

    // A new commit upstream is seen on the next fetch into the same cache directory.
    let third = r.commit(&[("apps/new/k.yaml", Some("n"))], "third");
    let again = GitSource::fetch_into_cache(
        &url,
        cache.path(),
        &Default::default(),
        &prism::credentials::Access::Any,
        &prism::repo_policy::RepoPolicy::local(),
    )
    .unwrap();
    assert_eq!(
        again.snapshot("main").unwrap().commit(),
        Some(third.to_string().as_str())
    );
    assert_eq!(
        std::fs::read_dir(cache.path()).unwrap().count(),
        1,
        "one cache entry per URL"
    );
    assert_eq!(
        again
            .snapshot("main")
            .unwrap()
            .read("apps/new/k.yaml")
            .unwrap(),
        b"n"
    );
}

#[test]
fn unknown_revision_and_missing_repo_are_clear_errors() {
    let (r, _, _) = repo_with_history();
    let tmp = tempfile::tempdir().unwrap();
    let path = r.path().display().to_string();
    let spec_file = spec(tmp.path(), &path, "no-such-branch");
    let out = prism(&["generate", &spec_file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no partial output");
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: {spec_file}: ApplicationSet apps: spec.generators[0].git: reading repository {path} at revision \
             \"no-such-branch\": unknown revision \"no-such-branch\": \"no-such-branch\" is not a branch, tag or commit \
             in {path}; use a branch, tag or commit SHA that exists there"
        )
    );

    let missing = tmp.path().join("nope").display().to_string();
    let spec_file = spec(tmp.path(), &missing, "HEAD");
    let out = prism(&["generate", &spec_file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("repository not found: {missing} is neither a local path nor a git URL; map it with --repo {missing}=PATH")),
        "{}",
        stderr(&out)
    );

    let spec_file = spec(tmp.path(), "https://git.example.com/unmapped.git", "HEAD");
    let cache = tmp.path().join("cache").display().to_string();
    let out = prism(&["generate", &spec_file, "--cache-dir", &cache]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "map it to a local clone with --repo https://git.example.com/unmapped.git=PATH"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn git_files_from_a_real_repository() {
    let r = TestRepo::new();
    r.commit(
        &[
            (
                "clusters/prod/config.json",
                Some(r#"{"cluster": {"name": "prod", "address": "https://p"}}"#),
            ),
            (
                "clusters/test/config.json",
                Some(r#"{"cluster": {"name": "test", "address": "https://t"}}"#),
            ),
            (
                "clusters/test/nested/config.json",
                Some(r#"{"cluster": {"name": "nested", "address": "https://n"}}"#),
            ),
        ],
        "c",
    );
    let tmp = tempfile::tempdir().unwrap();
    let spec_file = write(
        tmp.path(),
        "files.yaml",
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: guestbook}}
spec:
  generators:
  - git:
      repoURL: {}
      revision: HEAD
      files:
      - path: "clusters/*/config.json"
  template:
    metadata:
      name: '{{{{cluster.name}}}}-guestbook'
    spec:
      project: default
      source: {{repoURL: https://github.com/argoproj/argo-cd.git, targetRevision: HEAD, path: "apps/guestbook"}}
      destination: {{server: '{{{{cluster.address}}}}', namespace: guestbook}}
"#,
            r.path().display()
        ),
    );
    let out = prism(&["generate", &spec_file, "-o", "names"]);
    assert_eq!(
        names(&out),
        vec!["nested-guestbook", "prod-guestbook", "test-guestbook"],
        "pathspec * crosses /"
    );
    let out = prism(&[
        "generate",
        &spec_file,
        "-o",
        "names",
        "--git-file-globbing",
        "new",
    ]);
    assert_eq!(
        names(&out),
        vec!["prod-guestbook", "test-guestbook"],
        "doublestar * stays in a segment"
    );
}

/// A repository file over `--max-file-bytes` is refused from its object header, before
/// the blob is loaded.
#[test]
fn oversized_repository_files_are_refused() {
    let r = TestRepo::new();
    let big = "k: ".to_string() + &"x".repeat(5000) + "\n";
    r.commit(&[("apps/api/config.yaml", Some(big.as_str()))], "big");
    let tmp = tempfile::tempdir().unwrap();
    let spec = write(
        tmp.path(),
        "appset.yaml",
        &DIRS_SPEC
            .replace("REPO", &r.path().display().to_string())
            .replace("REV", "HEAD")
            .replace(
                "      directories:\n      - path: apps/*\n      - path: apps/legacy\n        exclude: true\n",
                "      files:\n      - path: apps/*/config.yaml\n",
            ),
    );
    let out = prism(&["generate", &spec, "--max-file-bytes", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("apps/api/config.yaml") && stderr(&out).contains("5004 bytes is over the limit of 1000 bytes in one file (an admin can raise it with --max-file-bytes)"),
        "{}",
        stderr(&out)
    );
    let out = prism(&["generate", &spec, "-o", "names"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
