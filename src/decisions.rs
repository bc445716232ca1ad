//! `clusterDecisionResource`'s input on the command line: the ConfigMap and the
//! decision resources from `--resources FILE` (`kubectl get … -o yaml` output, a
//! `List` or several documents), selected as the API server would select them.

use prism_engine::sources::{DecisionQuery, DecisionResources};
use serde_json::Value;
use std::collections::BTreeMap;

/// The ConfigMap `query` names and the resources it selects among `objects`.
pub fn select(objects: &[Value], query: &DecisionQuery<'_>) -> Result<DecisionResources, String> {
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == query.config_map)
        .ok_or_else(|| {
            format!(
                "ConfigMap {} is not in --resources (add it: kubectl get configmap {} -n argocd -o yaml)",
                query.config_map, query.config_map
            )
        })?;
    let config: BTreeMap<String, String> = config_map["data"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let api_version = config.get("apiVersion").cloned().unwrap_or_default();
    // Argo uses `kind` as the resource's plural name (`placementdecisions`).
    let plural = config
        .get("kind")
        .cloned()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut resources: Vec<Value> = objects
        .iter()
        .filter(|o| o["apiVersion"] == api_version.as_str())
        .filter(|o| {
            let kind = o["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
            kind == plural || format!("{kind}s") == plural || format!("{kind}es") == plural
        })
        .filter(|o| match (query.name, query.label_selector) {
            (Some(name), _) => o["metadata"]["name"] == name,
            (None, Some(selector)) => {
                let labels: BTreeMap<String, String> = o["metadata"]["labels"]
                    .as_object()
                    .map(|l| {
                        l.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                selector.matches(&labels)
            }
            (None, None) => false,
        })
        .cloned()
        .collect();
    resources.sort_by(|a, b| {
        a["metadata"]["name"]
            .as_str()
            .cmp(&b["metadata"]["name"].as_str())
    });
    Ok(DecisionResources { config, resources })
}
