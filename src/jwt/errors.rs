//! The two ways a JWT goes wrong: a configuration that cannot work
//! ([`JwtConfigError`], refused at start) and a token that is refused
//! ([`JwtError`], with PostgREST's codes and texts: `PGRST300`/`PGRST301`/
//! `PGRST303`). Why a refused token was refused, in words, is `refusal`'s.

use super::MIN_SECRET_LEN;

/// A JWT configuration that cannot work; `Display` names the config key.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    /// The HMAC secret is shorter than RFC 7518 §3.2 allows.
    #[error("jwt.secret must be at least {MIN_SECRET_LEN} bytes long, got {0}")]
    SecretTooShort(usize),
    /// The public key PEM is unreadable or of an unsupported kind.
    #[error("jwt.public_key_file: {0}")]
    PublicKey(String),
    /// The private key PEM is unreadable or of an unsupported kind.
    #[error("jwt.private_key_file: {0}")]
    PrivateKey(String),
    /// The JWK Set is unreadable, holds an invalid key, or no usable key.
    #[error("jwt.jwks_file: {0}")]
    Jwks(String),
    /// An HS* algorithm is pinned but there is no HMAC secret to verify it with.
    #[error("jwt.algorithms: {0} is listed but jwt.secret is not set (nor an 'oct' key in jwt.jwks_file)")]
    HmacWithoutSecret(String),
    /// A public-key algorithm is pinned but no configured key can verify it.
    #[error("jwt.algorithms: {0} is listed but no key in jwt.public_key_file, jwt.private_key_file or jwt.jwks_file can verify it")]
    AlgorithmWithoutKey(String),
    /// The private key does not belong to the public key.
    #[error("jwt.private_key_file does not match jwt.public_key_file: a signature made with the private key fails verification with the public key")]
    KeyMismatch,
    /// The role claim path is empty.
    #[error("jwt.role_claim must name at least one key")]
    EmptyRoleClaim,
}

