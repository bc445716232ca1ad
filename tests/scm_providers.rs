//! The `scmProvider` generator against in-test servers that replay each provider's REST
//! API: the JSON shapes Argo CD's clients read (repositories, branches, contents), each
//! provider's pagination and credentials, `ETag`/`304`, and its errors. The shapes and
//! URLs follow Argo's `applicationset/services/scm_provider/` and the libraries it uses.

mod common;

use common::http::{serve, Request};
use common::{prism, stderr, stdout, write};
use prism::scm::{ScmClient, ScmTokens};
use prism_engine::sources::{ScmError, ScmProviderService, ScmQuery, ScmRepository};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Answers by exact path and query; a request without `auth` gets 401, an unknown path
/// 404. Every request is recorded as `path if-none-match`.
fn replay(
    auth: &str,
    routes: Vec<(String, u16, Vec<String>, Value)>,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let auth = auth.to_string();
    let me = Arc::new(std::sync::OnceLock::<u16>::new());
    let port_of = me.clone();
    let routes: HashMap<String, (u16, Vec<String>, String)> = routes
        .into_iter()
        .map(|(p, s, h, b)| (p, (s, h, b.to_string())))
        .collect();
    let port = serve(move |r: &Request| {
        log.lock().unwrap().push(format!(
            "{} {}",
            r.path,
            r.header("if-none-match").unwrap_or("-")
        ));
        if r.header(auth.split(':').next().unwrap()) != auth.split_once(": ").map(|(_, v)| v) {
            return (401, vec![], r#"{"message": "Bad credentials"}"#.into());
        }
        // Links name this server: `PORT` in a route is its port.
        let port = port_of.get().copied().unwrap_or_default().to_string();
        match routes.get(&r.path) {
            Some((status, headers, body)) => {
                let headers: Vec<String> =
                    headers.iter().map(|h| h.replace("PORT", &port)).collect();
                if let Some(etag) = headers.iter().find_map(|h| h.strip_prefix("ETag: ")) {
                    if r.header("if-none-match") == Some(etag) {
                        return (304, headers.clone(), String::new());
                    }
                }
                (*status, headers, body.replace("PORT", &port))
            }
            None => (404, vec![], r#"{"message": "Not Found"}"#.into()),
        }
    });
    let _ = me.set(port);
    (port, seen)
}

fn tokens(objects: Value) -> ScmTokens {
    ScmTokens::from_secrets(objects.as_array().unwrap()).unwrap()
}

fn secret(name: &str, key: &str, value: &str) -> Value {
    json!({"kind": "Secret", "metadata": {"name": name}, "stringData": {key: value}})
}

/// Argo's ListRepos without filters: every repository on its default branch.
fn default_branches(
    client: &ScmClient,
    provider: &str,
    config: Value,
    tokens: &ScmTokens,
    protocol: &str,
) -> Result<Vec<ScmRepository>, ScmError> {
    let query = ScmQuery {
        provider,
        config: &config,
        path: "p",
    };
    let p = client.scm_provider(&query, tokens)?;
    let mut out = Vec::new();
    for r in p.list_repos(protocol)? {
        out.extend(p.branches(&r)?);
    }
    Ok(out)
}

fn summary(repos: &[ScmRepository]) -> Vec<String> {
    repos
        .iter()
        .map(|r| {
            format!(
                "{}/{}@{} {} {} [{}] {}",
                r.organization,
                r.repository,
                r.branch,
                r.sha,
                r.url,
                r.labels.join(","),
                r.repository_id
            )
        })
        .collect()
}

fn github_repo(id: u64, name: &str, topics: &[&str], archived: bool) -> Value {
    json!({"id": id, "node_id": "R_x", "name": name, "full_name": format!("acme/{name}"),
           "private": true, "owner": {"login": "acme", "id": 1, "type": "Organization"},
           "html_url": format!("https://github.example/acme/{name}"),
           "clone_url": format!("https://github.example/acme/{name}.git"),
           "ssh_url": format!("git@github.example:acme/{name}.git"),
           "default_branch": "main", "archived": archived, "topics": topics})
}

/// A GitHub Enterprise for organization `acme`: two pages of repositories (`Link`), an
/// archived one, default branches, `deploy/` on `api` only, ETags on the listing.
fn github() -> (u16, Arc<Mutex<Vec<String>>>) {
    let repos = "/api/v3/orgs/acme/repos?per_page=100";
    let branch = |name: &str, sha: &str| json!({"name": name, "commit": {"sha": sha, "url": "x"}, "protected": false});
    let (port, seen) = replay(
        "authorization: Bearer gh-t0ken",
        vec![
            (
                repos.into(),
                200,
                vec![
                    "Link: <http://127.0.0.1:PORT/api/v3/orgs/acme/repos?per_page=100&page=2>; rel=\"next\"".into(),
                    "ETag: \"p1\"".into(),
                ],
                json!([github_repo(101, "api", &["deploy", "go"], false), github_repo(102, "old", &[], true)]),
            ),
            (
                format!("{repos}&page=2"),
                200,
                vec!["ETag: \"p2\"".into()],
                json!([github_repo(103, "web", &["deploy"], false)]),
            ),
            ("/api/v3/repos/acme/api/branches/main".into(), 200, vec![], branch("main", "a1a1a1a1a1a1a1a1a1a1")),
            ("/api/v3/repos/acme/old/branches/main".into(), 200, vec![], branch("main", "0101")),
            ("/api/v3/repos/acme/web/branches/main".into(), 200, vec![], branch("main", "b2b2b2b2b2")),
            (
                "/api/v3/repos/acme/api/branches?per_page=100".into(),
                200,
                vec![],
                json!([branch("main", "a1a1a1a1a1a1a1a1a1a1"), branch("feature/x", "c3c3c3c3c3")]),
            ),
            (
                "/api/v3/repos/acme/api/contents/deploy?ref=main".into(),
                200,
                vec![],
                json!([{"type": "file", "name": "app.yaml", "path": "deploy/app.yaml"}]),
            ),
        ],
    );
    (port, seen)
}

fn github_config(port: u16, extra: Value) -> Value {
    let mut c = json!({"organization": "acme", "api": format!("http://127.0.0.1:{port}"),
                       "tokenRef": {"secretName": "gh", "key": "token"}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// GitHub: `orgs/{org}/repos` over `Link` pages, topics as labels, `excludeArchivedRepos`,
/// the default branch via `branches/{branch}`, `allBranches` via `branches`, SSH or HTTPS
/// clone URLs, and a second listing answered 304 from the ETags.
#[test]
fn github_repositories_branches_and_pages() {
    let (port, seen) = github();
    let tokens = tokens(json!([secret("gh", "token", "gh-t0ken")]));
    let client = ScmClient::default();
    let repos = default_branches(
        &client,
        "github",
        github_config(port, json!({})),
        &tokens,
        "",
    )
    .unwrap();
    assert_eq!(
        summary(&repos),
        [
            "acme/api@main a1a1a1a1a1a1a1a1a1a1 git@github.example:acme/api.git [deploy,go] 101",
            "acme/old@main 0101 git@github.example:acme/old.git [] 102",
            "acme/web@main b2b2b2b2b2 git@github.example:acme/web.git [deploy] 103",
        ]
    );
    let archived = json!({"excludeArchivedRepos": true, "allBranches": true});
    let repos = default_branches(
        &client,
        "github",
        github_config(port, archived),
        &tokens,
        "https",
    );
    // `web` has no branch listing: a 404 there is an error naming it, never fewer Applications.
    let e = repos.unwrap_err().to_string();
    assert_eq!(e, "repository not found: acme/web");
    let seen = seen.lock().unwrap().clone();
    // The second listing of both pages was conditional and answered 304.
    assert!(
        seen.contains(&"/api/v3/orgs/acme/repos?per_page=100 \"p1\"".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"/api/v3/orgs/acme/repos?per_page=100&page=2 \"p2\"".to_string()),
        "{seen:?}"
    );
    assert_eq!(client.requests()[&("github".to_string(), 304)], 2);
}

/// The whole generator through `prism generate`: a filter on topics and on a path,
/// Argo's parameters in the Applications, the token from `--scm-creds`, and errors that
/// print nothing but the failure (never the token).
#[test]
fn github_organization_becomes_applications() {
    let (port, _) = github();
    let dir = tempfile::tempdir().unwrap();
    let creds = write(
        dir.path(),
        "creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: gh}\nstringData: {token: gh-t0ken}\n",
    );
    let spec = |filters: &str, token_key: &str| {
        write(
            dir.path(),
            "appset.yaml",
            &format!(
                r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: services, namespace: argocd}}
spec:
  generators:
  - scmProvider:
      cloneProtocol: https
      github:
        organization: acme
        api: http://127.0.0.1:{port}
        tokenRef: {{secretName: gh, key: {token_key}}}
      filters: {filters}
  template:
    metadata:
      name: '{{{{repository}}}}-{{{{branchNormalized}}}}'
      annotations: {{topics: '{{{{labels}}}}'}}
    spec:
      project: default
      source: {{repoURL: '{{{{url}}}}', targetRevision: '{{{{sha}}}}', path: deploy}}
      destination: {{server: https://kubernetes.default.svc, namespace: '{{{{repository}}}}'}}
"#
            ),
        )
    };
    let out = prism(&[
        "generate",
        &spec(
            r#"[{labelMatch: "^deploy$", pathsExist: [deploy/]}]"#,
            "token",
        ),
        "--scm-creds",
        &creds,
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["metadata"]["name"], "api-main");
    assert_eq!(items[0]["metadata"]["annotations"]["topics"], "deploy,go");
    assert_eq!(
        items[0]["spec"]["source"]["repoURL"],
        "https://github.example/acme/api.git"
    );
    assert_eq!(
        items[0]["spec"]["source"]["targetRevision"],
        "a1a1a1a1a1a1a1a1a1a1"
    );
    // A token the server refuses: an error naming the provider and organization.
    let wrong = write(
        dir.path(),
        "wrong.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: gh}\nstringData: {token: nope}\n",
    );
    let out = prism(&["generate", &spec("[]", "token"), "--scm-creds", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("spec.generators[0].scmProvider.github: listing repositories from github: acme: HTTP 401"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("nope"));
    // A key the Secret does not have.
    let out = prism(&["generate", &spec("[]", "other"), "--scm-creds", &creds]);
    assert!(
        stderr(&out).contains("tokenRef: Secret gh has no key other"),
        "{}",
        stderr(&out)
    );
}

/// Whether `path` exists on `repo`'s first listed branch, through the provider.
fn has_path(
    client: &ScmClient,
    provider: &str,
    config: &Value,
    tokens: &ScmTokens,
    repo: usize,
    path: &str,
) -> bool {
    let query = ScmQuery {
        provider,
        config,
        path: "p",
    };
    let p = client.scm_provider(&query, tokens).unwrap();
    let repos = p.list_repos("").unwrap();
    let branch = p.branches(&repos[repo]).unwrap().remove(0);
    p.has_path(&branch, path).unwrap()
}

/// GitLab: `groups/{group}/projects` with Argo's query (subgroups, shared, topic),
/// `X-Next-Page` paging, `namespace.full_path` and `path`, topics (or the older
/// `tag_list`), branches by project id, paths as a file then as a tree, `PRIVATE-TOKEN`.
#[test]
fn gitlab_group_projects() {
    let project = |id: u64, path: &str, topics: Value| {
        json!({"id": id, "name": path.to_uppercase(), "path": path,
               "path_with_namespace": format!("platform/apps/{path}"),
               "namespace": {"id": 9, "name": "apps", "path": "apps", "kind": "group", "full_path": "platform/apps"},
               "default_branch": "main", "ssh_url_to_repo": format!("git@gitlab.example:platform/apps/{path}.git"),
               "http_url_to_repo": format!("https://gitlab.example/platform/apps/{path}.git"),
               "topics": topics, "tag_list": ["legacy-tag"]})
    };
    let list = "/api/v4/groups/platform%2Fapps/projects?per_page=100&include_subgroups=true&with_shared=false&topic=svc";
    let (port, seen) = replay(
        "private-token: gl-t0ken",
        vec![
            (
                list.into(),
                200,
                vec!["X-Next-Page: 2".into(), "X-Total-Pages: 2".into()],
                json!([project(11, "api", json!(["svc"]))]),
            ),
            (
                format!("{list}&page=2"),
                200,
                vec!["X-Next-Page: ".into()],
                json!([project(12, "web", json!([]))]),
            ),
            (
                "/api/v4/projects/11/repository/branches/main".into(),
                200,
                vec![],
                json!({"name": "main", "commit": {"id": "1111111111"}}),
            ),
            (
                "/api/v4/projects/12/repository/branches/main".into(),
                200,
                vec![],
                json!({"name": "main", "commit": {"id": "2222222222"}}),
            ),
            (
                "/api/v4/projects/11/repository/tree?path=deploy&ref=main".into(),
                200,
                vec![],
                json!([{"id": "x", "name": "app.yaml", "type": "blob"}]),
            ),
            (
                "/api/v4/projects/11/repository/files/Chart.yaml?ref=main".into(),
                200,
                vec![],
                json!({"file_name": "Chart.yaml"}),
            ),
        ],
    );
    let tokens = tokens(json!([secret("gl", "token", "gl-t0ken")]));
    let config = json!({"group": "platform/apps", "api": format!("http://127.0.0.1:{port}"),
                        "includeSubgroups": true, "includeSharedProjects": false, "topic": "svc",
                        "tokenRef": {"secretName": "gl", "key": "token"}});
    let client = ScmClient::default();
    let repos = default_branches(&client, "gitlab", config.clone(), &tokens, "https").unwrap();
    assert_eq!(
        summary(&repos),
        [
            "platform/apps/api@main 1111111111 https://gitlab.example/platform/apps/api.git [svc] 11",
            "platform/apps/web@main 2222222222 https://gitlab.example/platform/apps/web.git [legacy-tag] 12",
        ]
    );
    assert!(has_path(&client, "gitlab", &config, &tokens, 0, "deploy"));
    assert!(has_path(
        &client,
        "gitlab",
        &config,
        &tokens,
        0,
        "Chart.yaml"
    ));
    assert!(!has_path(&client, "gitlab", &config, &tokens, 0, "missing"));
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.starts_with("/api/v4/projects/11/repository/files/deploy?ref=main")));
}

/// Gitea: `orgs/{owner}/repos` (Prism follows `page`/`limit` through `Link`; Argo reads
/// one page), each repository's labels asked one by one as Argo does, the default
/// branch's commit, `html_url` for https (Argo's choice), `token` auth.
#[test]
fn gitea_organization_repositories() {
    let repo = |id: u64, name: &str| {
        json!({"id": id, "name": name, "full_name": format!("acme/{name}"), "owner": {"login": "acme"},
               "html_url": format!("https://gitea.example/acme/{name}"),
               "ssh_url": format!("git@gitea.example:acme/{name}.git"),
               "clone_url": format!("https://gitea.example/acme/{name}.git"),
               "default_branch": "trunk", "archived": id == 2})
    };
    let (port, _) = replay(
        "authorization: token gt-t0ken",
        vec![
            ("/api/v1/orgs/acme/repos?limit=50&page=1".into(), 200,
             vec!["Link: <http://127.0.0.1:PORT/api/v1/orgs/acme/repos?limit=50&page=2>; rel=\"next\"".into()],
             json!([repo(1, "api")])),
            ("/api/v1/orgs/acme/repos?limit=50&page=2".into(), 200, vec![], json!([repo(2, "old")])),
            ("/api/v1/repos/acme/api/labels?limit=50&page=1".into(), 200, vec![], json!([{"id": 1, "name": "team-a", "color": "ff0000"}])),
            ("/api/v1/repos/acme/old/labels?limit=50&page=1".into(), 200, vec![], json!([])),
            ("/api/v1/repos/acme/api/branches/trunk".into(), 200, vec![], json!({"name": "trunk", "commit": {"id": "3333333333"}})),
        ],
    );
    let tokens = tokens(json!([secret("gt", "t", "gt-t0ken")]));
    let config = json!({"owner": "acme", "api": format!("http://127.0.0.1:{port}/"), "excludeArchivedRepos": true,
                        "tokenRef": {"secretName": "gt", "key": "t"}});
    let repos = default_branches(
        &ScmClient::default(),
        "gitea",
        config.clone(),
        &tokens,
        "https",
    )
    .unwrap();
    assert_eq!(
        summary(&repos),
        ["acme/api@trunk 3333333333 https://gitea.example/acme/api [team-a] 1"]
    );
    // Argo: a default branch that is not found is an error, not a skipped repository.
    let mut all = config;
    all["excludeArchivedRepos"] = json!(false);
    let e = default_branches(&ScmClient::default(), "gitea", all, &tokens, "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("got 404 while getting default branch \"trunk\" for repo \"old\""),
        "{e}"
    );
}

/// Bitbucket Server: `projects/{key}/repos` in `start`/`isLastPage` pages, clone links by
/// name (`ssh`, `http`), each repository's default branch (`branches/default`; an empty
/// repository has none and is skipped, as Argo), basic auth.
#[test]
fn bitbucket_server_project_repositories() {
    let repo = |id: u64, name: &str| {
        json!({"id": id, "slug": name, "name": name, "project": {"key": "PROJ", "id": 1},
               "links": {"clone": [{"href": format!("ssh://git@bb.example:7999/proj/{name}.git"), "name": "ssh"},
                                   {"href": format!("https://bb.example/scm/proj/{name}.git"), "name": "http"}]}})
    };
    let base = "/rest/api/1.0/projects/PROJ/repos";
    let (port, _) = replay(
        "authorization: Basic YWRtaW46YmItcGFzcw==",
        vec![
            (
                format!("{base}?limit=100"),
                200,
                vec![],
                json!({"size": 1, "limit": 1, "isLastPage": false, "start": 0, "nextPageStart": 1, "values": [repo(1, "api")]}),
            ),
            (
                format!("{base}?limit=100&start=1"),
                200,
                vec![],
                json!({"size": 1, "limit": 1, "isLastPage": true, "start": 1, "values": [repo(2, "empty")]}),
            ),
            (
                format!("{base}/api/branches/default"),
                200,
                vec![],
                json!({"id": "refs/heads/main", "displayId": "main", "type": "BRANCH", "latestCommit": "4444444444", "isDefault": true}),
            ),
            (
                format!("{base}/api/browse/deploy?at=main&type=true&limit=100"),
                200,
                vec![],
                json!({"type": "DIRECTORY"}),
            ),
        ],
    );
    let tokens = tokens(json!([secret("bb", "password", "bb-pass")]));
    let config = json!({"project": "PROJ", "api": format!("http://127.0.0.1:{port}"),
                        "basicAuth": {"username": "admin", "passwordRef": {"secretName": "bb", "key": "password"}}});
    let client = ScmClient::default();
    let repos =
        default_branches(&client, "bitbucketServer", config.clone(), &tokens, "https").unwrap();
    assert_eq!(
        summary(&repos),
        ["PROJ/api@main 4444444444 https://bb.example/scm/proj/api.git [] 1"]
    );
    assert!(has_path(
        &client,
        "bitbucketServer",
        &config,
        &tokens,
        0,
        "deploy"
    ));
    assert!(!has_path(
        &client,
        "bitbucketServer",
        &config,
        &tokens,
        0,
        "nothing"
    ));
}

/// Bitbucket Cloud: `repositories/{workspace}?role=member` following the body's `next`,
/// the clone link of the protocol (an unknown one is an error), `mainbranch`, the branch's
/// `target.hash`, paths by commit (`src/{sha}/{path}?format=meta`), app-password basic auth.
#[test]
fn bitbucket_cloud_workspace_repositories() {
    let repo = |slug: &str| {
        json!({"uuid": format!("{{{slug}-uuid}}"), "slug": slug, "full_name": format!("ws/{slug}"),
               "mainbranch": {"name": "master", "type": "branch"},
               "links": {"clone": [{"name": "https", "href": format!("https://bitbucket.org/ws/{slug}.git")},
                                   {"name": "ssh", "href": format!("git@bitbucket.org:ws/{slug}.git")}]}})
    };
    let (port, _) = replay(
        "authorization: Basic ZGV2OmJjLWFwcC1wYXNz",
        vec![
            (
                "/2.0/repositories/ws?role=member".into(),
                200,
                vec![],
                json!({"pagelen": 1, "values": [repo("api")], "next": "http://127.0.0.1:PORT/2.0/repositories/ws?role=member&page=2"}),
            ),
            (
                "/2.0/repositories/ws?role=member&page=2".into(),
                200,
                vec![],
                json!({"pagelen": 1, "values": [repo("web")]}),
            ),
            (
                "/2.0/repositories/ws/api/refs/branches/master".into(),
                200,
                vec![],
                json!({"name": "master", "target": {"hash": "5555555555"}}),
            ),
            (
                "/2.0/repositories/ws/web/refs/branches/master".into(),
                200,
                vec![],
                json!({"name": "master", "target": {"hash": "6666666666"}}),
            ),
            (
                "/2.0/repositories/ws/api/src/5555555555/deploy?format=meta".into(),
                200,
                vec![],
                json!({"type": "commit_directory"}),
            ),
        ],
    );
    let tokens = tokens(json!([secret("bc", "appPassword", "bc-app-pass")]));
    let config = json!({"owner": "ws", "user": "dev", "appPasswordRef": {"secretName": "bc", "key": "appPassword"}});
    let client =
        ScmClient::default().with_bitbucket_cloud_api(&format!("http://127.0.0.1:{port}/2.0"));
    let repos = default_branches(&client, "bitbucket", config.clone(), &tokens, "").unwrap();
    assert_eq!(
        summary(&repos),
        [
            "ws/api@master 5555555555 git@bitbucket.org:ws/api.git [] \"{api-uuid}\"",
            "ws/web@master 6666666666 git@bitbucket.org:ws/web.git [] \"{web-uuid}\"",
        ]
    );
    assert!(has_path(
        &client,
        "bitbucket",
        &config,
        &tokens,
        0,
        "deploy"
    ));
    assert!(!has_path(
        &client,
        "bitbucket",
        &config,
        &tokens,
        0,
        "missing"
    ));
    let e = default_branches(&client, "bitbucket", config, &tokens, "git")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown clone protocol for Bitbucket cloud git"),
        "{e}"
    );
}

/// Azure DevOps: the team project's `repositories` (`value`; entries missing a name,
/// default branch, URL or id skipped, as Argo), the default branch by short name
/// through `stats/branches`, items by repository id and branch, a PAT as basic auth.
#[test]
fn azure_devops_team_project_repositories() {
    let (port, _) = replay(
        "authorization: Basic OmF6LXBhdA==",
        vec![
            ("/org/proj/_apis/git/repositories?api-version=7.1".into(), 200, vec![],
             json!({"count": 2, "value": [
                 {"id": "0b1a-uuid", "name": "api", "defaultBranch": "refs/heads/main",
                  "remoteUrl": "https://dev.azure.example/org/proj/_git/api", "project": {"name": "proj"}},
                 {"id": "0c2b-uuid", "name": "empty", "remoteUrl": "https://dev.azure.example/org/proj/_git/empty"}]})),
            ("/org/proj/_apis/git/repositories/api/stats/branches?api-version=7.1&name=main".into(), 200, vec![],
             json!({"name": "main", "commit": {"commitId": "7777777777"}, "aheadCount": 0})),
            ("/org/proj/_apis/git/repositories/0b1a-uuid/items?path=deploy&versionDescriptor.version=main&api-version=7.1".into(),
             200, vec![], json!({"objectId": "x", "path": "/deploy", "isFolder": true})),
        ],
    );
    let tokens = tokens(json!([secret("az", "pat", "az-pat")]));
    let config = json!({"organization": "org", "teamProject": "proj", "api": format!("http://127.0.0.1:{port}"),
                        "accessTokenRef": {"secretName": "az", "key": "pat"}});
    let client = ScmClient::default();
    let repos = default_branches(&client, "azureDevOps", config.clone(), &tokens, "").unwrap();
    assert_eq!(
        summary(&repos),
        ["org/api@main 7777777777 https://dev.azure.example/org/proj/_git/api [] \"0b1a-uuid\""]
    );
    assert!(has_path(
        &client,
        "azureDevOps",
        &config,
        &tokens,
        0,
        "deploy"
    ));
    assert!(!has_path(
        &client,
        "azureDevOps",
        &config,
        &tokens,
        0,
        "nothing"
    ));
}

/// Argo's `--allowed-scm-providers`: with a list, an `api` not on it is refused before
/// any request.
#[test]
fn only_allowed_apis_are_asked() {
    let (port, seen) = github();
    let tokens = tokens(json!([secret("gh", "token", "gh-t0ken")]));
    let client = ScmClient::default().with_allowed_apis(vec!["https://github.corp.example".into()]);
    let e = default_branches(
        &client,
        "github",
        github_config(port, json!({})),
        &tokens,
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&format!("scm provider \"http://127.0.0.1:{port}\" not allowed, must use one of the following: https://github.corp.example")), "{e}");
    assert!(seen.lock().unwrap().is_empty());
}

/// An RSA key made by openssl: (PKCS#1 PEM, public key as PKCS#1 DER for ring).
fn rsa_key(dir: &std::path::Path) -> (String, Vec<u8>) {
    let key = dir.join("app.pem");
    let public = dir.join("app.der");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genrsa",
        "-traditional",
        "-out",
        key.to_str().unwrap(),
        "2048",
    ]);
    run(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        std::fs::read_to_string(key).unwrap(),
        std::fs::read(public).unwrap(),
    )
}

/// The claims of `jwt` if its RS256 signature verifies with `public`.
fn verified_claims(jwt: &str, public: &[u8]) -> Option<Value> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, signature) = jwt.rsplit_once('.')?;
    let signature = b64.decode(signature).ok()?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
        .verify(input.as_bytes(), &signature)
        .ok()?;
    let (header, claims) = input.split_once('.')?;
    let header: Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
    (header["alg"] == "RS256").then_some(())?;
    serde_json::from_slice(&b64.decode(claims).ok()?).ok()
}

