//! A real Kubernetes control plane on 127.0.0.1 for the controller's end-to-end tests:
//! `etcd`, `kube-apiserver` and `kube-controller-manager` (its garbage collector only), built from their Go modules by `tests/k8s/build.sh`
//! (pinned in `tests/k8s/go.mod`, cached outside `target/`), started once per test
//! binary with generated certificates, a service-account signing key, static tokens and
//! `--authorization-mode=RBAC`. Argo CD's CRDs and Prism's are installed before the
//! first test gets it.
//!
//! Each test takes a [`Tenant`]: a fresh namespace with `deploy/rbac.yaml` applied in
//! it, and a kubeconfig for the `prism-controller` ServiceAccount of that namespace (a
//! static token), so controllers run with exactly the rights the Role grants.
//!
//! Both processes are started from a thread that lives as long as the test binary and
//! are set to receive SIGKILL when it goes (`PR_SET_PDEATHSIG`), so they stop however
//! the tests end; the next run removes the directories of runs that are gone.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How many tenants one control plane has identities for.
const TENANTS: usize = 24;
const ADMIN_TOKEN: &str = "prism-e2e-admin";
const DIR_PREFIX: &str = "prism-control-plane-";

/// The running control plane.
pub struct ControlPlane {
    /// Its working directory (certificates, etcd data, logs, kubeconfigs).
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// `http://127.0.0.1:<port>` of etcd (to compact it).
    pub etcd: String,
    /// A kubeconfig for the admin (`system:masters`).
    pub admin_kubeconfig: PathBuf,
    /// The directory holding the built `etcd`, `kube-apiserver` and `kube-controller-manager`.
    pub bin: PathBuf,
    next_tenant: AtomicUsize,
    api_args: Vec<String>,
    processes: Mutex<Processes>,
}

struct Processes {
    etcd: Child,
    api: Child,
}

/// A namespace with Prism's Role bound to its `prism-controller` ServiceAccount.
pub struct Tenant {
    /// The namespace.
    pub namespace: String,
    /// A kubeconfig authenticating as `system:serviceaccount:<namespace>:prism-controller`.
    pub kubeconfig: PathBuf,
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the keeper thread: the parent of every control-plane process. The thread
/// never ends, so PR_SET_PDEATHSIG (which follows the thread that forked) fires only
/// when the test binary exits.
fn on_keeper<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static KEEPER: OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    let sender = KEEPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for job in rx {
                job();
            }
            loop {
                std::thread::park();
            }
        });
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .expect("the control plane's keeper thread is gone");
    rx.recv()
        .expect("the control plane's keeper thread is gone")
}

/// The control plane of this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    PLANE
        .get_or_init(start)
        .as_ref()
        .unwrap_or_else(|e| panic!("the test control plane did not start: {e}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Builds (or finds in the cache) `etcd` and `kube-apiserver`.
fn build() -> Result<PathBuf, String> {
    if Command::new("go").arg("version").output().is_err() {
        return Err(
            "the controller's end-to-end tests build kube-apiserver and etcd with Go, and `go` \
             is not on PATH: install Go 1.26 or newer (https://go.dev/doc/install, or \
             `apt-get install golang-go` where Debian has 1.26) and run the tests again"
                .into(),
        );
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/k8s/build.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); its output is above",
            script.display(),
            out.status
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    Ok(PathBuf::from(dir))
}

/// Removes the working directories of earlier runs whose test binary has exited.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Starts `program args` from the keeper thread, logging to `log` (appended), with
/// SIGKILL as its parent-death signal.
fn spawn(program: &Path, args: &[String], dir: &Path, log: &Path) -> Result<Child, String> {
    let (program, args, dir, log) = (
        program.to_path_buf(),
        args.to_vec(),
        dir.to_path_buf(),
        log.to_path_buf(),
    );
    on_keeper(move || {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&program);
        cmd.args(&args).current_dir(&dir);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", program.display()))
    })
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A CA (`ca.crt`), a server certificate for 127.0.0.1 and localhost signed by it
/// (`server.crt`, `server.key`) and a service-account key pair, made by openssl in `dir`.
pub fn certificates(dir: &Path) -> Result<(), String> {
    crate::common::ensure_package("/usr/bin/openssl", "openssl");
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=prism-e2e-ca",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=kube-apiserver",
    ])?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .map_err(|e| e.to_string())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])?;
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    Ok(())
}

fn tenant_namespace(i: usize) -> String {
    format!("prism-e2e-{i}")
}

/// `token,user,uid,"groups"` lines: the admin, and each tenant's ServiceAccount.
fn token_file() -> String {
    let mut out = format!("{ADMIN_TOKEN},prism-e2e-admin,admin,\"system:masters\"\n");
    for i in 0..TENANTS {
        let ns = tenant_namespace(i);
        out.push_str(&format!(
            "prism-e2e-token-{i},system:serviceaccount:{ns}:prism-controller,sa-{i},\
             \"system:serviceaccounts,system:serviceaccounts:{ns},system:authenticated\"\n"
        ));
    }
    out
}

