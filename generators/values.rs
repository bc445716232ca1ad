//! `values` (Prism's own): one parameter set per service per environment, from
//! per-environment Helm values files (`values-<env>.yaml`).
//!
//! Finds every file matching `pattern` (doublestar; default `**/values-*.yaml`) whose
//! file-name part has exactly one `*`, which stands for the environment. Files under
//! dot-directories are skipped. Order: by service directory, then by environment (in
//! `environments` order when given, which also filters, else alphabetical).
//! Params: `service` (directory basename), `serviceNormalized`, `env`, `path` (the
//! directory), `valuesFile`, `hasBaseValues` (a `values.yaml` sits beside it;
//! `"true"`/`"false"` in the default mode), and the file's keys under `values.`
//! (flattened in the default mode), plus `values.<k>` from the generator's own
//! templated `values`, which win.

use super::{append_values, go_base, go_dir, parse_error, read_error, Context};
use prism_core::error::Error;
use prism_core::glob::{Dialect, Glob};
use prism_core::params::{flatten_value, normalize, ParamSet, ParamShape};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// The default pattern for per-environment values files.
pub const DEFAULT_PATTERN: &str = "**/values-*.yaml";

/// The `values` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValuesGenerator {
    /// The repository holding the services.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag, commit SHA or `HEAD` (the default).
    #[serde(default)]
    pub revision: String,
    /// Doublestar pattern of values files; its file name has one `*`: the environment.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Only these environments, in this order.
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Extra parameters, templated against each parameter set.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

impl ValuesGenerator {
    fn pattern(&self) -> &str {
        self.pattern.as_deref().unwrap_or(DEFAULT_PATTERN)
    }

    /// The literal text around the `*` in the pattern's file name.
    fn env_affixes(&self, path: &str) -> Result<(&str, &str), Error> {
        let file = go_base(self.pattern());
        let bad = || {
            Error::invalid(
                format!("{path}.pattern"),
                format!(
                    "the file name in {:?} must contain exactly one `*` (the environment) and no other wildcard, \
                     like values-*.yaml",
                    self.pattern()
                ),
            )
        };
        if file.matches('*').count() != 1 || file.contains(['?', '[', '\\']) {
            return Err(bad());
        }
        file.split_once('*').ok_or_else(bad)
    }

    pub(super) fn check_spec(&self, path: &str) -> Result<(), Error> {
        if self.repo_url.is_empty() {
            return Err(Error::invalid(
                format!("{path}.repoURL"),
                "repoURL is required",
            ));
        }
        Glob::new(self.pattern(), Dialect::Doublestar)
            .map_err(|e| Error::invalid(format!("{path}.pattern"), e.to_string()))?;
        self.env_affixes(path)?;
        Ok(())
    }

    /// The parameter sets.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let revision = if self.revision.is_empty() {
            "HEAD"
        } else {
            &self.revision
        };
        let read_error = |e| read_error(path, &self.repo_url, revision, e);
        let repo = ctx
            .sources
            .repository(&self.repo_url, revision)
            .map_err(read_error)?;
        let glob = Glob::new(self.pattern(), Dialect::Doublestar)
            .map_err(|e| Error::invalid(format!("{path}.pattern"), e.to_string()))?;
        let (prefix, suffix) = self.env_affixes(path)?;
        let all_files: HashSet<&str> = repo.files().iter().map(String::as_str).collect();

        // (service dir, env rank, env, file)
        let mut found: Vec<(&str, usize, String, &str)> = Vec::new();
        for file in repo.files() {
            if file.split('/').any(|s| s.starts_with('.')) || !glob.matches(file) {
                continue;
            }
            let name = go_base(file);
            let env = &name[prefix.len()..name.len() - suffix.len()];
            if env.is_empty() {
                continue;
            }
            let rank = match &self.environments {
                Some(envs) => match envs.iter().position(|e| e == env) {
                    Some(i) => i,
                    None => continue,
                },
                None => 0,
            };
            found.push((go_dir(file), rank, env.to_string(), file.as_str()));
        }
        found.sort();

        // Reading and parsing the files, and making each set, is most of this
        // generator's time, and each file stands alone: spread it over threads.
        let limits = &ctx.options.limits;
        let shape = ctx.shape();
        let made = prism_core::parallel::map(&found, ctx.options.threads, |(dir, _, env, file)| {
            let bytes = repo.read(file).map_err(read_error)?;
            let values = parse_values(&bytes, limits)
                .map_err(|m| parse_error(path, &self.repo_url, file, m))?;
            let base_file = if *dir == "." {
                "values.yaml".to_string()
            } else {
                format!("{dir}/values.yaml")
            };
            let has_base = all_files.contains(base_file.as_str());
            let service = go_base(dir);
            let mut params = ParamSet::new();
            params.insert("service".into(), service.into());
            params.insert("serviceNormalized".into(), normalize(service).into());
            params.insert("env".into(), env.as_str().into());
            params.insert("path".into(), (*dir).into());
            params.insert("valuesFile".into(), (*file).into());
            match shape {
                ParamShape::Flat => {
                    params.insert("hasBaseValues".into(), has_base.to_string().into());
                    flatten_value("values", &Value::Object(values), &mut params);
                }
                ParamShape::Nested => {
                    params.insert("hasBaseValues".into(), has_base.into());
                    params.insert("values".into(), Value::Object(values));
                }
            }
            Ok::<_, Error>(params)
        });
        let mut sets = Vec::with_capacity(made.len());
        for params in made {
            let mut params = params?;
            if !self.values.is_empty() {
                let mut extra = ParamSet::new();
                append_values(&self.values, &mut extra, ctx, path)?;
                super::merge_override(&mut params, &extra);
            }
            sets.push(params);
        }
        if sets.is_empty() {
            ctx.warn(format!(
                "{path}: no values files in {} at revision {revision:?} match {}; this generator yields no Applications",
                self.repo_url,
                self.pattern()
            ));
        }
        Ok(sets)
    }
}

