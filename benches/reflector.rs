//! Memory of the controller's Application cache: 10,000 Applications as the API
//! returns them, held in a kube-rs reflector store the way `prism controller` holds
//! them (managedFields and status dropped), against the same objects kept whole.
//! Also times one reconcile's view of the cache (owned + desired-name candidates),
//! and a whole no-change pass over it: the view, the existing Applications read from
//! it and the plan against 10,000 desired ones (issue 17's target: 50 ms).
//! `cargo bench --bench reflector`.

use kube::api::{DynamicObject, ResourceExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use prism::controller::application::CachedApplication;
use prism::controller::apply::application_resource;
use prism::controller::plan::{plan, Guard, Input, Policy};
use prism::controller::reconcile::{by_name, existing_in, SetMeta};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

const N: usize = 10_000;
const KINDS: [&str; 6] = [
    "Deployment",
    "Service",
    "ConfigMap",
    "Ingress",
    "ServiceAccount",
    "HorizontalPodAutoscaler",
];

fn app(i: usize) -> Value {
    let name = format!("svc-{i:05}");
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name, "namespace": "argocd",
            "uid": format!("6f1c2a64-0000-4000-8000-{i:012}"),
            "resourceVersion": format!("{}", 1_000_000 + i), "generation": 4,
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "labels": {"prism.dev/application-set": "argocd.fleet", "env": "prod", "team": format!("t{}", i % 40)},
            "annotations": {"prism.dev/applied-hash": "0123456789abcdef"},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            "ownerReferences": [{"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet", "name": "fleet",
                                 "uid": "0b8f6e8e-1111-4222-8333-444455556666", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "prism", "operation": "Apply", "apiVersion": "argoproj.io/v1alpha1", "time": "2026-11-01T10:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:env": {}, "f:team": {}, "f:prism.dev/application-set": {}},
                    "f:annotations": {"f:prism.dev/applied-hash": {}}, "f:finalizers": {"v:\"resources-finalizer.argocd.argoproj.io\"": {}},
                    "f:ownerReferences": {"k:{\"uid\":\"0b8f6e8e-1111-4222-8333-444455556666\"}": {}}},
                    "f:spec": {"f:project": {}, "f:source": {"f:repoURL": {}, "f:path": {}, "f:targetRevision": {}, "f:helm": {}},
                               "f:destination": {"f:server": {}, "f:namespace": {}}, "f:syncPolicy": {}}}},
                {"manager": "argocd-application-controller", "operation": "Update", "apiVersion": "argoproj.io/v1alpha1",
                 "time": "2026-11-01T10:05:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {".": {}, "f:health": {}, "f:sync": {}, "f:resources": {}, "f:summary": {}, "f:history": {}}}}
            ]
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example/org/services.git", "targetRevision": "main",
                "path": format!("services/{name}"),
                "helm": {"valueFiles": ["values.yaml", "values-prod.yaml"],
                    "parameters": [{"name": "image.tag", "value": "1.4.7"}, {"name": "replicas", "value": "3"}]}},
            "destination": {"server": format!("https://c{}.example", i % 12), "namespace": name},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}
        },
        // A modest Argo CD status: sync, health, 6 resources, 3 history entries.
        "status": {
            "sync": {"status": "Synced", "revision": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                     "comparedTo": {"source": {"repoURL": "https://git.example/org/services.git", "path": format!("services/{name}"), "targetRevision": "main"},
                                    "destination": {"server": format!("https://c{}.example", i % 12), "namespace": name}}},
            "health": {"status": "Healthy"},
            "resources": (0..6).map(|k| json!({"group": "apps", "version": "v1", "kind": KINDS[k],
                "namespace": name, "name": name, "status": "Synced", "health": {"status": "Healthy"}})).collect::<Vec<_>>(),
            "history": (0..3).map(|k| json!({"revision": "4b825dc642cb6eb9a060e54bf8d69288fbee4904", "deployedAt": "2026-11-01T10:05:00Z", "id": k,
                "source": {"repoURL": "https://git.example/org/services.git", "path": format!("services/{name}"), "targetRevision": "main"}})).collect::<Vec<_>>(),
            "reconciledAt": "2026-11-23T10:00:00Z",
            "summary": {"images": [format!("registry.example/{name}:1.4.7")]}
        }
    })
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Fills a store with `N` objects decoded one at a time, as a watch delivers them;
/// returns the store and the KiB the process grew.
fn fill<K>(dyntype: K::DynamicType, decode: impl Fn(Value) -> K) -> (Writer<K>, u64)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let before = rss_kib();
    let mut writer = Writer::<K>::new(dyntype);
    for i in 0..N {
        writer.apply_watcher_event(&watcher::Event::Apply(decode(app(i))));
    }
    (writer, rss_kib().saturating_sub(before))
}