fn kubeconfig(server: &str, ca: &Path, token: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    \
         certificate-authority: {}\nusers:\n- name: e2e\n  user:\n    token: {token}\ncontexts:\n\
         - name: e2e\n  context:\n    cluster: e2e\n    user: e2e\n    namespace: {namespace}\n\
         current-context: e2e\n",
        ca.display()
    )
}

fn start() -> Result<ControlPlane, String> {
    // Built on the calling thread (its output goes to the test's stderr), started from
    // the keeper thread.
    let started = Instant::now();
    let bin = build()?;
    remove_stale_dirs();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    certificates(&dir)?;
    std::fs::write(dir.join("tokens.csv"), token_file()).map_err(|e| e.to_string())?;

    let etcd_port = free_port();
    let peer_port = free_port();
    let etcd = format!("http://127.0.0.1:{etcd_port}");
    let etcd_log = dir.join("etcd.log");
    let etcd_args: Vec<String> = vec![
        format!("--data-dir={}", dir.join("etcd").display()),
        "--name=e2e".into(),
        format!("--listen-client-urls={etcd}"),
        format!("--advertise-client-urls={etcd}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-cluster=e2e=http://127.0.0.1:{peer_port}"),
        "--unsafe-no-fsync".into(),
        "--log-level=warn".into(),
    ];
    let etcd_process = spawn(&bin.join("etcd"), &etcd_args, &dir, &etcd_log)?;

    let port = free_port();
    let server = format!("https://127.0.0.1:{port}");
    let api_log = dir.join("kube-apiserver.log");
    let api_args: Vec<String> = [
        format!("--etcd-servers={etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        "--tls-cert-file=server.crt".into(),
        "--tls-private-key-file=server.key".into(),
        "--client-ca-file=ca.crt".into(),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        "--service-account-key-file=sa.pub".into(),
        "--service-account-signing-key-file=sa.key".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--authorization-mode=RBAC".into(),
        "--token-auth-file=tokens.csv".into(),
        "--cert-dir=certs".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--enable-priority-and-fairness=false".into(),
        "--v=1".into(),
    ]
    .into();
    let api_process = spawn(&bin.join("kube-apiserver"), &api_args, &dir, &api_log)?;

    let admin_kubeconfig = dir.join("admin.kubeconfig");
    std::fs::write(
        &admin_kubeconfig,
        kubeconfig(&server, &dir.join("ca.crt"), ADMIN_TOKEN, "default"),
    )
    .map_err(|e| e.to_string())?;
    let plane = ControlPlane {
        dir,
        server,
        etcd,
        admin_kubeconfig,
        bin,
        next_tenant: AtomicUsize::new(0),
        api_args,
        processes: Mutex::new(Processes {
            etcd: etcd_process,
            api: api_process,
        }),
    };
    // On a thread of its own: the caller may be inside a test's runtime.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let client = plane.admin().await;
                    wait_ready(&client, Duration::from_secs(120))
                        .await
                        .map_err(|e| {
                            format!(
                                "{e}\n--- kube-apiserver.log ---\n{}\n--- etcd.log ---\n{}",
                                tail(&api_log),
                                tail(&etcd_log)
                            )
                        })?;
                    install_crds(&client).await
                })
            })
            .join()
            .unwrap_or_else(|_| Err("the start-up thread panicked".into()))
    })?;
    // Only its garbage collector: what deletes an ApplicationSet's Applications by their
    // ownerReferences.
    let kcm_args: Vec<String> = vec![
        format!("--kubeconfig={}", plane.admin_kubeconfig.display()),
        "--controllers=garbagecollector".into(),
        "--leader-elect=false".into(),
        "--secure-port=0".into(),
        "--v=1".into(),
    ];
    let kcm_log = plane.dir.join("kube-controller-manager.log");
    spawn(
        &plane.bin.join("kube-controller-manager"),
        &kcm_args,
        &plane.dir,
        &kcm_log,
    )?;
    eprintln!(
        "control plane at {} ready in {:?} ({})",
        plane.server,
        started.elapsed(),
        plane.dir.display()
    );
    Ok(plane)
}

async fn wait_ready(client: &Client, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Ok(text) if text.trim() == "ok" => return Ok(()),
            Ok(text) => last = text,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "kube-apiserver was not ready within {limit:?}: {last}"
    ))
}

