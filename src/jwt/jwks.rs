//! Keys from a JWKS URL (`jwt.jwks_url`), kept fresh without a restart
//! (PostgREST#1130): an identity provider publishes its signing keys as a JWK
//! Set and rotates them; the gateway follows.
//!
//! The set is fetched at start (a failure there stops the start: no keys, no
//! point serving), then every `jwt.jwks_refresh` seconds, sooner when the
//! answer says `Cache-Control: max-age=N` (never more often than once a
//! second, never later than `jwt.jwks_refresh`: a long max-age must not delay
//! dropping a revoked key past what the operator chose), and on a token whose
//! `kid` no key has, at most once per [`KID_REFETCH_INTERVAL`], so that a
//! rotation is picked up by its first token while a stream of forged `kid`s
//! cannot make the gateway hammer the provider. A failed fetch (network,
//! status, size, a set that does not load) is logged, counted in `/metrics`
//! (`pgrpc_jwks_fetch_failures_total`), retried with backoff, and keeps the
//! last good keys. A good fetch builds a new [`Jwt`] from the configured
//! settings plus the set and swaps it into the shared verifier slot, so
//! requests in flight finish with the keys they started with.
//!
//! HTTPS is verified against the system's roots (reqwest with rustls and the
//! platform verifier); `config` admits plain `http://` to loopback only.
//!
//! It owns fetching and the schedule. Parsing the set is the parent module's
//! JWK Set loading (`jwt.jwks_file` uses the same), and the request handler
//! decides when a refused token is worth a refetch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use super::{Jwt, JwtConfigError, JwtSettings};
use crate::config::is_loopback;
use crate::ops::metrics::Metrics;

/// At most one refetch per this interval for tokens with an unknown `kid`.
pub const KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest refresh interval a `max-age` can ask for.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// A whole fetch, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A JWK Set is a few keys; anything this large is not one.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a fetch gave no usable key set.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("jwt.jwks_url: cannot set up the HTTP client: {0}")]
    Client(String),
    /// Connection, TLS or transfer failure.
    #[error("jwt.jwks_url: fetching {url} failed: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with a non-2xx status.
    #[error("jwt.jwks_url: {url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body exceeds [`MAX_BODY_BYTES`].
    #[error("jwt.jwks_url: {url} sent more than {MAX_BODY_BYTES} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// The document is not a usable JWK Set (or does not fit the settings).
    #[error("jwt.jwks_url: {0}")]
    Keys(JwtConfigError),
}

/// The JWKS URL's keys and their refresh schedule; shared by the refresh
/// task, the handler (unknown `kid`) and a config reload.
pub struct Jwks {
    url: url::Url,
    refresh: Duration,
    client: reqwest::Client,
    /// Every setting but the URL's keys (secret, PEM keys, claim rules).
    base: Mutex<JwtSettings>,
    /// The last document that loaded: kept through failed fetches.
    last_good: Mutex<Option<String>>,
    /// Where verifiers are published (the app state's slot).
    target: Arc<ArcSwapOption<Jwt>>,
    metrics: Arc<Metrics>,
    /// Bumped by each load that changed the keys.
    generation: AtomicU64,
    /// When the last unknown-`kid` refetch started; also serialises them.
    kid_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url.as_str())
            .field("refresh", &self.refresh)
            .finish()
    }
}

impl Jwks {
    /// Fetch the set once (an error stops the start), publish the verifier
    /// into `target`, and start the refresh task on the current Tokio runtime.
    /// The task ends when the last `Arc<Jwks>` is dropped.
    pub async fn start(
        url: url::Url,
        refresh: Duration,
        settings: JwtSettings,
        target: Arc<ArcSwapOption<Jwt>>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Jwks>, JwksError> {
        // One crypto provider for all of pgrpc's TLS: ring, as for PostgreSQL
        // (db::tls). reqwest takes the process default; installing it twice
        // (a second start in one process) is refused and harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("pgrpc/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&url) {
            // A proxy from the environment cannot reach our own loopback.
            client = client.no_proxy();
        }
        let client = client
            .build()
            .map_err(|e| JwksError::Client(e.to_string()))?;
        let jwks = Arc::new(Jwks {
            url,
            refresh: refresh.max(MIN_REFRESH),
            client,
            base: Mutex::new(settings),
            last_good: Mutex::new(None),
            target,
            metrics,
            generation: AtomicU64::new(0),
            kid_fetch: tokio::sync::Mutex::new(None),
        });
        let next = jwks.refresh_now().await?;
        spawn_schedule(Arc::downgrade(&jwks), next);
        Ok(jwks)
    }

