//! WebAssembly plugins end to end: the example and hostile plugins are built from
//! `plugins/` and run by the real host, through the library and the `prism` binary.

mod common;

use common::plugins::{built, sha256, shared_cache};
use common::{prism, stderr, stdout, write, TestRepo};
use prism::plugin::config::PluginDefinitions;
use prism::plugin::runtime::CompileSource;
use prism::plugin::PluginHost;
use prism_engine::sources::memory::MemorySources;
use prism_engine::{PluginCall, Sources};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A plugins file defining `name` for `wasm` with extra YAML fields.
fn plugins_file(dir: &Path, entries: &[(&str, &Path, &str)]) -> String {
    let mut text = String::from("plugins:\n");
    for (name, wasm, extra) in entries {
        text.push_str(&format!(
            "- name: {name}\n  path: {}\n  sha256: {}\n",
            wasm.display(),
            sha256(wasm)
        ));
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(&format!("  {}\n", line.trim()));
        }
    }
    write(dir, "plugins.yaml", &text)
}

fn host(entries: &[(&str, &Path, &str)]) -> PluginHost {
    let dir = tempfile::tempdir().unwrap();
    let file = plugins_file(dir.path(), entries);
    let defs = PluginDefinitions::load(Path::new(&file)).unwrap();
    PluginHost::new(defs, Some(shared_cache()))
        .unwrap()
        .with_now(1_767_225_600)
}

fn call<'a>(name: &'a str, request: &'a Value, repos: &'a [String]) -> PluginCall<'a> {
    PluginCall {
        name,
        path: "spec.generators[0].plugin",
        request,
        repositories: repos,
    }
}

fn hostile_request(params: Value) -> Value {
    json!({"apiVersion": "prism.dev/plugin/v1", "applicationSetName": "t",
           "input": {"parameters": params}, "parameters": {}})
}

/// Runs the hostile plugin in `mode` on `host`.
fn run_hostile(
    host: &PluginHost,
    params: Value,
) -> Result<Vec<serde_json::Map<String, Value>>, String> {
    let request = hostile_request(params);
    host.generate(&call("hostile", &request, &[]), None)
}

#[test]
fn hostile_plugins_fail_cleanly_and_the_host_serves_the_next_call() {
    let b = built();
    let host = host(&[("hostile", &b.hostile, "timeoutMs: 700\nmemoryMiB: 32")]);
    host.load("hostile").unwrap();
    let ok = |host: &PluginHost| {
        let sets = run_hostile(host, json!({"mode": "ok", "n": "1"})).unwrap();
        assert_eq!(sets[0]["n"], "1");
        assert_eq!(sets[0]["now"], "2026-01-01T00:00:00Z");
    };

    // An infinite loop is stopped by the epoch deadline, within timeout + 1 s.
    let started = Instant::now();
    let err = run_hostile(&host, json!({"mode": "loop"})).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(700 + 1000),
        "{:?}",
        started.elapsed()
    );
    assert!(
        err.starts_with("timed out after 700 ms (timeoutMs)"),
        "{err}"
    );
    ok(&host);

    let err = run_hostile(&host, json!({"mode": "grow"})).unwrap_err();
    assert!(
        err.starts_with("went over its memory limit of 32 MiB (memoryMiB)"),
        "{err}"
    );
    ok(&host);

    let err = run_hostile(&host, json!({"mode": "panic"})).unwrap_err();
    assert!(
        err.contains("the hostile plugin panicked on purpose"),
        "{err}"
    );
    assert!(err.contains("unreachable"), "{err}");
    ok(&host);

    let err = run_hostile(&host, json!({"mode": "fail"})).unwrap_err();
    assert_eq!(
        err,
        "the plugin reported an error: input.parameters.mode: fail asked for"
    );

    let err = run_hostile(&host, json!({"mode": "not-json"})).unwrap_err();
    assert!(err.starts_with("the response is not JSON"), "{err}");
    assert!(err.contains("\"this is not json\""), "{err}");

    let err = run_hostile(&host, json!({"mode": "wrong-shape"})).unwrap_err();
    assert_eq!(
        err,
        "output.parameters must be a list of objects, found a string"
    );

    // Capabilities that were not granted are denied, and the plugin sees the denial.
    let err =
        run_hostile(&host, json!({"mode": "http", "url": "http://127.0.0.1:9/"})).unwrap_err();
    assert!(
        err.contains("denied: plugin hostile may not reach 127.0.0.1:9; allowedHosts is []"),
        "{err}"
    );
    let err = run_hostile(
        &host,
        json!({"mode": "read", "repoURL": "https://g/r", "path": "a"}),
    )
    .unwrap_err();
    assert!(
        err.contains("denied: plugin hostile has no repository access"),
        "{err}"
    );

    // A flood of log lines is cut, not fatal.
    assert_eq!(
        run_hostile(&host, json!({"mode": "log-flood"}))
            .unwrap()
            .len(),
        0
    );
    ok(&host);
}

