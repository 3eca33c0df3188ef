//! Operations: what the gateway tells and gives back while it runs —
//! Prometheus [`metrics`], [`logging`] set-up and event names, [`memory`]
//! trimming after a burst, and the process [`limits`] the caps rely on.
//! Depends only on `config`; every other layer may report through it.

pub mod limits;
pub mod logging;
pub mod memory;
pub mod metrics;
