//! Hostile templates and specs (issue 12): each one that crashed, hung or exhausted
//! Prism is an error here, with its text asserted.

use prism_engine::gotemplate::table::{Arity, FUNCTIONS};
use prism_engine::gotemplate::{GoTemplate, V};
use prism_engine::limits::{Budget, Limits};
use prism_engine::sources::memory::MemorySources;
use prism_engine::template::Renderer;
use prism_engine::{render, ApplicationSet, ParamSet, RenderOptions, TemplateEngine};
use serde_json::{json, Value};

fn go(t: &str) -> Result<String, String> {
    go_with(t, Limits::default())
}

fn go_with(t: &str, limits: Limits) -> Result<String, String> {
    let tmpl = GoTemplate::parse(t, &limits)?;
    let data = V::from_json(&json!({"name": "api", "labels": {"env": "prod"}}));
    tmpl.execute(&data, false, &Budget::new(limits))
}

fn err(t: &str) -> String {
    match go(t) {
        Ok(out) => panic!("{t:.80}: expected an error, got {out:.80}"),
        Err(e) => e,
    }
}

const STEPS: &str =
    "over the limit of 50000000 template execution steps in one ApplicationSet render \
     (an admin can raise it with --max-template-steps)";
const DEPTH: &str =
    "over the limit of 100 template nesting depth (an admin can raise it with --max-template-depth)";

/// Zero arguments where the function needs some, and one too many where its arity is
/// fixed: every function of the table, from the table. Go reports these when executing;
/// Prism when parsing, with Go's words and the template's line:col.
#[test]
fn every_function_checks_its_argument_count() {
    let mut checked = 0;
    for f in FUNCTIONS {
        let (min, fixed) = match f.arity {
            Arity::Fixed(n) => (n, true),
            Arity::AtLeast(n) => (n, false),
        };
        if min > 0 {
            let e = err(&format!("x{{{{ {} }}}}", f.name));
            let want = if fixed {
                format!("1:2: wrong number of args for {}: want {min} got 0", f.name)
            } else {
                format!(
                    "1:2: wrong number of args for {}: want at least {min} got 0",
                    f.name
                )
            };
            assert_eq!(e, want);
            checked += 1;
        }
        if fixed {
            let args = vec!["\"a\""; usize::from(min) + 1].join(" ");
            let e = err(&format!("{{{{ {} {args} }}}}", f.name));
            assert_eq!(
                e,
                format!(
                    "1:1: wrong number of args for {}: want {min} got {}",
                    f.name,
                    min + 1
                )
            );
            checked += 1;
        }
        // Piped values count as the last argument.
        if fixed && min == 0 {
            let e = err(&format!("{{{{ \"a\" | {} }}}}", f.name));
            assert!(e.contains("want 0 got 1"), "{e}");
        }
    }
    assert!(checked > 250, "{checked}");
    // Also inside templatePatch-like multi-line text and as a bare operand.
    assert_eq!(
        err("a\n {{ printf \"%s\" lower }}"),
        "2:2: wrong number of args for lower: want 1 got 0"
    );
}

/// Every supported function of the table is implemented (none answers "not defined"
/// when called with its arity).
#[test]
fn every_supported_function_is_implemented() {
    for f in FUNCTIONS.iter().filter(|f| f.supported) {
        let n = match f.arity {
            Arity::Fixed(n) | Arity::AtLeast(n) => usize::from(n),
        };
        let args = vec!["\"1\""; n].join(" ");
        if let Err(e) = go(&format!("{{{{ {} {args} }}}}", f.name)) {
            assert!(
                !e.contains(&format!("function {:?}", f.name)),
                "{}: {e}",
                f.name
            );
        }
    }
}

