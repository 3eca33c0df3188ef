//! The query string, split and parsed the PostgREST way
//! (PostgREST `src/PostgREST/ApiRequest/QueryParams.hs`).
//!
//! `select`, `columns` and `on_conflict` are reserved, as is every key whose
//! last `.`-segment is `order`, `limit`, `offset`, `and` or `or`. Every other
//! key is a filter `column=operator.value`; on GET and HEAD, a value that does
//! not start with an operator is a function argument instead (PostgREST's
//! `NoOpExpr`): the value's shape decides, not the function's parameter names,
//! so `?category=books&category=eq.books` is an argument and a filter.
//!
//! Owns the grammar and its syntax errors (`PGRST100`). It does not know which
//! columns exist (the planner resolves them against the schema cache).
//! Hand-written rather than on a parser-combinator crate: the grammar is small,
//! its error messages must match PostgREST's word for word, and a cursor with
//! explicit positions gives them more directly than `winnow`'s or `nom`'s
//! error types would. One cohesive thing (the grammar, its syntax tree and
//! its errors), so one file, longer than most.

use serde_json::{Map, Value};

use super::{insert_repeated, RpcMethod};
use crate::error::{Error, RequestError};

/// What the query string asks of the function's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadParams {
    /// `select`: None when absent (every column, as the function returns it).
    pub select: Option<Vec<SelectItem>>,
    /// `order`, in order of precedence.
    pub order: Vec<OrderTerm>,
    /// `limit`: None for no limit.
    pub limit: Option<i64>,
    /// `offset`: 0 when absent.
    pub offset: i64,
    /// Filters and `and`/`or` trees; all must hold.
    pub conditions: Vec<LogicTree>,
}

/// One item of `select`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectItem {
    /// `*`: every column.
    Star,
    /// `alias:column` or `column`.
    Field {
        /// The column.
        name: String,
        /// The key it gets in the body.
        alias: Option<String>,
    },
}

/// One term of `order`: `column[.asc|.desc][.nullsfirst|.nullslast]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    /// The column.
    pub field: String,
    /// Direction; PostgreSQL's default (ascending) when absent.
    pub direction: Option<OrderDirection>,
    /// Where nulls go; PostgreSQL's default when absent.
    pub nulls: Option<OrderNulls>,
}

/// `asc` / `desc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderDirection {
    /// `ASC`
    Asc,
    /// `DESC`
    Desc,
}

/// `nullsfirst` / `nullslast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderNulls {
    /// `NULLS FIRST`
    First,
    /// `NULLS LAST`
    Last,
}

/// `column=[not.]operator.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The column.
    pub field: String,
    /// The test.
    pub expr: OpExpr,
}

/// `[not.]operation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpExpr {
    /// `not.`
    pub negated: bool,
    /// The operation.
    pub op: Operation,
}

/// The operators of PostgREST's filters (references/api/tables_views, Operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `eq gt gte lt lte like ilike match imatch`, optionally `(any)`/`(all)`
    /// over an array value `{a,b}`.
    Quant {
        /// The operator.
        op: QuantOp,
        /// `(any)` / `(all)`.
        quantifier: Option<Quantifier>,
        /// The value as sent (`*` is `%` for like/ilike).
        value: String,
    },
    /// `neq cs cd ov sl sr nxr nxl adj`.
    Simple {
        /// The operator.
        op: SimpleOp,
        /// The value as sent.
        value: String,
    },
    /// `in.(a,b,"c,d")`.
    In(Vec<String>),
    /// `is.null|not_null|true|false|unknown`.
    Is(IsValue),
    /// `isdistinct.value`.
    IsDistinct(String),
    /// `fts plfts phfts wfts`, optionally `(language)`.
    Fts {
        /// Which `to_tsquery` flavour.
        op: FtsOp,
        /// Text search configuration.
        language: Option<String>,
        /// The query text.
        value: String,
    },
}

/// Operators that take `(any)`/`(all)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantOp {
    /// `=`
    Eq,
    /// `>=`
    Gte,
    /// `>`
    Gt,
    /// `<=`
    Lte,
    /// `<`
    Lt,
    /// `LIKE`, `*` as wildcard
    Like,
    /// `ILIKE`, `*` as wildcard
    ILike,
    /// `~`
    Match,
    /// `~*`
    IMatch,
}

/// `(any)` / `(all)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// `= ANY (…)`
    Any,
    /// `= ALL (…)`
    All,
}

/// Operators without a quantifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimpleOp {
    /// `<>`
    Neq,
    /// `@>`
    Contains,
    /// `<@`
    Contained,
    /// `&&`
    Overlap,
    /// `<<`
    StrictlyLeft,
    /// `>>`
    StrictlyRight,
    /// `&<`
    NotExtendsRight,
    /// `&>`
    NotExtendsLeft,
    /// `-|-`
    Adjacent,
}

/// The values of `is`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsValue {
    /// `IS NULL`
    Null,
    /// `IS NOT NULL`
    NotNull,
    /// `IS TRUE`
    True,
    /// `IS FALSE`
    False,
    /// `IS UNKNOWN`
    Unknown,
}

