//! Parse stage: an HTTP request becomes an [`RpcRequest`], without I/O.
//!
//! Owns method, content negotiation (`Accept`, `Content-Type`), schema profile
//! headers, `Prefer`, the arguments (JSON body, form body or query string), the
//! query-string grammar that shapes the result ([`grammar`]: PostgREST's
//! `select`, `order`, `limit`, `offset`, filters, `and`/`or`), and the request facts handed to SQL
//! (`request.headers`, `request.cookies`). It does not know which functions or
//! columns exist (that is the planner's job) and never sees the token (the auth
//! stage's).

mod grammar;

use actix_web::http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use crate::error::{Error, RequestError};
use grammar::split_query;
pub use grammar::{
    unknown_operator, Filter, FtsOp, IsValue, LogicOp, LogicTree, OpExpr, Operation,
    OrderDirection, OrderNulls, OrderTerm, QuantOp, Quantifier, ReadParams, SelectItem, SimpleOp,
};

/// The HTTP method of a function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcMethod {
    /// Read-only call with arguments in the query string.
    Get,
    /// GET without a body in the answer.
    Head,
    /// Call with arguments in the body.
    Post,
    /// Which methods the function allows; no database.
    Options,
}

impl RpcMethod {
    /// As sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RpcMethod::Get => "GET",
            RpcMethod::Head => "HEAD",
            RpcMethod::Post => "POST",
            RpcMethod::Options => "OPTIONS",
        }
    }
}

/// The arguments of a call.
#[derive(Debug, Clone)]
pub struct Payload {
    /// JSON text handed to PostgreSQL as the one bound parameter.
    pub raw: String,
    /// Top-level keys when the payload is an object, in order.
    pub keys: Vec<String>,
    /// Whether the payload is a JSON object (anything else only suits a
    /// function taking the whole body).
    pub is_object: bool,
}

impl Payload {
    /// `{}`.
    pub fn empty() -> Payload {
        Payload {
            raw: "{}".into(),
            keys: Vec::new(),
            is_object: true,
        }
    }
}

/// A parsed function call.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    /// Method.
    pub method: RpcMethod,
    /// Schema chosen by profile header or the default.
    pub schema: String,
    /// Whether the client named the schema (echoed back as `Content-Profile`).
    pub schema_from_header: bool,
    /// Function name as given in the path (an exact catalog name).
    pub function: String,
    /// Arguments.
    pub payload: Payload,
    /// `Accept: application/vnd.pgrst.object+json`.
    pub singular: bool,
    /// `Accept: …;nulls=stripped` (PostgREST ≥ 11.2): object keys whose value
    /// is null are left out of the body.
    pub strip_nulls: bool,
    /// What the query string asks of the result.
    pub read: ReadParams,
    /// `Prefer: count=exact` (or `planned`/`estimated`, answered exactly).
    pub count: bool,
    /// GET arguments whose value looks like a filter with an unknown operator
    /// (`x=foo.1`): if no function takes them, the answer is PGRST100 rather
    /// than 404.
    pub operator_like_args: Vec<(String, String)>,
    /// Request path, for `request.path`.
    pub path: String,
    /// Headers as a JSON object with lower-cased names, for `request.headers`.
    pub headers_json: String,
    /// Cookies as a JSON object, for `request.cookies`.
    pub cookies_json: String,
}

/// What parse needs from the HTTP layer.
pub struct HttpInput<'a> {
    /// Method as sent.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// Raw query string (no `?`).
    pub query: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body bytes (already size-checked).
    pub body: &'a [u8],
}

/// The single-object media type of PostgREST.
const SINGULAR: &str = "application/vnd.pgrst.object+json";

/// Parse one request for function `function`.
pub fn parse(
    function: &str,
    input: &HttpInput<'_>,
    schemas: &[String],
) -> Result<RpcRequest, Error> {
    let method = match input.method {
        "GET" => RpcMethod::Get,
        "HEAD" => RpcMethod::Head,
        "POST" => RpcMethod::Post,
        "OPTIONS" => RpcMethod::Options,
        other => {
            return Err(RequestError::InvalidRpcMethod {
                method: other.to_string(),
                details: Some("Functions are called with GET, HEAD or POST.".into()),
                allow: "OPTIONS,GET,HEAD,POST",
            }
            .into())
        }
    };
    let (schema, schema_from_header) = profile(method, input.headers, schemas)?;
    let media = if method == RpcMethod::Options {
        Media::default()
    } else {
        negotiate(input.headers)?
    };
    let query = split_query(input.query, method)?;
    let payload = match method {
        RpcMethod::Get | RpcMethod::Head => object_payload(query.args),
        RpcMethod::Post => body_payload(input.headers, input.body)?,
        RpcMethod::Options => Payload::empty(),
    };
    Ok(RpcRequest {
        method,
        schema,
        schema_from_header,
        function: function.to_string(),
        payload,
        singular: media.singular,
        strip_nulls: media.strip_nulls,
        read: query.read,
        count: prefers_count(input.headers),
        operator_like_args: query.operator_like_args,
        path: input.path.to_string(),
        headers_json: headers_json(input.headers),
        cookies_json: cookies_json(input.headers),
    })
}