#[test]
fn hostile_command_modules_are_contained_too() {
    let b = built();
    let host = host(&[(
        "cmd",
        &b.hostile_command,
        "timeoutMs: 500\nmaxOutputBytes: 100000",
    )]);
    let run = |mode: &str| {
        let request = hostile_request(json!({ "mode": mode }));
        host.generate(&call("cmd", &request, &[]), None)
    };
    host.load("cmd").unwrap();
    let started = Instant::now();
    let err = run("loop").unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500 + 1000));
    assert!(err.starts_with("timed out after 500 ms"), "{err}");
    assert_eq!(
        run("exit").unwrap_err(),
        "the plugin exited with status 3: hostile-command: exiting with status 3 on purpose"
    );
    let err = run("flood").unwrap_err();
    assert!(err.contains("over maxOutputBytes (100000)"), "{err}");
    // Nothing of the host is visible: no args, environment or files; the clock is `now`.
    let seen = run("env").unwrap();
    assert_eq!(
        Value::Object(seen[0].clone()),
        json!({"args": "0", "vars": "0", "root": "false", "etc": "false", "clock": "1767225600"})
    );
    assert_eq!(run("ok").unwrap().len(), 1);
}

#[test]
fn output_size_and_count_are_capped() {
    let b = built();
    let host = host(&[(
        "hostile",
        &b.hostile,
        "maxParameterSets: 5\nmaxOutputBytes: 1048576",
    )]);
    let err = run_hostile(&host, json!({"mode": "big-output"})).unwrap_err();
    assert_eq!(
        err,
        "the response is 8388644 bytes, over maxOutputBytes (1048576)"
    );
    let err = run_hostile(&host, json!({"mode": "many"})).unwrap_err();
    assert_eq!(err, "20 parameter sets, over maxParameterSets (5)");
}

#[test]
fn repository_reads_stay_inside_named_repositories() {
    let b = built();
    let host = host(&[("hostile", &b.hostile, "repoAccess: true")]);
    let sources: Arc<dyn Sources + Send + Sync> = Arc::new(MemorySources::new().with_repo(
        "https://git.example/team/config.git",
        prism_engine::sources::memory::MemoryRepository::new([
            ("apps/a.yaml", "a: 1"),
            ("apps/b/c.yaml", "c: 1"),
            ("README.md", "hi"),
        ]),
    ));
    let named = vec!["https://git.example/team/config.git".to_string()];
    let run = |params: Value| {
        let request = hostile_request(params);
        host.generate(&call("hostile", &request, &named), Some(sources.clone()))
    };
    let sets = run(json!({"mode": "read", "repoURL": "https://git.example/team/config.git", "path": "apps/a.yaml"})).unwrap();
    assert_eq!(sets[0]["content"], "a: 1");
    // Argo's URL equivalence: case, `.git` and a trailing slash do not matter.
    let sets = run(
        json!({"mode": "list", "repoURL": "https://GIT.example/team/config/", "glob": "apps/**/*.yaml"}),
    );
    assert!(sets.is_err(), "the memory source knows only the exact URL");
    let sets = run(json!({"mode": "list", "repoURL": "https://git.example/team/config.git", "glob": "apps/**/*.yaml"})).unwrap();
    let files: Vec<&str> = sets.iter().map(|s| s["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["apps/a.yaml", "apps/b/c.yaml"]);

    let err = run(json!({"mode": "read", "repoURL": "https://git.example/team/config.git", "path": "../../etc/passwd"})).unwrap_err();
    assert!(
        err.contains(
            "denied: path \"../../etc/passwd\" is not a relative path inside the repository"
        ),
        "{err}"
    );
    let err = run(json!({"mode": "read", "repoURL": "https://git.example/team/config.git", "path": "/etc/passwd"})).unwrap_err();
    assert!(err.contains("denied"), "{err}");
    let err = run(
        json!({"mode": "read", "repoURL": "https://git.example/other/secrets.git", "path": "a"}),
    )
    .unwrap_err();
    assert!(
        err.contains("denied: https://git.example/other/secrets.git is not a repository this ApplicationSet names"),
        "{err}"
    );
}

#[test]
fn a_wrong_sha256_refuses_to_load() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "plugins.yaml",
        &format!(
            "plugins:\n- name: hostile\n  path: {}\n  sha256: {}\n",
            b.hostile.display(),
            "0".repeat(64)
        ),
    );
    let host = PluginHost::new(PluginDefinitions::load(Path::new(&file)).unwrap(), None).unwrap();
    let err = host.load("hostile").err().unwrap();
    assert!(
        err.starts_with(&format!(
            "refusing to load {}: its sha256 is {}",
            b.hostile.display(),
            sha256(&b.hostile)
        )),
        "{err}"
    );
    assert!(err.contains("update sha256"), "{err}");
    let err = host.load("nope").err().unwrap();
    assert!(err.contains("no plugin named \"nope\""), "{err}");
}

