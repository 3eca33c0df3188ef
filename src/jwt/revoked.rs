//! The ended sessions: the in-memory set of session ids (`sid` claims) whose
//! tokens are refused on every call, whatever function is called.
//!
//! The SQL of an application may end sessions (logout, a changed password);
//! it announces each with `NOTIFY pgrpc, 'session ended <sid> <exp>'` and
//! lists them with `pgrpc.ended_sessions()` (README, "Sessions"). This module
//! owns the set, its bounds and the check a verified token goes through; the
//! check is one hash lookup and takes no lock at all while the set is empty.
//! It does not own filling the set: the listener (`db::listener`, through
//! `db::sessions`) loads it and applies notifications. Nor does it verify
//! tokens: the check runs on claims [`super::Jwt::verify`] has already
//! accepted (or taken from its cache), once per request.
//!
//! Bounds: an entry is forgotten once `exp + leeway` has passed, since no token
//! of that session can pass the `exp` check any more: from then on the check
//! ignores it, and it is pruned when the set is full or on the first insert
//! after a minute. An entry is 25 bytes in the hash table (a 16-byte sid, an
//! 8-byte `exp`, a control byte), and the table keeps up to 2.3 buckets per
//! entry: the default cap of [`MAX_ENDED_SESSIONS`] (`jwt.max_ended_sessions`)
//! fills 131,072 buckets, 3.3 MB, twice that while a reload builds the new set
//! beside the old (`cost::of_a_full_set` measured 3.4 MB of RSS). Beyond the cap the set
//! fails closed: it drops the tenth of its
//! entries that expire first and from then on refuses *every* token with a
//! `sid` whose `exp` is not after the latest `exp` it dropped (the horizon),
//! until that time has passed. An ended session is therefore never accepted
//! because the set was full; the price is that live sessions whose tokens
//! expire before the horizon must sign in again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Claims, JwtError, Verified};

/// The most ended sessions the gateway keeps by default
/// (`jwt.max_ended_sessions`). More sessions ended within the token lifetime
/// make the set fail closed (module docs).
pub const MAX_ENDED_SESSIONS: usize = crate::config::DEFAULT_MAX_ENDED_SESSIONS;

/// A session id as the set stores it: a uuid as two `u64`s rather than a
/// `u128`, whose 16-byte alignment would pad each entry from 24 to 32 bytes.
type SidKey = [u64; 2];

fn key(sid: u128) -> SidKey {
    [(sid >> 64) as u64, sid as u64]
}

/// The session claims of a verified token, as the check needs them: present
/// when the token has a `sid` claim at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionClaim {
    /// The `sid` as a uuid; `None` when it is not one (never listed, but the
    /// horizon still applies).
    pub sid: Option<u128>,
    /// The token's `exp`, Unix seconds.
    pub exp: Option<f64>,
}

impl SessionClaim {
    /// The session claims of a claims map; `None` without a `sid` claim.
    pub fn of(claims: &Claims) -> Option<SessionClaim> {
        claims.get(SID_CLAIM).map(|sid| SessionClaim {
            sid: sid.as_str().and_then(parse_uuid),
            exp: claims.get("exp").and_then(Value::as_f64),
        })
    }
}

/// The claim that names a token's session (OpenID Connect's `sid`).
pub const SID_CLAIM: &str = "sid";

/// Seconds between two prunes of expired entries while the set is not full.
const PRUNE_EVERY: i64 = 60;

/// The set of ended sessions, shared by the request workers (which check it)
/// and the listener (which fills it).
pub struct EndedSessions {
    inner: RwLock<Inner>,
    /// Anything to check: entries or a horizon. Lets the common case (no
    /// session ended recently) skip the lock.
    active: AtomicBool,
    /// `jwt.leeway`, seconds: how long past `exp` a token is still accepted.
    leeway: AtomicU64,
    cap: usize,
}

/// A set being loaded (see [`EndedSessions::loading`]).
pub struct Loading {
    inner: Inner,
    now: i64,
    leeway: i64,
    cap: usize,
    taken: usize,
}

