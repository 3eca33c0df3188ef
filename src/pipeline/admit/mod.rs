//! Admit stage: the limits a function declares, enforced between plan and
//! execute, before any database work.
//!
//! A DBA declares them on the function (`ALTER FUNCTION … SET
//! pgrpc.max_concurrency = '2'`; parsed by `db::schema_cache::limits`):
//!
//! - a rate limit per client address ([`rate`]; 429) is checked first, so a
//!   refused call costs a hash lookup;
//! - a concurrency limit per gateway ([`gate`]; 503 when the bounded queue is
//!   full or the wait runs out) is taken next, *before* a pooled connection:
//!   a waiting call holds no connection, so a flood of slow calls (bcrypt
//!   logins) can take at most `max_concurrency` connections, and the rest of
//!   the pool stays with everything else.
//!
//! State is kept per function by `pg_proc.oid`, which a schema reload, `CREATE
//! OR REPLACE` and `ALTER FUNCTION … SET` all keep, so a reload neither resets
//! running permits nor forgets buckets; a changed concurrency limit applies to
//! the running gate (see [`gate`]), a changed rate replaces its buckets. Only
//! functions of the schema cache that declare a limit get state, so clients
//! cannot grow these tables; entries of functions that no longer exist are
//! dropped when the table passes [`MAX_FUNCTIONS`]. The client address comes
//! from [`client_addr`]. Nothing here knows HTTP (the handler renders).

pub mod client_addr;
pub mod gate;
pub mod rate;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use ipnet::IpNet;

use crate::db::schema_cache::{Limits, SchemaCache};
use crate::error::AdmitError;

pub use gate::Permit;

/// Whether the admission stage is compiled in. Off only in the benchmark's
/// baseline build (`cargo build --release --features bench-no-admission`,
/// made by `bench/run --limits-ab`), which measures what the stage costs a
/// call that hits no limit; every other build has it.
pub const COMPILED: bool = !cfg!(feature = "bench-no-admission");

/// Functions with state kept before the entries of dropped functions are
/// swept out.
pub const MAX_FUNCTIONS: usize = 1024;

/// The rate limit state of an admitted call, for its `RateLimit` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaders {
    /// `RateLimit-Policy`.
    pub policy: String,
    /// `RateLimit`.
    pub state: String,
}

/// Per-function admission state, shared by every worker of a gateway, and
/// the proxies trusted to name the client (`server.trusted_proxies`, swapped
/// on a config reload).
#[derive(Default)]
pub struct Admission {
    gates: Mutex<HashMap<i64, Arc<gate::Gate>>>,
    rates: Mutex<HashMap<i64, Arc<rate::RateLimiter>>>,
    trusted_proxies: ArcSwap<Vec<IpNet>>,
    /// Whether ignored forwarding headers were reported since start or the
    /// last config reload.
    forwarding_reported: AtomicBool,
}

impl Admission {
    /// No state yet, trusting `trusted_proxies` to name the client.
    pub fn new(trusted_proxies: Vec<IpNet>) -> Admission {
        Admission {
            trusted_proxies: ArcSwap::from_pointee(trusted_proxies),
            ..Admission::default()
        }
    }

    /// The proxies trusted now to name the client ([`client_addr`]).
    pub fn trusted_proxies(&self) -> arc_swap::Guard<Arc<Vec<IpNet>>> {
        self.trusted_proxies.load()
    }

    /// Trust these proxies from the next request on (a config reload), and
    /// report ignored forwarding headers afresh.
    pub fn set_trusted_proxies(&self, trusted_proxies: Vec<IpNet>) {
        self.trusted_proxies.store(Arc::new(trusted_proxies));
        self.forwarding_reported.store(false, Ordering::Relaxed);
    }

    /// Whether this is the first request, since start or the last config
    /// reload, whose forwarding headers came from an untrusted peer and were
    /// ignored: the caller warns once, since a reverse proxy left out of
    /// `trusted_proxies` makes every client behind it one address for rate
    /// limits and login lockouts.
    pub fn first_ignored_forwarding(&self) -> bool {
        // A load first: once reported, a flood of such requests only reads.
        !self.forwarding_reported.load(Ordering::Relaxed)
            && !self.forwarding_reported.swap(true, Ordering::Relaxed)
    }

