// The verified-token cache over HTTP: its byte bound under a flood of distinct tokens (/metrics gauges), a hot token that keeps hitting, claims from the cache as SQL sees them, and the bounds' settings.

use actix_web::test;
use actix_web::App;
use pgrpc::config::Config;
use serde_json::{json, Value};

use crate::harness::*;

/// A gauge or counter of `/metrics` on the admin routes.
async fn metric(ctx: &Ctx, name: &str) -> f64 {
    let admin =
        test::init_service(App::new().configure(pgrpc::http::admin::routes(ctx.state.clone())))
            .await;
    let text = send(&admin, get("/metrics")).await.body;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// A token of the shape the seed signs (about 400 bytes), distinct per `i`.
fn seed_like(ctx: &Ctx, i: usize) -> String {
    ctx.token(json!({
        "role": "app_user", "sub": i.to_string(), "username": format!("user{i:05}"),
        "exp": now() + 3600, "orig_iat": now(),
        "jti": format!("7e57be4c-0000-4000-8000-{i:012x}"),
        "sid": format!("5e55e55e-0000-4000-8000-{i:012x}"), "gen": 1
    }))
}

#[actix_web::test]
async fn jwt_cache_flood_of_distinct_tokens_stays_within_its_bytes() {
    let max_bytes = 20_000;
    let ctx = setup_with(&format!("[jwt]\ncache_max_bytes = {max_bytes}\n")).await;
    let app = ctx.app().await;
    let mut most = 0.0f64;
    for i in 0..200 {
        let r = send(&app, bearer(get("/rpc/add?a=1"), &seed_like(&ctx, i))).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if i % 20 == 19 {
            let bytes = metric(&ctx, "pgrpc_jwt_cache_bytes").await;
            assert!(bytes <= max_bytes as f64, "{bytes} bytes after {i} tokens");
            most = most.max(bytes);
        }
    }
    let entries = metric(&ctx, "pgrpc_jwt_cache_entries").await;
    // The bound binds (200 tokens of ~1 KB do not fit), and the cache still
    // holds most of what fits: it evicts a tenth at a time, not all.
    assert!(
        most > 0.8 * max_bytes as f64,
        "{most} bytes at most: never near the bound"
    );
    assert!((10.0..200.0).contains(&entries), "{entries} entries");
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_misses_total").await, 200.0);
}

#[actix_web::test]
async fn jwt_cache_hot_token_keeps_hitting_through_a_flood() {
    let ctx = setup_with("[jwt]\ncache_max_bytes = 20000\n").await;
    let app = ctx.app().await;
    let hot = seed_like(&ctx, 100_000);
    for i in 0..100 {
        for token in [&seed_like(&ctx, i), &hot] {
            let r = send(&app, bearer(get("/rpc/add?a=1"), token)).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    // The hot token missed once (its first use); each flood token once.
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_hits_total").await, 99.0);
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_misses_total").await, 101.0);
}

#[actix_web::test]
async fn jwt_cache_hits_give_sql_the_same_claims() {
    // A nested role claim: request.jwt.claims gets the role at the top.
    let ctx = setup_with("[jwt]\nrole_claim = \"app.role\"\n").await;
    let app = ctx.app().await;
    let (iat, exp) = (now(), now() + 600);
    let token = ctx.token(json!({"sub": "7", "app": {"role": "app_user"}, "iat": iat, "exp": exp}));
    let expected = json!({"sub": "7", "app": {"role": "app_user"}, "iat": iat, "exp": exp, "role": "app_user"});
    for round in ["miss", "hit"] {
        let r = send(&app, bearer(get("/rpc/context"), &token)).await;
        assert_eq!(r.status, 200, "{round}: {}", r.body);
        assert_eq!(r.json()["user"], "app_user", "{round}");
        let claims: &Value = &r.json()["claims"];
        assert_eq!(claims, &expected, "{round}");
        // The role is added last, as PostgREST-style SQL may read it.
        let keys: Vec<String> = claims
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.last().map(String::as_str), Some("role"), "{round}");
    }
    // No role claim: anonymous, keeping the claims, from the cache too.
    let anon = ctx.token(json!({"sub": "8", "iat": iat, "exp": exp}));
    for round in ["miss", "hit"] {
        let r = send(&app, bearer(get("/rpc/context"), &anon)).await;
        assert_eq!(r.json()["user"], "web_anon", "{round}");
        assert_eq!(
            r.json()["claims"],
            json!({"sub": "8", "iat": iat, "exp": exp, "role": "web_anon"}),
            "{round}"
        );
    }
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_hits_total").await, 2.0);
}

#[actix_web::test]
async fn jwt_cache_bounds_are_settings() {
    let load = |toml: &str, env: &[(&str, &str)]| {
        Config::from_toml(
            toml,
            std::path::Path::new("test.toml"),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .map(|(c, _)| c)
    };
    let c = load("", &[]).expect("defaults");
    assert_eq!(c.jwt.cache_max_bytes, 2 * 1024 * 1024);
    assert_eq!(c.jwt.cache_max_entries, 10_000);
    assert_eq!(c.jwt.max_ended_sessions, 100_000);
    let c = load(
        "[jwt]\ncache_max_bytes = 1000\n",
        &[
            ("PGRPC_JWT_CACHE_MAX_BYTES", "5000"),
            ("PGRPC_JWT_MAX_ENDED_SESSIONS", "10"),
        ],
    )
    .expect("env overrides");
    assert_eq!(c.jwt.cache_max_bytes, 5000);
    assert_eq!(c.jwt.max_ended_sessions, 10);
    let e = load("[jwt]\nmax_ended_sessions = 0\n", &[]).expect_err("zero");
    assert!(e.to_string().contains("jwt.max_ended_sessions"), "{e}");

    // cache_max_bytes = 0 turns the cache off: no hit, gauges at 0.
    let ctx = setup_with("[jwt]\ncache_max_bytes = 0\n").await;
    let app = ctx.app().await;
    let token = seed_like(&ctx, 1);
    for _ in 0..3 {
        assert_eq!(
            send(&app, bearer(get("/rpc/add?a=1"), &token)).await.status,
            200
        );
    }
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_hits_total").await, 0.0);
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_entries").await, 0.0);
    assert_eq!(metric(&ctx, "pgrpc_jwt_cache_bytes").await, 0.0);
}
