//! Read replicas: their pools, their health, and which one serves a read.
//!
//! Owns the replica set built from `db.replica_uris`: per replica a pool per
//! HTTP worker (as [`super::Pools`] does for the primary, so a connection's
//! I/O stays on the thread that serves the request), a background health
//! check (`db.replica_check_interval`) that keeps it in or out of the
//! rotation, the replay position that check saw, and a count of the requests
//! it serves right now. [`WorkerReplicas::choose`] picks the healthy replica
//! with the fewest outstanding requests (optionally one known to have replayed
//! a client's [`Lsn`]). Does not decide *whether* a call may go to a replica
//! (the pipeline's `route` stage does, from the plan), and runs no request.
//!
//! Lag is measured the way PostgreSQL's docs suggest for a standby
//! (High Availability, 27.2.5 "Streaming Replication" monitoring): when the
//! replica has received WAL it has not replayed yet
//! (`pg_last_wal_receive_lsn() <> pg_last_wal_replay_lsn()`), the lag is
//! `now() - pg_last_xact_replay_timestamp()`, the age of the last transaction
//! it applied; when it has replayed all it received, the lag is 0 — an idle
//! primary writes nothing, and the age of the last replayed transaction would
//! then grow without the replica being behind at all.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::task::JoinHandle;

use super::Target;
use crate::ops::metrics::Metrics;

/// The health check's one statement: in recovery, lag in seconds (see the
/// module header), replay position as text.
const CHECK_SQL: &str = "select pg_is_in_recovery(), \
     case when pg_last_wal_receive_lsn() is distinct from pg_last_wal_replay_lsn() \
          then coalesce(extract(epoch from now() - pg_last_xact_replay_timestamp()), 0)::float8 \
          else 0::float8 end, \
     coalesce(pg_last_wal_replay_lsn(), '0/0')::text";

/// A WAL position (`pg_lsn`), as PostgreSQL prints it: two hex numbers,
/// `high/low`, each at most 8 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = ();

    fn from_str(s: &str) -> Result<Lsn, ()> {
        let (hi, lo) = s.trim().split_once('/').ok_or(())?;
        let part = |p: &str| {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            u64::from_str_radix(p, 16).map_err(|_| ())
        };
        Ok(Lsn((part(hi)? << 32) | part(lo)?))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// One replica: where it is, its pools, and what its health check saw.
pub struct Replica {
    /// `host:port` (several joined by `,`): safe for logs and metrics
    /// labels, never a user name or password.
    name: Arc<str>,
    target: Target,
    /// One pool per worker.
    pools: Vec<Pool>,
    up: AtomicBool,
    /// Replay position the last good check saw.
    replay: AtomicU64,
    /// Requests served now (the choice's load measure).
    outstanding: AtomicUsize,
}

impl Replica {
    /// The replica's safe name (`host:port`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it is in the rotation.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The replay position its last good health check saw.
    pub fn replayed(&self) -> Lsn {
        Lsn(self.replay.load(Ordering::Acquire))
    }

    /// Take it out of the rotation until its next good health check (a
    /// request saw its connection fail), dropping its idle connections.
    pub fn mark_down(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(replica = %self.name, "replica failed a request; out of the rotation until its next good check");
        }
        for pool in &self.pools {
            pool.retain(|_, _| false);
        }
    }
}

