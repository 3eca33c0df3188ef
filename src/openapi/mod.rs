//! The OpenAPI 3.0 document of the exposed functions (`GET /`, `HEAD /`), as
//! the caller's role may use them.
//!
//! Owns the document: one path per function name (`/rpc/<name>`, plus each
//! configured route to it) with `post` always and `get` for STABLE/IMMUTABLE
//! functions, JSON Schemas mapped from PostgreSQL types for arguments and
//! results, the error shape, and the bearer security scheme. It does not decide
//! who the caller is (the auth stage does, exactly as for a call), which
//! functions exist (the schema cache) or who may call them: PostgreSQL answers
//! that in one catalog query ([`PRIVILEGES_SQL`], run by the execute stage like
//! any other statement), which also describes the types involved. This module
//! is pure: the HTTP handler runs it on the shared request pipeline (the same
//! auth, profile negotiation, log line and metrics as a call).
//!
//! Like PostgREST's root endpoint, the document covers one schema: the first
//! exposed one, or the one `Accept-Profile` names; operations of another schema
//! then require the profile header that selects it.
//! Spec: <https://spec.openapis.org/oas/v3.0.3>.

mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::db::schema_cache::{Limits, Returns, Routine, Volatility};
use crate::error::{DbError, Error};
use schema::Mapper;
pub use schema::{Attribute, TypeInfo};

/// The media type of the document (the OpenAPI Initiative's registration).
pub const MEDIA_TYPE: &str = "application/openapi+json; charset=utf-8";

/// Type oids a routine's parameters and result use.
pub fn routine_types(r: &Routine) -> Vec<u32> {
    let mut out: Vec<u32> = r.params.iter().map(|p| p.type_oid).collect();
    match &r.returns {
        Returns::Void => {}
        Returns::Scalar { type_oid, .. } => out.push(*type_oid),
        Returns::Composite {
            type_oid, columns, ..
        } => {
            out.extend(type_oid);
            out.extend(columns.iter().map(|c| c.type_oid));
        }
    }
    out
}

/// What `privileges.sql` answered: the functions the role may execute and
/// the types the document describes.
pub struct Visibility {
    /// OIDs of the functions the role may execute.
    pub executable: HashSet<i64>,
    /// The types involved, by OID.
    pub types: HashMap<u32, TypeInfo>,
}

/// The catalog query behind [`Visibility`]; parameters: role (text), schemas
/// (text[]), type OIDs (int8[]). The execute stage runs it.
pub const PRIVILEGES_SQL: &str = include_str!("privileges.sql");

impl Visibility {
    /// Decode the one row of [`PRIVILEGES_SQL`]. A role that does not exist
    /// or that the authenticator may not switch to is answered with the
    /// errors `SET ROLE` raises for a call, so that a token is answered alike
    /// here and at `/rpc/`.
    pub fn from_row(
        row: &tokio_postgres::Row,
        role: &str,
        authenticated: bool,
    ) -> Result<Visibility, Error> {
        let decode = |e: tokio_postgres::Error| Error::Internal(format!("privileges query: {e}"));
        let role_exists: bool = row.try_get(0).map_err(decode)?;
        let may_switch: bool = row.try_get(1).map_err(decode)?;
        let executable: Vec<i64> = row.try_get(2).map_err(decode)?;
        let types: String = row.try_get(3).map_err(decode)?;
        if !role_exists {
            return Err(DbError::Server {
                code: "22023".into(),
                message: format!("role \"{role}\" does not exist"),
                detail: None,
                hint: None,
                authenticated,
            }
            .into());
        }
        if !may_switch {
            return Err(DbError::Server {
                code: "42501".into(),
                message: format!("permission denied to set role \"{role}\""),
                detail: None,
                hint: None,
                authenticated,
            }
            .into());
        }
        let types: HashMap<u32, TypeInfo> = serde_json::from_str(&types)
            .map_err(|e| Error::Internal(format!("privileges query types: {e}")))?;
        Ok(Visibility {
            executable: executable.into_iter().collect(),
            types,
        })
    }
}

