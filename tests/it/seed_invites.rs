// POST /rpc/create_invite (app_admin only) and the first-start invite of pgrpc.on_first_start().

use serde_json::json;

use crate::harness::*;
use crate::seed::{register, register_body, PASSWORD};

/// Seconds from now until an RFC 3339 timestamp, computed by PostgreSQL.
async fn seconds_until(ctx: &Ctx, at: &str) -> f64 {
    ctx.db
        .admin()
        .await
        .query_one(
            "select extract(epoch from $1::text::timestamptz - now())::float8",
            &[&at],
        )
        .await
        .expect("parse timestamp")
        .get(0)
}

#[actix_web::test]
async fn only_app_admin_may_create_invites() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/create_invite", "{}")).await;
    assert_eq!(r.status, 401, "anonymous: {}", r.body);
    assert_eq!(r.code(), "42501");

    let user = register(&ctx, &app, "alice").await;
    let r = send(&app, bearer(post("/rpc/create_invite", "{}"), &user)).await;
    assert_eq!(r.status, 403, "app_user: {}", r.body);
    assert_eq!(r.code(), "42501");

    let admin = ctx.token(json!({"role": "app_admin"}));
    let r = send(&app, bearer(post("/rpc/create_invite", "{}"), &admin)).await;
    assert_eq!(r.status, 200, "app_admin: {}", r.body);
}

#[actix_web::test]
async fn an_invite_has_a_random_code_and_defaults_from_settings() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.token(json!({"role": "app_admin", "sub": "42"}));
    let r = send(&app, bearer(post("/rpc/create_invite", ""), &admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = r.json();
    let code = first["code"].as_str().expect("code");
    assert_eq!(code.len(), 36, "a uuid: {code}");
    assert_eq!(&code[14..15], "4", "a random (version 4) uuid: {code}");
    assert_eq!(first["max_uses"], 1, "single use by default");
    assert_eq!(first["uses"], 0);
    assert_eq!(first["created_by"], "42", "the creator's sub");
    let left = seconds_until(&ctx, first["expires_at"].as_str().expect("expires_at")).await;
    assert!(
        (left - 7.0 * 86400.0).abs() < 60.0,
        "7 days by default, got {left} s"
    );

    let r = send(&app, bearer(post("/rpc/create_invite", ""), &admin)).await;
    assert_ne!(r.json()["code"], first["code"], "codes differ");

    // The defaults are the settings table's.
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.settings set invite_max_uses = 3, invite_valid_for = '1 hour'",
            &[],
        )
        .await
        .expect("settings");
    let r = send(&app, bearer(post("/rpc/create_invite", ""), &admin)).await;
    assert_eq!(r.json()["max_uses"], 3);
    let left = seconds_until(&ctx, r.json()["expires_at"].as_str().expect("expires_at")).await;
    assert!((left - 3600.0).abs() < 60.0, "{left}");
}

#[actix_web::test]
async fn max_uses_and_valid_for_are_honoured() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.token(json!({"role": "app_admin"}));
    let r = send(
        &app,
        bearer(
            post(
                "/rpc/create_invite",
                r#"{"max_uses": 2, "valid_for": "2 days"}"#,
            ),
            &admin,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["max_uses"], 2);
    let left = seconds_until(&ctx, body["expires_at"].as_str().expect("expires_at")).await;
    assert!((left - 2.0 * 86400.0).abs() < 60.0, "{left}");
    let code = body["code"].as_str().expect("code");
    for (i, status) in [(1, 200), (2, 200), (3, 403)] {
        let r = send(
            &app,
            post(
                "/rpc/register",
                &register_body(
                    &format!("user{i}"),
                    PASSWORD,
                    &format!("u{i}@example.com"),
                    code,
                ),
            ),
        )
        .await;
        assert_eq!(r.status, status, "registration {i}: {}", r.body);
    }

    // ISO 8601 durations work too.
    let r = send(
        &app,
        bearer(
            post("/rpc/create_invite", r#"{"valid_for": "PT90M"}"#),
            &admin,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let left = seconds_until(&ctx, r.json()["expires_at"].as_str().expect("expires_at")).await;
    assert!((left - 5400.0).abs() < 60.0, "{left}");
}

#[actix_web::test]
async fn bad_invite_parameters_are_422() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.token(json!({"role": "app_admin"}));
    for (body, message) in [
        (r#"{"max_uses": 0}"#, "max_uses must be at least 1"),
        (r#"{"max_uses": -3}"#, "max_uses must be at least 1"),
        (
            r#"{"valid_for": "-1 day"}"#,
            "valid_for must be a positive interval",
        ),
        (
            r#"{"valid_for": "0"}"#,
            "valid_for must be a positive interval",
        ),
    ] {
        let r = send(&app, bearer(post("/rpc/create_invite", body), &admin)).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert_eq!(r.code(), "PT422");
        assert_eq!(r.json()["message"], message);
    }
    let r = send(
        &app,
        bearer(
            post("/rpc/create_invite", r#"{"valid_for": "forever"}"#),
            &admin,
        ),
    )
    .await;
    assert_eq!(r.status, 400, "not an interval: {}", r.body);
    assert_eq!(ctx.count("select count(*) from auth.invites").await, 0);
}

#[actix_web::test]
async fn first_start_prints_a_ready_to_use_invite() {
    let ctx = setup().await;
    let (client, notices) = pgrpc::db::connect_collecting_notices(&ctx.db.config("postgres"))
        .await
        .expect("connect");
    client
        .batch_execute("select pgrpc.on_first_start()")
        .await
        .expect("on_first_start");
    let lines = notices.take();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let code: String = client
        .query_one("select code::text from auth.invites", &[])
        .await
        .expect("one invite")
        .get(0);
    assert!(lines[0].contains(&code), "{lines:?}");
    assert!(
        lines[1].contains("curl -s http://127.0.0.1:3000/rpc/register") && lines[1].contains(&code),
        "{lines:?}"
    );

    // The printed command's body registers as it stands.
    let body = lines[1]
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.strip_suffix('\''))
        .expect("a -d '…' body");
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/register", body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
