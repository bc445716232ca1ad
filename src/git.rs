//! Repositories read with git2, straight from the object database: no checkout.
//!
//! A revision (branch, tag, SHA, `HEAD`) is resolved to a commit once; its tree is
//! walked once into sorted file and directory lists, and blobs are read by object id
//! on demand. Remote `https://` and `ssh://` repositories are fetched into a bare
//! repository in the cache directory (all branches and tags), and fetched again the
//! next time a run asks for them.

use git2::{ObjectType, Oid, Repository as GitRepo, TreeWalkMode, TreeWalkResult};
use prism_engine::{GitRef, Repository, SourceError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A git repository opened once and shared by every revision read from it.
pub struct GitSource {
    repo: Arc<Mutex<GitRepo>>,
    location: String,
}

impl GitSource {
    /// Opens a local repository (bare or not) at `path`; `Ok(None)` when `path` is not a git repository.
    pub fn open(path: &Path) -> Result<Option<GitSource>, SourceError> {
        match GitRepo::open(path) {
            Ok(repo) => Ok(Some(GitSource {
                repo: Arc::new(Mutex::new(repo)),
                location: path.display().to_string(),
            })),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(SourceError::Other(format!(
                "cannot open git repository {}: {}",
                path.display(),
                e.message()
            ))),
        }
    }

    /// Fetches `url` into a bare repository under `cache_dir` (creating it the first
    /// time) and opens it.
    ///
    /// Fetching runs the `git` command, as Argo CD's repo-server does, so the user's
    /// credential helpers, SSH configuration, proxies and CA settings apply unchanged;
    /// reading stays in git2. (libgit2's own HTTPS support would also cost every run
    /// ~50 ms of OpenSSL start-up.)
    ///
    /// `policy` is checked before anything else: a refused URL creates no directory and
    /// runs no git. Every `git` runs with `GIT_ALLOW_PROTOCOL` set from the policy, no
    /// hooks, no submodules, and `--` before the URL.
    ///
    /// A fetch with a credential goes to a directory of its own (the cache key plus the
    /// Secret's name), so what one credential fetched is never read under another.
    pub fn fetch_into_cache(
        url: &str,
        cache_dir: &Path,
        credentials: &crate::credentials::Credentials,
        access: &crate::credentials::Access,
        policy: &crate::repo_policy::RepoPolicy,
    ) -> Result<GitSource, SourceError> {
        policy.check(url).map_err(SourceError::Other)?;
        let identity = credentials.identity(url, access);
        let dir = match identity.as_str() {
            "" => cache_dir.join(cache_key(url)),
            // A hash, not the Secret's name: paths show up in logs and errors.
            secret => cache_dir.join(format!("{}@{:016x}", cache_key(url), {
                use std::hash::Hasher;
                let mut h = crate::digest::Fnv::default();
                h.write(secret.as_bytes());
                h.finish()
            })),
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            SourceError::Other(format!(
                "cannot create cache directory {}: {e}",
                dir.display()
            ))
        })?;
        let fail = |what: &str, detail: String| {
            match crate::credentials::explain(url, &detail) {
            Some(explained) => SourceError::RepoNotFound(explained),
            None => SourceError::RepoNotFound(format!(
                "{url}: {what} failed: {} (check the URL and your git credentials, or map it to a local clone with --repo {url}=PATH)",
                detail.trim()
            )),
        }
        };
        let repo = match GitRepo::open_bare(&dir) {
            Ok(r) => r,
            Err(_) => {
                GitRepo::init_bare(&dir).map_err(|e| fail("init cache", e.message().to_string()))?
            }
        };
        let git = |args: &[&str], progress: bool| {
            let mut cmd = std::process::Command::new("git");
            cmd.args([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "submodule.recurse=false",
            ])
            .arg("--git-dir")
            .arg(&dir)
            .args(args)
            .env("GIT_ALLOW_PROTOCOL", policy.git_allow_protocol());
            // Held until the command has run: it owns the key and certificate files.
            let _auth = credentials
                .apply(url, access, &mut cmd)
                .map_err(|e| format!("preparing credentials: {e}"))?;
            if progress {
                run_git_with_progress(&mut cmd)
            } else {
                run_git(&mut cmd)
            }
        };
        // Progress (bytes, objects) on a terminal; quiet otherwise.
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        git(
            &[
                "fetch",
                if tty { "--progress" } else { "--quiet" },
                "--prune",
                "--force",
                "--no-recurse-submodules",
                "--",
                url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            tty,
        )
        .map_err(|e| fail("git fetch", e))?;
        // Point the cache's HEAD at the remote's default branch.
        let symref = git(&["ls-remote", "--symref", "--", url, "HEAD"], false)
            .map_err(|e| fail("git ls-remote", e))?;
        if let Some(head) = symref.lines().find_map(|l| {
            l.strip_prefix("ref: ")
                .and_then(|r| r.strip_suffix("\tHEAD"))
        }) {
            repo.set_head(head)
                .map_err(|e| fail("set HEAD", e.message().to_string()))?;
        }
        tracing::debug!(url, dir = %dir.display(), "fetched into cache");
        Ok(GitSource {
            repo: Arc::new(Mutex::new(repo)),
            location: url.to_string(),
        })
    }

    /// Branches (local, and `origin/` ones with no local branch of that name) and
    /// tags, each with the commit it points at; sorted by kind then name.
    pub fn refs(&self) -> Result<Vec<GitRef>, SourceError> {
        let repo = self
            .repo
            .lock()
            .map_err(|_| SourceError::Other("git repository lock poisoned".into()))?;
        let fail = |e: git2::Error| {
            SourceError::Other(format!(
                "listing refs of {}: {}",
                self.location,
                e.message()
            ))
        };
        let mut found = std::collections::BTreeMap::new();
        for reference in repo.references().map_err(fail)? {
            let reference = reference.map_err(fail)?;
            let Some(full) = reference.name() else {
                continue;
            };
            let (kind, name, remote) = if let Some(n) = full.strip_prefix("refs/heads/") {
                ("branch", n, false)
            } else if let Some(n) = full.strip_prefix("refs/tags/") {
                ("tag", n, false)
            } else if let Some(n) = full.strip_prefix("refs/remotes/origin/") {
                ("branch", n, true)
            } else {
                continue;
            };
            if name == "HEAD" || (remote && found.contains_key(&("branch", name.to_string()))) {
                continue;
            }
            let Ok(commit) = reference.peel_to_commit() else {
                continue;
            };
            found.insert((kind, name.to_string()), commit.id().to_string());
        }
        Ok(found
            .into_iter()
            .map(|((kind, name), sha)| GitRef { kind, name, sha })
            .collect())
    }

    /// A snapshot of the tree at `revision` (empty means `HEAD`).
    pub fn snapshot(&self, revision: &str) -> Result<GitSnapshot, SourceError> {
        let repo = self
            .repo
            .lock()
            .map_err(|_| SourceError::Other("git repository lock poisoned".into()))?;
        let rev = if revision.is_empty() {
            "HEAD"
        } else {
            revision
        };
        let commit = resolve(&repo, rev).map_err(|detail| SourceError::UnknownRevision {
            revision: rev.to_string(),
            detail: format!(
                "{detail} in {}; use a branch, tag or commit SHA that exists there",
                self.location
            ),
        })?;
        let tree = commit.tree().map_err(|e| {
            SourceError::Other(format!("reading tree of {}: {}", commit.id(), e.message()))
        })?;
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut blobs = HashMap::new();
        tree.walk(TreeWalkMode::PreOrder, |root, entry| {
            let Some(name) = entry.name() else {
                return TreeWalkResult::Skip;
            };
            let path = format!("{root}{name}");
            match entry.kind() {
                Some(ObjectType::Tree) => dirs.push(path),
                // Regular and executable files; symlinks (0o120000) and submodules are skipped.
                Some(ObjectType::Blob) if entry.filemode() & 0o170000 == 0o100000 => {
                    blobs.insert(path.clone(), entry.id());
                    files.push(path);
                }
                _ => {}
            }
            TreeWalkResult::Ok
        })
        .map_err(|e| {
            SourceError::Other(format!("walking tree of {}: {}", commit.id(), e.message()))
        })?;
        files.sort();
        dirs.sort();
        Ok(GitSnapshot {
            repo: self.repo.clone(),
            git_dir: repo.path().to_path_buf(),
            spares: (0..SPARE_HANDLES).map(|_| Mutex::new(None)).collect(),
            commit: commit.id().to_string(),
            files,
            dirs,
            blobs,
        })
    }
}

/// Runs a prepared `git` command without a terminal prompt or stdin; its stdout, or
/// its stderr as the error.
pub fn run_git(cmd: &mut std::process::Command) -> Result<String, String> {
    let out = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// [`run_git`], with git's stderr (its progress) shown as it comes and kept for the error.
fn run_git_with_progress(cmd: &mut std::process::Command) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut child = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let mut stderr = child.stderr.take().ok_or("git's stderr is missing")?;
    let shown = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
            kept.extend_from_slice(&buf[..n]);
        }
        kept
    });
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    let status = child.wait().map_err(|e| format!("waiting for git: {e}"))?;
    let kept = shown.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(String::from_utf8_lossy(&kept).trim().to_string())
    }
}