    /// Count the call against the function's rate limit, when it declares
    /// one that applies (anonymous calls, or all with `rate_limit_scope =
    /// 'all'`). `Some` carries the headers for the response.
    pub fn check_rate(
        &self,
        function: &str,
        oid: i64,
        limits: &Limits,
        client: Option<IpAddr>,
        anonymous: bool,
        cache: &SchemaCache,
    ) -> Result<Option<RateHeaders>, AdmitError> {
        let Some(spec) = limits.rate else {
            return Ok(None);
        };
        if !anonymous && !spec.all {
            return Ok(None);
        }
        let limiter = {
            let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
            match rates.get(&oid) {
                Some(l) if l.spec() == spec => l.clone(),
                _ => {
                    let l = Arc::new(rate::RateLimiter::new(spec));
                    insert_bounded(&mut rates, oid, l.clone(), cache);
                    l
                }
            }
        };
        let decision = limiter.check(client);
        // draft-ietf-httpapi-ratelimit-headers-10 §3, §4: a List of Items, the
        // policy a String, q/w/r/t Integers. The function name is quoted with
        // `"` and `\` escaped; anything outside printable ASCII makes it
        // "function", as a String may hold nothing else.
        let name = policy_name(function);
        let policy = format!("{name};q={};w={}", spec.count, spec.unit.seconds());
        let state = format!("{name};r={};t={}", decision.remaining, decision.reset);
        if decision.allowed {
            Ok(Some(RateHeaders { policy, state }))
        } else {
            Err(AdmitError::RateLimited {
                function: function.to_string(),
                retry_after: decision.reset,
                policy,
                state,
            })
        }
    }

    /// Take a slot under the function's concurrency limit (waiting in its
    /// queue when all are taken), when it declares one. Hold the permit
    /// until the transaction is over.
    pub async fn acquire(
        &self,
        function: &str,
        oid: i64,
        limits: &Limits,
        cache: &SchemaCache,
    ) -> Result<Option<Permit>, AdmitError> {
        let Some(limit) = limits.max_concurrency else {
            return Ok(None);
        };
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
            match gates.get(&oid) {
                Some(g) => g.clone(),
                None => {
                    let g = Arc::new(gate::Gate::default());
                    insert_bounded(&mut gates, oid, g.clone(), cache);
                    g
                }
            }
        };
        let retry_after = limits.max_wait.as_secs().max(1);
        gate.acquire(limit, limits.max_queue, limits.max_wait)
            .await
            .map(Some)
            .map_err(|refusal| AdmitError::Busy {
                function: function.to_string(),
                queue_full: refusal == gate::Refusal::QueueFull,
                retry_after,
            })
    }

    /// (permits out, callers waiting) of a function's gate, for tests.
    pub fn load(&self, oid: i64) -> Option<(u32, usize)> {
        let gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        gates.get(&oid).map(|g| g.load())
    }
}

/// Insert, first dropping the entries of functions the cache no longer
/// declares limits for when the table is full. Running calls keep their
/// `Arc` and finish normally.
fn insert_bounded<V>(map: &mut HashMap<i64, Arc<V>>, oid: i64, value: Arc<V>, cache: &SchemaCache) {
    if map.len() >= MAX_FUNCTIONS {
        map.retain(|k, _| cache.limits(*k).is_some());
    }
    if map.len() < MAX_FUNCTIONS {
        map.insert(oid, value);
    }
}

/// The policy identifier as a Structured Field String (RFC 8941 §3.3.3).
fn policy_name(function: &str) -> String {
    if function.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        format!(
            "\"{}\"",
            function.replace('\\', "\\\\").replace('"', "\\\"")
        )
    } else {
        "\"function\"".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema_cache::limits::{RateLimit, RateUnit};
    use std::time::Duration;

    fn limits(rate: Option<RateLimit>, concurrency: Option<u32>) -> Limits {
        Limits {
            max_concurrency: concurrency,
            max_queue: 0,
            max_wait: Duration::from_secs(1),
            rate,
        }
    }

    #[test]
    fn rate_headers_and_refusal() {
        let a = Admission::default();
        let cache = SchemaCache::from_routines(Vec::new(), None);
        let l = limits(
            Some(RateLimit {
                count: 1,
                unit: RateUnit::Minute,
                all: false,
            }),
            None,
        );
        let ip = Some("192.0.2.1".parse().expect("ip"));
        let ok = a
            .check_rate("api.f", 7, &l, ip, true, &cache)
            .expect("allowed")
            .expect("headers");
        assert_eq!(ok.policy, r#""api.f";q=1;w=60"#);
        assert_eq!(ok.state, r#""api.f";r=0;t=60"#);
        // A caller with a token is not counted by an anonymous-only limit.
        assert!(matches!(
            a.check_rate("api.f", 7, &l, ip, false, &cache),
            Ok(None)
        ));
        match a.check_rate("api.f", 7, &l, ip, true, &cache) {
            Err(AdmitError::RateLimited {
                retry_after, state, ..
            }) => {
                assert!((1..=60).contains(&retry_after));
                assert!(state.starts_with(r#""api.f";r=0;t="#), "{state}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn policy_names_are_sf_strings() {
        assert_eq!(policy_name(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(policy_name("api.café"), r#""function""#);
    }
}
