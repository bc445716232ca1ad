//! Builds the plugins in `plugins/` from source, once per test process, for the
//! WebAssembly targets (installing the targets with rustup when missing).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the built plugins.
pub struct Built {
    /// `plugins/tests/hostile` (component).
    pub hostile: PathBuf,
    /// `plugins/examples/preview-branches` (component, repoAccess).
    pub preview_branches: PathBuf,
    /// `plugins/examples/service-catalog` (component, HTTP).
    pub service_catalog: PathBuf,
    /// `plugins/examples/tenant-tiers` (WASI command module).
    pub tenant_tiers: PathBuf,
    /// `plugins/tests/hostile-command` (WASI command module).
    pub hostile_command: PathBuf,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds (or finds up to date) every plugin; panics with cargo's output on failure.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        ensure_targets(&["wasm32-wasip1", "wasm32-wasip2"]);
        let target_dir = root().join("target").join("plugins");
        build(
            &target_dir,
            "wasm32-wasip2",
            &["hostile", "preview-branches", "service-catalog"],
        );
        build(
            &target_dir,
            "wasm32-wasip1",
            &["tenant-tiers", "hostile-command"],
        );
        let out = |target: &str, file: &str| target_dir.join(target).join("release").join(file);
        Built {
            hostile: out("wasm32-wasip2", "hostile.wasm"),
            preview_branches: out("wasm32-wasip2", "preview_branches.wasm"),
            service_catalog: out("wasm32-wasip2", "service_catalog.wasm"),
            tenant_tiers: out("wasm32-wasip1", "tenant-tiers.wasm"),
            hostile_command: out("wasm32-wasip1", "hostile-command.wasm"),
        }
    })
}

fn ensure_targets(targets: &[&str]) {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        let status = Command::new("rustup")
            .args(["target", "add"])
            .args(&missing)
            .status()
            .expect("running rustup");
        assert!(status.success(), "rustup target add {missing:?} failed");
    }
}

fn build(target_dir: &Path, target: &str, packages: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--quiet",
        "--target",
        target,
    ])
    .arg("--manifest-path")
    .arg(root().join("plugins").join("Cargo.toml"))
    .arg("--target-dir")
    .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer `cargo test` may set flags meant for the host build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("running cargo for the plugins");
    assert!(
        out.status.success(),
        "building plugins for {target} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `plugins/examples/go-command`, a Go WASI command module, built with the Go toolchain
/// (`GOOS=wasip1 GOARCH=wasm`, standard library only) into `target/plugins/go/`.
pub fn go_command() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = root().join("target/plugins/go/go-command.wasm");
        let status = Command::new("go")
            .args(["build", "-trimpath", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(root().join("plugins/examples/go-command"))
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .env("CGO_ENABLED", "0")
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "the Go plugin test builds plugins/examples/go-command with Go, and `go` \
                     could not run ({e}): install Go 1.26 or newer (https://go.dev/doc/install)"
                )
            });
        assert!(
            status.success(),
            "go build of plugins/examples/go-command failed"
        );
        out
    })
}

/// Hex SHA-256 of a file.
pub fn sha256(path: &Path) -> String {
    prism::digest::sha256_hex(&std::fs::read(path).unwrap())
}

/// A shared compile cache for tests that do not test the cache itself: each plugin
/// is compiled once for the whole suite (debug-built cranelift is slow).
pub fn shared_cache() -> PathBuf {
    root()
        .join("target")
        .join("plugins")
        .join("compiled-for-tests")
}
