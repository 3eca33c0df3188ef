//! The request handler: one pipeline for every route, the stages in order.
//!
//! auth → parse → plan → query → execute → respond, each a module of its own
//! (`crate::pipeline`); this file only strings them together, reads the body
//! within its limit, and does what every request gets alike: the
//! `Authorization` extraction, stage timings (`Server-Timing`), metrics and
//! the one log line. A call (`/rpc/<name>`, a configured route) and the
//! OpenAPI document (`GET /`) are two [`Target`]s of the same [`handle`].
//! The token is checked before the body is read and before a connection is
//! taken; a function's declared limits (`pipeline::admit`) are applied
//! after plan, and a concurrency permit is taken before the connection. The
//! database work runs on its own task so that a client hanging up cannot
//! cancel a transaction half-way through its pipeline; a hang-up seen on the
//! socket cancels it explicitly instead (`http::disconnect`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::ResponseError;
use actix_web::{HttpRequest, HttpResponse};
use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_util::sync::CancellationToken;

use crate::db::replicas::WorkerReplicas;
use crate::db::schema_cache::Routine;
use crate::error::{AuthError, Error, RequestError, SchemaCacheError};
use crate::http::disconnect;
use crate::http::state::{AppState, WorkerPool};
use crate::jwt::{Jwt, JwtError};
use crate::openapi;
use crate::ops::logging::events;
use crate::pipeline::admit::{self, client_addr};
use crate::pipeline::auth::AuthContext;
use crate::pipeline::execute::{self, TxRequest};
use crate::pipeline::parse::{self, HttpInput};
use crate::pipeline::{auth, csrf, plan, query, respond, route};

/// The function a configured route calls.
pub(super) struct RouteTarget(pub(super) String);

/// What a request asks for.
enum Target<'a> {
    /// Call a function with the request's arguments.
    Call {
        /// The function's name as the path gives it.
        function: &'a str,
        /// The body, read only after the token was checked.
        body: web::Payload,
    },
    /// The OpenAPI document of what the caller may call.
    Document,
}

impl Target<'_> {
    /// The `function` field of the log line and the metrics label.
    fn function(&self) -> &str {
        match self {
            Target::Call { function, .. } => function,
            Target::Document => "",
        }
    }
}

pub(super) async fn rpc(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
    pool: web::Data<WorkerPool>,
) -> HttpResponse {
    let target = Target::Call {
        function: &name,
        body,
    };
    handle(&req, target, &state, &pool.0).await
}

pub(super) async fn routed(
    req: HttpRequest,
    route: web::Data<RouteTarget>,
    body: web::Payload,
    state: web::Data<AppState>,
    pool: web::Data<WorkerPool>,
) -> HttpResponse {
    let target = Target::Call {
        function: &route.0,
        body,
    };
    handle(&req, target, &state, &pool.0).await
}

/// `GET /` and `HEAD /`: the OpenAPI document for the caller's role.
pub(super) async fn openapi_root(
    req: HttpRequest,
    state: web::Data<AppState>,
    pool: web::Data<WorkerPool>,
) -> HttpResponse {
    handle(&req, Target::Document, &state, &pool.0).await
}

pub(super) async fn root_method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(RequestError::InvalidRpcMethod {
        method: req.method().to_string(),
        details: Some("The root path serves the OpenAPI document with GET.".into()),
        allow: "OPTIONS,GET,HEAD",
    }
    .into())
}

pub(super) async fn not_found() -> Result<HttpResponse, Error> {
    Err(RequestError::InvalidPath.into())
}

/// What one request did, for its log line and `Server-Timing`.
#[derive(Default)]
struct Trace {
    role: Option<String>,
    /// The node that ran the transaction (`primary` or a replica's host:port).
    node: Option<String>,
    /// (stage name, duration), in order.
    stages: Vec<(&'static str, Duration)>,
    last: Option<Instant>,
    /// The rate limit state of an admitted call: its `RateLimit` headers go
    /// on whatever it is answered, an error included.
    rate_headers: Option<crate::pipeline::admit::RateHeaders>,
}

impl Trace {
    fn start(&mut self) {
        self.last = Some(Instant::now());
    }

    /// Close the stage that ran since the previous mark.
    fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        if let Some(last) = self.last.replace(now) {
            self.stages.push((stage, now - last));
        }
    }

    /// `Server-Timing` (W3C Server Timing): `jwt;dur=0.1, parse;dur=0.0, …` in ms.
    fn server_timing(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.stages.len() * 20);
        for (i, (name, d)) in self.stages.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            // Writing to a String cannot fail.
            let _ = write!(out, "{sep}{name};dur={:.1}", d.as_secs_f64() * 1000.0);
        }
        out
    }
}

