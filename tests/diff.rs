//! `prism diff`: real git repositories with commits that add, remove and change services.

mod common;
use common::*;

const SPEC: &str = r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {name: svc, namespace: argocd}
spec:
  generators:
  - values:
      repoURL: https://git.example.com/services.git
      revision: HEAD
      environments: [prod]
  template:
    metadata:
      name: 'NAME'
      annotations: {replicas: '{{values.replicas}}'}
    spec:
      project: default
      source: {repoURL: https://git.example.com/services.git, targetRevision: HEAD, path: '{{path}}'}
      destination: {server: https://kubernetes.default.svc, namespace: '{{service}}'}
"#;

struct Fixture {
    repo: TestRepo,
    first: git2::Oid,
    second: git2::Oid,
    dir: tempfile::TempDir,
    spec: String,
}

fn fixture() -> Fixture {
    let repo = TestRepo::new();
    let first = repo.commit(
        &[
            ("svc/api/values-prod.yaml", Some("replicas: 1")),
            ("svc/web/values-prod.yaml", Some("replicas: 2")),
            ("svc/worker/values-prod.yaml", Some("replicas: 1")),
        ],
        "three services",
    );
    let second = repo.commit(
        &[
            ("svc/api/values-prod.yaml", Some("replicas: 3")),
            ("svc/worker/values-prod.yaml", None),
            ("svc/billing/values-prod.yaml", Some("replicas: 1")),
        ],
        "api scaled, worker gone, billing added",
    );
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "appset.yaml",
        &SPEC.replace("NAME", "{{service}}-{{env}}"),
    );
    Fixture {
        repo,
        first,
        second,
        dir,
        spec,
    }
}

impl Fixture {
    fn diff(&self, extra: &[&str]) -> std::process::Output {
        let mapping = format!(
            "https://git.example.com/services.git={}",
            self.repo.path().display()
        );
        let mut args = vec!["diff", self.spec.as_str(), "--repo", mapping.as_str()];
        args.extend_from_slice(extra);
        prism(&args)
    }
}

#[test]
fn added_removed_and_changed_between_revisions() {
    let f = fixture();
    let (a, b) = (f.first.to_string(), f.second.to_string());
    let out = f.diff(&["--from", &a, "--to", &b]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("+ billing-prod (added)\n- worker-prod (removed)\n~ api-prod (changed)\n"),
        "{text}"
    );
    assert!(
        text.contains("    --- api-prod (before)\n    +++ api-prod (after)\n"),
        "{text}"
    );
    assert!(
        text.contains("\n    -    replicas: \"1\"\n    +    replicas: \"3\"\n"),
        "{text}"
    );
    assert!(text.ends_with("+1 -1 ~1 (=1 unchanged)\n"), "{text}");
}

#[test]
fn no_difference_exits_zero() {
    let f = fixture();
    let b = f.second.to_string();
    let out = f.diff(&["--from", &b, "--to", &b]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "+0 -0 ~0 (=3 unchanged)\n");
}

#[test]
fn default_compares_the_spec_revision_with_the_working_tree() {
    let f = fixture();
    std::fs::write(
        f.repo.path().join("svc/web/values-prod.yaml"),
        "replicas: 5",
    )
    .unwrap();
    let out = f.diff(&[]);
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.starts_with("~ web-prod (changed)\n"), "{text}");
    assert!(text.ends_with("+0 -0 ~1 (=2 unchanged)\n"), "{text}");
}

#[test]
fn old_spec_against_new_and_mass_removal_warning() {
    let f = fixture();
    let old = write(
        f.dir.path(),
        "old.yaml",
        &SPEC.replace("NAME", "{{service}}"),
    );
    let b = f.second.to_string();
    let out = f.diff(&["--from-spec", &old, "--from", &b, "--to", &b, "-o", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["added"].as_array().unwrap().len(), 3);
    assert_eq!(json["removed"].as_array().unwrap().len(), 3);
    assert_eq!(json["removed"][0]["metadata"]["name"], "api");
    assert_eq!(json["changed"], serde_json::json!([]));
    assert_eq!(
        stderr(&out).trim_end(),
        "warning: this change removes 3 of 3 Applications (100%)"
    );
}

#[test]
fn shrinking_generator_is_named() {
    let f = fixture();
    let a = f.first.to_string();
    // Drop two of three services in a third commit.
    let third = f.repo.commit(
        &[
            ("svc/api/values-prod.yaml", None),
            ("svc/billing/values-prod.yaml", None),
        ],
        "drop",
    );
    let c = third.to_string();
    let out = f.diff(&["--from", &a, "--to", &c]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out).trim_end(),
        "warning: this change removes 2 of 3 Applications (66%); spec.generators[0].values made 3 Applications before and 1 after"
    );
}

#[test]
fn errors_exit_one() {
    let f = fixture();
    let out = f.diff(&["--from", "no-such-rev"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown revision \"no-such-rev\""),
        "{}",
        stderr(&out)
    );
}
