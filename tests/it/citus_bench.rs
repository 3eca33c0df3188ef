// Measurement for bench/citus (ignored; asserts nothing about speed): identify and a cheap call, single node or Citus.

use std::time::Instant;

use serde_json::json;

use crate::harness::*;

/// The cheap call: one row by key from a table that is distributed on
/// Citus (and the function delegated), a plain table otherwise.
const FIXTURE_PLAIN: &str = r#"
create table public.kv (k text primary key, v text not null);
insert into public.kv select 'k' || i, 'value ' || i from generate_series(1, 1000) i;
grant select on public.kv to web_anon;
create function api.get_kv(k text) returns text language plpgsql volatile as $$
begin
  return (select kv.v from public.kv where kv.k = get_kv.k);
end
$$;
grant execute on function api.get_kv(text) to web_anon;
"#;

const FIXTURE_CITUS: &str = r#"
set citus.multi_shard_modify_mode = sequential;
select create_distributed_table('public.kv', 'k');
select create_distributed_function('api.get_kv(text)', 'k', colocate_with := 'public.kv', force_delegation := true);
"#;

/// Mean latency of `n` calls one after another, and throughput with `c`
/// in flight (one in-process app, one worker, as the harness builds it).
async fn measure<S, B>(
    app: &S,
    n: usize,
    c: usize,
    body: impl Fn(usize) -> (String, String),
) -> (f64, f64)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let started = Instant::now();
    for i in 0..n {
        let (path, b) = body(i);
        let r = send(app, post(&path, &b)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let serial_ms = started.elapsed().as_secs_f64() * 1000.0 / n as f64;
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + c).min(n))
            .map(|j| {
                let (path, b) = body(j);
                async move {
                    let r = send(app, post(&path, &b)).await;
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
            .collect();
        futures_util::future::join_all(batch).await;
        i += c;
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    (serial_ms, per_s)
}

#[actix_web::test]
#[ignore = "a measurement for bench/citus, not a test"]
async fn citus_bench() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let ctx = setup().await;
    let admin = ctx.db.admin().await;
    admin.batch_execute(FIXTURE_PLAIN).await.expect("fixture");
    // The calls come from one (unknown) address: lift the sign-in rate limits.
    admin
        .batch_execute(include_str!("../../bench/lift_rate_limits.sql"))
        .await
        .expect("lift the rate limits");
    if crate::citus::enabled() {
        admin
            .batch_execute(FIXTURE_CITUS)
            .await
            .expect("Citus fixture");
    }
    ctx.state.load_schema_cache().await.expect("reload");
    let app = ctx.app().await;
    for u in ["bencha", "benchb", "benchc", "benchd"] {
        crate::seed::register(&ctx, &app, u).await;
    }
    // Warm the pools and plan caches.
    let _ = measure(&app, 40, 4, |i| {
        (
            "/rpc/get_kv".into(),
            json!({"k": format!("k{}", i % 1000 + 1)}).to_string(),
        )
    })
    .await;
    let (kv_ms, kv_s) = measure(&app, n, 8, |i| {
        (
            "/rpc/get_kv".into(),
            json!({"k": format!("k{}", (i * 7) % 1000 + 1)}).to_string(),
        )
    })
    .await;
    let users = ["bencha", "benchb", "benchc", "benchd"];
    let (id_ms, id_s) = measure(&app, n / 3, 8, |i| {
        (
            "/rpc/identify".into(),
            json!({"username": users[i % 4], "password": crate::seed::PASSWORD}).to_string(),
        )
    })
    .await;
    // A token call: verify_token checks the token's user and session (on
    // Citus delegated to the user's worker, the username filled from the
    // token's claims, sql/citus/token_calls.sql).
    let mut tokens = Vec::new();
    for u in users {
        let r = send(
            &app,
            post(
                "/rpc/identify",
                &json!({"username": u, "password": crate::seed::PASSWORD}).to_string(),
            ),
        )
        .await;
        tokens.push(r.json()["token"].as_str().expect("token").to_string());
    }
    let verify = |path: &'static str| {
        let tokens = tokens.clone();
        move |i: usize| {
            (
                path.to_string(),
                json!({"token": tokens[i % 4]}).to_string(),
            )
        }
    };
    let (vt_ms, vt_s) = measure(&app, n, 8, verify("/rpc/verify_token")).await;
    let topology = if crate::citus::enabled() {
        "citus (coordinator + 2 workers)"
    } else {
        "single node"
    };
    let mut line = format!(
        "| {topology} | get_kv | {kv_ms:.2} | {kv_s:.0} |\n| {topology} | identify | {id_ms:.2} | {id_s:.0} |\n\
         | {topology} | verify_token | {vt_ms:.2} | {vt_s:.0} |\n"
    );
    if crate::citus::enabled() {
        // The same sign-ins in the general call shape (a `select`), which
        // Citus does not delegate: auth.login runs on the coordinator and
        // reaches the shard statement by statement. Same run, same load.
        let (ms, per_s) = measure(&app, n / 3, 8, |i| {
            (
                "/rpc/identify?select=token".into(),
                json!({"username": users[i % 4], "password": crate::seed::PASSWORD}).to_string(),
            )
        })
        .await;
        line.push_str(&format!(
            "| {topology} | identify, not delegated (`?select=token`) | {ms:.2} | {per_s:.0} |\n"
        ));
        let (ms, per_s) = measure(&app, n, 8, verify("/rpc/verify_token?select=token")).await;
        line.push_str(&format!(
            "| {topology} | verify_token, not delegated (`?select=token`) | {ms:.2} | {per_s:.0} |\n"
        ));
    }
    eprint!("{line}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .expect("open BENCH_OUT");
        f.write_all(line.as_bytes()).expect("write BENCH_OUT");
    }
}
