//! Errors: one type for every stage, one table from error to HTTP.
//!
//! Every error the gateway answers with is an [`Error`], made of per-stage
//! sub-enums. Each knows its status, code, message, details, hint and extra
//! headers; one `ResponseError` impl renders `{"code","message","details","hint"}`.
//!
//! Codes reuse PostgREST's numbers where the condition is the same, so its
//! clients and docs apply (PostgREST `src/PostgREST/Error.hs`):
//! `PGRST0xx` connection, `1xx` request, `2xx` schema cache, `3xx` JWT.
//! Codes of our own start at `x50` within a group so they never collide with one
//! PostgREST may add next. Retired codes stay listed here as comments and are never
//! reused (none yet).
//!
//! Database errors keep their SQLSTATE as `code`; [`sqlstate_status`] is the
//! single SQLSTATE → HTTP mapping. What reaches the client is deliberate: an
//! internal failure is logged in full and answered generically.
//!
//! One cohesive thing — the error type and its one mapping to HTTP — so one
//! file, a little longer than most; the JWT stage's own reasons live in
//! `jwt::errors`.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;

use crate::jwt::JwtError;

/// Seconds a client should wait before retrying while the database is away.
const RETRY_AFTER_SECONDS: &str = "5";

/// Anything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP request itself is wrong.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The schema cache has no (single) function for it.
    #[error(transparent)]
    SchemaCache(#[from] SchemaCacheError),
    /// The Authorization header's token was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The database answered with an error, or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The function's response settings are unusable.
    #[error(transparent)]
    Response(#[from] ResponseSettingsError),
    /// A declared limit refused the call (`pipeline::admit`).
    #[error(transparent)]
    Admit(#[from] AdmitError),
    /// A bug or an environment failure; logged in full, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Request-stage errors (PostgREST `ApiRequestError`).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// PGRST100: a query-string parameter cannot be used.
    #[error("invalid query parameter")]
    QueryParam {
        /// What is wrong.
        message: String,
        /// Where.
        details: String,
    },
    /// PGRST101: a method other than GET/HEAD/POST/OPTIONS on a function, or GET on a volatile one.
    #[error("method not allowed")]
    InvalidRpcMethod {
        /// The method.
        method: String,
        /// Why, when more than "not allowed".
        details: Option<String>,
        /// Methods the function accepts.
        allow: &'static str,
    },
    /// PGRST102: the body is not JSON, not an object, or of an unsupported type.
    #[error("invalid body")]
    InvalidBody {
        /// What is wrong.
        message: String,
        /// Parser position and the like.
        details: Option<String>,
    },
    /// PGRST103: a negative `limit`, or an `offset` past the end of a counted result.
    #[error("range not satisfiable")]
    InvalidRange {
        /// Which boundary is wrong.
        details: String,
    },
    /// PGRST106: the profile header names a schema that is not exposed.
    #[error("schema not exposed")]
    UnacceptableSchema {
        /// The schema asked for.
        schema: String,
        /// The exposed ones.
        exposed: Vec<String>,
    },
    /// PGRST107: none of the accepted media types can be produced.
    #[error("not acceptable")]
    MediaType {
        /// The `Accept` header as sent.
        accept: String,
    },
    /// PGRST116: a singular response was asked for but the result has n rows.
    #[error("singular response mismatch")]
    Singularity {
        /// Rows in the result.
        rows: i64,
    },
    /// PGRST125: no route matches the path.
    #[error("no such path")]
    InvalidPath,
    /// PGRST150: the body exceeds `server.max_body_bytes` (our own; PostgREST has no limit).
    #[error("payload too large")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// PGRST154: the body did not arrive in full within `server.body_timeout`
    /// (our own; PostgREST has no body deadline).
    #[error("request body timed out")]
    BodyTimeout {
        /// The deadline.
        timeout: std::time::Duration,
    },
    /// PGRST157: the client hung up before its call ended; the call was
    /// cancelled and rolled back (our own). Nobody reads the answer: the
    /// status (nginx's 499) is for the log line and the metrics.
    #[error("client closed the connection")]
    ClientClosed,
    /// PGRST161: the `Pgrpc-Lsn` request header is not a WAL position
    /// (`16/B374D848`), our own (read-your-writes over read replicas).
    #[error("invalid Pgrpc-Lsn header")]
    InvalidLsn,
    /// A token given as a claims-type argument was refused: bad input, so 400
    /// (not 401: the caller's own identity is not in question). Keeps the JWT code.
    #[error("invalid token argument {param}: {error}")]
    TokenArgument {
        /// The parameter.
        param: String,
        /// Why the token was refused.
        error: JwtError,
    },
}

/// Schema-cache errors (PostgREST `SchemaCacheError`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaCacheError {
    /// PGRST002: the cache has not been loaded yet.
    #[error("schema cache not loaded")]
    NotLoaded,
    /// PGRST202: no function with that name and argument set.
    #[error("function not found")]
    NoRpc {
        /// Schema searched.
        schema: String,
        /// Name asked for.
        name: String,
        /// Argument names sent.
        args: Vec<String>,
        /// "Perhaps you meant …".
        hint: Option<String>,
    },
    /// PGRST203: several overloads match.
    #[error("ambiguous function")]
    AmbiguousRpc {
        /// `schema.name(a => type, …)` of each candidate.
        candidates: Vec<String>,
    },
}

/// Authorization-header errors (PostgREST `JwtError`), always 401.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// PGRST301/PGRST303: the token was refused.
    #[error("invalid token: {0}")]
    Invalid(JwtError),
    /// PGRST302: no token and no anonymous role.
    #[error("anonymous access is disabled")]
    TokenRequired,
    /// PGRST300: tokens are configured out (no key).
    #[error("server lacks a JWT key")]
    SecretMissing,
    /// PGRST350 (our own): a write authenticated by the token cookie comes
    /// from an origin that is not allowed (CSRF protection), 403.
    #[error("cross-site request refused")]
    CrossSite {
        /// Which header named which origin, and the rule it broke.
        details: String,
    },
}

