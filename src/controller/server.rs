//! The controller's HTTP endpoints: `POST /api/webhook` (push events refresh the
//! sets that read the pushed branch), `GET /metrics`, `/healthz` and `/readyz`.
//! Bodies are read up to the webhook limit and no further; secrets never reach a log.

use crate::controller::metrics::Metrics;
use crate::controller::webhook::{self, Change, Outcome, Secrets, MAX_BODY};
use http_body_util::Full;
use http_body_util::{BodyExt, Limited};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Refreshes the sets a push concerns; `None` on a standby replica.
pub type Refresh = Box<dyn Fn(Change<'_>) -> Option<usize> + Send + Sync>;

/// What the endpoints read and call.
pub struct Endpoints {
    /// The metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Whether this replica can serve (`/readyz`): a standby waiting for the Lease, or
    /// the leader with its caches filled.
    pub ready: Arc<AtomicBool>,
    /// Webhook secrets per provider.
    pub secrets: Secrets,
    /// Refreshes the sets a push or pull request event concerns; returns how many, or `None` on a standby
    /// replica (which answers 503, so the sender sees the push was not taken).
    pub refresh: Refresh,
}

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    endpoints: Arc<Endpoints>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return,
        };
        let (stream, _) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                continue;
            }
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, &endpoints).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

fn reply(status: StatusCode, text: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.into())));
    *r.status_mut() = status;
    r
}

/// Answers one request.
pub async fn handle<B>(req: Request<B>, ep: &Endpoints) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if ep.ready.load(Ordering::Relaxed) {
                reply(StatusCode::OK, "ready\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "caches not filled yet\n")
            }
        }
        (&Method::GET, "/metrics") => {
            let mut r = reply(StatusCode::OK, ep.metrics.render());
            if let Ok(v) = "text/plain; version=0.0.4".parse() {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            r
        }
        (&Method::POST, "/api/webhook") => {
            let headers = req.headers().clone();
            let declared = headers
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > MAX_BODY) {
                return reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB\n");
            }
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return reply(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB\n")
                }
                Err(e) => return reply(StatusCode::BAD_REQUEST, format!("reading body: {e}\n")),
            };
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let outcome = webhook::handle(&header, &body, &ep.secrets);
            let status = StatusCode::from_u16(outcome.status()).unwrap_or(StatusCode::BAD_REQUEST);
            match outcome {
                Outcome::PullRequest(event) => match (ep.refresh)(Change::PullRequest(&event)) {
                    Some(n) => {
                        tracing::info!(provider = event.provider, repo = %event.repo, sets = n, "webhook: pull request");
                        reply(status, format!("refreshing {n} ApplicationSets\n"))
                    }
                    None => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this replica is not the leader; redeliver the event\n",
                    ),
                },
                Outcome::Refresh(push) => match (ep.refresh)(Change::Push(&push)) {
                    Some(n) => {
                        tracing::info!(branch = %push.branch, sets = n, "webhook: push");
                        reply(status, format!("refreshing {n} ApplicationSets\n"))
                    }
                    None => reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "this replica is not the leader; redeliver the push\n",
                    ),
                },
                Outcome::Ignored(why) => reply(status, format!("ignored: {why}\n")),
                Outcome::Unauthorized(why) => {
                    tracing::warn!("webhook: rejected: {why}");
                    reply(status, format!("{why}\n"))
                }
                Outcome::TooLarge => reply(status, "body over 1 MiB\n"),
                Outcome::BadRequest(why) => reply(status, format!("{why}\n")),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn endpoints(pushes: Arc<Mutex<Vec<webhook::Push>>>) -> Endpoints {
        Endpoints {
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            secrets: Secrets {
                github: Some(b"s3cret".to_vec()),
                ..Secrets::default()
            },
            refresh: Box::new(move |change| {
                let Change::Push(p) = change else {
                    return Some(0);
                };
                let mut pushes = pushes.lock().unwrap();
                pushes.push(p.clone());
                // The first push arrives at the leader, the second at a standby.
                (pushes.len() == 1).then_some(2)
            }),
        }
    }

    /// Over a real socket: health, readiness, metrics, a signed push, a bad signature, a huge body.
    #[tokio::test]
    async fn endpoints_answer_over_http() {
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let ep = Arc::new(endpoints(pushes.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, ep.clone(), async {
            let _ = stopped.await;
        }));
        let base = format!("http://{addr}");
        let call = move |method: &'static str,
                         path: &'static str,
                         headers: Vec<(&'static str, String)>,
                         body: Vec<u8>| {
            let url = format!("{base}{path}");
            tokio::task::spawn_blocking(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                let mut resp = if method == "GET" {
                    agent.get(&url).call().unwrap()
                } else {
                    let mut r = agent.post(&url);
                    for (k, v) in headers {
                        r = r.header(k, v);
                    }
                    r.send(&body[..]).unwrap()
                };
                (
                    resp.status().as_u16(),
                    resp.body_mut().read_to_string().unwrap_or_default(),
                )
            })
        };
        assert_eq!(
            call("GET", "/healthz", vec![], vec![]).await.unwrap().0,
            200
        );
        assert_eq!(call("GET", "/readyz", vec![], vec![]).await.unwrap().0, 503);
        ep.ready.store(true, Ordering::Relaxed);
        assert_eq!(call("GET", "/readyz", vec![], vec![]).await.unwrap().0, 200);
        let (code, text) = call("GET", "/metrics", vec![], vec![]).await.unwrap();
        assert_eq!(code, 200);
        assert!(text.contains("# TYPE prism_reconcile_duration_seconds histogram"));

        let body = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/org/repo.git","default_branch":"main"}}"#.to_vec();
        let sig = format!(
            "sha256={}",
            crate::digest::hex(&webhook::hmac_sha256(b"s3cret", &body))
        );
        let (code, text) = call(
            "POST",
            "/api/webhook",
            vec![
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", sig.clone()),
            ],
            body.clone(),
        )
        .await
        .unwrap();
        assert_eq!(
            (code, text.as_str()),
            (200, "refreshing 2 ApplicationSets\n")
        );
        assert_eq!(pushes.lock().unwrap()[0].branch, "main");
        let (code, _) = call(
            "POST",
            "/api/webhook",
            vec![
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", sig.clone()),
            ],
            body.clone(),
        )
        .await
        .unwrap();
        assert_eq!(code, 503);

        let (code, text) = call(
            "POST",
            "/api/webhook",
            vec![
                ("X-GitHub-Event", "push".into()),
                ("X-Hub-Signature-256", "sha256=00".into()),
            ],
            body.clone(),
        )
        .await
        .unwrap();
        assert_eq!(code, 401);
        assert!(!text.contains("s3cret"));
        // Over the limit by its Content-Length: 413 before the body is read.
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        raw.write_all(
            format!(
                "POST /api/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nContent-Length: {}\r\n\r\n",
                MAX_BODY + 1
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut head = [0u8; 12];
        raw.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
        // Over the limit without a Content-Length (chunked): 413 once the limit is passed.
        let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"POST /api/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..17 {
            let _ = raw
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await;
            let _ = raw.write_all(&chunk).await;
            let _ = raw.write_all(b"\r\n").await;
        }
        raw.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
        assert_eq!(call("GET", "/nope", vec![], vec![]).await.unwrap().0, 404);
        assert_eq!(pushes.lock().unwrap().len(), 2);
        let _ = stop.send(());
        server.await.unwrap();
    }
}
