//! Write-back: record the image tags an ApplicationSet chose in git, as Argo CD
//! Image Updater does, in `<path>/.argocd-source-<app>.yaml` (Argo's format:
//! `helm.parameters` entries `{name, value, forcestring: true}`, sorted by name,
//! merged with the file's other entries).
//!
//! `prism generate --write-back` does it for every spec with `spec.writeBack`
//! (`prism.dev` only). The repository is cloned into a temporary directory and
//! pushed with the `git` command (so credential helpers and SSH settings apply, as for
//! fetching); the commit itself is built with git2. No commit when nothing changed;
//! a rejected push is retried on top of the fetched branch.

use prism_engine::params::flat_view;
use prism_engine::Rendered;
use serde_yaml::{Mapping, Value as Yaml};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ATTEMPTS: usize = 3;

/// `spec.writeBack` of a parsed spec (checked when the spec was read), with the git
/// work it does.
#[derive(Debug, Clone)]
pub struct WriteBack(pub prism_engine::model::WriteBack);

impl std::ops::Deref for WriteBack {
    type Target = prism_engine::model::WriteBack;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// What a write-back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed: no commit.
    Unchanged,
    /// Committed and pushed this commit, changing this many files.
    Pushed {
        /// Commit SHA.
        commit: String,
        /// Files written.
        files: usize,
    },
}

impl WriteBack {
    /// The spec's `writeBack`, if any.
    pub fn of(spec: &prism_engine::model::ApplicationSetSpec) -> Option<WriteBack> {
        spec.write_back.clone().map(WriteBack)
    }

    /// The files to write: path in the repository → the helm parameters to set.
    pub fn files(&self, rendered: &Rendered) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for app in &rendered.applications {
            let flat = flat_view(&app.params);
            let wanted: BTreeMap<String, String> = if self.helm_parameters.is_empty() {
                let aliases: std::collections::BTreeSet<&str> = flat
                    .keys()
                    .filter_map(|k| k.strip_prefix("images.")?.strip_suffix(".tag"))
                    .collect();
                aliases
                    .iter()
                    .flat_map(|a| {
                        let prefix = if aliases.len() == 1 {
                            String::new()
                        } else {
                            format!("{a}.")
                        };
                        [
                            (format!("{prefix}image.name"), format!("images.{a}.name")),
                            (format!("{prefix}image.tag"), format!("images.{a}.tag")),
                        ]
                    })
                    .collect()
            } else {
                self.helm_parameters.clone()
            };
            let params: BTreeMap<String, String> = wanted
                .into_iter()
                .filter_map(|(name, key)| flat.get(&key).map(|v| (name, v.clone())))
                .collect();
            if params.is_empty() {
                continue;
            }
            let dir = self.path.trim_matches('/');
            let file = if dir.is_empty() {
                format!(".argocd-source-{}.yaml", app.name)
            } else {
                format!("{dir}/.argocd-source-{}.yaml", app.name)
            };
            out.insert(file, params);
        }
        out
    }

    /// Clones, writes, commits and pushes; `source` is where to clone from (the URL,
    /// or a local path a `--repo` mapping names).
    pub fn run(&self, source: &str, appset: &str, rendered: &Rendered) -> Result<Outcome, String> {
        let files = self.files(rendered);
        if files.is_empty() {
            // No Application has an image to record: nothing to clone for.
            return Ok(Outcome::Unchanged);
        }
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let work = dir.path().join("repo");
        git(
            dir.path(),
            &[
                "clone",
                "--quiet",
                "--single-branch",
                "--branch",
                &self.branch,
                "--",
                source,
                "repo",
            ],
        )
        .map_err(|e| {
            format!(
                "write-back: cloning {} branch {}: {e}",
                self.repo_url, self.branch
            )
        })?;
        for attempt in 1..=ATTEMPTS {
            let Some(commit) = self.commit(&work, appset, &files)? else {
                return Ok(Outcome::Unchanged);
            };
            match git(
                &work,
                &[
                    "push",
                    "--quiet",
                    "origin",
                    &format!("HEAD:refs/heads/{}", self.branch),
                ],
            ) {
                Ok(_) => {
                    return Ok(Outcome::Pushed {
                        commit,
                        files: files.len(),
                    })
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::info!(
                        attempt,
                        "write-back push rejected, fetching and retrying: {e}"
                    );
                    git(&work, &["fetch", "--quiet", "origin", &self.branch])
                        .and_then(|_| git(&work, &["reset", "--quiet", "--hard", "FETCH_HEAD"]))
                        .map_err(|e| format!("write-back: fetching {}: {e}", self.repo_url))?;
                }
                Err(e) => {
                    return Err(format!(
                        "write-back: pushing to {} branch {} failed {ATTEMPTS} times: {e}",
                        self.repo_url, self.branch
                    ))
                }
            }
        }
        Err("write-back: gave up".into())
    }

    /// Writes the files into HEAD's tree and commits; `None` when the tree is unchanged.
    fn commit(
        &self,
        work: &Path,
        appset: &str,
        files: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Option<String>, String> {
        let fail = |e: git2::Error| format!("write-back: {}", e.message());
        let repo = git2::Repository::open(work).map_err(fail)?;
        let head = repo.head().and_then(|h| h.peel_to_commit()).map_err(fail)?;
        let head_tree = head.tree().map_err(fail)?;
        let mut index = repo.index().map_err(fail)?;
        index.read_tree(&head_tree).map_err(fail)?;
        for (path, params) in files {
            let existing = head_tree
                .get_path(Path::new(path))
                .ok()
                .and_then(|e| e.to_object(&repo).ok())
                .and_then(|o| o.as_blob().map(|b| b.content().to_vec()));
            let content = merge_source_file(existing.as_deref(), params)
                .map_err(|e| format!("write-back: {path}: {e}"))?;
            let oid = repo.blob(content.as_bytes()).map_err(fail)?;
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id: oid,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).map_err(fail)?;
        }
        let tree_id = index.write_tree_to(&repo).map_err(fail)?;
        if tree_id == head_tree.id() {
            return Ok(None);
        }
        let tree = repo.find_tree(tree_id).map_err(fail)?;
        let (name, email) = match &self.author {
            Some(a) => (a.name.as_str(), a.email.as_str()),
            None => ("Prism", "prism@localhost"),
        };
        let sig = git2::Signature::now(name, email).map_err(fail)?;
        let message = self.message.clone().unwrap_or_else(|| {
            format!(
                "prism: update image tags of ApplicationSet {appset}\n\n{} files\n",
                files.len()
            )
        });
        let oid = repo
            .commit(Some("HEAD"), &sig, &sig, &message, &tree, &[&head])
            .map_err(fail)?;
        // Only commits are pushed: the clone's working tree is never read, so it is not updated.
        Ok(Some(oid.to_string()))
    }
}

