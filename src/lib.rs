//! pgrpc: PostgreSQL functions on the web, PostgREST-style.
//!
//! A request passes through fixed stages, each a module: [`auth`] (token →
//! role and claims), [`parse`] (HTTP → call), [`plan`] (call + schema cache →
//! plan), [`query`] (plan → SQL), [`execute`] (one pipelined transaction) and
//! [`respond`] (rows and response settings → HTTP). [`app`] wires them to
//! routes; [`server`] starts and stops everything. Tests reach the app through
//! [`app::routes`] and the database through [`embedded`] and [`migrate`].

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod cors;
pub mod db;
pub mod embedded;
pub mod error;
pub mod execute;
pub mod jwt;
pub mod keys;
pub mod listener;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod parse;
pub mod plan;
pub mod query;
pub mod respond;
pub mod schema_cache;
pub mod server;
pub mod token_cmd;
