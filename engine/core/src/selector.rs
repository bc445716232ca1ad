//! Kubernetes label selectors (`matchLabels`, `matchExpressions`), as Argo CD applies
//! them to cluster Secrets and to generators' parameter sets.
//!
//! Argo uses its own copy of `LabelSelectorAsSelector` that accepts any label value
//! (so selectors can match URLs); so does this one.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A label selector; an empty one matches everything.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Exact key/value pairs, all required.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all required.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One set-based requirement.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Checks operators and values, as Kubernetes does when it builds the selector.
    pub fn validate(&self) -> Result<(), String> {
        for (i, r) in self.match_expressions.iter().enumerate() {
            let at = format!("matchExpressions[{i}]");
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!("{at}: operator {} needs at least one value", r.operator))
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!("{at}: operator {} takes no values", r.operator))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(format!(
                        "{at}: {other:?} is not a valid label selector operator; use In, NotIn, Exists or DoesNotExist"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The selector in Kubernetes' query syntax (`env=prod,region in (eu,us),!legacy`),
    /// as `metav1.FormatLabelSelector` writes it for a list call.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            let mut values = r.values.clone();
            values.sort();
            parts.push(match r.operator.as_str() {
                "In" => format!("{} in ({})", r.key, values.join(",")),
                "NotIn" => format!("{} notin ({})", r.key, values.join(",")),
                "Exists" => r.key.clone(),
                _ => format!("!{}", r.key),
            });
        }
        parts.join(",")
    }

    /// Whether `labels` satisfy every requirement (call [`LabelSelector::validate`] first).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_syntax_as_kubernetes_writes_it() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"env":"prod"},"matchExpressions":[{"key":"region","operator":"In","values":["us","eu"]},{"key":"tier","operator":"NotIn","values":["x"]},{"key":"a","operator":"Exists"},{"key":"legacy","operator":"DoesNotExist"}]}"#,
        )
        .unwrap();
        assert_eq!(
            sel.to_query(),
            "env=prod,region in (eu,us),tier notin (x),a,!legacy"
        );
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"env":"prod"},"matchExpressions":[{"key":"region","operator":"In","values":["eu","us"]},{"key":"legacy","operator":"DoesNotExist"}]}"#,
        )
        .unwrap();
        sel.validate().unwrap();
        assert!(sel.matches(&labels(&[("env", "prod"), ("region", "eu")])));
        assert!(!sel.matches(&labels(&[("env", "prod"), ("region", "ap")])));
        assert!(!sel.matches(&labels(&[
            ("env", "prod"),
            ("region", "eu"),
            ("legacy", "1")
        ])));
        assert!(!sel.matches(&labels(&[("env", "test"), ("region", "eu")])));
        let not_in: LabelSelector = serde_json::from_str(
            r#"{"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]}"#,
        )
        .unwrap();
        assert!(not_in.matches(&labels(&[])));
        assert!(!not_in.matches(&labels(&[("env", "prod")])));
    }

    #[test]
    fn bad_operator_is_rejected() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchExpressions":[{"key":"env","operator":"Equals","values":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            sel.validate().unwrap_err(),
            "matchExpressions[0]: \"Equals\" is not a valid label selector operator; use In, NotIn, Exists or DoesNotExist"
        );
    }
}