/// Everything the document is made of.
pub struct Input<'a> {
    /// The functions the role may execute, all of `schema`.
    pub routines: &'a [Arc<Routine>],
    /// Descriptions of the types they use (a missing one falls back to its SQL name).
    pub types: &'a HashMap<u32, TypeInfo>,
    /// The claims type's oid: such values travel as JWT strings.
    pub claims_type: Option<u32>,
    /// The schema documented.
    pub schema: &'a str,
    /// Whether it is the default (first exposed) schema; otherwise operations
    /// need the profile headers.
    pub default_schema: bool,
    /// Configured routes: path → function name.
    pub routes: &'a [(String, String)],
    /// `servers[0].url`.
    pub server: Option<String>,
    /// Whether requests without a token are allowed (`db.anon_role`).
    pub anonymous: bool,
    /// Parameters the gateway fills from the claims (`pgrpc.from_claims`),
    /// by function OID: not the client's to send, so not documented.
    pub from_claims: &'a HashMap<i64, Arc<[usize]>>,
    /// Declared limits by function OID: a rate limit adds the 429 answer.
    pub limits: &'a HashMap<i64, Arc<Limits>>,
}

/// Whether plan can ever choose this routine: by named arguments, or by the
/// whole body for a single unnamed json/jsonb parameter.
fn callable(r: &Routine) -> bool {
    r.takes_whole_body() || r.params.iter().all(|p| !p.name.is_empty())
}

/// Build the OpenAPI 3.0 document.
pub fn document(input: &Input<'_>) -> Value {
    let mapper = Mapper {
        types: input.types,
        claims: input.claims_type,
    };
    let mut by_name: BTreeMap<&str, Vec<&Routine>> = BTreeMap::new();
    for r in input.routines.iter().filter(|r| callable(r)) {
        by_name.entry(r.name.as_str()).or_default().push(r);
    }
    for overloads in by_name.values_mut() {
        overloads.sort_by_key(|r| r.oid);
    }
    let mut ids = OperationIds::default();
    let mut paths = Map::new();
    for (name, overloads) in &by_name {
        let path = format!("/rpc/{}", encode_segment(name));
        let item = path_item(&mapper, input, name, overloads, &path, &mut ids);
        paths.insert(path, item);
    }
    for (path, function) in input.routes {
        // A `{…}` segment is an actix pattern, which would be an OpenAPI
        // template without a parameter: such routes are left out.
        if path.contains(['{', '}']) || paths.contains_key(path) {
            continue;
        }
        if let Some(overloads) = by_name.get(function.as_str()) {
            let item = path_item(&mapper, input, function, overloads, path, &mut ids);
            paths.insert(path.clone(), item);
        }
    }

    let bearer = json!({ "bearerAuth": [] });
    let security = if input.anonymous {
        json!([{}, bearer])
    } else {
        json!([bearer])
    };
    let server = input.server.clone().unwrap_or_else(|| "/".into());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "pgrpc",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "PostgreSQL functions of schema `{}` served over HTTP, PostgREST-style. \
    POST /rpc/<name> with a JSON object of named arguments; GET /rpc/<name>?arg=value for \
    STABLE and IMMUTABLE functions. Only the functions the caller's role may execute are listed.",
                input.schema
            ),
        },
        "servers": [{ "url": server }],
        "security": security,
        "paths": paths,
        "components": components(input.anonymous),
    })
}

