//! The verified-token cache: a token seen again skips signature verification
//! and claim parsing, bounded both in entries (`jwt.cache_max_entries`) and in
//! bytes (`jwt.cache_max_bytes`).
//!
//! Every entry is costed at what it really holds on the heap: the token text
//! (the key), the claims text of its [`Verified`] value, the hash-table slot,
//! the two reference-counted allocations and the allocator's header of each
//! allocation ([`entry_cost`]): 916 bytes for a token of the seed, where the
//! process grows by ~1,020 (`cost::of_a_hit_and_an_entry`; the rest is heap
//! fragmentation, which no accounting sees). The accounted total never
//! exceeds the byte bound, so the cache's memory does not depend on how many
//! distinct tokens clients present (a refresh or a login makes a new one;
//! bench/soak made ~20 per second, and 10,000 entries of the parsed-map kind
//! took 24 MB).
//!
//! Eviction, when an insert would cross either bound: first every expired
//! entry goes; then, if that freed too little, the entries not used since the
//! last eviction (a one-bit CLOCK: a hit sets the entry's bit, an eviction
//! pass clears the bits of those it keeps), and only if all were used, any.
//! A pass frees down to [`LOW_WATER`] of both bounds, so its O(n) walk is paid
//! once per tenth of the cache replaced, not per insert.
//!
//! One `Mutex<HashMap>`: a hit is a hash of the token, one lookup and one bit
//! set under the lock (measured in `cost::of_a_hit`), short enough that the
//! gateway's few workers do not queue on it. Only the gateway's keys make
//! cacheable tokens, so no client can fill it with tokens of its own choosing
//! beyond what the key holders sign.
//!
//! This module does not verify tokens nor decide what is valid (the parent
//! does; [`Verified`] holds the window it checks on each hit).

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::{Arc, Mutex, PoisonError};

use super::verified::Verified;

/// An eviction pass frees down to this fraction of both bounds.
const LOW_WATER: f64 = 0.9;

/// What glibc malloc adds to each allocation: an 8-byte header, and sizes
/// rounded up to 16 (8 bytes on average).
const ALLOCATION_OVERHEAD: usize = 16;

/// The verified tokens, by token text.
pub(crate) struct TokenCache {
    max_entries: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Arc<str>, Slot>,
    /// The sum of the entries' [`entry_cost`].
    bytes: usize,
}

struct Slot {
    verified: Arc<Verified>,
    cost: usize,
    /// Hit since the last eviction pass.
    used: bool,
}

/// Bytes one entry holds: token, claims text, slot (counted twice: the
/// table keeps up to half its buckets free after growing), the `Arc`s'
/// counters and the `Verified` itself, and an allocator header per allocation.
pub(crate) fn entry_cost(token: &str, verified: &Verified) -> usize {
    let slot = size_of::<(Arc<str>, Slot)>() + 1; // + the table's control byte
    let arcs = 2 * 2 * size_of::<usize>(); // strong and weak counts, twice
    let allocations = 2 + verified.allocations();
    token.len()
        + verified.heap_bytes()
        + 2 * slot
        + arcs
        + size_of::<Verified>()
        + allocations * ALLOCATION_OVERHEAD
}

impl TokenCache {
    /// A cache within both bounds; `None` when either is 0 (no cache).
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Option<TokenCache> {
        (max_entries > 0 && max_bytes > 0).then(|| TokenCache {
            max_entries,
            max_bytes,
            inner: Mutex::new(Inner {
                map: HashMap::with_capacity(max_entries.min(1024)),
                bytes: 0,
            }),
        })
    }

    /// The cached token if its window contains `now`. An expired entry is
    /// dropped and reported as a miss, so that full verification gives the
    /// error; one not yet valid stays (it will be).
    pub(crate) fn get(&self, token: &str, now: f64, leeway: f64) -> Option<Arc<Verified>> {
        let mut inner = self.lock();
        let slot = inner.map.get_mut(token)?;
        if slot.verified.window.contains(now, leeway) {
            slot.used = true;
            return Some(Arc::clone(&slot.verified));
        }
        if slot.verified.window.is_expired(now, leeway) {
            if let Some(slot) = inner.map.remove(token) {
                inner.bytes -= slot.cost;
            }
        }
        None
    }

    /// Keep a freshly verified token, making room first (module docs). A
    /// token that alone costs more than the byte bound is not kept.
    pub(crate) fn insert(&self, token: &str, verified: Arc<Verified>, now: f64, leeway: f64) {
        let cost = entry_cost(token, &verified);
        if cost > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(token) {
            inner.bytes -= old.cost;
        }
        if inner.bytes + cost > self.max_bytes || inner.map.len() + 1 > self.max_entries {
            self.evict(&mut inner, cost, now, leeway);
        }
        inner.bytes += cost;
        let slot = Slot {
            verified,
            cost,
            used: false,
        };
        inner.map.insert(Arc::from(token), slot);
    }

