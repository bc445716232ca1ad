//! Prism's engine: an Argo CD `ApplicationSet` spec in, Argo CD `Application`s out.
//!
//! The flow is `spec → generators → parameter sets → rendered Applications`:
//! [`ApplicationSet::parse`] reads a manifest, [`render`] expands every generator
//! against a [`Sources`] and renders the template once per parameter set.
//!
//! Key decision: the engine is pure and synchronous. It never touches the network,
//! a cluster or a git object database itself; everything it reads comes through the
//! small [`Sources`] and [`Repository`] traits, which the CLI implements over git2
//! and files and the controller implements over the cluster API and its git cache. That keeps this
//! crate light (its tests build in seconds) and lets both front ends share it unchanged.
//!
//! The generators live in the repository's top-level `generators/` folder, one file
//! each, so a reader finds a generator by its Argo CD name; they compile into this crate.

pub mod cluster;
pub mod error;
pub mod fuzzing;
pub mod glob;
pub mod gotemplate;
pub mod limits;
pub mod lint;
pub mod options;
pub mod params;
pub mod render;
pub mod schema;
pub mod selector;
pub mod sources;
pub mod spec;
pub mod template;

#[path = "../../generators/mod.rs"]
pub mod generators;

pub use cluster::Cluster;
pub use error::{Error, ErrorKind};
pub use limits::Limits;
pub use params::ParamSet;
pub use render::{render, RenderOptions, Rendered, RenderedApplication};
pub use sources::{GitRef, PluginCall, Repository, SourceError, Sources};
pub use spec::{ApplicationSet, TemplateEngine};
