//! The `images` generator against a real registry (Debian's `docker-registry`) and,
//! for what that registry does not do (pagination, 429, token auth, Docker Hub's
//! `library/`), against a small scripted HTTP server.

mod common;

use common::registry::Registry;
use common::{prism, stderr, stdout, write};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A prism.dev spec: environments × one `images` entry given as YAML flow text.
fn spec(dir: &std::path::Path, images: &str) -> String {
    write(
        dir,
        "appset.yaml",
        &format!(
            r#"
apiVersion: prism.dev/v1alpha1
kind: ApplicationSet
metadata: {{name: shop, namespace: argocd}}
spec:
  generators:
  - matrix:
      generators:
      - list: {{elements: [{{env: test}}, {{env: prod}}]}}
      - images:
          images: [{images}]
  template:
    metadata: {{name: 'api-{{{{env}}}}'}}
    spec:
      project: default
      source:
        repoURL: https://git.example/shop/api.git
        targetRevision: HEAD
        path: deploy
        helm:
          parameters:
          - {{name: image.tag, value: '{{{{images.api.tag}}}}'}}
          - {{name: image.ref, value: '{{{{images.api.ref}}}}'}}
      destination: {{server: https://kubernetes.default.svc, namespace: 'api-{{{{env}}}}'}}
"#
        ),
    )
}

fn registries(dir: &std::path::Path, prefix: &str, api: &str, extra: &str) -> String {
    write(
        dir,
        "registries.yaml",
        &format!("registries:\n- prefix: {prefix}\n  apiURL: {api}\n{extra}"),
    )
}

/// Renders and returns (tag, ref) of `api-prod`, or the error text.
fn render(spec: &str, registries: &str) -> Result<(String, String), String> {
    let out = prism(&["generate", spec, "--registries", registries, "-o", "json"]);
    if !out.status.success() {
        assert_eq!(stdout(&out), "", "nothing on stdout when a generator fails");
        return Err(stderr(&out));
    }
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let p = &items[0]["spec"]["source"]["helm"]["parameters"];
    assert_eq!(
        p, &items[1]["spec"]["source"]["helm"]["parameters"],
        "every env gets the same image"
    );
    Ok((
        p[0]["value"].as_str().unwrap().into(),
        p[1]["value"].as_str().unwrap().into(),
    ))
}

#[test]
fn strategies_against_a_real_registry() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let regs = registries(dir.path(), &reg.host, &format!("http://{}", reg.host), "");
    let name = format!("{}/team/api", reg.host);
    let mut digests = std::collections::HashMap::new();
    for (tag, created) in [
        ("1.3.9", "2026-01-01T00:00:00Z"),
        ("1.4.0", "2026-01-02T00:00:00Z"),
        ("1.4.7", "2026-01-03T00:00:00Z"),
        ("1.4.8-rc.1", "2026-01-05T00:00:00Z"),
        ("1.5.0", "2026-01-04T00:00:00Z"),
        ("main-aaa", "2026-02-01T00:00:00Z"),
        ("main-ccc", "2026-02-03T00:00:00Z"),
        ("main-ddd-debug", "2026-02-09T00:00:00Z"),
        ("main-bbb", "2026-02-05T00:00:00Z"),
    ] {
        digests.insert(tag, reg.push("team/api", Some(tag), created, "amd64").0);
    }
    let run = |images: &str| render(&spec(dir.path(), images), &regs);

    // semver within a range; pre-releases only when the constraint has one.
    let (tag, reference) = run(&format!(
        "{{alias: api, name: '{name}', strategy: semver, constraint: '~1.4'}}"
    ))
    .unwrap();
    assert_eq!(tag, "1.4.7");
    assert_eq!(reference, format!("{name}:1.4.7@{}", digests["1.4.7"]));
    let (tag, _) = run(&format!(
        "{{alias: api, name: '{name}', constraint: '>=1.4.8-rc.0 <1.5'}}"
    ))
    .unwrap();
    assert_eq!(tag, "1.4.8-rc.1");
    let (tag, _) = run(&format!("{{alias: api, name: '{name}'}}")).unwrap();
    assert_eq!(tag, "1.5.0");

    // newest-build among main-* builds, -debug ignored.
    let (tag, reference) = run(&format!(
        "{{alias: api, name: '{name}', strategy: newest-build, allowTags: 'regexp:^main-', ignoreTags: ['*-debug']}}"
    ))
    .unwrap();
    assert_eq!(tag, "main-bbb");
    assert!(reference.ends_with(&digests["main-bbb"]));

    // alphabetical.
    let (tag, _) = run(&format!(
        "{{alias: api, name: '{name}', strategy: alphabetical, allowTags: 'regexp:^main-[a-c]'}}"
    ))
    .unwrap();
    assert_eq!(tag, "main-ccc");

    // No allowed tag: an error naming the image and the filters, exit 1.
    let err = run(&format!(
        "{{alias: api, name: '{name}', constraint: '~2.0'}}"
    ))
    .unwrap_err();
    assert!(
        err.contains(&format!(
            "image {name}: no tag of 9 passes the filters (strategy Semver, constraint \"~2.0\""
        )),
        "{err}"
    );
    let err = run(&format!(
        "{{alias: api, name: '{}/team/missing'}}",
        reg.host
    ))
    .unwrap_err();
    assert!(
        err.contains("team/missing does not exist in the registry"),
        "{err}"
    );
}

#[test]
fn digest_follows_a_tag_and_newest_build_reads_the_platform_child() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let regs = registries(dir.path(), &reg.host, &format!("http://{}", reg.host), "");
    let name = format!("{}/team/web", reg.host);
    let first = reg
        .push("team/web", Some("latest"), "2026-01-01T00:00:00Z", "amd64")
        .0;
    let images = format!("{{alias: api, name: '{name}', strategy: digest, constraint: latest}}");
    let (tag, reference) = render(&spec(dir.path(), &images), &regs).unwrap();
    assert_eq!(
        (tag.as_str(), reference),
        ("latest", format!("{name}:latest@{first}"))
    );
    let second = reg
        .push("team/web", Some("latest"), "2026-01-02T00:00:00Z", "amd64")
        .0;
    assert_ne!(first, second);
    let (_, reference) = render(&spec(dir.path(), &images), &regs).unwrap();
    assert_eq!(
        reference,
        format!("{name}:latest@{second}"),
        "a re-push moves the digest"
    );

    // Two multi-platform builds: which is newer depends on the platform asked for.
    let index_a = reg.push_index(
        "team/multi",
        "build-a",
        &[
            ("amd64", "2026-03-01T00:00:00Z"),
            ("arm64", "2026-03-09T00:00:00Z"),
        ],
    );
    let index_b = reg.push_index(
        "team/multi",
        "build-b",
        &[
            ("amd64", "2026-03-05T00:00:00Z"),
            ("arm64", "2026-03-02T00:00:00Z"),
        ],
    );
    let multi = format!("{}/team/multi", reg.host);
    let pick = |platform: &str| {
        render(
            &spec(dir.path(), &format!("{{alias: api, name: '{multi}', strategy: newest-build, platforms: ['{platform}']}}")),
            &regs,
        )
        .unwrap()
    };
    assert_eq!(
        pick("linux/amd64"),
        ("build-b".to_string(), format!("{multi}:build-b@{index_b}"))
    );
    assert_eq!(
        pick("linux/arm64"),
        ("build-a".to_string(), format!("{multi}:build-a@{index_a}"))
    );
}