/// Security scheme, error schema and the shared error responses.
fn components(anonymous: bool) -> Value {
    let mut responses = Map::new();
    for (_, name, text) in ERROR_RESPONSES {
        responses.insert(
            name.to_string(),
            json!({
                "description": text,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
            }),
        );
    }
    let auth_text = if anonymous {
        "A JWT whose role claim names the database role to run as. Without one, requests run as the anonymous role."
    } else {
        "A JWT whose role claim names the database role to run as. Anonymous requests are refused."
    };
    json!({
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": auth_text,
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "description": "Every error: a gateway code (PGRSTnnn) or the SQLSTATE the database raised, and its texts.",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "string", "description": "PGRSTnnn, or a SQLSTATE such as 23505" },
                    "message": { "type": "string" },
                    "details": { "type": "string", "nullable": true },
                    "hint": { "type": "string", "nullable": true },
                },
            }
        },
        "responses": responses,
    })
}

/// Shared error responses: status, component name, description.
const ERROR_RESPONSES: &[(&str, &str, &str)] = &[
    ("300", "AmbiguousFunction", "Several overloads accept these arguments (PGRST203)"),
    ("400", "BadRequest", "Invalid body, argument value or query parameter; RAISE EXCEPTION (P0001) and other client errors"),
    ("401", "Unauthorized", "Invalid or missing token, or the role may not run the function anonymously"),
    ("403", "Forbidden", "The token's role may not do this"),
    ("404", "NotFound", "No function takes these arguments (PGRST202)"),
    ("406", "NotAcceptable", "Unsupported Accept or profile header, or a singular response of several rows"),
    ("409", "Conflict", "A unique or foreign key violation"),
    ("413", "PayloadTooLarge", "The body exceeds server.max_body_bytes (PGRST150)"),
    ("500", "InternalError", "An internal error"),
    ("429", "TooManyRequests", "The function's rate limit for this client address is used up (PGRST160); retry after Retry-After, see the RateLimit header"),
    ("503", "Unavailable", "The database is unreachable, the schema cache is not loaded, or the function's concurrency limit is full (PGRST060); retry after Retry-After"),
    ("504", "Timeout", "No pooled connection in time, or the statement timed out"),
    ("default", "Error", "Any other status: RAISE ... USING ERRCODE = 'PTnnn' answers with status nnn and this shape (a function that sets response.status itself chooses its own body)"),
];

/// Unique `operationId`s.
#[derive(Default)]
struct OperationIds(HashSet<String>);

impl OperationIds {
    fn make(&mut self, method: &str, function: &str, route: Option<&str>) -> String {
        let clean = |s: &str| -> String {
            let s: String = s
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            s.trim_matches('_').to_string()
        };
        let mut id = format!("{method}_{}", clean(function));
        if let Some(route) = route {
            id = format!("{id}_at_{}", clean(route));
        }
        let mut unique = id.clone();
        let mut n = 2;
        while !self.0.insert(unique.clone()) {
            unique = format!("{id}_{n}");
            n += 1;
        }
        unique
    }
}

