//! `prism lint`: every rule with a failing and a passing case; positions; exit codes.

mod common;
use common::*;

const BASE: &str = "apiVersion: API
kind: ApplicationSet
metadata:
  name: lint
spec:
EXTRA  generators:
  - list:
      elements:
      - cluster: a
        url: https://a
  template:
    metadata:
      name: 'NAME'
      labels:
        team: LABEL
    spec:
      project: PROJECT
      destination:
        server: '{{url}}'
        namespace: default
";

struct Case<'a> {
    api: &'a str,
    extra: &'a str,
    name: &'a str,
    label: &'a str,
    project: &'a str,
    generators: Option<&'a str>,
}

impl Default for Case<'_> {
    fn default() -> Self {
        Case {
            api: "argoproj.io/v1alpha1",
            extra: "",
            name: "{{cluster}}-app",
            label: "payments",
            project: "default",
            generators: None,
        }
    }
}

fn run(c: Case, strict: bool) -> (Option<i32>, String, String) {
    let mut text = BASE
        .replace("API", c.api)
        .replace("EXTRA", c.extra)
        .replace("NAME", c.name)
        .replace("LABEL", c.label)
        .replace("PROJECT", c.project);
    if let Some(g) = c.generators {
        let start = text.find("  generators:\n").unwrap();
        let end = text.find("  template:\n").unwrap();
        text.replace_range(start..end, g);
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "appset.yaml", &text);
    let mut args = vec!["lint", file.as_str()];
    if strict {
        args.push("--strict");
    }
    let out = prism(&args);
    (
        out.status.code(),
        stdout(&out).replace(&file, "F"),
        stderr(&out),
    )
}

fn rules(out: &str) -> Vec<&str> {
    out.lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect()
}

#[test]
fn clean_spec_has_no_findings() {
    let (code, out, _) = run(Case::default(), true);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out, "");
}

#[test]
fn templated_project_with_position() {
    let (code, out, err) = run(
        Case {
            project: "'{{cluster}}'",
            ..Default::default()
        },
        true,
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        out,
        "F:17:7 templated-project spec.template.spec.project: spec.project is templated: whoever controls the generator's source chooses the AppProject, and so its permissions (Argo CD's Security.md); keep that source admin-only or use a fixed project\n"
    );
    assert_eq!(err.trim_end(), "error: 1 lint findings (--strict)");
    // Without --strict a finding is a warning: exit 0.
    let (code, _, _) = run(
        Case {
            project: "'{{cluster}}'",
            ..Default::default()
        },
        false,
    );
    assert_eq!(code, Some(0));
}

#[test]
fn unknown_parameter() {
    let (_, out, _) = run(
        Case {
            name: "{{clustr}}-app",
            ..Default::default()
        },
        false,
    );
    assert_eq!(
        out,
        "F:13:7 unknown-parameter spec.template.metadata.name: {{clustr}}: spec.generators[0] emits no parameter \"clustr\"\n"
    );
}

#[test]
fn label_that_can_exceed_63() {
    let (_, out, _) = run(
        Case {
            label: "'{{cluster}}-{{url}}-the-payments-team-owns-this-application-and-more-text'",
            ..Default::default()
        },
        false,
    );
    assert_eq!(rules(&out), vec!["name-too-long"]);
    assert!(out.starts_with("F:15:9 name-too-long spec.template.metadata.labels.team: label team can be 65 characters long"), "{out}");
}

#[test]
fn gotemplate_without_missingkey() {
    let go = Case {
        extra: "  goTemplate: true\n",
        name: "{{.cluster}}-app",
        ..Default::default()
    };
    let (_, out, _) = run(go, false);
    assert!(
        out.starts_with("F:6:3 gotemplate-missingkey spec.goTemplate:"),
        "{out}"
    );
    let ok = Case {
        extra: "  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n",
        name: "{{.cluster}}-app",
        ..Default::default()
    };
    let (_, out, _) = run(ok, false);
    assert_eq!(out, "");
}

