//! The registry edge of the `images` generator: an OCI distribution API client
//! ([`client`]) and tag choice ([`strategy`]), behind the engine's `Sources::image`.
//!
//! Settings per registry come from `--registries FILE` (the controller will mount the
//! same file); the longest `prefix` matching an image name wins. Each distinct image
//! query is resolved once per process.

pub mod client;
pub mod strategy;

pub use client::{RegistryClient, RegistrySettings};

/// Resolves `query` with `client`, or says that no client is configured.
pub fn resolve(
    client: Option<&RegistryClient>,
    query: &prism_engine::generators::images::ImageQuery,
) -> Result<prism_engine::generators::images::ResolvedImage, String> {
    match client {
        Some(c) => c.resolve(query),
        None => Err(format!(
            "no registry client is configured to resolve {}",
            query.name
        )),
    }
}
