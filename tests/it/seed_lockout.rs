// Lock-out per client address with a per-account ceiling (issue 11.3): the owner signs in from elsewhere, many addresses stay bounded, answers stay uniform, the table stays bounded.
//
// Until the gateway sets request.client_ip (issue 11 part 2), two addresses
// are simulated in SQL exactly as the gateway will do it: one transaction per
// call, role and claims of web_anon, `set_config('request.client_ip', …,
// true)`, then commit, as the gateway commits a failed login.

use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{claims, register, PASSWORD};

/// What a sign-in answered: the status the function set (None: success) and
/// the error body and Retry-After it set.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    error: Option<Value>,
    retry_after: Option<i64>,
}

/// The settings the gateway sends before an anonymous call from client
/// address `ip`.
async fn gateway_settings(tx: &tokio_postgres::Transaction<'_>, ip: &str) {
    tx.execute(
        "select set_config('role', 'web_anon', true), \
                set_config('request.jwt.claims', '{\"role\":\"web_anon\"}', true), \
                set_config('request.client_ip', $1, true)",
        &[&ip],
    )
    .await
    .expect("the gateway's settings");
    if crate::citus::enabled() {
        // On Citus the gateway also sends the settings as SET LOCAL, the
        // form Citus replays on the worker a delegated identify runs on.
        for sql in pgrpc::pipeline::citus::set_local_statements(
            "{\"role\":\"web_anon\"}",
            "POST",
            "/rpc/identify",
            "{}",
            "{}",
            ip,
            "\"api\"",
        ) {
            tx.batch_execute(&sql).await.expect("SET LOCAL");
        }
    }
}

/// `api.identify(username, password)` from client address `ip` ("" for none).
async fn identify_from(ctx: &Ctx, ip: &str, username: &str, password: &str) -> Answer {
    let mut db = ctx.db.admin().await;
    let tx = db.transaction().await.expect("begin");
    gateway_settings(&tx, ip).await;
    // The response settings are read in the call's own statement, as the
    // gateway reads them: on Citus the call (and they) run on the worker.
    let row = tx
        .query_one(
            "select r.token is not null, \
                    nullif(current_setting('response.status', true), '')::int, \
                    nullif(current_setting('response.error', true), '')::json, \
                    nullif(current_setting('response.headers', true), '')::json \
               from api.identify(username => $1, password => $2) r",
            &[&username, &password],
        )
        .await
        .expect("identify never raises for a failed login");
    tx.commit().await.expect("commit, as the gateway does");
    let signed_in: bool = row.get(0);
    let status: Option<i32> = row.get(1);
    let error: Option<Value> = row.get(2);
    let headers: Option<Value> = row.get(3);
    assert_eq!(signed_in, status.is_none(), "a token xor an error status");
    let retry_after = headers.and_then(|h| {
        h.as_array()?
            .iter()
            .find_map(|o| o.get("Retry-After")?.as_str()?.parse().ok())
    });
    Answer {
        status: status.map(|s| s as u16),
        error,
        retry_after,
    }
}

/// Fail `n` times from `ip`, each answered 401.
async fn fail_from(ctx: &Ctx, ip: &str, username: &str, n: usize) {
    for i in 0..n {
        let a = identify_from(ctx, ip, username, "wrong password").await;
        assert_eq!(
            a.status,
            Some(401),
            "{username} from {ip}, failure {i}: {a:?}"
        );
    }
}

async fn settings(ctx: &Ctx, sql: &str) {
    ctx.db
        .admin()
        .await
        .batch_execute(&format!("update auth.settings set {sql}"))
        .await
        .expect("settings");
}

async fn add_user(ctx: &Ctx, username: &str) {
    let app = ctx.app().await;
    register(ctx, &app, username).await;
}

const A: &str = "203.0.113.7";
const B: &str = "198.51.100.20";

