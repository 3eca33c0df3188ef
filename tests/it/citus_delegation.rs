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

/// A test database with [`FIXTURE`] and then `more`, in the schema cache.
async fn with_fixtures(more: &[&str]) -> Ctx {
    let ctx = setup().await;
    let admin = ctx.db.admin().await;
    for sql in std::iter::once(&FIXTURE).chain(more) {
        admin.batch_execute(sql).await.expect("Citus fixture");
    }
    ctx.state.load_schema_cache().await.expect("reload");
    ctx
}

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
    let ctx = with_fixtures(&[]).await;
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
    let ctx = with_fixtures(&[]).await;
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

/// A function co-located with `notes` that also takes the claims type (as
/// the seed's `refresh_token(token, username)` does): it answers where it
/// ran and the claims it got.
const CLAIMS_FIXTURE: &str = r#"
create function api.claims_of(owner text, t auth.jwt_claims,
  out port int, out claims json, out t_is_null boolean)
language plpgsql volatile
as $$
begin
  port := current_setting('port')::int;
  claims := to_json(t);
  t_is_null := t is null;
end
$$;
grant execute on function api.claims_of(text, auth.jwt_claims) to web_anon, app_user;
select create_distributed_function('api.claims_of(text, auth.jwt_claims)', 'owner',
  colocate_with := 'public.notes', force_delegation := true);
"#;