/// Percent-encode a function name as one path segment (RFC 3986 unreserved
/// characters stay; `{`, `}`, `/`, spaces and the rest are encoded).
fn encode_segment(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

/// The path item of one function name (all its overloads the role may call).
fn path_item(
    mapper: &Mapper<'_>,
    input: &Input<'_>,
    name: &str,
    overloads: &[&Routine],
    path: &str,
    ids: &mut OperationIds,
) -> Value {
    let route = (!path.starts_with("/rpc/")).then_some(path);
    let (summary, description) = texts(overloads);
    let mut errors = vec!["400", "401", "403", "404", "406", "500", "503", "504"];
    if overloads.len() > 1 {
        errors.push("300");
    }
    if overloads
        .iter()
        .any(|r| input.limits.get(&r.oid).is_some_and(|l| l.rate.is_some()))
    {
        errors.push("429");
    }
    let mut item = Map::new();

    // POST: every overload.
    let mut post = Map::new();
    post.insert("operationId".into(), json!(ids.make("call", name, route)));
    if let Some(s) = &summary {
        post.insert("summary".into(), json!(s));
    }
    if let Some(d) = &description {
        post.insert("description".into(), json!(d));
    }
    if !input.default_schema {
        post.insert(
            "parameters".into(),
            json!([profile_parameter("Content-Profile", input.schema)]),
        );
    }
    post.insert(
        "requestBody".into(),
        request_body(mapper, overloads, input.from_claims),
    );
    let mut post_errors = errors.clone();
    post_errors.extend(["409", "413"]);
    post.insert(
        "responses".into(),
        responses(mapper, overloads, &post_errors),
    );
    item.insert("post".into(), Value::Object(post));

    // GET: the overloads GET may call.
    let readable: Vec<&Routine> = overloads
        .iter()
        .copied()
        .filter(|r| r.volatility != Volatility::Volatile)
        .collect();
    if !readable.is_empty() {
        let mut get = Map::new();
        get.insert("operationId".into(), json!(ids.make("get", name, route)));
        if let Some(s) = &summary {
            get.insert("summary".into(), json!(s));
        }
        if let Some(d) = &description {
            get.insert("description".into(), json!(d));
        }
        let mut parameters = query_parameters(mapper, &readable, input.from_claims);
        if !input.default_schema {
            parameters.push(profile_parameter("Accept-Profile", input.schema));
        }
        if !parameters.is_empty() {
            get.insert("parameters".into(), Value::Array(parameters));
        }
        get.insert("responses".into(), responses(mapper, &readable, &errors));
        item.insert("get".into(), Value::Object(get));
    }
    Value::Object(item)
}

/// `summary` (first line of the comment) and `description` (the rest; every
/// comment when overloads differ), PostgREST's convention.
fn texts(overloads: &[&Routine]) -> (Option<String>, Option<String>) {
    let mut comments: Vec<&str> = Vec::new();
    for r in overloads {
        if let Some(d) = r.description.as_deref().map(str::trim) {
            if !d.is_empty() && !comments.contains(&d) {
                comments.push(d);
            }
        }
    }
    match comments.as_slice() {
        [] => (None, None),
        [one] => {
            let (first, rest) = one.split_once('\n').unwrap_or((one, ""));
            let rest = rest.trim();
            (
                Some(first.trim().to_string()),
                (!rest.is_empty()).then(|| rest.to_string()),
            )
        }
        many => {
            let first = many[0].lines().next().unwrap_or_default().trim();
            (Some(first.to_string()), Some(many.join("\n\n")))
        }
    }
}

fn profile_parameter(header: &str, schema: &str) -> Value {
    json!({
        "name": header,
        "in": "header",
        "required": true,
        "description": format!("Selects the schema {schema} (not the default one)"),
        "schema": { "type": "string", "enum": [schema] },
    })
}

/// One schema when all agree, else `anyOf` of the distinct ones.
fn merge(schemas: Vec<Value>) -> Value {
    let mut distinct: Vec<Value> = Vec::new();
    for s in schemas {
        if !distinct.contains(&s) {
            distinct.push(s);
        }
    }
    match distinct.len() {
        0 => json!({}),
        1 => distinct.remove(0),
        _ => json!({ "anyOf": distinct }),
    }
}

/// The parameters of `r` a client sends: all but those the gateway fills
/// from the claims.
fn documented_params<'r>(
    r: &'r Routine,
    filled: &HashMap<i64, Arc<[usize]>>,
) -> Vec<&'r crate::db::schema_cache::Param> {
    let skip = filled.get(&r.oid);
    r.params
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip.is_some_and(|s| s.contains(i)))
        .map(|(_, p)| p)
        .collect()
}

