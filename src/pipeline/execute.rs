//! Execute stage: one transaction on one pooled connection, in one round trip.
//!
//! The only stage that touches the pool. `BEGIN`, the settings statement, the
//! role's own settings when it has any, the optional pre-request call, the
//! call and `COMMIT` are sent together as a
//! pipeline: tokio-postgres sends each request when its future is first polled,
//! and `query_typed` sends Parse/Bind/Execute/Sync at once with an unnamed
//! statement, so the call is parsed only after the role switch ran (a statement
//! naming a function in `api` cannot even be parsed by `authenticator`). When a
//! statement fails, the following ones fail with 25P02 and `COMMIT` answers
//! `ROLLBACK`, so the pipeline is still all-or-nothing; the first error wins.
//! Singular responses cannot commit blindly: they check the row count first.
//! The call binds the payload as `$1` (text) and the query string's values
//! after it in text form with the type left to the server (`Untyped`).
//!
//! Cancellation (a client that hung up, `crate::http::disconnect`): the wait
//! for a pooled connection ends at once; a transaction not yet sent is not
//! sent; while the call has not returned, a PostgreSQL cancel request goes out
//! on a connection of its own, the pipeline runs to its end (the statement
//! fails with 57014, so `COMMIT` answers `ROLLBACK`) and only then is the
//! connection returned — never with a cancel still in flight that could hit
//! the next request on it. Once the call has returned, only `COMMIT` is left:
//! it is let finish, and what it says is the outcome.
//!
//! Unknown outcomes: when the connection is lost after `COMMIT` was sent and
//! before its answer, and no earlier statement was refused by the server, the
//! transaction may have committed; that is `DbError::OutcomeUnknown` (503
//! `PGRST050`), never a plain error ([`commit_failure`]).
//!
//! Citus: a call that may commit waits for the call's answer before `COMMIT`
//! (one round trip more), because the sessions a delegated function ended on
//! a worker are relayed from here, before `COMMIT` and only when there are
//! any (`pipeline::sessions_relay`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web::BytesMut;
use deadpool_postgres::{Pool, PoolError};
use futures_util::future::{Either, FutureExt, OptionFuture};
use tokio_postgres::error::Severity;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use crate::db::schema_cache::RoleSettings;
use crate::error::{DbError, Error, RequestError};
use crate::pipeline::query::{CallQuery, ROLE_SETTINGS_SQL, SETUP_SQL};

/// Everything the transaction needs, owned so it can run on its own task.
#[derive(Debug, Clone)]
pub struct TxRequest {
    /// Role to switch to.
    pub role: String,
    /// Whether the role came from a token (42501 → 403 rather than 401).
    pub authenticated: bool,
    /// `request.jwt.claims`.
    pub claims_json: String,
    /// `request.method`.
    pub method: String,
    /// `request.path`.
    pub path: String,
    /// `request.headers`.
    pub headers_json: String,
    /// `request.cookies`.
    pub cookies_json: String,
    /// `search_path`.
    pub search_path: String,
    /// `request.client_ip`: the client address (`pipeline::admit::client_addr`),
    /// empty when unknown.
    pub client_ip: String,
    /// The role's own settings (`ALTER ROLE … SET`), in order; usually none.
    pub role_settings: Option<RoleSettings>,
    /// Pre-request statement.
    pub pre_request: Option<String>,
    /// The call.
    pub query: CallQuery,
    /// `$1` of the call.
    pub payload: String,
    /// READ ONLY transaction.
    pub read_only: bool,
    /// Exactly one row or roll back with 406.
    pub singular: bool,
    /// Named, cached prepared statements (`db.prepared_statements`); false
    /// sends every statement unnamed, which PgBouncer before 1.21 in
    /// transaction mode can carry (a named one may be prepared on one server
    /// connection and executed on another).
    pub prepared: bool,
    /// Read-your-writes over replicas: after a committed write, ask for the
    /// WAL position (`Outcome::lsn`). Only when replicas are configured.
    pub commit_lsn: bool,
}

