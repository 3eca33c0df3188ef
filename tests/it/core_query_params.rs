// PostgREST's query-string grammar on function results: select, order, limit/offset, filters, and/or, Prefer: count, nulls=stripped.

use actix_web::http::Method;
use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::harness::*;

fn head(path: &str) -> TestRequest {
    TestRequest::default().method(Method::HEAD).uri(path)
}

/// The `id`s of a `people` answer, in order.
fn ids(r: &Resp) -> Vec<i64> {
    r.json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", r.body))
        .iter()
        .map(|row| row["id"].as_i64().expect("id"))
        .collect()
}

/// GET `/rpc/people?{query}` and the ids it answers, asserting 200.
async fn people<S, B>(app: &S, query: &str) -> Vec<i64>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let r = send(app, get(&format!("/rpc/people?{query}"))).await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    ids(&r)
}

fn assert_pgrst100(r: &Resp, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    assert_eq!(r.code(), "PGRST100", "{what}: {}", r.body);
}

#[actix_web::test]
async fn post_applies_select_order_and_limit_to_the_result() {
    // Found by the postgrest-js suite: POST ignored its query string and
    // answered every row with every column.
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post("/rpc/points?select=x&limit=2&order=x.desc", r#"{"n": 3}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"x": 3}, {"x": 2}]));
    assert_eq!(r.header("content-range").as_deref(), Some("0-1/*"));

    let r = send(&app, post("/rpc/points?x=gte.2&select=y", r#"{"n": 3}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"y": 4}, {"y": 9}]));
}

#[actix_web::test]
async fn get_separates_arguments_from_reserved_parameters_and_filters() {
    // Found by the client suites: limit=, select= and x=gt.1 were taken for
    // arguments and answered 404 PGRST202.
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/numbers?n=5&limit=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([1, 2]));

    let r = send(&app, get("/rpc/points?n=2&select=y")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"y": 1}, {"y": 4}]));

    let r = send(&app, get("/rpc/points?n=3&x=gt.1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"x": 2, "y": 4}, {"x": 3, "y": 9}]));

    // HEAD splits the same way.
    let r = send(&app, head("/rpc/points?n=3&x=gt.1&limit=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "");
    assert_eq!(r.header("content-range").as_deref(), Some("0-0/*"));
}

#[actix_web::test]
async fn the_value_decides_between_argument_and_filter() {
    // PostgREST's rule: a value that starts with an operator is a filter even
    // when the function has a parameter of that name, so the postgrest-js call
    // `.rpc('counted', {n: 4}, {get: true}).gt('n', 2)` works.
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/counted?n=4&n=gt.2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"n": 3, "sq": 9}, {"n": 4, "sq": 16}]));
    // Reserved names are never arguments, whatever their value.
    let r = send(&app, get("/rpc/counted?n=2&order=n.desc")).await;
    assert_eq!(r.json(), json!([{"n": 2, "sq": 4}, {"n": 1, "sq": 1}]));
}

#[actix_web::test]
async fn filter_operators() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let cases: &[(&str, &[i64])] = &[
        ("id=eq.2", &[2]),
        ("id=neq.2", &[1, 3, 4]),
        ("age=gt.30", &[1, 4]),
        ("age=gte.31", &[1, 4]),
        ("age=lt.31", &[2]),
        ("age=lte.31", &[1, 2]),
        ("name=like.*e*", &[4]),
        ("name=ilike.B*", &[2]),
        ("name=match.^[A-C]", &[1, 3]),
        ("name=imatch.^[a-c]", &[1, 2, 3]),
        // Pattern operators compare other types by their text.
        ("age=like.3*", &[1]),
        ("id=in.(1,3)", &[1, 3]),
        ("name=in.(Ann,%22bob%22,zed)", &[1, 2]),
        ("nick=is.null", &[1, 4]),
        ("nick=is.not_null", &[2, 3]),
        ("active=is.true", &[1, 4]),
        ("active=is.false", &[2]),
        ("active=is.unknown", &[3]),
        ("active=is.NULL", &[3]),
        ("age=not.eq.31", &[2, 4]),
        ("id=not.in.(1,2)", &[3, 4]),
        ("nick=not.is.null", &[2, 3]),
        ("age=isdistinct.31", &[2, 3, 4]),
        ("id=eq(any).%7B1,4%7D", &[1, 4]),
        ("name=like(any).%7BA*,D*%7D", &[1, 4]),
        ("age=gt(all).%7B20,30%7D", &[1, 4]),
        ("tags=cs.%7Ba%7D", &[1, 4]),
        ("tags=cd.%7Ba,b%7D", &[1, 2, 3, 4]),
        ("tags=ov.%7Bb,z%7D", &[1, 2]),
        ("name=fts.dee", &[4]),
        ("name=plfts(simple).ann", &[1]),
        ("name=wfts.%22bob%22", &[2]),
        // Several filters must all hold.
        ("age=gt.20&active=is.true&name=neq.Dee", &[1]),
    ];
    for (query, expected) in cases {
        assert_eq!(people(&app, query).await, expected.to_vec(), "{query}");
    }
}

