//! The `pullRequest` generator against an in-test server that replays GitHub's REST API:
//! its JSON shape (`GET /repos/{owner}/{repo}/pulls`), `Link` pagination, bearer tokens,
//! `ETag`/`304`, and its errors.

mod common;

use common::http::{serve, Request};
use common::{prism, stderr, stdout, write};
use prism::scm::{ScmClient, ScmTokens};
use prism_engine::sources::{ScmError, ScmQuery};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Tokens of one Secret `name` with `key: value`.
fn tokens(name: &str, key: &str, value: &str) -> ScmTokens {
    ScmTokens::from_secrets(&[json!({"kind": "Secret",
        "metadata": {"name": name}, "stringData": {key: value}})])
    .unwrap()
}

/// One listing from `provider` with a fresh client.
fn list(
    provider: &str,
    config: &Value,
    tokens: &ScmTokens,
) -> Result<Vec<prism_engine::sources::PullRequest>, ScmError> {
    ScmClient::default().pull_requests(
        &ScmQuery {
            provider,
            config,
            path: "p",
        },
        tokens,
    )
}

/// `org/svc`'s pull requests from the GitHub API at `port`, read by `client` with the
/// token `s3cret`, as a spec's first generator asks for them.
fn list_svc(client: &ScmClient, port: u16) -> Vec<prism_engine::sources::PullRequest> {
    let config = json!({"owner": "org", "repo": "svc", "api": format!("http://127.0.0.1:{port}"),
                        "tokenRef": {"secretName": "github-token", "key": "token"}});
    let query = ScmQuery {
        provider: "github",
        config: &config,
        path: "spec.generators[0].pullRequest",
    };
    client
        .pull_requests(&query, &tokens("github-token", "token", "s3cret"))
        .unwrap()
}

fn pull(number: u64, branch: &str, title: &str, labels: &[&str]) -> Value {
    json!({
        "number": number, "state": "open", "title": title,
        "user": {"login": "octocat", "id": 1},
        "head": {"ref": branch, "sha": format!("{number:02}3456789abcdef0123456789abcdef01234567"),
                 "repo": {"full_name": "org/svc"}},
        "base": {"ref": "main", "sha": "ffffffffffffffffffffffffffffffffffffffff"},
        "labels": labels.iter().map(|l| json!({"id": 7, "name": l, "color": "00ff00"})).collect::<Vec<_>>(),
        "html_url": format!("https://github.com/org/svc/pull/{number}")
    })
}

