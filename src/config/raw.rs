//! What the config file and the environment say, before validation: the
//! `Raw*` sections with their defaults, and the lenient deserializers that let
//! every typed key take its native TOML type or a string (how environment
//! values arrive). Nothing here checks a value; `super` does, once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::{DEFAULT_JWT_CACHE_BYTES, DEFAULT_JWT_CACHE_ENTRIES, DEFAULT_MAX_ENDED_SESSIONS};

/// The config file and environment as given, before validation.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[db]`
    pub db: RawDb,
    /// `[jwt]`
    pub jwt: RawJwt,
    /// `[admin]`
    pub admin: RawAdmin,
    /// `[log]`
    pub log: RawLog,
    /// `[routes]`: extra paths mapped to function names of the first exposed schema.
    #[serde(deserialize_with = "lenient_table")]
    pub routes: BTreeMap<String, String>,
}

/// `[server]` as given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on.
    pub host: String,
    /// TCP port.
    #[serde(deserialize_with = "lenient")]
    pub port: u16,
    /// Largest accepted request body.
    #[serde(deserialize_with = "lenient")]
    pub max_body_bytes: usize,
    /// HTTP worker threads; 0 = one per core.
    #[serde(deserialize_with = "lenient")]
    pub workers: usize,
    /// Seconds to finish in-flight requests on shutdown.
    #[serde(deserialize_with = "lenient")]
    pub shutdown_timeout: u64,
    /// Send `Server-Timing` with the stage durations.
    #[serde(deserialize_with = "lenient")]
    pub timing: bool,
    /// Origins allowed by CORS; empty = any.
    #[serde(deserialize_with = "lenient_list")]
    pub cors_allowed_origins: Vec<String>,
    /// Seconds for a request body to arrive in full, then 408.
    #[serde(deserialize_with = "lenient")]
    pub body_timeout: u64,
    /// Seconds for a new connection's request line and headers to arrive.
    #[serde(deserialize_with = "lenient")]
    pub head_timeout: u64,
    /// Seconds an idle keep-alive connection stays open; 0 = no keep-alive.
    #[serde(deserialize_with = "lenient")]
    pub keep_alive: u64,
    /// Seconds the client gets to close a connection the server is closing.
    #[serde(deserialize_with = "lenient")]
    pub close_timeout: u64,
    /// Open client connections per gateway, divided among the workers.
    #[serde(deserialize_with = "lenient")]
    pub max_connections: usize,
    /// Connections the kernel queues while the gateway is at `max_connections`.
    #[serde(deserialize_with = "lenient")]
    pub backlog: u32,
    /// Proxies (CIDRs or addresses) whose `Forwarded`/`X-Forwarded-For` is
    /// believed; empty = the peer address is the client's.
    #[serde(deserialize_with = "lenient_list")]
    pub trusted_proxies: Vec<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            host: "127.0.0.1".into(),
            port: 3000,
            max_body_bytes: 1024 * 1024,
            workers: 0,
            shutdown_timeout: 30,
            timing: true,
            cors_allowed_origins: Vec::new(),
            body_timeout: 10,
            head_timeout: 5,
            keep_alive: 5,
            close_timeout: 1,
            max_connections: 10_000,
            backlog: 2048,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[db]` as given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDb {
    /// External database for requests (as `authenticator`); unset = embedded cluster.
    pub uri: String,
    /// Owner connection for migrations in external mode.
    pub admin_uri: String,
    /// Data directory of the embedded cluster.
    pub data_dir: String,
    /// Exposed schemas; the first is the default.
    #[serde(deserialize_with = "lenient_list")]
    pub schemas: Vec<String>,
    /// Schemas appended to `search_path` after the exposed one.
    #[serde(deserialize_with = "lenient_list")]
    pub extra_search_path: Vec<String>,
    /// Role for requests without a token; empty = anonymous access disabled.
    pub anon_role: String,
    /// Pool size.
    #[serde(deserialize_with = "lenient")]
    pub pool: usize,
    /// Seconds a request waits for a pooled connection before 504.
    #[serde(deserialize_with = "lenient")]
    pub pool_timeout: u64,
    /// Function called in every request transaction before the target function.
    pub pre_request: String,
    /// Apply migrations and `sql/` at start in external mode.
    #[serde(deserialize_with = "lenient")]
    pub migrate_on_start: bool,
    /// Direct connection for LISTEN and the schema cache (e.g. around
    /// PgBouncer); empty = `uri`.
    pub listen_uri: String,
    /// Named (cached) prepared statements on request connections; off for
    /// PgBouncer in transaction mode before 1.21.
    #[serde(deserialize_with = "lenient")]
    pub prepared_statements: bool,
    /// Read replicas (streaming standbys) for read-only calls, each a URI
    /// with the same options as `uri`; comma-separated in the environment.
    #[serde(deserialize_with = "lenient_list")]
    pub replica_uris: Vec<String>,
    /// Pool size per replica; 0 = `pool`.
    #[serde(deserialize_with = "lenient")]
    pub replica_pool: usize,
    /// Seconds between health checks of each replica (fractions allowed).
    #[serde(deserialize_with = "lenient")]
    pub replica_check_interval: f64,
    /// Seconds of replay lag past which a replica leaves the rotation.
    #[serde(deserialize_with = "lenient")]
    pub replica_max_lag: f64,
}

impl Default for RawDb {
    fn default() -> Self {
        RawDb {
            uri: String::new(),
            admin_uri: String::new(),
            data_dir: ".pgrpc/data".into(),
            schemas: vec!["api".into()],
            extra_search_path: vec!["public".into()],
            anon_role: "web_anon".into(),
            pool: 10,
            pool_timeout: 10,
            pre_request: String::new(),
            migrate_on_start: false,
            listen_uri: String::new(),
            prepared_statements: true,
            replica_uris: Vec::new(),
            replica_pool: 0,
            replica_check_interval: 1.0,
            replica_max_lag: 5.0,
        }
    }
}

/// `[jwt]` as given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawJwt {
    /// HMAC secret (at least 32 bytes).
    pub secret: String,
    /// File holding the HMAC secret.
    pub secret_file: String,
    /// PEM public key for RS/PS/ES/EdDSA tokens.
    pub public_key_file: String,
    /// PEM private key used to sign outgoing tokens with an asymmetric algorithm.
    pub private_key_file: String,
    /// JWK Set file.
    pub jwks_file: String,
    /// Accepted algorithms; empty = HS256 with a secret, else the keys' own.
    #[serde(deserialize_with = "lenient_list")]
    pub algorithms: Vec<String>,
    /// Reject tokens without `exp`.
    #[serde(deserialize_with = "lenient")]
    pub require_exp: bool,
    /// Clock skew allowed on exp/nbf/iat, seconds.
    #[serde(deserialize_with = "lenient")]
    pub leeway: u64,
    /// Required audience.
    pub aud: String,
    /// Required issuer.
    pub iss: String,
    /// Dotted path of the role claim.
    pub role_claim: String,
    /// Composite type (or domain over json) whose values are signed into tokens.
    pub claims_type: String,
    /// Lifetime given to signed tokens without `exp`, seconds.
    #[serde(deserialize_with = "lenient")]
    pub default_lifetime: u64,
    /// Verified tokens kept in memory; 0 disables the cache.
    #[serde(deserialize_with = "lenient")]
    pub cache_max_entries: usize,
    /// Bytes the verified-token cache holds at most; 0 disables the cache.
    #[serde(deserialize_with = "lenient")]
    pub cache_max_bytes: usize,
    /// Ended sessions kept in memory (beyond it the set fails closed).
    #[serde(deserialize_with = "lenient")]
    pub max_ended_sessions: usize,
    /// Cookie the token is read from when no `Authorization` header is sent; empty = off.
    pub cookie_name: String,
    /// URL of a JWK Set, fetched at start and refreshed; empty = off.
    pub jwks_url: String,
    /// Seconds between JWKS URL fetches (a shorter `Cache-Control: max-age` wins).
    #[serde(deserialize_with = "lenient")]
    pub jwks_refresh: u64,
}

impl Default for RawJwt {
    fn default() -> Self {
        RawJwt {
            secret: String::new(),
            secret_file: String::new(),
            public_key_file: String::new(),
            private_key_file: String::new(),
            jwks_file: String::new(),
            algorithms: Vec::new(),
            require_exp: true,
            leeway: 30,
            aud: String::new(),
            iss: String::new(),
            role_claim: "role".into(),
            claims_type: "auth.jwt_claims".into(),
            default_lifetime: 3600,
            cache_max_entries: DEFAULT_JWT_CACHE_ENTRIES,
            cache_max_bytes: DEFAULT_JWT_CACHE_BYTES,
            max_ended_sessions: DEFAULT_MAX_ENDED_SESSIONS,
            cookie_name: String::new(),
            jwks_url: String::new(),
            jwks_refresh: 300,
        }
    }
}

/// `[admin]` as given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAdmin {
    /// Admin server port; 0 = off; unset = 3001 with the embedded database,
    /// off with an external one.
    #[serde(deserialize_with = "lenient_option")]
    pub port: Option<u16>,
    /// Admin server address, separate from `server.host`: metrics and the
    /// schema cache stay on loopback unless asked otherwise.
    pub host: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            port: None,
            host: "127.0.0.1".into(),
        }
    }
}

/// `[log]` as given.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// A native value, or a string to parse (how environment values arrive).
#[derive(Deserialize)]
#[serde(untagged)]
enum NativeOrText<T> {
    Native(T),
    Text(String),
}

fn lenient<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
{
    match NativeOrText::<T>::deserialize(d)? {
        NativeOrText::Native(v) => Ok(v),
        NativeOrText::Text(s) => s
            .trim()
            .parse()
            .map_err(|e| de::Error::custom(format!("cannot parse {s:?}: {e}"))),
    }
}

fn lenient_option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + FromStr,
    T::Err: fmt::Display,
{
    match NativeOrText::<T>::deserialize(d)? {
        NativeOrText::Native(v) => Ok(Some(v)),
        NativeOrText::Text(s) if s.trim().is_empty() => Ok(None),
        NativeOrText::Text(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| de::Error::custom(format!("cannot parse {s:?}: {e}"))),
    }
}

fn lenient_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match NativeOrText::<Vec<String>>::deserialize(d)? {
        NativeOrText::Native(v) => Ok(v),
        NativeOrText::Text(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()),
    }
}

fn lenient_table<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    match NativeOrText::<BTreeMap<String, String>>::deserialize(d)? {
        NativeOrText::Native(v) => Ok(v),
        NativeOrText::Text(s) => {
            let doc: toml::Table = format!("t = {s}").parse().map_err(|e: toml::de::Error| {
                de::Error::custom(format!("not a TOML inline table: {}", e.message()))
            })?;
            doc.get("t")
                .cloned()
                .ok_or_else(|| de::Error::custom("not a TOML inline table"))?
                .try_into()
                .map_err(|e: toml::de::Error| de::Error::custom(e.message().to_string()))
        }
    }
}

impl RawConfig {
    /// The effective configuration as TOML, secrets masked (`pgrpc --dump-config`).
    pub fn dump_masked(&self) -> String {
        let mut copy: toml::Value =
            toml::Value::try_from(self).unwrap_or(toml::Value::Table(Default::default()));
        if let Some(jwt) = copy.get_mut("jwt").and_then(toml::Value::as_table_mut) {
            if let Some(v) = jwt.get_mut("secret") {
                if v.as_str().is_some_and(|s| !s.is_empty()) {
                    *v = toml::Value::String("********".into());
                }
            }
        }
        if let Some(db) = copy.get_mut("db").and_then(toml::Value::as_table_mut) {
            for key in ["uri", "admin_uri", "listen_uri"] {
                if let Some(toml::Value::String(s)) = db.get_mut(key) {
                    *s = mask_uri_password(s);
                }
            }
            if let Some(toml::Value::Array(uris)) = db.get_mut("replica_uris") {
                for v in uris.iter_mut() {
                    if let toml::Value::String(s) = v {
                        *s = mask_uri_password(s);
                    }
                }
            }
        }
        toml::to_string_pretty(&copy).unwrap_or_default()
    }
}

/// Hide the password of a `postgres://user:pass@host/db` URI or a
/// `password=...` key/value string.
fn mask_uri_password(uri: &str) -> String {
    if let Ok(mut url) = url::Url::parse(uri) {
        if url.password().is_some() && url.set_password(Some("********")).is_ok() {
            return url.to_string();
        }
        return uri.to_string();
    }
    uri.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=********".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
