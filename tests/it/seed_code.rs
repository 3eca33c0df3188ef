// sql/ as code (issue 10): every load drops the auth helpers and recreates them, volatility is stated truthfully, one copy of the claims lookup, and a missing settings row is the server's error.

use serde_json::json;

use crate::harness::*;
use crate::seed::{invite, register_body, PASSWORD};

/// The names (schema.function) that a catalog query returns.
async fn names(db: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    db.query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A database with migrations and sql/ only, no test fixtures (they add
/// functions of their own to api); dropped when the returned guard is.
struct ProdDb {
    name: String,
    client: tokio_postgres::Client,
}

impl ProdDb {
    async fn new(ctx: &Ctx) -> ProdDb {
        let name = format!("{}_prod", ctx.db.name);
        postgres()
            .await
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create database");
        let mut client =
            pgrpc::db::connect(&pgrpc::db::socket_config(cluster(), "postgres", &name))
                .await
                .expect("connect to it");
        pgrpc::db::migrate::migrate(&mut client)
            .await
            .expect("migrate");
        ProdDb { name, client }
    }

    async fn drop(self) {
        drop(self.client);
        let _ = postgres()
            .await
            .batch_execute(&format!("drop database {}", self.name))
            .await;
    }
}

async fn postgres() -> tokio_postgres::Client {
    pgrpc::db::connect(&pgrpc::db::socket_config(cluster(), "postgres", "postgres"))
        .await
        .expect("connect")
}

#[actix_web::test]
async fn a_helper_removed_from_sql_is_gone_after_the_next_load() {
    // Regression (issue 10): auth.* was `create or replace`d and never
    // dropped, so a helper renamed in sql/ lived on in every database.
    let ctx = setup().await;
    let mut db = ctx.db.admin().await;
    db.batch_execute(
        "create function auth.obsolete_helper() returns int language sql immutable as $$ select 1 $$",
    )
    .await
    .expect("an old helper");
    pgrpc::db::migrate::apply_sql(&mut db)
        .await
        .expect("load sql/");
    let left = names(
        &db,
        "select proname::text from pg_proc where pronamespace = 'auth'::regnamespace \
         and proname = 'obsolete_helper'",
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
    // What sql/ defines is back, and still works over HTTP.
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    let r = send(
        &app,
        post(
            "/rpc/register",
            &register_body("alice", PASSWORD, "alice@example.com", &code),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn nothing_but_the_triggers_of_sql_depends_on_an_auth_function() {
    // The load drops auth's functions without CASCADE; anything depending on
    // one (a column default, a view, a policy) would either block every load
    // or, with CASCADE, be lost. Only sql/'s own triggers may.
    let ctx = setup().await;
    let db = ctx.db.admin().await;
    let dependents = names(
        &db,
        "select distinct pg_describe_object(d.classid, d.objid, d.objsubid) \
         from pg_depend d join pg_proc p on d.refclassid = 'pg_proc'::regclass and d.refobjid = p.oid \
         where p.pronamespace = 'auth'::regnamespace and d.classid <> 'pg_trigger'::regclass \
           and d.deptype <> 'i'",
    )
    .await;
    assert!(dependents.is_empty(), "{dependents:?}");
}

#[actix_web::test]
async fn an_object_of_a_dba_that_uses_an_auth_function_stops_the_load_and_keeps_everything() {
    // No CASCADE: a DBA's view is never dropped behind their back; the load
    // fails, names the reason, and rolls back as a whole.
    let ctx = setup().await;
    let mut db = ctx.db.admin().await;
    db.batch_execute("create view public.expiry as select auth.iso_utc(0) as t")
        .await
        .expect("a DBA's view");
    let e = pgrpc::db::migrate::apply_sql(&mut db)
        .await
        .expect_err("the load must refuse to drop what the view uses");
    let text = e.to_string();
    assert!(text.contains("depend"), "{text}");
    let t: String = db
        .query_one("select t from public.expiry", &[])
        .await
        .expect("the view is still there, and so is the function")
        .get(0);
    assert_eq!(t, "1970-01-01T00:00:00.000Z");
    let n: i64 = db
        .query_one(
            "select count(*) from pg_proc where pronamespace = 'api'::regnamespace",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert!(
        n > 0,
        "the failed load left the exposed functions as they were"
    );
}

#[actix_web::test]
async fn functions_are_no_less_volatile_than_what_they_call() {
    let ctx = setup().await;
    let prod = ProdDb::new(&ctx).await;
    let db = &prod.client;
    // Regression (issue 10): both were IMMUTABLE around STABLE builtins
    // (to_char, json_build_object).
    let rows = db
        .query(
            "select proname::text, provolatile::text from pg_proc \
             where oid in ('auth.iso_utc(bigint)'::regprocedure, 'auth.user_json(auth.users)'::regprocedure) \
             order by 1",
            &[],
        )
        .await
        .expect("volatility");
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("iso_utc".to_string(), "s".to_string()),
            ("user_json".to_string(), "s".to_string())
        ]
    );
    // The same slip anywhere: an IMMUTABLE function of ours whose body calls
    // a builtin or an auth function of which no overload is IMMUTABLE (a
    // textual scan of the bodies, checked against the catalog).
    let offenders = names(
        db,
        r"with mine as (
            select p.oid, p.pronamespace::regnamespace::text || '.' || p.proname as name, p.prosrc
              from pg_proc p
             where p.pronamespace in ('auth'::regnamespace, 'api'::regnamespace, 'pgrpc'::regnamespace)
               and p.provolatile = 'i')
          select m.name || ' calls ' || c.callee
            from mine m,
                 lateral (select (regexp_matches(m.prosrc, '((?:auth\.)?[a-z_]+)\s*\(', 'g'))[1] as callee) c,
                 lateral (select q.provolatile from pg_proc q
                           where q.pronamespace::regnamespace::text || '.' || q.proname = c.callee
                              or (q.pronamespace = 'pg_catalog'::regnamespace and q.proname = c.callee)) v
           -- Offending when no overload of that name is IMMUTABLE.
           group by m.name, c.callee
          having bool_and(v.provolatile <> 'i')",
    )
    .await;
    assert!(offenders.is_empty(), "{offenders:?}");
    prod.drop().await;
}

#[actix_web::test]
async fn the_claims_setting_is_read_in_one_place() {
    // Regression (issue 10): `nullif(current_setting('request.jwt.claims', …`
    // was written out in each function that needed the claims.
    let ctx = setup().await;
    let prod = ProdDb::new(&ctx).await;
    let db = &prod.client;
    let readers = names(
        db,
        "select p.pronamespace::regnamespace::text || '.' || p.proname from pg_proc p \
         where p.pronamespace in ('auth'::regnamespace, 'api'::regnamespace, 'pgrpc'::regnamespace) \
           and p.prosrc like '%request.jwt.claims%' order by 1",
    )
    .await;
    assert_eq!(readers, ["auth.request_claims"]);
    prod.drop().await;
}

#[actix_web::test]
async fn a_missing_settings_row_is_a_server_error_not_the_clients() {
    // Regression (issue 10): P0001 answered 400, blaming the client for the
    // server's misconfiguration, and the message named the table.
    let ctx = setup().await;
    let app = ctx.app().await;
    let code = invite(&ctx, 1, "1 day").await;
    ctx.db
        .admin()
        .await
        .batch_execute("delete from auth.settings")
        .await
        .expect("a DBA deletes the row");
    let admin = ctx.token(json!({"role": "app_admin"}));
    for req in [
        post(
            "/rpc/identify",
            &json!({"username": "alice", "password": PASSWORD}).to_string(),
        ),
        post(
            "/rpc/register",
            &register_body("alice", PASSWORD, "alice@example.com", &code),
        ),
        bearer(post("/rpc/create_invite", "{}"), &admin),
    ] {
        let r = send(&app, req).await;
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(
            r.json(),
            json!({"code": "PT500", "message": "Internal server error", "details": null, "hint": null})
        );
    }
    assert_eq!(ctx.count("select count(*) from auth.users").await, 0);
    assert_eq!(
        ctx.count("select count(*) from auth.login_failures").await,
        0
    );
}
