//! `prism schema`: the JSON Schema accepts real specs and rejects typos.

mod common;
use common::*;
use serde_json::Value;

fn validator() -> jsonschema::Validator {
    let out = prism(&["schema"]);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn accepts_the_example_and_an_argo_spec() {
    let v = validator();
    let example = yaml(&std::fs::read_to_string("examples/multi-env/applicationset.yaml").unwrap());
    let errors: Vec<String> = v.iter_errors(&example).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let argo = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - git:
      repoURL: https://github.com/argoproj/argo-cd.git
      revision: HEAD
      files: [{path: "clusters/**/config.json"}]
      template: {metadata: {}, spec: {project: special}}
    selector: {matchLabels: {env: prod}}
  - merge:
      mergeKeys: [server]
      generators:
      - clusters: {values: {kafka: "true"}}
      - list: {elements: [{server: https://x, kafka: "false"}]}
  template:
    metadata: {name: '{{.cluster.name}}'}
    spec: {project: default, destination: {server: '{{.cluster.address}}', namespace: guestbook}}
  syncPolicy: {preserveResourcesOnDeletion: true}
"#,
    );
    let errors: Vec<String> = v.iter_errors(&argo).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn rejects_typos() {
    let v = validator();
    let base = std::fs::read_to_string("examples/multi-env/applicationset.yaml").unwrap();
    for (from, to) in [
        ("- values:", "- valuez:"),
        ("pattern:", "patern:"),
        ("kind: ApplicationSet", "kind: ApplicationSets"),
        ("matchLabels:", "matchLabel:"),
    ] {
        assert!(base.contains(from));
        let bad = yaml(&base.replacen(from, to, 1));
        assert!(!v.is_valid(&bad), "{to} should be rejected");
    }
}

/// Drift: every ApplicationSet in `examples/` validates against `prism schema` and is
/// accepted by `prism validate`; so are Prism's own fields (`deletionGuard`,
/// `writeBack`) and a template override on every generator, which the schema once
/// refused while the engine accepted them.
#[test]
fn schema_and_validate_agree_on_every_example_and_prism_field() {
    let v = validator();
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap_or(Value::Null);
            if value.get("kind").and_then(Value::as_str) != Some("ApplicationSet") {
                continue;
            }
            let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            checked += 1;
        }
        if text.contains("kind: ApplicationSet") {
            let out = prism(&["validate", file.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
        }
    }
    assert!(checked > 0);
    let prism_spec = r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {name: guarded}
spec:
  deletionGuard: {maxPercent: 20}
  writeBack: {method: git, repoURL: https://g/x.git, path: apps}
  generators:
  - plugin: {configMapRef: {name: p}, template: {metadata: {}, spec: {project: x}}}
  - images: {images: [{alias: api, name: registry.example/api}], template: {metadata: {}, spec: {project: y}}}
  template:
    metadata: {name: 'x'}
    spec: {project: default, destination: {server: 'https://kubernetes.default.svc', namespace: x}}
"#;
    let value = yaml(prism_spec);
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "guarded.yaml", prism_spec);
    let out = prism(&["validate", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
}
