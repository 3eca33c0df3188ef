// Failover across hosts: a primary and a synchronous streaming standby, a multi-host db.uri with target_session_attrs=read-write, writes under load through a read-only spell, the primary's stop and the standby's promotion.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{wait_until, Gateway};
use crate::topology::{start_standby, TcpCluster, PROBE_FIXTURE, PROBE_SCHEMAS};

const SECRET: &str = "failover-secret-failover-secret-012345678";

const HBA: &str = "
local all         all                trust
local replication all                trust
host  all         all   127.0.0.1/32 trust
";

const WRITES: &str = "
    create schema probe_data;
    create table probe_data.writes (id bigint primary key);
    grant usage on schema probe_data to web_anon;
    grant insert, select on probe_data.writes to web_anon;
    create function probe.write(id bigint) returns bigint language sql volatile as
      $$ insert into probe_data.writes values (id) returning id $$;
    grant execute on function probe.write(bigint) to web_anon;";

/// Sets the flag when dropped, so a failed assertion stops the writer too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One write per id, answered or not: (id, status).
type Answers = Arc<Mutex<Vec<(i64, u16)>>>;

fn post_write(port: u16, id: i64) -> u16 {
    let res = ureq::post(&format!("http://127.0.0.1:{port}/rpc/write"))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json")
        .send_string(&format!(r#"{{"id": {id}}}"#));
    match res {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// Answers from `from` on that are not 200.
fn failures_since(answers: &Answers, from: usize) -> Vec<u16> {
    answers.lock().expect("lock")[from..]
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != 200)
        .collect()
}

fn count_ok(answers: &Answers) -> usize {
    answers
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, s)| *s == 200)
        .count()
}

#[test]
fn writes_move_to_the_promoted_standby_and_none_answered_200_is_lost() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("failover: {what} at {:?}", t0.elapsed());
    let primary = TcpCluster::start(
        TcpCluster::dir_for(),
        HBA,
        &[("synchronous_commit", "on".to_string())],
    );
    primary.prepare_app_db(&format!("{PROBE_FIXTURE}; {WRITES}"));
    let standby = start_standby(&primary, "standby1", HBA);
    assert!(
        wait_until(Duration::from_secs(30), || primary.query_text(
            "postgres",
            "select count(*) from pg_stat_replication where state = 'streaming'"
        ) == "1"),
        "the standby does not stream"
    );
    // Synchronous from here on: a commit is acknowledged once the standby has it.
    primary.query_text(
        "postgres",
        "alter system set synchronous_standby_names = 'standby1'",
    );
    primary.query_text("postgres", "select pg_reload_conf()");
    assert!(
        wait_until(Duration::from_secs(30), || primary.query_text(
            "postgres",
            "select string_agg(sync_state, ',') from pg_stat_replication"
        ) == "sync"),
        "the standby did not become synchronous"
    );

    phase("synchronous standby streaming");
    let uri = format!(
        "postgres://authenticator@127.0.0.1:{},127.0.0.1:{}/pgrpc?target_session_attrs=read-write&sslmode=disable&connect_timeout=2",
        primary.port, standby.port
    );
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &uri),
            ("PGRPC_JWT_SECRET", SECRET),
            ("PGRPC_DB_POOL", "4"),
            PROBE_SCHEMAS,
        ],
    );

    // A steady write load: one writer, new id per request, every answer kept.
    let answers: Answers = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_writer = StopOnDrop(stop.clone());
    let writer = {
        let (answers, stop, port) = (answers.clone(), stop.clone(), gw.port);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                id += 1;
                let status = post_write(port, id);
                answers.lock().expect("lock").push((id, status));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || count_ok(&answers) >= 20),
        "writes do not succeed: {:?}\n{}",
        failures_since(&answers, 0)
            .iter()
            .take(5)
            .collect::<Vec<_>>(),
        gw.log()
    );

    // The primary turns read-only under the pool's feet (as before a planned
    // switchover): no write is answered 405 25006 from a stale connection;
    // with no writable server they are 503 until it is writable again.
    phase("writes succeed");
    let mark = answers.lock().expect("lock").len();
    primary.query_text(
        "postgres",
        "alter system set default_transaction_read_only = on",
    );
    primary.query_text("postgres", "select pg_reload_conf()");
    assert!(
        wait_until(Duration::from_secs(20), || !failures_since(&answers, mark)
            .is_empty()),
        "writes kept succeeding on a read-only server"
    );
    primary.query_text(
        "postgres",
        "alter system reset default_transaction_read_only",
    );
    primary.query_text("postgres", "select pg_reload_conf()");
    let ok_before = count_ok(&answers);
    assert!(
        wait_until(Duration::from_secs(20), || count_ok(&answers)
            > ok_before + 5),
        "writes did not resume on the writable primary:\n{}",
        gw.log()
    );
    let spell = failures_since(&answers, mark);
    assert!(
        spell.iter().all(|s| *s == 503),
        "while read-only, writes must be 503 (no 405 25006 from a stale connection): {spell:?}"
    );

    phase("read-only spell over");
    // Failover: stop the primary; /ready turns 503 while nothing is writable.
    primary.cluster.stop().expect("stop the primary");
    assert!(
        wait_until(Duration::from_secs(20), || gw.ready() == 503),
        "/ready stayed 200 without a writable server"
    );
    phase("primary stopped, /ready 503");
    let promoted = Instant::now();
    assert_eq!(
        standby.query_text("postgres", "select pg_promote()"),
        "t",
        "promote the standby"
    );
    let ok_at_promotion = count_ok(&answers);
    assert!(
        wait_until(Duration::from_secs(5), || count_ok(&answers)
            > ok_at_promotion),
        "no write served by the new primary within 5 s of its promotion:\n{}",
        gw.log()
    );
    eprintln!(
        "writes resumed {:?} after the promotion",
        promoted.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), || gw.ready() == 200),
        "/ready did not turn 200 after the promotion"
    );
    let ok_after = count_ok(&answers);
    assert!(wait_until(Duration::from_secs(10), || count_ok(&answers)
        >= ok_after + 10));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    phase("load stopped");

    // Every write answered 200 (before, during, after) is on the new primary;
    // the others answered 503 (the gap) or 0 (a request in flight when the
    // primary stopped).
    let answers = answers.lock().expect("lock").clone();
    let ok: BTreeSet<i64> = answers
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(id, _)| *id)
        .collect();
    let stored: BTreeSet<i64> = standby
        .query_text(
            "pgrpc",
            "select string_agg(id::text, ',') from probe_data.writes",
        )
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("id"))
        .collect();
    let lost: Vec<&i64> = ok.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "answered 200 but not on the new primary: {lost:?}"
    );
    let odd: Vec<&(i64, u16)> = answers
        .iter()
        .filter(|(_, s)| ![200, 503, 504, 0].contains(s))
        .collect();
    assert!(odd.is_empty(), "unexpected answers: {odd:?}");
}
