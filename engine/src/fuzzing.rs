//! Entry points for the fuzz targets in `fuzz/` and their regression tests.
//!
//! Each takes arbitrary text and drives one reader of untrusted input through the
//! engine; errors are fine, a panic, a hang or an abort is a finding. The limits are
//! smaller than the defaults so that a fuzzer runs many inputs a second; the code
//! paths are the same. Crashing inputs are kept in `fuzz/regressions/<target>/` and
//! replayed by `engine/tests/fuzz_regressions.rs` in the normal test suite.

use crate::limits::{Budget, Limits};
use crate::params::ParamSet;
use crate::spec::TemplateEngine;
use crate::template::Renderer;
use serde_json::{json, Value};

/// The limits fuzzing runs under.
pub fn limits() -> Limits {
    Limits {
        steps: 200_000,
        field_bytes: 64 << 10,
        application_bytes: 256 << 10,
        count: 10_000,
        parameter_sets: 10_000,
        ..Limits::default()
    }
}

fn data() -> Value {
    json!({
        "name": "api", "env": "prod", "n": 3, "f": 1.5, "t": true, "nil": null,
        "list": ["a", "b", 3], "m": {"k": "v", "n": 2, "nested": {"x": [1, {"y": "z"}]}},
        "path": {"path": "apps/api", "basename": "api", "segments": ["apps", "api"]},
        "metadata": {"labels": {"env": "prod"}, "annotations": {}},
    })
}

fn params() -> ParamSet {
    match data() {
        Value::Object(m) => m,
        _ => ParamSet::new(),
    }
}

/// Parses `text` as a Go template and, if it parses, runs it in both missingkey modes.
pub fn gotemplate(text: &str) {
    let limits = limits();
    if let Ok(t) = crate::gotemplate::GoTemplate::parse(text, &limits) {
        let data = crate::gotemplate::V::from_json(&data());
        for missing in [false, true] {
            let _ = t.execute(&data, missing, &Budget::new(limits));
        }
    }
}

fn render_with(engine: TemplateEngine, text: &str) {
    if let Ok(r) = Renderer::with_limits(&engine, &limits()) {
        let _ = r.render_str(text, &params());
        let flat = crate::params::flat_view(&params())
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<ParamSet>();
        let _ = r.render_value(&json!({ "k": text, text: [text] }), &flat);
    }
}

/// Renders `text` with Argo's default (fasttemplate) engine.
pub fn fasttemplate(text: &str) {
    render_with(TemplateEngine::Fast, text);
}

/// Compiles and renders `text` as a handlebars template.
pub fn handlebars(text: &str) {
    render_with(TemplateEngine::Handlebars, text);
}

/// Reads `text` as a YAML stream of ApplicationSets, checks each and renders it
/// against empty sources (list, matrix and merge generators need none).
pub fn spec(text: &str) {
    let limits = limits();
    let Ok(docs) = crate::limits::parse_yaml_stream(text, &limits) else {
        return;
    };
    for doc in docs {
        if let Ok(appset) = crate::spec::ApplicationSet::from_value(&doc, "argocd") {
            let _ = crate::render::check(&appset);
            let options = crate::render::RenderOptions {
                limits,
                ..Default::default()
            };
            let _ = crate::render::render(
                &appset,
                &crate::sources::memory::MemorySources::new(),
                &options,
            );
        }
    }
}

/// The first line is a pattern, the rest a path; matched in every dialect.
pub fn glob(text: &str) {
    let (pattern, path) = text.split_once('\n').unwrap_or((text, ""));
    for dialect in [
        crate::glob::Dialect::PathMatch,
        crate::glob::Dialect::GitPathspec,
        crate::glob::Dialect::Doublestar,
    ] {
        if let Ok(g) = crate::glob::Glob::new(pattern, dialect) {
            let _ = g.matches(path);
        }
    }
}

/// Reads `text` as a file of Argo CD cluster Secrets.
pub fn clusters(text: &str) {
    let _ = crate::cluster::Cluster::parse_secrets(text, &limits());
}
