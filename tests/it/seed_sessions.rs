// Sessions (issue 15.1-2): tokens carry sid and gen, logout / logout_all / change_password, user changes end sessions, ended sessions are refused, refresh rotation with reuse detection, and the NOTIFY and pgrpc.ended_sessions() contracts.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{
    claims, int, listen, next_end, register, user_claims, user_id, PASSWORD, ROUTES,
};

fn login(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

fn token_body(token: &str) -> String {
    json!({ "token": token }).to_string()
}

/// Sign `username` in (identify) and return the token of the new session.
async fn sign_in<S, B>(app: &S, username: &str, password: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = send(app, post("/rpc/identify", &login(username, password))).await;
    assert_eq!(r.status, 200, "sign in {username}: {}", r.body);
    token_of(&r.json()["token"])
}

fn token_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a token: {v}"))
        .to_string()
}

fn sid(token: &str) -> String {
    claims(&Value::from(token))["sid"]
        .as_str()
        .expect("sid")
        .to_string()
}

/// The session's end as the database has it: (ended, end_reason).
async fn ended(ctx: &Ctx, sid: &str) -> (bool, Option<String>) {
    let row = ctx
        .db
        .admin()
        .await
        .query_one(
            "select ended_at is not null, end_reason from auth.sessions where id = $1::text::uuid",
            &[&sid],
        )
        .await
        .expect("the session exists");
    (row.get(0), row.get(1))
}

/// Every way a seed function takes a token, each answered for `token`:
/// (what, status, message).
async fn uses<S, B>(app: &S, token: &str) -> Vec<(&'static str, u16, String)>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut out = Vec::new();
    for (what, req) in [
        ("identify", bearer(post("/rpc/identify", ""), token)),
        ("me", bearer(get("/rpc/me"), token)),
        (
            "refresh_token",
            post("/auth/refresh_token/", &token_body(token)),
        ),
        (
            "verify_token",
            post("/auth/verify_token/", &token_body(token)),
        ),
    ] {
        let r = send(app, req).await;
        let message = if r.status == 200 {
            String::new()
        } else {
            r.json()["message"].as_str().unwrap_or_default().to_string()
        };
        out.push((what, r.status, message));
    }
    out
}

/// Assert that every way of using `token` is refused as an ended session:
/// 401 where the token is the caller's credential, 400 where it is an
/// argument (the token-auth seed's "400 with the reason").
async fn assert_refused<S, B>(app: &S, token: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let got = uses(app, token).await;
    let want: Vec<(&str, u16, String)> = [
        ("identify", 401),
        ("me", 401),
        ("refresh_token", 400),
        ("verify_token", 400),
    ]
    .into_iter()
    .map(|(w, s)| (w, s, "session has ended".to_string()))
    .collect();
    assert_eq!(got, want);
}

async fn assert_accepted<S, B>(app: &S, token: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    // verify and me only: identify and refresh_token would rotate the session.
    let r = send(app, bearer(get("/rpc/me"), token)).await;
    assert_eq!(r.status, 200, "me: {}", r.body);
    let r = send(app, post("/auth/verify_token/", &token_body(token))).await;
    assert_eq!(r.status, 200, "verify: {}", r.body);
}

