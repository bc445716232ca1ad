//! Template values with Go's distinctions: int vs float, nil vs a missing map entry
//! (printed `<no value>`), and Go's `%v` formatting.

use crate::params::go_format_float;
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A value during template execution.
#[derive(Debug, Clone)]
pub enum V {
    /// A missing map entry or field of nothing (Go's invalid `reflect.Value`).
    Missing,
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer (template constants, `len`, sprig arithmetic).
    Int(i64),
    /// A float64 (every number decoded from JSON/YAML, as in Argo).
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// A list.
    List(Rc<Vec<V>>),
    /// A map with string keys (iterated in key order, as Go does).
    Map(Rc<BTreeMap<String, V>>),
    /// A `time.Time` (UTC), from sprig's date functions.
    Time(super::time::Time),
}

impl V {
    /// From parameter data: numbers become float64, as `json.Unmarshal` makes them.
    pub fn from_json(v: &Value) -> V {
        match v {
            Value::Null => V::Nil,
            Value::Bool(b) => V::Bool(*b),
            Value::Number(n) => V::Float(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => V::Str(s.as_str().into()),
            Value::Array(a) => V::List(Rc::new(a.iter().map(V::from_json).collect())),
            Value::Object(m) => V::Map(Rc::new(
                m.iter()
                    .map(|(k, v)| (k.clone(), V::from_json(v)))
                    .collect(),
            )),
        }
    }

    /// To JSON (for `toJson`, `toYaml`): Missing and Nil become null.
    pub fn to_json(&self) -> Value {
        match self {
            V::Missing | V::Nil => Value::Null,
            V::Bool(b) => Value::Bool(*b),
            V::Int(i) => Value::from(*i),
            V::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            V::Str(s) => Value::String(s.to_string()),
            V::List(l) => Value::Array(l.iter().map(V::to_json).collect()),
            V::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            V::Time(t) => Value::String(t.format("2006-01-02T15:04:05.999999999Z07:00")),
        }
    }

    /// Go's truthiness: false, 0, nil, and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            V::Missing | V::Nil => false,
            V::Bool(b) => *b,
            V::Int(i) => *i != 0,
            V::Float(f) => *f != 0.0,
            V::Str(s) => !s.is_empty(),
            V::List(l) => !l.is_empty(),
            V::Map(m) => !m.is_empty(),
            V::Time(_) => true,
        }
    }

    /// The Go type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            V::Missing => "<nil>",
            V::Nil => "<nil>",
            V::Bool(_) => "bool",
            V::Int(_) => "int",
            V::Float(_) => "float64",
            V::Str(_) => "string",
            V::List(_) => "[]interface {}",
            V::Map(_) => "map[string]interface {}",
            V::Time(_) => "time.Time",
        }
    }

    /// The string inside, if a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            V::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Go's `%v`, as `{{.x}}` prints it: a missing value is `<no value>` at the top level and
/// `<nil>` inside containers.
pub fn format_v(v: &V) -> String {
    match v {
        V::Missing => "<no value>".into(),
        other => format_inner(other),
    }
}

fn format_inner(v: &V) -> String {
    match v {
        V::Missing | V::Nil => "<nil>".into(),
        V::Bool(b) => b.to_string(),
        V::Int(i) => i.to_string(),
        V::Float(f) => go_format_float(*f),
        V::Str(s) => s.to_string(),
        V::List(l) => format!(
            "[{}]",
            l.iter().map(format_inner).collect::<Vec<_>>().join(" ")
        ),
        V::Map(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", format_inner(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        V::Time(t) => t.go_string(),
    }
}

/// Checks a value a template function built: at most `Limits::count` elements in any
/// list or map, an expanded size (elements plus string bytes, shared parts counted
/// each time they appear, as printing them would) within `Limits::application_bytes`,
/// and nesting within twice `Limits::depth`. The walk is paid for in steps and stops
/// at the first limit, so a value doubled by sharing cannot make it run long.
pub fn weigh(v: &V, budget: &crate::limits::Budget) -> Result<(), String> {
    use crate::limits::Limit;
    let limits = &budget.limits;
    let max_depth = limits.depth.saturating_mul(2);
    let max_weight = limits.application_bytes as u64;
    let mut weight: u64 = 0;
    let mut visited: u64 = 0;
    let mut stack: Vec<(&V, usize)> = vec![(v, 1)];
    while let Some((v, depth)) = stack.pop() {
        visited += 1;
        weight += 1;
        let len = match v {
            V::List(l) => l.len(),
            V::Map(m) => m.len(),
            _ => 0,
        };
        if matches!(v, V::List(_) | V::Map(_)) {
            budget.check(Limit::Count, len)?;
            if depth > max_depth {
                return Err(format!(
                    "a value nested deeper than {max_depth} levels: {}",
                    Limit::Depth.exceeded(limits)
                ));
            }
        }
        match v {
            V::Str(s) => weight += s.len() as u64,
            V::List(l) => stack.extend(l.iter().map(|x| (x, depth + 1))),
            V::Map(m) => {
                for (k, x) in m.iter() {
                    weight += k.len() as u64;
                    stack.push((x, depth + 1));
                }
            }
            _ => {}
        }
        if weight > max_weight {
            return Err(format!(
                "a value built by the template: {}",
                Limit::ApplicationBytes.exceeded(limits)
            ));
        }
        if visited.is_multiple_of(1024) {
            budget.step(1024)?;
        }
    }
    budget.step(visited % 1024)
}
