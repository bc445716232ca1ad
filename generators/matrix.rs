//! `matrix`: the Cartesian product of its children's parameter sets.
//!
//! Any number of children (at least two) and any depth; Argo stops at two children
//! and one nested level. Each later child is expanded once per parameter set made so
//! far, with its own fields templated from that set (as Argo's matrix does), and the
//! results combined: in the default mode keys must agree (Argo's `CombineStringMaps`),
//! in the nested modes the earlier child wins. Order: earlier children vary slowest.
//! Children's `template` overrides are ignored, as in Argo. A child whose templated
//! form is identical for several parameter sets is expanded once.

use super::{expand_raw, interpolate, merge_override, Context, Generated};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::ParamShape;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The `matrix` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixGenerator {
    /// The children, raw: later ones are templated before they are read.
    #[schemars(with = "Vec<super::GeneratorEntry>")]
    pub generators: Vec<Value>,
}

impl MatrixGenerator {
    pub(super) fn check_spec(&self, path: &str, prism: bool) -> Result<(), Error> {
        if self.generators.len() < 2 {
            return Err(Error::invalid(
                path,
                "found less than two generators, Matrix requires two or more",
            ));
        }
        for (i, g) in self.generators.iter().enumerate() {
            super::GeneratorNode::check(g, &format!("{path}.generators[{i}]"), prism)?;
        }
        Ok(())
    }

    /// The combined parameter sets.
    pub fn combined(&self, ctx: &Context, path: &str) -> Result<Vec<Generated>, Error> {
        let child_path = |i: usize| format!("{path}.generators[{i}]");
        let mut acc = expand_raw(&self.generators[0], &child_path(0), ctx)?;
        for (i, child) in self.generators.iter().enumerate().skip(1) {
            let at = child_path(i);
            let text = child.to_string();
            let templated = text.contains("{{");
            // A plugin is told the earlier parameters, so its answer may differ per set:
            // no memo here (the plugin host caches by request).
            let per_set = text.contains("\"plugin\"");
            let mut memo: HashMap<String, Arc<Vec<Generated>>> = HashMap::new();
            let mut untemplated: Option<Arc<Vec<Generated>>> = None;
            // Each earlier set with the child's sets for it; the product is made after.
            let mut pairs: Vec<(&Generated, Arc<Vec<Generated>>)> = Vec::with_capacity(acc.len());
            let mut total = 0usize;
            for a in &acc {
                let sets = if per_set {
                    let raw = if templated && !a.params.is_empty() {
                        interpolate(child, &a.params, ctx, &at)?
                    } else {
                        child.clone()
                    };
                    Arc::new(expand_raw(&raw, &at, &ctx.with_upstream(&a.params))?)
                } else if templated && !a.params.is_empty() {
                    let interpolated = interpolate(child, &a.params, ctx, &at)?;
                    let key = interpolated.to_string();
                    match memo.get(&key) {
                        Some(sets) => sets.clone(),
                        None => {
                            let sets = Arc::new(expand_raw(&interpolated, &at, ctx)?);
                            memo.insert(key, sets.clone());
                            sets
                        }
                    }
                } else {
                    match &untemplated {
                        Some(sets) => sets.clone(),
                        None => {
                            let sets = Arc::new(expand_raw(child, &at, ctx)?);
                            untemplated = Some(sets.clone());
                            sets
                        }
                    }
                };
                // Checked before the product grows: 20 children of 2 elements would be a million.
                total += sets.len();
                super::check_set_count(total, ctx, path)?;
                pairs.push((a, sets));
            }
            // Combining is most of a large matrix's time, and each pair stands alone.
            let shape = ctx.shape();
            let parts = prism_core::parallel::map(&pairs, ctx.options.threads, |(a, sets)| {
                sets.iter()
                    .map(|b| combine(a, b, shape, path))
                    .collect::<Result<Vec<_>, _>>()
            });
            let mut next = Vec::with_capacity(total);
            for part in parts {
                next.extend(part?);
            }
            drop(pairs);
            acc = next;
        }
        Ok(acc)
    }
}

