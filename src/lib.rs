//! Prism's command line and controller: `prism generate`, `diff`, `validate`, `lint`,
//! `schema`, `plugin run|inspect`, `crd`, `controller` and `version`.
//!
//! The engine ([`prism_engine`]) does the work; this crate is the edge around it:
//! reading manifests and cluster Secret files, opening git repositories
//! ([`git`], [`workdir`]) behind the engine's `Sources` trait ([`sources`]), and
//! printing ([`output`]). Errors carry the file and the spec path and end the run
//! with exit code 1 (2 for usage errors, 3 for `diff` finding differences) before
//! anything is written to stdout.

pub mod cli;
pub mod controller;
pub mod credentials;
pub mod decisions;
pub mod diff;
pub mod digest;
pub mod fsread;
pub mod git;
pub mod input;
pub mod lint;
pub mod output;
pub mod pipeline;
pub mod plugin;
pub mod registry;
pub mod repo_policy;
pub mod scm;
pub mod sources;
pub mod stream;
pub mod workdir;
pub mod writeback;
pub mod yaml;

/// mimalloc for every binary built on this crate (the CLI, the controller, the
/// benchmarks that measure them): rendering and planning a fleet are millions of small
/// allocations on several threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Why a command failed; the message is printed as is.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A spec or source error (exit code 1).
    #[error("{0}")]
    Failed(String),
    /// `prism diff` found differences (exit code 3; 1 stays "error"); nothing more is printed.
    #[error("")]
    Differs,
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
            CliError::Differs => 3,
        }
    }
}