/// The YAML documents of a file, as JSON.
pub fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|d| serde_yaml::Value::deserialize(d).ok())
        .map(|v| serde_json::to_value(v).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

async fn install_crds(client: &Client) -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let files = [
        root.join("tests/data/crds/application-crd.yaml"),
        root.join("tests/data/crds/applicationset-crd.yaml"),
        root.join("tests/data/crds/appproject-crd.yaml"),
        root.join("deploy/crd.yaml"),
    ];
    let mut names = Vec::new();
    for file in files {
        for doc in yaml_docs(&file) {
            let name = doc["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            crds.patch(
                &name,
                &PatchParams::apply("prism-e2e").force(),
                &Patch::Apply(&doc),
            )
            .await
            .map_err(|e| format!("installing CRD {name} from {}: {e}", file.display()))?;
            names.push(name);
        }
    }
    let start = Instant::now();
    for name in names {
        loop {
            let established = crds.get(&name).await.ok().and_then(|crd| {
                let conditions = crd.status?.conditions?;
                Some(
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True"),
                )
            });
            if established == Some(true) {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!("CRD {name} was not established within 60 s"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// A client from a kubeconfig file.
pub async fn client_from(path: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// An `ApiResource` of Argo's or Prism's `v1alpha1` kinds.
pub fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", kind), plural)
}

impl ControlPlane {
    /// A client with the admin's rights (on the calling test's runtime).
    pub async fn admin(&self) -> Client {
        client_from(&self.admin_kubeconfig).await
    }

    /// A fresh namespace with `deploy/rbac.yaml` applied in it, as `kubectl apply -k
    /// deploy/` would (the kustomization sets the namespace of every object and subject).
    pub async fn tenant(&self) -> Tenant {
        let i = self.next_tenant.fetch_add(1, Ordering::SeqCst);
        assert!(
            i < TENANTS,
            "more than {TENANTS} tenants in one test binary"
        );
        let namespace = tenant_namespace(i);
        let client = self.admin().await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .patch(
                &namespace,
                &PatchParams::apply("prism-e2e").force(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": namespace}})),
            )
            .await
            .unwrap_or_else(|e| panic!("namespace {namespace}: {e}"));
        let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
        for mut doc in yaml_docs(&rbac) {
            doc["metadata"]["namespace"] = json!(namespace);
            if let Some(subjects) = doc.get_mut("subjects").and_then(Value::as_array_mut) {
                for s in subjects {
                    s["namespace"] = json!(namespace);
                }
            }
            let (group, version) = match doc["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (
                    String::new(),
                    doc["apiVersion"].as_str().unwrap().to_string(),
                ),
            };
            let kind = doc["kind"].as_str().unwrap().to_string();
            let plural = format!("{}s", kind.to_lowercase());
            let ar = ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(&group, &version, &kind),
                &plural,
            );
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &ar);
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            api.patch(
                &name,
                &PatchParams::apply("prism-e2e").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind} {name} from deploy/rbac.yaml: {e}"));
        }
        let path = self.dir.join(format!("{namespace}.kubeconfig"));
        std::fs::write(
            &path,
            kubeconfig(
                &self.server,
                &self.dir.join("ca.crt"),
                &format!("prism-e2e-token-{i}"),
                &namespace,
            ),
        )
        .unwrap();
        Tenant {
            namespace,
            kubeconfig: path,
        }
    }
}

impl ControlPlane {
    /// Stops kube-apiserver, runs `meanwhile` (etcd still up), and starts it again on
    /// the same port; returns once it is ready. Every watch breaks and must resume.
    pub async fn restart_apiserver(&self, meanwhile: impl FnOnce()) {
        {
            let mut processes = self.processes.lock().unwrap();
            let _ = processes.api.kill();
            let _ = processes.api.wait();
        }
        meanwhile();
        let api = spawn(
            &self.bin.join("kube-apiserver"),
            &self.api_args,
            &self.dir,
            &self.dir.join("kube-apiserver.log"),
        )
        .expect("restarting kube-apiserver");
        self.processes.lock().unwrap().api = api;
        wait_ready(&self.admin().await, Duration::from_secs(120))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", tail(&self.dir.join("kube-apiserver.log"))));
    }

    /// Writes a key of its own to etcd and compacts the history up to that revision
    /// (through etcd's JSON gateway), so a watch from any resourceVersion a client has
    /// seen gets `410 Gone`. Returns that revision.
    pub fn compact_etcd(&self) -> i64 {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let post = |path: &str, body: Value| -> Value {
            agent
                .post(&format!("{}{path}", self.etcd))
                .send_json(&body)
                .unwrap_or_else(|e| panic!("etcd {path}: {e}"))
                .body_mut()
                .read_json()
                .unwrap_or_else(|e| panic!("etcd {path}: {e}"))
        };
        // A write of our own first (a key outside the API server's prefix), so the
        // revision compacted to is past anything a client of the API server has seen.
        let put = post(
            "/v3/kv/put",
            json!({"key": "L3ByaXNtLWUyZS9idW1w", "value": "MQ=="}),
        );
        let revision: i64 = put["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {put}"));
        post(
            "/v3/kv/compaction",
            json!({"revision": revision.to_string(), "physical": true}),
        );
        revision
    }

    /// The admin's view of the API server's metrics, as text.
    pub async fn metrics(&self) -> String {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        self.admin()
            .await
            .request_text(request)
            .await
            .expect("GET /metrics")
    }
}