/// A GitHub for `org/svc`: two pages, a bearer token, ETags; `org/missing` is 404.
fn github(seen: Arc<Mutex<Vec<String>>>) -> u16 {
    serve(move |r: &Request| {
        seen.lock().unwrap().push(format!(
            "{} {} {}",
            r.path,
            r.header("authorization").unwrap_or("-"),
            r.header("if-none-match").unwrap_or("-")
        ));
        if r.header("authorization") != Some("Bearer s3cret") {
            return (
                401,
                vec![],
                r#"{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}"#
                    .into(),
            );
        }
        let etag = |page: u32| format!("\"etag-page-{page}\"");
        match r.path.as_str() {
            "/api/v3/repos/org/svc/pulls?per_page=100" => {
                if r.header("if-none-match") == Some(etag(1).as_str()) {
                    return (304, vec![format!("ETag: {}", etag(1))], String::new());
                }
                let port = r.header("host").unwrap_or_default().to_string();
                (
                    200,
                    vec![
                        format!("ETag: {}", etag(1)),
                        format!("Link: <http://{port}/api/v3/repositories/9/pulls?per_page=100&page=2>; rel=\"next\", <http://{port}/api/v3/repositories/9/pulls?per_page=100&page=2>; rel=\"last\""),
                        "X-RateLimit-Remaining: 4999".into(),
                    ],
                    json!([pull(12, "feature/Login_Page", "Login", &["preview"]),
                           pull(11, "fix/typo", "Typo", &[])])
                    .to_string(),
                )
            }
            "/api/v3/repositories/9/pulls?per_page=100&page=2" => {
                if r.header("if-none-match") == Some(etag(2).as_str()) {
                    return (304, vec![format!("ETag: {}", etag(2))], String::new());
                }
                (
                    200,
                    vec![format!("ETag: {}", etag(2))],
                    json!([pull(
                        3,
                        "renovate/serde-1.x",
                        "Update serde",
                        &["preview", "deps"]
                    )])
                    .to_string(),
                )
            }
            "/api/v3/repos/org/limited/pulls?per_page=100" => (
                429,
                vec!["Retry-After: 30".into()],
                r#"{"message": "API rate limit exceeded"}"#.into(),
            ),
            "/api/v3/repos/org/broken/pulls?per_page=100" => {
                (200, vec![], r#"{"message": "not a list"}"#.into())
            }
            _ => (404, vec![], r#"{"message": "Not Found"}"#.into()),
        }
    })
}

fn spec(dir: &std::path::Path, port: u16, repo: &str, extra: &str) -> String {
    write(
        dir,
        "appset.yaml",
        &format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: previews, namespace: argocd}}
spec:
  generators:
  - pullRequest:
      github:
        owner: org
        repo: {repo}
        api: http://127.0.0.1:{port}
        tokenRef: {{secretName: github-token, key: token}}
        labels: [preview]
{extra}
  template:
    metadata: {{name: 'svc-{{{{branch_slug}}}}-{{{{number}}}}'}}
    spec:
      project: default
      source:
        repoURL: https://github.com/org/svc.git
        targetRevision: '{{{{head_sha}}}}'
        path: deploy
        helm: {{parameters: [{{name: image.tag, value: '{{{{head_short_sha}}}}'}}]}}
      destination: {{server: https://kubernetes.default.svc, namespace: 'preview-{{{{number}}}}'}}
"#
        ),
    )
}

fn creds(dir: &std::path::Path) -> String {
    write(
        dir,
        "scm-creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: github-token}\nstringData: {token: s3cret}\n",
    )
}

#[test]
fn github_pull_requests_become_preview_applications() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = github(seen.clone());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), port, "svc", "");
    let creds = creds(dir.path());
    let out = prism(&["generate", &spec, "--scm-creds", &creds, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    // Both pages read; only pull requests labelled `preview`.
    assert_eq!(
        names,
        ["svc-feature-login-page-12", "svc-renovate-serde-1-x-3"]
    );
    assert_eq!(
        items[0]["spec"]["source"]["helm"]["parameters"][0]["value"],
        "12345678"
    );
    assert_eq!(items[0]["spec"]["destination"]["namespace"], "preview-12");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.contains("Bearer s3cret")));
}