#[actix_web::test]
async fn or_and_logic_trees() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let cases: &[(&str, &[i64])] = &[
        ("or=(age.lt.30,nick.is.null)", &[1, 2, 4]),
        ("and=(age.gt.20,active.is.true)", &[1, 4]),
        ("not.or=(id.eq.1,id.eq.2)", &[3, 4]),
        ("not.and=(active.is.true,age.gt.35)", &[1, 2, 3]),
        ("or=(id.eq.3,and(age.gt.30,name.not.eq.Dee))", &[1, 3]),
        ("or=(id.in.(1,2),name.eq.%22Dee%22)", &[1, 2, 4]),
        ("or=(tags.cs.%7Bb%7D,id.eq.4)", &[1, 2, 4]),
        ("or=(name.like.*e*,%20name.eq.Cid)", &[3, 4]),
        // Combined with a plain filter: all hold.
        ("or=(id.eq.1,id.eq.2)&age=gt.30", &[1]),
    ];
    for (query, expected) in cases {
        assert_eq!(people(&app, query).await, expected.to_vec(), "{query}");
    }
}

#[actix_web::test]
async fn order_with_direction_and_nulls() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let cases: &[(&str, &[i64])] = &[
        ("order=age", &[2, 1, 4, 3]),
        ("order=age.desc", &[3, 4, 1, 2]),
        ("order=age.desc.nullslast", &[4, 1, 2, 3]),
        ("order=age.nullsfirst", &[3, 2, 1, 4]),
        ("order=active.desc,id.desc", &[3, 4, 1, 2]),
        ("order=active.asc.nullsfirst,%20id.desc", &[3, 2, 4, 1]),
    ];
    for (query, expected) in cases {
        assert_eq!(people(&app, query).await, expected.to_vec(), "{query}");
    }
}

#[actix_web::test]
async fn select_picks_renames_and_keeps_order() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/people?select=who:name,id&id=lte.2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Keys in select's order.
    assert_eq!(
        r.json().to_string(),
        r#"[{"who":"Ann","id":1},{"who":"bob","id":2}]"#
    );

    // `*` with more columns, and filters/order on columns that are not selected.
    let r = send(&app, get("/rpc/pairs?select=*,again:x&order=label.desc")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!([{"x": 2, "label": "two", "again": 2}, {"x": 1, "label": "one", "again": 1}])
    );
    let r = send(&app, get("/rpc/people?select=name&age=gt.30&order=id.desc")).await;
    assert_eq!(r.json(), json!([{"name": "Dee"}, {"name": "Ann"}]));

    // An empty select keeps the rows and none of their columns, as PostgREST.
    let r = send(&app, get("/rpc/pairs?select=")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{}, {}]));

    // Names that need quoting: PostgREST's field names allow spaces, and a
    // quoted name anything.
    let r = send(&app, get("/rpc/odd_columns?select=a%20b&a%20b=eq.2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"a b": 2}]));
    let r = send(
        &app,
        get("/rpc/odd_columns?select=%22q%5C%22t%22&%22q%5C%22t%22=eq.one"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"q\"t": "one"}]));
}

