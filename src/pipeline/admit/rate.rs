//! One function's rate limit per client address, with bounded memory.
//!
//! The counting is `governor`'s keyed GCRA limiter (a well-kept crate, a
//! lock-free state per key in a `DashMap`), with `count` calls per window as
//! its burst and one call replenished every `window / count`. What governor
//! leaves to its user is the growth of the key table: every new address adds
//! an entry, kept until someone calls `retain_recent()`. Here:
//!
//! - every [`SWEEP_EVERY`] checks, stale keys (whose bucket is full again, so
//!   dropping them changes no decision) are removed;
//! - the table holds at most [`MAX_KEYS`] addresses; when it is full after a
//!   sweep, every address not seen before is counted in one shared overflow
//!   bucket, which is refused as soon as that bucket is used up. A flood of
//!   fresh addresses (a botnet, spoofable IPv6) then costs bounded memory and
//!   is throttled as a whole, while the addresses already tracked keep their
//!   own buckets. The alternative, refusing fresh addresses outright, would
//!   lock out newcomers entirely; sharing one bucket still lets some through.
//! - IPv6 addresses count per /64, the block one subscriber usually gets, so
//!   one client cannot mint 2^64 keys.
//!
//! Owns no notion of functions, tokens or HTTP; `admit` decides which calls
//! are counted and renders the headers.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::db::schema_cache::limits::RateLimit;

/// Addresses tracked per function at most (~60 bytes each in the table).
pub const MAX_KEYS: usize = 50_000;
/// Checks between two sweeps of stale keys.
pub const SWEEP_EVERY: u64 = 4096;
/// A full table is swept at most this often: a sweep walks every key, and
/// doing it on every call of a flood would be a flood of its own.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What a bucket is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// An IPv4 address, or the /64 of an IPv6 one.
    Addr(IpAddr),
    /// No address known (no peer address: in-process tests).
    Unknown,
    /// Addresses seen while the table was full.
    Overflow,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Key::Addr(a) => a.hash(state),
            Key::Unknown => 1u8.hash(state),
            Key::Overflow => 2u8.hash(state),
        }
    }
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// Calls left in the window after this one.
    pub remaining: u32,
    /// Seconds until the next call is allowed (refused) or until the whole
    /// quota is back (allowed), rounded up.
    pub reset: u64,
}

/// One function's limiter.
pub struct RateLimiter {
    spec: RateLimit,
    limiter: DefaultKeyedRateLimiter<Key, StateInformationMiddleware>,
    checks: AtomicU64,
    created: Instant,
    /// Milliseconds after `created` of the last sweep of a full table.
    last_full_sweep: AtomicU64,
}

impl RateLimiter {
    /// A limiter for `spec` (validated by the schema cache: count ≥ 1).
    pub fn new(spec: RateLimit) -> RateLimiter {
        let count = NonZeroU32::new(spec.count).unwrap_or(NonZeroU32::MIN);
        let window = Duration::from_secs(spec.unit.seconds());
        let quota = Quota::with_period(window / count.get())
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(count);
        RateLimiter {
            spec,
            limiter: DefaultKeyedRateLimiter::dashmap(quota).with_middleware(),
            checks: AtomicU64::new(0),
            created: Instant::now(),
            last_full_sweep: AtomicU64::new(0),
        }
    }

    /// What this limiter counts.
    pub fn spec(&self) -> RateLimit {
        self.spec
    }

    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Count one call from `client`.
    pub fn check(&self, client: Option<IpAddr>) -> Decision {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let mut key = client.map_or(Key::Unknown, |ip| Key::Addr(bucket_of(ip)));
        if self.limiter.len() >= MAX_KEYS {
            let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.last_full_sweep.load(Ordering::Relaxed);
            let interval = u64::try_from(FULL_SWEEP_INTERVAL.as_millis()).unwrap_or(1000);
            if now.saturating_sub(last) >= interval
                && self
                    .last_full_sweep
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.sweep();
            }
            if self.limiter.len() >= MAX_KEYS {
                // Full: the table cannot tell a known key from a new one
                // cheaply, so everyone counts in the overflow bucket until a
                // sweep makes room (see the module header).
                key = Key::Overflow;
            }
        }
        let window = self.spec.unit.seconds();
        let count = u64::from(self.spec.count.max(1));
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.spec.count);
                let used = count - u64::from(remaining);
                Decision {
                    allowed: true,
                    remaining,
                    reset: (used * window).div_ceil(count),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset: ceil_seconds(wait).max(1),
                }
            }
        }
    }

    /// Drop keys whose bucket is full again (indistinguishable from new).
    fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The bucket an address counts in: IPv4 as is, IPv6 by its /64 (an
/// IPv4-mapped IPv6 address is the IPv4 address).
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema_cache::limits::RateUnit;

    fn limiter(count: u32) -> RateLimiter {
        RateLimiter::new(RateLimit {
            count,
            unit: RateUnit::Minute,
            all: false,
        })
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn counts_per_address() {
        let l = limiter(3);
        let a = ip("192.0.2.1");
        let first = l.check(a);
        assert_eq!((first.allowed, first.remaining, first.reset), (true, 2, 20));
        assert!(l.check(a).allowed);
        let third = l.check(a);
        assert_eq!((third.allowed, third.remaining, third.reset), (true, 0, 60));
        let refused = l.check(a);
        assert!(!refused.allowed);
        assert!((1..=20).contains(&refused.reset), "{refused:?}");
        // Another address has its own bucket.
        assert!(l.check(ip("192.0.2.2")).allowed);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = limiter(1);
        assert!(l.check(ip("2001:db8:1:2::1")).allowed);
        assert!(!l.check(ip("2001:db8:1:2:ffff::9")).allowed, "same /64");
        assert!(l.check(ip("2001:db8:1:3::1")).allowed, "another /64");
        // IPv4-mapped is the IPv4 address.
        assert!(l.check(ip("198.51.100.7")).allowed);
        assert!(!l.check(ip("::ffff:198.51.100.7")).allowed);
    }

    #[test]
    fn the_key_table_is_bounded() {
        let l = limiter(1000);
        for i in 0..(MAX_KEYS as u32 + 5_000) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.check(Some(addr));
        }
        // Fresh buckets that were used once are not stale within a minute,
        // so the table stopped growing at the cap (plus the overflow key).
        assert!(l.len() <= MAX_KEYS + 1, "{}", l.len());
    }
}
