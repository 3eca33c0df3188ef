//! Reloads: `NOTIFY pgrpc, 'reload schema' | 'reload config'` (and PostgREST's
//! `pgrst` channel), SIGUSR1 (schema), SIGUSR2 (config), and reconnects.
//!
//! One dedicated connection LISTENs and also loads the cache, so reloading
//! never takes a request's pooled connection. A new cache is built completely
//! and then swapped in (`ArcSwapOption::store`): requests see the old cache or
//! the new one, never half of one; a failed load keeps the old cache and logs
//! why. When the connection drops, it reconnects with backoff and reloads, since
//! DDL may have happened meanwhile. It also keeps the set of ended sessions
//! (`session ended <sid> <exp>` on channel `pgrpc`, see [`super::sessions`]):
//! loaded whole on every (re)connect, before the schema cache. Owns nothing else.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use crate::config::QualifiedName;
use crate::db::schema_cache::SchemaCache;
use crate::db::sessions;
use crate::db::Target;
use crate::jwt::revoked::EndedSessions;
use crate::ops::metrics::Metrics;

/// Channels the listener subscribes to (ours and PostgREST's).
const CHANNELS: &str = "LISTEN pgrpc; LISTEN pgrst";
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a reload covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The schema cache.
    Schema,
    /// The parts of the configuration that can change without a restart.
    Config,
}

/// Called for `reload config`.
pub type ConfigHook = Arc<dyn Fn() + Send + Sync>;

/// What to load and where to put it.
#[derive(Clone)]
pub struct CacheTarget {
    /// The shared cache.
    pub cache: Arc<ArcSwapOption<SchemaCache>>,
    /// Exposed schemas.
    pub schemas: Vec<String>,
    /// Claims type name.
    pub claims_type: QualifiedName,
    /// Where loads are counted.
    pub metrics: Arc<Metrics>,
    /// The ended sessions the auth stage refuses.
    pub ended_sessions: Arc<EndedSessions>,
}

impl CacheTarget {
    /// Load a new cache on `client` and swap it in; keep the old one on failure.
    pub async fn reload(&self, client: &tokio_postgres::Client) -> bool {
        match SchemaCache::load(client, &self.schemas, &self.claims_type).await {
            Ok(cache) => {
                tracing::info!(
                    functions = cache.len(),
                    load_ms = cache.load_time.as_secs_f64() * 1000.0,
                    claims_type = cache.claims_type.is_some(),
                    "schema cache loaded"
                );
                self.metrics.schema_loaded(cache.load_time.as_secs_f64());
                self.cache.store(Some(Arc::new(cache)));
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "schema cache reload failed; still serving the previous cache");
                false
            }
        }
    }
}

/// Handle to ask the listener for a reload (SIGUSR1, admin).
#[derive(Clone)]
pub struct Listener {
    tx: mpsc::UnboundedSender<Reload>,
}

impl Listener {
    /// Ask for a reload; it happens on the listener's connection.
    pub fn request(&self, what: Reload) {
        let _ = self.tx.send(what);
    }
}

/// Start the listener task on the current runtime (schema reloads only).
pub fn spawn(cfg: impl Into<Target>, target: CacheTarget) -> Listener {
    spawn_with(cfg, target, None)
}

/// Start the listener; `reload config` notifications and requests call `on_config`.
pub fn spawn_with(
    cfg: impl Into<Target>,
    target: CacheTarget,
    on_config: Option<ConfigHook>,
) -> Listener {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(cfg.into(), target, on_config, rx));
    Listener { tx }
}

async fn run(
    cfg: Target,
    target: CacheTarget,
    on_config: Option<ConfigHook>,
    mut requests: mpsc::UnboundedReceiver<Reload>,
) {
    let reload_config = || {
        if let Some(hook) = &on_config {
            hook();
        }
    };
    let mut backoff = Duration::from_millis(100);
    let mut requests_open = true;
    loop {
        match connect(&cfg).await {
            Ok((client, mut notes)) => {
                backoff = Duration::from_millis(100);
                // LISTEN is in force before this load, so a session that ends
                // meanwhile is in the load or in a notification after it.
                sessions::reload(&client, &target.ended_sessions).await;
                target.reload(&client).await;
                loop {
                    tokio::select! {
                        note = notes.recv() => match note {
                            Some(payload) => {
                                // Coalesce a burst (a migration's many DDL statements) into one reload.
                                sessions::note(&target.ended_sessions, &payload);
                                let (mut schema, mut config) = wants(&payload);
                                while let Ok(more) = notes.try_recv() {
                                    sessions::note(&target.ended_sessions, &more);
                                    let (s, c) = wants(&more);
                                    schema |= s;
                                    config |= c;
                                }
                                if config {
                                    reload_config();
                                }
                                // Role settings live in the schema cache and
                                // PostgREST reloads them with the config.
                                if schema || config {
                                    target.reload(&client).await;
                                }
                            }
                            None => {
                                tracing::warn!("schema listener lost its connection; reconnecting");
                                break;
                            }
                        },
                        request = requests.recv(), if requests_open => match request {
                            Some(Reload::Schema) => {
                                while requests.try_recv().is_ok() {}
                                target.reload(&client).await;
                            }
                            Some(Reload::Config) => {
                                reload_config();
                                target.reload(&client).await;
                            }
                            // Every handle is gone (no signals, a test that
                            // dropped it): NOTIFY still works.
                            None => requests_open = false,
                        },
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "schema listener cannot connect; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// PostgREST's payloads: `reload schema`, `reload config`, or empty for both.
/// Returns (schema, config).
fn wants(payload: &str) -> (bool, bool) {
    match payload.trim() {
        "" => (true, true),
        "reload schema" => (true, false),
        "reload config" => (false, true),
        _ => (false, false),
    }
}

/// `application_name` of the listener's connection.
pub const LISTENER_NAME: &str = "pgrpc listener";

/// Connect, LISTEN, and forward notifications to a channel that closes when
/// the connection ends.
async fn connect(
    cfg: &Target,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>), tokio_postgres::Error> {
    let (tx, rx) = mpsc::unbounded_channel();
    // Named, so a DBA can tell it from the request connections in
    // pg_stat_activity (it is the one that stays idle in LISTEN).
    let mut cfg = cfg.clone();
    cfg.pg.application_name(LISTENER_NAME);
    // The channel closes when the connection's task ends (it owns `tx`).
    let client = crate::db::connect_forwarding(&cfg, move |message| {
        if let AsyncMessage::Notification(n) = message {
            let _ = tx.send(n.payload().to_string());
        }
    })
    .await?;
    client.batch_execute(CHANNELS).await?;
    Ok((client, rx))
}
