//! Why a token was refused, said so that the caller can act on it: which
//! check failed ([`Check`]) and a sentence with the specifics (the expiry
//! time, the unknown `kid`, the algorithm that is not accepted).
//!
//! It owns the vocabulary of checks and their wording. It does not own the
//! checks themselves (the parent module), the error code and message (those
//! stay PostgREST's, on [`JwtError`]), nor where the words go: the `error`
//! module puts them into the `details` of a refused token *parameter* (the
//! seed's `verify_token`, `refresh_token`), while a refused `Authorization`
//! header keeps PostgREST's body exactly, so its clients see what they expect.

use time::macros::format_description;
use time::OffsetDateTime;

use super::JwtError;

/// The check a refused token failed, with a stable name for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not a compact JWS with a JSON header and payload, or a registered
    /// claim of the wrong type.
    Malformed,
    /// The header's `alg` is not accepted, or no key can verify it.
    Algorithm,
    /// The header's `kid` names no configured key.
    UnknownKey,
    /// The signature does not verify: altered, or signed with another key.
    Signature,
    /// `exp` has passed.
    Expired,
    /// `nbf` (or `iat`) is still in the future.
    NotYetValid,
    /// Audience, issuer, required `exp` or role claim.
    Claims,
    /// The gateway has no key to check it with (its configuration, not the token).
    Server,
    /// Its session has ended (a logout, a changed password, a revoke).
    SessionEnded,
}

impl Check {
    /// The name in the `details` text: `malformed`, `algorithm`,
    /// `unknown_key`, `signature`, `expired`, `not_yet_valid`, `claims`,
    /// `server`, `ended_session`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Malformed => "malformed",
            Check::Algorithm => "algorithm",
            Check::UnknownKey => "unknown_key",
            Check::Signature => "signature",
            Check::Expired => "expired",
            Check::NotYetValid => "not_yet_valid",
            Check::Claims => "claims",
            Check::Server => "server",
            Check::SessionEnded => "ended_session",
        }
    }
}

impl JwtError {
    /// Which check refused the token.
    pub fn check(&self) -> Check {
        match self {
            JwtError::Empty
            | JwtError::WrongParts(_)
            | JwtError::Decode(_)
            | JwtError::PayloadNotObject
            | JwtError::UnsupportedCritical(_)
            | JwtError::ClaimNotNumber(_)
            | JwtError::AudienceNotString => Check::Malformed,
            JwtError::UnsupportedAlgorithm { .. } | JwtError::NoSuitableKey(_) => Check::Algorithm,
            JwtError::UnknownKid(_) => Check::UnknownKey,
            JwtError::InvalidSignature => Check::Signature,
            JwtError::Expired { .. } => Check::Expired,
            JwtError::NotYetValid { .. } | JwtError::IssuedInFuture { .. } => Check::NotYetValid,
            JwtError::MissingExp
            | JwtError::NotInAudience
            | JwtError::IssuerNotAccepted
            | JwtError::RoleNotString(_) => Check::Claims,
            JwtError::NoVerificationKey | JwtError::NoSigningKey | JwtError::SigningFailed(_) => {
                Check::Server
            }
            JwtError::SessionEnded => Check::SessionEnded,
        }
    }

    /// `<check>: <what exactly>`, e.g. `expired: expired at
    /// 2026-12-01T06:31:26.000Z` or `unknown_key: No key has kid 'k2'`.
    pub fn reason(&self) -> String {
        let what = match self {
            JwtError::Empty => "the token is empty".to_owned(),
            JwtError::WrongParts(n) => {
                format!("a JWT has 3 parts separated by dots, this one has {n}")
            }
            JwtError::UnsupportedCritical(crit) => {
                format!(
                    "the header lists critical extensions that are not supported (crit: {crit})"
                )
            }
            JwtError::InvalidSignature => {
                "the signature does not match: the token was altered or signed with another key"
                    .to_owned()
            }
            JwtError::Expired { exp } => format!("expired at {}", iso_utc(*exp)),
            JwtError::NotYetValid { nbf } => format!("not valid before {}", iso_utc(*nbf)),
            JwtError::IssuedInFuture { iat } => {
                format!("issued at {}, in the future", iso_utc(*iat))
            }
            JwtError::MissingExp => "the token has no 'exp' claim (jwt.require_exp)".to_owned(),
            JwtError::NotInAudience => "the 'aud' claim does not name this gateway".to_owned(),
            JwtError::IssuerNotAccepted => "the 'iss' claim is not the accepted issuer".to_owned(),
            JwtError::RoleNotString(path) => {
                format!("the role claim ({path}) is not a non-empty string")
            }
            other => other.details().unwrap_or_else(|| other.message()),
        };
        format!("{}: {what}", self.check().name())
    }
}

/// Unix seconds as `2015-04-29T13:29:25.000Z`, the seed's `expires_in` format.
pub fn iso_utc(seconds: i64) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(format).ok())
        // Outside the years -9999..=9999: say the number rather than nothing.
        .unwrap_or_else(|| format!("{seconds} (Unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_430_314_165), "2015-04-29T13:29:25.000Z");
        assert_eq!(iso_utc(i64::MAX), format!("{} (Unix time)", i64::MAX));
    }

    #[test]
    fn reasons_name_the_check() {
        let cases = [
            (JwtError::InvalidSignature, "signature: "),
            (
                JwtError::Expired { exp: 1_430_314_165 },
                "expired: expired at 2015-04-29T13:29:25.000Z",
            ),
            (
                JwtError::NotYetValid { nbf: 0 },
                "not_yet_valid: not valid before 1970-01-01T00:00:00.000Z",
            ),
            (JwtError::WrongParts(1), "malformed: a JWT has 3 parts"),
            (
                JwtError::Decode("The JWT header is not valid JSON"),
                "malformed: The JWT header is not valid JSON",
            ),
            (
                JwtError::UnsupportedAlgorithm {
                    alg: Some("HS384".into()),
                    allowed: "HS256".into(),
                },
                "algorithm: The JWT uses 'HS384'; accepted: HS256",
            ),
            (
                JwtError::UnknownKid("No key has kid 'k9'".into()),
                "unknown_key: No key has kid 'k9'",
            ),
            (JwtError::MissingExp, "claims: "),
        ];
        for (error, start) in cases {
            assert!(
                error.reason().starts_with(start),
                "{error:?}: {}",
                error.reason()
            );
        }
    }
}
