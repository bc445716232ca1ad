//! The plugins file: the admin's list of plugin definitions (never the ApplicationSet's).
//!
//! ```yaml
//! plugins:
//! - name: tenant-tiers          # what configMapRef.name refers to
//!   path: tenant-tiers.wasm     # relative to this file
//!   sha256: 3f1c…               # required; a mismatch refuses to load
//! ```
//! Every limit has a default; capabilities default to none.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One plugin: where its code is, what it may use, how much.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginDefinition {
    /// What `configMapRef.name` refers to.
    pub name: String,
    /// The `.wasm` file (component or WASI command module).
    pub path: PathBuf,
    /// Hex SHA-256 of the file; a mismatch refuses to load.
    pub sha256: String,
    /// Cap on the plugin's linear memory.
    #[serde(rename = "memoryMiB", default = "defaults::memory_mib")]
    pub memory_mib: u64,
    /// Wall-clock cap on one call, host calls included.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Cap on the response size.
    #[serde(default = "defaults::max_output_bytes")]
    pub max_output_bytes: usize,
    /// Cap on the number of parameter sets returned.
    #[serde(default = "defaults::max_parameter_sets")]
    pub max_parameter_sets: usize,
    /// Hosts `http-get` may reach (`host`, `host:port` or `*.domain`); none by default.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Whether `read-file`, `list-files` and `list-refs` may read the repositories
    /// the ApplicationSet names.
    #[serde(default)]
    pub repo_access: bool,
    /// Cap on one `http-get` response body.
    #[serde(default = "defaults::max_output_bytes")]
    pub http_max_bytes: usize,
    /// How long a result of a plugin that uses HTTP is reused.
    #[serde(default = "defaults::http_cache_seconds")]
    pub http_cache_seconds: u64,
}

/// The largest `timeoutMs` (and `--timeout-ms`): 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// The largest `maxOutputBytes` and `httpMaxBytes`: 256 MiB.
pub const MAX_BYTES: u64 = 256 << 20;
/// The largest `maxParameterSets`.
pub const MAX_PARAMETER_SETS: u64 = 1_000_000;
/// The largest `httpCacheSeconds`: a day.
pub const MAX_HTTP_CACHE_SECONDS: u64 = 86_400;

mod defaults {
    pub fn memory_mib() -> u64 {
        64
    }
    pub fn timeout_ms() -> u64 {
        5000
    }
    pub fn max_output_bytes() -> usize {
        4 << 20
    }
    pub fn max_parameter_sets() -> usize {
        10_000
    }
    pub fn http_cache_seconds() -> u64 {
        60
    }
}

impl PluginDefinition {
    /// A definition for `path` with the default limits and no capabilities
    /// (`prism plugin run`), trusting the file as it is now.
    pub fn for_file(path: &Path, sha256: String) -> PluginDefinition {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".into());
        PluginDefinition {
            name,
            path: path.to_path_buf(),
            sha256,
            memory_mib: defaults::memory_mib(),
            timeout_ms: defaults::timeout_ms(),
            max_output_bytes: defaults::max_output_bytes(),
            max_parameter_sets: defaults::max_parameter_sets(),
            allowed_hosts: vec![],
            repo_access: false,
            http_max_bytes: defaults::max_output_bytes(),
            http_cache_seconds: defaults::http_cache_seconds(),
        }
    }

    /// Checks what serde cannot; `at` is where the definition came from (the entry's
    /// path in the file, or `the command line`).
    pub fn check(&self, at: &str) -> Result<(), String> {
        if self.name.is_empty() {
            return Err(format!("{at}.name: must not be empty"));
        }
        let sha = &self.sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{at}.sha256: {sha:?} is not a hex SHA-256; compute it with `sha256sum {}` \
                 or `prism plugin inspect {}`",
                self.path.display(),
                self.path.display()
            ));
        }
        for (field, value) in [
            ("memoryMiB", self.memory_mib),
            ("timeoutMs", self.timeout_ms),
            ("maxOutputBytes", self.max_output_bytes as u64),
            ("maxParameterSets", self.max_parameter_sets as u64),
            ("httpMaxBytes", self.http_max_bytes as u64),
        ] {
            if value == 0 {
                return Err(format!("{at}.{field}: must be greater than 0"));
            }
        }
        if self.memory_mib > 4096 {
            return Err(format!(
                "{at}.memoryMiB: {} is over 4096, the most a 32-bit plugin can address",
                self.memory_mib
            ));
        }
        // An admin's limit is a limit too: a value so large it means "never" would let a
        // looping plugin hold a reconcile worker forever.
        for (field, value, max) in [
            ("timeoutMs", self.timeout_ms, MAX_TIMEOUT_MS),
            ("maxOutputBytes", self.max_output_bytes as u64, MAX_BYTES),
            (
                "maxParameterSets",
                self.max_parameter_sets as u64,
                MAX_PARAMETER_SETS,
            ),
            ("httpMaxBytes", self.http_max_bytes as u64, MAX_BYTES),
            (
                "httpCacheSeconds",
                self.http_cache_seconds,
                MAX_HTTP_CACHE_SECONDS,
            ),
        ] {
            if value > max {
                return Err(format!("{at}.{field}: {value} is over the maximum {max}"));
            }
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let host = h.strip_prefix("*.").unwrap_or(h);
            if host.is_empty()
                || host.contains('/')
                || host.contains('*')
                || host.contains("://")
                || host.chars().any(char::is_whitespace)
            {
                return Err(format!(
                    "{at}.allowedHosts[{i}]: {h:?} is not a host; write `host`, `host:port` or `*.domain`"
                ));
            }
        }
        Ok(())
    }
}

