//! Configuration: the TOML file plus environment overrides, validated once at start.
//!
//! Raw input (`RawConfig` in `raw`, what the file and environment say) becomes a validated
//! `Config` in one place, [`Config::load`], so the rest of the program never
//! re-checks a port range or a role name. Environment overrides follow one
//! mechanical rule, written once in [`apply_env`] (`env`): `PGRPC_` + section + `_` + key,
//! upper-cased (`db.data_dir` ← `PGRPC_DB_DATA_DIR`, `routes` ← `PGRPC_ROUTES`).
//! Values from the environment are strings; each typed field accepts either its
//! native TOML type or a string it can parse (lists: comma-separated; tables: TOML
//! inline-table syntax). This module does not read key files or talk to the
//! database: it only says where things are.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod db_uri;
mod env;
mod raw;

pub use db_uri::{DbUri, RootCerts, SslMode, TlsOptions};
pub use env::apply_env;
pub use raw::{RawAdmin, RawConfig, RawDb, RawJwt, RawLog, RawServer};
/// Minimum HMAC secret length in bytes. RFC 7518 §3.2 requires a key at least
/// as long as the hash output (32 bytes for HS256); PostgREST enforces the same.
pub const MIN_SECRET_BYTES: usize = 32;

/// Verified tokens the JWT cache keeps by default (`jwt.cache_max_entries`).
pub const DEFAULT_JWT_CACHE_ENTRIES: usize = 10_000;

/// Bytes the JWT cache holds at most by default (`jwt.cache_max_bytes`):
/// 2 MiB, about 2,000 of the seed's tokens (~1 KB each, token text included).
/// Small next to the gateway's ~16 MB, so a stream of new tokens (bench/soak:
/// ~20 per second from refreshes) fills it within two minutes and RSS stays
/// flat after, while a hot set of a couple of thousand clients still hits.
pub const DEFAULT_JWT_CACHE_BYTES: usize = 2 * 1024 * 1024;

/// Ended sessions the gateway keeps by default (`jwt.max_ended_sessions`).
pub const DEFAULT_MAX_ENDED_SESSIONS: usize = 100_000;

/// Admin port of the embedded default.
pub const DEFAULT_ADMIN_PORT: u16 = 3001;

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "PGRPC_";

/// What went wrong while loading the configuration. Every message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key has a value of the wrong shape, or is unknown.
    #[error("invalid config key `{key}`{origin}: {message}")]
    Key {
        /// Dotted key path.
        key: String,
        /// ` (from PGRPC_X)` when the value came from the environment.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

fn key_error(key: &str, message: impl fmt::Display) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        origin: String::new(),
        message: message.to_string(),
    }
}

/// A schema-qualified name from the config (`schema.name`), checked to be two
/// non-empty parts; quoted by the query stage, never spliced raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    /// Schema part.
    pub schema: String,
    /// Object name part.
    pub name: String,
}

