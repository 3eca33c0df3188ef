// POST /rpc/register: invite codes, field rules, uniqueness and the concurrency cases.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use futures_util::future::join_all;
use serde_json::json;

use crate::harness::*;
use crate::seed::*;

#[actix_web::test]
async fn register_answers_a_24_hour_app_user_token() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    let r = send(
        &app,
        post(
            "/rpc/register",
            &register_body("Abstract", "password", "  Josh@CoinDroids.com ", &code),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only a token: {body}"
    );
    let c = claims(&body["token"]);
    let id = user_id(&ctx, "Abstract").await;
    assert_eq!(c["role"], "app_user");
    assert_eq!(c["sub"], id.to_string(), "sub is the user id as text");
    assert_eq!(c["username"], "Abstract");
    let iat = int(&c, "iat");
    assert!((iat - now()).abs() <= 5, "iat is now");
    assert_eq!(int(&c, "exp"), iat + 24 * 3600, "24 hours");
    assert_eq!(int(&c, "orig_iat"), iat, "a new session starts now");
    let jti = c["jti"].as_str().expect("jti");
    assert_eq!(jti.len(), 36, "jti is a uuid: {jti}");

    let row = ctx
        .db
        .admin()
        .await
        .query_one(
            "select u.email, u.role, u.password_hash, i.uses \
             from auth.users u join auth.invites i on i.code = u.invite_code where u.id = $1",
            &[&id],
        )
        .await
        .expect("user row");
    assert_eq!(
        row.get::<_, String>(0),
        "josh@coindroids.com",
        "trimmed and lower-cased"
    );
    assert_eq!(row.get::<_, String>(1), "app_user");
    let hash: String = row.get(2);
    assert!(
        hash.starts_with("$2a$04$"),
        "bcrypt at the fixture's cost 4: {hash}"
    );
    assert_eq!(row.get::<_, i32>(3), 1, "the invite was used once");
}

#[actix_web::test]
async fn missing_fields_answer_422_naming_the_field() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    let full = json!({"username": "abstract", "password": "password", "email": "a@example.com", "invite_code": code});
    for field in ["username", "password", "email", "invite_code"] {
        let mut body = full.clone();
        body.as_object_mut().expect("object").remove(field);
        let r = send(&app, post("/rpc/register", &body.to_string())).await;
        assert_eq!(r.status, 422, "without {field}: {}", r.body);
        assert_eq!(r.code(), "PT422");
        assert_eq!(r.json()["message"], format!("{field} is required"));
        // Empty is missing too.
        body[field] = json!("");
        let r = send(&app, post("/rpc/register", &body.to_string())).await;
        assert_eq!(r.status, 422, "empty {field}: {}", r.body);
        assert_eq!(r.json()["message"], format!("{field} is required"));
    }
    let r = send(&app, post("/rpc/register", "{}")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(ctx.count("select count(*) from auth.users").await, 0);
}

#[actix_web::test]
async fn malformed_fields_answer_422_naming_the_field() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 10, "1 day").await;
    let cases = [
        ("ab", "password", "a@example.com", "username"),
        ("a b c", "password", "a@example.com", "username"),
        ("bad/name", "password", "a@example.com", "username"),
        (&"x".repeat(33), "password", "a@example.com", "username"),
        ("abstract", "short", "a@example.com", "password"),
        ("abstract", "1234567", "a@example.com", "password"),
        ("abstract", &"p".repeat(73), "a@example.com", "password"),
        // 37 characters but 74 bytes: the limit is bcrypt's, in bytes.
        ("abstract", &"é".repeat(37), "a@example.com", "password"),
        ("abstract", "password", "not-an-address", "email"),
        ("abstract", "password", "a@example", "email"),
        ("abstract", "password", "a b@example.com", "email"),
        ("abstract", "password", "a@@example.com", "email"),
    ];
    for (username, password, email, field) in cases {
        let r = send(
            &app,
            post(
                "/rpc/register",
                &register_body(username, password, email, &code),
            ),
        )
        .await;
        assert_eq!(
            r.status, 422,
            "{username:?}/{password:?}/{email:?}: {}",
            r.body
        );
        assert_eq!(r.code(), "PT422");
        let message = r.json()["message"].as_str().expect("message").to_string();
        assert!(message.starts_with(field), "{message:?} names {field}");
    }
    assert_eq!(ctx.count("select count(*) from auth.users").await, 0);
    assert_eq!(
        ctx.count("select uses::int8 from auth.invites").await,
        0,
        "no use consumed"
    );

    // The edges that are allowed: 3 and 32 characters, 8 and 72 bytes.
    for (username, password) in [
        ("abc", "12345678".to_string()),
        (&"y".repeat(32), "p".repeat(72)),
        ("a.b-c_D", "é".repeat(36)),
    ] {
        let email = format!("{}@example.com", username.to_lowercase());
        let r = send(
            &app,
            post(
                "/rpc/register",
                &register_body(username, &password, &email, &code),
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{username}: {}", r.body);
    }
}

#[actix_web::test]
async fn a_wrongly_typed_field_is_a_client_error() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    let body = json!({"username": ["x"], "password": "password", "email": "a@example.com", "invite_code": code});
    let r = send(&app, post("/rpc/register", &body.to_string())).await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.body);
    assert_eq!(ctx.count("select count(*) from auth.users").await, 0);
}

