//! `pgrpc token`: print a token signed with the server's own key, for
//! bootstrapping (a first admin) and scripts.
//!
//! Uses exactly the key the server uses, including the embedded default's
//! generated secret. Owns only argument parsing (claims, lifetimes).

use serde_json::{Map, Value};

use crate::config::Config;
use crate::jwt::keys::{self, KeyError};

/// Why no token could be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenCmdError {
    /// Keys could not be loaded.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// A `--claim` is not `key=value`.
    #[error("--claim {0:?}: expected key=value (a string) or key:=json")]
    Claim(String),
    /// A `--ttl` is not a duration.
    #[error("--ttl {0:?}: expected seconds or a number with s, m, h or d (e.g. 30m, 12h, 7d)")]
    Ttl(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Parse `30`, `30s`, `15m`, `12h`, `7d` into seconds.
pub fn parse_ttl(text: &str) -> Result<u64, TokenCmdError> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| TokenCmdError::Ttl(text.to_string()))?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(TokenCmdError::Ttl(text.to_string())),
    };
    n.checked_mul(factor)
        .filter(|s| *s > 0)
        .ok_or_else(|| TokenCmdError::Ttl(text.to_string()))
}

/// Build and sign the claims: `role`, each `key=value` (a string, as RFC 7519
/// wants `sub` and most claims) or `key:=json` (a JSON value: numbers, arrays,
/// objects), `exp` = now + ttl.
pub fn make_token(
    config: &Config,
    role: &str,
    claims: &[String],
    ttl: Option<&str>,
) -> Result<String, TokenCmdError> {
    let jwt = keys::load(config, false)?;
    let mut map = Map::new();
    for item in claims {
        let (key, value) = match item.split_once(":=") {
            Some((k, v)) if !k.contains('=') => {
                let json =
                    serde_json::from_str(v).map_err(|_| TokenCmdError::Claim(item.clone()))?;
                (k, json)
            }
            _ => {
                let (k, v) = item
                    .split_once('=')
                    .ok_or_else(|| TokenCmdError::Claim(item.clone()))?;
                (k, Value::String(v.to_string()))
            }
        };
        if key.is_empty() {
            return Err(TokenCmdError::Claim(item.clone()));
        }
        map.insert(key.to_string(), value);
    }
    map.insert("role".into(), Value::String(role.to_string()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let ttl = match ttl {
        Some(t) => parse_ttl(t)?,
        None => config.jwt.default_lifetime,
    };
    map.insert("iat".into(), Value::from(now));
    map.insert("exp".into(), Value::from(now + ttl));
    jwt.sign_at(map, now)
        .map_err(|e| TokenCmdError::Sign(e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("90").expect("ok"), 90);
        assert_eq!(parse_ttl("15m").expect("ok"), 900);
        assert_eq!(parse_ttl("1h").expect("ok"), 3600);
        assert_eq!(parse_ttl("7d").expect("ok"), 604_800);
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
