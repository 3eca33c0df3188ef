// Why a token parameter was refused (issue 15 point 5): each check named in `details`, through the seed's verify_token and refresh_token; the Authorization header's PostgREST body unchanged.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::harness::*;
use crate::jwt_auth::forge;
use crate::seed::{register, user_claims, user_id, ROUTES};

const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt/rsa_private.pem");

/// The seed's routes, with the JWK Set fixture next to the HMAC secret, so a
/// token can name a `kid` that is not there.
fn config_with_jwks() -> String {
    format!(
        "{ROUTES}\n[jwt]\nsecret = \"{SECRET}\"\njwks_file = \"{}/tests/fixtures/jwt/jwks.json\"\nalgorithms = [\"HS256\", \"RS256\"]\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn details(r: &Resp) -> String {
    r.json()["details"]
        .as_str()
        .unwrap_or_else(|| panic!("details are text: {}", r.body))
        .to_string()
}

/// `auth.iso_utc`, the seed's own formatting, so the expected time does not
/// come from the code under test.
async fn seed_iso(ctx: &Ctx, epoch: i64) -> String {
    ctx.db
        .admin()
        .await
        .query_one("select auth.iso_utc($1)", &[&epoch])
        .await
        .expect("iso_utc")
        .get(0)
}

#[actix_web::test]
async fn verify_token_details_name_the_failed_check() {
    let ctx = setup_with(&config_with_jwks()).await;
    let app = ctx.app().await;
    let good = register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let hs = |alg: Algorithm, claims: Value| {
        forge(
            json!({"alg": format!("{alg:?}"), "typ": "JWT"}),
            claims,
            alg,
            &secret,
        )
    };

    let expired_at = t - 3600;
    let not_before = t + 3600;
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[2] = format!("AAAA{}", &parts[2][4..]);
    let bad_signature = parts.join(".");
    let unknown_kid = forge(
        json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-9"}),
        user_claims(id, "alice", t, t + 600, t),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("fixture key"),
    );
    let mut not_yet = user_claims(id, "alice", t, t + 7200, t);
    not_yet["nbf"] = json!(not_before);

    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "bad signature",
            bad_signature,
            "PGRST301",
            "signature: the signature does not match".into(),
        ),
        (
            "expired",
            ctx.token(user_claims(id, "alice", t - 7200, expired_at, t - 7200)),
            "PGRST303",
            format!("expired: expired at {}", seed_iso(&ctx, expired_at).await),
        ),
        (
            "not yet valid",
            ctx.token(not_yet),
            "PGRST303",
            format!(
                "not_yet_valid: not valid before {}",
                seed_iso(&ctx, not_before).await
            ),
        ),
        (
            "two parts",
            "abc.def".into(),
            "PGRST301",
            "malformed: a JWT has 3 parts separated by dots, this one has 2".into(),
        ),
        (
            "not base64",
            "a!.b.c".into(),
            "PGRST301",
            "malformed: The JWT header is not valid base64url".into(),
        ),
        (
            "wrong algorithm",
            hs(Algorithm::HS384, user_claims(id, "alice", t, t + 600, t)),
            "PGRST301",
            "algorithm: The JWT uses 'HS384'; accepted: HS256, RS256".into(),
        ),
        (
            "unknown kid",
            unknown_kid.clone(),
            "PGRST301",
            "unknown_key: No key has kid 'rsa-9'".into(),
        ),
    ];
    for (why, token, code, reason) in cases {
        let r = send(
            &app,
            post(
                "/auth/verify_token/",
                &json!({ "token": token }).to_string(),
            ),
        )
        .await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.code(), code, "{why}: {}", r.body);
        let expected = format!("The token given for parameter 'token' was refused: {reason}");
        assert!(
            details(&r).starts_with(&expected),
            "{why}: details should start with {expected:?}: {}",
            r.body
        );
    }

    // refresh_token's parameter says why too.
    let r = send(
        &app,
        post(
            "/auth/refresh_token/",
            &json!({ "token": unknown_kid }).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        details(&r),
        "The token given for parameter 'token' was refused: unknown_key: No key has kid 'rsa-9'"
    );

    // The good token still verifies, so the cases above failed for their reason.
    let r = send(
        &app,
        post("/auth/verify_token/", &json!({ "token": good }).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn the_authorization_header_keeps_postgrest_errors() {
    let ctx = setup_with(&config_with_jwks()).await;
    let app = ctx.app().await;
    let t = now();
    let expired = ctx.token(json!({"role": "app_user", "exp": t - 3600}));
    let r = send(
        &app,
        post("/rpc/me", "{}").insert_header(("authorization", format!("Bearer {expired}"))),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"code": "PGRST303", "message": "JWT expired", "details": null, "hint": null})
    );

    let unknown_kid = forge(
        json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-9"}),
        json!({"role": "app_user", "exp": t + 600}),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("fixture key"),
    );
    let r = send(
        &app,
        post("/rpc/me", "{}").insert_header(("authorization", format!("Bearer {unknown_kid}"))),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({
            "code": "PGRST301",
            "message": "No suitable key or wrong key type",
            "details": "No key has kid 'rsa-9'",
            "hint": null
        })
    );
}
