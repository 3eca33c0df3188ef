//! Query stage: a [`CallPlan`] becomes SQL text and bound parameters, without I/O.
//!
//! Identifiers come only from the schema cache and are always quoted; the
//! request's values never enter the SQL text. The whole payload is bound once
//! as `$1` and PostgreSQL itself casts each argument to its parameter's type
//! through `json_to_record` (as PostgREST does), so a bad value is PostgreSQL's
//! 22P02, not a string we built. Filter values, `limit` and `offset` follow as
//! `$2`, `$3`, … in text form with no declared type, so PostgreSQL infers each
//! one's type from the column it is compared with (PostgREST binds them as
//! `unknown` the same way). Also owns the per-request settings statement.
//!
//! The call statement aggregates the result into one JSON text and reads the
//! `response.*` settings in the same row: an aggregate's output is computed
//! after all its input rows, so the settings are read after the function ran.
//! Filters, order and page apply to the call's rows in a subquery
//! (`pgrst_t`) before the aggregate; with a count, the filtered rows are a CTE
//! that both the page and the count read, so the function still runs once.
//! On a Citus database the row also carries `pgrpc.sessions_ended` (read
//! where the function ran, like `response.*`), for the execute stage to relay
//! ([`SESSIONS_ENDED_COLUMN`]).

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::QualifiedName;
use crate::db::quote::{ident, qualified};
use crate::db::schema_cache::{Returns, SchemaCache, JSONB_OID, RECORD_OID};
use crate::pipeline::parse::{
    FtsOp, IsValue, LogicOp, OpExpr, Operation, OrderDirection, OrderNulls, QuantOp, Quantifier,
    SimpleOp,
};
use crate::pipeline::plan::{
    Args, CallPlan, ColumnSource, Condition, Projection, ReadPlan, ResultColumn,
};

/// Transaction-local request settings, one statement (PostgREST's `set_config` form).
/// Parameters: role, claims, method, path, headers, cookies, search_path,
/// client address (`request.client_ip`, empty when unknown).
pub const SETUP_SQL: &str = "select \
set_config('role', $1, true), \
set_config('request.jwt.claims', $2, true), \
set_config('request.method', $3, true), \
set_config('request.path', $4, true), \
set_config('request.headers', $5, true), \
set_config('request.cookies', $6, true), \
set_config('search_path', $7, true), \
set_config('request.client_ip', $8, true)";

/// The role's `ALTER ROLE … SET` settings, applied after [`SETUP_SQL`] when
/// the role has any: names in `$1`, values in `$2`, in order.
pub const ROLE_SETTINGS_SQL: &str =
    "select count(set_config(name, value, true)) from unnest($1::text[], $2::text[]) as s(name, value)";

/// The call: SQL text and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    /// Statement text; columns: body text, row count int8, response.headers,
    /// response.status, response.error, total count int8 (NULL unless counted),
    /// and with `relays_sessions` pgrpc.sessions_ended.
    pub sql: String,
    /// Bind the payload as `$1` (text). Always true when `params` is not empty.
    pub binds_payload: bool,
    /// `$2`, `$3`, …: text values of no declared type (filter values, limit,
    /// offset), for PostgreSQL to type from their context.
    pub params: Vec<String>,
    /// A Citus database: the execute stage also sends the request settings
    /// as `SET LOCAL` statements, the form Citus carries to the workers.
    pub propagate_settings: bool,
    /// A call Citus delegates: the statement has a seventh column, the
    /// `pgrpc.sessions_ended` the function set on the worker (a worker's
    /// NOTIFY reaches no gateway), for the execute stage to relay.
    pub relays_sessions: bool,
}

/// `select "schema"."fn"()` for `db.pre_request`.
pub fn pre_request_sql(name: &QualifiedName) -> String {
    format!("select {}()", qualified(&name.schema, &name.name))
}