/// Every definition of a plugins file, by name.
#[derive(Debug, Clone, Default)]
pub struct PluginDefinitions {
    /// The file they came from (for messages).
    pub file: String,
    /// By name.
    pub by_name: BTreeMap<String, PluginDefinition>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginsFile {
    plugins: Vec<PluginDefinition>,
}

impl PluginDefinitions {
    /// Reads a plugins file; relative `path`s are relative to the file.
    pub fn load(file: &Path) -> Result<PluginDefinitions, String> {
        let text = crate::fsread::read_to_string(file)
            .map_err(|e| format!("{}: cannot read plugins file: {e}", file.display()))?;
        let base = file.parent().unwrap_or(Path::new("."));
        Self::parse(&text, &file.display().to_string(), base)
    }

    /// Parses plugins-file text; `name` is for messages, `base` resolves relative paths.
    pub fn parse(text: &str, name: &str, base: &Path) -> Result<PluginDefinitions, String> {
        let parsed: PluginsFile = serde_yaml::from_str(text).map_err(|e| {
            format!(
                "{name}: not a plugins file ({e}); expected `plugins:` with a list of name, path, sha256"
            )
        })?;
        let mut by_name = BTreeMap::new();
        for (i, mut def) in parsed.plugins.into_iter().enumerate() {
            let at = format!("{name}: plugins[{i}]");
            def.check(&at)?;
            def.sha256 = def.sha256.to_ascii_lowercase();
            if def.path.is_relative() {
                def.path = base.join(&def.path);
            }
            if by_name.contains_key(&def.name) {
                return Err(format!(
                    "{at}.name: {:?} is defined twice; names must be unique",
                    def.name
                ));
            }
            by_name.insert(def.name.clone(), def);
        }
        Ok(PluginDefinitions {
            file: name.to_string(),
            by_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "3f1c0000000000000000000000000000000000000000000000000000000000aa";

    #[test]
    fn defaults_and_relative_paths() {
        let defs = PluginDefinitions::parse(
            &format!("plugins:\n- name: t\n  path: t.wasm\n  sha256: {SHA}\n"),
            "p.yaml",
            Path::new("/etc/prism"),
        )
        .unwrap();
        let t = &defs.by_name["t"];
        assert_eq!(t.path, PathBuf::from("/etc/prism/t.wasm"));
        assert_eq!(
            (
                t.memory_mib,
                t.timeout_ms,
                t.max_output_bytes,
                t.max_parameter_sets
            ),
            (64, 5000, 4 << 20, 10_000)
        );
        assert!(t.allowed_hosts.is_empty() && !t.repo_access);
    }

    #[test]
    fn bad_entries_are_named() {
        let err =
            |text: &str| PluginDefinitions::parse(text, "p.yaml", Path::new(".")).unwrap_err();
        assert!(err("plugins:\n- name: t\n  path: t.wasm\n").contains("missing field `sha256`"));
        assert!(err("plugins:\n- name: t\n  path: t.wasm\n  sha256: abc\n")
            .starts_with("p.yaml: plugins[0].sha256: \"abc\" is not a hex SHA-256"));
        assert!(err(&format!(
            "plugins:\n- name: t\n  path: a.wasm\n  sha256: {SHA}\n- name: t\n  path: b.wasm\n  sha256: {SHA}\n"
        ))
        .contains("plugins[1].name: \"t\" is defined twice"));
        assert!(err(&format!(
            "plugins:\n- name: t\n  path: a.wasm\n  sha256: {SHA}\n  allowedHosts: ['https://x']\n"
        ))
        .contains("allowedHosts[0]"));
        assert!(err(&format!(
            "plugins:\n- name: t\n  path: a.wasm\n  sha256: {SHA}\n  timeoutMs: 0\n"
        ))
        .contains("timeoutMs: must be greater than 0"));
        assert!(err(&format!(
            "plugins:\n- name: t\n  path: a.wasm\n  sha256: {SHA}\n  memoryMib: 3\n"
        ))
        .contains("unknown field `memoryMib`"));
    }

    /// An admin's limit has a ceiling: "never time out" is not a timeout.
    #[test]
    fn limits_over_their_maximum_are_refused() {
        let err =
            |text: &str| PluginDefinitions::parse(text, "p.yaml", Path::new(".")).unwrap_err();
        for (field, value, max) in [
            ("timeoutMs", "18446744073709551615", "600000"),
            ("maxOutputBytes", "268435457", "268435456"),
            ("maxParameterSets", "1000001", "1000000"),
            ("httpMaxBytes", "1000000000", "268435456"),
            ("httpCacheSeconds", "86401", "86400"),
        ] {
            let e = err(&format!(
                "plugins:\n- name: t\n  path: a.wasm\n  sha256: {SHA}\n  {field}: {value}\n"
            ));
            assert!(
                e.contains(&format!(
                    "plugins[0].{field}: {value} is over the maximum {max}"
                )),
                "{e}"
            );
        }
    }
}