/// Database errors.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server raised an error: keeps its SQLSTATE and texts.
    #[error("database error {code}: {message}")]
    Server {
        /// SQLSTATE.
        code: String,
        /// MESSAGE.
        message: String,
        /// DETAIL.
        detail: Option<String>,
        /// HINT.
        hint: Option<String>,
        /// Whether the request ran with a token (42501 → 403 rather than 401).
        authenticated: bool,
    },
    /// `RAISE SQLSTATE 'PGRST'` with a valid payload: the function chose the
    /// whole response. Parsed once, where the error enters ([`Error::server`]).
    #[error("database error PGRST: {}", .0.message)]
    Raised(Box<Raised>),
    /// PGRST001: the connection failed or broke.
    #[error("database connection error: {0}")]
    Connection(String),
    /// PGRST003: no pooled connection within `db.pool_timeout`.
    #[error("timed out acquiring a connection from the pool")]
    PoolTimeout,
    /// PGRST050: the connection was lost after COMMIT was sent and before
    /// its answer arrived, so the transaction may or may not have committed
    /// (our own). Never answered as a plain error: a client must not take a
    /// write that may have happened for one that failed.
    #[error("outcome unknown: the connection was lost after COMMIT was sent: {0}")]
    OutcomeUnknown(String),
}

/// Admission errors: a limit the function declares (`pgrpc.*` settings)
/// refused the call before any database work.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// PGRST060 (our own): `pgrpc.max_concurrency` calls are running and the
    /// wait queue is full, or the call waited `pgrpc.max_wait` in vain.
    #[error("function busy")]
    Busy {
        /// `schema.name`.
        function: String,
        /// The queue was full (else: the wait ran out).
        queue_full: bool,
        /// `Retry-After`, seconds.
        retry_after: u64,
    },
    /// PGRST160 (our own): `pgrpc.rate_limit` for this client address is used up.
    #[error("rate limited")]
    RateLimited {
        /// `schema.name`.
        function: String,
        /// `Retry-After`, seconds.
        retry_after: u64,
        /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
        policy: String,
        /// `RateLimit`.
        state: String,
    },
}

/// Response-settings errors.
#[derive(Debug, thiserror::Error)]
pub enum ResponseSettingsError {
    /// PGRST111: `response.headers` is not an array of one-key objects with string values.
    #[error("invalid response.headers")]
    Headers,
    /// PGRST112: `response.status` is not a status code.
    #[error("invalid response.status")]
    Status,
    /// PGRST111 too: a `Set-Cookie` holds the `{token}` placeholder but the
    /// result has no token, or several.
    #[error("response.headers {{token}} without exactly one token")]
    TokenCookie {
        /// Tokens in the result.
        tokens: usize,
    },
    /// PGRST151: `response.error` is not a JSON object with `code` and `message` (our own).
    #[error("invalid response.error")]
    ErrorSetting,
    /// PGRST121: `RAISE SQLSTATE 'PGRST'` with MESSAGE/DETAIL that are not the expected JSON.
    #[error("invalid RAISE PGRST payload")]
    RaiseParse {
        /// What could not be parsed.
        details: String,
        /// What it must look like.
        hint: &'static str,
    },
}

