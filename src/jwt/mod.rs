//! JSON Web Tokens: verifying the tokens clients present and signing the tokens
//! SQL functions return.
//!
//! The gateway is the only holder of the signing key, so this module is the one
//! place where key material is turned into `jsonwebtoken` keys, where the
//! algorithm of an incoming token is pinned (RFC 8725 §3.1), where the
//! registered time/audience/issuer claims of RFC 7519 §4.1 are checked, and
//! where claims are serialized canonically before signing.
//!
//! It owns (this file): the verifier and signer ([`Jwt`]), algorithm pinning,
//! signature verification, claim validation and the role claim lookup. Its
//! children: `verified` holds the form a verified token takes ([`Verified`]:
//! claims as JSON text, role, session, validity window); `cache` keeps them,
//! bounded in entries and in bytes; `material` turns bytes into keys (HMAC
//! secret, PEM public/private keys, a JWK Set); `errors` holds the
//! configuration and token errors with PostgREST's codes and texts
//! (`PGRST300`/`PGRST301`/`PGRST303`, PostgREST `src/PostgREST/Error.hs`);
//! [`refusal`] says in words why a token was refused; [`keys`] finds the key
//! material in the configuration; [`jwks`] fetches and refreshes a JWKS URL;
//! [`revoked`] is the set of ended sessions.
//!
//! It does not own: reading key files or the config file (the `config` module
//! passes bytes in), choosing HTTP statuses (the HTTP layer answers header
//! failures with 401 and token-valued parameter failures with 400), or
//! switching the database role (the execute stage).

mod cache;
mod errors;
pub mod jwks;
pub mod keys;
mod material;
#[cfg(test)]
mod proptests;
pub mod refusal;
pub mod revoked;
mod verified;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{AlgorithmFamily, DecodingKey, EncodingKey};
use serde_json::{Map, Value};

use crate::config::{
    DEFAULT_JWT_CACHE_BYTES, DEFAULT_JWT_CACHE_ENTRIES, MIN_SECRET_BYTES as MIN_SECRET_LEN,
};

use cache::TokenCache;
pub use errors::{JwtConfigError, JwtError};
pub use jsonwebtoken::Algorithm;
use material::{check_pair, load_jwks, load_private_pem, load_public_pem};
pub use verified::Verified;
use verified::Window;

/// The claims (payload) of a JWT: a JSON object (RFC 7519 §7.2 step 10).
pub type Claims = Map<String, Value>;

/// Minimum RSA modulus length in bytes: RFC 7518 §3.3 says a key of size 2048
/// bits or larger MUST be used.
const MIN_RSA_MODULUS_LEN: usize = 256;

/// Validated JWT settings (built by the config module from the config file).
#[derive(Clone)]
pub struct JwtSettings {
    /// HMAC secret (`jwt.secret`); at least 32 bytes.
    pub secret: Option<Vec<u8>>,
    /// RSA, EC (P-256/P-384) or Ed25519 public key PEM (`jwt.public_key_file`), for verification.
    pub public_key_pem: Option<Vec<u8>>,
    /// Matching PKCS#8 (or PKCS#1 RSA) private key PEM (`jwt.private_key_file`), for signing.
    pub private_key_pem: Option<Vec<u8>>,
    /// A JWK Set document, or a single JWK (`jwt.jwks_file`), for verification with `kid` matching.
    pub jwks_json: Option<String>,
    /// Pinned algorithms (`jwt.algorithms`); empty means HS256 when a secret is
    /// set plus the natural algorithm of every configured key.
    pub algorithms: Vec<Algorithm>,
    /// Reject tokens without an `exp` claim.
    pub require_exp: bool,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// When set, tokens must list this value in `aud`, and signed tokens get it.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`, and signed tokens get it.
    pub issuer: Option<String>,
    /// Path to the role claim, e.g. `["role"]` or `["app_metadata", "role"]`.
    pub role_claim: Vec<String>,
    /// Seconds added to `iat` (or now) as `exp` when signing claims without `exp`.
    pub default_lifetime: u64,
    /// Most tokens the verified-token cache keeps; 0 disables it.
    pub cache_max_entries: usize,
    /// Most bytes the verified-token cache holds (entries costed by their
    /// real size); 0 disables it.
    pub cache_max_bytes: usize,
}

impl Default for JwtSettings {
    /// No keys, `require_exp`, 30 s leeway, role claim `role`, one-hour
    /// lifetime, the configuration's default cache bounds.
    fn default() -> Self {
        JwtSettings {
            secret: None,
            public_key_pem: None,
            private_key_pem: None,
            jwks_json: None,
            algorithms: Vec::new(),
            require_exp: true,
            leeway: 30,
            audience: None,
            issuer: None,
            role_claim: vec!["role".to_owned()],
            default_lifetime: 3600,
            cache_max_entries: DEFAULT_JWT_CACHE_ENTRIES,
            cache_max_bytes: DEFAULT_JWT_CACHE_BYTES,
        }
    }
}

impl JwtSettings {
    /// Default settings with an HMAC secret (handy for tests).
    pub fn with_secret(secret: &[u8]) -> JwtSettings {
        JwtSettings {
            secret: Some(secret.to_vec()),
            ..JwtSettings::default()
        }
    }
}

// Written by hand rather than derived so that logging the settings never
// prints the secret or the private key.
impl fmt::Debug for JwtSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |set: bool| if set { Some("[redacted]") } else { None };
        f.debug_struct("JwtSettings")
            .field("secret", &redacted(self.secret.is_some()))
            .field("public_key_pem", &self.public_key_pem.is_some())
            .field("private_key_pem", &redacted(self.private_key_pem.is_some()))
            .field("jwks_json", &self.jwks_json.is_some())
            .field("algorithms", &self.algorithms)
            .field("require_exp", &self.require_exp)
            .field("leeway", &self.leeway)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("role_claim", &self.role_claim)
            .field("default_lifetime", &self.default_lifetime)
            .field("cache_max_entries", &self.cache_max_entries)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .finish()
    }
}

