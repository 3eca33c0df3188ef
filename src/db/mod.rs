//! Database endpoints and the request pools.
//!
//! Turns the configured mode into connection settings: the embedded cluster's
//! socket (requests as `authenticator`, migrations as `postgres`) or the
//! external `db.uri`/`db.admin_uri`. Builds the deadpool pools (one per HTTP
//! worker) whose wait time is `db.pool_timeout` (504 past it). Does not run
//! requests (execute stage) or migrations (migrate).

pub mod embedded;
pub mod listener;
pub mod migrate;
pub mod quote;
pub mod replicas;
pub mod schema_cache;
pub mod sessions;
pub mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Connection, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DbUri;

use embedded::Cluster;

/// Name of the embedded cluster's database.
pub const EMBEDDED_DB: &str = "pgrpc";
/// The login role requests use.
pub const AUTHENTICATOR: &str = "authenticator";

/// One place to connect to: the driver's settings and, unless TLS is off,
/// the TLS connector built from the URI's `ssl*` options.
#[derive(Clone)]
pub struct Target {
    /// Hosts, user, database, options (`sslmode` reduced to what the driver
    /// needs: whether to ask for TLS and whether to insist).
    pub pg: tokio_postgres::Config,
    /// None: plaintext (`sslmode=disable`, or a Unix socket of our own).
    pub tls: Option<MakeRustlsConnect>,
}

impl Target {
    /// Build the TLS connector for a configured URI (reads its certificate
    /// files; refused when one is missing or unreadable).
    pub fn from_uri(uri: &DbUri) -> Result<Target, tls::TlsError> {
        let mut pg = uri.pg.clone();
        pg.ssl_mode(tls::driver_mode(uri.tls.mode));
        Ok(Target {
            pg,
            tls: tls::connector(&uri.tls)?,
        })
    }
}

/// Plaintext, as the settings say (the embedded cluster, tests).
impl From<tokio_postgres::Config> for Target {
    fn from(pg: tokio_postgres::Config) -> Target {
        Target { pg, tls: None }
    }
}

impl From<&tokio_postgres::Config> for Target {
    fn from(pg: &tokio_postgres::Config) -> Target {
        Target::from(pg.clone())
    }
}

impl From<&Target> for Target {
    fn from(t: &Target) -> Target {
        t.clone()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres's Debug redacts the password.
        f.debug_struct("Target")
            .field("pg", &self.pg)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Where to connect, for requests and for migrations.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Request connections (as `authenticator`).
    pub app: Target,
    /// Owner connections for migrations, when known.
    pub admin: Option<Target>,
    /// LISTEN and the schema cache: `db.listen_uri`, else `app`.
    pub listen: Target,
}

/// Connection settings for a database of the embedded cluster as `user`.
pub fn socket_config(cluster: &Cluster, user: &str, dbname: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(cluster.socket_dir())
        .port(cluster.port())
        .user(user)
        .dbname(dbname)
        .application_name("pgrpc")
        .connect_timeout(Duration::from_secs(5))
        // PostgreSQL has no TLS on Unix sockets: skip asking.
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    cfg
}

/// Start connections with `search_path` set to the default request's value:
/// PostgreSQL re-plans a prepared statement whenever the search path differs
/// from the one it was prepared under, and each request sets this very value.
pub fn with_search_path(
    mut cfg: tokio_postgres::Config,
    search_path: &str,
) -> tokio_postgres::Config {
    // Startup options are split on spaces; a backslash escapes one.
    let option = format!(
        "-c search_path={}",
        search_path.replace('\\', "\\\\").replace(' ', "\\ ")
    );
    let options = match cfg.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {option}"),
        _ => option,
    };
    cfg.options(options);
    cfg
}

/// The request pool.
pub fn pool(target: impl Into<Target>, size: usize, wait: Duration) -> Pool {
    let Target { pg: mut cfg, tls } = target.into();
    if cfg.get_application_name().is_none() {
        cfg.application_name("pgrpc");
    }
    let manager_config = || ManagerConfig {
        // A broken connection is closed by tokio-postgres and dropped on
        // recycle; checking each one with a query would cost a round trip.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        Some(tls) => Manager::from_config(cfg, tls, manager_config()),
        None => Manager::from_config(cfg, NoTls, manager_config()),
    };
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .expect("a pool with a runtime and a manager always builds")
}

/// The request connections, split into one pool per HTTP worker, plus a
/// one-connection pool for everything that is not a request.
///
/// tokio-postgres drives a connection on the runtime of the thread that
/// opened it, and deadpool opens connections in whichever task asked first.
/// With one shared pool a connection opened by worker A serves worker B's
/// requests from worker A for the rest of its life: every request then hops
/// threads twice (measured: ~10 µs of the gateway's ~50 µs per request, see
/// `bench/results/profile.md`). A pool per worker, used only on that worker,
/// keeps each connection's I/O on the thread that serves the request, and
/// lets tokio-postgres send a whole pipeline in one write.
///
/// `db.pool` stays the number of request connections in all: it is divided
/// among the workers (never more pools than connections). The service pool
/// (start-up schema cache load, `/ready`) holds one more connection, opened
/// only when first needed, so the admin server never takes a request's.
#[derive(Clone)]
pub struct Pools {
    request: Arc<[Pool]>,
    service: Pool,
    next: Arc<AtomicUsize>,
}

