//! `clusterDecisionResource`: one parameter set per cluster a placement resource
//! decided on (Open Cluster Management's `PlacementDecision`, Red Hat ACM), read as a
//! duck type.
//!
//! As Argo CD 3.x's `applicationset/generators/duck_type.go`: `configMapRef` names a
//! ConfigMap (in Argo CD's namespace) whose `apiVersion` (`group/version`) and `kind`
//! (the resource's plural name, as Argo uses it) say what to read; `name` picks one
//! resource, or `labelSelector` some (exactly one of them). Every entry of each
//! resource's `status.<statusListKey>` (default `clusters`) whose `matchKey` value
//! names an Argo CD cluster (the local one included) gives `name` and `server` of that
//! cluster plus every key of the entry as a string; `values` are added as written (Argo
//! does not template them here). Reading the ConfigMap and the resources is the front
//! end's job ([`Sources::decision_resources`]).
//!
//! Unlike Argo, no resource at all is zero decisions, not an error: an empty result
//! goes through the deletion guard (Argo's error deletes nothing ever, issue 11939).
//!
//! [`Sources::decision_resources`]: prism_core::sources::Sources::decision_resources

use super::Context;
use prism_core::cluster::{Cluster, IN_CLUSTER_SERVER};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::{ParamSet, ParamShape};
use prism_core::selector::LabelSelector;
use prism_core::sources::DecisionQuery;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How often a set with this generator is rendered again (Argo's default, 3 minutes).
pub const DECISION_REQUEUE: std::time::Duration = std::time::Duration::from_secs(180);

/// The `clusterDecisionResource` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterDecisionResourceGenerator {
    /// The ConfigMap describing the decision resource's kind.
    pub config_map_ref: String,
    /// One decision resource by name.
    #[serde(default)]
    pub name: Option<String>,
    /// Decision resources by their labels.
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    /// How often to read again (default 180).
    #[serde(default)]
    pub requeue_after_seconds: Option<i64>,
    /// Extra parameters, as written.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
}

impl ClusterDecisionResourceGenerator {
    fn selector(&self) -> Option<&LabelSelector> {
        self.label_selector.as_ref().filter(|s| !s.is_empty())
    }

    fn check_spec(&self, path: &str) -> Result<(), Error> {
        let name = self.name.as_deref().filter(|n| !n.is_empty());
        if name.is_some() == self.selector().is_some() {
            return Err(Error::invalid(
                path,
                "there is a problem with the definition of the ClusterDecisionResource generator: \
                 give either name or labelSelector",
            ));
        }
        if let Some(s) = self.selector() {
            s.validate()
                .map_err(|e| Error::invalid(format!("{path}.labelSelector"), e))?;
        }
        Ok(())
    }