/// Full-text search flavours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtsOp {
    /// `to_tsquery`
    Fts,
    /// `plainto_tsquery`
    Plain,
    /// `phraseto_tsquery`
    Phrase,
    /// `websearch_to_tsquery`
    Websearch,
}

/// `and` / `or`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicOp {
    /// `AND`
    And,
    /// `OR`
    Or,
}

/// A filter or a `[not.]and(…)`/`[not.]or(…)` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicTree {
    /// One filter.
    Stmt(Filter),
    /// A combination.
    Expr {
        /// `not.`
        negated: bool,
        /// `and` / `or`.
        op: LogicOp,
        /// Its members (at least one).
        children: Vec<LogicTree>,
    },
}

/// The query string of one request, split.
pub(super) struct SplitQuery {
    /// Function arguments (GET/HEAD only); a repeated key is an array.
    pub(super) args: Map<String, Value>,
    /// Everything that shapes the result.
    pub(super) read: ReadParams,
    /// See [`RpcRequest::operator_like_args`].
    pub(super) operator_like_args: Vec<(String, String)>,
}

/// Keys whose last `.`-segment makes them reserved (they may be prefixed with
/// an embedded resource's path in PostgREST).
const RESERVED_ENDINGS: &[&str] = &["order", "limit", "offset", "and", "or"];

/// `and`/`or` nested deeper than this is refused rather than parsed recursively.
const MAX_LOGIC_DEPTH: usize = 32;

/// Split and parse the query string.
pub(super) fn split_query(query: &str, method: RpcMethod) -> Result<SplitQuery, Error> {
    let reads_args = matches!(method, RpcMethod::Get | RpcMethod::Head);
    let mut out = SplitQuery {
        args: Map::new(),
        read: ReadParams::default(),
        operator_like_args: Vec::new(),
    };
    let mut seen_order = false;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (key, value) = (key.as_ref(), value.as_ref());
        if key.is_empty() {
            return Err(RequestError::QueryParam {
                message: "Empty query parameter name".into(),
                details: format!("The query string {query:?} has a parameter without a name"),
            }
            .into());
        }
        let last = key.rsplit('.').next().unwrap_or(key);
        match key {
            // PostgREST looks `select` up once: the first one counts.
            "select" => {
                if out.read.select.is_none() {
                    out.read.select = Some(parse_select(value)?);
                }
            }
            // `columns` picks the body keys of inserts and multi-object calls;
            // `on_conflict` is for upserts. Reserved, without effect here.
            "columns" | "on_conflict" => {}
            _ if RESERVED_ENDINGS.contains(&last) => {
                let root = key == last || key == "not.and" || key == "not.or";
                if !root {
                    return Err(unsupported("embedded resources", format!("{key}={value}")));
                }
                match last {
                    // The first `order` wins, as in PostgREST's `addOrders`.
                    "order" if !seen_order => {
                        out.read.order = parse_order(value)?;
                        seen_order = true;
                    }
                    "order" => {}
                    // Limits and offsets that are not integers are ignored, as
                    // PostgREST's `readMaybe` does; the last one wins.
                    "limit" => {
                        if let Ok(n) = value.trim().parse::<i64>() {
                            if n < 0 {
                                return Err(RequestError::InvalidRange {
                                    details: "Limit should be greater than or equal to zero."
                                        .into(),
                                }
                                .into());
                            }
                            out.read.limit = Some(n);
                        }
                    }
                    "offset" => {
                        if let Ok(n) = value.trim().parse::<i64>() {
                            out.read.offset = n.max(0);
                        }
                    }
                    _ => out.read.conditions.push(parse_logic_param(key, value)?),
                }
            }
            _ => {
                let mut c = Cursor::new(value);
                match op_expr(&mut c, ValueEnd::Rest) {
                    Ok(Some(expr)) => {
                        if !c.at_end() {
                            return Err(syntax("filter", value, &c.fail("end of input")));
                        }
                        out.read.conditions.push(LogicTree::Stmt(Filter {
                            field: filter_field(key)?,
                            expr,
                        }));
                    }
                    Ok(None) if reads_args => {
                        if looks_like_operator(value) {
                            out.operator_like_args
                                .push((key.to_string(), value.to_string()));
                        }
                        insert_repeated(&mut out.args, key.to_string(), value.to_string());
                    }
                    Ok(None) => {
                        return Err(syntax("filter", value, &c.fail(EXPECTING_OPERATOR)));
                    }
                    Err(e) => return Err(syntax("filter", value, &e)),
                }
            }
        }
    }
    Ok(out)
}

/// What PostgREST's parser expects where an operator is missing.
const EXPECTING_OPERATOR: &str = "\"not\" or operator (eq, gt, ...)";

/// `word.` or `word(x).` at the start: the shape of an operator, known or not.
pub(super) fn looks_like_operator(value: &str) -> bool {
    let word = value
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(value.len());
    if word == 0 {
        return false;
    }
    let rest = &value[word..];
    let rest = match rest.strip_prefix('(') {
        Some(inner) => match inner.find(')') {
            Some(end) => &inner[end + 1..],
            None => return false,
        },
        None => rest,
    };
    rest.starts_with('.')
}

