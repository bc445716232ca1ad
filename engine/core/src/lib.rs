//! The bottom layer of Prism's engine: what generators and rendering share.
//!
//! Parameters and their Go formatting ([`params`]), the render limits ([`limits`]),
//! globs, label selectors, Argo CD clusters, the [`sources::Sources`] trait the front
//! ends implement, the engine's error type, render options, and the three template
//! engines ([`template`], [`gotemplate`]). Nothing here knows a generator.

pub mod cluster;
pub mod error;
pub mod glob;
pub mod gotemplate;
pub mod limits;
pub mod options;
pub mod parallel;
pub mod params;
pub mod selector;
pub mod sources;
pub mod template;