/// Why a token was rejected or could not be signed.
///
/// Codes and messages follow PostgREST (`src/PostgREST/Error.hs`): `PGRST300`
/// for a server without keys, `PGRST301` for decoding, algorithm, key and
/// signature problems, `PGRST303` for claims problems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// A token arrived but no verification key is configured.
    #[error("Server lacks JWT secret")]
    NoVerificationKey,
    /// A function returned claims to sign but no secret or private key is configured.
    #[error("Server lacks JWT secret")]
    NoSigningKey,
    /// The token is empty (e.g. `Authorization: Bearer ` with nothing after it).
    #[error("Empty JWT is sent in Authorization header")]
    Empty,
    /// The token is not three dot-separated parts (RFC 7515 §7.1 compact form).
    #[error("Expected 3 parts in JWT; got {0}")]
    WrongParts(usize),
    /// A part is not base64url or not JSON; the text says which.
    #[error("JWT couldn't be decoded")]
    Decode(&'static str),
    /// The header's `alg` is missing, `none`, unknown or not pinned.
    #[error("Wrong or unsupported encoding algorithm")]
    UnsupportedAlgorithm {
        /// The header's `alg`, when it is a string.
        alg: Option<String>,
        /// The pinned algorithms, comma-separated.
        allowed: String,
    },
    /// The header has a `crit` parameter; RFC 7515 §4.1.11 requires rejecting
    /// extensions we do not understand, and we understand none.
    #[error("JWT header lists critical extensions that are not supported")]
    UnsupportedCritical(String),
    /// No configured key fits the token's `kid` and `alg`.
    #[error("No suitable key or wrong key type")]
    NoSuitableKey(String),
    /// The token names a `kid` that no configured key has (and no key
    /// without a `kid` fits): PostgREST's text, but a JWKS URL refetches on it.
    #[error("No suitable key or wrong key type")]
    UnknownKid(String),
    /// The signature does not verify: tampered token or wrong key.
    #[error("JWT cryptographic operation failed")]
    InvalidSignature,
    /// The decoded payload is JSON but not an object (RFC 7519 §7.2 step 10).
    #[error("The JWT payload is not a JSON object")]
    PayloadNotObject,
    /// `exp` is in the past by more than the leeway (RFC 7519 §4.1.4).
    #[error("JWT expired")]
    Expired {
        /// The `exp` claim, Unix seconds (rounded down).
        exp: i64,
    },
    /// `nbf` is in the future by more than the leeway (RFC 7519 §4.1.5).
    #[error("JWT not yet valid")]
    NotYetValid {
        /// The `nbf` claim, Unix seconds (rounded down).
        nbf: i64,
    },
    /// `iat` is in the future by more than the leeway (RFC 7519 §4.1.6).
    #[error("JWT issued at future")]
    IssuedInFuture {
        /// The `iat` claim, Unix seconds (rounded down).
        iat: i64,
    },
    /// `exp` is required (`jwt.require_exp`) but absent.
    #[error("JWT has no 'exp' claim")]
    MissingExp,
    /// `exp`, `nbf` or `iat` is not a NumericDate (RFC 7519 §2).
    #[error("The JWT '{0}' claim must be a number")]
    ClaimNotNumber(&'static str),
    /// `aud` is neither a string nor an array of strings (RFC 7519 §4.1.3).
    #[error("The JWT 'aud' claim must be a string or an array of strings")]
    AudienceNotString,
    /// `aud` does not contain the configured audience.
    #[error("JWT not in audience")]
    NotInAudience,
    /// `iss` is missing or differs from the configured issuer (RFC 7519 §4.1.1).
    #[error("JWT issuer is not accepted")]
    IssuerNotAccepted,
    /// The value at the role claim path is not a non-empty string.
    #[error("The JWT role claim must be a non-empty string")]
    RoleNotString(String),
    /// Signing failed inside the crypto library (the key was validated at start).
    #[error("JWT cryptographic operation failed")]
    SigningFailed(String),
    /// The token's `sid` names a session that has ended ([`revoked`]): our
    /// own code, PostgREST has no sessions. The text is the seed SQL's, so
    /// the same refusal reads the same whichever side notices it first.
    #[error("session has ended")]
    SessionEnded,
}

impl JwtError {
    /// The PostgREST error code.
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::NoVerificationKey | JwtError::NoSigningKey | JwtError::SigningFailed(_) => {
                "PGRST300"
            }
            JwtError::Empty
            | JwtError::WrongParts(_)
            | JwtError::Decode(_)
            | JwtError::UnsupportedAlgorithm { .. }
            | JwtError::UnsupportedCritical(_)
            | JwtError::NoSuitableKey(_)
            | JwtError::UnknownKid(_)
            | JwtError::InvalidSignature
            | JwtError::PayloadNotObject => "PGRST301",
            JwtError::Expired { .. }
            | JwtError::NotYetValid { .. }
            | JwtError::IssuedInFuture { .. }
            | JwtError::MissingExp
            | JwtError::ClaimNotNumber(_)
            | JwtError::AudienceNotString
            | JwtError::NotInAudience
            | JwtError::IssuerNotAccepted
            | JwtError::RoleNotString(_) => "PGRST303",
            JwtError::SessionEnded => "PGRST351",
        }
    }

    /// The client-facing message (PostgREST's text where it has one).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Extra detail for the client, when there is something useful to say.
    pub fn details(&self) -> Option<String> {
        match self {
            JwtError::NoVerificationKey => Some(
                "Set jwt.secret, jwt.public_key_file, jwt.private_key_file or jwt.jwks_file"
                    .to_owned(),
            ),
            JwtError::NoSigningKey => {
                Some("Set jwt.secret or jwt.private_key_file to sign tokens".to_owned())
            }
            JwtError::Decode(what) => Some((*what).to_owned()),
            JwtError::UnsupportedAlgorithm { alg, allowed } => Some(match alg {
                Some(alg) => format!("The JWT uses '{alg}'; accepted: {allowed}"),
                None => format!("The JWT header has no 'alg'; accepted: {allowed}"),
            }),
            JwtError::UnsupportedCritical(crit) => Some(format!("crit: {crit}")),
            JwtError::NoSuitableKey(why) | JwtError::UnknownKid(why) => Some(why.clone()),
            JwtError::RoleNotString(path) => Some(format!("Role claim path: {path}")),
            JwtError::SigningFailed(why) => Some(why.clone()),
            JwtError::SessionEnded => Some(
                "The session of this token was ended (a logout, a password change, …); sign in again"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// True when the fault is the server's configuration, not the client's
    /// token: PostgREST answers `PGRST300` with 500.
    pub fn is_server_error(&self) -> bool {
        self.code() == "PGRST300"
    }
}