/// Named parameters merged over overloads: name → schemas (first-seen order),
/// and the names every overload requires.
fn merged_params(
    overloads: &[&Routine],
    filled: &HashMap<i64, Arc<[usize]>>,
    schema_of: impl Fn(&crate::db::schema_cache::Param) -> Value,
) -> (Vec<(String, Value)>, Vec<String>) {
    let mut order: Vec<String> = Vec::new();
    let mut schemas: HashMap<String, Vec<Value>> = HashMap::new();
    for r in overloads {
        for p in documented_params(r, filled) {
            if !schemas.contains_key(&p.name) {
                order.push(p.name.clone());
            }
            schemas
                .entry(p.name.clone())
                .or_default()
                .push(schema_of(p));
        }
    }
    let required: Vec<String> = order
        .iter()
        .filter(|name| {
            overloads.iter().all(|r| {
                documented_params(r, filled)
                    .iter()
                    .any(|p| &p.name == *name && p.required)
            })
        })
        .cloned()
        .collect();
    let merged = order
        .into_iter()
        .map(|name| {
            let s = merge(schemas.remove(&name).unwrap_or_default());
            (name, s)
        })
        .collect();
    (merged, required)
}

fn request_body(
    mapper: &Mapper<'_>,
    overloads: &[&Routine],
    filled: &HashMap<i64, Arc<[usize]>>,
) -> Value {
    if overloads.iter().any(|r| r.takes_whole_body()) {
        return json!({
            "description": "Any JSON value: the function receives the whole body as its single json/jsonb parameter",
            "required": false,
            "content": { "application/json": { "schema": {} } },
        });
    }
    let (params, required) =
        merged_params(overloads, filled, |p| mapper.input(p.type_oid, &p.type_sql));
    let mut properties = Map::new();
    for (name, schema) in params {
        properties.insert(name, schema);
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    // An unknown argument matches no function: 404.
    schema.insert("additionalProperties".into(), json!(false));
    json!({
        "description": "The named arguments; parameters with defaults may be left out",
        "required": !required.is_empty(),
        "content": { "application/json": { "schema": schema } },
    })
}

/// GET arguments: each value is text that PostgreSQL casts to the parameter's
/// type; an array is the parameter repeated (`?xs=1&xs=2`).
fn query_parameters(
    mapper: &Mapper<'_>,
    overloads: &[&Routine],
    filled: &HashMap<i64, Arc<[usize]>>,
) -> Vec<Value> {
    if overloads.iter().any(|r| r.takes_whole_body()) {
        // The query string as one JSON object of strings is the single argument.
        return vec![json!({
            "name": "arguments",
            "in": "query",
            "required": false,
            "style": "form",
            "explode": true,
            "description": "Any query parameters: the function receives them as one JSON object of strings",
            "schema": { "type": "object", "additionalProperties": { "type": "string" } },
        })];
    }
    let (params, required) =
        merged_params(overloads, filled, |p| mapper.query(p.type_oid, &p.type_sql));
    params
        .into_iter()
        .map(|(name, schema)| {
            let array = schema.get("type") == Some(&json!("array"));
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name),
                "style": "form",
                "explode": true,
                "schema": schema,
            });
            if array {
                p["description"] =
                    json!("Repeat the parameter for each element, or send one PostgreSQL array literal such as {1,2}");
            }
            p
        })
        .collect()
}

