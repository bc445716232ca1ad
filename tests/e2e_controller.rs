//! `prism controller` end to end against a real kube-apiserver and etcd
//! (`tests/common/control_plane.rs`: built from their Go modules, started on 127.0.0.1
//! for this test binary). Controllers run as the `prism-controller` ServiceAccount of
//! their namespace with `deploy/rbac.yaml` bound, so every test also proves the Role is
//! enough. Argo CD itself is not needed: Applications are only objects here.

mod common;

use common::control_plane::{client_from, control_plane, resource};
use common::controller::{eventually, spawn_controller, start_controller, Apis};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();

    let first = start_controller(&tenant, "replica-a", cache.path(), &[]);
    let second = start_controller(&tenant, "replica-b", &cache.path().join("b"), &[]);

    // Create.
    api.apply(appset(
        &ns,
        json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        "sync",
    ))
    .await;
    eventually(Duration::from_secs(60), "three Applications", || async {
        (api.names().await == ["e2e-a", "e2e-b", "e2e-c"]).then_some(())
    })
    .await;

    // Drift repair: a hand edit is put back.
    api.apps
        .patch(
            "e2e-a",
            &PatchParams::apply("someone").force(),
            &Patch::Apply(
                json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                                 "spec": {"source": {"targetRevision": "hand-edited"}}}),
            ),
        )
        .await
        .expect("hand edit");
    eventually(Duration::from_secs(60), "drift repaired", || async {
        let a = api.apps.get("e2e-a").await.ok()?;
        (a.data["spec"]["source"]["targetRevision"] == "main").then_some(())
    })
    .await;

    // Policy: create-only neither deletes nor updates.
    api.apply(appset(
        &ns,
        json!([{"name": "a"}, {"name": "b"}]),
        "create-only",
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        api.names().await,
        ["e2e-a", "e2e-b", "e2e-c"],
        "create-only deleted an Application"
    );

    // Deletion guard: removing every element is held until confirmed for that generation.
    let set = api.apply(appset(&ns, json!([]), "sync")).await;
    let generation = set.metadata.generation.expect("generation");
    eventually(Duration::from_secs(60), "DeletionHeld", || async {
        let s = api.sets.get("e2e").await.ok()?;
        let held = s.data["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "DeletionHeld" && c["status"] == "True");
        held.then_some(())
    })
    .await;
    assert_eq!(api.names().await.len(), 3, "held deletes ran");
    api.sets
        .patch(
            "e2e",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"prism.dev/allow-mass-delete": generation.to_string()}}})),
        )
        .await
        .expect("annotate");
    // Deleted: each is gone or waits (deletionTimestamp set) for Argo CD to remove the
    // resources finalizer Prism's Applications carry. Argo CD is not here: do its part.
    eventually(Duration::from_secs(60), "confirmed deletes", || async {
        api.all_terminating().await.then_some(())
    })
    .await;
    for name in api.names().await {
        api.apps
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("removing the finalizer as Argo CD would");
    }
    eventually(Duration::from_secs(30), "the Applications go", || async {
        api.names().await.is_empty().then_some(())
    })
    .await;

    // Leader failover: kill the leader; the other replica takes over within the lease.
    let leases: Api<Lease> = Api::namespaced(api.admin.clone(), &ns);
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
    gone.kill();
    let took_over = Instant::now();
    api.apply(appset(&ns, json!([{"name": "after-failover"}]), "sync"))
        .await;
    eventually(Duration::from_secs(60), "the standby converges", || async {
        (api.names().await == ["e2e-after-failover"]).then_some(())
    })
    .await;
    eprintln!(
        "standby took over and converged in {:?}",
        took_over.elapsed()
    );
    assert_ne!(holder().await.as_deref(), Some(leader.as_str()));
    drop(standby);
}

/// The Role in `deploy/rbac.yaml` is enough (every other test runs the controller with
/// it) and no broader: the controller's identity cannot write Secrets or ApplicationSets,
/// nor read another namespace.
#[tokio::test]
async fn the_role_grants_what_the_controller_needs_and_no_more() {
    let tenant = control_plane().tenant().await;
    let other = control_plane().tenant().await;
    let me = client_from(&tenant.kubeconfig).await;
    let ns = tenant.namespace.as_str();
    let forbidden = |e: kube::Error| match e {
        kube::Error::Api(s) => s.code == 403,
        _ => false,
    };

    let apps: Api<DynamicObject> = Api::namespaced_with(
        me.clone(),
        ns,
        &resource("argoproj.io", "Application", "applications"),
    );
    apps.list(&ListParams::default())
        .await
        .expect("the Role lets the controller list Applications");
    let secrets: Api<Secret> = Api::namespaced(me.clone(), ns);
    secrets
        .list(&ListParams::default())
        .await
        .expect("the Role lets the controller read cluster Secrets");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "stolen"}, "stringData": {"k": "v"}
    }))
    .unwrap();
    let e = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect_err("creating a Secret must be refused");
    assert!(forbidden(e), "creating a Secret: expected 403");

    let sets: Api<DynamicObject> = Api::namespaced_with(
        me.clone(),
        ns,
        &resource("prism.dev", "ApplicationSet", "applicationsets"),
    );
    let set: DynamicObject = serde_json::from_value(appset(ns, json!([]), "sync")).unwrap();
    let e = sets
        .create(&PostParams::default(), &set)
        .await
        .expect_err("creating an ApplicationSet must be refused");
    assert!(forbidden(e), "creating an ApplicationSet: expected 403");

    let elsewhere: Api<DynamicObject> = Api::namespaced_with(
        me.clone(),
        &other.namespace,
        &resource("argoproj.io", "Application", "applications"),
    );
    let e = elsewhere
        .list(&ListParams::default())
        .await
        .expect_err("another namespace must be refused");
    assert!(forbidden(e), "listing another namespace: expected 403");
    let everywhere: Api<Secret> = Api::all(me.clone());
    let e = everywhere
        .list(&ListParams::default())
        .await
        .expect_err("Secrets of every namespace must be refused");
    assert!(forbidden(e), "listing all Secrets: expected 403");
}

