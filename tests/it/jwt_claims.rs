// The claims type: results signed into tokens in every shape, token parameters verified on input, and `pgrpc token`.

use std::process::Command;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

use crate::harness::*;
use crate::jwt_auth::{decode_parts, hs256_with, setup_jwt_config, tampered};

const CLAIMS: &str = "[jwt]\nclaims_type = \"test_jwt.claims\"";
const CLAIMS_JSON: &str = "[jwt]\nclaims_type = \"test_jwt.claims_json\"";

/// Verify a token with `secret` independently of the gateway (jsonwebtoken's
/// own checks: HS256 only, signature, exp) and return its claims.
fn verify_with(secret: &[u8], token: &str) -> Map<String, Value> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(secret),
        &validation,
    )
    .unwrap_or_else(|e| panic!("{token} does not verify: {e}"));
    data.claims
}

/// Verify with the test key.
fn verify(token: &Value) -> Map<String, Value> {
    verify_with(
        SECRET.as_bytes(),
        token
            .as_str()
            .unwrap_or_else(|| panic!("not a token string: {token}")),
    )
}

/// The claims of a token signed just now: the given ones plus iat ≈ now and
/// exp = iat + the default lifetime.
#[track_caller]
fn assert_fresh_claims(claims: &Map<String, Value>, expected: Value) {
    let iat = claims["iat"].as_i64().expect("iat is an integer");
    assert!(iat.abs_diff(now()) <= 5, "iat {iat} is not now");
    assert_eq!(
        claims["exp"].as_i64(),
        Some(iat + 3600),
        "exp = iat + default lifetime"
    );
    let mut expected = expected.as_object().expect("object").clone();
    expected.insert("iat".into(), json!(iat));
    expected.insert("exp".into(), json!(iat + 3600));
    assert_eq!(Value::Object(claims.clone()), Value::Object(expected));
}

async fn calls(ctx: &Ctx) -> Vec<Value> {
    ctx.db
        .admin()
        .await
        .query("select claims from test_jwt.calls order by id", &[])
        .await
        .expect("read calls")
        .iter()
        .map(|row| row.get::<_, Value>(0))
        .collect()
}

#[actix_web::test]
async fn function_returning_the_claims_type_answers_a_signed_token() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/jwt_login", r#"{"role": "app_user", "sub": "42"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json();
    // Exactly the non-null attributes (`name`, `exp`, `iat`, `aud` are null) + iat/exp.
    assert_fresh_claims(&verify(&token), json!({"role": "app_user", "sub": "42"}));
    let (header, _) = decode_parts(token.as_str().expect("string"));
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));

    // The token is good for the gateway itself.
    let r = send(&app, bearer(get("/rpc/context"), token.as_str().unwrap())).await;
    assert_eq!(r.json()["user"], "app_user", "{}", r.body);

    // Only the configured type is signed: without it the composite passes through.
    let plain = setup().await;
    let plain_app = plain.app().await;
    let r = send(
        &plain_app,
        post("/rpc/jwt_login", r#"{"role": "app_user", "sub": "42"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"], "app_user", "{}", r.body);
}

#[actix_web::test]
async fn claims_chosen_by_sql_are_kept_and_config_adds_aud() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let (iat, exp) = (now() - 60, now() + 120);
    let body = json!({"role": "app_user", "sub": "s", "exp": exp, "iat": iat, "aud": "mine"});
    let r = send(&app, post("/rpc/jwt_login_full", &body.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(Value::Object(verify(&r.json())), body);

    // iat given, exp absent: exp is anchored on iat.
    let body = json!({"role": "app_user", "sub": "s", "exp": null, "iat": iat, "aud": null});
    let r = send(&app, post("/rpc/jwt_login_full", &body.to_string())).await;
    let claims = verify(&r.json());
    assert_eq!(claims["iat"], iat);
    assert_eq!(claims["exp"], iat + 3600);

    // A configured audience is added when SQL set none.
    let ctx = setup_jwt_config("claims_type = \"test_jwt.claims\"\naud = \"pgrpc\"", "").await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/jwt_login", r#"{"role": "app_user", "sub": "42"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_fresh_claims(
        &verify(&r.json()),
        json!({"role": "app_user", "sub": "42", "aud": "pgrpc"}),
    );
}

#[actix_web::test]
async fn claims_attribute_of_a_returned_row_is_signed() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/jwt_session", r#"{"sub": "9"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["user_id"], 7, "{}", r.body);
    assert_eq!(body.as_object().map(Map::len), Some(2), "{}", r.body);
    assert_fresh_claims(
        &verify(&body["token"]),
        json!({"role": "app_user", "sub": "9"}),
    );
}

#[actix_web::test]
async fn setof_the_claims_type_is_an_array_of_tokens() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/jwt_tokens?n=3")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json().as_array().expect("array").clone();
    assert_eq!(items.len(), 3, "{}", r.body);
    for (i, item) in items.iter().enumerate() {
        assert_fresh_claims(
            &verify(item),
            json!({"role": "app_user", "sub": (i + 1).to_string()}),
        );
    }
    assert_eq!(r.header("content-range").as_deref(), Some("0-2/*"));

    let r = send(&app, get("/rpc/jwt_tokens?n=0")).await;
    assert_eq!(r.body, "[]");

    // An all-null element is null, the others stay tokens.
    let r = send(&app, get("/rpc/jwt_tokens_some_null")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json();
    assert_eq!(items.as_array().map(Vec::len), Some(2), "{}", r.body);
    assert_fresh_claims(&verify(&items[0]), json!({"role": "app_user", "sub": "a"}));
    assert_eq!(items[1], Value::Null);
}

#[actix_web::test]
async fn returns_table_column_of_the_claims_type_is_signed() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/jwt_table")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{}", r.body);
    assert_eq!(rows[0]["n"], 1);
    assert_fresh_claims(
        &verify(&rows[0]["token"]),
        json!({"role": "app_user", "sub": "one"}),
    );
    assert_eq!(rows[1], json!({"token": null, "n": 2}));
}