#[test]
fn compiled_code_is_cached_on_disk_for_the_next_process() {
    let b = built();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = plugins_file(dir.path(), &[("tiers", &b.tenant_tiers, "")]);
    let defs = PluginDefinitions::load(Path::new(&file)).unwrap();
    // Each host has its own wasmtime Engine, as a new process would.
    let first = PluginHost::new(defs.clone(), Some(cache.path().to_path_buf())).unwrap();
    assert_eq!(first.load("tiers").unwrap().source, CompileSource::Compiled);
    let second = PluginHost::new(defs, Some(cache.path().to_path_buf())).unwrap();
    assert_eq!(second.load("tiers").unwrap().source, CompileSource::Cache);
    let request = json!({"apiVersion": "prism.dev/plugin/v1", "applicationSetName": "t",
        "input": {"parameters": {"tenants": [{"name": "a", "tier": "free"}]}}, "parameters": {}});
    let sets = second
        .generate(&call("tiers", &request, &[]), None)
        .unwrap();
    assert_eq!(sets[0]["namespace"], "tenant-a");
    // A corrupt cache entry is recompiled, not trusted. (Replaced, not overwritten:
    // the second host still maps the old file.)
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let path = entry.unwrap().path();
        let tmp = path.with_extension("junk");
        std::fs::write(&tmp, b"garbage").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    let third = PluginHost::new(
        second.definitions().clone(),
        Some(cache.path().to_path_buf()),
    )
    .unwrap();
    assert_eq!(third.load("tiers").unwrap().source, CompileSource::Compiled);
}

#[test]
fn results_are_reused_until_what_the_plugin_read_changes() {
    let b = built();
    let repo = TestRepo::new();
    let c1 = repo.commit(&[("README.md", Some("x"))], "init");
    repo.branch("feature/login", c1);
    let url = format!("file://{}", repo.path().display());
    let host = host(&[("branches", &b.preview_branches, "repoAccess: true")]);
    let sources: Arc<dyn Sources + Send + Sync> = Arc::new(prism::sources::LocalSources::new(
        vec![],
        tempfile::tempdir().unwrap().path().to_path_buf(),
        vec![],
    ));
    let request = json!({"apiVersion": "prism.dev/plugin/v1", "applicationSetName": "t",
        "input": {"parameters": {"repoURL": url, "pattern": "feature/*"}}, "parameters": {}});
    let named = vec![url.clone()];
    let run = || {
        host.generate(&call("branches", &request, &named), Some(sources.clone()))
            .unwrap()
    };
    assert_eq!(run().len(), 1);
    assert_eq!(run().len(), 1);
    assert_eq!(
        host.executions(),
        1,
        "the second call is answered from the cache"
    );
    let c2 = repo.commit(&[("README.md", Some("y"))], "more");
    repo.branch("feature/Big_Thing", c2);
    let sets = run();
    assert_eq!(
        host.executions(),
        2,
        "a new branch invalidates the cached result"
    );
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0]["branch"], "feature/Big_Thing");
    assert_eq!(sets[0]["branchSlug"], "feature-big-thing");
    assert_eq!(sets[0]["sha"], c2.to_string());
    assert_eq!(sets[1]["branch"], "feature/login");
}

