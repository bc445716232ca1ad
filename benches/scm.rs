//! SCM benchmark: 200 repositories × 20 open pull requests through an in-process server
//! replaying GitHub's API (`ETag`s on every answer, 304 for a matching
//! `If-None-Match`). `cargo bench --bench scm`.
//!
//! Reports the requests and wall time of a first refresh and of a no-change refresh,
//! for the `pullRequest` generator over the 200 repositories and for the `scmProvider`
//! generator finding them (organization listing plus each default branch). Target: the
//! no-change refresh makes only 304s, at most one per repository for pull requests.

#[path = "../tests/common/http.rs"]
mod http;

use prism::scm::{ScmClient, ScmTokens};
use prism_engine::sources::ScmQuery;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const REPOS: usize = 200;
const PULLS: usize = 20;

/// A GitHub with organization `bench`: `REPOS` repositories in pages of 100, each with
/// `PULLS` open pull requests and a default branch.
fn github() -> u16 {
    let repo = |i: usize| {
        json!({"id": i, "name": format!("svc-{i:03}"), "owner": {"login": "bench"},
               "default_branch": "main", "archived": false, "topics": ["preview"],
               "ssh_url": format!("git@github.example:bench/svc-{i:03}.git"),
               "clone_url": format!("https://github.example/bench/svc-{i:03}.git")})
    };
    let pulls: Value = (0..PULLS)
        .map(|n| {
            json!({"number": n + 1, "title": format!("Change {n}"), "state": "open",
                   "user": {"login": "dev"}, "labels": [{"name": "preview"}],
                   "head": {"ref": format!("feature/change-{n}"), "sha": format!("{n:040}")},
                   "base": {"ref": "main"}})
        })
        .collect();
    let pulls = pulls.to_string();
    let pages: Vec<String> = (0..REPOS.div_ceil(100))
        .map(|p| {
            let items: Vec<Value> = (p * 100..((p + 1) * 100).min(REPOS)).map(repo).collect();
            json!(items).to_string()
        })
        .collect();
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let me = port.clone();
    let p = http::serve(move |r: &http::Request| {
        let etag = format!(
            "\"{:x}\"",
            r.path.len() * 31 + r.path.bytes().map(usize::from).sum::<usize>()
        );
        if r.header("if-none-match") == Some(etag.as_str()) {
            return (304, vec![format!("ETag: {etag}")], String::new());
        }
        let ok = |body: String, extra: Vec<String>| {
            let mut headers = vec![format!("ETag: {etag}")];
            headers.extend(extra);
            (200, headers, body)
        };
        let path = r.path.as_str();
        if let Some(rest) = path.strip_prefix("/api/v3/orgs/bench/repos?per_page=100") {
            let page: usize = rest
                .strip_prefix("&page=")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let mut extra = vec![];
            if page < pages.len() {
                let port = me.get().copied().unwrap_or_default();
                extra.push(format!(
                    "Link: <http://127.0.0.1:{port}/api/v3/orgs/bench/repos?per_page=100&page={}>; rel=\"next\"",
                    page + 1
                ));
            }
            return ok(pages[page - 1].clone(), extra);
        }
        if path.ends_with("/pulls?per_page=100") {
            return ok(pulls.clone(), vec![]);
        }
        if path.ends_with("/branches/main") {
            return ok(
                json!({"name": "main", "commit": {"sha": "a".repeat(40)}}).to_string(),
                vec![],
            );
        }
        (404, vec![], "{}".into())
    });
    let _ = port.set(p);
    p
}

/// Requests by status since `before`, as `200×n 304×m`.
fn counted(
    client: &ScmClient,
    before: &std::collections::HashMap<(String, u16), u64>,
) -> (u64, String) {
    let now = client.requests();
    let mut by: Vec<(u16, u64)> = now
        .iter()
        .map(|((_, status), n)| {
            (
                *status,
                n - before
                    .get(&("github".to_string(), *status))
                    .copied()
                    .unwrap_or(0),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    by.sort();
    let total = by.iter().map(|(_, n)| n).sum();
    (
        total,
        by.iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn main() {
    let port = github();
    let api = format!("http://127.0.0.1:{port}");
    let tokens = ScmTokens::default();
    let configs: Vec<Value> = (0..REPOS)
        .map(|i| json!({"owner": "bench", "repo": format!("svc-{i:03}"), "api": api, "labels": ["preview"]}))
        .collect();
    let pull_refresh = |client: &ScmClient| -> usize {
        configs
            .iter()
            .map(|config| {
                let query = ScmQuery {
                    provider: "github",
                    config,
                    path: "bench",
                };
                client
                    .pull_requests(&query, &tokens)
                    .expect("pull requests")
                    .len()
            })
            .sum()
    };
    let scm_config = json!({"organization": "bench", "api": api});
    let scm_refresh = |client: &ScmClient| -> usize {
        use prism_engine::sources::ScmProviderService;
        let query = ScmQuery {
            provider: "github",
            config: &scm_config,
            path: "bench",
        };
        let p = client.scm_provider(&query, &tokens).expect("provider");
        let repos = p.list_repos("").expect("repositories");
        repos
            .iter()
            .map(|r| p.branches(r).expect("branches").len())
            .sum()
    };
    type Refresh<'a> = &'a dyn Fn(&ScmClient) -> usize;
    for (what, refresh, want) in [
        (
            "pullRequest, 200 repositories x 20",
            &pull_refresh as Refresh,
            REPOS * PULLS,
        ),
        (
            "scmProvider, 200 repositories",
            &scm_refresh as Refresh,
            REPOS,
        ),
    ] {
        let mut first = Vec::new();
        let mut again = Vec::new();
        let (mut first_requests, mut again_requests) = (String::new(), String::new());
        for _ in 0..5 {
            let client = ScmClient::new(Duration::from_secs(30));
            let before = client.requests();
            let started = Instant::now();
            assert_eq!(refresh(&client), want);
            first.push(started.elapsed());
            let (_, text) = counted(&client, &before);
            first_requests = text;
            let before = client.requests();
            let started = Instant::now();
            assert_eq!(refresh(&client), want);
            again.push(started.elapsed());
            let (_, text) = counted(&client, &before);
            again_requests = text;
        }
        // The controller serves a listing for its git refresh interval: no request at all.
        let client =
            ScmClient::new(Duration::from_secs(30)).with_freshness(Duration::from_secs(60));
        refresh(&client);
        let before = client.requests();
        let started = Instant::now();
        assert_eq!(refresh(&client), want);
        let fresh = started.elapsed();
        let (fresh_requests, _) = counted(&client, &before);
        assert_eq!(fresh_requests, 0);
        first.sort();
        again.sort();
        println!(
            "{what}: first refresh median {:?} ({first_requests}); no-change refresh median {:?} ({again_requests}); 5 runs; \
             within the controller's refresh interval {fresh:?} (0 requests)",
            first[2], again[2]
        );
    }
}