#[actix_web::test]
async fn every_sign_in_starts_a_session_that_its_tokens_name() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let registered = register(&ctx, &app, "alice").await;
    let identified = sign_in(&app, "alice", PASSWORD).await;
    let r = send(&app, post("/auth/access_token/", &login("alice", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let access = token_of(&r.json()["access_token"]);
    let id = user_id(&ctx, "alice").await;
    let mut sids = Vec::new();
    for token in [&registered, &identified, &access] {
        let c = claims(&Value::from(token.as_str()));
        let sid = c["sid"].as_str().expect("sid").to_string();
        assert_eq!(sid.len(), 36, "a uuid: {sid}");
        assert_eq!(c["gen"], 0, "a new session's first generation");
        let row = ctx
            .db
            .admin()
            .await
            .query_one(
                "select user_id, floor(extract(epoch from created_at))::int8, \
                        floor(extract(epoch from tokens_expire_at))::int8, ended_at is null \
                 from auth.sessions where id = $1::text::uuid",
                &[&sid],
            )
            .await
            .expect("a session row");
        assert_eq!(row.get::<_, i64>(0), id);
        assert_eq!(
            row.get::<_, i64>(1),
            int(&c, "orig_iat"),
            "orig_iat is its start"
        );
        assert_eq!(
            row.get::<_, i64>(2),
            int(&c, "exp"),
            "the latest exp of its tokens"
        );
        assert!(row.get::<_, bool>(3), "live");
        sids.push(sid);
    }
    sids.sort();
    sids.dedup();
    assert_eq!(sids.len(), 3, "one session per sign-in");
}

#[actix_web::test]
async fn logout_ends_the_callers_session_and_no_other() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let laptop = sign_in(&app, "alice", PASSWORD).await;
    let phone = sign_in(&app, "alice", PASSWORD).await;
    let r = send(&app, bearer(post("/rpc/logout", ""), &laptop)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        ended(&ctx, &sid(&laptop)).await,
        (true, Some("logout".into()))
    );
    assert_refused(&app, &laptop).await;
    // Logging out again: the token is dead, and says so.
    let r = send(&app, bearer(post("/rpc/logout", ""), &laptop)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "session has ended");
    // The other session lives on.
    assert_accepted(&app, &phone).await;
    // Signing in again with credentials is always possible, whatever token
    // comes along.
    let r = send(
        &app,
        bearer(post("/rpc/identify", &login("alice", PASSWORD)), &laptop),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Anonymous: no session to end.
    let r = send(&app, post("/rpc/logout", "")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // A token outside any session (`pgrpc token`): nothing to end.
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let bare = ctx.token(user_claims(id, "alice", t, t + 3600, t));
    let r = send(&app, bearer(post("/rpc/logout", ""), &bare)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "token has no session");
}

#[actix_web::test]
async fn logout_all_ends_every_session_of_the_user() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    register(&ctx, &app, "bob").await;
    let alice: Vec<String> = join_all((0..3).map(|_| sign_in(&app, "alice", PASSWORD))).await;
    let bob = sign_in(&app, "bob", PASSWORD).await;
    let r = send(&app, bearer(post("/rpc/logout_all", ""), &alice[0])).await;
    assert_eq!(r.status, 204, "{}", r.body);
    for token in &alice {
        assert_eq!(
            ended(&ctx, &sid(token)).await,
            (true, Some("logout_all".into()))
        );
        assert_refused(&app, token).await;
    }
    assert_accepted(&app, &bob).await;
    assert_eq!(
        ctx.count(
            "select count(*) from auth.sessions s \
             where s.user_id = (select u.id from auth.users u where u.username = 'alice') \
               and s.ended_at is null"
        )
        .await,
        0,
        "the one from register too"
    );
}

#[actix_web::test]
async fn change_password_answers_a_new_session_and_ends_all_others() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let registered = register(&ctx, &app, "alice").await;
    let current = sign_in(&app, "alice", PASSWORD).await;
    let body = json!({"old_password": PASSWORD, "new_password": "a new secret"}).to_string();
    let r = send(&app, bearer(post("/rpc/change_password", &body), &current)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = token_of(&r.json()["token"]);
    let c = claims(&Value::from(fresh.as_str()));
    assert_ne!(
        c["sid"].as_str(),
        Some(sid(&current).as_str()),
        "a new session"
    );
    assert_eq!(c["username"], "alice");
    assert_eq!(int(&c, "exp") - int(&c, "iat"), 24 * 3600);
    for token in [&registered, &current] {
        assert_eq!(
            ended(&ctx, &sid(token)).await,
            (true, Some("password_changed".into()))
        );
        assert_refused(&app, token).await;
    }
    assert_accepted(&app, &fresh).await;
    // The new password is the one now.
    let r = send(&app, post("/rpc/identify", &login("alice", PASSWORD))).await;
    assert_eq!(r.status, 401, "{}", r.body);
    sign_in(&app, "alice", "a new secret").await;
}

#[actix_web::test]
async fn change_password_refuses_a_wrong_old_password_and_counts_it() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let change = |old: &str, new: &str| {
        bearer(
            post(
                "/rpc/change_password",
                &json!({"old_password": old, "new_password": new}).to_string(),
            ),
            &token,
        )
    };
    let r = send(&app, change("wrong password", "a new secret")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code(), "PT403");
    assert_eq!(r.json()["message"], "old_password is wrong");
    // Counted like a failed sign-in (and committed), so a stolen token cannot
    // guess the password without limit: four more lock it.
    assert_eq!(
        ctx.count("select sum(failures)::int8 from auth.login_failures")
            .await,
        1
    );
    for _ in 0..4 {
        send(&app, change("wrong password", "a new secret")).await;
    }
    let r = send(&app, change(PASSWORD, "a new secret")).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // Nothing changed meanwhile: the session lives, the password is the old one.
    assert_eq!(ended(&ctx, &sid(&token)).await, (false, None));
    ctx.db
        .admin()
        .await
        .batch_execute("delete from auth.login_failures")
        .await
        .expect("unlock");
    sign_in(&app, "alice", PASSWORD).await;

    for (old, new, message) in [
        (PASSWORD, "short", "new_password must be 8 to 72 bytes long"),
        (PASSWORD, "", "new_password is required"),
        ("", "a new secret", "old_password is required"),
    ] {
        let r = send(&app, change(old, new)).await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.json()["message"], message);
    }
    let r = send(
        &app,
        post(
            "/rpc/change_password",
            r#"{"old_password": "x", "new_password": "y"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 401, "anonymous: {}", r.body);
}

#[actix_web::test]
async fn disabling_a_user_changing_its_role_or_password_or_deleting_it_ends_its_sessions() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    for name in ["disabled", "promoted", "reset", "deleted", "bystander"] {
        register(&ctx, &app, name).await;
    }
    let mut tokens = Vec::new();
    for name in ["disabled", "promoted", "reset", "deleted", "bystander"] {
        tokens.push(sign_in(&app, name, PASSWORD).await);
    }
    if crate::citus::enabled() {
        // On Citus the triggers on auth.users that end the sessions cannot
        // exist (migration V0015, sql/citus/sessions_end.sql): the DBA ends
        // them in the same transaction, as README "Citus" says, and computes
        // the hash before the UPDATE (Citus runs no volatile function in an
        // UPDATE of a distributed table). This checks that recipe, not the
        // triggers.
        ctx.db
            .admin()
            .await
            .batch_execute(
                "begin; \
                 do $$ declare v_id bigint; begin select id into v_id from auth.users where username = 'disabled'; perform auth.end_user_sessions(v_id, 'user_disabled'); end $$; \
                 update auth.users set disabled_at = now() where username = 'disabled'; \
                 do $$ declare v_id bigint; begin select id into v_id from auth.users where username = 'promoted'; perform auth.end_user_sessions(v_id, 'role_changed'); end $$; \
                 update auth.users set role = 'app_admin' where username = 'promoted'; \
                 do $$ declare v_id bigint; begin select id into v_id from auth.users where username = 'reset'; perform auth.end_user_sessions(v_id, 'password_changed'); end $$; \
                 update auth.users set password_hash = '$2a$04$0123456789012345678901uQ9f6Xe9pN1cI8P0V6yZ5oYt1nJmG2W' \
                   where username = 'reset'; \
                 do $$ declare v_id bigint; begin select id into v_id from auth.users where username = 'deleted'; perform auth.end_user_sessions(v_id, 'user_deleted'); end $$; \
                 delete from auth.users where username = 'deleted'; \
                 commit",
            )
            .await
            .expect("a DBA's changes, the Citus way");
    } else {
        ctx.db
            .admin()
            .await
            .batch_execute(
                "update auth.users set disabled_at = now() where username = 'disabled'; \
                 update auth.users set role = 'app_admin' where username = 'promoted'; \
                 update auth.users set password_hash = extensions.crypt('another one', extensions.gen_salt('bf', 4)) \
                   where username = 'reset'; \
                 delete from auth.users where username = 'deleted'",
            )
            .await
            .expect("a DBA's changes");
    }
    for (token, reason) in tokens.iter().zip([
        "user_disabled",
        "role_changed",
        "password_changed",
        "user_deleted",
    ]) {
        assert_eq!(ended(&ctx, &sid(token)).await, (true, Some(reason.into())));
    }
    // Refused: a disabled or deleted user is told so first (the user, then
    // the session); the others are told the session ended.
    let r = send(&app, bearer(get("/rpc/me"), &tokens[0])).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = send(&app, bearer(post("/rpc/identify", ""), &tokens[0])).await;
    assert_eq!(r.json()["message"], "user is disabled");
    assert_refused(&app, &tokens[1]).await;
    assert_refused(&app, &tokens[2]).await;
    let r = send(&app, bearer(post("/rpc/identify", ""), &tokens[3])).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "user no longer exists");
    assert_accepted(&app, &tokens[4]).await;

    // Other changes of a user row do not end anything.
    ctx.db
        .admin()
        .await
        .batch_execute("update auth.users set email = 'b@example.com' where username = 'bystander'")
        .await
        .expect("update email");
    assert_accepted(&app, &tokens[4]).await;
}