/// What the call statement returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// JSON text of the result (None for void).
    pub body: Option<String>,
    /// Rows the function returned.
    pub rows: i64,
    /// `response.headers` as set by the function.
    pub headers: Option<String>,
    /// `response.status` as set by the function.
    pub status: Option<String>,
    /// `response.error`: the error body of a failure the function commits.
    pub error: Option<String>,
    /// Rows before `limit`/`offset`, when a count was asked for.
    pub total: Option<i64>,
    /// `pg_current_wal_insert_lsn()` after COMMIT, when `commit_lsn` asked.
    pub lsn: Option<String>,
    /// `pgrpc.sessions_ended` where the function ran (Citus only), as it
    /// set it; the entries were relayed when the transaction committed.
    pub sessions_ended: Option<String>,
}

/// A parameter sent in text format with the type left to the server
/// (`unknown`): PostgreSQL infers it from the expression the placeholder is
/// in and parses the text with that type's input function, as for a literal.
#[derive(Debug)]
struct Untyped<'a>(&'a str);

impl ToSql for Untyped<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Prepared statements kept per connection before the cache is emptied.
const MAX_PREPARED: usize = 256;

/// Lower-case hex of `text`'s bytes (safe inside an SQL comment).
fn hex(text: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() * 2);
    for b in text.bytes() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Map a pool failure: waiting too long is 504, not reaching the database 503.
pub fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => DbError::PoolTimeout.into(),
        PoolError::Timeout(_) => {
            DbError::Connection("timed out connecting to the database".into()).into()
        }
        PoolError::Backend(e) => DbError::Connection(e.to_string()).into(),
        other => Error::Internal(format!("connection pool: {other}")),
    }
}

/// Run one of the gateway's own catalog statements (the OpenAPI document's
/// privileges query) on a request connection, outside any transaction: the
/// statement switches no role, it only asks what a role may do.
pub async fn catalog(
    pool: &Pool,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    authenticated: bool,
) -> Result<Vec<tokio_postgres::Row>, Error> {
    let client = pool.get().await.map_err(pool_error)?;
    client
        .query_typed(sql, params)
        .await
        .map_err(|e| catalog_error(&e, authenticated))
}

/// Losing the database is answered as for a call (503 and retry); anything
/// else about our own catalog query is a bug, answered generically.
fn catalog_error(e: &tokio_postgres::Error, authenticated: bool) -> Error {
    match e.as_db_error().map(|db| db.code().code()) {
        None => Error::from_pg(e, authenticated),
        Some(code) if ["08", "53", "57"].iter().any(|c| code.starts_with(c)) => {
            Error::from_pg(e, authenticated)
        }
        Some(_) => Error::Internal(format!("catalog query: {e}")),
    }
}

/// How long a cancelled pipeline may take to end before the cancel request
/// is sent again: PostgreSQL ignores one that arrives between two statements.
const CANCEL_RETRY: Duration = Duration::from_millis(200);

/// What a `COMMIT` that did not succeed means: a refusal by the server (an
/// ERROR, e.g. a deferred constraint) is a definite failure and rolled back;
/// anything else — the connection closed, a FATAL such as 57P01 that can
/// follow the `COMMIT`'s own answer — leaves the outcome unknown.
pub fn commit_failure(e: &tokio_postgres::Error, authenticated: bool) -> Error {
    match e.as_db_error() {
        Some(db) if db.parsed_severity() == Some(Severity::Error) => {
            Error::from_pg(e, authenticated)
        }
        _ => DbError::OutcomeUnknown(e.to_string()).into(),
    }
}

/// Whether `e` means the connection is finished: no answer from the server,
/// or a FATAL one (the backend exits after it).
fn connection_gone(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none_or(|db| {
        matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        )
    })
}

