//! `prism generate` end to end on the bundled example: output formats, validity against
//! Argo CD's Application CRD schema, determinism, `--explain`.

mod common;
use common::*;
use serde_json::Value;

#[test]
fn example_renders_one_application_per_service_env_and_cluster() {
    let mut args = EXAMPLE.to_vec();
    args.extend(["-o", "names"]);
    let out = prism(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let mut want = Vec::new();
    for svc in ["api", "web", "worker"] {
        for cluster in ["preview-eu-1", "prod-eu-1", "prod-us-1", "test-eu-1"] {
            want.push(format!("{svc}-{cluster}"));
        }
    }
    assert_eq!(names, want);
}

#[test]
fn example_json_is_a_kubectl_list_of_valid_applications() {
    let mut args = EXAMPLE.to_vec();
    args.extend(["-o", "json"]);
    let out = prism(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 12);

    let crd: Value = serde_yaml::from_str(
        &std::fs::read_to_string("tests/data/crds/application-crd.yaml").unwrap(),
    )
    .unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let validator = jsonschema::validator_for(schema).unwrap();
    for app in items {
        let errors: Vec<String> = validator.iter_errors(app).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", app["metadata"]["name"]);
        assert_eq!(app["metadata"]["namespace"], "argocd");
        assert_eq!(
            app["metadata"]["finalizers"][0],
            "resources-finalizer.argocd.argoproj.io"
        );
    }
    let api_prod_us = items
        .iter()
        .find(|a| a["metadata"]["name"] == "api-prod-us-1")
        .unwrap();
    assert_eq!(
        api_prod_us["spec"]["destination"]["server"],
        "https://prod-us-1.k8s.example.com"
    );
    assert_eq!(api_prod_us["spec"]["destination"]["namespace"], "api-prod");
    assert_eq!(api_prod_us["spec"]["source"]["path"], "services/api");
    assert_eq!(
        api_prod_us["spec"]["source"]["helm"]["valueFiles"],
        serde_json::json!(["values.yaml", "values-prod.yaml"])
    );
    assert_eq!(
        api_prod_us["spec"]["syncPolicy"]["syncOptions"][0],
        "CreateNamespace=true"
    );
}

#[test]
fn a_schema_violation_would_be_caught() {
    // Guards the test above: the validator does reject a broken Application.
    let crd: Value = serde_yaml::from_str(
        &std::fs::read_to_string("tests/data/crds/application-crd.yaml").unwrap(),
    )
    .unwrap();
    let validator =
        jsonschema::validator_for(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
            .unwrap();
    let bad = serde_json::json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "x"}, "spec": {"project": "default"}});
    assert!(
        !validator.is_valid(&bad),
        "spec.destination is required by the CRD"
    );
}

#[test]
fn output_is_byte_identical_across_runs() {
    let a = prism(EXAMPLE);
    let b = prism(EXAMPLE);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    let yaml = stdout(&a);
    assert_eq!(yaml.matches("\n---\n").count() + 1, 12, "12 documents");
    assert!(yaml.starts_with("---\napiVersion: argoproj.io/v1alpha1\nkind: Application\n"));
}

