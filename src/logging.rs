//! Logging set-up: `tracing` with human-readable or JSON lines.
//!
//! `log.level` is a tracing filter directive (`info`, `pgrpc=debug,info`, …);
//! `RUST_LOG`, when set, wins, as tracing users expect. The level can be
//! changed at run time (config reload) through the [`LogHandle`]. Event names
//! live in [`events`] so log consumers have one place to look.

use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Names of the events the gateway logs.
pub mod events {
    /// One line per request (a tracing target).
    pub const REQUEST: &str = "pgrpc::request";
}

type SetFilter = dyn Fn(EnvFilter) -> bool + Send + Sync;

/// Changes the log filter of the running subscriber.
#[derive(Clone, Default)]
pub struct LogHandle(Option<Arc<SetFilter>>);

impl LogHandle {
    /// Check a filter directive without applying it.
    pub fn parse(level: &str) -> Option<EnvFilter> {
        EnvFilter::try_new(level).ok()
    }

    /// Apply a filter (ignored when `RUST_LOG` pins the filter).
    pub fn set(&self, filter: EnvFilter) {
        if std::env::var_os("RUST_LOG").is_some() {
            return;
        }
        if let Some(set) = &self.0 {
            if !set(filter) {
                tracing::warn!("the log filter could not be changed");
            }
        }
    }
}

/// Install the global subscriber; a second call is a no-op.
pub fn init(config: &Config) -> LogHandle {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.log_level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // The reload layer must wrap the finished format, so each format builds
    // its own chain.
    match config.log_format {
        LogFormat::Json => {
            let builder = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return LogHandle::default();
            }
            LogHandle(Some(Arc::new(move |f| handle.reload(f).is_ok())))
        }
        LogFormat::Text => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return LogHandle::default();
            }
            LogHandle(Some(Arc::new(move |f| handle.reload(f).is_ok())))
        }
    }
}