/// A request for the OpenAPI document (`GET /`, `HEAD /`).
#[derive(Debug, Clone)]
pub struct RootRequest {
    /// `HEAD` answers without a body.
    pub head: bool,
    /// The schema the document describes: `Accept-Profile` or the default.
    pub schema: String,
    /// Whether the client named the schema (echoed back as `Content-Profile`).
    pub schema_from_header: bool,
}

/// Parse a request for the OpenAPI document: the schema profile as for a GET
/// call (406 `PGRST106` when unlisted), and an `Accept` that allows JSON
/// (406 `PGRST107` when it allows none of the document's media types).
pub fn parse_root(input: &HttpInput<'_>, schemas: &[String]) -> Result<RootRequest, Error> {
    let (schema, schema_from_header) = profile(RpcMethod::Get, input.headers, schemas)?;
    negotiate_document(input.headers)?;
    Ok(RootRequest {
        head: input.method == "HEAD",
        schema,
        schema_from_header,
    })
}

/// The OpenAPI document is JSON: `application/openapi+json`, `application/json`
/// or a wildcard must be acceptable.
fn negotiate_document(headers: &HeaderMap) -> Result<(), Error> {
    let accept = headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(());
    }
    let fits = accept.split(',').any(|item| {
        let media = item.split(';').next().unwrap_or_default().trim();
        media.is_empty()
            || [
                "application/openapi+json",
                "application/json",
                "application/*",
                "*/*",
            ]
            .iter()
            .any(|m| media.eq_ignore_ascii_case(m))
    });
    if fits {
        Ok(())
    } else {
        Err(RequestError::MediaType { accept }.into())
    }
}

/// `Accept-Profile` (GET/HEAD) or `Content-Profile` (POST) picks the schema.
fn profile(
    method: RpcMethod,
    headers: &HeaderMap,
    schemas: &[String],
) -> Result<(String, bool), Error> {
    let name = match method {
        RpcMethod::Post => "content-profile",
        _ => "accept-profile",
    };
    let default = schemas
        .first()
        .cloned()
        .unwrap_or_else(|| "api".to_string());
    let Some(value) = headers.get(name) else {
        return Ok((default, false));
    };
    let wanted = value.to_str().unwrap_or_default().trim();
    if schemas.iter().any(|s| s == wanted) {
        Ok((wanted.to_string(), true))
    } else {
        Err(RequestError::UnacceptableSchema {
            schema: wanted.to_string(),
            exposed: schemas.to_vec(),
        }
        .into())
    }
}

/// The response media type chosen by `Accept`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Media {
    /// PostgREST's single object.
    singular: bool,
    /// `nulls=stripped`.
    strip_nulls: bool,
}

/// Content negotiation: JSON (array/value) or PostgREST's single object, each
/// optionally with `nulls=stripped` (PostgREST `MediaType.hs`: the vendored
/// `application/vnd.pgrst.array+json` is plain JSON unless it strips nulls).
/// The first acceptable media range wins; 406 when nothing fits.
fn negotiate(headers: &HeaderMap) -> Result<Media, Error> {
    let accept = headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(Media::default());
    }
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let strip_nulls = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("nulls") && v.trim().trim_matches('"') == "stripped"
            })
        });
        match media.as_str() {
            "application/json" | "application/*" | "*/*" | "" => return Ok(Media::default()),
            "application/vnd.pgrst.array+json" | "application/vnd.pgrst.array" => {
                return Ok(Media {
                    singular: false,
                    strip_nulls,
                })
            }
            SINGULAR | "application/vnd.pgrst.object" => {
                return Ok(Media {
                    singular: true,
                    strip_nulls,
                })
            }
            _ => {}
        }
    }
    Err(RequestError::MediaType { accept }.into())
}

/// `Prefer: count=…` (RFC 7240: the header may repeat, each a comma-separated
/// list). PostgREST's three methods are all answered with an exact count.
fn prefers_count(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| {
            matches!(
                p.trim(),
                "count=exact" | "count=planned" | "count=estimated"
            )
        })
}

