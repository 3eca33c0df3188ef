//! The request pipeline: the stages a call passes through, in order.
//!
//! [`auth`] (token → role and claims) → [`parse`] (HTTP facts → call) →
//! [`plan`] (call + schema cache → plan) → [`admit`] (the function's declared
//! rate and concurrency limits) → [`query`] (plan → SQL text and
//! bound values) → [`execute`] (one transaction) → [`respond`] (outcome →
//! HTTP response). Every stage but `admit` (shared per-function counters)
//! and `execute` is pure, and each is unit-tested next to its code; `execute`
//! is the only one that touches a pool. The stages take
//! plain values from the HTTP layer (`crate::http`) and never import it.

pub mod admit;
pub mod auth;
pub mod citus;
pub mod csrf;
pub mod execute;
pub mod parse;
pub mod plan;
pub mod query;
pub mod respond;
pub mod route;
pub mod sessions_relay;

#[cfg(test)]
mod proptests;
