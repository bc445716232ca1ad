//! The engine's error: what went wrong ([`ErrorKind`]) and where in the spec ([`Error::path`]).
//!
//! Every error carries the spec path of the part that failed
//! (`spec.generators[1].matrix.generators[0].git`), so a user can find it in a
//! large manifest; the front ends add the file name.

use crate::sources::SourceError;

/// An engine error at a spec path.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct Error {
    /// Where in the ApplicationSet the error arose, e.g. `spec.generators[0].list`.
    pub path: String,
    /// What went wrong (boxed: errors are rare, results are everywhere).
    #[source]
    pub kind: Box<ErrorKind>,
}

impl Error {
    /// An error of `kind` at `path`.
    pub fn new(path: impl Into<String>, kind: ErrorKind) -> Self {
        Error {
            path: path.into(),
            kind: Box::new(kind),
        }
    }

    /// An [`ErrorKind::InvalidSpec`] at `path`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(path, ErrorKind::InvalidSpec(message.into()))
    }
}

/// What went wrong; each variant names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The manifest does not have the shape of an ApplicationSet (a user error).
    #[error("{0}")]
    InvalidSpec(String),
    /// A generator entry names a generator nobody knows (usually a typo).
    #[error("unknown generator `{key}`; expected one of: {expected}")]
    UnknownGenerator {
        /// The key as written.
        key: String,
        /// The generators Prism knows.
        expected: String,
    },
    /// A feature Argo CD has and Prism does not have yet: refused rather than rendered wrong.
    #[error("{0} is not supported by prism yet")]
    Unsupported(String),
    /// A repository or revision could not be read (missing repo, unknown revision, I/O).
    #[error("reading repository {repo_url} at revision {revision:?}: {source}")]
    ReadRepo {
        /// The repository as the spec names it.
        repo_url: String,
        /// The revision as the spec names it.
        revision: String,
        /// What the source reported.
        #[source]
        source: SourceError,
    },
    /// The cluster list could not be read.
    #[error("reading clusters: {0}")]
    ReadClusters(#[source] SourceError),
    /// A file a generator reads (git files, values files) is not valid YAML or JSON.
    #[error("file {file} in {repo_url}: {message}")]
    ParseFile {
        /// Path inside the repository.
        file: String,
        /// The repository as the spec names it.
        repo_url: String,
        /// The parser's message.
        message: String,
    },
    /// A template (Application template, generator field, values) failed to render.
    #[error("rendering template: {0}")]
    RenderTemplate(String),
    /// Two parameter sets rendered Applications with the same name.
    #[error("duplicate Application name {name:?}: made by {first} and again by {second}; make the template's metadata.name unique per parameter set")]
    DuplicateName {
        /// The clashing name.
        name: String,
        /// The first parameter set, described.
        first: String,
        /// The second parameter set, described.
        second: String,
    },
    /// A rendered Application is not something Kubernetes or Argo CD accepts.
    #[error("rendered Application {name:?} is invalid: {reason}")]
    InvalidApplication {
        /// The rendered name.
        name: String,
        /// Why it is invalid and what to do.
        reason: String,
    },
    /// Combining parameter sets (matrix, merge) failed.
    #[error("{0}")]
    Combine(String),
    /// An image's tags could not be listed or none is allowed.
    #[error("image {name}: {message}")]
    Image {
        /// The image as the spec names it.
        name: String,
        /// Why, naming the filters.
        message: String,
    },
    /// A `pullRequest` generator's provider could not list pull requests (auth, rate
    /// limit, server error, malformed answer): nothing is applied or deleted.
    #[error("listing pull requests from {provider}: {message}")]
    PullRequests {
        /// `github`, `gitlab`, …
        provider: String,
        /// What went wrong, naming the repository and the HTTP status.
        message: String,
    },
    /// An `scmProvider` generator's provider could not list repositories, branches or
    /// paths: nothing is applied or deleted.
    #[error("listing repositories from {provider}: {message}")]
    ScmProvider {
        /// `github`, `gitlab`, …
        provider: String,
        /// What went wrong, naming the organization or repository and the HTTP status.
        message: String,
    },
    /// A plugin generator's plugin failed or answered something unusable.
    #[error("plugin {name:?}: {message}")]
    Plugin {
        /// `configMapRef.name`.
        name: String,
        /// What went wrong, from the host or the plugin.
        message: String,
    },
}
