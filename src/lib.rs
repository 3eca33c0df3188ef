//! pgrpc: PostgreSQL functions on the web, PostgREST-style.
//!
//! The folders are the layers, and dependencies run one way, from the top of
//! this list to the bottom (`ARCHITECTURE.md` walks a request through them):
//!
//! - [`cli`]: the commands besides `serve` (`token`).
//! - [`http`]: actix-web wiring: start-up and shutdown, routes, the shared
//!   state, the handler that runs the pipeline, CORS, the admin server.
//! - [`openapi`]: the OpenAPI document, built purely from the schema cache.
//! - [`pipeline`]: the stages of a request, in order: auth → parse → plan →
//!   query → execute → respond.
//! - [`error`]: the one error type every stage answers with.
//! - [`db`]: connections and pools, the schema cache, migrations, the
//!   embedded cluster, the reload listener.
//! - [`jwt`]: verifying, signing and caching tokens; loading key material.
//! - [`ops`]: metrics, logging, giving memory back.
//! - [`config`]: the file and environment, validated once.
//!
//! Tests reach the app through [`http::routes`] and the database through
//! [`db::embedded`] and [`db::migrate`].

pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod http;
pub mod jwt;
pub mod openapi;
pub mod ops;
pub mod pipeline;