impl QualifiedName {
    fn parse(key: &str, value: &str) -> Result<QualifiedName, ConfigError> {
        match value.split_once('.') {
            Some((s, n)) if !s.is_empty() && !n.is_empty() && !n.contains('.') => {
                Ok(QualifiedName {
                    schema: s.to_string(),
                    name: n.to_string(),
                })
            }
            _ => Err(key_error(
                key,
                format!("expected `schema.name`, got {value:?}"),
            )),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Where the database is.
// One value per process, read at start: the size of the external variant
// (three parsed URIs) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum DbMode {
    /// A private cluster started from the installed binaries.
    Embedded {
        /// Its data directory.
        data_dir: PathBuf,
    },
    /// An existing server.
    External {
        /// Request connections (as `authenticator`).
        uri: DbUri,
        /// Owner connection for migrations, if given.
        admin_uri: Option<DbUri>,
        /// LISTEN and schema cache connection, if not `uri`.
        listen_uri: Option<DbUri>,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub host: String,
    /// Listen port (0 = any free port).
    pub port: u16,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Worker threads.
    pub workers: usize,
    /// Grace period on shutdown.
    pub shutdown_timeout: Duration,
    /// Send `Server-Timing`.
    pub timing: bool,
    /// CORS origins; empty = any.
    pub cors_allowed_origins: Vec<String>,
    /// Deadline for the whole body, from when the gateway starts reading it.
    pub body_timeout: Duration,
    /// Deadline for a new connection's request head (actix `client_request_timeout`).
    pub head_timeout: Duration,
    /// Idle keep-alive; zero = close after each response.
    pub keep_alive: Duration,
    /// Grace for the client to close a connection (actix `client_disconnect_timeout`).
    pub close_timeout: Duration,
    /// Open client connections per gateway (all workers together).
    pub max_connections: usize,
    /// Listen backlog (the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
    /// Proxies whose forwarding headers name the client (rate limits,
    /// `request.client_ip`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Validated `[db]`.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Embedded or external.
    pub mode: DbMode,
    /// Exposed schemas, first = default.
    pub schemas: Vec<String>,
    /// Appended to `search_path`.
    pub extra_search_path: Vec<String>,
    /// Anonymous role, if anonymous access is enabled.
    pub anon_role: Option<String>,
    /// Pool size.
    pub pool_size: usize,
    /// Wait for a pooled connection.
    pub pool_timeout: Duration,
    /// Pre-request function.
    pub pre_request: Option<QualifiedName>,
    /// Migrate at start in external mode.
    pub migrate_on_start: bool,
    /// Named prepared statements on request connections (`db.prepared_statements`).
    pub prepared_statements: bool,
    /// Read replicas (`db.replica_uris`), in the order given.
    pub replica_uris: Vec<DbUri>,
    /// Connections per replica (`db.replica_pool`, default `db.pool`).
    pub replica_pool: usize,
    /// Time between a replica's health checks (`db.replica_check_interval`).
    pub replica_check_interval: Duration,
    /// Replay lag past which a replica is skipped (`db.replica_max_lag`).
    pub replica_max_lag: Duration,
}

/// Validated `[jwt]`: where keys are, not the keys themselves (see `jwt`).
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// Inline HMAC secret.
    pub secret: Option<String>,
    /// HMAC secret file.
    pub secret_file: Option<PathBuf>,
    /// PEM public key file.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key file.
    pub private_key_file: Option<PathBuf>,
    /// JWK Set file.
    pub jwks_file: Option<PathBuf>,
    /// Algorithm names, validated against the JWT library's list.
    pub algorithms: Vec<String>,
    /// Require `exp`.
    pub require_exp: bool,
    /// Clock skew, seconds.
    pub leeway: u64,
    /// Required audience.
    pub aud: Option<String>,
    /// Required issuer.
    pub iss: Option<String>,
    /// Role claim path.
    pub role_claim: Vec<String>,
    /// The claims type.
    pub claims_type: QualifiedName,
    /// Default lifetime of signed tokens, seconds.
    pub default_lifetime: u64,
    /// Verified-token cache size, in tokens.
    pub cache_max_entries: usize,
    /// Verified-token cache size, in bytes.
    pub cache_max_bytes: usize,
    /// Most ended sessions kept in memory (at least 1).
    pub max_ended_sessions: usize,
    /// Cookie holding the token when no `Authorization` header is sent.
    pub cookie_name: Option<String>,
    /// JWK Set URL: `https://`, or `http://` to a loopback address.
    pub jwks_url: Option<url::Url>,
    /// Longest time between JWKS URL fetches.
    pub jwks_refresh: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Database.
    pub db: DbConfig,
    /// JWT.
    pub jwt: JwtConfig,
    /// Admin port, if enabled.
    pub admin_port: Option<u16>,
    /// Admin listen address (`admin.host`).
    pub admin_host: String,
    /// Log filter directive.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Extra routes: path → function name in the default schema.
    pub routes: Vec<(String, String)>,
}

/// Where each value came from, so errors can name the environment variable.
pub(crate) type Origins = BTreeMap<String, String>;

impl Config {
    /// Load `path` (if it exists, or if `required`), apply `env`, validate.
    pub fn load(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, RawConfig), ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::from_toml(&text, path, env)
    }

    /// Parse TOML text (from `origin`), apply `env`, validate.
    pub fn from_toml(
        text: &str,
        origin: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, RawConfig), ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_path_buf(),
                    message: e.message().to_string(),
                })?;
        let origins = apply_env(&mut table, env);
        let raw: RawConfig =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let origin = origins
                    .get(&key)
                    .or_else(|| origins.get(key.split('.').next().unwrap_or_default()))
                    .map(|var| format!(" (from {var})"))
                    .unwrap_or_default();
                ConfigError::Key {
                    key,
                    origin,
                    message: e.into_inner().to_string(),
                }
            })?;
        let config = Config::validate(&raw).map_err(|e| match e {
            ConfigError::Key { key, message, .. } => {
                let origin = origins
                    .get(&key)
                    .map(|var| format!(" (from {var})"))
                    .unwrap_or_default();
                ConfigError::Key {
                    key,
                    origin,
                    message,
                }
            }
            other => other,
        })?;
        Ok((config, raw))
    }

    /// Check every value once; the only place that knows the rules. One
    /// function per section below; the cross-section rules are here.
    fn validate(raw: &RawConfig) -> Result<Config, ConfigError> {
        let server = server_config(&raw.server)?;
        let db = db_config(&raw.db)?;
        let jwt = jwt_config(&raw.jwt)?;
        let log_format = log_format(&raw.log.format)?;
        let routes = routes(&raw.routes)?;

        let admin_port = match (raw.admin.port, &db.mode) {
            (Some(0), _) | (None, DbMode::External { .. }) => None,
            (Some(p), _) => Some(p),
            (None, DbMode::Embedded { .. }) => Some(DEFAULT_ADMIN_PORT),
        };

        if raw.admin.host.trim().is_empty() {
            return Err(key_error("admin.host", "must not be empty"));
        }

        Ok(Config {
            server,
            db,
            jwt,
            admin_port,
            admin_host: raw.admin.host.trim().to_string(),
            log_level: raw.log.level.trim().to_string(),
            log_format,
            routes,
        })
    }

    /// True when the gateway runs its own cluster.
    pub fn is_embedded(&self) -> bool {
        matches!(self.db.mode, DbMode::Embedded { .. })
    }
}

