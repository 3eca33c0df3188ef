//! Plan stage: an [`RpcRequest`] plus the schema cache become a [`CallPlan`], without I/O.
//!
//! Owns overload resolution (PostgREST's rules: the argument names pick the
//! function; a single unnamed json/jsonb parameter takes the whole body when no
//! named overload fits), the method rules (GET only for STABLE/IMMUTABLE), the
//! read-only decision, and where values of the claims type sit in the result.
//! It does not write SQL (the query stage) or run anything.

use std::sync::Arc;

use crate::error::{Error, RequestError, SchemaCacheError};
use crate::parse::{RpcMethod, RpcRequest};
use crate::schema_cache::{Returns, Routine, SchemaCache, Volatility};

/// How the arguments reach the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Named arguments: indexes into `routine.params`, in parameter order.
    Named(Vec<usize>),
    /// The whole payload as the single unnamed json/jsonb parameter.
    WholeBody,
}

/// Where values of the claims type appear in the JSON result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimsAt {
    /// Nowhere: the body passes through untouched.
    Nowhere,
    /// The result itself (each element when it is a set).
    Whole,
    /// These attributes of each returned row.
    Columns(Vec<String>),
}

/// A resolved call.
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The function.
    pub routine: Arc<Routine>,
    /// Its arguments.
    pub args: Args,
    /// Run in a READ ONLY transaction.
    pub read_only: bool,
    /// Answer with exactly one object or 406.
    pub singular: bool,
    /// Claims-type positions in the result.
    pub claims_at: ClaimsAt,
    /// Arguments of the claims type (or arrays of it): each token sent is
    /// verified and replaced by its claims before the call.
    pub claims_args: Vec<ClaimsArg>,
}

/// An argument that carries tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsArg {
    /// Parameter name.
    pub name: String,
    /// An array of the claims type: every element is a token.
    pub array: bool,
}

/// `Allow` for a function (or all overloads of a name).
pub fn allow(routines: &[Arc<Routine>]) -> &'static str {
    if routines
        .iter()
        .all(|r| r.volatility != Volatility::Volatile)
    {
        "OPTIONS,GET,HEAD,POST"
    } else {
        "OPTIONS,POST"
    }
}

/// Find the overloads of the requested name, or a 404 with a hint.
pub fn overloads<'c>(
    req: &RpcRequest,
    cache: &'c SchemaCache,
) -> Result<&'c [Arc<Routine>], Error> {
    cache.routines(&req.schema, &req.function).ok_or_else(|| {
        let hint = closest(cache.names(&req.schema), &req.function).map(|name| {
            format!(
                "Perhaps you meant to call the function {}.{name}",
                req.schema
            )
        });
        no_rpc(req, hint)
    })
}

fn no_rpc(req: &RpcRequest, hint: Option<String>) -> Error {
    SchemaCacheError::NoRpc {
        schema: req.schema.clone(),
        name: req.function.clone(),
        args: req.payload.keys.clone(),
        hint,
    }
    .into()
}

/// The most similar name, if similar enough to be a likely typo
/// (PostgREST uses a fuzzy-set score ≥ 0.75; Jaro-Winkler ≥ 0.8 behaves alike).
fn closest<'a>(names: impl Iterator<Item = &'a str>, wanted: &str) -> Option<&'a str> {
    names
        .map(|n| (strsim::jaro_winkler(n, wanted), n))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// Resolve the call.
pub fn plan(req: &RpcRequest, cache: &SchemaCache) -> Result<CallPlan, Error> {
    let candidates = overloads(req, cache)?;
    let keys: Vec<&str> = req.payload.keys.iter().map(String::as_str).collect();

    let named: Vec<&Arc<Routine>> = if req.payload.is_object {
        candidates.iter().filter(|r| r.accepts(&keys)).collect()
    } else {
        Vec::new()
    };
    let chosen = match named.as_slice() {
        [one] => (*one).clone(),
        [] => {
            let whole: Vec<&Arc<Routine>> =
                candidates.iter().filter(|r| r.takes_whole_body()).collect();
            match whole.as_slice() {
                [one] => (*one).clone(),
                [] if !req.payload.is_object => {
                    return Err(RequestError::InvalidBody {
                        message: "The request body must be a JSON object of named arguments".into(),
                        details: Some(format!(
                            "{}.{} has no single unnamed json/jsonb parameter to receive another JSON value",
                            req.schema, req.function
                        )),
                    }
                    .into())
                }
                [] => {
                    let hint = param_hint(req, candidates);
                    return Err(no_rpc(req, hint));
                }
                many => return Err(ambiguous(many)),
            }
        }
        many => return Err(ambiguous(many)),
    };

    if matches!(req.method, RpcMethod::Get | RpcMethod::Head)
        && chosen.volatility == Volatility::Volatile
    {
        return Err(RequestError::InvalidRpcMethod {
            method: req.method.as_str().to_string(),
            details: Some(format!(
                "{}.{} is VOLATILE: it may change data, so it is called with POST only",
                chosen.schema, chosen.name
            )),
            allow: "OPTIONS,POST",
        }
        .into());
    }

    let args = if chosen.takes_whole_body() && !(req.payload.is_object && chosen.accepts(&keys)) {
        Args::WholeBody
    } else {
        Args::Named(
            chosen
                .params
                .iter()
                .enumerate()
                .filter(|(_, p)| keys.contains(&p.name.as_str()))
                .map(|(i, _)| i)
                .collect(),
        )
    };
    let read_only = chosen.volatility != Volatility::Volatile;
    let claims_at = claims_positions(&chosen, cache);
    let claims_args = claims_arguments(&chosen, &args, cache)?;
    Ok(CallPlan {
        routine: chosen,
        args,
        read_only,
        singular: req.singular,
        claims_at,
        claims_args,
    })
}

