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
