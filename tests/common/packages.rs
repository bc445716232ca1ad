//! Debian packages the tests need (a registry, an SSH server), installed on demand.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Installs the Debian `package` that provides `binary` when it is missing (as root,
/// or with `sudo -n`); one installation at a time.
pub fn ensure_package(binary: &str, package: &str) {
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = APT.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new(binary).exists() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "apt-get"]);
        c
    };
    let status = cmd
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("running apt-get");
    assert!(
        status.success() && Path::new(binary).exists(),
        "could not install {package}"
    );
}
