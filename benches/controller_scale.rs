//! `prism controller` at fleet scale against a real API server (the test control plane of
//! `tests/common/control_plane.rs`): 1,000 ApplicationSets, each a git `files` generator
//! over the same repository (10 environment files), so 10,000 Applications.
//!
//! Measures, with the release binary:
//! - time to first convergence (controller start → all 10,000 Applications exist), the
//!   API requests it made (from the API server's `apiserver_request_total`), and the
//!   controller's peak RSS;
//! - a no-change resync (a fresh controller process reconciling every set again): its
//!   write requests, which must be zero;
//! - a git push changing one value read by every set, announced by a signed GitHub
//!   webhook: time until every Application carries the new value.
//!
//! `cargo bench --bench controller_scale` (needs Go, as the end-to-end tests do).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports, missing_docs)]
mod common;

use common::control_plane::{control_plane, Tenant};
use common::controller::{spawn_controller, Apis, Controller};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SETS: usize = 1000;
const ENVS: usize = 10;
const APPS: usize = SETS * ENVS;

/// Requests by (resource, verb), from the API server's metrics text.
fn requests(metrics: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let count: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry((label("resource"), label("verb"))).or_insert(0) += count as u64;
    }
    out
}

fn delta(
    after: &BTreeMap<(String, String), u64>,
    before: &BTreeMap<(String, String), u64>,
) -> BTreeMap<(String, String), u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

fn writes(d: &BTreeMap<(String, String), u64>, resource: &str) -> u64 {
    d.iter()
        .filter(|((r, v), _)| {
            r == resource && ["POST", "PATCH", "PUT", "DELETE"].contains(&v.as_str())
        })
        .map(|(_, n)| n)
        .sum()
}

fn print_requests(title: &str, d: &BTreeMap<(String, String), u64>) {
    let text: Vec<String> = d
        .iter()
        .filter(|((r, _), _)| {
            [
                "applications",
                "applicationsets",
                "events",
                "leases",
                "secrets",
            ]
            .contains(&r.as_str())
        })
        .map(|((r, v), n)| format!("{v} {r}: {n}"))
        .collect();
    println!("  {title}: {}", text.join(", "));
}

/// `VmHWM` (peak) and `VmRSS` of a process, in MB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn start(tenant: &Tenant, cache: &Path, secrets: &Path, name: &str) -> Controller {
    let ns = tenant.namespace.as_str();
    let secrets = secrets.display().to_string();
    spawn_controller(
        &tenant.kubeconfig,
        name,
        name,
        cache,
        &[
            "--no-leader-election",
            "--namespace",
            ns,
            "--argocd-namespace",
            ns,
            "--git-refresh-seconds",
            "3600",
            "--allow-insecure-repos",
            "--webhook-secrets",
            &secrets,
        ],
    )
}

/// The controller's own count of finished reconcile passes.
fn passes(port: u16) -> u64 {
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    agent
        .get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("prism_reconcile_duration_seconds_count ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn env_files(revision: &str) -> Vec<(String, String)> {
    (0..ENVS)
        .map(|e| {
            (
                format!("envs/env-{e}.yaml"),
                format!("env: env-{e}\nrevision: {revision}\n"),
            )
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let plane = control_plane();
    let tenant = plane.tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let (apps, sets) = (&api.apps, &api.sets);

    let work = common::TestRepo::new();
    let files = env_files("v1");
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), Some(c.as_str())))
        .collect();
    work.commit(&refs, "v1");
    let served = tempfile::tempdir().unwrap();
    let bare = common::githttp::bare_clone(work.path(), served.path(), "fleet");
    let daemon = common::githttp::serve_daemon(served.path());
    let url = format!("git://127.0.0.1:{}/fleet.git", daemon.port);
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("github"), "bench-secret").unwrap();

    let started = Instant::now();
    for i in 0..SETS {
        let name = format!("svc-{i:04}");
        let set = json!({
            "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "generators": [{"git": {"repoURL": url, "revision": "main",
                                        "files": [{"path": "envs/*.yaml"}]}}],
                "template": {
                    "metadata": {"name": format!("{name}-{{{{env}}}}"), "labels": {"env": "{{env}}"}},
                    "spec": {"project": "default",
                             "source": {"repoURL": "https://git.example.com/services.git",
                                        "path": format!("services/{name}"), "targetRevision": "{{revision}}"},
                             "destination": {"server": "https://kubernetes.default.svc", "namespace": name}}
                }
            }
        });
        sets.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&set))
            .await
            .expect("applying an ApplicationSet");
    }
    println!(
        "controller at scale: {SETS} ApplicationSets × {ENVS} = {APPS} Applications, against kube-apiserver 1.36.3 on 127.0.0.1"
    );
    println!(
        "  {SETS} sets applied by the admin in {:?}",
        started.elapsed()
    );

    let count = || async {
        apps.list_metadata(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    };
    let cache = tempfile::tempdir().unwrap();
    let before = requests(&plane.metrics().await);
    let t0 = Instant::now();
    let controller = start(&tenant, cache.path(), secrets.path(), "bench-1");
    loop {
        if count().await == APPS {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "no convergence in 15 min"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let converged = t0.elapsed();
    // Let the passes finish their status writes before counting.
    while passes(controller.port) < SETS as u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = requests(&plane.metrics().await);
    let first = delta(&after, &before);
    let (peak, rss) = memory(controller.child.id());
    println!("  first convergence: {converged:.2?} to {APPS} Applications");
    print_requests("requests", &first);
    println!("  controller memory: peak RSS {peak:.1} MB, RSS now {rss:.1} MB");
    drop(controller);

    // No-change resync: a fresh process reconciles every set again.
    let before = requests(&plane.metrics().await);
    let t1 = Instant::now();
    let controller = start(&tenant, cache.path(), secrets.path(), "bench-2");
    while passes(controller.port) < SETS as u64 {
        assert!(
            t1.elapsed() < Duration::from_secs(600),
            "resync unfinished in 10 min"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resync = t1.elapsed();
    let after = requests(&plane.metrics().await);
    let second = delta(&after, &before);
    println!(
        "  no-change resync by a new process: {resync:.2?} for {SETS} passes, {} Application writes, {} ApplicationSet writes",
        writes(&second, "applications"),
        writes(&second, "applicationsets")
    );
    print_requests("requests", &second);

    // One value read by every set changes: push and announce it.
    let files = env_files("v2");
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), Some(c.as_str())))
        .collect();
    work.commit(&refs, "v2");
    let pushed = Command::new("git")
        .current_dir(work.path())
        .args(["push", "--quiet"])
        .arg(&bare)
        .arg("main")
        .status()
        .unwrap();
    assert!(pushed.success());
    let before = requests(&plane.metrics().await);
    let t2 = Instant::now();
    assert_eq!(controller.github_push(&url, "main", b"bench-secret"), 200);
    loop {
        let list = apps.list(&ListParams::default()).await.expect("list");
        let done = list
            .items
            .iter()
            .filter(|a| a.data["spec"]["source"]["targetRevision"] == "v2")
            .count();
        if done == APPS {
            break;
        }
        assert!(
            t2.elapsed() < Duration::from_secs(900),
            "push not applied in 15 min ({done})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let updated = t2.elapsed();
    let after = requests(&plane.metrics().await);
    println!("  push → every Application updated: {updated:.2?}");
    print_requests("requests", &delta(&after, &before));
    let (peak, rss) = memory(controller.child.id());
    println!("  controller memory (second process): peak RSS {peak:.1} MB, RSS now {rss:.1} MB");
    drop(controller);
}