#[test]
fn integer_arithmetic_is_checked() {
    assert_eq!(
        err("{{ div -9223372036854775808 -1 }}"),
        "1:1: executing at <div -9223372036854775808 -1>: error calling div: integer overflow"
    );
    assert_eq!(
        err("{{ mod -9223372036854775808 -1 }}"),
        "1:1: executing at <mod -9223372036854775808 -1>: error calling mod: integer overflow"
    );
    assert!(err("{{ add 9223372036854775807 1 }}").ends_with("error calling add: integer overflow"));
    assert!(err("{{ mul 9223372036854775807 2 }}").ends_with("error calling mul: integer overflow"));
    assert!(err("{{ add1 9223372036854775807 }}").ends_with("error calling add1: integer overflow"));
    assert!(
        err("{{ sub -9223372036854775807 2 }}").ends_with("error calling sub: integer overflow")
    );
    assert_eq!(go("{{ div 7 2 }} {{ mod -7 2 }}").unwrap(), "3 -1");
}

/// Go's fmt refuses widths and precisions over a million; nothing else is allocated.
#[test]
fn printf_widths_and_precisions_as_go() {
    assert_eq!(
        go("{{ printf \"%.999999999f\" 1.5 }}").unwrap(),
        "%!(BADPREC)1.500000"
    );
    assert_eq!(
        go("{{ printf \"%2147483648d\" 1 }}").unwrap(),
        "%!(BADWIDTH)1"
    );
    assert_eq!(
        go("{{ printf \"%999999999d\" 1 }}").unwrap(),
        "%!(BADWIDTH)1"
    );
    // Precisions Rust's formatter cannot take are still exact.
    let long = go("{{ printf \"%.70000f\" 1.5 }}").unwrap();
    assert_eq!(long.len(), 70002);
    assert!(long.starts_with("1.5000") && long.ends_with('0'));
    let e = go("{{ printf \"%.2e\" 1234.5 }}").unwrap();
    assert_eq!(e, "1.23e+03");
    // A width within Go's range but past one field is an error, not 2 GB.
    assert!(
        err("{{ printf \"%999999d\" 1 }}{{ printf \"%999999d\" 1 }}")
            .contains("over the limit of 1048576 bytes in one templated field")
    );
}

#[test]
fn counts_are_bounded() {
    let count = "over the limit of 1000000 count or length argument (an admin can raise it with --max-template-count)";
    assert_eq!(
        err("{{ until 9223372036854775807 }}"),
        format!("1:1: executing at <until 9223372036854775807>: error calling until: 9223372036854775807 is {count}")
    );
    assert!(err("{{ until 2000000000 }}").ends_with(count));
    assert!(err("{{ repeat 2000000000 \"a\" }}").ends_with(count));
    assert!(err("{{ indent 2000000000 \"a\" }}").ends_with(count));
    assert!(err("{{ nindent 2000000000 \"a\" }}").ends_with(count));
    assert!(err("{{ randAlpha 2000000000 }}").ends_with(count));
    // Within the count, the result must still fit one field.
    assert!(err("{{ repeat 900000 \"ab\" }}").ends_with(
        "error calling repeat: the result would be over the limit of 1048576 bytes in one templated field (an admin can raise it with --max-field-bytes)"
    ));
    // seq and untilStep stop with an error, never a silent truncation.
    assert!(err("{{ untilStep 0 2000000 1 }}").ends_with(&format!(
        "error calling untilStep: the list would be {count}"
    )));
    let ten = Limits {
        count: 10,
        ..Limits::default()
    };
    assert!(go_with("{{ seq 11 }}", ten)
        .unwrap_err()
        .ends_with("error calling seq: the sequence would be over the limit of 10 count or length argument (an admin can raise it with --max-template-count)"));
    assert_eq!(
        go_with("{{ seq 10 }}", ten).unwrap(),
        "1 2 3 4 5 6 7 8 9 10"
    );
    // An empty pattern makes replace quadratic: bounded before it runs.
    assert!(
        err("{{ replace \"\" (repeat 2000 \"x\") (repeat 2000 \"y\") }}")
            .contains("error calling replace: the result would be over the limit of 1048576 bytes")
    );
}

