//! An Argo CD Application as the controller caches it: metadata, and the spec kept
//! as its JSON text. Of the status (which Argo CD rewrites all the time and which can
//! be large) only what progressive syncs read is kept, in a few bytes ([`Progress`]). A parsed `serde_json::Value` tree costs several times
//! its text, so at fleet scale this is most of the controller's memory
//! (`cargo bench --bench reflector`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
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
    /// What progressive syncs read of `status`.
    #[serde(default, skip_serializing)]
    pub status: Progress,
    /// Whether `operation` is set (a sync asked for, not yet taken up by Argo CD).
    #[serde(default, skip_serializing, deserialize_with = "present")]
    pub operation: bool,
    /// [`sources_digest`] of the spec, worked out once per version of the object.
    #[serde(skip)]
    spec_sources: std::sync::OnceLock<u64>,
}

/// An Application's health, sync and last operation, as a RollingSync reads them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(from = "RawStatus")]
pub struct Progress {
    /// `status.health.status`.
    pub health: String,
    /// `status.sync.status`.
    pub sync: String,
    /// `status.sync.revision`, or `revisions` for several sources.
    pub revisions: Vec<String>,
    /// `status.reconciledAt`, Unix seconds.
    pub reconciled_at: Option<i64>,
    /// `status.operationState.startedAt`, Unix seconds.
    pub operation_started_at: Option<i64>,
    /// `status.operationState.phase`.
    pub operation_phase: Option<String>,
    /// An `InvalidSpecError` or `UnknownError` condition.
    pub error: bool,
    /// A digest of `status.sync.comparedTo`'s sources and destination (0: none).
    pub compared: u64,
}

/// The parts of `status` [`Progress`] is read from.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawStatus {
    health: Option<Value>,
    sync: Option<Value>,
    reconciled_at: Option<String>,
    operation_state: Option<Value>,
    conditions: Vec<Value>,
}

impl From<RawStatus> for Progress {
    fn from(raw: RawStatus) -> Progress {
        let text = |v: &Option<Value>, at: &str| {
            v.as_ref()
                .and_then(|v| v.pointer(at))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let sync = raw.sync.unwrap_or(Value::Null);
        let revisions = match (sync["revision"].as_str(), sync["revisions"].as_array()) {
            (_, Some(list)) if !list.is_empty() => list
                .iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
            (Some(r), _) => vec![r.to_string()],
            _ => Vec::new(),
        };
        Progress {
            health: text(&raw.health, "/status").unwrap_or_default(),
            sync: sync["status"].as_str().unwrap_or_default().to_string(),
            revisions,
            reconciled_at: raw
                .reconciled_at
                .as_deref()
                .and_then(crate::plugin::unix_of_rfc3339),
            operation_started_at: text(&raw.operation_state, "/startedAt")
                .as_deref()
                .and_then(crate::plugin::unix_of_rfc3339),
            operation_phase: text(&raw.operation_state, "/phase"),
            error: raw.conditions.iter().any(|c| {
                matches!(
                    c["type"].as_str(),
                    Some("InvalidSpecError" | "UnknownError")
                )
            }),
            compared: sources_digest(&sync["comparedTo"]),
        }
    }
}

/// Whether a field is present (whatever it holds).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A digest of an Application spec's (or `comparedTo`'s) `source`, `sources` and
/// `destination`, with object keys in order: equal digests, equal sources (0: none).
pub fn sources_digest(v: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn feed(v: &Value, h: &mut crate::digest::Fnv) {
        match v {
            Value::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                for k in keys {
                    k.hash(h);
                    feed(&o[k], h);
                }
                '}'.hash(h);
            }
            Value::Array(a) => {
                a.iter().for_each(|x| feed(x, h));
                ']'.hash(h);
            }
            other => other.to_string().hash(h),
        }
    }
    if !v.is_object() {
        return 0;
    }
    let mut h = crate::digest::Fnv::default();
    for k in ["source", "sources", "destination"] {
        k.hash(&mut h);
        feed(&v[k], &mut h);
    }
    h.finish().max(1)
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

