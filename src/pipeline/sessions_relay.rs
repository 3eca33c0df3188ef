//! Relaying the sessions a call ended on a Citus worker: the gateways LISTEN
//! on the coordinator, so a `NOTIFY pgrpc, 'session ended <sid> <exp>'` sent
//! by a function that Citus delegated to a worker reaches none of them. Such
//! a function also leaves the entries in `pgrpc.sessions_ended` (`<sid>
//! <exp>` each, comma separated: the part of the NOTIFY payload after
//! `session ended `, see `db::sessions`); the call statement reads it where
//! the function ran (`query::SESSIONS_ENDED_COLUMN`), and the execute stage
//! sends [`RELAY_SQL`] with the entries this module accepts, in the same
//! transaction, before `COMMIT`: the notifications go out when the call's
//! changes are committed, and not at all when they are not. PostgreSQL
//! collapses identical notifications within one transaction, so a function
//! that ran on the coordinator and notified itself is not announced twice.
//!
//! This module owns the value's format and the bound; sending is the execute
//! stage's, and what a notification does to the gateways is `db::sessions`'.

use crate::db::sessions::parse_entry;
use crate::jwt::revoked::parse_uuid;

/// The statement that relays the entries, bound as `$1` (`text[]`), never
/// in the SQL text.
pub const RELAY_SQL: &str =
    "select pg_notify('pgrpc', 'session ended ' || e) from unnest($1::text[]) e";

/// At most this many entries are relayed per call (a logout of every session
/// of one user is a handful; the rest are logged and dropped).
pub const MAX_RELAYED: usize = 1000;

/// The entries of `value` to relay, each `<sid> <exp>` in canonical form: a
/// uuid, one space, a non-negative integer (Unix seconds). A malformed entry
/// is logged and dropped, and so is each one past [`MAX_RELAYED`].
pub fn entries(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut over = 0usize;
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some(entry) = parse(entry) else {
            tracing::warn!(
                entry,
                "ignoring a malformed pgrpc.sessions_ended entry (want '<sid uuid> <exp unix seconds>')"
            );
            continue;
        };
        if out.len() < MAX_RELAYED {
            out.push(entry);
        } else {
            over += 1;
        }
    }
    if over > 0 {
        tracing::warn!(
            dropped = over,
            relayed = MAX_RELAYED,
            "a call ended more sessions than are relayed per call; the rest are not announced (pgrpc.ended_sessions() still lists them on the next reload)"
        );
    }
    out
}

/// One entry as `db::sessions` reads it back, with a sid that is a uuid.
fn parse(entry: &str) -> Option<String> {
    let (sid, exp) = parse_entry(entry)?;
    parse_uuid(sid)?;
    Some(format!("{sid} {exp}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54";
    const OTHER: &str = "00000000-0000-4000-8000-00000000000A";

    #[test]
    fn good_entries_are_kept_in_canonical_form() {
        assert_eq!(
            entries(&format!(" {SID} 1700000000 ,{OTHER}\t0,")),
            vec![format!("{SID} 1700000000"), format!("{OTHER} 0")]
        );
        assert!(entries("").is_empty());
        assert!(entries(" , ").is_empty());
    }

    #[test]
    fn malformed_entries_are_dropped() {
        for bad in [
            SID.to_string(),
            format!("{SID} -1"),
            format!("{SID} +1"),
            format!("{SID} 1.5"),
            format!("{SID} 1 2"),
            format!("{SID} 99999999999999999999"),
            "not-a-uuid 1".to_string(),
            format!("{SID}1"),
        ] {
            assert!(entries(&bad).is_empty(), "{bad}");
        }
        assert_eq!(entries(&format!("x 1, {SID} 5")), vec![format!("{SID} 5")]);
    }

    #[test]
    fn past_the_bound_entries_are_dropped() {
        let many = vec![format!("{SID} 1"); MAX_RELAYED + 5].join(",");
        assert_eq!(entries(&many).len(), MAX_RELAYED);
    }
}