#[test]
fn loops_are_paid_for_in_steps() {
    assert!(err("{{ range 10000000000 }}a{{ end }}").ends_with(
        "over the limit of 1048576 bytes in one templated field (an admin can raise it with --max-field-bytes)"
    ));
    let e = err("{{ range 2000000000 }}{{ end }}");
    assert!(e.ends_with(STEPS), "{e}");
    let small = Limits {
        steps: 1000,
        ..Limits::default()
    };
    let e = go_with(
        "{{ range 10 }}{{ range 10 }}{{ range 10 }}{{ end }}{{ end }}{{ end }}",
        small,
    )
    .unwrap_err();
    assert!(
        e.contains("over the limit of 1000 template execution steps"),
        "{e}"
    );
}

#[test]
fn nesting_is_bounded_by_depth_not_by_the_stack() {
    for (open, close) in [
        ("{{ if true }}", "{{ end }}"),
        ("{{ with 1 }}", "{{ end }}"),
        ("{{ range 1 }}", "{{ end }}"),
    ] {
        let t = format!("{}x{}", open.repeat(10_000), close.repeat(10_000));
        let e = err(&t);
        assert!(e.ends_with(DEPTH), "{e:.200}");
    }
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(err(&parens).ends_with(DEPTH));
    // Recursive templates stop at the depth limit.
    let e = err("{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}");
    assert!(e.ends_with(DEPTH), "{e}");
    // Values built deep in a template, then printed, compared or serialized.
    for use_ in [
        "toJson $x",
        "toYaml $x",
        "printf \"%v\" $x",
        "deepEqual $x $x",
    ] {
        let t = format!(
            "{{{{ $x := list }}}}{{{{ range until 50000 }}}}{{{{ $x = list $x }}}}{{{{ end }}}}{{{{ {use_} }}}}"
        );
        let e = err(&t);
        assert!(e.contains("a value nested deeper than 200 levels"), "{e}");
    }
    // Doubling by sharing is bounded by the expanded size, not by memory.
    let t = "{{ $x := list \"aaaaaaaaaaaaaaaa\" }}{{ range until 64 }}{{ $x = list $x $x }}{{ end }}{{ toJson $x }}";
    assert!(err(t).contains("a value built by the template: over the limit of 4194304 templated bytes in one Application"));
    let t = "{{ $s := \"ab\" }}{{ range until 64 }}{{ $s = print $s $s }}{{ end }}{{ $s }}";
    assert!(err(t).contains("over the limit of 1048576 bytes in one templated field"));
}

