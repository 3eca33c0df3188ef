//! Key material from bytes: PEM public and private keys (RSA, EC, Ed25519),
//! JWK Sets, and the checks that make a key usable — its family's
//! algorithms, the curve an EC key is for, the RSA modulus size, that a
//! private key matches its public one. It does not say where the bytes come
//! from (`keys`, `jwks`) or verify anything (the parent module).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};

use serde_json::Value;

use super::{alg_name, JwtConfigError, VerifyKey, MIN_RSA_MODULUS_LEN, MIN_SECRET_LEN};

/// The label of the first PEM block (`PUBLIC KEY`, `RSA PRIVATE KEY`, ...).
pub(super) fn pem_label(pem: &[u8]) -> Option<&str> {
    const BEGIN: &str = "-----BEGIN ";
    let text = std::str::from_utf8(pem).ok()?;
    let rest = &text[text.find(BEGIN)? + BEGIN.len()..];
    Some(&rest[..rest.find("-----")?])
}

/// The natural algorithms of a key family; EC keys are narrowed by curve.
pub(super) fn family_algorithms(family: AlgorithmFamily) -> Vec<Algorithm> {
    family.algorithms().to_vec()
}

/// Algorithm for an EC curve: RFC 7518 §3.4 ties ES256 to P-256 and ES384 to P-384.
pub(super) fn ec_algorithm(curve: &EllipticCurve) -> Option<Algorithm> {
    match curve {
        EllipticCurve::P256 => Some(Algorithm::ES256),
        EllipticCurve::P384 => Some(Algorithm::ES384),
        _ => None,
    }
}

/// A verification key checked the way the verifier will use it: RSA keys
/// parsed and at least 2048 bits, EC points on a supported curve, Ed25519
/// keys 32 bytes. Returns the key's natural algorithms and default.
pub(super) fn checked_public_key(key: &DecodingKey) -> Result<(Vec<Algorithm>, Algorithm), String> {
    let jwk = Jwk::from_decoding_key(key, None).map_err(|e| format!("invalid key: {e}"))?;
    public_jwk_algorithms(&jwk)
}

pub(super) fn public_jwk_algorithms(jwk: &Jwk) -> Result<(Vec<Algorithm>, Algorithm), String> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "the RSA modulus 'n' is not base64url".to_owned())?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_LEN {
                return Err(format!(
                    "the RSA key has {} bits; RFC 7518 §3.3 requires at least 2048",
                    significant * 8
                ));
            }
            Ok((family_algorithms(AlgorithmFamily::Rsa), Algorithm::RS256))
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let alg = ec_algorithm(&ec.curve)
                .ok_or_else(|| format!("unsupported EC curve {:?}", ec.curve))?;
            Ok((vec![alg], alg))
        }
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Ok((vec![Algorithm::EdDSA], Algorithm::EdDSA)),
            ref other => Err(format!("unsupported OKP curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => {
            Ok((family_algorithms(AlgorithmFamily::Hmac), Algorithm::HS256))
        }
        _ => Err("unsupported key type".to_owned()),
    }
}

/// A public key PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`); the
/// family is inferred from the key itself.
pub(super) fn load_public_pem(pem: &[u8]) -> Result<VerifyKey, String> {
    match pem_label(pem) {
        Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE KEY") => {
            return Err("holds a private key; give its public half (`openssl pkey -in key.pem -pubout`)".to_owned())
        }
        Some("CERTIFICATE") => {
            return Err("holds a certificate; extract its public key (`openssl x509 -in cert.pem -pubkey -noout`)".to_owned())
        }
        Some(label) => return Err(format!("unsupported PEM block '{label}'")),
        None => return Err("not a PEM file (no '-----BEGIN' line)".to_owned()),
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| "not an RSA, EC (P-256/P-384) or Ed25519 public key".to_owned())?;
    let (algorithms, default_algorithm) = checked_public_key(&key)?;
    Ok(VerifyKey {
        kid: None,
        algorithms,
        default_algorithm,
        key,
    })
}

/// A loaded private key and its public half.
pub(super) struct PrivateKey {
    /// The signing key.
    pub(super) key: EncodingKey,
    /// The public half, as a verification key with the private key's algorithms.
    pub(super) public: VerifyKey,
}

