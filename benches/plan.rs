//! Controller planner benchmark: 10,000 desired vs 10,000 owned Applications
//! (9,000 unchanged, 500 drifted, 500 new, 500 no longer desired). Target ≤ 50 ms.
//! `cargo bench --bench plan`.

use prism::controller::plan::{plan, Existing, Guard, Input, Owner, Policy};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

fn app(i: usize, rev: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": format!("svc-{i:05}"), "namespace": "argocd",
            "labels": {"prism.dev/application-set": "argocd.fleet", "env": "prod", "team": format!("t{}", i % 40)},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/org/services.git", "targetRevision": rev,
                "path": format!("services/svc-{i:05}"),
                "helm": {"valueFiles": ["values.yaml", "values-prod.yaml"],
                    "parameters": [{"name": "image.tag", "value": "1.4.7"}, {"name": "replicas", "value": "3"}]}},
            "destination": {"server": format!("https://c{}.example", i % 12), "namespace": format!("svc-{i:05}")},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}
        }
    })
}

fn main() {
    let mut desired = BTreeMap::new();
    let mut existing = BTreeMap::new();
    for i in 0..10_500 {
        let name = format!("svc-{i:05}");
        if i >= 500 {
            desired.insert(name.clone(), app(i, "main"));
        }
        if i < 10_000 {
            let mut live = app(
                i,
                if (9_500..10_000).contains(&i) {
                    "old"
                } else {
                    "main"
                },
            );
            live["status"] = json!({"sync": {"status": "Synced"}, "health": {"status": "Healthy"}});
            existing.insert(
                name,
                Existing {
                    owner: Owner::Us,
                    live: live.into(),
                    has_finalizer: true,
                    deleting: false,
                },
            );
        }
    }
    let input = Input {
        desired: Ok(desired),
        existing,
        policy: Policy::Sync,
        preserve_resources_on_deletion: false,
        guard: Guard::default(),
    };
    let mut times = Vec::new();
    let mut writes = 0;
    for _ in 0..15 {
        let started = Instant::now();
        let p = plan(&input);
        times.push(started.elapsed());
        writes = p.writes();
    }
    times.sort();
    println!(
        "plan 10,000 desired vs 10,000 owned: min {:?}, median {:?} (15 runs); {writes} writes",
        times[0], times[7]
    );

    // A no-change pass: desired equals live everywhere.
    let unchanged = Input {
        desired: Ok(input
            .existing
            .iter()
            .map(|(n, e)| {
                let mut d = e.live.to_value();
                if let Value::Object(m) = &mut d {
                    m.remove("status");
                }
                (n.clone(), d)
            })
            .collect()),
        ..input
    };
    let started = Instant::now();
    let p = plan(&unchanged);
    println!(
        "no-change pass: {:?}, {} writes",
        started.elapsed(),
        p.writes()
    );
}
