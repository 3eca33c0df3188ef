//! Giving back the heap a burst of traffic left behind.
//!
//! Under load every HTTP connection holds read and write buffers, and actix
//! keeps up to 128 request heads per worker for reuse. When the load stops,
//! most of that is freed, but glibc's allocator keeps freed pages in its
//! per-thread arenas: measured after 256 connections of `add_them`, about
//! 5.5 MB per worker arena of which 2.3 MB still in use. `malloc_trim(0)`
//! returns the free pages of every arena to the kernel. It is called once each
//! time the gateway goes quiet after serving, never under load (it takes the
//! arena locks), so a steady stream of requests pays nothing for it. Not the
//! request pipeline's business; `server` starts it.

use std::sync::Arc;
use std::time::Duration;

use crate::ops::metrics::Metrics;

/// How often the request count is compared: memory is given back between
/// one and two periods after the last request.
const PERIOD: Duration = Duration::from_millis(500);

/// Trim the heap whenever a period without requests follows one with some.
pub fn spawn_trim_when_quiet(metrics: Arc<Metrics>) {
    if !trim_supported() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quiet = Quiet::new(metrics.answered());
        loop {
            tick.tick().await;
            if quiet.went_quiet(metrics.answered()) {
                trim();
            }
        }
    });
}

/// Tells, period after period, when requests stopped.
struct Quiet {
    seen: u64,
    busy: bool,
}

impl Quiet {
    fn new(answered: u64) -> Quiet {
        Quiet {
            seen: answered,
            busy: false,
        }
    }

    /// True once for each period without requests that follows one with some.
    fn went_quiet(&mut self, answered: u64) -> bool {
        if answered != self.seen {
            self.seen = answered;
            self.busy = true;
            false
        } else {
            std::mem::replace(&mut self.busy, false)
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_supported() -> bool {
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_supported() -> bool {
    false
}

/// Return free heap pages to the kernel (glibc only; other allocators give
/// memory back by themselves or not at all).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's
    // own arenas under their locks; it is safe to call from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "heap trimmed after a burst");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_when_requests_stop_and_never_while_they_come() {
        let mut q = Quiet::new(0);
        assert!(!q.went_quiet(0), "idle since start: nothing to give back");
        assert!(!q.went_quiet(5), "busy");
        assert!(!q.went_quiet(9), "still busy");
        assert!(q.went_quiet(9), "the first quiet period");
        assert!(!q.went_quiet(9), "only once");
        assert!(!q.went_quiet(10));
        assert!(q.went_quiet(10), "again after the next burst");
    }
}