/// Server-side apply with a second field manager, as documented in the README: Prism
/// applies with `force` as field manager `prism`, so a field it renders that a person
/// changed goes back and back to Prism's ownership; a field only the person set stays,
/// owned by them, and is not drift.
#[tokio::test]
async fn a_second_field_manager_keeps_its_own_fields_and_loses_prisms() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(&tenant, "solo", cache.path(), &["--no-leader-election"]);
    api.apply(appset(&ns, json!([{"name": "a"}]), "sync")).await;
    eventually(Duration::from_secs(60), "the Application", || async {
        api.apps.get("e2e-a").await.ok()
    })
    .await;

    // As `kubectl apply --server-side --field-manager=human --force-conflicts`.
    api.apps
        .patch(
            "e2e-a",
            &PatchParams::apply("human").force(),
            &Patch::Apply(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"annotations": {"team.example.com/owner": "payments"}},
                "spec": {"source": {"targetRevision": "hotfix"}}
            })),
        )
        .await
        .expect("the human's apply");
    let app = eventually(
        Duration::from_secs(60),
        "Prism takes its field back",
        || async {
            let a = api.apps.get("e2e-a").await.ok()?;
            (a.data["spec"]["source"]["targetRevision"] == "main").then_some(a)
        },
    )
    .await;
    assert_eq!(
        app.metadata.annotations.as_ref().unwrap()["team.example.com/owner"],
        "payments",
        "the human's own field stays"
    );
    let managers = app.metadata.managed_fields.clone().unwrap_or_default();
    let owns = |manager: &str, field: &str| {
        managers.iter().any(|m| {
            m.manager.as_deref() == Some(manager)
                && m.fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.to_string().contains(field))
        })
    };
    assert!(owns("prism", "f:targetRevision"), "{managers:?}");
    assert!(!owns("human", "f:targetRevision"), "{managers:?}");
    assert!(owns("human", "f:team.example.com/owner"), "{managers:?}");

    // The person's field is not drift: a later pass leaves the Application alone.
    let version = app.metadata.resource_version.clone();
    api.apply(appset(&ns, json!([{"name": "a"}, {"name": "b"}]), "sync"))
        .await;
    eventually(
        Duration::from_secs(60),
        "the second Application",
        || async { (api.names().await == ["e2e-a", "e2e-b"]).then_some(()) },
    )
    .await;
    let again = api.apps.get("e2e-a").await.unwrap();
    assert_eq!(
        again.metadata.resource_version, version,
        "e2e-a was rewritten"
    );
}

/// `--watch-argo-applicationsets`: an `argoproj.io` set gets its Applications with an
/// ownerReference to it (Argo's `controller: true`, `blockOwnerDeletion: true`), a status
/// that Argo's CRD keeps (its schema prunes what it does not know), and its Applications
/// are garbage-collected when it is deleted.
#[tokio::test]
async fn argo_application_sets_are_reconciled_with_argos_owner_reference_and_status() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &["--no-leader-election", "--watch-argo-applicationsets"],
    );
    let mut spec = appset(&ns, json!([{"name": "x"}, {"name": "y"}]), "sync");
    spec["apiVersion"] = json!("argoproj.io/v1alpha1");
    spec["spec"].as_object_mut().unwrap().remove("syncPolicy");
    spec["metadata"]["name"] = json!("argo");
    let set = api.apply(spec).await;
    let uid = set.metadata.uid.clone().unwrap();
    eventually(Duration::from_secs(60), "two Applications", || async {
        (api.names().await == ["e2e-x", "e2e-y"]).then_some(())
    })
    .await;
    let app = api.apps.get("e2e-x").await.unwrap();
    let owner = &app.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.api_version, "argoproj.io/v1alpha1");
    assert_eq!(owner.kind, "ApplicationSet");
    assert_eq!(owner.name, "argo");
    assert_eq!(owner.uid, uid);
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));

    let status = eventually(Duration::from_secs(60), "Argo's status", || async {
        let s = api.argo_sets.get("argo").await.ok()?;
        let conditions = s.data["status"]["conditions"].as_array()?.clone();
        conditions
            .iter()
            .any(|c| c["type"] == "ResourcesUpToDate" && c["status"] == "True")
            .then_some(s.data["status"].clone())
    })
    .await;
    for c in status["conditions"].as_array().unwrap() {
        for field in ["type", "status", "reason", "message"] {
            assert!(c[field].is_string(), "{field} missing in {c}");
        }
    }
    let resources = status["resources"].as_array().expect("status.resources");
    let names: Vec<&str> = resources
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e2e-x", "e2e-y"]);
    assert_eq!(resources[0]["kind"], "Application");

    // The set goes, and Kubernetes' garbage collector deletes its Applications by their
    // ownerReferences (they wait, terminating, for Argo CD to remove their finalizer).
    api.argo_sets
        .delete("argo", &DeleteParams::default())
        .await
        .expect("deleting the set");
    eventually(Duration::from_secs(90), "garbage collection", || async {
        api.all_terminating().await.then_some(())
    })
    .await;
}