impl Loading {
    /// Add one ended session; false for a `sid` that is not a uuid.
    pub fn add(&mut self, sid: &str, exp: i64) -> bool {
        let Some(sid) = parse_uuid(sid) else {
            return false;
        };
        self.inner.insert(sid, exp, self.now, self.leeway, self.cap);
        self.taken += 1;
        true
    }
}

#[derive(Default)]
struct Inner {
    /// sid → the session's latest `exp`, Unix seconds.
    ended: HashMap<SidKey, i64>,
    /// Tokens with a `sid` and an `exp` up to this are refused: entries that
    /// expire up to here were dropped when the set was full.
    horizon: Option<i64>,
    /// When expired entries are pruned next (on an insert).
    next_prune: i64,
}

impl EndedSessions {
    /// An empty set with the default bound, for `jwt.leeway` seconds.
    pub fn new(leeway: u64) -> EndedSessions {
        EndedSessions::with_capacity(leeway, MAX_ENDED_SESSIONS)
    }

    /// An empty set holding at most `cap` sessions (at least 1).
    pub fn with_capacity(leeway: u64, cap: usize) -> EndedSessions {
        EndedSessions {
            inner: RwLock::new(Inner::default()),
            active: AtomicBool::new(false),
            leeway: AtomicU64::new(leeway),
            cap: cap.max(1),
        }
    }

    /// The leeway in force (a config reload may change `jwt.leeway`).
    pub fn leeway(&self) -> u64 {
        self.leeway.load(Ordering::Relaxed)
    }

    /// Take a new `jwt.leeway`, so that entries live as long as their tokens.
    pub fn set_leeway(&self, leeway: u64) {
        self.leeway.store(leeway, Ordering::Relaxed);
    }

    /// Refuse a verified token whose `sid` names an ended session. Tokens
    /// without a `sid` claim are not sessions and always pass.
    pub fn check(&self, token: &Verified) -> Result<(), JwtError> {
        self.check_session_at(token.session(), unix_now)
    }

    /// [`EndedSessions::check`] on a claims map, with a clock (tests).
    pub fn check_at(&self, claims: &Claims, now: impl FnOnce() -> i64) -> Result<(), JwtError> {
        self.check_session_at(SessionClaim::of(claims).as_ref(), now)
    }

    /// The check on a token's session claims, with a clock read only when
    /// the `sid` is listed.
    pub fn check_session_at(
        &self,
        session: Option<&SessionClaim>,
        now: impl FnOnce() -> i64,
    ) -> Result<(), JwtError> {
        if !self.active.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(session) = session else {
            return Ok(());
        };
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let listed = session.sid.and_then(|sid| inner.ended.get(&key(sid)));
        // An entry past exp + leeway counts no more, pruned or not yet: no
        // token of its session can be valid then.
        if let Some(&exp) = listed {
            if exp.saturating_add(self.leeway_secs()) >= now() {
                return Err(JwtError::SessionEnded);
            }
        }
        if let Some(horizon) = inner.horizon {
            // No `exp` (jwt.require_exp = false) cannot be shown to be past
            // the horizon: refused too, failing closed.
            if session.exp.is_none_or(|exp| exp <= horizon as f64) {
                return Err(JwtError::SessionEnded);
            }
        }
        Ok(())
    }

    /// Add one ended session (a notification). Returns false for a `sid`
    /// that is not a uuid.
    pub fn insert(&self, sid: &str, exp: i64) -> bool {
        self.insert_at(sid, exp, unix_now())
    }

    /// [`EndedSessions::insert`] with an explicit clock, for tests.
    pub fn insert_at(&self, sid: &str, exp: i64, now: i64) -> bool {
        let Some(sid) = parse_uuid(sid) else {
            return false;
        };
        let leeway = self.leeway_secs();
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.insert(sid, exp, now, leeway, self.cap);
        self.active.store(inner.is_active(), Ordering::Release);
        true
    }

    /// Replace the whole set by `entries` (sid, exp), as a load from the
    /// database lists them; entries that are not uuids are skipped. Returns
    /// how many were taken.
    pub fn replace(&self, entries: impl IntoIterator<Item = (String, i64)>) -> usize {
        self.replace_at(entries, unix_now())
    }

