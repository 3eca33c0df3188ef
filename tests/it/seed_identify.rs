// POST /rpc/identify: sign-in, uniform login failures, session extension with a Bearer token and its 10-day cap.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;
use crate::seed::{claims, int, register, session_claims, user_id, PASSWORD};

fn login(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

#[actix_web::test]
async fn username_and_password_give_a_24_hour_token() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "Abstract").await;
    // Usernames are case-insensitive at sign-in too; the token keeps the registered spelling.
    let r = send(&app, post("/rpc/identify", &login("abstract", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(&r.json()["token"]);
    assert_eq!(c["role"], "app_user");
    assert_eq!(c["username"], "Abstract");
    assert_eq!(c["sub"], user_id(&ctx, "Abstract").await.to_string());
    let iat = int(&c, "iat");
    assert_eq!(int(&c, "exp"), iat + 24 * 3600);
    assert_eq!(int(&c, "orig_iat"), iat);
}

#[actix_web::test]
async fn unknown_user_wrong_password_and_disabled_account_fail_alike() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    register(&ctx, &app, "mallory").await;
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.users set disabled_at = now() where username = 'mallory'",
            &[],
        )
        .await
        .expect("disable");

    let unknown = send(&app, post("/rpc/identify", &login("nobody", PASSWORD))).await;
    let wrong = send(
        &app,
        post("/rpc/identify", &login("alice", "wrong password")),
    )
    .await;
    let disabled = send(&app, post("/rpc/identify", &login("mallory", PASSWORD))).await;
    // Longer than bcrypt's 72 bytes but starting with the right password.
    let long = send(
        &app,
        post(
            "/rpc/identify",
            &login("alice", &format!("{PASSWORD}{}", "x".repeat(72))),
        ),
    )
    .await;
    for r in [&unknown, &wrong, &disabled, &long] {
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.code(), "PT401");
        assert_eq!(r.json()["message"], "invalid username or password");
    }
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(wrong.body, disabled.body);
    assert_eq!(wrong.body, long.body);
}