#[actix_web::test]
async fn create_invite_refuses_an_admin_token_of_an_ended_session() {
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "root").await;
    ctx.db
        .admin()
        .await
        .batch_execute("update auth.users set role = 'app_admin' where username = 'root'")
        .await
        .expect("promote");
    let admin = sign_in(&app, "root", PASSWORD).await;
    assert_eq!(claims(&Value::from(admin.as_str()))["role"], "app_admin");
    let r = send(&app, bearer(post("/rpc/create_invite", "{}"), &admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(&app, bearer(post("/rpc/logout", ""), &admin)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = send(&app, bearer(post("/rpc/create_invite", "{}"), &admin)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "session has ended");
    assert_eq!(ctx.count("select count(*) from auth.invites").await, 2);
}

#[actix_web::test]
async fn refresh_retires_the_token_and_reusing_it_ends_the_session() {
    let ctx = setup_with(ROUTES).await;
    // No grace: a retired token presented again is reuse at once.
    ctx.db
        .admin()
        .await
        .batch_execute("update auth.settings set refresh_reuse_grace = '0'")
        .await
        .expect("no grace");
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let first = sign_in(&app, "alice", PASSWORD).await;
    let refresh = |token: &str| post("/auth/refresh_token/", &token_body(token));

    let r = send(&app, refresh(&first)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = token_of(&r.json()["token"]);
    let c = claims(&Value::from(second.as_str()));
    assert_eq!(
        c["sid"].as_str(),
        Some(sid(&first).as_str()),
        "the same session"
    );
    assert_eq!(c["gen"], 1);
    let r = send(&app, refresh(&second)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let third = token_of(&r.json()["token"]);
    assert_eq!(claims(&Value::from(third.as_str()))["gen"], 2);
    // A retired token is still a valid token until it expires; it only
    // cannot refresh again.
    assert_accepted(&app, &first).await;

    // The first token again: taken as stolen, the whole session ends.
    let r = send(&app, refresh(&first)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PT400");
    assert_eq!(r.json()["message"], "token has already been refreshed");
    assert_eq!(
        ended(&ctx, &sid(&first)).await,
        (true, Some("token_reused".into())),
        "committed although the answer is an error"
    );
    assert_refused(&app, &third).await;
}

#[actix_web::test]
async fn extending_with_identify_rotates_like_refresh() {
    let ctx = setup_with(ROUTES).await;
    ctx.db
        .admin()
        .await
        .batch_execute("update auth.settings set refresh_reuse_grace = '0'")
        .await
        .expect("no grace");
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let first = sign_in(&app, "alice", PASSWORD).await;
    let r = send(&app, bearer(post("/rpc/identify", ""), &first)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = token_of(&r.json()["token"]);
    assert_eq!(claims(&Value::from(second.as_str()))["gen"], 1);
    // Otherwise a stolen token could be kept alive through identify.
    let r = send(&app, bearer(post("/rpc/identify", ""), &first)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "token has already been refreshed");
    assert_refused(&app, &second).await;
}

#[actix_web::test]
async fn two_tabs_refreshing_at_once_stay_signed_in() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let token = sign_in(&app, "alice", PASSWORD).await;
    // Five tabs refresh the same token at once: within refresh_reuse_grace
    // (10 s by default) each gets a token of the new generation.
    let results =
        join_all((0..5).map(|_| send(&app, post("/auth/refresh_token/", &token_body(&token)))))
            .await;
    let mut fresh = Vec::new();
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.body);
        let t = token_of(&r.json()["token"]);
        assert_eq!(claims(&Value::from(t.as_str()))["gen"], 1);
        fresh.push(t);
    }
    assert_eq!(ended(&ctx, &sid(&token)).await, (false, None));
    // Any of them refreshes on.
    let r = send(&app, post("/auth/refresh_token/", &token_body(&fresh[3]))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r.json()["token"])["gen"], 2);
    // Two generations back is reuse even within the grace interval.
    let r = send(&app, post("/auth/refresh_token/", &token_body(&token))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        ended(&ctx, &sid(&token)).await,
        (true, Some("token_reused".into()))
    );
}

#[actix_web::test]
async fn a_token_outside_any_session_verifies_but_cannot_be_extended_or_refreshed() {
    // Tokens from `pgrpc token`, or issued before sessions existed: valid
    // until they expire, but without a session there is nothing to rotate or
    // end, so they cannot be made to live longer.
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let id = user_id(&ctx, "alice").await;
    let t = now();
    let bare = ctx.token(user_claims(id, "alice", t, t + 3600, t));
    assert_accepted(&app, &bare).await;
    let r = send(&app, bearer(post("/rpc/identify", ""), &bare)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "token has no session");
    let r = send(&app, post("/auth/refresh_token/", &token_body(&bare))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "token has no session");
    // A session id that names no session (another database's, or one long
    // cleaned up) is an ended session.
    let mut c = user_claims(id, "alice", t, t + 3600, t);
    c["sid"] = json!("00000000-0000-4000-8000-000000000000");
    c["gen"] = json!(0);
    assert_refused(&app, &ctx.token(c)).await;
}

#[actix_web::test]
async fn every_session_end_is_announced_on_channel_pgrpc() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let (_listener, mut rx) = listen(&ctx).await;
    let registered = register(&ctx, &app, "alice").await;
    let a = sign_in(&app, "alice", PASSWORD).await;
    let b = sign_in(&app, "alice", PASSWORD).await;
    let exp = |t: &str| int(&claims(&Value::from(t)), "exp");

    // logout: 'session ended <sid> <exp>', exp the last exp of its tokens.
    let r = send(&app, bearer(post("/rpc/logout", ""), &a)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        next_end(&mut rx).await,
        format!("session ended {} {}", sid(&a), exp(&a))
    );

    // A refreshed session's exp is that of its newest token.
    let r = send(&app, post("/auth/refresh_token/", &token_body(&b))).await;
    let b2 = token_of(&r.json()["token"]);
    assert!(exp(&b2) > exp(&b), "access tokens last 5 days");
    // A DBA's UPDATE is announced like any other end (on Citus, where no
    // trigger can announce it, the DBA calls auth.end_session).
    ctx.db
        .admin()
        .await
        .execute(
            if crate::citus::enabled() {
                "select auth.end_session($1::text::uuid, 'revoked by the DBA')"
            } else {
                "update auth.sessions set ended_at = now(), end_reason = 'revoked by the DBA' \
                 where id = $1::text::uuid"
            },
            &[&sid(&b)],
        )
        .await
        .expect("end it");
    assert_eq!(
        next_end(&mut rx).await,
        format!("session ended {} {}", sid(&b), exp(&b2))
    );

    // A failed request that would have ended one announces nothing: the
    // notification goes out at commit.
    let c = sign_in(&app, "alice", PASSWORD).await;
    let mut db = ctx.db.admin().await;
    let tx = db.transaction().await.expect("begin");
    tx.execute(
        if crate::citus::enabled() {
            "select auth.end_session($1::text::uuid, 'x')"
        } else {
            "update auth.sessions set ended_at = now(), end_reason = 'x' where id = $1::text::uuid"
        },
        &[&sid(&c)],
    )
    .await
    .expect("end, then roll back");
    drop(tx);
    // logout_all: one per live session (register's and c; a and b have ended).
    let r = send(&app, bearer(post("/rpc/logout_all", ""), &c)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let mut got = vec![next_end(&mut rx).await, next_end(&mut rx).await];
    got.sort();
    let mut want = vec![
        format!("session ended {} {}", sid(&c), exp(&c)),
        format!("session ended {} {}", sid(&registered), exp(&registered)),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), next_end(&mut rx))
            .await
            .is_err(),
        "nothing more"
    );
}