/// Bad answers are errors naming the provider, the repository and the status, never an
/// empty list (Argo CD issue 14318: a bad answer deleted every Application).
#[test]
fn bad_answers_are_errors_and_nothing_is_printed() {
    let port = github(Arc::default());
    let dir = tempfile::tempdir().unwrap();
    let creds = creds(dir.path());
    let wrong = write(
        dir.path(),
        "wrong.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: github-token}\nstringData: {token: nope}\n",
    );
    for (repo, creds, text) in [
        (
            "svc",
            &wrong,
            "listing pull requests from github: org/svc: HTTP 401: GitHub refused the credentials; check the Secret the spec names",
        ),
        (
            "missing",
            &creds,
            "listing pull requests from github: repository not found: org/missing",
        ),
        (
            "limited",
            &creds,
            "org/limited: HTTP 429: rate limited or forbidden; retry after 30 s",
        ),
        ("broken", &creds, "org/broken: http://127.0.0.1"),
    ] {
        let spec = spec(dir.path(), port, repo, "");
        let out = prism(&["generate", &spec, "--scm-creds", creds]);
        assert_eq!(out.status.code(), Some(1), "{repo}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{repo}");
        assert!(
            stderr(&out).contains("spec.generators[0].pullRequest.github")
                && stderr(&out).contains(text),
            "{repo}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("nope") && !stderr(&out).contains("s3cret"));
    }
    // continueOnRepoNotFoundError: a missing repository yields nothing, not an error.
    let spec = spec(
        dir.path(),
        port,
        "missing",
        "      continueOnRepoNotFoundError: true",
    );
    let out = prism(&["generate", &spec, "--scm-creds", &creds]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The second listing is conditional: GitHub answers 304 (not counted against the rate
/// limit) and the client reuses what it read.
#[test]
fn a_second_listing_is_answered_304_from_the_etag() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let port = github(seen.clone());
    let client = ScmClient::default();
    let first = list_svc(&client, port);
    let second = list_svc(&client, port);
    assert_eq!(first, second);
    assert_eq!(first.len(), 3);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen[2].ends_with("\"etag-page-1\""), "{seen:?}");
    assert!(seen[3].ends_with("\"etag-page-2\""), "{seen:?}");
    assert_eq!(client.requests()[&("github".to_string(), 304)], 2);
    // A provider nobody knows is an error, not an empty list.
    let e = client
        .pull_requests(
            &ScmQuery {
                provider: "sourcehut",
                config: &json!({}),
                path: "p",
            },
            &tokens("github-token", "token", "s3cret"),
        )
        .unwrap_err();
    assert!(matches!(e, ScmError::Other(m) if m.contains("is not a pullRequest provider")));
}

/// GitLab as Argo's `GitLabService` asks it (go-gitlab): `/api/v4/projects/<encoded
/// path>/merge_requests`, the token in `PRIVATE-TOKEN`, labels asked of the server, the
/// state only when `pullRequestState` is given, `X-Next-Page` pagination; `iid`,
/// `source_branch`, `sha` and `author.username` become Argo's parameters.
#[test]
fn gitlab_merge_requests_with_x_next_page() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = serve(move |r: &Request| {
        log.lock().unwrap().push(r.path.clone());
        if r.header("private-token") != Some("glpat-x") {
            return (401, vec![], r#"{"message": "401 Unauthorized"}"#.into());
        }
        let mr = |iid: u64, branch: &str| {
            json!({"id": 1000 + iid, "iid": iid, "title": format!("MR {iid}"), "state": "opened",
                   "source_branch": branch, "target_branch": "main",
                   "sha": format!("{iid:02}cafe0123456789"), "labels": ["preview"],
                   "author": {"id": 5, "username": "dev", "name": "Dev"}})
        };
        let base =
            "/api/v4/projects/group%2Fshop/merge_requests?per_page=100&labels=preview&state=opened";
        if r.path == base {
            (
                200,
                vec!["X-Next-Page: 2".into(), "X-Page: 1".into()],
                json!([mr(4, "feat/a")]).to_string(),
            )
        } else if r.path == format!("{base}&page=2") {
            (
                200,
                vec!["X-Next-Page: ".into(), "X-Page: 2".into()],
                json!([mr(2, "feat/b")]).to_string(),
            )
        } else {
            (
                404,
                vec![],
                r#"{"message": "404 Project Not Found"}"#.into(),
            )
        }
    });
    let tokens = tokens("gitlab", "token", "glpat-x");
    let config = json!({"project": "group/shop", "api": format!("http://127.0.0.1:{port}"),
                        "labels": ["preview"], "pullRequestState": "opened",
                        "tokenRef": {"secretName": "gitlab", "key": "token"}});
    let query = ScmQuery {
        provider: "gitlab",
        config: &config,
        path: "p",
    };
    let pulls = ScmClient::default().pull_requests(&query, &tokens).unwrap();
    let numbers: Vec<(i64, &str, &str)> = pulls
        .iter()
        .map(|p| (p.number, p.branch.as_str(), p.author.as_str()))
        .collect();
    assert_eq!(numbers, [(4, "feat/a", "dev"), (2, "feat/b", "dev")]);
    assert_eq!(seen.lock().unwrap().len(), 2);
    let missing = json!({"project": "group/gone", "api": format!("http://127.0.0.1:{port}"),
                         "tokenRef": {"secretName": "gitlab", "key": "token"}});
    let e = ScmClient::default()
        .pull_requests(
            &ScmQuery {
                provider: "gitlab",
                config: &missing,
                path: "p",
            },
            &tokens,
        )
        .unwrap_err();
    assert_eq!(e, ScmError::RepositoryNotFound("group/gone".into()));
}

/// Gitea as its SDK asks it (Argo's `GiteaService`): open pull requests, the token as
/// `Authorization: token …`, labels filtered by the client; pages through `Link`.
#[test]
fn gitea_pull_requests_follow_page_and_limit() {
    let port = serve(move |r: &Request| {
        if r.header("authorization") != Some("token gt-1") {
            return (401, vec![], r#"{"message": "token is required"}"#.into());
        }
        let pr = |n: u64, labels: &[&str]| {
            json!({"id": 100 + n, "number": n, "title": format!("PR {n}"), "state": "open",
                   "user": {"id": 3, "login": "gitea-dev", "username": "gitea-dev"},
                   "head": {"ref": format!("feat-{n}"), "sha": format!("{n:02}beef0123456789"), "label": "x"},
                   "base": {"ref": "main", "sha": "ff"},
                   "labels": labels.iter().map(|l| json!({"id": 1, "name": l})).collect::<Vec<_>>()})
        };
        let host = r.header("host").unwrap_or_default().to_string();
        match r.path.as_str() {
            "/api/v1/repos/org/app/pulls?state=open&limit=50&page=1" => (
                200,
                vec![
                    format!("Link: <http://{host}/api/v1/repos/org/app/pulls?state=open&limit=50&page=2>; rel=\"next\""),
                    "X-Total-Count: 3".into(),
                ],
                json!([pr(1, &["preview"]), pr(2, &[])]).to_string(),
            ),
            "/api/v1/repos/org/app/pulls?state=open&limit=50&page=2" => {
                (200, vec!["X-Total-Count: 3".into()], json!([pr(3, &["preview"])]).to_string())
            }
            _ => (404, vec![], r#"{"message": "not found"}"#.into()),
        }
    });
    let tokens = tokens("gitea", "token", "gt-1");
    let config = json!({"owner": "org", "repo": "app", "api": format!("http://127.0.0.1:{port}/"),
                        "labels": ["preview"], "tokenRef": {"secretName": "gitea", "key": "token"}});
    let pulls = list("gitea", &config, &tokens).unwrap();
    let got: Vec<(i64, &str, &str)> = pulls
        .iter()
        .map(|p| (p.number, p.branch.as_str(), p.author.as_str()))
        .collect();
    assert_eq!(
        got,
        [(1, "feat-1", "gitea-dev"), (3, "feat-3", "gitea-dev")]
    );
}

/// Bitbucket Server as Argo's `BitbucketService` asks it (gfleury/go-bitbucket-v1):
/// `/rest/api/1.0/projects/{key}/repos/{slug}/pull-requests?limit=100`, basic auth, paging
/// by `isLastPage` / `nextPageStart`; `fromRef.displayId`, `fromRef.latestCommit`,
/// `author.user.name` become Argo's parameters.
#[test]
fn bitbucket_server_pages_by_next_page_start() {
    let port = serve(move |r: &Request| {
        // "ci:pw" in base64.
        if r.header("authorization") != Some("Basic Y2k6cHc=") {
            return (
                401,
                vec![],
                r#"{"errors": [{"message": "Authentication failed"}]}"#.into(),
            );
        }
        let pr = |id: u64, branch: &str| {
            json!({"id": id, "version": 0, "title": format!("PR {id}"), "state": "OPEN",
                   "fromRef": {"id": format!("refs/heads/{branch}"), "displayId": branch,
                               "latestCommit": format!("{id:02}dead0123456789")},
                   "toRef": {"id": "refs/heads/main", "displayId": "main", "latestCommit": "ff"},
                   "author": {"user": {"name": "bb-dev", "displayName": "BB Dev"}, "role": "AUTHOR"}})
        };
        let base = "/rest/api/1.0/projects/PRJ/repos/app/pull-requests?limit=100";
        if r.path == base {
            (
                200,
                vec![],
                json!({"size": 1, "limit": 1, "isLastPage": false, "start": 0,
                                 "nextPageStart": 1, "values": [pr(5, "feature/x")]})
                .to_string(),
            )
        } else if r.path == format!("{base}&start=1") {
            (
                200,
                vec![],
                json!({"size": 1, "limit": 1, "isLastPage": true, "start": 1,
                                 "values": [pr(6, "bugfix/y")]})
                .to_string(),
            )
        } else {
            (
                404,
                vec![],
                r#"{"errors": [{"message": "Repository does not exist"}]}"#.into(),
            )
        }
    });
    let tokens = tokens("bb", "password", "pw");
    let config = json!({"project": "PRJ", "repo": "app", "api": format!("http://127.0.0.1:{port}"),
                        "basicAuth": {"username": "ci", "passwordRef": {"secretName": "bb", "key": "password"}}});
    let pulls = list("bitbucketServer", &config, &tokens).unwrap();
    let got: Vec<(i64, &str, &str, &str)> = pulls
        .iter()
        .map(|p| {
            (
                p.number,
                p.branch.as_str(),
                p.head_sha.as_str(),
                p.author.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (5, "feature/x", "05dead0123456789", "bb-dev"),
            (6, "bugfix/y", "06dead0123456789", "bb-dev")
        ]
    );
}

/// Bitbucket Cloud: `/repositories/{owner}/{repo}/pullrequests`, a bearer token, every
/// page through the body's `next`; Argo's fields (`source.branch.name`,
/// `source.commit.hash`, `author.nickname`).
#[test]
fn bitbucket_cloud_follows_next() {
    let port = serve(move |r: &Request| {
        if r.header("authorization") != Some("Bearer bb-cloud") {
            return (
                401,
                vec![],
                r#"{"type": "error", "error": {"message": "Unauthorized"}}"#.into(),
            );
        }
        let host = r.header("host").unwrap_or_default().to_string();
        let pr = |id: u64, branch: &str| {
            json!({"id": id, "title": format!("PR {id}"), "state": "OPEN",
                   "source": {"branch": {"name": branch}, "commit": {"hash": format!("{id:02}c0ffee0123")}},
                   "destination": {"branch": {"name": "main"}, "commit": {"hash": "ffffffffffff"}},
                   "author": {"display_name": "Dev", "nickname": "bbdev", "uuid": "{1}"}})
        };
        match r.path.as_str() {
            "/2.0/repositories/ws/app/pullrequests" => (
                200,
                vec![],
                json!({"pagelen": 1, "size": 2, "page": 1, "values": [pr(8, "feature/z")],
                       "next": format!("http://{host}/2.0/repositories/ws/app/pullrequests?page=2")})
                .to_string(),
            ),
            "/2.0/repositories/ws/app/pullrequests?page=2" => (
                200,
                vec![],
                json!({"pagelen": 1, "size": 2, "page": 2, "values": [pr(9, "fix/w")]}).to_string(),
            ),
            _ => (404, vec![], r#"{"type": "error", "error": {"message": "Repository not found"}}"#.into()),
        }
    });
    let tokens = tokens("bbc", "token", "bb-cloud");
    let config = json!({"owner": "ws", "repo": "app", "api": format!("http://127.0.0.1:{port}/2.0"),
                        "bearerToken": {"tokenRef": {"secretName": "bbc", "key": "token"}}});
    let pulls = list("bitbucket", &config, &tokens).unwrap();
    let got: Vec<(i64, &str, &str, &str)> = pulls
        .iter()
        .map(|p| {
            (
                p.number,
                p.branch.as_str(),
                p.head_sha.as_str(),
                p.author.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (8, "feature/z", "08c0ffee0123", "bbdev"),
            (9, "fix/w", "09c0ffee0123", "bbdev")
        ]
    );
}

/// Azure DevOps as Argo's `AzureDevOpsService` reads it: the project's pull requests, kept
/// for the named repository and every label asked; branches without `refs/heads/`, the
/// author before the `@`; the PAT as basic auth; `x-ms-continuationtoken` paging.
#[test]
fn azure_devops_keeps_its_repository_and_follows_the_continuation_token() {
    let port = serve(move |r: &Request| {
        // ":pat-1" in base64.
        if r.header("authorization") != Some("Basic OnBhdC0x") {
            return (401, vec![], String::new());
        }
        let pr = |id: u64, repo: &str, labels: &[&str]| {
            json!({"pullRequestId": id, "title": format!("PR {id}"), "status": "active",
                   "repository": {"id": "6b1c", "name": repo, "project": {"name": "proj"}},
                   "sourceRefName": format!("refs/heads/feature/{id}"), "targetRefName": "refs/heads/main",
                   "lastMergeSourceCommit": {"commitId": format!("{id:02}a2a2a2a2a2")},
                   "createdBy": {"displayName": "Dev", "uniqueName": "dev@corp.example"},
                   "labels": labels.iter().map(|l| json!({"id": "1", "name": l, "active": true})).collect::<Vec<_>>()})
        };
        let base = "/org/proj/_apis/git/pullrequests?searchCriteria.status=active&api-version=7.1";
        if r.path == base {
            (
                200,
                vec!["x-ms-continuationtoken: tok 2".into()],
                json!({"count": 2, "value": [pr(1, "app", &["preview"]), pr(2, "other", &["preview"])]}).to_string(),
            )
        } else if r.path == format!("{base}&continuationToken=tok%202") {
            (
                200,
                vec![],
                json!({"count": 2, "value": [pr(3, "app", &["preview"]), pr(4, "app", &[])]})
                    .to_string(),
            )
        } else {
            (
                404,
                vec![],
                r#"{"message": "TF200016: The following project does not exist: nope"}"#.into(),
            )
        }
    });
    let tokens = tokens("ado", "pat", "pat-1");
    let config = json!({"organization": "org", "project": "proj", "repo": "app",
                        "api": format!("http://127.0.0.1:{port}"), "labels": ["preview"],
                        "tokenRef": {"secretName": "ado", "key": "pat"}});
    let pulls = list("azuredevops", &config, &tokens).unwrap();
    let got: Vec<(i64, &str, &str, &str)> = pulls
        .iter()
        .map(|p| {
            (
                p.number,
                p.branch.as_str(),
                p.target_branch.as_str(),
                p.author.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, "feature/1", "main", "dev"),
            (3, "feature/3", "main", "dev")
        ]
    );
}

/// `examples/preview-envs/` as its README runs it, with the spec's GitHub pointed at a
/// replay server (`api`): test and prod per service from `values-<env>.yaml`, and one
/// preview per service and open pull request labelled `preview`, named from the branch,
/// at the head commit, with the image tagged from the short SHA.
#[test]
fn the_preview_envs_example_runs_against_a_replayed_github() {
    let port = serve(|r: &Request| {
        if r.header("authorization") != Some("Bearer replace-with-a-github-token") {
            return (401, vec![], r#"{"message": "Bad credentials"}"#.into());
        }
        match r.path.as_str() {
            "/api/v3/repos/example-org/shop/pulls?per_page=100" => (
                200,
                vec![],
                json!([
                    pull(42, "feature/Gift-Cards", "Gift cards", &["preview"]),
                    pull(43, "docs/readme", "Docs", &[]),
                    pull(44, "renovate/serde-1.x", "Bump serde", &["preview", "deps"]),
                ])
                .to_string(),
            ),
            _ => (404, vec![], r#"{"message": "Not Found"}"#.into()),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string("examples/preview-envs/applicationset.yaml")
        .unwrap()
        .replace(
            "            repo: shop\n",
            &format!("            repo: shop\n            api: http://127.0.0.1:{port}\n"),
        );
    assert!(spec.contains("api: http://127.0.0.1"));
    let spec = write(dir.path(), "applicationset.yaml", &spec);
    let out = prism(&[
        "generate",
        &spec,
        "--repo",
        "https://github.com/example-org/shop.git=examples/preview-envs/repo",
        "--scm-creds",
        "examples/preview-envs/scm-creds.yaml",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    let mut names: Vec<&str> = items
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "catalog-pr-42-feature-gift-cards",
            "catalog-pr-44-renovate-serde-1-x",
            "catalog-prod",
            "catalog-test",
            "checkout-pr-42-feature-gift-cards",
            "checkout-pr-44-renovate-serde-1-x",
            "checkout-prod",
            "checkout-test",
        ]
    );
    let preview = items
        .iter()
        .find(|a| a["metadata"]["name"] == "checkout-pr-42-feature-gift-cards")
        .unwrap();
    let source = &preview["spec"]["source"];
    assert_eq!(
        source["targetRevision"],
        pull(42, "", "", &[])["head"]["sha"]
    );
    assert_eq!(
        source["helm"]["parameters"],
        json!([{"name": "image.tag", "value": "pr-42345678"}])
    );
    assert_eq!(
        source["helm"]["valueFiles"],
        json!(["values.yaml", "values-preview.yaml"])
    );
    assert_eq!(
        preview["spec"]["destination"]["namespace"],
        "checkout-pr-42"
    );
    assert_eq!(
        preview["metadata"]["labels"]["preview/branch"],
        "feature-gift-cards"
    );
    let prod = items
        .iter()
        .find(|a| a["metadata"]["name"] == "catalog-prod")
        .unwrap();
    assert_eq!(prod["spec"]["source"]["targetRevision"], "HEAD");
}

/// Within the freshness window (the controller's git refresh), a listing is served from
/// memory even when the API sends no `ETag` (not every provider or proxy does); a
/// webhook for the repository (`forget`) makes the next listing ask again.
#[test]
fn a_fresh_listing_without_an_etag_is_not_asked_again_until_forgotten() {
    let asked = Arc::new(Mutex::new(0u32));
    let count = asked.clone();
    let port = serve(move |_r: &Request| {
        *count.lock().unwrap() += 1;
        (
            200,
            vec![],
            json!([pull(5, "feature/x", "X", &[])]).to_string(),
        )
    });
    let client = ScmClient::default().with_freshness(std::time::Duration::from_secs(3600));
    let first = list_svc(&client, port);
    let second = list_svc(&client, port);
    assert_eq!(first, second);
    assert_eq!(*asked.lock().unwrap(), 1);
    client.forget("org/other");
    list_svc(&client, port);
    assert_eq!(*asked.lock().unwrap(), 1);
    client.forget("Org/Svc");
    list_svc(&client, port);
    assert_eq!(*asked.lock().unwrap(), 2);
}
