//! Static checks of an ApplicationSet (`prism lint`): things Argo CD accepts today and
//! regrets later. Each finding has a stable rule id and the spec path it is about.

use crate::spec::ApplicationSet;
use serde_json::Value;

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable rule id, e.g. `templated-project`.
    pub rule: &'static str,
    /// Spec path it is about (`spec.template.spec.project`).
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// The rules, for documentation: (id, what it checks).
pub const RULES: &[(&str, &str)] = &[
    (
        "templated-project",
        "spec.template.spec.project is templated; Argo CD's API refuses that",
    ),
    (
        "unsupported-function",
        "a Go template calls a sprig function Prism does not implement (rendering would fail)",
    ),
    (
        "template-patch-project",
        "templatePatch sets spec.project, which Argo CD ignores (the project is its RBAC boundary)",
    ),
    (
        "unknown-parameter",
        "the template refers to a parameter no generator emits",
    ),
    (
        "name-too-long",
        "a rendered name can exceed 253 characters, or a label value 63",
    ),
    (
        "gotemplate-missingkey",
        "goTemplate without missingkey=error prints <no value> for typos",
    ),
    (
        "empty-matrix-child",
        "a matrix child that can yield no parameter sets empties the whole product",
    ),
    (
        "policy-without-guard",
        "applicationsSync sync/create-delete without a deletion guard",
    ),
    (
        "duplicate-generator",
        "two identical generators in one list",
    ),
];

use crate::generators::emits;

/// Parameter references in a template string: fasttemplate tags, or the first field of
/// `.a.b` / handlebars paths.
fn references(s: &str, go: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let tag = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        if go {
            for word in tag.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '|') {
                if let Some(field) = word.strip_prefix('.') {
                    if let Some(first) = field.split('.').next().filter(|f| !f.is_empty()) {
                        out.push(first.to_string());
                    }
                }
            }
        } else if !tag.is_empty() {
            out.push(tag.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

fn strings<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| strings(x, format!("{path}[{i}]"), out)),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| strings(x, format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// How a rule reports a finding: (rule, spec path, message).
type Find<'a> = dyn FnMut(&'static str, String, String) + 'a;

/// Lints a parsed spec.
pub fn lint(appset: &ApplicationSet) -> Vec<Finding> {
    lint_with(appset, None)
}

/// Lints a parsed spec; with `evidence` (the clusters and repositories a caller gave),
/// `empty-matrix-child` also checks the children it can expand.
pub fn lint_with(appset: &ApplicationSet, evidence: Option<&dyn crate::Sources>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut find = |rule: &'static str, path: String, message: String| {
        out.push(Finding {
            rule,
            path,
            message,
        })
    };
    project_rules(appset, &mut find);
    function_rules(appset, &mut find);
    missingkey_rule(appset, &mut find);
    parameter_rules(appset, &mut find);
    length_rules(appset, &mut find);
    matrix_rules(appset, evidence, &mut find);
    policy_rule(appset, &mut find);
    duplicate_rule(appset, &mut find);
    out
}

/// `templated-project` and `template-patch-project`.
fn project_rules(appset: &ApplicationSet, find: &mut Find) {
    let tmpl = &appset.spec.template;
    if let Some(p) = tmpl.pointer("/spec/project").and_then(Value::as_str) {
        if p.contains("{{") {
            find(
                "templated-project",
                "spec.template.spec.project".into(),
                "spec.project is templated: whoever controls the generator's source chooses the AppProject, and so its permissions (Argo CD's Security.md); keep that source admin-only or use a fixed project".into(),
            );
        }
    }

    if let Some(patch) = &appset.spec.template_patch {
        let sets_project = patch.lines().any(|l| {
            let t = l.trim_start();
            t.starts_with("project:") || t.contains("\"project\":") || t.contains("{project:")
        });
        if sets_project {
            find(
                "template-patch-project",
                "spec.templatePatch".into(),
                "templatePatch sets spec.project, but Argo CD keeps the template's project whatever the patch says \
                 (the project is its RBAC boundary); set the project in spec.template"
                    .into(),
            );
        }
    }
}

