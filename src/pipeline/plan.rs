//! Plan stage: an [`RpcRequest`] plus the schema cache become a [`CallPlan`], without I/O.
//!
//! Owns overload resolution (PostgREST's rules: the argument names pick the
//! function; a single unnamed json/jsonb parameter takes the whole body when no
//! named overload fits), the method rules (GET only for STABLE/IMMUTABLE), the
//! read-only decision, where values of the claims type sit in the result, and
//! resolving the query string's column names (`select`, filters, `order`)
//! against the function's result columns in the schema cache, so that only
//! catalog names reach SQL. It does not write SQL (the query stage) or run
//! anything.

use std::sync::Arc;

use crate::db::schema_cache::{Returns, Routine, SchemaCache, Volatility};
use crate::error::{Error, RequestError, SchemaCacheError};
use crate::pipeline::parse::{
    LogicOp, LogicTree, OpExpr, OrderDirection, OrderNulls, RpcMethod, RpcRequest, SelectItem,
};

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
    /// The arguments came from the query string (GET/HEAD): every value is
    /// text, and a single value of a VARIADIC parameter is a one-element array.
    pub query_args: bool,
    /// `nulls=stripped`: leave out object keys whose value is null.
    pub strip_nulls: bool,
    /// What the query string does to the result.
    pub read: ReadPlan,
    /// HEAD: answer without a body.
    pub head: bool,
    /// The schema to echo as `Content-Profile`, when the client named it.
    pub profile: Option<String>,
    /// The database is a Citus database: the request settings must reach
    /// the workers too (see `pipeline::citus`).
    pub citus: bool,
    /// Parameters the gateway fills from the claims (`pgrpc.from_claims`):
    /// positions into `routine.params`. Until `pipeline::auth::fill_from_claims`
    /// ran, `args` says what the client sent; after it, what the call gives.
    pub from_claims: Option<Arc<[usize]>>,
}

/// The query string's effect on the result, with every column resolved
/// against the function's result columns.
#[derive(Debug, Clone, Default)]
pub struct ReadPlan {
    /// The body's columns; None keeps the function's own shape.
    pub select: Option<Vec<Projection>>,
    /// Conditions that must all hold.
    pub conditions: Vec<Condition>,
    /// `ORDER BY`, in order of precedence.
    pub order: Vec<Ordering>,
    /// `LIMIT`.
    pub limit: Option<i64>,
    /// `OFFSET`: also the first position in `Content-Range`.
    pub offset: i64,
    /// Count the whole result (`Prefer: count=exact`; sets only).
    pub count: bool,
}

/// A column of the function's result, as the query string may name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultColumn {
    /// Its name (the key in the body).
    pub name: String,
    /// Where the call's row holds it.
    pub source: ColumnSource,
    /// SQL spelling of its type.
    pub type_sql: String,
}

/// Where a result column lives in the call's row `pgrst_call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// An attribute of a composite result: `pgrst_call."name"`.
    Attribute,
    /// The single value of a scalar result, or the one column of a one-column
    /// result: `pgrst_call.pgrst_scalar`.
    Scalar,
}

/// One item of the body's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    /// `*`: every column.
    Star,
    /// One column under a key.
    Column {
        /// The column.
        column: ResultColumn,
        /// Its key in the body.
        alias: String,
    },
}

/// A filter or a combination of them, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `column op value`.
    Filter {
        /// The column.
        column: ResultColumn,
        /// The test.
        expr: OpExpr,
    },
    /// `[NOT] (a AND/OR b …)`.
    Tree {
        /// `NOT`.
        negated: bool,
        /// `AND` / `OR`.
        op: LogicOp,
        /// Members.
        children: Vec<Condition>,
    },
}

/// One `ORDER BY` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ordering {
    /// The column.
    pub column: ResultColumn,
    /// `ASC`/`DESC`, PostgreSQL's default when None.
    pub direction: Option<OrderDirection>,
    /// `NULLS FIRST/LAST`, PostgreSQL's default when None.
    pub nulls: Option<OrderNulls>,
}

