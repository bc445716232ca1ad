//! `service-catalog`: reads a JSON service catalog over HTTP (needs `allowedHosts`)
//! and maps its entries to parameter sets.
//!
//! Input: `url`, optionally `team` to keep one team's services. The catalog is
//! `{"services": [{"name", "team", "repo", "path", "port", "tier"}, ...]}`; each
//! entry becomes `service`, `team`, `repoURL`, `path`, `port` (string) and `tier`
//! (default `standard`), sorted by service name.

use prism_plugin_sdk::host;
use prism_plugin_sdk::{Error, Params, Request};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Catalog {
    services: Vec<Service>,
}

#[derive(Deserialize)]
struct Service {
    name: String,
    team: String,
    repo: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tier: Option<String>,
}

fn generate(req: Request) -> Result<Vec<Params>, Error> {
    let url = req.input_str("url")?;
    let team = req.input_str("team").ok();
    let response = host::http_get(url, &[("Accept", "application/json")])?;
    if response.status != 200 {
        return Err(Error::new(format!(
            "GET {url} answered HTTP {}; check the catalog URL",
            response.status
        )));
    }
    let catalog: Catalog = serde_json::from_slice(&response.body)
        .map_err(|e| format!("the catalog at {url} is not {{\"services\": [...]}}: {e}"))?;
    let mut services: Vec<Service> = catalog
        .services
        .into_iter()
        .filter(|s| team.is_none_or(|t| s.team == t))
        .collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(services
        .into_iter()
        .filter_map(|s| {
            let path = s.path.unwrap_or_else(|| format!("services/{}", s.name));
            match json!({
                "service": s.name,
                "team": s.team,
                "repoURL": s.repo,
                "path": path,
                "port": s.port.unwrap_or(8080).to_string(),
                "tier": s.tier.unwrap_or_else(|| "standard".into()),
            }) {
                Value::Object(m) => Some(m),
                _ => None,
            }
        })
        .collect())
}

prism_plugin_sdk::export_generator!(generate);