#[actix_web::test]
async fn limit_and_offset_page_and_the_range_starts_at_the_offset() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/people?order=id&offset=1&limit=2")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r), vec![2, 3]);
    assert_eq!(r.header("content-range").as_deref(), Some("1-2/*"));

    let r = send(&app, get("/rpc/people?limit=0")).await;
    assert_eq!(r.json(), json!([]));
    assert_eq!(r.header("content-range").as_deref(), Some("*/*"));

    // PostgREST ignores values that are not integers, and a negative offset.
    assert_eq!(people(&app, "limit=two&order=id").await, vec![1, 2, 3, 4]);
    assert_eq!(people(&app, "offset=-2&limit=1&order=id").await, vec![1]);

    let r = send(&app, get("/rpc/people?limit=-1")).await;
    assert_eq!(r.status, 416, "{}", r.body);
    assert_eq!(r.code(), "PGRST103");
    assert_eq!(r.json()["message"], "Requested range not satisfiable");
    assert_eq!(
        r.json()["details"],
        "Limit should be greater than or equal to zero."
    );
}

#[actix_web::test]
async fn prefer_count_gives_the_total_in_content_range() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let counted =
        |req: TestRequest, prefer: &str| req.insert_header(("Prefer", prefer.to_string()));

    let r = send(
        &app,
        counted(post("/rpc/points", r#"{"n": 3}"#), "count=exact"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-range").as_deref(), Some("0-2/3"));
    assert_eq!(
        r.header("preference-applied").as_deref(),
        Some("count=exact")
    );

    let r = send(&app, counted(head("/rpc/points?n=3"), "count=exact")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-range").as_deref(), Some("0-2/3"));

    let r = send(&app, counted(get("/rpc/numbers?n=0"), "count=exact")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([]));
    assert_eq!(r.header("content-range").as_deref(), Some("*/0"));

    // The total counts the filtered rows before the page: 206 for a part.
    let r = send(
        &app,
        counted(get("/rpc/people?age=gt.20&order=id&limit=2"), "count=exact"),
    )
    .await;
    assert_eq!(r.status, 206, "{}", r.body);
    assert_eq!(ids(&r), vec![1, 2]);
    assert_eq!(r.header("content-range").as_deref(), Some("0-1/3"));

    // An offset past the total is 416 (PostgREST's OutOfBounds).
    let r = send(&app, counted(get("/rpc/people?offset=9"), "count=exact")).await;
    assert_eq!(r.status, 416, "{}", r.body);
    assert_eq!(r.code(), "PGRST103");
    assert_eq!(
        r.json()["details"],
        "An offset of 9 was requested, but there are only 4 rows."
    );

    // RFC 7240: comma-separated, repeated; planned and estimated are counted exactly.
    let r = send(
        &app,
        get("/rpc/numbers?n=4")
            .insert_header(("Prefer", "return=minimal"))
            .append_header(("Prefer", "tx=commit, count=planned")),
    )
    .await;
    assert_eq!(r.header("content-range").as_deref(), Some("0-3/4"));

    // No count asked: the total stays unknown, and scalars get no range.
    let r = send(&app, get("/rpc/numbers?n=4")).await;
    assert_eq!(r.header("content-range").as_deref(), Some("0-3/*"));
    assert!(r.header("preference-applied").is_none());
    let r = send(&app, counted(get("/rpc/add?a=1"), "count=exact")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-range").is_none());
}

#[actix_web::test]
async fn scalar_sets_take_order_page_and_pgrst_scalar_filters() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        get("/rpc/numbers?n=5&order=pgrst_scalar.desc&limit=2&offset=1"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([4, 3]));
    let r = send(
        &app,
        get("/rpc/numbers?n=5&pgrst_scalar=gt.3&select=pgrst_scalar"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([4, 5]));
    // A scalar has no other column to select or rename.
    let r = send(&app, get("/rpc/numbers?n=5&select=x")).await;
    assert_pgrst100(&r, "select=x on a scalar");
    // setof record: the page works, columns cannot be named.
    let r = send(&app, get("/rpc/setof_record?limit=1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().as_array().map(Vec::len), Some(1), "{}", r.body);
    let r = send(&app, get("/rpc/setof_record?f1=eq.1")).await;
    assert_pgrst100(&r, "filter on setof record");
}

#[actix_web::test]
async fn single_rows_and_one_column_results_take_the_grammar_too() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/point?x=1&y=2&select=y")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"y": 2}));
    let r = send(
        &app,
        get("/rpc/one_col_table?n=3&x=gte.2&select=v:x&order=x.desc"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"v": 3}, {"v": 2}]));
    // The singular media type applies to what the filters leave.
    let r = send(
        &app,
        get("/rpc/points?n=3&x=eq.2")
            .insert_header(("Accept", "application/vnd.pgrst.object+json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"x": 2, "y": 4}));
    let r = send(
        &app,
        get("/rpc/points?n=3&x=gt.1")
            .insert_header(("Accept", "application/vnd.pgrst.object+json")),
    )
    .await;
    assert_eq!(r.status, 406, "{}", r.body);
    assert_eq!(r.code(), "PGRST116");
}

#[actix_web::test]
async fn accept_nulls_stripped_leaves_out_null_keys() {
    // Found by the postgrest-js suite (`.stripNulls()`): answered 406.
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        get("/rpc/people?select=id,nick&id=lte.2")
            .insert_header(("Accept", "application/vnd.pgrst.array+json;nulls=stripped")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"id": 1}, {"id": 2, "nick": "bobby"}]));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8")
    );

    let r = send(
        &app,
        get("/rpc/people?id=eq.3").insert_header((
            "Accept",
            "application/vnd.pgrst.object+json; nulls=stripped",
        )),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"id": 3, "name": "Cid", "nick": "c", "tags": []})
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8")
    );

    // Without the parameter the vendored array type is plain JSON.
    let r = send(
        &app,
        get("/rpc/people?select=nick&id=eq.1")
            .insert_header(("Accept", "application/vnd.pgrst.array+json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!([{"nick": null}]));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
}

#[actix_web::test]
async fn unknown_column_or_operator_is_400_pgrst100() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for (path, body) in [
        ("/rpc/points?select=z", r#"{"n": 2}"#),
        ("/rpc/points?z=eq.1", r#"{"n": 2}"#),
        ("/rpc/points?order=z.desc", r#"{"n": 2}"#),
        ("/rpc/points?or=(x.eq.1,z.eq.2)", r#"{"n": 2}"#),
        ("/rpc/nothing?x=eq.1", "{}"),
    ] {
        let r = send(&app, post(path, body)).await;
        assert_pgrst100(&r, path);
    }
    let r = send(&app, get("/rpc/points?n=2&select=z")).await;
    assert_pgrst100(&r, "select=z");
    assert_eq!(
        r.json()["message"],
        "Column 'z' does not exist in the result of api.points"
    );
    assert_eq!(r.json()["details"], "The result has the columns x, y");

    // An unknown operator, worded as PostgREST's parser words it.
    let r = send(&app, post("/rpc/points?x=foo.1", r#"{"n": 2}"#)).await;
    assert_pgrst100(&r, "POST x=foo.1");
    assert_eq!(
        r.json()["message"],
        "\"failed to parse filter (foo.1)\" (line 1, column 1)"
    );
    assert_eq!(
        r.json()["details"],
        "unexpected \"f\" expecting \"not\" or operator (eq, gt, ...)"
    );
    // On POST every key of the query string is a filter.
    let r = send(&app, post("/rpc/points?x=2", r#"{"n": 2}"#)).await;
    assert_pgrst100(&r, "POST x=2");
    // On GET `x=foo.1` would be an argument; no function takes `x`, so the
    // operator is what is wrong (PostgREST answers 404 here).
    let r = send(&app, get("/rpc/points?n=2&x=foo.1")).await;
    assert_pgrst100(&r, "GET x=foo.1");
    // A plain unknown argument stays 404.
    let r = send(&app, get("/rpc/points?n=2&x=1")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.code(), "PGRST202");

    for (query, column) in [
        ("x=in.1,2", 4),
        ("x=in.(1,2", 8),
        ("x=is.maybe", 4),
        ("x=is.nullx", 8),
        ("x=not.foo.1", 5),
        ("x=not.", 5),
        ("order=x.up", 3),
        ("order=x.desc.up", 8),
        ("select=x,,y", 3),
        ("or=(x.eq.1", 0),
        ("or=x.eq.1", 0),
        ("and=(x.foo.1)", 0),
    ] {
        let r = send(&app, get(&format!("/rpc/points?n=2&{query}"))).await;
        assert_pgrst100(&r, query);
        let message = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(
            message.starts_with("\"failed to parse "),
            "{query}: {message}"
        );
        if column > 0 {
            assert!(
                message.ends_with(&format!("(line 1, column {column})")),
                "{query}: {message}"
            );
        }
    }

    // PostgREST features pgrpc does not have are refused the same way.
    for query in [
        "select=x,rel(*)",
        "select=...rel(*)",
        "select=x::text",
        "select=x-%3Ea",
        "select=count()",
        "rel.x=eq.1",
        "x-%3E%3Ea=eq.1",
        "rel.order=x",
        "rel.limit=1",
    ] {
        let r = send(&app, get(&format!("/rpc/points?n=2&{query}"))).await;
        assert_pgrst100(&r, query);
    }
}

#[actix_web::test]
async fn filter_values_are_bound_never_spliced() {
    let ctx = setup().await;
    let app = ctx.app().await;
    for query in [
        "name=eq.x'%3B%20drop%20table%20test_data.items%3B%20--",
        "name=in.(%22a'b%22,c)",
        "name=like.*'*",
        "or=(name.eq.x',id.eq.9)",
        "limit=1%3B%20select%201",
    ] {
        let r = send(&app, get(&format!("/rpc/people?{query}"))).await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
    }
    // A value is typed by its column: a bad one is PostgreSQL's 22P02.
    let r = send(&app, get("/rpc/people?age=eq.old")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "22P02");
    assert_eq!(ctx.count("select count(*) from test_data.items").await, 0);
}

#[actix_web::test]
async fn volatile_post_keeps_writing_with_a_shaped_answer() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(
        &app,
        post(
            "/rpc/add_two?select=name&order=name.desc&limit=1",
            r#"{"a": "x", "b": "y"}"#,
        )
        .insert_header(("Prefer", "count=exact")),
    )
    .await;
    assert_eq!(r.status, 206, "{}", r.body);
    assert_eq!(r.json(), json!([{"name": "y"}]));
    assert_eq!(r.header("content-range").as_deref(), Some("0-0/2"));
    assert_eq!(
        ctx.count("select count(*) from test_data.items").await,
        2,
        "both rows were written once"
    );
}

#[actix_web::test]
async fn claims_columns_are_signed_under_their_select_alias() {
    let ctx = setup_with("[jwt]\nclaims_type = \"test_jwt.claims\"").await;
    let app = ctx.app().await;
    let r = send(&app, get("/rpc/jwt_table?select=t:token,n&n=eq.1")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = r.json();
    let token = rows[0]["t"]
        .as_str()
        .unwrap_or_else(|| panic!("unsigned: {}", r.body));
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert_eq!(rows[0]["n"], 1);
    // Another column under a token's key would be taken for the token.
    let r = send(&app, get("/rpc/jwt_table?select=t:token,t:n")).await;
    assert_pgrst100(&r, "two columns under a token key");
    // A result that is a token cannot lose claims to select.
    let r = send(&app, get("/rpc/jwt_tokens?n=1&select=role")).await;
    assert_pgrst100(&r, "select on a token result");
    let r = send(&app, get("/rpc/jwt_tokens?n=2&limit=1&select=*")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let tokens: Vec<Value> = r.json().as_array().cloned().unwrap_or_default();
    assert_eq!(tokens.len(), 1, "{}", r.body);
    assert!(tokens[0].is_string(), "{}", r.body);
}
