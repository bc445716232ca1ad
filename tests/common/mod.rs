//! Shared test helpers: real git repositories built with git2, and the real `prism` binary.
#![allow(dead_code)]

pub mod control_plane;
pub mod controller;
pub mod githttp;
pub mod http;
pub mod plugins;
pub mod registry;
pub mod sshd;

pub use registry::ensure_package;

use git2::{Repository, Signature};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A git repository in a temporary directory.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl TestRepo {
    /// A new non-bare repository with branch `main` checked out (no commits yet).
    pub fn new() -> TestRepo {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        TestRepo { dir, repo }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Commits `files` (path, content; `None` deletes) on top of HEAD, updating the working tree.
    pub fn commit(&self, files: &[(&str, Option<&str>)], message: &str) -> git2::Oid {
        let mut index = self.repo.index().unwrap();
        for (path, content) in files {
            let full = self.path().join(path);
            match content {
                Some(c) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, c).unwrap();
                    index.add_path(Path::new(path)).unwrap();
                }
                None => {
                    std::fs::remove_file(&full).unwrap();
                    index.remove_path(Path::new(path)).unwrap();
                }
            }
        }
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::new(
            "Prism Test",
            "test@prism.dev",
            &git2::Time::new(1_700_000_000, 0),
        )
        .unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    /// Creates branch `name` at `oid`.
    pub fn branch(&self, name: &str, oid: git2::Oid) {
        let commit = self.repo.find_commit(oid).unwrap();
        self.repo.branch(name, &commit, true).unwrap();
    }

    /// Creates lightweight tag `name` at `oid`.
    pub fn tag(&self, name: &str, oid: git2::Oid) {
        let obj = self.repo.find_object(oid, None).unwrap();
        self.repo.tag_lightweight(name, &obj, true).unwrap();
    }
}

/// Runs the real binary with `args` in `cwd` (defaults to the crate root).
pub fn prism(args: &[&str]) -> Output {
    prism_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

pub fn prism_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prism"))
        .args(args)
        .current_dir(cwd)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("prism-test-cache"),
        )
        .output()
        .expect("run prism")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits (up to 5 s) until a server accepts connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Writes `content` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, content: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// The bundled example's arguments.
pub const EXAMPLE: &[&str] = &[
    "generate",
    "examples/multi-env/applicationset.yaml",
    "--clusters",
    "examples/multi-env/clusters.yaml",
    "--repo",
    "https://github.com/example-org/services.git=examples/multi-env/repo",
];