    /// [`EndedSessions::replace`] with an explicit clock, for tests.
    pub fn replace_at(&self, entries: impl IntoIterator<Item = (String, i64)>, now: i64) -> usize {
        let mut fresh = self.loading_at(now);
        for (sid, exp) in entries {
            fresh.add(&sid, exp);
        }
        self.install(fresh)
    }

    /// A new set to fill row by row (a load streams them) and then
    /// [`install`](EndedSessions::install); bounded like this one.
    pub fn loading(&self) -> Loading {
        self.loading_at(unix_now())
    }

    fn loading_at(&self, now: i64) -> Loading {
        Loading {
            inner: Inner::default(),
            now,
            leeway: self.leeway_secs(),
            cap: self.cap,
            taken: 0,
        }
    }

    /// Put a loaded set in place of this one. Requests check the old set
    /// until the new one is whole. Returns how many sessions were loaded.
    pub fn install(&self, loaded: Loading) -> usize {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        *inner = loaded.inner;
        self.active.store(inner.is_active(), Ordering::Release);
        loaded.taken
    }

    /// Sessions in the set now.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ended
            .len()
    }

    /// Whether the set holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The horizon, when the set has overflowed (module docs).
    pub fn horizon(&self) -> Option<i64> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .horizon
    }

    fn leeway_secs(&self) -> i64 {
        i64::try_from(self.leeway()).unwrap_or(i64::MAX)
    }
}

impl Inner {
    fn is_active(&self) -> bool {
        !self.ended.is_empty() || self.horizon.is_some()
    }

    fn insert(&mut self, sid: u128, exp: i64, now: i64, leeway: i64, cap: usize) {
        let sid = key(sid);
        let alive = |exp: i64| exp.saturating_add(leeway) >= now;
        if now >= self.next_prune {
            self.prune(now, leeway);
        }
        if !alive(exp) || self.horizon.is_some_and(|h| exp <= h) {
            // Its tokens are expired, or refused by the horizon already.
            return;
        }
        if self.ended.len() >= cap && !self.ended.contains_key(&sid) {
            self.prune(now, leeway);
            if self.ended.len() >= cap {
                self.evict(cap);
            }
            if self.horizon.is_some_and(|h| exp <= h) {
                return;
            }
        }
        let kept = self.ended.entry(sid).or_insert(exp);
        *kept = (*kept).max(exp);
    }

    /// Forget the entries whose tokens are all expired, and a horizon that no
    /// token can reach any more.
    fn prune(&mut self, now: i64, leeway: i64) {
        self.ended
            .retain(|_, exp| exp.saturating_add(leeway) >= now);
        if self.horizon.is_some_and(|h| h.saturating_add(leeway) < now) {
            self.horizon = None;
        }
        self.next_prune = now.saturating_add(PRUNE_EVERY);
    }

    /// Full: drop the tenth of the entries that expire first and raise the
    /// horizon over them, so that their tokens stay refused. A tenth at once
    /// keeps the cost of a full set's inserts amortised.
    fn evict(&mut self, cap: usize) {
        let mut exps: Vec<i64> = self.ended.values().copied().collect();
        let k = (cap / 10).clamp(1, exps.len());
        let (_, threshold, _) = exps.select_nth_unstable(k - 1);
        let threshold = *threshold;
        self.ended.retain(|_, exp| *exp > threshold);
        self.horizon = Some(self.horizon.map_or(threshold, |h| h.max(threshold)));
        tracing::warn!(
            cap,
            horizon = threshold,
            "more ended sessions than the gateway keeps; refusing every session token that expires before the horizon"
        );
    }
}

