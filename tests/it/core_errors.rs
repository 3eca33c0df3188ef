// Request errors through HTTP: unknown functions and arguments, unreachable schemas, bad bodies, casts, limits, methods.

use actix_web::http::Method;
use actix_web::test::TestRequest;

use crate::harness::*;

/// Assert an error response: its status, its code, and a body made of exactly
/// `code`, `message`, `details` and `hint`, with no internal SQL in any of them.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8"),
        "{}",
        r.body
    );
    let body = r.json();
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not an object: {}", r.body));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "details", "hint", "message"], "{}", r.body);
    assert_eq!(body["code"], code, "{}", r.body);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
    assert_no_leak(r);
}

/// Nothing of the statement the gateway built may reach the client.
pub fn assert_no_leak(r: &Resp) {
    let lower = r.body.to_lowercase();
    for internal in [
        "pgrst_call",
        "pgrst_args",
        "pgrst_scalar",
        "json_to_record",
        "set_config",
        "select ",
        "lateral",
    ] {
        assert!(!lower.contains(internal), "leaks {internal:?}: {}", r.body);
    }
}

fn method(m: &str, path: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::from_bytes(m.as_bytes()).expect("method"))
        .uri(path)
}

#[actix_web::test]
async fn unknown_function_is_404_with_a_close_name_hint() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/helo", r#"{"name": "x"}"#)).await;
    assert_error(&r, 404, "PGRST202");
    assert_eq!(
        r.json()["hint"],
        "Perhaps you meant to call the function api.hello",
        "{}",
        r.body
    );
    let r = send(&app, get("/rpc/helo?name=x")).await;
    assert_error(&r, 404, "PGRST202");

    // Nothing close: no hint.
    let r = send(&app, post("/rpc/zzzzzzzzzz", "{}")).await;
    assert_error(&r, 404, "PGRST202");
    assert!(r.json()["hint"].is_null(), "{}", r.body);
}

#[actix_web::test]
async fn unknown_argument_is_404_with_the_parameter_hint() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": 1, "c": 2}"#)).await;
    assert_error(&r, 404, "PGRST202");
    let hint = r.json()["hint"].as_str().expect("hint").to_string();
    assert!(hint.contains("api.add(a, b)"), "{hint}");
    // A required argument missing is the same: no overload takes this set.
    let r = send(&app, post("/rpc/add", r#"{"b": 2}"#)).await;
    assert_error(&r, 404, "PGRST202");
    let r = send(&app, get("/rpc/hello")).await;
    assert_error(&r, 404, "PGRST202");
}

#[actix_web::test]
async fn ambiguous_overloads_are_300() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/over", r#"{"x": 1}"#)).await;
    assert_error(&r, 300, "PGRST203");
    let r = send(&app, get("/rpc/over?x=1")).await;
    assert_error(&r, 300, "PGRST203");
}

