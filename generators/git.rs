//! `git`: parameter sets from a repository's directories or files at a revision.
//!
//! **Directories**: every directory whose path matches a `directories[].path` pattern
//! (Go's `path.Match`: `*` never crosses `/`) and no `exclude: true` pattern (an
//! exclude wins wherever it appears); directories with a dot-segment are skipped, as
//! Argo skips them. Order: tree order (sorted paths). Params: `path`, `path.basename`,
//! `path.basenameNormalized`, `path[N]` (nested: `path.path`, `path.segments`, …).
//!
//! **Files**: every file matching a `files[].path` include pattern, minus every file
//! matching an exclude pattern, sorted by path. Patterns use `git ls-files`
//! pathspecs (`*` crosses `/`) or, with the new globbing option, doublestar. Each YAML
//! or JSON file gives one parameter set, or one per item when it holds a list; the
//! content is flattened to dotted keys in the default mode and kept nested otherwise,
//! plus `path`, `path.basename`, `path.filename`, `path.filenameNormalized`, `path[N]`.
//!
//! Both add `values.<k>` (templated) and honour `pathParamPrefix`.

use super::{append_values, go_base, go_dir, parse_error, path_params, read_error, Context};
use prism_core::error::Error;
use prism_core::glob::{Dialect, Glob};
use prism_core::params::{flatten_value, ParamSet, ParamShape};
use prism_core::sources::Repository;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The `git` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitGenerator {
    /// The repository, as Argo CD knows it (mapped to a local path by the front end).
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag, commit SHA or `HEAD`.
    #[serde(default)]
    pub revision: String,
    /// Directory patterns (one parameter set per matching directory).
    #[serde(default)]
    pub directories: Option<Vec<PathItem>>,
    /// File patterns (parameter sets from each matching file's content).
    #[serde(default)]
    pub files: Option<Vec<PathItem>>,
    /// Put the path parameters under this prefix (`<prefix>.path…`).
    #[serde(default)]
    pub path_param_prefix: String,
    /// Extra parameters, templated against each parameter set.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Controller refresh interval; ignored offline.
    #[serde(default)]
    pub requeue_after_seconds: Option<i64>,
}

/// Patterns, the field they come from (`directories` or `files`) and their dialect.
type Patterns<'a> = (&'a [PathItem], &'static str, Dialect);

/// A `directories` or `files` entry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathItem {
    /// The glob pattern.
    pub path: String,
    /// Drop what this pattern matches instead of adding it.
    #[serde(default)]
    pub exclude: bool,
}

pub use prism_core::glob::FileGlobbing;

impl GitGenerator {
    pub(super) fn check_spec(&self, path: &str) -> Result<(), Error> {
        if self.repo_url.is_empty() {
            return Err(Error::invalid(
                format!("{path}.repoURL"),
                "repoURL is required",
            ));
        }
        let (items, field, dialect) = self.items(FileGlobbing::Default).ok_or_else(|| {
            Error::invalid(path, "a git generator needs `directories` or `files`")
        })?;
        for (i, item) in items.iter().enumerate() {
            Glob::new(&item.path, dialect)
                .map_err(|e| Error::invalid(format!("{path}.{field}[{i}].path"), e.to_string()))?;
        }
        Ok(())
    }