/// Restart safety: the leader is killed while it applies 2,000 Applications; the standby
/// takes the Lease and converges with every Application once, and none of those already
/// written is deleted (their uids survive).
#[tokio::test]
async fn a_leader_killed_mid_apply_is_replaced_without_duplicates_or_deletes() {
    const COUNT: usize = 2000;
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();
    let first = start_controller(&tenant, "replica-a", cache.path(), &[]);
    let second = start_controller(&tenant, "replica-b", &cache.path().join("b"), &[]);
    let leases: Api<Lease> = Api::namespaced(api.admin.clone(), &ns);
    let leader = eventually(Duration::from_secs(60), "a leader", || async {
        leases
            .get("prism-controller")
            .await
            .ok()?
            .spec?
            .holder_identity
    })
    .await;

    let elements: Vec<Value> = (0..COUNT)
        .map(|i| json!({"name": format!("s{i:04}")}))
        .collect();
    api.apply(appset(&ns, json!(elements), "sync")).await;
    let uids = |list: kube::core::ObjectList<DynamicObject>| {
        list.items
            .into_iter()
            .map(|a| (a.metadata.name.unwrap(), a.metadata.uid.unwrap()))
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    let before = eventually(Duration::from_secs(120), "200 Applications", || async {
        let list = api.apps.list(&ListParams::default()).await.ok()?;
        (list.items.len() >= 200).then(|| uids(list))
    })
    .await;
    let (gone, standby) = if leader == "replica-a" {
        (first, second)
    } else {
        (second, first)
    };
    gone.kill();
    let written = api.apps.list(&ListParams::default()).await.unwrap();
    let at_kill = uids(written);
    assert!(
        at_kill.len() < COUNT,
        "the leader finished before it was killed; nothing was proven"
    );
    eprintln!(
        "leader killed after {} of {COUNT} Applications",
        at_kill.len()
    );

    let after = eventually(
        Duration::from_secs(180),
        "the standby converges",
        || async {
            let list = api.apps.list(&ListParams::default()).await.ok()?;
            (list.items.len() == COUNT).then(|| uids(list))
        },
    )
    .await;
    let expected: Vec<String> = (0..COUNT).map(|i| format!("e2e-s{i:04}")).collect();
    assert_eq!(after.keys().cloned().collect::<Vec<_>>(), expected);
    for (name, uid) in before.iter().chain(at_kill.iter()) {
        assert_eq!(
            after.get(name),
            Some(uid),
            "{name} was deleted and recreated"
        );
    }
    drop(standby);
}

/// The webhook end to end: a signed GitHub push for a repository served by `git daemon`
/// re-renders the set that reads it, long before the periodic refresh (an hour here).
#[tokio::test]
async fn a_signed_github_push_re_renders_the_set_that_reads_the_repository() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let work = common::TestRepo::new();
    work.commit(&[("apps/a/config.yaml", Some("x: 1\n"))], "a");
    let served = tempfile::tempdir().unwrap();
    let bare = common::githttp::bare_clone(work.path(), served.path(), "services");
    let daemon = common::githttp::serve_daemon(served.path());
    let url = format!("git://127.0.0.1:{}/services.git", daemon.port);

    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("github"), "e2e-secret\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let secrets_dir = secrets.path().display().to_string();
    let controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &[
            "--no-leader-election",
            // `git daemon` serves git://, which the controller reads only when allowed.
            "--allow-insecure-repos",
            "--git-refresh-seconds",
            "3600",
            "--webhook-secrets",
            &secrets_dir,
        ],
    );
    api.apply(json!({
        "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "e2e", "namespace": ns},
        "spec": {
            "generators": [{"git": {"repoURL": url, "revision": "main",
                                    "directories": [{"path": "apps/*"}]}}],
            "template": {
                "metadata": {"name": "e2e-{{path.basename}}"},
                "spec": {"project": "default",
                         "source": {"repoURL": url, "path": "{{path}}", "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}
            }
        }
    }))
    .await;
    eventually(Duration::from_secs(60), "the first Application", || async {
        (api.names().await == ["e2e-a"]).then_some(())
    })
    .await;

    work.commit(&[("apps/b/config.yaml", Some("x: 2\n"))], "b");
    let pushed = Command::new("git")
        .current_dir(work.path())
        .arg("push")
        .arg("--quiet")
        .arg(&bare)
        .arg("main")
        .status()
        .unwrap();
    assert!(pushed.success());
    let sent = Instant::now();
    assert_eq!(controller.github_push(&url, "main", b"e2e-secret"), 200);
    eventually(
        Duration::from_secs(20),
        "the pushed Application",
        || async { (api.names().await == ["e2e-a", "e2e-b"]).then_some(()) },
    )
    .await;
    eprintln!("push to Application: {:?}", sent.elapsed());
}

/// The controller reads only remote repositories: a set that names a local path or a
/// transport helper fails its render with the rule in its status, and none of its
/// Applications is deleted.
#[tokio::test]
async fn a_set_naming_a_local_repository_is_refused_and_deletes_nothing() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(&tenant, "solo", cache.path(), &["--no-leader-election"]);
    api.apply(appset(&ns, json!([{"name": "a"}]), "sync")).await;
    eventually(Duration::from_secs(60), "the Application", || async {
        (api.names().await == ["e2e-a"]).then_some(())
    })
    .await;
    for (url, rule) in [
        (
            "file:///var/run/secrets/kubernetes.io/serviceaccount",
            "file:// reads the local machine",
        ),
        (
            "ext::sh -c touch% /tmp/prism-e2e-pwned",
            "ext:: is a git transport helper",
        ),
    ] {
        let mut set = appset(&ns, json!([{"name": "a"}]), "sync");
        set["spec"]["generators"] = json!([{"matrix": {"generators": [
            {"list": {"elements": [{"name": "a"}]}},
            {"git": {"repoURL": url, "revision": "HEAD", "files": [{"path": "*"}]}}
        ]}}]);
        api.apply(set).await;
        let message = error_of(&api.sets, "e2e", url).await;
        assert!(
            message.contains(&format!("{url:?} is refused: {rule}")),
            "{message}"
        );
        assert_eq!(
            api.names().await,
            ["e2e-a"],
            "a refused render deleted an Application"
        );
    }
    assert!(!Path::new("/tmp/prism-e2e-pwned").exists());
}

