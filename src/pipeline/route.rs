//! Route stage: which node runs the transaction, and the one retry of a read
//! whose replica went away.
//!
//! Between plan and execute. A read-only call (the plan's `read_only`, not
//! pinned with `pgrpc.read_from = 'primary'`) goes to a replica that
//! `db::replicas` chooses; everything else, and every read when no replica
//! is in the rotation, goes to the primary. A read that presents a
//! `Pgrpc-Lsn` runs only on a replica that has replayed that position: known
//! from the health check, or asked on the replica before the transaction
//! (replay only moves forward, so a snapshot taken after the answer includes
//! the client's write), else on the primary. A replica that does not know
//! the function the schema cache (loaded from the primary) planned for has
//! not replayed its DDL yet: the read runs on the primary instead of failing
//! with 404 while the replica catches up. Does not choose among replicas
//! (`db::replicas`) and does not build or run the transaction (`execute`).

use deadpool_postgres::Pool;
use tokio_postgres::types::Type;
use tokio_util::sync::CancellationToken;

use crate::db::replicas::{Choice, Lsn, WorkerReplicas};
use crate::error::{DbError, Error, RequestError};
use crate::pipeline::execute::{self, Outcome, TxRequest};

/// The log line's `node` for the primary.
pub const PRIMARY: &str = "primary";

/// Where a read may go.
#[derive(Debug, Clone, Copy)]
pub struct ReadRoute {
    /// The call may run on a replica (read-only and not pinned).
    pub to_replica: bool,
    /// The client's `Pgrpc-Lsn`: the position the answer must include.
    pub min_lsn: Option<Lsn>,
}

/// `Pgrpc-Lsn` as sent: None when absent; an invalid value is PGRST161.
pub fn parse_lsn(header: Option<&[u8]>) -> Result<Option<Lsn>, RequestError> {
    match header {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or(RequestError::InvalidLsn),
    }
}

/// Run `tx` where `route` allows; the answer and the node that gave it
/// (`primary` or the replica's `host:port`).
pub async fn run(
    primary: &Pool,
    replicas: Option<&WorkerReplicas>,
    route: ReadRoute,
    tx: &TxRequest,
    cancel: &CancellationToken,
) -> (Result<Outcome, Error>, String) {
    if let Some(replicas) = replicas.filter(|_| route.to_replica && tx.read_only) {
        if let Some(done) = on_replicas(replicas, route.min_lsn, tx, cancel).await {
            return done;
        }
    }
    (execute::run(primary, tx, cancel).await, PRIMARY.to_string())
}

/// Try a replica, and once more another node when its connection fails.
/// None: no replica could serve it; the primary should.
async fn on_replicas(
    replicas: &WorkerReplicas,
    min_lsn: Option<Lsn>,
    tx: &TxRequest,
    cancel: &CancellationToken,
) -> Option<(Result<Outcome, Error>, String)> {
    let first = replicas.choose(min_lsn, None)?;
    match attempt(&first, min_lsn, tx, cancel).await {
        Attempt::Done(result) => Some((result, first.replica().name().to_string())),
        Attempt::Behind => None,
        Attempt::NodeFailed(e) => {
            // A READ ONLY transaction changed nothing: safe to repeat, once,
            // on another replica when one is up, else on the primary.
            tracing::warn!(replica = first.replica().name(), error = %e, "replica connection failed; retrying the read once on another node");
            if !recovery_conflict(&e) {
                first.replica().mark_down();
            }
            let second = replicas.choose(min_lsn, Some(first.replica()))?;
            match attempt(&second, min_lsn, tx, cancel).await {
                Attempt::Done(result) => Some((result, second.replica().name().to_string())),
                Attempt::NodeFailed(e) => {
                    if !recovery_conflict(&e) {
                        second.replica().mark_down();
                    }
                    Some((Err(e), second.replica().name().to_string()))
                }
                Attempt::Behind => None,
            }
        }
    }
}

enum Attempt {
    Done(Result<Outcome, Error>),
    /// Has not replayed the client's position.
    Behind,
    /// The node, not the call, failed.
    NodeFailed(Error),
}