#[test]
fn explain_names_generators_and_parameters() {
    let mut args = EXAMPLE.to_vec();
    args.extend(["--explain", "-o", "json"]);
    let out = prism(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &list["items"][0];
    assert_eq!(first["application"], "api-preview-eu-1");
    assert_eq!(first["applicationSet"], "multi-env");
    assert_eq!(
        first["generators"],
        serde_json::json!([
            "spec.generators[0].matrix.generators[0].values",
            "spec.generators[0].matrix.generators[1].clusters"
        ])
    );
    assert_eq!(first["parameters"]["env"], "preview");
    assert_eq!(
        first["parameters"]["server"],
        "https://preview-eu-1.k8s.example.com"
    );
    assert_eq!(first["parameters"]["values.replicaCount"], "1");
    assert_eq!(first["parameters"]["hasBaseValues"], "true");
}

#[test]
fn spec_from_stdin_and_directory() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spec = std::fs::read("examples/multi-env/applicationset.yaml").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
        .args([
            "generate",
            "-",
            "--clusters",
            "examples/multi-env/clusters.yaml",
            "--repo",
            "https://github.com/example-org/services.git=examples/multi-env/repo",
            "-o",
            "names",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&spec).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 12);

    // A directory: every *.yaml in it; the Secrets file in it is skipped as a spec.
    let out = prism(&[
        "generate",
        "examples/multi-env",
        "--clusters",
        "examples/multi-env/clusters.yaml",
        "--repo",
        "https://github.com/example-org/services.git=examples/multi-env/repo",
        "-o",
        "names",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 12);
}

#[test]
fn validate_and_version() {
    let out = prism(&["validate", "examples/multi-env/applicationset.yaml"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "ok: examples/multi-env/applicationset.yaml: ApplicationSet multi-env (1 generators)\n"
    );
    let out = prism(&["version"]);
    assert_eq!(
        stdout(&out),
        format!("prism {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = prism(&["generate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = prism(&["generate", "x.yaml", "--repo", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected URL=PATH"),
        "{}",
        stderr(&out)
    );
}

/// The bundled example rewritten for `goTemplate: true` renders the same Applications.
#[test]
fn go_template_spec_renders_the_same_as_the_default_mode() {
    let spec = std::fs::read_to_string("examples/multi-env/applicationset.yaml")
        .unwrap()
        .replace(
            "spec:\n  generators:",
            "spec:\n  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n  generators:",
        )
        .replace("env: \"{{env}}\"", "env: '{{.env}}'")
        .replace(
            "\"{{service}}-{{nameNormalized}}\"",
            "'{{.service}}-{{.nameNormalized}}'",
        )
        .replace("\"{{service}}\"", "'{{.service}}'")
        .replace("\"{{env}}\"", "'{{.env}}'")
        .replace("\"{{path}}\"", "'{{.path}}'")
        .replace("\"values-{{env}}.yaml\"", "'values-{{.env}}.yaml'")
        .replace("\"{{server}}\"", "'{{.server}}'")
        .replace("\"{{service}}-{{env}}\"", "'{{.service}}-{{.env}}'");
    assert!(!spec.contains("\"{{"), "every template rewritten:\n{spec}");
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "go.yaml", &spec);
    let mut args = EXAMPLE.to_vec();
    args[1] = &file;
    let go = prism(&args);
    assert!(go.status.success(), "{}", stderr(&go));
    let fast = prism(EXAMPLE);
    assert_eq!(stdout(&go), stdout(&fast));
}

/// An Argo CD goTemplate manifest with git files, nested parameters, sprig and a templatePatch
/// producing a boolean.
#[test]
fn go_template_git_files_and_template_patch() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    write(
        &repo,
        "clusters/prod/config.yaml",
        "cluster:\n  name: Prod-EU\n  address: https://p\n  replicas: 3\n  autoSync: true\n",
    );
    write(
        &repo,
        "clusters/test/config.yaml",
        "cluster:\n  name: test\n  address: https://t\n  replicas: 1\n  autoSync: false\n",
    );
    let spec = write(
        tmp.path(),
        "appset.yaml",
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook}
spec:
  goTemplate: true
  generators:
  - git:
      repoURL: https://github.com/example/cluster-config.git
      revision: HEAD
      files:
      - path: "clusters/**/config.yaml"
  template:
    metadata:
      name: '{{ .cluster.name | normalize }}-guestbook'
      annotations:
        replicas: '{{ .cluster.replicas }}'
        dir: '{{ .path.basename }}/{{ index .path.segments 0 }}'
    spec:
      project: default
      source:
        repoURL: https://github.com/argoproj/argo-cd.git
        targetRevision: HEAD
        path: guestbook
      destination:
        server: '{{ .cluster.address }}'
        namespace: '{{ default "guestbook" .cluster.namespace }}'
  templatePatch: |
    {{- if .cluster.autoSync }}
    spec:
      syncPolicy:
        automated:
          prune: {{ .cluster.autoSync }}
    {{- end }}
"#,
    );
    let out = prism(&[
        "generate",
        &spec,
        "-o",
        "json",
        "--repo",
        &format!(
            "https://github.com/example/cluster-config.git={}",
            repo.display()
        ),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let prod = &items[0];
    assert_eq!(prod["metadata"]["name"], "prod-eu-guestbook");
    assert_eq!(prod["metadata"]["annotations"]["replicas"], "3");
    assert_eq!(prod["metadata"]["annotations"]["dir"], "prod/clusters");
    assert_eq!(prod["spec"]["destination"]["namespace"], "guestbook");
    assert_eq!(
        prod["spec"]["syncPolicy"]["automated"]["prune"], true,
        "a boolean, not a string"
    );
    assert!(items[1]["spec"].get("syncPolicy").is_none());
}

/// `clusterDecisionResource` on the command line: the ConfigMap and the decision
/// resources come from `--resources` (`kubectl get -o yaml` output, a List), the
/// clusters from `--clusters`; a label selector picks the resource.
#[test]
fn cluster_decision_resources_from_a_resources_file() {
    let dir = tempfile::tempdir().unwrap();
    let resources = write(
        dir.path(),
        "resources.yaml",
        r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ocm-placement-generator, namespace: argocd}
  data: {apiVersion: cluster.open-cluster-management.io/v1beta1, kind: placementdecisions,
         statusListKey: decisions, matchKey: clusterName}
- apiVersion: cluster.open-cluster-management.io/v1beta1
  kind: PlacementDecision
  metadata: {name: shop-decision-1, namespace: argocd, labels: {cluster.open-cluster-management.io/placement: shop}}
  status:
    decisions:
    - {clusterName: test-eu-1, reason: ""}
    - {clusterName: prod-us-1, reason: ""}
- apiVersion: cluster.open-cluster-management.io/v1beta1
  kind: PlacementDecision
  metadata: {name: other-decision-1, namespace: argocd, labels: {cluster.open-cluster-management.io/placement: other}}
  status:
    decisions:
    - {clusterName: preview-eu-1, reason: ""}
"#,
    );
    let spec = write(
        dir.path(),
        "appset.yaml",
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: placed, namespace: argocd}
spec:
  generators:
  - clusterDecisionResource:
      configMapRef: ocm-placement-generator
      labelSelector:
        matchLabels: {cluster.open-cluster-management.io/placement: shop}
  template:
    metadata: {name: 'shop-{{name}}'}
    spec:
      project: default
      source: {repoURL: https://github.com/example-org/shop.git, path: deploy, targetRevision: HEAD}
      destination: {server: '{{server}}', namespace: shop}
"#,
    );
    let out = prism(&[
        "generate",
        &spec,
        "--clusters",
        "examples/multi-env/clusters.yaml",
        "--resources",
        &resources,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-prod-us-1", "shop-test-eu-1"]);
    assert_eq!(
        list["items"][1]["spec"]["destination"]["server"],
        "https://test-eu-1.k8s.example.com"
    );
    // Without --resources: an error saying what to pass.
    let out = prism(&[
        "generate",
        &spec,
        "--clusters",
        "examples/multi-env/clusters.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("pass --resources FILE"),
        "{}",
        stderr(&out)
    );
}

/// `prism completions SHELL` prints a script each shell accepts (bash's parses with
/// `bash -n`), naming the subcommands; `prism man` prints a roff man page.
#[test]
fn completions_and_the_man_page_print() {
    for (shell, marker) in [
        ("bash", "_prism()"),
        ("zsh", "#compdef prism"),
        ("fish", "complete -c prism"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = prism(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}");
        for sub in ["generate", "diff", "lint", "controller"] {
            assert!(script.contains(sub), "{shell} lacks {sub}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), "prism.bash", &script);
            let checked = std::process::Command::new("bash")
                .args(["-n", &path])
                .status()
                .unwrap();
            assert!(checked.success(), "bash -n rejects the completion script");
        }
    }
    let out = prism(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let out = prism(&["man"]);
    assert!(out.status.success());
    let page = stdout(&out);
    assert!(page.contains(".TH prism 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains("generate"),
        "{page}"
    );
}

/// `-o table`: a header and one row per Application, columns aligned as `kubectl get`
/// prints them; the source is the repository and path (or chart) at its revision.
#[test]
fn table_output_for_people() {
    let example = |format: &str| prism(&[EXAMPLE, &["-o", format]].concat());
    let out = example("table");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME "), "{text}");
    let names = example("names");
    assert_eq!(lines.len(), stdout(&names).lines().count() + 1);
    for header in ["PROJECT", "CLUSTER", "NAMESPACE", "SOURCE"] {
        let col = lines[0].find(header).unwrap();
        for l in &lines[1..] {
            assert!(l[..col].ends_with("  "), "column {header} not aligned: {l}");
        }
    }
    let api = lines
        .iter()
        .find(|l| l.starts_with("api-prod-eu-1 "))
        .unwrap();
    assert!(
        api.ends_with("https://github.com/example-org/services.git services/api@HEAD"),
        "{api}"
    );
    assert!(api.contains("https://prod-eu-1.k8s.example.com"));
}

/// `.pre-commit-hooks.yaml` parses as pre-commit reads it, each hook's entry is a
/// `prism` command that exists, and, as pre-commit calls it with every changed YAML
/// file, files holding no ApplicationSet are skipped.
#[test]
fn the_pre_commit_hooks_run() {
    let text = std::fs::read_to_string(".pre-commit-hooks.yaml").unwrap();
    let hooks: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).unwrap();
    let ids: Vec<&str> = hooks.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["prism-validate", "prism-lint"]);
    for hook in &hooks {
        assert_eq!(hook["language"].as_str(), Some("system"));
        assert!(hook["name"].as_str().is_some() && hook["types"].as_sequence().is_some());
        let entry: Vec<&str> = hook["entry"].as_str().unwrap().split_whitespace().collect();
        assert_eq!(entry[0], "prism");
        // The files pre-commit would pass: an ApplicationSet and another YAML file.
        let mut args: Vec<&str> = entry[1..].to_vec();
        args.extend([
            "deploy/service.yaml",
            "examples/multi-env/applicationset.yaml",
        ]);
        let out = prism(&args);
        assert!(out.status.success(), "{:?}: {}", entry, stderr(&out));
    }
    // A bad spec fails the hook.
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: b}\nspec: {generators: []}\n",
    );
    let out = prism(&["validate", "deploy/service.yaml", &bad]);
    assert_eq!(out.status.code(), Some(1));
}