/// The ErrorOccurred message of a set once it mentions `needle`.
async fn error_of(api: &Api<DynamicObject>, name: &str, needle: &str) -> String {
    eventually(Duration::from_secs(60), "ErrorOccurred", || async {
        let s = api.get(name).await.ok()?;
        s.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ErrorOccurred" && c["status"] == "True")
            .and_then(|c| c["message"].as_str().map(str::to_string))
            .filter(|m| m.contains(needle))
    })
    .await
}

fn git_set(ns: &str, name: &str, project: &str, url: &str) -> Value {
    json!({
        "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "generators": [{"git": {"repoURL": url, "revision": "main",
                                    "directories": [{"path": "apps/*"}]}}],
            "template": {
                "metadata": {"name": format!("{name}-{{{{path.basename}}}}")},
                "spec": {"project": project,
                         "source": {"repoURL": url, "path": "{{path}}", "targetRevision": "main"},
                         "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}
            }
        }
    })
}

/// Apps in any namespace: a set outside the Argo CD namespace must name its project
/// plainly, the project must list the set's namespace in `sourceNamespaces` (globs or
/// `/regex/`, Argo's IsAppNamespacePermitted), and the set reads only what its
/// `sourceRepos` allow.
#[tokio::test]
async fn a_set_outside_the_argo_cd_namespace_reads_only_its_projects_repositories() {
    let home = control_plane().tenant().await;
    let away = control_plane().tenant().await;
    let admin = control_plane().admin().await;
    let projects: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &home.namespace,
        &resource("argoproj.io", "AppProject", "appprojects"),
    );
    for (name, source_namespaces) in [
        ("team", json!(["other", format!("/^{}$/", away.namespace)])),
        ("closed", json!(["other-*"])),
    ] {
        projects
            .patch(
                name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(
                    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                    "metadata": {"name": name},
                    "spec": {"sourceRepos": ["https://git.example/allowed/*"],
                             "sourceNamespaces": source_namespaces}}),
                ),
            )
            .await
            .expect("AppProject");
    }
    let sets: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &away.namespace,
        &resource("prism.dev", "ApplicationSet", "applicationsets"),
    );
    let cache = tempfile::tempdir().unwrap();
    // Every namespace: a ClusterRole's worth of rights, so the admin's identity here.
    let _controller = spawn_controller(
        &control_plane().admin_kubeconfig,
        "any",
        &format!("{}-any", home.namespace),
        cache.path(),
        &[
            "--no-leader-election",
            "--argocd-namespace",
            &home.namespace,
        ],
    );
    let forbidden = "https://git.example/forbidden/app.git";
    for (name, project, needle) in [
        (
            "forbidden",
            "team",
            "is not permitted by AppProject team's sourceRepos",
        ),
        (
            "templated",
            "{{path.basename}}",
            "must name its AppProject plainly",
        ),
        ("missing", "nobody", "AppProject nobody does not exist"),
        (
            "closed",
            "closed",
            "AppProject closed does not permit Applications in namespace",
        ),
    ] {
        sets.patch(
            name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(git_set(&away.namespace, name, project, forbidden)),
        )
        .await
        .expect("apply");
        let message = error_of(&sets, name, needle).await;
        assert!(message.contains(needle), "{message}");
    }
}