#[actix_web::test]
async fn an_unknown_user_takes_about_as_long_as_a_wrong_password() {
    let ctx = setup().await;
    // Real bcrypt cost for this database, so the hash dominates the time.
    ctx.db
        .admin()
        .await
        .execute("update auth.settings set bcrypt_cost = 10", &[])
        .await
        .expect("cost 10");
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let mut unknown = Vec::new();
    let mut wrong = Vec::new();
    for i in 0..5 {
        // Different names each time: a lock-out must not shorten anything.
        let start = Instant::now();
        let r = send(
            &app,
            post(
                "/rpc/identify",
                &login(&format!("nobody{i}"), "wrong password"),
            ),
        )
        .await;
        unknown.push(start.elapsed());
        assert_eq!(r.status, 401);
        let start = Instant::now();
        let r = send(
            &app,
            post(
                "/rpc/identify",
                &login("alice", &format!("wrong password {i}")),
            ),
        )
        .await;
        wrong.push(start.elapsed());
        assert_eq!(r.status, 401);
        if i == 3 {
            // Stay below the lock-out threshold for alice.
            ctx.db
                .admin()
                .await
                .execute("delete from auth.login_failures", &[])
                .await
                .expect("reset");
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let (u, w) = (median(&mut unknown), median(&mut wrong));
    assert!(
        u * 2 > w && w * 2 > u,
        "unknown user {u:?} vs wrong password {w:?}: a dummy hash must make them alike"
    );
}

#[actix_web::test]
async fn anonymous_without_parameters_is_401() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for body in ["{}", ""] {
        let r = send(&app, post("/rpc/identify", body)).await;
        assert_eq!(r.status, 401, "{body:?}: {}", r.body);
        assert_eq!(r.code(), "PT401");
        assert_eq!(r.json()["message"], "no credentials");
    }
}

#[actix_web::test]
async fn only_one_of_username_and_password_is_422() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/identify", r#"{"username": "alice"}"#)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["message"], "password is required");
    let r = send(&app, post("/rpc/identify", r#"{"password": "whatever1"}"#)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["message"], "username is required");
}

#[actix_web::test]
async fn a_bearer_token_and_no_parameters_extend_the_session() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    // A token issued an hour ago in a session that started two days ago.
    // (Used three times: the second and third are within refresh_reuse_grace
    // of the first, like tabs refreshing at once.)
    let t = now();
    let old =
        ctx.token(session_claims(&ctx, id, "alice", t - 3600, t + 23 * 3600, t - 2 * 86400).await);
    for scheme in ["Bearer", "Token", "bearer"] {
        let r = send(
            &app,
            post("/rpc/identify", "").insert_header(("authorization", format!("{scheme} {old}"))),
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}: {}", r.body);
        let c = claims(&r.json()["token"]);
        assert_eq!(c["sub"], id.to_string());
        assert_eq!(c["username"], "alice");
        assert_eq!(c["role"], "app_user");
        assert_eq!(
            int(&c, "orig_iat"),
            t - 2 * 86400,
            "the session keeps its start"
        );
        let iat = int(&c, "iat");
        assert!((iat - now()).abs() <= 5);
        assert_eq!(int(&c, "exp"), iat + 24 * 3600, "a fresh 24 hours");
        assert_ne!(
            c["jti"], "00000000-0000-4000-8000-000000000000",
            "a new jti"
        );
    }
}

#[actix_web::test]
async fn extending_a_real_token_keeps_its_orig_iat() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let first = register(&ctx, &app, "alice").await;
    let r = send(&app, bearer(post("/rpc/identify", "{}"), &first)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.json()["token"].as_str().expect("token").to_string();
    let r = send(&app, bearer(post("/rpc/identify", "{}"), &second)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let orig = int(&claims(&serde_json::Value::from(first)), "orig_iat");
    assert_eq!(int(&claims(&r.json()["token"]), "orig_iat"), orig);
}

#[actix_web::test]
async fn extension_stops_at_the_10_day_cap() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let cap = 10 * 86400;

    // One hour before the cap: allowed, but the new token ends at the cap.
    let orig = t - cap + 3600;
    let near = ctx.token(session_claims(&ctx, id, "alice", t - 60, t + 3000, orig).await);
    let r = send(&app, bearer(post("/rpc/identify", ""), &near)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(&r.json()["token"]);
    assert_eq!(int(&c, "exp"), orig + cap, "never past orig_iat + 10 days");
    assert_eq!(int(&c, "orig_iat"), orig);

    // Past the cap: refused, even though the token itself is still valid.
    let over = ctx.token(session_claims(&ctx, id, "alice", t - 60, t + 3600, t - cap - 60).await);
    let r = send(&app, bearer(post("/rpc/identify", ""), &over)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PT401");
    assert_eq!(r.json()["message"], "session has expired");
}

#[actix_web::test]
async fn a_disabled_or_deleted_user_cannot_extend() {
    let ctx = setup().await;
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

    let r = send(&app, bearer(post("/rpc/identify", ""), &alice)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "user is disabled");
    let r = send(&app, bearer(post("/rpc/identify", ""), &bob)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "user no longer exists");
}

#[actix_web::test]
async fn a_token_without_a_user_cannot_extend() {
    // `pgrpc token --role app_admin` makes tokens with no sub: there is no
    // session to extend.
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.token(json!({"role": "app_admin"}));
    let r = send(&app, bearer(post("/rpc/identify", ""), &admin)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "no credentials");
}

#[actix_web::test]
async fn credentials_win_over_a_bearer_token() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let alice = register(&ctx, &app, "alice").await;
    register(&ctx, &app, "bob").await;
    let r = send(
        &app,
        bearer(post("/rpc/identify", &login("bob", PASSWORD)), &alice),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r.json()["token"])["username"], "bob");
}
