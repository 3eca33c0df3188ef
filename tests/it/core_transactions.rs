// The per-request transaction: rollback and commit rules, the pre-request hook, pool limits, an unreachable database and recovery.

use std::time::Duration;

use actix_web::web;
use pgrpc::http::AppState;

use crate::core_errors::assert_error;
use crate::harness::*;

/// Names in `test_data.items`, in insertion order.
async fn items(ctx: &Ctx) -> Vec<String> {
    ctx.db
        .admin()
        .await
        .query("select name from test_data.items order by id", &[])
        .await
        .expect("items")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[actix_web::test]
async fn failed_call_leaves_the_database_unchanged() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/add_item_then_fail", r#"{"name": "ghost"}"#),
    )
    .await;
    assert_error(&r, 400, "P0001");
    assert_eq!(items(&ctx).await, Vec::<String>::new());
    // The same connection serves the next request normally.
    let r = send(&app, post("/rpc/add_item", r#"{"name": "real"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(items(&ctx).await, ["real"]);
}

#[actix_web::test]
async fn singular_mismatch_rolls_back() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/add_two", r#"{"a": "first", "b": "second"}"#)
            .insert_header(("Accept", "application/vnd.pgrst.object+json")),
    )
    .await;
    assert_error(&r, 406, "PGRST116");
    assert_eq!(items(&ctx).await, Vec::<String>::new());
    // Without the singular Accept the same call commits both rows.
    let r = send(
        &app,
        post("/rpc/add_two", r#"{"a": "first", "b": "second"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(items(&ctx).await, ["first", "second"]);
}

#[actix_web::test]
async fn singular_match_commits() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/add_item", r#"{"name": "only"}"#)
            .insert_header(("Accept", "application/vnd.pgrst.object+json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(items(&ctx).await, ["only"]);
    // And a singular failure after a write still rolls the write back.
    let r = send(
        &app,
        post("/rpc/add_item_then_fail", r#"{"name": "ghost"}"#)
            .insert_header(("Accept", "application/vnd.pgrst.object+json")),
    )
    .await;
    assert_error(&r, 400, "P0001");
    assert_eq!(items(&ctx).await, ["only"]);
}

#[actix_web::test]
async fn error_status_from_response_settings_still_commits() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/record_then_fail_status", r#"{"name": "attempt"}"#),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "recorded");
    assert_eq!(items(&ctx).await, ["attempt"]);
}

#[actix_web::test]
async fn pre_request_runs_and_can_reject() {
    let ctx = setup_with("[db]\npre_request = \"test_private.pre_request\"").await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add_item", r#"{"name": "allowed"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-pre-request").as_deref(), Some("ran"));
    let r = send(&app, get("/rpc/hello?name=x")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-pre-request").as_deref(), Some("ran"));

    let r = send(
        &app,
        post("/rpc/add_item", r#"{"name": "blocked"}"#).insert_header(("X-Block", "1")),
    )
    .await;
    assert_error(&r, 403, "PT403");
    assert_eq!(r.json()["message"], "Blocked by pre-request");
    assert_eq!(items(&ctx).await, ["allowed"]);
}

#[actix_web::test]
async fn exhausted_pool_answers_504() {
    let ctx = setup_with("[db]\npool = 1\npool_timeout = 1").await;
    let app = ctx.app().await;
    let (slow, fast) = futures_util::join!(
        send(&app, post("/rpc/sleep", r#"{"seconds": 2.5}"#)),
        send(&app, post("/rpc/add", r#"{"a": 1}"#)),
    );
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_error(&fast, 504, "PGRST003");
    // Once the connection is back, requests are served again.
    let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A gateway with the test context's config, JWT and schema cache, but a pool on `cfg`.
async fn app_with_pool(ctx: &Ctx, cfg: tokio_postgres::Config) -> web::Data<AppState> {
    let pool = pgrpc::db::pool(cfg, 2, Duration::from_secs(2));
    let state = web::Data::new(AppState::new(
        ctx.state.config.clone(),
        pool,
        ctx.state.jwt.load_full(),
    ));
    state.cache.store(ctx.state.cache.load_full());
    state
}

#[actix_web::test]
async fn unreachable_database_is_503_with_retry_after() {
    let ctx = setup().await;
    // A database that does not exist, and a socket directory with no server.
    let missing_db = ctx
        .db
        .config("authenticator")
        .dbname("no_such_database_here")
        .clone();
    let mut no_server = tokio_postgres::Config::new();
    no_server
        .host_path("/nonexistent-pgrpc-socket-dir")
        .port(5432)
        .user("authenticator")
        .dbname("pgrpc")
        .connect_timeout(Duration::from_secs(1));
    for cfg in [missing_db, no_server] {
        let state = app_with_pool(&ctx, cfg).await;
        let app = actix_web::test::init_service(pgrpc::http::app(state)).await;
        for req in [post("/rpc/add", r#"{"a": 1}"#), get("/rpc/hello?name=x")] {
            let r = send(&app, req).await;
            assert_error(&r, 503, "PGRST001");
            assert!(
                r.header("retry-after")
                    .is_some_and(|v| v.parse::<u32>().is_ok()),
                "{:?}",
                r.headers
            );
            assert!(
                !r.body.contains("/nonexistent"),
                "no socket path in the answer: {}",
                r.body
            );
        }
    }
}

#[actix_web::test]
async fn recovers_by_itself_after_connections_are_killed() {
    let ctx = setup().await;
    let app = ctx.app().await;
    // Warm the pool so it holds connections that are about to die.
    for _ in 0..3 {
        let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let admin = ctx.db.admin().await;
    let killed: i64 = admin
        .query_one(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = current_database() and pid <> pg_backend_pid()) t",
            &[],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "the pool had connections to kill");
    let statuses = std::cell::RefCell::new(Vec::new());
    let recovered = eventually(Duration::from_secs(10), || {
        let app = &app;
        let statuses = &statuses;
        async move {
            let r = send(app, post("/rpc/add", r#"{"a": 1}"#)).await;
            if r.status != 200 {
                // While the dead connections are found out: 503, never anything else.
                assert_error(&r, 503, &r.code());
            }
            statuses.borrow_mut().push(r.status);
            r.status == 200
        }
    })
    .await;
    let statuses = statuses.into_inner();
    assert!(recovered, "still failing: {statuses:?}");
    assert!(statuses.len() <= 5, "took too many requests: {statuses:?}");
}

#[actix_web::test]
async fn regression_a_prepared_call_is_never_reused_across_roles() {
    // Calls are prepared once per connection. PostgreSQL checks EXECUTE when it
    // inlines a SQL function at plan time, so a plan cached while app_admin
    // called api.admin_only let app_user run it too. Statements are now
    // prepared per role; this pins it on a pool of one connection.
    let ctx = setup_with("[db]\npool = 1").await;
    let app = ctx.app().await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let admin = ctx.token(serde_json::json!({"role": "app_admin", "exp": exp}));
    let user = ctx.token(serde_json::json!({"role": "app_user", "exp": exp}));
    for _ in 0..6 {
        // Past PostgreSQL's five custom plans, so a generic plan is cached too.
        let r = send(&app, bearer(post("/rpc/admin_only", "{}"), &admin)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = send(&app, bearer(post("/rpc/admin_only", "{}"), &user)).await;
    assert_eq!(
        r.status, 403,
        "app_user must not inherit app_admin's plan: {}",
        r.body
    );
    let r = send(&app, post("/rpc/admin_only", "{}")).await;
    assert_eq!(r.status, 401, "nor may the anonymous role: {}", r.body);
}

#[actix_web::test]
async fn prepared_statements_per_connection_stay_bounded() {
    // Every distinct select list is a statement text of its own; a client
    // choosing new ones must not grow a backend's prepared statements forever.
    let ctx = setup_with("[db]\npool = 1").await;
    let app = ctx.app().await;
    for i in 0..300 {
        let r = send(&app, get(&format!("/rpc/points?n=1&select=a{i}:x"))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // pg_prepared_statements is per session: the one pooled backend answers.
    let r = send(&app, post("/rpc/prepared_count", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let n: i64 = r.body.trim().parse().expect("a count");
    if ctx.state.config.db.prepared_statements {
        assert!(n > 0, "calls are prepared");
    } else {
        // Through PgBouncer (PGRPC_TEST_PGBOUNCER=1): unnamed statements only.
        assert_eq!(
            n, 0,
            "db.prepared_statements = false prepared {n} statements"
        );
    }
    assert!(n <= 260, "{n} prepared statements on one connection");
}
