//! Bad input: each case exits 1 with a clear error naming the file and spec path,
//! and writes nothing to stdout.

mod common;
use common::*;

const TEMPLATE: &str = r#"
  template:
    metadata:
      name: NAME
    spec:
      project: default
      source: {repoURL: https://github.com/org/apps.git, targetRevision: HEAD, path: apps}
      destination: {server: https://kubernetes.default.svc, namespace: default}
"#;

fn appset(api: &str, generators: &str, name: &str) -> String {
    format!(
        "apiVersion: {api}\nkind: ApplicationSet\nmetadata: {{name: bad, namespace: argocd}}\nspec:\n  generators:\n{generators}{}",
        TEMPLATE.replace("NAME", name)
    )
}

/// Runs `generate` on `content`; returns (spec path, stderr) after checking exit 1 and empty stdout.
fn fails(content: &str, extra: &[&str]) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "appset.yaml", content);
    let mut args = vec!["generate", file.as_str()];
    args.extend_from_slice(extra);
    let out = prism(&args);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "no partial output: {}", stdout(&out));
    (file, stderr(&out).trim_end().to_string())
}

#[test]
fn malformed_yaml() {
    let (file, err) = fails(
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nspec: [unclosed\n",
        &[],
    );
    assert!(
        err.starts_with(&format!("error: {file}: document 1: malformed YAML: ")),
        "{err}"
    );
    assert!(err.contains("line"), "names the position: {err}");
}

#[test]
fn unknown_generator_key() {
    let (file, err) = fails(
        &appset("argoproj.io/v1alpha1", "  - lists: {elements: []}\n", "x"),
        &[],
    );
    assert_eq!(
        err,
        format!(
            "error: {file}: document 1: ApplicationSet bad: spec.generators[0].lists: unknown generator `lists`; \
             expected one of: list, clusters, clusterDecisionResource, git, matrix, merge, plugin, pullRequest, scmProvider, values and images (prism.dev only)"
        )
    );
}

#[test]
fn unknown_field_inside_a_generator() {
    let (_, err) = fails(
        &appset(
            "argoproj.io/v1alpha1",
            "  - git: {repoURL: x, revision: HEAD, directory: [{path: '*'}]}\n",
            "x",
        ),
        &[],
    );
    assert!(
        err.contains("spec.generators[0].git: unknown field `directory`, expected one of"),
        "{err}"
    );
}

#[test]
fn values_generator_needs_prism_api() {
    let (_, err) = fails(
        &appset("argoproj.io/v1alpha1", "  - values: {repoURL: x}\n", "x"),
        &[],
    );
    assert!(
        err.ends_with("spec.generators[0].values: the values generator is Prism's own; set apiVersion: prism.dev/v1alpha1 to use it"),
        "{err}"
    );
}

#[test]
fn values_file_that_is_not_yaml() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    write(&repo, "svc/api/values-prod.yaml", "replicas: [1, 2\n");
    let content = appset(
        "prism.dev/v1alpha1",
        "  - values: {repoURL: https://git.example.com/s.git}\n",
        "'{{service}}-{{env}}'",
    );
    let (_, err) = fails(
        &content,
        &[
            "--repo",
            &format!("https://git.example.com/s.git={}", repo.display()),
        ],
    );
    assert!(
        err.contains(
            "ApplicationSet bad: spec.generators[0].values: file svc/api/values-prod.yaml in https://git.example.com/s.git: not valid YAML"
        ),
        "{err}"
    );
}

#[test]
fn duplicate_application_names_name_both_parameter_sets() {
    let (file, err) = fails(
        &appset(
            "argoproj.io/v1alpha1",
            "  - list: {elements: [{env: prod, region: eu}, {env: prod, region: us}]}\n",
            "'app-{{env}}'",
        ),
        &[],
    );
    assert_eq!(
        err,
        format!(
            "error: {file}: ApplicationSet bad: spec.template.metadata.name: duplicate Application name \"app-prod\": \
             made by spec.generators[0].list {{env=prod, region=eu}} and again by spec.generators[0].list {{env=prod, region=us}}; \
             make the template's metadata.name unique per parameter set"
        )
    );
}