fn insert_repeated(map: &mut Map<String, Value>, key: String, value: String) {
    match map.get_mut(&key) {
        Some(Value::Array(items)) => items.push(Value::String(value)),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, Value::String(value)]);
        }
        None => {
            map.insert(key, Value::String(value));
        }
    }
}

fn object_payload(map: Map<String, Value>) -> Payload {
    let keys = map.keys().cloned().collect();
    Payload {
        raw: Value::Object(map).to_string(),
        keys,
        is_object: true,
    }
}

/// POST arguments from the body, by `Content-Type`.
fn body_payload(headers: &HeaderMap, body: &[u8]) -> Result<Payload, Error> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let looks_like_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match content_type.as_str() {
        "" | "application/json" | "*/*" => json_payload(body),
        // jQuery's default Content-Type: the seed API documents send JSON text
        // under it, and a form body cannot start with `{` meaningfully.
        "application/x-www-form-urlencoded" if looks_like_json => json_payload(body),
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(body)
                .map_err(|_| invalid_body("The form body is not valid UTF-8", None))?;
            let mut map = Map::new();
            for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
                insert_repeated(&mut map, k.into_owned(), v.into_owned());
            }
            Ok(object_payload(map))
        }
        other => Err(invalid_body(
            &format!("Content-Type not acceptable: {other}"),
            Some("Send application/json (or application/x-www-form-urlencoded).".into()),
        )),
    }
}

fn invalid_body(message: &str, details: Option<String>) -> Error {
    RequestError::InvalidBody {
        message: message.to_string(),
        details,
    }
    .into()
}

/// A JSON body; empty means `{}`.
fn json_payload(body: &[u8]) -> Result<Payload, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Payload::empty());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid_body("Empty or invalid json", Some(e.to_string())))?;
    let raw = String::from_utf8(body.to_vec()).map_err(|_| {
        invalid_body(
            "Empty or invalid json",
            Some("The body is not valid UTF-8".into()),
        )
    })?;
    Ok(match value {
        Value::Object(map) => Payload {
            raw,
            keys: map.keys().cloned().collect(),
            is_object: true,
        },
        _ => Payload {
            raw,
            keys: Vec::new(),
            is_object: false,
        },
    })
}

/// All headers as one JSON object, names lower-cased (HeaderMap already
/// lower-cases them); repeated headers are joined with `, ` (RFC 9110 §5.3).
fn headers_json(headers: &HeaderMap) -> String {
    serde_json::to_string(&HeadersJson(headers)).expect("names and text always serialize")
}

/// `request.headers`, written straight from the header map: one key per
/// name (lower case), repeated headers joined with `, ` (RFC 9110 §5.3).
struct HeadersJson<'a>(&'a HeaderMap);

impl serde::Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for name in self.0.keys() {
            let mut values = self.0.get_all(name);
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let Some(first) = first else { continue };
            match values.next() {
                None => map.serialize_entry(name.as_str(), &first)?,
                Some(second) => {
                    let mut joined = first.into_owned();
                    for v in std::iter::once(second).chain(values) {
                        joined.push_str(", ");
                        joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                    map.serialize_entry(name.as_str(), &joined)?;
                }
            }
        }
        map.end()
    }
}

