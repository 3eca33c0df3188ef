// Cancel on disconnect (issue 12): the real binary, raw sockets; a hang-up cancels and rolls back, keep-alive and pipelining do not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{cluster, wait_until, Gateway, TestDb};

/// Test functions, created in the test's own database before the gateway
/// starts: a call that writes a row and then sleeps, and a cheap one.
const FUNCTIONS: &str = "
create table public.dc_log(tag text);
grant insert, select on public.dc_log to web_anon;
create function api.dc_write_then_sleep(tag text, seconds float8) returns int
  language sql volatile as $$
    insert into public.dc_log values (tag);
    select pg_sleep(seconds);
    select 1
  $$;
grant execute on function api.dc_write_then_sleep(text, float8) to web_anon;
create table public.dc_commit_log(tag text);
grant insert on public.dc_commit_log to web_anon;
create function public.dc_slow_commit() returns trigger language plpgsql as $$
  begin
    perform pg_sleep(1.5);
    return null;
  end $$;
create constraint trigger dc_slow_commit after insert on public.dc_commit_log
  deferrable initially deferred for each row execute function public.dc_slow_commit();
create function api.dc_write_slow_commit(tag text) returns int
  language sql volatile as $$
    insert into public.dc_commit_log values (tag);
    select 1
  $$;
grant execute on function api.dc_write_slow_commit(text) to web_anon;
create function api.dc_write_big_answer(tag text, bytes int) returns text
  language sql volatile as $$
    insert into public.dc_log values (tag);
    select repeat('x', bytes)
  $$;
grant execute on function api.dc_write_big_answer(text, int) to web_anon;
";

const POOL: usize = 10;

/// A runtime of the test's own for the database side.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A fresh database with [`FUNCTIONS`], a superuser connection to it, and the
/// real binary serving it in external mode with a pool of [`POOL`].
fn start(rt: &tokio::runtime::Runtime) -> (TestDb, tokio_postgres::Client, Gateway) {
    start_with_pool(rt, POOL)
}

/// [`start`] with a pool of `pool` connections.
fn start_with_pool(
    rt: &tokio::runtime::Runtime,
    pool: usize,
) -> (TestDb, tokio_postgres::Client, Gateway) {
    let (db, admin) = rt.block_on(async {
        let db = TestDb::new().await;
        let admin = db.admin().await;
        admin
            .batch_execute(FUNCTIONS)
            .await
            .expect("test functions");
        (db, admin)
    });
    let uri = format!(
        "host={} port={} user=authenticator dbname={}",
        cluster().socket_dir().display(),
        cluster().port(),
        db.name
    );
    let pool = pool.to_string();
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &uri),
            ("PGRPC_DB_POOL", &pool),
            ("PGRPC_SERVER_WORKERS", "2"),
            (
                "PGRPC_JWT_SECRET",
                "disconnect-secret-disconnect-secret-0123",
            ),
        ],
    );
    (db, admin, gw)
}

/// A single number from the test database.
fn number(rt: &tokio::runtime::Runtime, admin: &tokio_postgres::Client, sql: &str) -> i64 {
    rt.block_on(admin.query_one(sql, &[]))
        .expect(sql)
        .get::<_, i64>(0)
}

/// Backends of this database sleeping in `pg_sleep`.
const SLEEPING: &str = "select count(*) from pg_stat_activity
    where datname = current_database() and wait_event = 'PgSleep'";

/// Connections of this database left inside a transaction.
const OPEN_TRANSACTIONS: &str = "select count(*) from pg_stat_activity
    where datname = current_database() and state like 'idle in transaction%'";

/// `POST /rpc/dc_write_then_sleep` as raw HTTP/1.1 (keep-alive).
fn call(tag: &str, seconds: f64) -> Vec<u8> {
    let body = format!(r#"{{"tag": "{tag}", "seconds": {seconds}}}"#);
    format!(
        "POST /rpc/dc_write_then_sleep HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Read one response (head and Content-Length body): its status and body.
fn read_response(stream: &mut TcpStream, buffered: &mut Vec<u8>) -> (u16, String) {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed before a response");
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
    while buffered.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read the body");
        assert!(n > 0, "connection closed inside a body");
        buffered.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffered[head_end..head_end + length]).to_string();
    buffered.drain(..head_end + length);
    (status, body)
}

fn connect(gw: &Gateway) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    stream
}

/// `pgrpc_pool_size` and `pgrpc_pool_available` from `/metrics`.
fn pool_gauges(gw: &Gateway) -> (i64, i64) {
    let text = ureq::get(&format!("http://127.0.0.1:{}/metrics", gw.admin))
        .call()
        .expect("metrics")
        .into_string()
        .expect("metrics text");
    let gauge = |name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .round() as i64
    };
    (gauge("pgrpc_pool_size "), gauge("pgrpc_pool_available "))
}