/// A uuid in its canonical text form (8-4-4-4-12 hex digits, either case),
/// as PostgreSQL prints one, as a number.
pub fn parse_uuid(text: &str) -> Option<u128> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut value: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = (b as char).to_digit(16)?;
        value = (value << 4) | u128::from(digit);
    }
    Some(value)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const A: &str = "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54";
    const B: &str = "00000000-0000-4000-8000-000000000001";

    fn claims(v: serde_json::Value) -> Claims {
        match v {
            serde_json::Value::Object(map) => map,
            _ => panic!("claims are an object"),
        }
    }

    fn token(sid: &str, exp: i64) -> Claims {
        claims(json!({"role": "app_user", "sid": sid, "exp": exp}))
    }

    #[test]
    fn uuids() {
        assert_eq!(parse_uuid(A), parse_uuid(&A.to_uppercase()));
        assert_eq!(parse_uuid(B), Some(0x4000_8000_0000_0000_0001));
        assert_eq!(parse_uuid("3f0c2a9e5b7d4c1e9a8f2d6b1e0c7a54"), None);
        assert_eq!(parse_uuid("3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a5g"), None);
        assert_eq!(parse_uuid("3f0c2a9e+5b7d-4c1e-9a8f-2d6b1e0c7a54"), None);
        assert_eq!(parse_uuid(""), None);
        // Multi-byte text of the right length is not a uuid either.
        assert_eq!(parse_uuid(&"é".repeat(18)), None);
    }

    #[test]
    fn listed_sessions_are_refused_others_pass() {
        let set = EndedSessions::new(30);
        assert!(
            set.check_at(&token(A, NOW + 100), || NOW).is_ok(),
            "empty set"
        );
        assert!(set.insert_at(A, NOW + 100, NOW));
        assert_eq!(
            set.check_at(&token(A, NOW + 100), || NOW),
            Err(JwtError::SessionEnded)
        );
        assert_eq!(
            set.check_at(&token(&A.to_uppercase(), NOW + 100), || NOW),
            Err(JwtError::SessionEnded)
        );
        assert!(set.check_at(&token(B, NOW + 100), || NOW).is_ok());
        assert!(
            set.check_at(&claims(json!({"role": "app_user"})), || NOW)
                .is_ok(),
            "no sid"
        );
        assert!(
            set.check_at(&claims(json!({"sid": 42})), || NOW).is_ok(),
            "not a uuid"
        );
        assert!(!set.insert_at("not-a-uuid", NOW + 100, NOW));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn entries_expire_after_exp_plus_leeway() {
        let set = EndedSessions::new(30);
        // Already past exp + leeway: nothing to remember.
        set.insert_at(A, NOW - 31, NOW);
        assert!(set.is_empty());
        set.insert_at(A, NOW - 30, NOW);
        assert_eq!(set.len(), 1);
        // The next insert a minute later prunes it.
        set.insert_at(B, NOW + 1000, NOW + PRUNE_EVERY);
        assert_eq!(set.len(), 1);
        assert!(set.check_at(&token(A, NOW), || NOW).is_ok());
        assert!(set.check_at(&token(B, NOW), || NOW).is_err());
        // Before a prune, an entry past exp + leeway no longer counts either.
        assert!(set.check_at(&token(B, NOW), || NOW + 1030).is_err());
        assert!(set.check_at(&token(B, NOW), || NOW + 1031).is_ok());
        // The latest exp of a session wins: A outlives its earlier exp.
        set.insert_at(A, NOW + 5000, NOW + PRUNE_EVERY);
        set.insert_at(A, NOW + 500, NOW + PRUNE_EVERY);
        set.insert_at(B, NOW + 3000, NOW + 1000);
        assert!(set.check_at(&token(A, NOW + 5000), || NOW).is_err());
    }

    #[test]
    fn replace_swaps_the_whole_set() {
        let set = EndedSessions::new(0);
        set.insert_at(A, NOW + 100, NOW);
        let taken = set.replace_at(
            vec![
                (B.to_string(), NOW + 100),
                ("junk".to_string(), NOW + 100),
                ("00000000-0000-4000-8000-000000000002".to_string(), NOW - 1),
            ],
            NOW,
        );
        assert_eq!(taken, 2);
        assert_eq!(set.len(), 1);
        assert!(set.check_at(&token(A, NOW + 100), || NOW).is_ok());
        assert!(set.check_at(&token(B, NOW + 100), || NOW).is_err());
        set.replace_at(Vec::new(), NOW);
        assert!(set.is_empty());
        assert!(set.check_at(&token(B, NOW + 100), || NOW).is_ok());
    }

    #[test]
    fn a_full_set_fails_closed() {
        let set = EndedSessions::with_capacity(0, 20);
        let sid = |i: u128| {
            let hex = format!("{i:032x}");
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        };
        for i in 0..20 {
            set.insert_at(&sid(i), NOW + 100 + i as i64, NOW);
        }
        assert_eq!((set.len(), set.horizon()), (20, None));
        // One more: the two that expire first go, the horizon covers them.
        set.insert_at(&sid(20), NOW + 1000, NOW);
        assert_eq!(set.len(), 19);
        assert_eq!(set.horizon(), Some(NOW + 101));
        for i in 0..=20 {
            assert!(
                set.check_at(&token(&sid(i), NOW + 100 + i as i64), || NOW)
                    .is_err(),
                "ended session {i} still refused"
            );
        }
        // A live session whose token expires by the horizon is refused too
        // (it signs in again); a later one, or a token without sid, is not.
        let live = "ffffffff-0000-4000-8000-000000000000";
        assert!(set.check_at(&token(live, NOW + 101), || NOW).is_err());
        assert!(
            set.check_at(&claims(json!({"sid": live})), || NOW).is_err(),
            "no exp"
        );
        assert!(set.check_at(&token(live, NOW + 102), || NOW).is_ok());
        assert!(set
            .check_at(&claims(json!({"exp": NOW + 50})), || NOW)
            .is_ok());
        // An entry at or under the horizon is not stored again.
        set.insert_at(&sid(30), NOW + 50, NOW);
        assert_eq!(set.len(), 19);
        // Once the horizon is past, a prune forgets it.
        set.insert_at(&sid(31), NOW + 5000, NOW + 102);
        assert_eq!(set.horizon(), None);
        assert!(set.check_at(&token(live, NOW + 101), || NOW).is_ok());
        assert!(set.len() <= 20);
    }

    #[test]
    fn a_flood_stays_bounded() {
        let set = EndedSessions::with_capacity(30, 1000);
        for i in 0..50_000u128 {
            let hex = format!("{i:032x}");
            let sid = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            set.insert_at(&sid, NOW + 3600 + (i as i64 % 7), NOW);
            assert!(set.len() <= 1000);
        }
        assert!(set.horizon().is_some());
    }
}

