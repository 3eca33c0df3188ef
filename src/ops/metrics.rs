//! Prometheus metrics: what `/metrics` on the admin port exposes.
//!
//! Requests by function and status, a latency histogram, pool size,
//! availability, waiters and timeouts, schema cache loads and load time, JWT
//! cache hits, misses, entries and bytes, JWKS URL fetches and failed fetches, and each read
//! replica's health and lag (set by `db::replicas`' checks). Values owned elsewhere (the pool, the JWT cache)
//! are read at scrape time. Serving them is `admin`'s job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Figures owned by other layers, read at scrape time and handed to
/// [`Metrics::render`], so this module depends on none of them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Readings {
    /// Request connections open.
    pub pool_size: usize,
    /// Idle request connections.
    pub pool_available: usize,
    /// Requests waiting for a connection.
    pub pool_waiting: usize,
    /// JWT cache (hits, misses) since start; None without a JWT verifier.
    pub jwt_cache: Option<(u64, u64)>,
    /// JWT cache (entries, accounted bytes) now; None without a cache.
    pub jwt_cache_size: Option<(usize, usize)>,
    /// Ended sessions the gateway refuses now.
    pub ended_sessions: usize,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    function: String,
    status: u16,
}

/// Every metric the gateway keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    pool_timeouts: Counter,
    schema_loads: Counter,
    schema_load_seconds: Gauge<f64, AtomicU64>,
    jwt_hits: Counter,
    jwt_misses: Counter,
    jwt_cache_entries: Gauge,
    jwt_cache_bytes: Gauge,
    jwks_fetches: Counter,
    jwks_failures: Counter,
    ended_sessions: Gauge,
    untrusted_forwarded: Counter,
    /// JWT cache totals already added to the counters.
    jwt_seen: Mutex<(u64, u64)>,
    /// Requests answered since start (cheap to read, unlike the family).
    answered: AtomicU64,
    /// 1 when the replica is in the rotation (`pgrpc_replica_up`).
    replica_up: Family<ReplicaLabels, Gauge>,
    /// Its replay lag at the last check (`pgrpc_replica_lag_seconds`).
    replica_lag: Family<ReplicaLabels, Gauge<f64, AtomicU64>>,
}

