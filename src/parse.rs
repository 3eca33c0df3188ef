//! Parse stage: an HTTP request becomes an [`RpcRequest`], without I/O.
//!
//! Owns method, content negotiation (`Accept`, `Content-Type`), schema profile
//! headers, the arguments (JSON body, form body or query string), and the
//! request facts handed to SQL (`request.headers`, `request.cookies`). It does not
//! know which functions exist (that is the planner's job) and never sees the
//! token (the auth stage's).

use actix_web::http::header::{self, HeaderMap};
use serde_json::{Map, Value};

use crate::error::{Error, RequestError};

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
    let singular = if method == RpcMethod::Options {
        false
    } else {
        negotiate(input.headers)?
    };
    let payload = match method {
        RpcMethod::Get | RpcMethod::Head => query_payload(input.query)?,
        RpcMethod::Post => body_payload(input.headers, input.body)?,
        RpcMethod::Options => Payload::empty(),
    };
    Ok(RpcRequest {
        method,
        schema,
        schema_from_header,
        function: function.to_string(),
        payload,
        singular,
        path: input.path.to_string(),
        headers_json: headers_json(input.headers),
        cookies_json: cookies_json(input.headers),
    })
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

/// Content negotiation: JSON (array/value) or PostgREST's single object.
/// Returns whether the singular form was chosen; 406 when nothing fits.
fn negotiate(headers: &HeaderMap) -> Result<bool, Error> {
    let accept = headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(false);
    }
    for item in accept.split(',') {
        let media = item
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json" | "application/*" | "*/*" | "" => return Ok(false),
            SINGULAR | "application/vnd.pgrst.object" => return Ok(true),
            _ => {}
        }
    }
    Err(RequestError::MediaType { accept }.into())
}

/// GET arguments: `?a=1&b=x` → `{"a":"1","b":"x"}`; a repeated key becomes an array.
fn query_payload(query: &str) -> Result<Payload, Error> {
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k.is_empty() {
            return Err(RequestError::QueryParam {
                message: "Empty query parameter name".into(),
                details: format!("The query string {query:?} has a parameter without a name"),
            }
            .into());
        }
        insert_repeated(&mut map, k.into_owned(), v.into_owned());
    }
    Ok(object_payload(map))
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
    let mut map = Map::new();
    for (name, value) in headers.iter() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match map.get_mut(name.as_str()) {
            Some(Value::String(s)) => {
                s.push_str(", ");
                s.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_string(), Value::String(value));
            }
        }
    }
    Value::Object(map).to_string()
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
mod tests {
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

    fn run(
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
            &[("X-Thing", "a"), ("cookie", "sid=1; theme=dark")],
            "",
        )
        .expect("ok");
        assert!(
            r.headers_json.contains(r#""x-thing":"a""#),
            "{}",
            r.headers_json
        );
        assert_eq!(r.cookies_json, r#"{"sid":"1","theme":"dark"}"#);
    }
}
