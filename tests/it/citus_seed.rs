// Citus (PGRPC_TEST_CITUS=1): the seed API's calls run on the worker holding the user's shard, with the login's rows and the sessions there; skipped otherwise.

use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{claims, int, listen, next_end, register, PASSWORD};

fn login(username: &str, password: &str) -> String {
    json!({"username": username, "password": password}).to_string()
}

/// auth.login's first statement, the look-up of the username's lock for the
/// client's address that every attempt makes (Citus sql/citus/login.sql).
const LOGIN_LOOKUP: &str =
    "select f.locked_until from auth.login_failures f where f.username operator(extensions.=)%";

/// The look-up of a session by its user's name and id that the token calls
/// make (sql/citus/sessions.sql, auth.live_session_on_shard).
const SESSION_LOOKUP: &str =
    "%from auth.sessions s where s.username operator(extensions.=) p_key and s.id = p_sid%";

/// How often the coordinator and each worker, in that order, ran statements
/// matching `like` in this test's database.
async fn by_node(ctx: &Ctx, like: &str) -> Vec<i64> {
    let mut out = vec![crate::citus::statement_calls(ctx, cluster(), like).await];
    for w in workers() {
        out.push(crate::citus::statement_calls(ctx, w, like).await);
    }
    out
}

/// pg_stat_statements in this test's database (Citus creates it on the
/// workers too).
async fn track_statements(ctx: &Ctx) {
    ctx.db
        .admin()
        .await
        .batch_execute("create extension if not exists pg_stat_statements")
        .await
        .expect("pg_stat_statements");
}

/// The login look-ups on the coordinator and on each worker, in that order.
async fn lookups(ctx: &Ctx) -> Vec<i64> {
    by_node(ctx, LOGIN_LOOKUP).await
}

/// The index in `lookups` of the worker holding `username`'s shard of
/// auth.users, as Citus's metadata says.
async fn holder(ctx: &Ctx, username: &str) -> usize {
    let port = crate::citus::shard_port(ctx, "auth.users", username).await;
    1 + workers()
        .iter()
        .position(|w| i32::from(w.port()) == port)
        .expect("a worker holds it")
}

async fn fast_settings(ctx: &Ctx, set: &str) {
    ctx.db
        .admin()
        .await
        .batch_execute(&format!("update auth.settings set {set}"))
        .await
        .expect("settings");
}

