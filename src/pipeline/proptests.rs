//! Property tests for the pure stages parse → plan → query (issue 12).
//!
//! Generated HTTP facts — method, path name, query string in PostgREST's
//! grammar and as noise, the headers parse reads, and JSON or junk bodies —
//! must end in a plan or a typed client error, never a panic or a 5xx; and the
//! SQL text built from any plan must contain no value the client sent (every
//! value is bound), with aliases only ever as quoted identifiers. Owns no stage
//! logic; the JWT verifier's properties are in `crate::jwt::proptests`.
//! Case counts keep the whole set to a few seconds in a debug build; a failure
//! is shrunk and saved under `proptest-regressions/`, which is committed so it
//! runs first from then on.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::db::quote::ident;
use crate::db::schema_cache::{Column, Returns, SchemaCache, Volatility};
use crate::error::Error;
use crate::pipeline::parse::{self, HttpInput, RpcRequest};
use crate::pipeline::plan::tests::{int, routine};
use crate::pipeline::{plan, query};

/// Marks every value a test sends: the gateway never writes it into SQL, so
/// finding it in the SQL text means a value was spliced.
const MARK: char = '\u{2767}';

/// Functions of several shapes: named scalar args, a set of rows with
/// columns to filter and order, a whole-body function, an ambiguous overload.
fn cache() -> SchemaCache {
    let rows = Returns::Composite {
        type_oid: Some(900),
        columns: vec![
            Column {
                name: "x".into(),
                type_oid: 23,
                type_sql: "integer".into(),
            },
            Column {
                name: "label".into(),
                type_oid: 25,
                type_sql: "text".into(),
            },
        ],
        set: true,
    };
    SchemaCache::from_routines(
        vec![
            routine(
                "add",
                &[("a", "integer", true), ("b", "integer", false)],
                Volatility::Immutable,
                int(),
            ),
            routine("rows", &[("n", "integer", false)], Volatility::Stable, rows),
            routine("body", &[("", "jsonb", true)], Volatility::Volatile, int()),
            routine("over", &[("x", "integer", true)], Volatility::Stable, int()),
            routine("over", &[("x", "text", true)], Volatility::Stable, int()),
            routine(
                "nums",
                &[],
                Volatility::Stable,
                Returns::Scalar {
                    type_oid: 23,
                    type_sql: "integer".into(),
                    set: true,
                },
            ),
        ],
        None,
    )
}

fn config() -> Config {
    Config {
        cases: 384,
        ..Config::default()
    }
}

/// A value a client sends, marked; no `,()"{}` so that list syntax keeps it whole.
fn value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 ';:*%$\\\\-]{0,10}".prop_map(|s| format!("{MARK}{s}"))
}

/// A column or argument name: any when `any`, else one `rows` has.
fn column(any: bool) -> BoxedStrategy<String> {
    if any {
        prop_oneof![
            Just("x".to_string()),
            Just("label".to_string()),
            Just("n".to_string()),
            Just("pgrst_scalar".to_string()),
            "[a-z_]{1,6}",
        ]
        .boxed()
    } else {
        proptest::sample::select(&["x", "label"][..])
            .prop_map(String::from)
            .boxed()
    }
}

const OPERATORS: &[&str] = &[
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "like",
    "ilike",
    "match",
    "imatch",
    "is",
    "cs",
    "cd",
    "ov",
    "sl",
    "sr",
    "nxl",
    "nxr",
    "adj",
    "isdistinct",
    "not.eq",
    "not.like",
    "eq.any",
    "gt.all",
    "like.any",
    "in",
    "not.in",
    "fts",
    "plfts",
    "phfts",
    "wfts",
    "bogus",
];

/// One filter's right-hand side: `op.value`, a list, an array, or a language.
fn op_value() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(OPERATORS),
        prop::collection::vec(value(), 1..4),
        value(),
    )
        .prop_map(|(op, values, language)| match op {
            "in" | "not.in" => format!("{op}.({})", values.join(",")),
            "eq.any" | "gt.all" | "like.any" => format!("{op}.{{{}}}", values.join(",")),
            "is" => format!(
                "is.{}",
                ["null", "true", "false", "unknown"][values.len() - 1]
            ),
            "fts" | "plfts" if values.len() > 1 => format!("{op}({language}).{}", values[0]),
            _ => format!("{op}.{}", values[0]),
        })
}