const BRANCHES_APPSET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: previews, namespace: argocd}
spec:
  goTemplate: true
  generators:
  - plugin:
      configMapRef: {name: preview-branches}
      input:
        parameters: {repoURL: "https://git.example/shop/web.git", pattern: "feature/*"}
      values: {host: "{{.branchSlug}}.preview.example.com"}
  template:
    metadata: {name: 'web-{{.branchSlug}}'}
    spec:
      project: default
      source:
        repoURL: https://git.example/shop/web.git
        targetRevision: '{{.sha}}'
        path: deploy
        helm:
          parameters: [{name: ingress.host, value: '{{.values.host}}'}]
      destination: {server: https://kubernetes.default.svc, namespace: 'preview-{{.branchSlug}}'}
"#;

#[test]
fn generate_renders_preview_environments_per_branch() {
    let b = built();
    let repo = TestRepo::new();
    let c = repo.commit(&[("deploy/Chart.yaml", Some("name: web"))], "init");
    repo.branch("feature/cart", c);
    repo.branch("feature/checkout-v2", c);
    repo.branch("bugfix/x", c);
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "appset.yaml", BRANCHES_APPSET);
    let plugins = plugins_file(
        dir.path(),
        &[("preview-branches", &b.preview_branches, "repoAccess: true")],
    );
    let cache = shared_cache();
    let mapping = format!("https://git.example/shop/web.git={}", repo.path().display());
    let args = [
        "generate",
        spec.as_str(),
        "--plugins",
        plugins.as_str(),
        "--repo",
        mapping.as_str(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "-o",
        "names",
    ];
    let out = prism(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "web-feature-cart\nweb-feature-checkout-v2\n");

    let mut json_args = args.to_vec();
    json_args.pop();
    json_args.push("json");
    let out = prism(&json_args);
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let app = &list["items"][0];
    assert_eq!(app["spec"]["source"]["targetRevision"], c.to_string());
    assert_eq!(
        app["spec"]["source"]["helm"]["parameters"][0]["value"],
        "feature-cart.preview.example.com"
    );
    assert_eq!(
        app["spec"]["destination"]["namespace"],
        "preview-feature-cart"
    );

    // Without repoAccess the same spec fails: exit 1, nothing on stdout.
    let plugins = plugins_file(dir.path(), &[("preview-branches", &b.preview_branches, "")]);
    let mut denied = args.to_vec();
    denied[3] = plugins.as_str();
    let out = prism(&denied);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("spec.generators[0].plugin: plugin \"preview-branches\": the plugin reported an error: denied: plugin preview-branches has no repository access"), "{}", stderr(&out));
}

/// `prism generate SPEC --plugins PLUGINS` with the shared compile cache and `extra` flags.
fn generate_with(spec: &str, plugins: &str, extra: &[&str]) -> std::process::Output {
    let cache = shared_cache();
    let mut args = vec![
        "generate",
        spec,
        "--plugins",
        plugins,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    prism(&args)
}

/// Serves `body` as JSON to every request on 127.0.0.1; returns the port.
fn serve_json(body: &'static str) -> u16 {
    common::http::serve(move |_| (200, vec![], body.to_string()))
}

const CATALOG: &str = r#"{"services": [
  {"name": "payments", "team": "checkout", "repo": "https://git.example/checkout/payments.git", "port": 9090, "tier": "critical"},
  {"name": "cart", "team": "checkout", "repo": "https://git.example/checkout/cart.git"},
  {"name": "search", "team": "discovery", "repo": "https://git.example/discovery/search.git"}
]}"#;

