// Function calls through HTTP: arguments, methods, result shapes and the request settings SQL sees.

use std::time::Duration;

use actix_web::test::TestRequest;
use actix_web::web;
use pgrpc::http::AppState;
use serde_json::json;

use crate::harness::*;

#[actix_web::test]
async fn scalar_with_named_arguments_and_default() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": 2, "b": 3}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "5");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    let r = send(&app, post("/rpc/add", r#"{"a": 2}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "3");
    // Key order does not matter: arguments are named, not positional.
    let r = send(&app, post("/rpc/add", r#"{"b": 10, "a": 1}"#)).await;
    assert_eq!(r.body, "11");
}

#[actix_web::test]
async fn empty_body_is_an_empty_object() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/pairs", "")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(&app, TestRequest::post().uri("/rpc/maybe_null")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "null");
}

#[actix_web::test]
async fn single_unnamed_json_parameter_gets_the_whole_body() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for f in ["echo_json", "echo_jsonb"] {
        let r = send(
            &app,
            post(
                &format!("/rpc/{f}"),
                r#"{"a": 1, "nested": {"b": [true, null]}}"#,
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(
            r.json(),
            json!({"a": 1, "nested": {"b": [true, null]}}),
            "{f}"
        );
        let r = send(
            &app,
            post(&format!("/rpc/{f}"), r#"[1, "two", {"three": 3}]"#),
        )
        .await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.json(), json!([1, "two", {"three": 3}]), "{f}");
        let r = send(&app, post(&format!("/rpc/{f}"), "42")).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.json(), json!(42), "{f}");
    }
}

#[actix_web::test]
async fn get_casts_query_strings_to_parameter_types() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/hello?name=World%20%26%20you")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!("Hello, World & you"));

    let r = send(&app, get("/rpc/add?a=40&b=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "42");

    let r = send(
        &app,
        get("/rpc/typed?n=1.5&d=2024-02-29&b=true&j=%7B%22k%22%3A1%7D&t=%7Ba%2C%22b%20c%22%7D"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A json/jsonb argument from the query string stays a JSON string, as in
    // PostgREST (every query value is text; PostgREST#1552).
    assert_eq!(
        r.json(),
        json!({"n": 1.5, "d": "2024-02-29", "b": true, "j": "{\"k\":1}", "t": ["a", "b c"]})
    );

    // The same over POST, where JSON values keep their JSON type.
    let r = send(
        &app,
        post(
            "/rpc/typed",
            r#"{"n": "2.25", "d": "2024-01-31", "b": false, "j": {"k": [1, 2]}, "t": ["x", "y"]}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"n": 2.25, "d": "2024-01-31", "b": false, "j": {"k": [1, 2]}, "t": ["x", "y"]})
    );
}

#[actix_web::test]
async fn repeated_query_keys_fill_array_and_variadic_parameters() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/arr_len?xs=1&xs=2&xs=3")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "3");
    // One value in array-literal syntax works too.
    let r = send(&app, get("/rpc/arr_len?xs=%7B4,5%7D")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "2");

    let r = send(&app, get("/rpc/variadic_sum?nums=1&nums=2&nums=39")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "42");
    // POST takes the variadic parameter as a JSON array.
    let r = send(&app, post("/rpc/variadic_sum", r#"{"nums": [10, 20]}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "30");
}

#[actix_web::test]
async fn head_answers_like_get_without_a_body() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let g = send(&app, get("/rpc/points?n=2")).await;
    let h = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/rpc/points?n=2"),
    )
    .await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(h.status, 200);
    assert_eq!(h.body, "");
    assert_eq!(h.header("content-type"), g.header("content-type"));
    assert_eq!(h.header("content-range"), g.header("content-range"));
    assert_eq!(h.header("content-range").as_deref(), Some("0-1/*"));

    // HEAD on a volatile function is refused like GET.
    let h = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/rpc/nothing"),
    )
    .await;
    assert_eq!(h.status, 405);
}

#[actix_web::test]
async fn post_to_stable_function_runs_read_only() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/context", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["read_only"], "on");
    let r = send(&app, get("/rpc/context")).await;
    assert_eq!(r.json()["read_only"], "on");
    let r = send(&app, post("/rpc/context_volatile", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["read_only"], "off");

    let r = send(&app, post("/rpc/stable_write", "{}")).await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.code(), "25006");
    assert_eq!(ctx.count("select count(*) from test_data.items").await, 0);
}

#[actix_web::test]
async fn options_lists_allowed_methods() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let options = |path: &str| {
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri(path)
    };
    for (f, allow) in [
        ("hello", "OPTIONS,GET,HEAD,POST"),
        ("add", "OPTIONS,GET,HEAD,POST"),
        ("add_item", "OPTIONS,POST"),
        ("nothing", "OPTIONS,POST"),
    ] {
        let r = send(&app, options(&format!("/rpc/{f}"))).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{f}");
        assert_eq!(r.body, "", "{f}");
    }
    let r = send(&app, options("/rpc/no_such_function")).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[actix_web::test]
async fn options_does_not_touch_the_database() {
    let ctx = setup().await;
    // Same config and cache, but a pool that can never connect: OPTIONS still
    // answers, while a real call shows the pool is indeed unusable.
    let mut nowhere = tokio_postgres::Config::new();
    nowhere
        .host_path("/nonexistent-pgrpc-socket-dir")
        .port(5432)
        .user("authenticator")
        .dbname("nowhere")
        .connect_timeout(Duration::from_secs(1));
    let pool = pgrpc::db::pool(nowhere, 1, Duration::from_secs(1));
    let state = web::Data::new(AppState::new(
        ctx.state.config.clone(),
        pool,
        ctx.state.jwt.load_full(),
    ));
    state.cache.store(ctx.state.cache.load_full());
    let app = actix_web::test::init_service(pgrpc::http::app(state)).await;
    let r = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/rpc/hello"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("allow").as_deref(), Some("OPTIONS,GET,HEAD,POST"));
    assert_eq!(r.body, "");
    let r = send(&app, get("/rpc/hello?name=x")).await;
    assert_eq!(r.status, 503, "{}", r.body);
}

#[actix_web::test]
async fn scalar_and_null_scalar() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/hello", r#"{"name": "a \"quoted\" name"}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!("Hello, a \"quoted\" name"));
    assert_eq!(r.header("content-range"), None, "a scalar is not a set");
    let r = send(&app, post("/rpc/maybe_null", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "null");
}