/// An argument that carries tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsArg {
    /// Parameter name.
    pub name: String,
    /// An array of the claims type: every element is a token.
    pub array: bool,
    /// The claims type is a domain over json/jsonb, not a composite.
    pub domain: bool,
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
        candidates
            .iter()
            .filter(|r| accepts_filled(r, &keys, cache))
            .collect()
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
                    if let Some(e) = unknown_operator(req, candidates) {
                        return Err(e);
                    }
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
    let read = read_plan(req, &chosen)?;
    let claims_at = claims_after_select(claims_at, &read, &chosen)?;
    Ok(CallPlan {
        args,
        read_only,
        singular: req.singular,
        claims_at,
        claims_args,
        query_args: matches!(req.method, RpcMethod::Get | RpcMethod::Head),
        strip_nulls: req.strip_nulls,
        read,
        head: req.method == RpcMethod::Head,
        profile: req.schema_from_header.then(|| req.schema.clone()),
        citus: cache.citus,
        from_claims: cache.from_claims(chosen.oid).cloned(),
        routine: chosen,
    })
}

/// [`Routine::accepts`], where a parameter the gateway fills from the claims
/// counts as given: the client need not (and cannot) send it.
fn accepts_filled(routine: &Routine, keys: &[&str], cache: &SchemaCache) -> bool {
    let Some(filled) = cache.from_claims(routine.oid) else {
        return routine.accepts(keys);
    };
    let mut all = keys.to_vec();
    for p in filled.iter().filter_map(|&i| routine.params.get(i)) {
        if !all.contains(&p.name.as_str()) {
            all.push(&p.name);
        }
    }
    routine.accepts(&all)
}

/// On GET, `x=foo.1` is an argument when `foo` is no operator (PostgREST's
/// rule). When no function takes such an argument, the client most likely
/// misspelt an operator: PGRST100 says so more precisely than a 404.
fn unknown_operator(req: &RpcRequest, candidates: &[Arc<Routine>]) -> Option<Error> {
    req.operator_like_args
        .iter()
        .find(|(key, _)| {
            !candidates
                .iter()
                .any(|r| r.params.iter().any(|p| &p.name == key))
        })
        .map(|(_, value)| crate::pipeline::parse::unknown_operator(value))
}

/// The columns the query string may name. A scalar result has one,
/// `pgrst_scalar` (PostgREST's name for it); `record` and `void` have none
/// that the catalog knows.
pub fn result_columns(routine: &Routine) -> Vec<ResultColumn> {
    match &routine.returns {
        Returns::Void => Vec::new(),
        Returns::Scalar { type_oid, .. } if *type_oid == crate::db::schema_cache::RECORD_OID => {
            Vec::new()
        }
        Returns::Scalar { type_sql, .. } => vec![ResultColumn {
            name: "pgrst_scalar".into(),
            source: ColumnSource::Scalar,
            type_sql: type_sql.clone(),
        }],
        Returns::Composite {
            type_oid: None,
            columns,
            ..
        } if columns.len() == 1 => vec![ResultColumn {
            name: columns[0].name.clone(),
            source: ColumnSource::Scalar,
            type_sql: columns[0].type_sql.clone(),
        }],
        Returns::Composite { columns, .. } => columns
            .iter()
            .map(|c| ResultColumn {
                name: c.name.clone(),
                source: ColumnSource::Attribute,
                type_sql: c.type_sql.clone(),
            })
            .collect(),
    }
}