/// One query-string parameter in PostgREST's grammar (before encoding);
/// names from anywhere when `any`, else names `rows` has, so most plan.
fn grammar_param(any: bool) -> impl Strategy<Value = (String, String)> {
    let arg = if any {
        column(true)
    } else {
        Just("n".to_string()).boxed()
    };
    prop_oneof![
        3 => (column(any), op_value()),
        1 => (arg, value()),
        1 => prop::collection::vec((column(any), proptest::option::of("[a-z]{1,5}")), 1..4).prop_map(
            |items| {
                let list: Vec<String> = items
                    .into_iter()
                    .map(|(c, alias)| match alias {
                        Some(a) => format!("{MARK}{a}:{c}"),
                        None => c,
                    })
                    .collect();
                ("select".to_string(), list.join(","))
            }
        ),
        1 => (
            column(any),
            proptest::sample::select(&["", ".asc", ".desc", ".desc.nullslast", ".nullsfirst", ".x"])
        )
            .prop_map(|(c, d)| ("order".to_string(), format!("{c}{d}"))),
        1 => "-?[0-9]{1,4}".prop_map(|n| ("limit".to_string(), n)),
        1 => "-?[0-9]{1,4}".prop_map(|n| ("offset".to_string(), n)),
        1 => (
            proptest::sample::select(&["or", "and", "not.or", "x.or"]),
            prop::collection::vec((column(any), op_value()), 1..3)
        )
            .prop_map(|(k, parts)| {
                let inner: Vec<String> = parts.into_iter().map(|(c, v)| format!("{c}.{v}")).collect();
                (k.to_string(), format!("({})", inner.join(",")))
            }),
    ]
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn query_string(any: bool) -> BoxedStrategy<(String, Vec<(String, String)>)> {
    let least = usize::from(!any);
    let grammar = prop::collection::vec(grammar_param(any), least..5).prop_map(|params| {
        let text = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        (text, params)
    });
    if !any {
        return grammar.boxed();
    }
    prop_oneof![
        4 => grammar,
        // Noise in the grammar's alphabet, unencoded.
        1 => "[a-z=&.,()*!:%0-9A-F\"{}\\\\ -]{0,60}".prop_map(|s| (s, Vec::new())),
    ]
    .boxed()
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/json".to_string()),
        Just("application/vnd.pgrst.object+json".to_string()),
        Just("application/vnd.pgrst.object+json;nulls=stripped".to_string()),
        Just("application/x-www-form-urlencoded".to_string()),
        Just("text/plain, */*;q=0.1".to_string()),
        Just("count=exact, return=minimal".to_string()),
        Just("api".to_string()),
        Just("other".to_string()),
        "[ -~]{0,40}",
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    const NAMES: &[&str] = &[
        "accept",
        "content-type",
        "prefer",
        "accept-profile",
        "content-profile",
        "cookie",
        "x-anything",
    ];
    prop::collection::vec((proptest::sample::select(NAMES), header_value()), 0..6).prop_map(
        |pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    map.append(HeaderName::from_static(name), v);
                }
            }
            map
        },
    )
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        value().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A function with a body of arguments it takes (for the binding property).
fn call_with_args() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let args = |names: &'static [&'static str]| {
        prop::collection::btree_map(proptest::sample::select(names), json_value(), 0..3)
            .prop_map(|m| serde_json::to_vec(&m).expect("a map serializes"))
    };
    prop_oneof![
        3 => args(&["n"]).prop_map(|b| ("rows", b)),
        1 => args(&["a", "b"]).prop_map(|b| ("add", b)),
        1 => json_value().prop_map(|v| ("body", serde_json::to_vec(&v).expect("a value serializes"))),
    ]
}