/// The PGRST100 of a filter whose operator is unknown, as PostgREST words it.
pub fn unknown_operator(value: &str) -> Error {
    syntax(
        "filter",
        value,
        &Cursor::new(value).fail(EXPECTING_OPERATOR),
    )
}

/// A filter's key: one column name (quoted or not). Paths into embedded
/// resources (`a.b`) and JSON (`a->b`) are PostgREST features pgrpc does not have.
fn filter_field(key: &str) -> Result<String, Error> {
    let mut c = Cursor::new(key);
    let name = field_name(&mut c).map_err(|e| syntax("tree path", key, &e))?;
    if c.rest().starts_with("->") {
        return Err(unsupported("JSON paths", key.to_string()));
    }
    if c.rest().starts_with('.') {
        return Err(unsupported("embedded resources", key.to_string()));
    }
    if !c.at_end() {
        return Err(syntax(
            "tree path",
            key,
            &c.fail("delimiter (.), \"->\" or end of input"),
        ));
    }
    Ok(name)
}

/// `select=a,alias:b,*`.
fn parse_select(text: &str) -> Result<Vec<SelectItem>, Error> {
    let what = "select parameter";
    let mut c = Cursor::new(text);
    let mut items = Vec::new();
    c.skip_ws();
    if c.at_end() {
        return Ok(items);
    }
    loop {
        c.skip_ws();
        items.push(select_item(&mut c, text)?);
        c.skip_ws();
        if c.eat(",") {
            continue;
        }
        if c.at_end() {
            return Ok(items);
        }
        return Err(syntax(what, text, &c.fail("\",\" or end of input")));
    }
}

fn select_item(c: &mut Cursor<'_>, text: &str) -> Result<SelectItem, Error> {
    let what = "select parameter";
    if c.rest().starts_with("...") {
        return Err(unsupported("spread embedding", format!("select={text}")));
    }
    if c.eat("*") {
        return Ok(SelectItem::Star);
    }
    let start = c.pos;
    let alias = match field_name(c) {
        Ok(name) if c.rest().starts_with(':') && !c.rest().starts_with("::") => {
            c.eat(":");
            Some(name)
        }
        _ => {
            c.pos = start;
            None
        }
    };
    if c.rest().starts_with("count()") {
        return Err(unsupported("aggregate functions", format!("select={text}")));
    }
    let name = field_name(c).map_err(|e| syntax(what, text, &e))?;
    let rest = c.rest();
    let feature = if rest.starts_with('(') || rest.starts_with('!') {
        Some("resource embedding")
    } else if rest.starts_with("->") {
        Some("JSON paths")
    } else if rest.starts_with("::") {
        Some("casts")
    } else if rest.starts_with('.') {
        Some("aggregate functions")
    } else {
        None
    };
    if let Some(feature) = feature {
        return Err(unsupported(feature, format!("select={text}")));
    }
    Ok(SelectItem::Field { name, alias })
}

