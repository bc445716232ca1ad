//! `clusters`: one parameter set per Argo CD cluster (from cluster Secrets).
//!
//! As Argo CD: the local cluster (`in-cluster`, `https://kubernetes.default.svc`) is
//! emitted only when the generator has no selector, in-cluster is enabled, and no
//! Secret already describes that server. Order: the local cluster first, then Secrets
//! in the order the sources list them. Params: `name`, `nameNormalized`, `server`,
//! `project`, `metadata.labels.<k>`, `metadata.annotations.<k>` (nested: `metadata`),
//! `values.<k>` (templated against the cluster's own params). With `flatList: true`,
//! one parameter set `{clusters: [...]}` holds them all.

use super::{append_values, Context};
use prism_core::cluster::{Cluster, IN_CLUSTER_SERVER};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::{normalize, ParamSet, ParamShape};
use prism_core::selector::LabelSelector;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The `clusters` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClustersGenerator {
    /// Which cluster Secrets to use, by their labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Extra parameters, templated against each cluster's parameters.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Emit one parameter set holding every cluster under `clusters`.
    #[serde(default)]
    pub flat_list: bool,
}

impl ClustersGenerator {
    pub(super) fn check_spec(&self, path: &str) -> Result<(), Error> {
        self.selector
            .validate()
            .map_err(|e| Error::invalid(format!("{path}.selector"), e))
    }

    /// The parameter sets.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let clusters = ctx
            .sources
            .clusters()
            .map_err(|e| Error::new(path, ErrorKind::ReadClusters(e)))?;
        let mut selected: Vec<&Cluster> = Vec::new();
        let has_local_secret = clusters.iter().any(|c| c.server == IN_CLUSTER_SERVER);
        let local = Cluster::in_cluster();
        if self.selector.is_empty() && ctx.options.in_cluster_enabled && !has_local_secret {
            selected.push(&local);
        }
        for c in clusters.iter() {
            if c.server == IN_CLUSTER_SERVER && !ctx.options.in_cluster_enabled {
                continue; // Argo drops it: in-cluster is disabled in its settings.
            }
            if self.selector.matches(&c.labels) {
                selected.push(c);
            }
        }
        let mut sets = Vec::with_capacity(selected.len());
        for c in selected {
            let mut params = cluster_params(c, ctx.shape());
            append_values(&self.values, &mut params, ctx, path)?;
            sets.push(params);
        }
        if self.flat_list {
            let mut one = ParamSet::new();
            one.insert(
                "clusters".into(),
                Value::Array(sets.into_iter().map(Value::Object).collect()),
            );
            return Ok(vec![one]);
        }
        Ok(sets)
    }
}

fn cluster_params(c: &Cluster, shape: ParamShape) -> ParamSet {
    let mut p = ParamSet::new();
    p.insert("name".into(), c.name.clone().into());
    p.insert("nameNormalized".into(), normalize(&c.name).into());
    p.insert("server".into(), c.server.clone().into());
    p.insert(
        "project".into(),
        c.project.clone().unwrap_or_default().into(),
    );
    match shape {
        ParamShape::Flat => {
            for (k, v) in &c.labels {
                p.insert(format!("metadata.labels.{k}"), v.clone().into());
            }
            for (k, v) in &c.annotations {
                p.insert(format!("metadata.annotations.{k}"), v.clone().into());
            }
        }
        // The local cluster without a Secret has no metadata in Argo CD.
        ParamShape::Nested if c.secret_name.is_none() => {}
        ParamShape::Nested => {
            let to_map = |m: &BTreeMap<String, String>| -> Value {
                Value::Object(
                    m.iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            };
            let mut meta = Map::new();
            meta.insert("labels".into(), to_map(&c.labels));
            meta.insert("annotations".into(), to_map(&c.annotations));
            p.insert("metadata".into(), Value::Object(meta));
        }
    }
    p
}

/// The `clusters` generator's registration.
pub struct Clusters;

impl super::GeneratorKind for Clusters {
    fn key(&self) -> &'static str {
        "clusters"
    }

    fn reads_clusters(&self) -> bool {
        true
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ClustersGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ClustersGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        e.names(&[
            "name",
            "nameNormalized",
            "server",
            "project",
            "metadata",
            "clusters",
        ]);
        e.prefixes
            .extend(["metadata.labels.", "metadata.annotations.", "metadata."].map(String::from));
        e.values_of(body);
    }
}