/// Resolves a revision as Argo CD does: `HEAD`, a branch (local, else `origin/`), a tag, or a SHA.
fn resolve<'r>(repo: &'r GitRepo, rev: &str) -> Result<git2::Commit<'r>, String> {
    let candidates = [
        rev.to_string(),
        format!("refs/heads/{rev}"),
        format!("refs/tags/{rev}"),
        format!("refs/remotes/origin/{rev}"),
    ];
    for candidate in &candidates {
        if let Ok(obj) = repo.revparse_single(candidate) {
            if let Ok(commit) = obj.peel_to_commit() {
                return Ok(commit);
            }
        }
    }
    Err(format!("{rev:?} is not a branch, tag or commit"))
}

/// A stable directory name for a remote URL in the cache.
fn cache_key(url: &str) -> String {
    use std::hash::Hasher;
    let mut hasher = crate::digest::Fnv::default();
    hasher.write(url.as_bytes());
    let hash = hasher.finish();
    let readable: String = url
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(40)
        .collect();
    format!("{readable}-{hash:016x}")
}

/// Extra handles a snapshot opens, so that threads reading files in parallel do not
/// queue on one (a libgit2 repository is not to be shared between threads).
const SPARE_HANDLES: usize = 3;

/// One revision of a git repository.
pub struct GitSnapshot {
    repo: Arc<Mutex<GitRepo>>,
    /// The repository's git directory, to open spare handles.
    git_dir: PathBuf,
    /// Handles opened when the shared one was busy.
    spares: Vec<Mutex<Option<GitRepo>>>,
    commit: String,
    files: Vec<String>,
    dirs: Vec<String>,
    blobs: HashMap<String, Oid>,
}

