//! Scale scenario: 1,000 services × 3 `values-<env>.yaml` in one git repository and
//! 12 clusters (4 per environment) → 12,000 Applications via values × clusters.
//!
//! Runs the release `prism generate` binary on it several times and reports wall time
//! (min and median), for the spec in Argo's default template mode and in `goTemplate`
//! mode, and peak RSS. `cargo bench --bench scale`; set
//! `PRISM_SCALE_SERVICES` to change the number of services.

use git2::{FileMode, Repository, Signature};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ENVS: [&str; 3] = ["test", "preview", "prod"];
const RUNS: usize = 7;

fn main() {
    let services: usize = std::env::var("PRISM_SCALE_SERVICES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().expect("temp dir");
    // PRISM_SCALE_DIR keeps the scenario there, to run other builds of prism on it.
    let kept = std::env::var_os("PRISM_SCALE_DIR").map(std::path::PathBuf::from);
    let root = kept.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&root).expect("scenario dir");
    let _keep_temp = &tmp;
    let tmp = Scenario(root);
    let build = Instant::now();
    build_repo(&tmp.path().join("services"), services);
    std::fs::write(tmp.path().join("clusters.yaml"), clusters()).expect("write clusters");
    std::fs::write(tmp.path().join("appset.yaml"), APPSET).expect("write spec");
    std::fs::write(tmp.path().join("appset-go.yaml"), go_template_spec()).expect("write spec");
    eprintln!(
        "scenario built in {:?}: {services} services, 12 clusters",
        build.elapsed()
    );

    let repo_arg = format!(
        "https://git.example.com/org/services.git={}",
        tmp.path().join("services").display()
    );
    println!("scale: {services} services x 3 envs x 4 clusters/env");
    let mut medians = Vec::new();
    for (mode, spec) in [
        ("fasttemplate", "appset.yaml"),
        ("goTemplate", "appset-go.yaml"),
    ] {
        let mut times = Vec::new();
        let mut count = 0;
        let mut digest = String::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_prism"))
                .args([
                    "generate",
                    spec,
                    "--clusters",
                    "clusters.yaml",
                    "--repo",
                    &repo_arg,
                ])
                .current_dir(tmp.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .output()
                .expect("run prism");
            times.push(start.elapsed());
            assert!(out.status.success(), "prism generate failed");
            count = out.stdout.windows(4).filter(|w| w == b"\n---").count() + 1;
            digest = prism::digest::sha256_hex(&out.stdout);
        }
        times.sort();
        let median = times[RUNS / 2];
        medians.push(median);
        println!(
            "scale: {mode}: {count} Applications, wall time min {} ms, median {} ms ({RUNS} runs)",
            ms(times[0]),
            ms(median)
        );
        // The output's checksum: equal before and after a change that keeps output equal.
        println!("scale: {mode}: output sha256 {digest}");
    }
    // `prism diff` of the scenario against itself: two renders and a diff of every
    // Application (issue 17's target is 400 ms).
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args([
                "diff",
                "appset.yaml",
                "--from",
                "HEAD",
                "--to",
                "HEAD",
                "--clusters",
                "clusters.yaml",
                "--repo",
                &repo_arg,
            ])
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .expect("run prism diff");
        times.push(start.elapsed());
        assert_eq!(
            out.status.code(),
            Some(0),
            "prism diff found differences or failed"
        );
    }
    times.sort();
    println!(
        "scale: diff (two renders, no difference): wall time min {} ms, median {} ms ({RUNS} runs)",
        ms(times[0]),
        ms(times[RUNS / 2])
    );
    println!(
        "scale: goTemplate / fasttemplate median ratio: {:.2}",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
    println!(
        "scale: peak RSS of any run: {:.1} MB",
        peak_child_rss_kib() as f64 / 1024.0
    );
}

/// The same ApplicationSet in Go template syntax.
fn go_template_spec() -> String {
    APPSET
        .replace(
            "spec:\n  generators:",
            "spec:\n  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n  generators:",
        )
        .replace("{{env}}", "{{.env}}")
        .replace("{{service}}", "{{.service}}")
        .replace("{{nameNormalized}}", "{{.nameNormalized}}")
        .replace("{{path}}", "{{.path}}")
        .replace("{{server}}", "{{.server}}")
}

/// Where the scenario is written.
struct Scenario(std::path::PathBuf);

impl Scenario {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// The largest peak resident set of any child process waited for so far.
#[allow(unsafe_code)]
fn peak_child_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss // KiB on Linux
}

/// Writes the repository straight into the object database (no working tree).
fn build_repo(dir: &Path, services: usize) {
    let repo = Repository::init_bare(dir).expect("init repo");
    let base = repo
        .blob(b"image:\n  repository: registry.example.com/team/svc\nreplicaCount: 1\n")
        .expect("blob");
    let mut services_tree = repo.treebuilder(None).expect("treebuilder");
    for i in 0..services {
        let mut svc = repo.treebuilder(None).expect("treebuilder");
        svc.insert("values.yaml", base, FileMode::Blob.into())
            .expect("insert");
        for (n, env) in ENVS.iter().enumerate() {
            let content = format!("replicaCount: {}\nenv: {env}\nresources:\n  limits: {{cpu: 500m, memory: 256Mi}}\n", n + 1);
            let blob = repo.blob(content.as_bytes()).expect("blob");
            svc.insert(format!("values-{env}.yaml"), blob, FileMode::Blob.into())
                .expect("insert");
        }
        let svc_oid = svc.write().expect("write tree");
        services_tree
            .insert(format!("svc-{i:04}"), svc_oid, FileMode::Tree.into())
            .expect("insert");
    }
    let services_oid = services_tree.write().expect("write tree");
    let mut root = repo.treebuilder(None).expect("treebuilder");
    root.insert("services", services_oid, FileMode::Tree.into())
        .expect("insert");
    let tree = repo
        .find_tree(root.write().expect("write tree"))
        .expect("tree");
    let sig = Signature::now("bench", "bench@prism.dev").expect("signature");
    repo.commit(Some("HEAD"), &sig, &sig, "scale", &tree, &[])
        .expect("commit");
}

fn clusters() -> String {
    let mut out = String::new();
    for env in ENVS {
        for i in 1..=4 {
            out.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: cluster-{env}-{i}\n  namespace: argocd\n  labels:\n    argocd.argoproj.io/secret-type: cluster\n    env: {env}\nstringData:\n  name: {env}-{i}\n  server: https://{env}-{i}.k8s.example.com\n"
            ));
        }
    }
    out
}

const APPSET: &str = r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {name: fleet, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - values:
          repoURL: https://git.example.com/org/services.git
          revision: HEAD
          environments: [test, preview, prod]
      - clusters:
          selector:
            matchLabels: {env: "{{env}}"}
  template:
    metadata:
      name: "{{service}}-{{nameNormalized}}"
      labels: {app.kubernetes.io/name: "{{service}}", env: "{{env}}"}
    spec:
      project: default
      source:
        repoURL: https://git.example.com/org/services.git
        targetRevision: HEAD
        path: "{{path}}"
        helm:
          valueFiles: [values.yaml, "values-{{env}}.yaml"]
      destination: {server: "{{server}}", namespace: "{{service}}-{{env}}"}
      syncPolicy:
        automated: {prune: true, selfHeal: true}
        syncOptions: [CreateNamespace=true]
"#;