/// Credentials stay with their owners: a repository Secret scoped to project team-b
/// lets team-b's set read the private repository; team-a's set, in the same namespace and
/// the same controller (whose cache already holds team-b's fetch), is refused by the
/// server, because nothing fetched with team-b's credential is read for team-a.
#[tokio::test]
async fn a_project_scoped_credential_serves_its_project_only() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let work = common::TestRepo::new();
    work.commit(&[("apps/web/config.yaml", Some("x: 1\n"))], "web");
    let served = tempfile::tempdir().unwrap();
    common::githttp::bare_clone(work.path(), served.path(), "private");
    let port = common::githttp::serve_http(served.path(), "team-b", "s3cret");
    let url = format!("http://127.0.0.1:{port}/private.git");
    let secrets: Api<Secret> = Api::namespaced(api.admin.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "private-repo", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "stringData": {"url": url, "username": "team-b", "password": "s3cret", "project": "team-b"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("repository Secret");
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &["--no-leader-election", "--allow-insecure-repos"],
    );
    api.apply(git_set(&ns, "b", "team-b", &url)).await;
    eventually(Duration::from_secs(60), "team-b's Application", || async {
        (api.names().await == ["b-web"]).then_some(())
    })
    .await;
    api.apply(git_set(&ns, "a", "team-a", &url)).await;
    let message = error_of(&api.sets, "a", &url).await;
    assert!(
        message.contains("authentication failed") || message.contains("asks for credentials"),
        "{message}"
    );
    assert_eq!(api.names().await, ["b-web"]);
}

/// Preview environments in the controller: a `pullRequest` generator reads GitHub (an
/// in-test server replaying its API) with the token of a Secret in the set's namespace.
/// Nothing but a `pull_request` webhook makes the controller ask again (requeue and git
/// refresh are an hour): a new pull request becomes a preview; when GitHub then answers
/// 502, the set reports the error and deletes nothing (Argo CD issue 14318).
#[tokio::test]
async fn pull_requests_become_previews_and_a_bad_answer_deletes_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let failing = Arc::new(AtomicBool::new(false));
    let fail = failing.clone();
    let third = Arc::new(AtomicBool::new(false));
    let opened = third.clone();
    let port = common::http::serve(move |r| {
        if r.header("authorization") != Some("Bearer gh-token") {
            return (401, vec![], r#"{"message": "Bad credentials"}"#.into());
        }
        if fail.load(Ordering::SeqCst) {
            return (502, vec![], "Bad gateway".into());
        }
        let pull = |n: u64, branch: &str| {
            json!({"number": n, "title": format!("PR {n}"), "user": {"login": "dev"},
                   "head": {"ref": branch, "sha": format!("{n}abcdef0123456789")},
                   "base": {"ref": "main"}, "labels": [{"name": "preview"}]})
        };
        let mut pulls = vec![pull(7, "feature/search"), pull(9, "fix/cart")];
        if opened.load(Ordering::SeqCst) {
            pulls.push(pull(11, "feature/wishlist"));
        }
        (200, vec![], json!(pulls).to_string())
    });
    let secrets: Api<Secret> = Api::namespaced(api.admin.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "github-token"}, "stringData": {"token": "gh-token"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("token Secret");
    let cache = tempfile::tempdir().unwrap();
    let hook = tempfile::tempdir().unwrap();
    std::fs::write(hook.path().join("github"), "hook-secret\n").unwrap();
    let controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &[
            "--no-leader-election",
            "--watch-argo-applicationsets",
            "--git-refresh-seconds",
            "3600",
            "--webhook-secrets",
            &hook.path().display().to_string(),
        ],
    );
    api.apply(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "previews", "namespace": ns},
        "spec": {
            "generators": [{"pullRequest": {
                "github": {"owner": "org", "repo": "shop", "api": format!("http://127.0.0.1:{port}"),
                           "tokenRef": {"secretName": "github-token", "key": "token"},
                           "labels": ["preview"]},
                "requeueAfterSeconds": 3600}}],
            "template": {
                "metadata": {"name": "shop-{{branch_slug}}"},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://github.com/org/shop.git",
                                    "targetRevision": "{{head_sha}}", "path": "deploy"},
                         "destination": {"server": "https://kubernetes.default.svc",
                                         "namespace": "preview-{{number}}"}}
            }
        }
    }))
    .await;
    eventually(Duration::from_secs(60), "two previews", || async {
        (api.names().await == ["shop-feature-search", "shop-fix-cart"]).then_some(())
    })
    .await;
    // The SCM requests are in the controller's metrics, by provider and status.
    let metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", controller.port))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("prism_scm_requests_total{provider=\"github\",code=\"200\"}"),
        "{metrics}"
    );
    // A pull request opened: GitHub's webhook refreshes the set at once.
    let github = format!("http://127.0.0.1:{port}");
    third.store(true, Ordering::SeqCst);
    // An event for another repository refreshes nothing: the listing stays cached.
    assert_eq!(
        controller.github_pull_request(&github, "org/other", "opened", b"hook-secret"),
        200
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.names().await.len(), 2);
    assert_eq!(
        controller.github_pull_request(&github, "org/shop", "opened", b"hook-secret"),
        200
    );
    eventually(Duration::from_secs(20), "the third preview", || async {
        (api.names().await.len() == 3).then_some(())
    })
    .await;
    failing.store(true, Ordering::SeqCst);
    assert_eq!(
        controller.github_pull_request(&github, "Org/Shop", "closed", b"hook-secret"),
        200
    );
    let message = error_of(&api.argo_sets, "previews", "").await;
    assert!(
        message.contains("listing pull requests from github: org/shop: HTTP 502"),
        "{message}"
    );
    assert!(!message.contains("gh-token"));
    assert_eq!(
        api.names().await,
        [
            "shop-feature-search",
            "shop-feature-wishlist",
            "shop-fix-cart"
        ],
        "a bad answer deleted previews"
    );
}

