//! The `deploy/` kustomize base: the CRD is exactly what `prism crd` prints, the
//! RBAC is least-privilege and covers every call the controller makes, and the
//! Deployment is hardened. `kubectl kustomize` builds it where kubectl exists.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn docs(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .collect()
}

use serde::Deserialize;

#[test]
fn the_crd_file_is_what_prism_crd_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_prism"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let file =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/crd.yaml"))
            .unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == file,
        "deploy/crd.yaml is stale: run `cargo run -- crd > deploy/crd.yaml`"
    );
}

#[test]
fn rbac_is_namespaced_read_only_on_secrets_and_covers_the_controller() {
    let rbac = docs("rbac.yaml");
    let kinds: Vec<&str> = rbac.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "Role", "RoleBinding"],
        "no cluster-wide grants"
    );
    let rules = rbac[1]["rules"].as_array().unwrap();
    let verbs = |group: &str, resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r["apiGroups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|g| g == group)
                    && r["resources"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x == resource)
            })
            .flat_map(|r| {
                r["verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
            })
            .collect()
    };
    let has = |group: &str, resource: &str, wanted: &[&str]| {
        let got = verbs(group, resource);
        for w in wanted {
            assert!(
                got.iter().any(|g| g == w),
                "{group}/{resource} lacks {w}: {got:?}"
            );
        }
        got
    };
    // What the controller calls: SSA (patch), delete, list/watch of Applications.
    has(
        "argoproj.io",
        "applications",
        &["get", "list", "watch", "patch", "delete"],
    );
    has("prism.dev", "applicationsets", &["list", "watch"]);
    has("argoproj.io", "applicationsets", &["list", "watch"]);
    has("prism.dev", "applicationsets/status", &["patch"]);
    has("events.k8s.io", "events", &["create"]);
    has(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    );
    let secrets = has("", "secrets", &["get", "list", "watch"]);
    assert!(
        secrets
            .iter()
            .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
        "secrets must be read-only: {secrets:?}"
    );
    assert!(!rules
        .iter()
        .any(|r| r["verbs"].as_array().unwrap().iter().any(|v| v == "*")));
}

#[test]
fn the_deployment_is_two_hardened_replicas_with_probes() {
    let d = &docs("deployment.yaml")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "controller");
    // Every flag in the manifest is one the binary accepts.
    let help = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(["controller", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for a in &args[1..] {
        let flag = a.split('=').next().unwrap();
        assert!(help.contains(flag), "{flag} is not a controller flag");
    }
    let svc = &docs("service.yaml")[0];
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
}

#[test]
fn kubectl_kustomize_builds_the_base() {
    let Ok(out) = Command::new("kubectl")
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")])
        .output()
    else {
        eprintln!("kubectl is not installed: the base's files were checked one by one above");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(text.contains(&format!("kind: {kind}\n")), "missing {kind}");
    }
    assert!(text.contains("namespace: argocd"));
    assert!(text.contains("image: ghcr.io/prism-dev/prism:0.1.0"));
}

/// The Dockerfile and `deploy/` agree: the user the pod runs as, the port it serves,
/// the entrypoint its args follow, and the writable paths (`HOME`, the cache) the
/// Deployment mounts on a read-only root filesystem.
#[test]
fn the_dockerfile_matches_the_deployment() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let run_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let line = |prefix: &str| {
        run_stage
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("the run stage has no {prefix}"))
            .trim()
            .to_string()
    };
    let d = &docs("deployment.yaml")[0];
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let user = line("USER ");
    assert_eq!(
        user,
        format!(
            "{}:{}",
            pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
        )
    );
    assert_eq!(line("EXPOSE "), c["ports"][0]["containerPort"].to_string());
    assert_eq!(line("ENTRYPOINT "), r#"["prism"]"#);
    assert_eq!(c["args"][0], "controller");
    for tool in ["git", "openssh-client", "ca-certificates"] {
        assert!(run_stage.contains(tool), "the image lacks {tool}");
    }
    // Writable paths: HOME and the cache are the Deployment's mounts.
    let home = line("ENV HOME=");
    let env_home = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "HOME")
        .unwrap()["value"]
        .clone();
    assert_eq!(env_home, home.as_str());
    // The allocator returns freed memory at once (the controller's peak memory, README).
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "MIMALLOC_PURGE_DELAY" && e["value"] == "0"),
        "{}",
        c["env"]
    );
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&home.as_str()));
    assert!(mounts.contains(&"/var/cache/prism"));
    assert!(run_stage.contains("chown 65532:65532 /var/cache/prism"));
    assert!(c["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "--cache-dir=/var/cache/prism"));
}

/// Where a Docker daemon runs, the image builds and `prism version` runs in it.
#[test]
fn the_image_builds_where_docker_runs() {
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    if !daemon.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("no Docker daemon here: the Dockerfile was checked against deploy/ only");
        return;
    }
    let dir = env!("CARGO_MANIFEST_DIR");
    let built = Command::new("docker")
        .args(["build", "-q", "-t", "prism-test:latest", dir])
        .status()
        .unwrap();
    assert!(built.success(), "docker build failed");
    let out = Command::new("docker")
        .args(["run", "--rm", "--read-only", "prism-test:latest", "version"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("prism"));
}