/// `unsupported-function`, from the Go template function table.
fn function_rules(appset: &ApplicationSet, find: &mut Find) {
    let go = matches!(appset.engine, crate::spec::TemplateEngine::Go { .. });
    let tmpl = &appset.spec.template;
    if go {
        let mut templated = Vec::new();
        strings(tmpl, "spec.template".into(), &mut templated);
        if let Some(p) = &appset.spec.template_patch {
            templated.push(("spec.templatePatch".into(), p.as_str()));
        }
        let limits = crate::limits::Limits::default();
        for (path, s) in templated.into_iter().filter(|(_, s)| s.contains("{{")) {
            let Ok(t) = crate::gotemplate::GoTemplate::parse(s, &limits) else {
                continue;
            };
            for name in t.functions() {
                if crate::gotemplate::table::lookup(&name).is_some_and(|f| !f.supported) {
                    find(
                        "unsupported-function",
                        path.clone(),
                        format!("{name} is a sprig function Prism does not implement: rendering fails with \"function {name:?} is not supported by prism\""),
                    );
                }
            }
        }
    }
}

/// `gotemplate-missingkey`.
fn missingkey_rule(appset: &ApplicationSet, find: &mut Find) {
    if let crate::spec::TemplateEngine::Go { options } = &appset.engine {
        if !options.iter().any(|o| o == "missingkey=error") {
            find(
                "gotemplate-missingkey",
                "spec.goTemplate".into(),
                "goTemplate without missingkey=error renders a misspelt parameter as <no value>; add goTemplateOptions: [\"missingkey=error\"]".into(),
            );
        }
    }
}

/// `unknown-parameter`: every generator must be able to emit what the template uses.
fn parameter_rules(appset: &ApplicationSet, find: &mut Find) {
    let go = matches!(appset.engine, crate::spec::TemplateEngine::Go { .. });
    let tmpl = &appset.spec.template;
    // Parameters: every generator must be able to emit what the template uses.
    {
        for (i, g) in appset.spec.generators.iter().enumerate() {
            let e = emits(g);
            let template = g
                .as_object()
                .and_then(|o| o.values().find_map(|b| b.get("template")))
                .unwrap_or(tmpl);
            let mut strs = Vec::new();
            strings(template, "spec.template".into(), &mut strs);
            for (path, s) in strs {
                for r in references(
                    s,
                    go || appset.engine == crate::spec::TemplateEngine::Handlebars,
                ) {
                    if !e.allows(&r) {
                        find(
                            "unknown-parameter",
                            path.clone(),
                            format!("{{{{{r}}}}}: spec.generators[{i}] emits no parameter {r:?}"),
                        );
                    }
                }
            }
        }
    }
}

/// `name-too-long`.
fn length_rules(appset: &ApplicationSet, find: &mut Find) {
    let go = matches!(appset.engine, crate::spec::TemplateEngine::Go { .. });
    let tmpl = &appset.spec.template;
    // Name and label lengths: fixed text plus the longest value each parameter can take:
    // known for list elements, otherwise assumed to be a DNS label (63), the usual bound of
    // cluster names and service directories. Unknown parameters are reported above.
    let longest = |key: &str| -> usize {
        let mut known: Option<usize> = None;
        for g in &appset.spec.generators {
            for el in g
                .pointer("/list/elements")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(v) = el.get(key).and_then(Value::as_str) {
                    known = Some(known.unwrap_or(0).max(v.len()));
                }
            }
            if g.get("list").is_none() {
                return 63;
            }
        }
        known.unwrap_or(0)
    };
    let can_exceed = |s: &str, limit: usize| -> Option<usize> {
        let max = literal_len(s) + references(s, go).iter().map(|r| longest(r)).sum::<usize>();
        (max > limit).then_some(max)
    };
    if let Some(name) = tmpl.pointer("/metadata/name").and_then(Value::as_str) {
        if let Some(max) = can_exceed(name, 253) {
            find(
                "name-too-long",
                "spec.template.metadata.name".into(),
                format!("the name can be {max} characters long; Kubernetes allows 253: use shorter parameters or trunc"),
            );
        }
    }
    for (k, v) in tmpl
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(max) = v.as_str().and_then(|s| can_exceed(s, 63)) {
            find(
                "name-too-long",
                format!("spec.template.metadata.labels.{k}"),
                format!("label {k} can be {max} characters long; label values allow 63: use an annotation or a shorter value"),
            );
        }
    }
}

