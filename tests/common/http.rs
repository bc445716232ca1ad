//! A tiny HTTP/1.1 server on 127.0.0.1 for tests that need a peer the real one cannot
//! play (a catalog, a token service, a scripted registry): one request per
//! connection, answered by a function of the request.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;

/// A request as the handler sees it.
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header's value, or empty.
    pub authorization: String,
    /// Every header, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A header's value (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, extra header lines (`Name: value`), body.
pub type Response = (u16, Vec<String>, String);

/// Serves `handler` on a free port in a background thread; returns the port.
pub fn serve(mut handler: impl FnMut(&Request) -> Response + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            answer(&mut stream, &mut handler);
        }
    });
    port
}

/// Serves `handler` over HTTPS with the PEM certificate chain and key in `cert` and
/// `key`; returns the port.
pub fn serve_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
    mut handler: impl FnMut(&Request) -> Response + Send + 'static,
) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            answer(&mut tls, &mut handler);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

/// Reads one request from `stream` and writes `handler`'s answer.
fn answer(stream: &mut impl ReadWrite, handler: &mut impl FnMut(&Request) -> Response) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let request = Request {
        method: first.next().unwrap_or("").to_string(),
        path: first.next().unwrap_or("").to_string(),
        authorization: text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("authorization:")
                    .then(|| l[14..].trim().to_string())
            })
            .unwrap_or_default(),
        headers: text
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect(),
    };
    let (status, headers, body) = handler(&request);
    let mut response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
    for h in headers {
        response.push_str(&h);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// A stream both ways.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