impl Error {
    /// Wrap a tokio-postgres error, keeping SQLSTATE and texts of server errors.
    pub fn from_pg(e: &tokio_postgres::Error, authenticated: bool) -> Error {
        match e.as_db_error() {
            Some(db) => Error::server(
                db.code().code(),
                db.message(),
                db.detail(),
                db.hint(),
                authenticated,
            ),
            None => Error::Db(DbError::Connection(e.to_string())),
        }
    }

    /// An error the server raised. `RAISE SQLSTATE 'PGRST'` is parsed here,
    /// once, into [`DbError::Raised`] (or PGRST121 when its payload is not
    /// the documented JSON); every other SQLSTATE keeps its texts.
    pub fn server(
        code: &str,
        message: &str,
        detail: Option<&str>,
        hint: Option<&str>,
        authenticated: bool,
    ) -> Error {
        if code == "PGRST" {
            return match parse_raise_pgrst(message, detail) {
                Ok(raised) => Error::Db(DbError::Raised(Box::new(raised))),
                Err(e) => Error::Response(e),
            };
        }
        Error::Db(DbError::Server {
            code: code.to_string(),
            message: message.to_string(),
            detail: detail.map(str::to_string),
            hint: hint.map(str::to_string),
            authenticated,
        })
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Request(e) => match e {
                RequestError::QueryParam { .. }
                | RequestError::InvalidBody { .. }
                | RequestError::TokenArgument { .. } => StatusCode::BAD_REQUEST,
                RequestError::InvalidRpcMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
                RequestError::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
                RequestError::UnacceptableSchema { .. }
                | RequestError::MediaType { .. }
                | RequestError::Singularity { .. } => StatusCode::NOT_ACCEPTABLE,
                RequestError::InvalidPath => StatusCode::NOT_FOUND,
                RequestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                RequestError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
                RequestError::ClientClosed => {
                    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
                }
                RequestError::InvalidLsn => StatusCode::BAD_REQUEST,
            },
            Error::SchemaCache(e) => match e {
                SchemaCacheError::NotLoaded => StatusCode::SERVICE_UNAVAILABLE,
                SchemaCacheError::NoRpc { .. } => StatusCode::NOT_FOUND,
                SchemaCacheError::AmbiguousRpc { .. } => StatusCode::MULTIPLE_CHOICES,
            },
            Error::Auth(AuthError::SecretMissing) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Auth(AuthError::CrossSite { .. }) => StatusCode::FORBIDDEN,
            Error::Auth(AuthError::Invalid(j)) if j.is_server_error() => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Error::Auth(_) => StatusCode::UNAUTHORIZED,
            Error::Db(e) => match e {
                DbError::Server {
                    code,
                    message,
                    authenticated,
                    ..
                } => sqlstate_status(code, message, *authenticated),
                DbError::Raised(raised) => raised.status,
                DbError::Connection(_) => StatusCode::SERVICE_UNAVAILABLE,
                DbError::PoolTimeout => StatusCode::GATEWAY_TIMEOUT,
                DbError::OutcomeUnknown(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Error::Admit(AdmitError::Busy { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Admit(AdmitError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            Error::Response(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body's `code`.
    pub fn code(&self) -> String {
        let code = match self {
            Error::Request(e) => match e {
                RequestError::QueryParam { .. } => "PGRST100",
                RequestError::InvalidRpcMethod { .. } => "PGRST101",
                RequestError::InvalidBody { .. } => "PGRST102",
                RequestError::InvalidRange { .. } => "PGRST103",
                RequestError::UnacceptableSchema { .. } => "PGRST106",
                RequestError::MediaType { .. } => "PGRST107",
                RequestError::Singularity { .. } => "PGRST116",
                RequestError::InvalidPath => "PGRST125",
                RequestError::PayloadTooLarge { .. } => "PGRST150",
                RequestError::BodyTimeout { .. } => "PGRST154",
                RequestError::ClientClosed => "PGRST157",
                RequestError::InvalidLsn => "PGRST161",
                RequestError::TokenArgument { error, .. } => error.code(),
            },
            Error::SchemaCache(e) => match e {
                SchemaCacheError::NotLoaded => "PGRST002",
                SchemaCacheError::NoRpc { .. } => "PGRST202",
                SchemaCacheError::AmbiguousRpc { .. } => "PGRST203",
            },
            Error::Auth(e) => match e {
                AuthError::Invalid(j) => j.code(),
                AuthError::TokenRequired => "PGRST302",
                AuthError::SecretMissing => "PGRST300",
                AuthError::CrossSite { .. } => "PGRST350",
            },
            Error::Db(e) => match e {
                DbError::Server { code, .. } => return code.clone(),
                DbError::Raised(raised) => return raised.code.clone(),
                DbError::Connection(_) => "PGRST001",
                DbError::PoolTimeout => "PGRST003",
                DbError::OutcomeUnknown(_) => "PGRST050",
            },
            Error::Response(e) => match e {
                ResponseSettingsError::Headers | ResponseSettingsError::TokenCookie { .. } => {
                    "PGRST111"
                }
                ResponseSettingsError::Status => "PGRST112",
                ResponseSettingsError::ErrorSetting => "PGRST151",
                ResponseSettingsError::RaiseParse { .. } => "PGRST121",
            },
            Error::Admit(AdmitError::Busy { .. }) => "PGRST060",
            Error::Admit(AdmitError::RateLimited { .. }) => "PGRST160",
            Error::Internal(_) => "PGRSTX00",
        };
        code.to_string()
    }

    /// The body's `message`.
    pub fn message(&self) -> String {
        match self {
            Error::Request(e) => match e {
                RequestError::QueryParam { message, .. } => message.clone(),
                RequestError::InvalidRpcMethod { method, .. } => {
                    format!("Cannot use the {method} method on RPC")
                }
                RequestError::InvalidBody { message, .. } => message.clone(),
                RequestError::InvalidRange { .. } => "Requested range not satisfiable".into(),
                RequestError::UnacceptableSchema { schema, .. } => format!("Invalid schema: {schema}"),
                RequestError::MediaType { accept } => {
                    format!("None of these media types are available: {accept}")
                }
                RequestError::Singularity { .. } => "Cannot coerce the result to a single JSON object".into(),
                RequestError::InvalidPath => "Invalid path specified in request URL".into(),
                RequestError::PayloadTooLarge { .. } => "Request body is too large".into(),
                RequestError::BodyTimeout { .. } => "The request body did not arrive in time".into(),
                RequestError::ClientClosed => {
                    "The client closed the connection; the call was cancelled".into()
                }
                RequestError::InvalidLsn => "The Pgrpc-Lsn header is not a WAL position".into(),
                // The JWT module's text for an empty token names the header.
                RequestError::TokenArgument {
                    error: JwtError::Empty,
                    ..
                } => "The JWT is empty".into(),
                RequestError::TokenArgument { error, .. } => error.message(),
            },
            Error::SchemaCache(e) => match e {
                SchemaCacheError::NotLoaded => {
                    "Could not query the database for the schema cache. Retrying.".into()
                }
                SchemaCacheError::NoRpc {
                    schema, name, args, ..
                } => {
                    let params = if args.is_empty() {
                        " without parameters".to_string()
                    } else {
                        format!("({})", args.join(", "))
                    };
                    format!("Could not find the function {schema}.{name}{params} in the schema cache")
                }
                SchemaCacheError::AmbiguousRpc { candidates } => format!(
                    "Could not choose the best candidate function between: {}",
                    candidates.join(", ")
                ),
            },
            Error::Auth(e) => match e {
                AuthError::Invalid(j) => j.message(),
                AuthError::TokenRequired => "Anonymous access is disabled".into(),
                AuthError::SecretMissing => "Server lacks JWT secret".into(),
                AuthError::CrossSite { .. } => "Cross-site request refused".into(),
            },
            Error::Db(e) => match e {
                DbError::Server { .. } if self.hides_server_text() => "Internal server error".into(),
                DbError::Server { message, .. } => message.clone(),
                DbError::Raised(raised) => raised.message.clone(),
                DbError::Connection(_) => "Database client error. Retrying the connection.".into(),
                DbError::PoolTimeout => "Timed out acquiring connection from connection pool.".into(),
                DbError::OutcomeUnknown(_) => "The connection to the database was lost after COMMIT was sent; the call may or may not have taken effect".into(),
            },
            Error::Response(e) => match e {
                ResponseSettingsError::Headers => "response.headers guc must be a JSON array composed of objects with a single key and a string value".into(),
                ResponseSettingsError::Status => "response.status guc must be a valid status code".into(),
                ResponseSettingsError::TokenCookie { .. } => "response.headers: a Set-Cookie with {token} needs exactly one token in the result".into(),
                ResponseSettingsError::ErrorSetting => "response.error guc must be a JSON object with string keys 'code' and 'message' and optional 'details' and 'hint'".into(),
                ResponseSettingsError::RaiseParse { .. } => {
                    "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error".into()
                }
            },
            Error::Admit(e) => match e {
                AdmitError::Busy { function, .. } => {
                    format!("Too many calls of {function} at once. Retry later.")
                }
                AdmitError::RateLimited { function, .. } => {
                    format!("Too many calls of {function} from this address. Retry later.")
                }
            },
            Error::Internal(_) => "Internal server error".into(),
        }
    }

    /// The body's `details`.
    pub fn details(&self) -> Option<Value> {
        let text = match self {
            Error::Request(e) => match e {
                RequestError::QueryParam { details, .. } => Some(details.clone()),
                RequestError::InvalidRpcMethod { details, .. } => details.clone(),
                RequestError::InvalidBody { details, .. } => details.clone(),
                RequestError::InvalidRange { details } => Some(details.clone()),
                RequestError::Singularity { rows } => {
                    Some(format!("The result contains {rows} rows"))
                }
                RequestError::PayloadTooLarge { limit } => Some(format!(
                    "The limit is {limit} bytes (server.max_body_bytes)"
                )),
                RequestError::BodyTimeout { timeout } => Some(format!(
                    "The whole body must arrive within {} s (server.body_timeout)",
                    timeout.as_secs()
                )),
                // Unlike the Authorization header's PostgREST body, a token
                // parameter says which check failed (issue 15).
                RequestError::TokenArgument { param, error } => Some(format!(
                    "The token given for parameter '{param}' was refused: {}",
                    error.reason()
                )),
                RequestError::InvalidLsn => Some(
                    "Send back the Pgrpc-Lsn header of a write's response unchanged, e.g. 16/B374D848".into(),
                ),
                _ => None,
            },
            Error::SchemaCache(SchemaCacheError::NoRpc {
                schema, name, args, ..
            }) => {
                let params = match args.len() {
                    0 => " without parameters".to_string(),
                    1 => format!(" with parameter {}", args[0]),
                    _ => format!(" with parameters {}", args.join(", ")),
                };
                Some(format!(
                    "Searched for the function {schema}.{name}{params} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
                ))
            }
            Error::Auth(AuthError::Invalid(j)) => j.details(),
            Error::Auth(AuthError::CrossSite { details }) => Some(details.clone()),
            Error::Db(DbError::Server { .. }) if self.hides_server_text() => None,
            Error::Db(DbError::Server { detail, .. }) => detail.clone(),
            Error::Db(DbError::Raised(raised)) => raised.details.clone(),
            Error::Response(ResponseSettingsError::RaiseParse { details, .. }) => {
                Some(details.clone())
            }
            Error::Response(ResponseSettingsError::TokenCookie { tokens }) => Some(format!(
                "The result holds {tokens} values of the claims type"
            )),
            Error::Admit(AdmitError::Busy { queue_full, .. }) => Some(if *queue_full {
                "Every slot is taken and the wait queue is full (pgrpc.max_concurrency, pgrpc.max_queue)".into()
            } else {
                "No slot came free within the function's pgrpc.max_wait".into()
            }),
            Error::Admit(AdmitError::RateLimited { retry_after, .. }) => Some(format!(
                "The function's pgrpc.rate_limit is used up; the next call is allowed in {retry_after} s"
            )),
            _ => None,
        };
        text.map(Value::String)
    }

    /// The body's `hint`.
    pub fn hint(&self) -> Option<Value> {
        let text = match self {
            Error::Request(RequestError::UnacceptableSchema { exposed, .. }) => Some(format!(
                "Only the following schemas are exposed: {}",
                exposed.join(", ")
            )),
            Error::SchemaCache(SchemaCacheError::NoRpc { hint, .. }) => hint.clone(),
            Error::Db(DbError::OutcomeUnknown(_)) => Some(
                "Check whether the call took effect before repeating it; repeating a write that did take effect may do it twice".into(),
            ),
            Error::SchemaCache(SchemaCacheError::AmbiguousRpc { .. }) => Some(
                "Try renaming the parameters or the function itself in the database so function overloading can be resolved".into(),
            ),
            Error::Db(DbError::Server { .. }) if self.hides_server_text() => None,
            Error::Db(DbError::Server { hint, .. }) => hint.clone(),
            Error::Db(DbError::Raised(raised)) => raised.hint.clone(),
            Error::Response(ResponseSettingsError::RaiseParse { hint, .. }) => Some(hint.to_string()),
            Error::Auth(AuthError::CrossSite { .. }) => Some(
                "Call from an origin listed in server.cors_allowed_origins, or send the token in the Authorization header".into(),
            ),
            _ => None,
        };
        text.map(Value::String)
    }

    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`, RAISE PGRST headers).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::new();
        match self {
            Error::Request(RequestError::InvalidRpcMethod { allow, .. }) => {
                out.push((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Error::Db(DbError::Connection(_)) | Error::SchemaCache(SchemaCacheError::NotLoaded) => {
                out.push((
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                ));
            }
            Error::Auth(AuthError::Invalid(j)) => {
                // RFC 6750 §3: the challenge names the error; the description is a quoted string.
                let description = j.message().replace(['"', '\\'], "'");
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "Bearer error=\"invalid_token\", error_description=\"{description}\""
                )) {
                    out.push((header::WWW_AUTHENTICATE, v));
                }
            }
            Error::Auth(AuthError::TokenRequired) => {
                out.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            Error::Admit(AdmitError::Busy { retry_after, .. }) => {
                out.push((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
            }
            Error::Admit(AdmitError::RateLimited {
                retry_after,
                policy,
                state,
                ..
            }) => {
                out.push((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
                for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
                    if let Ok(v) = HeaderValue::from_str(value) {
                        out.push((HeaderName::from_static(name), v));
                    }
                }
            }
            Error::Db(DbError::Raised(raised)) => out.extend(raised.headers.iter().cloned()),
            Error::Db(DbError::Server { code, .. })
                if code.starts_with("08") || code == "57P01" =>
            {
                out.push((
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                ));
            }
            _ => {}
        }
        if self.status() == StatusCode::UNAUTHORIZED
            && !out.iter().any(|(name, _)| name == header::WWW_AUTHENTICATE)
        {
            out.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        out
    }

    /// A database error answered 500 that no function chose (not `PTnnn`):
    /// something broke on the server's side (an internal error, a PL/pgSQL
    /// bug, a resource limit), and its texts may name tables, functions or
    /// values the client must not see. The client gets the SQLSTATE (so it
    /// can tell, say, 40001 from XX000) with a generic message; the log gets
    /// the texts. PostgREST passes them through; see the README's
    /// "Coming from PostgREST".
    fn hides_server_text(&self) -> bool {
        matches!(self, Error::Db(DbError::Server { code, .. }) if !code.starts_with("PT"))
            && self.status() == StatusCode::INTERNAL_SERVER_ERROR
    }

    /// Whether this is the client's doing (logged at debug) rather than ours (logged in full).
    pub fn is_internal(&self) -> bool {
        // A busy function is a refusal by design, not a failure: under a
        // flood, one error log line per refused call would be a flood too.
        matches!(self, Error::Internal(_))
            || (self.status().is_server_error() && !matches!(self, Error::Admit(_)))
    }
}

/// The single SQLSTATE → HTTP mapping, PostgREST's table
/// (`mapSQLtoHTTP` in PostgREST `Error.hs`; docs: references/errors).
pub fn sqlstate_status(code: &str, message: &str, authenticated: bool) -> StatusCode {
    let s = |n: u16| StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match code {
        // PTnnn: a function chose the status (`RAISE ... USING ERRCODE = 'PT402'`).
        // Only real statuses: the http crate would accept any three digits.
        c if c.starts_with("PT") => c[2..]
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n))
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        c if c.starts_with("08") => s(503), // connection exception
        c if c.starts_with("09") => s(500), // triggered action exception
        c if c.starts_with("0L") => s(403), // invalid grantor
        c if c.starts_with("0P") => s(403), // invalid role specification
        "23503" => s(409),                  // foreign_key_violation
        "23505" => s(409),                  // unique_violation
        "25006" => s(405),                  // read_only_sql_transaction
        // cardinality_violation: pg-safeupdate's "requires a WHERE clause" is the client's.
        "21000" if message.ends_with("requires a WHERE clause") => s(400),
        "21000" => s(500),
        // invalid_parameter_value: `set role` to a role that does not exist (PostgREST #3601).
        "22023" if message.starts_with("role") && message.ends_with("does not exist") => s(401),
        c if c.starts_with("25") => s(500), // invalid transaction state
        c if c.starts_with("28") => s(403), // invalid authorization specification
        c if c.starts_with("2D") => s(500), // invalid transaction termination
        c if c.starts_with("38") => s(500), // external routine exception
        c if c.starts_with("39") => s(500), // external routine invocation exception
        c if c.starts_with("3B") => s(500), // savepoint exception
        c if c.starts_with("40") => s(500), // transaction rollback
        "53400" => s(500),                  // configuration_limit_exceeded
        c if c.starts_with("53") => s(503), // insufficient resources
        c if c.starts_with("54") => s(500), // program limit exceeded
        c if c.starts_with("55") => s(500), // object not in prerequisite state
        "57014" => s(504),                  // query_canceled: statement_timeout
        "57P01" => s(503),                  // admin_shutdown: the server is restarting
        c if c.starts_with("57") => s(500), // operator intervention
        c if c.starts_with("58") => s(500), // system error
        c if c.starts_with("F0") => s(500), // configuration file error
        c if c.starts_with("HV") => s(500), // foreign data wrapper error
        "P0001" => s(400),                  // RAISE EXCEPTION's default
        c if c.starts_with("P0") => s(500), // other PL/pgSQL errors
        c if c.starts_with("XX") => s(500), // internal error
        "42883" => s(404),                  // undefined_function
        "42P01" => s(404),                  // undefined_table
        "42P17" => s(500),                  // infinite_recursion (RLS policies)
        "42501" if authenticated => s(403), // insufficient_privilege
        "42501" => s(401),
        _ => s(400),
    }
}

/// `RAISE SQLSTATE 'PGRST' USING MESSAGE = '{"code":…,"message":…}', DETAIL = '{"status":…,"headers":{…}}'`,
/// parsed (PostgREST `Error.hs`, `PgError` with `PGRST`).
#[derive(Debug, Clone)]
pub struct Raised {
    /// `status` of DETAIL.
    pub status: StatusCode,
    /// `code` of MESSAGE.
    pub code: String,
    /// `message` of MESSAGE.
    pub message: String,
    /// `details` of MESSAGE.
    pub details: Option<String>,
    /// `hint` of MESSAGE.
    pub hint: Option<String>,
    /// `headers` of DETAIL.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

fn parse_raise_pgrst(message: &str, detail: Option<&str>) -> Result<Raised, ResponseSettingsError> {
    const MSG_HINT: &str =
        "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.";
    const DET_HINT: &str =
        "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.";
    let msg_err = || ResponseSettingsError::RaiseParse {
        details: format!("Invalid JSON value for MESSAGE: '{message}'"),
        hint: MSG_HINT,
    };
    let m: serde_json::Map<String, Value> = serde_json::from_str(message).map_err(|_| msg_err())?;
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let (Some(code), Some(msg)) = (text(m.get("code")), text(m.get("message"))) else {
        return Err(msg_err());
    };
    let Some(detail) = detail else {
        return Err(ResponseSettingsError::RaiseParse {
            details: "DETAIL is missing in the RAISE statement".into(),
            hint: DET_HINT,
        });
    };
    let det_err = || ResponseSettingsError::RaiseParse {
        details: format!("Invalid JSON value for DETAIL: '{detail}'"),
        hint: DET_HINT,
    };
    let d: serde_json::Map<String, Value> = serde_json::from_str(detail).map_err(|_| det_err())?;
    let status = d
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(det_err)?;
    let mut headers = Vec::new();
    match d.get("headers") {
        Some(Value::Object(h)) => {
            for (k, v) in h {
                let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(k.as_str()),
                    v.as_str().map(HeaderValue::from_str),
                ) else {
                    return Err(det_err());
                };
                headers.push((name, value));
            }
        }
        _ => return Err(det_err()),
    }
    Ok(Raised {
        status,
        code,
        message: msg,
        details: text(m.get("details")),
        hint: text(m.get("hint")),
        headers,
    })
}

/// The JSON error body.
#[derive(Serialize)]
struct Body {
    code: String,
    message: String,
    details: Option<Value>,
    hint: Option<Value>,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.is_internal() {
            tracing::error!(error = %self, code = %self.code(), "request failed");
        } else {
            tracing::debug!(error = %self, code = %self.code(), "request refused");
        }
        let body = Body {
            code: self.code(),
            message: self.message(),
            details: self.details(),
            hint: self.hint(),
        };
        let mut res = HttpResponse::build(self.status());
        res.insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"));
        for (name, value) in self.headers() {
            res.append_header((name, value));
        }
        if matches!(self, Error::Request(RequestError::BodyTimeout { .. })) {
            // The rest of the body may still be on its way: the connection
            // cannot carry another request (RFC 9110 §15.5.9).
            res.force_close();
        }
        res.body(serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"code":"PGRSTX00","message":"Internal server error","details":null,"hint":null}"#.into()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_table_matches_postgrest() {
        let cases = [
            ("08006", 503),
            ("23505", 409),
            ("23503", 409),
            ("25006", 405),
            ("28000", 403),
            ("P0001", 400),
            ("P0002", 500),
            ("42883", 404),
            ("42P01", 404),
            ("22P02", 400),
            ("PT402", 402),
            ("PT999", 500),
            ("53400", 500),
            ("53300", 503),
            ("57014", 504),
            ("XX000", 500),
        ];
        for (code, status) in cases {
            assert_eq!(sqlstate_status(code, "", false).as_u16(), status, "{code}");
        }
        assert_eq!(sqlstate_status("42501", "", false).as_u16(), 401);
        assert_eq!(sqlstate_status("42501", "", true).as_u16(), 403);
        assert_eq!(
            sqlstate_status("22023", "role \"x\" does not exist", true).as_u16(),
            401
        );
        assert_eq!(sqlstate_status("22023", "other", true).as_u16(), 400);
    }

    #[test]
    fn unknown_outcome_is_503_without_retry_after_and_a_hang_up_is_499() {
        let e = Error::Db(DbError::OutcomeUnknown("connection closed".into()));
        assert_eq!((e.status().as_u16(), e.code().as_str()), (503, "PGRST050"));
        // Not an invitation to repeat a write that may have happened.
        assert!(e.headers().is_empty());
        assert!(e.hint().is_some());
        let e = Error::Request(RequestError::ClientClosed);
        assert_eq!((e.status().as_u16(), e.code().as_str()), (499, "PGRST157"));
        assert!(!e.is_internal());
    }

    #[test]
    fn raise_pgrst_controls_status_body_and_headers() {
        let e = Error::server(
            "PGRST",
            r#"{"code":"123","message":"Payment Required","details":"Quota exceeded","hint":"Upgrade"}"#,
            Some(r#"{"status":402,"headers":{"X-Powered-By":"Nerd Rage"}}"#),
            None,
            false,
        );
        assert_eq!(e.status().as_u16(), 402);
        assert_eq!(e.code(), "123");
        assert_eq!(e.message(), "Payment Required");
        assert_eq!(e.details(), Some(Value::String("Quota exceeded".into())));
        assert!(e
            .headers()
            .iter()
            .any(|(n, v)| n == "x-powered-by" && v == "Nerd Rage"));

        let bad = Error::server("PGRST", "not json", None, None, false);
        assert_eq!(bad.status().as_u16(), 500);
        assert_eq!(bad.code(), "PGRST121");
    }

    #[test]
    fn server_side_500s_keep_their_code_but_not_their_texts() {
        let e = Error::server(
            "P0002",
            "query returned no rows",
            Some("in function secret.f()"),
            Some("look at table x"),
            true,
        );
        assert_eq!((e.status().as_u16(), e.code().as_str()), (500, "P0002"));
        assert_eq!(e.message(), "Internal server error");
        assert_eq!((e.details(), e.hint()), (None, None));
        // What a function chose, and what the client caused, stay as raised.
        let chosen = Error::server("PT500", "maintenance", Some("back at 5"), None, true);
        assert_eq!(chosen.message(), "maintenance");
        let client = Error::server("22012", "division by zero", None, None, true);
        assert_eq!(
            (client.status().as_u16(), client.message().as_str()),
            (400, "division by zero")
        );
        let timeout = Error::server(
            "57014",
            "canceling statement due to statement timeout",
            None,
            None,
            true,
        );
        assert_eq!(
            timeout.message(),
            "canceling statement due to statement timeout"
        );
    }
}