impl Repository for GitSnapshot {
    fn commit(&self) -> Option<&str> {
        Some(&self.commit)
    }
    fn directories(&self) -> &[String] {
        &self.dirs
    }
    fn files(&self) -> &[String] {
        &self.files
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let err = |detail: String| SourceError::ReadFile {
            path: path.to_string(),
            detail,
        };
        let oid = self
            .blobs
            .get(path)
            .ok_or_else(|| err("no such file at this revision".into()))?;
        let max = crate::fsread::max_file_bytes();
        let too_big = |size: u64| {
            err(format!(
                "{size} bytes is over the limit of {max} bytes in one file \
                 (an admin can raise it with --max-file-bytes)"
            ))
        };
        match read_loose(&self.git_dir, oid, max) {
            Some(Loose::Blob(bytes)) => return Ok(bytes),
            Some(Loose::TooBig(size)) => return Err(too_big(size)),
            Some(Loose::Corrupt(why)) => return Err(err(why)),
            None => {}
        }
        // The shared handle when free, else a spare (opened on first use).
        let shared = self.repo.try_lock().ok();
        let mut spare = None;
        if shared.is_none() {
            for slot in &self.spares {
                if let Ok(mut handle) = slot.try_lock() {
                    if handle.is_none() {
                        *handle = GitRepo::open_bare(&self.git_dir).ok();
                    }
                    if handle.is_some() {
                        spare = Some(handle);
                        break;
                    }
                }
            }
        }
        let waited;
        let repo: &GitRepo = match (&shared, &spare) {
            (Some(r), _) => r,
            (None, Some(h)) => h.as_ref().ok_or_else(|| err("no git handle".into()))?,
            (None, None) => {
                waited = self
                    .repo
                    .lock()
                    .map_err(|_| err("git repository lock poisoned".into()))?;
                &waited
            }
        };
        // The size from the object header, before the blob is loaded.
        let odb = repo.odb().map_err(|e| err(e.message().to_string()))?;
        let (size, _) = odb
            .read_header(*oid)
            .map_err(|e| err(e.message().to_string()))?;
        if size as u64 > max {
            return Err(too_big(size as u64));
        }
        let object = odb.read(*oid).map_err(|e| err(e.message().to_string()))?;
        Ok(object.data().to_vec())
    }
}