/// `order=a.desc.nullslast,b`.
fn parse_order(text: &str) -> Result<Vec<OrderTerm>, Error> {
    let what = "order";
    let mut c = Cursor::new(text);
    let mut terms = Vec::new();
    loop {
        c.skip_ws();
        let field = field_name(&mut c).map_err(|e| syntax(what, text, &e))?;
        if c.rest().starts_with('(') {
            return Err(unsupported(
                "ordering by embedded resources",
                format!("order={text}"),
            ));
        }
        if c.rest().starts_with("->") {
            return Err(unsupported("JSON paths", format!("order={text}")));
        }
        let direction = if c.eat(".asc") {
            Some(OrderDirection::Asc)
        } else if c.eat(".desc") {
            Some(OrderDirection::Desc)
        } else {
            None
        };
        let nulls = if c.eat(".nullsfirst") {
            Some(OrderNulls::First)
        } else if c.eat(".nullslast") {
            Some(OrderNulls::Last)
        } else {
            None
        };
        terms.push(OrderTerm {
            field,
            direction,
            nulls,
        });
        c.skip_ws();
        if c.eat(",") {
            continue;
        }
        if c.at_end() {
            return Ok(terms);
        }
        let e = if c.rest().starts_with('.') {
            c.pos += 1;
            if direction.is_none() && nulls.is_none() {
                c.fail("\"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"")
            } else {
                c.fail("\"nullsfirst\" or \"nullslast\"")
            }
        } else {
            c.fail("delimiter (.), \",\" or end of input")
        };
        return Err(syntax(what, text, &e));
    }
}

/// `or=(a.eq.1,b.gt.2)`, `and=(…)`, `not.or=(…)`: PostgREST parses the key's
/// operator followed by the value as one tree.
fn parse_logic_param(key: &str, value: &str) -> Result<LogicTree, Error> {
    let text = format!("{key}{value}");
    let mut c = Cursor::new(&text);
    let tree = logic_expr(&mut c, 0, None).map_err(|e| e.into_error("logic tree", value, &text))?;
    c.skip_ws();
    if !c.at_end() {
        return Err(syntax_at(
            "logic tree",
            value,
            &text,
            &c.fail("end of input"),
        ));
    }
    Ok(tree)
}

/// Why a grammar rule failed.
enum Fail {
    /// A syntax error.
    Syntax(SyntaxError),
    /// Valid PostgREST syntax for a feature pgrpc does not have.
    Unsupported(&'static str),
}

impl Fail {
    fn into_error(self, what: &str, value: &str, text: &str) -> Error {
        match self {
            Fail::Syntax(e) => syntax_at(what, value, text, &e),
            Fail::Unsupported(feature) => unsupported(feature, text.to_string()),
        }
    }
}

impl From<SyntaxError> for Fail {
    fn from(e: SyntaxError) -> Fail {
        Fail::Syntax(e)
    }
}

fn logic_tree(c: &mut Cursor<'_>, depth: usize) -> Result<LogicTree, Fail> {
    if depth > MAX_LOGIC_DEPTH {
        return Err(Fail::Unsupported("and/or nested more than 32 levels deep"));
    }
    let start = c.pos;
    // A filter first (`try` in PostgREST): `a.eq.1`; then a combination.
    let filter_error = match logic_filter(c) {
        Ok(filter) => return Ok(LogicTree::Stmt(filter)),
        Err(Fail::Unsupported(f)) => return Err(Fail::Unsupported(f)),
        Err(Fail::Syntax(e)) => e,
    };
    c.pos = start;
    logic_expr(c, depth, Some(filter_error))
}

/// `[not.]and(…)` / `[not.]or(…)`. The query parameter itself is always one
/// (`or=(…)` never means a filter on a column `or…`).
fn logic_expr(
    c: &mut Cursor<'_>,
    depth: usize,
    other: Option<SyntaxError>,
) -> Result<LogicTree, Fail> {
    let negated = c.eat("not.");
    let op = if c.eat("and") {
        LogicOp::And
    } else if c.eat("or") {
        LogicOp::Or
    } else {
        // Report whichever alternative got further, as Parsec does.
        let e = c.fail("logic operator (and, or)");
        return Err(Fail::Syntax(match other {
            Some(o) if o.pos > e.pos => o,
            _ => e,
        }));
    };
    c.skip_ws();
    if !c.eat("(") {
        return Err(c.fail("\"(\"").into());
    }
    let mut children = Vec::new();
    loop {
        c.skip_ws();
        children.push(logic_tree(c, depth + 1)?);
        c.skip_ws();
        if c.eat(",") {
            continue;
        }
        if c.eat(")") {
            break;
        }
        return Err(c.fail("\",\" or \")\"").into());
    }
    Ok(LogicTree::Expr {
        negated,
        op,
        children,
    })
}

/// `field.op.value` inside a logic tree.
fn logic_filter(c: &mut Cursor<'_>) -> Result<Filter, Fail> {
    let field = field_name(c)?;
    c.skip_ws();
    if c.rest().starts_with("->") {
        return Err(Fail::Unsupported("JSON paths"));
    }
    if !c.eat(".") {
        return Err(c.fail("delimiter (.)").into());
    }
    match op_expr(c, ValueEnd::Logic)? {
        Some(expr) => Ok(Filter { field, expr }),
        None => Err(c.fail(EXPECTING_OPERATOR).into()),
    }
}

/// Where a filter's value ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueEnd {
    /// A query parameter's value: the rest of the text.
    Rest,
    /// Inside `and(…)`/`or(…)`: at `,` or `)`, unless quoted or a `{…}` array.
    Logic,
}

/// `[not.]operation`. `Ok(None)` when the text does not start with an
/// operator and nothing was consumed: on GET that makes it an argument.
/// Once `not.`, `in.`, `is.` or `isdistinct.` is read, the text is a filter
/// and a bad rest is an error (PostgREST's parser commits there too).
fn op_expr(c: &mut Cursor<'_>, end: ValueEnd) -> Result<Option<OpExpr>, SyntaxError> {
    let start = c.pos;
    let negated = c.eat("not.");
    if let Some(op) = operation(c, end)? {
        return Ok(Some(OpExpr { negated, op }));
    }
    if negated {
        return Err(c.fail("operator (eq, gt, ...)"));
    }
    c.pos = start;
    Ok(None)
}

const QUANT_OPS: &[(&str, QuantOp)] = &[
    ("eq", QuantOp::Eq),
    ("gte", QuantOp::Gte),
    ("gt", QuantOp::Gt),
    ("lte", QuantOp::Lte),
    ("lt", QuantOp::Lt),
    ("like", QuantOp::Like),
    ("ilike", QuantOp::ILike),
    ("match", QuantOp::Match),
    ("imatch", QuantOp::IMatch),
];

const SIMPLE_OPS: &[(&str, SimpleOp)] = &[
    ("neq", SimpleOp::Neq),
    ("cs", SimpleOp::Contains),
    ("cd", SimpleOp::Contained),
    ("ov", SimpleOp::Overlap),
    ("sl", SimpleOp::StrictlyLeft),
    ("sr", SimpleOp::StrictlyRight),
    ("nxr", SimpleOp::NotExtendsRight),
    ("nxl", SimpleOp::NotExtendsLeft),
    ("adj", SimpleOp::Adjacent),
];

const FTS_OPS: &[(&str, FtsOp)] = &[
    ("fts", FtsOp::Fts),
    ("plfts", FtsOp::Plain),
    ("phfts", FtsOp::Phrase),
    ("wfts", FtsOp::Websearch),
];

const IS_VALUES: &[(&str, IsValue)] = &[
    ("null", IsValue::Null),
    ("not_null", IsValue::NotNull),
    ("true", IsValue::True),
    ("false", IsValue::False),
    ("unknown", IsValue::Unknown),
];

fn operation(c: &mut Cursor<'_>, end: ValueEnd) -> Result<Option<Operation>, SyntaxError> {
    if c.eat("in.") {
        return list(c).map(|items| Some(Operation::In(items)));
    }
    if c.eat("is.") {
        for (word, v) in IS_VALUES {
            if c.eat_ignore_case(word) {
                return Ok(Some(Operation::Is(*v)));
            }
        }
        return Err(c.fail("isVal: (null, not_null, true, false, unknown)"));
    }
    if c.eat("isdistinct.") {
        return Ok(Some(Operation::IsDistinct(value(c, end))));
    }
    let start = c.pos;
    if let Some(op) = c.eat_first(FTS_OPS) {
        let before_lang = c.pos;
        let mut language = None;
        if c.eat("(") {
            let lang_start = c.pos;
            while c
                .peek()
                .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | ' ' | '$'))
            {
                c.bump();
            }
            let lang = c.text[lang_start..c.pos].trim();
            if !lang.is_empty() && c.eat(")") {
                language = Some(lang.to_string());
            } else {
                c.pos = before_lang;
            }
        }
        if c.eat(".") {
            return Ok(Some(Operation::Fts {
                op,
                language,
                value: value(c, end),
            }));
        }
        c.pos = start;
    }
    if let Some(op) = c.eat_first(SIMPLE_OPS) {
        if c.eat(".") {
            return Ok(Some(Operation::Simple {
                op,
                value: value(c, end),
            }));
        }
        c.pos = start;
    }
    if let Some(op) = c.eat_first(QUANT_OPS) {
        let quantifier = if c.eat("(any)") {
            Some(Quantifier::Any)
        } else if c.eat("(all)") {
            Some(Quantifier::All)
        } else {
            None
        };
        if c.eat(".") {
            return Ok(Some(Operation::Quant {
                op,
                quantifier,
                value: value(c, end),
            }));
        }
        c.pos = start;
    }
    Ok(None)
}

