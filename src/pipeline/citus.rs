//! Citus: the request settings as the statements Citus carries to workers.
//!
//! On a Citus coordinator a call's work may run on workers: a delegated
//! function call, or the shard queries of a function that reads distributed
//! tables. Those run in Citus's own connections, which see none of the
//! `set_config(…)` settings of [`SETUP_SQL`](crate::pipeline::query::SETUP_SQL):
//! Citus propagates settings only as `SET LOCAL` statements, and only with
//! `citus.propagate_set_commands = 'local'`, replaying them at the start of
//! each worker transaction (`commands/variableset.c`). So for a Citus
//! database the execute stage also sends, after the settings statement, the
//! statements built here: that switch, then `SET LOCAL` for the claims and
//! the request settings. The role is not among them: it reaches the worker
//! as the connection's user (Citus connects as the current user), and a
//! replayed `SET ROLE` would fail in the connections Citus opens inside a
//! SECURITY DEFINER function (as its owner, who is no member of the role).
//!
//! `SET` takes no bound parameter, so this module is the one place where a
//! request's values are written into SQL text: each as a dollar-quoted
//! literal whose tag does not occur in the value, so nothing in it can end
//! the literal (no escapes apply inside dollar quotes). Names are fixed
//! here; `search_path` is the gateway's own list of quoted identifiers. Each
//! is one statement of its own: Citus replays the text of the whole query
//! string a `SET` came in. Not owned here: when to send them (execute) or
//! whether a call is delegated (the query stage's call shape).

/// The statements, in order: the propagation switch, then one `SET LOCAL`
/// per setting. `claims`, `method`, `path`, `headers`, `cookies`, `client_ip` are the
/// request's values; `search_path` is already SQL (quoted names).
pub fn set_local_statements(
    claims: &str,
    method: &str,
    path: &str,
    headers: &str,
    cookies: &str,
    client_ip: &str,
    search_path: &str,
) -> Vec<String> {
    let mut out = vec!["SET LOCAL citus.propagate_set_commands = 'local'".to_string()];
    for (name, value) in [
        ("request.jwt.claims", claims),
        ("request.method", method),
        ("request.path", path),
        ("request.headers", headers),
        ("request.cookies", cookies),
        ("request.client_ip", client_ip),
    ] {
        out.push(format!(
            "SET LOCAL {} = {}",
            crate::db::quote::ident(name),
            dollar_quote(value)
        ));
    }
    out.push(format!("SET LOCAL search_path = {search_path}"));
    out
}

/// `value` as a dollar-quoted string constant with a tag absent from it.
pub fn dollar_quote(value: &str) -> String {
    let mut n = 0usize;
    let tag = loop {
        let tag = format!("$pgrst{n}$");
        if !value.contains(&tag) {
            break tag;
        }
        n += 1;
    };
    format!("{tag}{value}{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_end_its_literal() {
        assert_eq!(dollar_quote("a'b"), "$pgrst0$a'b$pgrst0$");
        assert_eq!(
            dollar_quote("x$pgrst0$; drop"),
            "$pgrst1$x$pgrst0$; drop$pgrst1$"
        );
        assert_eq!(
            dollar_quote("$pgrst0$$pgrst1$"),
            "$pgrst2$$pgrst0$$pgrst1$$pgrst2$"
        );
        assert_eq!(dollar_quote(""), "$pgrst0$$pgrst0$");
    }

    #[test]
    fn switch_first_then_one_statement_per_setting() {
        let s = set_local_statements(
            "{\"sub\":\"1\"}",
            "POST",
            "/rpc/f",
            "{}",
            "{}",
            "127.0.0.1",
            "\"api\"",
        );
        assert_eq!(s[0], "SET LOCAL citus.propagate_set_commands = 'local'");
        assert_eq!(
            s[1],
            "SET LOCAL \"request.jwt.claims\" = $pgrst0${\"sub\":\"1\"}$pgrst0$"
        );
        assert_eq!(
            s[6],
            "SET LOCAL \"request.client_ip\" = $pgrst0$127.0.0.1$pgrst0$"
        );
        assert_eq!(s[7], "SET LOCAL search_path = \"api\"");
        assert_eq!(s.len(), 8);
    }
}
