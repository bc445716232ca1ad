//! Scale scenario: 1,000 services × 3 `values-<env>.yaml` in one git repository and
//! 12 clusters (4 per environment) → 12,000 Applications via values × clusters; then
//! the same at 4,000 services (48,000 Applications), to show how time and memory grow.
//!
//! Runs the release `prism generate` binary on each several times and reports wall
//! time (min and median) and the peak RSS of the runs: in Argo's default template mode
//! on one thread and on two (`--threads`), and in `goTemplate` mode; then `prism diff`
//! of the 12,000 (two renders and a comparison). `cargo bench --bench scale`; set
//! `PRISM_SCALE_SERVICES` to change the first size (the second is four times it).

use git2::{FileMode, Repository, Signature};
use std::io::Read;
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
    let mut medians = Vec::new();
    for (n, services) in [services, services * 4].into_iter().enumerate() {
        let dir = tmp.path().join(format!("s{services}"));
        let scenario = Scenario::build(&dir, services);
        println!("scale: {services} services x 3 envs x 4 clusters/env");
        let mut runs = vec![
            (
                "fasttemplate, 2 threads",
                "appset.yaml",
                vec!["--threads", "2"],
            ),
            (
                "fasttemplate, 1 thread",
                "appset.yaml",
                vec!["--threads", "1"],
            ),
        ];
        if n == 0 {
            runs.push((
                "goTemplate, 2 threads",
                "appset-go.yaml",
                vec!["--threads", "2"],
            ));
        }
        for (label, spec, extra) in runs {
            let mut args = vec!["generate", spec];
            args.extend(scenario.source_args());
            args.extend(extra);
            let (median, min, rss, out) = measure(&dir, &args);
            if label.starts_with("fasttemplate, 2") {
                medians.push(median);
            }
            let count = out.windows(4).filter(|w| w == b"\n---").count() + 1;
            println!(
                "scale: {label}: {count} Applications, wall time min {} ms, median {} ms, peak RSS {:.1} MB ({RUNS} runs)",
                min.as_millis(),
                median.as_millis(),
                rss as f64 / 1024.0
            );
            // The output's checksum: equal before and after a change that keeps output equal.
            println!(
                "scale: {label}: output sha256 {}",
                prism::digest::sha256_hex(&out)
            );
        }
        if n == 0 {
            // `prism diff` of the scenario against itself: two renders and a diff of
            // every Application (exit 0: no difference).
            let mut args = vec!["diff", "appset.yaml", "--from", "HEAD", "--to", "HEAD"];
            args.extend(scenario.source_args());
            let (median, min, rss, _) = measure(&dir, &args);
            println!(
                "scale: diff (two renders, no difference): wall time min {} ms, median {} ms, peak RSS {:.1} MB ({RUNS} runs)",
                min.as_millis(),
                median.as_millis(),
                rss as f64 / 1024.0
            );
        }
    }
    println!(
        "scale: 4x the Applications took {:.2}x the time (fasttemplate, 2 threads, medians)",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );
}

/// Runs prism with `args` in `dir` `RUNS` times: median and min wall time, the largest
/// peak RSS (KiB) of the runs, and the last run's stdout. Each run must exit 0 (for
/// `diff`: no difference).
fn measure(dir: &Path, args: &[&str]) -> (Duration, Duration, i64, Vec<u8>) {
    let mut times = Vec::new();
    let mut peak = 0;
    let mut out = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        // Waited for with wait4 below, which also reports its peak RSS.
        #[allow(clippy::zombie_processes)]
        let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run prism");
        out.clear();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_end(&mut out)
            .expect("read output");
        let (status, rss) = wait_with_rss(child.id());
        times.push(start.elapsed());
        assert_eq!(status, 0, "prism {args:?} exited {status}");
        peak = peak.max(rss);
    }
    times.sort();
    (times[RUNS / 2], times[0], peak, out)
}

/// Waits for process `pid`: its exit status and peak resident set (KiB).
#[allow(unsafe_code)]
fn wait_with_rss(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: wait4 writes only into the zeroed struct and the status we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid as i32, "wait4 failed");
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

/// A scenario on disk: the repository, the cluster Secrets and both specs.
struct Scenario {
    repo_arg: String,
}

impl Scenario {
    fn build(dir: &Path, services: usize) -> Scenario {
        std::fs::create_dir_all(dir).expect("scenario dir");
        let started = Instant::now();
        build_repo(&dir.join("services"), services);
        std::fs::write(dir.join("clusters.yaml"), clusters()).expect("write clusters");
        std::fs::write(dir.join("appset.yaml"), APPSET).expect("write spec");
        std::fs::write(dir.join("appset-go.yaml"), go_template_spec()).expect("write spec");
        eprintln!(
            "scenario built in {:?}: {services} services, 12 clusters",
            started.elapsed()
        );
        Scenario {
            repo_arg: format!(
                "https://git.example.com/org/services.git={}",
                dir.join("services").display()
            ),
        }
    }

    fn source_args(&self) -> Vec<&str> {
        vec!["--clusters", "clusters.yaml", "--repo", &self.repo_arg]
    }
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