#[actix_web::test]
async fn returns_table_with_only_a_claims_column_is_signed() {
    // With a single OUT parameter PostgreSQL's result type is the claims type
    // itself, so `FROM f() AS pgrst_call` expands its attributes: the rows must
    // still come out as {"token": <jwt>} and never as bare, unsigned claims.
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/jwt_table_single")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{}", r.body);
    assert!(
        rows[0]["token"].is_string(),
        "unsigned or misplaced: {}",
        r.body
    );
    assert_fresh_claims(
        &verify(&rows[0]["token"]),
        json!({"role": "app_user", "sub": "solo"}),
    );
}

#[actix_web::test]
async fn all_null_claims_are_null() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    for f in ["jwt_no_token", "jwt_null_token"] {
        let r = send(&app, get(&format!("/rpc/{f}"))).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.body, "null", "{f}");
    }
}

#[actix_web::test]
async fn domain_over_jsonb_claims_type_is_signed() {
    let ctx = setup_with(CLAIMS_JSON).await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/jwt_login_json?sub=77")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_fresh_claims(
        &verify(&r.json()),
        json!({"role": "app_user", "sub": "77", "scopes": ["read", "write"], "meta": {"a": 2, "z": 1}}),
    );
    let r = send(&app, get("/rpc/jwt_no_token_json")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "null");
    // The composite is not the configured type now: it passes through.
    let r = send(
        &app,
        post("/rpc/jwt_login", r#"{"role": "app_user", "sub": "1"}"#),
    )
    .await;
    assert!(r.json().is_object(), "{}", r.body);
}

