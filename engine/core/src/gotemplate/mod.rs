//! Go `text/template`, as Argo CD renders `goTemplate: true` ApplicationSets: Go's
//! syntax and builtins, sprig's functions (Argo's set) and Argo's own.
//!
//! Prism's own parser and evaluator rather than a crate: `gtmpl` (the one Rust port)
//! lacks `break`/`continue`, `else if` chains on `with`, Go's `<no value>` and
//! `missingkey` semantics and most of sprig, and is little maintained. The data model
//! keeps Go's distinctions that show in output: numbers from parameters are float64,
//! template constants are ints, and a missing map key is not nil.

mod exec;
mod funcs;
mod parse;
mod printf;
pub mod semver;
pub mod table;
pub mod time;
mod value;

pub use value::V;

use crate::limits::{Budget, Limits};
use crate::params::ParamSet;
use std::collections::HashMap;
use std::rc::Rc;

/// A compiled template.
#[derive(Debug, Clone)]
pub struct GoTemplate {
    tree: Rc<parse::Tree>,
}

impl GoTemplate {
    /// Parses `source` within `limits` (nesting depth); errors say `line:col: message`.
    pub fn parse(source: &str, limits: &Limits) -> Result<GoTemplate, String> {
        parse::parse(source, limits)
            .map(|tree| GoTemplate {
                tree: Rc::new(tree),
            })
            .map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.col, e.message))
    }

    /// The functions the template calls, sorted, once each (for `lint`).
    pub fn functions(&self) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        let lists =
            std::iter::once(&self.tree.root).chain(self.tree.defines.values().map(|l| &**l));
        for list in lists {
            parse::functions(list, &mut out);
        }
        out.into_iter().collect()
    }

    /// Executes with `data` as `.`; `missing_error` is `missingkey=error`. Steps and
    /// sizes are paid from `budget`.
    pub fn execute(
        &self,
        data: &V,
        missing_error: bool,
        budget: &Budget,
    ) -> Result<String, String> {
        exec::Exec::run(&self.tree, data.clone(), missing_error, budget).map_err(|e| {
            format!(
                "{}:{}: executing at <{}>: {}",
                e.pos.line, e.pos.col, e.action, e.message
            )
        })
    }
}

/// Compiled templates by source, so each distinct string is parsed once per render.
#[derive(Default)]
pub struct Cache {
    templates: HashMap<String, GoTemplate>,
}

impl Cache {
    /// Renders `source` with `params` (converted once by the caller into `data`).
    pub fn render(
        &mut self,
        source: &str,
        data: &V,
        missing_error: bool,
        budget: &Budget,
    ) -> Result<String, String> {
        if !self.templates.contains_key(source) {
            let t = GoTemplate::parse(source, &budget.limits)?;
            self.templates.insert(source.to_string(), t);
        }
        match self.templates.get(source) {
            Some(t) => t.execute(data, missing_error, budget),
            None => Err("template cache lost an entry".into()),
        }
    }
}

/// Parameters as template data.
pub fn data_of(params: &ParamSet) -> V {
    V::Map(Rc::new(
        params
            .iter()
            .map(|(k, v)| (k.clone(), V::from_json(v)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests;