/// The `[server]` section.
fn server_config(s: &RawServer) -> Result<ServerConfig, ConfigError> {
    if s.host.trim().is_empty() {
        return Err(key_error("server.host", "must not be empty"));
    }
    if s.max_body_bytes == 0 {
        return Err(key_error("server.max_body_bytes", "must be greater than 0"));
    }
    // Zero would mean "no deadline", the hole these keys close.
    for (key, value) in [
        ("server.body_timeout", s.body_timeout),
        ("server.head_timeout", s.head_timeout),
        ("server.close_timeout", s.close_timeout),
    ] {
        if value == 0 {
            return Err(key_error(key, "must be at least 1 second"));
        }
    }
    if s.max_connections == 0 {
        return Err(key_error("server.max_connections", "must be at least 1"));
    }
    if s.backlog == 0 {
        return Err(key_error("server.backlog", "must be at least 1"));
    }
    let server = ServerConfig {
        host: s.host.trim().to_string(),
        port: s.port,
        max_body_bytes: s.max_body_bytes,
        workers: if s.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            s.workers
        },
        shutdown_timeout: Duration::from_secs(s.shutdown_timeout),
        timing: s.timing,
        cors_allowed_origins: s.cors_allowed_origins.clone(),
        body_timeout: Duration::from_secs(s.body_timeout),
        head_timeout: Duration::from_secs(s.head_timeout),
        keep_alive: Duration::from_secs(s.keep_alive),
        close_timeout: Duration::from_secs(s.close_timeout),
        max_connections: s.max_connections,
        backlog: s.backlog,
        trusted_proxies: s
            .trusted_proxies
            .iter()
            .map(|e| {
                let e = e.trim();
                e.parse::<ipnet::IpNet>()
                    .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        key_error(
                            "server.trusted_proxies",
                            format!("{e:?} is not an address or a CIDR block"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(server)
}

/// The `[db]` section.
fn db_config(d: &RawDb) -> Result<DbConfig, ConfigError> {
    let mode = if d.uri.trim().is_empty() {
        if d.data_dir.trim().is_empty() {
            return Err(key_error(
                "db.data_dir",
                "must not be empty when db.uri is unset",
            ));
        }
        DbMode::Embedded {
            data_dir: PathBuf::from(d.data_dir.trim()),
        }
    } else {
        let parse = |key: &str, text: &str| {
            DbUri::parse(text)
                .map_err(|e| key_error(key, format!("not a PostgreSQL connection string: {e}")))
        };
        let optional = |key: &str, text: &str| match text.trim() {
            "" => Ok(None),
            text => parse(key, text).map(Some),
        };
        DbMode::External {
            uri: parse("db.uri", &d.uri)?,
            admin_uri: optional("db.admin_uri", &d.admin_uri)?,
            listen_uri: optional("db.listen_uri", &d.listen_uri)?,
        }
    };
    if d.schemas.is_empty() {
        return Err(key_error(
            "db.schemas",
            "at least one schema must be exposed",
        ));
    }
    for name in d.schemas.iter().chain(&d.extra_search_path) {
        check_identifier("db.schemas", name)?;
    }
    let anon_role = match d.anon_role.trim() {
        "" => None,
        role => {
            check_identifier("db.anon_role", role)?;
            Some(role.to_string())
        }
    };
    if d.pool == 0 {
        return Err(key_error("db.pool", "must be at least 1"));
    }
    let pre_request = match d.pre_request.trim() {
        "" => None,
        v => Some(QualifiedName::parse("db.pre_request", v)?),
    };
    let replica_uris = d
        .replica_uris
        .iter()
        .map(|text| {
            DbUri::parse(text).map_err(|e| {
                key_error(
                    "db.replica_uris",
                    format!("not a PostgreSQL connection string: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let seconds = |key: &str, v: f64, min: f64| {
        if v.is_finite() && (min..=3600.0).contains(&v) {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(key_error(
                key,
                format!("must be between {min} and 3600 seconds"),
            ))
        }
    };
    let replica_check_interval =
        seconds("db.replica_check_interval", d.replica_check_interval, 0.01)?;
    let replica_max_lag = seconds("db.replica_max_lag", d.replica_max_lag, 0.0)?;
    let db = DbConfig {
        replica_pool: if d.replica_pool == 0 {
            d.pool
        } else {
            d.replica_pool
        },
        replica_uris,
        replica_check_interval,
        replica_max_lag,
        mode,
        schemas: d.schemas.clone(),
        extra_search_path: d.extra_search_path.clone(),
        anon_role,
        pool_size: d.pool,
        pool_timeout: Duration::from_secs(d.pool_timeout.max(1)),
        pre_request,
        migrate_on_start: d.migrate_on_start,
        prepared_statements: d.prepared_statements,
    };
    Ok(db)
}

/// The `[jwt]` section.
fn jwt_config(j: &RawJwt) -> Result<JwtConfig, ConfigError> {
    let opt = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let secret = opt(&j.secret);
    if let Some(secret) = &secret {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(key_error(
                "jwt.secret",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes, got {}",
                    secret.len()
                ),
            ));
        }
    }
    if secret.is_some() && opt(&j.secret_file).is_some() {
        return Err(key_error(
            "jwt.secret_file",
            "set either jwt.secret or jwt.secret_file, not both",
        ));
    }
    let role_claim: Vec<String> = j.role_claim.split('.').map(str::to_string).collect();
    if role_claim.iter().any(String::is_empty) {
        return Err(key_error(
            "jwt.role_claim",
            "must be a dotted path of non-empty names",
        ));
    }
    let cookie_name = opt(&j.cookie_name);
    // RFC 6265 §4.1.1: a cookie name is an HTTP token (RFC 9110 §5.6.2).
    if let Some(name) = &cookie_name {
        let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if !name.chars().all(tchar) {
            return Err(key_error(
                "jwt.cookie_name",
                "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~ only",
            ));
        }
    }
    let jwks_url = opt(&j.jwks_url).map(|u| jwks_url(&u)).transpose()?;
    if jwks_url.is_some() && opt(&j.jwks_file).is_some() {
        return Err(key_error(
            "jwt.jwks_url",
            "set either jwt.jwks_file or jwt.jwks_url, not both",
        ));
    }
    if j.jwks_refresh == 0 {
        return Err(key_error("jwt.jwks_refresh", "must be at least 1 second"));
    }
    if j.max_ended_sessions == 0 {
        // Zero would make the set refuse every session token at the first
        // logout (it fails closed when full): say so instead.
        return Err(key_error("jwt.max_ended_sessions", "must be at least 1"));
    }
    let jwt = JwtConfig {
        secret,
        secret_file: opt(&j.secret_file).map(PathBuf::from),
        public_key_file: opt(&j.public_key_file).map(PathBuf::from),
        private_key_file: opt(&j.private_key_file).map(PathBuf::from),
        jwks_file: opt(&j.jwks_file).map(PathBuf::from),
        algorithms: j.algorithms.clone(),
        require_exp: j.require_exp,
        leeway: j.leeway,
        aud: opt(&j.aud),
        iss: opt(&j.iss),
        role_claim,
        claims_type: QualifiedName::parse("jwt.claims_type", j.claims_type.trim())?,
        default_lifetime: j.default_lifetime.max(1),
        cache_max_entries: j.cache_max_entries,
        cache_max_bytes: j.cache_max_bytes,
        max_ended_sessions: j.max_ended_sessions,
        cookie_name,
        jwks_url,
        jwks_refresh: Duration::from_secs(j.jwks_refresh),
    };
    Ok(jwt)
}

/// `log.format`.
fn log_format(format: &str) -> Result<LogFormat, ConfigError> {
    let log_format = match format.trim() {
        "text" | "" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(key_error(
                "log.format",
                format!("expected \"text\" or \"json\", got {other:?}"),
            ))
        }
    };
    Ok(log_format)
}

/// `[routes]`: path → function, never shadowing `/` or `/rpc/`.
fn routes(raw: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut routes = Vec::with_capacity(raw.len());
    for (path, function) in raw {
        let key = format!("routes.{path:?}");
        if !path.starts_with('/') || path.starts_with("/rpc/") || path == "/" {
            return Err(key_error(
                &key,
                "a route path must start with `/` and must not shadow `/` or `/rpc/`",
            ));
        }
        check_identifier(&key, function)?;
        routes.push((path.clone(), function.clone()));
    }
    Ok(routes)
}

/// `jwt.jwks_url`: keys decide who may act as whom, so they come over HTTPS
/// (checked against the system's roots); plain `http://` only to a loopback
/// address, where nothing crosses a network (a local sidecar, tests).
fn jwks_url(text: &str) -> Result<url::Url, ConfigError> {
    let url =
        url::Url::parse(text).map_err(|e| key_error("jwt.jwks_url", format!("not a URL: {e}")))?;
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(key_error(
            "jwt.jwks_url",
            "must be https:// (plain http:// only to localhost or a loopback address)",
        )),
        _ => Err(key_error("jwt.jwks_url", "must be an https:// URL")),
    }
}

/// Whether a URL's host is `localhost` or a loopback address.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Names that reach SQL from the config are always quoted, but an empty or
/// NUL-containing one is a mistake worth refusing at start.
fn check_identifier(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() || value.contains('\0') || value.len() > 63 {
        return Err(key_error(
            key,
            format!("{value:?} is not a valid PostgreSQL identifier"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(
            text,
            Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .map(|(c, _)| c)
    }

    #[test]
    fn defaults_are_embedded_on_port_3000() {
        let c = load("", &[]).expect("defaults are valid");
        assert_eq!(c.server.port, 3000);
        assert!(c.is_embedded());
        assert_eq!(c.db.schemas, vec!["api"]);
        assert_eq!(c.db.anon_role.as_deref(), Some("web_anon"));
    }

    #[test]
    fn env_overrides_follow_one_rule() {
        let c = load(
            "[server]\nport = 1\n",
            &[
                ("PGRPC_SERVER_PORT", "4000"),
                ("PGRPC_DB_SCHEMAS", "api, v2"),
                ("PGRPC_DB_DATA_DIR", "/tmp/x"),
                ("PGRPC_JWT_SECRET", "12345678901234567890123456789012"),
                ("PGRPC_ROUTES", r#"{ "/auth/x/" = "x" }"#),
                ("UNRELATED", "1"),
            ],
        )
        .expect("valid");
        assert_eq!(c.server.port, 4000);
        assert_eq!(c.db.schemas, vec!["api", "v2"]);
        assert_eq!(
            c.jwt.secret.as_deref(),
            Some("12345678901234567890123456789012")
        );
        assert_eq!(c.routes, vec![("/auth/x/".to_string(), "x".to_string())]);
        assert!(
            matches!(c.db.mode, DbMode::Embedded { ref data_dir } if data_dir == Path::new("/tmp/x"))
        );
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let c = load("", &[("PGRPC_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).expect("valid");
        let nets: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, vec!["10.0.0.0/8", "::1/128"]);
        let e = load("[server]\ntrusted_proxies = [\"proxy.local\"]\n", &[]).expect_err("name");
        assert!(e.to_string().contains("server.trusted_proxies"), "{e}");
        assert!(load("", &[])
            .expect("default")
            .server
            .trusted_proxies
            .is_empty());
    }

    #[test]
    fn replicas_from_the_environment_and_the_file() {
        let secret = ("PGRPC_JWT_SECRET", "12345678901234567890123456789012");
        let c = load(
            "",
            &[
                secret,
                (
                    "PGRPC_DB_REPLICA_URIS",
                    "postgres://a@r1:5433/app?sslmode=disable, postgres://a@r2/app",
                ),
                ("PGRPC_DB_REPLICA_CHECK_INTERVAL", "0.25"),
            ],
        )
        .expect("valid");
        assert_eq!(c.db.replica_uris.len(), 2);
        assert_eq!(c.db.replica_pool, c.db.pool_size, "default: db.pool");
        assert_eq!(c.db.replica_check_interval, Duration::from_millis(250));
        assert_eq!(c.db.replica_max_lag, Duration::from_secs(5));
        let c = load(
            "[db]\nreplica_uris = [\"postgres://a@r1/app\"]\nreplica_pool = 3\nreplica_max_lag = 1\n",
            &[secret],
        )
        .expect("valid");
        assert_eq!((c.db.replica_uris.len(), c.db.replica_pool), (1, 3));
        assert_eq!(c.db.replica_max_lag, Duration::from_secs(1));
        let e = load("", &[secret, ("PGRPC_DB_REPLICA_URIS", "postgres://a@[x/")])
            .expect_err("a bad URI");
        assert!(e.to_string().contains("db.replica_uris"), "{e}");
        let e =
            load("", &[secret, ("PGRPC_DB_REPLICA_CHECK_INTERVAL", "0")]).expect_err("no interval");
        assert!(e.to_string().contains("db.replica_check_interval"), "{e}");
        let c = load("", &[secret]).expect("valid");
        assert!(c.db.replica_uris.is_empty(), "no replicas by default");
    }

    #[test]
    fn dump_masks_replica_passwords() {
        let (_, raw) = Config::from_toml(
            "[db]\nuri = \"postgres://a@db/app\"\nreplica_uris = [\"postgres://a:hunter2@r1/app\", \"postgres://a:swordfish@r2/app\"]\n",
            Path::new("t"),
            Vec::new(),
        )
        .expect("valid");
        let dump = raw.dump_masked();
        assert!(
            !dump.contains("hunter2") && !dump.contains("swordfish"),
            "{dump}"
        );
        assert!(dump.contains("r1") && dump.contains("r2"), "{dump}");
    }

    #[test]
    fn invalid_values_name_the_key_and_variable() {
        let e = load("", &[("PGRPC_SERVER_PORT", "eighty")]).expect_err("invalid");
        let msg = e.to_string();
        assert!(
            msg.contains("server.port") && msg.contains("PGRPC_SERVER_PORT"),
            "{msg}"
        );

        let e = load("[db]\npoool = 3\n", &[]).expect_err("unknown key");
        assert!(e.to_string().contains("db.poool"), "{e}");

        let e = load("[jwt]\nsecret = \"short\"\n", &[]).expect_err("short secret");
        assert!(e.to_string().contains("jwt.secret"), "{e}");

        let e = load("[db]\npre_request = \"nodot\"\n", &[]).expect_err("bad name");
        assert!(e.to_string().contains("db.pre_request"), "{e}");

        let e = load("", &[("PGRPC_DB_URI", "not a uri ::::")]).expect_err("bad uri");
        assert!(e.to_string().contains("db.uri"), "{e}");
    }

    #[test]
    fn postgrest_names_are_aliases_and_ours_win() {
        let c = load(
            "",
            &[
                ("PGRST_DB_URI", "postgres://authenticator@db/app"),
                ("PGRST_DB_SCHEMAS", "api,v2"),
                ("PGRST_JWT_ROLE_CLAIM_KEY", ".app_metadata.role"),
                ("PGRST_SERVER_HOST", "*4"),
                ("PGRST_SERVER_PORT", "3100"),
                ("PGRPC_SERVER_PORT", "3200"),
                ("PGRST_JWT_SECRET", "@/run/secrets/jwt"),
                ("PGRST_LOG_LEVEL", "crit"),
            ],
        )
        .expect("valid");
        assert!(!c.is_embedded());
        assert_eq!(c.db.schemas, vec!["api", "v2"]);
        assert_eq!(c.jwt.role_claim, vec!["app_metadata", "role"]);
        assert_eq!(c.server.host, "0.0.0.0");
        assert_eq!(c.server.port, 3200, "PGRPC_ wins over PGRST_");
        assert_eq!(
            c.jwt.secret_file.as_deref(),
            Some(Path::new("/run/secrets/jwt"))
        );
        assert_eq!(c.log_level, "error");
        assert_eq!(
            c.admin_port, None,
            "admin is off by default with an external database"
        );
        let e = load("", &[("PGRST_SERVER_PORT", "x")]).expect_err("invalid");
        assert!(e.to_string().contains("PGRST_SERVER_PORT"), "{e}");
    }

    #[test]
    fn jwks_url_is_https_or_loopback_http() {
        let url = |u: &str| load(&format!("[jwt]\njwks_url = \"{u}\"\n"), &[]);
        let c = url("https://idp.example.com/.well-known/jwks.json").expect("https");
        assert_eq!(c.jwt.jwks_refresh, Duration::from_secs(300));
        for ok in [
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]/k",
        ] {
            assert!(url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/jwks",
            "ftp://x/y",
            "not a url",
            "http://10.0.0.1/",
        ] {
            let e = url(bad).expect_err(bad);
            assert!(e.to_string().contains("jwt.jwks_url"), "{bad}: {e}");
        }
        let both = load(
            "[jwt]\njwks_url = \"https://idp.example.com/k\"\njwks_file = \"k.json\"\n",
            &[],
        );
        assert!(both.is_err());
        let zero = load(
            "[jwt]\njwks_url = \"https://idp.example.com/k\"\njwks_refresh = 0\n",
            &[],
        );
        assert!(zero.is_err());
    }

    #[test]
    fn dump_masks_secrets() {
        let (_, raw) = Config::from_toml(
            "[jwt]\nsecret = \"abcdefghijabcdefghijabcdefghijab\"\n[db]\nuri = \"postgres://authenticator:hunter2@db/app\"\n",
            Path::new("t"),
            Vec::new(),
        )
        .expect("valid");
        let dump = raw.dump_masked();
        assert!(!dump.contains("abcdefghij"), "{dump}");
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(dump.contains("********"));
    }

    #[test]
    fn connection_deadlines_and_caps_have_defaults_and_refuse_zero() {
        let c = load("", &[]).expect("defaults are valid");
        assert_eq!(c.server.body_timeout, Duration::from_secs(10));
        assert_eq!(c.server.head_timeout, Duration::from_secs(5));
        assert_eq!(c.server.keep_alive, Duration::from_secs(5));
        assert_eq!(c.server.close_timeout, Duration::from_secs(1));
        assert_eq!(c.server.max_connections, 10_000);
        assert_eq!(c.server.backlog, 2048);
        let c = load("", &[("PGRPC_SERVER_KEEP_ALIVE", "0")]).expect("0 = no keep-alive");
        assert!(c.server.keep_alive.is_zero());
        for key in [
            "body_timeout",
            "head_timeout",
            "close_timeout",
            "max_connections",
            "backlog",
        ] {
            let e = load(&format!("[server]\n{key} = 0\n"), &[]).expect_err("zero");
            assert!(e.to_string().contains(&format!("server.{key}")), "{e}");
        }
    }

    #[test]
    fn admin_host_is_loopback_whatever_server_host_is() {
        let c = load("[server]\nhost = \"0.0.0.0\"\n", &[]).expect("valid");
        assert_eq!(c.admin_host, "127.0.0.1");
        let c = load("", &[("PGRPC_ADMIN_HOST", "0.0.0.0")]).expect("valid");
        assert_eq!(c.admin_host, "0.0.0.0");
        let e = load("[admin]\nhost = \" \"\n", &[]).expect_err("empty");
        assert!(e.to_string().contains("admin.host"), "{e}");
    }
}