#[actix_web::test]
async fn composite_is_an_object_and_out_params_too() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/point", r#"{"x": 1, "y": 2}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"x": 1, "y": 2}));
    assert_eq!(r.header("content-range"), None);

    let r = send(&app, post("/rpc/out_params", r#"{"a": 3}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"doubled": 6, "squared": 9}));
}

#[actix_web::test]
async fn sets_are_arrays_with_content_range() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/points", r#"{"n": 3}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{"x": 1, "y": 1}, {"x": 2, "y": 4}, {"x": 3, "y": 9}])
    );
    assert_eq!(r.header("content-range").as_deref(), Some("0-2/*"));

    let r = send(&app, post("/rpc/numbers", r#"{"n": 4}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([1, 2, 3, 4]));
    assert_eq!(r.header("content-range").as_deref(), Some("0-3/*"));

    let r = send(&app, post("/rpc/pairs", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{"x": 1, "label": "one"}, {"x": 2, "label": "two"}])
    );
    assert_eq!(r.header("content-range").as_deref(), Some("0-1/*"));

    // An empty set is an empty array, not null.
    for f in ["points", "numbers"] {
        let r = send(&app, post(&format!("/rpc/{f}"), r#"{"n": 0}"#)).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.json(), json!([]), "{f}");
        assert_eq!(r.header("content-range").as_deref(), Some("*/*"), "{f}");
    }
}

#[actix_web::test]
async fn void_is_204_without_body_or_content_type() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/nothing", "{}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, "");
    assert_eq!(r.header("content-type"), None);
    assert_eq!(r.header("content-range"), None);
}

#[actix_web::test]
async fn returns_record_is_an_object() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/as_record", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"f1": 1, "f2": "a"}));
}

