// Incoming tokens (Authorization header): schemes, keys and algorithms, every rejection, roles, and what SQL sees.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::test::TestRequest;
use actix_web::web;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use pgrpc::config::Config;
use pgrpc::http::AppState;
use pgrpc::jwt::JwtSettings;
use serde_json::{json, Value};

use crate::harness::*;

// Helpers shared with `jwt_claims`.

/// A token built by hand with any header and payload, signed with `key`, so
/// tests can make what the gateway never signs (other algorithms, other keys).
pub(crate) fn forge(header: Value, claims: Value, alg: Algorithm, key: &EncodingKey) -> String {
    let message = format!("{}.{}", b64(&header), b64(&claims));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("test key signs");
    format!("{message}.{signature}")
}

/// An HS256 token signed with `secret`.
pub(crate) fn hs256_with(secret: &[u8], claims: Value) -> String {
    forge(
        json!({"alg": "HS256", "typ": "JWT"}),
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(secret),
    )
}

/// The same token with its payload replaced (signature left as it was).
pub(crate) fn tampered(token: &str, claims: Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
}

/// The decoded header and payload of a compact token (no verification).
pub(crate) fn decode_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {token}");
    let part = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    (part(parts[0]), part(parts[1]))
}

/// A context whose JWT settings come from the config, the way the server
/// builds them (`keys::load`): `setup_with` keeps the harness's fixed
/// settings and ignores `[jwt]` keys other than `claims_type`. `jwt_keys` is
/// the body of the `[jwt]` table (the test secret is added); `rest` holds
/// other tables.
pub(crate) async fn setup_jwt_config(jwt_keys: &str, rest: &str) -> Ctx {
    let toml = format!("{rest}\n[jwt]\nsecret = \"{SECRET}\"\n{jwt_keys}\n");
    let (config, _) = Config::from_toml(&toml, std::path::Path::new("test.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("test config {toml:?}: {e}"));
    let jwt = pgrpc::jwt::keys::load(&config, false).expect("keys from config");
    setup_full(&toml, jwt.settings().clone()).await
}

/// `GET /rpc/context` with an `Authorization` header.
pub(crate) fn context_with(authorization: &str) -> TestRequest {
    get("/rpc/context").insert_header(("authorization", authorization.to_string()))
}

/// `GET /rpc/context` with a bearer token.
pub(crate) fn context_as(token: &str) -> TestRequest {
    context_with(&format!("Bearer {token}"))
}

/// Assert a 401 with the code, and the RFC 6750 challenge naming the error.
#[track_caller]
fn assert_invalid_token(r: &Resp, code: &str, message: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), code, "{}", r.body);
    assert_eq!(r.json()["message"], message, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(format!("Bearer error=\"invalid_token\", error_description=\"{message}\"").as_str()),
        "{}",
        r.body
    );
}

fn rsa_settings() -> JwtSettings {
    JwtSettings {
        public_key_pem: Some(include_bytes!("../fixtures/jwt/rsa_public.pem").to_vec()),
        private_key_pem: Some(include_bytes!("../fixtures/jwt/rsa_private.pem").to_vec()),
        ..JwtSettings::default()
    }
}

fn ec_settings() -> JwtSettings {
    JwtSettings {
        public_key_pem: Some(include_bytes!("../fixtures/jwt/ec_public.pem").to_vec()),
        private_key_pem: Some(include_bytes!("../fixtures/jwt/ec_private.pem").to_vec()),
        ..JwtSettings::default()
    }
}

#[actix_web::test]
async fn valid_hs256_token_runs_as_its_role_with_claims_visible_in_sql() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token =
        ctx.token(json!({"role": "app_user", "sub": "42", "org": {"id": 7, "tags": ["a"]}}));
    let (header, _) = decode_parts(&token);
    assert_eq!(header["alg"], "HS256");

    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["user"], "app_user");
    let claims = &body["claims"];
    assert_eq!(claims["role"], "app_user");
    assert_eq!(claims["sub"], "42");
    assert_eq!(claims["org"], json!({"id": 7, "tags": ["a"]}));
    assert!(claims["exp"].is_u64() && claims["iat"].is_u64(), "{claims}");

    // The role is really in force: only app_admin may run admin_only.
    let admin = ctx.token(json!({"role": "app_admin"}));
    let r = send(&app, bearer(get("/rpc/admin_only"), &admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!("secret"));
    let r = send(&app, bearer(get("/rpc/admin_only"), &token)).await;
    assert_eq!(
        r.status, 403,
        "app_user with a token is refused with 403: {}",
        r.body
    );
    assert_eq!(r.code(), "42501");
}