#[actix_web::test]
async fn username_is_unique_case_insensitively_and_email_after_normalizing() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "Abstract").await;
    let code = invite(&ctx, 5, "1 day").await;

    let r = send(
        &app,
        post(
            "/rpc/register",
            &register_body("aBSTRACT", PASSWORD, "other@example.com", &code),
        ),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.code(), "23505");
    assert_eq!(r.json()["message"], "username is already taken");

    let r = send(
        &app,
        post(
            "/rpc/register",
            &register_body("other", PASSWORD, " ABSTRACT@example.com", &code),
        ),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["message"], "email is already registered");

    // A refused registration gives its invite use back.
    assert_eq!(
        ctx.count(&format!(
            "select uses::int8 from auth.invites where code = '{code}'"
        ))
        .await,
        0
    );
    assert_eq!(ctx.count("select count(*) from auth.users").await, 1);
}

#[actix_web::test]
async fn unknown_used_up_and_expired_invites_get_the_same_403() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let used = invite(&ctx, 1, "1 day").await;
    register_with(&app, "first", &used, 200).await;
    let expired = invite(&ctx, 1, "1 day").await;
    ctx.db
        .admin()
        .await
        .execute("update auth.invites set expires_at = now() - interval '1 second' where code = $1::text::uuid", &[&expired])
        .await
        .expect("expire invite");

    let mut bodies = Vec::new();
    for code in [
        "00000000-0000-4000-8000-000000000000".to_string(),
        "not-a-uuid".to_string(),
        used,
        expired,
    ] {
        let r = register_with(&app, "second", &code, 403).await;
        assert_eq!(r.code(), "PT403");
        assert_eq!(r.json()["message"], "invalid invite code");
        bodies.push(r.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "identical bodies: {bodies:?}"
    );
    assert_eq!(ctx.count("select count(*) from auth.users").await, 1);
}

async fn register_with<S, B>(app: &S, username: &str, code: &str, status: u16) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let email = format!("{username}@example.com");
    let r = send(
        app,
        post(
            "/rpc/register",
            &register_body(username, PASSWORD, &email, code),
        ),
    )
    .await;
    assert_eq!(r.status, status, "{username} with {code}: {}", r.body);
    r
}

#[actix_web::test]
async fn a_multi_use_invite_admits_exactly_max_uses_users() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 3, "1 day").await;
    for name in ["one", "two", "three"] {
        register_with(&app, name, &code, 200).await;
    }
    register_with(&app, "four", &code, 403).await;
    assert_eq!(ctx.count("select count(*) from auth.users").await, 3);
}

#[actix_web::test]
async fn twenty_concurrent_registrations_with_one_single_use_code_create_one_user() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    let results = join_all((0..20).map(|i| {
        let body = register_body(
            &format!("racer{i}"),
            PASSWORD,
            &format!("racer{i}@example.com"),
            &code,
        );
        send(&app, post("/rpc/register", &body))
    }))
    .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(ctx.count("select count(*) from auth.users").await, 1);
    assert_eq!(ctx.count("select uses::int8 from auth.invites").await, 1);
}

#[actix_web::test]
async fn two_concurrent_registrations_of_one_username_give_200_and_409() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 2, "1 day").await;
    let results = join_all(["Twin", "tWIN"].iter().enumerate().map(|(i, name)| {
        let body = register_body(name, PASSWORD, &format!("twin{i}@example.com"), &code);
        send(&app, post("/rpc/register", &body))
    }))
    .await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409], "{results:?}");
    assert_eq!(ctx.count("select count(*) from auth.users").await, 1);
    assert_eq!(
        ctx.count("select uses::int8 from auth.invites").await,
        1,
        "the loser's use rolled back"
    );
}