    /// What changes of an Application matter to its set: labels, annotations,
    /// finalizers, deletion and the spec's text; not its status, which Argo CD updates
    /// all the time.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let m = &self.metadata;
        let mut h = crate::digest::Fnv::default();
        m.labels.hash(&mut h);
        m.annotations.hash(&mut h);
        m.finalizers.hash(&mut h);
        m.deletion_timestamp.is_some().hash(&mut h);
        self.spec_text().hash(&mut h);
        h.finish()
    }

    /// The spec's JSON text (for change detection without parsing).
    pub fn spec_text(&self) -> &str {
        self.spec.as_deref().map_or("", RawValue::get)
    }

    /// Whether Argo CD has compared this spec: `status.sync.comparedTo` holds its
    /// sources and destination.
    pub fn compared_current(&self) -> bool {
        let digest = *self.spec_sources.get_or_init(|| {
            let spec: Value = serde_json::from_str(self.spec_text()).unwrap_or(Value::Null);
            sources_digest(&spec)
        });
        self.status.compared != 0 && self.status.compared == digest
    }

    /// [`CachedApplication::compared_current`] with the spec already parsed.
    pub fn compared_with(&self, spec: &Value) -> bool {
        self.status.compared != 0 && self.status.compared == sources_digest(spec)
    }

    /// Whether this object has every field of `want` with the same value, as
    /// [`crate::controller::plan::contains`] of [`CachedApplication::to_value`] says,
    /// without decoding it: metadata is read typed, and the spec's text is compared
    /// with `want`'s printed spec before it is ever parsed.
    pub fn contains(&self, want: &Value) -> bool {
        let Some(w) = want.as_object() else {
            return false;
        };
        w.iter().all(|(k, wv)| match k.as_str() {
            "apiVersion" => wv == "argoproj.io/v1alpha1",
            "kind" => wv == "Application",
            "metadata" => self.metadata_contains(wv),
            "spec" => self.spec_contains(wv),
            _ => false,
        })
    }

    fn metadata_contains(&self, want: &Value) -> bool {
        use crate::controller::plan::contains;
        let Some(w) = want.as_object() else {
            return false;
        };
        let m = &self.metadata;
        let map_contains = |live: &Option<std::collections::BTreeMap<String, String>>,
                            want: &Value| {
            match (live, want.as_object()) {
                (Some(l), Some(w)) => w
                    .iter()
                    .all(|(k, v)| v.as_str().is_some_and(|v| l.get(k).is_some_and(|l| l == v))),
                _ => false,
            }
        };
        w.iter().all(|(k, wv)| match k.as_str() {
            "name" => wv.as_str().is_some_and(|n| m.name.as_deref() == Some(n)),
            "namespace" => wv
                .as_str()
                .is_some_and(|n| m.namespace.as_deref() == Some(n)),
            "labels" => map_contains(&m.labels, wv),
            "annotations" => map_contains(&m.annotations, wv),
            "finalizers" => match (&m.finalizers, wv.as_array()) {
                (Some(l), Some(w)) => {
                    l.len() == w.len() && l.iter().zip(w).all(|(l, w)| w.as_str() == Some(l))
                }
                _ => false,
            },
            "ownerReferences" => match (&m.owner_references, wv.as_array()) {
                (Some(l), Some(w)) => {
                    l.len() == w.len() && l.iter().zip(w).all(|(l, w)| owner_contains(l, w))
                }
                _ => false,
            },
            // Anything else is rare: read it as JSON.
            other => serde_json::to_value(m)
                .ok()
                .and_then(|mut v| v.get_mut(other).map(Value::take))
                .is_some_and(|l| contains(&l, wv)),
        })
    }

    fn spec_contains(&self, want: &Value) -> bool {
        let Some(text) = self.spec.as_deref().map(RawValue::get) else {
            return false;
        };
        if prints_as(want, text) {
            return true;
        }
        serde_json::from_str::<Value>(text)
            .is_ok_and(|live| crate::controller::plan::contains(&live, want))
    }
}

/// [`crate::controller::plan::contains`] of one owner reference printed as JSON, read
/// typed (an owner reference has these six fields; absent options print nothing).
fn owner_contains(live: &OwnerReference, want: &Value) -> bool {
    let Some(w) = want.as_object() else {
        return false;
    };
    let flag = |l: Option<bool>, w: &Value| l.is_some_and(|l| w.as_bool() == Some(l));
    w.iter().all(|(k, v)| match k.as_str() {
        "apiVersion" => v.as_str() == Some(live.api_version.as_str()),
        "kind" => v.as_str() == Some(live.kind.as_str()),
        "name" => v.as_str() == Some(live.name.as_str()),
        "uid" => v.as_str() == Some(live.uid.as_str()),
        "controller" => flag(live.controller, v),
        "blockOwnerDeletion" => flag(live.block_owner_deletion, v),
        _ => false,
    })
}