/// The `Cookie` header as a JSON object (RFC 6265 §4.2.1: `a=b; c=d`).
fn cookies_json(headers: &HeaderMap) -> String {
    let mut map = Map::new();
    for value in headers.get_all(header::COOKIE) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for pair in text.split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                let k = k.trim();
                if !k.is_empty() {
                    map.insert(
                        k.to_string(),
                        Value::String(v.trim().trim_matches('"').to_string()),
                    );
                }
            }
        }
    }
    Value::Object(map).to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("valid name"),
                HeaderValue::from_str(v).expect("valid value"),
            );
        }
        h
    }

    pub(crate) fn run(
        method: &str,
        query: &str,
        hs: &[(&str, &str)],
        body: &str,
    ) -> Result<RpcRequest, Error> {
        let h = headers(hs);
        parse(
            "f",
            &HttpInput {
                method,
                path: "/rpc/f",
                query,
                headers: &h,
                body: body.as_bytes(),
            },
            &["api".to_string(), "v2".to_string()],
        )
    }

    #[test]
    fn empty_body_is_empty_object() {
        let r = run("POST", "", &[], "").expect("ok");
        assert_eq!(r.payload.raw, "{}");
        assert!(r.payload.is_object);
    }

    #[test]
    fn json_body_keeps_raw_text_and_keys() {
        let r = run(
            "POST",
            "",
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"a": 1, "b": "x"}"#,
        )
        .expect("ok");
        assert_eq!(r.payload.raw, r#"{"a": 1, "b": "x"}"#);
        assert_eq!(r.payload.keys, vec!["a", "b"]);
    }

    #[test]
    fn malformed_json_and_bad_content_type_are_pgrst102() {
        let e = run("POST", "", &[], "{nope").expect_err("bad json");
        assert_eq!(e.code(), "PGRST102");
        assert_eq!(e.status().as_u16(), 400);
        let e = run("POST", "", &[("content-type", "text/csv")], "a,b").expect_err("bad type");
        assert_eq!(e.code(), "PGRST102");
    }

    #[test]
    fn array_body_is_not_an_object() {
        let r = run("POST", "", &[], "[1,2]").expect("ok");
        assert!(!r.payload.is_object);
    }

    #[test]
    fn query_string_becomes_object_with_repeated_keys_as_arrays() {
        let r = run("GET", "a=1&b=x%20y&v=1&v=2", &[], "").expect("ok");
        assert_eq!(r.payload.raw, r#"{"a":"1","b":"x y","v":["1","2"]}"#);
    }

    #[test]
    fn form_body_and_json_under_form_type() {
        let r = run(
            "POST",
            "",
            &[("content-type", "application/x-www-form-urlencoded")],
            "a=1&b=2",
        )
        .expect("ok");
        assert_eq!(r.payload.raw, r#"{"a":"1","b":"2"}"#);
        let r = run(
            "POST",
            "",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            r#"{"a":1}"#,
        )
        .expect("ok");
        assert_eq!(r.payload.raw, r#"{"a":1}"#);
    }

    #[test]
    fn accept_negotiation() {
        assert!(
            !run("POST", "", &[("accept", "application/json")], "")
                .expect("ok")
                .singular
        );
        assert!(
            run(
                "POST",
                "",
                &[("accept", "application/vnd.pgrst.object+json")],
                ""
            )
            .expect("ok")
            .singular
        );
        let e = run("POST", "", &[("accept", "text/html")], "").expect_err("406");
        assert_eq!(e.status().as_u16(), 406);
        assert_eq!(e.code(), "PGRST107");
    }

    #[test]
    fn profiles_pick_exposed_schemas_only() {
        assert_eq!(
            run("POST", "", &[("content-profile", "v2")], "")
                .expect("ok")
                .schema,
            "v2"
        );
        assert_eq!(
            run("GET", "", &[("accept-profile", "v2")], "")
                .expect("ok")
                .schema,
            "v2"
        );
        let e = run("GET", "", &[("accept-profile", "auth")], "").expect_err("406");
        assert_eq!(e.code(), "PGRST106");
    }

    #[test]
    fn other_methods_are_405() {
        let e = run("DELETE", "", &[], "").expect_err("405");
        assert_eq!(e.status().as_u16(), 405);
        assert_eq!(e.code(), "PGRST101");
    }

    #[test]
    fn headers_and_cookies_json() {
        let r = run(
            "POST",
            "",
            &[
                ("X-Thing", "a"),
                ("cookie", "sid=1; theme=dark"),
                ("x-multi", "1"),
                ("x-multi", "2 \"q\""),
            ],
            "",
        )
        .expect("ok");
        let headers: Value = serde_json::from_str(&r.headers_json).expect("JSON");
        assert_eq!(headers["x-thing"], "a", "{}", r.headers_json);
        assert_eq!(headers["x-multi"], "1, 2 \"q\"", "{}", r.headers_json);
        assert_eq!(r.cookies_json, r#"{"sid":"1","theme":"dark"}"#);
    }

    #[test]
    fn accept_nulls_stripped_and_prefer_count() {
        let r = run(
            "GET",
            "",
            &[("accept", "application/vnd.pgrst.array+json;nulls=stripped")],
            "",
        )
        .expect("ok");
        assert!(!r.singular && r.strip_nulls);
        let r = run(
            "GET",
            "",
            &[(
                "accept",
                "application/vnd.pgrst.object+json; nulls=stripped",
            )],
            "",
        )
        .expect("ok");
        assert!(r.singular && r.strip_nulls);
        let r = run(
            "GET",
            "",
            &[("accept", "application/vnd.pgrst.array+json")],
            "",
        )
        .expect("ok");
        assert!(!r.singular && !r.strip_nulls);
        assert!(!r.count);
        let r = run(
            "GET",
            "",
            &[
                ("prefer", "return=minimal"),
                ("prefer", "tx=commit,  count=estimated"),
            ],
            "",
        )
        .expect("ok");
        assert!(r.count);
    }
}