/// Drive `pipeline` to its end. When `cancel` fires while the call has not
/// returned, send PostgreSQL a cancel request (again every [`CANCEL_RETRY`]
/// while it still runs), and set `cancel_sent`. A sent cancel request has
/// not necessarily reached the backend: PostgreSQL acts on it whenever its
/// signal arrives, which can be after this pipeline has ended, in the next
/// request's statement on the same connection. So a connection a cancel
/// request was sent for is never used again (the caller drops it).
///
/// No cancel is sent before `BEGIN` has been answered (`begun`): the
/// statements are pipelined, each with its own Sync, so a `BEGIN` cancelled
/// while it ran would leave the rest to run outside a transaction block,
/// each committed on its own, the call with none of the request's settings
/// and as `authenticator`. `BEGIN`'s answer is the first to come back, in
/// microseconds.
async fn unless_cancelled<F: Future>(
    mut pipeline: Pin<&mut F>,
    client: &tokio_postgres::Client,
    begun: &AtomicBool,
    call_done: &AtomicBool,
    cancel: &CancellationToken,
    cancel_sent: &mut bool,
) -> F::Output {
    tokio::select! {
        biased;
        out = &mut pipeline => return out,
        () = cancel.cancelled() => {}
    }
    // Driven on until BEGIN is answered: its answer wakes this task.
    let ended = std::future::poll_fn(|cx| match pipeline.as_mut().poll(cx) {
        std::task::Poll::Ready(out) => std::task::Poll::Ready(Some(out)),
        std::task::Poll::Pending if begun.load(Ordering::Acquire) => std::task::Poll::Ready(None),
        std::task::Poll::Pending => std::task::Poll::Pending,
    })
    .await;
    if let Some(out) = ended {
        return out;
    }
    loop {
        if call_done.load(Ordering::Acquire) {
            // Only COMMIT is left (or, for a singular call or a Citus call
            // that may relay ended sessions, nothing sent yet).
            return pipeline.await;
        }
        *cancel_sent = true;
        // Boxed: only a cancelled call needs it, and inline it would make
        // every transaction's state larger by its size (~1 KB).
        if let Err(e) = Box::pin(client.cancel_token().cancel_query(NoTls)).await {
            tracing::debug!(error = %e, "cancel request failed");
        }
        if let Ok(out) = tokio::time::timeout(CANCEL_RETRY, &mut pipeline).await {
            return out;
        }
    }
}

/// Run the request's transaction; `cancel` fires when its client hung up.
///
/// A write refused with 25006 in a transaction that was not READ ONLY, on a
/// server that now says `transaction_read_only = on` (a primary demoted to a
/// standby, or made read-only for a failover), did not commit: the
/// connection is discarded with the pool's other idle ones (they lead to the
/// same server), and the transaction runs once more on a fresh connection,
/// which `target_session_attrs=read-write` sends to the current primary.
pub async fn run(
    pool: &Pool,
    tx: &TxRequest,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    let client = checkout(pool, cancel).await?;
    let mut gone = false;
    let result = attempt(&client, tx, cancel, &mut gone).await;
    let retry = matches!(result, Err(Failure::ReadOnlyServer(_)));
    if gone || retry {
        // A FATAL or a lost connection ends this connection, and one to a
        // server that turned read-only leads nowhere: keep it out of the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    match result {
        Ok(outcome) => Ok(outcome),
        Err(Failure::Error(e)) => Err(e),
        Err(Failure::ReadOnlyServer(e)) => {
            tracing::warn!(error = %e, "the database server became read-only; reconnecting and retrying the write once");
            pool.retain(|_, _| false);
            let client = checkout(pool, cancel).await?;
            let mut gone = false;
            let result = attempt(&client, tx, cancel, &mut gone).await;
            if gone {
                drop(deadpool_postgres::Object::take(client));
            }
            result.map_err(Failure::into_error)
        }
    }
}

/// A pooled connection, unless the client hangs up first.
async fn checkout(
    pool: &Pool,
    cancel: &CancellationToken,
) -> Result<deadpool_postgres::Client, Error> {
    tokio::select! {
        biased;
        got = pool.get() => got.map_err(pool_error),
        () = cancel.cancelled() => Err(RequestError::ClientClosed.into()),
    }
}

