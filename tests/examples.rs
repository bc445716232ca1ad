//! Every directory of `examples/` run as its README says (with the local registry,
//! repository or plugin build a README points at replaced by the test's own), and
//! `examples/README.md` lists them all.

mod common;

use common::plugins::{built, sha256};
use common::registry::Registry;
use common::*;
use serde_json::Value;

/// `prism generate ARGS -o json`, which must succeed, parsed.
fn generate_json(args: &[&str]) -> Value {
    let mut all = vec!["generate"];
    all.extend_from_slice(args);
    all.extend(["-o", "json"]);
    let out = prism(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_example_is_listed_with_its_command() {
    let index = std::fs::read_to_string("examples/README.md").unwrap();
    for entry in std::fs::read_dir("examples").unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let name = entry.file_name().into_string().unwrap();
            assert!(
                index.contains(&format!("`{name}/`")),
                "examples/README.md lacks {name}/"
            );
            assert!(
                entry.path().join("README.md").exists(),
                "{name}/ has no README"
            );
        }
    }
}

/// `fleet/`: 3 selected clusters × 2 components; per-cluster values; autosync patched in
/// on production clusters only.
#[test]
fn fleet() {
    let list = generate_json(&[
        "examples/fleet/applicationset.yaml",
        "--clusters",
        "examples/fleet/clusters.yaml",
    ]);
    assert_eq!(
        names(&list),
        [
            "ingress-shop-eu-prod",
            "ingress-shop-eu-staging",
            "ingress-shop-us-prod",
            "monitoring-shop-eu-prod",
            "monitoring-shop-eu-staging",
            "monitoring-shop-us-prod"
        ]
    );
    let by = |n: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["metadata"]["name"] == n)
            .unwrap()
            .clone()
    };
    let prod = by("ingress-shop-us-prod");
    assert_eq!(
        prod["spec"]["source"]["helm"]["valueFiles"][0],
        "values-us.yaml"
    );
    assert_eq!(prod["spec"]["syncPolicy"]["automated"]["prune"], true);
    let staging = by("ingress-shop-eu-staging");
    assert!(staging["spec"]["syncPolicy"].is_null(), "{staging}");
}

/// `controller/`: the sample set validates, and the overlay builds where kubectl exists.
#[test]
fn controller_overlay() {
    let out = prism(&["validate", "examples/controller/applicationset.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["kustomize", "examples/controller"])
        .output()
    else {
        eprintln!("kubectl is not installed: the overlay's sample set was validated only");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("image: registry.example.com/platform/prism:0.1.0"));
    assert!(text.contains("--enable-progressive-syncs"));
    assert!(text.contains("kind: ApplicationSet") && text.contains("maxPercent: 25"));
}

/// `plugin-tenants/`: the plugin built from `plugins/examples/tenant-tiers`, its
/// definition from `plugins.yaml` with the build's path and sha256.
#[test]
fn plugin_tenants() {
    let wasm = &built().tenant_tiers;
    let dir = tempfile::tempdir().unwrap();
    let defs = std::fs::read_to_string("examples/plugin-tenants/plugins.yaml")
        .unwrap()
        .replace("SHA256_OF_YOUR_BUILD", &sha256(wasm))
        .replace(
            "../../plugins/target/wasm32-wasip1/release/tenant-tiers.wasm",
            wasm.to_str().unwrap(),
        );
    let defs = write(dir.path(), "plugins.yaml", &defs);
    let list = generate_json(&[
        "examples/plugin-tenants/applicationset.yaml",
        "--plugins",
        &defs,
    ]);
    assert_eq!(
        names(&list),
        [
            "acme-eu",
            "acme-us",
            "globex-eu",
            "globex-us",
            "zeta-eu",
            "zeta-us"
        ]
    );
    let acme = &list["items"][1];
    assert_eq!(
        acme["spec"]["source"]["helm"]["parameters"][1]["value"],
        "acme.us.example.com"
    );
    assert!(std::fs::read_to_string("examples/plugin-tenants/run.sh")
        .unwrap()
        .contains("--target wasm32-wasip1"));
}

/// `images/` and `write-back/` against Debian's docker-registry on 127.0.0.1 (the
/// example's `localhost:5000` replaced by it) and a temporary bare repository.
#[test]
fn images_and_write_back() {
    let reg = Registry::start();
    for tag in ["1.3.0", "1.4.0", "1.4.2", "1.5.0", "1.6.0-rc1"] {
        reg.push("shop/api", Some(tag), "2026-01-01T00:00:00Z", "amd64");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap()
            .replace("http://localhost:5000", &reg.api_url())
            .replace("localhost:5000", &reg.host)
    };
    let registries = write(
        dir.path(),
        "registries.yaml",
        &local("examples/images/registries.yaml"),
    );
    let spec = write(
        dir.path(),
        "images.yaml",
        &local("examples/images/applicationset.yaml"),
    );
    let out = prism(&["generate", &spec, "--registries", &registries, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(names(&list), ["api-prod", "api-test"]);
    let tag =
        |i: usize| list["items"][i]["spec"]["source"]["helm"]["parameters"][0]["value"].clone();
    assert_eq!(tag(0), "1.4.2");
    assert_eq!(tag(1), "1.5.0", "the release candidate is ignored");
    let digest = list["items"][0]["spec"]["source"]["helm"]["parameters"][1]["value"].clone();
    assert!(digest.as_str().unwrap().starts_with("sha256:"));

    // write-back/: into a temporary bare repository.
    let seed = TestRepo::new();
    seed.commit(&[("README.md", Some("config\n"))], "init");
    let bare = dir.path().join("config.git");
    let cloned = std::process::Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(seed.path())
        .arg(&bare)
        .status()
        .unwrap();
    assert!(cloned.success());
    let spec = write(
        dir.path(),
        "write-back.yaml",
        &local("examples/write-back/applicationset.yaml").replace(
            "file:///tmp/prism-example-config.git",
            &format!("file://{}", bare.display()),
        ),
    );
    let out = prism(&[
        "generate",
        &spec,
        "--registries",
        &registries,
        "--write-back",
        "-o",
        "names",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "api-prod\napi-test\n");
    let file = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["show", "main:apps/.argocd-source-api-prod.yaml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&file.stdout);
    assert!(
        text.contains("name: image.tag") && text.contains("1.4.2"),
        "{text}"
    );
}

/// Every example lints clean under `--strict`: lint reports evidence, not shapes.
#[test]
fn every_example_lints_clean() {
    for entry in std::fs::read_dir("examples").unwrap() {
        let spec = entry.unwrap().path().join("applicationset.yaml");
        if spec.exists() {
            let out = prism(&["lint", "--strict", spec.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}{}",
                spec.display(),
                stdout(&out),
                stderr(&out)
            );
        }
    }
}
