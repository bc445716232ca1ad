//! `prism controller`'s logic that needs no cluster: what to create, update, delete
//! or keep ([`plan`]), and which push a webhook reports ([`webhook`]). The kube-rs edge (watches, server-side apply, status, leader
//! election) will call it; it is pure so every policy and guard is table-tested.

pub mod plan;
pub mod webhook;