/// A verification key with the algorithms it may be used with (already
/// intersected with the pinned list), so a public key can never be tried as
/// an HMAC secret (the RFC 8725 §2.1 algorithm-confusion attack).
#[derive(Clone)]
struct VerifyKey {
    /// `kid` from the JWK Set (RFC 7515 §4.1.4); PEM keys and the secret have none.
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    /// What a default algorithm list takes from this key.
    default_algorithm: Algorithm,
    key: DecodingKey,
}

/// A key that can sign, with the algorithms its type allows.
struct SignKey {
    algorithms: Vec<Algorithm>,
    key: EncodingKey,
}

/// Verifies and signs tokens with one fixed configuration; shared behind an
/// `Arc` by the server.
pub struct Jwt {
    settings: JwtSettings,
    /// The effective pinned list (settings or the default derived from keys).
    algorithms: Vec<Algorithm>,
    keys: Vec<VerifyKey>,
    /// The signing algorithm and key, chosen once at start.
    signer: Option<(Algorithm, EncodingKey)>,
    /// `None` when `cache_max_entries` or `cache_max_bytes` is 0.
    cache: Option<TokenCache>,
    /// Verifications answered from the cache / by full verification (metrics).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys.len())
            .field("signing_algorithm", &self.signing_algorithm())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Jwt {
    /// Load and cross-check the configured keys and algorithms.
    ///
    /// With no key at all the result is valid but every token is refused with
    /// `PGRST300`, like PostgREST without `jwt-secret`.
    pub fn new(settings: JwtSettings) -> Result<Jwt, JwtConfigError> {
        if settings.role_claim.is_empty() {
            return Err(JwtConfigError::EmptyRoleClaim);
        }
        let mut candidates: Vec<VerifyKey> = Vec::new();
        let mut signers: Vec<SignKey> = Vec::new();

        if let Some(secret) = &settings.secret {
            if secret.len() < MIN_SECRET_LEN {
                return Err(JwtConfigError::SecretTooShort(secret.len()));
            }
            let hmac = AlgorithmFamily::Hmac.algorithms().to_vec();
            candidates.push(VerifyKey {
                kid: None,
                algorithms: hmac.clone(),
                default_algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            });
            signers.push(SignKey {
                algorithms: hmac,
                key: EncodingKey::from_secret(secret),
            });
        }

        let private = match &settings.private_key_pem {
            Some(pem) => Some(load_private_pem(pem).map_err(JwtConfigError::PrivateKey)?),
            None => None,
        };
        let public = match &settings.public_key_pem {
            Some(pem) => Some(load_public_pem(pem).map_err(JwtConfigError::PublicKey)?),
            None => None,
        };
        match (&private, public) {
            (Some(private), Some(public)) => {
                check_pair(private, &public)?;
                candidates.push(public);
            }
            // The gateway must be able to verify what it signs, so the public
            // half of a lone private key is a verification key too.
            (Some(private), None) => candidates.push(private.public.clone()),
            (None, Some(public)) => candidates.push(public),
            (None, None) => {}
        }
        if let Some(private) = private {
            signers.push(SignKey {
                algorithms: private.public.algorithms,
                key: private.key,
            });
        }

        if let Some(json) = &settings.jwks_json {
            candidates.extend(load_jwks(json).map_err(JwtConfigError::Jwks)?);
        }

        let mut algorithms: Vec<Algorithm> = Vec::new();
        let wanted: Vec<Algorithm> = if settings.algorithms.is_empty() {
            candidates.iter().map(|k| k.default_algorithm).collect()
        } else {
            settings.algorithms.clone()
        };
        for alg in wanted {
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        for alg in &algorithms {
            if !candidates.iter().any(|k| k.algorithms.contains(alg)) {
                return Err(if alg.family() == AlgorithmFamily::Hmac {
                    JwtConfigError::HmacWithoutSecret(alg_name(*alg))
                } else {
                    JwtConfigError::AlgorithmWithoutKey(alg_name(*alg))
                });
            }
        }

        let keys: Vec<VerifyKey> = candidates
            .into_iter()
            .filter_map(|mut key| {
                key.algorithms.retain(|a| algorithms.contains(a));
                (!key.algorithms.is_empty()).then_some(key)
            })
            .collect();

        let signer = algorithms.iter().find_map(|alg| {
            signers
                .iter()
                .find(|s| s.algorithms.contains(alg))
                .map(|s| (*alg, s.key.clone()))
        });
        // Signing picks the first pinned algorithm with a key, so a secret
        // listed first (or the HS256 default) wins over a private key.
        if settings.private_key_pem.is_some()
            && !signer
                .as_ref()
                .is_some_and(|(a, _)| a.family() != AlgorithmFamily::Hmac)
        {
            tracing::warn!(
                algorithms = %join_algs(&algorithms),
                signing = ?signer.as_ref().map(|(a, _)| *a),
                "jwt.private_key_file is set but tokens are not signed with it; list its algorithm first in jwt.algorithms"
            );
        }

        let cache = TokenCache::new(settings.cache_max_entries, settings.cache_max_bytes);

        tracing::debug!(
            algorithms = %join_algs(&algorithms),
            keys = keys.len(),
            signing = ?signer.as_ref().map(|(a, _)| *a),
            "JWT keys loaded"
        );
        Ok(Jwt {
            settings,
            algorithms,
            keys,
            signer,
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// (cache hits, cache misses) since start, for `/metrics`.
    pub fn cache_stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// (entries, accounted bytes) of the verified-token cache now, for
    /// `/metrics`; `None` when the cache is off.
    pub fn cache_size(&self) -> Option<(usize, usize)> {
        self.cache.as_ref().map(TokenCache::size)
    }

    /// Verify signature, algorithm pinning and the time/audience/issuer
    /// claims, and find the role; cached (module `cache`).
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, JwtError> {
        self.verify_at(token, unix_now())
    }

    /// [`Jwt::verify`] with an explicit clock (`now` in Unix seconds), for tests.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Verified>, JwtError> {
        let (at, leeway) = (now as f64, self.settings.leeway as f64);
        if let Some(verified) = self.cache.as_ref().and_then(|c| c.get(token, at, leeway)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(verified);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let claims = self.decode_and_verify(token)?;
        let window = self.check_claims(&claims, now)?;
        let verified = Arc::new(Verified::new(&claims, self.role(&claims), window));
        if let Some(cache) = &self.cache {
            cache.insert(token, Arc::clone(&verified), at, leeway);
        }
        Ok(verified)
    }

    /// The role at the configured claim path: `Ok(None)` when absent, `Err`
    /// when present but not a non-empty string.
    ///
    /// A path segment that is a number also indexes into an array, as
    /// PostgREST's `jwt-role-claim-key` (`.roles[0]`) allows.
    pub fn role<'c>(&self, claims: &'c Claims) -> Result<Option<&'c str>, JwtError> {
        let mut path = self.settings.role_claim.iter();
        let Some(first) = path.next() else {
            return Ok(None);
        };
        let Some(mut value) = claims.get(first) else {
            return Ok(None);
        };
        for segment in path {
            let next = match value {
                Value::Object(map) => map.get(segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(v) => value = v,
                None => return Ok(None),
            }
        }
        match value {
            Value::String(role) if !role.is_empty() => Ok(Some(role)),
            _ => Err(JwtError::RoleNotString(self.settings.role_claim.join("."))),
        }
    }

    /// Sign claims: add `iat` (now) if absent, `exp` = `iat`/now +
    /// `default_lifetime` if absent, `aud`/`iss` from the settings if
    /// configured and absent; serialize with keys sorted recursively so that
    /// signing equal claims twice gives the same token; sign with the first
    /// pinned algorithm that has a secret or private key.
    pub fn sign(&self, claims: Claims) -> Result<String, JwtError> {
        self.sign_at(claims, unix_now())
    }

    /// [`Jwt::sign`] with an explicit clock (`now` in Unix seconds), for tests.
    ///
    /// Claims whose registered claims have the wrong type are refused with
    /// the error verification would give, rather than signed into a token
    /// the gateway itself would reject.
    pub fn sign_at(&self, mut claims: Claims, now: u64) -> Result<String, JwtError> {
        let Some((algorithm, key)) = &self.signer else {
            return Err(JwtError::NoSigningKey);
        };
        for name in ["exp", "nbf", "iat"] {
            time_claim(&claims, name)?;
        }
        if let Some(aud) = claims.get("aud") {
            audiences(aud)?;
        }

        // RFC 7519 §4.1.6: iat is when the token was issued; an integral iat
        // the function chose is kept and anchors exp.
        let issued = match claims.get("iat") {
            Some(iat) => iat.as_u64().unwrap_or(now),
            None => {
                claims.insert("iat".to_owned(), Value::from(now));
                now
            }
        };
        if !claims.contains_key("exp") {
            let exp = issued.saturating_add(self.settings.default_lifetime);
            claims.insert("exp".to_owned(), Value::from(exp));
        }
        if let Some(aud) = &self.settings.audience {
            if !claims.contains_key("aud") {
                claims.insert("aud".to_owned(), Value::from(aud.as_str()));
            }
        }
        if let Some(iss) = &self.settings.issuer {
            if !claims.contains_key("iss") {
                claims.insert("iss".to_owned(), Value::from(iss.as_str()));
            }
        }

        // jsonwebtoken's `encode` serializes the header struct in field order
        // (`typ` before `alg`) and a preserve_order Map in insertion order, so
        // equal claims could give different tokens. Serializing both parts
        // ourselves with sorted keys makes `sign(verify(t)) == t`.
        let mut header = Map::new();
        header.insert("alg".to_owned(), Value::from(alg_name(*algorithm)));
        header.insert("typ".to_owned(), Value::from("JWT"));
        let header = serde_json::to_vec(&sorted(Value::Object(header)))
            .map_err(|e| JwtError::SigningFailed(e.to_string()))?;
        let payload = serde_json::to_vec(&sorted(Value::Object(claims)))
            .map_err(|e| JwtError::SigningFailed(e.to_string()))?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, *algorithm)
            .map_err(|e| JwtError::SigningFailed(e.to_string()))?;
        Ok(format!("{message}.{signature}"))
    }

    /// Whether a secret or private key fits one of the pinned algorithms.
    pub fn can_sign(&self) -> bool {
        self.signer.is_some()
    }

    /// The algorithm [`Jwt::sign`] uses, if any.
    pub fn signing_algorithm(&self) -> Option<Algorithm> {
        self.signer.as_ref().map(|(alg, _)| *alg)
    }

    /// The effective pinned algorithms (the settings' list, or the default
    /// derived from the configured keys).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The settings this verifier was built from.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Shape, header, algorithm, key and signature checks, then payload decoding.
    fn decode_and_verify(&self, token: &str) -> Result<Claims, JwtError> {
        if self.keys.is_empty() {
            return Err(JwtError::NoVerificationKey);
        }
        if token.trim().is_empty() {
            return Err(JwtError::Empty);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [header_b64, payload_b64, signature_b64] = parts[..] else {
            return Err(JwtError::WrongParts(parts.len()));
        };

        let header = decode_part(header_b64, "The JWT header is not valid base64url")?;
        let header: Map<String, Value> = match serde_json::from_slice(&header) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(JwtError::Decode("The JWT header is not a JSON object")),
            Err(_) => return Err(JwtError::Decode("The JWT header is not valid JSON")),
        };

        // Algorithm pinning happens before any key is touched (RFC 8725 §3.1):
        // `none` and anything not pinned never reach a verifier.
        let alg_text = header.get("alg").and_then(Value::as_str);
        let algorithm = alg_text
            .and_then(|a| Algorithm::from_str(a).ok())
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| JwtError::UnsupportedAlgorithm {
                alg: alg_text.map(str::to_owned),
                allowed: join_algs(&self.algorithms),
            })?;
        if let Some(crit) = header.get("crit") {
            return Err(JwtError::UnsupportedCritical(crit.to_string()));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwtError::Decode("The JWT 'kid' header is not a string")),
        };

        let candidates = self.candidate_keys(kid, algorithm)?;
        if URL_SAFE_NO_PAD.decode(signature_b64).is_err() {
            return Err(JwtError::Decode("The JWT signature is not valid base64url"));
        }
        let message = &token[..header_b64.len() + 1 + payload_b64.len()];
        let mut any_checked = false;
        for key in candidates {
            match jsonwebtoken::crypto::verify(
                signature_b64,
                message.as_bytes(),
                &key.key,
                algorithm,
            ) {
                Ok(true) => return decode_payload(payload_b64),
                Ok(false) => any_checked = true,
                Err(e) => tracing::debug!(error = %e, "JWT key rejected by verifier"),
            }
        }
        Err(if any_checked {
            JwtError::InvalidSignature
        } else {
            JwtError::NoSuitableKey(format!(
                "No configured key could verify {}",
                alg_name(algorithm)
            ))
        })
    }

    /// Keys to try for a token: those whose `kid` matches when the token names
    /// one that exists, otherwise the keys without a `kid` (the secret, PEM
    /// keys), each only if its type fits the algorithm.
    fn candidate_keys(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Vec<&VerifyKey>, JwtError> {
        let named: Vec<&VerifyKey> = match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => Vec::new(),
        };
        let pool: Vec<&VerifyKey> = if !named.is_empty() {
            named
        } else if kid.is_some() {
            self.keys.iter().filter(|k| k.kid.is_none()).collect()
        } else {
            self.keys.iter().collect()
        };
        let fitting: Vec<&VerifyKey> = pool
            .into_iter()
            .filter(|k| k.algorithms.contains(&algorithm))
            .collect();
        if fitting.is_empty() {
            return Err(match kid {
                Some(kid) if self.keys.iter().any(|k| k.kid.as_deref() == Some(kid)) => {
                    JwtError::NoSuitableKey(format!(
                        "The key '{kid}' cannot verify {}",
                        alg_name(algorithm)
                    ))
                }
                Some(kid) => JwtError::UnknownKid(format!("No key has kid '{kid}'")),
                None => JwtError::NoSuitableKey(format!(
                    "No configured key can verify {}",
                    alg_name(algorithm)
                )),
            });
        }
        Ok(fitting)
    }

    /// RFC 7519 §4.1 registered claims, each failure with its own error.
    fn check_claims(&self, claims: &Claims, now: u64) -> Result<Window, JwtError> {
        let now = now as f64;
        let leeway = self.settings.leeway as f64;
        let exp = time_claim(claims, "exp")?;
        let nbf = time_claim(claims, "nbf")?;
        let iat = time_claim(claims, "iat")?;
        match exp {
            None if self.settings.require_exp => return Err(JwtError::MissingExp),
            Some(exp) if now > exp + leeway => {
                return Err(JwtError::Expired {
                    exp: exp.floor() as i64,
                })
            }
            _ => {}
        }
        if let Some(nbf) = nbf.filter(|nbf| *nbf > now + leeway) {
            return Err(JwtError::NotYetValid {
                nbf: nbf.floor() as i64,
            });
        }
        if let Some(iat) = iat.filter(|iat| *iat > now + leeway) {
            return Err(JwtError::IssuedInFuture {
                iat: iat.floor() as i64,
            });
        }

        // RFC 7519 §4.1.3: only a principal that identifies itself with an
        // audience checks `aud`; the gateway does when `jwt.audience` is set,
        // and then requires it (PostgREST accepts a missing `aud`).
        if let Some(expected) = &self.settings.audience {
            let aud = claims.get("aud").ok_or(JwtError::NotInAudience)?;
            if !audiences(aud)?.contains(&expected.as_str()) {
                return Err(JwtError::NotInAudience);
            }
        }
        if let Some(expected) = &self.settings.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(expected.as_str()) {
                return Err(JwtError::IssuerNotAccepted);
            }
        }

        let not_before = match (nbf, iat) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Ok(Window { exp, not_before })
    }
}