/// Which arguments carry tokens. Claims may only arrive as the claims type
/// itself or an array of it, where each token is verified; any other type that
/// contains the claims type (a row with a claims attribute, a domain) would let
/// a client pass claims nobody signed, so such a call is refused.
fn claims_arguments(routine: &Routine, args: &Args, cache: &SchemaCache) -> Result<Vec<ClaimsArg>, Error> {
    let (Args::Named(indexes), Some(claims)) = (args, cache.claims_type) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in indexes.iter().map(|&i| &routine.params[i]) {
        if p.type_oid == claims.oid {
            out.push(ClaimsArg {
                name: p.name.clone(),
                array: false,
            });
        } else if let Some(element) = cache.claims_containers.get(&p.type_oid) {
            if *element == Some(claims.oid) {
                out.push(ClaimsArg {
                    name: p.name.clone(),
                    array: true,
                });
            } else {
                return Err(RequestError::InvalidBody {
                    message: format!("Parameter '{}' cannot carry tokens", p.name),
                    details: Some(format!(
                        "Its type {} contains the claims type; tokens are accepted only as a parameter of the claims type or an array of it",
                        p.type_sql
                    )),
                }
                .into());
            }
        }
    }
    Ok(out)
}

fn ambiguous(many: &[&Arc<Routine>]) -> Error {
    SchemaCacheError::AmbiguousRpc {
        candidates: many.iter().map(|r| r.signature()).collect(),
    }
    .into()
}

/// When the name exists but no overload takes these arguments, suggest the
/// closest parameter list (PostgREST's `noRpcHint`).
fn param_hint(req: &RpcRequest, candidates: &[Arc<Routine>]) -> Option<String> {
    let fmt = |names: &mut Vec<&str>| {
        names.sort_unstable();
        format!("({})", names.join(", "))
    };
    let mut sent: Vec<&str> = req.payload.keys.iter().map(String::as_str).collect();
    let sent = fmt(&mut sent);
    candidates
        .iter()
        .filter(|r| !r.params.iter().any(|p| p.name.is_empty()))
        .map(|r| {
            let mut names: Vec<&str> = r.params.iter().map(|p| p.name.as_str()).collect();
            let list = fmt(&mut names);
            (strsim::jaro_winkler(&list, &sent), list)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, list)| {
            format!(
                "Perhaps you meant to call the function {}.{}{list}",
                req.schema, req.function
            )
        })
}