#[actix_web::test]
async fn the_gateway_loads_ended_sessions_with_pgrpc_ended_sessions() {
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let live = sign_in(&app, "alice", PASSWORD).await;
    let ended_now = sign_in(&app, "alice", PASSWORD).await;
    let ended_long_ago = sign_in(&app, "alice", PASSWORD).await;
    for t in [&ended_now, &ended_long_ago] {
        let r = send(&app, bearer(post("/rpc/logout", ""), t)).await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    // The last token of this one expired 20 seconds ago.
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.sessions set tokens_expire_at = now() - interval '20 seconds' \
             where id = $1::text::uuid",
            &[&sid(&ended_long_ago)],
        )
        .await
        .expect("age it");

    // As the gateway will call it: as authenticator, before any role switch.
    let gateway = pgrpc::db::connect(&ctx.db.config("authenticator"))
        .await
        .expect("connect as authenticator");
    let rows = |leeway: i32| {
        let gateway = &gateway;
        async move {
            let mut v: Vec<(String, i64)> = gateway
                .query(
                    "select sid::text, exp from pgrpc.ended_sessions($1)",
                    &[&leeway],
                )
                .await
                .expect("ended_sessions")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            v.sort();
            v
        }
    };
    let exp = int(&claims(&Value::from(ended_now.as_str())), "exp");
    assert_eq!(
        rows(0).await,
        [(sid(&ended_now), exp)],
        "live ones are not listed"
    );
    // With the gateway's leeway, one whose tokens it would still accept is.
    let with_leeway = rows(30).await;
    assert_eq!(with_leeway.len(), 2, "{with_leeway:?}");
    assert!(with_leeway.iter().any(|(s, _)| *s == sid(&ended_long_ago)));
    assert!(!with_leeway.iter().any(|(s, _)| *s == sid(&live)));
    // The default leeway is 0.
    let n: i64 = gateway
        .query_one("select count(*) from pgrpc.ended_sessions()", &[])
        .await
        .expect("default")
        .get(0);
    assert_eq!(n, 1);
}