/// GitHub App auth (`appSecretName`), as ghinstallation does it for Argo: the fake
/// verifies the JWT with the app's public key (RS256, `iss` the app id, two minutes),
/// trades it for an installation token, and only that token lists repositories. The
/// installation is found from the organization when the Secret has no id, and the
/// token is reused until shortly before it expires (Argo's
/// applicationset/services/internal/github_app/client.go, util/git/creds.go
/// DiscoverGitHubAppInstallationID, util/db/repository_secrets.go for the keys).
#[test]
fn github_app_installation_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, public) = rsa_key(dir.path());
    let posts = Arc::new(Mutex::new(0));
    let counted = posts.clone();
    let port = serve(move |r: &Request| {
        let jwt = r
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        let app_call = || -> Result<(), (u16, Vec<String>, String)> {
            let claims = jwt.and_then(|j| verified_claims(j, &public)).ok_or((
                401,
                vec![],
                r#"{"message": "A JSON web token could not be decoded"}"#.to_string(),
            ))?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let (iat, exp) = (
                claims["iat"].as_i64().unwrap(),
                claims["exp"].as_i64().unwrap(),
            );
            assert_eq!(claims["iss"], "1234");
            assert!(iat <= now && exp > now && exp - iat <= 600, "{claims}");
            Ok(())
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v3/app/installations?per_page=100") => match app_call() {
                Ok(()) => (200, vec![], json!([{"id": 55, "account": {"login": "other"}}, {"id": 77, "account": {"login": "Acme"}}]).to_string()),
                Err(e) => e,
            },
            ("POST", "/api/v3/app/installations/77/access_tokens") => match app_call() {
                Ok(()) => {
                    *counted.lock().unwrap() += 1;
                    (201, vec![], json!({"token": "ghs_installation", "expires_at": "2099-01-01T00:00:00Z",
                                        "permissions": {"contents": "read"}}).to_string())
                }
                Err(e) => e,
            },
            ("GET", "/api/v3/orgs/acme/repos?per_page=100") if r.header("authorization") == Some("token ghs_installation") => {
                (200, vec![], json!([github_repo(1, "api", &[], false)]).to_string())
            }
            ("GET", "/api/v3/repos/acme/api/branches/main") if r.header("authorization") == Some("token ghs_installation") => {
                (200, vec![], json!({"name": "main", "commit": {"sha": "8888888888"}}).to_string())
            }
            _ => (401, vec![], r#"{"message": "Bad credentials"}"#.to_string()),
        }
    });
    let app = |installation: Option<&str>, key: &str| {
        let mut data = json!({"githubAppID": "1234", "githubAppPrivateKey": key, "url": "https://github.example/acme"});
        if let Some(i) = installation {
            data["githubAppInstallationID"] = json!(i);
        }
        tokens(
            json!([{"kind": "Secret", "metadata": {"name": "gh-app", "labels": {"argocd.argoproj.io/secret-type": "repo-creds"}},
                       "stringData": data}]),
        )
    };
    let config = json!({"organization": "acme", "api": format!("http://127.0.0.1:{port}"), "appSecretName": "gh-app"});
    let client = ScmClient::default();
    for installation in [Some("77"), None] {
        let repos = default_branches(
            &client,
            "github",
            config.clone(),
            &app(installation, &pem),
            "",
        )
        .unwrap();
        assert_eq!(
            summary(&repos),
            ["acme/api@main 8888888888 git@github.example:acme/api.git [] 1"]
        );
    }
    // One exchange: the token is reused by the second listing.
    assert_eq!(*posts.lock().unwrap(), 1);
    // A key GitHub does not know: the exchange fails, naming the app, not the key.
    std::fs::create_dir(dir.path().join("other")).unwrap();
    let (other, _) = rsa_key(&dir.path().join("other"));
    let fresh = ScmClient::default();
    let e = default_branches(
        &fresh,
        "github",
        config.clone(),
        &app(Some("77"), &other),
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("GitHub App 1234: HTTP 401 from POST"), "{e}");
    assert!(!e.contains("PRIVATE KEY"));
    let e = default_branches(&fresh, "github", config, &app(Some("77"), "not a key"), "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("appSecretName: Secret gh-app: githubAppPrivateKey holds no PEM private key"),
        "{e}"
    );
}

