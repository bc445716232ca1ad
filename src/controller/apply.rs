//! The kube-rs calls of a reconcile pass: carry out a [`Plan`] with server-side
//! apply (field manager `prism`), delete with a uid precondition (after dropping
//! Argo's resources finalizer when asked), and patch the ApplicationSet's status
//! only when it changed. A no-change pass makes no request at all.

use crate::controller::application::CachedApplication;
use crate::controller::crd::ApplicationSetStatus;
use crate::controller::plan::{Action, Existing, Plan};
use crate::controller::reconcile::Applied;
use futures::stream::{self, StreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions,
};
use kube::Client;
use prism_engine::render::RESOURCES_FINALIZER;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "prism";

/// Argo CD's Application resource.
pub fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

/// An ApplicationSet resource of either API group (`prism.dev` or `argoproj.io`).
pub fn application_set_resource(group: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, "v1alpha1", "ApplicationSet"),
        "applicationsets",
    )
}

/// Carries out `plan` in `namespace`, up to `parallel` writes at a time. Every
/// failed call is reported (sorted by Application) and the others still run.
/// `written` is told, as each apply returns, what the API server made of it.
pub async fn execute(
    client: &Client,
    namespace: &str,
    plan: &Plan,
    desired: &BTreeMap<String, Value>,
    existing: &BTreeMap<String, Existing>,
    parallel: usize,
    written: &(dyn Fn(&CachedApplication) + Sync),
) -> Applied {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &application_resource());
    // Applies read the answer in the cache's form: the spec as the server printed it.
    let apps: Api<CachedApplication> = Api::namespaced(client.clone(), namespace);
    // Owned jobs: the futures below must not borrow the plan (they run on the runtime).
    let jobs: Vec<(usize, Job)> = plan
        .actions
        .iter()
        .enumerate()
        .filter_map(|(i, action)| {
            let job = match action {
                Action::Create(name) | Action::Update(name) => Job::Apply {
                    name: name.clone(),
                    body: desired.get(name).cloned(),
                    created: matches!(action, Action::Create(_)),
                },
                Action::Delete {
                    name,
                    remove_finalizer,
                } => Job::Delete {
                    name: name.clone(),
                    remove_finalizer: *remove_finalizer,
                    live: existing.get(name).map(|e| e.live.to_value()),
                },
                Action::Keep(..) => return None,
            };
            Some((i, job))
        })
        .collect();
    let mut results: Vec<(usize, Result<Done, String>)> = stream::iter(jobs)
        .map(|(i, job)| {
            let (api, apps) = (api.clone(), apps.clone());
            async move { (i, job.run(&api, &apps, written).await) }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    let mut applied = Applied::default();
    for (_, r) in results {
        match r {
            Ok(Done::Created) => applied.created += 1,
            Ok(Done::Updated) => applied.updated += 1,
            Ok(Done::Deleted) => applied.deleted += 1,
            Ok(Done::Nothing) => {}
            Err(e) => applied.errors.push(e),
        }
    }
    applied
}

enum Done {
    Created,
    Updated,
    Deleted,
    Nothing,
}

enum Job {
    Apply {
        name: String,
        body: Option<Value>,
        created: bool,
    },
    Delete {
        name: String,
        remove_finalizer: bool,
        live: Option<Value>,
    },
}

impl Job {
    async fn run(
        self,
        api: &Api<DynamicObject>,
        apps: &Api<CachedApplication>,
        written: &(dyn Fn(&CachedApplication) + Sync),
    ) -> Result<Done, String> {
        match self {
            Job::Apply {
                name,
                body: Some(body),
                created,
            } => apps
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map(|app| {
                    written(&app);
                    if created {
                        Done::Created
                    } else {
                        Done::Updated
                    }
                })
                .map_err(|e| format!("{name}: apply: {}", describe(&e))),
            Job::Apply {
                name, body: None, ..
            } => Err(format!("{name}: nothing rendered to apply")),
            Job::Delete {
                name,
                remove_finalizer,
                live,
            } => delete(api, &name, remove_finalizer, live.as_ref()).await,
        }
    }
}

async fn delete(
    api: &Api<DynamicObject>,
    name: &str,
    remove_finalizer: bool,
    live: Option<&Value>,
) -> Result<Done, String> {
    if remove_finalizer {
        let kept: Vec<&Value> = live
            .and_then(|l| l["metadata"]["finalizers"].as_array())
            .map(|f| {
                f.iter()
                    .filter(|x| {
                        !x.as_str()
                            .is_some_and(|s| s.starts_with(RESOURCES_FINALIZER))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // resourceVersion makes the patch fail rather than overwrite a concurrent change.
        let mut patch = json!({"metadata": {"finalizers": kept}});
        if let Some(rv) = live.and_then(|l| l["metadata"]["resourceVersion"].as_str()) {
            patch["metadata"]["resourceVersion"] = json!(rv);
        }
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("{name}: removing the resources finalizer: {}", describe(&e)))?;
    }
    let dp = DeleteParams {
        preconditions: live
            .and_then(|l| l["metadata"]["uid"].as_str())
            .map(|uid| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(Done::Deleted),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Done::Nothing),
        Err(e) => Err(format!("{name}: delete: {}", describe(&e))),
    }
}

/// Patches `status` onto the ApplicationSet when it differs from `current`; returns
/// whether a request was made. On Argo's own ApplicationSet only the fields its
/// schema has are written (the API server would prune the rest, and the status
/// would then never look equal).
pub async fn patch_status(
    client: &Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
    current: Option<&Value>,
    status: &ApplicationSetStatus,
) -> Result<bool, String> {
    let mut next = serde_json::to_value(status).map_err(|e| e.to_string())?;
    if resource.group == "argoproj.io" {
        if let Some(fields) = next.as_object_mut() {
            for prism_only in [
                "applications",
                "observedGeneration",
                "resourcesTruncated",
                "rolloutStep",
            ] {
                fields.remove(prism_only);
            }
        }
    }
    // A RollingSync that ended leaves fields a merge patch must remove by name.
    let stale: Vec<&str> = ["applicationStatus", "rolloutStep"]
        .into_iter()
        .filter(|k| current.is_some_and(|c| !c[*k].is_null()) && next.get(*k).is_none())
        .collect();
    if stale.is_empty() && current.is_some_and(|c| crate::controller::plan::contains(c, &next)) {
        return Ok(false);
    }
    for k in stale {
        next[k] = Value::Null;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": next })),
    )
    .await
    .map_err(|e| {
        format!(
            "patching the status of {namespace}/{name}: {}",
            describe(&e)
        )
    })?;
    Ok(true)
}

/// Starts a sync of an Application the way Argo CD's UI and RollingSync do: its
/// `operation` field, written by a merge patch under its own field manager so the
/// server-side applies of the spec never remove it.
pub async fn start_sync(
    client: &Client,
    namespace: &str,
    name: &str,
    operation: &Value,
) -> Result<(), String> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &application_resource());
    api.patch(
        name,
        &PatchParams {
            field_manager: Some("prism-rollout".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({ "operation": operation })),
    )
    .await
    .map(drop)
    .map_err(|e| format!("{name}: starting a sync: {}", describe(&e)))
}

/// An API error as people read it: the server's message and code, no request body
/// (which could carry a templated secret).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! kube-rs's documented way to test API calls: a mocked tower service that
    //! checks each request and answers with a fixture.

    use super::*;
    use crate::controller::plan::{Keep, Owner};
    use http::{Method, Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn client() -> (Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(service, "argocd"), handle)
    }

    /// One expected request: method, path and query, and a check of the body.
    struct Expect {
        method: Method,
        path_and_query: String,
        body: Box<dyn Fn(&Value) + Send>,
        reply: (u16, Value),
    }

    /// Answers the expected requests in order, then asserts no other request came.
    async fn serve(mut handle: Handle, expected: Vec<Expect>) {
        for e in expected {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), e.method);
            let uri = request.uri().to_string();
            assert_eq!(uri, e.path_and_query, "request URI");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            (e.body)(&body);
            send.send_response(
                Response::builder()
                    .status(e.reply.0)
                    .body(Body::from(serde_json::to_vec(&e.reply.1).unwrap()))
                    .unwrap(),
            );
        }
    }

    fn app(name: &str, finalizers: &[&str]) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": name, "namespace": "argocd", "uid": format!("uid-{name}"),
                            "resourceVersion": "7", "finalizers": finalizers},
               "spec": {"project": "default"}})
    }

    fn ours(live: Value) -> Existing {
        Existing {
            owner: Owner::Us,
            has_finalizer: true,
            deleting: false,
            live: live.into(),
        }
    }

    const APPS: &str = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications";

    #[tokio::test]
    async fn create_and_update_are_server_side_applies_by_prism() {
        let (client, handle) = client();
        let desired: BTreeMap<String, Value> = [
            ("a".to_string(), app("a", &[])),
            ("b".to_string(), app("b", &[])),
        ]
        .into();
        let plan = Plan {
            actions: vec![Action::Create("a".into()), Action::Update("b".into())],
            ..Plan::default()
        };
        let expect = |name: &'static str| Expect {
            method: Method::PATCH,
            path_and_query: format!("{APPS}/{name}?&force=true&fieldManager=prism"),
            body: Box::new(move |b| {
                assert_eq!(b["metadata"]["name"], name);
                assert_eq!(b["kind"], "Application");
            }),
            reply: (200, app(name, &[])),
        };
        let server = tokio::spawn(serve(handle, vec![expect("a"), expect("b")]));
        let written = std::sync::Mutex::new(Vec::new());
        let applied = execute(
            &client,
            "argocd",
            &plan,
            &desired,
            &BTreeMap::new(),
            1,
            &|app| {
                let name = app.metadata.name.clone().unwrap_or_default();
                written.lock().unwrap().push((name, app.fingerprint()))
            },
        )
        .await;
        server.await.unwrap();
        // Each apply reports what the server made of it, as the watch will print it.
        let print = |name| {
            CachedApplication::from_value(&app(name, &[]))
                .unwrap()
                .fingerprint()
        };
        assert_eq!(
            written.into_inner().unwrap(),
            [("a".to_string(), print("a")), ("b".to_string(), print("b"))]
        );
        assert_eq!(
            applied,
            Applied {
                created: 1,
                updated: 1,
                ..Applied::default()
            }
        );
    }

    #[tokio::test]
    async fn a_no_change_plan_makes_no_request() {
        let (client, mut handle) = client();
        let plan = Plan {
            actions: vec![
                Action::Keep("a".into(), Keep::UpToDate),
                Action::Keep("b".into(), Keep::DeletionHeld),
                Action::Keep("c".into(), Keep::GeneratorError),
            ],
            ..Plan::default()
        };
        let applied = execute(
            &client,
            "argocd",
            &plan,
            &BTreeMap::new(),
            &BTreeMap::new(),
            4,
            &|_| {},
        )
        .await;
        assert_eq!(applied, Applied::default());
        drop(client);
        // Every client handle is gone: the mock sees the end of requests, not one more.
        assert!(handle.next_request().await.is_none());
    }

    #[tokio::test]
    async fn delete_keeps_the_finalizer_unless_preserving_resources() {
        let (client, handle) = client();
        let existing: BTreeMap<String, Existing> = [
            (
                "plain".to_string(),
                ours(app("plain", &[RESOURCES_FINALIZER])),
            ),
            (
                "preserve".to_string(),
                ours(app("preserve", &[RESOURCES_FINALIZER, "other/keep"])),
            ),
        ]
        .into();
        let plan = Plan {
            actions: vec![
                Action::Delete {
                    name: "plain".into(),
                    remove_finalizer: false,
                },
                Action::Delete {
                    name: "preserve".into(),
                    remove_finalizer: true,
                },
            ],
            ..Plan::default()
        };
        let delete = |name: &'static str| Expect {
            method: Method::DELETE,
            path_and_query: format!("{APPS}/{name}?"),
            body: Box::new(move |b| {
                assert_eq!(b["preconditions"]["uid"], format!("uid-{name}"));
            }),
            reply: (200, app(name, &[])),
        };
        let server = tokio::spawn(serve(
            handle,
            vec![
                delete("plain"),
                Expect {
                    method: Method::PATCH,
                    path_and_query: format!("{APPS}/preserve?"),
                    body: Box::new(|b| {
                        assert_eq!(b["metadata"]["finalizers"], json!(["other/keep"]));
                        assert_eq!(b["metadata"]["resourceVersion"], "7");
                    }),
                    reply: (200, app("preserve", &["other/keep"])),
                },
                delete("preserve"),
            ],
        ));
        let applied = execute(
            &client,
            "argocd",
            &plan,
            &BTreeMap::new(),
            &existing,
            1,
            &|_| {},
        )
        .await;
        server.await.unwrap();
        assert_eq!(applied.deleted, 2);
        assert!(applied.errors.is_empty(), "{:?}", applied.errors);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_by_name_and_the_rest_still_run() {
        let (client, handle) = client();
        let desired: BTreeMap<String, Value> = [
            ("a".to_string(), app("a", &[])),
            ("b".to_string(), app("b", &[])),
        ]
        .into();
        let plan = Plan {
            actions: vec![Action::Create("a".into()), Action::Create("b".into())],
            ..Plan::default()
        };
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": "admission webhook denied the request", "reason": "Forbidden", "code": 403});
        let server = tokio::spawn(serve(
            handle,
            vec![
                Expect {
                    method: Method::PATCH,
                    path_and_query: format!("{APPS}/a?&force=true&fieldManager=prism"),
                    body: Box::new(|_| {}),
                    reply: (403, status),
                },
                Expect {
                    method: Method::PATCH,
                    path_and_query: format!("{APPS}/b?&force=true&fieldManager=prism"),
                    body: Box::new(|_| {}),
                    reply: (200, app("b", &[])),
                },
            ],
        ));
        let applied = execute(
            &client,
            "argocd",
            &plan,
            &desired,
            &BTreeMap::new(),
            1,
            &|_| {},
        )
        .await;
        server.await.unwrap();
        assert_eq!(applied.created, 1);
        assert_eq!(
            applied.errors,
            vec!["a: apply: admission webhook denied the request (403 Forbidden)".to_string()]
        );
    }

    #[tokio::test]
    async fn status_is_patched_only_when_it_changed() {
        let (client, handle) = client();
        let status = ApplicationSetStatus {
            resources_count: 3,
            observed_generation: Some(2),
            ..ApplicationSetStatus::default()
        };
        let res = application_set_resource("prism.dev");
        let server = tokio::spawn(serve(
            handle,
            vec![Expect {
                method: Method::PATCH,
                path_and_query:
                    "/apis/prism.dev/v1alpha1/namespaces/argocd/applicationsets/shop/status?".into(),
                body: Box::new(|b| {
                    assert_eq!(b["status"]["resourcesCount"], 3);
                    assert_eq!(b["status"]["observedGeneration"], 2);
                }),
                reply: (
                    200,
                    json!({"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
                                    "metadata": {"name": "shop", "namespace": "argocd"}}),
                ),
            }],
        ));
        let wrote = patch_status(&client, &res, "argocd", "shop", None, &status)
            .await
            .unwrap();
        assert!(wrote);
        server.await.unwrap();
        // The same status again: no request (the mock would hang on one).
        let live = serde_json::to_value(&status).unwrap();
        let wrote = patch_status(&client, &res, "argocd", "shop", Some(&live), &status)
            .await
            .unwrap();
        assert!(!wrote);
        // An Argo ApplicationSet's schema prunes Prism's counts: still no request.
        let mut pruned = live.clone();
        pruned.as_object_mut().unwrap().remove("applications");
        pruned.as_object_mut().unwrap().remove("observedGeneration");
        let argo = application_set_resource("argoproj.io");
        assert!(
            !patch_status(&client, &argo, "argocd", "shop", Some(&pruned), &status)
                .await
                .unwrap()
        );
    }
}
