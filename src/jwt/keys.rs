//! Where the JWT key material comes from: config values and files, or the
//! embedded default's generated secret.
//!
//! With the embedded database and no key configured, a random secret is
//! generated on first start and kept in the data directory, so no fixed secret
//! ever ships in `config.toml`; the `token` command reads the same file. With an
//! external database a key is required. Verification and signing are `jwt`'s.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use rand::RngCore;

use crate::config::{Config, DbMode, MIN_SECRET_BYTES};
use crate::jwt::{Algorithm, Jwt, JwtConfigError, JwtSettings};

/// File of the generated secret inside the embedded data directory.
pub const GENERATED_SECRET_FILE: &str = "pgrpc_jwt_secret";

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{key}: cannot use {path}: {source}")]
    File {
        /// Config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// External database without any key.
    #[error("jwt: with an external database (db.uri) a key is required: set jwt.secret, jwt.secret_file, jwt.public_key_file, jwt.private_key_file, jwt.jwks_file or jwt.jwks_url")]
    Missing,
    /// An algorithm name is unknown.
    #[error("jwt.algorithms: unknown algorithm {0:?} (HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")]
    Algorithm(String),
    /// The key material is unusable.
    #[error(transparent)]
    Config(#[from] JwtConfigError),
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::File {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Build the verifier/signer from the config. With the embedded default and no
/// key configured, the generated secret is read, or created when `create` (the
/// server, after the cluster exists; `pgrpc token` only reads it).
pub fn load(config: &Config, create: bool) -> Result<Jwt, KeyError> {
    Ok(Jwt::new(load_settings(config, create)?)?)
}

/// The settings [`load`] builds the verifier from. With `jwt.jwks_url` they
/// lack the URL's keys, which `jwks` adds once fetched.
pub fn load_settings(config: &Config, create: bool) -> Result<JwtSettings, KeyError> {
    let j = &config.jwt;
    let mut secret = match (&j.secret, &j.secret_file) {
        (Some(s), _) => Some(s.as_bytes().to_vec()),
        (None, Some(path)) => {
            let mut bytes = read("jwt.secret_file", path)?;
            // A trailing newline from `echo … > file` is not part of the secret.
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            Some(bytes)
        }
        (None, None) => None,
    };
    let public_key_pem = j
        .public_key_file
        .as_deref()
        .map(|p| read("jwt.public_key_file", p))
        .transpose()?;
    let private_key_pem = j
        .private_key_file
        .as_deref()
        .map(|p| read("jwt.private_key_file", p))
        .transpose()?;
    let jwks_json = j
        .jwks_file
        .as_deref()
        .map(|p| read("jwt.jwks_file", p).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .transpose()?;
    let has_key = secret.is_some()
        || public_key_pem.is_some()
        || private_key_pem.is_some()
        || jwks_json.is_some()
        || j.jwks_url.is_some();
    if !has_key {
        match &config.db.mode {
            DbMode::Embedded { data_dir } => secret = Some(generated_secret(data_dir, create)?),
            DbMode::External { .. } => return Err(KeyError::Missing),
        }
    }
    let algorithms = j
        .algorithms
        .iter()
        .map(|name| Algorithm::from_str(name.trim()).map_err(|_| KeyError::Algorithm(name.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let settings = JwtSettings {
        secret,
        public_key_pem,
        private_key_pem,
        jwks_json,
        algorithms,
        require_exp: j.require_exp,
        leeway: j.leeway,
        audience: j.aud.clone(),
        issuer: j.iss.clone(),
        role_claim: j.role_claim.clone(),
        default_lifetime: j.default_lifetime,
        cache_max_entries: j.cache_max_entries,
        cache_max_bytes: j.cache_max_bytes,
    };
    Ok(settings)
}

/// The embedded default's secret: read it, or create it (0600) on first start.
fn generated_secret(data_dir: &Path, create: bool) -> Result<Vec<u8>, KeyError> {
    let path = data_dir.join(GENERATED_SECRET_FILE);
    if !create && !path.exists() {
        return Err(KeyError::File {
            key: "jwt.secret",
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no generated secret yet: start the server once (it creates one), or configure jwt.secret",
            ),
        });
    }
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= MIN_SECRET_BYTES => return Ok(bytes),
        Ok(_) | Err(_) if path.exists() => {
            return Err(KeyError::File {
                key: "jwt.secret",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the generated secret is unreadable or shorter than 32 bytes",
                ),
            })
        }
        _ => {}
    }
    let mut raw = [0u8; 48];
    rand::rng().fill_bytes(&mut raw);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(secret.as_bytes())?;
        f.sync_all()
    };
    write().map_err(|source| KeyError::File {
        key: "jwt.secret",
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %path.display(), "generated a JWT secret for the embedded default");
    Ok(secret.into_bytes())
}
