//! Query stage: a [`CallPlan`] becomes SQL text with one bound parameter, without I/O.
//!
//! Identifiers come only from the schema cache and are always quoted; the
//! request's values never enter the SQL text: the whole payload is bound once as
//! `$1` and PostgreSQL itself casts each argument to its parameter's type through
//! `json_to_record` (as PostgREST does), so a bad value is PostgreSQL's 22P02,
//! not a string we built. Also owns the per-request settings statement.
//!
//! The call statement aggregates the result into one JSON text and reads the
//! `response.*` settings in the same row: an aggregate's output is computed
//! after all its input rows, so the settings are read after the function ran.

use std::fmt::Write;

use crate::config::QualifiedName;
use crate::plan::{Args, CallPlan};
use crate::schema_cache::{Returns, JSONB_OID};

/// `record`'s OID: such a function cannot be called in FROM without a column list.
const RECORD_OID: u32 = 2249;

/// Transaction-local request settings, one statement (PostgREST's `set_config` form).
/// Parameters: role, claims, method, path, headers, cookies, search_path.
pub const SETUP_SQL: &str = "select \
set_config('role', $1, true), \
set_config('request.jwt.claims', $2, true), \
set_config('request.method', $3, true), \
set_config('request.path', $4, true), \
set_config('request.headers', $5, true), \
set_config('request.cookies', $6, true), \
set_config('search_path', $7, true)";

/// The call: SQL text and whether `$1` (the payload) is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQuery {
    /// Statement text; columns: body text, row count int8, response.headers,
    /// response.status, response.error.
    pub sql: String,
    /// Bind the payload as `$1` (text).
    pub binds_payload: bool,
}

/// Quote an identifier the way `quote_ident` does, always.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
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
    let r = &plan.routine;
    let function = qualified(&r.schema, &r.name);

    // Arguments: named notation from the json_to_record row, or the whole payload.
    let mut record_cols = String::new();
    let call_args = match &plan.args {
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
                let variadic = if p.variadic { "VARIADIC " } else { "" };
                let _ = write!(args, "{variadic}{name} := pgrst_args.{name}");
                let _ = write!(record_cols, "{name} {}", p.type_sql);
            }
            args
        }
    };
    let binds_payload = matches!(plan.args, Args::WholeBody) || !record_cols.is_empty();
    let args_from = if record_cols.is_empty() {
        String::new()
    } else {
        format!("json_to_record($1::json) AS pgrst_args({record_cols}), ")
    };

    let call = format!("{function}({call_args})");
    let set = r.returns.is_set() && !plan.singular;
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
    let (from, body) = match &r.returns {
        Returns::Void => (
            format!("{args_from}LATERAL {call} pgrst_call"),
            "NULL::json".to_string(),
        ),
        Returns::Scalar { type_oid, .. } if *type_oid == RECORD_OID => {
            (in_select_list(), scalar_body(set))
        }
        // One OUT/INOUT parameter or a one-column RETURNS TABLE: PostgreSQL
        // returns the bare column type, so FROM would yield the bare value (or
        // expand a composite one); the row is built here, as PostgREST answers
        // it (PostgREST#1615, #1931).
        Returns::Composite {
            type_oid: None,
            columns,
            ..
        } if columns.len() == 1 => {
            let row = format!(
                "json_build_object({}, pgrst_call.pgrst_scalar)",
                literal(&columns[0].name)
            );
            let body = if set {
                format!("coalesce(json_agg({row}), '[]')")
            } else {
                format!("json_agg({row}) -> 0")
            };
            (in_select_list(), body)
        }
        Returns::Scalar { .. } => (
            format!("{args_from}LATERAL {call} AS pgrst_call(pgrst_scalar)"),
            scalar_body(set),
        ),
        Returns::Composite { .. } => (
            format!("{args_from}LATERAL {call} pgrst_call"),
            if set {
                "coalesce(json_agg(pgrst_call), '[]')".to_string()
            } else {
                "json_agg(pgrst_call) -> 0".to_string()
            },
        ),
    };
    let from = from
        .strip_prefix("LATERAL ")
        .map(str::to_string)
        .unwrap_or(from);
    let sql = format!(
        "SELECT ({body})::text, count(*), \
nullif(current_setting('response.headers', true), ''), \
nullif(current_setting('response.status', true), ''), \
nullif(current_setting('response.error', true), '') \
FROM {from}"
    );
    CallQuery { sql, binds_payload }
}

/// A string literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn scalar_body(set: bool) -> String {
    if set {
        "coalesce(json_agg(pgrst_call.pgrst_scalar), '[]')".to_string()
    } else {
        "json_agg(pgrst_call.pgrst_scalar) -> 0".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{int, routine};
    use crate::plan::ClaimsAt;
    use crate::schema_cache::{Column, Volatility};
    use std::sync::Arc;

    fn plan_for(r: crate::schema_cache::Routine, args: Args, singular: bool) -> CallPlan {
        CallPlan {
            routine: Arc::new(r),
            args,
            read_only: false,
            singular,
            claims_at: ClaimsAt::Nowhere,
            claims_args: Vec::new(),
        }
    }

    const TAIL: &str = "count(*), nullif(current_setting('response.headers', true), ''), nullif(current_setting('response.status', true), ''), nullif(current_setting('response.error', true), '')";

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
            format!("SELECT (json_agg(pgrst_call.pgrst_scalar) -> 0)::text, {TAIL} FROM json_to_record($1::json) AS pgrst_args(\"a\" integer, \"b\" integer), LATERAL \"api\".\"add\"(\"a\" := pgrst_args.\"a\", \"b\" := pgrst_args.\"b\") AS pgrst_call(pgrst_scalar)")
        );
        assert!(q.binds_payload);
    }

    #[test]
    fn no_args_binds_nothing() {
        let r = routine("now", &[], Volatility::Stable, int());
        let q = call_query(&plan_for(r, Args::Named(vec![]), false));
        assert_eq!(
            q.sql,
            format!("SELECT (json_agg(pgrst_call.pgrst_scalar) -> 0)::text, {TAIL} FROM \"api\".\"now\"() AS pgrst_call(pgrst_scalar)")
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
        assert!(
            q.sql
                .starts_with("SELECT (coalesce(json_agg(pgrst_call), '[]'))::text"),
            "{}",
            q.sql
        );
        let q = call_query(&plan_for(r, Args::Named(vec![]), true));
        assert!(
            q.sql
                .starts_with("SELECT (json_agg(pgrst_call) -> 0)::text"),
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
            format!("SELECT (coalesce(json_agg(json_build_object('it''s', pgrst_call.pgrst_scalar)), '[]'))::text, {TAIL} FROM (SELECT \"api\".\"one\"(\"n\" := pgrst_args.\"n\") AS pgrst_scalar FROM json_to_record($1::json) AS pgrst_args(\"n\" integer)) pgrst_call")
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
    fn search_path_quotes_and_dedups() {
        assert_eq!(
            search_path("api", &["public".into(), "api".into()]),
            "\"api\", \"public\""
        );
    }
}