fn parse_values(bytes: &[u8], limits: &prism_core::limits::Limits) -> Result<ParamSet, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    match prism_core::limits::parse_yaml::<Value>(text, limits) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(ParamSet::new()),
        Ok(_) => Err("a values file must be a YAML mapping".to_string()),
        Err(e) => Err(format!("not valid YAML: {e}")),
    }
}

/// The `values` generator's registration.
pub struct Values;

impl super::GeneratorKind for Values {
    fn key(&self) -> &'static str {
        "values"
    }

    fn prism_only(&self) -> bool {
        true
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(super::GIT_REQUEUE)
    }

    fn reads_git(&self, body: &Value) -> Option<(String, String)> {
        super::repo_and_revision(body)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ValuesGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ValuesGenerator>()
    }

    fn emits(&self, _body: &Value, e: &mut super::Emits) {
        e.names(&[
            "service",
            "serviceNormalized",
            "env",
            "path",
            "valuesFile",
            "hasBaseValues",
            "values",
        ]);
        e.prefixes.push("values.".into());
    }
}

impl super::Generate for ValuesGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        self.check_spec(path)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::expand_with;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::{MemoryRepository, MemorySources};
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};

    const URL: &str = "https://git.example.com/org/services.git";

    fn sources() -> MemorySources {
        MemorySources::new().with_repo(
            URL,
            MemoryRepository::new([
                ("services/api/values.yaml", "replicas: 1"),
                (
                    "services/api/values-prod.yaml",
                    "replicas: 3\nimage: {tag: v1}",
                ),
                ("services/api/values-test.yaml", ""),
                ("services/web/values-prod.yaml", "replicas: 2"),
                ("services/web/values-dev.yaml", "x: y"),
                (".github/values-ci.yaml", "a: b"),
            ]),
        )
    }

    fn run(raw: Value, engine: TemplateEngine) -> Result<Vec<Value>, String> {
        expand_with(raw, engine, &sources(), &RenderOptions::default())
    }

    #[test]
    fn one_set_per_service_and_env() {
        let sets = run(json!({"values": {"repoURL": URL}}), TemplateEngine::Fast).unwrap();
        let pairs: Vec<(String, String)> = sets
            .iter()
            .map(|s| {
                (
                    s["service"].as_str().unwrap().into(),
                    s["env"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("api".into(), "prod".into()),
                ("api".into(), "test".into()),
                ("web".into(), "dev".into()),
                ("web".into(), "prod".into())
            ]
        );
        assert_eq!(
            sets[0],
            json!({"service": "api", "serviceNormalized": "api", "env": "prod", "path": "services/api",
                   "valuesFile": "services/api/values-prod.yaml", "hasBaseValues": "true",
                   "values.replicas": "3", "values.image.tag": "v1"})
        );
        assert_eq!(sets[2]["hasBaseValues"], "false");
    }

    #[test]
    fn environments_filter_and_order() {
        let sets = run(
            json!({"values": {"repoURL": URL, "environments": ["test", "prod"]}}),
            TemplateEngine::Handlebars,
        )
        .unwrap();
        let got: Vec<String> = sets
            .iter()
            .map(|s| {
                format!(
                    "{}/{}",
                    s["service"].as_str().unwrap(),
                    s["env"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(got, vec!["api/test", "api/prod", "web/prod"]);
        assert_eq!(
            sets[1]["values"],
            json!({"replicas": 3, "image": {"tag": "v1"}})
        );
        assert_eq!(sets[1]["hasBaseValues"], true);
    }

    #[test]
    fn custom_pattern_needs_one_star_in_file_name() {
        let err = run(
            json!({"values": {"repoURL": URL, "pattern": "envs/*/values.yaml"}}),
            TemplateEngine::Fast,
        )
        .unwrap_err();
        assert!(err.starts_with("spec.generators[0].values.pattern: the file name in \"envs/*/values.yaml\" must contain exactly one `*`"), "{err}");
    }

    #[test]
    fn values_file_that_is_not_yaml_is_an_error() {
        let bad = MemorySources::new().with_repo(
            URL,
            MemoryRepository::new([("svc/values-prod.yaml", "a: [1,\n")]),
        );
        let err = expand_with(
            json!({"values": {"repoURL": URL}}),
            TemplateEngine::Fast,
            &bad,
            &RenderOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("spec.generators[0].values: file svc/values-prod.yaml in https://git.example.com/org/services.git: not valid YAML"),
            "{err}"
        );
    }
}
