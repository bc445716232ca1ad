//! The webhook endpoint's logic (`POST /api/webhook`), as pure functions: verify a
//! GitHub, GitLab or Gitea push event and say which git repository and branch
//! changed, or a pull request event (GitHub, GitLab, Gitea, Bitbucket Server, Azure
//! DevOps) and say which repository's pull requests changed; then which
//! ApplicationSets read them. The HTTP server around it belongs to the controller's edge.
//!
//! Bad or missing signature → 401, body over 1 MiB → 413, any other event → 200 and
//! ignored, as Argo CD's webhook handler answers.

use crate::digest::hex;
use serde_json::Value;

/// Largest body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The shared secrets, from a Kubernetes Secret (never logged).
#[derive(Clone, Default)]
pub struct Secrets {
    /// GitHub's webhook secret (HMAC-SHA256 in `X-Hub-Signature-256`).
    pub github: Option<Vec<u8>>,
    /// GitLab's secret token (`X-Gitlab-Token`).
    pub gitlab: Option<Vec<u8>>,
    /// Gitea's webhook secret (HMAC-SHA256 in `X-Gitea-Signature`).
    pub gitea: Option<Vec<u8>>,
    /// Bitbucket Server's webhook secret (HMAC-SHA256 in `X-Hub-Signature`).
    pub bitbucket_server: Option<Vec<u8>>,
    /// Azure DevOps' service hook basic auth, `user:password`.
    pub azuredevops: Option<Vec<u8>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { .. }")
    }
}

/// A push: which repository (every URL form the payload gives) and branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Clone and web URLs of the repository.
    pub repo_urls: Vec<String>,
    /// The pushed branch (`refs/heads/` removed).
    pub branch: String,
    /// The repository's default branch, when the payload says (for `HEAD` revisions).
    pub default_branch: Option<String>,
}

/// A pull request opened, closed, updated or relabelled: whose pull requests changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    /// `github`, `gitlab`, `gitea`, `bitbucketServer` or `azuredevops`.
    pub provider: &'static str,
    /// The server's host name (lower case), when the payload says it.
    pub host: Option<String>,
    /// Owner (GitHub, Gitea), namespace path (GitLab), project key (Bitbucket Server)
    /// or project (Azure DevOps).
    pub owner: String,
    /// The repository (GitLab: the project's path).
    pub repo: String,
    /// GitLab's numeric project id.
    pub project_id: Option<String>,
}

/// What a verified webhook asks to refresh.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Sets whose git generators read the pushed branch.
    Push(&'a Push),
    /// Sets whose `pullRequest` generators list the repository.
    PullRequest(&'a PullRequestEvent),
}

/// What to answer and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: refresh the sets that read this push.
    Refresh(Push),
    /// 200: refresh the sets whose `pullRequest` generators list this repository.
    PullRequest(PullRequestEvent),
    /// 200: not a push (or a tag push); nothing to do.
    Ignored(String),
    /// 401: the signature or token is wrong or missing.
    Unauthorized(String),
    /// 413: the body is over [`MAX_BODY`].
    TooLarge,
    /// 400: a push whose body is not the expected JSON.
    BadRequest(String),
}

impl Outcome {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Refresh(_) | Outcome::PullRequest(_) | Outcome::Ignored(_) => 200,
            Outcome::Unauthorized(_) => 401,
            Outcome::TooLarge => 413,
            Outcome::BadRequest(_) => 400,
        }
    }
}

