//! HTTP wiring: routes, the shared state, and the request pipeline in order.
//!
//! auth → parse → plan → query → execute → respond, each a module of its own;
//! this file only strings them together and reads the body within its limit.
//! The token is checked before the body is read and before a connection is
//! taken. The database work runs on its own task so that a client hanging up
//! cannot cancel a transaction half-way through its pipeline.

use std::sync::Arc;

use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::ResponseError;
use actix_web::{HttpRequest, HttpResponse};
use arc_swap::{ArcSwap, ArcSwapOption};
use deadpool_postgres::Pool;
use futures_util::StreamExt;

use crate::auth;
use crate::config::Config;
use crate::cors::CorsPolicy;
use crate::db::Pools;
use crate::error::{Error, RequestError, SchemaCacheError};
use crate::execute::{self, TxRequest};
use crate::jwt::Jwt;
use crate::logging::events;
use crate::metrics::Metrics;
use crate::parse::{self, HttpInput};
use crate::plan;
use crate::query;
use crate::respond;
use crate::schema_cache::SchemaCache;

/// Shared by every worker (`web::Data`).
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Request connections (a pool per worker) and the service connection.
    pub pools: Pools,
    /// The schema cache; None until first loaded.
    pub cache: Arc<ArcSwapOption<SchemaCache>>,
    /// JWT verifier/signer; None when no key is configured. Swapped on a
    /// config reload.
    pub jwt: ArcSwapOption<Jwt>,
    /// CORS policy; swapped on a config reload.
    pub cors: ArcSwap<CorsPolicy>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `select "schema"."fn"()` for `db.pre_request`.
    pre_request_sql: Option<String>,
}

impl AppState {
    /// State with an empty (not yet loaded) schema cache.
    pub fn new(config: Arc<Config>, pools: impl Into<Pools>, jwt: Option<Arc<Jwt>>) -> AppState {
        let pre_request_sql = config.db.pre_request.as_ref().map(query::pre_request_sql);
        let cors = ArcSwap::from_pointee(CorsPolicy {
            allowed_origins: config.server.cors_allowed_origins.clone(),
        });
        AppState {
            cors,
            config,
            pools: pools.into(),
            cache: Arc::new(ArcSwapOption::empty()),
            jwt: ArcSwapOption::new(jwt),
            metrics: Arc::new(Metrics::new()),
            pre_request_sql,
        }
    }

