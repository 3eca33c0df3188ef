// Deadlines and caps on client connections (issue 12): body, head and keep-alive timeouts, and max_connections — raw sockets against the real binary.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{cluster, TestDb, SECRET};
use crate::process::Gateway;

/// The real binary in external mode on a fresh test database (no initdb),
/// with `env` on top.
pub fn gateway(env: &[(&str, &str)]) -> Gateway {
    let db = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(TestDb::new());
    let uri = format!(
        "host={} port={} user=authenticator dbname={}",
        cluster().socket_dir().display(),
        cluster().port(),
        db.name
    );
    let mut all = vec![("PGRPC_DB_URI", uri.as_str()), ("PGRPC_JWT_SECRET", SECRET)];
    all.extend_from_slice(env);
    Gateway::start("", &all)
}

fn connect(gw: &Gateway) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

const CALL: &[u8] = b"POST /rpc/add HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                      Content-Length: 13\r\n\r\n{\"a\":1,\"b\":2}";

/// One HTTP/1.1 response: status, lower-cased head, body (by Content-Length).
struct Response {
    status: u16,
    head: String,
    body: String,
}

/// Read one response within `limit`; `None` if none (complete) came in time.
fn read_response(s: &mut TcpStream, limit: Duration) -> Option<Response> {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().expect("content-length"));
            if buf.len() >= end + 4 + length {
                let status = head[9..12].parse().expect("status code");
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                return Some(Response { status, head, body });
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return None,
        }
    }
}

/// True once the server has closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut byte = [0u8; 1];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_trickling_body_gets_408_json_at_the_deadline_and_the_connection_closes() {
    let gw = gateway(&[("PGRPC_SERVER_BODY_TIMEOUT", "1")]);
    let mut s = connect(&gw);
    s.write_all(
        b"POST /rpc/add HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\n\r\n{\"a\":1",
    )
    .expect("send head");
    let started = Instant::now();
    // A slowloris body: a byte every 50 ms, which would take 80 minutes.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = s.try_clone().expect("clone");
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && writer.write_all(b" ").is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let res = read_response(&mut s, Duration::from_secs(15)).expect("a response to a slow body");
    let waited = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(res.status, 408, "{}\n{}", res.head, res.body);
    assert!(
        res.head.contains("content-type: application/json"),
        "{}",
        res.head
    );
    let body: Value = serde_json::from_str(&res.body).expect("a JSON error body");
    assert_eq!(body["code"], "PGRST154", "{body}");
    assert!(
        body["details"]
            .as_str()
            .is_some_and(|d| d.contains("server.body_timeout")),
        "{body}"
    );
    assert!(
        waited >= Duration::from_millis(900),
        "answered before the deadline: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "the deadline was not kept: {waited:?}"
    );
    assert!(res.head.contains("connection: close"), "{}", res.head);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "the connection stayed open after the 408"
    );
    trickler.join().expect("trickler");

    // A body that arrives in parts, in full within the deadline, is served.
    let mut s = connect(&gw);
    let (head, rest) = CALL.split_at(CALL.len() - 5);
    s.write_all(head).expect("send");
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(rest).expect("send");
    let res = read_response(&mut s, Duration::from_secs(10)).expect("a response");
    assert_eq!((res.status, res.body.as_str()), (200, "3"), "{}", res.head);
}

#[test]
fn a_slow_head_and_an_idle_keep_alive_connection_are_closed_at_their_deadlines() {
    let gw = gateway(&[
        ("PGRPC_SERVER_HEAD_TIMEOUT", "1"),
        ("PGRPC_SERVER_KEEP_ALIVE", "1"),
    ]);
    // Headers that never finish: actix answers 408 (no body) and closes.
    let mut slow = connect(&gw);
    slow.write_all(b"POST /rpc/add HTTP/1.1\r\nHost: t\r\n")
        .expect("send");
    let started = Instant::now();
    let res = read_response(&mut slow, Duration::from_secs(10)).expect("an answer to a slow head");
    assert_eq!(res.status, 408, "{}", res.head);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(closed_within(&mut slow, Duration::from_secs(5)));

    // Served, then idle: closed once keep-alive runs out.
    let mut idle = connect(&gw);
    idle.write_all(CALL).expect("send");
    let res = read_response(&mut idle, Duration::from_secs(10)).expect("a response");
    assert_eq!(res.status, 200, "{}", res.head);
    let served = Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle keep-alive connection was never closed"
    );
    assert!(served.elapsed() >= Duration::from_millis(900));
}

#[test]
fn a_connection_over_the_cap_waits_and_is_served_once_another_closes() {
    let gw = gateway(&[
        ("PGRPC_SERVER_WORKERS", "1"),
        ("PGRPC_SERVER_MAX_CONNECTIONS", "1"),
        ("PGRPC_SERVER_KEEP_ALIVE", "60"),
        ("PGRPC_SERVER_HEAD_TIMEOUT", "60"),
    ]);
    // The one connection the gateway takes: served, then kept alive.
    let mut first = connect(&gw);
    first.write_all(CALL).expect("send");
    let res = read_response(&mut first, Duration::from_secs(10)).expect("a response");
    assert_eq!(res.status, 200, "{}", res.head);

    // The kernel completes the handshake (the backlog), but the gateway does
    // not take the connection while the first is open.
    let mut second = connect(&gw);
    second.write_all(CALL).expect("send");
    assert!(
        read_response(&mut second, Duration::from_millis(500)).is_none(),
        "a connection over max_connections was served"
    );
    // The first is still served meanwhile.
    first.write_all(CALL).expect("send");
    let res = read_response(&mut first, Duration::from_secs(10)).expect("a response");
    assert_eq!(res.status, 200, "{}", res.head);

    drop(first);
    let res = read_response(&mut second, Duration::from_secs(10))
        .expect("the waiting connection is served once the first closes");
    assert_eq!((res.status, res.body.as_str()), (200, "3"), "{}", res.head);
}