#[actix_web::test]
async fn only_exposed_schemas_are_reachable() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for path in [
        "/rpc/test_private.hidden",
        "/rpc/pgrpc.notify_ddl",
        "/rpc/api.add",
        "/rpc/%22add%22",
        "/rpc/..%2Fx",
        "/rpc/..%2Ftest_private%2Fhidden",
        "/rpc/%2E%2E/test_private/hidden",
        "/rpc/hidden",
        "/rpc/notify_ddl",
        "/rpc/",
        "/rpc",
        "/rpc/add/extra",
        "/test_private/hidden",
    ] {
        for req in [post(path, r#"{"a": 1}"#), get(path)] {
            let r = send(&app, req).await;
            assert_eq!(r.status, 404, "{path}: {}", r.body);
            let code = r.code();
            assert!(
                code == "PGRST202" || code == "PGRST125",
                "{path}: {}",
                r.body
            );
            assert_error(&r, 404, &code);
            assert!(
                !r.body.contains("42"),
                "{path}: no result may leak: {}",
                r.body
            );
        }
    }
    // A function of a private schema is not reachable by profile either.
    let r = send(
        &app,
        post("/rpc/hidden", "{}").insert_header(("Content-Profile", "test_private")),
    )
    .await;
    assert_error(&r, 406, "PGRST106");
    let r = send(
        &app,
        get("/rpc/hidden").insert_header(("Accept-Profile", "test_private")),
    )
    .await;
    assert_error(&r, 406, "PGRST106");
    assert!(
        r.json()["hint"].as_str().expect("hint").contains("api"),
        "{}",
        r.body
    );
    // Naming the exposed schema explicitly works and is echoed back.
    let r = send(
        &app,
        post("/rpc/add", r#"{"a": 1}"#).insert_header(("Content-Profile", "api")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-profile").as_deref(), Some("api"));
}

#[actix_web::test]
async fn malformed_json_is_400() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for body in [r#"{"a": 1"#, "{a: 1}", "nope", r#"{"a": 1} trailing"#] {
        let r = send(&app, post("/rpc/add", body)).await;
        assert_error(&r, 400, "PGRST102");
    }
    // Also for a function that takes the whole body.
    let r = send(&app, post("/rpc/echo_json", "[1,")).await;
    assert_error(&r, 400, "PGRST102");
}

#[actix_web::test]
async fn non_object_body_for_named_arguments_is_400() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for body in ["[1, 2]", r#"[{"a": 1}]"#, "1", r#""a""#, "null"] {
        let r = send(&app, post("/rpc/add", body)).await;
        assert_error(&r, 400, "PGRST102");
    }
}

#[actix_web::test]
async fn unsupported_content_type_is_400() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for ct in [
        "text/plain",
        "text/csv",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let r = send(
            &app,
            TestRequest::post()
                .uri("/rpc/add")
                .insert_header(("content-type", ct))
                .set_payload(r#"{"a": 1}"#),
        )
        .await;
        assert_error(&r, 400, "PGRST102");
    }
}