fn combine(
    a: &Generated,
    b: &Generated,
    shape: ParamShape,
    path: &str,
) -> Result<Generated, Error> {
    let params = match shape {
        ParamShape::Flat => {
            let mut out = a.params.clone();
            for (k, vb) in &b.params {
                match out.get(k) {
                    Some(va) if va != vb => {
                        return Err(Error::new(
                            path,
                            ErrorKind::Combine(format!(
                                "found duplicate key {k} with different value, a: {} ,b: {}; \
                                 rename the parameter in one child (for git: pathParamPrefix)",
                                prism_core::params::go_format(va),
                                prism_core::params::go_format(vb)
                            )),
                        ))
                    }
                    _ => {
                        out.insert(k.clone(), vb.clone());
                    }
                }
            }
            out
        }
        ParamShape::Nested => {
            let mut out = b.params.clone();
            merge_override(&mut out, &a.params);
            out
        }
    };
    let mut origin = a.origin.clone();
    origin.extend(b.origin.iter().cloned());
    Ok(Generated { params, origin })
}

/// The `matrix` generator's registration.
pub struct Matrix;

impl super::GeneratorKind for Matrix {
    fn key(&self) -> &'static str {
        "matrix"
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<MatrixGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<MatrixGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        super::emits_of_children(body, e);
    }
}

impl super::Generate for MatrixGenerator {
    fn check(&self, path: &str, prism: bool) -> Result<(), Error> {
        self.check_spec(path, prism)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        self.combined(ctx, path)
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{expand_err, expand_one};
    use serde_json::json;

    #[test]
    fn product_with_interpolation_from_earlier_children() {
        let sets = expand_one(
            json!({"matrix": {"generators": [
                {"list": {"elements": [{"env": "test"}, {"env": "prod"}]}},
                {"list": {"elements": [{"app": "a-{{env}}"}, {"app": "b-{{env}}"}]}},
                {"list": {"elements": [{"region": "eu"}]}}
            ]}}),
            false,
        );
        assert_eq!(
            sets,
            vec![
                json!({"env": "test", "app": "a-test", "region": "eu"}),
                json!({"env": "test", "app": "b-test", "region": "eu"}),
                json!({"env": "prod", "app": "a-prod", "region": "eu"}),
                json!({"env": "prod", "app": "b-prod", "region": "eu"}),
            ]
        );
    }

    #[test]
    fn nested_matrix_and_child_selector() {
        let sets = expand_one(
            json!({"matrix": {"generators": [
                {"matrix": {"generators": [
                    {"list": {"elements": [{"a": "1"}, {"a": "2"}]}},
                    {"list": {"elements": [{"b": "x"}]}}
                ]}},
                {"list": {"elements": [{"c": "y"}, {"c": "z"}]}, "selector": {"matchLabels": {"c": "z"}}}
            ]}}),
            false,
        );
        assert_eq!(
            sets,
            vec![
                json!({"a": "1", "b": "x", "c": "z"}),
                json!({"a": "2", "b": "x", "c": "z"})
            ]
        );
    }

    #[test]
    fn clashing_keys_are_an_error_in_flat_mode_and_earlier_wins_nested() {
        let raw = json!({"matrix": {"generators": [
            {"list": {"elements": [{"k": "a"}]}},
            {"list": {"elements": [{"k": "b"}]}}
        ]}});
        assert_eq!(
            expand_err(raw.clone(), false),
            "spec.generators[0].matrix: found duplicate key k with different value, a: a ,b: b; \
             rename the parameter in one child (for git: pathParamPrefix)"
        );
        assert_eq!(expand_one(raw, true), vec![json!({"k": "a"})]);
    }

    #[test]
    fn fewer_than_two_children_is_an_error() {
        assert_eq!(
            expand_err(json!({"matrix": {"generators": [{"list": {"elements": []}}]}}), false),
            "spec.generators[0].matrix: found less than two generators, Matrix requires two or more"
        );
    }

    #[test]
    fn unknown_child_generator_names_its_path() {
        assert_eq!(
            expand_err(
                json!({"matrix": {"generators": [{"list": {}}, {"lisst": {}}]}}),
                false
            ),
            "spec.generators[0].matrix.generators[1].lisst: unknown generator `lisst`; expected one of: \
             list, clusters, clusterDecisionResource, git, matrix, merge, plugin, pullRequest, scmProvider, values and images (prism.dev only)"
        );
    }
}
