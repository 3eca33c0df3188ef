//! Start-up and shutdown: the order in which the pieces come to life and go.
//!
//! database (embedded cluster started, or external) → migrations (embedded
//! always; external with `db.migrate_on_start`) → keys → pool → schema cache
//! and its listener → HTTP server. On SIGINT/SIGTERM actix stops accepting and
//! finishes in-flight requests (bounded by `server.shutdown_timeout`), then the
//! pool closes and, last, the embedded cluster stops. Owns no request logic.

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};

use crate::config::{Config, DbMode};
use crate::db::embedded::{Cluster, ClusterSpec, EmbeddedError};
use crate::db::listener::{self, Reload};
use crate::db::migrate::{self, MigrateError};
use crate::db::tls::TlsError;
use crate::db::{self, Endpoints, Target, EMBEDDED_DB};
use crate::http::admin;
use crate::http::cors::CorsPolicy;
use crate::http::{self, AppState};
use crate::jwt::jwks::{Jwks, JwksError};
use crate::jwt::keys::{self, KeyError};
use crate::ops::logging::LogHandle;

/// Socket "port" of the embedded cluster (names the socket file; no TCP).
const EMBEDDED_PORT: u16 = 5432;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The embedded cluster could not start.
    #[error("{0}")]
    Embedded(#[from] EmbeddedError),
    /// The database refused a connection.
    #[error("cannot connect to the database: {}", db::tls::explain(.0))]
    Connect(#[from] tokio_postgres::Error),
    /// A TLS file of a connection URI is missing or bad.
    #[error("{key}: {source}")]
    TlsFiles {
        /// `db.uri`, `db.admin_uri` or `db.listen_uri`.
        key: &'static str,
        /// What is wrong with which file.
        source: TlsError,
    },
    /// The TLS set-up with the database failed: retrying will not help.
    #[error("cannot connect to the database ({key}): {message}")]
    Tls {
        /// `db.uri` or `db.listen_uri`.
        key: &'static str,
        /// The cause, in words ([`db::tls::explain`]).
        message: String,
    },
    /// Migrations failed.
    #[error("{0}")]
    Migrate(#[from] MigrateError),
    /// Keys are missing or bad.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// The JWKS URL gave no usable keys at start.
    #[error("{0}")]
    Jwks(#[from] JwksError),
    /// Migrating an external database needs an owner connection.
    #[error("db.admin_uri is required to migrate an external database (pgrpc migrate, db.migrate_on_start)")]
    NoAdminUri,
    /// The HTTP port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// host:port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A blocking task died.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Start (or reuse) the embedded cluster, create its database, migrate.
/// Stops the cluster again when a later step fails.
/// `base_url` is what the first-start hook tells a newcomer to call.
pub async fn start_embedded(
    data_dir: &std::path::Path,
    base_url: Option<&str>,
) -> Result<(Cluster, Endpoints), StartError> {
    let spec = ClusterSpec {
        data_dir: data_dir.to_path_buf(),
        port: EMBEDDED_PORT,
        fast: false,
        settings: Vec::new(),
    };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&spec))
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
    let prepared = async {
        let admin = db::connect(&db::socket_config(&cluster, "postgres", "postgres")).await?;
        db::ensure_database(&admin, EMBEDDED_DB).await?;
        let owner_cfg = db::socket_config(&cluster, "postgres", EMBEDDED_DB);
        let (mut owner, notices) = db::connect_collecting_notices(&owner_cfg).await?;
        migrate::migrate(&mut owner).await?;
        if cluster.initialized_now() {
            first_start(&owner, &notices, base_url).await?;
        }
        let app = Target::from(db::socket_config(&cluster, db::AUTHENTICATOR, EMBEDDED_DB));
        Ok::<_, StartError>(Endpoints {
            listen: app.clone(),
            app,
            admin: Some(owner_cfg.into()),
        })
    }
    .await;
    match prepared {
        Ok(endpoints) => Ok((cluster, endpoints)),
        Err(e) => {
            stop_cluster(cluster).await;
            Err(e)
        }
    }
}

/// First start of the embedded default: call `pgrpc.on_first_start()` when the
/// SQL defines it (e.g. to create a first invite) and show what it says.
async fn first_start(
    owner: &tokio_postgres::Client,
    notices: &db::Notices,
    base_url: Option<&str>,
) -> Result<(), StartError> {
    let hook = owner
        .query_one(
            "select to_regprocedure('pgrpc.on_first_start()') is not null",
            &[],
        )
        .await?;
    if hook.get::<_, bool>(0) {
        // Only what the hook says is for the operator; migration chatter is not.
        notices.take();
        if let Some(url) = base_url {
            owner
                .execute("select set_config('pgrpc.base_url', $1, false)", &[&url])
                .await?;
        }
        owner.batch_execute("select pgrpc.on_first_start()").await?;
        for line in notices.take() {
            tracing::info!("{line}");
        }
    }
    Ok(())
}

async fn stop_cluster(cluster: Cluster) {
    match tokio::task::spawn_blocking(move || cluster.stop()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "stopping the embedded cluster failed"),
        Err(e) => tracing::error!(error = %e, "stopping the embedded cluster failed"),
    }
}

/// `pgrpc migrate`: apply migrations and `sql/` with the owner connection.
pub async fn migrate_only(config: &Config) -> Result<(), StartError> {
    match &config.db.mode {
        DbMode::Embedded { data_dir } => {
            let (cluster, _) = start_embedded(data_dir, None).await?;
            stop_cluster(cluster).await;
        }
        DbMode::External { admin_uri, .. } => {
            let admin = admin_uri.as_ref().ok_or(StartError::NoAdminUri)?;
            let mut client = db::connect(target("db.admin_uri", admin)?).await?;
            migrate::migrate(&mut client).await?;
        }
    }
    tracing::info!("migrations and sql/ applied");
    Ok(())
}

/// Where the configuration came from, to read it again on a reload.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The file.
    pub path: PathBuf,
    /// Whether the file must exist (`--config` was given).
    pub required: bool,
}