#[actix_web::test]
async fn token_scheme_and_any_case_of_bearer_are_accepted() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user"}));
    for scheme in ["Bearer", "bearer", "BEARER", "Token", "token", "TOKEN"] {
        let r = send(&app, context_with(&format!("{scheme} {token}"))).await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
        assert_eq!(r.json()["user"], "app_user", "{scheme}");
    }
    // Extra spaces around the token do not matter.
    let r = send(&app, context_with(&format!("Token   {token}  "))).await;
    assert_eq!(r.json()["user"], "app_user");
}

#[actix_web::test]
async fn no_header_runs_as_the_anonymous_role() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/context")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "web_anon");
    assert_eq!(r.json()["claims"], json!({"role": "web_anon"}));
    // A scheme that is not ours is ignored, as PostgREST does.
    let r = send(&app, context_with("Basic dXNlcjpwYXNz")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "web_anon");
}

#[actix_web::test]
async fn no_anonymous_role_answers_401_pgrst302() {
    let ctx = setup_with("[db]\nanon_role = \"\"").await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/context")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST302");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    // A token still works.
    let token = ctx.token(json!({"role": "app_user"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "app_user");
}

#[actix_web::test]
async fn alg_none_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let claims = json!({"role": "app_admin", "exp": now() + 600});
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims)
        );
        let r = send(&app, context_as(&unsigned)).await;
        assert_invalid_token(&r, "PGRST301", "Wrong or unsupported encoding algorithm");
    }
    // `none` with a signature that would be valid for HS256 is still `none`.
    let signed = ctx.token(claims.clone());
    let forged = format!(
        "{}.{}",
        b64(&json!({"alg": "none"})),
        signed.split_once('.').expect("dots").1
    );
    let r = send(&app, context_as(&forged)).await;
    assert_invalid_token(&r, "PGRST301", "Wrong or unsupported encoding algorithm");
    // No alg at all.
    let r = send(
        &app,
        context_as(&forge(
            json!({"typ": "JWT"}),
            claims,
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )),
    )
    .await;
    assert_invalid_token(&r, "PGRST301", "Wrong or unsupported encoding algorithm");
}

#[actix_web::test]
async fn algorithm_not_configured_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let claims = json!({"role": "app_user", "exp": now() + 600});
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        // Signed with the right secret, but only HS256 is pinned.
        let token = forge(
            json!({"alg": format!("{alg:?}"), "typ": "JWT"}),
            claims.clone(),
            alg,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        );
        let r = send(&app, context_as(&token)).await;
        assert_invalid_token(&r, "PGRST301", "Wrong or unsupported encoding algorithm");
        assert_eq!(
            r.json()["details"],
            format!("The JWT uses '{alg:?}'; accepted: HS256"),
            "{}",
            r.body
        );
    }
}

#[actix_web::test]
async fn tampered_payload_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user"}));
    let (_, mut claims) = decode_parts(&token);
    claims["role"] = json!("app_admin");
    let r = send(&app, context_as(&tampered(&token, claims))).await;
    assert_invalid_token(&r, "PGRST301", "JWT cryptographic operation failed");
    // One flipped signature character.
    let mut bad = token.clone();
    let last = bad.pop().expect("non-empty");
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let r = send(&app, context_as(&bad)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST301");
}

#[actix_web::test]
async fn token_signed_with_another_key_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = hs256_with(
        b"another-secret-another-secret-0123456789",
        json!({"role": "app_user", "exp": now() + 600}),
    );
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST301", "JWT cryptographic operation failed");
}

#[actix_web::test]
async fn malformed_tokens_are_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for (token, message) in [
        ("not-a-token", "Expected 3 parts in JWT; got 1"),
        ("a.b", "Expected 3 parts in JWT; got 2"),
        ("!!.b.c", "JWT couldn't be decoded"),
    ] {
        let r = send(&app, context_as(token)).await;
        assert_invalid_token(&r, "PGRST301", message);
    }
    let r = send(&app, context_with("Bearer ")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST301");
}

#[actix_web::test]
async fn expired_beyond_leeway_is_401_pgrst303() {
    let ctx = setup().await;
    let app = ctx.app().await;
    // Default leeway is 30 s.
    let token = ctx.token(json!({"role": "app_user", "exp": now() - 100}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST303", "JWT expired");
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"JWT expired\"")
    );
}

#[actix_web::test]
async fn expired_within_leeway_is_accepted() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user", "exp": now() - 10}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "app_user");
}

#[actix_web::test]
async fn missing_exp_is_rejected_by_default() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = hs256_with(SECRET.as_bytes(), json!({"role": "app_user"}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST303", "JWT has no 'exp' claim");
}

#[actix_web::test]
async fn nbf_in_the_future_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user", "nbf": now() + 600}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST303", "JWT not yet valid");
    // Within the leeway it is fine.
    let token = ctx.token(json!({"role": "app_user", "nbf": now() + 5}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn iat_in_the_future_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user", "iat": now() + 600}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST303", "JWT issued at future");
}