/// A scripted registry: Docker Hub's `library/`, Bearer token auth, a 429 with
/// `Retry-After`, and `tags/list` in two pages linked by `Link`.
fn scripted_registry(password: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let mut throttled = false;
    let port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let own_port = port.clone();
    let bound = common::http::serve(move |r| {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", r.method, r.path));
        let basic = format!("Basic {}", base64_user_pass("robot", password));
        let port = own_port.get().copied().unwrap_or(0);
        if r.path.starts_with("/token") {
            return if r.authorization == basic {
                (200, vec![], r#"{"token": "t0k3n"}"#.into())
            } else {
                (401, vec![], "{}".into())
            };
        }
        if r.authorization != "Bearer t0k3n" {
            return (401, vec![format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"scripted\",scope=\"repository:library/nginx:pull\"")], "{}".into());
        }
        if r.path.starts_with("/v2/library/nginx/tags/list") && !throttled {
            throttled = true;
            return (429, vec!["Retry-After: 1".into()], "{}".into());
        }
        match r.path.as_str() {
            "/v2/library/nginx/tags/list?n=1000" => (
                200,
                vec!["Link: </v2/library/nginx/tags/list?last=1.26.0&n=1000>; rel=\"next\"".into()],
                r#"{"tags": ["1.25.3", "1.26.0"]}"#.into(),
            ),
            "/v2/library/nginx/tags/list?last=1.26.0&n=1000" => (
                200,
                vec![],
                r#"{"tags": ["1.27.1", "1.27.2-alpine", "latest"]}"#.into(),
            ),
            "/v2/library/nginx/manifests/1.27.1" => (
                200,
                vec!["Docker-Content-Digest: sha256:feed".into()],
                String::new(),
            ),
            _ => (404, vec![], "{}".into()),
        }
    });
    let _ = port.set(bound);
    (bound, log)
}

