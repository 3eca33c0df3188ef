//! PostgreSQL types as JSON Schema (the OpenAPI 3.0 dialect): base types by
//! name, arrays, domains, enums, ranges and composites from what
//! `privileges.sql` says of each type, and the text form of a value in the
//! query string. Pure; the document (`super`) decides where each schema goes.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::db::schema_cache::{Returns, RECORD_OID};

/// A type as `privileges.sql` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct TypeInfo {
    /// Its schema.
    pub schema: String,
    /// `pg_type.typname`.
    pub name: String,
    /// `format_type` spelling.
    pub sql: String,
    /// `typtype`: b base, c composite, d domain, e enum, p pseudo, r range, m multirange.
    pub kind: String,
    /// `typcategory` (`A` for arrays).
    pub category: String,
    /// Element type of an array.
    pub element: Option<u32>,
    /// Base type of a domain.
    pub base: Option<u32>,
    /// Labels of an enum, in order.
    pub labels: Option<Vec<String>>,
    /// Attributes of a composite type, in order.
    pub attributes: Option<Vec<Attribute>>,
    /// `COMMENT ON TYPE`.
    pub description: Option<String>,
}

/// An attribute of a composite type.
#[derive(Debug, Clone, Deserialize)]
pub struct Attribute {
    /// Name.
    pub name: String,
    /// Type oid.
    pub type_oid: u32,
}

/// PostgreSQL types → JSON Schema (the OpenAPI 3.0 dialect).
pub(super) struct Mapper<'a> {
    /// The types `privileges.sql` described, by OID.
    pub(super) types: &'a HashMap<u32, TypeInfo>,
    /// The claims type's OID: its values are tokens in the document.
    pub(super) claims: Option<u32>,
}

/// Nesting deeper than this (composites of arrays of composites …) is `{}`.
const MAX_DEPTH: usize = 8;

impl Mapper<'_> {
    /// A JWT string standing for a value of the claims type.
    pub(super) fn jwt(input: bool) -> Value {
        let text = if input {
            "A JWT signed with the server's key; the function receives its verified claims"
        } else {
            "A JWT the gateway signs from the claims the function returned"
        };
        json!({ "type": "string", "description": text, "nullable": true })
    }

    /// A POST argument: JSON null is SQL NULL; claims-type values (and arrays
    /// of them) are tokens, as plan verifies them.
    pub(super) fn input(&self, oid: u32, sql: &str) -> Value {
        if Some(oid) == self.claims {
            return Self::jwt(true);
        }
        if let Some(element) = self.types.get(&oid).and_then(|t| t.element) {
            if Some(element) == self.claims {
                return json!({ "type": "array", "items": Self::jwt(true), "nullable": true });
            }
        }
        self.schema(oid, sql, true, 0)
    }

    /// A GET argument: text, so never null; an array is the parameter
    /// repeated, and anything a query string cannot spell as JSON (rows, JSON
    /// itself) is sent as text.
    pub(super) fn query(&self, oid: u32, sql: &str) -> Value {
        for_query(self.input(oid, sql), sql)
    }

    /// A function's whole result body.
    pub(super) fn result(&self, returns: &Returns) -> Value {
        let row = self.row(returns);
        if returns.is_set() {
            json!({ "type": "array", "items": row })
        } else {
            row
        }
    }

    /// One row (or value) of a result.
    pub(super) fn row(&self, returns: &Returns) -> Value {
        match returns {
            Returns::Void => json!({}),
            Returns::Scalar { type_oid, .. }
            | Returns::Composite {
                type_oid: Some(type_oid),
                ..
            } if Some(*type_oid) == self.claims => Self::jwt(false),
            Returns::Scalar {
                type_oid, type_sql, ..
            } => self.schema(*type_oid, type_sql, true, 0),
            Returns::Composite {
                type_oid, columns, ..
            } => {
                let described = type_oid.and_then(|t| self.types.get(&t));
                let mut properties = Map::new();
                for c in columns {
                    let s = if Some(c.type_oid) == self.claims {
                        Self::jwt(false)
                    } else {
                        self.schema(c.type_oid, &c.type_sql, true, 1)
                    };
                    properties.insert(c.name.clone(), s);
                }
                let mut row =
                    json!({ "type": "object", "properties": properties, "nullable": true });
                if let Some(t) = described {
                    row["description"] = json!(match &t.description {
                        Some(d) => format!("{} ({d})", t.sql),
                        None => t.sql.clone(),
                    });
                }
                row
            }
        }
    }

    /// The JSON form of a value of type `oid` (`sql` names it when the
    /// catalog description is missing).
    fn schema(&self, oid: u32, sql: &str, nullable: bool, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return json!({});
        }
        let Some(t) = self.types.get(&oid) else {
            return by_sql_name(sql, nullable);
        };
        let mut s = match t.kind.as_str() {
            "d" => match t.base {
                Some(base) => {
                    let base_sql = self
                        .types
                        .get(&base)
                        .map(|b| b.sql.clone())
                        .unwrap_or_default();
                    self.schema(base, &base_sql, nullable, depth + 1)
                }
                None => json!({}),
            },
            "c" => {
                let mut properties = Map::new();
                for a in t.attributes.iter().flatten() {
                    let sql = self
                        .types
                        .get(&a.type_oid)
                        .map(|x| x.sql.clone())
                        .unwrap_or_default();
                    properties.insert(
                        a.name.clone(),
                        self.schema(a.type_oid, &sql, true, depth + 1),
                    );
                }
                json!({ "type": "object", "properties": properties })
            }
            "e" => {
                let mut labels: Vec<Value> = t.labels.iter().flatten().map(|l| json!(l)).collect();
                if nullable {
                    // OpenAPI 3.0.3: an enum must list null for null to be valid.
                    labels.push(Value::Null);
                }
                json!({ "type": "string", "enum": labels })
            }
            "p" if oid == RECORD_OID => json!({ "type": "object" }),
            "p" => json!({}),
            _ if t.category == "A" => match t.element {
                Some(element) => {
                    let sql = self
                        .types
                        .get(&element)
                        .map(|x| x.sql.clone())
                        .unwrap_or_default();
                    json!({ "type": "array", "items": self.schema(element, &sql, true, depth + 1) })
                }
                None => json!({ "type": "string" }),
            },
            _ if t.schema == "pg_catalog" => builtin(&t.name),
            // Base types of extensions (citext, ltree, …) and ranges: their text.
            _ => json!({ "type": "string" }),
        };
        if let Value::Object(map) = &mut s {
            if nullable && map.contains_key("type") {
                map.insert("nullable".into(), json!(true));
            }
            if t.schema != "pg_catalog" && t.kind != "d" && !map.contains_key("description") {
                let text = match &t.description {
                    Some(d) => format!("{} ({d})", t.sql),
                    None => t.sql.clone(),
                };
                if !map.is_empty() {
                    map.insert("description".into(), json!(text));
                }
            }
        }
        s
    }
}

