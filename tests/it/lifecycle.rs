// Life cycle of the real binary: graceful SIGTERM with a request in flight,
// and PostgreSQL stopped and restarted under a running gateway.

use std::time::{Duration, Instant};

use pgrpc::db::embedded::{Cluster, ClusterSpec};

use crate::harness::*;

const SLEEP_FN: &str =
    "create function api.sleep(seconds float) returns int language sql volatile \
     as $$ select 1 from pg_sleep(seconds) $$; \
     create function api.ping() returns text language sql stable as $$ select 'pong' $$; \
     grant execute on function api.sleep(float), api.ping() to web_anon;";

fn post_status(port: u16, path: &str, body: &str) -> (u16, String) {
    match ureq::post(&format!("http://127.0.0.1:{port}{path}"))
        .set("content-type", "application/json")
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let mut gw = Gateway::start("", &[]);
    gw.psql(SLEEP_FN);
    assert!(
        wait_until(Duration::from_secs(10), || post_status(
            gw.port,
            "/rpc/ping",
            "{}"
        )
        .0 == 200),
        "the new function never became callable"
    );
    let port = gw.port;
    let in_flight =
        std::thread::spawn(move || post_status(port, "/rpc/sleep", r#"{"seconds": 1.5}"#));
    // Wait until the call is really running in the database, then SIGTERM.
    let data = gw.data_dir();
    let running = wait_until(Duration::from_secs(10), || {
        let out = std::process::Command::new("psql")
            .args(["-At", "-h"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-d",
                "pgrpc",
                "-c",
                "select count(*) from pg_stat_activity where query like '%api\"%\"sleep\"%' and state = 'active'",
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    });
    assert!(running, "the slow call never started");
    let signalled = Instant::now();
    gw.signal(libc::SIGTERM);
    let (status, body) = in_flight.join().expect("request thread");
    assert_eq!(status, 200, "the in-flight request must complete: {body}");
    assert_eq!(body, "1");
    let exit = gw.child.wait().expect("wait for exit");
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "shutdown took too long"
    );
    assert!(
        !gw.data_dir().join("postmaster.pid").exists(),
        "the embedded cluster was stopped after the HTTP server"
    );
    // New connections are refused once it is gone.
    assert_eq!(post_status(gw.port, "/rpc/ping", "{}").0, 0);
}

#[test]
fn database_restart_gives_503_meanwhile_and_recovers_without_restart() {
    // A cluster of its own, so this test can stop it; the gateway runs in
    // external mode against it, as in production.
    let dir = crate::harness::pg_tempdir("pgrpc-restart-");
    let spec = ClusterSpec {
        data_dir: dir.path().join("data"),
        port: 5432,
        fast: true,
        settings: Vec::new(),
    };
    let cluster = Cluster::start(&spec).expect("start cluster");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = pgrpc::db::connect(&pgrpc::db::socket_config(&cluster, "postgres", "postgres"))
            .await
            .expect("connect");
        pgrpc::db::ensure_database(&admin, "pgrpc")
            .await
            .expect("create db");
        let mut owner =
            pgrpc::db::connect(&pgrpc::db::socket_config(&cluster, "postgres", "pgrpc"))
                .await
                .expect("connect");
        pgrpc::db::migrate::migrate(&mut owner)
            .await
            .expect("migrate");
        owner.batch_execute(SLEEP_FN).await.expect("fixtures");
    });
    drop(rt);
    let uri = format!(
        "host={} port={} user=authenticator dbname=pgrpc connect_timeout=2",
        cluster.socket_dir().display(),
        cluster.port()
    );
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &uri),
            (
                "PGRPC_JWT_SECRET",
                "restart-secret-restart-secret-0123456789",
            ),
        ],
    );
    assert_eq!(
        post_status(gw.port, "/rpc/ping", "{}"),
        (200, "\"pong\"".to_string())
    );

    cluster.stop().expect("stop the database");
    let mut saw_503 = false;
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (status, body) = post_status(gw.port, "/rpc/ping", "{}");
            if status == 503 {
                saw_503 = true;
                assert!(
                    body.contains("PGRST001") || body.contains("57P01") || body.contains("08"),
                    "{body}"
                );
            }
            status == 503 && gw.ready() == 503
        }),
        "no 503 while the database is down"
    );
    assert!(saw_503);
    // Retry-After tells clients when to come back.
    let retry = ureq::post(&format!("http://127.0.0.1:{}/rpc/ping", gw.port)).send_string("{}");
    if let Err(ureq::Error::Status(503, r)) = retry {
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    }

    let cluster = Cluster::start(&spec).expect("restart the database");
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(15), || post_status(
            gw.port,
            "/rpc/ping",
            "{}"
        )
        .0 == 200),
        "the gateway did not recover by itself"
    );
    assert!(
        wait_until(Duration::from_secs(5), || gw.ready() == 200),
        "/ready did not turn 200 again"
    );
    eprintln!(
        "recovered {:?} after the database came back",
        started.elapsed()
    );
    drop(gw);
    cluster.stop().expect("stop");
}
