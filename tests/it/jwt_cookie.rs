// The token in a cookie (issue 15 point 4): jwt.cookie_name, the {token} Set-Cookie placeholder, CSRF checks on cookie-borne writes, CORS credentials, and a real headless Chromium signing in and out from another origin.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{register, PASSWORD};

const COOKIE: &str = "pgrpc_token";

/// The README's cookie wrappers around the seed's identify, created in the
/// test's own database (sql/ is not ours to change).
const COOKIE_FUNCTIONS: &str = r#"
create function api.cookie_login(username text, password text) returns auth.token_result
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_result auth.token_result := api.identify(cookie_login.username, cookie_login.password);
begin
  if v_result.token is not null then
    perform set_config('response.headers', json_build_array(json_build_object(
      'Set-Cookie', 'pgrpc_token={token}; Path=/; HttpOnly; Secure; SameSite=Lax'))::text, true);
  end if;
  return v_result;
end
$$;
grant execute on function api.cookie_login(text, text) to web_anon, app_user, app_admin;

create function api.cookie_logout() returns void
language sql volatile
set search_path = pg_catalog, pg_temp
as $$
  select set_config('response.headers',
    '[{"Set-Cookie": "pgrpc_token=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"}]', true);
$$;
grant execute on function api.cookie_logout() to web_anon, app_user, app_admin;

create function api.cookie_without_token() returns void
language sql volatile
as $$
  select set_config('response.headers', '[{"Set-Cookie": "pgrpc_token={token}"}]', true);
$$;
grant execute on function api.cookie_without_token() to web_anon;
"#;

async fn cookie_ctx(origins: &str) -> Ctx {
    let ctx = setup_with(&format!(
        "[jwt]\ncookie_name = \"{COOKIE}\"\n[server]\ncors_allowed_origins = [{origins}]\n"
    ))
    .await;
    ctx.db
        .admin()
        .await
        .batch_execute(COOKIE_FUNCTIONS)
        .await
        .expect("cookie functions");
    ctx.state.load_schema_cache().await.expect("reload cache");
    ctx
}

fn login_body(username: &str) -> String {
    json!({"username": username, "password": PASSWORD}).to_string()
}

fn with_cookie(req: actix_web::test::TestRequest, token: &str) -> actix_web::test::TestRequest {
    req.insert_header(("cookie", format!("theme=dark; {COOKIE}={token}")))
}

