//! Operations: what the gateway tells and gives back while it runs —
//! Prometheus [`metrics`], [`logging`] set-up and event names, and [`memory`]
//! trimming after a burst. Depends only on `config`; every other layer may
//! report through it.

pub mod logging;
pub mod memory;
pub mod metrics;