fn base64_user_pass(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

#[test]
fn token_auth_pagination_retry_and_docker_hub_names() {
    let (port, log) = scripted_registry("s3cret");
    let dir = tempfile::tempdir().unwrap();
    let images = "{alias: api, name: nginx, constraint: '~1.27'}";
    let good = registries(
        dir.path(),
        "docker.io",
        &format!("http://127.0.0.1:{port}"),
        "  credentials: {username: robot, password: s3cret}\n",
    );
    let (tag, reference) = render(&spec(dir.path(), images), &good).unwrap();
    assert_eq!(
        (tag.as_str(), reference.as_str()),
        ("1.27.1", "nginx:1.27.1@sha256:feed")
    );
    let requests = log.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /token")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"GET /v2/library/nginx/tags/list?last=1.26.0&n=1000".to_string()),
        "{requests:?}"
    );
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.contains("tags/list?n=1000"))
            .count(),
        3,
        "401, 429, then 200: {requests:?}"
    );
    assert!(
        requests.contains(&"HEAD /v2/library/nginx/manifests/1.27.1".to_string()),
        "HEAD is enough for a digest: {requests:?}"
    );

    let bad = registries(
        dir.path(),
        "docker.io",
        &format!("http://127.0.0.1:{port}"),
        "  credentials: {username: robot, password: wrong}\n",
    );
    let err = render(&spec(dir.path(), images), &bad).unwrap_err();
    assert!(err.contains("token service http://127.0.0.1:"), "{err}");
    assert!(
        err.contains("refused access to library/nginx (HTTP 401); check the registry credentials"),
        "{err}"
    );
}

#[test]
fn a_self_signed_registry_needs_its_ca() {
    let reg = Registry::start_tls();
    let dir = tempfile::tempdir().unwrap();
    let (digest, _) = reg.push("team/api", Some("1.0.0"), "2026-01-01T00:00:00Z", "amd64");
    let images = format!("{{alias: api, name: '{}/team/api'}}", reg.host);
    let spec = spec(dir.path(), &images);

    let plain = registries(dir.path(), &reg.host, &reg.api_url(), "");
    let err = render(&spec, &plain).unwrap_err();
    assert!(err.contains("TLS certificate not trusted"), "{err}");
    assert!(
        err.contains("set caFile (or caData) for it in --registries"),
        "{err}"
    );

    let with_ca = registries(
        dir.path(),
        &reg.host,
        &reg.api_url(),
        &format!("  caFile: {}\n", reg.ca_file().display()),
    );
    let (tag, reference) = render(&spec, &with_ca).unwrap();
    assert_eq!(tag, "1.0.0");
    assert!(reference.ends_with(&digest));

    let insecure = registries(dir.path(), &reg.host, &reg.api_url(), "  insecure: true\n");
    assert_eq!(render(&spec, &insecure).unwrap().0, "1.0.0");
}