/// What one check costs, for bench/results/sessions.md: run with
/// `cargo test --release --lib jwt::revoked::cost -- --ignored --nocapture`.
/// A measurement, not a test: it asserts nothing about time.
#[cfg(test)]
mod cost {
    use super::*;
    use crate::jwt::cache::cost::rss_kb;
    use std::time::Instant;

    /// The `i`-th distinct session id, as a UUID (`…-0000000000001` on).
    fn sid(i: u128) -> String {
        let hex = format!("{:032x}", i + 1);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    #[test]
    #[ignore = "a measurement (bench/results/sessions.md), not a check"]
    fn of_a_check() {
        let now = unix_now();
        for size in [0usize, 1_000, MAX_ENDED_SESSIONS] {
            let set = EndedSessions::new(30);
            let mut fresh = set.loading();
            for i in 0..size as u128 {
                fresh.add(&sid(i), now + 3600);
            }
            set.install(fresh);
            let claims: Claims = serde_json::from_value(serde_json::json!({
                "role": "app_user", "exp": now + 7200,
                "sid": "7e57be4c-0000-4000-8000-000000000001"
            }))
            .expect("claims");
            let window = super::super::verified::Window {
                exp: Some((now + 7200) as f64),
                not_before: None,
            };
            let token = Verified::new(&claims, Ok(Some("app_user")), window);
            let rounds = 2_000_000u32;
            let start = Instant::now();
            let mut refused = 0u32;
            for _ in 0..rounds {
                refused += u32::from(std::hint::black_box(&set).check(&token).is_err());
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(rounds);
            println!("set of {size}: {ns:.1} ns per check (refused {refused})");
        }
    }

    #[test]
    #[ignore = "a measurement (README, Operations), not a check"]
    fn of_a_full_set() {
        let now = unix_now();
        let set = EndedSessions::new(30);
        let before = rss_kb();
        let mut fresh = set.loading();
        for i in 0..MAX_ENDED_SESSIONS as u128 {
            fresh.add(&sid(i), now + 3600);
        }
        set.install(fresh);
        let after = rss_kb();
        println!(
            "{} ended sessions: RSS grew {:.1} MB ({:.0} bytes each)",
            set.len(),
            (after - before) as f64 / 1024.0,
            (after - before) as f64 * 1024.0 / set.len() as f64
        );
    }
}