/// Plays Argo CD's application controller for one Application: takes up a sync asked
/// in `operation` (removes it, records the operation), and reports `health` at the
/// current spec (`comparedTo` = its source and destination).
async fn argo_reports(api: &Apis, name: &str, sync: &str, health: &str) -> bool {
    let Ok(app) = api.apps.get(name).await else {
        return false;
    };
    let data = &app.data;
    let now = prism::plugin::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64,
    );
    let had_operation = !data["operation"].is_null();
    let mut status = json!({
        "sync": {"status": sync, "revision": "r1",
                 "comparedTo": {"source": data["spec"]["source"], "destination": data["spec"]["destination"]}},
        "health": {"status": health},
        "reconciledAt": now,
    });
    if had_operation {
        status["operationState"] = json!({"phase": "Succeeded", "startedAt": now, "finishedAt": now,
                                          "operation": data["operation"]});
    }
    let patch = json!({"operation": null, "status": status});
    api.apps
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("reporting the Application's status");
    had_operation
}

/// Which Applications have a sync asked for (`operation`), sorted.
async fn asked(api: &Apis) -> Vec<String> {
    let mut out: Vec<String> = api
        .apps
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|a| !a.data["operation"].is_null())
                .filter_map(|a| a.metadata.name)
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// RollingSync against a real API server, with the test playing Argo CD's application
/// controller (Argo's docs/operator-manual/applicationset/Progressive-Syncs.md): three
/// steps over six Applications (test, preview, prod); automated sync forced off; syncs
/// started through `operation` in step order; a Degraded step stops the rollout; a
/// `soakSeconds` step holds the next one; `maxUpdate: 0` pauses a step and 1 takes prod
/// one at a time; then `deletionOrder: Reverse` deletes prod first and test last.
#[tokio::test]
async fn rolling_sync_goes_step_by_step_and_deletes_in_reverse() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &["--no-leader-election", "--enable-progressive-syncs"],
    );
    let set = |preview_max: i64| {
        let element = |name: &str, env: &str| json!({"name": name, "env": env});
        json!({
            "apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "rollout", "namespace": ns},
            "spec": {
                "generators": [{"list": {"elements": [
                    element("test-a", "test"), element("test-b", "test"), element("preview-a", "preview"),
                    element("prod-a", "prod"), element("prod-b", "prod"), element("prod-c", "prod")]}}],
                "strategy": {"type": "RollingSync", "deletionOrder": "Reverse", "rollingSync": {"steps": [
                    {"matchExpressions": [{"key": "env", "operator": "In", "values": ["test"]}], "soakSeconds": 4},
                    {"matchExpressions": [{"key": "env", "operator": "In", "values": ["preview"]}], "maxUpdate": preview_max},
                    {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["test", "preview"]}], "maxUpdate": 1}]}},
                "template": {
                    "metadata": {"name": "{{name}}", "labels": {"env": "{{env}}"}},
                    "spec": {"project": "default",
                             "source": {"repoURL": "https://github.com/example-org/shop.git",
                                        "path": "{{name}}", "targetRevision": "main"},
                             "destination": {"server": "https://kubernetes.default.svc", "namespace": "{{name}}"},
                             "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}}
                }
            }
        })
    };
    api.apply(set(0)).await;
    let all = [
        "preview-a",
        "prod-a",
        "prod-b",
        "prod-c",
        "test-a",
        "test-b",
    ];
    eventually(Duration::from_secs(60), "six Applications", || async {
        (api.names().await == all).then_some(())
    })
    .await;
    // Automated sync is off; step 1 is asked to sync at once, the others wait while
    // Argo CD compares them and finds them OutOfSync.
    let app = api.apps.get("prod-a").await.unwrap();
    assert_eq!(
        app.data["spec"]["syncPolicy"]["automated"]["enabled"],
        false
    );
    eventually(Duration::from_secs(30), "step 1 asked to sync", || async {
        (asked(&api).await == ["test-a", "test-b"]).then_some(())
    })
    .await;
    for name in ["preview-a", "prod-a", "prod-b", "prod-c"] {
        argo_reports(&api, name, "OutOfSync", "Missing").await;
    }
    let op = api.apps.get("test-a").await.unwrap().data["operation"].clone();
    assert_eq!(op["initiatedBy"]["username"], "applicationset-controller");
    assert_eq!(op["sync"]["prune"], true);

    // test-b syncs but is Degraded: the rollout stops at step 1.
    assert!(argo_reports(&api, "test-a", "Synced", "Healthy").await);
    assert!(argo_reports(&api, "test-b", "Synced", "Degraded").await);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(asked(&api).await, Vec::<String>::new());
    let status = api.sets.get("rollout").await.unwrap().data["status"].clone();
    assert_eq!(status["rolloutStep"], "1/3", "{status}");

    // Healthy now; the soak holds step 2 for 4 s; then maxUpdate 0 pauses it.
    argo_reports(&api, "test-b", "Synced", "Healthy").await;
    let healthy_at = Instant::now();
    eventually(Duration::from_secs(30), "step 1 soaked", || async {
        let status = api.sets.get("rollout").await.ok()?.data["status"].clone();
        (status["rolloutStep"] == "2/3").then_some(())
    })
    .await;
    assert!(
        healthy_at.elapsed() >= Duration::from_secs(3),
        "the soak was skipped"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        asked(&api).await,
        Vec::<String>::new(),
        "maxUpdate 0 must pause"
    );

    // Unpaused: preview, then prod one at a time.
    api.apply(set(1)).await;
    eventually(Duration::from_secs(30), "step 2 asked to sync", || async {
        (asked(&api).await == ["preview-a"]).then_some(())
    })
    .await;
    argo_reports(&api, "preview-a", "Synced", "Healthy").await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let next = eventually(
            Duration::from_secs(30),
            "one prod Application asked",
            || async {
                let asked = asked(&api).await;
                (asked.len() == 1 && asked[0].starts_with("prod-")).then(|| asked[0].clone())
            },
        )
        .await;
        assert!(!order.contains(&next));
        argo_reports(&api, &next, "Synced", "Healthy").await;
        order.push(next);
    }
    eventually(Duration::from_secs(30), "the rollout done", || async {
        let status = api.sets.get("rollout").await.ok()?.data["status"].clone();
        let done = status["rolloutStep"] == "done"
            && status["applicationStatus"]
                .as_array()?
                .iter()
                .all(|s| s["status"] == "Healthy");
        let cond = status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "RolloutProgressing")?
            .clone();
        (done && cond["status"] == "False").then_some(())
    })
    .await;

    // deletionOrder Reverse: Argo's finalizer is on the set; prod goes first, test last.
    let set = api.sets.get("rollout").await.unwrap();
    assert!(set
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"resources-finalizer.argocd.argoproj.io".to_string()));
    api.sets
        .delete("rollout", &DeleteParams::default())
        .await
        .expect("deleting the set");
    let seen = std::cell::RefCell::new(Vec::new());
    eventually(
        Duration::from_secs(60),
        "every Application deleted",
        || async {
            // Argo CD removes an Application's finalizer once its resources are gone.
            for app in api.apps.list(&ListParams::default()).await.ok()?.items {
                if app.metadata.deletion_timestamp.is_some() {
                    let name = app.metadata.name.unwrap_or_default();
                    let patch = json!({"metadata": {"finalizers": null}});
                    let params = PatchParams::default();
                    let _ = api.apps.patch(&name, &params, &Patch::Merge(&patch)).await;
                }
            }
            let names = api.names().await;
            let mut seen = seen.borrow_mut();
            if seen.last() != Some(&names) {
                seen.push(names.clone());
            }
            names.is_empty().then_some(())
        },
    )
    .await;
    let seen = seen.into_inner();
    let without_prod = ["preview-a", "test-a", "test-b"].map(String::from).to_vec();
    let only_test = ["test-a", "test-b"].map(String::from).to_vec();
    let at = |n: &Vec<String>| seen.iter().position(|s| s == n);
    assert!(
        at(&without_prod).is_some() && at(&only_test) > at(&without_prod),
        "deletion order: {seen:?}"
    );
    eventually(Duration::from_secs(30), "the set gone", || async {
        api.sets.get("rollout").await.is_err().then_some(())
    })
    .await;
}