#[actix_web::test]
async fn request_settings_are_visible_in_sql() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/context", "{}")
            .insert_header(("X-Custom-Thing", "Some Value"))
            .insert_header(("Cookie", "sid=abc; theme=dark")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["user"], "web_anon");
    assert_eq!(c["method"], "POST");
    assert_eq!(c["path"], "/rpc/context");
    assert_eq!(c["headers"]["x-custom-thing"], "Some Value", "{c}");
    assert_eq!(c["headers"]["content-type"], "application/json", "{c}");
    assert!(
        c["headers"]
            .as_object()
            .expect("headers object")
            .keys()
            .all(|k| *k == k.to_lowercase()),
        "header names are lower-cased: {c}"
    );
    assert_eq!(c["cookies"], json!({"sid": "abc", "theme": "dark"}));
    assert_eq!(c["claims"]["role"], "web_anon", "{c}");
    let search_path = c["search_path"].as_str().expect("search_path");
    assert!(
        search_path.trim_start_matches('"').starts_with("api"),
        "{search_path}"
    );

    let r = send(&app, get("/rpc/context")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = r.json();
    assert_eq!(c["method"], "GET");
    assert_eq!(c["path"], "/rpc/context");
    assert_eq!(c["cookies"], json!({}));
}

#[actix_web::test]
async fn single_output_column_is_still_an_object() {
    // Regression: RETURNS TABLE with one column, one OUT parameter and one
    // INOUT parameter were answered as bare values ([1, 2], 8), because
    // PostgreSQL returns the column's own type for them; PostgREST answers
    // rows with the named column.
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/one_col_table?n=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"x": 1}, {"x": 2}]));
    // A composite column stays one column, not expanded into its fields.
    let r = send(&app, get("/rpc/one_point_table")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"p": {"x": 1, "y": 2}}]));
    let r = send(&app, get("/rpc/one_out?a=4")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"doubled": 8}));
    let r = send(&app, get("/rpc/inout_param?a=4")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"a": 5}));
}

#[actix_web::test]
async fn setof_record_is_an_array_of_objects() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/setof_record")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{"column1": 1, "column2": "a"}, {"column1": 2, "column2": "b"}])
    );
    assert_eq!(r.header("content-range").as_deref(), Some("0-1/*"));
}

#[actix_web::test]
async fn names_needing_quotes_are_called_exactly() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/Weird%20Name", r#"{"camelCase": 3, "select": "x"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"camelCase": 3, "select": "x"}));
    let r = send(&app, get("/rpc/Weird%20Name?camelCase=4")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"camelCase": 4, "select": "kw"}));
    // Names are exact: no case folding.
    let r = send(&app, get("/rpc/weird%20name?camelcase=4")).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[actix_web::test]
async fn composite_and_enum_arguments() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/point_arg", r#"{"p": {"x": 2, "y": 3}, "m": "happy"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"sum": 5, "mood": "happy"}));
    let r = send(&app, get("/rpc/point_arg?p=(5,6)&m=sad")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"sum": 11, "mood": "sad"}));
    let r = send(
        &app,
        post("/rpc/point_arg", r#"{"p": {"x": 2, "y": 3}, "m": "angry"}"#),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "22P02");
}

#[actix_web::test]
async fn get_single_value_for_variadic_is_a_one_element_array() {
    // PostgREST's toRpcParams: a variadic parameter from the query string is
    // always an array, `?nums=5` included; here it reaches json_to_record as
    // the string "5" and fails with 22P02 (malformed array literal).
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/variadic_sum?nums=5")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "5");
}

#[actix_web::test]
async fn argument_values_are_bound_never_spliced() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let evil = r#"x'); drop table test_data.items; --"#;
    let r = send(
        &app,
        post("/rpc/add_item", &json!({"name": evil}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], evil);
    let r = send(
        &app,
        get("/rpc/hello?name=%27%29%3B%20select%20pg_sleep%2810%29%3B%20--"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!("Hello, '); select pg_sleep(10); --"));
    // Keys are matched against the catalog, never used as SQL.
    let r = send(
        &app,
        post(
            "/rpc/add",
            r#"{"a\" integer); drop table test_data.items; --": 1}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(ctx.count("select count(*) from test_data.items").await, 1);
}