#[actix_web::test]
async fn values_postgres_cannot_cast_are_400_with_their_sqlstate() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": "x"}"#)).await;
    assert_error(&r, 400, "22P02");
    assert!(
        r.json()["message"]
            .as_str()
            .expect("message")
            .contains("integer"),
        "{}",
        r.body
    );
    let r = send(&app, get("/rpc/add?a=1.5")).await;
    assert_error(&r, 400, "22P02");
    let r = send(&app, get("/rpc/arr_len?xs=1&xs=two")).await;
    assert_error(&r, 400, "22P02");
    let r = send(&app, post("/rpc/arr_len", r#"{"xs": "not an array"}"#)).await;
    assert_error(&r, 400, "22P02");

    // Dates: bad syntax and an impossible day have their own SQLSTATEs.
    let base = "n=1&b=true&j=1&t=%7B%7D";
    let r = send(&app, get(&format!("/rpc/typed?{base}&d=notadate"))).await;
    assert_error(&r, 400, "22007");
    let r = send(&app, get(&format!("/rpc/typed?{base}&d=2023-02-30"))).await;
    assert_error(&r, 400, "22008");
    let r = send(
        &app,
        get(&format!("/rpc/typed?{base}&d=2023-02-28&b=maybe")),
    )
    .await;
    assert_error(&r, 400, "22P02");

    // Overflow is a cast failure too.
    let r = send(&app, post("/rpc/add", r#"{"a": 99999999999}"#)).await;
    assert_error(&r, 400, "22003");
}

#[actix_web::test]
async fn division_by_zero_is_400() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/divide", r#"{"a": 1, "b": 0}"#)).await;
    assert_error(&r, 400, "22012");
    let r = send(&app, get("/rpc/divide?a=6&b=3")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "2");
}

#[actix_web::test]
async fn body_over_the_limit_is_413_before_the_database() {
    let ctx = setup_with("[server]\nmax_body_bytes = 100").await;
    let app = ctx.app().await;
    let name = "x".repeat(200);
    let r = send(
        &app,
        post("/rpc/add_item", &format!(r#"{{"name": "{name}"}}"#)),
    )
    .await;
    assert_error(&r, 413, "PGRST150");
    // Without a Content-Length the limit still holds while reading.
    let mut req = TestRequest::post()
        .uri("/rpc/add_item")
        .insert_header(("content-type", "application/json"))
        .set_payload(format!(r#"{{"name": "{name}"}}"#))
        .to_request();
    req.headers_mut()
        .remove(actix_web::http::header::CONTENT_LENGTH);
    let res = actix_web::test::call_service(&app, req).await;
    assert_eq!(res.status().as_u16(), 413);
    // Exactly at the limit is accepted.
    let at_limit = format!(
        r#"{{"name": "{}"}}"#,
        "y".repeat(100 - r#"{"name": ""}"#.len())
    );
    assert_eq!(at_limit.len(), 100);
    let r = send(&app, post("/rpc/add_item", &at_limit)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(&app, post("/rpc/add_item", &format!("{at_limit} "))).await;
    assert_error(&r, 413, "PGRST150");
    // A body within the limit goes through.
    let r = send(&app, post("/rpc/add_item", r#"{"name": "small"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let admin = ctx.db.admin().await;
    let names: Vec<String> = admin
        .query("select name from test_data.items order by id", &[])
        .await
        .expect("items")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["y".repeat(88), "small".to_string()]);
}

#[actix_web::test]
async fn other_methods_are_405_with_allow() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for m in ["DELETE", "PUT", "PATCH"] {
        let r = send(
            &app,
            method(m, "/rpc/add_item").set_payload(r#"{"name": "x"}"#),
        )
        .await;
        assert_error(&r, 405, "PGRST101");
        let allow = r.header("allow").expect("Allow header");
        assert!(
            allow.contains("POST") && allow.contains("OPTIONS"),
            "{m}: {allow}"
        );
        assert!(!allow.contains(m), "{m}: {allow}");
    }
    assert_eq!(
        ctx.count("select count(*) from test_data.items").await,
        0,
        "no method but POST may write"
    );
}

#[actix_web::test]
async fn get_on_a_volatile_function_is_405() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/add_item?name=x")).await;
    assert_error(&r, 405, "PGRST101");
    assert_eq!(r.header("allow").as_deref(), Some("OPTIONS,POST"));
    let r = send(&app, get("/rpc/nothing")).await;
    assert_error(&r, 405, "PGRST101");
    assert_eq!(ctx.count("select count(*) from test_data.items").await, 0);
}

#[actix_web::test]
async fn error_bodies_never_leak_the_generated_statement() {
    let ctx = setup().await;
    let app = ctx.app().await;
    // Every kind of database error a caller can provoke with arguments alone.
    for (path, body) in [
        ("/rpc/add", r#"{"a": {"nested": 1}}"#),
        ("/rpc/add", r#"{"a": [1, 2]}"#),
        ("/rpc/arr_len", r#"{"xs": [[1], [2, 3]]}"#),
        ("/rpc/arr_len", r#"{"xs": {"a": 1}}"#),
        ("/rpc/point", r#"{"x": true, "y": 1}"#),
        (
            "/rpc/typed",
            r#"{"n": "x", "d": "y", "b": "z", "j": 1, "t": 2}"#,
        ),
        ("/rpc/hello", r#"{"name": "\u0000"}"#),
        ("/rpc/variadic_sum", r#"{"nums": 5}"#),
    ] {
        let r = send(&app, post(path, body)).await;
        assert!(r.status >= 400, "{path} {body}: {}", r.body);
        let code = r.code();
        assert_error(&r, r.status, &code);
    }
}

/// Regression: a database error answered 500 passed PostgreSQL's message,
/// detail and hint to the client, which can name tables, functions and
/// values. The client now gets the SQLSTATE with a generic message.
#[actix_web::test]
async fn server_side_500_hides_the_database_texts() {
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(
            "create function api.broken() returns int language plpgsql volatile as $$
             begin
               raise sqlstate 'XX000' using message = 'corrupt page in secret_table',
                 detail = 'block 7 of private.accounts', hint = 'restore from backup';
             end $$;
             grant execute on function api.broken() to web_anon;",
        )
        .await
        .expect("create");
    ctx.state.load_schema_cache().await.expect("reload");
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/broken", "{}")).await;
    assert_error(&r, 500, "XX000");
    assert_eq!(
        r.json(),
        serde_json::json!({"code": "XX000", "message": "Internal server error", "details": null, "hint": null})
    );
}
