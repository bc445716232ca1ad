//! `tenant-tiers`: a pure plugin built as a plain WASI command module (wasip1).
//!
//! Input: `tenants: [{name, tier}]`, optionally `domain`. Output: one parameter set
//! per tenant with what its tier implies (replicas, resources, autoscaling,
//! namespace, hostname), so the ApplicationSet template stays free of tier logic.

use prism_plugin_sdk::{Error, Params, Request};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct Tenant {
    name: String,
    tier: String,
}

fn generate(req: Request) -> Result<Vec<Params>, Error> {
    let tenants: Vec<Tenant> = serde_json::from_value(serde_json::Value::Array(
        req.input_array("tenants")?.clone(),
    ))
    .map_err(|e| format!("input.parameters.tenants: {e}; each tenant needs name and tier"))?;
    let domain = req.input_str("domain").unwrap_or("example.com");
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        let (replicas, cpu, memory, max_replicas) = match t.tier.as_str() {
            "free" => (1, "100m", "128Mi", 1),
            "standard" => (2, "250m", "256Mi", 4),
            "premium" => (3, "500m", "512Mi", 10),
            other => {
                return Err(Error::new(format!(
                    "tenant {}: unknown tier {other:?}; use free, standard or premium",
                    t.name
                )))
            }
        };
        let params = json!({
            "tenant": t.name,
            "tier": t.tier,
            "namespace": format!("tenant-{}", t.name),
            "hostname": format!("{}.{domain}", t.name),
            "replicas": replicas.to_string(),
            "cpu": cpu,
            "memory": memory,
            "autoscaling": (max_replicas > replicas).to_string(),
            "maxReplicas": max_replicas.to_string(),
        });
        if let serde_json::Value::Object(map) = params {
            out.push(map);
        }
    }
    Ok(out)
}

fn main() {
    prism_plugin_sdk::run_command(generate);
}