/// The query-string form of an argument's schema (see [`Mapper::query`]).
fn for_query(schema: Value, sql: &str) -> Value {
    let Value::Object(mut map) = schema else {
        return text_form(sql, true);
    };
    map.remove("nullable");
    if let Some(Value::Array(labels)) = map.get_mut("enum") {
        labels.retain(|v| !v.is_null());
    }
    match map.get("type").and_then(Value::as_str) {
        Some("array") => {
            let element = sql.strip_suffix("[]").unwrap_or(sql);
            let items = map.remove("items").unwrap_or_else(|| json!({}));
            map.insert("items".into(), for_query(items, element));
            Value::Object(map)
        }
        Some("object") => text_form(sql, false),
        None => text_form(sql, true),
        Some(_) => Value::Object(map),
    }
}

/// A GET argument PostgreSQL reads from text: a row literal such as `(1,2)`;
/// JSON stays the text it was (json_to_record makes a JSON string of it).
fn text_form(sql: &str, json: bool) -> Value {
    let text = if json {
        format!("Received by the function as a {sql} string; send JSON arguments with POST")
    } else {
        format!("{sql} in PostgreSQL's text form, such as a row literal (1,2)")
    };
    json!({ "type": "string", "description": text })
}

/// Built-in base types by `pg_type.typname`.
fn builtin(name: &str) -> Value {
    match name {
        "int2" => json!({ "type": "integer", "minimum": i16::MIN, "maximum": i16::MAX }),
        "int4" => {
            json!({ "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX })
        }
        "int8" => {
            json!({ "type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX })
        }
        "oid" | "xid" | "cid" | "regproc" => {
            json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX })
        }
        "numeric" => json!({ "type": "number" }),
        "float4" => json!({ "type": "number", "format": "float" }),
        "float8" => json!({ "type": "number", "format": "double" }),
        "bool" => json!({ "type": "boolean" }),
        "json" | "jsonb" => json!({}),
        "uuid" => json!({ "type": "string", "format": "uuid" }),
        "date" => json!({ "type": "string", "format": "date" }),
        "timestamptz" => json!({ "type": "string", "format": "date-time" }),
        // No offset, so not RFC 3339's date-time.
        "timestamp" => {
            json!({ "type": "string", "description": "ISO 8601 date and time without offset" })
        }
        "bytea" => json!({ "type": "string", "description": "\\x followed by hexadecimal digits" }),
        "record" => json!({ "type": "object" }),
        _ => json!({ "type": "string" }),
    }
}

/// When the catalog description of a type is missing: its `format_type` name.
fn by_sql_name(sql: &str, nullable: bool) -> Value {
    let mut s = match sql.strip_suffix("[]") {
        Some(element) => {
            json!({ "type": "array", "items": by_sql_name(element, true) })
        }
        None => builtin(match sql {
            "smallint" => "int2",
            "integer" => "int4",
            "bigint" => "int8",
            "real" => "float4",
            "double precision" => "float8",
            "boolean" => "bool",
            "timestamp with time zone" => "timestamptz",
            "timestamp without time zone" => "timestamp",
            other => other,
        }),
    };
    if let Value::Object(map) = &mut s {
        if nullable && map.contains_key("type") {
            map.insert("nullable".into(), json!(true));
        }
    }
    s
}