#[actix_web::test]
async fn registering_with_a_token_header_is_allowed() {
    // Clients send their token on every call (the token-auth seed); register
    // must not turn into a 403 for a signed-in user.
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "first").await;
    let code = invite(&ctx, 1, "1 day").await;
    let r = send(
        &app,
        bearer(
            post(
                "/rpc/register",
                &register_body("second", PASSWORD, "second@example.com", &code),
            ),
            &token,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Run `api.register` as the gateway does (role web_anon, its claims) with
/// `code`, in a transaction with function statistics on; the SQLSTATE it
/// fails with (if it does) and how often it called `extensions.crypt`.
async fn register_counting_hashes(ctx: &Ctx, username: &str, code: &str) -> (Option<String>, i64) {
    let mut db = ctx.db.admin().await;
    // track_functions = all counts calls of C functions such as crypt too;
    // pg_stat_xact_user_functions shows this transaction's own counts, so
    // nothing waits for statistics to be flushed.
    db.batch_execute("set track_functions = 'all'")
        .await
        .expect("track functions");
    let tx = db.transaction().await.expect("begin");
    tx.execute(
        "select set_config('role', 'web_anon', true), \
                set_config('request.jwt.claims', '{\"role\":\"web_anon\"}', true)",
        &[],
    )
    .await
    .expect("switch role");
    let email = format!("{username}@example.com");
    let result = tx
        .execute(
            "select api.register(username => $1, password => $2, email => $3, invite_code => $4)",
            &[&username, &PASSWORD, &email, &code],
        )
        .await;
    let failed = result
        .err()
        .map(|e| e.code().map(|c| c.code().to_string()).unwrap_or_default());
    // Function statistics survive the failed statement (they are not
    // transactional), but the aborted transaction answers no query: read them
    // from the same session once it is rolled back.
    drop(tx);
    let calls: i64 = db
        .query_one(
            "select coalesce(sum(calls), 0)::int8 from pg_stat_xact_user_functions \
             where schemaname = 'extensions' and funcname = 'crypt'",
            &[],
        )
        .await
        .expect("function statistics")
        .get(0);
    (failed, calls)
}

#[actix_web::test]
async fn a_bad_invite_costs_no_password_hash() {
    // Regression (issue 11): register hashed the password before it looked at
    // the invite, so every made-up code cost the server a bcrypt.
    let ctx = setup().await;
    let app = ctx.app().await;
    let used = invite(&ctx, 1, "1 day").await;
    register_with(&app, "first", &used, 200).await;
    let expired = invite(&ctx, 1, "1 day").await;
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.invites set expires_at = now() - interval '1 second' where code = $1::text::uuid",
            &[&expired],
        )
        .await
        .expect("expire invite");
    for code in [
        "00000000-0000-4000-8000-000000000000",
        "not-a-uuid",
        used.as_str(),
        expired.as_str(),
    ] {
        let (failed, hashes) = register_counting_hashes(&ctx, "second", code).await;
        assert_eq!(failed.as_deref(), Some("PT403"), "{code}");
        assert_eq!(hashes, 0, "{code}: no bcrypt for an invalid invite");
    }
    // The counting sees the hash of a good one.
    let good = invite(&ctx, 1, "1 day").await;
    let (failed, hashes) = register_counting_hashes(&ctx, "second", &good).await;
    assert_eq!(failed, None);
    assert_eq!(hashes, 1);
}

#[actix_web::test]
async fn a_bad_invite_answers_long_before_a_hash_could_finish() {
    // The same over HTTP, at a cost where one bcrypt takes about half a second:
    // a register that hashed before refusing the invite could not be fast.
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .execute("update auth.settings set bcrypt_cost = 13", &[])
        .await
        .expect("cost 13");
    let app = ctx.app().await;
    let good = invite(&ctx, 1, "1 day").await;
    let start = std::time::Instant::now();
    register_with(&app, "first", &good, 200).await;
    let hashed = start.elapsed();
    for code in ["00000000-0000-4000-8000-000000000000".to_string(), good] {
        let start = std::time::Instant::now();
        register_with(&app, "second", &code, 403).await;
        let refused = start.elapsed();
        assert!(
            refused * 5 < hashed,
            "{code}: refused in {refused:?}, a registration with its hash took {hashed:?}"
        );
    }
}