/// Re-read the configuration and swap what can change without a restart: JWT
/// keys, CORS origins, trusted proxies, log level. All are built first and swapped only when
/// all are valid, so a bad edit changes nothing.
fn reload_config(source: &ConfigSource, state: &AppState, log: &LogHandle) {
    let (config, _) = match Config::load(&source.path, source.required, std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "config reload refused; keeping the current configuration");
            return;
        }
    };
    // With a JWKS URL the new settings get the last good keys of the URL.
    let jwt = match &state.jwks {
        Some(jwks) => keys::load_settings(&config, true)
            .and_then(|settings| jwks.rebase(settings).map_err(KeyError::from)),
        None => keys::load(&config, true),
    };
    let jwt = match jwt {
        Ok(jwt) => jwt,
        Err(e) => {
            tracing::error!(error = %e, "config reload refused; keeping the current configuration");
            return;
        }
    };
    let Some(filter) = LogHandle::parse(&config.log_level) else {
        tracing::error!(level = %config.log_level, "config reload refused: log.level is not a valid filter");
        return;
    };
    state.jwt.store(Some(Arc::new(jwt)));
    state.ended_sessions.set_leeway(config.jwt.leeway);
    state.cors.store(Arc::new(CorsPolicy {
        allowed_origins: config.server.cors_allowed_origins.clone(),
        allow_credentials: config.jwt.cookie_name.is_some(),
    }));
    state
        .admission
        .set_trusted_proxies(config.server.trusted_proxies.clone());
    log.set(filter);
    tracing::info!("configuration reloaded (JWT keys, CORS origins, trusted proxies, log level)");
}

/// The request pools as the server builds them: `db.pool` connections to
/// `app` divided among the HTTP workers, and the service connection to
/// `service` (`db.listen_uri`, else the same as `app`). With prepared
/// statements on, each request connection starts with the default request's
/// `search_path` (see [`db::with_search_path`]); around PgBouncer (prepared
/// statements off) no startup `options` are sent: a stock PgBouncer refuses
/// them, and every request sets `search_path` in its transaction anyway.
pub fn pools(
    config: &Config,
    app: impl Into<db::Target>,
    service: impl Into<db::Target>,
) -> db::Pools {
    let mut app = app.into();
    if config.db.prepared_statements {
        let default_path = crate::pipeline::query::search_path(
            &config.db.schemas[0],
            &config.db.extra_search_path,
        );
        app.pg = db::with_search_path(app.pg, &default_path);
    }
    db::Pools::per_worker(
        app,
        service,
        config.db.pool_size,
        config.server.workers,
        config.db.pool_timeout,
    )
}