#[test]
fn fifty_hung_up_calls_are_cancelled_rolled_back_and_free_the_pool() {
    let rt = runtime();
    let (_db, admin, gw) = start(&rt);

    // 50 clients start a 30-second call that writes first; the pool (10)
    // runs 10 of them and the other 40 wait for a connection.
    let sent = Instant::now();
    let clients: Vec<TcpStream> = (0..50)
        .map(|i| {
            let mut s = connect(&gw);
            s.write_all(&call(&format!("c{i}"), 30.0)).expect("send");
            s
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || number(&rt, &admin, SLEEPING)
            == POOL as i64),
        "the pool never filled with sleeping calls:\n{}",
        gw.log()
    );
    if let Some(rest) = Duration::from_millis(100).checked_sub(sent.elapsed()) {
        std::thread::sleep(rest);
    }

    // All hang up.
    drop(clients);
    let hung_up = Instant::now();
    let cancelled = wait_until(Duration::from_secs(1), || {
        number(&rt, &admin, SLEEPING) == 0
    });
    assert!(
        cancelled,
        "{} calls still sleeping 1 s after their clients hung up:\n{}",
        number(&rt, &admin, SLEEPING),
        gw.log()
    );
    eprintln!("all cancelled {:?} after the hang-up", hung_up.elapsed());

    // A cheap call is served at once: the connections are back.
    let started = Instant::now();
    let mut s = connect(&gw);
    s.write_all(&call("cheap", 0.0)).expect("send");
    let (status, body) = read_response(&mut s, &mut Vec::new());
    assert_eq!((status, body.as_str()), (200, "1"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the cheap call waited {:?}",
        started.elapsed()
    );
    // Rolled back: only the cheap call's row is there, and no transaction
    // was left open on any connection.
    assert_eq!(number(&rt, &admin, "select count(*) from public.dc_log"), 1);
    assert_eq!(number(&rt, &admin, OPEN_TRANSACTIONS), 0);
    // Every pooled connection is idle again.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let (size, available) = pool_gauges(&gw);
            size > 0 && size == available
        }),
        "connections still taken: {:?}",
        pool_gauges(&gw)
    );
    // The log says why the calls ended.
    let log = gw.log();
    assert!(log.contains("PGRST157"), "{log}");
}

#[test]
fn keep_alive_and_pipelined_requests_are_not_mistaken_for_a_hang_up() {
    let rt = runtime();
    let (_db, admin, gw) = start(&rt);

    // Two requests one after the other on one keep-alive connection; each
    // runs long enough for the watch to see the socket readable meanwhile.
    let mut s = connect(&gw);
    let mut buffered = Vec::new();
    for tag in ["k1", "k2"] {
        s.write_all(&call(tag, 0.3)).expect("send");
        assert_eq!(read_response(&mut s, &mut buffered), (200, "1".into()));
    }

    // A pipelined pair: both requests in one write, the second waiting
    // unread while the first runs.
    let mut s = connect(&gw);
    let mut pair = call("p1", 0.3);
    pair.extend(call("p2", 0.3));
    s.write_all(&pair).expect("send");
    let mut buffered = Vec::new();
    assert_eq!(read_response(&mut s, &mut buffered), (200, "1".into()));
    assert_eq!(read_response(&mut s, &mut buffered), (200, "1".into()));

    assert_eq!(
        number(
            &rt,
            &admin,
            "select count(*) from public.dc_log where tag in ('k1', 'k2', 'p1', 'p2')"
        ),
        4
    );
    assert!(!gw.log().contains("PGRST157"), "{}", gw.log());
}

