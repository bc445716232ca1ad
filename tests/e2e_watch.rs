//! A watch that expires is resumed: kube-apiserver is restarted after etcd's history is
//! compacted past every resourceVersion the controller has seen, so each of its watches
//! comes back to `410 Gone` and must list again. A test binary of its own, because it
//! restarts the API server under its control plane (`tests/common/control_plane.rs`).

mod common;

use common::control_plane::control_plane;
use common::controller::{eventually, start_controller, Apis};
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn appset(ns: &str, names: &[&str]) -> Value {
    let elements: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    json!({
        "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "watch", "namespace": ns},
        "spec": {
            "generators": [{"list": {"elements": elements}}],
            "template": {
                "metadata": {"name": "w-{{name}}"},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://github.com/example-org/services.git",
                                    "path": "{{name}}", "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{name}}"}}
            }
        }
    })
}

#[tokio::test]
async fn watches_resume_after_410_gone() {
    let plane = control_plane();
    let tenant = plane.tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let (apps, sets) = (api.apps.clone(), api.sets.clone());
    let cache = tempfile::tempdir().unwrap();
    let controller = start_controller(&tenant, "watch", cache.path(), &["--no-leader-election"]);
    let apply = |set: Value| {
        let sets = sets.clone();
        async move {
            sets.patch(
                "watch",
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&set),
            )
            .await
            .expect("apply")
        }
    };
    apply(appset(&ns, &["a"])).await;
    let seen = eventually(LIMIT, "w-a", || async { apps.get("w-a").await.ok() }).await;
    let seen_version: i64 = seen.metadata.resource_version.unwrap().parse().unwrap();

    let mut compacted = 0;
    plane
        .restart_apiserver(|| compacted = plane.compact_etcd())
        .await;
    assert!(
        compacted > seen_version,
        "the compaction ({compacted}) must pass what the controller saw ({seen_version})"
    );

    // The ApplicationSet watch resumed: a change to the set is acted on.
    apply(appset(&ns, &["a", "b"])).await;
    eventually(LIMIT, "w-b after the restart", || async {
        apps.get("w-b").await.ok()
    })
    .await;
    // The Application watch resumed: a hand edit is repaired.
    apps.patch(
        "w-a",
        &PatchParams::apply("someone").force(),
        &Patch::Apply(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                             "spec": {"source": {"targetRevision": "hand-edited"}}}),
        ),
    )
    .await
    .expect("hand edit");
    eventually(LIMIT, "w-a repaired", || async {
        let a = apps.get("w-a").await.ok()?;
        (a.data["spec"]["source"]["targetRevision"] == "main").then_some(())
    })
    .await;
    drop(controller);
    // The watches did come back to 410 Gone (kube-rs logs it, then lists again).
    let log =
        std::fs::read_to_string(plane.dir.join(format!("controller-{ns}-watch.log"))).unwrap();
    assert!(
        log.contains("watching Applications: error returned by apiserver during watch: too old resource version"),
        "{log}"
    );
}