/// The read replicas' pools (`db.replica_pool` connections each, per worker
/// as for the primary), their connections started like the primary's.
/// Public for the test harness, which builds its apps' replicas this way.
pub fn replica_set(config: &Config) -> Result<db::replicas::ReplicaSet, StartError> {
    let default_path =
        crate::pipeline::query::search_path(&config.db.schemas[0], &config.db.extra_search_path);
    let targets = config
        .db
        .replica_uris
        .iter()
        .map(|uri| {
            let mut t = target("db.replica_uris", uri)?;
            if config.db.prepared_statements {
                t.pg = db::with_search_path(t.pg, &default_path);
            }
            Ok(t)
        })
        .collect::<Result<Vec<_>, StartError>>()?;
    Ok(db::replicas::ReplicaSet::new(
        targets,
        config.db.replica_pool,
        config.server.workers,
        config.db.pool_timeout,
    ))
}

/// Run the gateway until SIGINT/SIGTERM.
pub async fn serve(config: Config, source: ConfigSource, log: LogHandle) -> Result<(), StartError> {
    let config = Arc::new(config);
    let (cluster, endpoints) = match &config.db.mode {
        DbMode::Embedded { data_dir } => {
            let base_url = format!("http://{}:{}", config.server.host, config.server.port);
            let (cluster, endpoints) = start_embedded(data_dir, Some(&base_url)).await?;
            (Some(cluster), endpoints)
        }
        DbMode::External {
            uri,
            admin_uri,
            listen_uri,
        } => {
            let admin = admin_uri
                .as_ref()
                .map(|a| target("db.admin_uri", a))
                .transpose()?;
            if config.db.migrate_on_start {
                let admin = admin.as_ref().ok_or(StartError::NoAdminUri)?;
                let mut client = db::connect(admin).await?;
                migrate::migrate(&mut client).await?;
            }
            let app = target("db.uri", uri)?;
            let listen = match listen_uri {
                Some(l) => target("db.listen_uri", l)?,
                None => app.clone(),
            };
            refuse_failed_tls("db.uri", &app).await?;
            if listen_uri.is_some() {
                refuse_failed_tls("db.listen_uri", &listen).await?;
            }
            (None, Endpoints { app, admin, listen })
        }
    };
    let result = run_http(&config, &endpoints, cluster.as_ref(), source, log).await;
    if let Some(cluster) = cluster {
        stop_cluster(cluster).await;
    }
    result
}

/// The connector for a configured URI (its certificate files read now).
fn target(key: &'static str, uri: &crate::config::DbUri) -> Result<Target, StartError> {
    Target::from_uri(uri).map_err(|source| StartError::TlsFiles { key, source })
}

/// Connect once at start: a database that is down is waited for (503 until
/// it is up), but a failed TLS set-up (no TLS on the server, an untrusted
/// certificate, a wrong host name) will not mend itself, so pgrpc refuses to
/// start and says why.
async fn refuse_failed_tls(key: &'static str, target: &Target) -> Result<(), StartError> {
    match db::connect(target).await {
        Ok(_) => Ok(()),
        Err(e) if db::tls::is_tls_failure(&e) => Err(StartError::Tls {
            key,
            message: db::tls::explain(&e),
        }),
        Err(e) => {
            tracing::warn!(error = %db::tls::explain(&e), "the database does not answer yet; serving 503 until it does");
            Ok(())
        }
    }
}

