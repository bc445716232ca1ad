//! Write a Prism generator plugin in Rust.
//!
//! A plugin is one function from a [`Request`] to parameter sets, exported with one
//! macro:
//!
//! ```ignore
//! use prism_plugin_sdk::{Error, Params, Request};
//!
//! fn generate(req: Request) -> Result<Vec<Params>, Error> {
//!     let envs = req.input_array("environments")?;
//!     Ok(envs.iter().map(|e| Params::from_iter([("env".to_string(), e.clone())])).collect())
//! }
//! prism_plugin_sdk::export_generator!(generate);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`: the result is a
//! WebAssembly component implementing `prism:generator@0.1.0` (see
//! `plugins/wit/generator.wit`). The same function can instead be built as a plain
//! WASI command module (`--target wasm32-wasip1`) with [`run_command`]; command
//! modules get no host capabilities.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Bindings generated from `plugins/wit/generator.wit`; the [`export_generator!`]
/// macro uses them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "generator",
        pub_export_macro: true,
        export_macro_name: "__export_generator_world",
        default_bindings_module: "prism_plugin_sdk::bindings",
    });
}

/// One parameter set: the keys a template refers to.
pub type Params = Map<String, Value>;

/// What the host asks for (Argo CD's plugin request plus Prism's fields).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `prism.dev/plugin/v1`.
    #[serde(default)]
    pub api_version: String,
    /// The ApplicationSet being rendered.
    #[serde(default)]
    pub application_set_name: String,
    /// The generator's `input` (`input.parameters` in the spec).
    #[serde(default)]
    pub input: Input,
    /// The parameter set of earlier matrix children (empty outside a matrix).
    #[serde(default)]
    pub parameters: Params,
    /// The current time, RFC 3339 in UTC: the only clock a plugin has.
    #[serde(default)]
    pub now: String,
}

/// The generator's `input` block.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Input {
    /// `input.parameters`, as written in the ApplicationSet.
    #[serde(default)]
    pub parameters: Params,
}

impl Request {
    /// `input.parameters.<key>` as a string, or an error naming the key.
    pub fn input_str(&self, key: &str) -> Result<&str, Error> {
        match self.input.parameters.get(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(Error::new(format!(
                "input.parameters.{key} must be a string, found {other}"
            ))),
            None => Err(Error::new(format!("input.parameters.{key} is required"))),
        }
    }

    /// `input.parameters.<key>` as an array, or an error naming the key.
    pub fn input_array(&self, key: &str) -> Result<&Vec<Value>, Error> {
        match self.input.parameters.get(key) {
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(Error::new(format!(
                "input.parameters.{key} must be a list, found {other}"
            ))),
            None => Err(Error::new(format!("input.parameters.{key} is required"))),
        }
    }
}

/// A plugin error: the message reaches the user, so say what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// Runs `generate` on a request JSON and returns the response JSON: what the
/// exported `generate` function and [`run_command`] both do.
pub fn handle(
    request: &str,
    generate: impl FnOnce(Request) -> Result<Vec<Params>, Error>,
) -> Result<String, String> {
    let req: Request =
        serde_json::from_str(request).map_err(|e| format!("bad request from host: {e}"))?;
    let sets = generate(req).map_err(|e| e.0)?;
    let response = serde_json::json!({ "output": { "parameters": sets } });
    Ok(response.to_string())
}

/// The `main` of a WASI command-module plugin: request on stdin, response on
/// stdout, an error message on stderr with exit code 1.
pub fn run_command(generate: impl FnOnce(Request) -> Result<Vec<Params>, Error>) {
    use std::io::{Read, Write};
    let mut request = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut request) {
        eprintln!("reading the request: {e}");
        std::process::exit(1);
    }
    match handle(&request, generate) {
        Ok(response) => {
            let mut out = std::io::stdout();
            if out.write_all(response.as_bytes()).and_then(|_| out.flush()).is_err() {
                std::process::exit(1);
            }
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    }
}

/// Host capabilities for component plugins (each needs the plugin definition's grant).
pub mod host {
    pub use crate::bindings::prism::generator::host::{GitRef, HttpResponse, Level};
    use crate::bindings::prism::generator::host as raw;

    /// Writes a line to Prism's log.
    pub fn log(level: Level, message: &str) {
        raw::log(level, message)
    }

    /// A file of a repository the ApplicationSet names (`repoAccess`).
    pub fn read_file(repo_url: &str, revision: &str, path: &str) -> Result<Vec<u8>, String> {
        raw::read_file(repo_url, revision, path)
    }

    /// Files of a repository matching a glob (`repoAccess`).
    pub fn list_files(repo_url: &str, revision: &str, glob: &str) -> Result<Vec<String>, String> {
        raw::list_files(repo_url, revision, glob)
    }

    /// Branches and tags whose short name matches `pattern` (`repoAccess`).
    pub fn list_refs(repo_url: &str, pattern: &str) -> Result<Vec<GitRef>, String> {
        raw::list_refs(repo_url, pattern)
    }

    /// GET a URL on an allowed host (`allowedHosts`).
    pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, String> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw::http_get(url, &headers)
    }
}

/// Exports `fn(Request) -> Result<Vec<Params>, Error>` as the component's `generate`.
#[macro_export]
macro_rules! export_generator {
    ($generate:path) => {
        struct PrismGeneratorPlugin;

        impl $crate::bindings::Guest for PrismGeneratorPlugin {
            fn generate(request: String) -> Result<String, String> {
                $crate::handle(&request, $generate)
            }
        }

        $crate::bindings::__export_generator_world!(PrismGeneratorPlugin with_types_in $crate::bindings);
    };
}