/// Where the claims type sits in this function's result.
fn claims_positions(routine: &Routine, cache: &SchemaCache) -> ClaimsAt {
    let Some(claims) = cache.claims_type else {
        return ClaimsAt::Nowhere;
    };
    match &routine.returns {
        Returns::Scalar { type_oid, .. } if *type_oid == claims.oid => ClaimsAt::Whole,
        Returns::Composite {
            type_oid: Some(oid),
            ..
        } if *oid == claims.oid => ClaimsAt::Whole,
        Returns::Composite { columns, .. } => {
            let cols: Vec<String> = columns
                .iter()
                .filter(|c| c.type_oid == claims.oid)
                .map(|c| c.name.clone())
                .collect();
            if cols.is_empty() {
                ClaimsAt::Nowhere
            } else {
                ClaimsAt::Columns(cols)
            }
        }
        _ => ClaimsAt::Nowhere,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parse::Payload;
    use crate::schema_cache::{Column, Param};

    pub(crate) fn routine(
        name: &str,
        params: &[(&str, &str, bool)],
        vol: Volatility,
        returns: Returns,
    ) -> Routine {
        Routine {
            schema: "api".into(),
            name: name.into(),
            oid: 1,
            volatility: vol,
            params: params
                .iter()
                .map(|(n, t, required)| Param {
                    name: n.to_string(),
                    type_oid: match *t {
                        "json" => crate::schema_cache::JSON_OID,
                        "jsonb" => crate::schema_cache::JSONB_OID,
                        _ => 23,
                    },
                    type_sql: t.to_string(),
                    required: *required,
                    variadic: false,
                })
                .collect(),
            returns,
            description: None,
        }
    }

    pub(crate) fn int() -> Returns {
        Returns::Scalar {
            type_oid: 23,
            type_sql: "integer".into(),
            set: false,
        }
    }

    fn request(method: RpcMethod, name: &str, keys: &[&str], is_object: bool) -> RpcRequest {
        RpcRequest {
            method,
            schema: "api".into(),
            schema_from_header: false,
            function: name.into(),
            payload: Payload {
                raw: "{}".into(),
                keys: keys.iter().map(|k| k.to_string()).collect(),
                is_object,
            },
            singular: false,
            path: format!("/rpc/{name}"),
            headers_json: "{}".into(),
            cookies_json: "{}".into(),
        }
    }

    fn cache() -> SchemaCache {
        SchemaCache::from_routines(
            vec![
                routine(
                    "add",
                    &[("a", "integer", true), ("b", "integer", false)],
                    Volatility::Immutable,
                    int(),
                ),
                routine("bump", &[], Volatility::Volatile, int()),
                routine("over", &[("x", "integer", true)], Volatility::Stable, int()),
                routine("over", &[("x", "text", true)], Volatility::Stable, int()),
                routine("body", &[("", "jsonb", true)], Volatility::Volatile, int()),
                routine(
                    "tok",
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
                                type_oid: 23,
                                type_sql: "integer".into(),
                            },
                        ],
                        set: false,
                    },
                ),
            ],
            Some(crate::schema_cache::ClaimsType {
                oid: 777,
                domain: false,
            }),
        )
    }

    #[test]
    fn named_arguments_pick_the_function_and_defaults_may_be_omitted() {
        let p = plan(&request(RpcMethod::Post, "add", &["a"], true), &cache()).expect("plan");
        assert_eq!(p.args, Args::Named(vec![0]));
        assert!(p.read_only, "immutable runs read-only even over POST");
    }

    #[test]
    fn unknown_function_gets_a_hint() {
        let e = plan(&request(RpcMethod::Post, "ad", &[], true), &cache()).expect_err("404");
        assert_eq!(e.code(), "PGRST202");
        assert_eq!(
            e.hint(),
            Some(serde_json::Value::String(
                "Perhaps you meant to call the function api.add".into()
            ))
        );
    }

    #[test]
    fn unknown_argument_is_404_with_param_hint() {
        let e = plan(&request(RpcMethod::Post, "add", &["c"], true), &cache()).expect_err("404");
        assert_eq!(e.status().as_u16(), 404);
        assert!(e
            .hint()
            .expect("hint")
            .as_str()
            .expect("str")
            .contains("api.add(a, b)"));
    }

    #[test]
    fn ambiguous_overloads_are_300() {
        let e = plan(&request(RpcMethod::Post, "over", &["x"], true), &cache()).expect_err("300");
        assert_eq!(e.status().as_u16(), 300);
        assert_eq!(e.code(), "PGRST203");
    }

    #[test]
    fn get_on_volatile_is_405() {
        let e = plan(&request(RpcMethod::Get, "bump", &[], true), &cache()).expect_err("405");
        assert_eq!(e.status().as_u16(), 405);
        assert_eq!(e.code(), "PGRST101");
    }

    #[test]
    fn whole_body_function_takes_any_json() {
        let p = plan(
            &request(RpcMethod::Post, "body", &["anything"], true),
            &cache(),
        )
        .expect("plan");
        assert_eq!(p.args, Args::WholeBody);
        let p = plan(&request(RpcMethod::Post, "body", &[], false), &cache()).expect("plan");
        assert_eq!(p.args, Args::WholeBody);
        let e = plan(&request(RpcMethod::Post, "add", &[], false), &cache()).expect_err("400");
        assert_eq!(e.code(), "PGRST102");
    }

    #[test]
    fn claims_columns_are_found() {
        let p = plan(&request(RpcMethod::Post, "tok", &[], true), &cache()).expect("plan");
        assert_eq!(p.claims_at, ClaimsAt::Columns(vec!["token".into()]));
    }

    #[test]
    fn allow_depends_on_volatility() {
        let c = cache();
        assert_eq!(
            allow(c.routines("api", "add").expect("exists")),
            "OPTIONS,GET,HEAD,POST"
        );
        assert_eq!(
            allow(c.routines("api", "bump").expect("exists")),
            "OPTIONS,POST"
        );
    }
}