/// Run the pipeline, render errors, add `Server-Timing`, count, log one line.
async fn handle(
    req: &HttpRequest,
    target: Target<'_>,
    state: &AppState,
    pool: &Pool,
) -> HttpResponse {
    let started = Instant::now();
    let mut trace = Trace::default();
    trace.start();
    let function = target.function().to_string();
    let result = match target {
        Target::Call { function, body } => call(req, function, body, state, pool, &mut trace).await,
        Target::Document => document(req, state, pool, &mut trace).await,
    };
    let (mut response, code) = match result {
        Ok(r) => (r, None),
        Err(e) => (e.error_response(), Some(e.code())),
    };
    trace.mark("response");
    if let Some(h) = trace.rate_headers.take() {
        for (name, value) in [("ratelimit-policy", h.policy), ("ratelimit", h.state)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), v);
            }
        }
    }
    if state.config.server.timing {
        if let Ok(v) = HeaderValue::from_str(&trace.server_timing()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("server-timing"), v);
        }
    }
    let elapsed = started.elapsed();
    state.metrics.request(
        metrics_label(&function, state),
        response.status().as_u16(),
        elapsed.as_secs_f64(),
        code.as_deref() == Some("PGRST003"),
    );
    // Never the body, the query string or a header value: they may hold
    // passwords and tokens.
    tracing::info!(
        target: events::REQUEST,
        method = %req.method(),
        path = %req.path(),
        function = function.as_str(),
        role = trace.role.as_deref().unwrap_or("-"),
        node = trace.node.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        code = code.as_deref().unwrap_or(""),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
    );
    response
}

/// The auth stage on the request's `Authorization` header (or the token
/// cookie), with the verifier in force now; the caller's role goes into the
/// trace. A write that rode on the cookie passes the CSRF check here too.
fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    trace: &mut Trace,
) -> Result<AuthContext, Error> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cookie_name = state.config.jwt.cookie_name.as_deref();
    let cookie = cookie_name.and_then(|name| {
        let values = req
            .headers()
            .get_all(header::COOKIE)
            .filter_map(|v| v.to_str().ok());
        auth::cookie_value(values, name)
    });
    let jwt = state.jwt.load();
    let auth = auth::authenticate(
        authorization,
        cookie,
        jwt.as_deref(),
        &state.ended_sessions,
        state.config.db.anon_role.as_deref(),
    )?;
    if auth.via_cookie {
        let text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        csrf::check(&csrf::CsrfInput {
            method: req.method().as_str(),
            origin: text(header::ORIGIN),
            referer: text(header::REFERER),
            host: text(header::HOST).or_else(|| req.uri().authority().map(|a| a.as_str())),
            allowed_origins: &state.config.server.cors_allowed_origins,
            cookie_name: cookie_name.unwrap_or_default(),
        })?;
    }
    trace.role = Some(auth.role.clone());
    trace.mark("jwt");
    Ok(auth)
}

/// [`authenticate`], and when the token names a `kid` no key has while a JWKS
/// URL is configured, once more after the URL is refetched (rate-limited by
/// `jwt::jwks`), so a key rotation is picked up by its first token.
async fn authenticate_fresh(
    req: &HttpRequest,
    state: &AppState,
    trace: &mut Trace,
) -> Result<AuthContext, Error> {
    match authenticate(req, state, trace) {
        Err(e) if unknown_kid(&e) && refetched(state).await => authenticate(req, state, trace),
        other => other,
    }
}

/// A refusal a newer JWK Set might turn into an acceptance: a `kid` no key
/// has, or a real algorithm no current key offers (a rotation to another key
/// type changes the derived algorithm list before any `kid` is looked at).
fn unknown_kid(e: &Error) -> bool {
    let jwt_error = match e {
        Error::Auth(AuthError::Invalid(j)) => j,
        Error::Request(RequestError::TokenArgument { error, .. }) => error,
        _ => return false,
    };
    match jwt_error {
        JwtError::UnknownKid(_) => true,
        JwtError::UnsupportedAlgorithm { alg: Some(alg), .. } => {
            alg.parse::<crate::jwt::Algorithm>().is_ok()
        }
        _ => false,
    }
}

/// Ask the JWKS URL refresher for new keys; true when they changed.
async fn refetched(state: &AppState) -> bool {
    match &state.jwks {
        Some(jwks) => jwks.refresh_for_unknown_kid().await,
        None => false,
    }
}

