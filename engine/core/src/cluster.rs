//! Argo CD clusters, read from Argo CD cluster `Secret` manifests.
//!
//! Argo CD stores each managed cluster as a Secret labelled
//! `argocd.argoproj.io/secret-type: cluster` with keys `name`, `server`, `project`
//! and `config`, in `data` (base64) or `stringData`. Parsing lives in the engine so
//! the CLI (Secrets from a file) and the controller (Secrets from the API) agree.

use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// The label that marks a Secret as an Argo CD cluster.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// Argo CD's address of the cluster it runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Argo CD's name for the cluster it runs in.
pub const IN_CLUSTER_NAME: &str = "in-cluster";

/// One cluster Argo CD can deploy to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's name (`data.name`).
    pub name: String,
    /// The API server URL (`data.server`).
    pub server: String,
    /// The Argo CD project the cluster is scoped to (`data.project`), if any.
    pub project: Option<String>,
    /// The Secret's labels: what generator selectors match.
    pub labels: BTreeMap<String, String>,
    /// The Secret's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The Secret's own name, for messages; `None` for the local cluster.
    pub secret_name: Option<String>,
}

impl Cluster {
    /// The local cluster as Argo CD lists it when no Secret describes it.
    pub fn in_cluster() -> Cluster {
        Cluster {
            name: IN_CLUSTER_NAME.into(),
            server: IN_CLUSTER_SERVER.into(),
            project: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            secret_name: None,
        }
    }

