//! CORS, per the Fetch standard: preflights answered by the gateway, allowed
//! origins echoed on actual responses.
//!
//! `server.cors_allowed_origins` empty (the default, as PostgREST) allows any
//! origin with `*`; a list allows exactly those origins, echoed back with
//! `Vary: Origin`. `Access-Control-Allow-Headers` always names `Authorization`
//! explicitly: the `*` wildcard does not cover it (Fetch standard, "CORS
//! non-wildcard request-header name"). The policy lives in the app state and
//! is swapped on a config reload.
//!
//! With the token cookie on (`jwt.cookie_name`), an allowed origin also gets
//! `Access-Control-Allow-Credentials: true`, so its pages can send the cookie
//! (`fetch(…, {credentials: "include"})`). Never with `*`: the Fetch standard
//! refuses credentials with a wildcard, and an empty allowlist stays "any
//! origin, no cookies" here; whether a cookie-borne write may run is the CSRF
//! check's (`pipeline::csrf`).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use arc_swap::ArcSwap;

/// Request headers a browser may send (on top of what it asks for).
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Accept, Accept-Profile, Content-Profile, Prefer, Range, X-Client-Info, Pgrpc-Lsn";
/// Response headers scripts may read; `RateLimit` and `RateLimit-Policy` so
/// a page can say when to try again before it is refused (the sign-in
/// functions ship with a rate limit).
const EXPOSE_HEADERS: &str = "Content-Range, Content-Profile, Content-Location, Location, Retry-After, RateLimit, RateLimit-Policy, Server-Timing, WWW-Authenticate, Pgrpc-Lsn";
const ALLOW_METHODS: &str = "GET, HEAD, POST, OPTIONS";
/// How long a browser may cache a preflight (seconds).
const MAX_AGE: &str = "86400";

/// Which origins may call.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    /// Empty = any origin.
    pub allowed_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` to an allowed, listed
    /// origin (set when `jwt.cookie_name` is).
    pub allow_credentials: bool,
}

impl CorsPolicy {
    /// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.allowed_origins.is_empty() {
            return Some(HeaderValue::from_static("*"));
        }
        self.allowed_origins
            .iter()
            .any(|o| o == origin)
            .then(|| HeaderValue::from_str(origin).ok())
            .flatten()
    }

    /// Whether credentials go with `origin`'s answer: only to a listed one.
    fn credentials(&self, origin: &str) -> bool {
        self.allow_credentials && self.allowed_origins.iter().any(|o| o == origin)
    }

    fn add_actual(&self, origin: &str, headers: &mut HeaderMap) {
        if self.credentials(origin) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(value) = self.allow(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        if !self.allowed_origins.is_empty() {
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }

    fn preflight(&self, origin: &str, requested_headers: Option<&HeaderValue>) -> HttpResponse {
        let mut res = HttpResponse::Ok();
        if let Some(value) = self.allow(origin) {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, value));
            res.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS));
            let allow_headers = match requested_headers.and_then(|v| v.to_str().ok()) {
                Some(asked) if !asked.trim().is_empty() => format!("{ALLOW_HEADERS}, {asked}"),
                _ => ALLOW_HEADERS.to_string(),
            };
            res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers));
            res.insert_header((header::ACCESS_CONTROL_MAX_AGE, MAX_AGE));
            if self.credentials(origin) {
                res.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
            }
        }
        if !self.allowed_origins.is_empty() {
            res.insert_header((header::VARY, "Origin"));
        }
        res.finish()
    }
}

/// The middleware (`App::wrap(from_fn(cors::middleware))`).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(origin) = origin else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let policy = req
        .app_data::<web::Data<ArcSwap<CorsPolicy>>>()
        .map(|p| p.load_full())
        .unwrap_or_default();
    let is_preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let res = policy.preflight(
            &origin,
            req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS),
        );
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    policy.add_actual(&origin, res.headers_mut());
    Ok(res.map_into_left_body())
}