#[actix_web::test]
async fn identify_with_credentials_runs_on_the_worker_holding_the_user() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    track_statements(&ctx).await;
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    for name in names {
        register(&ctx, &app, name).await;
    }
    let mut holders = std::collections::BTreeSet::new();
    for name in names {
        let at = holder(&ctx, name).await;
        holders.insert(at);
        // Any case: citext puts every spelling on the same shard.
        for (spelling, password, status) in [
            (name.to_string(), PASSWORD, 200),
            (name.to_uppercase(), PASSWORD, 200),
            (name.to_string(), "wrong password", 401),
        ] {
            let before = lookups(&ctx).await;
            let r = send(&app, post("/rpc/identify", &login(&spelling, password))).await;
            assert_eq!(r.status, status, "{spelling}: {}", r.body);
            let after = lookups(&ctx).await;
            // The body ran on the holder, once, and nowhere else: the
            // coordinator only sent the call.
            for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                let want = if i == at { b + 1 } else { *b };
                assert_eq!(
                    *a, want,
                    "{spelling} {status}: node {i}: {before:?} -> {after:?}"
                );
            }
            if status == 200 {
                let c = claims(&r.json()["token"]);
                assert_eq!(c["username"], name, "the registered spelling");
                assert_eq!(c["gen"], 0);
            } else {
                assert_eq!(r.json()["code"], "PT401");
                assert_eq!(r.json()["message"], "invalid username or password");
            }
        }
    }
    // Six users are spread over both workers.
    assert_eq!(holders.len(), 2, "{holders:?}");

    // access_token likewise.
    let at = holder(&ctx, "alice").await;
    let before = lookups(&ctx).await;
    let r = send(&app, post("/rpc/access_token", &login("Alice", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["user"], "alice");
    let after = lookups(&ctx).await;
    assert_eq!(after[at], before[at] + 1, "{before:?} -> {after:?}");
    assert_eq!(after[0], before[0]);

    // Calls that leave the key out or null run on the coordinator (Citus
    // would hash a constant NULL and crash there), with the same answers.
    let r = send(&app, post("/rpc/identify", r#"{"password": "x"}"#)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = send(
        &app,
        post("/rpc/identify", r#"{"username": null, "password": "x"}"#),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = send(&app, post("/rpc/identify", "{}")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["message"], "no credentials");
}

/// The session look-ups on the coordinator and on each worker, in that order.
async fn session_lookups_by_node(ctx: &Ctx) -> Vec<i64> {
    by_node(ctx, SESSION_LOOKUP).await
}

/// The session (`sid` claim) of a token.
fn sid_of(token: &str) -> String {
    claims(&Value::from(token))["sid"]
        .as_str()
        .expect("sid")
        .to_string()
}

/// The token of a 200 answer, from field `field`.
fn token_in(r: &Resp, field: &str) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()[field].as_str().expect("a token").to_string()
}

#[actix_web::test]
async fn token_calls_run_on_the_worker_holding_the_user() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    track_statements(&ctx).await;
    let (_listener, mut rx) = listen(&ctx).await;
    // A retired token presented again is reuse at once (no grace).
    fast_settings(&ctx, "refresh_reuse_grace = '0'").await;
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    for name in names {
        register(&ctx, &app, name).await;
    }
    let mut holders = std::collections::BTreeSet::new();
    for name in names {
        let at = holder(&ctx, name).await;
        holders.insert(at);
        // Every call below ran its body on the holder and nowhere else: the
        // coordinator only sent the call.
        let on_holder = |what: &str, before: &[i64], after: &[i64]| {
            for (i, (b, a)) in before.iter().zip(after).enumerate() {
                if i == at {
                    assert!(
                        a > b,
                        "{name} {what}: not on the holder {i}: {before:?} -> {after:?}"
                    );
                } else {
                    assert_eq!(
                        a, b,
                        "{name} {what}: ran on node {i}: {before:?} -> {after:?}"
                    );
                }
            }
        };
        // Signed in with another spelling: the session is keyed by it, the
        // token's username claim is the registered one; both find the user.
        let r = send(
            &app,
            post("/rpc/identify", &login(&name.to_uppercase(), PASSWORD)),
        )
        .await;
        let token = token_in(&r, "token");

        let before = session_lookups_by_node(&ctx).await;
        let r = send(
            &app,
            post("/rpc/verify_token", &json!({ "token": token }).to_string()),
        )
        .await;
        assert_eq!(token_in(&r, "token"), token, "verify gives the token back");
        assert_eq!(r.json()["user"]["username"], name);
        on_holder(
            "verify_token",
            &before,
            &session_lookups_by_node(&ctx).await,
        );

        let before = session_lookups_by_node(&ctx).await;
        let r = send(&app, bearer(get("/rpc/me"), &token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["username"], name);
        on_holder("me", &before, &session_lookups_by_node(&ctx).await);

        let before = session_lookups_by_node(&ctx).await;
        let r = send(
            &app,
            post("/rpc/refresh_token", &json!({ "token": token }).to_string()),
        )
        .await;
        let refreshed = token_in(&r, "token");
        assert_eq!(claims(&Value::from(refreshed.as_str()))["gen"], 1);
        on_holder(
            "refresh_token",
            &before,
            &session_lookups_by_node(&ctx).await,
        );

        // A retired token presented again ends the session, on the worker,
        // and the end reaches the gateways' channel (relayed by the gateway).
        let before = session_lookups_by_node(&ctx).await;
        let r = send(
            &app,
            post("/rpc/refresh_token", &json!({ "token": token }).to_string()),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["message"], "token has already been refreshed");
        on_holder(
            "reused refresh_token",
            &before,
            &session_lookups_by_node(&ctx).await,
        );
        let sid = sid_of(&token);
        assert!(next_end(&mut rx)
            .await
            .starts_with(&format!("session ended {sid} ")));

        // change_password ends the user's other sessions (register's) and
        // starts one.
        let other = token_in(
            &send(&app, post("/rpc/identify", &login(name, PASSWORD))).await,
            "token",
        );
        let before = session_lookups_by_node(&ctx).await;
        let body = json!({"old_password": PASSWORD, "new_password": "another horse staple"});
        let r = send(
            &app,
            bearer(post("/rpc/change_password", &body.to_string()), &other),
        )
        .await;
        let changed = token_in(&r, "token");
        on_holder(
            "change_password",
            &before,
            &session_lookups_by_node(&ctx).await,
        );
        let mut ended = Vec::new();
        for _ in 0..2 {
            ended.push(next_end(&mut rx).await);
        }
        let other_sid = sid_of(&other);
        assert!(
            ended
                .iter()
                .any(|e| e.starts_with(&format!("session ended {other_sid} "))),
            "{ended:?}"
        );

        let before = session_lookups_by_node(&ctx).await;
        let r = send(&app, bearer(post("/rpc/logout", ""), &changed)).await;
        assert_eq!(r.status, 204, "{}", r.body);
        on_holder("logout", &before, &session_lookups_by_node(&ctx).await);
        let changed_sid = sid_of(&changed);
        assert!(next_end(&mut rx)
            .await
            .starts_with(&format!("session ended {changed_sid} ")));
        // Refused from now on.
        let r = send(&app, bearer(get("/rpc/me"), &changed)).await;
        assert_eq!(r.status, 401, "{}", r.body);

        let last = token_in(
            &send(
                &app,
                post("/rpc/identify", &login(name, "another horse staple")),
            )
            .await,
            "token",
        );
        let before = session_lookups_by_node(&ctx).await;
        let r = send(&app, bearer(post("/rpc/logout_all", ""), &last)).await;
        assert_eq!(r.status, 204, "{}", r.body);
        on_holder("logout_all", &before, &session_lookups_by_node(&ctx).await);
        let last_sid = sid_of(&last);
        assert!(next_end(&mut rx)
            .await
            .starts_with(&format!("session ended {last_sid} ")));
        assert_eq!(
            ctx.count(&format!(
                "select count(*) from auth.sessions where username = '{name}' and ended_at is null"
            ))
            .await,
            0
        );
    }
    // Six users are spread over both workers.
    assert_eq!(holders.len(), 2, "{holders:?}");

    // A token without a username claim (`pgrpc token`) runs on the
    // coordinator, by id, with the same answer.
    let id = crate::seed::user_id(&ctx, "alice").await;
    let t = now();
    let mut c = crate::seed::session_claims(&ctx, id, "alice", t, t + 600, t).await;
    c.as_object_mut().expect("claims").remove("username");
    let token = ctx.token(c);
    let before = session_lookups_by_node(&ctx).await;
    let r = send(&app, bearer(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "alice");
    assert_eq!(before, session_lookups_by_node(&ctx).await, "not keyed");
}

#[actix_web::test]
async fn lockout_on_the_shard_behaves_as_on_one_server() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    track_statements(&ctx).await;
    fast_settings(&ctx, "max_failed_logins = 3").await;
    let from = |ip: &str, body: String| {
        post("/rpc/identify", &body).peer_addr(format!("{ip}:40000").parse().expect("address"))
    };
    let at = holder(&ctx, "alice").await;
    let before = lookups(&ctx).await;
    for i in 0..3 {
        let r = send(&app, from("192.0.2.1", login("alice", "wrong"))).await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.body);
    }
    // Locked for that address, right password or not…
    let r = send(&app, from("192.0.2.1", login("ALICE", PASSWORD))).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["code"], "PT429");
    let retry: i64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((890..=900).contains(&retry), "{retry}");
    // …not for another one.
    let r = send(&app, from("192.0.2.2", login("alice", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = lookups(&ctx).await;
    assert_eq!(after[at], before[at] + 5, "{before:?} -> {after:?}");
    assert_eq!(after[0], before[0], "never on the coordinator");
    // The rows are the user's, on its shard: per address, and the account's
    // ceiling keyed by username (V0016).
    assert_eq!(
        ctx.count("select failures::int8 from auth.login_failures where username = 'alice' and source = '192.0.2.1'")
            .await,
        3
    );
    assert_eq!(
        ctx.count("select failures::int8 from auth.user_login_failures where username = 'alice'")
            .await,
        3
    );
}

#[actix_web::test]
async fn a_delegated_sign_in_starts_its_session_on_the_shard() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    let (_listener, mut rx) = listen(&ctx).await;
    register(&ctx, &app, "alice").await;
    let r = send(&app, post("/rpc/identify", &login("Alice", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().expect("token").to_string();
    let c = claims(&Value::from(token.as_str()));
    let sid = c["sid"].as_str().expect("sid").to_string();
    // On the shard, keyed by the username as given.
    let row = ctx
        .db
        .admin()
        .await
        .query_one(
            "select username::text, user_id, floor(extract(epoch from created_at))::int8,
                    floor(extract(epoch from tokens_expire_at))::int8
               from auth.sessions where id = $1::text::uuid",
            &[&sid],
        )
        .await
        .expect("a session on the shard");
    assert_eq!(row.get::<_, String>(0), "Alice");
    assert_eq!(
        row.get::<_, i64>(1).to_string(),
        c["sub"].as_str().expect("sub")
    );
    assert_eq!(row.get::<_, i64>(2), int(&c, "orig_iat"));
    assert_eq!(row.get::<_, i64>(3), int(&c, "exp"));
    assert_eq!(
        crate::citus::shard_port(&ctx, "auth.sessions", "alice").await,
        crate::citus::shard_port(&ctx, "auth.users", "alice").await,
        "co-located with the user"
    );
    // Live: a call that checks the session accepts it.
    let r = send(&app, bearer(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Logout ends it on the shard and the end is announced to the gateways,
    // which refuse the token from then on.
    let r = send(&app, bearer(post("/rpc/logout", ""), &token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        next_end(&mut rx).await,
        format!("session ended {sid} {}", int(&c, "exp"))
    );
    assert_eq!(
        ctx.count(&format!(
            "select count(*) from auth.sessions where id = '{sid}' and end_reason = 'logout'"
        ))
        .await,
        1
    );
    let r = send(&app, bearer(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // A sign-in sweeps its user's long-expired sessions, on the shard.
    let r = send(&app, post("/rpc/identify", &login("alice", PASSWORD))).await;
    let old = claims(&r.json()["token"])["sid"]
        .as_str()
        .expect("sid")
        .to_string();
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.sessions set tokens_expire_at = now() - interval '2 days'
              where username = 'alice' and id = $1::text::uuid",
            &[&old],
        )
        .await
        .expect("age it");
    let r = send(&app, post("/rpc/identify", &login("alice", PASSWORD))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let left: Vec<String> = ctx
        .db
        .admin()
        .await
        .query(
            "select id::text from auth.sessions where username = 'alice' and ended_at is null",
            &[],
        )
        .await
        .expect("starts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // register's and the newest sign-in's.
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&old));
}

#[actix_web::test]
async fn the_failure_bound_holds_per_shard() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    let shards = ctx
        .count("select count(*) from pg_dist_shard where logicalrelid = 'auth.login_failures'::regclass")
        .await;
    // A share of one row per shard.
    fast_settings(
        &ctx,
        &format!("max_login_failure_rows = {shards}, bcrypt_cost = 4"),
    )
    .await;
    // Each from an address of its own: one address would meet the shipped
    // rate limit (30 a minute) long before the bound.
    for i in 0..(2 * shards) {
        let from = format!("198.51.{}.{}:40000", 100 + i / 200, i % 200 + 1)
            .parse()
            .expect("socket address");
        let r = send(
            &app,
            post("/rpc/identify", &login(&format!("random{i}"), "x")).peer_addr(from),
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let fullest = ctx
        .count(
            "select coalesce(max(n), 0) from (
               select count(*) as n from auth.login_failures
                group by get_shard_id_for_distribution_column('auth.login_failures', username)) t",
        )
        .await;
    assert_eq!(fullest, 1, "no shard past its share");
    let total = ctx.count("select count(*) from auth.login_failures").await;
    assert!(total <= shards && total > 1, "{total} of {shards}");
}

#[actix_web::test]
async fn a_failed_sign_in_sweeps_its_own_shard() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.db.admin().await;
    let shard_of = |name: String| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "select get_shard_id_for_distribution_column('auth.login_failures', $1::text)",
                    &[&name],
                )
                .await
                .expect("shard")
                .get::<_, i64>(0)
        }
    };
    let mine = shard_of("someone".into()).await;
    // Stale rows, some on the shard of "someone", some elsewhere.
    let mut same = Vec::new();
    let mut other = Vec::new();
    for i in 0..400 {
        let name = format!("stale{i}");
        if shard_of(name.clone()).await == mine {
            if same.len() < 2 {
                same.push(name);
            }
        } else if other.len() < 2 {
            other.push(name);
        }
        if same.len() == 2 && other.len() == 2 {
            break;
        }
    }
    assert_eq!((same.len(), other.len()), (2, 2));
    for name in same.iter().chain(&other) {
        admin
            .execute(
                "insert into auth.login_failures (username, failures, last_failed_at, locked_until)
                 values ($1::text, 3, now() - interval '1 hour', null)",
                &[name],
            )
            .await
            .expect("arrange");
    }
    admin
        .execute(
            "insert into auth.login_failures (username, failures, last_failed_at, locked_until)
             values ('someone', 2, now() - interval '1 minute', null)",
            &[],
        )
        .await
        .expect("arrange");
    let r = send(&app, post("/rpc/identify", &login("someone", "wrong"))).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let left: Vec<String> = admin
        .query(
            "select username::text from auth.login_failures order by 1",
            &[],
        )
        .await
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Its own shard swept, the recent row counted on; other shards wait for
    // a failure of theirs.
    let mut want: Vec<String> = other.clone();
    want.push("someone".into());
    want.sort();
    assert_eq!(left, want);
    assert_eq!(
        ctx.count("select failures::int8 from auth.login_failures where username = 'someone'")
            .await,
        3
    );
}
