//! Real git servers on 127.0.0.1: `git http-backend` (smart HTTP) behind a small
//! HTTP/1.1 server that demands Basic credentials, and `git daemon` for anonymous
//! `git://` access. Both serve the bare repositories under one directory.
#![allow(dead_code)]

use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Serves `root` over smart HTTP on a free port, accepting only `user:password`.
/// Returns the port; the server lives as long as the test process.
pub fn serve_http(root: &Path, user: &str, password: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let root = root.to_path_buf();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, expected) = (root.clone(), expected.clone());
            std::thread::spawn(move || {
                let _ = handle(stream, &root, &expected);
            });
        }
    });
    port
}

fn handle(stream: TcpStream, root: &Path, expected: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end().to_string();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let mut b = vec![0; n];
            reader.read_exact(&mut b)?;
            b
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut b = Vec::new();
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                b.extend_from_slice(&chunk[..n]);
            }
            b
        } else {
            Vec::new()
        };
        if header("authorization").as_deref() != Some(expected) {
            out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\n\r\n",
            )?;
            continue;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let mut cgi = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
            .env("CONTENT_LENGTH", body.len().to_string())
            .env(
                "HTTP_CONTENT_ENCODING",
                header("content-encoding").unwrap_or_default(),
            )
            .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
            .env("REMOTE_USER", "test")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut stdin = cgi.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&body));
        let output = cgi.wait_with_output()?;
        let _ = writer.join();
        let raw = output.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
            .unwrap_or((raw.len(), 0));
        let head = String::from_utf8_lossy(&raw[..split.0]).to_string();
        let content = &raw[split.0 + split.1..];
        let mut status = "200 OK".to_string();
        let mut response = String::new();
        for h in head.lines() {
            if let Some(s) = h.strip_prefix("Status:") {
                status = s.trim().to_string();
            } else if !h.trim().is_empty() {
                response.push_str(h.trim_end());
                response.push_str("\r\n");
            }
        }
        out.write_all(
            format!(
                "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\n\r\n",
                content.len()
            )
            .as_bytes(),
        )?;
        out.write_all(content)?;
    }
}

/// A `git daemon` serving `root` anonymously; killed when dropped.
pub struct Daemon {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `git daemon` for `root` and waits until it accepts connections.
pub fn serve_daemon(root: &Path) -> Daemon {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // git-daemon itself (not the `git` wrapper, which would leave it running when killed).
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .unwrap()
        .stdout;
    let exec_path = PathBuf::from(String::from_utf8_lossy(&exec_path).trim());
    let child = Command::new(exec_path.join("git-daemon"))
        .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon");
    super::wait_for_port(port);
    Daemon { child, port }
}

/// Makes `root/name.git`, a bare clone of `source`.
pub fn bare_clone(source: &Path, root: &Path, name: &str) -> PathBuf {
    let target = root.join(format!("{name}.git"));
    let ok = Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(source)
        .arg(&target)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git clone --bare");
    target
}