    /// Reads one Kubernetes object. `Ok(None)` when it is not an Argo CD cluster Secret
    /// (another kind, or a Secret without the cluster label).
    pub fn from_secret(object: &Value) -> Result<Option<Cluster>, String> {
        if !object.is_object() {
            return Err(format!(
                "{} is not a Kubernetes object (a mapping with apiVersion, kind and metadata)",
                crate::params::kind_of(object)
            ));
        }
        match object.get("kind").and_then(Value::as_str) {
            Some("Secret") => {}
            Some(_) => return Ok(None),
            None => {
                return Err(
                    "an object without `kind`; cluster Secrets have kind: Secret".to_string(),
                )
            }
        }
        let metadata = object.get("metadata");
        if !metadata.is_some_and(Value::is_object) {
            return Err(
                "a Secret without metadata; cluster Secrets need metadata.name and the label \
                 argocd.argoproj.io/secret-type: cluster"
                    .to_string(),
            );
        }
        let secret_name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        let string_map = |field: &str| -> BTreeMap<String, String> {
            metadata
                .and_then(|m| m.get(field))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let labels = string_map("labels");
        if labels.get(SECRET_TYPE_LABEL).map(String::as_str) != Some("cluster") {
            return Ok(None);
        }
        let annotations = string_map("annotations");
        let mut data: BTreeMap<String, String> = BTreeMap::new();
        if let Some(d) = object.get("data").and_then(Value::as_object) {
            for (k, v) in d {
                let encoded = v.as_str().unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| {
                        format!("Secret {secret_name}: data.{k} is not valid base64 ({e})")
                    })?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("Secret {secret_name}: data.{k} is not UTF-8 text"))?;
                data.insert(k.clone(), text);
            }
        }
        // As Kubernetes does, stringData wins over data.
        if let Some(d) = object.get("stringData").and_then(Value::as_object) {
            for (k, v) in d {
                if let Some(s) = v.as_str() {
                    data.insert(k.clone(), s.to_string());
                }
            }
        }
        let server = data.remove("server").ok_or_else(|| {
            format!(
                "Secret {secret_name}: a cluster Secret needs a `server` key in data or stringData"
            )
        })?;
        if server.trim().is_empty() {
            return Err(format!(
                "Secret {secret_name}: `server` is empty; set the cluster's API server URL"
            ));
        }
        let name = data.remove("name").unwrap_or_default();
        Ok(Some(Cluster {
            name,
            server,
            project: data.remove("project"),
            labels,
            annotations,
            secret_name: Some(secret_name),
        }))
    }

    /// Reads every cluster Secret in a YAML stream (several documents, or `kind: List`);
    /// other objects are skipped.
    /// Anything that is not a Kubernetes object is an error, never "no clusters".
    pub fn parse_secrets(
        yaml: &str,
        limits: &crate::limits::Limits,
    ) -> Result<Vec<Cluster>, String> {
        let docs = crate::limits::parse_yaml_stream(yaml, limits)?;
        let mut out = Vec::new();
        for (i, value) in docs.into_iter().enumerate() {
            let at = |e: String| format!("document {}: {e}", i + 1);
            if value.is_null() {
                continue;
            }
            let is_list = matches!(
                value.get("kind").and_then(Value::as_str),
                Some("List") | Some("SecretList")
            );
            let items = match value.get("kind").and_then(Value::as_str) {
                Some("List") | Some("SecretList") => match value.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    None | Some(Value::Null) => Vec::new(),
                    Some(other) => {
                        return Err(at(format!(
                            "`items` of a {} is {}, not a list of Secrets",
                            value["kind"].as_str().unwrap_or("List"),
                            crate::params::kind_of(other)
                        )))
                    }
                },
                _ => vec![value],
            };
            for (j, item) in items.iter().enumerate() {
                let found = Cluster::from_secret(item).map_err(|e| {
                    if is_list {
                        at(format!("items[{j}]: {e}"))
                    } else {
                        at(e)
                    }
                })?;
                if let Some(cluster) = found {
                    out.push(cluster);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_data_and_string_data() {
        let yaml = r#"
apiVersion: v1
kind: Secret
metadata:
  name: prod-1
  labels: {argocd.argoproj.io/secret-type: cluster, env: prod}
  annotations: {team: a}
data:
  name: cHJvZC0x
  server: aHR0cHM6Ly8xLjIuMy40
stringData:
  project: payments
---
apiVersion: v1
kind: Secret
metadata: {name: repo, labels: {argocd.argoproj.io/secret-type: repository}}
stringData: {url: https://x}
"#;
        let clusters = Cluster::parse_secrets(yaml, &Default::default()).unwrap();
        assert_eq!(clusters.len(), 1);
        let c = &clusters[0];
        assert_eq!(
            (c.name.as_str(), c.server.as_str()),
            ("prod-1", "https://1.2.3.4")
        );
        assert_eq!(c.project.as_deref(), Some("payments"));
        assert_eq!(c.labels.get("env").map(String::as_str), Some("prod"));
    }

    #[test]
    fn bad_base64_names_the_secret_and_key() {
        let yaml = "kind: Secret\nmetadata: {name: s1, labels: {argocd.argoproj.io/secret-type: cluster}}\ndata: {server: '!!!'}\n";
        let err = Cluster::parse_secrets(yaml, &Default::default()).unwrap_err();
        assert!(
            err.starts_with("document 1: Secret s1: data.server is not valid base64"),
            "{err}"
        );
    }

    #[test]
    fn missing_server_is_an_error() {
        let yaml = "kind: Secret\nmetadata: {name: s1, labels: {argocd.argoproj.io/secret-type: cluster}}\nstringData: {name: a}\n";
        assert_eq!(
            Cluster::parse_secrets(yaml, &Default::default()).unwrap_err(),
            "document 1: Secret s1: a cluster Secret needs a `server` key in data or stringData"
        );
    }

    /// A clusters file that cannot be read as Secrets is an error, never "no clusters".
    #[test]
    fn unreadable_cluster_files_are_errors() {
        let cases = [
            (
                "kind: Secret\nmetadata: {name: s1, labels: {argocd.argoproj.io/secret-type: cluster}}\nstringData: {server: ''}\n",
                "document 1: Secret s1: `server` is empty; set the cluster's API server URL",
            ),
            (
                "kind: List\nitems: abc\n",
                "document 1: `items` of a List is a string, not a list of Secrets",
            ),
            (
                "42\n",
                "document 1: a number is not a Kubernetes object (a mapping with apiVersion, kind and metadata)",
            ),
            (
                "kind: Secret\nstringData: {server: https://x}\n",
                "document 1: a Secret without metadata; cluster Secrets need metadata.name and the label argocd.argoproj.io/secret-type: cluster",
            ),
            (
                "kind: List\nitems: [{kind: Secret, metadata: {name: a}}, 7]\n",
                "document 1: items[1]: a number is not a Kubernetes object (a mapping with apiVersion, kind and metadata)",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(
                Cluster::parse_secrets(yaml, &Default::default()).unwrap_err(),
                want,
                "{yaml}"
            );
        }
    }
}
