//! Plugin host benchmark: warm call of a trivial plugin, cold start with a populated
//! compile cache, and a cached result. `cargo bench --bench plugins`.
//!
//! Builds the plugins from `plugins/` first (as the tests do). "Warm" is one call on
//! a loaded plugin: a fresh `Store`, instantiation from the reused `InstancePre`,
//! the call, and the response parsed, with the result cache bypassed. "Cold" is what
//! a new process pays: a new wasmtime `Engine` and linkers, the compiled code read
//! from the on-disk cache, and the first call.

#[path = "../tests/common/plugins.rs"]
mod plugins;

use prism::plugin::config::PluginDefinitions;
use prism::plugin::runtime::CompileSource;
use prism::plugin::PluginHost;
use prism_engine::PluginCall;
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let built = plugins::built();
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("compiled");
    let mut text = String::from("plugins:\n");
    for (name, path) in [("trivial", &built.hostile), ("tiers", &built.tenant_tiers)] {
        text.push_str(&format!(
            "- name: {name}\n  path: {}\n  sha256: {}\n",
            path.display(),
            plugins::sha256(path)
        ));
    }
    let file = dir.path().join("plugins.yaml");
    std::fs::write(&file, text).expect("write plugins file");
    let defs = PluginDefinitions::load(&file).expect("plugins file");

    let trivial = json!({"apiVersion": "prism.dev/plugin/v1", "applicationSetName": "bench",
        "input": {"parameters": {"mode": "ok"}}, "parameters": {}});
    let tiers = json!({"apiVersion": "prism.dev/plugin/v1", "applicationSetName": "bench",
        "input": {"parameters": {"tenants": [{"name": "a", "tier": "free"}, {"name": "b", "tier": "premium"}]}},
        "parameters": {}});

    let host = PluginHost::new(defs.clone(), Some(cache.clone())).expect("host");
    let started = Instant::now();
    host.load("trivial").expect("load");
    host.load("tiers").expect("load");
    println!(
        "first compile of both plugins (empty cache): {:?}",
        started.elapsed()
    );

    for (label, name, request) in [
        ("component, warm call", "trivial", &trivial),
        ("command module, warm call", "tiers", &tiers),
    ] {
        let times = sample(2000, || {
            host.run_raw(name, request, &[], None).expect("call");
        });
        report(label, &times);
    }

    let call = PluginCall {
        name: "trivial",
        path: "spec.generators[0].plugin",
        request: &trivial,
        repositories: &[],
    };
    host.generate(&call, None).expect("call");
    let times = sample(20_000, || {
        host.generate(&call, None).expect("call");
    });
    report("component, cached result", &times);

    let times = sample(30, || {
        let fresh = PluginHost::new(defs.clone(), Some(cache.clone())).expect("host");
        let loaded = fresh.load("trivial").expect("load");
        assert_eq!(loaded.source, CompileSource::Cache, "must not recompile");
        fresh.run_raw("trivial", &trivial, &[], None).expect("call");
    });
    report("component, cold start from compile cache", &times);
    let times = sample(30, || {
        let fresh = PluginHost::new(defs.clone(), Some(cache.clone())).expect("host");
        fresh.run_raw("tiers", &tiers, &[], None).expect("call");
    });
    report("command module, cold start from compile cache", &times);
}

fn sample(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n.min(50) {
        f();
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn report(label: &str, times: &[Duration]) {
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "{label}: median {:?}, p90 {:?}, min {:?} ({} runs)",
        at(0.5),
        at(0.9),
        times[0],
        times.len()
    );
}
