//! The webhook endpoint's logic (`POST /api/webhook`), as pure functions: verify a
//! GitHub, GitLab or Gitea push event and say which git repository and branch
//! changed, then which ApplicationSets read them. The HTTP server around it belongs
//! to the controller's edge.
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

/// What to answer and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: refresh the sets that read this push.
    Refresh(Push),
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
            Outcome::Refresh(_) | Outcome::Ignored(_) => 200,
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
    } else {
        return Outcome::Ignored("not a GitHub, GitLab or Gitea event".into());
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
}
