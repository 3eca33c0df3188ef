// Read replicas: a primary and two streaming replicas (one applying WAL 3 s late); where calls run, stale reads without Pgrpc-Lsn and none with it, a lagging replica skipped, a replica stopped under read load without errors and rejoining.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::wait_until;
use crate::process::Gateway;
use crate::topology::{
    start_standby, start_standby_with, TcpCluster, PROBE_FIXTURE, PROBE_SCHEMAS,
};

const SECRET: &str = "replicas-secret-replicas-secret-0123456789";

const HBA: &str = "
local all         all                trust
local replication all                trust
host  all         all   127.0.0.1/32 trust
";

const FIXTURE: &str = "
    create schema probe_data;
    create table probe_data.items (id bigint primary key, v bigint not null);
    grant usage on schema probe_data to web_anon;
    grant select, insert, update on probe_data.items to web_anon;
    create function probe.whereami() returns json language sql stable as
      $$ select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
    create function probe.pinned() returns json language sql stable as
      $$ select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
    alter function probe.pinned() set pgrpc.read_from = 'primary';
    create function probe.put(id bigint, v bigint) returns json language sql volatile as $$
      insert into probe_data.items values (id, v) on conflict (id) do update set v = excluded.v;
      select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
    create function probe.get(id bigint) returns bigint language sql stable as
      $$ select v from probe_data.items where items.id = get.id $$;
    grant execute on function probe.whereami(), probe.pinned(), probe.put(bigint, bigint),
      probe.get(bigint) to web_anon;";

/// Status, body and `Pgrpc-Lsn` of one call (`lsn` sent back when given).
fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    body: &str,
    lsn: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut req = ureq::request(method, &gw.url(path)).timeout(Duration::from_secs(10));
    if let Some(lsn) = lsn {
        req = req.set("Pgrpc-Lsn", lsn);
    }
    let res = if method == "POST" {
        req.set("Content-Type", "application/json")
            .send_string(body)
    } else {
        req.call()
    };
    match res {
        Ok(r) => {
            let lsn = r.header("pgrpc-lsn").map(str::to_string);
            (r.status(), r.into_string().unwrap_or_default(), lsn)
        }
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default(), None),
        Err(_) => (0, String::new(), None),
    }
}

/// (in recovery, port) of a `whereami`-shaped answer.
fn place(body: &str) -> (bool, u16) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        v["recovery"].as_bool().expect("recovery"),
        u16::try_from(v["port"].as_u64().expect("port")).expect("a port"),
    )
}

fn metrics(gw: &Gateway) -> String {
    ureq::get(&format!("http://127.0.0.1:{}/metrics", gw.admin))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default()
}

/// What `/metrics` says of the replica on `port`: in the rotation or not.
fn replica_up(gw: &Gateway, port: u16) -> Option<bool> {
    let prefix = format!("pgrpc_replica_up{{replica=\"127.0.0.1:{port}\"}} ");
    metrics(gw)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim() == "1"))
}

fn uri(port: u16) -> String {
    format!("postgres://authenticator@127.0.0.1:{port}/pgrpc?sslmode=disable&connect_timeout=2")
}

fn gateway(primary: &TcpCluster, replicas: &[&TcpCluster], max_lag: &str) -> Gateway {
    let list: Vec<String> = replicas.iter().map(|r| uri(r.port)).collect();
    let list = list.join(",");
    let primary_uri = uri(primary.port);
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &primary_uri),
            ("PGRPC_DB_REPLICA_URIS", &list),
            ("PGRPC_DB_REPLICA_CHECK_INTERVAL", "0.1"),
            ("PGRPC_DB_REPLICA_MAX_LAG", max_lag),
            ("PGRPC_DB_POOL", "4"),
            ("PGRPC_JWT_SECRET", SECRET),
            PROBE_SCHEMAS,
        ],
    );
    for r in replicas {
        assert!(
            wait_until(Duration::from_secs(20), || replica_up(&gw, r.port)
                == Some(true)),
            "replica {} never joined the rotation:\n{}\n{}",
            r.port,
            metrics(&gw),
            gw.log()
        );
    }
    gw
}

