//! The admin server (`admin.port`): liveness, readiness, metrics and the schema
//! cache, on a port of its own so it can stay off the public network.
//!
//! `/live` answers while the process serves. `/ready` answers 200 only when the
//! schema cache is loaded and the database answers (within a second), else 503.
//! `/metrics` is Prometheus text; `/schema_cache` the cache as JSON.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::http::AppState;

/// How long `/ready` waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// Register the admin routes.
pub fn routes(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state)
            .route("/live", web::get().to(live))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics))
            .route("/schema_cache", web::get().to(schema_cache));
    }
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().finish()
}

/// Whether the gateway can serve: cache loaded and the database answering.
pub async fn is_ready(state: &AppState) -> bool {
    if state.cache.load().is_none() {
        return false;
    }
    let check = async {
        let client = state.pools.service().get().await.ok()?;
        client.simple_query("select 1").await.ok()
    };
    matches!(
        tokio::time::timeout(READY_TIMEOUT, check).await,
        Ok(Some(_))
    )
}

async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if is_ready(&state).await {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable().finish()
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(state.metrics.render(&state.readings()))
}

async fn schema_cache(state: web::Data<AppState>) -> HttpResponse {
    match state.cache.load_full() {
        Some(cache) => HttpResponse::Ok().json(&*cache),
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}