/// A single value: the rest of the text, or (in a logic tree) a quoted value,
/// a `{…}` array literal, or everything up to `,`/`)`.
fn value(c: &mut Cursor<'_>, end: ValueEnd) -> String {
    if end == ValueEnd::Rest {
        let v = c.rest().to_string();
        c.pos = c.text.len();
        return v;
    }
    let start = c.pos;
    if c.peek() == Some('"') {
        if let Ok(v) = quoted(c) {
            if matches!(c.peek(), None | Some(',') | Some(')')) {
                return v;
            }
        }
        c.pos = start;
    }
    if c.peek() == Some('{') {
        // `{` then anything but braces then `}` (PostgREST's `pPgArray`).
        if let Some(close) = c.rest()[1..].find(['{', '}']).map(|i| i + 1) {
            if c.rest()[close..].starts_with('}') {
                let v = c.rest()[..=close].to_string();
                c.pos += close + 1;
                return v;
            }
        }
    }
    unquoted_element(c)
}

/// `(a, "b,c", d)` of `in`: spaces around the parentheses are skipped
/// (Parsec's `lexeme`), elements are kept as written unless quoted.
fn list(c: &mut Cursor<'_>) -> Result<Vec<String>, SyntaxError> {
    c.skip_ws();
    if !c.eat("(") {
        return Err(c.fail("\"(\""));
    }
    c.skip_ws();
    let mut items = Vec::new();
    loop {
        let start = c.pos;
        let item = match quoted(c) {
            Ok(v) if matches!(c.peek(), Some(',') | Some(')')) => v,
            _ => {
                c.pos = start;
                unquoted_element(c)
            }
        };
        items.push(item);
        if c.eat(",") {
            continue;
        }
        if c.eat(")") {
            break;
        }
        return Err(c.fail("\",\" or \")\""));
    }
    c.skip_ws();
    Ok(items)
}

fn unquoted_element(c: &mut Cursor<'_>) -> String {
    let start = c.pos;
    while c.peek().is_some_and(|ch| ch != ',' && ch != ')') {
        c.bump();
    }
    c.text[start..c.pos].to_string()
}

/// `"…"` with `\` escaping the next character.
fn quoted(c: &mut Cursor<'_>) -> Result<String, SyntaxError> {
    if !c.eat("\"") {
        return Err(c.fail("\"\\\"\""));
    }
    let mut out = String::new();
    loop {
        match c.bump() {
            Some('"') => return Ok(out),
            Some('\\') => match c.bump() {
                Some('\0') => return Err(c.fail("any character but NUL")),
                Some(ch) => out.push(ch),
                None => return Err(c.fail("any character")),
            },
            // A name may become an alias in the SQL text, which cannot hold NUL.
            Some('\0') => {
                c.pos -= 1;
                return Err(c.fail("any character but NUL"));
            }
            Some(ch) => out.push(ch),
            None => return Err(c.fail("\"\\\"\"")),
        }
    }
}