#[actix_web::test]
async fn an_ended_session_stays_ended_and_a_live_one_is_not_deleted() {
    // On Citus the guard is a trigger on the shards (migration V0018).
    let ctx = setup_with(ROUTES).await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let db = ctx.db.admin().await;
    let s = sid(&token);
    // Deleting a row would let gateways that reload the list accept its tokens.
    let e = db
        .execute("delete from auth.sessions where id = $1::text::uuid", &[&s])
        .await
        .expect_err("a live session's row stays");
    assert!(
        e.as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default()
            .contains("cannot be deleted"),
        "{e:?}"
    );
    let r = send(&app, bearer(post("/rpc/logout", ""), &token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let e = db
        .execute(
            "update auth.sessions set ended_at = null, end_reason = null where id = $1::text::uuid",
            &[&s],
        )
        .await
        .expect_err("no resuming");
    assert!(format!("{e:?}").contains("cannot be resumed"), "{e:?}");
    assert_refused(&app, &token).await;
}

#[actix_web::test]
async fn sessions_whose_tokens_long_expired_are_cleaned_up() {
    if crate::citus::enabled() {
        // On Citus a delegated sign-in may touch only its user's shard; it
        // sweeps its own user's expired sessions: citus_seed checks that.
        eprintln!("skipped on Citus: sign-ins sweep their user's sessions only (citus_seed::a_delegated_sign_in_starts_its_session_on_the_shard)");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    let old = register(&ctx, &app, "alice").await;
    let recent = sign_in(&app, "alice", PASSWORD).await;
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.sessions set tokens_expire_at = now() - interval '2 days' where id = $1::text::uuid",
            &[&sid(&old)],
        )
        .await
        .expect("age it");
    sign_in(&app, "alice", PASSWORD).await;
    let left: Vec<String> = ctx
        .db
        .admin()
        .await
        .query("select id::text from auth.sessions", &[])
        .await
        .expect("sessions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&sid(&old)));
    assert!(left.contains(&sid(&recent)));
}

#[actix_web::test]
async fn refresh_reuse_grace_defaults_to_10_seconds() {
    let ctx = setup().await;
    let grace: String = ctx
        .db
        .admin()
        .await
        .query_one("select refresh_reuse_grace::text from auth.settings", &[])
        .await
        .expect("settings")
        .get(0);
    assert_eq!(grace, "00:00:10");
}