#[actix_web::test]
async fn a_claims_type_argument_is_delegated_with_the_same_claims() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = with_fixtures(&[CLAIMS_FIXTURE]).await;
    let app = ctx.app().await;
    let token = ctx.token(json!({
        "role": "app_user", "sub": "7", "username": "alice", "iat": now(),
        "exp": now() + 600, "sid": "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54", "gen": 3,
        "extra": {"nested": [1, 2]},
    }));
    let body = json!({"owner": "alice", "t": token}).to_string();
    let r = send(&app, post("/rpc/claims_of", &body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let delegated = r.json();
    assert_eq!(
        delegated["port"],
        worker_port_of(&ctx, "alice").await,
        "{delegated}"
    );
    assert_eq!(delegated["claims"]["username"], "alice", "{delegated}");
    assert_eq!(delegated["claims"]["gen"], 3, "{delegated}");
    // The general shape (here for `select`) runs on the coordinator: the
    // function gets the very same value there.
    let r = send(
        &app,
        post("/rpc/claims_of?select=port,claims,t_is_null", &body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let general = r.json();
    assert_eq!(general["port"], i64::from(cluster().port()));
    assert_eq!(general["claims"], delegated["claims"]);
    assert_eq!(general["t_is_null"], false);
    // A null token is SQL NULL in both shapes.
    let body = json!({"owner": "bob", "t": null}).to_string();
    let r = send(&app, post("/rpc/claims_of", &body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], worker_port_of(&ctx, "bob").await);
    assert_eq!(r.json()["t_is_null"], true, "{}", r.body);
    let r = send(&app, post("/rpc/claims_of?select=t_is_null", &body)).await;
    assert_eq!(r.json()["t_is_null"], true, "{}", r.body);
}

/// Functions co-located with `notes` that end a made-up session the way the
/// seed's logout does on a worker: they leave `<sid> <exp>` (and a malformed
/// entry) in `pgrpc.sessions_ended`, since their own NOTIFY would reach no
/// gateway. One is VOLATILE, one STABLE (its call is READ ONLY).
const RELAY_FIXTURE: &str = r#"
create function api.end_session(owner text, sid text, exp bigint, out port int, out ok boolean)
language plpgsql volatile
as $$
begin
  perform set_config('pgrpc.sessions_ended', 'not-a-session 1, ' || sid || ' ' || exp, true);
  port := current_setting('port')::int;
  ok := true;
end
$$;
create function api.end_session_read_only(owner text, sid text, exp bigint,
  out port int, out ok boolean)
language plpgsql stable
as $$
begin
  perform set_config('pgrpc.sessions_ended', sid || ' ' || exp, true);
  port := current_setting('port')::int;
  ok := true;
end
$$;
grant execute on function api.end_session(text, text, bigint) to app_user;
grant execute on function api.end_session_read_only(text, text, bigint) to app_user;
select create_distributed_function('api.end_session(text, text, bigint)', 'owner',
  colocate_with := 'public.notes', force_delegation := true);
select create_distributed_function('api.end_session_read_only(text, text, bigint)', 'owner',
  colocate_with := 'public.notes', force_delegation := true);
"#;

#[actix_web::test]
async fn sessions_ended_on_a_worker_are_relayed_to_the_gateways() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = with_fixtures(&[RELAY_FIXTURE]).await;
    // The listener is up once it has swapped in a cache of its own.
    let before = ctx.state.cache.load_full().expect("a cache");
    let _listener = ctx.listen();
    let limit = std::time::Duration::from_secs(10);
    let up = eventually(limit, || {
        let swapped = ctx
            .state
            .cache
            .load_full()
            .is_some_and(|now| !std::sync::Arc::ptr_eq(&now, &before));
        async move { swapped }
    })
    .await;
    assert!(up, "the listener never connected");
    let app = ctx.app().await;
    let admin = ctx.db.admin().await;
    let uuid = || async {
        let row = admin
            .query_one("select gen_random_uuid()::text", &[])
            .await
            .expect("uuid");
        row.get::<_, String>(0)
    };
    let (ended, kept) = (uuid().await, uuid().await);
    let exp = now() + 600;
    let token_of = |sid: &str| ctx.token(json!({"role": "app_user", "sid": sid, "exp": exp}));
    let (ended_token, kept_token) = (token_of(&ended), token_of(&kept));
    let note = |token: String| {
        let app = &app;
        async move {
            let body = json!({"owner": "carol"}).to_string();
            send(app, bearer(post("/rpc/note_of", &body), &token)).await
        }
    };
    assert_eq!(note(kept_token.clone()).await.status, 200);
    assert_eq!(note(ended_token.clone()).await.status, 200);
    let carol = worker_port_of(&ctx, "carol").await;

    // READ ONLY: nothing can be relayed (NOTIFY is refused there), and the
    // call still answers.
    let body = json!({"owner": "carol", "sid": kept, "exp": exp}).to_string();
    let r = send(
        &app,
        bearer(post("/rpc/end_session_read_only", &body), &kept_token),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], carol, "delegated: {}", r.body);

    let body = json!({"owner": "carol", "sid": ended, "exp": exp}).to_string();
    let r = send(&app, bearer(post("/rpc/end_session", &body), &kept_token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["port"], carol, "delegated: {}", r.body);
    // The gateway heard of it through the coordinator (the malformed entry
    // was dropped, not the good one)…
    let refused = eventually(limit, || async {
        note(ended_token.clone()).await.status == 401
    })
    .await;
    assert!(refused, "the relayed session is still accepted");
    let r = note(ended_token.clone()).await;
    assert_eq!(r.code(), "PGRST351", "{}", r.body);
    // …and, notifications arriving in order, of nothing from the READ ONLY
    // call before it.
    let r = note(kept_token.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ctx.state.ended_sessions.len(), 1);
}

/// A function distributed by a parameter the gateway fills from the claims
/// (as the seed's token functions on Citus are by `username`). Its default
/// is a volatile NULL: a constant NULL distribution argument crashes Citus
/// 13.2's coordinator (README, "How pgrpc's call shape cooperates").
const FILLED_FIXTURE: &str = r#"
create function api.my_note(
  owner text default (case when pg_catalog.random() < 2 then null end),
  out note text, out port int)
language plpgsql volatile
as $$
begin
  note := (select n.note from public.notes n where n.owner = my_note.owner);
  port := current_setting('port')::int;
end
$$;
alter function api.my_note(text) set pgrpc.from_claims = 'owner';
grant execute on function api.my_note(text) to web_anon, app_user;
select create_distributed_function('api.my_note(text)', 'owner',
  colocate_with := 'public.notes', force_delegation := true);
"#;

#[actix_web::test]
async fn a_parameter_filled_from_the_claims_makes_the_call_delegable() {
    if !crate::citus::enabled() {
        eprintln!("skipped: set PGRPC_TEST_CITUS=1 to run the Citus tests");
        return;
    }
    let ctx = with_fixtures(&[FILLED_FIXTURE]).await;
    let app = ctx.app().await;
    let dave = ctx.token(json!({"role": "app_user", "owner": "dave"}));
    for body in [json!({}), json!({"owner": "alice"})] {
        let r = send(&app, bearer(post("/rpc/my_note", &body.to_string()), &dave)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["note"], "a note of dave", "{body}: {}", r.body);
        assert_eq!(r.json()["port"], worker_port_of(&ctx, "dave").await);
    }
    // No claim: the default, on the coordinator (not every parameter is
    // given), and the client's value is not used.
    let r = send(&app, post("/rpc/my_note", r#"{"owner": "alice"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["note"], Value::Null, "{}", r.body);
    assert_eq!(r.json()["port"], i64::from(cluster().port()));
}