#[actix_web::test]
async fn audience_is_checked_when_configured() {
    let ctx = setup_jwt_config("aud = \"pgrpc\"", "").await;
    let app = ctx.app().await;
    let exp = now() + 600;
    for aud in [json!("other"), json!(["other", "more"])] {
        let token = hs256_with(
            SECRET.as_bytes(),
            json!({"role": "app_user", "exp": exp, "aud": aud}),
        );
        let r = send(&app, context_as(&token)).await;
        assert_invalid_token(&r, "PGRST303", "JWT not in audience");
    }
    let token = hs256_with(SECRET.as_bytes(), json!({"role": "app_user", "exp": exp}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(&r, "PGRST303", "JWT not in audience");

    for aud in [json!("pgrpc"), json!(["other", "pgrpc"])] {
        let token = hs256_with(
            SECRET.as_bytes(),
            json!({"role": "app_user", "exp": exp, "aud": aud}),
        );
        let r = send(&app, context_as(&token)).await;
        assert_eq!(r.status, 200, "{aud}: {}", r.body);
        assert_eq!(r.json()["user"], "app_user");
        assert_eq!(r.json()["claims"]["aud"], aud);
    }
    // Tokens the gateway signs carry the audience.
    let token = ctx.token(json!({"role": "app_user"}));
    assert_eq!(decode_parts(&token).1["aud"], "pgrpc");
    assert_eq!(send(&app, context_as(&token)).await.status, 200);
}

#[actix_web::test]
async fn missing_role_claim_runs_as_the_anonymous_role_with_its_claims() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"sub": "7", "email": "a@example.com"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["user"], "web_anon");
    assert_eq!(body["claims"]["sub"], "7");
    assert_eq!(body["claims"]["email"], "a@example.com");
    assert_eq!(body["claims"]["role"], "web_anon");
}

#[actix_web::test]
async fn missing_role_claim_without_anonymous_role_is_401() {
    let ctx = setup_with("[db]\nanon_role = \"\"").await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"sub": "7"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST302");
    assert!(r.header("www-authenticate").is_some());
}

#[actix_web::test]
async fn role_claim_that_is_not_a_non_empty_string_is_rejected() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for role in [
        json!(42),
        json!(["app_user"]),
        json!({"name": "app_user"}),
        json!(""),
        json!(true),
    ] {
        let token = ctx.token(json!({"role": role}));
        let r = send(&app, context_as(&token)).await;
        assert_invalid_token(
            &r,
            "PGRST303",
            "The JWT role claim must be a non-empty string",
        );
    }
}

#[actix_web::test]
async fn unknown_role_is_401_without_leaking_more() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "nobody_here"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let body = r.json();
    assert_eq!(
        body["message"], "role \"nobody_here\" does not exist",
        "{}",
        r.body
    );
    assert_eq!(body["details"], Value::Null, "{}", r.body);
    assert_eq!(body["hint"], Value::Null, "{}", r.body);
    assert!(!r.body.contains("authenticator"), "{}", r.body);
    assert!(r.header("www-authenticate").is_some());
}