#[actix_web::test]
async fn the_owner_signs_in_from_another_address_while_one_is_locked() {
    let ctx = setup().await;
    add_user(&ctx, "alice").await;
    fail_from(&ctx, A, "alice", 5).await;
    // Locked from A: even the right password.
    let a = identify_from(&ctx, A, "alice", PASSWORD).await;
    assert_eq!(a.status, Some(429), "{a:?}");
    assert!((890..=900).contains(&a.retry_after.expect("Retry-After")));

    // From B, the owner signs in at once.
    let b = identify_from(&ctx, B, "alice", PASSWORD).await;
    assert_eq!(b.status, None, "{b:?}");
    // ... which does not unlock A,
    let a = identify_from(&ctx, A, "alice", PASSWORD).await;
    assert_eq!(a.status, Some(429), "{a:?}");
    // and B has its own count: four failures there do not lock it.
    fail_from(&ctx, B, "alice", 4).await;
    let b = identify_from(&ctx, B, "alice", PASSWORD).await;
    assert_eq!(b.status, None, "{b:?}");

    // Without an address the gateway's attempts are the one source 'unknown'.
    fail_from(&ctx, "", "alice", 5).await;
    assert_eq!(
        identify_from(&ctx, "", "alice", PASSWORD).await.status,
        Some(429)
    );
    assert_eq!(identify_from(&ctx, B, "alice", PASSWORD).await.status, None);
}

#[actix_web::test]
async fn answers_are_the_same_whether_or_not_the_account_exists() {
    let ctx = setup().await;
    add_user(&ctx, "alice").await;
    let unknown = identify_from(&ctx, A, "ghost", "wrong password").await;
    let wrong = identify_from(&ctx, A, "alice", "wrong password").await;
    assert_eq!(unknown.status, Some(401));
    assert_eq!(unknown.error, wrong.error);
    assert_eq!(
        unknown.error,
        Some(
            json!({"code": "PT401", "message": "invalid username or password", "details": null, "hint": null})
        )
    );
    fail_from(&ctx, A, "ghost", 4).await;
    fail_from(&ctx, A, "alice", 4).await;
    // Both locked from A after five, with one body; and both free from B.
    let ghost = identify_from(&ctx, A, "ghost", PASSWORD).await;
    let alice = identify_from(&ctx, A, "alice", PASSWORD).await;
    assert_eq!(ghost.status, Some(429), "{ghost:?}");
    assert_eq!(alice.status, Some(429), "{alice:?}");
    let strip = |e: &Option<Value>| {
        let mut e = e.clone().expect("an error body");
        e["details"] = Value::Null; // "locked for N more seconds": N may differ by one
        e
    };
    assert_eq!(strip(&ghost.error), strip(&alice.error));
    assert_eq!(ghost.error.expect("body")["code"], "PT429");
    assert_eq!(
        identify_from(&ctx, B, "ghost", "wrong password")
            .await
            .status,
        Some(401)
    );
}

#[actix_web::test]
async fn a_ceiling_per_account_bounds_guessing_from_many_addresses() {
    let ctx = setup().await;
    settings(
        &ctx,
        "max_failed_logins_per_user = 12, failure_window_per_user = '1 hour'",
    )
    .await;
    add_user(&ctx, "alice").await;
    // Four failures from each of three addresses: no address is locked ...
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        fail_from(&ctx, ip, "alice", 4).await;
    }
    // ... but the account has had its twelve: locked for everyone, the
    // owner included, until the window ends.
    let a = identify_from(&ctx, B, "alice", PASSWORD).await;
    assert_eq!(a.status, Some(429), "{a:?}");
    assert_eq!(a.error.expect("body")["code"], "PT429");
    let retry = a.retry_after.expect("Retry-After");
    assert!((3590..=3600).contains(&retry), "{retry}");
    // Attempts while locked do not count.
    assert_eq!(
        ctx.count("select failures::int8 from auth.user_login_failures")
            .await,
        12
    );

    // When the window has passed, the owner signs in.
    ctx.db
        .admin()
        .await
        .batch_execute(if crate::citus::enabled() {
            // Citus runs no stable function on a column in an UPDATE of a
            // distributed table (V0016 distributes this one): the same
            // fast-forward, from now.
            "update auth.user_login_failures set window_started_at = now() - interval '1 hour'"
        } else {
            "update auth.user_login_failures set window_started_at = window_started_at - interval '1 hour'"
        })
        .await
        .expect("fast-forward");
    assert_eq!(identify_from(&ctx, B, "alice", PASSWORD).await.status, None);
}