/// `empty-matrix-child`: fires only on evidence that a matrix child yields nothing (an
/// empty product) — a literal `list` without elements; or, given clusters and
/// repositories, a child that is not templated from an earlier one and, expanded
/// against them, yields no parameter sets (a selector no cluster matches, a pattern no
/// path matches). A child that merely *could* be empty is not reported.
fn matrix_rules(appset: &ApplicationSet, evidence: Option<&dyn crate::Sources>, find: &mut Find) {
    let renderer = crate::template::Renderer::new(&appset.engine).ok();
    let options = crate::RenderOptions::default();
    let warnings = std::cell::RefCell::new(Vec::new());
    let ctx = match (evidence, &renderer) {
        (Some(sources), Some(renderer)) => Some(crate::generators::Context {
            sources,
            renderer,
            options: &options,
            warnings: &warnings,
            prism: appset.is_prism(),
            appset_name: &appset.name,
            repositories: &[],
            upstream: None,
        }),
        _ => None,
    };
    let empty = |c: &Value, path: &str| -> Option<&'static str> {
        let literal = c
            .pointer("/list/elements")
            .and_then(Value::as_array)
            .is_some_and(|a| a.is_empty())
            && c.pointer("/list/elementsYaml").is_none();
        if literal {
            return Some("its list has no elements");
        }
        let ctx = ctx.as_ref()?;
        if c.to_string().contains("{{") || c.get("matrix").is_some() || c.get("merge").is_some() {
            return None;
        }
        match crate::generators::expand_raw(c, path, ctx) {
            Ok(sets) if sets.is_empty() => {
                Some("expanded against the given clusters and repositories, it yields nothing")
            }
            _ => None,
        }
    };
    fn walk_matrix(
        g: &Value,
        path: &str,
        empty: &dyn Fn(&Value, &str) -> Option<&'static str>,
        find: &mut Find,
    ) {
        let Some(obj) = g.as_object() else { return };
        for (k, body) in obj {
            if k != "matrix" && k != "merge" {
                continue;
            }
            for (i, c) in body
                .get("generators")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let cpath = format!("{path}.{k}.generators[{i}]");
                if k == "matrix" {
                    if let Some(why) = empty(c, &cpath) {
                        find(
                            "empty-matrix-child",
                            cpath.clone(),
                            format!("this matrix child yields no parameter sets ({why}), which empties the whole matrix"),
                        );
                    }
                }
                walk_matrix(c, &cpath, empty, find);
            }
        }
    }
    for (i, g) in appset.spec.generators.iter().enumerate() {
        walk_matrix(g, &format!("spec.generators[{i}]"), &empty, find);
    }
}

/// `policy-without-guard`.
fn policy_rule(appset: &ApplicationSet, find: &mut Find) {
    let policy = appset
        .spec
        .sync_policy
        .as_ref()
        .and_then(|s| s.applications_sync);
    let guarded = appset.spec.deletion_guard.is_some();
    let deletes = policy.is_some_and(crate::spec::Policy::deletes);
    if deletes && !guarded {
        find(
            "policy-without-guard",
            "spec.syncPolicy.applicationsSync".into(),
            format!("applicationsSync {} deletes Applications when a generator's output shrinks; add spec.deletionGuard (prism.dev) or use create-update", policy.map(crate::spec::Policy::as_str).unwrap_or_default()),
        );
    }
}

/// `duplicate-generator`.
fn duplicate_rule(appset: &ApplicationSet, find: &mut Find) {
    fn dups(list: &[Value], path: &str, find: &mut dyn FnMut(&'static str, String, String)) {
        for (i, g) in list.iter().enumerate() {
            if let Some(j) = list[..i].iter().position(|h| h == g) {
                find(
                    "duplicate-generator",
                    format!("{path}[{i}]"),
                    format!("identical to {path}[{j}]; remove one"),
                );
            }
            for (k, body) in g.as_object().into_iter().flatten() {
                if let Some(children) = body
                    .get("generators")
                    .and_then(Value::as_array)
                    .filter(|_| k == "matrix" || k == "merge")
                {
                    dups(children, &format!("{path}[{i}].{k}.generators"), find);
                }
            }
        }
    }
    dups(&appset.spec.generators, "spec.generators", find);
}

fn literal_len(s: &str) -> usize {
    let mut n = 0;
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        n += rest[..start].len();
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => return n + rest.len(),
        }
    }
    n + rest.len()
}