/// Time of the best of three runs of `f`.
fn best_of_three(f: impl Fn()) -> std::time::Duration {
    (0..3)
        .map(|_| {
            let start = std::time::Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Parsing is linear: four times the actions take about four times as long, not
/// sixteen (the parsers were quadratic: 200,000 `{{ .name }}` ran past 20 s).
#[test]
fn many_actions_are_linear() {
    let go_time = |n: usize| {
        let t = "{{ .name }}".repeat(n);
        best_of_three(|| assert_eq!(go(&t).unwrap().len(), 3 * n))
    };
    let (small, big) = (go_time(25_000), go_time(100_000));
    assert!(big < small * 10, "{small:?} then {big:?}");

    let params: ParamSet = json!({"name": "API"}).as_object().unwrap().clone();
    let hb_time = |n: usize| {
        let t = "{{lower name}}".repeat(n);
        best_of_three(|| {
            let renderer = Renderer::new(&TemplateEngine::Handlebars).unwrap();
            assert_eq!(renderer.render_str(&t, &params).unwrap().len(), 3 * n);
        })
    };
    let (small, big) = (hb_time(5_000), hb_time(20_000));
    assert!(big < small * 10, "{small:?} then {big:?}");
}

/// Go's parser and executor refuse these; so does Prism.
#[test]
fn go_parse_and_exec_rules() {
    let cases = [
        ("{{ nil }}", "1:1: nil is not a command"),
        ("{{}}", "1:1: missing value for command"),
        ("{{ $x := }}", "1:1: missing value for command"),
        ("{{ break }}", "1:1: {{break}} outside {{range}}"),
        ("{{ continue }}", "1:1: {{continue}} outside {{range}}"),
        (
            "{{ range 1 }}{{ else }}{{ break }}{{ end }}",
            "1:24: {{break}} outside {{range}}",
        ),
        (
            "{{ if true }}{{ define \"x\" }}{{ end }}{{ end }}",
            "1:14: unexpected <define> in command",
        ),
        (
            "{{ range $i, $v := 3 }}{{ end }}",
            "1:1: executing at <$i, $v := 3>: can't use 3 to iterate over more than one variable",
        ),
        (
            "{{ slice \"abc\" 0 1 2 }}",
            "1:1: executing at <slice \"abc\" 0 1 2>: error calling slice: list should be type of slice or array but string",
        ),
        (
            "{{ \"a\" | \"b\" }}",
            "1:1: non executable command in pipeline stage 2",
        ),
    ];
    for (t, want) in cases {
        assert_eq!(err(t), want, "{t}");
    }
    assert_eq!(
        go("{{ range $i := 3 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}").unwrap(),
        "02"
    );
}

#[test]
fn invalid_regexes_are_errors_in_every_function() {
    for f in [
        "regexMatch \"(\" \"x\"",
        "regexFind \"(\" \"x\"",
        "regexFindAll \"(\" \"x\" -1",
        "regexReplaceAll \"(\" \"x\" \"y\"",
        "regexReplaceAllLiteral \"(\" \"x\" \"y\"",
        "regexSplit \"(\" \"x\" -1",
        "mustRegexMatch \"(\" \"x\"",
    ] {
        let e = err(&format!("{{{{ {f} }}}}"));
        assert!(e.contains("regexp: Compile(\"(\"): unclosed group"), "{e}");
    }
    let big = format!("{{{{ regexMatch \"{}\" \"x\" }}}}", "(a{1000}){1000}");
    assert!(err(&big).contains("compiled size of a regular expression"));
}

fn appset(yaml: &str) -> Result<Vec<Value>, String> {
    let doc: Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    let appset = ApplicationSet::from_value(&doc, "argocd").map_err(|e| e.to_string())?;
    let rendered = render(&appset, &MemorySources::new(), &RenderOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(rendered
        .applications
        .into_iter()
        .map(|a| a.manifest)
        .collect())
}

const TEMPLATE: &str = "  template:
    metadata: {name: 'app-{{name}}'}
    spec: {project: default, destination: {server: 'https://kubernetes.default.svc', namespace: x}}
";

/// A matrix of 20 lists of 2 elements would be a million sets: refused before it is built.
#[test]
fn matrix_products_are_bounded_before_they_are_built() {
    let children: String = (0..20)
        .map(|i| format!("      - list: {{elements: [{{a{i}: x}}, {{a{i}: y}}]}}\n"))
        .collect();
    let spec = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {{name: m}}\nspec:\n  generators:\n  - matrix:\n      generators:\n{children}{TEMPLATE}"
    );
    let e = appset(&spec).unwrap_err();
    assert!(
        e.starts_with("spec.generators[0].matrix: this generator would make 100002 parameter sets or more: over the limit of 100000 parameter sets in one ApplicationSet (an admin can raise it with --max-parameter-sets)"),
        "{e}"
    );
}

#[test]
fn bad_label_keys_and_null_generators_are_refused() {
    let spec = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {{name: m}}\nspec:\n  generators:\n  - list: {{elements: [{{name: a}}]}}\n{}",
        TEMPLATE.replace("name: 'app-{{name}}'}", "name: 'app-{{name}}', labels: {'bad key!!': x}}")
    );
    let e = appset(&spec).unwrap_err();
    assert!(
        e.contains("label key \"bad key!!\" is invalid: name part must consist of alphanumeric characters, '-', '_' or '.'"),
        "{e}"
    );
    let spec = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {{name: m}}\nspec:\n  generators:\n  - list: null\n{TEMPLATE}"
    );
    assert_eq!(
        appset(&spec).unwrap_err(),
        "spec.generators[0].list: is null, so Argo CD sees no generator here; write its fields, e.g. `list: {...}`"
    );
}

#[test]
fn handlebars_partials_and_deep_blocks_are_refused() {
    let r = Renderer::new(&TemplateEngine::Handlebars).unwrap();
    let p: ParamSet = json!({"name": "a"}).as_object().unwrap().clone();
    let e = r
        .render_str("{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}", &p)
        .unwrap_err();
    assert!(
        e.ends_with(
            "decorators and inline partials ({{#*inline}}) are not supported in Prism templates"
        ),
        "{e}"
    );
    let e = r.render_str("{{> other}}", &p).unwrap_err();
    assert!(
        e.ends_with("partials ({{> name}}) are not supported in Prism templates"),
        "{e}"
    );
    let deep = format!(
        "{}x{}",
        "{{#if name}}".repeat(10_000),
        "{{/if}}".repeat(10_000)
    );
    let e = r.render_str(&deep, &p).unwrap_err();
    assert!(e.ends_with(&format!("blocks {DEPTH}")), "{e:.100}");
    let big: ParamSet = json!({"name": "x".repeat(2000)})
        .as_object()
        .unwrap()
        .clone();
    let e = r
        .render_str(
            &format!("{{{{replace name \"\" \"{}\"}}}}", "y".repeat(2000)),
            &big,
        )
        .unwrap_err();
    assert!(
        e.contains(
            "replace: the result would be over the limit of 1048576 bytes in one templated field"
        ),
        "{e:.300}"
    );
    let parens = format!(
        "{{{{lower {}name{}}}}}",
        "(lower ".repeat(10_000),
        ")".repeat(10_000)
    );
    let e = r.render_str(&parens, &p).unwrap_err();
    assert!(
        e.ends_with(&format!("parentheses and brackets {DEPTH}")),
        "{e:.100}"
    );
}

/// A handlebars helper applying `f` to its first parameter, as Prism's own helpers do.
fn case_helper(f: fn(&str) -> String) -> Box<dyn handlebars::HelperDef + Send + Sync> {
    Box::new(
        move |h: &handlebars::Helper,
              _: &handlebars::Handlebars,
              _: &handlebars::Context,
              _: &mut handlebars::RenderContext,
              out: &mut dyn handlebars::Output|
              -> handlebars::HelperResult {
            out.write(&f(h
                .param(0)
                .and_then(|p| p.value().as_str())
                .unwrap_or_default()))?;
            Ok(())
        },
    )
}

/// Handlebars templates are compiled in pieces; they render exactly as the whole would,
/// standalone block lines and whitespace control included.
#[test]
fn handlebars_pieces_render_as_the_whole() {
    let params: ParamSet = json!({"name": "API", "t": true, "list": ["a", "b"]})
        .as_object()
        .unwrap()
        .clone();
    let unit = "x{{name}}y {{lower name}}\n  {{#if t}}\n  yes {{name}}\n  {{/if}}\n{{#each list}} {{this}}{{/each}} {{~name~}}  z\n{{! comment }}\n{{upper name}}{{name}}";
    let whole_template = unit.repeat(200);
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("lower", case_helper(str::to_lowercase));
    hb.register_helper("upper", case_helper(str::to_uppercase));
    let want = hb.render_template(&whole_template, &params).unwrap();
    let pieces =
        prism_engine::template::compile_handlebars(&whole_template, &Limits::default()).unwrap();
    assert!(pieces.len() > 10, "{}", pieces.len());
    let renderer = Renderer::new(&TemplateEngine::Handlebars).unwrap();
    assert_eq!(renderer.render_str(&whole_template, &params).unwrap(), want);
}

/// Functions pay for what they walk: a loop over a big string runs out of steps.
#[test]
fn calls_pay_for_their_arguments() {
    let t =
        "{{ $s := repeat 1000000 \"x\" }}{{ range until 1000000 }}{{ $u := upper $s }}{{ end }}";
    assert!(err(t).ends_with(STEPS));
}