#[test]
fn write_back_commits_chosen_tags_to_a_real_bare_repository() {
    let reg = Registry::start();
    reg.push("team/api", Some("1.4.0"), "2026-01-01T00:00:00Z", "amd64");
    let dir = tempfile::tempdir().unwrap();
    // The config repository: one existing source file with a parameter of its own.
    let seed = common::TestRepo::new();
    seed.commit(
        &[(
            "apps/.argocd-source-api-prod.yaml",
            Some("helm:\n  parameters:\n  - name: replicas\n    value: '3'\n"),
        )],
        "seed",
    );
    let bare = dir.path().join("config.git");
    let out = std::process::Command::new("git")
        .args(["clone", "--quiet", "--bare"])
        .arg(seed.path())
        .arg(&bare)
        .output()
        .unwrap();
    assert!(out.status.success());
    // A hook that rejects the first push: the write-back must fetch and retry.
    let hook = bare.join("hooks").join("pre-receive");
    std::fs::write(&hook, "#!/bin/sh\nif [ ! -f \"$GIT_DIR/rejected-once\" ]; then touch \"$GIT_DIR/rejected-once\"; echo busy >&2; exit 1; fi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let images = format!(
        "{{alias: api, name: '{}/team/api', constraint: '~1.4'}}",
        reg.host
    );
    let text = std::fs::read_to_string(spec(dir.path(), &images)).unwrap().replace(
        "  template:\n",
        &format!(
            "  writeBack: {{method: git, repoURL: 'file://{}', branch: main, path: apps, author: {{name: Image Bot, email: bot@example.com}}}}\n  template:\n",
            bare.display()
        ),
    );
    let spec_file = write(dir.path(), "wb.yaml", &text);
    let regs = registries(dir.path(), &reg.host, &reg.api_url(), "");
    let run = || {
        prism(&[
            "generate",
            &spec_file,
            "--registries",
            &regs,
            "--write-back",
            "-o",
            "names",
        ])
    };

    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "api-prod\napi-test\n");
    assert!(
        stderr(&out).contains("write-back: ApplicationSet shop: pushed "),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("(2 files)"), "{}", stderr(&out));
    assert!(
        bare.join("rejected-once").exists(),
        "the first push was rejected and retried"
    );

    let read = |path: &str| {
        let repo = git2::Repository::open_bare(&bare).unwrap();
        let tree = repo
            .revparse_single("main")
            .unwrap()
            .peel_to_tree()
            .unwrap();
        let blob = tree
            .get_path(std::path::Path::new(path))
            .unwrap()
            .to_object(&repo)
            .unwrap();
        String::from_utf8(blob.as_blob().unwrap().content().to_vec()).unwrap()
    };
    let name = format!("{}/team/api", reg.host);
    assert_eq!(
        read("apps/.argocd-source-api-prod.yaml"),
        format!("helm:\n  parameters:\n  - name: image.name\n    value: {name}\n    forcestring: true\n  - name: image.tag\n    value: 1.4.0\n    forcestring: true\n  - name: replicas\n    value: '3'\n")
    );
    assert!(read("apps/.argocd-source-api-test.yaml").contains("value: 1.4.0"));
    let head = |bare: &std::path::Path| {
        let repo = git2::Repository::open_bare(bare).unwrap();
        let c = repo
            .revparse_single("main")
            .unwrap()
            .peel_to_commit()
            .unwrap();
        let author = c.author().name().unwrap_or_default().to_string();
        (c.id(), author, c.parent_count())
    };
    let (first, author, parents) = head(&bare);
    assert_eq!((author.as_str(), parents), ("Image Bot", 1));

    // Nothing changed: no commit.
    let out = run();
    assert!(stderr(&out).contains("is up to date"), "{}", stderr(&out));
    assert_eq!(head(&bare).0, first);

    // A new allowed tag: a new commit on top.
    reg.push("team/api", Some("1.4.1"), "2026-01-02T00:00:00Z", "amd64");
    let out = run();
    assert!(stderr(&out).contains("pushed"), "{}", stderr(&out));
    assert!(read("apps/.argocd-source-api-prod.yaml").contains("value: 1.4.1"));
    assert_ne!(head(&bare).0, first);
}

#[test]
fn requests_are_spaced_to_the_rate_limit() {
    use prism::registry::client::{RegistrySetting, RegistrySettings};
    use prism::registry::RegistryClient;
    use prism_engine::generators::images::{ImageQuery, Strategy};
    let reg = Registry::start();
    reg.push("team/api", Some("1.0.0"), "2026-01-01T00:00:00Z", "amd64");
    let settings = RegistrySettings {
        registries: vec![RegistrySetting {
            rate_per_second: Some(10.0),
            ..RegistrySetting::new(&reg.host, &reg.api_url())
        }],
    };
    let client = RegistryClient::new(settings, None).unwrap();
    let started = std::time::Instant::now();
    for constraint in ["~1.0", ">=1", "1.x"] {
        let q = ImageQuery {
            alias: "a".into(),
            name: format!("{}/team/api", reg.host),
            strategy: Strategy::Semver,
            constraint: constraint.into(),
            allow_tags: None,
            ignore_tags: vec![],
            platforms: vec![],
        };
        assert_eq!(client.resolve(&q).unwrap().tag, "1.0.0");
    }
    assert_eq!(
        client.requests(),
        6,
        "tags/list and HEAD per distinct query"
    );
    // Six requests at 10/s: the last starts at least 0.5 s after the first.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

/// Serves tokens from `issuer` to `robot:password` on 127.0.0.1; returns the realm URL.
fn token_service(issuer: Arc<common::registry::TokenIssuer>, password: &'static str) -> String {
    let port = common::http::serve(move |r| {
        if r.authorization != format!("Basic {}", base64_user_pass("robot", password)) {
            return (401, vec![], "{}".into());
        }
        // scope=repository:<name>:pull
        let repo = r
            .path
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("scope="))
            .map(|s| s.replace("%3A", ":").replace("%2F", "/"))
            .and_then(|s| s.split(':').nth(1).map(str::to_string))
            .unwrap_or_default();
        let token = issuer.token("robot", &repo, &["pull"]);
        (
            200,
            vec![],
            serde_json::json!({ "token": token }).to_string(),
        )
    });
    format!("http://127.0.0.1:{port}/token")
}

