//! `matrix`: the Cartesian product of its children's parameter sets.
//!
//! Any number of children (at least two) and any depth; Argo stops at two children
//! and one nested level. Each later child is expanded once per parameter set made so
//! far, with its own fields templated from that set (as Argo's matrix does), and the
//! results combined: in the default mode keys must agree (Argo's `CombineStringMaps`),
//! in the nested modes the earlier child wins. Order: earlier children vary slowest.
//! Children's `template` overrides are ignored, as in Argo. A child whose templated
//! form is identical for several parameter sets is expanded once.

use super::{check_combinable, expand_raw, interpolate, Context, Generated, Product, Sets};
use prism_core::error::Error;
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
        Ok(self.product(ctx, path)?.into_vec())
    }

    /// The parameter sets, the last child's product left to combine one set at a time.
    pub fn product(&self, ctx: &Context, path: &str) -> Result<Sets, Error> {
        let child_path = |i: usize| format!("{path}.generators[{i}]");
        let mut acc = expand_raw(&self.generators[0], &child_path(0), ctx)?;
        let last = self.generators.len() - 1;
        for (i, child) in self.generators.iter().enumerate().skip(1) {
            let at = child_path(i);
            let text = child.to_string();
            let templated = text.contains("{{");
            // A plugin is told the earlier parameters, so its answer may differ per set:
            // no memo here (the plugin host caches by request).
            let per_set = text.contains("\"plugin\"");
            let mut memo: HashMap<String, usize> = HashMap::new();
            let mut untemplated: Option<usize> = None;
            // The child's distinct expansions, and which one each earlier set pairs with.
            let mut groups: Vec<Arc<Vec<Generated>>> = Vec::new();
            let mut group_of: Vec<usize> = Vec::with_capacity(acc.len());
            let mut total = 0usize;
            for a in &acc {
                let mut add = |sets: Vec<Generated>| {
                    groups.push(Arc::new(sets));
                    groups.len() - 1
                };
                let g = if per_set {
                    let raw = if templated && !a.params.is_empty() {
                        interpolate(child, &a.params, ctx, &at)?
                    } else {
                        child.clone()
                    };
                    add(expand_raw(&raw, &at, &ctx.with_upstream(&a.params))?)
                } else if templated && !a.params.is_empty() {
                    let interpolated = interpolate(child, &a.params, ctx, &at)?;
                    let key = interpolated.to_string();
                    match memo.get(&key) {
                        Some(&g) => g,
                        None => {
                            let g = add(expand_raw(&interpolated, &at, ctx)?);
                            memo.insert(key, g);
                            g
                        }
                    }
                } else {
                    match untemplated {
                        Some(g) => g,
                        None => {
                            let g = add(expand_raw(child, &at, ctx)?);
                            untemplated = Some(g);
                            g
                        }
                    }
                };
                // Checked before the product grows: 20 children of 2 elements would be a million.
                total += groups[g].len();
                super::check_set_count(total, ctx, path)?;
                group_of.push(g);
            }
            // Every pair is checked now, so a conflict fails the expansion as before;
            // each pair stands alone, so the check is spread over threads.
            let shape = ctx.shape();
            let pairs: Vec<(&Generated, &Vec<Generated>)> = acc
                .iter()
                .zip(&group_of)
                .map(|(a, &g)| (a, &*groups[g]))
                .collect();
            let checked = prism_core::parallel::map(&pairs, ctx.options.threads, |(a, sets)| {
                sets.iter()
                    .try_for_each(|b| check_combinable(a, b, shape, path))
            });
            checked.into_iter().collect::<Result<(), Error>>()?;
            drop(pairs);
            let product = Product::new(acc, groups, &group_of, shape);
            if i == last {
                return Ok(Sets::Product(product));
            }
            acc = Sets::Product(product).into_vec();
        }
        Ok(Sets::Made(acc))
    }
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

    fn generate_sets(&self, ctx: &Context, path: &str) -> Result<Sets, Error> {
        self.product(ctx, path)
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::{expand_both, expand_err, expand_one};

    /// A top-level matrix defers its last product: combined one set at a time, the
    /// sets, their order, the node's selector and a conflict are what combining all of
    /// them at once gives.
    #[test]
    fn deferred_product_equals_the_made_one() {
        for nested in [false, true] {
            let raw = json!({"matrix": {"generators": [
                {"list": {"elements": [{"a": "1", "k": "x"}, {"a": "2", "k": "x"}, {"a": "3", "k": "x"}]}},
                {"list": {"elements": [{"b": "p", "k": "x"}, {"b": "q", "k": "x"}]}},
                {"list": {"elements": [{"c": "{{a}}"}, {"c": "z"}]}}
            ]}, "selector": {"matchExpressions": [{"key": "b", "operator": "In", "values": ["q"]}]}});
            let (lazily, made, deferred) = expand_both(raw, nested);
            assert!(deferred);
            assert_eq!(lazily, made);
            assert_eq!(made.len(), 6, "{made:?}");
        }
        // In the default mode a key both children set differently fails the expansion.
        let conflict = json!({"matrix": {"generators": [
            {"list": {"elements": [{"k": "x"}]}}, {"list": {"elements": [{"k": "y"}]}}]}});
        assert!(expand_err(conflict, false).contains("found duplicate key k"));
    }
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
