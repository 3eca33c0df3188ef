//! Database endpoints and the request pool.
//!
//! Turns the configured mode into connection settings: the embedded cluster's
//! socket (requests as `authenticator`, migrations as `postgres`) or the
//! external `db.uri`/`db.admin_uri`. Builds the deadpool pool whose wait time is
//! `db.pool_timeout` (504 past it). Does not run requests (execute stage) or
//! migrations (migrate).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::embedded::Cluster;

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
            .batch_execute(&format!("create database {}", crate::query::ident(name)))
            .await?;
        tracing::info!(database = name, "created database");
    }
    Ok(())
}