/// Verifies and reads one webhook request; `header` looks a header up case-insensitively.
pub fn handle(header: &dyn Fn(&str) -> Option<String>, body: &[u8], secrets: &Secrets) -> Outcome {
    if body.len() > MAX_BODY {
        return Outcome::TooLarge;
    }
    let (provider, event) = if let Some(e) = header("x-github-event") {
        ("github", e)
    } else if let Some(e) = header("x-gitea-event") {
        ("gitea", e)
    } else if let Some(e) = header("x-gitlab-event") {
        ("gitlab", e)
    } else if let Some(e) = header("x-event-key") {
        ("bitbucketServer", e)
    } else if header("x-vss-activityid").is_some() {
        ("azuredevops", String::new())
    } else {
        return Outcome::Ignored(
            "not a GitHub, GitLab, Gitea, Bitbucket Server or Azure DevOps event".into(),
        );
    };
    let verified = match provider {
        "github" => check_hmac(
            secrets.github.as_deref(),
            header("x-hub-signature-256"),
            Some("sha256="),
            body,
        ),
        "gitea" => check_hmac(
            secrets.gitea.as_deref(),
            header("x-gitea-signature"),
            None,
            body,
        ),
        "bitbucketServer" => check_hmac(
            secrets.bitbucket_server.as_deref(),
            header("x-hub-signature"),
            Some("sha256="),
            body,
        ),
        "azuredevops" => check_basic(secrets.azuredevops.as_deref(), header("authorization")),
        _ => match (&secrets.gitlab, header("x-gitlab-token")) {
            (None, _) => Ok(()),
            (Some(_), None) => Err("missing X-Gitlab-Token".to_string()),
            (Some(want), Some(got)) if constant_time_eq(want, got.as_bytes()) => Ok(()),
            (Some(_), Some(_)) => Err("X-Gitlab-Token does not match".to_string()),
        },
    };
    if let Err(why) = verified {
        return Outcome::Unauthorized(format!("{provider}: {why}"));
    }
    if let Some(outcome) = pull_request_event(provider, &event, body) {
        return outcome;
    }
    let is_push = match provider {
        "gitlab" => event == "Push Hook",
        _ => event == "push",
    };
    if !is_push {
        return Outcome::Ignored(format!("{provider} event {event:?} is not a push"));
    }
    let payload: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Outcome::BadRequest(format!("{provider} push body is not JSON: {e}")),
    };
    let Some(branch) = payload["ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("refs/heads/"))
    else {
        return Outcome::Ignored("not a branch push".into());
    };
    let repo = if provider == "gitlab" {
        &payload["project"]
    } else {
        &payload["repository"]
    };
    let repo_urls: Vec<String> = [
        "html_url",
        "clone_url",
        "ssh_url",
        "git_http_url",
        "git_ssh_url",
        "web_url",
    ]
    .iter()
    .filter_map(|k| repo[*k].as_str().map(str::to_string))
    .collect();
    if repo_urls.is_empty() {
        return Outcome::BadRequest(format!("{provider} push names no repository URL"));
    }
    Outcome::Refresh(Push {
        repo_urls,
        branch: branch.to_string(),
        default_branch: repo["default_branch"].as_str().map(str::to_string),
    })
}

