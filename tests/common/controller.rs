//! `prism controller` processes against the test control plane, and what the end-to-end
//! tests and the fleet benchmark do to them: wait for a condition, post a signed GitHub
//! push.
#![allow(dead_code)]

use super::control_plane::{control_plane, resource, Tenant};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`; panics naming `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A `prism controller` process, killed when dropped.
pub struct Controller {
    /// The process.
    pub child: Child,
    /// Its webhook, metrics and health port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    /// Kills the process at once (a crash, not a SIGTERM).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Posts a GitHub push of `branch` of `repo_url`, signed with `secret`, to its
    /// webhook; returns the HTTP status.
    pub fn github_push(&self, repo_url: &str, branch: &str, secret: &[u8]) -> u16 {
        let body = serde_json::json!({"ref": format!("refs/heads/{branch}"),
            "repository": {"clone_url": repo_url, "html_url": repo_url, "default_branch": branch}});
        self.github_event("push", &body, secret)
    }

    /// Posts a GitHub `pull_request` event (`action`) for `owner/repo` on the GitHub
    /// whose API is at `api` (`repository.url` is the repository's API URL).
    pub fn github_pull_request(&self, api: &str, repo: &str, action: &str, secret: &[u8]) -> u16 {
        let (owner, name) = repo.split_once('/').unwrap();
        let body = serde_json::json!({"action": action, "number": 1,
            "repository": {"name": name, "owner": {"login": owner},
                           "url": format!("{api}/api/v3/repos/{repo}")}});
        self.github_event("pull_request", &body, secret)
    }

    /// Posts a GitHub event signed with `secret` to the webhook endpoint; the status.
    pub fn github_event(&self, event: &str, body: &serde_json::Value, secret: &[u8]) -> u16 {
        let body = body.to_string();
        let signature = format!(
            "sha256={}",
            prism::digest::hex(&prism::controller::webhook::hmac_sha256(
                secret,
                body.as_bytes()
            ))
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .post(&format!("http://127.0.0.1:{}/api/webhook", self.port))
            .header("X-GitHub-Event", event)
            .header("X-Hub-Signature-256", &signature)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .expect("POST /api/webhook")
            .status()
            .as_u16()
    }
}

/// `prism controller` for one tenant: its namespace for everything, its ServiceAccount's
/// identity (the Role of `deploy/rbac.yaml`), the Lease there too.
pub fn start_controller(
    tenant: &Tenant,
    identity: &str,
    cache: &Path,
    extra: &[&str],
) -> Controller {
    let ns = tenant.namespace.as_str();
    let mut args = vec![
        "--namespace",
        ns,
        "--argocd-namespace",
        ns,
        "--lease-namespace",
        ns,
    ];
    args.extend_from_slice(extra);
    spawn_controller(
        &tenant.kubeconfig,
        identity,
        &format!("{ns}-{identity}"),
        cache,
        &args,
    )
}

/// The allocator settings (`MIMALLOC_*`) `deploy/deployment.yaml` gives the controller,
/// so tests and benchmarks run it as it is deployed.
pub fn deployed_allocator_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/deployment.yaml"
    ))
    .expect("deploy/deployment.yaml");
    let deployment: serde_yaml::Value = serde_yaml::from_str(&text).expect("the Deployment");
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .filter(|(name, _)| name.starts_with("MIMALLOC_"))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// `prism controller ARGS` as `identity` with this kubeconfig (and the Deployment's
/// allocator settings), logging to `controller-NAME.log` in the control plane's directory.
pub fn spawn_controller(
    kubeconfig: &Path,
    identity: &str,
    name: &str,
    cache: &Path,
    args: &[&str],
) -> Controller {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log =
        std::fs::File::create(control_plane().dir.join(format!("controller-{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .arg("controller")
        .args(["--listen", &format!("127.0.0.1:{port}"), "--cache-dir"])
        .arg(cache)
        .args(args)
        .envs(deployed_allocator_env())
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", identity)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting prism controller");
    Controller { child, port }
}

/// The admin's handles on one tenant's Applications and ApplicationSets.
pub struct Apis {
    /// The admin's client.
    pub admin: Client,
    /// Applications.
    pub apps: Api<DynamicObject>,
    /// `prism.dev` ApplicationSets.
    pub sets: Api<DynamicObject>,
    /// `argoproj.io` ApplicationSets.
    pub argo_sets: Api<DynamicObject>,
}

impl Apis {
    /// Handles in `tenant`'s namespace.
    pub async fn new(tenant: &Tenant) -> Apis {
        let admin = control_plane().admin().await;
        let ns = &tenant.namespace;
        Apis {
            apps: Api::namespaced_with(
                admin.clone(),
                ns,
                &resource("argoproj.io", "Application", "applications"),
            ),
            sets: Api::namespaced_with(
                admin.clone(),
                ns,
                &resource("prism.dev", "ApplicationSet", "applicationsets"),
            ),
            argo_sets: Api::namespaced_with(
                admin.clone(),
                ns,
                &resource("argoproj.io", "ApplicationSet", "applicationsets"),
            ),
            admin,
        }
    }

    /// Applies an ApplicationSet of either API (server-side, as `e2e`).
    pub async fn apply(&self, set: Value) -> DynamicObject {
        let api = if set["apiVersion"] == "argoproj.io/v1alpha1" {
            &self.argo_sets
        } else {
            &self.sets
        };
        let name = set["metadata"]["name"].as_str().unwrap().to_string();
        api.patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&set),
        )
        .await
        .expect("applying the ApplicationSet")
    }

    /// The Applications' names, sorted.
    pub async fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .apps
            .list(&ListParams::default())
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

    /// Whether every Application is being deleted (they wait for Argo CD, which is not
    /// here, to remove the resources finalizer).
    pub async fn all_terminating(&self) -> bool {
        self.apps.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items
                .iter()
                .all(|a| a.metadata.deletion_timestamp.is_some())
        })
    }
}