/// The safe name of a URI's hosts: `host:port`, comma-joined.
pub fn node_name(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    pg.get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                tokio_postgres::config::Host::Tcp(host) => format!("{host}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every configured replica, with their pools and health.
pub struct ReplicaSet {
    replicas: Vec<Arc<Replica>>,
    next_worker: AtomicUsize,
    /// Rotates the starting point of the choice, so ties spread.
    next_pick: AtomicUsize,
    checks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl ReplicaSet {
    /// Pools of `per_replica` connections to each target, divided over
    /// `workers` pools like the primary's. Every replica starts out of the
    /// rotation until its first good check.
    pub fn new(
        targets: Vec<Target>,
        per_replica: usize,
        workers: usize,
        wait: Duration,
    ) -> ReplicaSet {
        let shards = workers.clamp(1, per_replica.max(1));
        let replicas = targets
            .into_iter()
            .map(|target| {
                let pools = (0..shards)
                    .map(|i| {
                        let size = per_replica / shards + usize::from(i < per_replica % shards);
                        super::pool(&target, size.max(1), wait)
                    })
                    .collect();
                Arc::new(Replica {
                    name: node_name(&target.pg).into(),
                    target,
                    pools,
                    up: AtomicBool::new(false),
                    replay: AtomicU64::new(0),
                    outstanding: AtomicUsize::new(0),
                })
            })
            .collect();
        ReplicaSet {
            replicas,
            next_worker: AtomicUsize::new(0),
            next_pick: AtomicUsize::new(0),
            checks: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The replicas, in configuration order.
    pub fn replicas(&self) -> &[Arc<Replica>] {
        &self.replicas
    }

    /// The view of the worker that calls this (workers take turns).
    pub fn assign(self: &Arc<Self>) -> WorkerReplicas {
        WorkerReplicas {
            set: self.clone(),
            shard: self.next_worker.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Start one health-check task per replica (on the current runtime).
    pub fn spawn_checks(&self, interval: Duration, max_lag: Duration, metrics: Arc<Metrics>) {
        let handles = self
            .replicas
            .iter()
            .map(|r| tokio::spawn(check_loop(r.clone(), interval, max_lag, metrics.clone())))
            .collect();
        if let Ok(mut checks) = self.checks.lock() {
            *checks = handles;
        }
    }

    /// Stop the checks and close every pool.
    pub fn close(&self) {
        if let Ok(mut checks) = self.checks.lock() {
            for handle in checks.drain(..) {
                handle.abort();
            }
        }
        for r in &self.replicas {
            for pool in &r.pools {
                pool.close();
            }
        }
    }
}

/// One worker's view of the replica set: the same replicas, that worker's
/// pools.
#[derive(Clone)]
pub struct WorkerReplicas {
    set: Arc<ReplicaSet>,
    shard: usize,
}

/// A replica chosen for one request; counts as outstanding until dropped.
pub struct Choice {
    replica: Arc<Replica>,
    /// The worker's pool to that replica.
    pub pool: Pool,
    /// The health check already saw it replay the requested position (or
    /// none was asked for): no need to check on the connection.
    pub fresh: bool,
}

impl Choice {
    /// The replica chosen.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }
}

impl Drop for Choice {
    fn drop(&mut self) {
        self.replica.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

impl WorkerReplicas {
    /// The healthy replica with the fewest outstanding requests, other than
    /// `exclude`; with `min_lsn`, one the health check saw replay it is
    /// preferred (`fresh`), else any healthy one (the caller checks on the
    /// connection). None: no replica is in the rotation.
    pub fn choose(&self, min_lsn: Option<Lsn>, exclude: Option<&Replica>) -> Option<Choice> {
        let all = &self.set.replicas;
        let start = self.set.next_pick.fetch_add(1, Ordering::Relaxed);
        let candidates = || {
            (0..all.len())
                .map(move |i| &all[(start + i) % all.len()])
                .filter(|r| r.is_up() && !exclude.is_some_and(|x| std::ptr::eq(x, r.as_ref())))
        };
        let reached = |r: &Replica| min_lsn.is_none_or(|l| r.replay.load(Ordering::Acquire) >= l.0);
        let least = |it: &mut dyn Iterator<Item = &Arc<Replica>>| {
            it.min_by_key(|r| r.outstanding.load(Ordering::Acquire))
                .cloned()
        };
        let (replica, fresh) = match least(&mut candidates().filter(|r| reached(r))) {
            Some(r) => (r, true),
            None => (least(&mut candidates())?, false),
        };
        replica.outstanding.fetch_add(1, Ordering::AcqRel);
        let pool = replica.pools[self.shard % replica.pools.len()].clone();
        Some(Choice {
            replica,
            pool,
            fresh,
        })
    }

    /// Whether any replica is configured.
    pub fn is_empty(&self) -> bool {
        self.set.replicas.is_empty()
    }
}

/// What one health check found.
struct Health {
    in_recovery: bool,
    lag: f64,
    replay: Option<Lsn>,
}

/// Check `replica` every `interval` until aborted.
async fn check_loop(
    replica: Arc<Replica>,
    interval: Duration,
    max_lag: Duration,
    metrics: Arc<Metrics>,
) {
    let mut client: Option<tokio_postgres::Client> = None;
    // A check that takes longer than this counts as failed.
    let limit = interval.max(Duration::from_secs(1));
    loop {
        let health = tokio::time::timeout(limit, check(&mut client, &replica.target))
            .await
            .unwrap_or_else(|_| Err("the health check timed out".into()));
        let (up, lag) = match health {
            Ok(h) => {
                // Stored, not maxed: a replica rebuilt from a new base backup
                // may be behind what an earlier life of it had replayed.
                if let Some(lsn) = h.replay {
                    replica.replay.store(lsn.0, Ordering::Release);
                }
                let up = h.in_recovery && h.lag <= max_lag.as_secs_f64();
                if !up {
                    let why = if h.in_recovery {
                        "lags"
                    } else {
                        "is not in recovery (promoted?)"
                    };
                    if replica.is_up() {
                        tracing::warn!(replica = %replica.name, lag_seconds = h.lag, "replica {why}; out of the rotation");
                    }
                }
                (up, h.lag)
            }
            Err(e) => {
                client = None;
                if replica.is_up() {
                    tracing::warn!(replica = %replica.name, error = %e, "replica unreachable; out of the rotation");
                }
                (false, f64::NAN)
            }
        };
        let was = replica.up.swap(up, Ordering::AcqRel);
        if up && !was {
            tracing::info!(replica = %replica.name, lag_seconds = lag, "replica in the rotation");
        }
        metrics.replica(&replica.name, up, lag);
        tokio::time::sleep(interval).await;
    }
}

async fn check(
    client: &mut Option<tokio_postgres::Client>,
    target: &Target,
) -> Result<Health, String> {
    if client
        .as_ref()
        .is_none_or(tokio_postgres::Client::is_closed)
    {
        *client = Some(
            super::connect(target)
                .await
                .map_err(|e| super::tls::explain(&e))?,
        );
    }
    let c = client.as_ref().ok_or("no connection")?;
    let row = c
        .query_one(CHECK_SQL, &[])
        .await
        .map_err(|e| e.to_string())?;
    let replay: String = row.try_get(2).map_err(|e| e.to_string())?;
    Ok(Health {
        in_recovery: row.try_get(0).map_err(|e| e.to_string())?,
        lag: row
            .try_get::<_, f64>(1)
            .map_err(|e| e.to_string())?
            .max(0.0),
        replay: replay.parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_parse_as_postgresql_prints_them() {
        assert_eq!("0/0".parse(), Ok(Lsn(0)));
        assert_eq!("16/B374D848".parse(), Ok(Lsn(0x16_B374_D848)));
        assert_eq!(
            "16/b374d848".parse::<Lsn>().map(|l| l.to_string()),
            Ok("16/B374D848".into())
        );
        assert!("1/2".parse::<Lsn>() < "1/10".parse::<Lsn>());
        assert!("2/0".parse::<Lsn>() > "1/FFFFFFFF".parse::<Lsn>());
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "x/1",
            "1/2/3",
            "123456789/0",
            "-1/0",
            "+1/0",
            "1 /0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} accepted");
        }
    }

    fn set(n: usize) -> Arc<ReplicaSet> {
        let targets = (0..n)
            .map(|i| {
                let mut pg = tokio_postgres::Config::new();
                pg.host("127.0.0.1").port(6000 + i as u16);
                Target::from(pg)
            })
            .collect();
        Arc::new(ReplicaSet::new(targets, 4, 2, Duration::from_secs(1)))
    }

    #[test]
    fn the_least_busy_healthy_replica_is_chosen() {
        let set = set(3);
        let w = set.assign();
        assert!(w.choose(None, None).is_none(), "none is up before a check");
        for r in set.replicas() {
            r.up.store(true, Ordering::Release);
        }
        set.replicas()[1].up.store(false, Ordering::Release);
        let a = w.choose(None, None).expect("a replica");
        let b = w.choose(None, None).expect("a replica");
        assert_ne!(
            a.replica().name(),
            b.replica().name(),
            "the busy one is not chosen again"
        );
        assert!([a.replica().name(), b.replica().name()]
            .iter()
            .all(|n| *n != "127.0.0.1:6001"));
        drop(a);
        let c = w.choose(None, Some(b.replica())).expect("another replica");
        assert_ne!(c.replica().name(), b.replica().name());
        assert_eq!(
            set.replicas()[0].outstanding.load(Ordering::Acquire)
                + set.replicas()[2].outstanding.load(Ordering::Acquire),
            2
        );
    }

    #[test]
    fn a_replica_seen_at_the_lsn_is_preferred() {
        let set = set(2);
        let w = set.assign();
        for r in set.replicas() {
            r.up.store(true, Ordering::Release);
        }
        set.replicas()[0].replay.store(100, Ordering::Release);
        set.replicas()[1].replay.store(50, Ordering::Release);
        for _ in 0..4 {
            let c = w.choose(Some(Lsn(80)), None).expect("a replica");
            assert!(c.fresh);
            assert_eq!(c.replica().name(), "127.0.0.1:6000");
        }
        let c = w.choose(Some(Lsn(200)), None).expect("a replica to check");
        assert!(
            !c.fresh,
            "none is known to have it: check on the connection"
        );
    }

    #[test]
    fn names_hold_hosts_and_ports_only() {
        let uri = crate::config::DbUri::parse("postgres://u:secret@db1:5433,db2/app").expect("uri");
        assert_eq!(node_name(&uri.pg), "db1:5433,db2:5432");
    }
}