/// Labels of the replica gauges: the replica's `host:port`, never credentials.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pgrpc");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by function and status",
            requests.clone(),
        );
        // 0.25 ms … ~4 s.
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register(
            "request_duration_seconds",
            "Request latency",
            latency.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "pool_size",
            "Connections open in the pool",
            pool_size.clone(),
        );
        let pool_available = Gauge::default();
        registry.register(
            "pool_available",
            "Idle connections in the pool",
            pool_available.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "pool_waiting",
            "Requests waiting for a connection",
            pool_waiting.clone(),
        );
        let pool_timeouts = Counter::default();
        registry.register(
            "pool_timeouts",
            "Requests that gave up waiting for a connection (504)",
            pool_timeouts.clone(),
        );
        let schema_loads = Counter::default();
        registry.register(
            "schema_cache_loads",
            "Schema cache loads",
            schema_loads.clone(),
        );
        let schema_load_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "schema_cache_load_seconds",
            "Duration of the last schema cache load",
            schema_load_seconds.clone(),
        );
        let jwt_hits = Counter::default();
        registry.register(
            "jwt_cache_hits",
            "Tokens answered from the verified-token cache",
            jwt_hits.clone(),
        );
        let jwt_misses = Counter::default();
        registry.register(
            "jwt_cache_misses",
            "Tokens verified in full",
            jwt_misses.clone(),
        );
        let jwt_cache_entries = Gauge::default();
        registry.register(
            "jwt_cache_entries",
            "Tokens in the verified-token cache (jwt.cache_max_entries bounds it)",
            jwt_cache_entries.clone(),
        );
        let jwt_cache_bytes = Gauge::default();
        registry.register(
            "jwt_cache_bytes",
            "Bytes the verified-token cache holds, as it accounts them (jwt.cache_max_bytes bounds it)",
            jwt_cache_bytes.clone(),
        );
        let jwks_fetches = Counter::default();
        registry.register(
            "jwks_fetches",
            "JWKS URL fetches that loaded a key set",
            jwks_fetches.clone(),
        );
        let jwks_failures = Counter::default();
        registry.register(
            "jwks_fetch_failures",
            "JWKS URL fetches that failed (the last good keys stay in use)",
            jwks_failures.clone(),
        );
        let ended_sessions = Gauge::default();
        registry.register(
            "ended_sessions",
            "Ended sessions whose tokens are refused (jwt::revoked)",
            ended_sessions.clone(),
        );
        let untrusted_forwarded = Counter::default();
        registry.register(
            "untrusted_forwarded_requests",
            "Requests with Forwarded or X-Forwarded-For from a peer not in server.trusted_proxies (the headers were ignored)",
            untrusted_forwarded.clone(),
        );
        let replica_up = Family::<ReplicaLabels, Gauge>::default();
        registry.register(
            "replica_up",
            "1 when the read replica is in the rotation (reachable, in recovery, lag within db.replica_max_lag)",
            replica_up.clone(),
        );
        let replica_lag = Family::<ReplicaLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replica_lag_seconds",
            "Replay lag of the read replica at its last health check (NaN: unreachable)",
            replica_lag.clone(),
        );
        Metrics {
            ended_sessions,
            untrusted_forwarded,
            replica_up,
            replica_lag,
            registry,
            jwks_fetches,
            jwks_failures,
            requests,
            latency,
            pool_size,
            pool_available,
            pool_waiting,
            pool_timeouts,
            schema_loads,
            schema_load_seconds,
            jwt_hits,
            jwt_misses,
            jwt_cache_entries,
            jwt_cache_bytes,
            jwt_seen: Mutex::new((0, 0)),
            answered: AtomicU64::new(0),
        }
    }

    /// Count one request.
    pub fn request(&self, function: &str, status: u16, seconds: f64, pool_timeout: bool) {
        self.requests
            .get_or_create(&RequestLabels {
                function: function.to_string(),
                status,
            })
            .inc();
        self.latency.observe(seconds);
        self.answered.fetch_add(1, Ordering::Relaxed);
        if pool_timeout {
            self.pool_timeouts.inc();
        }
    }

    /// Count one request whose forwarding headers were ignored because its
    /// peer is not a trusted proxy.
    pub fn untrusted_forwarded(&self) {
        self.untrusted_forwarded.inc();
    }

    /// Requests answered since start.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Count one JWKS URL fetch, good or failed.
    pub fn jwks_fetched(&self, ok: bool) {
        if ok {
            self.jwks_fetches.inc();
        } else {
            self.jwks_failures.inc();
        }
    }

    /// What a replica's health check found (`replica` = its `host:port`).
    pub fn replica(&self, replica: &str, up: bool, lag_seconds: f64) {
        let labels = ReplicaLabels {
            replica: replica.to_string(),
        };
        self.replica_up.get_or_create(&labels).set(i64::from(up));
        self.replica_lag.get_or_create(&labels).set(lag_seconds);
    }

    /// Count one schema cache load.
    pub fn schema_loaded(&self, seconds: f64) {
        self.schema_loads.inc();
        self.schema_load_seconds.set(seconds);
    }

    /// The Prometheus text exposition, with the figures owned elsewhere
    /// (pool, JWT cache) as the caller read them just now.
    pub fn render(&self, now: &Readings) -> String {
        self.pool_size
            .set(i64::try_from(now.pool_size).unwrap_or(i64::MAX));
        self.pool_available
            .set(i64::try_from(now.pool_available).unwrap_or(i64::MAX));
        self.pool_waiting
            .set(i64::try_from(now.pool_waiting).unwrap_or(i64::MAX));
        self.ended_sessions
            .set(i64::try_from(now.ended_sessions).unwrap_or(i64::MAX));
        let (entries, bytes) = now.jwt_cache_size.unwrap_or((0, 0));
        self.jwt_cache_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.jwt_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        if let (Some((hits, misses)), Ok(mut seen)) = (now.jwt_cache, self.jwt_seen.lock()) {
            self.jwt_hits.inc_by(hits.saturating_sub(seen.0));
            self.jwt_misses.inc_by(misses.saturating_sub(seen.1));
            *seen = (hits.max(seen.0), misses.max(seen.1));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("encoding metrics failed");
        }
        out
    }
}