#[actix_web::test]
async fn a_sign_in_of_the_owner_does_not_reset_the_ceiling() {
    // Otherwise an attacker spread over many addresses would get a fresh
    // allowance each time the owner signs in.
    let ctx = setup().await;
    settings(&ctx, "max_failed_logins_per_user = 6").await;
    add_user(&ctx, "alice").await;
    fail_from(&ctx, "203.0.113.1", "alice", 3).await;
    fail_from(&ctx, "203.0.113.2", "alice", 2).await;
    assert_eq!(identify_from(&ctx, B, "alice", PASSWORD).await.status, None);
    fail_from(&ctx, "203.0.113.3", "alice", 1).await;
    assert_eq!(
        identify_from(&ctx, B, "alice", PASSWORD).await.status,
        Some(429)
    );
}

#[actix_web::test]
async fn addresses_count_as_sources_the_way_hosts_hold_them() {
    let ctx = setup().await;
    let db = ctx.db.admin().await;
    for (ip, source) in [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::9", "2001:db8:1:3::/64"),
        ("", "unknown"),
        ("not an address", "unknown"),
    ] {
        let got: String = db
            .query_one(
                "select set_config('request.client_ip', $1, false), auth.client_source()",
                &[&ip],
            )
            .await
            .expect("client_source")
            .get(1);
        assert_eq!(got, source, "{ip:?}");
    }
    db.batch_execute("reset request.client_ip")
        .await
        .expect("reset");
    let unset: String = db
        .query_one("select auth.client_source()", &[])
        .await
        .expect("client_source")
        .get(0);
    assert_eq!(unset, "unknown");

    // So two addresses of one IPv6 /64 lock together.
    add_user(&ctx, "alice").await;
    fail_from(&ctx, "2001:db8::1", "alice", 3).await;
    fail_from(&ctx, "2001:db8::2", "alice", 2).await;
    assert_eq!(
        identify_from(&ctx, "2001:db8::3", "alice", PASSWORD)
            .await
            .status,
        Some(429)
    );
    assert_eq!(
        identify_from(&ctx, "2001:db8:0:1::1", "alice", PASSWORD)
            .await
            .status,
        None
    );
}

#[actix_web::test]
async fn a_flood_of_random_usernames_cannot_grow_the_table_past_its_bound() {
    if crate::citus::enabled() {
        // On Citus the bound holds per shard (each holds its share of
        // max_login_failure_rows; a count of the whole table would reach
        // every shard from a delegated sign-in): citus_seed checks that.
        eprintln!("skipped on Citus: the bound is per shard (citus_seed::the_failure_bound_holds_per_shard)");
        return;
    }
    let ctx = setup().await;
    settings(
        &ctx,
        "max_login_failure_rows = 3, max_failed_logins_per_user = 4",
    )
    .await;
    add_user(&ctx, "alice").await;
    for i in 0..3 {
        fail_from(&ctx, A, &format!("random{i}"), 1).await;
    }
    // Full: new pairs are not recorded, known or unknown.
    for i in 3..8 {
        fail_from(&ctx, &format!("203.0.113.{i}"), &format!("random{i}"), 1).await;
    }
    fail_from(&ctx, B, "alice", 1).await;
    assert_eq!(
        ctx.count("select count(*) from auth.login_failures").await,
        3
    );
    // A pair already tracked still counts to its lock.
    fail_from(&ctx, A, "random0", 4).await;
    assert_eq!(
        identify_from(&ctx, A, "random0", "x").await.status,
        Some(429)
    );
    // The account's ceiling counts every failure even while the table is
    // full: alice has had one; three more from untracked addresses lock her.
    for i in 10..13 {
        fail_from(&ctx, &format!("203.0.113.{i}"), "alice", 1).await;
    }
    assert_eq!(
        identify_from(&ctx, B, "alice", PASSWORD).await.status,
        Some(429)
    );
}