#[test]
fn a_hang_up_once_only_commit_is_left_lets_the_transaction_complete() {
    let rt = runtime();
    let (_db, admin, gw) = start(&rt);

    // The function returns at once; its deferred trigger makes COMMIT take
    // 1.5 s. The client hangs up while COMMIT runs.
    let body = r#"{"tag": "late"}"#;
    let mut s = connect(&gw);
    s.write_all(
        format!(
            "POST /rpc/dc_write_slow_commit HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .expect("send");
    // COMMIT running for a while: the server sent the call's answer before
    // it began, and the gateway has had time to read it (a loaded machine
    // can be slow to), so the hang-up comes once only COMMIT is left.
    let in_commit = "select count(*) from pg_stat_activity
        where datname = current_database() and wait_event = 'PgSleep' and query = 'COMMIT'
          and now() - query_start > interval '300 milliseconds'";
    assert!(
        wait_until(Duration::from_secs(20), || number(&rt, &admin, in_commit)
            == 1),
        "COMMIT never ran:\n{}",
        gw.log()
    );
    drop(s);
    assert!(
        wait_until(Duration::from_secs(10), || number(&rt, &admin, SLEEPING)
            == 0),
        "COMMIT did not end"
    );
    // Committed, and logged as answered, not as cancelled.
    assert_eq!(
        number(
            &rt,
            &admin,
            "select count(*) from public.dc_commit_log where tag = 'late'"
        ),
        1,
        "{}",
        gw.log()
    );
    assert!(
        wait_until(Duration::from_secs(5), || gw
            .log()
            .lines()
            .any(|l| l.contains("dc_write_slow_commit") && l.contains("200"))),
        "{}",
        gw.log()
    );
    assert!(!gw.log().contains("PGRST157"), "{}", gw.log());
}

/// Hang-ups at every point of a call leave nothing behind for the next
/// request on the same connection (one pooled connection, so every next
/// request gets the one a hung-up call used). Two races: a cancel request
/// that arrives after the call's last check for interrupts is taken as the
/// pipelined COMMIT starts, which fails before it runs and leaves the
/// transaction block open (found by `bench/run`: the next request failed
/// with 25P02); and a cancel request reaches the backend whenever its
/// signal arrives, possibly after the call ended, in the next request's
/// statement (found by this test: a 504 57014 for the next client). Without
/// their fixes the second shows within a few dozen hang-ups here, the first
/// within some hundreds (the gateway logs "reached COMMIT"); the test
/// prints how many met the COMMIT but needs neither to.
#[test]
fn hang_ups_at_any_point_leave_nothing_for_the_next_request() {
    let rt = runtime();
    let (_db, admin, gw) = start_with_pool(&rt, 1);
    let body = r#"{"tag": "big", "bytes": 2000000}"#;
    let request = format!(
        "POST /rpc/dc_write_big_answer HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // How long the call takes when nobody hangs up.
    let mut s = connect(&gw);
    let started = Instant::now();
    s.write_all(request.as_bytes()).expect("send");
    let (status, _) = read_response(&mut s, &mut Vec::new());
    assert_eq!(status, 200);
    let whole = started.elapsed();
    drop(s);

    let at_commit = |log: &str| log.matches("reached COMMIT").count();
    let mut attempts = 0u32;
    let t0 = Instant::now();
    while attempts < 300 {
        let delay = whole.mul_f64(f64::from(attempts % 50) / 40.0);
        attempts += 1;
        let mut s = connect(&gw);
        s.write_all(request.as_bytes()).expect("send");
        std::thread::sleep(delay);
        drop(s);
        let mut s = connect(&gw);
        s.write_all(&call("next", 0.0)).expect("send");
        let (status, body) = read_response(&mut s, &mut Vec::new());
        assert_eq!(
            (status, body.as_str()),
            (200, "1"),
            "attempt {attempts} (hang-up after {delay:?}):\n{}",
            gw.log()
        );
    }
    eprintln!(
        "{attempts} hang-ups in {:?} (the call alone: {whole:?}), {} cancels taken at COMMIT",
        t0.elapsed(),
        at_commit(&gw.log())
    );
    assert_eq!(number(&rt, &admin, OPEN_TRANSACTIONS), 0);
    assert!(!gw.log().contains("25P02"), "{}", gw.log());
}
