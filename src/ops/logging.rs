//! Logging set-up: `tracing` with human-readable or JSON lines.
//!
//! `log.level` is a tracing filter directive (`info`, `pgrpc=debug,info`, …);
//! `RUST_LOG`, when set, wins, as tracing users expect. The level can be
//! changed at run time (config reload) through the [`LogHandle`]. Event names
//! live in [`events`] so log consumers have one place to look.

use std::io::IsTerminal;
use std::sync::Arc;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Names of the events the gateway logs.
pub mod events {
    /// One line per request (a tracing target).
    pub const REQUEST: &str = "pgrpc::request";
}

type SetFilter = dyn Fn(EnvFilter) -> bool + Send + Sync;

/// Changes the log filter of the running subscriber, and keeps the
/// non-blocking writer's thread alive (it flushes when the last clone drops).
#[derive(Clone, Default)]
pub struct LogHandle {
    set: Option<Arc<SetFilter>>,
    _guard: Option<Arc<WorkerGuard>>,
}

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
        if let Some(set) = &self.set {
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
    // Lines are written by a thread of their own: a request's log line costs
    // the worker only a copy into a queue, not a write(2) to stderr (the
    // profile measured the blocking write at a fifth of the throughput). The
    // queue is bounded; when it is full, lines are dropped, not waited for
    // (tracing-appender's default, lossy mode).
    // 4,096 lines of queue: the default (128,000) preallocates ~4 MB, a
    // fifth of the idle memory budget, for nothing stderr needs.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(4096)
        .finish(std::io::stderr());
    let guard = Some(Arc::new(guard));
    // Colours only for a person at a terminal: a log file or a journal
    // would get the escape codes as text. NO_COLOR (no-color.org) turns them
    // off at a terminal too.
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // The reload layer must wrap the finished format, and the two formats are
    // different builder types: the macro writes the common tail once.
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder
                .with_env_filter(filter)
                .with_ansi(ansi)
                .with_writer(writer)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            if builder.try_init().is_err() {
                return LogHandle::default();
            }
            LogHandle {
                set: Some(Arc::new(move |f| handle.reload(f).is_ok())),
                _guard: guard,
            }
        }};
    }
    match config.log_format {
        LogFormat::Json => install!(tracing_subscriber::fmt().json().flatten_event(true)),
        LogFormat::Text => install!(tracing_subscriber::fmt()),
    }
}