    /// The patterns in use, the field they come from and their dialect.
    fn items(&self, globbing: FileGlobbing) -> Option<Patterns<'_>> {
        match (&self.directories, &self.files) {
            (Some(d), _) => Some((d.as_slice(), "directories", Dialect::PathMatch)),
            (None, Some(f)) => Some((
                f.as_slice(),
                "files",
                match globbing {
                    FileGlobbing::Default => Dialect::GitPathspec,
                    FileGlobbing::New => Dialect::Doublestar,
                },
            )),
            (None, None) => None,
        }
    }

    /// The parameter sets.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let repo = ctx
            .sources
            .repository(&self.repo_url, &self.revision)
            .map_err(|e| read_error(path, &self.repo_url, &self.revision, e))?;
        let Some((items, field, dialect)) = self.items(ctx.options.git_file_globbing) else {
            return Err(Error::invalid(
                path,
                "a git generator needs `directories` or `files`",
            ));
        };
        let globs = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Glob::new(&item.path, dialect)
                    .map(|g| (g, item.exclude))
                    .map_err(|e| Error::invalid(format!("{path}.{field}[{i}].path"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sets = if field == "directories" {
            self.directories(ctx, path, &*repo, &globs)?
        } else {
            self.files(ctx, path, &repo, &globs)?
        };
        if sets.is_empty() {
            let patterns: Vec<&str> = items
                .iter()
                .filter(|i| !i.exclude)
                .map(|i| i.path.as_str())
                .collect();
            ctx.warn(format!(
                "{path}: no {field} in {} at revision {:?} match {}; this generator yields no Applications",
                self.repo_url,
                self.revision,
                patterns.join(", ")
            ));
        }
        Ok(sets)
    }

    fn directories(
        &self,
        ctx: &Context,
        path: &str,
        repo: &dyn Repository,
        globs: &[(Glob, bool)],
    ) -> Result<Vec<ParamSet>, Error> {
        let mut sets = Vec::new();
        for dir in repo.directories() {
            if dir.split('/').any(|s| s.starts_with('.')) {
                continue;
            }
            let mut include = false;
            let mut exclude = false;
            for (glob, is_exclude) in globs {
                if glob.matches(dir) {
                    if *is_exclude {
                        exclude = true;
                    } else {
                        include = true;
                    }
                }
            }
            if include && !exclude {
                let mut params = ParamSet::new();
                path_params(&mut params, ctx.shape(), &self.path_param_prefix, dir, None);
                append_values(&self.values, &mut params, ctx, path)?;
                sets.push(params);
            }
        }
        Ok(sets)
    }

    fn files(
        &self,
        ctx: &Context,
        path: &str,
        repo: &Arc<dyn Repository>,
        globs: &[(Glob, bool)],
    ) -> Result<Vec<ParamSet>, Error> {
        let mut chosen = BTreeSet::new();
        for file in repo.files() {
            let included = globs.iter().any(|(g, ex)| !ex && g.matches(file));
            let excluded = globs.iter().any(|(g, ex)| *ex && g.matches(file));
            if included && !excluded {
                chosen.insert(file.as_str());
            }
        }
        let mut sets = Vec::new();
        for file in chosen {
            let bytes = repo
                .read(file)
                .map_err(|e| read_error(path, &self.repo_url, &self.revision, e))?;
            let objects = parse_objects(&bytes, &ctx.options.limits)
                .map_err(|m| parse_error(path, &self.repo_url, file, m))?;
            for object in objects {
                let mut params = ParamSet::new();
                match ctx.shape() {
                    ParamShape::Flat => flatten_value("", &Value::Object(object), &mut params),
                    ParamShape::Nested => params = object,
                }
                path_params(
                    &mut params,
                    ctx.shape(),
                    &self.path_param_prefix,
                    go_dir(file),
                    Some(go_base(file)),
                );
                append_values(&self.values, &mut params, ctx, path)?;
                sets.push(params);
            }
        }
        Ok(sets)
    }
}

/// Reads a git file as Argo does: a list of mappings (one parameter set each; an empty
/// list or an empty file gives one empty set) or a single mapping.
pub fn parse_objects(
    bytes: &[u8],
    limits: &prism_core::limits::Limits,
) -> Result<Vec<ParamSet>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let value: Value = prism_core::limits::parse_yaml(text, limits)
        .map_err(|e| format!("not valid YAML or JSON: {e}"))?;
    match value {
        Value::Null => Ok(vec![ParamSet::new()]),
        Value::Object(m) => Ok(vec![m]),
        Value::Array(items) if items.is_empty() => Ok(vec![ParamSet::new()]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(m) => Ok(m),
                _ => Err(format!("item {i} of the list is not a mapping")),
            })
            .collect(),
        _ => Err("expected a mapping or a list of mappings".to_string()),
    }
}

/// The `git` generator's registration.
pub struct Git;

impl super::GeneratorKind for Git {
    fn key(&self) -> &'static str {
        "git"
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(super::GIT_REQUEUE)
    }

    fn reads_git(&self, body: &Value) -> Option<(String, String)> {
        super::repo_and_revision(body)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<GitGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<GitGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        let prefix = body
            .get("pathParamPrefix")
            .and_then(Value::as_str)
            .unwrap_or("");
        let p = if prefix.is_empty() {
            "path".to_string()
        } else {
            format!("{prefix}.path")
        };
        e.names.push(p.clone());
        e.prefixes.push(format!("{p}."));
        e.prefixes.push(format!("{p}["));
        if !prefix.is_empty() {
            e.names.push(prefix.to_string());
        }
        if body.get("files").is_some() {
            e.anything = true; // file contents are parameters
        }
        e.values_of(body);
    }
}

