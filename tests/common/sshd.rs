//! A real OpenSSH server on 127.0.0.1 for git over SSH: Debian's `openssh-server`
//! (installed when missing), a throwaway host key, and one client key allowed to
//! log in as the current user.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; stopped on drop.
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "prism-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen")
        .success();
    assert!(ok, "ssh-keygen");
}

impl Sshd {
    /// Starts sshd on a free port and waits until it accepts connections.
    pub fn start() -> Sshd {
        super::ensure_package(SSHD, "openssh-server");
        let dir = tempfile::tempdir().unwrap();
        let p = |name: &str| dir.path().join(name);
        keygen(&p("host"));
        keygen(&p("client"));
        std::fs::copy(p("client.pub"), p("authorized_keys")).unwrap();
        // Privilege separation needs its directory when sshd runs as root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
             PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n",
            host = p("host").display(),
            keys = p("authorized_keys").display(),
            pid = p("sshd.pid").display(),
        );
        std::fs::write(p("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd");
        super::wait_for_port(port);
        Sshd { child, dir, port }
    }

    /// The client's private key (OpenSSH format).
    pub fn client_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("client")).unwrap()
    }

    /// A known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.path().join("host.pub")).unwrap();
        let mut parts = public.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }

    /// `ssh://user@127.0.0.1:port/abs/path` for a repository on this machine.
    pub fn url(&self, repo: &Path) -> String {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| {
                Command::new("id")
                    .arg("-un")
                    .output()
                    .ok()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            })
            .unwrap_or_else(|| "root".into());
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, repo.display())
    }

    /// The directory of its files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}