fn main() {
    // Measured first, on a fresh heap: what `prism controller` keeps.
    let (cached, cached_kib) = fill((), |v| {
        let mut a = CachedApplication::from_value(&v).unwrap();
        a.managed_fields_mut().clear();
        a
    });
    let store = cached.as_reader();
    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let owned: Vec<Value> = store
            .state()
            .into_iter()
            .filter(|a| {
                a.labels()
                    .get("prism.dev/application-set")
                    .map(String::as_str)
                    == Some("argocd.fleet")
            })
            .map(|a| a.to_value())
            .collect();
        assert_eq!(owned.len(), N);
        times.push(started.elapsed());
    }
    times.sort();
    println!("reflector, {N} Applications as `prism controller` keeps them (metadata without managedFields, spec as text, of the status only progress): {:.1} MiB ({:.2} KiB each)",
        cached_kib as f64 / 1024.0, cached_kib as f64 / N as f64);
    println!("one reconcile's view of the cache ({N} owned, decoded to JSON values): min {:?}, median {:?}", times[0], times[times.len() / 2]);

    // A whole pass with nothing to do, as `plan_set` runs it: the set's Applications
    // from the cache, who owns them, and the plan against the desired ones.
    let set = SetMeta::from_object(&json!({"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd", "uid": "0b8f6e8e-1111-4222-8333-444455556666", "generation": 1}}))
        .expect("set");
    let mut desired: BTreeMap<String, Value> = (0..N)
        .map(|i| {
            let mut a = app(i);
            let m = a["metadata"].as_object_mut().expect("metadata");
            m.retain(|k, _| {
                [
                    "name",
                    "namespace",
                    "labels",
                    "annotations",
                    "finalizers",
                    "ownerReferences",
                ]
                .contains(&k.as_str())
            });
            a.as_object_mut().expect("object").remove("status");
            (
                a["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                a,
            )
        })
        .collect();
    let mut times = Vec::new();
    let mut writes = usize::MAX;
    for _ in 0..20 {
        let started = Instant::now();
        let state = store.state();
        let live = by_name(&state, "argocd");
        let input = Input {
            existing: existing_in(&set, &live, &desired),
            desired: Ok(std::mem::take(&mut desired)),
            policy: Policy::Sync,
            preserve_resources_on_deletion: false,
            guard: Guard::default(),
        };
        let p = plan(&input);
        times.push(started.elapsed());
        writes = p.writes();
        desired = input.desired.unwrap_or_default();
    }
    times.sort();
    assert_eq!(writes, 0, "a no-change pass planned writes");
    println!("controller pass with nothing to do ({N} owned and desired; cache view, owners, plan): min {:?}, median {:?}; {writes} writes", times[0], times[times.len() / 2]);
    // For comparison (measured after, on a heap with the first store still held).
    let dynamic = |v: Value| -> DynamicObject {
        let mut d: DynamicObject = serde_json::from_value(v).unwrap();
        d.types = None;
        d
    };
    let (_parsed, parsed_kib) = fill(application_resource(), |v| {
        let mut d = dynamic(v);
        d.managed_fields_mut().clear();
        if let Some(o) = d.data.as_object_mut() {
            o.remove("status");
        }
        d
    });
    let (_whole, whole_kib) = fill(application_resource(), dynamic);
    println!("for comparison, as parsed DynamicObjects without managedFields and status: {:.1} MiB; kept whole: {:.1} MiB",
        parsed_kib as f64 / 1024.0, whole_kib as f64 / 1024.0);
}