/// TLS as the provider block asks it: `caRef` (a ConfigMap key of PEM certificates,
/// given in `--scm-creds` on the command line) trusts a private CA, `insecure` skips
/// verification, and neither means the public roots, which do not know this server.
#[test]
fn ca_ref_and_insecure_reach_a_private_ca_server() {
    let dir = tempfile::tempdir().unwrap();
    common::control_plane::certificates(dir.path()).unwrap();
    let port = common::http::serve_tls(
        &dir.path().join("server.crt"),
        &dir.path().join("server.key"),
        |r: &Request| {
            match r.path.as_str() {
            "/api/v4/groups/infra/projects?per_page=100&include_subgroups=false&with_shared=true" => (
                200,
                vec![],
                json!([{"id": 5, "path": "dns", "namespace": {"full_path": "infra"}, "default_branch": "main",
                        "ssh_url_to_repo": "git@gitlab.corp:infra/dns.git", "http_url_to_repo": "https://gitlab.corp/infra/dns.git",
                        "topics": []}]).to_string(),
            ),
            "/api/v4/projects/5/repository/branches/main" => (200, vec![], json!({"name": "main", "commit": {"id": "9999999999"}}).to_string()),
            _ => (404, vec![], "{}".into()),
        }
        },
    );
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let objects = tokens(
        json!([{"kind": "ConfigMap", "metadata": {"name": "corp-ca"}, "data": {"ca.crt": ca}}]),
    );
    let api = format!("https://127.0.0.1:{port}");
    let client = ScmClient::default();
    let with_ca = json!({"group": "infra", "api": api, "caRef": {"configMapName": "corp-ca", "key": "ca.crt"}});
    let repos = default_branches(&client, "gitlab", with_ca, &objects, "").unwrap();
    assert_eq!(
        summary(&repos),
        ["infra/dns@main 9999999999 git@gitlab.corp:infra/dns.git [] 5"]
    );
    let insecure = json!({"group": "infra", "api": api, "insecure": true});
    assert_eq!(
        default_branches(&client, "gitlab", insecure, &objects, "")
            .unwrap()
            .len(),
        1
    );
    let plain = json!({"group": "infra", "api": api});
    let e = default_branches(&client, "gitlab", plain, &objects, "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("infra: GET https://127.0.0.1"), "{e}");
    let missing = json!({"group": "infra", "api": api, "caRef": {"configMapName": "corp-ca", "key": "other"}});
    let e = default_branches(&client, "gitlab", missing, &objects, "")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("caRef: ConfigMap corp-ca has no key other"),
        "{e}"
    );
}

