//! Six template behaviours of Argo CD 3.x (issue 12), each with the Argo source it
//! comes from. Specs and data are our own.

use prism_engine::sources::memory::{MemoryRepository, MemorySources};
use prism_engine::template::Renderer;
use prism_engine::{render, ApplicationSet, Cluster, ParamSet, RenderOptions, TemplateEngine};
use serde_json::{json, Value};

fn params(v: Value) -> ParamSet {
    v.as_object().cloned().unwrap_or_default()
}

fn names(yaml: &str, sources: &MemorySources) -> Result<Vec<String>, String> {
    let doc: Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let appset = ApplicationSet::from_value(&doc, "argocd").map_err(|e| e.to_string())?;
    let rendered =
        render(&appset, sources, &RenderOptions::default()).map_err(|e| e.to_string())?;
    Ok(rendered.applications.into_iter().map(|a| a.name).collect())
}

/// fasttemplate mode templates a string only if it matches `.*{{.*}}.*`
/// (`isTemplatedRegex` in `applicationset/utils/utils.go`, `Render.Replace`); an empty
/// tag is written back as it was (the tag function's `trimmedTag == ""` branch).
#[test]
fn fasttemplate_only_renders_what_argo_calls_templated() {
    let r = Renderer::new(&TemplateEngine::Fast).unwrap();
    let p = params(json!({"name": "api"}));
    assert_eq!(r.render_str("}} {{", &p).unwrap(), "}} {{");
    assert_eq!(r.render_str("a-{{name", &p).unwrap(), "a-{{name");
    assert_eq!(r.render_str("{{ }}-{{name}}", &p).unwrap(), "{{ }}-api");
    assert_eq!(r.render_str("x{{\n}}", &p).unwrap(), "x{{\n}}");
    assert_eq!(
        r.render_str("{{name}}\n}} {{", &p).unwrap_err(),
        "cannot find end tag \"}}\" in the template \"{{name}}\\n}} {{\" starting from \"{{\""
    );
}

const CLUSTER_SPEC: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: s}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators: GENERATORS
  template:
    metadata: {name: 'NAME'}
    spec:
      project: default
      destination: {server: '{{.server}}', namespace: x}
"#;

fn cluster(name: &str, labels: &[(&str, &str)]) -> Cluster {
    let mut c = Cluster::in_cluster();
    c.name = name.into();
    c.server = format!("https://{name}.example");
    c.secret_name = Some(name.into());
    for (k, v) in labels {
        c.labels.insert(k.to_string(), v.to_string());
    }
    c.labels
        .insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
    c
}

/// `templatePatch` cannot change `spec.project` ("project field isn't overwritten" in
/// `applicationset/controllers/template/patch_test.go`; `applyTemplatePatch` keeps it).
#[test]
fn template_patch_keeps_the_project() {
    let spec = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: s}
spec:
  goTemplate: true
  generators: [{list: {elements: [{team: pay}]}}]
  template:
    metadata: {name: 'app-{{.team}}'}
    spec: {project: default, destination: {server: 'https://kubernetes.default.svc', namespace: x}}
  templatePatch: |
    spec:
      project: '{{.team}}-admin'
      source: {repoURL: 'https://g/x.git', path: '{{.team}}'}
"#;
    let doc: Value = serde_yaml::from_str(spec).unwrap();
    let appset = ApplicationSet::from_value(&doc, "argocd").unwrap();
    let out = render(&appset, &MemorySources::new(), &RenderOptions::default()).unwrap();
    let app = &out.applications[0].manifest;
    assert_eq!(app["spec"]["project"], "default");
    assert_eq!(
        app["spec"]["source"]["path"], "pay",
        "the rest of the patch applies"
    );
}