#[test]
fn generate_maps_an_http_service_catalog_into_a_matrix() {
    let b = built();
    let port = serve_json(CATALOG);
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "appset.yaml",
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: checkout, namespace: argocd}}
spec:
  generators:
  - matrix:
      generators:
      - list: {{elements: [{{env: test}}, {{env: prod}}]}}
      - plugin:
          configMapRef: {{name: service-catalog}}
          input: {{parameters: {{url: "http://127.0.0.1:{port}/catalog.json", team: checkout}}}}
  template:
    metadata: {{name: '{{{{service}}}}-{{{{env}}}}'}}
    spec:
      project: checkout
      source: {{repoURL: '{{{{repoURL}}}}', targetRevision: HEAD, path: '{{{{path}}}}/{{{{env}}}}'}}
      destination: {{server: https://kubernetes.default.svc, namespace: '{{{{service}}}}-{{{{env}}}}'}}
      info: [{{name: port, value: '{{{{port}}}}'}}, {{name: tier, value: '{{{{tier}}}}'}}]
"#
        ),
    );
    let allowed = format!("allowedHosts: ['127.0.0.1:{port}']");
    let plugins = plugins_file(
        dir.path(),
        &[("service-catalog", &b.service_catalog, &allowed)],
    );
    let out = generate_with(&spec, &plugins, &["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cart-prod", "cart-test", "payments-prod", "payments-test"]
    );
    let payments = &list["items"][2]["spec"];
    assert_eq!(
        payments["source"]["repoURL"],
        "https://git.example/checkout/payments.git"
    );
    assert_eq!(payments["source"]["path"], "services/payments/prod");
    assert_eq!(
        payments["info"],
        json!([{"name": "port", "value": "9090"}, {"name": "tier", "value": "critical"}])
    );

    // The same definition without the grant: denied, exit 1, nothing on stdout.
    let plugins = plugins_file(
        dir.path(),
        &[(
            "service-catalog",
            &b.service_catalog,
            "allowedHosts: ['catalog.internal']",
        )],
    );
    let out = generate_with(&spec, &plugins, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains(&format!("denied: plugin service-catalog may not reach 127.0.0.1:{port}; allowedHosts is [catalog.internal]")), "{}", stderr(&out));
}