/// Whether `value` prints (compact, as serde_json prints) exactly as `text`: compared
/// as it is printed, stopping at the first difference, with nothing allocated.
fn prints_as(value: &Value, text: &str) -> bool {
    struct Compare<'t>(&'t [u8]);
    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match self.0.strip_prefix(buf) {
                Some(rest) => {
                    self.0 = rest;
                    Ok(buf.len())
                }
                None => Err(std::io::Error::other("differs")),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut rest = Compare(text.as_bytes());
    serde_json::to_writer(&mut rest, value).is_ok() && rest.0.is_empty()
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
        // What progressive syncs need of the status is kept; it has not compared this spec.
        assert_eq!(cached.status.sync, "Synced");
        assert!(!cached.compared_current());
        assert!(!cached.operation);
    }

    /// Health, sync, revisions, the last operation and `comparedTo` are read; a
    /// `comparedTo` with the spec's sources and destination (keys in any order) means
    /// Argo CD has compared this spec.
    /// The cached form answers `contains` exactly as the whole object does, for equal
    /// objects, changed and missing fields, and fields only the live one has.
    #[test]
    fn contains_agrees_with_the_whole_object() {
        let live = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a", "namespace": "argocd", "labels": {"x": "1", "y": "2"},
                         "annotations": {"h": "abc"}, "finalizers": ["f"], "resourceVersion": "7",
                         "ownerReferences": [{"apiVersion": "prism.dev/v1alpha1", "kind": "ApplicationSet", "name": "s", "uid": "u",
                                              "blockOwnerDeletion": true}]},
            "spec": {"project": "default", "source": {"repoURL": "r", "path": "a"},
                     "destination": {"server": "https://k", "namespace": "n"}}});
        let mut want = live.clone();
        want["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let cached = CachedApplication::from_value(&live).unwrap();
        type Change = Box<dyn Fn(&mut Value)>;
        let variants: Vec<(&str, Change)> = vec![
            ("equal", Box::new(|_| {})),
            (
                "spec value",
                Box::new(|w| w["spec"]["source"]["path"] = json!("b")),
            ),
            (
                "spec field only live has",
                Box::new(|w| {
                    w["spec"].as_object_mut().unwrap().remove("project");
                }),
            ),
            (
                "spec field only want has",
                Box::new(|w| w["spec"]["revisionHistoryLimit"] = json!(3)),
            ),
            (
                "label value",
                Box::new(|w| w["metadata"]["labels"]["x"] = json!("9")),
            ),
            (
                "fewer labels",
                Box::new(|w| {
                    w["metadata"]["labels"].as_object_mut().unwrap().remove("y");
                }),
            ),
            (
                "new annotation",
                Box::new(|w| w["metadata"]["annotations"]["k"] = json!("v")),
            ),
            (
                "finalizers",
                Box::new(|w| w["metadata"]["finalizers"] = json!(["f", "g"])),
            ),
            (
                "owner",
                Box::new(|w| w["metadata"]["ownerReferences"][0]["name"] = json!("t")),
            ),
            (
                "owner's controller flag only want has",
                Box::new(|w| w["metadata"]["ownerReferences"][0]["controller"] = json!(true)),
            ),
            (
                "owner's uid missing from want",
                Box::new(|w| {
                    w["metadata"]["ownerReferences"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("uid");
                }),
            ),
            (
                "owner field nobody knows",
                Box::new(|w| w["metadata"]["ownerReferences"][0]["x"] = json!(1)),
            ),
            (
                "two owners",
                Box::new(|w| {
                    let first = w["metadata"]["ownerReferences"][0].clone();
                    w["metadata"]["ownerReferences"] = json!([first.clone(), first]);
                }),
            ),
            (
                "owners not a list",
                Box::new(|w| w["metadata"]["ownerReferences"] = json!({})),
            ),
            (
                "number label",
                Box::new(|w| w["metadata"]["labels"]["x"] = json!(1)),
            ),
            ("other top-level", Box::new(|w| w["operation"] = json!({}))),
        ];
        for (what, change) in variants {
            let mut w = want.clone();
            change(&mut w);
            assert_eq!(
                cached.contains(&w),
                crate::controller::plan::contains(&cached.to_value(), &w),
                "{what}"
            );
        }
        assert!(cached.contains(&want));
    }

    #[test]
    fn progress_is_read_from_the_status() {
        let spec = json!({"project": "p", "source": {"repoURL": "r", "path": "a", "targetRevision": "main"},
                          "destination": {"server": "https://k", "namespace": "n"}});
        let whole = json!({"metadata": {"name": "a"}, "spec": spec,
            "operation": {"sync": {}},
            "status": {"health": {"status": "Progressing"},
                       "sync": {"status": "OutOfSync", "revision": "abc",
                                "comparedTo": {"destination": {"namespace": "n", "server": "https://k"},
                                               "source": {"targetRevision": "main", "path": "a", "repoURL": "r"}}},
                       "reconciledAt": "2026-12-01T10:00:05Z",
                       "operationState": {"phase": "Running", "startedAt": "2026-12-01T10:00:00Z"},
                       "conditions": [{"type": "InvalidSpecError", "message": "x"}]}});
        let cached = CachedApplication::from_value(&whole).unwrap();
        assert_eq!(cached.status.health, "Progressing");
        assert_eq!(cached.status.revisions, ["abc"]);
        assert_eq!(cached.status.operation_phase.as_deref(), Some("Running"));
        assert_eq!(
            cached.status.reconciled_at.unwrap() - cached.status.operation_started_at.unwrap(),
            5
        );
        assert!(cached.status.error && cached.operation);
        assert!(cached.compared_current());
        let mut moved = whole.clone();
        moved["spec"]["source"]["targetRevision"] = json!("v2");
        assert!(!CachedApplication::from_value(&moved)
            .unwrap()
            .compared_current());
    }
}
