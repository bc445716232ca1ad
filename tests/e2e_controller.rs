//! End to end against a real cluster: runs only when `PRISM_E2E_KUBECONFIG` names a
//! kubeconfig (kind or k3d). Installs Argo CD's Application and ApplicationSet CRDs
//! (from `PRISM_E2E_ARGO_CRDS`, default `../shared/argo-cd-crds`) and Prism's, runs
//! `prism controller` processes in a fresh namespace, and checks create, drift repair,
//! policy, the deletion guard and leader failover. Argo CD itself is not needed:
//! Applications are only objects here.
//!
//! ```text
//! kind create cluster --name prism-e2e
//! kind get kubeconfig --name prism-e2e > /tmp/prism-e2e.kubeconfig
//! PRISM_E2E_KUBECONFIG=/tmp/prism-e2e.kubeconfig cargo test --test e2e_controller -- --nocapture
//! ```

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn kubeconfig() -> Option<PathBuf> {
    std::env::var_os("PRISM_E2E_KUBECONFIG").map(PathBuf::from)
}

async fn client(path: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(path).expect("PRISM_E2E_KUBECONFIG is a kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", kind), plural)
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .map(|v| serde_json::to_value(v).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

async fn install_crds(client: &Client) {
    let argo = std::env::var_os("PRISM_E2E_ARGO_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/argo-cd-crds"));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let files = [
        argo.join("application-crd.yaml"),
        argo.join("applicationset-crd.yaml"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml"),
    ];
    for file in files {
        for doc in yaml_docs(&file) {
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            crds.patch(
                &name,
                &PatchParams::apply("prism-e2e").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
        }
    }
    // Wait until the API serves them.
    for name in ["applications.argoproj.io", "applicationsets.prism.dev"] {
        eventually(Duration::from_secs(30), || async {
            let crd = crds.get(name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        })
        .await;
    }
}

/// Polls `f` until it returns `Some` or `limit` passes.
async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A `prism controller` process, killed when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_controller(kubeconfig: &Path, ns: &str, identity: &str, cache: &Path) -> Controller {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args([
            "controller",
            "--namespace",
            ns,
            "--argocd-namespace",
            ns,
            "--lease-namespace",
            ns,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--cache-dir",
        ])
        .arg(cache)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", identity)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting prism controller");
    Controller(child)
}

fn appset(ns: &str, elements: Value, sync: &str) -> Value {
    json!({
        "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "e2e", "namespace": ns},
        "spec": {
            "generators": [{"list": {"elements": elements}}],
            "syncPolicy": {"applicationsSync": sync},
            "template": {
                "metadata": {"name": "e2e-{{name}}"},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://github.com/example-org/services.git",
                                    "path": "{{name}}", "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{name}}"}}
            }
        }
    })
}

#[tokio::test]
async fn controller_converges_repairs_respects_policy_guards_deletes_and_fails_over() {
    let Some(path) = kubeconfig() else {
        eprintln!("PRISM_E2E_KUBECONFIG is not set: the end-to-end suite did not run");
        return;
    };
    let client = client(&path).await;
    install_crds(&client).await;
    let ns = format!("prism-e2e-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("namespace");
    let cache = tempfile::tempdir().unwrap();
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &resource("argoproj.io", "Application", "applications"),
    );
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &resource("prism.dev", "ApplicationSet", "applicationsets"),
    );
    let apply = |v: Value| {
        let sets = sets.clone();
        async move {
            sets.patch("e2e", &PatchParams::apply("e2e").force(), &Patch::Apply(&v))
                .await
                .expect("applying the ApplicationSet")
        }
    };
    let names = || {
        let apps = apps.clone();
        async move {
            let mut n: Vec<String> = apps
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|a| a.metadata.name)
                        .collect()
                })
                .unwrap_or_default();
            n.sort();
            n
        }
    };

    let first = start_controller(&path, &ns, "replica-a", cache.path());
    let second = start_controller(&path, &ns, "replica-b", &cache.path().join("b"));

    // Create.
    apply(appset(
        &ns,
        json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        "sync",
    ))
    .await;
    eventually(Duration::from_secs(60), || async {
        (names().await == ["e2e-a", "e2e-b", "e2e-c"]).then_some(())
    })
    .await;

    // Drift repair: a hand edit is put back.
    apps.patch(
        "e2e-a",
        &PatchParams::apply("someone").force(),
        &Patch::Apply(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                             "spec": {"source": {"targetRevision": "hand-edited"}}}),
        ),
    )
    .await
    .expect("hand edit");
    eventually(Duration::from_secs(60), || async {
        let a = apps.get("e2e-a").await.ok()?;
        (a.data["spec"]["source"]["targetRevision"] == "main").then_some(())
    })
    .await;

    // Policy: create-only neither deletes nor updates.
    apply(appset(
        &ns,
        json!([{"name": "a"}, {"name": "b"}]),
        "create-only",
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        names().await,
        ["e2e-a", "e2e-b", "e2e-c"],
        "create-only deleted an Application"
    );

    // Deletion guard: removing every element is held until confirmed for that generation.
    let set = apply(appset(&ns, json!([]), "sync")).await;
    let generation = set.metadata.generation.expect("generation");
    eventually(Duration::from_secs(60), || async {
        let s = sets.get("e2e").await.ok()?;
        let held = s.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "DeletionHeld" && c["status"] == "True");
        held.then_some(())
    })
    .await;
    assert_eq!(names().await.len(), 3, "held deletes ran");
    sets.patch(
        "e2e",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"prism.dev/allow-mass-delete": generation.to_string()}}})),
    )
    .await
    .expect("annotate");
    eventually(Duration::from_secs(60), || async {
        names().await.is_empty().then_some(())
    })
    .await;

    // Leader failover: kill the leader; the other replica takes over within the lease.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get("prism-controller")
            .await
            .ok()?
            .spec?
            .holder_identity
    };
    let leader = holder().await.expect("a leader");
    let (gone, standby) = if leader == "replica-a" {
        (first, second)
    } else {
        (second, first)
    };
    drop(gone);
    let took_over = Instant::now();
    apply(appset(&ns, json!([{"name": "after-failover"}]), "sync")).await;
    eventually(Duration::from_secs(60), || async {
        (names().await == ["e2e-after-failover"]).then_some(())
    })
    .await;
    eprintln!(
        "standby took over and converged in {:?}",
        took_over.elapsed()
    );
    assert_ne!(holder().await.as_deref(), Some(leader.as_str()));
    drop(standby);
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}