/// The request facts parse reads, with the body read so far.
fn http_input<'a>(req: &'a HttpRequest, body: &'a [u8]) -> HttpInput<'a> {
    HttpInput {
        method: req.method().as_str(),
        path: req.path(),
        query: req.query_string(),
        headers: req.headers(),
        body,
    }
}

/// The pipeline for one call: auth → body → parse → plan → admit → token
/// arguments → the transaction → respond. Each step below is one stage or
/// the HTTP side of one.
async fn call(
    req: &HttpRequest,
    function: &str,
    body: web::Payload,
    state: &AppState,
    pool: &Pool,
    trace: &mut Trace,
) -> Result<HttpResponse, Error> {
    let config = &state.config;
    if req.method() == actix_web::http::Method::OPTIONS {
        return options(req, function, state);
    }
    let auth = authenticate_fresh(req, state, trace).await?;
    let mut jwt = state.jwt.load_full();
    let bytes = read_body(
        body,
        req,
        config.server.max_body_bytes,
        config.server.body_timeout,
    )
    .await?;
    let mut rpc = parse::parse(function, &http_input(req, &bytes), &config.db.schemas)?;
    let min_lsn = route::parse_lsn(req.headers().get(PGRPC_LSN).map(HeaderValue::as_bytes))?;
    trace.mark("parse");
    let cache = state.cache.load_full().ok_or(SchemaCacheError::NotLoaded)?;
    let mut plan = plan::plan(&rpc, &cache)?;
    // Admit: the function's declared limits, before any database work (a
    // rate-limited call costs no token verification either).
    let limits = if admit::COMPILED {
        cache.limits(plan.routine.oid).cloned()
    } else {
        None
    };
    let client_ip = client_address(req, state);
    trace.rate_headers = match &limits {
        Some(limits) => state.admission.check_rate(
            &plan.routine.qualified_name(),
            plan.routine.oid,
            limits,
            client_ip,
            !auth.authenticated,
            &cache,
        )?,
        None => None,
    };
    let payload = token_arguments(&mut rpc, &plan, state, &mut jwt).await?;
    let payload = auth::fill_from_claims(payload, &mut plan, auth.token.as_deref())?;
    // After the arguments are final: `pgrpc.from_claims` decides some.
    let call = state.call_memo.call_query(&plan, &cache);
    trace.mark("plan");
    // The permit is taken before the connection (execute::run takes it), so a
    // call waiting for a slot holds no pooled connection.
    let permit = match &limits {
        Some(limits) => {
            let p = state
                .admission
                .acquire(
                    &plan.routine.qualified_name(),
                    plan.routine.oid,
                    limits,
                    &cache,
                )
                .await?;
            trace.mark("admit");
            p
        }
        None => None,
    };
    let tx = tx_request(
        auth, &mut rpc, &plan, call, payload, client_ip, &cache, state,
    );
    let read = route::ReadRoute {
        to_replica: !cache.primary_reads.contains(&plan.routine.oid),
        min_lsn,
    };
    let outcome = transaction(req, pool, tx, read, permit, trace).await?;
    trace.mark("transaction");
    let lsn = outcome.lsn.clone();
    let mut response = respond::respond(&plan, outcome, jwt.as_deref())?;
    if let Some(v) = lsn.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(PGRPC_LSN, v);
    }
    Ok(response)
}

/// The payload the transaction binds: the body as sent, or, when the chosen
/// function takes claims-type parameters, with each token replaced by its
/// verified claims (refetching a JWKS URL once for an unknown key). Moved out
/// of the request, not copied: the body can be large.
async fn token_arguments(
    rpc: &mut parse::RpcRequest,
    plan: &plan::CallPlan,
    state: &AppState,
    jwt: &mut Option<Arc<Jwt>>,
) -> Result<String, Error> {
    if plan.claims_args.is_empty() {
        return Ok(std::mem::take(&mut rpc.payload.raw));
    }
    let verify = |jwt: Option<&Jwt>| {
        auth::verify_token_arguments(
            &rpc.payload.raw,
            &plan.claims_args,
            jwt,
            &state.ended_sessions,
        )
    };
    match verify(jwt.as_deref()) {
        Err(e) if unknown_kid(&e) && refetched(state).await => {
            *jwt = state.jwt.load_full();
            verify(jwt.as_deref())
        }
        other => other,
    }
}

