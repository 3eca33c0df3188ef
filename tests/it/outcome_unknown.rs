// Unknown outcomes (issue 12): a connection lost at COMMIT is answered 503 PGRST050, one lost before it with a plain error.

use crate::harness::*;

/// A write whose backend terminates itself: in the call (`now`), or in a
/// deferred constraint trigger, which runs inside COMMIT (`at_commit`).
const FUNCTIONS: &str = "
create table public.oc_log(tag text, at_commit boolean);
grant insert on public.oc_log to web_anon;
create function public.oc_die() returns trigger
  language plpgsql security definer set search_path = pg_catalog as $$
  begin
    perform pg_terminate_backend(pg_backend_pid());
    return null;
  end $$;
create constraint trigger oc_die_at_commit after insert on public.oc_log
  deferrable initially deferred for each row when (new.at_commit)
  execute function public.oc_die();
create function public.oc_die_now() returns void
  language plpgsql security definer set search_path = pg_catalog as $$
  begin
    perform pg_terminate_backend(pg_backend_pid());
    perform pg_sleep(5);
  end $$;
grant execute on function public.oc_die_now() to web_anon;
create function api.oc_write(tag text, at_commit boolean) returns int
  language plpgsql volatile as $$
  begin
    insert into public.oc_log values (tag, at_commit);
    if not at_commit then
      perform public.oc_die_now();
    end if;
    return 1;
  end $$;
grant execute on function api.oc_write(text, boolean) to web_anon;
";

async fn ctx() -> Ctx {
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(FUNCTIONS)
        .await
        .expect("test functions");
    ctx.state.load_schema_cache().await.expect("reload");
    ctx
}

#[actix_web::test]
async fn connection_lost_inside_commit_is_outcome_unknown_not_a_plain_error() {
    let ctx = ctx().await;
    let app = ctx.app().await;
    // The call has returned and COMMIT was sent; the backend dies inside
    // COMMIT (FATAL 57P01). Whether it committed cannot be known from here.
    let r = send(
        &app,
        post("/rpc/oc_write", r#"{"tag": "c", "at_commit": true}"#),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), "PGRST050", "{}", r.body);
    assert!(r.header("retry-after").is_none(), "{:?}", r.headers);
    assert!(r.json()["hint"]
        .as_str()
        .is_some_and(|h| h.contains("before repeating")));
    // (Here it did not commit: the trigger failed before the commit record.)
    assert_eq!(ctx.count("select count(*) from public.oc_log").await, 0);
    // The dead connection never goes back to the pool, even before
    // tokio-postgres has read the close: the next call is served.
    let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn connection_lost_during_the_call_is_a_definite_error() {
    let ctx = ctx().await;
    let app = ctx.app().await;
    // The backend dies while the function runs: COMMIT was sent behind the
    // call but the server never reached it, so nothing was written.
    let r = send(
        &app,
        post("/rpc/oc_write", r#"{"tag": "n", "at_commit": false}"#),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.code(), "57P01", "{}", r.body);
    assert_eq!(ctx.count("select count(*) from public.oc_log").await, 0);
}