/// What reading a loose object found.
#[derive(Debug, PartialEq, Eq)]
enum Loose {
    /// The blob's bytes.
    Blob(Vec<u8>),
    /// A blob over the size limit (its size).
    TooBig(u64),
    /// Not a readable blob.
    Corrupt(String),
}

/// Reads `oid` as a loose object of `git_dir` (`objects/xx/yyyy…`: zlib over
/// `blob <size>\0<bytes>`) with one open and one read, the header checked against
/// `max` before the rest is inflated. `None` when it is not loose (packed objects, or
/// objects in alternates, are read through libgit2), which costs one failed open.
fn read_loose(git_dir: &Path, oid: &Oid, max: u64) -> Option<Loose> {
    use std::io::Read;
    let hex = oid.to_string();
    let path = git_dir.join("objects").join(&hex[..2]).join(&hex[2..]);
    let file = std::fs::File::open(path).ok()?;
    // zlib grows incompressible data by well under 1%: a larger file is over the
    // limit, which libgit2's header read then reports.
    let cap = max.saturating_add(max / 64).saturating_add(1024);
    let mut compressed = Vec::new();
    file.take(cap + 1).read_to_end(&mut compressed).ok()?;
    if compressed.len() as u64 > cap {
        return None;
    }
    let mut z = flate2::read::ZlibDecoder::new(&compressed[..]);
    let mut header = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    loop {
        if z.read_exact(&mut byte).is_err() || header.len() > 32 {
            return Some(Loose::Corrupt(format!(
                "loose object {hex} has no valid header"
            )));
        }
        if byte[0] == 0 {
            break;
        }
        header.push(byte[0]);
    }
    let size = match std::str::from_utf8(&header)
        .ok()
        .and_then(|h| h.strip_prefix("blob "))
        .and_then(|n| n.parse::<u64>().ok())
    {
        Some(size) => size,
        None => return Some(Loose::Corrupt(format!("object {hex} is not a blob"))),
    };
    if size > max {
        return Some(Loose::TooBig(size));
    }
    let mut out = Vec::with_capacity(size as usize);
    if z.take(size + 1).read_to_end(&mut out).is_err() || out.len() as u64 != size {
        return Some(Loose::Corrupt(format!(
            "loose object {hex} does not hold the {size} bytes its header says"
        )));
    }
    Some(Loose::Blob(out))
}

/// The default cache directory: `$XDG_CACHE_HOME/prism/repos`, else `~/.cache/prism/repos`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("prism").join("repos")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loose blob reads back as libgit2 reads it; over the limit it is refused from
    /// its header; another kind of object is not taken for a blob; a missing one is
    /// left to libgit2.
    #[test]
    fn loose_objects_read_as_libgit2_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init_bare(dir.path()).unwrap();
        let text = "replicaCount: 3\n".repeat(500);
        let oid = repo.blob(text.as_bytes()).unwrap();
        assert_eq!(
            read_loose(repo.path(), &oid, 1 << 20),
            Some(Loose::Blob(repo.find_blob(oid).unwrap().content().to_vec()))
        );
        assert_eq!(
            read_loose(repo.path(), &oid, 100),
            Some(Loose::TooBig(text.len() as u64))
        );
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        assert!(matches!(
            read_loose(repo.path(), &tree, 1 << 20),
            Some(Loose::Corrupt(_))
        ));
        let missing = Oid::from_str("0123456789012345678901234567890123456789").unwrap();
        assert_eq!(read_loose(repo.path(), &missing, 1 << 20), None);
    }

    #[test]
    fn cache_key_is_stable_and_readable() {
        assert_eq!(
            cache_key("https://github.com/org/my-repo.git"),
            cache_key("https://github.com/org/my-repo.git")
        );
        assert!(cache_key("https://github.com/org/my-repo.git").starts_with("my-repo-"));
        assert_ne!(cache_key("https://a/x.git"), cache_key("https://b/x.git"));
    }
}