/// A private key PEM: PKCS#8 `PRIVATE KEY` (RSA, EC, Ed25519) or PKCS#1
/// `RSA PRIVATE KEY`, which is what jsonwebtoken can sign with.
pub(super) fn load_private_pem(pem: &[u8]) -> Result<PrivateKey, String> {
    match pem_label(pem) {
        Some("PRIVATE KEY" | "RSA PRIVATE KEY") => {}
        Some("EC PRIVATE KEY") => return Err(
            "is a SEC1 EC key; convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
                .to_owned(),
        ),
        Some("ENCRYPTED PRIVATE KEY") => {
            return Err("is encrypted; decrypt it (`openssl pkey -in key.pem`)".to_owned())
        }
        Some(label) if label.contains("PUBLIC KEY") => {
            return Err("holds a public key; give the private key".to_owned())
        }
        Some(label) => return Err(format!("unsupported PEM block '{label}'")),
        None => return Err("not a PEM file (no '-----BEGIN' line)".to_owned()),
    }
    // The public half is derived through a JWK: that also parses the key, so
    // a broken key fails here at start instead of at the first signature.
    let (key, jwk) = if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
        let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)
            .map_err(|e| format!("invalid RSA private key: {e}"))?;
        (key, jwk)
    } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
        let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .or_else(|_| Jwk::from_encoding_key(&key, Algorithm::ES384))
            .map_err(|_| {
                "invalid EC private key (only P-256 and P-384 are supported)".to_owned()
            })?;
        (key, jwk)
    } else if let Ok(key) = EncodingKey::from_ed_pem(pem) {
        let jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA)
            .map_err(|_| "invalid Ed25519 private key".to_owned())?;
        (key, jwk)
    } else {
        return Err("not an RSA, EC (P-256/P-384) or Ed25519 private key".to_owned());
    };
    let (algorithms, default_algorithm) = public_jwk_algorithms(&jwk)?;
    let public = DecodingKey::from_jwk(&jwk).map_err(|e| format!("invalid key: {e}"))?;
    Ok(PrivateKey {
        key,
        public: VerifyKey {
            kid: None,
            algorithms,
            default_algorithm,
            key: public,
        },
    })
}

/// Sign a probe with the private key and verify it with the public key, so a
/// mismatched pair fails at start rather than on every signed token.
pub(super) fn check_pair(private: &PrivateKey, public: &VerifyKey) -> Result<(), JwtConfigError> {
    let alg = private.public.default_algorithm;
    if !public.algorithms.contains(&alg) {
        return Err(JwtConfigError::KeyMismatch);
    }
    let probe = b"pgrpc key pair check";
    let signature = jsonwebtoken::crypto::sign(probe, &private.key, alg)
        .map_err(|e| JwtConfigError::PrivateKey(format!("cannot sign: {e}")))?;
    match jsonwebtoken::crypto::verify(&signature, probe, &public.key, alg) {
        Ok(true) => Ok(()),
        _ => Err(JwtConfigError::KeyMismatch),
    }
}

/// A JWK Set (RFC 7517 §5), or a single JWK as PostgREST also accepts.
/// Keys meant for encryption (`use: enc`, `key_ops` without `verify`, or an
/// encryption `alg`) and key types jsonwebtoken cannot verify are skipped.
pub(super) fn load_jwks(json: &str) -> Result<Vec<VerifyKey>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let set: JwkSet = if value.get("keys").is_some() {
        serde_json::from_value(value).map_err(|e| format!("not a JWK Set: {e}"))?
    } else {
        let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("not a JWK: {e}"))?;
        JwkSet { keys: vec![jwk] }
    };

    let mut keys = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let label = match &jwk.common.key_id {
            Some(kid) => format!("key '{kid}'"),
            None => format!("key #{index}"),
        };
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption)
            || jwk
                .common
                .key_operations
                .as_ref()
                .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            tracing::debug!(key = %label, "jwt.jwks_file: skipping a key not meant for verification");
            continue;
        }
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(key) => key,
            Err(_) if matches!(jwk.algorithm, AlgorithmParameters::Other(_)) => {
                tracing::warn!(key = %label, "jwt.jwks_file: skipping a key of unsupported type");
                continue;
            }
            Err(e) => return Err(format!("{label}: {e}")),
        };
        let (mut algorithms, mut default_algorithm) = match &jwk.algorithm {
            AlgorithmParameters::OctetKey(_) => {
                let len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
                if len < MIN_SECRET_LEN {
                    return Err(format!(
                        "{label}: an 'oct' key must be at least {MIN_SECRET_LEN} bytes, got {len}"
                    ));
                }
                public_jwk_algorithms(jwk)
            }
            AlgorithmParameters::EllipticCurve(ec) if ec_algorithm(&ec.curve).is_none() => {
                tracing::warn!(key = %label, curve = ?ec.curve, "jwt.jwks_file: skipping a key on an unsupported curve");
                continue;
            }
            _ => checked_public_key(&key),
        }
        .map_err(|e| format!("{label}: {e}"))?;
        // An EC key's coordinates must be for the curve it names.
        if let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm {
            if ec_algorithm(&ec.curve) != Some(default_algorithm) {
                return Err(format!(
                    "{label}: the point does not match crv {:?}",
                    ec.curve
                ));
            }
        }
        // RFC 7517 §4.4: `alg` names the one algorithm the key is for.
        if let Some(key_alg) = jwk.common.key_algorithm {
            match Algorithm::try_from(key_alg) {
                Ok(alg) if algorithms.contains(&alg) => {
                    algorithms = vec![alg];
                    default_algorithm = alg;
                }
                Ok(alg) => {
                    return Err(format!(
                        "{label}: alg {} does not fit its key type",
                        alg_name(alg)
                    ))
                }
                Err(_) => {
                    tracing::debug!(key = %label, alg = %key_alg, "jwt.jwks_file: skipping a key with a non-signature alg");
                    continue;
                }
            }
        }
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            algorithms,
            default_algorithm,
            key,
        });
    }
    if keys.is_empty() {
        return Err("no key usable for signature verification".to_owned());
    }
    Ok(keys)
}
