//! Environment overrides, one mechanical rule: `PGRPC_` + section + `_` +
//! key, upper-cased, onto the parsed file as strings; PostgREST's `PGRST_*`
//! names are read as aliases first, so `PGRPC_*` wins.

use super::{Origins, ENV_PREFIX};

/// PostgREST's environment names, read as aliases of ours so a team moving
/// from PostgREST keeps its environment (PostgREST docs, references/configuration).
/// `PGRPC_*` wins when both name the same key. Each entry: PostgREST variable,
/// our key path, and how its value differs.
const POSTGREST_ALIASES: &[(&str, &str, Alias)] = &[
    ("PGRST_DB_URI", "db.uri", Alias::Same),
    ("PGRST_DB_SCHEMAS", "db.schemas", Alias::Same),
    ("PGRST_DB_SCHEMA", "db.schemas", Alias::Same),
    ("PGRST_DB_ANON_ROLE", "db.anon_role", Alias::Same),
    ("PGRST_DB_POOL", "db.pool", Alias::Same),
    (
        "PGRST_DB_POOL_ACQUISITION_TIMEOUT",
        "db.pool_timeout",
        Alias::Same,
    ),
    ("PGRST_DB_PRE_REQUEST", "db.pre_request", Alias::Same),
    (
        "PGRST_DB_PREPARED_STATEMENTS",
        "db.prepared_statements",
        Alias::Same,
    ),
    (
        "PGRST_DB_EXTRA_SEARCH_PATH",
        "db.extra_search_path",
        Alias::Same,
    ),
    ("PGRST_JWT_SECRET", "jwt.secret", Alias::Secret),
    ("PGRST_JWT_AUD", "jwt.aud", Alias::Same),
    ("PGRST_JWT_ROLE_CLAIM_KEY", "jwt.role_claim", Alias::JsPath),
    ("PGRST_SERVER_HOST", "server.host", Alias::Host),
    ("PGRST_SERVER_PORT", "server.port", Alias::Same),
    ("PGRST_SERVER_TIMING_ENABLED", "server.timing", Alias::Same),
    (
        "PGRST_SERVER_CORS_ALLOWED_ORIGINS",
        "server.cors_allowed_origins",
        Alias::Same,
    ),
    ("PGRST_ADMIN_SERVER_PORT", "admin.port", Alias::Same),
    ("PGRST_LOG_LEVEL", "log.level", Alias::LogLevel),
];

/// How a PostgREST value maps onto ours.
#[derive(Clone, Copy)]
enum Alias {
    /// Same meaning and syntax.
    Same,
    /// `@/path` names a file (`jwt.secret_file`); anything else is the secret.
    Secret,
    /// A JSPath like `.app_metadata.role` → `app_metadata.role`.
    JsPath,
    /// `*`, `*4`, `!4` → `0.0.0.0`; `*6`, `!6` → `::`.
    Host,
    /// `crit` → `error`.
    LogLevel,
}

fn translate_alias(alias: Alias, key: &str, value: String) -> (String, String) {
    match alias {
        Alias::Same => (key.to_string(), value),
        Alias::Secret => match value.strip_prefix('@') {
            Some(path) => ("jwt.secret_file".to_string(), path.to_string()),
            None => (key.to_string(), value),
        },
        Alias::JsPath => (
            key.to_string(),
            value
                .trim()
                .trim_start_matches('.')
                .split('.')
                .map(|part| part.trim_matches('"'))
                .collect::<Vec<_>>()
                .join("."),
        ),
        Alias::Host => {
            let host = match value.trim() {
                "*" | "*4" | "!4" => "0.0.0.0".to_string(),
                "*6" | "!6" => "::".to_string(),
                other => other.to_string(),
            };
            (key.to_string(), host)
        }
        Alias::LogLevel => {
            let level = if value.trim() == "crit" {
                "error".to_string()
            } else {
                value
            };
            (key.to_string(), level)
        }
    }
}

fn set_path(table: &mut toml::Table, path: &str, value: String) {
    match path.split_once('.') {
        Some((section, key)) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                t.insert(key.to_string(), toml::Value::String(value));
            }
        }
        None => {
            table.insert(path.to_string(), toml::Value::String(value));
        }
    }
}

/// Overlay `PGRST_*` aliases, then `PGRPC_*` variables, onto the parsed file,
/// as strings; returns which variable set each key. The rule for ours: strip
/// the prefix, lower-case, the first `_` separates section from key
/// (`DB_DATA_DIR` → `db.data_dir`); a name without `_` is a top-level key
/// (`ROUTES` → `routes`).
pub fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Origins {
    let mut origins = Origins::new();
    let mut ours = Vec::new();
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            let lower = rest.to_ascii_lowercase().replace('-', "_");
            let path = match lower.split_once('_') {
                Some((section, key)) => format!("{section}.{key}"),
                None => lower,
            };
            ours.push((path, value, name));
        } else if let Some((_, key, alias)) = POSTGREST_ALIASES.iter().find(|(n, _, _)| *n == name)
        {
            let (path, value) = translate_alias(*alias, key, value);
            set_path(table, &path, value);
            origins.insert(path, name);
        }
    }
    for (path, value, name) in ours {
        set_path(table, &path, value);
        origins.insert(path, name);
    }
    origins
}
