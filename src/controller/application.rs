//! An Argo CD Application as the controller caches it: metadata, and the spec kept
//! as its JSON text. Status (which Argo CD rewrites all the time and which can be
//! large) is never decoded. A parsed `serde_json::Value` tree costs several times
//! its text, so at fleet scale this is most of the controller's memory
//! (`cargo bench --bench reflector`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// `argoproj.io/v1alpha1` Application, status left out.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CachedApplication {
    /// `metadata` (the controller clears `managedFields`).
    pub metadata: ObjectMeta,
    /// `spec`, as the API sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Box<RawValue>>,
}

impl kube::Resource for CachedApplication {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Application".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "argoproj.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "applications".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl CachedApplication {
    /// Reads one from a whole Application object (tests, benchmarks).
    pub fn from_value(value: &Value) -> Result<CachedApplication, serde_json::Error> {
        serde_json::from_str(&value.to_string())
    }

    /// The full object as the planner compares it: `apiVersion`, `kind`, `metadata`, `spec`.
    pub fn to_value(&self) -> Value {
        let mut out = serde_json::Map::new();
        out.insert("apiVersion".into(), "argoproj.io/v1alpha1".into());
        out.insert("kind".into(), "Application".into());
        out.insert(
            "metadata".into(),
            serde_json::to_value(&self.metadata).unwrap_or(Value::Null),
        );
        if let Some(spec) = &self.spec {
            out.insert(
                "spec".into(),
                serde_json::from_str(spec.get()).unwrap_or(Value::Null),
            );
        }
        Value::Object(out)
    }

    /// The spec's JSON text (for change detection without parsing).
    pub fn spec_text(&self) -> &str {
        self.spec.as_deref().map_or("", RawValue::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_is_dropped_and_the_rest_round_trips() {
        let whole = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a", "namespace": "argocd", "labels": {"x": "1"},
                         "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "spec": {"project": "default", "source": {"path": "a", "helm": {"parameters": [{"name": "n", "value": "v"}]}}},
            "status": {"sync": {"status": "Synced"}, "resources": [{"kind": "Deployment"}]}});
        let cached = CachedApplication::from_value(&whole).unwrap();
        let mut want = whole.clone();
        want.as_object_mut().unwrap().remove("status");
        assert_eq!(cached.to_value(), want);
        assert!(cached.spec_text().contains("\"project\":\"default\""));
        use kube::Resource;
        assert_eq!(CachedApplication::api_version(&()), "argoproj.io/v1alpha1");
    }
}