/// A body: a JSON object keyed by parameter names, any JSON, or junk bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::btree_map(
            proptest::sample::select(&["a", "b", "n", "x", "zz", ""][..]),
            json_value(),
            0..4
        )
        .prop_map(|m| serde_json::to_vec(&m).expect("a map serializes")),
        json_value().prop_map(|v| serde_json::to_vec(&v).expect("a value serializes")),
        prop::collection::vec(any::<u8>(), 0..48),
    ]
}

fn function() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&["add", "rows", "body", "over", "nums"][..]).prop_map(String::from),
        1 => "[ -~]{0,12}",
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(
        &[
            "GET", "GET", "HEAD", "POST", "POST", "OPTIONS", "PUT", "DELETE",
        ][..],
    )
}

/// A refusal must be the client's: a 5xx here would be a bug in a pure stage.
fn assert_client_error(stage: &str, e: &Error) -> Result<(), TestCaseError> {
    prop_assert!(
        !e.status().is_server_error(),
        "{stage} answered {} {}: {e}",
        e.status(),
        e.code()
    );
    Ok(())
}

/// Parse, then plan and build the query when parse accepts; checks both
/// refusals are typed client errors. Returns the request and SQL when planned.
fn run(
    method: &str,
    function: &str,
    query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<(RpcRequest, query::CallQuery)>, TestCaseError> {
    let path = format!("/rpc/{function}");
    let input = HttpInput {
        method,
        path: &path,
        query,
        headers,
        body,
    };
    let schemas = ["api".to_string(), "other".to_string()];
    let rpc = match parse::parse(function, &input, &schemas) {
        Ok(rpc) => rpc,
        Err(e) => {
            assert_client_error("parse", &e)?;
            return Ok(None);
        }
    };
    let cache = cache();
    let plan = match plan::plan(&rpc, &cache) {
        Ok(plan) => plan,
        Err(e) => {
            assert_client_error("plan", &e)?;
            return Ok(None);
        }
    };
    let call = query::call_query(&plan);
    Ok(Some((rpc, call)))
}

proptest! {
    #![proptest_config(config())]

    /// Any request facts: a plan or a typed client error, never a panic.
    #[test]
    fn any_request_plans_or_is_refused_as_the_clients_mistake(
        method in method(),
        function in function(),
        (query, _) in query_string(true),
        headers in headers(),
        body in body(),
    ) {
        run(method, &function, &query, &headers, &body)?;
    }

    /// Values from the query string and the body are bound, never spliced:
    /// no marked value appears in the SQL text, each is in a bound parameter
    /// or the bound payload, and aliases appear only quoted.
    #[test]
    fn sql_built_from_any_plan_binds_every_value(
        get in any::<bool>(),
        (function, body) in call_with_args(),
        (query, params) in query_string(false),
    ) {
        let method = if get { "GET" } else { "POST" };
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("content-type"),
            HeaderValue::from_static("application/json"),
        );
        let Some((rpc, call)) = run(method, function, &query, &headers, &body)? else {
            return Ok(());
        };
        let mut sql = call.sql.clone();
        for (key, value) in &params {
            if key == "select" {
                for alias in value.split(',').filter_map(|item| item.split_once(':')).map(|(a, _)| a) {
                    sql = sql.replace(&ident(alias), "");
                }
            }
        }
        prop_assert!(!sql.contains(MARK), "a value reached the SQL text:\n{}\nquery: {query}", call.sql);
        // Every marked value the request carried is bound exactly once: in a
        // parameter ($2, …) or in the payload ($1).
        let marks = |s: &str| s.matches(MARK).count();
        let sent = params
            .iter()
            .filter(|(key, _)| key != "select" && key != "order")
            .map(|(_, v)| marks(v))
            .sum::<usize>()
            + if get { 0 } else { marks(&String::from_utf8_lossy(&body)) };
        let payload = if call.binds_payload { marks(&rpc.payload.raw) } else { 0 };
        let bound = call.params.iter().map(|p| marks(p)).sum::<usize>() + payload;
        prop_assert_eq!(bound, sent, "values sent and bound differ; query: {}", query);
    }
}
