//! A function's admission limits, as a DBA declares them on the function
//! itself: `ALTER FUNCTION api.identify(text, text) SET pgrpc.max_concurrency
//! = '2'` (PostgreSQL keeps them in `pg_proc.proconfig`, where PostgREST also
//! reads a function's own `statement_timeout`).
//!
//! This module only turns the `pgrpc.*` entries into a validated [`Limits`];
//! enforcing them (permits, queues, rate buckets) is `pipeline::admit`'s job.
//! A value that does not parse is logged at load and ignored, so a typo never
//! takes a function off the web; it does not silently become "unlimited"
//! without a warning either.

use std::time::Duration;

use serde::Serialize;

/// `pgrpc.max_wait` when not declared: long enough to ride out a burst of
/// logins, short enough that a client is told "busy" before it gives up.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);
/// `pgrpc.max_queue` when not declared, as a multiple of `max_concurrency`.
pub const DEFAULT_QUEUE_FACTOR: u32 = 8;
/// Largest `pgrpc.rate_limit` count (governor needs a non-zero replenish
/// period: an hour divided by this is still far above a nanosecond).
pub const MAX_RATE_COUNT: u32 = 1_000_000;
/// Largest accepted `pgrpc.max_wait`, seconds.
pub const MAX_WAIT_SECONDS: f64 = 3600.0;

/// The unit of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
}

impl RateUnit {
    /// The window in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
        }
    }
}

/// `pgrpc.rate_limit = '10/minute'` (+ `pgrpc.rate_limit_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Calls allowed per window and client address.
    pub count: u32,
    /// The window.
    pub unit: RateUnit,
    /// Whether calls with a token count too (`pgrpc.rate_limit_scope = 'all'`);
    /// by default only anonymous calls do.
    pub all: bool,
}

/// What a function declared; `None` fields were not declared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// `pgrpc.max_concurrency`: calls running at once in this gateway.
    pub max_concurrency: Option<u32>,
    /// `pgrpc.max_queue`: calls waiting for a slot at most; past it, 503 at once.
    pub max_queue: u32,
    /// `pgrpc.max_wait`: how long a call waits for a slot before 503.
    #[serde(serialize_with = "seconds")]
    pub max_wait: Duration,
    /// `pgrpc.rate_limit`.
    pub rate: Option<RateLimit>,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Limits {
    /// Parse the `pgrpc.*` entries of `proconfig` (`name=value`). `None` when
    /// no limit is declared; `warnings` gets one line per unusable entry.
    pub fn from_config<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        warnings: &mut Vec<String>,
    ) -> Option<Limits> {
        let mut concurrency = None;
        let mut queue = None;
        let mut wait = None;
        let mut rate = None;
        let mut all = false;
        for entry in entries {
            let Some((name, value)) = entry.split_once('=') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            let ok = match name.as_str() {
                "pgrpc.max_concurrency" => positive(value).map(|n| concurrency = Some(n)),
                "pgrpc.max_queue" => value.parse::<u32>().ok().map(|n| queue = Some(n)),
                "pgrpc.max_wait" => wait_seconds(value).map(|d| wait = Some(d)),
                "pgrpc.rate_limit" => parse_rate(value).map(|r| rate = Some(r)),
                "pgrpc.rate_limit_scope" => match value.to_ascii_lowercase().as_str() {
                    "all" => Some(true),
                    "anonymous" => Some(false),
                    _ => None,
                }
                .map(|v| all = v),
                // Other pgrpc.* names are not limits (and not ours to judge).
                _ => Some(()),
            };
            if ok.is_none() {
                warnings.push(format!("{name} = {value:?} is not valid; ignored"));
            }
        }
        if concurrency.is_none() && rate.is_none() {
            return None;
        }
        Some(Limits {
            max_concurrency: concurrency,
            max_queue: queue.unwrap_or_else(|| {
                concurrency.map_or(0, |n: u32| n.saturating_mul(DEFAULT_QUEUE_FACTOR))
            }),
            max_wait: wait.unwrap_or(DEFAULT_MAX_WAIT),
            rate: rate.map(|(count, unit)| RateLimit { count, unit, all }),
        })
    }
}