    /// Fetch and load now, counting and logging the outcome; the delay until
    /// the next scheduled fetch.
    pub async fn refresh_now(&self) -> Result<Duration, JwksError> {
        let result = self.fetch_and_load().await;
        self.metrics.jwks_fetched(result.is_ok());
        if let Err(e) = &result {
            tracing::error!(error = %e, "JWKS fetch failed; keeping the last good keys");
        }
        result
    }

    /// A token named a `kid` no key has: refetch, unless one ran less than
    /// [`KID_REFETCH_INTERVAL`] ago. True when the keys changed meanwhile
    /// (by this fetch or one this call waited for), so verifying again may
    /// succeed.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut last = self.kid_fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < KID_REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        tracing::info!(url = %self.url, "token with an unknown kid; refetching the JWKS");
        self.refresh_now().await.is_ok() && self.generation.load(Ordering::Acquire) != seen
    }

    /// A config reload: a verifier from the new settings and the last good
    /// keys; the settings are kept for later fetches only if it builds.
    /// (`jwt.jwks_url` and `jwt.jwks_refresh` themselves are read at start.)
    pub fn rebase(&self, settings: JwtSettings) -> Result<Jwt, JwtConfigError> {
        let mut with_keys = settings.clone();
        with_keys.jwks_json = lock(&self.last_good).clone();
        let jwt = Jwt::new(with_keys)?;
        *lock(&self.base) = settings;
        Ok(jwt)
    }

    /// The URL (for logs and errors).
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    async fn fetch_and_load(&self) -> Result<Duration, JwksError> {
        let (json, max_age) = self.fetch().await?;
        if lock(&self.last_good).as_deref() != Some(json.as_str()) {
            let mut settings = lock(&self.base).clone();
            settings.jwks_json = Some(json.clone());
            let jwt = Jwt::new(settings).map_err(JwksError::Keys)?;
            *lock(&self.last_good) = Some(json);
            self.target.store(Some(Arc::new(jwt)));
            self.generation.fetch_add(1, Ordering::AcqRel);
            tracing::info!(url = %self.url, "JWKS keys loaded");
        }
        Ok(self.next_delay(max_age))
    }

    /// GET the set: the body (bounded) and the `Cache-Control` max-age.
    async fn fetch(&self) -> Result<(String, Option<Duration>), JwksError> {
        let url = || self.url.to_string();
        let fail = |e: reqwest::Error| JwksError::Fetch {
            url: url(),
            reason: error_chain(&e),
        };
        let mut res = self
            .client
            .get(self.url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(fail)?;
        if !res.status().is_success() {
            return Err(JwksError::Status {
                url: url(),
                status: res.status().as_u16(),
            });
        }
        let max_age = res
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(JwksError::TooLarge { url: url() });
            }
            body.extend_from_slice(&chunk);
        }
        let json = String::from_utf8(body).map_err(|_| JwksError::Fetch {
            url: url(),
            reason: "the body is not UTF-8".into(),
        })?;
        Ok((json, max_age))
    }

    /// `max-age` within [1 s, `jwt.jwks_refresh`], else `jwt.jwks_refresh`.
    fn next_delay(&self, max_age: Option<Duration>) -> Duration {
        max_age.map_or(self.refresh, |age| age.clamp(MIN_REFRESH, self.refresh))
    }

    /// After `failures` failed fetches in a row: 2, 4, 8 … s, at most the
    /// refresh interval.
    fn retry_delay(&self, failures: u32) -> Duration {
        let backoff = MIN_REFRESH.saturating_mul(2u32.saturating_pow(failures.min(16)));
        backoff.min(self.refresh)
    }
}

/// The refresh loop; holds only a weak reference, so it stops with the app.
fn spawn_schedule(jwks: Weak<Jwks>, first: Duration) {
    tokio::spawn(async move {
        let mut delay = first;
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(delay).await;
            let Some(jwks) = jwks.upgrade() else {
                return;
            };
            delay = match jwks.refresh_now().await {
                Ok(next) => {
                    failures = 0;
                    next
                }
                Err(_) => {
                    failures = failures.saturating_add(1);
                    jwks.retry_delay(failures)
                }
            };
        }
    });
}

/// `max-age=N` of one `Cache-Control` value (RFC 9111 §5.2.2.1).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, n) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        n.trim()
            .trim_matches('"')
            .parse()
            .ok()
            .map(Duration::from_secs)
    })
}

/// An error with its causes (reqwest's top level says little: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            max_age("public, MAX-AGE = 5, must-revalidate"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(max_age("s-maxage=9"), None);
    }
}