#[test]
fn invalid_rendered_name() {
    let (file, err) = fails(
        &appset(
            "argoproj.io/v1alpha1",
            "  - list: {elements: [{cluster: Prod_EU}]}\n",
            "'{{cluster}}-app'",
        ),
        &[],
    );
    assert_eq!(
        err,
        format!(
            "error: {file}: ApplicationSet bad: spec.template: rendered Application \"Prod_EU-app\" is invalid: \
             metadata.name is not a valid DNS-1123 subdomain: 'P' is not allowed (only lowercase letters, digits, '-' and '.'); \
             use a *Normalized parameter or the normalize function (parameters from spec.generators[0].list {{cluster=Prod_EU}})"
        )
    );
}

#[test]
fn handlebars_reference_to_a_missing_parameter() {
    let content = appset(
        "prism.dev/v1alpha1",
        "  - list: {elements: [{cluster: a}]}\n",
        "'{{clustr}}'",
    )
    .replace(
        "spec:\n  generators",
        "spec:\n  templateEngine: handlebars\n  generators",
    );
    let (file, err) = fails(&content, &[]);
    assert_eq!(
        err,
        format!(
            "error: {file}: ApplicationSet bad: spec.template.metadata.name: rendering template: template \"{{{{clustr}}}}\" refers to \
             parameter \"clustr\", which this parameter set does not have (handlebars runs in strict mode; use `default` \
             for optional parameters) (parameters from spec.generators[0].list {{cluster=a}})"
        )
    );
}

#[test]
fn go_template_missing_key_names_field_and_position() {
    let content = appset(
        "argoproj.io/v1alpha1",
        "  - list: {elements: [{cluster: a}]}\n",
        "'{{.cluster}}-{{.clustr}}'",
    )
    .replace(
        "spec:\n  generators",
        "spec:\n  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n  generators",
    );
    let (file, err) = fails(&content, &[]);
    assert_eq!(
        err,
        format!(
            "error: {file}: ApplicationSet bad: spec.template.metadata.name: rendering template: template \"{{{{.cluster}}}}-{{{{.clustr}}}}\": \
             1:14: executing at <.clustr>: map has no entry for key \"clustr\" (parameters from spec.generators[0].list {{cluster=a}})"
        )
    );
}

#[test]
fn go_template_syntax_error_is_caught_by_validate() {
    let content = appset(
        "argoproj.io/v1alpha1",
        "  - list: {elements: [{cluster: a}]}\n",
        "'{{if .cluster}}x'",
    )
    .replace(
        "spec:\n  generators",
        "spec:\n  goTemplate: true\n  generators",
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "appset.yaml", &content);
    let out = prism(&["validate", &file]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: {file}: ApplicationSet bad: spec.template: rendering template: template \"{{{{if .cluster}}}}x\": 1:1: unexpected EOF in if"
        )
    );
}

#[test]
fn non_string_list_element_in_default_mode() {
    let (_, err) = fails(
        &appset(
            "argoproj.io/v1alpha1",
            "  - list: {elements: [{cluster: a, replicas: 3}]}\n",
            "'{{cluster}}'",
        ),
        &[],
    );
    assert!(err.ends_with("spec.generators[0].list.elements[0].replicas: is a number, not a string; Argo's default template mode needs string values: quote it (\"3\")"), "{err}");
}

#[test]
fn bad_clusters_file() {
    let tmp = tempfile::tempdir().unwrap();
    let clusters = write(tmp.path(), "clusters.yaml", "kind: Secret\nmetadata: {name: c1, labels: {argocd.argoproj.io/secret-type: cluster}}\ndata: {server: 'not base64!'}\n");
    let (_, err) = fails(
        &appset("argoproj.io/v1alpha1", "  - clusters: {}\n", "'{{name}}'"),
        &["--clusters", &clusters],
    );
    assert!(
        err.starts_with(&format!(
            "error: {clusters}: document 1: Secret c1: data.server is not valid base64"
        )),
        "{err}"
    );
}