impl super::Generate for GitGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        self.check_spec(path)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use super::FileGlobbing;
    use crate::tests::expand_with;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::{MemoryRepository, MemorySources};
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};

    const URL: &str = "https://git.example.com/org/repo.git";

    fn sources() -> MemorySources {
        MemorySources::new().with_repo(
            URL,
            MemoryRepository::new([
                ("apps/api/kustomization.yaml", "x: 1"),
                ("apps/web/kustomization.yaml", "x: 1"),
                ("apps/web/nested/deep/f.txt", ""),
                ("apps/.hidden/f.txt", ""),
                ("apps/legacy/f.txt", ""),
                (
                    "clusters/prod/config.json",
                    r#"{"cluster": {"name": "prod", "replicas": 3, "tags": ["a"]}}"#,
                ),
                (
                    "clusters/test/config.json",
                    r#"{"cluster": {"name": "test", "replicas": 1}}"#,
                ),
                (
                    "clusters/list/config.json",
                    "[{\"cluster\": {\"name\": \"l1\"}}, {\"cluster\": {\"name\": \"l2\"}}]",
                ),
                ("clusters/config.json", "{}"),
            ]),
        )
    }

    fn run(
        raw: Value,
        engine: TemplateEngine,
        globbing: FileGlobbing,
    ) -> Result<Vec<Value>, String> {
        let options = RenderOptions {
            git_file_globbing: globbing,
            ..Default::default()
        };
        expand_with(raw, engine, &sources(), &options)
    }

    fn column<'a>(sets: &'a [Value], key: &str) -> Vec<&'a str> {
        sets.iter().map(|s| s[key].as_str().unwrap()).collect()
    }

    #[test]
    fn directories_match_and_exclude() {
        let sets = run(
            json!({"git": {"repoURL": URL, "revision": "HEAD", "directories": [
                {"path": "apps/*"}, {"path": "apps/legacy", "exclude": true}]}}),
            TemplateEngine::Fast,
            FileGlobbing::Default,
        )
        .unwrap();
        assert_eq!(column(&sets, "path"), vec!["apps/api", "apps/web"]);
        assert_eq!(
            sets[0],
            json!({"path": "apps/api", "path.basename": "api", "path.basenameNormalized": "api",
                   "path[0]": "apps", "path[1]": "api"})
        );
    }

    #[test]
    fn directories_nested_shape_and_prefix() {
        let sets = run(
            json!({"git": {"repoURL": URL, "revision": "HEAD", "pathParamPrefix": "app",
                           "directories": [{"path": "apps/web"}]}}),
            TemplateEngine::Handlebars,
            FileGlobbing::Default,
        )
        .unwrap();
        assert_eq!(
            sets,
            vec![
                json!({"app": {"path": {"path": "apps/web", "basename": "web", "basenameNormalized": "web",
                                         "segments": ["apps", "web"]}}})
            ]
        );
    }

    #[test]
    fn files_flatten_content_and_lists() {
        let sets = run(
            json!({"git": {"repoURL": URL, "revision": "HEAD", "files": [{"path": "clusters/**/config.json"}]}}),
            TemplateEngine::Fast,
            FileGlobbing::Default,
        )
        .unwrap();
        assert_eq!(
            column(&sets, "cluster.name"),
            vec!["l1", "l2", "prod", "test"]
        );
        let prod = &sets[2];
        assert_eq!(prod["cluster.replicas"], "3");
        assert_eq!(prod["cluster.tags.0"], "a");
        assert_eq!(prod["path"], "clusters/prod");
        assert_eq!(prod["path.basename"], "prod");
        assert_eq!(prod["path.filename"], "config.json");
        assert_eq!(prod["path.filenameNormalized"], "config.json");
        assert_eq!(prod["path[1]"], "prod");
    }

    #[test]
    fn file_globbing_modes_differ_on_star() {
        let raw = json!({"git": {"repoURL": URL, "revision": "HEAD", "files": [{"path": "clusters/*.json"}]}});
        let default = run(raw.clone(), TemplateEngine::Fast, FileGlobbing::Default).unwrap();
        assert_eq!(default.len(), 5, "pathspec * crosses /");
        let new = run(raw, TemplateEngine::Fast, FileGlobbing::New).unwrap();
        assert_eq!(column(&new, "path"), vec!["clusters"]);
        let dstar = run(
            json!({"git": {"repoURL": URL, "revision": "HEAD", "files": [
                {"path": "clusters/**/config.json"}, {"path": "clusters/list/*", "exclude": true}]}}),
            TemplateEngine::Fast,
            FileGlobbing::New,
        )
        .unwrap();
        assert_eq!(
            column(&dstar, "path"),
            vec!["clusters", "clusters/prod", "clusters/test"]
        );
    }

    #[test]
    fn unknown_repo_and_bad_file_are_errors() {
        let err = run(
            json!({"git": {"repoURL": "https://nope", "revision": "main", "directories": [{"path": "*"}]}}),
            TemplateEngine::Fast,
            FileGlobbing::Default,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "spec.generators[0].git: reading repository https://nope at revision \"main\": repository not found: https://nope"
        );
        let bad = MemorySources::new()
            .with_repo(URL, MemoryRepository::new([("a/c.yaml", "key: [unclosed")]));
        let err = expand_with(
            json!({"git": {"repoURL": URL, "revision": "HEAD", "files": [{"path": "a/c.yaml"}]}}),
            TemplateEngine::Fast,
            &bad,
            &RenderOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("spec.generators[0].git: file a/c.yaml in https://git.example.com/org/repo.git: not valid YAML or JSON"),
            "{err}"
        );
    }

    #[test]
    fn missing_directories_and_files_is_an_error() {
        let err = run(
            json!({"git": {"repoURL": URL, "revision": "HEAD"}}),
            TemplateEngine::Fast,
            FileGlobbing::Default,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "spec.generators[0].git: a git generator needs `directories` or `files`"
        );
    }
}