async fn run_http(
    config: &Arc<Config>,
    endpoints: &Endpoints,
    cluster: Option<&Cluster>,
    source: ConfigSource,
    log: LogHandle,
) -> Result<(), StartError> {
    // With a JWKS URL, the verifier comes from its first fetch (below).
    let jwt = match config.jwt.jwks_url {
        None => Some(Arc::new(keys::load(config, true)?)),
        Some(_) => None,
    };
    let pools = pools(config, endpoints.app.clone(), &endpoints.listen);
    let mut state = AppState::new(config.clone(), pools.clone(), jwt);
    if let Some(url) = &config.jwt.jwks_url {
        let jwks = Jwks::start(
            url.clone(),
            config.jwt.jwks_refresh,
            keys::load_settings(config, true)?,
            state.jwt.clone(),
            state.metrics.clone(),
        )
        .await?;
        state.jwks = Some(jwks);
    }
    if !config.db.replica_uris.is_empty() {
        let replicas = Arc::new(replica_set(config)?);
        replicas.spawn_checks(
            config.db.replica_check_interval,
            config.db.replica_max_lag,
            state.metrics.clone(),
        );
        state.replicas = Some(replicas);
    }
    let state = web::Data::new(state);
    if let Err(e) = state.load_schema_cache().await {
        // The listener keeps trying; meanwhile requests get 503 PGRST002.
        tracing::warn!(error = %e, "schema cache not loaded yet; retrying in the background");
    }
    state.load_ended_sessions().await;
    let hook_state = state.clone();
    let hook: listener::ConfigHook = Arc::new(move || reload_config(&source, &hook_state, &log));
    let reloads = listener::spawn_with(&endpoints.listen, state.cache_target(), Some(hook));
    spawn_signal_reloads(reloads);
    crate::ops::memory::spawn_trim_when_quiet(state.metrics.clone());

    // Client connections, pooled connections, listeners and a margin.
    let descriptors = config.server.max_connections
        + config.db.pool_size
        + config.db.replica_pool * config.db.replica_uris.len()
        + 64;
    crate::ops::limits::raise_open_files(u64::try_from(descriptors).unwrap_or(u64::MAX));
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let data = state.clone();
    let server = HttpServer::new(move || http::app(data.clone()))
        // Each connection's socket is watched for a hang-up (http::disconnect).
        .on_connect(crate::http::disconnect::on_connect)
        .workers(config.server.workers)
        .shutdown_timeout(config.server.shutdown_timeout.as_secs())
        // Deadlines and caps for client connections (README, Operations). At the
        // cap a worker stops accepting: new connections wait in the kernel's
        // listen queue (the backlog, set before bind) rather than become tasks.
        .keep_alive(keep_alive(&config.server))
        .client_request_timeout(config.server.head_timeout)
        .client_disconnect_timeout(config.server.close_timeout)
        .max_connections(connections_per_worker(&config.server))
        .backlog(config.server.backlog)
        .bind(&addr)
        .map_err(|source| StartError::Bind {
            addr: addr.clone(),
            source,
        })?;
    for bound in server.addrs() {
        tracing::info!(url = %format!("http://{bound}"), "pgrpc is listening");
    }
    if let Some(cluster) = cluster {
        tracing::info!(psql = %cluster.psql_command(EMBEDDED_DB), "embedded database; open it with");
    }
    let admin = match config.admin_port {
        Some(port) => {
            let admin_addr = format!("{}:{port}", config.admin_host);
            let data = state.clone();
            let admin = HttpServer::new(move || App::new().configure(admin::routes(data.clone())))
                .workers(1)
                .disable_signals()
                .bind(&admin_addr)
                .map_err(|source| StartError::Bind {
                    addr: admin_addr.clone(),
                    source,
                })?
                .run();
            tracing::info!(url = %format!("http://{admin_addr}"), "admin server (live, ready, metrics, schema_cache)");
            let handle = admin.handle();
            tokio::spawn(admin);
            Some(handle)
        }
        None => None,
    };
    let outcome = server.run().await;
    if let Some(admin) = admin {
        admin.stop(true).await;
    }
    tracing::info!("HTTP server stopped; closing the pools");
    pools.close();
    if let Some(replicas) = &state.replicas {
        replicas.close();
    }
    outcome.map_err(|source| StartError::Bind { addr, source })
}

/// actix's keep-alive setting for `server.keep_alive` (0 = none).
fn keep_alive(s: &crate::config::ServerConfig) -> actix_web::http::KeepAlive {
    if s.keep_alive.is_zero() {
        actix_web::http::KeepAlive::Disabled
    } else {
        actix_web::http::KeepAlive::Timeout(s.keep_alive)
    }
}

/// actix counts `max_connections` per worker: the gateway's cap divided among
/// them, rounded down so the total stays within it, at least one each.
fn connections_per_worker(s: &crate::config::ServerConfig) -> usize {
    (s.max_connections / s.workers.max(1)).max(1)
}

/// SIGUSR1 reloads the schema cache, SIGUSR2 the configuration (PostgREST's
/// conventions); both run on the listener task.
fn spawn_signal_reloads(reloads: listener::Listener) {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, what, name) in [
        (SignalKind::user_defined1(), Reload::Schema, "SIGUSR1"),
        (SignalKind::user_defined2(), Reload::Config, "SIGUSR2"),
    ] {
        match signal(kind) {
            Ok(mut sig) => {
                let reloads = reloads.clone();
                tokio::spawn(async move {
                    while sig.recv().await.is_some() {
                        tracing::info!(signal = name, "reload requested");
                        reloads.request(what);
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, signal = name, "cannot listen for the signal"),
        }
    }
}