fn positive(value: &str) -> Option<u32> {
    value.parse::<u32>().ok().filter(|n| *n > 0)
}

/// Seconds, fractions allowed (`'0.5'`), 0 ..= [`MAX_WAIT_SECONDS`].
fn wait_seconds(value: &str) -> Option<Duration> {
    let s: f64 = value.parse().ok()?;
    (s.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(&s)).then(|| Duration::from_secs_f64(s))
}

/// `N/second`, `N/minute`, `N/hour` (spaces allowed around `/`).
fn parse_rate(value: &str) -> Option<(u32, RateUnit)> {
    let (count, unit) = value.split_once('/')?;
    let count = positive(count.trim()).filter(|n| *n <= MAX_RATE_COUNT)?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "second" => RateUnit::Second,
        "minute" => RateUnit::Minute,
        "hour" => RateUnit::Hour,
        _ => return None,
    };
    Some((count, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> (Option<Limits>, Vec<String>) {
        let mut warnings = Vec::new();
        let limits = Limits::from_config(entries.iter().copied(), &mut warnings);
        (limits, warnings)
    }

    #[test]
    fn concurrency_with_defaults() {
        let (limits, warnings) = parse(&["pgrpc.max_concurrency=2"]);
        assert!(warnings.is_empty());
        assert_eq!(
            limits,
            Some(Limits {
                max_concurrency: Some(2),
                max_queue: 16,
                max_wait: DEFAULT_MAX_WAIT,
                rate: None,
            })
        );
    }

    #[test]
    fn everything_declared() {
        let (limits, warnings) = parse(&[
            "pgrpc.max_concurrency=3",
            "pgrpc.max_queue=0",
            "pgrpc.max_wait=0.5",
            "pgrpc.rate_limit=10 / Minute",
            "pgrpc.rate_limit_scope=all",
            "pgrpc.something_else=x",
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let limits = limits.expect("limits");
        assert_eq!(limits.max_concurrency, Some(3));
        assert_eq!(limits.max_queue, 0);
        assert_eq!(limits.max_wait, Duration::from_millis(500));
        assert_eq!(
            limits.rate,
            Some(RateLimit {
                count: 10,
                unit: RateUnit::Minute,
                all: true
            })
        );
    }

    #[test]
    fn rate_alone_is_a_limit_and_anonymous_by_default() {
        let (limits, _) = parse(&["pgrpc.rate_limit=5/hour"]);
        let limits = limits.expect("limits");
        assert_eq!(limits.max_concurrency, None);
        assert_eq!(
            limits.rate,
            Some(RateLimit {
                count: 5,
                unit: RateUnit::Hour,
                all: false
            })
        );
    }

    #[test]
    fn bad_values_warn_and_are_ignored() {
        for bad in [
            "pgrpc.max_concurrency=0",
            "pgrpc.max_concurrency=-1",
            "pgrpc.max_concurrency=two",
            "pgrpc.rate_limit=10/day",
            "pgrpc.rate_limit=0/minute",
            "pgrpc.rate_limit=10",
            "pgrpc.rate_limit=2000000/second",
        ] {
            let (limits, warnings) = parse(&[bad]);
            assert_eq!(limits, None, "{bad}");
            assert_eq!(warnings.len(), 1, "{bad}");
        }
        let (limits, warnings) = parse(&["pgrpc.max_concurrency=1", "pgrpc.max_wait=NaN"]);
        assert_eq!(limits.expect("limits").max_wait, DEFAULT_MAX_WAIT);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn nothing_declared_is_none() {
        assert_eq!(parse(&[]).0, None);
        assert_eq!(parse(&["pgrpc.max_queue=3"]).0, None);
    }
}