/// The `search_path` value for a request against `schema`.
pub fn search_path(schema: &str, extra: &[String]) -> String {
    std::iter::once(schema)
        .chain(extra.iter().map(String::as_str).filter(|s| *s != schema))
        .map(ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Build the call statement.
pub fn call_query(plan: &CallPlan) -> CallQuery {
    let mut q = if let Some(q) = delegated_call(plan) {
        q
    } else {
        lateral_call(plan)
    };
    q.propagate_settings = plan.citus;
    q
}

/// The last column of a delegated call: the entries (`<sid> <exp>`, comma
/// separated) of the sessions the call ended, as the function left them in
/// `pgrpc.sessions_ended` on the worker; NULL when it set none. Only a
/// delegated call needs it: a call in the general shape runs its function
/// on the coordinator, whose own NOTIFY reaches the gateways (the seed's
/// `auth.announce_session_end` sends both), so no other shape reads it and
/// only a delegated call that may commit holds its COMMIT for the relay.
pub const SESSIONS_ENDED_COLUMN: &str = "nullif(current_setting('pgrpc.sessions_ended', true), '')";

/// The columns after the body: [`TAIL_COLUMNS`], the total, and with
/// `relay` [`SESSIONS_ENDED_COLUMN`].
fn tail(relay: bool, total: &str) -> String {
    if relay {
        format!("{TAIL_COLUMNS}, {total}, {SESSIONS_ENDED_COLUMN}")
    } else {
        format!("{TAIL_COLUMNS}, {total}")
    }
}

/// Call statements built before, for the calls whose statement depends only
/// on the function, which arguments were given and a few flags (no
/// `select`, filter, order, page or count): most requests. Building one is
/// about a tenth of a request's instructions in the gateway (callgrind,
/// session 4). The entries belong to one schema cache, and a reload starts
/// afresh (a renamed function keeps its OID). Bounded: clients choose which
/// arguments they give, so past [`MAX_CALL_MEMO`] entries nothing more is
/// kept. In debug builds every hit is checked against a statement built
/// anew, so the whole test suite checks the key.
#[derive(Default)]
pub struct CallMemo {
    state: Mutex<MemoState>,
}

#[derive(Default)]
struct MemoState {
    /// The schema cache the entries were built from.
    cache: Option<Arc<SchemaCache>>,
    entries: HashMap<MemoKey, CallQuery>,
}

/// What a plain call's statement depends on besides the function's
/// definition (fixed within one schema cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MemoKey {
    oid: i64,
    /// Bit i: parameter i was given (named arguments).
    args: u64,
    flags: u8,
}

/// At most this many call statements are kept.
pub const MAX_CALL_MEMO: usize = 4096;

impl CallMemo {
    /// [`call_query`], from the memo when the call is plain.
    pub fn call_query(&self, plan: &CallPlan, cache: &Arc<SchemaCache>) -> CallQuery {
        let Some(key) = memo_key(plan) else {
            return call_query(plan);
        };
        {
            let mut st = self.lock();
            if !st.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, cache)) {
                st.entries.clear();
                st.cache = Some(cache.clone());
            }
            if let Some(q) = st.entries.get(&key) {
                let q = q.clone();
                drop(st);
                debug_assert_eq!(q, call_query(plan), "memoized statement for {key:?}");
                return q;
            }
        }
        // Built outside the lock.
        let q = call_query(plan);
        let mut st = self.lock();
        if st.cache.as_ref().is_some_and(|c| Arc::ptr_eq(c, cache))
            && st.entries.len() < MAX_CALL_MEMO
        {
            st.entries.insert(key, q.clone());
        }
        q
    }

    /// How many statements are kept.
    #[cfg(test)]
    pub fn statements(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoState> {
        // Consistent between statements: a panic elsewhere leaves no half-update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the query string leaves the call's result as the function gives
/// it: no `select`, filter, order, page or count.
fn plain(read: &ReadPlan) -> bool {
    read.select.is_none()
        && read.conditions.is_empty()
        && read.order.is_empty()
        && read.limit.is_none()
        && read.offset == 0
        && !read.count
}

/// The memo key of a plain call; None when the statement depends on more
/// (the query string shapes the result) or the arguments do not fit the key.
fn memo_key(plan: &CallPlan) -> Option<MemoKey> {
    if !plain(&plan.read) {
        return None;
    }
    let (args, whole_body) = match &plan.args {
        Args::WholeBody => (0, true),
        Args::Named(indexes) => {
            let mut mask = 0u64;
            for (n, &i) in indexes.iter().enumerate() {
                // In parameter order, each once: the mask then says it all.
                if i >= 64 || (n > 0 && indexes[n - 1] >= i) {
                    return None;
                }
                mask |= 1 << i;
            }
            (mask, false)
        }
    };
    let flags = u8::from(plan.query_args)
        | u8::from(plan.strip_nulls) << 1
        | u8::from(plan.singular) << 2
        | u8::from(plan.citus) << 3
        | u8::from(whole_body) << 4;
    Some(MemoKey {
        oid: plan.routine.oid,
        args,
        flags,
    })
}

/// Types whose text from `->>` casts to the value `json_to_record` would give
/// (numbers, booleans, strings and the like; not arrays, composites or json).
const DELEGABLE_TYPES: &[u32] = &[
    16, 19, 20, 21, 23, 25, 700, 701, 1042, 1043, 1082, 1114, 1184, 1186, 1700, 2950,
];

/// The call as Citus delegates it, for a distributed function (see
/// `Routine::distributed`) called plainly: Citus sends a statement to the
/// worker holding the distribution argument's shard only when it is one
/// function call in FROM (or alone in the select list), with no WHERE, no
/// other relation and arguments that are constants once the parameters are
/// bound (`function_call_delegation.c`, `TryToDelegateFunctionCall`). So each
/// argument is read from the bound payload by its own immutable expression,
/// `($1::json ->> 'name')::type`, which the planner folds into a constant for
/// the bound value; the whole statement, aggregate, `response.*` and
/// `pgrpc.sessions_ended` settings included, then runs on the worker after
/// the function. A parameter of the claims type (not an array of it) is
/// delegable too, by a stable expression (`delegated_claims_argument`), and
/// a parameter the gateway filled from the claims (`pgrpc.from_claims`)
/// counts as given. None when the call needs the general shape (a filter,
/// select, order, page or count, a parameter left to its default, a VARIADIC
/// or other non-scalar argument, a one-column result); it then runs on the
/// coordinator, correct but not delegated.
fn delegated_call(plan: &CallPlan) -> Option<CallQuery> {
    let r = &plan.routine;
    if !r.distributed || !plain(&plan.read) {
        return None;
    }
    let Args::Named(indexes) = &plan.args else {
        return None;
    };
    // Every parameter given: a default left out is a constant NULL, and so
    // is a JSON null (see `delegated_argument`).
    if indexes.len() != r.params.len() {
        return None;
    }
    let mut args = Vec::with_capacity(indexes.len());
    for &i in indexes {
        let p = &r.params[i];
        if p.variadic {
            return None;
        }
        if DELEGABLE_TYPES.contains(&p.type_oid) || is_citext(&p.type_sql) {
            args.push(delegated_argument(&p.name, &p.type_sql));
        } else if let Some(claims) = plan
            .claims_args
            .iter()
            .find(|c| !c.array && c.name == p.name)
        {
            args.push(delegated_claims_argument(
                &p.name,
                &p.type_sql,
                claims.domain,
            ));
        } else {
            return None;
        }
    }
    let call = format!("{}({})", qualified(&r.schema, &r.name), args.join(", "));
    let (from, body) = match &r.returns {
        Returns::Void => (format!("{call} pgrst_call"), "NULL::json".to_string()),
        Returns::Scalar { type_oid, .. } if *type_oid == RECORD_OID => return None,
        Returns::Composite {
            type_oid: None,
            columns,
            ..
        } if columns.len() == 1 => return None,
        Returns::Scalar { .. } => (
            format!("{call} AS pgrst_call(pgrst_scalar)"),
            aggregate_of(plan, "pgrst_call.pgrst_scalar"),
        ),
        Returns::Composite { .. } => (
            format!("{call} pgrst_call"),
            aggregate_of(plan, "pgrst_call"),
        ),
    };
    Some(CallQuery {
        sql: format!(
            "SELECT ({body})::text, {} FROM {from}",
            tail(plan.citus, "NULL::int8")
        ),
        binds_payload: !indexes.is_empty(),
        params: Vec::new(),
        propagate_settings: false,
        relays_sessions: plan.citus,
    })
}

/// `citext` (any schema): text whose `->>` cast is exact, and the type a
/// case-insensitive distribution key has (the seed API's usernames on Citus).
fn is_citext(type_sql: &str) -> bool {
    type_sql.rsplit('.').next() == Some("citext")
}

/// One argument of a delegated call: `name := ($1::json ->> 'name')::type`,
/// folded to a constant for the bound value, except that a null stays an
/// expression. Citus 13.2 hashes a constant NULL distribution argument
/// without checking it (`ShardPlacementForFunctionColocatedWithDistTable`:
/// the coordinator's backend crashes), so a null takes the volatile branch,
/// which is no constant: Citus then does not delegate, and the call runs on
/// the coordinator with the same NULL. A value folds the CASE away.
fn delegated_argument(name: &str, type_sql: &str) -> String {
    let value = format!("($1::json ->> {})", literal(name));
    format!(
        "{} := CASE WHEN {value} IS NULL AND pg_catalog.random() < 2 THEN NULL ELSE {value}::{type_sql} END",
        ident(name)
    )
}

/// One claims-type argument of a delegated call (the gateway has put the
/// verified claims object, or null, in the payload): the value the general
/// shape's `json_to_record` gives, SQL NULL for a JSON null or an absent key,
/// from a stable expression. Citus refuses only volatile arguments
/// (`contain_volatile_functions` in `TryToDelegateFunctionCall`), and
/// `json_populate_record` is stable; it fills a composite from an object
/// exactly as `json_to_record` fills a composite column (both are
/// `populate_record_worker`: nested objects, arrays, unknown keys ignored).
/// A domain over json/jsonb is the object cast to it.
fn delegated_claims_argument(name: &str, type_sql: &str, domain: bool) -> String {
    let value = format!("$1::json -> {}", literal(name));
    let claims = if domain {
        format!("({value})::{type_sql}")
    } else {
        format!("json_populate_record(NULL::{type_sql}, {value})")
    };
    format!(
        "{} := CASE WHEN json_typeof({value}) = 'object' THEN {claims} END",
        ident(name)
    )
}

/// The general call: arguments through one `json_to_record` row, the call
/// `LATERAL`, filters and page in a subquery.
fn lateral_call(plan: &CallPlan) -> CallQuery {
    let args = arguments(plan);
    let call = format!(
        "{}({})",
        qualified(&plan.routine.schema, &plan.routine.name),
        args.call
    );
    let Some((from, shape)) = call_source(plan, &call, &args.from) else {
        // void: no body, no query string; the call alone, for its effects.
        let from = format!("{}LATERAL {call} pgrst_call", args.from);
        let from = from.strip_prefix("LATERAL ").unwrap_or(&from).to_string();
        return CallQuery {
            sql: format!(
                "SELECT (NULL::json)::text, {} FROM {from}",
                tail(false, "NULL::int8")
            ),
            binds_payload: args.binds_payload,
            params: Vec::new(),
            propagate_settings: false,
            relays_sessions: false,
        };
    };
    let read = &plan.read;
    let mut params = Params::default();
    let (filter, page) = read_clauses(read, &mut params);
    let projection = projection_sql(read.select.as_deref(), &shape);
    let body = aggregate(plan, &shape);
    // With a count, the filtered rows are computed once (a CTE read twice is
    // materialized) and counted before the page is cut from them.
    let (with, source, total) = if read.count {
        (
            format!("WITH pgrst_source AS (SELECT pgrst_call.* FROM {from}{filter}) "),
            "pgrst_source pgrst_call".to_string(),
            "(SELECT count(*) FROM pgrst_source)",
        )
    } else {
        (String::new(), format!("{from}{filter}"), "NULL::int8")
    };
    let sql = format!(
        "{with}SELECT ({body})::text, {} \
FROM (SELECT {projection} FROM {source}{page}) pgrst_t",
        tail(false, total)
    );
    CallQuery {
        sql,
        binds_payload: args.binds_payload || !params.values.is_empty(),
        params: params.values,
        propagate_settings: false,
        relays_sessions: false,
    }
}

/// How the call receives its arguments.
struct CallArgs {
    /// Inside the call's parentheses: named notation from the
    /// `json_to_record` row, or the whole payload.
    call: String,
    /// `json_to_record(…) AS pgrst_args(…), ` when arguments are named, else empty.
    from: String,
    /// Whether `$1` (the payload) is used.
    binds_payload: bool,
}

/// The arguments: named notation from one `json_to_record` row (PostgreSQL
/// casts each value to its parameter's type), or the whole payload.
fn arguments(plan: &CallPlan) -> CallArgs {
    let r = &plan.routine;
    let mut record_cols = String::new();
    let mut variadic = None;
    let call = match &plan.args {
        Args::WholeBody => {
            let cast = if r.params.first().is_some_and(|p| p.type_oid == JSONB_OID) {
                "jsonb"
            } else {
                "json"
            };
            format!("$1::{cast}")
        }
        Args::Named(indexes) => {
            let mut args = String::new();
            for (n, &i) in indexes.iter().enumerate() {
                let p = &r.params[i];
                if n > 0 {
                    args.push_str(", ");
                    record_cols.push_str(", ");
                }
                let name = ident(&p.name);
                let keyword = if p.variadic {
                    variadic = Some(p.name.as_str());
                    "VARIADIC "
                } else {
                    ""
                };
                let _ = write!(args, "{keyword}{name} := pgrst_args.{name}");
                let _ = write!(record_cols, "{name} {}", p.type_sql);
            }
            args
        }
    };
    let binds_payload = matches!(plan.args, Args::WholeBody) || !record_cols.is_empty();
    let from = if record_cols.is_empty() {
        String::new()
    } else {
        let payload = match variadic.filter(|_| plan.query_args) {
            // `?nums=5` arrives as the string "5"; PostgREST passes a VARIADIC
            // parameter from the query string as an array whatever the count
            // (`toRpcParams`), so one value becomes a one-element array.
            Some(name) => {
                let key = literal(name);
                format!(
                    "CASE WHEN json_typeof($1::json -> {key}) = 'string' \
THEN jsonb_set($1::jsonb, ARRAY[{key}], jsonb_build_array($1::json -> {key}))::json \
ELSE $1::json END"
                )
            }
            None => "$1::json".to_string(),
        };
        format!("json_to_record({payload}) AS pgrst_args({record_cols}), ")
    };
    CallArgs {
        call,
        from,
        binds_payload,
    }
}

/// The call's rows as `pgrst_call` (the FROM clause), and how the body is
/// made of them; None for a void function.
fn call_source<'a>(plan: &'a CallPlan, call: &str, args_from: &str) -> Option<(String, Shape<'a>)> {
    // The call in a select list rather than in FROM, for results that FROM
    // would expand or refuse.
    let in_select_list = || {
        let inner_from = if args_from.is_empty() {
            String::new()
        } else {
            format!(" FROM {}", args_from.trim_end_matches([',', ' ']))
        };
        format!("(SELECT {call} AS pgrst_scalar{inner_from}) pgrst_call")
    };
    let (from, shape) = match &plan.routine.returns {
        Returns::Void => return None,
        Returns::Scalar { type_oid, .. } if *type_oid == RECORD_OID => {
            (in_select_list(), Shape::Scalar)
        }
        // One OUT/INOUT parameter or a one-column RETURNS TABLE: PostgreSQL
        // returns the bare column type, so FROM would yield the bare value (or
        // expand a composite one); the row is built here, as PostgREST answers
        // it (PostgREST#1615, #1931).
        Returns::Composite {
            type_oid: None,
            columns,
            ..
        } if columns.len() == 1 => (in_select_list(), Shape::OneColumn(&columns[0].name)),
        Returns::Scalar { .. } => (
            format!("{args_from}LATERAL {call} AS pgrst_call(pgrst_scalar)"),
            Shape::Scalar,
        ),
        Returns::Composite { .. } => (format!("{args_from}LATERAL {call} pgrst_call"), Shape::Rows),
    };
    let from = from
        .strip_prefix("LATERAL ")
        .map(str::to_string)
        .unwrap_or(from);
    Some((from, shape))
}

/// ` WHERE …` from the filters and ` ORDER BY … LIMIT … OFFSET …` from the
/// page, each value bound into `params`.
fn read_clauses(read: &ReadPlan, params: &mut Params) -> (String, String) {
    let filter = if read.conditions.is_empty() {
        String::new()
    } else {
        let all: Vec<String> = read
            .conditions
            .iter()
            .map(|c| condition_sql(c, params))
            .collect();
        format!(" WHERE {}", all.join(" AND "))
    };
    let mut page = String::new();
    if !read.order.is_empty() {
        let terms: Vec<String> = read
            .order
            .iter()
            .map(|o| {
                let mut t = comparable_ref(&o.column);
                t.push_str(match o.direction {
                    None => "",
                    Some(OrderDirection::Asc) => " ASC",
                    Some(OrderDirection::Desc) => " DESC",
                });
                t.push_str(match o.nulls {
                    None => "",
                    Some(OrderNulls::First) => " NULLS FIRST",
                    Some(OrderNulls::Last) => " NULLS LAST",
                });
                t
            })
            .collect();
        let _ = write!(page, " ORDER BY {}", terms.join(", "));
    }
    if let Some(limit) = read.limit {
        let _ = write!(page, " LIMIT {}", params.bind(limit.to_string()));
    }
    if read.offset > 0 {
        let _ = write!(page, " OFFSET {}", params.bind(read.offset.to_string()));
    }
    (filter, page)
}

/// The body: the rows aggregated into one JSON text (an array for a set,
/// its one element otherwise).
fn aggregate(plan: &CallPlan, shape: &Shape<'_>) -> String {
    let element = match shape {
        Shape::Scalar => "pgrst_t.pgrst_scalar",
        Shape::Rows | Shape::OneColumn(_) => "pgrst_t",
    };
    aggregate_of(plan, element)
}

/// The body aggregated from `element`.
fn aggregate_of(plan: &CallPlan, element: &str) -> String {
    let agg = if plan.strip_nulls {
        format!("json_strip_nulls(json_agg({element}))")
    } else {
        format!("json_agg({element})")
    };
    if plan.routine.returns.is_set() && !plan.singular {
        format!("coalesce({agg}, '[]')")
    } else {
        format!("{agg} -> 0")
    }
}

/// The statement's columns after the body: rows, then the response settings.
const TAIL_COLUMNS: &str = "count(*), \
nullif(current_setting('response.headers', true), ''), \
nullif(current_setting('response.status', true), ''), \
nullif(current_setting('response.error', true), '')";

/// How the call's rows become the body.
enum Shape<'a> {
    /// A value per row (`pgrst_call.pgrst_scalar`).
    Scalar,
    /// An object per row, its attributes as keys.
    Rows,
    /// An object per row with one key, this column, built from the bare
    /// value in `pgrst_call.pgrst_scalar`.
    OneColumn(&'a str),
}

/// The page subquery's select list: the body's columns.
fn projection_sql(select: Option<&[Projection]>, shape: &Shape<'_>) -> String {
    let star = || match shape {
        Shape::Scalar => "pgrst_call.pgrst_scalar".to_string(),
        Shape::Rows => "pgrst_call.*".to_string(),
        Shape::OneColumn(name) => format!("pgrst_call.pgrst_scalar AS {}", ident(name)),
    };
    match (select, shape) {
        (None, _) | (Some(_), Shape::Scalar) => star(),
        (Some(items), _) => items
            .iter()
            .map(|p| match p {
                Projection::Star => star(),
                Projection::Column { column, alias } => {
                    format!("{} AS {}", column_ref(column), ident(alias))
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A result column in `pgrst_call`.
fn column_ref(column: &ResultColumn) -> String {
    match column.source {
        ColumnSource::Attribute => format!("pgrst_call.{}", ident(&column.name)),
        ColumnSource::Scalar => "pgrst_call.pgrst_scalar".to_string(),
    }
}

/// A result column as filters and `ORDER BY` compare it: `json` has no
/// equality or ordering operators, so it is compared as `jsonb`.
fn comparable_ref(column: &ResultColumn) -> String {
    let r = column_ref(column);
    if column.type_sql == "json" {
        format!("{r}::jsonb")
    } else {
        r
    }
}

/// The extra parameters, numbered after the payload's `$1`.
#[derive(Default)]
struct Params {
    values: Vec<String>,
}

impl Params {
    /// Add a value; its placeholder.
    fn bind(&mut self, value: String) -> String {
        self.values.push(value);
        format!("${}", self.values.len() + 1)
    }
}

fn condition_sql(c: &Condition, params: &mut Params) -> String {
    match c {
        Condition::Filter { column, expr } => filter_sql(column, expr, params),
        Condition::Tree {
            negated,
            op,
            children,
        } => {
            let glue = match op {
                LogicOp::And => " AND ",
                LogicOp::Or => " OR ",
            };
            let inner: Vec<String> = children.iter().map(|c| condition_sql(c, params)).collect();
            let not = if *negated { "NOT " } else { "" };
            format!("{not}({})", inner.join(glue))
        }
    }
}

/// One filter, PostgREST's operators (`pgFmtFilter` in its `SqlFragment.hs`).
fn filter_sql(column: &ResultColumn, expr: &OpExpr, params: &mut Params) -> String {
    let col = comparable_ref(column);
    let test = match &expr.op {
        Operation::Quant {
            op,
            quantifier,
            value,
        } => {
            let (symbol, pattern) = match op {
                QuantOp::Eq => ("=", false),
                QuantOp::Gt => (">", false),
                QuantOp::Gte => (">=", false),
                QuantOp::Lt => ("<", false),
                QuantOp::Lte => ("<=", false),
                QuantOp::Like => ("LIKE", true),
                QuantOp::ILike => ("ILIKE", true),
                QuantOp::Match => ("~", true),
                QuantOp::IMatch => ("~*", true),
            };
            // Pattern operators work on text: any other column is compared
            // as its text form rather than failing with 42883.
            let lhs = if pattern && !is_text(&column.type_sql) {
                format!("{col}::text")
            } else {
                col.clone()
            };
            let value = if matches!(op, QuantOp::Like | QuantOp::ILike) {
                value.replace('*', "%")
            } else {
                value.clone()
            };
            let p = params.bind(value);
            match quantifier {
                None => format!("{lhs} {symbol} {p}"),
                Some(Quantifier::Any) => format!("{lhs} {symbol} ANY ({p})"),
                Some(Quantifier::All) => format!("{lhs} {symbol} ALL ({p})"),
            }
        }
        Operation::Simple { op, value } => {
            let symbol = match op {
                SimpleOp::Neq => "<>",
                SimpleOp::Contains => "@>",
                SimpleOp::Contained => "<@",
                SimpleOp::Overlap => "&&",
                SimpleOp::StrictlyLeft => "<<",
                SimpleOp::StrictlyRight => ">>",
                SimpleOp::NotExtendsRight => "&<",
                SimpleOp::NotExtendsLeft => "&>",
                SimpleOp::Adjacent => "-|-",
            };
            format!("{col} {symbol} {}", params.bind(value.clone()))
        }
        Operation::In(items) => format!("{col} = ANY ({})", params.bind(array_literal(items))),
        Operation::Is(v) => {
            let what = match v {
                IsValue::Null => "NULL",
                IsValue::NotNull => "NOT NULL",
                IsValue::True => "TRUE",
                IsValue::False => "FALSE",
                IsValue::Unknown => "UNKNOWN",
            };
            format!("{col} IS {what}")
        }
        Operation::IsDistinct(value) => {
            format!("{col} IS DISTINCT FROM {}", params.bind(value.clone()))
        }
        Operation::Fts {
            op,
            language,
            value,
        } => {
            let function = match op {
                FtsOp::Fts => "to_tsquery",
                FtsOp::Plain => "plainto_tsquery",
                FtsOp::Phrase => "phraseto_tsquery",
                FtsOp::Websearch => "websearch_to_tsquery",
            };
            let language = language
                .as_ref()
                .map(|l| format!("{}::regconfig, ", params.bind(l.clone())));
            let language = language.as_deref().unwrap_or("");
            let vector = if column.type_sql == "tsvector" {
                col.clone()
            } else {
                format!("to_tsvector({language}{col}::text)")
            };
            let query = params.bind(value.clone());
            format!("{vector} @@ {function}({language}{query})")
        }
    };
    if expr.negated {
        format!("NOT ({test})")
    } else {
        test
    }
}

/// Types the pattern operators take as they are.
fn is_text(type_sql: &str) -> bool {
    matches!(
        type_sql,
        "text" | "name" | "citext" | "character varying" | "character"
    ) || type_sql.starts_with("character varying(")
        || type_sql.starts_with("character(")
}

/// `in.(a,b)` as an array literal for `= ANY ($n)`: every element quoted, so
/// commas, braces and the word NULL in values stay values.
fn array_literal(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("\"{}\"", i.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// A string literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema_cache::{Column, Volatility};
    use crate::pipeline::parse::{OpExpr, Operation, OrderDirection, OrderNulls, QuantOp};
    use crate::pipeline::plan::tests::{int, routine};
    use crate::pipeline::plan::{ClaimsAt, Ordering, ReadPlan};
    use std::sync::Arc;

    fn plan_for(r: crate::db::schema_cache::Routine, args: Args, singular: bool) -> CallPlan {
        CallPlan {
            routine: Arc::new(r),
            args,
            read_only: false,
            singular,
            claims_at: ClaimsAt::Nowhere,
            claims_args: Vec::new(),
            query_args: false,
            strip_nulls: false,
            read: ReadPlan::default(),
            head: false,
            profile: None,
            citus: false,
            from_claims: None,
        }
    }

    #[test]
    fn the_memo_keeps_plain_calls_per_schema_cache() {
        let memo = CallMemo::default();
        let cache = Arc::new(SchemaCache::from_routines(Vec::new(), None));
        let plan = plan_for(points(), Args::Named(vec![0]), false);
        let q = memo.call_query(&plan, &cache);
        assert_eq!(q, call_query(&plan));
        assert_eq!(memo.call_query(&plan, &cache), q);
        assert_eq!(memo.statements(), 1);
        // Another argument set, or singular: another statement.
        let none = plan_for(points(), Args::Named(vec![]), false);
        assert_eq!(memo.call_query(&none, &cache), call_query(&none));
        let single = plan_for(points(), Args::Named(vec![0]), true);
        assert_eq!(memo.call_query(&single, &cache), call_query(&single));
        assert_ne!(call_query(&single), q);
        assert_eq!(memo.statements(), 3);
        // The query string shapes the statement: built every time, not kept.
        let mut paged = plan_for(points(), Args::Named(vec![0]), false);
        paged.read.limit = Some(1);
        assert_eq!(memo.call_query(&paged, &cache), call_query(&paged));
        assert_eq!(memo.statements(), 3);
        // A reloaded schema cache starts afresh.
        let reloaded = Arc::new(SchemaCache::from_routines(Vec::new(), None));
        assert_eq!(memo.call_query(&plan, &reloaded), q);
        assert_eq!(memo.statements(), 1);
    }

    #[test]
    fn the_memo_is_bounded() {
        let memo = CallMemo::default();
        let cache = Arc::new(SchemaCache::from_routines(Vec::new(), None));
        for oid in 0..MAX_CALL_MEMO as i64 + 10 {
            let mut r = points();
            r.oid = oid;
            let plan = plan_for(r, Args::Named(vec![0]), false);
            assert_eq!(memo.call_query(&plan, &cache), call_query(&plan));
        }
        assert_eq!(memo.statements(), MAX_CALL_MEMO);
    }

    const TAIL: &str = "count(*), nullif(current_setting('response.headers', true), ''), nullif(current_setting('response.status', true), ''), nullif(current_setting('response.error', true), ''), NULL::int8";

    /// `SETOF api.point` (a named composite with x and y).
    fn points() -> crate::db::schema_cache::Routine {
        let col = |n: &str| Column {
            name: n.into(),
            type_oid: 23,
            type_sql: "integer".into(),
        };
        routine(
            "points",
            &[("n", "integer", true)],
            Volatility::Immutable,
            Returns::Composite {
                type_oid: Some(16_400),
                columns: vec![col("x"), col("y")],
                set: true,
            },
        )
    }

    fn column(name: &str, source: ColumnSource) -> ResultColumn {
        ResultColumn {
            name: name.into(),
            source,
            type_sql: "integer".into(),
        }
    }

    fn filter(name: &str, negated: bool, op: Operation) -> Condition {
        Condition::Filter {
            column: column(name, ColumnSource::Attribute),
            expr: OpExpr { negated, op },
        }
    }

    #[test]
    fn scalar_with_named_args() {
        let r = routine(
            "add",
            &[("a", "integer", true), ("b", "integer", false)],
            Volatility::Immutable,
            int(),
        );
        let q = call_query(&plan_for(r, Args::Named(vec![0, 1]), false));
        assert_eq!(
            q.sql,
            format!("SELECT (json_agg(pgrst_t.pgrst_scalar) -> 0)::text, {TAIL} FROM (SELECT pgrst_call.pgrst_scalar FROM json_to_record($1::json) AS pgrst_args(\"a\" integer, \"b\" integer), LATERAL \"api\".\"add\"(\"a\" := pgrst_args.\"a\", \"b\" := pgrst_args.\"b\") AS pgrst_call(pgrst_scalar)) pgrst_t")
        );
        assert!(q.binds_payload);
        assert!(q.params.is_empty());
    }

    #[test]
    fn no_args_binds_nothing() {
        let r = routine("now", &[], Volatility::Stable, int());
        let q = call_query(&plan_for(r, Args::Named(vec![]), false));
        assert_eq!(
            q.sql,
            format!("SELECT (json_agg(pgrst_t.pgrst_scalar) -> 0)::text, {TAIL} FROM (SELECT pgrst_call.pgrst_scalar FROM \"api\".\"now\"() AS pgrst_call(pgrst_scalar)) pgrst_t")
        );
        assert!(!q.binds_payload);
    }

    #[test]
    fn set_of_composite_and_singular() {
        // A table's row type (a named composite, as the schema cache reports it).
        let rows = Returns::Composite {
            type_oid: Some(16_384),
            columns: vec![Column {
                name: "id".into(),
                type_oid: 23,
                type_sql: "integer".into(),
            }],
            set: true,
        };
        let r = routine("items", &[], Volatility::Stable, rows);
        let q = call_query(&plan_for(r.clone(), Args::Named(vec![]), false));
        assert_eq!(
            q.sql,
            format!("SELECT (coalesce(json_agg(pgrst_t), '[]'))::text, {TAIL} FROM (SELECT pgrst_call.* FROM \"api\".\"items\"() pgrst_call) pgrst_t")
        );
        let q = call_query(&plan_for(r, Args::Named(vec![]), true));
        assert!(
            q.sql.starts_with("SELECT (json_agg(pgrst_t) -> 0)::text"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn whole_body_and_void() {
        let r = routine(
            "hook",
            &[("", "jsonb", true)],
            Volatility::Volatile,
            Returns::Void,
        );
        let q = call_query(&plan_for(r, Args::WholeBody, false));
        assert_eq!(
            q.sql,
            format!(
                "SELECT (NULL::json)::text, {TAIL} FROM \"api\".\"hook\"($1::jsonb) pgrst_call"
            )
        );
    }

    #[test]
    fn single_output_column_is_wrapped_in_an_object() {
        let one = Returns::Composite {
            type_oid: None,
            columns: vec![Column {
                name: "it's".into(),
                type_oid: 23,
                type_sql: "integer".into(),
            }],
            set: true,
        };
        let r = routine("one", &[("n", "integer", true)], Volatility::Stable, one);
        let q = call_query(&plan_for(r, Args::Named(vec![0]), false));
        assert_eq!(
            q.sql,
            format!("SELECT (coalesce(json_agg(pgrst_t), '[]'))::text, {TAIL} FROM (SELECT pgrst_call.pgrst_scalar AS \"it's\" FROM (SELECT \"api\".\"one\"(\"n\" := pgrst_args.\"n\") AS pgrst_scalar FROM json_to_record($1::json) AS pgrst_args(\"n\" integer)) pgrst_call) pgrst_t")
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        let r = routine(
            "we\"ird",
            &[("x\"y", "text", true)],
            Volatility::Volatile,
            int(),
        );
        let q = call_query(&plan_for(r, Args::Named(vec![0]), false));
        assert!(
            q.sql
                .contains("\"api\".\"we\"\"ird\"(\"x\"\"y\" := pgrst_args.\"x\"\"y\")"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn filters_order_and_page_bind_every_value() {
        let mut plan = plan_for(points(), Args::Named(vec![0]), false);
        plan.read = ReadPlan {
            select: Some(vec![Projection::Column {
                column: column("y", ColumnSource::Attribute),
                alias: "why".into(),
            }]),
            conditions: vec![
                filter(
                    "x",
                    false,
                    Operation::Quant {
                        op: QuantOp::Gt,
                        quantifier: None,
                        value: "1".into(),
                    },
                ),
                Condition::Tree {
                    negated: true,
                    op: LogicOp::Or,
                    children: vec![
                        filter("y", false, Operation::In(vec!["4".into(), "a\"b,c".into()])),
                        filter("y", true, Operation::Is(IsValue::Null)),
                    ],
                },
            ],
            order: vec![Ordering {
                column: column("x", ColumnSource::Attribute),
                direction: Some(OrderDirection::Desc),
                nulls: Some(OrderNulls::Last),
            }],
            limit: Some(2),
            offset: 1,
            count: false,
        };
        let q = call_query(&plan);
        assert_eq!(
            q.sql,
            format!("SELECT (coalesce(json_agg(pgrst_t), '[]'))::text, {TAIL} FROM (SELECT pgrst_call.\"y\" AS \"why\" FROM json_to_record($1::json) AS pgrst_args(\"n\" integer), LATERAL \"api\".\"points\"(\"n\" := pgrst_args.\"n\") pgrst_call WHERE pgrst_call.\"x\" > $2 AND NOT (pgrst_call.\"y\" = ANY ($3) OR NOT (pgrst_call.\"y\" IS NULL)) ORDER BY pgrst_call.\"x\" DESC NULLS LAST LIMIT $4 OFFSET $5) pgrst_t")
        );
        assert_eq!(q.params, vec!["1", r#"{"4","a\"b,c"}"#, "2", "1"]);
        assert!(q.binds_payload);
    }

    #[test]
    fn params_bind_even_without_arguments() {
        // No argument: $1 is bound anyway so that filter values start at $2.
        let r = routine(
            "numbers",
            &[],
            Volatility::Stable,
            Returns::Scalar {
                type_oid: 23,
                type_sql: "integer".into(),
                set: true,
            },
        );
        let mut plan = plan_for(r, Args::Named(vec![]), false);
        plan.read.limit = Some(0);
        let q = call_query(&plan);
        assert!(
            q.sql
                .ends_with("AS pgrst_call(pgrst_scalar) LIMIT $2) pgrst_t"),
            "{}",
            q.sql
        );
        assert_eq!(q.params, vec!["0"]);
        assert!(q.binds_payload);
    }

    #[test]
    fn count_reads_the_filtered_rows_once() {
        let mut plan = plan_for(points(), Args::Named(vec![0]), false);
        plan.read.count = true;
        plan.read.limit = Some(1);
        plan.read.conditions = vec![filter(
            "x",
            false,
            Operation::Quant {
                op: QuantOp::Eq,
                quantifier: None,
                value: "1".into(),
            },
        )];
        let q = call_query(&plan);
        assert_eq!(
            q.sql,
            "WITH pgrst_source AS (SELECT pgrst_call.* FROM json_to_record($1::json) AS pgrst_args(\"n\" integer), LATERAL \"api\".\"points\"(\"n\" := pgrst_args.\"n\") pgrst_call WHERE pgrst_call.\"x\" = $2) SELECT (coalesce(json_agg(pgrst_t), '[]'))::text, count(*), nullif(current_setting('response.headers', true), ''), nullif(current_setting('response.status', true), ''), nullif(current_setting('response.error', true), ''), (SELECT count(*) FROM pgrst_source) FROM (SELECT pgrst_call.* FROM pgrst_source pgrst_call LIMIT $3) pgrst_t"
        );
    }

    #[test]
    fn operators() {
        let text = |name: &str| ResultColumn {
            name: name.into(),
            source: ColumnSource::Attribute,
            type_sql: "text".into(),
        };
        let cases: Vec<(ResultColumn, Operation, &str, Vec<&str>)> = vec![
            (
                column("n", ColumnSource::Attribute),
                Operation::Quant {
                    op: QuantOp::Like,
                    quantifier: None,
                    value: "a*b".into(),
                },
                "pgrst_call.\"n\"::text LIKE $2",
                vec!["a%b"],
            ),
            (
                text("t"),
                Operation::Quant {
                    op: QuantOp::ILike,
                    quantifier: Some(Quantifier::Any),
                    value: "{a*,b}".into(),
                },
                "pgrst_call.\"t\" ILIKE ANY ($2)",
                vec!["{a%,b}"],
            ),
            (
                text("t"),
                Operation::Quant {
                    op: QuantOp::IMatch,
                    quantifier: Some(Quantifier::All),
                    value: "^a*".into(),
                },
                "pgrst_call.\"t\" ~* ALL ($2)",
                vec!["^a*"],
            ),
            (
                text("t"),
                Operation::Simple {
                    op: SimpleOp::Neq,
                    value: "x".into(),
                },
                "pgrst_call.\"t\" <> $2",
                vec!["x"],
            ),
            (
                text("t"),
                Operation::Simple {
                    op: SimpleOp::Adjacent,
                    value: "[1,2)".into(),
                },
                "pgrst_call.\"t\" -|- $2",
                vec!["[1,2)"],
            ),
            (
                text("t"),
                Operation::IsDistinct("x".into()),
                "pgrst_call.\"t\" IS DISTINCT FROM $2",
                vec!["x"],
            ),
            (
                text("t"),
                Operation::Is(IsValue::Unknown),
                "pgrst_call.\"t\" IS UNKNOWN",
                vec![],
            ),
            (
                text("t"),
                Operation::Fts {
                    op: FtsOp::Websearch,
                    language: Some("english".into()),
                    value: "a b".into(),
                },
                "to_tsvector($2::regconfig, pgrst_call.\"t\"::text) @@ websearch_to_tsquery($2::regconfig, $3)",
                vec!["english", "a b"],
            ),
            (
                ResultColumn {
                    name: "v".into(),
                    source: ColumnSource::Attribute,
                    type_sql: "tsvector".into(),
                },
                Operation::Fts {
                    op: FtsOp::Fts,
                    language: None,
                    value: "a & b".into(),
                },
                "pgrst_call.\"v\" @@ to_tsquery($2)",
                vec!["a & b"],
            ),
            (
                column("pgrst_scalar", ColumnSource::Scalar),
                Operation::Quant {
                    op: QuantOp::Lte,
                    quantifier: None,
                    value: "3".into(),
                },
                "pgrst_call.pgrst_scalar <= $2",
                vec!["3"],
            ),
        ];
        for (col, op, sql, values) in cases {
            let mut params = Params::default();
            let got = filter_sql(
                &col,
                &OpExpr {
                    negated: false,
                    op: op.clone(),
                },
                &mut params,
            );
            assert_eq!(got, sql, "{op:?}");
            assert_eq!(params.values, values, "{op:?}");
        }
    }

    #[test]
    fn json_columns_compare_as_jsonb() {
        let doc = ResultColumn {
            name: "doc".into(),
            source: ColumnSource::Attribute,
            type_sql: "json".into(),
        };
        let mut params = Params::default();
        let sql = filter_sql(
            &doc,
            &OpExpr {
                negated: true,
                op: Operation::Quant {
                    op: QuantOp::Eq,
                    quantifier: None,
                    value: "{}".into(),
                },
            },
            &mut params,
        );
        assert_eq!(sql, "NOT (pgrst_call.\"doc\"::jsonb = $2)");
    }

    #[test]
    fn stripped_nulls_wrap_the_aggregate() {
        let mut plan = plan_for(points(), Args::Named(vec![0]), false);
        plan.strip_nulls = true;
        assert!(call_query(&plan)
            .sql
            .starts_with("SELECT (coalesce(json_strip_nulls(json_agg(pgrst_t)), '[]'))::text"));
        plan.singular = true;
        assert!(call_query(&plan)
            .sql
            .starts_with("SELECT (json_strip_nulls(json_agg(pgrst_t)) -> 0)::text"));
    }

    #[test]
    fn a_variadic_argument_from_the_query_string_becomes_an_array() {
        let mut r = routine(
            "vsum",
            &[("nums", "integer[]", true)],
            Volatility::Immutable,
            int(),
        );
        r.params[0].variadic = true;
        let mut plan = plan_for(r, Args::Named(vec![0]), false);
        let q = call_query(&plan);
        assert!(q.sql.contains("json_to_record($1::json)"), "{}", q.sql);
        assert!(
            q.sql.contains("VARIADIC \"nums\" := pgrst_args.\"nums\""),
            "{}",
            q.sql
        );
        plan.query_args = true;
        let q = call_query(&plan);
        assert!(
            q.sql.contains("json_to_record(CASE WHEN json_typeof($1::json -> 'nums') = 'string' THEN jsonb_set($1::jsonb, ARRAY['nums'], jsonb_build_array($1::json -> 'nums'))::json ELSE $1::json END)"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn a_distributed_function_is_called_plainly_with_one_expression_per_argument() {
        let mut r = routine(
            "add",
            &[("a", "integer", true), ("b", "integer", false)],
            Volatility::Volatile,
            int(),
        );
        r.distributed = true;
        let mut plan = plan_for(r, Args::Named(vec![0, 1]), false);
        plan.citus = true;
        let q = call_query(&plan);
        assert_eq!(
            q.sql,
            format!("SELECT (json_agg(pgrst_call.pgrst_scalar) -> 0)::text, {TAIL}, {SESSIONS_ENDED_COLUMN} FROM \"api\".\"add\"(\"a\" := CASE WHEN ($1::json ->> 'a') IS NULL AND pg_catalog.random() < 2 THEN NULL ELSE ($1::json ->> 'a')::integer END, \"b\" := CASE WHEN ($1::json ->> 'b') IS NULL AND pg_catalog.random() < 2 THEN NULL ELSE ($1::json ->> 'b')::integer END) AS pgrst_call(pgrst_scalar)")
        );
        assert!(q.binds_payload && q.params.is_empty() && q.propagate_settings);
        // A parameter left out (its default is a constant NULL) keeps the
        // general shape too.
        plan.args = Args::Named(vec![0]);
        assert!(call_query(&plan).sql.contains("json_to_record"));
        plan.args = Args::Named(vec![0, 1]);
        // A filter needs the general shape (not delegated, still right).
        plan.read.limit = Some(1);
        let q = call_query(&plan);
        assert!(q.sql.contains("json_to_record"), "{}", q.sql);
        assert!(q.propagate_settings);
    }

    /// A distributed function with a claims-type parameter (the seed's
    /// `refresh_token(token, username)` on Citus): delegated, the claims
    /// from a stable expression that gives what `json_to_record` gives.
    fn with_claims(domain: bool, array: bool) -> CallPlan {
        let mut r = routine(
            "refresh",
            &[("owner", "text", true), ("token", "auth.jwt_claims", true)],
            Volatility::Volatile,
            int(),
        );
        r.params[0].type_oid = 25;
        r.params[1].type_oid = 777;
        r.distributed = true;
        let mut plan = plan_for(r, Args::Named(vec![0, 1]), false);
        plan.citus = true;
        plan.claims_args = vec![crate::pipeline::plan::ClaimsArg {
            name: "token".into(),
            array,
            domain,
        }];
        plan
    }

    #[test]
    fn a_claims_type_argument_is_delegated_as_a_stable_expression() {
        let q = call_query(&with_claims(false, false));
        assert_eq!(
            q.sql,
            format!("SELECT (json_agg(pgrst_call.pgrst_scalar) -> 0)::text, {TAIL}, {SESSIONS_ENDED_COLUMN} FROM \"api\".\"refresh\"(\"owner\" := CASE WHEN ($1::json ->> 'owner') IS NULL AND pg_catalog.random() < 2 THEN NULL ELSE ($1::json ->> 'owner')::text END, \"token\" := CASE WHEN json_typeof($1::json -> 'token') = 'object' THEN json_populate_record(NULL::auth.jwt_claims, $1::json -> 'token') END) AS pgrst_call(pgrst_scalar)")
        );
        assert!(q.binds_payload && q.relays_sessions);
        // A domain over json/jsonb: the object cast to it.
        let q = call_query(&with_claims(true, false));
        assert!(
            q.sql.contains("\"token\" := CASE WHEN json_typeof($1::json -> 'token') = 'object' THEN ($1::json -> 'token')::auth.jwt_claims END)"),
            "{}",
            q.sql
        );
        // Not an array of them, nor a parameter of another composite type.
        let q = call_query(&with_claims(false, true));
        assert!(q.sql.contains("json_to_record"), "{}", q.sql);
        let mut plan = with_claims(false, false);
        plan.claims_args.clear();
        assert!(call_query(&plan).sql.contains("json_to_record"));
    }

    #[test]
    fn only_a_delegated_call_reads_the_ended_sessions() {
        // Delegated: the function ran on a worker, the column is last.
        let q = call_query(&with_claims(false, false));
        assert!(q.relays_sessions);
        assert!(
            q.sql.contains(&format!("{SESSIONS_ENDED_COLUMN} FROM")),
            "{}",
            q.sql
        );
        // The general shape on Citus runs the function on the coordinator.
        let mut plan = plan_for(points(), Args::Named(vec![0]), false);
        plan.citus = true;
        plan.read.count = true;
        let q = call_query(&plan);
        assert!(
            !q.relays_sessions && !q.sql.contains("sessions_ended"),
            "{}",
            q.sql
        );
        let void = routine("hook", &[], Volatility::Volatile, Returns::Void);
        let mut plan = plan_for(void, Args::Named(vec![]), false);
        plan.citus = true;
        let q = call_query(&plan);
        assert_eq!(
            q.sql,
            format!("SELECT (NULL::json)::text, {TAIL} FROM \"api\".\"hook\"() pgrst_call")
        );
        assert!(!q.relays_sessions);
    }

    #[test]
    fn a_function_not_distributed_keeps_the_general_shape() {
        let r = routine(
            "add",
            &[("a", "integer", true)],
            Volatility::Volatile,
            int(),
        );
        let mut plan = plan_for(r, Args::Named(vec![0]), false);
        plan.citus = true;
        let q = call_query(&plan);
        assert!(q.sql.contains("json_to_record($1::json)"), "{}", q.sql);
        assert!(q.propagate_settings);
        plan.citus = false;
        assert!(!call_query(&plan).propagate_settings);
    }

    #[test]
    fn search_path_quotes_and_dedups() {
        assert_eq!(
            search_path("api", &["public".into(), "api".into()]),
            "\"api\", \"public\""
        );
    }
}
