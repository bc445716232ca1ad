//! `prism controller`: the engine run in a cluster with kube-rs.
//!
//! The decisions are pure functions, table-tested without a cluster: what to
//! create, update, delete or keep ([`plan`]), what each Application should look
//! like and what status to report ([`reconcile`]), which fields to leave live
//! ([`ignore`]), which push a webhook reports ([`webhook`]) and who leads
//! ([`lease::decide`]). The edges do the I/O: API calls ([`apply`], [`lease`]),
//! the shared git cache ([`gitcache`]), the HTTP endpoints ([`server`]) and the
//! watch loop ([`run`]).

pub mod application;
pub mod apply;
pub mod crd;
pub mod gitcache;
pub mod ignore;
pub mod lease;
pub mod metrics;
pub mod plan;
pub mod reconcile;
pub mod rollout;
pub mod run;
pub mod server;
pub mod webhook;
