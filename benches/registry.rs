//! Registry benchmark: 100 images × 200 tags each, resolved with `semver` against a
//! local Debian `docker-registry`. `cargo bench --bench registry`.
//!
//! Reports the wall time of resolving all 100 (target ≤ 1 s) and the HTTP requests
//! per resolution.

#[path = "../tests/common/plugins.rs"]
mod plugins;
#[path = "../tests/common/registry.rs"]
mod registry;

use prism::registry::client::{RegistrySetting, RegistrySettings};
use prism::registry::RegistryClient;
use prism_engine::generators::images::{ImageQuery, Strategy};
use std::time::Instant;

const IMAGES: usize = 100;
const TAGS: usize = 200;

fn main() {
    let reg = registry::Registry::start();
    let setup = Instant::now();
    for i in 0..IMAGES {
        let repo = format!("bench/svc-{i:03}");
        let tags: Vec<String> = (0..TAGS)
            .map(|t| format!("{}.{}.{}", t / 50, (t / 10) % 5, t % 10))
            .collect();
        reg.push_tags(&repo, &tags, "2026-01-01T00:00:00Z");
    }
    eprintln!(
        "pushed {IMAGES} images x {TAGS} tags in {:?}",
        setup.elapsed()
    );
    let queries: Vec<ImageQuery> = (0..IMAGES)
        .map(|i| ImageQuery {
            alias: "svc".into(),
            name: format!("{}/bench/svc-{i:03}", reg.host),
            strategy: Strategy::Semver,
            constraint: "~2.3".into(),
            allow_tags: None,
            ignore_tags: vec![],
            platforms: vec![],
        })
        .collect();
    let settings = RegistrySettings {
        registries: vec![RegistrySetting::new(&reg.host, &reg.api_url())],
    };
    let mut times = Vec::new();
    let mut requests = 0;
    for _ in 0..5 {
        let client = RegistryClient::new(settings.clone(), None).expect("client");
        let started = Instant::now();
        for q in &queries {
            let r = client.resolve(q).expect("resolve");
            assert_eq!(r.tag, "2.3.9");
        }
        times.push(started.elapsed());
        requests = client.requests();
    }
    times.sort();
    println!(
        "{IMAGES} images x {TAGS} tags, semver ~2.3: min {:?}, median {:?} (5 runs); {} requests, {:.1} per resolution",
        times[0],
        times[2],
        requests,
        requests as f64 / IMAGES as f64
    );
}