/// Previews across many repositories (argo-cd issue 17271, applicationset issue 466):
/// a matrix of `scmProvider` × `pullRequest` whose pull request generator takes its
/// `owner` and `repo` from the provider's parameters. Argo cannot template a child's
/// provider fields; Prism renders them per repository, and lists each repository's pull
/// requests once.
#[test]
fn a_matrix_of_repositories_and_their_pull_requests() {
    let pull = |n: u64, branch: &str| {
        json!({"number": n, "title": format!("PR {n}"), "state": "open", "user": {"login": "dev"},
               "head": {"ref": branch, "sha": format!("{n:02}cdef0123456789")}, "base": {"ref": "main"},
               "labels": [{"name": "preview"}]})
    };
    let branch = json!({"name": "main", "commit": {"sha": "a1a1a1a1"}});
    let (port, seen) = replay(
        "authorization: Bearer gh-t0ken",
        vec![
            (
                "/api/v3/orgs/acme/repos?per_page=100".into(),
                200,
                vec![],
                json!([
                    github_repo(1, "api", &["preview"], false),
                    github_repo(2, "web", &["preview"], false),
                    github_repo(3, "docs", &[], false)
                ]),
            ),
            (
                "/api/v3/repos/acme/api/branches/main".into(),
                200,
                vec![],
                branch.clone(),
            ),
            (
                "/api/v3/repos/acme/web/branches/main".into(),
                200,
                vec![],
                branch,
            ),
            (
                "/api/v3/repos/acme/api/pulls?per_page=100".into(),
                200,
                vec![],
                json!([pull(4, "feature/login"), pull(5, "fix/typo")]),
            ),
            (
                "/api/v3/repos/acme/web/pulls?per_page=100".into(),
                200,
                vec![],
                json!([pull(8, "feature/Dark_Mode")]),
            ),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let creds = write(
        dir.path(),
        "creds.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: gh}\nstringData: {token: gh-t0ken}\n",
    );
    let spec = write(
        dir.path(),
        "appset.yaml",
        &format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {{name: previews, namespace: argocd}}
spec:
  goTemplate: true
  goTemplateOptions: [missingkey=error]
  generators:
  - matrix:
      generators:
      - scmProvider:
          github:
            organization: acme
            api: http://127.0.0.1:{port}
            tokenRef: {{secretName: gh, key: token}}
          filters: [{{labelMatch: preview}}]
      - pullRequest:
          github:
            owner: '{{{{ .organization }}}}'
            repo: '{{{{ .repository }}}}'
            api: http://127.0.0.1:{port}
            tokenRef: {{secretName: gh, key: token}}
            labels: [preview]
  template:
    metadata:
      name: '{{{{ .repository }}}}-{{{{ .branch_slug }}}}'
    spec:
      project: default
      source: {{repoURL: '{{{{ .url }}}}', targetRevision: '{{{{ .head_sha }}}}', path: deploy}}
      destination: {{server: https://kubernetes.default.svc, namespace: 'preview-{{{{ .repository }}}}-{{{{ .number }}}}'}}
"#
        ),
    );
    let out = prism(&["generate", &spec, "--scm-creds", &creds, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["api-feature-login", "api-fix-typo", "web-feature-dark-mode"]
    );
    assert_eq!(
        list["items"][2]["spec"]["destination"]["namespace"],
        "preview-web-8"
    );
    let seen = seen.lock().unwrap();
    let pulls: Vec<&String> = seen.iter().filter(|s| s.contains("/pulls")).collect();
    assert_eq!(pulls.len(), 2, "{seen:?}");
}

/// Careful with the rate limit: when `X-RateLimit-Remaining` is down to 1% of
/// `X-RateLimit-Limit`, nothing more is asked of that host until `X-RateLimit-Reset`;
/// the error says so, and the server sees no further request.
#[test]
fn the_client_stops_before_the_rate_limit() {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let limits = |left: u64| {
        vec![
            "X-RateLimit-Limit: 5000".to_string(),
            format!("X-RateLimit-Remaining: {left}"),
            format!("X-RateLimit-Reset: {reset}"),
        ]
    };
    let (port, seen) = replay(
        "authorization: Bearer gh-t0ken",
        vec![
            (
                "/api/v3/orgs/acme/repos?per_page=100".into(),
                200,
                limits(51),
                json!([github_repo(1, "api", &[], false)]),
            ),
            (
                "/api/v3/repos/acme/api/branches/main".into(),
                200,
                limits(50),
                json!({"name": "main", "commit": {"sha": "1"}}),
            ),
        ],
    );
    let tokens = tokens(json!([secret("gh", "token", "gh-t0ken")]));
    let client = ScmClient::default();
    // 51 left: asked; the branch answer leaves 50 (1% of 5000): the reserve.
    assert_eq!(
        default_branches(
            &client,
            "github",
            github_config(port, json!({})),
            &tokens,
            ""
        )
        .unwrap()
        .len(),
        1
    );
    let e = default_branches(
        &client,
        "github",
        github_config(port, json!({})),
        &tokens,
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(&format!("GitHub's rate limit is spent (or down to the 1% Prism leaves to other users of the token) until {reset}")), "{e}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}
