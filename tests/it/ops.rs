// Operations: CORS, Server-Timing, the admin server (live, ready, metrics,
// schema cache), and config reloads (SIGUSR2, NOTIFY 'reload config').

use std::time::Duration;

use actix_web::test::{self, TestRequest};
use actix_web::App;
use serde_json::json;

use crate::harness::*;

#[actix_web::test]
async fn cors_preflight_lists_authorization_explicitly() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/rpc/add")
            .insert_header(("origin", "https://app.example"))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header((
                "access-control-request-headers",
                "authorization, content-type, x-custom",
            )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let methods = r.header("access-control-allow-methods").expect("methods");
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = r
        .header("access-control-allow-headers")
        .expect("headers")
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(
        !headers.trim().eq("*"),
        "a bare * does not cover Authorization"
    );
    assert!(
        headers.contains("x-custom"),
        "requested headers are allowed: {headers}"
    );
    assert!(r.header("access-control-max-age").is_some());
}

#[actix_web::test]
async fn cors_actual_request_exposes_headers_and_preflight_skips_auth() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/numbers", r#"{"n": 2}"#).insert_header(("origin", "https://app.example")),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let exposed = r.header("access-control-expose-headers").expect("expose");
    for h in [
        "Content-Range",
        "Retry-After",
        "RateLimit",
        "RateLimit-Policy",
    ] {
        assert!(exposed.split(", ").any(|e| e == h), "{h}: {exposed}");
    }
    // A preflight carries no credentials: a bad token must not break it.
    let r = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/rpc/add")
            .insert_header(("origin", "https://app.example"))
            .insert_header(("authorization", "Bearer nonsense"))
            .insert_header(("access-control-request-method", "POST")),
    )
    .await;
    assert_eq!(r.status, 200);
    // Without Origin, no CORS headers at all.
    let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    assert!(r.header("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn cors_allowlist_echoes_only_listed_origins() {
    let ctx = setup_with("[server]\ncors_allowed_origins = [\"https://good.example\"]").await;
    let app = ctx.app().await;
    let good = send(
        &app,
        post("/rpc/add", r#"{"a": 1}"#).insert_header(("origin", "https://good.example")),
    )
    .await;
    assert_eq!(
        good.header("access-control-allow-origin").as_deref(),
        Some("https://good.example")
    );
    assert!(good.header_all("vary").iter().any(|v| v.contains("Origin")));
    let bad = send(
        &app,
        post("/rpc/add", r#"{"a": 1}"#).insert_header(("origin", "https://evil.example")),
    )
    .await;
    assert_eq!(
        bad.status, 200,
        "CORS is enforced by the browser, not by refusing"
    );
    assert!(bad.header("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn server_timing_names_each_stage_and_can_be_turned_off() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    let timing = r.header("server-timing").expect("server-timing");
    for stage in ["jwt", "parse", "plan", "transaction", "response"] {
        assert!(
            timing.contains(&format!("{stage};dur=")),
            "{stage} missing in {timing}"
        );
    }
    let errors = send(&app, post("/rpc/nope", "{}")).await;
    assert!(
        errors.header("server-timing").is_some(),
        "errors carry timings too"
    );
    let ctx = setup_with("[server]\ntiming = false").await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    assert!(r.header("server-timing").is_none());
}

#[actix_web::test]
async fn admin_live_ready_metrics_and_schema_cache() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let admin =
        test::init_service(App::new().configure(pgrpc::http::admin::routes(ctx.state.clone())))
            .await;
    assert_eq!(send(&admin, get("/live")).await.status, 200);
    assert_eq!(send(&admin, get("/ready")).await.status, 200);

    for _ in 0..3 {
        send(&app, post("/rpc/add", r#"{"a": 1}"#)).await;
    }
    send(&app, post("/rpc/raise_plain", "{}")).await;
    let token = ctx.token(json!({"role": "web_anon", "exp": 4_000_000_000u64}));
    for _ in 0..2 {
        send(&app, bearer(post("/rpc/add", r#"{"a": 1}"#), &token)).await;
    }
    let m = send(&admin, get("/metrics")).await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .expect("type")
        .starts_with("text/plain"));
    let text = m.body;
    assert!(
        text.contains(r#"pgrpc_requests_total{function="add",status="200"} 5"#),
        "{text}"
    );
    assert!(
        text.contains(r#"pgrpc_requests_total{function="raise_plain",status="400"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("pgrpc_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("pgrpc_pool_size"), "{text}");
    assert!(text.contains("pgrpc_pool_available"), "{text}");
    assert!(text.contains("pgrpc_pool_waiting"), "{text}");
    assert!(text.contains("pgrpc_pool_timeouts_total 0"), "{text}");
    assert!(text.contains("pgrpc_schema_cache_loads_total 1"), "{text}");
    assert!(
        text.contains("pgrpc_jwt_cache_hits_total 1"),
        "second use of the token is a hit: {text}"
    );
    assert!(text.contains("pgrpc_jwt_cache_misses_total 1"), "{text}");

    let cache = send(&admin, get("/schema_cache")).await;
    assert_eq!(cache.status, 200);
    let doc = cache.json();
    let add = &doc["functions"]["api"]["add"][0];
    assert_eq!(add["name"], "add");
    assert_eq!(add["volatility"], "immutable");
}

#[actix_web::test]
async fn ready_is_503_when_the_database_is_unreachable() {
    let ctx = setup().await;
    let mut bad = ctx.db.config("authenticator");
    bad.dbname("no_such_database");
    let pool = pgrpc::db::pool(bad, 1, Duration::from_secs(1));
    let state = actix_web::web::Data::new(pgrpc::http::AppState::new(
        ctx.state.config.clone(),
        pool,
        ctx.state.jwt.load_full(),
    ));
    state.cache.store(ctx.state.cache.load_full());
    let admin =
        test::init_service(App::new().configure(pgrpc::http::admin::routes(state.clone()))).await;
    assert_eq!(send(&admin, get("/live")).await.status, 200);
    assert_eq!(send(&admin, get("/ready")).await.status, 503);
    // Not loaded yet is not ready either.
    state.cache.store(None);
    assert_eq!(send(&admin, get("/ready")).await.status, 503);
}

// ---- the real binary: config reload -------------------------------------

fn start_gateway(config: &str) -> Gateway {
    Gateway::start(config, &[])
}

fn status_with_token(port: u16, token: &str) -> u16 {
    match ureq::post(&format!("http://127.0.0.1:{port}/rpc/nope"))
        .set("authorization", &format!("Bearer {token}"))
        .send_string("{}")
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("request failed: {e}"),
    }
}

fn sign(secret: &str) -> String {
    let jwt =
        pgrpc::jwt::Jwt::new(pgrpc::jwt::JwtSettings::with_secret(secret.as_bytes())).expect("jwt");
    let serde_json::Value::Object(claims) = json!({"role": "web_anon", "exp": 4_000_000_000u64})
    else {
        unreachable!()
    };
    jwt.sign(claims).expect("sign")
}

#[test]
fn sigusr2_and_notify_reload_the_jwt_keys_without_restart() {
    let a = "reload-secret-a-reload-secret-a-0123456789";
    let b = "reload-secret-b-reload-secret-b-0123456789";
    let c = "reload-secret-c-reload-secret-c-0123456789";
    let gw = start_gateway(&format!("[jwt]\nsecret = \"{a}\"\n"));
    // A valid token reaches the planner (404 for the unknown function); a
    // refused one stops at the JWT stage (401).
    assert_eq!(status_with_token(gw.port, &sign(a)), 404);
    assert_eq!(status_with_token(gw.port, &sign(b)), 401);

    std::fs::write(
        gw.dir.path().join("config.toml"),
        format!("[jwt]\nsecret = \"{b}\"\n"),
    )
    .expect("rewrite");
    gw.signal(libc::SIGUSR2);
    assert!(
        wait_until(Duration::from_secs(10), || status_with_token(
            gw.port,
            &sign(b)
        ) == 404),
        "SIGUSR2 did not load the new secret"
    );
    assert_eq!(
        status_with_token(gw.port, &sign(a)),
        401,
        "the old secret is gone"
    );

    // An invalid config is refused as a whole: the current keys stay.
    std::fs::write(
        gw.dir.path().join("config.toml"),
        "[jwt]\nsecret = \"short\"\n",
    )
    .expect("rewrite");
    gw.signal(libc::SIGUSR2);
    std::fs::write(
        gw.dir.path().join("config.toml"),
        format!("[jwt]\nsecret = \"{c}\"\n"),
    )
    .expect("rewrite");
    // NOTIFY pgrpc, 'reload config' through the database.
    gw.psql("notify pgrpc, 'reload config'");
    assert!(
        wait_until(Duration::from_secs(10), || status_with_token(
            gw.port,
            &sign(c)
        ) == 404),
        "NOTIFY 'reload config' did not load the new secret"
    );
    assert_eq!(status_with_token(gw.port, &sign(b)), 401);
}

#[test]
fn json_logs_have_one_line_per_request_and_never_secrets() {
    let gw = Gateway::start("[log]\nformat = \"json\"\n", &[]);
    gw.psql(
        "create function api.login_like(username text, password text) returns int \
         language sql immutable as $$ select 1 $$; \
         grant execute on function api.login_like(text, text) to web_anon;",
    );
    let token = sign("not-the-gateway-secret-but-a-token-0123456789");
    let password = "hunter2-very-secret-password";
    // ureq's own error type, as the matches below want it.
    #[allow(clippy::result_large_err)]
    let call = || {
        ureq::post(&format!(
            "http://127.0.0.1:{}/rpc/login_like?debug=query-secret",
            gw.port
        ))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json")
        .send_string(&format!(
            r#"{{"username": "ann", "password": "{password}"}}"#
        ))
    };
    // The token is not the gateway's, so this is a 401; then an anonymous 200.
    assert!(wait_until(Duration::from_secs(10), || matches!(
        call(),
        Err(ureq::Error::Status(401, _))
    )));
    // Anonymous, until the new function is in the schema cache.
    let ok = wait_until(Duration::from_secs(10), || {
        ureq::post(&format!("http://127.0.0.1:{}/rpc/login_like", gw.port))
            .set("content-type", "application/json")
            .send_string(&format!(
                r#"{{"username": "ann", "password": "{password}"}}"#
            ))
            .is_ok()
    });
    assert!(ok, "the anonymous call never succeeded");
    let found = wait_until(Duration::from_secs(10), || {
        gw.log()
            .lines()
            .any(|l| l.contains("\"status\":200") && l.contains("login_like"))
    });
    assert!(found, "no request line for the 200:\n{}", gw.log());
    let log = gw.log();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    let request_lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "pgrpc::request")
        .collect();
    let line = request_lines
        .iter()
        .find(|v| v["status"] == 200)
        .expect("a 200 request line");
    for field in [
        "method",
        "path",
        "function",
        "role",
        "status",
        "duration_ms",
    ] {
        assert!(line.get(field).is_some(), "{field} missing in {line}");
    }
    assert_eq!(line["function"], "login_like");
    assert_eq!(line["role"], "web_anon");
    assert!(
        request_lines.iter().any(|v| v["status"] == 401),
        "the refused call is logged too"
    );
    assert!(!log.contains(password), "a password reached the log");
    assert!(!log.contains(&token), "a token reached the log");
    assert!(
        !log.contains("query-secret"),
        "the query string reached the log"
    );
}
