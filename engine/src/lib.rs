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
//! Three crates, each a layer importing only those below it: `prism-core`
//! (`engine/core/`: parameters, limits, sources, errors, template engines) →
//! `prism-generators` (the top-level `generators/` folder, one file per generator, so a
//! reader finds a generator by its Argo CD name) → this crate (the ApplicationSet,
//! render, lint, schema), which re-exports the other two under their old paths.

pub mod fuzzing;
pub mod lint;
pub mod model;
pub mod render;
pub mod schema;
pub mod spec;

pub use prism_core::{
    cluster, error, glob, gotemplate, limits, options, parallel, params, selector, sources,
    template,
};
pub use prism_generators as generators;

pub use cluster::Cluster;
pub use error::{Error, ErrorKind};
pub use limits::Limits;
pub use params::ParamSet;
pub use render::{render, RenderOptions, Rendered, RenderedApplication};
pub use sources::{GitRef, PluginCall, Repository, SourceError, Sources};
pub use spec::{ApplicationSet, TemplateEngine};
