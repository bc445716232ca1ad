//! A plain directory (not a git repository) as a repository: the working tree as it
//! is, so a user can preview uncommitted changes. The revision is ignored.

use prism_engine::{Repository, SourceError};
use std::path::{Path, PathBuf};

/// A directory's files and subdirectories, listed once.
pub struct DirSnapshot {
    root: PathBuf,
    files: Vec<String>,
    dirs: Vec<String>,
}

impl DirSnapshot {
    /// Lists `root` recursively (symlinks are skipped; `.git` is never listed).
    pub fn open(root: &Path) -> Result<DirSnapshot, SourceError> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| SourceError::Other(format!("cannot list {}: {e}", dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(|e| {
                    SourceError::Other(format!("cannot list {}: {e}", dir.display()))
                })?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // Not UTF-8: no pattern could name it.
                };
                if name == ".git" {
                    continue;
                }
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let kind = entry
                    .file_type()
                    .map_err(|e| SourceError::Other(format!("cannot stat {path}: {e}")))?;
                if kind.is_dir() {
                    dirs.push(path.clone());
                    stack.push((entry.path(), path));
                } else if kind.is_file() {
                    files.push(path);
                }
            }
        }
        files.sort();
        dirs.sort();
        Ok(DirSnapshot {
            root: root.to_path_buf(),
            files,
            dirs,
        })
    }
}

impl Repository for DirSnapshot {
    fn commit(&self) -> Option<&str> {
        None
    }
    fn directories(&self) -> &[String] {
        &self.dirs
    }
    fn files(&self) -> &[String] {
        &self.files
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        crate::fsread::read(&self.root.join(path)).map_err(|detail| SourceError::ReadFile {
            path: path.to_string(),
            detail,
        })
    }
}