#[test]
fn missing_spec_file() {
    let out = prism(&["generate", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: does/not/exist.yaml: cannot read: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn glob_matching_nothing_is_a_warning_with_zero_applications() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    write(&repo, "apps/api/k.yaml", "a");
    let file = write(
        tmp.path(),
        "appset.yaml",
        &appset(
            "argoproj.io/v1alpha1",
            "  - git: {repoURL: https://git.example.com/a.git, revision: HEAD, directories: [{path: 'services/*'}]}\n",
            "'{{path.basename}}'",
        ),
    );
    let out = prism(&[
        "generate",
        &file,
        "--repo",
        &format!("https://git.example.com/a.git={}", repo.display()),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "warning: {file}: ApplicationSet bad: spec.generators[0].git: no directories in https://git.example.com/a.git \
             at revision \"HEAD\" match services/*; this generator yields no Applications"
        )
    );
}

/// Devices, FIFOs and oversized files are refused before they are read: no blocking,
/// no reading until memory runs out (issue 12).
#[test]
fn devices_fifos_and_huge_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo.yaml");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.display().to_string();
    let spec = write(
        tmp.path(),
        "appset.yaml",
        &appset(
            "argoproj.io/v1alpha1",
            "  - list: {elements: [{a: b}]}\n",
            "x",
        ),
    );
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["generate", "/dev/zero"],
            "error: /dev/zero: cannot read: is not a regular file".into(),
        ),
        (
            vec!["validate", "/dev/zero"],
            "error: /dev/zero: cannot read: is not a regular file".into(),
        ),
        (
            vec!["lint", fifo.as_str()],
            format!("error: {fifo}: cannot read: is not a regular file"),
        ),
        (
            vec!["generate", spec.as_str(), "--clusters", "/dev/zero"],
            "error: /dev/zero: cannot read clusters file: is not a regular file".into(),
        ),
        (
            vec!["generate", spec.as_str(), "--clusters", fifo.as_str()],
            format!("error: {fifo}: cannot read clusters file: is not a regular file"),
        ),
        (
            vec!["generate", spec.as_str(), "--max-file-bytes", "100"],
            format!("error: {spec}: cannot read: "),
        ),
        (
            vec!["plugin", "inspect", "/dev/zero"],
            "error: cannot read /dev/zero: is not a regular file".into(),
        ),
    ];
    for (args, want) in cases {
        let out = prism(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&want),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(out.stdout.is_empty());
    }
    let out = prism(&["generate", spec.as_str(), "--max-file-bytes", "100"]);
    assert!(stderr(&out).contains("bytes is over the limit of 100 bytes in one file (an admin can raise it with --max-file-bytes)"), "{}", stderr(&out));
}

/// A spec that goes over a render limit fails with the limit, its value and the flag,
/// and the admin's flag raises it.
#[test]
fn render_limits_name_their_flag_and_can_be_raised() {
    let spec = appset(
        "argoproj.io/v1alpha1",
        "  - list: {elements: [{a: b}, {a: c}, {a: d}]}\n",
        "'{{a}}'",
    );
    let (_, err) = fails(&spec, &["--max-parameter-sets", "2"]);
    assert!(
        err.ends_with("over the limit of 2 parameter sets in one ApplicationSet (an admin can raise it with --max-parameter-sets)"),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "appset.yaml", &spec);
    let out = prism(&[
        "generate",
        &file,
        "-o",
        "names",
        "--max-parameter-sets",
        "3",
    ]);
    assert_eq!(stdout(&out), "b\nc\nd\n", "{}", stderr(&out));
    // The YAML limits apply to the spec file itself.
    let out = prism(&["generate", &file, "--max-yaml-bytes", "100"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "over the limit of 100 bytes in one YAML document (an admin can raise it with --max-yaml-bytes)"
        ),
        "{}",
        stderr(&out)
    );
}

/// A spec ending in 100,000 unclosed flow mappings fails fast in every command.
#[test]
fn deeply_nested_yaml_fails_fast() {
    let text = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {{name: x}}\nspec: {}",
        "{a: ".repeat(100_000)
    );
    for cmd in ["generate", "validate", "lint"] {
        let tmp = tempfile::tempdir().unwrap();
        let file = write(tmp.path(), "appset.yaml", &text);
        let start = std::time::Instant::now();
        let out = prism(&[cmd, &file]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("nesting depth of one YAML document"),
            "{}",
            stderr(&out)
        );
        assert!(start.elapsed().as_secs() < 10);
    }
}
