// The token-auth API at its seed paths: /auth/access_token/, /auth/refresh_token/, /auth/verify_token/ (and their /rpc/ names).

use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{claims, int, register, session_claims, user_claims, user_id, PASSWORD, ROUTES};

/// ISO 8601 UTC with milliseconds, as the seed shows `expires_in`.
fn iso(epoch: i64) -> String {
    // Days since 1970-01-01 → civil date (Howard Hinnant's algorithm), so the
    // test does not depend on the SQL it checks.
    let days = epoch.div_euclid(86400);
    let secs = epoch.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn token_body(token: &str) -> String {
    json!({ "token": token }).to_string()
}

#[test]
fn iso_formats_like_the_seed() {
    assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso(1_430_314_165), "2015-04-29T13:29:25.000Z");
}

#[actix_web::test]
async fn access_token_answers_a_5_day_token_at_the_seed_path() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "indestructible").await;
    for path in ["/auth/access_token/", "/rpc/access_token"] {
        let r = send(
            &app,
            post(
                path,
                &json!({"username": "indestructible", "password": PASSWORD}).to_string(),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let body = r.json();
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["access_token", "expires_in", "user"], "{body}");
        assert_eq!(body["user"], "indestructible");
        let c = claims(&body["access_token"]);
        let iat = int(&c, "iat");
        assert_eq!(int(&c, "exp"), iat + 5 * 86400, "5 days");
        assert_eq!(int(&c, "orig_iat"), iat);
        assert_eq!(body["expires_in"], iso(int(&c, "exp")));
        assert_eq!(c["sub"], user_id(&ctx, "indestructible").await.to_string());
    }
}