    /// (entries, accounted bytes) now, for `/metrics`.
    pub(crate) fn size(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }

    /// Free down to [`LOW_WATER`] of both bounds, and at least room for
    /// `cost`: expired entries, then unused ones, then any (module docs).
    fn evict(&self, inner: &mut Inner, cost: usize, now: f64, leeway: f64) {
        let byte_goal = ((self.max_bytes as f64 * LOW_WATER) as usize).min(self.max_bytes - cost);
        let entry_goal = ((self.max_entries as f64 * LOW_WATER) as usize).min(self.max_entries - 1);
        let Inner { map, bytes } = inner;
        let over = |bytes: usize, len: usize| bytes > byte_goal || len > entry_goal;
        let mut len = map.len();
        map.retain(|_, slot| {
            let drop = slot.verified.window.is_expired(now, leeway);
            if drop {
                *bytes -= slot.cost;
                len -= 1;
            }
            !drop
        });
        for spare_used in [false, true] {
            if !over(*bytes, len) {
                break;
            }
            map.retain(|_, slot| {
                if !over(*bytes, len) {
                    return true;
                }
                if slot.used && !spare_used {
                    slot.used = false;
                    return true;
                }
                *bytes -= slot.cost;
                len -= 1;
                false
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn contains(&self, token: &str) -> bool {
        self.lock().map.contains_key(token)
    }
}

#[cfg(test)]
mod tests {
    use super::super::verified::Window;
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_700_000_000.0;

    fn verified(exp: f64) -> Arc<Verified> {
        let claims = match json!({"role": "app_user", "exp": exp, "sub": "someone"}) {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let window = Window {
            exp: Some(exp),
            not_before: None,
        };
        Arc::new(Verified::new(&claims, Ok(Some("app_user")), window))
    }

    fn token(i: usize) -> String {
        format!("header.payload-{i:04}.signature-{}", "x".repeat(300))
    }

    fn one_cost() -> usize {
        entry_cost(&token(0), &verified(NOW + 100.0))
    }

    #[test]
    fn the_byte_bound_holds_whatever_comes() {
        let max_bytes = 20 * one_cost() + one_cost() / 2;
        let cache = TokenCache::new(10_000, max_bytes).expect("a cache");
        for i in 0..1_000 {
            cache.insert(&token(i), verified(NOW + 100.0), NOW, 0.0);
            let (len, bytes) = cache.size();
            assert!(bytes <= max_bytes, "{bytes} > {max_bytes} after {i}");
            assert!(len <= 20);
            // The accounting is the sum of the entries' costs.
            assert_eq!(bytes, len * one_cost());
        }
        // An eviction pass frees a tenth, not the whole cache.
        assert!(cache.size().0 >= 17, "{:?}", cache.size());
    }

    #[test]
    fn the_entry_bound_holds_too() {
        let cache = TokenCache::new(5, usize::MAX / 2).expect("a cache");
        for i in 0..100 {
            cache.insert(&token(i), verified(NOW + 100.0), NOW, 0.0);
            assert!(cache.size().0 <= 5);
        }
        assert!(TokenCache::new(0, 1 << 20).is_none());
        assert!(TokenCache::new(10, 0).is_none());
    }

    #[test]
    fn expired_entries_go_before_any_live_one() {
        let cost = one_cost();
        let cache = TokenCache::new(100, 10 * cost).expect("a cache");
        // Five that expire at NOW + 10, five live ones, none used.
        for i in 0..10 {
            let exp = if i % 2 == 0 { NOW + 10.0 } else { NOW + 1000.0 };
            cache.insert(&token(i), verified(exp), NOW, 0.0);
        }
        assert_eq!(cache.size().0, 10);
        // Later, one more: every expired entry goes, no live one.
        cache.insert(&token(10), verified(NOW + 1000.0), NOW + 20.0, 0.0);
        for i in 0..10 {
            assert_eq!(cache.contains(&token(i)), i % 2 == 1, "token {i}");
        }
        assert_eq!(cache.size(), (6, 6 * cost));
    }

    #[test]
    fn used_entries_outlive_unused_ones() {
        let cost = one_cost();
        let cache = TokenCache::new(100, 10 * cost).expect("a cache");
        for i in 0..10 {
            cache.insert(&token(i), verified(NOW + 1000.0), NOW, 0.0);
        }
        // A hot set: tokens 0-4 used again.
        for i in 0..5 {
            assert!(cache.get(&token(i), NOW, 0.0).is_some());
        }
        // A stream of one-off tokens: each eviction pass takes unused ones.
        for i in 10..40 {
            cache.insert(&token(i), verified(NOW + 1000.0), NOW, 0.0);
            for hot in 0..5 {
                assert!(
                    cache.get(&token(hot), NOW, 0.0).is_some(),
                    "hot token {hot} evicted by one-off {i}"
                );
            }
        }
        // When everything is used, something still goes: the bound wins.
        for i in 40..60 {
            cache.insert(&token(i), verified(NOW + 1000.0), NOW, 0.0);
            for j in 0..60 {
                cache.get(&token(j), NOW, 0.0);
            }
            assert!(cache.size().1 <= 10 * cost);
        }
    }

    #[test]
    fn an_expired_hit_is_a_miss_and_frees_its_bytes() {
        let cache = TokenCache::new(10, 1 << 20).expect("a cache");
        cache.insert(&token(1), verified(NOW + 10.0), NOW, 5.0);
        assert!(cache.get(&token(1), NOW + 15.0, 5.0).is_some(), "leeway");
        assert!(cache.get(&token(1), NOW + 16.0, 5.0).is_none());
        assert_eq!(cache.size(), (0, 0));
        // The same token again replaces, not doubles, its entry.
        cache.insert(&token(2), verified(NOW + 10.0), NOW, 0.0);
        cache.insert(&token(2), verified(NOW + 10.0), NOW, 0.0);
        assert_eq!(cache.size(), (1, one_cost()));
        // A token bigger than the whole bound is not kept.
        let small = TokenCache::new(10, one_cost() - 1).expect("a cache");
        small.insert(&token(3), verified(NOW + 10.0), NOW, 0.0);
        assert_eq!(small.size(), (0, 0));
    }
}

/// What a hit and an entry cost, for README (Operations, memory): run with
/// `cargo test --release --lib jwt::cache::cost -- --ignored --nocapture
/// --test-threads=1` (alone: other tests' allocations would blur the RSS).
/// Measurements, not tests: they assert nothing about time or memory.
#[cfg(test)]
pub(crate) mod cost {
    use std::time::Instant;

    use crate::jwt::{Jwt, JwtSettings};

    fn seed_like_token(jwt: &Jwt, i: usize, now: u64) -> String {
        // The seed's claims (auth.jwt_claims): role, sub, username, iat, exp,
        // orig_iat, jti, sid, gen.
        let claims = serde_json::json!({
            "role": "app_user", "sub": format!("{}", 1000 + i), "username": format!("user{i:05}"),
            "iat": now, "exp": now + 432_000, "orig_iat": now,
            "jti": format!("7e57be4c-0000-4000-8000-{i:012x}"),
            "sid": format!("5e55e55e-0000-4000-8000-{i:012x}"), "gen": 1
        });
        match claims {
            serde_json::Value::Object(map) => jwt.sign_at(map, now).expect("signs"),
            _ => unreachable!(),
        }
    }

    /// The process's resident set (`VmRSS`), in kB; 0 when unreadable.
    pub(crate) fn rss_kb() -> usize {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    #[test]
    #[ignore = "a measurement (README, Operations), not a check"]
    fn of_a_hit_and_an_entry() {
        let now = 1_800_000_000;
        let n = 20_000;
        let jwt = Jwt::new(JwtSettings {
            cache_max_entries: n,
            cache_max_bytes: usize::MAX / 2,
            ..JwtSettings::with_secret(b"reallyreallyreallyreallyverysafe")
        })
        .expect("jwt");
        let tokens: Vec<String> = (0..n).map(|i| seed_like_token(&jwt, i, now)).collect();
        let before = rss_kb();
        for t in &tokens {
            jwt.verify_at(t, now).expect("valid");
        }
        let after = rss_kb();
        let (entries, bytes) = jwt.cache_size().expect("cached");
        println!(
            "token {} bytes; {entries} entries: accounted {:.0} bytes each, RSS grew {:.0} bytes each",
            tokens[0].len(),
            bytes as f64 / entries as f64,
            (after - before) as f64 * 1024.0 / entries as f64
        );
        let rounds = 1_000_000;
        let start = Instant::now();
        for i in 0..rounds {
            std::hint::black_box(jwt.verify_at(&tokens[i % 1000], now).expect("hit"));
        }
        let hit = start.elapsed().as_nanos() as f64 / rounds as f64;
        let uncached = Jwt::new(JwtSettings {
            cache_max_entries: 0,
            ..JwtSettings::with_secret(b"reallyreallyreallyreallyverysafe")
        })
        .expect("jwt");
        let rounds = 100_000;
        let start = Instant::now();
        for i in 0..rounds {
            std::hint::black_box(uncached.verify_at(&tokens[i % 1000], now).expect("valid"));
        }
        let full = start.elapsed().as_nanos() as f64 / rounds as f64;
        println!("HS256: {hit:.0} ns per cache hit, {full:.0} ns per full verification");
    }
}