/// The `.argocd-source-<app>.yaml` text with `params` set (as strings, `forcestring`),
/// other parameters and keys kept, parameters sorted by name.
pub fn merge_source_file(
    existing: Option<&[u8]>,
    params: &BTreeMap<String, String>,
) -> Result<String, String> {
    let mut doc = match existing {
        Some(bytes) if !bytes.is_empty() => {
            match serde_yaml::from_slice::<Yaml>(bytes).map_err(|e| format!("not YAML: {e}"))? {
                Yaml::Mapping(m) => m,
                Yaml::Null => Mapping::new(),
                _ => return Err("not a mapping".into()),
            }
        }
        _ => Mapping::new(),
    };
    let helm = doc
        .entry(Yaml::from("helm"))
        .or_insert_with(|| Yaml::Mapping(Mapping::new()));
    let Yaml::Mapping(helm) = helm else {
        return Err("helm is not a mapping".into());
    };
    let mut merged: BTreeMap<String, Yaml> = BTreeMap::new();
    if let Some(Yaml::Sequence(list)) = helm.get("parameters") {
        for p in list {
            if let Some(name) = p.get("name").and_then(Yaml::as_str) {
                merged.insert(name.to_string(), p.clone());
            }
        }
    }
    for (name, value) in params {
        let mut m = Mapping::new();
        m.insert("name".into(), name.as_str().into());
        m.insert("value".into(), value.as_str().into());
        m.insert("forcestring".into(), true.into());
        merged.insert(name.clone(), Yaml::Mapping(m));
    }
    helm.insert(
        "parameters".into(),
        Yaml::Sequence(merged.into_values().collect()),
    );
    serde_yaml::to_string(&Yaml::Mapping(doc)).map_err(|e| e.to_string())
}

/// Runs `git` in `dir`; stderr on failure.
fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    crate::git::run_git(Command::new("git").current_dir(dir).args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_keep_other_entries_and_sort() {
        let existing = b"helm:\n  parameters:\n  - name: replicas\n    value: '3'\n  - name: image.tag\n    value: old\n    forcestring: true\n  valueFiles: [a.yaml]\nkustomize: {}\n";
        let params = BTreeMap::from([
            ("image.tag".to_string(), "1.4.7".to_string()),
            ("image.name".to_string(), "r/x".to_string()),
        ]);
        let out = merge_source_file(Some(existing), &params).unwrap();
        assert_eq!(
            out,
            "helm:\n  parameters:\n  - name: image.name\n    value: r/x\n    forcestring: true\n  - name: image.tag\n    value: 1.4.7\n    forcestring: true\n  - name: replicas\n    value: '3'\n  valueFiles:\n  - a.yaml\nkustomize: {}\n"
        );
        assert_eq!(
            merge_source_file(None, &params).unwrap(),
            "helm:\n  parameters:\n  - name: image.name\n    value: r/x\n    forcestring: true\n  - name: image.tag\n    value: 1.4.7\n    forcestring: true\n"
        );
        assert!(merge_source_file(Some(b"- a"), &params).is_err());
    }
}