#[actix_web::test]
async fn access_token_fails_like_identify() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "indestructible").await;
    let wrong = send(
        &app,
        post(
            "/auth/access_token/",
            &json!({"username": "indestructible", "password": "terminator123"}).to_string(),
        ),
    )
    .await;
    let unknown = send(
        &app,
        post(
            "/auth/access_token/",
            &json!({"username": "nobody", "password": "terminator123"}).to_string(),
        ),
    )
    .await;
    let identify = send(
        &app,
        post(
            "/rpc/identify",
            &json!({"username": "nobody2", "password": "x"}).to_string(),
        ),
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, identify.body);
    let r = send(
        &app,
        post("/auth/access_token/", r#"{"username": "indestructible"}"#),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["message"], "password is required");
}

#[actix_web::test]
async fn refresh_token_keeps_orig_iat_and_answers_the_user() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let old = ctx.token(session_claims(&ctx, id, "alice", t - 3600, t + 3600, t - 3 * 86400).await);
    for path in ["/auth/refresh_token/", "/rpc/refresh_token"] {
        let r = send(&app, post(path, &token_body(&old))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let body = r.json();
        assert_eq!(body["user"], json!({"username": "alice", "id": id}));
        let c = claims(&body["token"]);
        assert_eq!(
            int(&c, "orig_iat"),
            t - 3 * 86400,
            "orig_iat carried forward"
        );
        let iat = int(&c, "iat");
        assert!((iat - now()).abs() <= 5);
        assert_eq!(int(&c, "exp"), iat + 5 * 86400, "a new 5-day expiry");
        assert_eq!(body["expires_in"], iso(int(&c, "exp")));
        assert_eq!(c["sub"], id.to_string());
    }
}

#[actix_web::test]
async fn refresh_has_expired_after_10_days() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let cap = 10 * 86400;

    let over = ctx.token(session_claims(&ctx, id, "alice", t - 60, t + 3600, t - cap - 1).await);
    let r = send(&app, post("/auth/refresh_token/", &token_body(&over))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PT400");
    assert_eq!(r.json()["message"], "refresh has expired");

    // Just inside the cap: refreshed, but the new token ends at the cap.
    let orig = t - cap + 600;
    let near = ctx.token(session_claims(&ctx, id, "alice", t - 60, t + 300, orig).await);
    let r = send(&app, post("/auth/refresh_token/", &token_body(&near))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(&r.json()["token"]);
    assert_eq!(int(&c, "exp"), orig + cap);
    assert_eq!(r.json()["expires_in"], iso(orig + cap));
}

#[actix_web::test]
async fn only_valid_tokens_refresh() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let expired = ctx.token(user_claims(id, "alice", t - 7200, t - 3600, t - 7200));
    let r = send(&app, post("/auth/refresh_token/", &token_body(&expired))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("expired"), "{}", r.body);

    let r = send(
        &app,
        post("/auth/refresh_token/", &token_body("not.a.token")),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);

    let r = send(&app, post("/auth/refresh_token/", "{}")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["message"], "token is required");
}

#[actix_web::test]
async fn verify_token_answers_the_same_token() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let exp = int(&claims(&Value::from(token.clone())), "exp");
    for path in ["/auth/verify_token/", "/rpc/verify_token"] {
        let r = send(&app, post(path, &token_body(&token))).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let body = r.json();
        assert_eq!(body["token"], token, "the very same string");
        assert_eq!(body["expires_in"], iso(exp));
        assert_eq!(body["user"], json!({"username": "alice", "id": id}));
    }
    // An access_token's token verifies too, with the Token scheme on the side.
    let r = send(
        &app,
        post(
            "/auth/access_token/",
            &json!({"username": "alice", "password": PASSWORD}).to_string(),
        ),
    )
    .await;
    let access = r.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = send(
        &app,
        post("/auth/verify_token/", &token_body(&access))
            .insert_header(("authorization", format!("Token {access}"))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token"], access);
}

#[actix_web::test]
async fn verify_token_says_why_a_token_is_refused() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();

    let expired = ctx.token(user_claims(id, "alice", t - 7200, t - 3600, t - 7200));
    let mut parts: Vec<&str> = token.split('.').collect();
    let bad_signature_sig = "AAAA".to_string() + &parts[2][4..];
    parts[2] = &bad_signature_sig;
    let bad_signature = parts.join(".");
    let cases = [
        (expired.as_str(), "expired"),
        (bad_signature.as_str(), "JWT cryptographic operation failed"),
        ("malformed", "Expected 3 parts"),
        ("a.b.c", "decoded"),
    ];
    for (token, why) in cases {
        let r = send(&app, post("/auth/verify_token/", &token_body(token))).await;
        assert_eq!(r.status, 400, "{token}: {}", r.body);
        assert!(
            r.json()["message"].as_str().unwrap_or("").contains(why),
            "{why}: {}",
            r.body
        );
    }
}

#[actix_web::test]
async fn a_disabled_or_deleted_user_can_neither_refresh_nor_verify() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let alice = register(&ctx, &app, "alice").await;
    let bob = register(&ctx, &app, "bob").await;
    let admin = ctx.db.admin().await;
    admin
        .execute(
            "update auth.users set disabled_at = now() where username = 'alice'",
            &[],
        )
        .await
        .expect("disable");
    admin
        .execute("delete from auth.users where username = 'bob'", &[])
        .await
        .expect("delete");
    for path in ["/auth/refresh_token/", "/auth/verify_token/"] {
        let r = send(&app, post(path, &token_body(&alice))).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.code(), "PT400");
        assert_eq!(r.json()["message"], "user is disabled");
        let r = send(&app, post(path, &token_body(&bob))).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert_eq!(r.json()["message"], "user no longer exists");
    }
    // A token naming no user at all (`pgrpc token --role app_user`).
    let bare = ctx.token(json!({"role": "app_user"}));
    let r = send(&app, post("/auth/verify_token/", &token_body(&bare))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "user no longer exists");
}

#[actix_web::test]
async fn the_token_scheme_authorizes_any_endpoint() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let r = send(
        &app,
        get("/rpc/me").insert_header(("authorization", format!("Token {token}"))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "alice");
    let r = send(&app, bearer(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