/// `slugify` is Argo's `SlugifyName`: `SanitizeName`, then gosimple/slug with
/// `maxSize` (default 50) and smart truncation (default on)
/// (`applicationset/utils/utils.go`).
#[test]
fn slugify_is_argos_slugify_name() {
    for engine in [
        TemplateEngine::Go { options: vec![] },
        TemplateEngine::Handlebars,
    ] {
        let r = Renderer::new(&engine).unwrap();
        let p = params(json!({"b": "Feature/New_Login Page"}));
        let (a, b, c) = match engine {
            TemplateEngine::Handlebars => (
                "{{slugify b}}",
                "{{slugify b 12 true}}",
                "{{slugify b 5 false}}",
            ),
            _ => (
                "{{ slugify .b }}",
                "{{ slugify 12 true .b }}",
                "{{ slugify 5 false .b }}",
            ),
        };
        assert_eq!(r.render_str(a, &p).unwrap(), "feature-new-login-page");
        assert_eq!(r.render_str(b, &p).unwrap(), "feature-new");
        assert_eq!(r.render_str(c, &p).unwrap(), "featu");
    }
    // Argo's type assertions: the size is an int, the switch a bool.
    let r = Renderer::new(&TemplateEngine::Go { options: vec![] }).unwrap();
    let e = r
        .render_str("{{ slugify \"12\" \"x\" }}", &ParamSet::new())
        .unwrap_err();
    assert!(
        e.ends_with("error calling slugify: interface conversion: interface {} is string, not int"),
        "{e}"
    );
}

/// In a matrix, a later child's `values` are resolved with `missingkey=error`, and a
/// value whose key the earlier set lacks is left for the child's own rendering
/// (`RenderGeneratorParams` in `applicationset/utils/utils.go`).
#[test]
fn matrix_values_wait_for_the_childs_own_parameters() {
    let sources = MemorySources::new()
        .with_clusters([cluster("eu-1", &[("env", "prod")])])
        .with_repo(
            "https://g/config.git",
            MemoryRepository::new([("apps/api.yaml", "service: api\n")]),
        );
    let generators = r#"
  - matrix:
      generators:
      - git: {repoURL: 'https://g/config.git', revision: HEAD, files: [{path: 'apps/*.yaml'}]}
      - clusters:
          selector: {matchLabels: {env: prod}}
          values: {clusterName: '{{.name}}', svc: '{{.service}}'}
"#;
    let spec = CLUSTER_SPEC
        .replace(" GENERATORS", generators)
        .replace("NAME", "{{.values.svc}}-{{.values.clusterName}}");
    assert_eq!(names(&spec, &sources).unwrap(), vec!["api-eu-1"]);
}

/// The local cluster (`in-cluster`, no Secret) has only name, nameNormalized, server
/// and project: no `metadata` (the cluster generator's local-cluster branch).
#[test]
fn the_local_cluster_has_no_metadata() {
    let spec = CLUSTER_SPEC
        .replace(" GENERATORS", "\n  - clusters: {}\n")
        .replace("NAME", "{{ .name }}-{{ index .metadata.labels \"env\" }}");
    let e = names(&spec, &MemorySources::new()).unwrap_err();
    assert!(e.contains("map has no entry for key \"metadata\""), "{e}");
    let spec = CLUSTER_SPEC
        .replace(" GENERATORS", "\n  - clusters: {}\n")
        .replace("NAME", "{{ .name }}-{{ .nameNormalized }}-{{ .project }}x");
    assert_eq!(
        names(&spec, &MemorySources::new()).unwrap(),
        vec!["in-cluster-in-cluster-x"]
    );
}

/// A cluster Secret's labels and annotations are Go `map[string]string`: `index` of a
/// missing key is "" and compares as a string (argo-cd issue 15625's ApplicationSet).
#[test]
fn secret_cluster_labels_are_string_maps() {
    let sources = MemorySources::new().with_clusters([
        cluster("a", &[("my.org/cluster", "internal")]),
        cluster("b", &[]),
    ]);
    let generators = r#"
  - clusters:
      selector: {matchExpressions: [{key: argocd.argoproj.io/secret-type, operator: In, values: [cluster]}]}
      values:
        tier: '{{ ternary "int" "ext" (eq (index .metadata.labels "my.org/cluster") "internal") }}'
"#;
    let spec = CLUSTER_SPEC.replace(" GENERATORS", generators).replace(
        "NAME",
        "{{ .name }}-{{ .values.tier }}-{{ index .metadata.labels \"absent\" }}x",
    );
    assert_eq!(names(&spec, &sources).unwrap(), vec!["a-int-x", "b-ext-x"]);
}
