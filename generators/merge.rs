//! `merge`: the first child's parameter sets, each overridden by the sets of later
//! children that agree with it on every `mergeKeys` key.
//!
//! As Argo: the first child is the base; sets of a later child that match no base set
//! are dropped; every child's sets must be unique by the merge keys. In the default
//! mode later values overwrite, in the nested modes they deep-merge over the base. A
//! merge key may be a dotted path into nested parameters. Order: the base order
//! (Argo's is random).

use super::{expand_raw, merge_override, Context, Generated};
use prism_core::error::{Error, ErrorKind};
use prism_core::params::ParamShape;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The `merge` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MergeGenerator {
    /// The children; the first is the base.
    #[schemars(with = "Vec<super::GeneratorEntry>")]
    pub generators: Vec<Value>,
    /// Parameters whose values identify a set across children.
    #[serde(default)]
    pub merge_keys: Vec<String>,
}

impl MergeGenerator {
    pub(super) fn check_spec(&self, path: &str, prism: bool) -> Result<(), Error> {
        if self.generators.len() < 2 {
            return Err(Error::invalid(
                path,
                "found less than two generators, Merge requires two or more",
            ));
        }
        if self.merge_keys.is_empty() {
            return Err(Error::invalid(
                format!("{path}.mergeKeys"),
                "no merge keys were specified, Merge requires at least one",
            ));
        }
        for (i, g) in self.generators.iter().enumerate() {
            super::GeneratorNode::check(g, &format!("{path}.generators[{i}]"), prism)?;
        }
        Ok(())
    }

    /// The merged parameter sets.
    pub fn combined(&self, ctx: &Context, path: &str) -> Result<Vec<Generated>, Error> {
        let mut keys = self.merge_keys.clone();
        keys.sort();
        keys.dedup();
        let mut base = expand_raw(&self.generators[0], &format!("{path}.generators[0]"), ctx)?;
        let base_index = index_by_keys(&base, &keys, path, 0)?;
        for (i, child) in self.generators.iter().enumerate().skip(1) {
            let sets = expand_raw(child, &format!("{path}.generators[{i}]"), ctx)?;
            let index = index_by_keys(&sets, &keys, path, i)?;
            for (key, &bi) in &base_index {
                if let Some(&oi) = index.get(key) {
                    let over = &sets[oi];
                    let target = &mut base[bi];
                    match ctx.shape() {
                        ParamShape::Flat => {
                            for (k, v) in &over.params {
                                target.params.insert(k.clone(), v.clone());
                            }
                        }
                        ParamShape::Nested => merge_override(&mut target.params, &over.params),
                    }
                    target.origin.extend(over.origin.iter().cloned());
                }
            }
        }
        Ok(base)
    }
}

/// Maps each set's merge-key JSON (`{"k":"v"}`, as Argo builds it) to its index.
fn index_by_keys(
    sets: &[Generated],
    keys: &[String],
    path: &str,
    child: usize,
) -> Result<HashMap<String, usize>, Error> {
    let mut index = HashMap::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let mut key = Map::new();
        for k in keys {
            key.insert(
                k.clone(),
                lookup(&set.params, k).cloned().unwrap_or(Value::Null),
            );
        }
        let key = Value::Object(key).to_string();
        if index.insert(key.clone(), i).is_some() {
            return Err(Error::new(
                format!("{path}.generators[{child}]"),
                ErrorKind::Combine(format!(
                    "the parameters from a generator were not unique by the given mergeKeys, \
                     Merge requires all param sets to be unique. Duplicate key was {key}"
                )),
            ));
        }
    }
    Ok(index)
}

/// A parameter by its key, or by a dotted path into nested parameters.
fn lookup<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(v) = params.get(key) {
        return Some(v);
    }
    let mut parts = key.split('.');
    let mut cur = params.get(parts.next()?)?;
    for part in parts {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// The `merge` generator's registration.
pub struct Merge;

impl super::GeneratorKind for Merge {
    fn key(&self) -> &'static str {
        "merge"
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<MergeGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<MergeGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        super::emits_of_children(body, e);
    }
}

impl super::Generate for MergeGenerator {
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
    fn later_children_override_matching_base_sets() {
        let sets = expand_one(
            json!({"merge": {"mergeKeys": ["server"], "generators": [
                {"list": {"elements": [{"server": "a", "replicas": "1"}, {"server": "b", "replicas": "1"}]}},
                {"list": {"elements": [{"server": "b", "replicas": "3"}, {"server": "c", "replicas": "9"}]}}
            ]}}),
            false,
        );
        assert_eq!(
            sets,
            vec![
                json!({"server": "a", "replicas": "1"}),
                json!({"server": "b", "replicas": "3"})
            ]
        );
    }

    #[test]
    fn nested_merge_by_dotted_key() {
        let sets = expand_one(
            json!({"merge": {"mergeKeys": ["c.name"], "generators": [
                {"list": {"elements": [{"c": {"name": "a", "x": 1}}]}},
                {"list": {"elements": [{"c": {"name": "a", "y": 2}}]}}
            ]}}),
            true,
        );
        assert_eq!(sets, vec![json!({"c": {"name": "a", "x": 1, "y": 2}})]);
    }

    #[test]
    fn duplicate_merge_keys_and_missing_keys_are_errors() {
        assert_eq!(
            expand_err(
                json!({"merge": {"mergeKeys": ["s"], "generators": [
                    {"list": {"elements": [{"s": "a"}, {"s": "a"}]}},
                    {"list": {"elements": []}}
                ]}}),
                false
            ),
            "spec.generators[0].merge.generators[0]: the parameters from a generator were not unique by the given \
             mergeKeys, Merge requires all param sets to be unique. Duplicate key was {\"s\":\"a\"}"
        );
        assert_eq!(
            expand_err(
                json!({"merge": {"generators": [{"list": {}}, {"list": {}}]}}),
                false
            ),
            "spec.generators[0].merge.mergeKeys: no merge keys were specified, Merge requires at least one"
        );
    }
}
