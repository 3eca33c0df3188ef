// Citus (PGRPC_TEST_CITUS=1): a distributed function's call is delegated to the worker holding its row, with the request settings; skipped otherwise.

use serde_json::{json, Value};

use crate::harness::*;

/// A table distributed by `owner`, a function co-located with it
/// (force_delegation: pgrpc calls always run in a transaction block) that
/// answers where it ran (the server's port) and what it saw, and sets a
/// response header the gateway must still see.
const FIXTURE: &str = r#"
set citus.multi_shard_modify_mode = sequential;
create extension if not exists pg_stat_statements;
create table public.notes (owner text primary key, note text not null);
select create_distributed_table('public.notes', 'owner');
insert into public.notes values ('alice', 'a note of alice'), ('bob', 'a note of bob'),
  ('carol', 'a note of carol'), ('dave', 'a note of dave');
grant select on public.notes to web_anon, app_user;
create function api.note_of(owner text,
  out note text, out port int, out "user" text, out claims json, out path text, out client_ip text)
language plpgsql volatile
as $$
begin
  perform set_config('response.headers',
    json_build_array(json_build_object('X-Ran-On', current_setting('port')))::text, true);
  note := (select n.note from public.notes n where n.owner = note_of.owner);
  port := current_setting('port')::int;
  "user" := current_user;
  claims := nullif(current_setting('request.jwt.claims', true), '')::json;
  path := current_setting('request.path', true);
  client_ip := current_setting('request.client_ip', true);
end
$$;
grant execute on function api.note_of(text) to web_anon, app_user;
select create_distributed_function('api.note_of(text)', 'owner',
  colocate_with := 'public.notes', force_delegation := true);
"#;

/// How often `node` ran note_of's own query in this test's database.
async fn inner_query_calls(ctx: &Ctx, node: &pgrpc::db::embedded::Cluster) -> i64 {
    crate::citus::statement_calls(ctx, node, "%n.note from public.notes n where n.owner%").await
}

/// The worker port that holds `owner`'s shard, as Citus's metadata says.
async fn worker_port_of(ctx: &Ctx, owner: &str) -> i32 {
    crate::citus::shard_port(ctx, "public.notes", owner).await
}

#[actix_web::test]
async fn a_distributed_function_runs_on_the_worker_holding_its_row() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(FIXTURE)
        .await
        .expect("Citus fixture");
    ctx.state.load_schema_cache().await.expect("reload");
    let app = ctx.app().await;
    let token = ctx.token(json!({"role": "app_user", "sub": "42"}));
    let mut ports = std::collections::BTreeSet::new();
    for owner in ["alice", "bob", "carol", "dave"] {
        let r = send(
            &app,
            bearer(
                post("/rpc/note_of", &json!({"owner": owner}).to_string())
                    .peer_addr("192.0.2.7:40000".parse().expect("socket address")),
                &token,
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = r.json();
        let expected = worker_port_of(&ctx, owner).await;
        // The body ran on the shard's worker, not on the coordinator…
        assert_eq!(v["port"], expected, "{owner}: {v}");
        assert_ne!(v["port"], i64::from(cluster().port()));
        assert!(
            workers().iter().any(|w| v["port"] == i64::from(w.port())),
            "{v}"
        );
        assert_eq!(v["note"], format!("a note of {owner}"));
        // …as the request's role, with its claims and request settings…
        assert_eq!(v["user"], "app_user");
        assert_eq!(v["claims"]["sub"], "42");
        assert_eq!(v["path"], "/rpc/note_of");
        // request.client_ip too (per-address lock-out reads it there).
        assert_eq!(v["client_ip"], "192.0.2.7");
        // …and what it set there came back to the gateway.
        assert_eq!(
            r.header("x-ran-on").as_deref(),
            Some(expected.to_string().as_str())
        );
        ports.insert(expected);
    }
    // Still delegated once PostgreSQL would consider a generic plan of the
    // prepared call (after five executions on a connection): Citus keeps
    // it planning with the bound values.
    let alice = worker_port_of(&ctx, "alice").await;
    for _ in 0..12 {
        let r = send(
            &app,
            bearer(
                post("/rpc/note_of", &json!({"owner": "alice"}).to_string()),
                &token,
            ),
        )
        .await;
        assert_eq!(r.json()["port"], alice, "{}", r.body);
    }
    // The four rows are spread over both workers, so both were called.
    assert_eq!(ports.len(), 2, "{ports:?}");
    // The function's own query ran on the workers, sixteen times in all, and
    // never on the coordinator: the call was delegated, not run locally.
    assert_eq!(inner_query_calls(&ctx, cluster()).await, 0);
    let mut on_workers = 0;
    for w in workers() {
        on_workers += inner_query_calls(&ctx, w).await;
    }
    assert!(on_workers >= 16, "{on_workers}");
}

#[actix_web::test]
async fn a_call_with_a_filter_is_not_delegated_but_still_right() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(FIXTURE)
        .await
        .expect("Citus fixture");
    ctx.state.load_schema_cache().await.expect("reload");
    let app = ctx.app().await;
    // The general call shape (json_to_record, LATERAL, a subquery: here
    // for `select`) is never delegated: the function runs on the
    // coordinator, and reaches the shard with an ordinary distributed query.
    let r = send(
        &app,
        post(
            "/rpc/note_of?select=note,port",
            &json!({"owner": "bob"}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], i64::from(cluster().port()));
    assert_eq!(r.json()["note"], "a note of bob");
    assert!(inner_query_calls(&ctx, cluster()).await >= 1);
    // Delegated again, anonymous: no claims, the anonymous role.
    let r = send(
        &app,
        post("/rpc/note_of", &json!({"owner": "bob"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], worker_port_of(&ctx, "bob").await);
    assert_eq!(r.json()["user"], "web_anon");
    assert_eq!(r.json()["claims"], json!({"role": "web_anon"}));
}
