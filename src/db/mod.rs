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
pub mod schema_cache;
pub mod sessions;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use embedded::Cluster;

/// Name of the embedded cluster's database.
pub const EMBEDDED_DB: &str = "pgrpc";
/// The login role requests use.
pub const AUTHENTICATOR: &str = "authenticator";

/// Where to connect, for requests and for migrations.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Request connections (as `authenticator`).
    pub app: tokio_postgres::Config,
    /// Owner connections for migrations, when known.
    pub admin: Option<tokio_postgres::Config>,
}

/// Connection settings for a database of the embedded cluster as `user`.
pub fn socket_config(cluster: &Cluster, user: &str, dbname: &str) -> tokio_postgres::Config {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host_path(cluster.socket_dir())
        .port(cluster.port())
        .user(user)
        .dbname(dbname)
        .application_name("pgrpc")
        .connect_timeout(Duration::from_secs(5));
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
pub fn pool(cfg: tokio_postgres::Config, size: usize, wait: Duration) -> Pool {
    let mut cfg = cfg;
    if cfg.get_application_name().is_none() {
        cfg.application_name("pgrpc");
    }
    let manager = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            // A broken connection is closed by tokio-postgres and dropped on
            // recycle; checking each one with a query would cost a round trip.
            recycling_method: RecyclingMethod::Fast,
        },
    );
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
    /// `total` request connections over `workers` pools.
    pub fn per_worker(
        cfg: tokio_postgres::Config,
        total: usize,
        workers: usize,
        wait: Duration,
    ) -> Pools {
        let shards = workers.clamp(1, total.max(1));
        let request: Vec<Pool> = (0..shards)
            .map(|i| {
                // The first `total % shards` pools take one connection more.
                let size = total / shards + usize::from(i < total % shards);
                pool(cfg.clone(), size.max(1), wait)
            })
            .collect();
        Pools {
            request: request.into(),
            service: pool(cfg, 1, wait),
            next: Arc::new(AtomicUsize::new(0)),
        }
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
    cfg: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
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
    cfg: &tokio_postgres::Config,
) -> Result<(tokio_postgres::Client, Notices), tokio_postgres::Error> {
    let (client, mut connection) = cfg.connect(NoTls).await?;
    let notices = Notices::default();
    let sink = notices.clone();
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notice(n))) => {
                    if let Ok(mut v) = sink.0.lock() {
                        v.push(n.message().to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "database connection closed");
                    break;
                }
                None => break,
            }
        }
    });
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
        let pools = Pools::per_worker(tokio_postgres::Config::new(), 4, 2, Duration::from_secs(1));
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
