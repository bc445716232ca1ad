//! Repositories, branches and paths from each provider's API (the `scmProvider`
//! generator), asked as Argo CD's `applicationset/services/scm_provider/` asks them.
//! The generator applies Argo's filters; this file answers its three questions.

use super::pull_requests::{azure_api, azure_pat, basic_auth, bitbucket_auth, block, tls_of};
use super::{
    bitbucket_server_base, encode_component, gitlab_api_base, Api, Call, ScmClient, ScmTokens, Tls,
    AZURE_DEVOPS, BITBUCKET_CLOUD, BITBUCKET_SERVER, GITEA, GITHUB, GITLAB,
};
use prism_engine::generators::scm_provider::{
    AzureDevOpsScm, BitbucketScm, BitbucketServerScm, GiteaScm, GithubScm, GitlabScm,
};
use prism_engine::sources::{ScmError, ScmProviderService, ScmQuery, ScmRepository};
use serde_json::Value;

/// One provider block, ready to ask: its API, credentials, TLS and root URL.
pub struct Provider<'a> {
    client: &'a ScmClient,
    api: &'static Api,
    call: Call,
    /// The API root every URL starts with.
    base: String,
    kind: Kind,
}

/// What each provider needs beyond the shared parts.
enum Kind {
    Github(GithubScm),
    Gitlab(GitlabScm),
    Gitea(GiteaScm),
    BitbucketServer(BitbucketServerScm),
    Bitbucket(BitbucketScm),
    AzureDevOps(AzureDevOpsScm),
}

impl ScmClient {
    /// The provider an `scmProvider` block names, its credentials read from `tokens`.
    pub fn scm_provider<'a>(
        &'a self,
        query: &ScmQuery<'_>,
        tokens: &ScmTokens,
    ) -> Result<Provider<'a>, ScmError> {
        let plain = |auth| Call {
            auth,
            tls: Tls::default(),
        };
        let (api, call, base, kind) = match query.provider {
            "github" => {
                let spec: GithubScm = block(query)?;
                let (base, auth) = self.github_auth(
                    spec.api.as_deref(),
                    spec.token_ref.as_ref(),
                    spec.app_secret_name.as_deref(),
                    &spec.organization,
                    tokens,
                )?;
                (&GITHUB, plain(auth), base, Kind::Github(spec))
            }
            "gitlab" => {
                let spec: GitlabScm = block(query)?;
                self.check_api(spec.api.as_deref())?;
                let call = Call {
                    auth: tokens
                        .token(spec.token_ref.as_ref(), "GITLAB_TOKEN")?
                        .map(|t| ("PRIVATE-TOKEN", t)),
                    tls: tls_of(spec.insecure, spec.ca_ref.as_ref(), tokens)?,
                };
                let base = gitlab_api_base(spec.api.as_deref());
                (&GITLAB, call, base, Kind::Gitlab(spec))
            }
            "gitea" => {
                let spec: GiteaScm = block(query)?;
                self.check_api(Some(&spec.api))?;
                let call = Call {
                    auth: tokens
                        .token(spec.token_ref.as_ref(), "GITEA_TOKEN")?
                        .map(|t| ("Authorization", format!("token {t}"))),
                    tls: tls_of(spec.insecure, None, tokens)?,
                };
                let base = format!("{}/api/v1", spec.api.trim_end_matches('/'));
                (&GITEA, call, base, Kind::Gitea(spec))
            }
            "bitbucketServer" => {
                let spec: BitbucketServerScm = block(query)?;
                self.check_api(Some(&spec.api))?;
                let call = Call {
                    auth: bitbucket_auth(
                        spec.bearer_token.as_ref(),
                        spec.basic_auth.as_ref(),
                        tokens,
                    )?,
                    tls: tls_of(spec.insecure, spec.ca_ref.as_ref(), tokens)?,
                };
                let base = format!("{}/api/1.0", bitbucket_server_base(&spec.api));
                (&BITBUCKET_SERVER, call, base, Kind::BitbucketServer(spec))
            }
            "bitbucket" => {
                let spec: BitbucketScm = block(query)?;
                let password = match &spec.app_password_ref {
                    Some(r) => tokens.get(r)?.trim().to_string(),
                    None => String::new(),
                };
                let auth = Some(basic_auth(&spec.user, &password));
                let base = self.bitbucket_cloud_api.clone();
                (&BITBUCKET_CLOUD, plain(auth), base, Kind::Bitbucket(spec))
            }
            "azureDevOps" => {
                let spec: AzureDevOpsScm = block(query)?;
                self.check_api(spec.api.as_deref())?;
                let token = match &spec.access_token_ref {
                    Some(r) => tokens.get(r)?.trim().to_string(),
                    None => String::new(),
                };
                if token.is_empty() {
                    return Err(ScmError::Other("no access token provided".into()));
                }
                let base = format!(
                    "{}/{}/{}/_apis/git",
                    azure_api(spec.api.as_deref()),
                    encode_component(&spec.organization),
                    encode_component(&spec.team_project)
                );
                (
                    &AZURE_DEVOPS,
                    plain(Some(azure_pat(&token))),
                    base,
                    Kind::AzureDevOps(spec),
                )
            }
            other => {
                return Err(ScmError::Other(format!(
                    "{other} is not an scmProvider provider"
                )))
            }
        };
        Ok(Provider {
            client: self,
            api,
            call,
            base,
            kind,
        })
    }
}

