//! Quoting identifiers for SQL text: the one place a name becomes SQL.
//!
//! Only names from the schema cache or the gateway's own configuration are
//! quoted here; values never are (they are always bound parameters).

/// Quote an identifier the way `quote_ident` does, always.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}