/// Everything the transaction needs, owned (it runs on its own task).
#[allow(clippy::too_many_arguments)] // one value per pipeline stage that feeds it
fn tx_request(
    auth: AuthContext,
    rpc: &mut parse::RpcRequest,
    plan: &plan::CallPlan,
    call: query::CallQuery,
    payload: String,
    client_ip: Option<std::net::IpAddr>,
    cache: &crate::db::schema_cache::SchemaCache,
    state: &AppState,
) -> TxRequest {
    let config = &state.config;
    TxRequest {
        role_settings: cache.role_settings.get(&auth.role).cloned(),
        role: auth.role,
        authenticated: auth.authenticated,
        claims_json: auth.claims_json,
        method: rpc.method.as_str().to_string(),
        path: std::mem::take(&mut rpc.path),
        headers_json: std::mem::take(&mut rpc.headers_json),
        cookies_json: std::mem::take(&mut rpc.cookies_json),
        search_path: query::search_path(&rpc.schema, &config.db.extra_search_path),
        client_ip: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        pre_request: state.pre_request_sql.clone(),
        query: call,
        payload,
        read_only: plan.read_only,
        singular: plan.singular,
        prepared: config.db.prepared_statements,
        commit_lsn: state.replicas.is_some(),
    }
}

/// Run the transaction on the node its route allows, on a task of its own:
/// a hang-up cannot drop it half-way, and one seen on the socket asks it to
/// cancel instead (`http::disconnect`). The admission permit moves into the
/// task, so it is released when the transaction is over, even when the
/// client hung up meanwhile.
async fn transaction(
    req: &HttpRequest,
    pool: &Pool,
    tx: TxRequest,
    read: route::ReadRoute,
    permit: Option<crate::pipeline::admit::Permit>,
    trace: &mut Trace,
) -> Result<execute::Outcome, Error> {
    let pool = pool.clone();
    let replicas = req.app_data::<web::Data<WorkerReplicas>>().cloned();
    let cancel = CancellationToken::new();
    let task_cancel = cancel.clone();
    let task = actix_web::rt::spawn(async move {
        let done = route::run(
            &pool,
            replicas.as_ref().map(|r| r.get_ref()),
            read,
            &tx,
            &task_cancel,
        )
        .await;
        drop(permit);
        done
    });
    let (outcome, node) =
        disconnect::finish_or_cancel(req.conn_data::<disconnect::Peer>(), task, &cancel)
            .await
            .map_err(|e| Error::Internal(format!("request task failed: {e}")))?;
    trace.node = Some(node);
    outcome
}

/// The client address: the peer, or behind `server.trusted_proxies` the hop
/// they forwarded for (`request.client_ip`, rate-limit buckets). Forwarding
/// headers from any other peer are ignored, counted, and reported once: the
/// usual cause is a reverse proxy missing from `trusted_proxies`, which makes
/// every client behind it share its address.
fn client_address(req: &HttpRequest, state: &AppState) -> Option<std::net::IpAddr> {
    let trusted = state.admission.trusted_proxies();
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let x_forwarded_for = HeaderName::from_static("x-forwarded-for");
    let headers = req.headers();
    if headers.contains_key(header::FORWARDED) || headers.contains_key(&x_forwarded_for) {
        let peer_trusted = peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)));
        if !peer_trusted {
            state.metrics.untrusted_forwarded();
            if state.admission.first_ignored_forwarding() {
                tracing::warn!(
                    peer = %peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
                    "a request carries Forwarded or X-Forwarded-For from a peer not in \
                     server.trusted_proxies; the headers are ignored. If that peer is a reverse \
                     proxy, every client behind it shares its address for rate limits (the \
                     shipped sign-in limits among them) and login lockouts: add it to \
                     server.trusted_proxies. Reported once; counted in \
                     pgrpc_untrusted_forwarded_requests_total"
                );
            }
        }
    }
    if trusted.is_empty() {
        return peer;
    }
    let values = |name: &HeaderName| {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    client_addr::client_address(
        peer,
        values(&header::FORWARDED),
        values(&x_forwarded_for),
        &trusted,
    )
}

/// The metrics label of a request: the function's name when the schema cache
/// has it, else one label for all, so no client can mint labels (each would
/// be kept forever).
fn metrics_label<'a>(function: &'a str, state: &AppState) -> &'a str {
    if function.is_empty() {
        return function;
    }
    match state.cache.load().as_deref() {
        Some(cache) if cache.has_name(function) => function,
        _ => UNKNOWN_FUNCTION,
    }
}

/// The metrics label of every call of a function the schema cache lacks.
const UNKNOWN_FUNCTION: &str = "(unknown)";

/// Read-your-writes over replicas: a write's WAL position, and a read's
/// "at least this" (`pipeline::route`).
const PGRPC_LSN: HeaderName = HeaderName::from_static("pgrpc-lsn");