/// A JSON string at `pointer`, or empty.
fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Strings of a JSON list (`topics`), or of its objects' `name`s.
fn names(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|x| x.as_str().or_else(|| x["name"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The `href` of the clone link called `name` (Bitbucket's `links.clone[]`).
fn clone_link(repo: &Value, name: &str) -> Option<String> {
    repo.pointer("/links/clone")?
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

/// `repo` on `branch` at `sha`.
fn on_branch(repo: &ScmRepository, branch: String, sha: String) -> ScmRepository {
    ScmRepository {
        branch,
        sha,
        ..repo.clone()
    }
}

impl Provider<'_> {
    fn list(&self, url: String, what: &str) -> Result<Vec<Value>, ScmError> {
        self.client.list(self.api, &self.call, url, what)
    }

    fn get(&self, url: &str, what: &str) -> Result<Option<Value>, ScmError> {
        self.client.get(self.api, &self.call, url, what)
    }

    /// `https` asks for the HTTPS clone URL; anything else (`ssh`, empty) for SSH.
    fn https(protocol: &str) -> bool {
        protocol == "https"
    }
}

impl ScmProviderService for Provider<'_> {
    fn list_repos(&self, clone_protocol: &str) -> Result<Vec<ScmRepository>, ScmError> {
        let https = Self::https(clone_protocol);
        let b = &self.base;
        let mut out = Vec::new();
        match &self.kind {
            Kind::Github(spec) => {
                let url = format!(
                    "{b}orgs/{}/repos?per_page=100",
                    encode_component(&spec.organization)
                );
                for r in self.list(url, &spec.organization)? {
                    if spec.exclude_archived_repos && r["archived"] == true {
                        continue;
                    }
                    out.push(ScmRepository {
                        organization: text(&r, "/owner/login"),
                        repository: text(&r, "/name"),
                        repository_id: r["id"].clone(),
                        url: text(&r, if https { "/clone_url" } else { "/ssh_url" }),
                        branch: text(&r, "/default_branch"),
                        sha: String::new(),
                        labels: names(r.get("topics")),
                    });
                }
            }
            Kind::Gitlab(spec) => {
                let mut url = format!(
                    "{b}groups/{}/projects?per_page=100&include_subgroups={}&with_shared={}",
                    encode_component(&spec.group),
                    spec.include_subgroups,
                    spec.include_shared_projects.unwrap_or(true)
                );
                if let Some(topic) = spec.topic.as_deref().filter(|t| !t.is_empty()) {
                    url.push_str(&format!("&topic={}", encode_component(topic)));
                }
                if spec.include_archived_repos {
                    url.push_str("&archived=true");
                }
                for r in self.list(url, &spec.group)? {
                    // Argo: topics, or the older tag_list when there are none.
                    let mut labels = names(r.get("topics"));
                    if labels.is_empty() {
                        labels = names(r.get("tag_list"));
                    }
                    out.push(ScmRepository {
                        organization: text(&r, "/namespace/full_path"),
                        repository: text(&r, "/path"),
                        repository_id: r["id"].clone(),
                        url: text(
                            &r,
                            if https {
                                "/http_url_to_repo"
                            } else {
                                "/ssh_url_to_repo"
                            },
                        ),
                        branch: text(&r, "/default_branch"),
                        sha: String::new(),
                        labels,
                    });
                }
            }
            Kind::Gitea(spec) => {
                let owner = encode_component(&spec.owner);
                let url = format!("{b}/orgs/{owner}/repos?limit=50&page=1");
                for r in self.list(url, &spec.owner)? {
                    if spec.exclude_archived_repos && r["archived"] == true {
                        continue;
                    }
                    let name = text(&r, "/name");
                    // As Argo: each repository's labels, asked one by one.
                    let labels_url = format!(
                        "{b}/repos/{owner}/{}/labels?limit=50&page=1",
                        encode_component(&name)
                    );
                    let labels = self.list(labels_url, &format!("{}/{name}", spec.owner))?;
                    out.push(ScmRepository {
                        organization: spec.owner.clone(),
                        repository: name,
                        repository_id: r["id"].clone(),
                        // Argo gives the web URL for https.
                        url: text(&r, if https { "/html_url" } else { "/ssh_url" }),
                        branch: text(&r, "/default_branch"),
                        sha: String::new(),
                        labels: names(Some(&Value::Array(labels))),
                    });
                }
            }
            Kind::BitbucketServer(spec) => {
                let url = format!(
                    "{b}/projects/{}/repos?limit=100",
                    encode_component(&spec.project)
                );
                for r in self.list(url, &spec.project)? {
                    let org = text(&r, "/project/key");
                    let name = text(&r, "/name");
                    let repo = ScmRepository {
                        organization: org,
                        repository: name,
                        repository_id: r["id"].clone(),
                        url: clone_link(&r, if https { "http" } else { "ssh" }).unwrap_or_default(),
                        branch: String::new(),
                        sha: String::new(),
                        labels: Vec::new(),
                    };
                    // A repository without a default branch (empty) is skipped, as Argo.
                    if let Some(default) = self.bitbucket_server_default(&repo)? {
                        out.push(default);
                    }
                }
            }
            Kind::Bitbucket(spec) => {
                let protocol = if clone_protocol.is_empty() {
                    "ssh"
                } else {
                    clone_protocol
                };
                let url = format!(
                    "{b}/repositories/{}?role=member",
                    encode_component(&spec.owner)
                );
                for r in self.list(url, &spec.owner)? {
                    let slug = text(&r, "/slug");
                    let url = clone_link(&r, protocol).ok_or_else(|| {
                        ScmError::Other(format!(
                            "error fetching clone url for repo {slug}: unknown clone protocol for Bitbucket cloud {protocol}"
                        ))
                    })?;
                    out.push(ScmRepository {
                        organization: spec.owner.clone(),
                        repository: slug,
                        repository_id: r["uuid"].clone(),
                        url,
                        branch: text(&r, "/mainbranch/name"),
                        sha: String::new(),
                        labels: Vec::new(),
                    });
                }
            }
            Kind::AzureDevOps(spec) => {
                let url = format!("{b}/repositories?api-version=7.1");
                for r in self.list(url, &spec.team_project)? {
                    let (Some(name), Some(branch), Some(url), Some(_)) = (
                        r["name"].as_str(),
                        r["defaultBranch"].as_str(),
                        r["remoteUrl"].as_str(),
                        r["id"].as_str(),
                    ) else {
                        // As Argo: repositories missing any of these are skipped.
                        continue;
                    };
                    out.push(ScmRepository {
                        organization: spec.organization.clone(),
                        repository: name.to_string(),
                        repository_id: r["id"].clone(),
                        url: url.to_string(),
                        branch: branch.to_string(),
                        sha: String::new(),
                        labels: Vec::new(),
                    });
                }
            }
        }
        Ok(out)
    }

    fn branches(&self, repo: &ScmRepository) -> Result<Vec<ScmRepository>, ScmError> {
        let b = &self.base;
        let what = format!("{}/{}", repo.organization, repo.repository);
        let (org, name, branch) = (
            encode_component(&repo.organization),
            encode_component(&repo.repository),
            encode_component(&repo.branch),
        );
        let all = match &self.kind {
            Kind::Github(s) => s.all_branches,
            Kind::Gitlab(s) => s.all_branches,
            Kind::Gitea(s) => s.all_branches,
            Kind::BitbucketServer(s) => s.all_branches,
            Kind::Bitbucket(s) => s.all_branches,
            Kind::AzureDevOps(s) => s.all_branches,
        };
        // Reads each branch as (name, sha) with these JSON pointers.
        let read = |items: Vec<Value>, name_at: &str, sha_at: &str| -> Vec<ScmRepository> {
            items
                .iter()
                .map(|i| on_branch(repo, text(i, name_at), text(i, sha_at)))
                .collect()
        };
        let one = |found: Option<Value>, name_at: &str, sha_at: &str| {
            read(found.into_iter().collect(), name_at, sha_at)
        };
        Ok(match (&self.kind, all) {
            (Kind::Github(_), false) => {
                let url = format!("{b}repos/{org}/{name}/branches/{branch}");
                one(self.get(&url, &what)?, "/name", "/commit/sha")
            }
            (Kind::Github(_), true) => {
                let url = format!("{b}repos/{org}/{name}/branches?per_page=100");
                read(self.list(url, &what)?, "/name", "/commit/sha")
            }
            (Kind::Gitlab(_), false) => {
                let id = id_text(&repo.repository_id);
                let url = format!("{b}projects/{id}/repository/branches/{branch}");
                one(self.get(&url, &what)?, "/name", "/commit/id")
            }
            (Kind::Gitlab(_), true) => {
                let id = id_text(&repo.repository_id);
                let url = format!("{b}projects/{id}/repository/branches?per_page=100");
                match self.list(url, &what) {
                    Ok(items) => read(items, "/name", "/commit/id"),
                    Err(ScmError::RepositoryNotFound(_)) => Vec::new(),
                    Err(e) => return Err(e),
                }
            }
            (Kind::Gitea(spec), false) => {
                let url = format!(
                    "{b}/repos/{}/{name}/branches/{branch}",
                    encode_component(&spec.owner)
                );
                match self.get(&url, &what)? {
                    Some(found) => vec![on_branch(repo, repo.branch.clone(), text(&found, "/commit/id"))],
                    None => {
                        return Err(ScmError::Other(format!(
                            "got 404 while getting default branch {:?} for repo {:?} - check your repo config",
                            repo.branch, repo.repository
                        )))
                    }
                }
            }
            (Kind::Gitea(spec), true) => {
                let url = format!(
                    "{b}/repos/{}/{name}/branches?limit=50&page=1",
                    encode_component(&spec.owner)
                );
                read(self.list(url, &what)?, "/name", "/commit/id")
            }
            // The default branch was read with the repository.
            (Kind::BitbucketServer(_), false) => vec![repo.clone()],
            (Kind::BitbucketServer(_), true) => {
                let url = format!("{b}/projects/{org}/repos/{name}/branches?limit=100");
                read(self.list(url, &what)?, "/displayId", "/latestCommit")
            }
            (Kind::Bitbucket(_), false) => {
                let url = format!("{b}/repositories/{org}/{name}/refs/branches/{branch}");
                let found = self.get(&url, &what)?.ok_or_else(|| {
                    ScmError::Other(format!("{what}: branch {} not found", repo.branch))
                })?;
                read(vec![found], "/name", "/target/hash")
            }
            (Kind::Bitbucket(_), true) => {
                let url = format!("{b}/repositories/{org}/{name}/refs/branches");
                read(self.list(url, &what)?, "/name", "/target/hash")
            }
            (Kind::AzureDevOps(_), all) => {
                let mut url = format!("{b}/repositories/{name}/stats/branches?api-version=7.1");
                if !all {
                    let short = repo.branch.replacen("refs/heads/", "", 1);
                    url.push_str(&format!("&name={}", encode_component(&short)));
                    one(self.get(&url, &what)?, "/name", "/commit/commitId")
                } else {
                    match self.list(url, &what) {
                        Ok(items) => read(items, "/name", "/commit/commitId"),
                        Err(ScmError::RepositoryNotFound(_)) => Vec::new(),
                        Err(e) => return Err(e),
                    }
                }
            }
        })
    }

    fn has_path(&self, repo: &ScmRepository, path: &str) -> Result<bool, ScmError> {
        let b = &self.base;
        let what = format!("{}/{}", repo.organization, repo.repository);
        let (org, name, branch) = (
            encode_component(&repo.organization),
            encode_component(&repo.repository),
            encode_component(&repo.branch),
        );
        let p = encode_path(path);
        let url = match &self.kind {
            Kind::Github(_) => format!("{b}repos/{org}/{name}/contents/{p}?ref={branch}"),
            Kind::Gitlab(_) => {
                // A file, else a directory (Argo's GetFile, then ListTree).
                let id = id_text(&repo.repository_id);
                let file = format!(
                    "{b}projects/{id}/repository/files/{}?ref={branch}",
                    encode_component(path)
                );
                if self.get(&file, &what)?.is_some() {
                    return Ok(true);
                }
                format!(
                    "{b}projects/{id}/repository/tree?path={}&ref={branch}",
                    encode_component(path)
                )
            }
            Kind::Gitea(_) => format!("{b}/repos/{org}/{name}/contents/{p}?ref={branch}"),
            Kind::BitbucketServer(_) => {
                format!(
                    "{b}/projects/{org}/repos/{name}/browse/{p}?at={branch}&type=true&limit=100"
                )
            }
            Kind::Bitbucket(_) => format!(
                "{b}/repositories/{org}/{name}/src/{}/{p}?format=meta",
                encode_component(&repo.sha)
            ),
            Kind::AzureDevOps(_) => format!(
                "{b}/repositories/{}/items?path={}&versionDescriptor.version={}&api-version=7.1",
                encode_component(&id_text(&repo.repository_id)),
                encode_component(path),
                encode_component(&repo.branch.replacen("refs/heads/", "", 1))
            ),
        };
        Ok(self.get(&url, &what)?.is_some())
    }
}

impl Provider<'_> {
    /// Bitbucket Server's default branch of `repo` (`None`: it has none).
    fn bitbucket_server_default(
        &self,
        repo: &ScmRepository,
    ) -> Result<Option<ScmRepository>, ScmError> {
        let url = format!(
            "{}/projects/{}/repos/{}/branches/default",
            self.base,
            encode_component(&repo.organization),
            encode_component(&repo.repository)
        );
        let what = format!("{}/{}", repo.organization, repo.repository);
        Ok(self
            .get(&url, &what)?
            .map(|b| on_branch(repo, text(&b, "/displayId"), text(&b, "/latestCommit"))))
    }
}

/// A repository id as it goes in a URL (a number or a UUID).
fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A repository path for a URL: each segment encoded, `/` kept.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}