#[test]
fn a_command_module_plugin_gets_earlier_matrix_parameters() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "appset.yaml",
        r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {name: tenants, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{region: eu, domain: eu.example.com}, {region: us, domain: us.example.com}]}
      - plugin:
          configMapRef: {name: tenant-tiers}
          input:
            parameters:
              domain: '{{domain}}'
              tenants: [{name: acme, tier: premium}, {name: zeta, tier: free}]
  template:
    metadata: {name: '{{tenant}}-{{region}}'}
    spec:
      project: tenants
      source: {repoURL: https://git.example/platform/tenant.git, targetRevision: HEAD, path: chart}
      destination: {server: https://kubernetes.default.svc, namespace: '{{namespace}}'}
      info: [{name: replicas, value: '{{replicas}}'}, {name: host, value: '{{hostname}}'}, {name: tier, value: '{{generator.input.parameters.tenants.0.tier}}'}]
"#,
    );
    let plugins = plugins_file(dir.path(), &[("tenant-tiers", &b.tenant_tiers, "")]);
    let out = generate_with(&spec, &plugins, &["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme-eu", "acme-us", "zeta-eu", "zeta-us"]);
    assert_eq!(
        items[1]["spec"]["info"],
        json!([{"name": "replicas", "value": "3"}, {"name": "host", "value": "acme.us.example.com"}, {"name": "tier", "value": "premium"}])
    );
    assert_eq!(items[3]["spec"]["destination"]["namespace"], "tenant-zeta");

    // Same input, byte-identical output.
    let again = generate_with(&spec, &plugins, &["-o", "json"]);
    assert_eq!(stdout(&again), stdout(&out));

    // A plugin error stops the run before anything is written.
    let bad = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("tier: free", "tier: platinum");
    let bad = write(dir.path(), "bad.yaml", &bad);
    let out = generate_with(&bad, &plugins, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("spec.generators[0].matrix.generators[1].plugin: plugin \"tenant-tiers\": the plugin exited with status 1: tenant zeta: unknown tier \"platinum\"; use free, standard or premium"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn generate_without_plugins_file_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "appset.yaml", BRANCHES_APPSET);
    let out = prism(&["generate", &spec]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("plugin \"preview-branches\" is unknown; pass --plugins FILE"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn plugin_inspect_and_run_on_the_command_line() {
    let b = built();
    let out = prism(&["plugin", "inspect", b.preview_branches.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("abi:     component (prism:generator world)"),
        "{text}"
    );
    assert!(
        text.contains("world:   prism:generator/generator@0.1.0"),
        "{text}"
    );
    assert!(
        text.contains(&format!("sha256:  {}", sha256(&b.preview_branches))),
        "{text}"
    );
    assert!(text.contains("  prism:generator/host@0.1.0\n"), "{text}");

    let out = prism(&[
        "plugin",
        "inspect",
        "--json",
        b.tenant_tiers.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["abi"],
        "WASI command module (wasip1: stdin → stdout)"
    );
    assert!(report["imports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.as_str().unwrap().starts_with("wasi_snapshot_preview1::")));

    let cache = shared_cache();
    let out = prism(&[
        "plugin",
        "run",
        b.tenant_tiers.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--input",
        r#"{"parameters": {"tenants": [{"name": "a", "tier": "standard"}]}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let response: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(response["output"]["parameters"][0]["maxReplicas"], "4");

    let out = prism(&[
        "plugin",
        "run",
        b.hostile.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--timeout-ms",
        "300",
        "--input",
        r#"{"parameters": {"mode": "loop"}}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("plugin hostile: timed out after 300 ms"),
        "{}",
        stderr(&out)
    );

    let out = prism(&[
        "plugin",
        "run",
        b.hostile.to_str().unwrap(),
        "--input",
        "[1]",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--input must be a JSON object"));

    let dir = tempfile::tempdir().unwrap();
    let junk = write(dir.path(), "junk.wasm", "not wasm");
    let out = prism(&["plugin", "inspect", &junk]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a WebAssembly binary"),
        "{}",
        stderr(&out)
    );
}

/// FNV-1a, 32 bits: the Go plugin's wave assignment, computed independently here.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A plugin written in Go (`plugins/examples/go-command`, `GOOS=wasip1`), as the README
/// promises any WASI language can: run by `prism generate` in a matrix, with the earlier
/// child's parameters passed through, and its error message reaching the user.
#[test]
fn a_go_plugin_runs_as_a_wasi_command_module() {
    let wasm = common::plugins::go_command();
    let out = prism(&["plugin", "inspect", "--json", wasm.to_str().unwrap()]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["abi"],
        "WASI command module (wasip1: stdin → stdout)"
    );

    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "appset.yaml",
        r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {name: waves, namespace: argocd}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{region: eu}]}
      - plugin:
          configMapRef: {name: go-waves}
          input:
            parameters: {services: [web, api, db, cart], waves: 3}
  template:
    metadata:
      name: '{{service}}-{{region}}'
      annotations: {argocd.argoproj.io/sync-wave: '{{syncWave}}'}
    spec:
      project: default
      source: {repoURL: https://git.example/services.git, targetRevision: HEAD, path: '{{service}}'}
      destination: {server: https://kubernetes.default.svc, namespace: 'wave-{{wave}}'}
"#,
    );
    let plugins = plugins_file(dir.path(), &[("go-waves", wasm, "")]);
    let out = generate_with(&spec, &plugins, &["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-eu", "cart-eu", "db-eu", "web-eu"]);
    for app in items {
        let service = app["spec"]["source"]["path"].as_str().unwrap();
        let wave = fnv1a(service) % 3;
        assert_eq!(
            app["spec"]["destination"]["namespace"],
            format!("wave-{wave}"),
            "{service}"
        );
        assert_eq!(
            app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
            (wave * 10).to_string()
        );
    }

    // The Go program's own error message, on stderr with exit status 1, reaches the user.
    let bad = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("waves: 3", "waves: 0");
    let bad = write(dir.path(), "bad.yaml", &bad);
    let out = generate_with(&bad, &plugins, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("plugin \"go-waves\": the plugin exited with status 1: input.parameters.waves: 0 is not between 1 and 100"),
        "{}",
        stderr(&out)
    );
}

/// Every call gets a fresh instance. The host keeps a slot's pages resident between
/// calls and zeroes the ones a call dirtied, so nothing one call (one tenant's set)
/// leaves in memory, a static or the heap, reaches the next.
#[test]
fn no_state_survives_from_one_call_to_the_next() {
    let b = built();
    let host = host(&[("hostile", &b.hostile, "timeoutMs: 2000")]);
    for i in 0..5 {
        // Distinct requests, so the result cache answers none of them.
        let sets = run_hostile(&host, json!({"mode": "remember", "n": i.to_string()})).unwrap();
        assert_eq!(sets[0]["calls"], "1", "call {i}");
    }
}