#[actix_web::test]
async fn role_not_granted_to_authenticator_is_403() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "jwt_not_granted"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code(), "42501", "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("jwt_not_granted"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("authenticator"), "{}", r.body);
    // A superuser role is no better.
    let token = ctx.token(json!({"role": "postgres"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[actix_web::test]
async fn nested_role_claim_picks_the_role_and_sql_sees_it_at_top_level() {
    let ctx = setup_jwt_config("role_claim = \"app_metadata.role\"", "").await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"sub": "5", "app_metadata": {"role": "app_admin"}}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["user"], "app_admin");
    assert_eq!(body["claims"]["role"], "app_admin");
    assert_eq!(body["claims"]["app_metadata"], json!({"role": "app_admin"}));
    assert_eq!(body["claims"]["sub"], "5");

    // A top-level role is not the role claim any more: the nested one wins,
    // and SQL reads the role actually in force.
    let token = ctx.token(json!({"role": "app_user", "app_metadata": {"role": "app_admin"}}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.json()["user"], "app_admin", "{}", r.body);
    assert_eq!(r.json()["claims"]["role"], "app_admin", "{}", r.body);

    // Without the nested claim: anonymous; with a bad one: refused.
    let token = ctx.token(json!({"role": "app_admin"}));
    let r = send(&app, context_as(&token)).await;
    assert_eq!(r.json()["user"], "web_anon", "{}", r.body);
    let token = ctx.token(json!({"app_metadata": {"role": 1}}));
    let r = send(&app, context_as(&token)).await;
    assert_invalid_token(
        &r,
        "PGRST303",
        "The JWT role claim must be a non-empty string",
    );
}

#[actix_web::test]
async fn asymmetric_keys_accept_their_tokens_and_refuse_hmac_confusion() {
    let public_pems: [(&str, JwtSettings, &[u8], &[u8]); 2] = [
        (
            "RS256",
            rsa_settings(),
            include_bytes!("../fixtures/jwt/rsa_public.pem"),
            include_bytes!("../fixtures/jwt/rsa2_private.pem"),
        ),
        (
            "ES256",
            ec_settings(),
            include_bytes!("../fixtures/jwt/ec_public.pem"),
            include_bytes!("../fixtures/jwt/ec2_private.pem"),
        ),
    ];
    for (alg_name, settings, public_pem, other_private) in public_pems {
        let ctx = setup_full("", settings).await;
        let app = ctx.app().await;
        let token = ctx.token(json!({"role": "app_user", "sub": "pk"}));
        let (header, _) = decode_parts(&token);
        assert_eq!(header["alg"], alg_name);
        let r = send(&app, context_as(&token)).await;
        assert_eq!(r.status, 200, "{alg_name}: {}", r.body);
        assert_eq!(r.json()["user"], "app_user");
        assert_eq!(r.json()["claims"]["sub"], "pk");

        let claims = json!({"role": "app_admin", "exp": now() + 600});
        // RFC 8725 §2.1: the public key's bytes used as an HMAC secret.
        let confused = hs256_with(public_pem, claims.clone());
        let r = send(&app, context_as(&confused)).await;
        assert_invalid_token(&r, "PGRST301", "Wrong or unsupported encoding algorithm");
        // The test HMAC secret is not a key of this server.
        let r = send(
            &app,
            context_as(&hs256_with(SECRET.as_bytes(), claims.clone())),
        )
        .await;
        assert_eq!(r.status, 401, "{alg_name}: {}", r.body);
        assert_eq!(r.code(), "PGRST301");
        // Same algorithm, another key pair.
        let (alg, key) = match alg_name {
            "RS256" => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(other_private).expect("rsa"),
            ),
            _ => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(other_private).expect("ec"),
            ),
        };
        let other = forge(json!({"alg": alg_name, "typ": "JWT"}), claims, alg, &key);
        let r = send(&app, context_as(&other)).await;
        assert_invalid_token(&r, "PGRST301", "JWT cryptographic operation failed");
    }
}

#[actix_web::test]
async fn bad_token_is_answered_while_the_pool_is_exhausted() {
    // One connection, and the test holds it: any request that needs the pool
    // waits pool_timeout (1 s) and gets 504; a bad token must not wait at all.
    let ctx = setup_with("[db]\npool = 1\npool_timeout = 1").await;
    let app = ctx.app().await;
    let held = ctx.state.pools.request_pools()[0]
        .get()
        .await
        .expect("the only connection");

    let bad = hs256_with(
        b"another-secret-another-secret-0123456789",
        json!({"role": "app_user", "exp": now() + 60}),
    );
    let started = Instant::now();
    let r = send(&app, context_as(&bad)).await;
    let took = started.elapsed();
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        took < Duration::from_millis(500),
        "a bad token waited {took:?} for the pool"
    );
    let expired = ctx.token(json!({"role": "app_user", "exp": now() - 100}));
    let r = send(&app, context_as(&expired)).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Control: a good request really does need the held connection.
    let good = ctx.token(json!({"role": "app_user"}));
    let r = send(&app, context_as(&good)).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.code(), "PGRST003");
    drop(held);
    let r = send(&app, context_as(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn bad_token_is_401_even_when_the_database_is_unreachable() {
    // Same app, but its pool points at a database that does not exist.
    let ctx = setup().await;
    let unreachable = pgrpc::db::pool(
        pgrpc::db::socket_config(cluster(), "authenticator", "jwt_no_such_database"),
        1,
        Duration::from_secs(1),
    );
    let state = AppState::new(
        Arc::clone(&ctx.state.config),
        unreachable,
        ctx.state.jwt.load_full(),
    );
    state.cache.store(ctx.state.cache.load_full());
    let state = web::Data::new(state);
    let app = actix_web::test::init_service(pgrpc::http::app(state)).await;

    let bad = tampered(
        &ctx.token(json!({"role": "app_user"})),
        json!({"role": "app_admin"}),
    );
    let r = send(&app, context_as(&bad)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST301");
    // Control: a good token does try the database.
    let good = ctx.token(json!({"role": "app_user"}));
    let r = send(&app, context_as(&good)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), "PGRST001");
}
