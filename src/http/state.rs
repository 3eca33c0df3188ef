//! The state every worker shares: configuration, pools, the schema cache, the
//! JWT verifier, the ended sessions, the CORS policy and the metrics, each
//! swappable where a reload can change it. Owns no request logic.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use deadpool_postgres::Pool;

use crate::config::Config;
use crate::db::schema_cache::SchemaCache;
use crate::db::Pools;
use crate::error::Error;
use crate::http::cors::CorsPolicy;
use crate::jwt::jwks::Jwks;
use crate::jwt::revoked::EndedSessions;
use crate::jwt::Jwt;
use crate::ops::metrics::{Metrics, Readings};
use crate::pipeline::admit::Admission;
use crate::pipeline::{execute, query};

/// Shared by every worker (`web::Data`).
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Request connections (a pool per worker) and the service connection.
    pub pools: Pools,
    /// The schema cache; None until first loaded.
    pub cache: Arc<ArcSwapOption<SchemaCache>>,
    /// JWT verifier/signer; None when no key is configured. Swapped on a
    /// config reload, and by the JWKS URL refresher (which holds a clone).
    pub jwt: Arc<ArcSwapOption<Jwt>>,
    /// The `jwt.jwks_url` refresher, when one is configured (set before the
    /// state is shared): the handler asks it to refetch on an unknown `kid`.
    pub jwks: Option<Arc<Jwks>>,
    /// CORS policy; swapped on a config reload. Shared with the CORS
    /// middleware as app data of its own, so CORS needs nothing else.
    pub cors: Arc<ArcSwap<CorsPolicy>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Per-function admission state (declared concurrency and rate limits),
    /// shared by every worker so a limit holds per gateway.
    pub admission: Arc<Admission>,
    /// Sessions whose tokens are refused; filled by the listener.
    pub ended_sessions: Arc<EndedSessions>,
    /// Read replicas (`db.replica_uris`), when configured (set before the
    /// state is shared); each worker takes its view in `routes`.
    pub replicas: Option<Arc<crate::db::replicas::ReplicaSet>>,
    /// `select "schema"."fn"()` for `db.pre_request`.
    pub(crate) pre_request_sql: Option<String>,
    /// Call statements already built (`query::CallMemo`).
    pub call_memo: query::CallMemo,
}

impl AppState {
    /// State with an empty (not yet loaded) schema cache.
    pub fn new(config: Arc<Config>, pools: impl Into<Pools>, jwt: Option<Arc<Jwt>>) -> AppState {
        let pre_request_sql = config.db.pre_request.as_ref().map(query::pre_request_sql);
        let cors = Arc::new(ArcSwap::from_pointee(CorsPolicy {
            allowed_origins: config.server.cors_allowed_origins.clone(),
            allow_credentials: config.jwt.cookie_name.is_some(),
        }));
        let ended_sessions = Arc::new(EndedSessions::with_capacity(
            config.jwt.leeway,
            config.jwt.max_ended_sessions,
        ));
        let trusted_proxies = config.server.trusted_proxies.clone();
        AppState {
            ended_sessions,
            cors,
            config,
            pools: pools.into(),
            cache: Arc::new(ArcSwapOption::empty()),
            jwt: Arc::new(ArcSwapOption::new(jwt)),
            jwks: None,
            replicas: None,
            metrics: Arc::new(Metrics::new()),
            admission: Arc::new(Admission::new(trusted_proxies)),
            pre_request_sql,
            call_memo: query::CallMemo::default(),
        }
    }

    /// The figures `/metrics` reads from the pools and the JWT cache.
    pub fn readings(&self) -> Readings {
        let pool = self.pools.status();
        Readings {
            pool_size: pool.size,
            pool_available: pool.available,
            pool_waiting: pool.waiting,
            jwt_cache: self.jwt.load().as_deref().map(Jwt::cache_stats),
            jwt_cache_size: self.jwt.load().as_deref().and_then(Jwt::cache_size),
            ended_sessions: self.ended_sessions.len(),
        }
    }

    /// What the listener needs to reload this state's cache.
    pub fn cache_target(&self) -> crate::db::listener::CacheTarget {
        crate::db::listener::CacheTarget {
            cache: self.cache.clone(),
            schemas: self.config.db.schemas.clone(),
            claims_type: self.config.jwt.claims_type.clone(),
            metrics: self.metrics.clone(),
            ended_sessions: self.ended_sessions.clone(),
        }
    }

    /// Load the ended sessions once on the service connection (start-up, so
    /// that the first request already refuses them; the listener loads them
    /// again whenever it connects). Logs a failure; the listener retries.
    pub async fn load_ended_sessions(&self) {
        match self.pools.service().get().await {
            Ok(client) => {
                crate::db::sessions::reload(&client, &self.ended_sessions).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ended sessions not loaded yet; the listener will")
            }
        }
    }

    /// Load the schema cache once on the service connection (start-up, tests).
    pub async fn load_schema_cache(&self) -> Result<(), Error> {
        let client = self
            .pools
            .service()
            .get()
            .await
            .map_err(execute::pool_error)?;
        let cache = SchemaCache::load(
            &client,
            &self.config.db.schemas,
            &self.config.jwt.claims_type,
        )
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
        self.metrics.schema_loaded(cache.load_time.as_secs_f64());
        self.cache.store(Some(Arc::new(cache)));
        Ok(())
    }
}

/// The request pool of the worker an `App` runs on.
pub struct WorkerPool(pub Pool);