/// The pipeline for the OpenAPI document: auth and parse as for a call, then
/// one catalog query for what the role may execute, then the pure builder.
async fn document(
    req: &HttpRequest,
    state: &AppState,
    pool: &Pool,
    trace: &mut Trace,
) -> Result<HttpResponse, Error> {
    let config = &state.config;
    let auth = authenticate_fresh(req, state, trace).await?;
    let root = parse::parse_root(&http_input(req, &[]), &config.db.schemas)?;
    trace.mark("parse");
    let cache = state.cache.load_full().ok_or(SchemaCacheError::NotLoaded)?;
    let candidates: Vec<Arc<Routine>> = cache
        .all()
        .filter(|r| r.schema == root.schema)
        .cloned()
        .collect();
    let mut type_oids: Vec<i64> = candidates
        .iter()
        .flat_map(|r| openapi::routine_types(r))
        .map(i64::from)
        .collect();
    type_oids.sort_unstable();
    type_oids.dedup();
    let schemas = std::slice::from_ref(&root.schema);
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&auth.role, Type::TEXT),
        (&schemas, Type::TEXT_ARRAY),
        (&type_oids, Type::INT8_ARRAY),
    ];
    let rows = execute::catalog(pool, openapi::PRIVILEGES_SQL, &params, auth.authenticated).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::Internal("the privileges query returned no row".into()))?;
    let seen = openapi::Visibility::from_row(row, &auth.role, auth.authenticated)?;
    trace.mark("transaction");
    let routines: Vec<Arc<Routine>> = candidates
        .into_iter()
        .filter(|r| seen.executable.contains(&r.oid))
        .collect();
    let doc = openapi::document(&openapi::Input {
        routines: &routines,
        types: &seen.types,
        claims_type: cache.claims_type.map(|c| c.oid),
        schema: &root.schema,
        default_schema: config.db.schemas.first() == Some(&root.schema),
        routes: &config.routes,
        server: server_url(req),
        anonymous: config.db.anon_role.is_some(),
        from_claims: &cache.from_claims,
        limits: &cache.limits,
    });
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, openapi::MEDIA_TYPE));
    // The document depends on who asks and for which schema (RFC 9110 §12.5.5).
    res.append_header((
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Profile, Authorization"),
    ));
    if root.schema_from_header {
        if let Ok(v) = HeaderValue::from_str(&root.schema) {
            res.insert_header((HeaderName::from_static("content-profile"), v));
        }
    }
    if root.head {
        return Ok(res.finish());
    }
    Ok(res.body(doc.to_string()))
}

/// `http://<Host>`, when the request names a usable host (the document's
/// `servers` entry).
fn server_url(req: &HttpRequest) -> Option<String> {
    let host = match req.headers().get(header::HOST) {
        Some(v) => v.to_str().ok()?.trim().to_string(),
        None => req.connection_info().host().to_string(),
    };
    let url = url::Url::parse(&format!("http://{host}/")).ok()?;
    // Only scheme, host and port: anything else in Host is not a host.
    if url.host_str().is_none_or(str::is_empty)
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return None;
    }
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// `OPTIONS`: the methods a function allows, from the cache alone.
fn options(req: &HttpRequest, function: &str, state: &AppState) -> Result<HttpResponse, Error> {
    let input = HttpInput {
        query: "",
        ..http_input(req, &[])
    };
    let rpc = parse::parse(function, &input, &state.config.db.schemas)?;
    let cache = state.cache.load_full().ok_or(SchemaCacheError::NotLoaded)?;
    let overloads = plan::overloads(&rpc, &cache)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ALLOW, plan::allow(overloads)))
        .finish())
}

/// Read the body, refusing with 413 as soon as it exceeds `limit` (before
/// anything reaches the database), and with 408 when it has not arrived in
/// full within `timeout`: one deadline for the whole body, so a client that
/// trickles a byte at a time cannot hold the connection for longer.
async fn read_body(
    mut body: web::Payload,
    req: &HttpRequest,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestError::PayloadTooLarge { limit }.into());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = tokio::time::timeout_at(deadline, body.next())
        .await
        .map_err(|_| RequestError::BodyTimeout { timeout })?
    {
        let chunk = chunk.map_err(|e| RequestError::InvalidBody {
            message: "The request body could not be read".into(),
            details: Some(e.to_string()),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(RequestError::PayloadTooLarge { limit }.into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_is_from_host() {
        let req = actix_web::test::TestRequest::get()
            .insert_header(("host", "example.com:8080"))
            .to_http_request();
        assert_eq!(server_url(&req).as_deref(), Some("http://example.com:8080"));
        let req = actix_web::test::TestRequest::get()
            .insert_header(("host", "a/b?c"))
            .to_http_request();
        assert_eq!(server_url(&req), None);
    }
}