/// Resolve `select`, filters and `order` against the result's columns.
fn read_plan(req: &RpcRequest, routine: &Routine) -> Result<ReadPlan, Error> {
    if matches!(routine.returns, Returns::Void) {
        // Nothing to shape: no filter, column or order can apply.
        if let Some(name) = first_named_column(req) {
            return Err(unknown_column(routine, &[], &name));
        }
        return Ok(ReadPlan::default());
    }
    let columns = result_columns(routine);
    let find = |name: &str| -> Result<ResultColumn, Error> {
        columns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| unknown_column(routine, &columns, name))
    };
    let scalar = matches!(routine.returns, Returns::Scalar { .. });
    let select = match &req.read.select {
        None => None,
        // A scalar is its value: only `*` or `pgrst_scalar` keep that shape.
        Some(items) if scalar => {
            for item in items {
                match item {
                    SelectItem::Star => {}
                    SelectItem::Field { name, alias: None } if name == "pgrst_scalar" => {
                        find(name)?;
                    }
                    SelectItem::Field { name, .. } => {
                        return Err(unknown_column(routine, &columns, name))
                    }
                }
            }
            None
        }
        Some(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    SelectItem::Star => Ok(Projection::Star),
                    SelectItem::Field { name, alias } => Ok(Projection::Column {
                        column: find(name)?,
                        alias: alias.clone().unwrap_or_else(|| name.clone()),
                    }),
                })
                .collect::<Result<Vec<_>, Error>>()?,
        ),
    };
    let conditions = req
        .read
        .conditions
        .iter()
        .map(|t| condition(t, &find))
        .collect::<Result<Vec<_>, Error>>()?;
    let order = req
        .read
        .order
        .iter()
        .map(|t| {
            Ok(Ordering {
                column: find(&t.field)?,
                direction: t.direction,
                nulls: t.nulls,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(ReadPlan {
        select,
        conditions,
        order,
        limit: req.read.limit,
        offset: req.read.offset,
        count: req.count && routine.returns.is_set() && !req.singular,
    })
}

fn condition(
    tree: &LogicTree,
    find: &dyn Fn(&str) -> Result<ResultColumn, Error>,
) -> Result<Condition, Error> {
    Ok(match tree {
        LogicTree::Stmt(f) => Condition::Filter {
            column: find(&f.field)?,
            expr: f.expr.clone(),
        },
        LogicTree::Expr {
            negated,
            op,
            children,
        } => Condition::Tree {
            negated: *negated,
            op: *op,
            children: children
                .iter()
                .map(|c| condition(c, find))
                .collect::<Result<Vec<_>, Error>>()?,
        },
    })
}

/// Any column the query string names (for results without columns).
fn first_named_column(req: &RpcRequest) -> Option<String> {
    fn in_tree(t: &LogicTree) -> Option<String> {
        match t {
            LogicTree::Stmt(f) => Some(f.field.clone()),
            LogicTree::Expr { children, .. } => children.iter().find_map(in_tree),
        }
    }
    let read = &req.read;
    read.select
        .iter()
        .flatten()
        .find_map(|i| match i {
            SelectItem::Field { name, .. } => Some(name.clone()),
            SelectItem::Star => None,
        })
        .or_else(|| read.conditions.iter().find_map(in_tree))
        .or_else(|| read.order.first().map(|o| o.field.clone()))
}

/// PGRST100 naming the column and what the result has instead. (PostgREST
/// lets PostgreSQL answer 42703; here names are checked before any SQL.)
fn unknown_column(routine: &Routine, columns: &[ResultColumn], name: &str) -> Error {
    let has = match columns {
        [] => "no columns that can be named".to_string(),
        cols => format!(
            "the columns {}",
            cols.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    RequestError::QueryParam {
        message: format!(
            "Column '{name}' does not exist in the result of {}.{}",
            routine.schema, routine.name
        ),
        details: format!("The result has {has}"),
    }
    .into()
}

/// Claims columns keep being signed under the key `select` gives them. A
/// result that is itself a token cannot be cut down: signing a subset of its
/// claims would let a client drop `exp` or `aud` from a token it receives.
fn claims_after_select(
    at: ClaimsAt,
    read: &ReadPlan,
    routine: &Routine,
) -> Result<ClaimsAt, Error> {
    let Some(items) = &read.select else {
        return Ok(at);
    };
    match at {
        ClaimsAt::Nowhere => Ok(ClaimsAt::Nowhere),
        ClaimsAt::Whole => {
            if items.iter().all(|p| *p == Projection::Star) {
                Ok(ClaimsAt::Whole)
            } else {
                Err(RequestError::QueryParam {
                    message: format!(
                        "The result of {}.{} is signed as a token: its claims cannot be selected",
                        routine.schema, routine.name
                    ),
                    details: "Only select=* applies to a result of the claims type".into(),
                }
                .into())
            }
        }
        ClaimsAt::Columns(cols) => {
            let mut keys: Vec<String> = Vec::new();
            for item in items {
                let new: Vec<String> = match item {
                    Projection::Star => cols.clone(),
                    Projection::Column { column, alias } if cols.contains(&column.name) => {
                        vec![alias.clone()]
                    }
                    Projection::Column { .. } => Vec::new(),
                };
                for k in new {
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            // A key holding a token must hold nothing else: another column
            // under the same key would be taken for the token.
            let routine_cols = result_columns(routine);
            for item in items {
                let produced: Vec<(&str, &str)> = match item {
                    Projection::Star => routine_cols
                        .iter()
                        .map(|c| (c.name.as_str(), c.name.as_str()))
                        .collect(),
                    Projection::Column { column, alias } => {
                        vec![(alias.as_str(), column.name.as_str())]
                    }
                };
                for (key, source) in produced {
                    if keys.iter().any(|k| k == key) && !cols.iter().any(|c| c == source) {
                        return Err(RequestError::QueryParam {
                            message: format!("The key '{key}' holds a signed token and cannot also hold column '{source}'"),
                            details: "Choose another alias in select".into(),
                        }
                        .into());
                    }
                }
            }
            Ok(if keys.is_empty() {
                ClaimsAt::Nowhere
            } else {
                ClaimsAt::Columns(keys)
            })
        }
    }
}

/// Which arguments carry tokens. Claims may only arrive as the claims type
/// itself or an array of it, where each token is verified; any other type that
/// contains the claims type (a row with a claims attribute, a domain) would let
/// a client pass claims nobody signed, so such a call is refused.
fn claims_arguments(
    routine: &Routine,
    args: &Args,
    cache: &SchemaCache,
) -> Result<Vec<ClaimsArg>, Error> {
    let (Args::Named(indexes), Some(claims)) = (args, cache.claims_type) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in indexes.iter().map(|&i| &routine.params[i]) {
        if p.type_oid == claims.oid {
            out.push(ClaimsArg {
                name: p.name.clone(),
                array: false,
                domain: claims.domain,
            });
        } else if let Some(element) = cache.claims_containers.get(&p.type_oid) {
            if *element == Some(claims.oid) {
                out.push(ClaimsArg {
                    name: p.name.clone(),
                    array: true,
                    domain: claims.domain,
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
    use crate::db::schema_cache::{Column, Param};
    use crate::pipeline::parse::Payload;

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
                        "json" => crate::db::schema_cache::JSON_OID,
                        "jsonb" => crate::db::schema_cache::JSONB_OID,
                        _ => 23,
                    },
                    type_sql: t.to_string(),
                    required: *required,
                    variadic: false,
                })
                .collect(),
            returns,
            description: None,
            distributed: false,
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
            strip_nulls: false,
            read: Default::default(),
            count: false,
            operator_like_args: Vec::new(),
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
                    "rows",
                    &[("n", "integer", true)],
                    Volatility::Stable,
                    Returns::Composite {
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
                    },
                ),
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
                routine(
                    "tokens",
                    &[],
                    Volatility::Stable,
                    Returns::Composite {
                        type_oid: Some(777),
                        columns: vec![Column {
                            name: "role".into(),
                            type_oid: 25,
                            type_sql: "text".into(),
                        }],
                        set: true,
                    },
                ),
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
            Some(crate::db::schema_cache::ClaimsType {
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
    fn a_parameter_filled_from_the_claims_need_not_be_sent() {
        let r = routine(
            "whoami",
            &[("n", "integer", true), ("sub", "text", true)],
            Volatility::Stable,
            int(),
        );
        let mut cache = SchemaCache::from_routines(vec![r], None);
        let plain = plan(&request(RpcMethod::Post, "whoami", &["n"], true), &cache);
        assert_eq!(plain.expect_err("sub is required").code(), "PGRST202");
        cache.from_claims.insert(1, Arc::from(vec![1]));
        let p = plan(&request(RpcMethod::Post, "whoami", &["n"], true), &cache).expect("plan");
        assert_eq!(p.args, Args::Named(vec![0]));
        assert_eq!(p.from_claims.as_deref(), Some(&[1][..]));
        // Sent anyway: accepted, and the fill step decides its value.
        let p = plan(
            &request(RpcMethod::Post, "whoami", &["n", "sub"], true),
            &cache,
        )
        .expect("plan");
        assert_eq!(p.args, Args::Named(vec![0, 1]));
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

    /// A GET request whose query string is `query`, parsed by the parse stage.
    fn get(name: &str, query: &str) -> RpcRequest {
        let headers = actix_web::http::header::HeaderMap::new();
        crate::pipeline::parse::parse(
            name,
            &crate::pipeline::parse::HttpInput {
                method: "GET",
                path: "/rpc/x",
                query,
                headers: &headers,
                body: b"",
            },
            &["api".to_string()],
        )
        .expect("parses")
    }

    #[test]
    fn query_string_columns_resolve_against_the_result() {
        let p = plan(
            &get(
                "rows",
                "n=1&select=l:label,*&x=gt.1&order=label.desc&limit=3",
            ),
            &cache(),
        )
        .expect("plan");
        let select = p.read.select.expect("select");
        assert_eq!(select.len(), 2);
        assert!(
            matches!(&select[0], Projection::Column { column, alias } if column.name == "label" && alias == "l")
        );
        assert_eq!(select[1], Projection::Star);
        assert!(
            matches!(&p.read.conditions[0], Condition::Filter { column, .. } if column.name == "x" && column.source == ColumnSource::Attribute)
        );
        assert_eq!(p.read.order[0].column.name, "label");
        assert_eq!(p.read.limit, Some(3));
        assert!(p.query_args);

        for q in [
            "n=1&select=nope",
            "n=1&nope=eq.1",
            "n=1&order=nope",
            "n=1&or=(x.eq.1,nope.eq.2)",
        ] {
            let e = plan(&get("rows", q), &cache()).expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
            assert_eq!(
                e.details(),
                Some(serde_json::Value::String(
                    "The result has the columns x, label".into()
                )),
                "{q}"
            );
        }
    }

    #[test]
    fn a_scalar_set_has_one_column_named_pgrst_scalar() {
        let p = plan(
            &get(
                "nums",
                "pgrst_scalar=lt.3&order=pgrst_scalar.desc&select=pgrst_scalar",
            ),
            &cache(),
        )
        .expect("plan");
        assert!(p.read.select.is_none(), "a scalar keeps its shape");
        assert_eq!(p.read.order[0].column.source, ColumnSource::Scalar);
        for q in ["select=x", "select=v:pgrst_scalar", "x=eq.1"] {
            let e = plan(&get("nums", q), &cache()).expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
        }
        // Not a set: no count even when asked.
        let mut req = get("add", "a=1");
        req.count = true;
        assert!(!plan(&req, &cache()).expect("plan").read.count);
        let mut req = get("nums", "");
        req.count = true;
        assert!(plan(&req, &cache()).expect("plan").read.count);
    }

    #[test]
    fn misspelt_operator_on_get_is_pgrst100_not_404() {
        let e = plan(&get("rows", "n=1&x=gtt.1"), &cache()).expect_err("400");
        assert_eq!(e.code(), "PGRST100");
        assert_eq!(
            e.message(),
            "\"failed to parse filter (gtt.1)\" (line 1, column 1)"
        );
        // A plain unknown argument is still 404, and a dotted value for a real
        // parameter is just an argument.
        let e = plan(&get("rows", "n=1&x=1"), &cache()).expect_err("404");
        assert_eq!(e.code(), "PGRST202");
        let e = plan(&get("add", "a=gtt.1"), &cache()).map(|p| p.args);
        assert_eq!(e.expect("plan"), Args::Named(vec![0]));
    }

    #[test]
    fn claims_follow_select_and_a_token_result_cannot_be_cut() {
        let mut req = request(RpcMethod::Post, "tok", &[], true);
        req.read.select = Some(vec![
            SelectItem::Field {
                name: "token".into(),
                alias: Some("t".into()),
            },
            SelectItem::Field {
                name: "n".into(),
                alias: None,
            },
        ]);
        let p = plan(&req, &cache()).expect("plan");
        assert_eq!(p.claims_at, ClaimsAt::Columns(vec!["t".into()]));

        req.read.select = Some(vec![SelectItem::Field {
            name: "n".into(),
            alias: None,
        }]);
        assert_eq!(
            plan(&req, &cache()).expect("plan").claims_at,
            ClaimsAt::Nowhere
        );

        req.read.select = Some(vec![
            SelectItem::Field {
                name: "token".into(),
                alias: Some("t".into()),
            },
            SelectItem::Field {
                name: "n".into(),
                alias: Some("t".into()),
            },
        ]);
        assert_eq!(plan(&req, &cache()).expect_err("clash").code(), "PGRST100");

        let mut req = request(RpcMethod::Post, "tokens", &[], true);
        req.read.select = Some(vec![SelectItem::Star]);
        assert_eq!(
            plan(&req, &cache()).expect("plan").claims_at,
            ClaimsAt::Whole
        );
        req.read.select = Some(vec![SelectItem::Field {
            name: "role".into(),
            alias: None,
        }]);
        assert_eq!(plan(&req, &cache()).expect_err("cut").code(), "PGRST100");
    }
}
