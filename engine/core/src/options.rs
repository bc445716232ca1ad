//! What the caller chooses for a render, besides the spec: glob mode, the local
//! cluster, and the limits. Generators read it; the CLI and the controller fill it.

use crate::glob::FileGlobbing;
use crate::limits::Limits;

/// Caller's choices that are not part of the spec.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// How git files patterns are read (Argo's `--enable-new-git-file-globbing`).
    pub git_file_globbing: FileGlobbing,
    /// Whether the local cluster is offered to the clusters generator (Argo's
    /// `cluster.inClusterEnabled` setting).
    pub in_cluster_enabled: bool,
    /// What one render may cost (the admin's, never the spec's).
    pub limits: Limits,
    /// Threads one render may use to read files and render Applications.
    pub threads: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            git_file_globbing: FileGlobbing::Default,
            in_cluster_enabled: true,
            limits: Limits::default(),
            threads: crate::parallel::default_threads(),
        }
    }
}