impl super::Generate for ClustersGenerator {
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
    use prism_core::cluster::Cluster;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::MemorySources;
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};

    fn cluster(name: &str, server: &str, env: &str) -> Cluster {
        let mut c = Cluster::in_cluster();
        c.name = name.into();
        c.server = server.into();
        c.labels.insert("env".into(), env.into());
        c.labels
            .insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
        c.secret_name = Some(name.into());
        c
    }

    fn run(
        raw: Value,
        clusters: Vec<Cluster>,
        in_cluster: bool,
        engine: TemplateEngine,
    ) -> Vec<Value> {
        let sources = MemorySources::new().with_clusters(clusters);
        let options = RenderOptions {
            in_cluster_enabled: in_cluster,
            ..Default::default()
        };
        expand_with(raw, engine, &sources, &options).unwrap()
    }

    fn names(sets: &[Value]) -> Vec<&str> {
        sets.iter().map(|s| s["name"].as_str().unwrap()).collect()
    }

    #[test]
    fn local_cluster_only_without_selector() {
        let cs = vec![
            cluster("Prod_1", "https://p1", "prod"),
            cluster("test-1", "https://t1", "test"),
        ];
        let all = run(
            json!({"clusters": {}}),
            cs.clone(),
            true,
            TemplateEngine::Fast,
        );
        assert_eq!(names(&all), vec!["in-cluster", "Prod_1", "test-1"]);
        assert_eq!(all[0]["server"], "https://kubernetes.default.svc");
        assert_eq!(all[0]["project"], "");
        assert_eq!(all[1]["nameNormalized"], "prod-1");
        assert_eq!(all[1]["metadata.labels.env"], "prod");

        let prod = run(
            json!({"clusters": {"selector": {"matchLabels": {"env": "prod"}}}}),
            cs.clone(),
            true,
            TemplateEngine::Fast,
        );
        assert_eq!(names(&prod), vec!["Prod_1"]);

        let disabled = run(json!({"clusters": {}}), cs, false, TemplateEngine::Fast);
        assert_eq!(names(&disabled), vec!["Prod_1", "test-1"]);
    }

    #[test]
    fn secret_for_local_server_replaces_the_default() {
        let cs = vec![cluster("local", "https://kubernetes.default.svc", "dev")];
        let all = run(json!({"clusters": {}}), cs, true, TemplateEngine::Fast);
        assert_eq!(names(&all), vec!["local"]);
    }

    #[test]
    fn values_are_templated_per_cluster() {
        let cs = vec![cluster("p1", "https://p1", "prod")];
        let sets = run(
            json!({"clusters": {"selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]},
                   "values": {"ns": "apps-{{metadata.labels.env}}", "plain": "x"}}}),
            cs.clone(),
            true,
            TemplateEngine::Fast,
        );
        assert_eq!(sets[0]["values.ns"], "apps-prod");
        assert_eq!(sets[0]["values.plain"], "x");

        let nested = run(
            json!({"clusters": {"selector": {"matchLabels": {"env": "prod"}}, "values": {"ns": "apps-{{metadata.labels.env}}"}}}),
            cs,
            true,
            TemplateEngine::Handlebars,
        );
        assert_eq!(nested[0]["values"]["ns"], "apps-prod");
        assert_eq!(nested[0]["metadata"]["labels"]["env"], "prod");
    }

    #[test]
    fn flat_list_holds_every_cluster() {
        let cs = vec![
            cluster("a", "https://a", "prod"),
            cluster("b", "https://b", "prod"),
        ];
        let sets = run(
            json!({"clusters": {"flatList": true, "selector": {"matchLabels": {"env": "prod"}}}}),
            cs,
            true,
            TemplateEngine::Handlebars,
        );
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0]["clusters"].as_array().unwrap().len(), 2);
    }
}
