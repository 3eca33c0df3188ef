// Schema cache reloads without restart: DDL event triggers, NOTIFY on both channels, and a failed reload keeping the old cache.

use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Start the listener and wait until its first load has swapped in a new
/// cache: from then on it is LISTENing (it subscribes before loading).
async fn listening(ctx: &Ctx) -> pgrpc::db::listener::Listener {
    let before = ctx.state.cache.load_full().expect("setup loaded a cache");
    let listener = ctx.listen();
    let swapped = eventually(LIMIT, || {
        let swapped = ctx
            .state
            .cache
            .load_full()
            .is_some_and(|now| !Arc::ptr_eq(&now, &before));
        async move { swapped }
    })
    .await;
    assert!(swapped, "the listener never loaded the cache");
    listener
}

/// Poll `GET /rpc/<f>` until it answers `status`.
async fn becomes<S, B>(app: &S, path: &str, status: u16) -> bool
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    eventually(LIMIT, || async {
        send(app, get(path)).await.status == status
    })
    .await
}

#[actix_web::test]
async fn ddl_reloads_automatically() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let _listener = listening(&ctx).await;
    assert_eq!(send(&app, get("/rpc/fresh")).await.status, 404);

    let admin = ctx.db.admin().await;
    admin
        .batch_execute(
            "create function api.fresh() returns text language sql stable as $$ select 'new' $$;
             grant execute on function api.fresh() to web_anon;",
        )
        .await
        .expect("create");
    assert!(
        becomes(&app, "/rpc/fresh", 200).await,
        "the new function never became callable"
    );
    assert_eq!(send(&app, get("/rpc/fresh")).await.body, r#""new""#);

    // A changed signature is picked up too.
    admin
        .batch_execute(
            "drop function api.fresh();
             create function api.fresh(n int) returns int language sql stable as $$ select n $$;
             grant execute on function api.fresh(int) to web_anon;",
        )
        .await
        .expect("replace");
    assert!(
        becomes(&app, "/rpc/fresh?n=7", 200).await,
        "the new signature never arrived"
    );

    admin
        .batch_execute("drop function api.fresh(int)")
        .await
        .expect("drop");
    assert!(
        becomes(&app, "/rpc/fresh?n=7", 404).await,
        "the dropped function is still served"
    );
}

#[actix_web::test]
async fn notify_reloads_on_both_channels() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.db.admin().await;
    // Event triggers would reload on the DDL itself; with them off only NOTIFY does.
    admin
        .batch_execute("alter event trigger pgrpc_ddl_end disable; alter event trigger pgrpc_sql_drop disable;")
        .await
        .expect("disable event triggers");
    let _listener = listening(&ctx).await;

    for (channel, f) in [("pgrpc", "via_pgrpc"), ("pgrst", "via_pgrst")] {
        admin
            .batch_execute(&format!(
                "create function api.{f}() returns int language sql stable as $$ select 1 $$;
                 grant execute on function api.{f}() to web_anon;"
            ))
            .await
            .expect("create");
        let path = format!("/rpc/{f}");
        // No reload yet: DDL alone changes nothing while the triggers are off.
        let r = send(&app, get(&path)).await;
        assert_eq!(r.status, 404, "{channel}: {}", r.body);
        admin
            .batch_execute(&format!("notify {channel}, 'reload schema'"))
            .await
            .expect("notify");
        assert!(
            becomes(&app, &path, 200).await,
            "NOTIFY {channel} did not reload"
        );
    }

    // Other payloads are not schema reloads.
    admin
        .batch_execute(
            "create function api.not_yet() returns int language sql stable as $$ select 1 $$;
             grant execute on function api.not_yet() to web_anon;
             notify pgrpc, 'reload config';",
        )
        .await
        .expect("create");
    // An empty payload reloads everything (PostgREST), which proves the
    // listener processed the earlier payload first: notifications arrive in order.
    admin
        .batch_execute(
            "create function api.marker() returns int language sql stable as $$ select 1 $$;
             grant execute on function api.marker() to web_anon;
             notify pgrpc;",
        )
        .await
        .expect("create marker");
    assert!(
        becomes(&app, "/rpc/marker", 200).await,
        "an empty NOTIFY did not reload"
    );

    admin
        .batch_execute("drop function api.via_pgrpc(); notify pgrpc, 'reload schema'")
        .await
        .expect("drop");
    assert!(
        becomes(&app, "/rpc/via_pgrpc", 404).await,
        "the dropped function is still served"
    );
}