/// Why an attempt failed.
enum Failure {
    /// Answer this.
    Error(Error),
    /// The server is read-only now: worth one retry elsewhere.
    ReadOnlyServer(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Error(e) | Failure::ReadOnlyServer(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Error(e)
    }
}

/// Whether the server of `client` refuses writes now (what
/// `target_session_attrs=read-write` checks when connecting). Asked only
/// after a 25006, outside any transaction.
async fn server_read_only(client: &tokio_postgres::Client) -> bool {
    match client
        .query_typed("select current_setting('transaction_read_only')", &[])
        .await
    {
        Ok(rows) => rows
            .first()
            .and_then(|r| r.try_get::<_, String>(0).ok())
            .is_some_and(|v| v == "on"),
        // A server that went away is no place to answer from either.
        Err(_) => true,
    }
}

/// One try of the transaction on `client`; `gone` is set when the
/// connection is finished (a FATAL, or no answer) and must not go back.
async fn attempt(
    client: &deadpool_postgres::Client,
    tx: &TxRequest,
    cancel: &CancellationToken,
    gone: &mut bool,
) -> Result<Outcome, Failure> {
    let authed = tx.authenticated;
    // Prepared once per connection (deadpool's statement cache): parsing and
    // planning the same statements again on every request costs PostgreSQL
    // more than executing them. The setup statement names no schema; the
    // call is prepared as `authenticator`, which has USAGE on the exposed
    // schemas for exactly this (name lookup only; EXECUTE is still checked
    // for the request's role when it runs). A statement that cannot be
    // prepared that way (a type in a schema `authenticator` cannot see) runs
    // as an unnamed statement after the role switch instead.
    // Statement texts depend on what clients choose (roles, argument names,
    // select/order/filters), so the per-connection cache is bounded: past
    // the limit it is emptied, and dropping a statement closes it on the
    // server too, so neither side grows without end.
    if client.statement_cache.size() >= MAX_PREPARED {
        client.statement_cache.clear();
    }
    let setup_stmt = if tx.prepared {
        Some(
            client
                .prepare_typed_cached(SETUP_SQL, &[Type::TEXT; 8])
                .await
                .map_err(|e| Error::from_pg(&e, authed))?,
        )
    } else {
        None
    };
    let extra: Vec<Untyped<'_>> = tx.query.params.iter().map(|p| Untyped(p)).collect();
    let mut call_types: Vec<Type> = Vec::with_capacity(1 + extra.len());
    let mut call_params: Vec<(&(dyn ToSql + Sync), Type)> = Vec::with_capacity(1 + extra.len());
    if tx.query.binds_payload {
        call_params.push((&tx.payload, Type::TEXT));
        call_types.push(Type::TEXT);
    }
    for p in &extra {
        call_params.push((p, Type::UNKNOWN));
        call_types.push(Type::UNKNOWN);
    }
    // One prepared statement per role: PostgreSQL checks EXECUTE when it
    // inlines a SQL function at plan time, so a plan cached for one role must
    // never run for another (it would skip that check). The role is part of
    // the text as hex in a comment, never as itself: it comes from a token.
    let role_tag = format!(" /* role {} */", hex(&tx.role));
    let call_sql = format!("{}{role_tag}", tx.query.sql);
    let call_stmt = match tx.prepared {
        true => client
            .prepare_typed_cached(&call_sql, &call_types)
            .await
            .ok(),
        false => None,
    };
    let pre_stmt = match tx.pre_request.as_deref().filter(|_| tx.prepared) {
        Some(sql) => client
            .prepare_typed_cached(&format!("{sql}{role_tag}"), &[])
            .await
            .ok(),
        None => None,
    };

    // PostgREST's impersonated role settings (a statement_timeout for web
    // users, say): after the settings statement, before the call. Prepared
    // here, before any future of the pipeline exists: a future held across
    // an await is stored in this function's state, and that state is what
    // every request copies when its task is spawned.
    let (names, values): (Vec<&str>, Vec<&str>) = tx
        .role_settings
        .iter()
        .flat_map(|settings| settings.iter())
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .unzip();
    let settings_stmt = if names.is_empty() || !tx.prepared {
        None
    } else {
        Some(
            client
                .prepare_typed_cached(ROLE_SETTINGS_SQL, &[Type::TEXT_ARRAY, Type::TEXT_ARRAY])
                .await
                .map_err(|e| Error::from_pg(&e, authed))?,
        )
    };

    let setup_params: [&(dyn ToSql + Sync); 8] = [
        &tx.role,
        &tx.claims_json,
        &tx.method,
        &tx.path,
        &tx.headers_json,
        &tx.cookies_json,
        &tx.search_path,
        &tx.client_ip,
    ];
    let setup_typed = setup_params.map(|p| (p, Type::TEXT));
    let settings_params: [&(dyn ToSql + Sync); 2] = [&names, &values];
    let settings_typed = settings_params.map(|p| (p, Type::TEXT_ARRAY));
    // A Citus database: the same settings again as SET LOCAL, which Citus
    // replays on the workers (see `pipeline::citus`); one message each.
    let propagated = if tx.query.propagate_settings {
        crate::pipeline::citus::set_local_statements(
            &tx.claims_json,
            &tx.method,
            &tx.path,
            &tx.headers_json,
            &tx.cookies_json,
            &tx.client_ip,
            &tx.search_path,
        )
    } else {
        Vec::new()
    };
    let bound: Vec<&(dyn ToSql + Sync)> = call_params.iter().map(|(p, _)| *p).collect();
    // Set when the call's answer is in: from then on only COMMIT is left,
    // and a hang-up no longer cancels.
    let call_done = AtomicBool::new(false);
    // Set when BEGIN is answered: no cancel request before that.
    let begun = AtomicBool::new(false);
    // After COMMIT, in the same pipeline (no extra round trip): the insert
    // position then covers the commit record (PostgreSQL's WAIT FOR LSN
    // docs: the position must be taken after the commit, not before).
    let want_lsn = tx.commit_lsn && !tx.read_only;
    // COMMIT after the call's answer rather than pipelined behind it: a
    // singular call checks the row count first, and a Citus call that may
    // commit relays the sessions it ended first.
    let relay = tx.query.relays_sessions && !tx.read_only;
    let commit_later = tx.singular || relay;
    let mut cancel_sent = false;

    if cancel.is_cancelled() {
        // Nothing of the transaction was sent.
        return Err(Error::from(RequestError::ClientClosed).into());
    }
    if client.is_closed() {
        // Known lost before anything was sent: a definite failure, not an
        // unknown outcome.
        return Err(Error::from(DbError::Connection("the connection closed".into())).into());
    }
    // The size of this function's state is what every request copies when
    // its task is spawned, so the statement futures are built in a block of
    // their own and moved once, into a join that is pinned where it stands
    // and never moved: a future held in a local across the await would be
    // stored twice (a moved-from local keeps its storage to the end of its
    // scope), and `join!` in an async block would keep each one twice too.
    // The statements most requests do not send (role settings, pre-request,
    // the LSN after a write) are boxed: absent, each costs a pointer instead
    // of a whole query future (~1 KB).
    use futures_util::future::{join, join4};
    let ((r_begin, r_setup, r_settings, r_propagate), (r_pre, r_call, r_commit, r_lsn)) = {
        let pipeline = std::pin::pin!({
            let begin = client
                .batch_execute(if tx.read_only {
                    "BEGIN READ ONLY"
                } else {
                    "BEGIN"
                })
                .inspect(|_| begun.store(true, Ordering::Release));
            let setup = match &setup_stmt {
                Some(stmt) => Either::Left(client.query(stmt, &setup_params)),
                None => Either::Right(client.query_typed(SETUP_SQL, &setup_typed)),
            };
            let settings = OptionFuture::from((!names.is_empty()).then(|| {
                Box::pin(match &settings_stmt {
                    Some(stmt) => Either::Left(client.query(stmt, &settings_params)),
                    None => Either::Right(client.query_typed(ROLE_SETTINGS_SQL, &settings_typed)),
                })
            }));
            let propagate =
                futures_util::future::join_all(propagated.iter().map(|s| client.batch_execute(s)));
            let pre = OptionFuture::from(tx.pre_request.as_deref().map(|sql| {
                Box::pin(match &pre_stmt {
                    Some(stmt) => Either::Left(client.query(stmt, &[])),
                    None => Either::Right(client.query_typed(sql, &[])),
                })
            }));
            let call = match &call_stmt {
                Some(stmt) => Either::Left(client.query(stmt, &bound)),
                None => Either::Right(client.query_typed(&tx.query.sql, &call_params)),
            }
            .inspect(|_| call_done.store(true, Ordering::Release));
            let commit =
                OptionFuture::from((!commit_later).then(|| client.batch_execute("COMMIT")));
            let lsn = OptionFuture::from(
                (want_lsn && !commit_later).then(|| Box::pin(client.query_typed(LSN_SQL, &[]))),
            );
            join(
                join4(begin, setup, settings, propagate),
                join4(pre, call, commit, lsn),
            )
        });
        unless_cancelled(
            pipeline,
            client,
            &begun,
            &call_done,
            cancel,
            &mut cancel_sent,
        )
        .await
    };
    // A FATAL or a lost connection ends this connection: the caller keeps it
    // out of the pool even before tokio-postgres has read the close, or the
    // next request would take it and fail.
    *gone = [
        r_begin.as_ref().err(),
        r_setup.as_ref().err(),
        r_settings.as_ref().and_then(|r| r.as_ref().err()),
        r_propagate.iter().find_map(|r| r.as_ref().err()),
        r_pre.as_ref().and_then(|r| r.as_ref().err()),
        r_call.as_ref().err(),
        r_commit.as_ref().and_then(|r| r.as_ref().err()),
    ]
    .into_iter()
    .flatten()
    .any(connection_gone)
        || cancel_sent;
    let r_propagate = r_propagate.into_iter().find(Result::is_err);
    // A COMMIT refused with an ERROR may have left the transaction open: an
    // interrupt that arrives after the call's last check for interrupts
    // (while it writes the call's answer, say) is taken as the COMMIT starts,
    // before it runs, and the block stays aborted. Our cancel request is one
    // (that connection is dropped anyway, `cancel_sent`); the call's own
    // `statement_timeout` firing that late is another. Such a connection
    // would fail the next request with 25P02, so end the block here (a
    // ROLLBACK after a COMMIT that did end it only warns) and keep the
    // connection out of the pool if even that fails.
    if !*gone && matches!(&r_commit, Some(Err(e)) if e.as_db_error().is_some()) {
        *gone = client.batch_execute("ROLLBACK").await.is_err();
    }

    // The first failure in pipeline order is the cause; later ones are 25P02.
    let call_result = match (r_begin, r_setup, r_settings, r_propagate, r_pre) {
        (Err(e), _, _, _, _)
        | (Ok(_), Err(e), _, _, _)
        | (Ok(_), Ok(_), Some(Err(e)), _, _)
        | (Ok(_), Ok(_), _, Some(Err(e)), _)
        | (Ok(_), Ok(_), _, _, Some(Err(e))) => Err(e),
        _ => r_call,
    };
    let rows = match call_result {
        Ok(rows) => rows,
        Err(e) => {
            if commit_later && !*gone {
                // No COMMIT was pipelined: end the aborted transaction ourselves
                // (a connection that is going needs no ROLLBACK).
                let _ = client.batch_execute("ROLLBACK").await;
            }
            if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
                && cancel.is_cancelled()
            {
                // Our own cancel request, not a statement_timeout.
                return Err(Error::from(RequestError::ClientClosed).into());
            }
            if e.as_db_error().is_none() && !commit_later && !tx.read_only {
                // No answer to the call, COMMIT sent behind it: the server
                // may have run both before the connection went. (A READ ONLY
                // transaction changed nothing either way: a plain connection
                // failure, which a read may retry on another node.)
                return Err(commit_failure(&e, authed).into());
            }
            let error = Error::from_pg(&e, authed);
            if !tx.read_only
                && e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
                && server_read_only(client).await
            {
                return Err(Failure::ReadOnlyServer(error));
            }
            return Err(error.into());
        }
    };
    if let Some(Err(e)) = r_commit {
        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED)
            && cancel.is_cancelled()
        {
            // Our own cancel request, taken as COMMIT began: rolled back.
            tracing::info!("the hang-up's cancel request reached COMMIT; rolled back");
            return Err(Error::from(RequestError::ClientClosed).into());
        }
        // A READ ONLY transaction whose answer is in has nothing to commit:
        // losing the connection at its COMMIT (a replica stopped, say)
        // changes nothing, and the answer stands.
        if !(tx.read_only && e.as_db_error().is_none()) {
            return Err(commit_failure(&e, authed).into());
        }
    }
    let row = rows
        .first()
        .ok_or_else(|| Error::Internal("the call statement returned no row".into()))?;
    let mut outcome = Outcome {
        lsn: r_lsn.and_then(|r| first_text(r.ok())),
        body: row.try_get(0).map_err(|e| Error::from_pg(&e, authed))?,
        rows: row.try_get(1).map_err(|e| Error::from_pg(&e, authed))?,
        headers: row.try_get(2).map_err(|e| Error::from_pg(&e, authed))?,
        status: row.try_get(3).map_err(|e| Error::from_pg(&e, authed))?,
        error: row.try_get(4).map_err(|e| Error::from_pg(&e, authed))?,
        total: row.try_get(5).map_err(|e| Error::from_pg(&e, authed))?,
        sessions_ended: if tx.query.relays_sessions {
            row.try_get(6).map_err(|e| Error::from_pg(&e, authed))?
        } else {
            None
        },
    };
    if let Some(value) = outcome.sessions_ended.as_deref().filter(|_| tx.read_only) {
        tracing::warn!(
            sessions_ended = value,
            "a READ ONLY call set pgrpc.sessions_ended; nothing is relayed (NOTIFY needs a read-write transaction)"
        );
    }
    if commit_later {
        if tx.singular && outcome.rows != 1 {
            client
                .batch_execute("ROLLBACK")
                .await
                .map_err(|e| Error::from_pg(&e, authed))?;
            return Err(Error::from(RequestError::Singularity { rows: outcome.rows }).into());
        }
        if relay {
            relay_ended_sessions(client, tx, outcome.sessions_ended.as_deref(), gone).await?;
        }
        if let Err(e) = client.batch_execute("COMMIT").await {
            // As above: a refused COMMIT may leave the block open.
            if e.as_db_error().is_some() && client.batch_execute("ROLLBACK").await.is_err() {
                *gone = true;
            }
            return Err(commit_failure(&e, authed).into());
        }
        if want_lsn {
            outcome.lsn = first_text(client.query_typed(LSN_SQL, &[]).await.ok());
        }
    }
    Ok(outcome)
}