    /// What the listener needs to reload this state's cache.
    pub fn cache_target(&self) -> crate::listener::CacheTarget {
        crate::listener::CacheTarget {
            cache: self.cache.clone(),
            schemas: self.config.db.schemas.clone(),
            claims_type: self.config.jwt.claims_type.clone(),
            metrics: self.metrics.clone(),
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

/// Register the gateway's routes; `App::new().configure(app::routes(state))`.
/// Call it inside the `HttpServer` factory: actix runs the factory on each
/// worker thread, and each call takes that worker's request pool.
pub fn routes(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let extra: Vec<(String, String)> = state.config.routes.clone();
        cfg.app_data(web::Data::new(WorkerPool(state.pools.assign())));
        cfg.app_data(state);
        cfg.service(
            web::resource("/")
                .route(web::get().to(crate::openapi::root))
                .route(web::head().to(crate::openapi::root))
                .default_service(web::to(root_method_not_allowed)),
        );
        cfg.service(web::resource("/rpc/{name}").route(web::route().to(rpc)));
        for (path, function) in extra {
            cfg.service(
                web::resource(path)
                    .app_data(web::Data::new(RouteTarget(function)))
                    .route(web::route().to(routed)),
            );
        }
        cfg.default_service(web::route().to(not_found));
    }
}

/// The function a configured route calls.
struct RouteTarget(String);

async fn rpc(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Payload,
    state: web::Data<AppState>,
    pool: web::Data<WorkerPool>,
) -> HttpResponse {
    handle(&req, &name, body, &state, &pool.0).await
}

async fn routed(
    req: HttpRequest,
    target: web::Data<RouteTarget>,
    body: web::Payload,
    state: web::Data<AppState>,
    pool: web::Data<WorkerPool>,
) -> HttpResponse {
    handle(&req, &target.0, body, &state, &pool.0).await
}

async fn root_method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Error> {
    Err(RequestError::InvalidRpcMethod {
        method: req.method().to_string(),
        details: Some("The root path serves the OpenAPI document with GET.".into()),
        allow: "OPTIONS,GET,HEAD",
    }
    .into())
}

async fn not_found() -> Result<HttpResponse, Error> {
    Err(RequestError::InvalidPath.into())
}

/// What one request did, for its log line and `Server-Timing`.
#[derive(Default)]
struct Trace {
    role: Option<String>,
    /// (stage name, duration), in order.
    stages: Vec<(&'static str, Duration)>,
    last: Option<Instant>,
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

/// Run the pipeline, render errors, add `Server-Timing`, log one line.
async fn handle(
    req: &HttpRequest,
    function: &str,
    body: web::Payload,
    state: &AppState,
    pool: &Pool,
) -> HttpResponse {
    let started = Instant::now();
    let mut trace = Trace::default();
    trace.start();
    let result = call(req, function, body, state, pool, &mut trace).await;
    let (mut response, code) = match result {
        Ok(r) => (r, None),
        Err(e) => (e.error_response(), Some(e.code())),
    };
    trace.mark("response");
    if state.config.server.timing {
        if let Ok(v) = HeaderValue::from_str(&trace.server_timing()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("server-timing"), v);
        }
    }
    let elapsed = started.elapsed();
    state.metrics.request(
        function,
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
        function,
        role = trace.role.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        code = code.as_deref().unwrap_or(""),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
    );
    response
}

/// The pipeline for one call.
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
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let jwt = state.jwt.load_full();
    let auth = auth::authenticate(
        authorization,
        jwt.as_deref(),
        config.db.anon_role.as_deref(),
    )?;
    trace.role = Some(auth.role.clone());
    trace.mark("jwt");
    let bytes = read_body(body, req, config.server.max_body_bytes).await?;
    let input = HttpInput {
        method: req.method().as_str(),
        path: req.path(),
        query: req.query_string(),
        headers: req.headers(),
        body: &bytes,
    };
    let mut rpc = parse::parse(function, &input, &config.db.schemas)?;
    trace.mark("parse");
    let cache = state.cache.load_full().ok_or(SchemaCacheError::NotLoaded)?;
    let plan = plan::plan(&rpc, &cache)?;
    let call = query::call_query(&plan);
    // What only the transaction needs is moved out of the request, not copied
    // (the body can be large); respond reads the method alone.
    let payload = if plan.claims_args.is_empty() {
        std::mem::take(&mut rpc.payload.raw)
    } else {
        auth::verify_token_arguments(&rpc.payload.raw, &plan.claims_args, jwt.as_deref())?
    };
    trace.mark("plan");
    let role_settings = cache.role_settings.get(&auth.role).cloned();
    let tx = TxRequest {
        role: auth.role,
        authenticated: auth.authenticated,
        claims_json: auth.claims_json,
        method: rpc.method.as_str().to_string(),
        path: std::mem::take(&mut rpc.path),
        headers_json: std::mem::take(&mut rpc.headers_json),
        cookies_json: std::mem::take(&mut rpc.cookies_json),
        search_path: query::search_path(&rpc.schema, &config.db.extra_search_path),
        role_settings,
        pre_request: state.pre_request_sql.clone(),
        query: call,
        payload,
        read_only: plan.read_only,
        singular: plan.singular,
    };
    let pool = pool.clone();
    let outcome = actix_web::rt::spawn(async move { execute::run(&pool, &tx).await })
        .await
        .map_err(|e| Error::Internal(format!("request task failed: {e}")))??;
    trace.mark("transaction");
    respond::respond(&rpc, &plan, outcome, jwt.as_deref())
}

/// `OPTIONS`: the methods a function allows, from the cache alone.
fn options(req: &HttpRequest, function: &str, state: &AppState) -> Result<HttpResponse, Error> {
    let input = HttpInput {
        method: "OPTIONS",
        path: req.path(),
        query: "",
        headers: req.headers(),
        body: &[],
    };
    let rpc = parse::parse(function, &input, &state.config.db.schemas)?;
    let cache = state.cache.load_full().ok_or(SchemaCacheError::NotLoaded)?;
    let overloads = plan::overloads(&rpc, &cache)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ALLOW, plan::allow(overloads)))
        .finish())
}

/// Read the body, refusing with 413 as soon as it exceeds `limit` (before
/// anything reaches the database).
async fn read_body(
    mut body: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<Bytes, Error> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(RequestError::PayloadTooLarge { limit }.into());
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = body.next().await {
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