fn responses(mapper: &Mapper<'_>, overloads: &[&Routine], errors: &[&str]) -> Value {
    let mut out = Map::new();
    let voids = overloads
        .iter()
        .filter(|r| matches!(r.returns, Returns::Void))
        .count();
    let results: Vec<&Routine> = overloads
        .iter()
        .copied()
        .filter(|r| !matches!(r.returns, Returns::Void))
        .collect();
    if !results.is_empty() {
        let body = merge(results.iter().map(|r| mapper.result(&r.returns)).collect());
        let mut content = Map::new();
        content.insert("application/json".into(), json!({ "schema": body }));
        let sets: Vec<&Routine> = results
            .iter()
            .copied()
            .filter(|r| r.returns.is_set())
            .collect();
        if sets.len() == results.len() {
            // Accept: application/vnd.pgrst.object+json asks for exactly one row.
            let one = merge(sets.iter().map(|r| mapper.row(&r.returns)).collect());
            content.insert(
                "application/vnd.pgrst.object+json".into(),
                json!({ "schema": one }),
            );
        }
        out.insert(
            "200".into(),
            json!({ "description": "The function's result", "content": content }),
        );
    }
    if voids > 0 {
        out.insert(
            "204".into(),
            json!({ "description": "The function returns void" }),
        );
    }
    for (status, name, _) in ERROR_RESPONSES {
        if *status == "default" || errors.contains(status) {
            out.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema_cache::{Column, Param};

    fn routine(
        name: &str,
        oid: i64,
        params: &[(&str, &str, bool)],
        vol: Volatility,
        returns: Returns,
    ) -> Arc<Routine> {
        Arc::new(Routine {
            schema: "api".into(),
            name: name.into(),
            oid,
            volatility: vol,
            params: params
                .iter()
                .map(|(n, t, required)| Param {
                    name: n.to_string(),
                    type_oid: match *t {
                        "integer" => 23,
                        "text" => 25,
                        "jsonb" => 3802,
                        "json" => 114,
                        _ => 0,
                    },
                    type_sql: t.to_string(),
                    required: *required,
                    variadic: false,
                })
                .collect(),
            returns,
            description: Some("Adds.\nIn detail.".into()),
            distributed: false,
        })
    }

    fn int() -> Returns {
        Returns::Scalar {
            type_oid: 23,
            type_sql: "integer".into(),
            set: false,
        }
    }

    fn doc(routines: &[Arc<Routine>], routes: &[(String, String)], anonymous: bool) -> Value {
        doc_filled(routines, routes, anonymous, &HashMap::new())
    }

    fn doc_filled(
        routines: &[Arc<Routine>],
        routes: &[(String, String)],
        anonymous: bool,
        from_claims: &HashMap<i64, Arc<[usize]>>,
    ) -> Value {
        doc_limited(routines, routes, anonymous, from_claims, &HashMap::new())
    }

    fn doc_limited(
        routines: &[Arc<Routine>],
        routes: &[(String, String)],
        anonymous: bool,
        from_claims: &HashMap<i64, Arc<[usize]>>,
        limits: &HashMap<i64, Arc<Limits>>,
    ) -> Value {
        document(&Input {
            routines,
            types: &HashMap::new(),
            claims_type: Some(777),
            schema: "api",
            default_schema: true,
            routes,
            server: Some("http://localhost:3000".into()),
            anonymous,
            from_claims,
            limits,
        })
    }

    #[test]
    fn a_rate_limited_function_documents_429() {
        use crate::db::schema_cache::limits::{RateLimit, RateUnit};
        let limited = routine("guess", 5, &[], Volatility::Volatile, int());
        let free = routine("free", 6, &[], Volatility::Volatile, int());
        let limits = HashMap::from([(
            5,
            Arc::new(Limits {
                max_concurrency: Some(1),
                max_queue: 8,
                max_wait: std::time::Duration::from_secs(5),
                rate: Some(RateLimit {
                    count: 30,
                    unit: RateUnit::Minute,
                    all: true,
                }),
            }),
        )]);
        let d = doc_limited(&[limited, free], &[], true, &HashMap::new(), &limits);
        let responses = |path: &str| d["paths"][path]["post"]["responses"].clone();
        assert!(responses("/rpc/guess").get("429").is_some(), "{d}");
        assert!(responses("/rpc/free").get("429").is_none(), "{d}");
        assert!(
            d["components"]["responses"]["TooManyRequests"].is_object(),
            "{d}"
        );
    }

    #[test]
    fn a_parameter_filled_from_the_claims_is_not_documented() {
        let r = routine(
            "mine",
            5,
            &[("a", "integer", true), ("owner", "text", true)],
            Volatility::Stable,
            int(),
        );
        let filled = HashMap::from([(5, Arc::from(vec![1]))]);
        let d = doc_filled(&[r], &[], true, &filled);
        let body = &d["paths"]["/rpc/mine"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(
            body["properties"].as_object().map(|p| p.len()),
            Some(1),
            "{body}"
        );
        assert!(body["properties"].get("owner").is_none(), "{body}");
        assert_eq!(body["required"], json!(["a"]));
        let query: Vec<&str> = d["paths"]["/rpc/mine"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            query.contains(&"a") && !query.contains(&"owner"),
            "{query:?}"
        );
    }

    #[test]
    fn post_always_get_only_when_not_volatile() {
        let d = doc(
            &[
                routine(
                    "add",
                    1,
                    &[("a", "integer", true), ("b", "integer", false)],
                    Volatility::Immutable,
                    int(),
                ),
                routine("bump", 2, &[], Volatility::Volatile, Returns::Void),
            ],
            &[],
            true,
        );
        let add = &d["paths"]["/rpc/add"];
        assert_eq!(
            add["post"]["requestBody"]["content"]["application/json"]["schema"]["required"],
            json!(["a"])
        );
        assert_eq!(add["post"]["summary"], json!("Adds."));
        assert_eq!(add["post"]["description"], json!("In detail."));
        assert_eq!(add["get"]["parameters"][0]["name"], json!("a"));
        assert_eq!(add["get"]["parameters"][1]["required"], json!(false));
        assert!(d["paths"]["/rpc/bump"]["get"].is_null());
        assert!(d["paths"]["/rpc/bump"]["post"]["responses"]["204"].is_object());
        assert_eq!(d["security"], json!([{}, {"bearerAuth": []}]));
    }

    #[test]
    fn overloads_share_one_path_with_merged_parameters() {
        let d = doc(
            &[
                routine(
                    "over",
                    1,
                    &[("x", "integer", true)],
                    Volatility::Stable,
                    int(),
                ),
                routine("over", 2, &[("x", "text", true)], Volatility::Stable, int()),
            ],
            &[],
            false,
        );
        let schema = &d["paths"]["/rpc/over"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(schema["required"], json!(["x"]));
        assert_eq!(
            schema["properties"]["x"]["anyOf"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(d["paths"]["/rpc/over"]["post"]["responses"]["300"].is_object());
        assert_eq!(d["security"], json!([{"bearerAuth": []}]));
    }

    #[test]
    fn routes_are_extra_paths_and_names_are_encoded() {
        let d = doc(
            &[routine("Weird Name", 1, &[], Volatility::Volatile, int())],
            &[
                ("/x/".into(), "Weird Name".into()),
                ("/y/".into(), "missing".into()),
            ],
            true,
        );
        assert!(d["paths"]["/rpc/Weird%20Name"]["post"].is_object());
        assert!(d["paths"]["/x/"]["post"].is_object());
        assert!(d["paths"]["/y/"].is_null());
        assert_ne!(
            d["paths"]["/x/"]["post"]["operationId"],
            d["paths"]["/rpc/Weird%20Name"]["post"]["operationId"]
        );
    }

    #[test]
    fn whole_body_and_claims_columns() {
        let d = doc(
            &[
                routine(
                    "echo",
                    1,
                    &[("", "json", true)],
                    Volatility::Immutable,
                    int(),
                ),
                routine(
                    "login",
                    2,
                    &[],
                    Volatility::Volatile,
                    Returns::Composite {
                        type_oid: None,
                        columns: vec![
                            Column {
                                name: "token".into(),
                                type_oid: 777,
                                type_sql: "auth.jwt_claims".into(),
                            },
                            Column {
                                name: "n".into(),
                                type_oid: 20,
                                type_sql: "bigint".into(),
                            },
                        ],
                        set: false,
                    },
                ),
            ],
            &[],
            true,
        );
        assert_eq!(
            d["paths"]["/rpc/echo"]["post"]["requestBody"]["content"]["application/json"]["schema"],
            json!({})
        );
        let row = &d["paths"]["/rpc/login"]["post"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert_eq!(row["properties"]["token"]["type"], json!("string"));
        assert_eq!(row["properties"]["n"]["format"], json!("int64"));
    }
}
