//! Logging set-up: `tracing` with human-readable or JSON lines.
//!
//! `log.level` is a tracing filter directive (`info`, `pgrpc=debug,info`, …);
//! `RUST_LOG`, when set, wins, as tracing users expect. Event names live in
//! [`events`] so log consumers have one place to look.

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Names of the events the gateway logs.
pub mod events {
    /// One line per request (a tracing target).
    pub const REQUEST: &str = "pgrpc::request";
}

/// Install the global subscriber; a second call is a no-op.
pub fn init(config: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
