//! Filling the set of ended sessions from the database: the whole set from
//! `pgrpc.ended_sessions()` (at start and after every reconnect of the
//! listener, since notifications sent while it was away are lost), and one
//! session per `session ended <sid> <exp>` notification on channel `pgrpc`.
//!
//! pgrpc is generic: a database whose SQL defines no `pgrpc.ended_sessions`
//! simply has no sessions, and the load says so quietly. This module owns the
//! query and the payload format; the set itself and the per-request check are
//! `jwt::revoked`'s, and the connection that listens is `listener`'s.

use futures_util::{pin_mut, TryStreamExt};

use crate::jwt::revoked::EndedSessions;

/// `select sid, exp from pgrpc.ended_sessions($1)`.
const ENDED_SESSIONS_SQL: &str = include_str!("ended_sessions.sql");

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The set was replaced by this many ended sessions.
    Sessions(usize),
    /// The database defines no `pgrpc.ended_sessions()`: no sessions, the
    /// set stays empty.
    Off,
}

/// Replace `set` by the ended sessions the database lists. On an error the
/// old set stays (it is still right, only perhaps incomplete).
pub async fn load(
    client: &tokio_postgres::Client,
    set: &EndedSessions,
) -> Result<Loaded, tokio_postgres::Error> {
    let leeway = i32::try_from(set.leeway()).unwrap_or(i32::MAX);
    let rows = match client.query_raw(ENDED_SESSIONS_SQL, [leeway]).await {
        Ok(rows) => rows,
        Err(e) if is_undefined(&e) => {
            set.replace(Vec::new());
            return Ok(Loaded::Off);
        }
        Err(e) => return Err(e),
    };
    pin_mut!(rows);
    // Streamed into a bounded set: a database with very many ended sessions
    // costs the gateway no more memory than its cap.
    let mut fresh = set.loading();
    while let Some(row) = rows.try_next().await? {
        let sid: &str = row.try_get(0)?;
        let exp: i64 = row.try_get(1)?;
        fresh.add(sid, exp);
    }
    Ok(Loaded::Sessions(set.install(fresh)))
}

/// [`load`], logged: what the listener and the start-up call.
pub async fn reload(client: &tokio_postgres::Client, set: &EndedSessions) -> bool {
    match load(client, set).await {
        Ok(Loaded::Sessions(n)) => {
            tracing::info!(ended_sessions = n, "ended sessions loaded");
            true
        }
        Ok(Loaded::Off) => {
            tracing::debug!("no pgrpc.ended_sessions() in this database: sessions are off");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "loading the ended sessions failed; keeping the previous set");
            false
        }
    }
}

/// Apply a notification on channel `pgrpc` if it is `session ended <sid>
/// <exp>`; returns whether it was one (other payloads are reloads).
pub fn note(set: &EndedSessions, payload: &str) -> bool {
    let Some(rest) = payload.trim().strip_prefix("session ended") else {
        return false;
    };
    match parse_entry(rest) {
        Some((sid, exp)) if set.insert(sid, exp) => {}
        _ => tracing::warn!(payload, "ignoring a malformed 'session ended' notification"),
    }
    true
}

/// `<sid> <exp>`, white space between, `exp` in Unix seconds (digits only):
/// what follows `session ended` in a notification, and one entry of
/// `pgrpc.sessions_ended` (`pipeline::sessions_relay`). The sid is not
/// checked here.
pub fn parse_entry(text: &str) -> Option<(&str, i64)> {
    let mut parts = text.split_ascii_whitespace();
    let sid = parts.next()?;
    let exp = parts.next()?;
    if parts.next().is_some() || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((sid, exp.parse().ok()?))
}

/// No function (42883), or no schema `pgrpc` at all (3F000).
fn is_undefined(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code()
        .is_some_and(|c| *c == SqlState::UNDEFINED_FUNCTION || *c == SqlState::INVALID_SCHEMA_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54";

    #[test]
    fn payloads() {
        let set = EndedSessions::new(30);
        let far = 4_000_000_000i64;
        assert!(!note(&set, "reload schema"));
        assert!(!note(&set, ""));
        assert!(note(&set, &format!("session ended {SID} {far}")));
        assert_eq!(set.len(), 1);
        for bad in [
            "session ended".to_string(),
            format!("session ended {SID}"),
            format!("session ended {SID} soon"),
            format!("session ended {SID} {far} extra"),
            format!("session ended not-a-uuid {far}"),
        ] {
            assert!(note(&set, &bad), "{bad}: still a session note");
        }
        assert_eq!(set.len(), 1, "malformed notes add nothing");
    }
}