async fn attempt(
    choice: &Choice,
    min_lsn: Option<Lsn>,
    tx: &TxRequest,
    cancel: &CancellationToken,
) -> Attempt {
    if let (Some(lsn), false) = (min_lsn, choice.fresh) {
        match reached(&choice.pool, lsn).await {
            Ok(true) => {}
            Ok(false) => return Attempt::Behind,
            Err(e) if node_failure(&e) => return Attempt::NodeFailed(e),
            Err(e) => return Attempt::Done(Err(e)),
        }
    }
    match execute::run(&choice.pool, tx, cancel).await {
        Err(e) if node_failure(&e) => Attempt::NodeFailed(e),
        Err(e) if behind_the_schema(&e) => {
            tracing::info!(replica = choice.replica().name(), "the replica lacks the function (it has not replayed its DDL yet); reading on the primary");
            Attempt::Behind
        }
        result => Attempt::Done(result),
    }
}

/// Whether the replica has replayed `lsn`, asked on one of its connections.
async fn reached(pool: &Pool, lsn: Lsn) -> Result<bool, Error> {
    let client = pool.get().await.map_err(execute::pool_error)?;
    let text = lsn.to_string();
    let rows = client
        .query_typed(
            "select coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)",
            &[(&text, Type::TEXT)],
        )
        .await
        .map_err(|e| Error::from_pg(&e, false))?;
    Ok(rows
        .first()
        .and_then(|r| r.try_get(0).ok())
        .unwrap_or(false))
}

/// A failure of the node rather than of the call: the connection could not
/// be made or broke (PGRST001), the server is shutting down or starting
/// (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now),
/// or a standby cancelled the query for a conflict with recovery (40001 on
/// a READ ONLY transaction, PostgreSQL docs 27.4.2 "Handling Query
/// Conflicts"). A function's own SQL error is not retried.
pub fn node_failure(e: &Error) -> bool {
    match e {
        Error::Db(DbError::Connection(_)) => true,
        Error::Db(DbError::Server { code, .. }) => {
            matches!(code.as_str(), "57P01" | "57P02" | "57P03" | "40001") || code.starts_with("08")
        }
        _ => false,
    }
}

/// 42883 undefined_function from a replica: the gateway calls only what its
/// schema cache (loaded from the primary) has, so the replica has not
/// replayed that function's `CREATE` (or `ALTER`) yet — a function just
/// deployed would otherwise answer 404 for as long as the replica lags. A
/// function whose own body calls a missing function gets the same error from
/// the primary (a READ ONLY transaction is safe to repeat).
fn behind_the_schema(e: &Error) -> bool {
    matches!(e, Error::Db(DbError::Server { code, .. }) if code == "42883")
}

/// A standby cancelled the query for a conflict with recovery: worth a
/// retry elsewhere, but the replica itself is fine.
fn recovery_conflict(e: &Error) -> bool {
    matches!(e, Error::Db(DbError::Server { code, .. }) if code == "40001")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_headers_parse_or_are_refused() {
        assert_eq!(parse_lsn(None).ok(), Some(None));
        assert_eq!(
            parse_lsn(Some(b"0/16B3748")).ok(),
            Some(Some(Lsn(0x16B_3748)))
        );
        for bad in [&b"nope"[..], b"", b"1/2/3", b"\xff/1"] {
            let e = Error::from(parse_lsn(Some(bad)).expect_err("refused"));
            assert_eq!(e.code(), "PGRST161");
            assert_eq!(e.status().as_u16(), 400);
        }
    }

    #[test]
    fn only_node_failures_are_retried() {
        let server = |code: &str| {
            Error::Db(DbError::Server {
                code: code.into(),
                message: String::new(),
                detail: None,
                hint: None,
                authenticated: false,
            })
        };
        assert!(node_failure(&Error::Db(DbError::Connection(
            "closed".into()
        ))));
        assert!(node_failure(&server("57P01")));
        assert!(node_failure(&server("08006")));
        assert!(!node_failure(&server("P0001")), "the function's own error");
        assert!(!node_failure(&server("57014")), "a statement timeout");
        assert!(!node_failure(&Error::Db(DbError::PoolTimeout)));
        assert!(!node_failure(&server("42883")), "not the node's failure…");
        assert!(
            behind_the_schema(&server("42883")),
            "…but the primary answers"
        );
        assert!(!behind_the_schema(&server("42P01")));
        assert!(!behind_the_schema(&server("P0001")));
    }
}