/// The JOSE name of an algorithm (RFC 7518 §3.1); jsonwebtoken's `Debug`
/// derive prints exactly these names, and its `FromStr` parses them.
fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

fn join_algs(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| alg_name(*a))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn decode_part(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    // RFC 7515 §2: base64url without padding.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Decode(what))
}

fn decode_payload(payload_b64: &str) -> Result<Claims, JwtError> {
    let payload = decode_part(payload_b64, "The JWT payload is not valid base64url")?;
    match serde_json::from_slice(&payload) {
        Ok(Value::Object(claims)) => Ok(claims),
        Ok(_) => Err(JwtError::PayloadNotObject),
        Err(_) => Err(JwtError::Decode("The JWT payload is not valid JSON")),
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, integer or not).
fn time_claim(claims: &Claims, name: &'static str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::ClaimNotNumber(name)),
        Some(_) => Err(JwtError::ClaimNotNumber(name)),
    }
}

/// The audiences of an `aud` claim (RFC 7519 §4.1.3: a string or an array of strings).
fn audiences(aud: &Value) -> Result<Vec<&str>, JwtError> {
    match aud {
        Value::String(one) => Ok(vec![one.as_str()]),
        Value::Array(many) => many
            .iter()
            .map(|a| a.as_str().ok_or(JwtError::AudienceNotString))
            .collect(),
        _ => Err(JwtError::AudienceNotString),
    }
}