/// Reads a pull request event (`None`: the event is not about pull requests). The
/// actions that refresh are Argo's (`applicationset/webhook/webhook.go`) for GitHub,
/// GitLab and Azure DevOps, and their counterparts for Gitea and Bitbucket Server.
fn pull_request_event(provider: &'static str, event: &str, body: &[u8]) -> Option<Outcome> {
    let is_pr = match provider {
        "github" | "gitea" => event == "pull_request",
        "gitlab" => event == "Merge Request Hook",
        "bitbucketServer" => event.starts_with("pr:"),
        _ => true,
    };
    if !is_pr {
        return None;
    }
    let payload: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(Outcome::BadRequest(format!(
                "{provider} pull request body is not JSON: {e}"
            )))
        }
    };
    let text = |at: &str| {
        payload
            .pointer(at)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let host = |url: &str| {
        url.split("://")
            .nth(1)
            .and_then(|r| r.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
    };
    let (action, allowed, event): (&str, &[&str], PullRequestEvent) = match provider {
        "github" => (
            text("/action"),
            &[
                "opened",
                "closed",
                "synchronize",
                "labeled",
                "reopened",
                "unlabeled",
            ],
            PullRequestEvent {
                provider,
                host: host(text("/repository/url")),
                owner: text("/repository/owner/login").into(),
                repo: text("/repository/name").into(),
                project_id: None,
            },
        ),
        "gitea" => (
            text("/action"),
            &[
                "opened",
                "closed",
                "reopened",
                "synchronized",
                "label_updated",
                "label_cleared",
                "edited",
            ],
            PullRequestEvent {
                provider,
                host: host(text("/repository/html_url")),
                owner: text("/repository/owner/login").into(),
                repo: text("/repository/name").into(),
                project_id: None,
            },
        ),
        "gitlab" => (
            text("/object_attributes/action"),
            &["open", "close", "reopen", "update", "merge"],
            PullRequestEvent {
                provider,
                host: host(text("/project/web_url")),
                owner: text("/project/path_with_namespace").into(),
                repo: String::new(),
                project_id: payload
                    .pointer("/object_attributes/target_project_id")
                    .and_then(Value::as_i64)
                    .map(|i| i.to_string()),
            },
        ),
        "bitbucketServer" => (
            event,
            &[
                "pr:opened",
                "pr:modified",
                "pr:from_ref_updated",
                "pr:merged",
                "pr:declined",
                "pr:deleted",
            ],
            PullRequestEvent {
                provider,
                host: None,
                owner: text("/pullRequest/toRef/repository/project/key").into(),
                repo: text("/pullRequest/toRef/repository/slug").into(),
                project_id: None,
            },
        ),
        _ => {
            let kind = text("/eventType");
            if !kind.starts_with("git.pullrequest.") {
                return Some(Outcome::Ignored(format!(
                    "azuredevops event {kind:?} is not about pull requests"
                )));
            }
            (
                kind,
                &[
                    "git.pullrequest.created",
                    "git.pullrequest.merged",
                    "git.pullrequest.updated",
                ],
                PullRequestEvent {
                    provider,
                    host: host(text("/resource/repository/remoteUrl")),
                    owner: text("/resource/repository/project/name").into(),
                    repo: text("/resource/repository/name").into(),
                    project_id: None,
                },
            )
        }
    };
    if !allowed.contains(&action) {
        return Some(Outcome::Ignored(format!(
            "{provider} pull request action {action:?} does not change the list"
        )));
    }
    if event.owner.is_empty() {
        return Some(Outcome::BadRequest(format!(
            "{provider} pull request event names no repository"
        )));
    }
    Some(Outcome::PullRequest(event))
}

/// Whether a `pullRequest` generator listing `source` reads what `event` changed: the
/// same provider, repository (owner and name compared without case, as GitHub does;
/// GitLab by project id or path) and server host. A templated field matches anything.
pub fn lists(
    event: &PullRequestEvent,
    source: &prism_engine::generators::PullRequestSource,
) -> bool {
    let templated = |s: &str| s.contains("{{");
    let same = |a: &str, b: &str| templated(a) || a.eq_ignore_ascii_case(b);
    if source.provider != event.provider {
        return false;
    }
    let host_ok = match (&event.host, source.api.split("://").nth(1)) {
        (Some(h), Some(rest)) if !templated(&source.api) => {
            let api_host = rest
                .split(['/', ':'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            // GitHub's events name `api.github.com`; Enterprise's the web host.
            api_host == *h
                || api_host.strip_prefix("api.") == Some(h)
                || h.strip_prefix("api.") == Some(&api_host)
        }
        _ => true,
    };
    let repo_ok = match event.provider {
        "gitlab" => {
            templated(&source.owner)
                || event.project_id.as_deref() == Some(source.owner.as_str())
                || source.owner.eq_ignore_ascii_case(&event.owner)
        }
        _ => same(&source.owner, &event.owner) && same(&source.repo, &event.repo),
    };
    host_ok && repo_ok
}

/// Checks Azure DevOps' basic auth against `user:password`.
fn check_basic(secret: Option<&[u8]>, header: Option<String>) -> Result<(), String> {
    use base64::Engine;
    let Some(secret) = secret else { return Ok(()) };
    let given = header
        .as_deref()
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .ok_or("missing basic auth")?;
    if constant_time_eq(secret, &given) {
        Ok(())
    } else {
        Err("basic auth does not match the configured user and password".into())
    }
}

/// Whether a git source (`repoURL`, `revision`) reads what `push` changed: the same
/// repository (compared as Argo compares URLs) and the pushed branch, or `HEAD`/empty
/// when the pushed branch is the default one.
pub fn reads(push: &Push, repo_url: &str, revision: &str) -> bool {
    let wanted = prism_engine::sources::normalize_url(&ssh_to_path(repo_url));
    let same_repo = push
        .repo_urls
        .iter()
        .any(|u| prism_engine::sources::normalize_url(&ssh_to_path(u)) == wanted);
    let revision = revision.trim_start_matches("refs/heads/");
    same_repo
        && (revision == push.branch
            || ((revision.is_empty() || revision == "HEAD")
                && push
                    .default_branch
                    .as_deref()
                    .is_none_or(|d| d == push.branch)))
}

/// `git@host:org/repo` and `ssh://git@host/org/repo` → `host/org/repo`, so SSH and
/// HTTPS forms of one repository compare equal.
fn ssh_to_path(url: &str) -> String {
    let u = url.trim();
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(u);
    let u = u.strip_prefix("ssh://").unwrap_or(u);
    let u = u.split_once('@').map(|(_, rest)| rest).unwrap_or(u);
    u.replacen(':', "/", 1)
}

fn check_hmac(
    secret: Option<&[u8]>,
    header: Option<String>,
    prefix: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let Some(secret) = secret else { return Ok(()) };
    let Some(sig) = header else {
        return Err("missing signature header".into());
    };
    let given = match prefix {
        Some(p) => sig.strip_prefix(p).ok_or("signature is not sha256=…")?,
        None => sig.as_str(),
    };
    let expected = hex(&hmac_sha256(secret, body));
    if constant_time_eq(
        expected.as_bytes(),
        given.trim().to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err("signature does not match the configured secret".into())
    }
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| block.iter().map(|k| k ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        move |k: &str| map.get(&k.to_ascii_lowercase()).cloned()
    }

    const GITHUB_PUSH: &str = r#"{"ref": "refs/heads/main", "repository": {"html_url": "https://github.com/org/services",
        "clone_url": "https://github.com/org/services.git", "ssh_url": "git@github.com:org/services.git", "default_branch": "main"}}"#;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn github_signatures_good_bad_missing() {
        let secrets = Secrets {
            github: Some(b"s3cret".to_vec()),
            ..Secrets::default()
        };
        let sig = format!(
            "sha256={}",
            hex(&hmac_sha256(b"s3cret", GITHUB_PUSH.as_bytes()))
        );
        let good = handle(
            &headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)]),
            GITHUB_PUSH.as_bytes(),
            &secrets,
        );
        let Outcome::Refresh(push) = &good else {
            panic!("{good:?}")
        };
        assert_eq!(push.branch, "main");
        assert_eq!(good.status(), 200);
        let bad = handle(
            &headers(&[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", "sha256=00"),
            ]),
            GITHUB_PUSH.as_bytes(),
            &secrets,
        );
        assert_eq!(bad.status(), 401);
        let missing = handle(
            &headers(&[("X-GitHub-Event", "push")]),
            GITHUB_PUSH.as_bytes(),
            &secrets,
        );
        assert_eq!(
            missing,
            Outcome::Unauthorized("github: missing signature header".into())
        );
        // A tampered body fails with the old signature.
        let tampered = GITHUB_PUSH.replace("main", "evil");
        assert_eq!(
            handle(
                &headers(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)]),
                tampered.as_bytes(),
                &secrets
            )
            .status(),
            401
        );
        // Other events are ignored with 200, after the signature check.
        let ping_sig = format!("sha256={}", hex(&hmac_sha256(b"s3cret", b"{}")));
        assert!(matches!(
            handle(
                &headers(&[
                    ("X-GitHub-Event", "ping"),
                    ("X-Hub-Signature-256", &ping_sig)
                ]),
                b"{}",
                &secrets
            ),
            Outcome::Ignored(_)
        ));
    }

    #[test]
    fn gitlab_token_and_gitea_signature() {
        let body = br#"{"ref": "refs/heads/release", "project": {"git_http_url": "https://gitlab.example/team/cfg.git", "git_ssh_url": "git@gitlab.example:team/cfg.git", "default_branch": "main"}}"#;
        let secrets = Secrets {
            gitlab: Some(b"tok".to_vec()),
            gitea: Some(b"g".to_vec()),
            ..Secrets::default()
        };
        let ok = handle(
            &headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "tok")]),
            body,
            &secrets,
        );
        assert!(
            matches!(&ok, Outcome::Refresh(p) if p.branch == "release"),
            "{ok:?}"
        );
        assert_eq!(
            handle(
                &headers(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "nope")]),
                body,
                &secrets
            )
            .status(),
            401
        );
        assert_eq!(
            handle(&headers(&[("X-Gitlab-Event", "Push Hook")]), body, &secrets).status(),
            401
        );
        assert!(matches!(
            handle(
                &headers(&[
                    ("X-Gitlab-Event", "Merge Request Hook"),
                    ("X-Gitlab-Token", "tok")
                ]),
                body,
                &secrets
            ),
            Outcome::Ignored(_)
        ));
        let gitea = GITHUB_PUSH.as_bytes();
        let sig = hex(&hmac_sha256(b"g", gitea));
        assert_eq!(
            handle(
                &headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &sig)]),
                gitea,
                &secrets
            )
            .status(),
            200
        );
        assert_eq!(
            handle(
                &headers(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", "ab")]),
                gitea,
                &secrets
            )
            .status(),
            401
        );
    }

    #[test]
    fn size_limit_unknown_events_and_bad_bodies() {
        let big = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            handle(
                &headers(&[("X-GitHub-Event", "push")]),
                &big,
                &Secrets::default()
            ),
            Outcome::TooLarge
        );
        assert_eq!(
            handle(&headers(&[("X-Other", "x")]), b"{}", &Secrets::default()).status(),
            200
        );
        assert_eq!(
            handle(
                &headers(&[("X-GitHub-Event", "push")]),
                b"nope",
                &Secrets::default()
            )
            .status(),
            400
        );
        let tag = br#"{"ref": "refs/tags/v1", "repository": {"html_url": "https://g/o/r"}}"#;
        assert!(matches!(
            handle(
                &headers(&[("X-GitHub-Event", "push")]),
                tag,
                &Secrets::default()
            ),
            Outcome::Ignored(_)
        ));
    }

    #[test]
    fn repo_and_branch_matching() {
        let Outcome::Refresh(push) = handle(
            &headers(&[("X-GitHub-Event", "push")]),
            GITHUB_PUSH.as_bytes(),
            &Secrets::default(),
        ) else {
            panic!()
        };
        assert!(reads(&push, "https://github.com/org/services.git", "main"));
        assert!(
            reads(&push, "https://GitHub.com/org/services", "HEAD"),
            "HEAD follows the default branch"
        );
        assert!(
            reads(&push, "git@github.com:org/services.git", ""),
            "SSH form of the same repository"
        );
        assert!(reads(
            &push,
            "ssh://git@github.com/org/services.git",
            "refs/heads/main"
        ));
        assert!(!reads(
            &push,
            "https://github.com/org/services.git",
            "release"
        ));
        assert!(!reads(&push, "https://github.com/org/other.git", "main"));
        let feature = Push {
            branch: "feature/x".into(),
            ..push
        };
        assert!(
            !reads(&feature, "https://github.com/org/services.git", "HEAD"),
            "HEAD is not a feature branch"
        );
        assert!(reads(
            &feature,
            "https://github.com/org/services.git",
            "feature/x"
        ));
    }

    fn source(
        provider: &str,
        api: &str,
        owner: &str,
        repo: &str,
    ) -> prism_engine::generators::PullRequestSource {
        prism_engine::generators::PullRequestSource {
            provider: provider.into(),
            api: api.into(),
            owner: owner.into(),
            repo: repo.into(),
        }
    }

    fn pull_request(h: &[(&str, &str)], body: Value, secrets: &Secrets) -> Outcome {
        handle(&headers(h), body.to_string().as_bytes(), secrets)
    }

    /// GitHub `pull_request` events refresh on Argo's actions (opened, closed,
    /// synchronize, labeled, reopened, unlabeled) and are matched by owner and name
    /// without case and by API host (applicationset/webhook/webhook.go).
    #[test]
    fn github_pull_request_events() {
        let body = |action: &str| {
            json!({"action": action, "number": 7,
                   "pull_request": {"number": 7, "head": {"ref": "feature"}},
                   "repository": {"name": "Checkout", "full_name": "Shop/Checkout",
                                  "owner": {"login": "Shop"},
                                  "url": "https://api.github.com/repos/Shop/Checkout",
                                  "html_url": "https://github.com/Shop/Checkout"}})
        };
        let secrets = Secrets::default();
        let h = [("X-GitHub-Event", "pull_request")];
        let Outcome::PullRequest(event) = pull_request(&h, body("labeled"), &secrets) else {
            panic!("not a pull request event")
        };
        assert_eq!(
            (event.owner.as_str(), event.repo.as_str()),
            ("Shop", "Checkout")
        );
        assert!(lists(
            &event,
            &source("github", "https://api.github.com/", "shop", "checkout")
        ));
        assert!(!lists(
            &event,
            &source("github", "https://api.github.com/", "shop", "cart")
        ));
        assert!(!lists(
            &event,
            &source("github", "https://github.corp.example/", "shop", "checkout")
        ));
        assert!(!lists(
            &event,
            &source("gitlab", "https://gitlab.com/", "shop/checkout", "")
        ));
        // A matrix child templated from an earlier child matches any repository.
        assert!(lists(
            &event,
            &source(
                "github",
                "https://api.github.com/",
                "{{ .organization }}",
                "{{ .repository }}"
            )
        ));
        for ignored in ["assigned", "review_requested", "edited"] {
            assert!(
                matches!(
                    pull_request(&h, body(ignored), &secrets),
                    Outcome::Ignored(_)
                ),
                "{ignored}"
            );
        }
        // The signature is checked as for pushes.
        let signed = Secrets {
            github: Some(b"k".to_vec()),
            ..Secrets::default()
        };
        assert_eq!(pull_request(&h, body("opened"), &signed).status(), 401);
    }

    /// GitLab merge request hooks (Argo's actions open, close, reopen, update, merge),
    /// matched by the target project's id, as Argo, or by its path, and host.
    #[test]
    fn gitlab_merge_request_events() {
        let body = |action: &str| {
            json!({"object_kind": "merge_request", "event_type": "merge_request",
                   "project": {"id": 4242, "path_with_namespace": "platform/checkout",
                               "web_url": "https://gitlab.corp.example/platform/checkout"},
                   "object_attributes": {"iid": 3, "action": action, "target_project_id": 4242,
                                         "source_branch": "feature"}})
        };
        let secrets = Secrets {
            gitlab: Some(b"tok".to_vec()),
            ..Secrets::default()
        };
        let h = [
            ("X-Gitlab-Event", "Merge Request Hook"),
            ("X-Gitlab-Token", "tok"),
        ];
        let Outcome::PullRequest(event) = pull_request(&h, body("update"), &secrets) else {
            panic!("not a merge request event")
        };
        assert_eq!(event.project_id.as_deref(), Some("4242"));
        assert!(lists(
            &event,
            &source("gitlab", "https://gitlab.corp.example", "4242", "")
        ));
        assert!(lists(
            &event,
            &source(
                "gitlab",
                "https://gitlab.corp.example/",
                "platform/checkout",
                ""
            )
        ));
        assert!(!lists(
            &event,
            &source("gitlab", "https://gitlab.com/", "4242", "")
        ));
        assert!(!lists(
            &event,
            &source("gitlab", "https://gitlab.corp.example", "platform/cart", "")
        ));
        assert!(matches!(
            pull_request(&h, body("approved"), &secrets),
            Outcome::Ignored(_)
        ));
        let wrong = [
            ("X-Gitlab-Event", "Merge Request Hook"),
            ("X-Gitlab-Token", "nope"),
        ];
        assert_eq!(pull_request(&wrong, body("open"), &secrets).status(), 401);
    }

    /// Gitea, Bitbucket Server (`pr:*` event keys, HMAC in `X-Hub-Signature`) and Azure
    /// DevOps (Argo's `git.pullrequest.created/updated/merged`, basic auth).
    #[test]
    fn gitea_bitbucket_server_and_azure_devops_events() {
        let gitea = json!({"action": "synchronized", "number": 2,
                           "repository": {"name": "api", "owner": {"login": "acme"},
                                          "html_url": "https://gitea.example/acme/api"}});
        let Outcome::PullRequest(e) = pull_request(
            &[("X-Gitea-Event", "pull_request")],
            gitea,
            &Secrets::default(),
        ) else {
            panic!("gitea")
        };
        assert!(lists(
            &e,
            &source("gitea", "https://gitea.example", "acme", "api")
        ));

        let bbs = json!({"eventKey": "pr:opened", "pullRequest": {"id": 5, "toRef": {
                            "repository": {"slug": "api", "project": {"key": "PROJ"}}}}});
        let key = b"bb".to_vec();
        let sig = format!(
            "sha256={}",
            hex(&hmac_sha256(&key, bbs.to_string().as_bytes()))
        );
        let secrets = Secrets {
            bitbucket_server: Some(key),
            ..Secrets::default()
        };
        let h = [
            ("X-Event-Key", "pr:opened"),
            ("X-Hub-Signature", sig.as_str()),
        ];
        let Outcome::PullRequest(e) = pull_request(&h, bbs.clone(), &secrets) else {
            panic!("bitbucket server")
        };
        assert!(lists(
            &e,
            &source("bitbucketServer", "https://bb.example", "PROJ", "api")
        ));
        assert!(!lists(
            &e,
            &source("bitbucketServer", "https://bb.example", "PROJ", "web")
        ));
        assert_eq!(
            pull_request(&[("X-Event-Key", "pr:opened")], bbs, &secrets).status(),
            401
        );

        use base64::Engine;
        let azure = json!({"eventType": "git.pullrequest.updated", "resource": {"repository": {
                              "name": "api", "project": {"name": "shop"},
                              "remoteUrl": "https://dev.azure.com/org/shop/_git/api"}}});
        let secrets = Secrets {
            azuredevops: Some(b"hook:pw".to_vec()),
            ..Secrets::default()
        };
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("hook:pw")
        );
        let h = [("X-Vss-ActivityId", "1"), ("Authorization", auth.as_str())];
        let Outcome::PullRequest(e) = pull_request(&h, azure.clone(), &secrets) else {
            panic!("azure devops")
        };
        assert!(lists(
            &e,
            &source("azuredevops", "https://dev.azure.com", "shop", "api")
        ));
        assert_eq!(
            pull_request(&[("X-Vss-ActivityId", "1")], azure, &secrets).status(),
            401
        );
        let push = json!({"eventType": "git.push", "resource": {}});
        assert!(matches!(
            pull_request(&h, push, &secrets),
            Outcome::Ignored(_)
        ));
    }
}
