//! A concurrency gate: at most `limit` permits out at once, at most
//! `max_queue` callers waiting in FIFO order, each for at most `max_wait`.
//!
//! Hand-written rather than a `tokio::sync::Semaphore` because the limit can
//! change under running calls (a schema reload after `ALTER FUNCTION … SET
//! pgrpc.max_concurrency`): lowering it lets the calls already running finish
//! and admits nobody until fewer than the new limit run; raising it admits
//! waiters at once. A semaphore can only forget permits that are free. The
//! lock is a plain mutex held for a few instructions, never across an await.
//! Owns nothing about which function a gate belongs to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every permit is out and `max_queue` callers already wait.
    QueueFull,
    /// No permit came free within `max_wait`.
    TimedOut,
}

#[derive(Default)]
struct State {
    /// Permits out (may exceed `limit` right after the limit was lowered).
    running: u32,
    limit: u32,
    next_id: u64,
    /// Waiters in arrival order; a permit is handed over by sending on one.
    waiters: VecDeque<(u64, oneshot::Sender<()>)>,
}

impl State {
    /// Hand free permits to the first waiters still waiting.
    fn pump(&mut self) {
        while self.running < self.limit {
            let Some((_, tx)) = self.waiters.pop_front() else {
                break;
            };
            if tx.send(()).is_ok() {
                self.running += 1;
            }
        }
    }
}

/// One function's gate, shared by every call of it.
#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
}

/// A permit: the call may run; dropped when it is done (its transaction
/// ended), which hands the slot to the next waiter.
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.running = st.running.saturating_sub(1);
        st.pump();
    }
}

/// A caller in the queue; if its future is dropped (the client hung up) it
/// leaves the queue, and gives back a permit handed to it meanwhile.
struct Waiting {
    gate: Arc<Gate>,
    id: u64,
    rx: oneshot::Receiver<()>,
    settled: bool,
}

impl Waiting {
    /// Leave the queue: true when a permit was handed over after all (it is
    /// then this caller's).
    fn settle(&mut self) -> bool {
        self.settled = true;
        let mut st = self.gate.lock();
        // Under the lock no permit can be sent any more: either it was, and
        // try_recv sees it, or the entry is removed here.
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            return true;
        }
        let id = self.id;
        st.waiters.retain(|(i, _)| *i != id);
        false
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.settled && self.settle() {
            drop(Permit {
                gate: self.gate.clone(),
            });
        }
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements: a panic elsewhere
        // cannot leave it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take a permit, waiting in the queue when all `limit` are out. `limit`
    /// is the function's current declaration: a changed one applies from now.
    pub async fn acquire(
        self: &Arc<Self>,
        limit: u32,
        max_queue: u32,
        max_wait: Duration,
    ) -> Result<Permit, Refusal> {
        let (id, rx) = {
            let mut st = self.lock();
            if st.limit != limit {
                st.limit = limit;
                st.pump();
            }
            if st.running < st.limit && st.waiters.is_empty() {
                st.running += 1;
                return Ok(Permit { gate: self.clone() });
            }
            if st.waiters.len() >= usize::try_from(max_queue).unwrap_or(usize::MAX) {
                return Err(Refusal::QueueFull);
            }
            let (tx, rx) = oneshot::channel();
            let id = st.next_id;
            st.next_id += 1;
            st.waiters.push_back((id, tx));
            (id, rx)
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            id,
            rx,
            settled: false,
        };
        let handed = matches!(
            tokio::time::timeout(max_wait, &mut waiting.rx).await,
            Ok(Ok(()))
        );
        if handed {
            waiting.settled = true;
            return Ok(Permit { gate: self.clone() });
        }
        if waiting.settle() {
            return Ok(Permit { gate: self.clone() });
        }
        Err(Refusal::TimedOut)
    }

    /// (permits out, callers waiting), for tests and metrics.
    pub fn load(&self) -> (u32, usize) {
        let st = self.lock();
        (st.running, st.waiters.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn limit_queue_and_handover() {
        let gate = Arc::new(Gate::default());
        let a = gate.acquire(2, 1, LONG).await.expect("first");
        let _b = gate.acquire(2, 1, LONG).await.expect("second");
        // The third waits; a fourth finds the queue full.
        let g = gate.clone();
        let third = tokio::spawn(async move { g.acquire(2, 1, LONG).await.map(|_| ()) });
        while gate.load().1 == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            gate.acquire(2, 1, LONG).await.err(),
            Some(Refusal::QueueFull)
        );
        drop(a);
        assert_eq!(third.await.expect("task"), Ok(()));
        // The third's permit was dropped with its task: one out (b).
        assert_eq!(gate.load(), (1, 0));
    }

    #[tokio::test]
    async fn waiting_too_long_is_refused_and_leaves_the_queue() {
        let gate = Arc::new(Gate::default());
        let _a = gate.acquire(1, 4, LONG).await.expect("first");
        let r = gate.acquire(1, 4, Duration::from_millis(50)).await;
        assert_eq!(r.err(), Some(Refusal::TimedOut));
        assert_eq!(gate.load(), (1, 0));
    }

    #[tokio::test]
    async fn a_dropped_waiter_leaves_the_queue() {
        let gate = Arc::new(Gate::default());
        let a = gate.acquire(1, 4, LONG).await.expect("first");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.acquire(1, 4, LONG).await.map(|_| ()) });
        while gate.load().1 == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(gate.load(), (1, 0));
        drop(a);
        assert_eq!(
            gate.load(),
            (0, 0),
            "no permit leaked to the dropped waiter"
        );
    }

    #[tokio::test]
    async fn lowering_the_limit_lets_running_calls_finish() {
        let gate = Arc::new(Gate::default());
        let a = gate.acquire(2, 0, LONG).await.expect("a");
        let b = gate.acquire(2, 0, LONG).await.expect("b");
        // Limit lowered to 1 with two out: nobody else gets in …
        assert_eq!(
            gate.acquire(1, 0, LONG).await.err(),
            Some(Refusal::QueueFull)
        );
        drop(a);
        // … still one out, so still nobody …
        assert!(gate.acquire(1, 0, LONG).await.is_err());
        drop(b);
        // … until fewer than the new limit run.
        let _c = gate.acquire(1, 0, LONG).await.expect("c");
        assert_eq!(gate.load(), (1, 0));
    }

    #[tokio::test]
    async fn raising_the_limit_admits_waiters() {
        let gate = Arc::new(Gate::default());
        let _a = gate.acquire(1, 4, LONG).await.expect("a");
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.acquire(1, 4, LONG).await.map(|_| ()) });
        while gate.load().1 == 0 {
            tokio::task::yield_now().await;
        }
        let _c = gate.acquire(3, 4, LONG).await.expect("raised");
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }
}