#[actix_web::test]
async fn failed_reload_keeps_the_old_cache() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin = ctx.db.admin().await;
    let _listener = listening(&ctx).await;
    // Make the catalog query fail for the listener's role (authenticator): it
    // reads pg_description. Superusers may change catalog privileges, per database.
    admin
        .batch_execute(
            "revoke select on pg_catalog.pg_description from public;
             create function api.during_outage() returns int language sql stable as $$ select 1 $$;
             grant execute on function api.during_outage() to web_anon;",
        )
        .await
        .expect("break the catalog query");
    // Wait until a reload has run and failed: the listener's last statement is
    // the catalog query, left idle after its error.
    let failed = eventually(LIMIT, || {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "select count(*) from pg_stat_activity where datname = current_database() \
                     and usename = 'authenticator' and state = 'idle' \
                     and query like '-- Every function of the exposed schemas%'",
                    &[],
                )
                .await
                .expect("activity")
                .get::<_, i64>(0)
                == 1
        }
    })
    .await;
    assert!(failed, "no failed reload observed");
    // The old cache is still served, completely.
    let r = send(&app, get("/rpc/add?a=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(&app, post("/rpc/points", r#"{"n": 2}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(send(&app, get("/rpc/during_outage")).await.status, 404);

    // Repaired, the next reload brings the new function.
    admin
        .batch_execute("grant select on pg_catalog.pg_description to public")
        .await
        .expect("repair");
    assert!(
        becomes(&app, "/rpc/during_outage", 200).await,
        "reload after repair"
    );
    let r = send(&app, get("/rpc/add?a=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn redefined_functions_answer_on_a_connection_that_prepared_the_old_ones() {
    // Calls are prepared once per connection; a function dropped and created
    // again with another result type (or volatility, or argument type) must
    // not hit "cached plan must not change result type" or a stale plan on
    // the one connection that prepared the old call.
    let ctx = setup_with("[db]\npool = 1").await;
    let app = ctx.app().await;
    let _listener = listening(&ctx).await;
    let admin = ctx.db.admin().await;
    let define = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .batch_execute(&format!(
                    "drop function if exists api.shape(int); drop function if exists api.shape(text);
                     {sql}
                     grant execute on all functions in schema api to web_anon;"
                ))
                .await
                .expect("define api.shape");
        }
    };
    let body_becomes = |path: &'static str, want: &'static str| {
        let app = &app;
        eventually(LIMIT, move || async move {
            let r = send(app, get(path)).await;
            r.status == 200
                && serde_json::from_str::<serde_json::Value>(&r.body).ok()
                    == serde_json::from_str::<serde_json::Value>(want).ok()
        })
    };

    define("create function api.shape(n int) returns int language sql stable as $$ select n $$;")
        .await;
    assert!(body_becomes("/rpc/shape?n=2", "2").await);
    assert_eq!(send(&app, get("/rpc/shape?n=3")).await.body, "3");

    define(
        "create function api.shape(n int) returns text language sql stable as $$ select 'n=' || n $$;",
    )
    .await;
    assert!(body_becomes("/rpc/shape?n=2", r#""n=2""#).await);

    define(
        "create function api.shape(n int) returns setof int language sql stable as $$ select generate_series(1, n) $$;",
    )
    .await;
    assert!(body_becomes("/rpc/shape?n=3", "[1,2,3]").await);

    define(
        "create function api.shape(n int) returns table(a int, b text) language sql stable as $$ select n, 'x' $$;",
    )
    .await;
    assert!(body_becomes("/rpc/shape?n=4", r#"[{"a":4,"b":"x"}]"#).await);

    define("create function api.shape(n text) returns text language sql stable as $$ select upper(n) $$;")
        .await;
    assert!(body_becomes("/rpc/shape?n=ab", r#""AB""#).await);
    let r = send(&app, get("/rpc/shape?n=ab")).await;
    assert_eq!((r.status, r.json()), (200, serde_json::json!("AB")));
}

#[actix_web::test]
async fn role_settings_apply_to_that_role_s_requests_after_reload_config() {
    // PostgREST's impersonated role settings: ALTER ROLE … SET reaches each
    // request of that role (a statement_timeout for web users is the point),
    // once `reload config` has read it. Settings the connecting role may not
    // set (superuser-only ones) are left out rather than failing every call.
    let ctx = setup().await;
    let app = ctx.app().await;
    let _listener = listening(&ctx).await;
    let admin = ctx.db.admin().await;
    let db = &ctx.db.name;
    admin
        .batch_execute(&format!(
            "create function api.role_settings() returns json language sql stable as $$
               select json_build_object('statement_timeout', current_setting('statement_timeout'),
                                        'tenant', current_setting('app.tenant', true),
                                        'user', current_user)
             $$;
             create function api.slow() returns int language sql volatile as $$ select 1 from pg_sleep(1) $$;
             grant execute on function api.role_settings(), api.slow() to web_anon, app_user;
             alter role web_anon in database {db} set statement_timeout = '200ms';
             alter role web_anon in database {db} set app.tenant = 'acme';
             alter role web_anon in database {db} set log_min_duration_statement = 0;
             alter role web_anon in database {db} set role = 'app_admin';"
        ))
        .await
        .expect("role settings");
    // DDL reloads the cache by itself; ALTER ROLE does not (no event trigger
    // fires for roles), hence the explicit reload, as with PostgREST.
    assert!(becomes(&app, "/rpc/role_settings", 200).await);
    admin
        .batch_execute("notify pgrpc, 'reload config'")
        .await
        .expect("notify");
    let applied = eventually(LIMIT, || async {
        send(&app, get("/rpc/role_settings")).await.json()["statement_timeout"] == "200ms"
    })
    .await;
    assert!(
        applied,
        "{}",
        send(&app, get("/rpc/role_settings")).await.body
    );
    let anon = send(&app, get("/rpc/role_settings")).await.json();
    assert_eq!(anon["tenant"], "acme");
    // A role setting never changes who the request runs as.
    assert_eq!(anon["user"], "web_anon");

    // The timeout cuts a slow call short: 504 with PostgreSQL's code.
    let started = std::time::Instant::now();
    let r = send(&app, post("/rpc/slow", "{}")).await;
    assert_eq!((r.status, r.code().as_str()), (504, "57014"), "{}", r.body);
    assert!(started.elapsed() < Duration::from_millis(900));

    // Another role keeps the defaults, and its slow call finishes.
    let token = ctx.token(serde_json::json!({"role": "app_user"}));
    let as_user = |req: actix_web::test::TestRequest| bearer(req, &token);
    let user = send(&app, as_user(get("/rpc/role_settings"))).await.json();
    assert_eq!(user["statement_timeout"], "0", "{user}");
    // Null, or empty where a pooled connection has seen the custom setting.
    assert_ne!(user["tenant"], "acme", "{user}");
    let r = send(&app, as_user(post("/rpc/slow", "{}"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