/// Relay the sessions the call ended where it ran (`pgrpc.sessions_ended`),
/// in the transaction, before `COMMIT`; nothing is sent when there are none.
/// (A READ ONLY transaction cannot NOTIFY: its entries are only logged.) A
/// failed relay rolls the call back: its sessions would end without the
/// gateways hearing of it.
async fn relay_ended_sessions(
    client: &deadpool_postgres::Client,
    tx: &TxRequest,
    value: Option<&str>,
    gone: &mut bool,
) -> Result<(), Failure> {
    let Some(value) = value else {
        return Ok(());
    };
    let entries = crate::pipeline::sessions_relay::entries(value);
    if entries.is_empty() {
        return Ok(());
    }
    // Boxed: most calls never get here, and inline the future would make
    // every transaction's state larger (see `size` below).
    let relayed = Box::pin(client.query_typed(
        crate::pipeline::sessions_relay::RELAY_SQL,
        &[(&entries, Type::TEXT_ARRAY)],
    ))
    .await;
    if let Err(e) = relayed {
        *gone = connection_gone(&e);
        if !*gone {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        tracing::error!(error = %e, "relaying the ended sessions failed; the call is rolled back");
        return Err(Error::from_pg(&e, tx.authenticated).into());
    }
    Ok(())
}

/// The WAL position after a commit, as text (`16/B374D848`).
const LSN_SQL: &str = "select pg_current_wal_insert_lsn()::text";

/// The first column of the first row, as text.
fn first_text(rows: Option<Vec<tokio_postgres::Row>>) -> Option<String> {
    rows?.first()?.try_get(0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_tags_are_lower_case_hex() {
        assert_eq!(hex("app_user"), "6170705f75736572");
        assert_eq!(hex("*/ x"), "2a2f2078");
        assert_eq!(hex("é"), "c3a9");
        assert_eq!(hex(""), "");
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// Regression: the transaction's future had grown to 30 KB (every
    /// statement future stored two or three times over), and each request
    /// copied it when its task was spawned: +70 % instructions per request
    /// against the previous release (bench/results/profile.md, 2026-12-01).
    #[test]
    fn the_transaction_state_stays_small() {
        let pool = crate::db::pool(tokio_postgres::Config::new(), 1, Duration::from_secs(1));
        let tx = TxRequest {
            role: String::new(),
            authenticated: false,
            claims_json: String::new(),
            method: String::new(),
            path: String::new(),
            headers_json: String::new(),
            cookies_json: String::new(),
            search_path: String::new(),
            client_ip: String::new(),
            role_settings: None,
            pre_request: None,
            query: CallQuery {
                sql: String::new(),
                binds_payload: false,
                params: vec![],
                propagate_settings: false,
                relays_sessions: false,
            },
            payload: String::new(),
            read_only: true,
            singular: false,
            prepared: true,
            commit_lsn: false,
        };
        let cancel = CancellationToken::new();
        let route = crate::pipeline::route::ReadRoute {
            to_replica: false,
            min_lsn: None,
        };
        // Not polled: only its size is looked at.
        let task = crate::pipeline::route::run(&pool, None, route, &tx, &cancel);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 8 * 1024, "the transaction's future is {size} bytes");
    }
}