/// The value with every object's keys sorted, recursively (serde_json's
/// preserve_order keeps insertion order, so order must be imposed).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"reallyreallyreallyreallyverysafe";
    const NOW: u64 = 1_700_000_000;

    const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/rsa_private.pem");
    const RSA_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/rsa_public.pem");
    const RSA2_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/rsa2_private.pem");
    const EC_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/ec_private.pem");
    const EC_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/ec_public.pem");
    const EC2_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/ec2_private.pem");
    const ED_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/jwt/ed25519_private.pem");
    const ED_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/jwt/ed25519_public.pem");
    const JWKS: &str = include_str!("../../tests/fixtures/jwt/jwks.json");

    fn obj(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn hs256() -> Jwt {
        Jwt::new(JwtSettings::with_secret(SECRET)).expect("valid settings")
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializable"))
    }

    /// Build a token by hand, with any header, so tests can forge what
    /// `sign` never produces (kid, other algorithms, odd claims).
    fn forge(header: Value, claims: Value, alg: Algorithm, key: &EncodingKey) -> String {
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("test key signs");
        format!("{message}.{signature}")
    }

    fn forge_hs(alg: Algorithm, claims: Value) -> String {
        let header = json!({"alg": alg_name(alg), "typ": "JWT"});
        forge(header, claims, alg, &EncodingKey::from_secret(SECRET))
    }

    fn valid_claims() -> Value {
        json!({"role": "web_user", "exp": NOW + 600})
    }

    #[test]
    fn jwt_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Jwt>();
    }

    #[test]
    fn hs256_round_trip() {
        let jwt = hs256();
        assert_eq!(jwt.signing_algorithm(), Some(Algorithm::HS256));
        let token = jwt
            .sign_at(obj(json!({"role": "web_user", "n": 1})), NOW)
            .unwrap();
        let claims = jwt.verify_at(&token, NOW + 10).unwrap().claims();
        assert_eq!(claims["role"], "web_user");
        assert_eq!(claims["n"], 1);
        assert_eq!(jwt.role(&claims).unwrap(), Some("web_user"));
    }

    #[test]
    fn canonical_resigning_gives_the_same_token() {
        let jwt = hs256();
        let a = json!({"role": "r", "z": {"b": 1, "a": [{"y": 2.5, "x": "é\n"}]}, "exp": NOW + 60});
        let b = json!({"exp": NOW + 60, "z": {"a": [{"x": "é\n", "y": 2.5}], "b": 1}, "role": "r"});
        let ta = jwt.sign_at(obj(a), NOW).unwrap();
        let tb = jwt.sign_at(obj(b), NOW).unwrap();
        assert_eq!(ta, tb, "equal claims in any key order sign identically");
        assert_eq!(jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap(), {
            jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap()
        });

        let claims = jwt.verify_at(&ta, NOW).unwrap().claims();
        // A different clock must not matter: iat and exp are already set.
        assert_eq!(jwt.sign_at(claims.clone(), NOW + 999).unwrap(), ta);
        assert_eq!(
            jwt.sign(jwt.verify_at(&ta, NOW).unwrap().claims()).unwrap(),
            ta
        );

        let header = URL_SAFE_NO_PAD
            .decode(ta.split('.').next().unwrap())
            .unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn canonical_resigning_with_deterministic_public_key_algorithms() {
        for (pem, alg) in [
            (RSA_PRIVATE, Algorithm::RS256),
            (EC_PRIVATE, Algorithm::ES256),
            (ED_PRIVATE, Algorithm::EdDSA),
        ] {
            let jwt = Jwt::new(JwtSettings {
                private_key_pem: Some(pem.to_vec()),
                ..JwtSettings::default()
            })
            .unwrap();
            assert_eq!(jwt.signing_algorithm(), Some(alg));
            let token = jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap();
            let claims = jwt.verify_at(&token, NOW).unwrap().claims();
            assert_eq!(jwt.sign_at(claims.clone(), NOW).unwrap(), token, "{alg:?}");
        }
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let jwt = hs256();
        let token = jwt.sign_at(obj(json!({"role": "web_user"})), NOW).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let evil = b64(&json!({"exp": NOW + 60, "iat": NOW, "role": "postgres"}));
        let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
        let err = jwt.verify_at(&tampered, NOW).unwrap_err();
        assert_eq!(err, JwtError::InvalidSignature);
        assert_eq!(err.code(), "PGRST301");
        assert_eq!(err.message(), "JWT cryptographic operation failed");
    }

    #[test]
    fn wrong_secret_is_rejected() {
        let other = Jwt::new(JwtSettings::with_secret(&[b'x'; 32])).unwrap();
        let token = other.sign_at(obj(valid_claims()), NOW).unwrap();
        assert_eq!(
            hs256().verify_at(&token, NOW),
            Err(JwtError::InvalidSignature)
        );
    }

    #[test]
    fn wrong_rsa_key_is_rejected() {
        let jwt = Jwt::new(JwtSettings {
            public_key_pem: Some(RSA_PUBLIC.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        let key = EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap();
        let token = forge(
            json!({"alg": "RS256"}),
            valid_claims(),
            Algorithm::RS256,
            &key,
        );
        assert_eq!(jwt.verify_at(&token, NOW), Err(JwtError::InvalidSignature));
    }

    #[test]
    fn alg_none_is_rejected() {
        let jwt = hs256();
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&valid_claims())
        );
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "Wrong or unsupported encoding algorithm");
        assert_eq!(err.code(), "PGRST301");
        assert_eq!(
            err.details().unwrap(),
            "The JWT uses 'none'; accepted: HS256"
        );
        // Also with a (bogus) signature and with no alg at all.
        let signed = format!("{token}c2lnbmF0dXJl");
        assert!(matches!(
            jwt.verify_at(&signed, NOW),
            Err(JwtError::UnsupportedAlgorithm { .. })
        ));
        let no_alg = format!(
            "{}.{}.c2ln",
            b64(&json!({"typ": "JWT"})),
            b64(&valid_claims())
        );
        assert_eq!(
            jwt.verify_at(&no_alg, NOW),
            Err(JwtError::UnsupportedAlgorithm {
                alg: None,
                allowed: "HS256".to_owned()
            })
        );
    }

    #[test]
    fn unpinned_hmac_algorithm_is_rejected() {
        let token = forge_hs(Algorithm::HS384, valid_claims());
        assert_eq!(
            hs256().verify_at(&token, NOW),
            Err(JwtError::UnsupportedAlgorithm {
                alg: Some("HS384".to_owned()),
                allowed: "HS256".to_owned()
            })
        );
        // Pinned explicitly it verifies with the same secret.
        let jwt = Jwt::new(JwtSettings {
            algorithms: vec![Algorithm::HS256, Algorithm::HS384],
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        assert!(jwt.verify_at(&token, NOW).is_ok());
    }

    #[test]
    fn hs256_token_against_rs256_only_config_is_rejected() {
        let jwt = Jwt::new(JwtSettings {
            public_key_pem: Some(RSA_PUBLIC.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(jwt.algorithms(), &[Algorithm::RS256]);
        assert!(!jwt.can_sign());
        // The classic confusion attack: HMAC keyed with the public key's bytes.
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let token = forge(
            header,
            valid_claims(),
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC),
        );
        assert!(matches!(
            jwt.verify_at(&token, NOW),
            Err(JwtError::UnsupportedAlgorithm { .. })
        ));
        // Pinning HS256 without a secret is a configuration error.
        let err = Jwt::new(JwtSettings {
            public_key_pem: Some(RSA_PUBLIC.to_vec()),
            algorithms: vec![Algorithm::RS256, Algorithm::HS256],
            ..JwtSettings::default()
        })
        .unwrap_err();
        assert!(matches!(err, JwtConfigError::HmacWithoutSecret(_)));
        assert!(err.to_string().starts_with("jwt.algorithms: HS256"));
    }

    #[test]
    fn rs256_with_pem_keys() {
        let jwt = Jwt::new(JwtSettings {
            public_key_pem: Some(RSA_PUBLIC.to_vec()),
            private_key_pem: Some(RSA_PRIVATE.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(jwt.signing_algorithm(), Some(Algorithm::RS256));
        let token = jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap();
        assert_eq!(jwt.verify_at(&token, NOW).unwrap().claims()["role"], "r");

        // Verification-only gateway with the public key.
        let verifier = Jwt::new(JwtSettings {
            public_key_pem: Some(RSA_PUBLIC.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert!(verifier.verify_at(&token, NOW).is_ok());
        assert_eq!(
            verifier.sign_at(obj(json!({})), NOW),
            Err(JwtError::NoSigningKey)
        );
    }

    #[test]
    fn es256_with_pem_keys() {
        let signer = Jwt::new(JwtSettings {
            private_key_pem: Some(EC_PRIVATE.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(signer.signing_algorithm(), Some(Algorithm::ES256));
        let token = signer.sign_at(obj(json!({"role": "r"})), NOW).unwrap();
        let verifier = Jwt::new(JwtSettings {
            public_key_pem: Some(EC_PUBLIC.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(verifier.algorithms(), &[Algorithm::ES256]);
        assert_eq!(
            verifier.verify_at(&token, NOW).unwrap().claims()["role"],
            "r"
        );
    }

    #[test]
    fn eddsa_with_pem_keys() {
        let jwt = Jwt::new(JwtSettings {
            public_key_pem: Some(ED_PUBLIC.to_vec()),
            private_key_pem: Some(ED_PRIVATE.to_vec()),
            ..JwtSettings::default()
        })
        .unwrap();
        assert_eq!(jwt.signing_algorithm(), Some(Algorithm::EdDSA));
        let token = jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap();
        assert_eq!(jwt.verify_at(&token, NOW).unwrap().claims()["role"], "r");
        // An ES256 token is not accepted by an EdDSA-only gateway.
        let es = forge(
            json!({"alg": "ES256"}),
            valid_claims(),
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
        );
        assert!(matches!(
            jwt.verify_at(&es, NOW),
            Err(JwtError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn bad_key_files_are_config_errors() {
        let with = |public: Option<&[u8]>, private: Option<&[u8]>| {
            Jwt::new(JwtSettings {
                public_key_pem: public.map(<[u8]>::to_vec),
                private_key_pem: private.map(<[u8]>::to_vec),
                ..JwtSettings::default()
            })
        };
        assert!(matches!(
            with(Some(RSA_PRIVATE), None),
            Err(JwtConfigError::PublicKey(_))
        ));
        assert!(matches!(
            with(Some(b"not a pem"), None),
            Err(JwtConfigError::PublicKey(_))
        ));
        assert!(matches!(
            with(None, Some(EC_PUBLIC)),
            Err(JwtConfigError::PrivateKey(_))
        ));
        assert!(matches!(
            with(Some(RSA_PUBLIC), Some(RSA2_PRIVATE)),
            Err(JwtConfigError::KeyMismatch)
        ));
        assert!(matches!(
            with(Some(EC_PUBLIC), Some(ED_PRIVATE)),
            Err(JwtConfigError::KeyMismatch)
        ));
        let err = Jwt::new(JwtSettings::with_secret(b"short")).unwrap_err();
        assert!(matches!(err, JwtConfigError::SecretTooShort(5)));
        assert!(err.to_string().starts_with("jwt.secret"));
        let err = Jwt::new(JwtSettings {
            public_key_pem: Some(EC_PUBLIC.to_vec()),
            algorithms: vec![Algorithm::RS256],
            ..JwtSettings::default()
        })
        .unwrap_err();
        assert!(matches!(err, JwtConfigError::AlgorithmWithoutKey(_)));
        let err = Jwt::new(JwtSettings {
            jwks_json: Some("{\"keys\": []}".to_owned()),
            ..JwtSettings::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("jwt.jwks_file"));
    }

    fn jwks_jwt() -> Jwt {
        Jwt::new(JwtSettings {
            jwks_json: Some(JWKS.to_owned()),
            ..JwtSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn jwks_matches_kid() {
        let jwt = jwks_jwt();
        assert_eq!(jwt.algorithms(), &[Algorithm::RS256, Algorithm::ES256]);
        let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let ec = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();

        let rs_token = forge(
            json!({"alg": "RS256", "kid": "rsa-1"}),
            valid_claims(),
            Algorithm::RS256,
            &rsa,
        );
        assert!(jwt.verify_at(&rs_token, NOW).is_ok());
        let es_token = forge(
            json!({"alg": "ES256", "kid": "ec-1"}),
            valid_claims(),
            Algorithm::ES256,
            &ec,
        );
        assert!(jwt.verify_at(&es_token, NOW).is_ok());
        // Without a kid, every key whose type fits is tried.
        let no_kid = forge(
            json!({"alg": "ES256"}),
            valid_claims(),
            Algorithm::ES256,
            &ec,
        );
        assert!(jwt.verify_at(&no_kid, NOW).is_ok());

        // Unknown kid, and a kid naming a key of the wrong type.
        let unknown = forge(
            json!({"alg": "RS256", "kid": "rsa-2"}),
            valid_claims(),
            Algorithm::RS256,
            &rsa,
        );
        let err = jwt.verify_at(&unknown, NOW).unwrap_err();
        assert_eq!(err, JwtError::UnknownKid("No key has kid 'rsa-2'".into()));
        assert_eq!(err.message(), "No suitable key or wrong key type");
        assert_eq!(err.code(), "PGRST301");
        let crossed = forge(
            json!({"alg": "RS256", "kid": "ec-1"}),
            valid_claims(),
            Algorithm::RS256,
            &rsa,
        );
        assert!(matches!(
            jwt.verify_at(&crossed, NOW),
            Err(JwtError::NoSuitableKey(_))
        ));
        // Right kid, wrong signer.
        let forged = forge(
            json!({"alg": "ES256", "kid": "ec-1"}),
            valid_claims(),
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(EC2_PRIVATE).unwrap(),
        );
        assert_eq!(jwt.verify_at(&forged, NOW), Err(JwtError::InvalidSignature));
    }

    #[test]
    fn expired_beyond_leeway_is_rejected() {
        let jwt = hs256();
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW - 31}));
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(
            err,
            JwtError::Expired {
                exp: (NOW - 31) as i64
            }
        );
        assert_eq!(err.code(), "PGRST303");
        assert_eq!(err.message(), "JWT expired");
    }

    #[test]
    fn expired_within_leeway_is_accepted() {
        let jwt = hs256();
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW - 30}));
        assert!(jwt.verify_at(&token, NOW).is_ok());
        // Fractional NumericDate (RFC 7519 §2).
        let token = forge_hs(Algorithm::HS256, json!({"exp": (NOW - 30) as f64 - 0.5}));
        assert_eq!(
            jwt.verify_at(&token, NOW),
            Err(JwtError::Expired {
                exp: (NOW - 31) as i64
            })
        );
    }

    #[test]
    fn nbf_in_future_is_rejected() {
        let jwt = hs256();
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 600, "nbf": NOW + 31}));
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "JWT not yet valid");
        assert_eq!(err.code(), "PGRST303");
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 600, "nbf": NOW + 30}));
        assert!(jwt.verify_at(&token, NOW).is_ok());
    }

    #[test]
    fn iat_in_future_is_rejected() {
        let jwt = hs256();
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 600, "iat": NOW + 100}),
        );
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "JWT issued at future");
        assert_eq!(err.code(), "PGRST303");
    }

    #[test]
    fn time_claims_must_be_numbers() {
        let jwt = hs256();
        for name in ["exp", "nbf", "iat"] {
            let mut claims = obj(json!({"exp": NOW + 60}));
            claims.insert(name.to_owned(), json!("soon"));
            let token = forge_hs(Algorithm::HS256, Value::Object(claims));
            let err = jwt.verify_at(&token, NOW).unwrap_err();
            assert_eq!(
                err.message(),
                format!("The JWT '{name}' claim must be a number")
            );
            assert_eq!(err.code(), "PGRST303");
        }
    }

    #[test]
    fn missing_exp_follows_require_exp() {
        let token = forge_hs(Algorithm::HS256, json!({"role": "r"}));
        let err = hs256().verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "JWT has no 'exp' claim");
        assert_eq!(err.code(), "PGRST303");
        let lenient = Jwt::new(JwtSettings {
            require_exp: false,
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        assert!(lenient.verify_at(&token, NOW).is_ok());
    }

    fn with_aud_iss() -> Jwt {
        Jwt::new(JwtSettings {
            audience: Some("gateway".to_owned()),
            issuer: Some("https://auth.example".to_owned()),
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap()
    }

    #[test]
    fn audience_is_checked() {
        let jwt = with_aud_iss();
        let iss = "https://auth.example";
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 60, "iss": iss, "aud": "other"}),
        );
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "JWT not in audience");
        assert_eq!(err.code(), "PGRST303");
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 60, "iss": iss}));
        assert_eq!(jwt.verify_at(&token, NOW), Err(JwtError::NotInAudience));
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 60, "iss": iss, "aud": ["other", "gateway"]}),
        );
        assert!(jwt.verify_at(&token, NOW).is_ok());
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 60, "iss": iss, "aud": ["gateway", 1]}),
        );
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(
            err.message(),
            "The JWT 'aud' claim must be a string or an array of strings"
        );
        // Without a configured audience, aud is ignored.
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 60, "aud": 42}));
        assert!(hs256().verify_at(&token, NOW).is_ok());
    }

    #[test]
    fn issuer_is_checked() {
        let jwt = with_aud_iss();
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 60, "aud": "gateway", "iss": "evil"}),
        );
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.message(), "JWT issuer is not accepted");
        assert_eq!(err.code(), "PGRST303");
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 60, "aud": "gateway"}));
        assert_eq!(jwt.verify_at(&token, NOW), Err(JwtError::IssuerNotAccepted));
    }

    #[test]
    fn role_claim_paths() {
        let nested = Jwt::new(JwtSettings {
            role_claim: vec!["app_metadata".to_owned(), "role".to_owned()],
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        let claims = obj(json!({"role": "top", "app_metadata": {"role": "nested"}}));
        assert_eq!(nested.role(&claims).unwrap(), Some("nested"));
        assert_eq!(hs256().role(&claims).unwrap(), Some("top"));

        let indexed = Jwt::new(JwtSettings {
            role_claim: vec!["roles".to_owned(), "1".to_owned()],
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        assert_eq!(
            indexed.role(&obj(json!({"roles": ["a", "b"]}))).unwrap(),
            Some("b")
        );

        for bad in [json!(42), json!(""), json!(null), json!({"x": 1})] {
            let claims = obj(json!({"role": bad}));
            let err = hs256().role(&claims).unwrap_err();
            assert_eq!(
                err.message(),
                "The JWT role claim must be a non-empty string"
            );
            assert_eq!(err.code(), "PGRST303");
        }
        assert_eq!(hs256().role(&obj(json!({"sub": "x"}))).unwrap(), None);
        assert_eq!(
            nested.role(&obj(json!({"app_metadata": {}}))).unwrap(),
            None
        );
        assert!(matches!(
            Jwt::new(JwtSettings {
                role_claim: vec![],
                ..JwtSettings::with_secret(SECRET)
            }),
            Err(JwtConfigError::EmptyRoleClaim)
        ));
    }

    #[test]
    fn sign_adds_registered_claims() {
        let jwt = with_aud_iss();
        let token = jwt.sign_at(obj(json!({"role": "r"})), NOW).unwrap();
        let claims = jwt.verify_at(&token, NOW).unwrap().claims();
        assert_eq!(claims["iat"], NOW);
        assert_eq!(claims["exp"], NOW + 3600);
        assert_eq!(claims["aud"], "gateway");
        assert_eq!(claims["iss"], "https://auth.example");

        // Existing values win; exp is anchored on a given iat.
        let token = jwt
            .sign_at(obj(json!({"iat": NOW - 10, "aud": ["x", "gateway"]})), NOW)
            .unwrap();
        let claims = jwt.verify_at(&token, NOW).unwrap().claims();
        assert_eq!(claims["iat"], NOW - 10);
        assert_eq!(claims["exp"], NOW - 10 + 3600);
        assert_eq!(claims["aud"], json!(["x", "gateway"]));

        // Claims the verifier would reject are not signed.
        assert_eq!(
            jwt.sign_at(obj(json!({"exp": "later"})), NOW),
            Err(JwtError::ClaimNotNumber("exp"))
        );
        assert_eq!(
            jwt.sign_at(obj(json!({"aud": {"a": 1}})), NOW),
            Err(JwtError::AudienceNotString)
        );
    }

    #[test]
    fn cache_hit_still_rejects_after_expiry() {
        let jwt = hs256();
        let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 100}));
        let first = jwt.verify_at(&token, NOW).unwrap();
        let second = jwt.verify_at(&token, NOW + 1).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "second call is a cache hit");
        assert!(jwt.verify_at(&token, NOW + 130).is_ok(), "within leeway");
        let expired = Err(JwtError::Expired {
            exp: (NOW + 100) as i64,
        });
        assert_eq!(jwt.verify_at(&token, NOW + 131), expired);
        assert_eq!(jwt.verify_at(&token, NOW + 132), expired);
    }

    #[test]
    fn cache_is_bounded_and_optional() {
        let jwt = Jwt::new(JwtSettings {
            cache_max_entries: 2,
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        for i in 0..5 {
            let token = forge_hs(Algorithm::HS256, json!({"exp": NOW + 100, "i": i}));
            assert!(jwt.verify_at(&token, NOW).is_ok());
        }
        assert_eq!(jwt.cache_size().map(|(len, _)| len), Some(2));

        let uncached = Jwt::new(JwtSettings {
            cache_max_entries: 0,
            ..JwtSettings::with_secret(SECRET)
        })
        .unwrap();
        let token = forge_hs(Algorithm::HS256, valid_claims());
        let a = uncached.verify_at(&token, NOW).unwrap();
        let b = uncached.verify_at(&token, NOW).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn failures_are_not_cached() {
        let jwt = hs256();
        let token = forge_hs(
            Algorithm::HS256,
            json!({"exp": NOW + 600, "nbf": NOW + 100}),
        );
        assert_eq!(
            jwt.verify_at(&token, NOW),
            Err(JwtError::NotYetValid {
                nbf: (NOW + 100) as i64
            })
        );
        assert!(jwt.verify_at(&token, NOW + 100).is_ok());
        // A cached token checked at an earlier clock gets the precise error.
        assert_eq!(
            jwt.verify_at(&token, NOW),
            Err(JwtError::NotYetValid {
                nbf: (NOW + 100) as i64
            })
        );
    }

    #[test]
    fn malformed_tokens() {
        let jwt = hs256();
        let err = jwt.verify_at("", NOW).unwrap_err();
        assert_eq!(err.message(), "Empty JWT is sent in Authorization header");
        assert_eq!(err.code(), "PGRST301");
        assert_eq!(
            jwt.verify_at("abc.def", NOW).unwrap_err().message(),
            "Expected 3 parts in JWT; got 2"
        );
        assert_eq!(
            jwt.verify_at("a.b.c.d", NOW).unwrap_err().message(),
            "Expected 3 parts in JWT; got 4"
        );
        let err = jwt.verify_at("!!.b.c", NOW).unwrap_err();
        assert_eq!(err.message(), "JWT couldn't be decoded");
        assert_eq!(err.code(), "PGRST301");
        assert_eq!(
            err.details().as_deref(),
            Some("The JWT header is not valid base64url")
        );
        let header = b64(&json!({"alg": "HS256"}));
        let garbage = URL_SAFE_NO_PAD.encode("not json");
        let token = forge(
            json!({"alg": "HS256"}),
            json!(null),
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
        );
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(jwt.verify_at(&token, NOW), Err(JwtError::PayloadNotObject));
        // Payload that is not JSON, correctly signed.
        let message = format!("{header}.{garbage}");
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(
            jwt.verify_at(&format!("{message}.{sig}"), NOW),
            Err(JwtError::Decode("The JWT payload is not valid JSON"))
        );
        assert_eq!(
            jwt.verify_at(&format!("{}.{}.!!", parts[0], parts[1]), NOW),
            Err(JwtError::Decode("The JWT signature is not valid base64url"))
        );
        let crit = forge(
            json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
            valid_claims(),
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
        );
        assert!(matches!(
            jwt.verify_at(&crit, NOW),
            Err(JwtError::UnsupportedCritical(_))
        ));
    }

    #[test]
    fn no_keys_means_server_error() {
        let jwt = Jwt::new(JwtSettings::default()).unwrap();
        let token = forge_hs(Algorithm::HS256, valid_claims());
        let err = jwt.verify_at(&token, NOW).unwrap_err();
        assert_eq!(err.code(), "PGRST300");
        assert!(err.is_server_error());
        assert_eq!(err.message(), "Server lacks JWT secret");
        assert_eq!(jwt.sign_at(Claims::new(), NOW), Err(JwtError::NoSigningKey));
    }

    #[test]
    fn settings_debug_redacts_secrets() {
        let shown = format!("{:?}", JwtSettings::with_secret(SECRET));
        assert!(!shown.contains("reallyreally"));
        assert!(shown.contains("[redacted]"));
    }
}