/// Server-side applies `doc` as the admin (namespaced unless it is a CRD).
async fn admin_apply(api: &Apis, doc: Value) {
    let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            doc["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let kind = doc["kind"].as_str().unwrap().to_string();
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(&group, &version, &kind),
        &format!("{}s", kind.to_lowercase()),
    );
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let target: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(api.admin.clone(), ns, &ar),
        None => Api::all_with(api.admin.clone(), &ar),
    };
    target
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
}

/// `clusterDecisionResource` in the controller (Argo's duck type, as Open Cluster
/// Management's PlacementDecision feeds it): the test installs a PlacementDecision-like
/// CRD and grants the controller `list`/`watch` on it, as the README tells admins to.
/// Applications follow the decisions through the watch; when every decision resource
/// is gone, the deletion guard holds the deletes (Argo deletes nothing ever: issue 11939).
#[tokio::test]
async fn cluster_decision_resources_are_read_and_watched() {
    let tenant = control_plane().tenant().await;
    let ns = tenant.namespace.clone();
    let api = Apis::new(&tenant).await;
    admin_apply(&api, json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "placementdecisions.cluster.open-cluster-management.io"},
        "spec": {"group": "cluster.open-cluster-management.io", "scope": "Namespaced",
                 "names": {"kind": "PlacementDecision", "plural": "placementdecisions",
                           "singular": "placementdecision", "listKind": "PlacementDecisionList"},
                 "versions": [{"name": "v1beta1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                          "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .await;
    // The admin's grant for the kind the ConfigMap names.
    admin_apply(
        &api,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "prism-placements", "namespace": ns},
            "rules": [{"apiGroups": ["cluster.open-cluster-management.io"],
                       "resources": ["placementdecisions"], "verbs": ["list", "watch"]}]
        }),
    )
    .await;
    admin_apply(&api, json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "prism-placements", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "prism-placements"},
        "subjects": [{"kind": "ServiceAccount", "name": "prism-controller", "namespace": ns}]
    }))
    .await;
    for (name, server) in [
        ("east", "https://east.example:6443"),
        ("west", "https://west.example:6443"),
    ] {
        admin_apply(
            &api,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("cluster-{name}"), "namespace": ns,
                             "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
                "stringData": {"name": name, "server": server}
            }),
        )
        .await;
    }
    admin_apply(&api, json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ocm-placement-generator", "namespace": ns},
        "data": {"apiVersion": "cluster.open-cluster-management.io/v1beta1",
                 "kind": "placementdecisions", "statusListKey": "decisions", "matchKey": "clusterName"}
    }))
    .await;
    let decision = |clusters: &[&str]| {
        json!({
            "apiVersion": "cluster.open-cluster-management.io/v1beta1", "kind": "PlacementDecision",
            "metadata": {"name": "shop-decision-1", "namespace": ns,
                         "labels": {"cluster.open-cluster-management.io/placement": "shop"}},
            "status": {"decisions": clusters.iter()
                .map(|c| json!({"clusterName": c, "reason": ""})).collect::<Vec<_>>()}
        })
    };
    admin_apply(&api, decision(&["east", "west"])).await;
    let cache = tempfile::tempdir().unwrap();
    let _controller = start_controller(
        &tenant,
        "solo",
        cache.path(),
        &["--no-leader-election", "--watch-argo-applicationsets"],
    );
    api.apply(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "placed", "namespace": ns},
        "spec": {
            "generators": [{"clusterDecisionResource": {
                "configMapRef": "ocm-placement-generator",
                "labelSelector": {"matchLabels": {"cluster.open-cluster-management.io/placement": "shop"}},
                "requeueAfterSeconds": 3600}}],
            "template": {
                "metadata": {"name": "shop-{{name}}"},
                "spec": {"project": "default",
                         "source": {"repoURL": "https://github.com/example-org/shop.git", "path": "deploy"},
                         "destination": {"server": "{{server}}", "namespace": "shop"}}
            }
        }
    }))
    .await;
    eventually(
        Duration::from_secs(60),
        "an Application per decision",
        || async { (api.names().await == ["shop-east", "shop-west"]).then_some(()) },
    )
    .await;
    // The watch: a decision dropped is an Application deleted, without a requeue.
    admin_apply(&api, decision(&["east"])).await;
    eventually(
        Duration::from_secs(30),
        "west's Application deleted",
        || async {
            // Deleted, or being deleted (Argo CD, not here, would remove its finalizer).
            let west = api.apps.get_opt("shop-west").await.ok()?;
            west.is_none_or(|a| a.metadata.deletion_timestamp.is_some())
                .then_some(())
        },
    )
    .await;
    // Every decision resource gone: the deletion guard holds the last delete.
    let decisions: Api<DynamicObject> = Api::namespaced_with(
        api.admin.clone(),
        &ns,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(
                "cluster.open-cluster-management.io",
                "v1beta1",
                "PlacementDecision",
            ),
            "placementdecisions",
        ),
    );
    decisions
        .delete("shop-decision-1", &DeleteParams::default())
        .await
        .expect("deleting the decision");
    let held = eventually(Duration::from_secs(30), "the deletion guard", || async {
        let set = api.argo_sets.get("placed").await.ok()?;
        set.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ResourcesUpToDate" && c["reason"] == "DeletionHeld")
            .map(|c| c["message"].to_string())
    })
    .await;
    assert!(held.contains("shop-east") || held.contains("all"), "{held}");
    assert!(api.names().await.contains(&"shop-east".to_string()));
}
