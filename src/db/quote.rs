//! Quoting identifiers for SQL text: the one place a name becomes SQL.
//!
//! Only names from the schema cache or the gateway's own configuration are
//! quoted here; values never are (they are always bound parameters).

/// Quote an identifier the way `quote_ident` does, always.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    push_ident(&mut out, name);
    out
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    let mut out = String::with_capacity(schema.len() + name.len() + 5);
    push_ident(&mut out, schema);
    out.push('.');
    push_ident(&mut out, name);
    out
}

/// Append `name` quoted. Written out rather than `format!` + `replace`:
/// every call builds several of these per request (the call statement,
/// `search_path`), and the formatting machinery cost ~1,000 instructions
/// each (bench/results/profile.md, 2026-12-01).
fn push_ident(out: &mut String, name: &str) {
    out.push('"');
    let mut rest = name;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..=i]);
        out.push('"');
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_and_the_name_wrapped() {
        assert_eq!(ident("api"), r#""api""#);
        assert_eq!(ident(""), r#""""#);
        assert_eq!(ident(r#"a"b"#), r#""a""b""#);
        assert_eq!(ident(r#"""#), r#""""""#);
        assert_eq!(ident(r#"x""y"#), r#""x""""y""#);
        assert_eq!(ident("é \\"), r#""é \""#);
        assert_eq!(qualified("api", r#"f"n"#), r#""api"."f""n""#);
    }
}
