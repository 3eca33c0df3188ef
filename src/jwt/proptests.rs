//! Property tests for token verification (issue 12): mangled and forged
//! tokens.
//!
//! A valid token changed in any way — a character replaced, inserted or cut,
//! segments truncated, swapped or duplicated — is refused, and so is any
//! string at all unless it is exactly a token the key signed; a header forged
//! with another `alg` (including `none`) never verifies; every refusal is a
//! client error (`PGRST301`/`PGRST303`), never a panic or a server error.
//! Owns no verification logic (that is `super`); the pipeline's properties
//! are in `crate::pipeline::proptests`. A failure is shrunk and saved under
//! `proptest-regressions/`, committed so it runs first from then on.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

use super::{Claims, Jwt, JwtError, JwtSettings};

const SECRET: &[u8] = b"proptest-proptest-proptest-proptest-01";
const NOW: u64 = 1_700_000_000;

fn jwt() -> Jwt {
    Jwt::new(JwtSettings::with_secret(SECRET)).expect("valid settings")
}

fn config() -> Config {
    Config {
        cases: 512,
        ..Config::default()
    }
}

fn claims(role: &str) -> Claims {
    match json!({"role": role, "exp": NOW + 3600, "sub": "42"}) {
        Value::Object(map) => map,
        _ => unreachable!("a json! object literal is an object"),
    }
}

/// A refusal must be about the token, not the server.
fn assert_client_refusal(e: &JwtError) -> Result<(), TestCaseError> {
    prop_assert!(
        !e.is_server_error(),
        "server error for a client token: {e:?}"
    );
    prop_assert!(
        matches!(e.code(), "PGRST301" | "PGRST303"),
        "unexpected code {} for {e:?}",
        e.code()
    );
    Ok(())
}

/// One way to damage a token.
#[derive(Debug, Clone)]
enum Mangle {
    Replace(usize, char),
    Insert(usize, char),
    Remove(usize),
    Truncate(usize),
    SwapSegments(usize, usize),
    DuplicateSegment(usize),
    DropSegment(usize),
    ReplaceSegment(usize, String),
}

fn token_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        ),
        1 => proptest::sample::select(vec!['.', '=', '+', '/', ' ', '\0', 'é']),
    ]
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        (any::<usize>(), token_char()).prop_map(|(i, c)| Mangle::Replace(i, c)),
        (any::<usize>(), token_char()).prop_map(|(i, c)| Mangle::Insert(i, c)),
        any::<usize>().prop_map(Mangle::Remove),
        any::<usize>().prop_map(Mangle::Truncate),
        (0..3usize, 0..3usize).prop_map(|(a, b)| Mangle::SwapSegments(a, b)),
        (0..3usize).prop_map(Mangle::DuplicateSegment),
        (0..3usize).prop_map(Mangle::DropSegment),
        (0..3usize, "[A-Za-z0-9_-]{0,60}").prop_map(|(i, s)| Mangle::ReplaceSegment(i, s)),
    ]
}

fn apply(token: &str, m: &Mangle) -> String {
    let chars: Vec<char> = token.chars().collect();
    let at = |i: usize| i % (chars.len() + 1);
    let mut segments: Vec<String> = token.split('.').map(str::to_string).collect();
    match m {
        Mangle::Replace(i, c) => {
            let mut out = chars.clone();
            if !out.is_empty() {
                let i = i % out.len();
                out[i] = *c;
            }
            out.into_iter().collect()
        }
        Mangle::Insert(i, c) => {
            let mut out = chars.clone();
            out.insert(at(*i), *c);
            out.into_iter().collect()
        }
        Mangle::Remove(i) => {
            let mut out = chars.clone();
            if !out.is_empty() {
                let i = i % out.len();
                out.remove(i);
            }
            out.into_iter().collect()
        }
        Mangle::Truncate(i) => chars[..at(*i).min(chars.len())].iter().collect(),
        Mangle::SwapSegments(a, b) => {
            let n = segments.len();
            segments.swap(*a % n, *b % n);
            segments.join(".")
        }
        Mangle::DuplicateSegment(i) => {
            let s = segments[*i % segments.len()].clone();
            segments.insert(*i % segments.len(), s);
            segments.join(".")
        }
        Mangle::DropSegment(i) => {
            segments.remove(*i % segments.len());
            segments.join(".")
        }
        Mangle::ReplaceSegment(i, s) => {
            let n = segments.len();
            segments[*i % n] = s.clone();
            segments.join(".")
        }
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("serializable"))
}

proptest! {
    #![proptest_config(config())]

    /// A signed token with up to three changes verifies only if the changes
    /// cancelled out (the text is the original again).
    #[test]
    fn a_mangled_token_is_refused(
        role in "[a-z_]{1,12}",
        mangles in prop::collection::vec(mangle(), 1..4),
    ) {
        let jwt = jwt();
        let token = jwt.sign_at(claims(&role), NOW).expect("signs");
        let mut bad = token.clone();
        for m in &mangles {
            bad = apply(&bad, m);
        }
        match jwt.verify_at(&bad, NOW) {
            Ok(c) => {
                prop_assert_eq!(&bad, &token, "a changed token verified: {:?}", c);
            }
            Err(e) => {
                prop_assert_ne!(&bad, &token);
                assert_client_refusal(&e)?;
            }
        }
    }

    /// Any text at all: refused as the client's mistake, never a panic.
    #[test]
    fn any_text_is_refused_without_a_panic(text in "(?s).{0,200}") {
        let e = jwt().verify_at(&text, NOW).expect_err("not a token of this key");
        assert_client_refusal(&e)?;
    }

    /// A forged header: properly HS256-signed with the right key, but claiming
    /// another algorithm or carrying odd fields. Only an honest HS256 header
    /// verifies; `none` and algorithm confusion never do.
    #[test]
    fn a_forged_header_only_verifies_when_honest(
        alg in proptest::sample::select(vec![
            "HS256", "HS384", "HS512", "none", "None", "RS256", "ES256", "EdDSA", "PS256", "hs256", "",
        ]),
        typ in proptest::option::of(proptest::sample::select(vec!["JWT", "jwt", "at+jwt", ""])),
        kid in proptest::option::of("[ -~]{0,16}"),
        crit in any::<bool>(),
        empty_signature in any::<bool>(),
    ) {
        let mut header = json!({"alg": alg});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        if let Some(kid) = &kid {
            header["kid"] = json!(kid);
        }
        if crit {
            header["crit"] = json!(["exp"]);
        }
        let message = format!("{}.{}", b64(&header), b64(&Value::Object(claims("app_user"))));
        let signature = if empty_signature {
            String::new()
        } else {
            jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(SECRET), Algorithm::HS256)
                .expect("HS256 signs")
        };
        let token = format!("{message}.{signature}");
        match jwt().verify_at(&token, NOW) {
            Ok(_) => prop_assert!(
                alg == "HS256" && !crit && !empty_signature,
                "forged header verified: {header}"
            ),
            Err(e) => assert_client_refusal(&e)?,
        }
    }
}