#[test]
fn token_auth_against_the_real_registry() {
    let mut reg = Registry::start();
    let (digest, _) = reg.push("team/api", Some("2.0.0"), "2026-01-01T00:00:00Z", "amd64");
    let issuer = Arc::new(common::registry::TokenIssuer::new());
    let realm = token_service(issuer.clone(), "s3cret");
    reg.restart_with_token_auth(&realm, &issuer.cert());
    let dir = tempfile::tempdir().unwrap();
    let images = format!("{{alias: api, name: '{}/team/api'}}", reg.host);
    let spec = spec(dir.path(), &images);

    let good = registries(
        dir.path(),
        &reg.host,
        &reg.api_url(),
        "  credentials: {username: robot, password: s3cret}\n",
    );
    let (tag, reference) = render(&spec, &good).unwrap();
    assert_eq!(tag, "2.0.0");
    assert!(reference.ends_with(&digest));

    let bad = registries(
        dir.path(),
        &reg.host,
        &reg.api_url(),
        "  credentials: {username: robot, password: nope}\n",
    );
    let err = render(&spec, &bad).unwrap_err();
    assert!(
        err.contains("refused access to team/api (HTTP 401); check the registry credentials"),
        "{err}"
    );

    // Anonymous: the token service refuses too.
    let anonymous = registries(dir.path(), &reg.host, &reg.api_url(), "");
    let err = render(&spec, &anonymous).unwrap_err();
    assert!(err.contains("refused access to team/api"), "{err}");
}

/// A registry that only knows Basic auth (`robot:password`) and one image `team/app:1.0.0`.
fn basic_only_registry(password: &'static str) -> u16 {
    common::http::serve(move |r| {
        if r.authorization != format!("Basic {}", base64_user_pass("robot", password)) {
            return (
                401,
                vec!["WWW-Authenticate: Basic realm=\"basic-registry\"".into()],
                "{}".into(),
            );
        }
        if r.path.starts_with("/v2/team/app/tags/list") {
            (200, vec![], r#"{"tags": ["1.0.0"]}"#.into())
        } else if r.path == "/v2/team/app/manifests/1.0.0" {
            (
                200,
                vec!["Docker-Content-Digest: sha256:b4c".into()],
                String::new(),
            )
        } else {
            (404, vec![], "{}".into())
        }
    })
}

#[test]
fn basic_auth_registries_get_the_configured_credentials() {
    let port = basic_only_registry("pa55");
    let host = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(
        dir.path(),
        &format!("{{alias: api, name: '{host}/team/app'}}"),
    );
    let api = format!("http://{host}");
    let good = registries(
        dir.path(),
        &host,
        &api,
        "  credentials: {username: robot, password: pa55}\n",
    );
    assert_eq!(
        render(&spec, &good).unwrap().1,
        format!("{host}/team/app:1.0.0@sha256:b4c")
    );
    // The same credentials from a docker config.json given with --registry-auth.
    let config = write(
        dir.path(),
        "config.json",
        &format!(
            r#"{{"auths": {{"{host}": {{"auth": "{}"}}}}}}"#,
            base64_user_pass("robot", "pa55")
        ),
    );
    let plain = registries(dir.path(), &host, &api, "");
    let out = prism(&[
        "generate",
        &spec,
        "--registries",
        &plain,
        "--registry-auth",
        &config,
        "-o",
        "names",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wrong = registries(
        dir.path(),
        &host,
        &api,
        "  credentials: {username: robot, password: nope}\n",
    );
    let err = render(&spec, &wrong).unwrap_err();
    assert!(
        err.contains(&format!(
            "{host} refused the credentials for team/app (HTTP 401)"
        )),
        "{err}"
    );
    let plain = registries(dir.path(), &host, &api, ""); // (the file was overwritten)
    let err = render(&spec, &plain).unwrap_err();
    assert!(err.contains("asks for credentials (Basic realm=\"basic-registry\"); set credentials for it in --registries or pass --registry-auth"), "{err}");
}