/// PostgREST's field name: a quoted value, or identifiers (letters, digits,
/// `_`, `$`, spaces; trimmed) joined by `-` (but not `->`).
fn field_name(c: &mut Cursor<'_>) -> Result<String, SyntaxError> {
    if c.peek() == Some('"') {
        return quoted(c);
    }
    let mut parts = Vec::new();
    loop {
        let start = c.pos;
        while c
            .peek()
            .is_some_and(|ch| ch.is_alphanumeric() || matches!(ch, '_' | ' ' | '$'))
        {
            c.bump();
        }
        let part = c.text[start..c.pos].trim();
        if part.is_empty() {
            return Err(c.fail("field name (* or [a..z0..9_$])"));
        }
        parts.push(part);
        if c.rest().starts_with('-') && !c.rest().starts_with("->") {
            c.bump();
            continue;
        }
        return Ok(parts.join("-"));
    }
}

/// A position in a parameter's text.
struct Cursor<'a> {
    text: &'a str,
    /// Byte offset.
    pos: usize,
}

/// Where parsing failed and what would have fitted.
struct SyntaxError {
    /// Byte offset in the text.
    pos: usize,
    /// Parsec's "expecting …" list.
    expecting: String,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += ch.len_utf8();
        Some(ch)
    }

    /// Consume `prefix` if the text continues with it.
    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    fn eat_ignore_case(&mut self, prefix: &str) -> bool {
        let rest = self.rest().as_bytes();
        if rest.len() >= prefix.len()
            && rest[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    /// The first of `table` that the text continues with (PostgREST tries its
    /// operators in this order).
    fn eat_first<T: Copy>(&mut self, table: &[(&str, T)]) -> Option<T> {
        table
            .iter()
            .find(|(word, _)| self.eat(word))
            .map(|(_, v)| *v)
    }

    /// Spaces and tabs (Parsec's `lexeme`).
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn fail(&self, expecting: &str) -> SyntaxError {
        SyntaxError {
            pos: self.pos,
            expecting: expecting.to_string(),
        }
    }
}

/// PGRST100 worded as PostgREST's Parsec errors: the message names what failed
/// to parse and where (1-based column), the details what was found and expected.
fn syntax(what: &str, text: &str, e: &SyntaxError) -> Error {
    syntax_at(what, text, text, e)
}

/// As [`syntax`], with the position taken in `parsed` (for logic trees, which
/// PostgREST parses as key and value together).
fn syntax_at(what: &str, value: &str, parsed: &str, e: &SyntaxError) -> Error {
    let pos = e.pos.min(parsed.len());
    let column = parsed[..pos].chars().count() + 1;
    let unexpected = match parsed[pos..].chars().next() {
        Some(ch) => format!("unexpected \"{ch}\""),
        None => "unexpected end of input".to_string(),
    };
    RequestError::QueryParam {
        message: format!("\"failed to parse {what} ({value})\" (line 1, column {column})"),
        details: format!("{unexpected} expecting {}", e.expecting),
    }
    .into()
}

/// PGRST100 for PostgREST syntax that pgrpc does not implement.
fn unsupported(feature: &str, text: String) -> Error {
    RequestError::QueryParam {
        message: format!("pgrpc does not support {feature} on function results"),
        details: format!("In {text}"),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::parse::tests::run;

    fn read(query: &str) -> ReadParams {
        run("GET", query, &[], "").expect("ok").read
    }

    fn expr(value: &str) -> Option<OpExpr> {
        let mut c = Cursor::new(value);
        let e = op_expr(&mut c, ValueEnd::Rest).unwrap_or_else(|_| panic!("{value}: error"));
        assert!(
            e.is_none()
                || c.at_end()
                || matches!(
                    e,
                    Some(OpExpr {
                        op: Operation::In(_) | Operation::Is(_),
                        ..
                    })
                )
        );
        e
    }

    fn quant(op: QuantOp, value: &str) -> Operation {
        Operation::Quant {
            op,
            quantifier: None,
            value: value.into(),
        }
    }

    #[test]
    fn get_splits_arguments_reserved_keys_and_filters() {
        let r = run(
            "GET",
            "n=3&select=x,y&order=x.desc&limit=2&offset=1&x=gt.1&columns=a&on_conflict=b&name=Bob",
            &[],
            "",
        )
        .expect("ok");
        assert_eq!(r.payload.raw, r#"{"n":"3","name":"Bob"}"#);
        assert_eq!(r.read.limit, Some(2));
        assert_eq!(r.read.offset, 1);
        assert_eq!(r.read.select.as_ref().map(Vec::len), Some(2));
        assert_eq!(r.read.order.len(), 1);
        assert_eq!(
            r.read.conditions,
            vec![LogicTree::Stmt(Filter {
                field: "x".into(),
                expr: OpExpr {
                    negated: false,
                    op: quant(QuantOp::Gt, "1"),
                },
            })]
        );
        // The value decides: the same key can be an argument and a filter.
        let r = run("GET", "n=4&n=gt.2", &[], "").expect("ok");
        assert_eq!(r.payload.raw, r#"{"n":"4"}"#);
        assert_eq!(r.read.conditions.len(), 1);
    }

    #[test]
    fn post_reads_filters_from_the_query_string_and_arguments_from_the_body() {
        let r = run("POST", "x=eq.1&limit=1", &[], r#"{"n": 2}"#).expect("ok");
        assert_eq!(r.payload.keys, vec!["n"]);
        assert_eq!(r.read.conditions.len(), 1);
        assert_eq!(r.read.limit, Some(1));
        // No operator: on POST that cannot be an argument.
        let e = run("POST", "x=1", &[], "{}").expect_err("400");
        assert_eq!(e.code(), "PGRST100");
        assert_eq!(
            e.message(),
            "\"failed to parse filter (1)\" (line 1, column 1)"
        );
    }

    #[test]
    fn reserved_parameters_follow_postgrest_precedence() {
        // First select and order win; the last limit wins; bad numbers are ignored.
        let r = read("select=x&select=y&order=a&order=b&limit=1&limit=5&offset=z");
        assert_eq!(
            r.select,
            Some(vec![SelectItem::Field {
                name: "x".into(),
                alias: None
            }])
        );
        assert_eq!(r.order[0].field, "a");
        assert_eq!(r.limit, Some(5));
        assert_eq!(r.offset, 0);
        assert_eq!(read("offset=-3").offset, 0);
        let e = run("GET", "limit=-1", &[], "").expect_err("416");
        assert_eq!(e.status().as_u16(), 416);
        assert_eq!(e.code(), "PGRST103");
        // Reserved keys under an embedded resource's path are not supported.
        for q in [
            "child.order=a",
            "child.limit=1",
            "child.or=(a.eq.1)",
            "a.b=eq.1",
        ] {
            let e = run("GET", q, &[], "").expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
        }
        assert_eq!(read("not.or=(a.eq.1,b.eq.2)").conditions.len(), 1);
    }

    #[test]
    fn operators_parse_like_postgrest() {
        let cases = [
            ("eq.5", quant(QuantOp::Eq, "5")),
            ("gte.5", quant(QuantOp::Gte, "5")),
            ("gt.5", quant(QuantOp::Gt, "5")),
            ("lte.5", quant(QuantOp::Lte, "5")),
            ("lt.5", quant(QuantOp::Lt, "5")),
            ("like.a*.b", quant(QuantOp::Like, "a*.b")),
            ("ilike.a*", quant(QuantOp::ILike, "a*")),
            ("match.^a", quant(QuantOp::Match, "^a")),
            ("imatch.^a", quant(QuantOp::IMatch, "^a")),
            ("eq.", quant(QuantOp::Eq, "")),
            (
                "eq(any).{1,2}",
                Operation::Quant {
                    op: QuantOp::Eq,
                    quantifier: Some(Quantifier::Any),
                    value: "{1,2}".into(),
                },
            ),
            (
                "neq.x",
                Operation::Simple {
                    op: SimpleOp::Neq,
                    value: "x".into(),
                },
            ),
            (
                "adj.[1,2)",
                Operation::Simple {
                    op: SimpleOp::Adjacent,
                    value: "[1,2)".into(),
                },
            ),
            (
                "in.( 1,\"a,b\", c d )",
                Operation::In(vec!["1".into(), "a,b".into(), " c d ".into()]),
            ),
            ("is.NuLL", Operation::Is(IsValue::Null)),
            ("is.not_null", Operation::Is(IsValue::NotNull)),
            ("is.unknown", Operation::Is(IsValue::Unknown)),
            ("isdistinct.x", Operation::IsDistinct("x".into())),
            (
                "plfts(english).a b",
                Operation::Fts {
                    op: FtsOp::Plain,
                    language: Some("english".into()),
                    value: "a b".into(),
                },
            ),
            (
                "wfts.x",
                Operation::Fts {
                    op: FtsOp::Websearch,
                    language: None,
                    value: "x".into(),
                },
            ),
        ];
        for (value, op) in cases {
            assert_eq!(expr(value), Some(OpExpr { negated: false, op }), "{value}");
        }
        assert_eq!(
            expr("not.eq.1"),
            Some(OpExpr {
                negated: true,
                op: quant(QuantOp::Eq, "1")
            })
        );
        // Not an operator, nothing consumed: an argument on GET.
        for value in [
            "5", "", "World", "eqx.1", "a.b.c", "equal", "inx", "fts(x.y", "nothing",
        ] {
            assert_eq!(expr(value), None, "{value}");
        }
        // Committed to a filter, then wrong: PGRST100.
        for value in ["not.x", "not.", "in.1", "in.(1", "is.maybe"] {
            let mut c = Cursor::new(value);
            assert!(op_expr(&mut c, ValueEnd::Rest).is_err(), "{value}");
        }
    }

    #[test]
    fn select_items() {
        let f = |name: &str, alias: Option<&str>| SelectItem::Field {
            name: name.into(),
            alias: alias.map(str::to_string),
        };
        assert_eq!(
            read("select=*, a , b:c,\"d,e\",first name,x-y").select,
            Some(vec![
                SelectItem::Star,
                f("a", None),
                f("c", Some("b")),
                f("d,e", None),
                f("first name", None),
                f("x-y", None),
            ])
        );
        assert_eq!(read("select=").select, Some(vec![]));
        // An alias is spliced into SQL (quoted): NUL cannot be in it.
        let e = run("GET", "select=%22a%00b%22:x", &[], "").expect_err("NUL");
        assert_eq!(e.code(), "PGRST100");
        for q in ["select=a,", "select=a b c:", "select=*x", "select=:a"] {
            let e = run("GET", q, &[], "").expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
            assert!(
                e.message()
                    .starts_with("\"failed to parse select parameter"),
                "{q}"
            );
        }
        for q in [
            "select=a(*)",
            "select=a!inner(*)",
            "select=...a(*)",
            "select=a::text",
            "select=a->b",
            "select=a.sum()",
            "select=count()",
        ] {
            let e = run("GET", q, &[], "").expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
            assert!(
                e.message().starts_with("pgrpc does not support"),
                "{q}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn order_terms() {
        let r = read("order=a.desc.nullslast,b,c.nullsfirst,%22d.e%22.asc");
        assert_eq!(
            r.order,
            vec![
                OrderTerm {
                    field: "a".into(),
                    direction: Some(OrderDirection::Desc),
                    nulls: Some(OrderNulls::Last)
                },
                OrderTerm {
                    field: "b".into(),
                    direction: None,
                    nulls: None
                },
                OrderTerm {
                    field: "c".into(),
                    direction: None,
                    nulls: Some(OrderNulls::First)
                },
                OrderTerm {
                    field: "d.e".into(),
                    direction: Some(OrderDirection::Asc),
                    nulls: None
                },
            ]
        );
        let e = run("GET", "order=id.ac", &[], "").expect_err("bad");
        assert_eq!(
            e.message(),
            "\"failed to parse order (id.ac)\" (line 1, column 4)"
        );
        assert_eq!(
            e.details(),
            Some(Value::String(
                "unexpected \"a\" expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\""
                    .into()
            ))
        );
        for q in [
            "order=",
            "order=a,",
            "order=a.desc.asc",
            "order=a.nullslast.desc",
        ] {
            assert_eq!(
                run("GET", q, &[], "").expect_err(q).code(),
                "PGRST100",
                "{q}"
            );
        }
    }

    #[test]
    fn logic_trees() {
        let r = read("or=(a.eq.1,and(b.not.in.(1,2),c.like.%22x,y%22),d.cs.%7B1,2%7D,e.is.null)");
        let LogicTree::Expr {
            negated,
            op,
            children,
        } = &r.conditions[0]
        else {
            panic!("{r:?}")
        };
        assert!(!negated);
        assert_eq!(*op, LogicOp::Or);
        assert_eq!(children.len(), 4);
        let LogicTree::Expr {
            children: inner, ..
        } = &children[1]
        else {
            panic!("{children:?}")
        };
        assert_eq!(
            inner[0],
            LogicTree::Stmt(Filter {
                field: "b".into(),
                expr: OpExpr {
                    negated: true,
                    op: Operation::In(vec!["1".into(), "2".into()])
                }
            })
        );
        assert_eq!(
            inner[1],
            LogicTree::Stmt(Filter {
                field: "c".into(),
                expr: OpExpr {
                    negated: false,
                    op: quant(QuantOp::Like, "x,y")
                }
            })
        );
        assert_eq!(
            children[2],
            LogicTree::Stmt(Filter {
                field: "d".into(),
                expr: OpExpr {
                    negated: false,
                    op: Operation::Simple {
                        op: SimpleOp::Contains,
                        value: "{1,2}".into()
                    }
                }
            })
        );
        let nested = format!("or=({}a.eq.1{})", "or(".repeat(40), ")".repeat(40));
        let e = run("GET", &nested, &[], "").expect_err("too deep");
        assert_eq!(e.code(), "PGRST100");
        for q in [
            "or=()",
            "or=(a.eq.1",
            "or=a.eq.1",
            "or=(a.eq.1))",
            "and=(a.foo.1)",
            "or=(a.eq.1,xor(b.eq.2))",
        ] {
            let e = run("GET", q, &[], "").expect_err(q);
            assert_eq!(e.code(), "PGRST100", "{q}");
            assert!(
                e.message().starts_with("\"failed to parse logic tree"),
                "{q}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn operator_like_arguments_are_remembered() {
        let r = run("GET", "x=foo.1&y=bar&token=a.b.c", &[], "").expect("ok");
        assert_eq!(
            r.operator_like_args,
            vec![
                ("x".to_string(), "foo.1".to_string()),
                ("token".to_string(), "a.b.c".to_string())
            ]
        );
        assert!(looks_like_operator("fts(simple).x"));
        assert!(!looks_like_operator("1.5"));
        assert!(!looks_like_operator(".x"));
    }
}