#[test]
fn reads_go_to_replicas_writes_to_the_primary_and_lsn_reads_are_never_stale() {
    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("replicas: {what} at {:?}", t0.elapsed());
    let primary = TcpCluster::start(TcpCluster::dir_for(), HBA, &[]);
    primary.prepare_app_db(&format!("{PROBE_FIXTURE}; {FIXTURE}"));
    let mut fast = start_standby(&primary, "fast", HBA);
    let slow = start_standby_with(
        &primary,
        "slow",
        HBA,
        &[("recovery_min_apply_delay", "3s".to_string())],
    );
    assert!(
        wait_until(Duration::from_secs(30), || primary.query_text(
            "postgres",
            "select count(*) from pg_stat_replication where state = 'streaming'"
        ) == "2"),
        "the replicas do not stream"
    );
    phase("topology up");

    // Where calls run: reads on the replicas (both take turns), GET and POST
    // to a STABLE function alike; writes and pinned reads on the primary.
    let gw = gateway(&primary, &[&fast, &slow], "3600");
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let (method, path) = if i % 2 == 0 {
            ("GET", "/rpc/whereami")
        } else {
            ("POST", "/rpc/whereami")
        };
        let (status, body, lsn) = call(&gw, method, path, "{}", None);
        assert_eq!(status, 200, "{body}");
        let (recovery, port) = place(&body);
        assert!(
            recovery && (port == fast.port || port == slow.port),
            "a read ran on {port}"
        );
        assert_eq!(lsn, None, "a read carries no Pgrpc-Lsn");
        seen.insert(port);
    }
    assert_eq!(seen.len(), 2, "both replicas serve reads: {seen:?}");
    let (status, body, _) = call(&gw, "GET", "/rpc/pinned", "", None);
    assert_eq!(
        (status, place(&body)),
        (200, (false, primary.port)),
        "pinned read"
    );
    let (status, body, lsn) = call(&gw, "POST", "/rpc/put", r#"{"id": 0, "v": 0}"#, None);
    assert_eq!(
        (status, place(&body)),
        (200, (false, primary.port)),
        "write"
    );
    let lsn = lsn.expect("a write's response carries Pgrpc-Lsn");
    assert!(lsn.contains('/'), "{lsn}");
    // A client's mistake in the header is a 400 with a JSON error.
    let (status, body, _) = call(&gw, "GET", "/rpc/whereami", "", Some("not-an-lsn"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("PGRST161"), "{body}");
    assert!(
        gw.log().contains("node=") || gw.log().contains("\"node\""),
        "the log line names the node"
    );
    // Browsers may send the header and read it (CORS).
    let r = ureq::get(&gw.url("/rpc/whereami"))
        .set("Origin", "https://app.example")
        .call()
        .expect("a CORS read");
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("pgrpc-lsn"), "{exposed}");
    let r = ureq::request("OPTIONS", &gw.url("/rpc/get"))
        .set("Origin", "https://app.example")
        .set("Access-Control-Request-Method", "GET")
        .call()
        .expect("a preflight");
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(allowed.contains("pgrpc-lsn"), "{allowed}");
    phase("routing checked");

    // Read-your-writes: with the header, never stale (over both replicas,
    // one of them 3 s late).
    for i in 1..=20 {
        let (status, _, lsn) = call(
            &gw,
            "POST",
            "/rpc/put",
            &format!(r#"{{"id": 1, "v": {i}}}"#),
            None,
        );
        assert_eq!(status, 200);
        let lsn = lsn.expect("Pgrpc-Lsn");
        let (status, body, _) = call(&gw, "GET", "/rpc/get?id=1", "", Some(&lsn));
        assert_eq!(
            (status, body.trim()),
            (200, i.to_string().as_str()),
            "a stale read despite Pgrpc-Lsn"
        );
    }
    phase("read-your-writes over both replicas");

    // Only the delayed replica: without the header a read right after a
    // write is stale (the delay is real); with it, it never is.
    let late = gateway(&primary, &[&slow], "3600");
    let mut stale = 0;
    for i in 100..103 {
        let (status, _, _) = call(
            &late,
            "POST",
            "/rpc/put",
            &format!(r#"{{"id": 2, "v": {i}}}"#),
            None,
        );
        assert_eq!(status, 200);
        let (status, body, _) = call(&late, "GET", "/rpc/get?id=2", "", None);
        assert_eq!(status, 200);
        stale += usize::from(body.trim() != i.to_string());
    }
    assert!(
        stale > 0,
        "the delayed replica answered fresh data every time: is the delay real?"
    );
    for i in 200..210 {
        let (status, _, lsn) = call(
            &late,
            "POST",
            "/rpc/put",
            &format!(r#"{{"id": 2, "v": {i}}}"#),
            None,
        );
        assert_eq!(status, 200);
        let (status, body, _) = call(&late, "GET", "/rpc/get?id=2", "", lsn.as_deref());
        assert_eq!(
            (status, body.trim()),
            (200, i.to_string().as_str()),
            "a stale read despite Pgrpc-Lsn"
        );
    }
    phase("stale without the header, fresh with it");

    // Regression: a function deployed a moment ago is in the schema cache
    // (loaded from the primary, reloaded by the DDL's event trigger) but not
    // yet on the delayed replica, which answered 404 (42883) for its whole
    // delay. The read now runs on the primary instead.
    primary.query_text(
        "pgrpc",
        "create function probe.fresh() returns json language sql stable as
           $$ select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
         grant execute on function probe.fresh() to web_anon",
    );
    let mut last = (0, String::new(), None);
    assert!(
        wait_until(Duration::from_secs(20), || {
            last = call(&late, "GET", "/rpc/fresh", "", None);
            !last.1.contains("PGRST202")
        }),
        "the schema cache never saw the new function: {last:?}\n{}",
        late.log()
    );
    let replica_lacks_it =
        slow.query_text("pgrpc", "select to_regprocedure('probe.fresh()') is null") == "t";
    assert_eq!(last.0, 200, "a new function: {last:?}");
    if replica_lacks_it {
        assert_eq!(
            place(&last.1),
            (false, primary.port),
            "a new function the replica lacks"
        );
    } else {
        eprintln!("replicas: the cache reload took longer than the replica's delay");
    }
    drop(late);
    phase("a function the replica lacks yet runs on the primary");

    // A replica lagging past db.replica_max_lag is skipped, and comes back.
    let strict = gateway(&primary, &[&slow], "1");
    let (status, _, _) = call(&strict, "POST", "/rpc/put", r#"{"id": 3, "v": 1}"#, None);
    assert_eq!(status, 200);
    assert!(
        wait_until(Duration::from_secs(3), || replica_up(&strict, slow.port)
            == Some(false)),
        "the lagging replica stayed in the rotation:\n{}",
        metrics(&strict)
    );
    let (status, body, _) = call(&strict, "GET", "/rpc/whereami", "", None);
    assert_eq!(
        (status, place(&body)),
        (200, (false, primary.port)),
        "read while the only replica lags"
    );
    assert!(
        wait_until(Duration::from_secs(10), || replica_up(&strict, slow.port)
            == Some(true)),
        "the replica did not come back once it caught up"
    );
    drop(strict);
    phase("lagging replica skipped and back");

    // A replica stopped under read load: no client sees an error.
    let answers: Arc<Mutex<Vec<u16>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (answers, stop, url) = (answers.clone(), stop.clone(), gw.url("/rpc/whereami"));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let status = match ureq::get(&url).timeout(Duration::from_secs(10)).call() {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, _)) => code,
                        Err(_) => 0,
                    };
                    answers.lock().expect("lock").push(status);
                }
            })
        })
        .collect();
    let count = |answers: &Arc<Mutex<Vec<u16>>>| answers.lock().expect("lock").len();
    assert!(wait_until(Duration::from_secs(10), || count(&answers) >= 50));
    fast.cluster.stop().expect("stop the replica");
    let at_stop = count(&answers);
    assert!(
        wait_until(Duration::from_secs(10), || count(&answers) >= at_stop + 200),
        "reads stalled after the replica stopped"
    );
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader");
    }
    let answers = answers.lock().expect("lock").clone();
    let errors: Vec<&u16> = answers.iter().filter(|s| **s != 200).collect();
    assert!(
        errors.is_empty(),
        "{} of {} reads failed: {errors:?}\n{}",
        errors.len(),
        answers.len(),
        gw.log()
    );
    assert_eq!(
        replica_up(&gw, fast.port),
        Some(false),
        "the stopped replica is out"
    );
    let retried = gw.log().matches("retrying the read once").count();
    phase(&format!(
        "replica stopped under load, zero errors ({} reads, {retried} retried)",
        answers.len()
    ));

    // Started again, it rejoins on its own.
    fast.restart();
    assert!(
        wait_until(Duration::from_secs(20), || replica_up(&gw, fast.port)
            == Some(true)),
        "the restarted replica did not rejoin"
    );
    assert!(
        wait_until(Duration::from_secs(5), || {
            let (_, body, _) = call(&gw, "GET", "/rpc/whereami", "", None);
            place(&body) == (true, fast.port)
        }),
        "the rejoined replica serves no reads"
    );
    phase("replica rejoined");
}