impl Pools {
    /// `total` request connections to `app` over `workers` pools; the
    /// service connection goes to `service` (`db.listen_uri`: around
    /// PgBouncer the schema cache's catalog queries want a direct server).
    pub fn per_worker(
        app: impl Into<Target>,
        service: impl Into<Target>,
        total: usize,
        workers: usize,
        wait: Duration,
    ) -> Pools {
        let app = app.into();
        let shards = workers.clamp(1, total.max(1));
        let request: Vec<Pool> = (0..shards)
            .map(|i| {
                // The first `total % shards` pools take one connection more.
                let size = total / shards + usize::from(i < total % shards);
                pool(&app, size.max(1), wait)
            })
            .collect();
        Pools {
            request: request.into(),
            service: pool(service, 1, wait),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same request pools with another service pool (tests that put
    /// PgBouncer in front of the requests only).
    pub fn with_service(self, service: Pool) -> Pools {
        Pools { service, ..self }
    }

    /// The pool of the worker that calls this (workers take turns).
    pub fn assign(&self) -> Pool {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.request.len();
        self.request[i].clone()
    }

    /// Every request pool.
    pub fn request_pools(&self) -> &[Pool] {
        &self.request
    }

    /// The pool for work outside requests.
    pub fn service(&self) -> &Pool {
        &self.service
    }

    /// Request connections open, idle, and requests waiting, over all pools.
    pub fn status(&self) -> PoolStatus {
        self.request
            .iter()
            .map(Pool::status)
            .fold(PoolStatus::default(), |acc, s| PoolStatus {
                size: acc.size + s.size,
                available: acc.available + s.available,
                waiting: acc.waiting + s.waiting,
            })
    }

    /// Close every pool: idle connections now, busy ones when returned.
    pub fn close(&self) {
        for pool in self.request.iter() {
            pool.close();
        }
        self.service.close();
    }
}

/// One pool serves both requests and service work (tests, small set-ups).
impl From<Pool> for Pools {
    fn from(pool: Pool) -> Pools {
        Pools {
            request: Arc::from([pool.clone()]),
            service: pool,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }
}

/// Connection counts summed over the request pools.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Idle connections.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// Connect once, driving the connection on its own task.
pub async fn connect(
    target: impl Into<Target>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    connect_forwarding(target, |_| {}).await
}

/// Connect once; the connection's task hands every notice and notification
/// to `on_message`, in the order the server sent them.
pub async fn connect_forwarding(
    target: impl Into<Target>,
    on_message: impl FnMut(AsyncMessage) + Send + 'static,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let Target { pg, tls } = target.into();
    // Two connection types (TLS or not), one driving loop.
    match tls {
        Some(tls) => {
            let (client, connection) = pg.connect(tls).await?;
            tokio::spawn(drive(connection, on_message));
            Ok(client)
        }
        None => {
            let (client, connection) = pg.connect(NoTls).await?;
            tokio::spawn(drive(connection, on_message));
            Ok(client)
        }
    }
}

async fn drive<S, T>(mut connection: Connection<S, T>, mut on_message: impl FnMut(AsyncMessage))
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(message)) => on_message(message),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "database connection closed");
                break;
            }
            None => break,
        }
    }
}

/// Notices (`RAISE NOTICE`) a connection received, oldest first.
#[derive(Clone, Default)]
pub struct Notices(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Notices {
    /// Remove and return what arrived so far.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// Connect once and keep the notices the server sends, so they can be shown
/// to the operator rather than only logged by the driver. The connection task
/// handles messages in order, so a notice raised by a statement is stored
/// before that statement's result arrives.
pub async fn connect_collecting_notices(
    target: impl Into<Target>,
) -> Result<(tokio_postgres::Client, Notices), tokio_postgres::Error> {
    let notices = Notices::default();
    let sink = notices.clone();
    let client = connect_forwarding(target, move |message| {
        if let AsyncMessage::Notice(n) = message {
            if let Ok(mut v) = sink.0.lock() {
                v.push(n.message().to_string());
            }
        }
    })
    .await?;
    Ok((client, notices))
}

/// Create database `name` in the embedded cluster if it is missing.
pub async fn ensure_database(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = admin
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        // CREATE DATABASE takes no parameters; the name is ours, and quoted.
        admin
            .batch_execute(&format!("create database {}", quote::ident(name)))
            .await?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(total: usize, workers: usize) -> Vec<usize> {
        let pools = Pools::per_worker(
            tokio_postgres::Config::new(),
            tokio_postgres::Config::new(),
            total,
            workers,
            Duration::from_secs(1),
        );
        pools
            .request_pools()
            .iter()
            .map(|p| p.status().max_size)
            .collect()
    }

    #[test]
    fn db_pool_is_divided_among_the_workers() {
        assert_eq!(sizes(10, 2), vec![5, 5]);
        assert_eq!(sizes(11, 2), vec![6, 5]);
        assert_eq!(sizes(10, 3), vec![4, 3, 3]);
        // Never more pools than connections, and never an empty pool.
        assert_eq!(sizes(1, 4), vec![1]);
        assert_eq!(sizes(3, 8), vec![1, 1, 1]);
    }

    #[test]
    fn workers_take_turns_at_the_pools() {
        let cfg = tokio_postgres::Config::new();
        let pools = Pools::per_worker(&cfg, &cfg, 4, 2, Duration::from_secs(1));
        let is = |a: &Pool, b: &Pool| std::ptr::eq(a.manager(), b.manager());
        let [p0, p1] = pools.request_pools() else {
            panic!("two pools for two workers")
        };
        assert!(!is(p0, p1));
        assert!(is(&pools.assign(), p0));
        assert!(is(&pools.assign(), p1));
        assert!(is(&pools.assign(), p0));
        assert!(!is(pools.service(), p0) && !is(pools.service(), p1));
        assert_eq!(pools.status().size, 0, "connections open only on demand");
    }
}