#[actix_web::test]
async fn the_new_settings_have_the_documented_defaults() {
    let ctx = setup().await;
    let row = ctx
        .db
        .admin()
        .await
        .query_one(
            "select max_failed_logins, lockout_duration::text, max_failed_logins_per_user, \
             failure_window_per_user::text, max_login_failure_rows from auth.settings",
            &[],
        )
        .await
        .expect("settings");
    assert_eq!(row.get::<_, i32>(0), 5);
    assert_eq!(row.get::<_, String>(1), "00:15:00");
    assert_eq!(row.get::<_, i32>(2), 100);
    assert_eq!(row.get::<_, String>(3), "01:00:00");
    assert_eq!(row.get::<_, i32>(4), 100_000);
}

#[actix_web::test]
async fn over_http_the_owner_signs_in_through_a_trusted_proxy_from_another_address() {
    let ctx = setup_with(
        r#"
[server]
trusted_proxies = ["127.0.0.1/32"]
"#,
    )
    .await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;
    let from = |ip: &str, password: &str| {
        post(
            "/rpc/identify",
            &json!({"username": "alice", "password": password}).to_string(),
        )
        .peer_addr("127.0.0.1:40000".parse().expect("socket address"))
        .insert_header(("x-forwarded-for", ip.to_string()))
    };
    for i in 0..5 {
        let r = send(&app, from(A, "wrong password")).await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.body);
    }
    let r = send(&app, from(A, PASSWORD)).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    let r = send(&app, from(B, PASSWORD)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(claims(&r.json()["token"])["username"], "alice");
    // The failures were recorded for A only, not for the proxy.
    assert_eq!(
        ctx.count(&format!(
            "select count(*) from auth.login_failures where source = '{A}'"
        ))
        .await,
        1
    );
    assert_eq!(
        ctx.count("select count(*) from auth.login_failures").await,
        1
    );
}

// A flood against a locked username is answered by one early read (issue 11,
// the cost of a locked attempt): no write (the transaction never gets an
// xid), and no wait for the username's lock, so a login in progress for that
// username does not hold the locked answers up.
#[actix_web::test]
async fn a_locked_attempt_writes_nothing_and_waits_for_no_lock() {
    let ctx = setup().await;
    add_user(&ctx, "alice").await;
    fail_from(&ctx, A, "alice", 5).await;
    // Another attempt for alice holds the username's lock meanwhile. (On
    // Citus a delegated attempt takes that lock on alice's worker, which this
    // one, taken on the coordinator, does not reach: there the test shows
    // the answer and that nothing is written.)
    let mut holder = ctx.db.admin().await;
    let held = holder.transaction().await.expect("begin");
    held.execute(
        "select pg_advisory_xact_lock(hashtextextended('auth.login:alice', 0))",
        &[],
    )
    .await
    .expect("the username's lock");

    let mut db = ctx.db.admin().await;
    let tx = db.transaction().await.expect("begin");
    tx.batch_execute("set local lock_timeout = '2s'")
        .await
        .expect("lock_timeout");
    gateway_settings(&tx, A).await;
    let row = tx
        .query_one(
            "select r.token is null, current_setting('response.status', true), \
                    current_setting('response.error', true)::json ->> 'code', \
                    current_setting('response.headers', true)::json -> 0 ->> 'Retry-After', \
                    txid_current_if_assigned() \
               from api.identify(username => 'alice', password => $1) r",
            &[&PASSWORD],
        )
        .await
        .expect("answered without waiting for the username's lock");
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("429"));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("PT429"));
    let retry: i64 = row
        .get::<_, Option<String>>(3)
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((890..=900).contains(&retry), "{retry}");
    assert_eq!(
        row.get::<_, Option<i64>>(4),
        None,
        "the locked path wrote something"
    );
    tx.commit().await.expect("commit");
    held.rollback().await.expect("rollback");

    // Still counted as before: five failures, locked; B is free.
    assert_eq!(
        ctx.count("select failures::int8 from auth.login_failures where username = 'alice'")
            .await,
        5
    );
    assert_eq!(identify_from(&ctx, B, "alice", PASSWORD).await.status, None);
}