#[actix_web::test]
async fn login_sets_the_cookie_and_the_cookie_authenticates() {
    let ctx = cookie_ctx(r#""http://app.test""#).await;
    let app = ctx.app().await;
    register(&ctx, &app, "alice").await;

    let r = send(&app, post("/rpc/cookie_login", &login_body("alice"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(
        r.header_all("set-cookie"),
        [format!(
            "{COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Lax"
        )]
    );
    // A wrong password sets no cookie (and keeps identify's 401).
    let r = send(
        &app,
        post(
            "/rpc/cookie_login",
            &json!({"username": "alice", "password": "nope"}).to_string(),
        ),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.header_all("set-cookie").is_empty());

    // Reads need no Origin; the cookie alone is the caller.
    let r = send(&app, with_cookie(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "alice");
    // Without it: anonymous, and me refuses anonymous callers.
    let r = send(&app, get("/rpc/me")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // A bad cookie is refused like a bad header.
    let r = send(&app, with_cookie(get("/rpc/me"), "a.b.c")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "PGRST301");
    // An Authorization header wins over the cookie.
    let r = send(
        &app,
        with_cookie(get("/rpc/me"), &token).insert_header(("authorization", "Bearer a.b.c")),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);

    let r = send(
        &app,
        with_cookie(post("/rpc/cookie_logout", "{}"), &token)
            .insert_header(("origin", "http://app.test")),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        r.header_all("set-cookie"),
        [format!(
            "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"
        )]
    );
    // A cleared cookie is no token.
    let r = send(&app, with_cookie(get("/rpc/me"), "")).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.code(), "42501", "anonymous, not a bad token: {}", r.body);
}

#[actix_web::test]
async fn cookie_writes_need_an_allowed_origin() {
    let ctx = cookie_ctx(r#""http://app.test""#).await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let me = || with_cookie(post("/rpc/me", "{}"), &token);

    let r = send(&app, me().insert_header(("origin", "http://app.test"))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        &app,
        me().insert_header(("referer", "http://app.test/page?x=1")),
    )
    .await;
    assert_eq!(r.status, 200, "Referer stands in for Origin: {}", r.body);

    for (why, req) in [
        (
            "foreign origin",
            me().insert_header(("origin", "http://evil.test")),
        ),
        (
            "foreign origin, allowed referer",
            me().insert_header(("origin", "http://evil.test"))
                .insert_header(("referer", "http://app.test/")),
        ),
        ("opaque origin", me().insert_header(("origin", "null"))),
        (
            "foreign referer",
            me().insert_header(("referer", "http://evil.test/x")),
        ),
        ("neither header", me()),
    ] {
        let r = send(&app, req).await;
        assert_eq!(r.status, 403, "{why}: {}", r.body);
        assert_eq!(r.code(), "PGRST350", "{why}");
        assert_eq!(r.json()["message"], "Cross-site request refused", "{why}");
        assert!(
            r.json()["details"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("The token came from the cookie '{COOKIE}'")),
            "{why}: {}",
            r.body
        );
    }
    // The refused logout did not run: no cookie cleared.
    let r = send(
        &app,
        with_cookie(post("/rpc/cookie_logout", "{}"), &token)
            .insert_header(("origin", "http://evil.test")),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.header_all("set-cookie").is_empty());

    // The header is no ambient credential: no CSRF check for it.
    let r = send(
        &app,
        post("/rpc/me", "{}")
            .insert_header(("authorization", format!("Bearer {token}")))
            .insert_header(("origin", "http://evil.test")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Nor for reads.
    let r = send(
        &app,
        with_cookie(get("/rpc/me"), &token).insert_header(("origin", "http://evil.test")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[actix_web::test]
async fn an_empty_allowlist_allows_cookie_writes_from_the_same_origin_only() {
    let ctx = cookie_ctx("").await;
    let app = ctx.app().await;
    let token = register(&ctx, &app, "alice").await;
    let me = |origin: &str| {
        with_cookie(post("/rpc/me", "{}"), &token)
            .insert_header(("host", "api.test:3000"))
            .insert_header(("origin", origin.to_string()))
    };
    let r = send(&app, me("http://api.test:3000")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for origin in [
        "http://evil.test",
        "http://api.test:4000",
        "http://api.test",
    ] {
        let r = send(&app, me(origin)).await;
        assert_eq!(r.status, 403, "{origin}: {}", r.body);
        assert_eq!(r.code(), "PGRST350");
    }
    // And CORS gives no credentials to anyone with `*`.
    let r = send(
        &app,
        actix_web::test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/rpc/me")
            .insert_header(("origin", "http://evil.test"))
            .insert_header(("access-control-request-method", "POST")),
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[actix_web::test]
async fn cors_allows_credentials_for_listed_origins_only() {
    let ctx = cookie_ctx(r#""http://app.test""#).await;
    let app = ctx.app().await;
    let preflight = |origin: &str| {
        actix_web::test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/rpc/me")
            .insert_header(("origin", origin.to_string()))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "content-type"))
    };
    let r = send(&app, preflight("http://app.test")).await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("http://app.test")
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let r = send(&app, preflight("http://evil.test")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let r = send(
        &app,
        get("/rpc/me").insert_header(("origin", "http://app.test")),
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );

    // Without jwt.cookie_name: no credentials, and cookies are not read.
    let plain = setup_with("[server]\ncors_allowed_origins = [\"http://app.test\"]\n").await;
    let plain_app = plain.app().await;
    let r = send(&plain_app, preflight("http://app.test")).await;
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let token = register(&plain, &plain_app, "bob").await;
    let r = send(&plain_app, with_cookie(get("/rpc/me"), &token)).await;
    assert_eq!(r.status, 401, "the cookie is ignored: {}", r.body);
}

#[actix_web::test]
async fn a_token_placeholder_without_a_token_is_the_functions_mistake() {
    let ctx = cookie_ctx("").await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/cookie_without_token", "{}")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.code(), "PGRST111");
    assert!(r.header_all("set-cookie").is_empty());
}

/// The page another origin serves: sign in, call a protected function, log
/// out, call it again, then a wrong password (whose answer says how many
/// sign-ins are left); every answer goes into the DOM for `--dump-dom`.
const PAGE: &str = r#"<!doctype html>
<html><body><pre id="out">running</pre><script>
const api = "API_ORIGIN";
async function call(name, body) {
  const r = await fetch(api + "/rpc/" + name, {
    method: "POST",
    credentials: "include",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body || {}),
  });
  return {status: r.status, body: await r.text(), ratelimit: r.headers.get("RateLimit")};
}
(async () => {
  const out = {};
  try {
    out.before = await call("me");
    out.login = await call("cookie_login", {username: "alice", password: "PASSWORD"});
    out.script_sees_cookie = document.cookie.includes("pgrpc_token");
    out.me = await call("me");
    out.logout = await call("cookie_logout");
    out.after = await call("me");
    out.guess = await call("identify", {username: "alice", password: "wrong"});
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById("out").textContent = "RESULT" + JSON.stringify(out) + "END";
})();
</script></body></html>"#;

/// Headless Chromium from the distribution's packages.
fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Load `url` in a fresh headless Chromium and return what the page wrote.
fn run_page(chromium: &str, url: &str) -> Value {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            // Virtual time waits for the page's fetches, then the DOM is dumped.
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Bounded: a hung browser must not stall the suite.
    let exited = wait_until(Duration::from_secs(60), || {
        child.try_wait().map(|s| s.is_some()).unwrap_or(true)
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("chromium output");
    let dom = String::from_utf8_lossy(&out.stdout);
    let (Some(start), Some(end)) = (dom.find("RESULT"), dom.find("END")) else {
        panic!(
            "the page wrote no result (exited: {exited}):\n{dom}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The DOM dump escapes the JSON's quotes only as entities in attributes;
    // in a <pre> text node `&`, `<` and `>` are escaped.
    let json = dom[start + "RESULT".len()..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

#[actix_web::test]
async fn a_browser_on_another_origin_signs_in_and_out_with_the_cookie() {
    let Some(chromium) = chromium() else {
        if std::env::var("TESTS_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("TESTS_REQUIRE_TOOLS=1 but chromium is missing (apt-get install chromium)");
        }
        eprintln!("jwt_cookie: browser test skipped: no /usr/bin/chromium");
        return;
    };
    let api_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind api");
    let page_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind page");
    let api_port = api_listener.local_addr().expect("addr").port();
    let page_port = page_listener.local_addr().expect("addr").port();
    // The page is served as 127.0.0.1 (same site as the API: the site of an
    // IP address ignores the port) and as localhost (another site).
    let ctx = cookie_ctx(&format!(
        r#""http://127.0.0.1:{page_port}", "http://localhost:{page_port}""#
    ))
    .await;
    register(&ctx, &ctx.app().await, "alice").await;

    let state = ctx.state.clone();
    let api = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(
                pgrpc::http::cors::middleware,
            ))
            .configure(pgrpc::http::routes(state.clone()))
    })
    .workers(1)
    .disable_signals()
    .listen(api_listener)
    .expect("listen api")
    .run();
    let html = PAGE
        .replace("API_ORIGIN", &format!("http://127.0.0.1:{api_port}"))
        .replace("PASSWORD", PASSWORD);
    let page = actix_web::HttpServer::new(move || {
        let html = html.clone();
        actix_web::App::new().route(
            "/",
            actix_web::web::get().to(move || {
                let html = html.clone();
                async move {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(html)
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(page_listener)
    .expect("listen page")
    .run();
    let (api_handle, page_handle) = (api.handle(), page.handle());
    actix_web::rt::spawn(api);
    actix_web::rt::spawn(page);

    let same_site = format!("http://127.0.0.1:{page_port}/");
    let cross_site = format!("http://localhost:{page_port}/");
    let runs = actix_web::rt::task::spawn_blocking(move || {
        (
            run_page(chromium, &same_site),
            run_page(chromium, &cross_site),
        )
    })
    .await;
    api_handle.stop(true).await;
    page_handle.stop(true).await;
    let (same, cross) = runs.expect("browser runs");

    // Same site, other origin: the full flow.
    assert_eq!(same["error"], Value::Null, "{same}");
    assert_eq!(same["before"]["status"], 401, "{same}");
    assert_eq!(same["login"]["status"], 200, "{same}");
    assert_eq!(
        same["script_sees_cookie"], false,
        "HttpOnly keeps the token from scripts: {same}"
    );
    assert_eq!(
        same["me"]["status"], 200,
        "the cookie authenticates: {same}"
    );
    let me: Value =
        serde_json::from_str(same["me"]["body"].as_str().unwrap_or("null")).expect("me is JSON");
    assert_eq!(me["username"], "alice", "{same}");
    assert_eq!(same["logout"]["status"], 204, "{same}");
    assert_eq!(
        same["after"]["status"], 401,
        "after logout the cookie is gone: {same}"
    );
    // The shipped rate limit's state is readable by the page (CORS exposes
    // RateLimit), so it can say when to try again.
    assert_eq!(same["guess"]["status"], 401, "{same}");
    assert!(
        same["guess"]["ratelimit"]
            .as_str()
            .is_some_and(|v| v.starts_with(r#""api.identify";r="#)),
        "{same}"
    );

    // Another site: the login works, but SameSite=Lax keeps the browser from
    // storing (or sending) the cookie on cross-site fetches.
    assert_eq!(cross["error"], Value::Null, "{cross}");
    assert_eq!(cross["login"]["status"], 200, "{cross}");
    assert_eq!(cross["me"]["status"], 401, "no cookie cross-site: {cross}");
}