    /// The parameter sets: the decisions that name a known cluster, in resource order.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        self.check_spec(path)?;
        let fail = |message: String| Error::invalid(path, message);
        let found = ctx
            .sources
            .decision_resources(&DecisionQuery {
                config_map: &self.config_map_ref,
                name: self.name.as_deref().filter(|n| !n.is_empty()),
                label_selector: self.selector(),
            })
            .map_err(|e| fail(format!("configMapRef {}: {e}", self.config_map_ref)))?;
        let config = |k: &str| found.config.get(k).map(String::as_str).unwrap_or("");
        if config("kind").is_empty() || config("apiVersion").find('/').is_none_or(|i| i < 1) {
            return Err(fail(format!(
                "configMapRef {}: there is a problem with the apiVersion or kind it gives (apiVersion: group/version, kind: the resource's plural)",
                self.config_map_ref
            )));
        }
        let list_key = Some(config("statusListKey"))
            .filter(|k| !k.is_empty())
            .unwrap_or("clusters");
        let match_key = config("matchKey");
        if match_key.is_empty() {
            ctx.warn(format!(
                "{path}: configMapRef {} has no matchKey; no clusters",
                self.config_map_ref
            ));
            return Ok(Vec::new());
        }
        let clusters = ctx
            .sources
            .clusters()
            .map_err(|e| Error::new(path, ErrorKind::ReadClusters(e)))?;
        let local = Cluster::in_cluster();
        let known: Vec<&Cluster> = clusters
            .iter()
            .chain((!clusters.iter().any(|c| c.server == IN_CLUSTER_SERVER)).then_some(&local))
            .collect();
        let mut out = Vec::new();
        for resource in &found.resources {
            let name = resource["metadata"]["name"].as_str().unwrap_or("?");
            let status = &resource["status"];
            if status.as_object().is_none_or(|s| s.is_empty()) {
                ctx.warn(format!("{path}: {name} has no status yet"));
                continue;
            }
            let Some(decisions) = status[list_key].as_array() else {
                return Err(fail(format!(
                    "{name}: status.{list_key} is not a list (statusListKey in configMapRef {})",
                    self.config_map_ref
                )));
            };
            for decision in decisions {
                let Some(entry) = decision.as_object() else {
                    return Err(fail(format!(
                        "{name}: an entry of status.{list_key} is not a mapping"
                    )));
                };
                let wanted = entry.get(match_key).map(go_string).unwrap_or_default();
                if wanted.is_empty() {
                    ctx.warn(format!("{path}: {name}: an entry has no {match_key}"));
                    continue;
                }
                let Some(cluster) = known.iter().find(|c| c.name == wanted) else {
                    ctx.warn(format!(
                        "{path}: {name}: {wanted} is not an Argo CD cluster"
                    ));
                    continue;
                };
                let mut params = ParamSet::new();
                params.insert("name".into(), json!(cluster.name));
                params.insert("server".into(), json!(cluster.server));
                for (k, v) in entry {
                    params.insert(k.clone(), json!(go_string(v)));
                }
                add_values(&mut params, &self.values, ctx.shape());
                out.push(params);
                if out.len() > ctx.options.limits.parameter_sets {
                    return Err(fail(
                        prism_core::limits::Limit::ParameterSets.exceeded(&ctx.options.limits),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Argo's `collectParams`: `values.<k>` flat, or a `values` map in the Go template mode.
fn add_values(params: &mut ParamSet, values: &BTreeMap<String, String>, shape: ParamShape) {
    if values.is_empty() {
        return;
    }
    if shape == ParamShape::Nested {
        let map: serde_json::Map<String, Value> =
            values.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        params.insert("values".into(), Value::Object(map));
    } else {
        for (k, v) in values {
            params.insert(format!("values.{k}"), json!(v));
        }
    }
}

/// Deepest nesting of a decision entry's value printed; deeper parts print as `…`.
const MAX_PRINT_DEPTH: usize = 64;

/// A JSON value as Go's `fmt.Sprintf("%v")` prints what it decodes to.
fn go_string(v: &Value) -> String {
    go_string_at(v, 0)
}

fn go_string_at(v: &Value, depth: usize) -> String {
    if depth > MAX_PRINT_DEPTH {
        return "…".into();
    }
    let go_string = |v: &Value| go_string_at(v, depth + 1);
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            // Go decodes JSON numbers as float64: 3 prints 3, 1e21 prints 1e+21.
            Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
            Some(f) => format!("{f}"),
            None => n.to_string(),
        },
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// The registry entry.
pub struct ClusterDecisionResource;

impl super::GeneratorKind for ClusterDecisionResource {
    fn key(&self) -> &'static str {
        "clusterDecisionResource"
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(DECISION_REQUEUE)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ClusterDecisionResourceGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ClusterDecisionResourceGenerator>()
    }

    fn emits(&self, _body: &Value, e: &mut super::Emits) {
        e.names.push("name".into());
        e.names.push("server".into());
        // Every key of a decision entry: unknown until read.
        e.anything = true;
    }

    fn reads_clusters(&self) -> bool {
        true
    }

    fn reads_decisions(&self, body: &Value) -> Option<super::DecisionSource> {
        let g = super::pull_request::typed::<ClusterDecisionResourceGenerator>(body)?;
        Some(super::DecisionSource {
            config_map: g.config_map_ref.clone(),
            name: g.name.clone().filter(|n| !n.is_empty()),
            label_selector: g.selector().map(LabelSelector::to_query),
        })
    }
}

impl super::Generate for ClusterDecisionResourceGenerator {
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
    use prism_core::sources::{DecisionQuery, DecisionResources, Repository, SourceError, Sources};
    use prism_core::template::TemplateEngine;
    use serde_json::{json, Value};
    use std::sync::Arc;

    /// Two Argo CD clusters and one PlacementDecision-like resource.
    struct Placement {
        config: Value,
        resources: Vec<Value>,
    }

    impl Sources for Placement {
        fn repository(&self, url: &str, rev: &str) -> Result<Arc<dyn Repository>, SourceError> {
            MemorySources::new().repository(url, rev)
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            let c = |name: &str, server: &str| Cluster {
                name: name.into(),
                server: server.into(),
                ..Cluster::in_cluster()
            };
            Ok(Arc::from(vec![
                c("east", "https://east:6443"),
                c("west", "https://west:6443"),
            ]))
        }
        fn decision_resources(&self, q: &DecisionQuery<'_>) -> Result<DecisionResources, String> {
            assert_eq!(q.config_map, "ocm-placement");
            Ok(DecisionResources {
                config: serde_json::from_value(self.config.clone()).unwrap(),
                resources: self.resources.clone(),
            })
        }
    }

    fn placement(decisions: Value) -> Placement {
        Placement {
            config: json!({"apiVersion": "cluster.open-cluster-management.io/v1beta1",
                           "kind": "placementdecisions", "statusListKey": "decisions",
                           "matchKey": "clusterName"}),
            resources: vec![
                json!({"metadata": {"name": "pd-1"}, "status": {"decisions": decisions}}),
            ],
        }
    }

    fn run(sources: &Placement, body: Value, nested: bool) -> Result<Vec<Value>, String> {
        let engine = if nested {
            TemplateEngine::Go { options: vec![] }
        } else {
            TemplateEngine::Fast
        };
        expand_with(
            json!({"clusterDecisionResource": body}),
            engine,
            sources,
            &RenderOptions::default(),
        )
    }

    /// Argo's duck_type.go: each decision naming a known cluster (by `matchKey`) gives
    /// that cluster's `name` and `server` plus every key of the decision as a string
    /// (`%v`); unknown clusters are skipped; the local cluster counts; `values` as written.
    #[test]
    fn decisions_become_cluster_parameters() {
        let sources = placement(json!([
            {"clusterName": "east", "reason": "", "weight": 3},
            {"clusterName": "nowhere", "reason": "x"},
            {"clusterName": "in-cluster", "reason": "local"}]));
        let body = json!({"configMapRef": "ocm-placement", "labelSelector": {"matchLabels": {"app": "shop"}},
                          "values": {"tier": "{{name}}-raw"}});
        let sets = run(&sources, body.clone(), false).unwrap();
        assert_eq!(
            sets,
            [
                json!({"name": "east", "server": "https://east:6443", "clusterName": "east", "reason": "",
                    "weight": "3", "values.tier": "{{name}}-raw"}),
                json!({"name": "in-cluster", "server": "https://kubernetes.default.svc",
                    "clusterName": "in-cluster", "reason": "local", "values.tier": "{{name}}-raw"})
            ]
        );
        let nested = run(&sources, body, true).unwrap();
        assert_eq!(nested[0]["values"]["tier"], "{{name}}-raw");
    }

    /// Decision values print as Go's `%v`; nesting an API answer controls is bounded.
    #[test]
    fn values_print_as_go_and_deep_nesting_is_cut() {
        assert_eq!(
            super::go_string(&json!([1, 2.5, true, {"a": null}])),
            "[1 2.5 true map[a:<nil>]]"
        );
        let mut deep = json!("x");
        // (serde_json stops parsing at 128 levels; a Value built deeper would not even drop.)
        for _ in 0..120 {
            deep = json!([deep]);
        }
        let printed = super::go_string(&deep);
        assert!(
            printed.contains('…') && printed.len() < 1000,
            "{}",
            printed.len()
        );
    }

    /// No resource (every decision gone) is no parameter sets, not Argo's error, so the
    /// deletion guard decides (argo-cd issue 11939); bad specs and ConfigMaps are errors.
    #[test]
    fn empty_bad_and_unmatched() {
        let mut none = placement(json!([]));
        none.resources.clear();
        assert_eq!(
            run(
                &none,
                json!({"configMapRef": "ocm-placement", "name": "pd-1"}),
                false
            )
            .unwrap(),
            Vec::<Value>::new()
        );
        for (body, text) in [
            (
                json!({"configMapRef": "ocm-placement"}),
                "give either name or labelSelector",
            ),
            (
                json!({"configMapRef": "ocm-placement", "name": "a", "labelSelector": {"matchLabels": {"a": "b"}}}),
                "give either name or labelSelector",
            ),
        ] {
            let e = run(&placement(json!([])), body, false).unwrap_err();
            assert!(e.contains(text), "{e}");
        }
        let mut bad = placement(json!([]));
        bad.config["apiVersion"] = json!("v1beta1");
        let e = run(
            &bad,
            json!({"configMapRef": "ocm-placement", "name": "pd-1"}),
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("there is a problem with the apiVersion or kind"),
            "{e}"
        );
        let mut not_list = placement(json!([]));
        not_list.resources[0]["status"] = json!({"decisions": "east"});
        let e = run(
            &not_list,
            json!({"configMapRef": "ocm-placement", "name": "pd-1"}),
            false,
        )
        .unwrap_err();
        assert!(e.contains("pd-1: status.decisions is not a list"), "{e}");
    }
}