#[actix_web::test]
async fn signing_the_verified_claims_again_gives_the_same_token() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    for claims in [
        json!({"role": "app_user", "sub": "9", "name": "Zoë \"Z\" <z@example.com>"}),
        json!({"sub": "only-sub", "aud": "x", "iat": now() - 5, "exp": now() + 5}),
    ] {
        let token = ctx.token(claims.clone());
        let r = send(
            &app,
            post("/rpc/jwt_echo", &json!({"token": token}).to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{claims}: {}", r.body);
        assert_eq!(r.json(), json!(token), "sign(verify(t)) == t for {claims}");
        // GET passes the token in the query string.
        let r = send(&app, get(&format!("/rpc/jwt_echo?token={token}"))).await;
        assert_eq!(r.json(), json!(token), "GET: {}", r.body);
    }
    // Signing the same claims from SQL twice gives the same token.
    let body =
        json!({"role": "app_user", "sub": "s", "exp": now() + 100, "iat": now(), "aud": null});
    let a = send(&app, post("/rpc/jwt_login_full", &body.to_string())).await;
    let b = send(&app, post("/rpc/jwt_login_full", &body.to_string())).await;
    assert_eq!(a.body, b.body);

    // The domain variant keeps claims the composite has no attribute for.
    let ctx = setup_with(CLAIMS_JSON).await;
    let app = ctx.app().await;
    let token = ctx.token(
        json!({"role": "app_user", "scopes": ["a", "b"], "meta": {"z": 1, "a": [1.5, null]}}),
    );
    let r = send(
        &app,
        post("/rpc/jwt_echo_json", &json!({"token": token}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!(token));
}

#[actix_web::test]
async fn good_token_parameter_reaches_sql_as_its_claims() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_admin", "sub": "99", "name": "Ada", "extra": "x"}));
    let (_, claims) = decode_parts(&token);
    let r = send(
        &app,
        post("/rpc/jwt_record", &json!({"token": token}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "role": "app_admin", "sub": "99", "name": "Ada",
            "exp": claims["exp"], "iat": claims["iat"], "aud": null,
            // A token argument is data: the call still runs as the caller.
            "user": "web_anon"
        })
    );
    assert_eq!(calls(&ctx).await.len(), 1);

    // A null token is no token: the function gets NULL.
    let r = send(&app, post("/rpc/jwt_record", r#"{"token": null}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["role"], Value::Null);

    // Domain variant: the whole claims object.
    let ctx = setup_with(CLAIMS_JSON).await;
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user", "scopes": ["a"]}));
    let (_, claims) = decode_parts(&token);
    let r = send(
        &app,
        post("/rpc/jwt_record_json", &json!({"token": token}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), claims);
}

#[actix_web::test]
async fn bad_token_parameter_is_400_with_the_reason_and_the_function_does_not_run() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let good = ctx.token(json!({"role": "app_user", "sub": "1"}));
    let (_, good_claims) = decode_parts(&good);
    let mut forged_claims = good_claims.clone();
    forged_claims["role"] = json!("app_admin");
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "expired",
            ctx.token(json!({"role": "app_user", "exp": now() - 100})),
            "PGRST303",
            "JWT expired",
        ),
        (
            "not yet valid",
            ctx.token(json!({"role": "app_user", "nbf": now() + 600})),
            "PGRST303",
            "JWT not yet valid",
        ),
        (
            "issued in the future",
            ctx.token(json!({"role": "app_user", "iat": now() + 600})),
            "PGRST303",
            "JWT issued at future",
        ),
        (
            "bad signature",
            tampered(&good, forged_claims),
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "wrong key",
            hs256_with(
                b"another-secret-another-secret-0123456789",
                good_claims.clone(),
            ),
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good_claims)),
            "PGRST301",
            "Wrong or unsupported encoding algorithm",
        ),
        (
            "malformed",
            "not-a-token".to_string(),
            "PGRST301",
            "Expected 3 parts in JWT; got 1",
        ),
        (
            "undecodable",
            "!!.b.c".to_string(),
            "PGRST301",
            "JWT couldn't be decoded",
        ),
    ];
    for (why, token, code, message) in cases {
        let r = send(
            &app,
            post("/rpc/jwt_record", &json!({"token": token}).to_string()),
        )
        .await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.code(), code, "{why}: {}", r.body);
        assert_eq!(r.json()["message"], message, "{why}: {}", r.body);
        assert!(
            r.json()["details"]
                .as_str()
                .unwrap_or_default()
                .contains("'token'"),
            "{why}: details name the parameter: {}",
            r.body
        );
        // Bad input, not a failed login: no challenge.
        assert_eq!(r.header("www-authenticate"), None, "{why}");
    }
    let r = send(&app, post("/rpc/jwt_record", r#"{"token": ""}"#)).await;
    assert_eq!(r.status, 400, "empty: {}", r.body);
    assert_eq!(r.code(), "PGRST301", "{}", r.body);
    assert!(
        calls(&ctx).await.is_empty(),
        "the function ran: {:?}",
        calls(&ctx).await
    );

    // Wrong audience needs a configured one.
    let ctx = setup_jwt_config("claims_type = \"test_jwt.claims\"\naud = \"pgrpc\"", "").await;
    let app = ctx.app().await;
    let other_aud = hs256_with(
        SECRET.as_bytes(),
        json!({"role": "app_user", "exp": now() + 60, "aud": "other"}),
    );
    let r = send(
        &app,
        post("/rpc/jwt_record", &json!({"token": other_aud}).to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PGRST303");
    assert_eq!(r.json()["message"], "JWT not in audience");
    let right_aud = hs256_with(
        SECRET.as_bytes(),
        json!({"role": "app_user", "exp": now() + 60, "aud": "pgrpc"}),
    );
    let r = send(
        &app,
        post("/rpc/jwt_record", &json!({"token": right_aud}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(calls(&ctx).await.len(), 1, "only the good token ran");
}

#[actix_web::test]
async fn empty_token_parameter_message_does_not_blame_the_authorization_header() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/jwt_record", r#"{"token": "  "}"#)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        !r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Authorization header"),
        "{}",
        r.body
    );
}

#[actix_web::test]
async fn non_string_token_parameter_is_400_and_never_trusted() {
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    // A claims object sent as-is would be a forged token: it must be refused.
    for value in [
        json!(42),
        json!(true),
        json!(["a.b.c"]),
        json!({"role": "app_admin", "sub": "1"}),
    ] {
        let r = send(
            &app,
            post("/rpc/jwt_record", &json!({"token": value}).to_string()),
        )
        .await;
        assert_eq!(r.status, 400, "{value}: {}", r.body);
        assert_eq!(r.code(), "PGRST102", "{value}: {}", r.body);
    }
    // Repeated query keys make an array: refused too.
    let r = send(&app, get("/rpc/jwt_echo?token=a.b.c&token=d.e.f")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(calls(&ctx).await.is_empty());

    let ctx = setup_with(CLAIMS_JSON).await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post(
            "/rpc/jwt_record_json",
            r#"{"token": {"role": "app_admin"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(calls(&ctx).await.is_empty());
}

#[actix_web::test]
async fn asymmetric_key_signs_results_and_verifies_parameters() {
    let ctx = setup_full(
        CLAIMS,
        pgrpc::jwt::JwtSettings {
            public_key_pem: Some(include_bytes!("../fixtures/jwt/ec_public.pem").to_vec()),
            private_key_pem: Some(include_bytes!("../fixtures/jwt/ec_private.pem").to_vec()),
            ..pgrpc::jwt::JwtSettings::default()
        },
    )
    .await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/jwt_login", r#"{"role": "app_user", "sub": "ec"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json().as_str().expect("token").to_string();
    let (header, _) = decode_parts(&token);
    assert_eq!(header["alg"], "ES256");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_aud = false;
    let key =
        DecodingKey::from_ec_pem(include_bytes!("../fixtures/jwt/ec_public.pem")).expect("ec");
    let claims = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation)
        .expect("verifies with the public key")
        .claims;
    assert_eq!(claims["sub"], "ec");
    // ECDSA signatures are randomized, but sign(verify(t)) still is a valid
    // token for the same claims.
    let r = send(
        &app,
        post("/rpc/jwt_record", &json!({"token": token}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sub"], "ec");
    // An HS256 token is not accepted by a server with only an EC key.
    let hs = hs256_with(
        SECRET.as_bytes(),
        json!({"role": "app_user", "exp": now() + 60}),
    );
    let r = send(
        &app,
        post("/rpc/jwt_record", &json!({"token": hs}).to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PGRST301");
}

/// `pgrpc token …` with a clean environment and no config file.
fn pgrpc_token(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgrpc"));
    cmd.arg("token")
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pgrpc token")
}

#[test]
fn cli_token_is_signed_with_the_configured_secret() {
    let secret = "cli-secret-cli-secret-cli-secret-0123456789";
    let out = pgrpc_token(
        &[
            "--role",
            "app_admin",
            "--claim",
            "sub=7",
            "--claim",
            "email=a@example.com",
            "--claim",
            "level:=3",
            "--ttl",
            "1h",
        ],
        &[
            ("PGRPC_JWT_SECRET", secret),
            ("PGRPC_DB_URI", "postgres://authenticator@localhost/x"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pgrpc token failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token is printed: {stdout:?}"
    );
    let claims = verify_with(secret.as_bytes(), token);
    assert_eq!(claims["role"], "app_admin");
    // `key=value` is a string (RFC 7519 wants `sub` a string); `key:=json` is JSON.
    assert_eq!(claims["sub"], "7");
    assert_eq!(claims["level"], 3);
    assert_eq!(claims["email"], "a@example.com");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp.abs_diff(now() + 3600) <= 5, "exp {exp} is not now + 1h");
    assert_eq!(claims["iat"].as_i64().map(|iat| exp - iat), Some(3600));
    // A token from the wrong secret would not verify.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    assert!(jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation
    )
    .is_err());
}

#[test]
fn cli_token_without_the_generated_secret_says_what_to_do() {
    let data = tempfile::tempdir().expect("temp dir");
    let out = pgrpc_token(
        &["--role", "app_admin"],
        &[(
            "PGRPC_DB_DATA_DIR",
            data.path().to_str().expect("utf-8 path"),
        )],
    );
    assert!(
        !out.status.success(),
        "no secret exists yet, yet a token was printed"
    );
    assert!(
        out.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jwt.secret"), "{stderr}");
    assert!(stderr.contains("no generated secret yet"), "{stderr}");
    // It must only read: no secret file appears.
    assert!(
        std::fs::read_dir(data.path())
            .expect("read dir")
            .next()
            .is_none(),
        "pgrpc token wrote into the data directory"
    );

    // Once the server has generated it, the CLI uses it.
    let secret = "generated-generated-generated-generated-01";
    std::fs::write(
        data.path().join(pgrpc::jwt::keys::GENERATED_SECRET_FILE),
        secret,
    )
    .expect("write");
    let out = pgrpc_token(
        &["--role", "app_admin"],
        &[(
            "PGRPC_DB_DATA_DIR",
            data.path().to_str().expect("utf-8 path"),
        )],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims = verify_with(
        secret.as_bytes(),
        String::from_utf8_lossy(&out.stdout).trim(),
    );
    assert_eq!(claims["role"], "app_admin");
}

#[actix_web::test]
async fn claims_nested_in_other_parameter_types_are_never_taken_unverified() {
    // SQL that takes `claims[]` or a row with a claims attribute trusts those
    // values as much as a plain claims parameter: a client must not be able
    // to hand it claims the gateway never verified.
    let ctx = setup_with(CLAIMS).await;
    let app = ctx.app().await;
    let forged = json!({"role": "app_admin", "sub": "1"});
    let many = send(
        &app,
        post(
            "/rpc/jwt_record_many",
            &json!({"tokens": [forged]}).to_string(),
        ),
    )
    .await;
    let row = send(
        &app,
        post(
            "/rpc/jwt_record_session",
            &json!({"s": {"token": forged, "user_id": 1}}).to_string(),
        ),
    )
    .await;
    assert_eq!(
        (many.status, row.status),
        (400, 400),
        "claims[]: {}; row with claims: {}",
        many.body,
        row.body
    );
    assert!(
        calls(&ctx).await.is_empty(),
        "forged claims reached SQL: {:?}",
        calls(&ctx).await
    );
    // An array of the claims type takes tokens, each verified.
    let a = ctx.token(json!({"role": "app_user", "sub": "a", "exp": now() + 60}));
    let b = ctx.token(json!({"role": "app_admin", "sub": "b", "exp": now() + 60}));
    let ok = send(
        &app,
        post(
            "/rpc/jwt_record_many",
            &json!({"tokens": [a, b]}).to_string(),
        ),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json(), json!(["app_user", "app_admin"]));
    let tampered = format!("{a}x");
    let bad = send(
        &app,
        post(
            "/rpc/jwt_record_many",
            &json!({"tokens": [a, tampered]}).to_string(),
        ),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(calls(&ctx).await.len(), 2, "only the all-valid call ran");
}