/// `empty-matrix-child` fires on evidence only: a literal empty list; with `--clusters`,
/// a selector none of them matches; with `--repo`, a pattern no path matches. A child
/// that merely could be empty (a selector, a git pattern, a templated one) is quiet.
#[test]
fn matrix_child_that_is_empty_on_evidence() {
    let lint = |generators: &str, extra: &[&str]| {
        let text = BASE
            .replace("API", "argoproj.io/v1alpha1")
            .replace("EXTRA", "")
            .replace("NAME", "{{cluster}}-x")
            .replace("LABEL", "payments")
            .replace("PROJECT", "default");
        let start = text.find("  generators:\n").unwrap();
        let end = text.find("  template:\n").unwrap();
        let mut text = text;
        text.replace_range(start..end, generators);
        let tmp = tempfile::tempdir().unwrap();
        let file = write(tmp.path(), "appset.yaml", &text);
        let mut args = vec!["lint", file.as_str()];
        args.extend_from_slice(extra);
        let out = prism(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).replace(&file, "F")
    };
    let matrix = |second: &str| {
        format!("  generators:\n  - matrix:\n      generators:\n      - list:\n          elements:\n          - cluster: a\n            url: https://a\n{second}")
    };
    let selector = "      - clusters:\n          selector:\n            matchLabels: {env: prod}\n";
    let clusters = ["--clusters", "examples/multi-env/clusters.yaml"];
    // Could be empty, no evidence: quiet.
    assert_eq!(lint(&matrix(selector), &[]), "");
    // examples/multi-env/clusters.yaml has env=prod clusters: quiet.
    assert_eq!(lint(&matrix(selector), &clusters), "");
    let nowhere = selector.replace("prod", "staging");
    assert_eq!(
        lint(&matrix(&nowhere), &clusters),
        "F:13:9 empty-matrix-child spec.generators[0].matrix.generators[1]: this matrix child yields no parameter sets (expanded against the given clusters and repositories, it yields nothing), which empties the whole matrix\n"
    );
    // Templated from the first child: cannot be judged alone.
    let templated = selector.replace("prod", "'{{cluster}}'");
    assert_eq!(lint(&matrix(&templated), &clusters), "");
    // A literal empty list, always.
    let empty = "      - list:\n          elements: []\n";
    assert!(lint(&matrix(empty), &[]).contains("(its list has no elements)"));
    // A values pattern no path of the given repository matches.
    let repo = [
        "--repo",
        "https://github.com/example-org/services.git=examples/multi-env/repo",
    ];
    let values = |pattern: &str| {
        format!("      - git:\n          repoURL: https://github.com/example-org/services.git\n          revision: HEAD\n          directories:\n          - path: '{pattern}'\n")
    };
    assert_eq!(lint(&matrix(&values("services/*")), &repo), "");
    assert!(lint(&matrix(&values("charts/*")), &repo).contains("empty-matrix-child"));
}

#[test]
fn sync_policy_without_guard() {
    let (_, out, _) = run(
        Case {
            extra: "  syncPolicy:\n    applicationsSync: create-delete\n",
            ..Default::default()
        },
        false,
    );
    assert!(
        out.starts_with("F:7:5 policy-without-guard spec.syncPolicy.applicationsSync:"),
        "{out}"
    );
    let guarded = Case {
        api: "prism.dev/v1alpha1",
        extra: "  syncPolicy:\n    applicationsSync: create-delete\n  deletionGuard: {maxPercent: 50}\n",
        ..Default::default()
    };
    let (_, out, _) = run(guarded, false);
    assert_eq!(out, "");
}

#[test]
fn duplicate_generators() {
    let dup = "  generators:\n  - list:\n      elements:\n      - cluster: a\n        url: https://a\n  - list:\n      elements:\n      - cluster: a\n        url: https://a\n";
    let (_, out, _) = run(
        Case {
            generators: Some(dup),
            ..Default::default()
        },
        false,
    );
    assert_eq!(rules(&out), vec!["duplicate-generator"]);
    assert!(out.starts_with("F:11:5 duplicate-generator spec.generators[1]: identical to spec.generators[0]; remove one"), "{out}");
}

#[test]
fn name_that_can_exceed_253() {
    let long = format!("{{{{cluster}}}}-{}", "x".repeat(253));
    let (_, out, _) = run(
        Case {
            name: &long,
            ..Default::default()
        },
        false,
    );
    assert_eq!(
        out,
        "F:13:7 name-too-long spec.template.metadata.name: the name can be 255 characters long; Kubernetes allows 253: use shorter parameters or trunc\n"
    );
}

/// Argo CD keeps the template's project whatever a templatePatch says
/// (applicationset/controllers/template/patch.go): a patch that sets it is a mistake.
#[test]
fn template_patch_setting_the_project() {
    let (_, out, _) = run(
        Case {
            extra: "  templatePatch: |\n    spec:\n      project: '{{cluster}}'\n",
            ..Default::default()
        },
        false,
    );
    assert_eq!(rules(&out), vec!["template-patch-project"], "{out}");
    assert!(
        out.contains("Argo CD keeps the template's project"),
        "{out}"
    );
    let (_, out, _) = run(
        Case {
            extra: "  templatePatch: |\n    spec:\n      source: {path: '{{cluster}}'}\n",
            ..Default::default()
        },
        false,
    );
    assert_eq!(out, "");
}

/// The function table tells lint which sprig functions Prism does not implement.
#[test]
fn unsupported_function_from_the_table() {
    let (_, out, _) = run(
        Case {
            extra: "  goTemplate: true\n  goTemplateOptions: [\"missingkey=error\"]\n",
            name: "{{ .cluster }}-{{ sha512sum .cluster | trunc 6 }}",
            ..Default::default()
        },
        false,
    );
    assert!(
        out.contains("unsupported-function spec.template.metadata.name: sha512sum is a sprig function Prism does not implement"),
        "{out}"
    );
}
