// The suite's read-only part on replicas (PGRPC_TEST_REPLICAS=1): the topology, the wait before a test's first request, and the proof that reads ran on the replicas.
//! With `PGRPC_TEST_REPLICAS=1` the harness's shared cluster becomes a
//! primary with two streaming replicas (`pg_basebackup -R` of it once the
//! template is ready, no apply delay), and every app the harness builds has
//! `db.replica_uris` set to them, built by the server's own code
//! (`http::server::replica_set`), so read-only calls really run on a replica.
//! Test databases are still created on the primary (streaming carries them
//! over); before a test's first request (`Ctx::app`) the harness waits until
//! the gateway's health checks see every replica up and past the primary's
//! current WAL position, so the test's reads see its setup.
//!
//! This module owns that topology, the `db.replica_*` settings of harness
//! apps, that wait, and the proof that the pass is real (a test that runs only
//! under the switch). It does not own routing (`pipeline::route`), the
//! replicas' pools and checks (`db::replicas`), nor the harness itself.
//!
//! `PGRPC_TEST_REPLICAS_DELAY` (e.g. `2s`) adds `recovery_min_apply_delay`
//! to both replicas: to check whether a module belongs to the read-only part,
//! run it so; a test that reads its own writes then fails every time instead
//! of now and then (the wait before each test then takes that long).

use std::path::Path;
use std::time::Duration;

use pgrpc::config::{Config, DbUri};
use pgrpc::db::embedded::{Cluster, ClusterSpec};
use pgrpc::db::replicas::Lsn;
use pgrpc::http::AppState;
use serde_json::Value;

use crate::harness::{self, get, post, send, setup, Ctx};

/// Port numbers (socket file names) of the replicas; each has its own
/// socket directory anyway, distinct numbers keep node names readable.
const REPLICA_PORTS: [u16; 2] = [5435, 5436];

/// How long a test waits for the replicas before failing.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(60);

/// Whether the suite runs with read replicas.
pub fn enabled() -> bool {
    std::env::var("PGRPC_TEST_REPLICAS").is_ok_and(|v| v == "1")
}

/// Start the two replicas of `primary`, their data directories under `dir`,
/// with the primary's `settings` (a hot standby refuses to start with a
/// smaller `max_connections` than its primary). Returns once both stream.
pub fn start(primary: &Cluster, dir: &Path, settings: &[(String, String)]) -> Vec<Cluster> {
    let delay = std::env::var("PGRPC_TEST_REPLICAS_DELAY").ok();
    let threads: Vec<_> = REPLICA_PORTS
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let data_dir = dir.join(format!("replica{}", i + 1));
            crate::topology::base_backup(primary.socket_dir(), primary.port(), &data_dir);
            let mut settings = settings.to_vec();
            settings.push(("cluster_name".into(), format!("replica{}", i + 1)));
            // Queries on a replica hold back the primary's cleanup instead of
            // being cancelled by its replay (PostgreSQL docs 27.4.2).
            settings.push(("hot_standby_feedback".into(), "on".into()));
            if let Some(delay) = &delay {
                settings.push(("recovery_min_apply_delay".into(), delay.clone()));
            }
            let spec = ClusterSpec {
                data_dir,
                port,
                fast: true,
                settings,
            };
            std::thread::spawn(move || Cluster::start(&spec).expect("start a replica"))
        })
        .collect();
    let replicas: Vec<Cluster> = threads
        .into_iter()
        .map(|t| t.join().expect("replica start panicked"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let streaming = rt.block_on(async {
        let admin = pgrpc::db::connect(&pgrpc::db::socket_config(primary, "postgres", "postgres"))
            .await
            .expect("connect to the primary");
        harness::eventually(Duration::from_secs(30), || async {
            admin
                .query_one(
                    "select count(*) from pg_stat_replication where state = 'streaming'",
                    &[],
                )
                .await
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
                == 2
        })
        .await
    });
    assert!(streaming, "the replicas do not stream from the primary");
    replicas
}

/// `db.replica_*` for an app on database `db`: the replicas' sockets, as a
/// DBA would write them, and a check interval short enough for a test.
pub fn configure(config: &mut Config, replicas: &[Cluster], db: &str) {
    config.db.replica_uris = replicas
        .iter()
        .map(|r| {
            DbUri::parse(&format!(
                "host={} port={} user=authenticator dbname={db} sslmode=disable",
                r.socket_dir().display(),
                r.port()
            ))
            .expect("a replica's connection string parses")
        })
        .collect();
    // Few connections each, like the primary's pool in the harness.
    config.db.replica_pool = config.db.pool_size.min(2);
    config.db.replica_check_interval = Duration::from_millis(50);
}

/// Build `state`'s replica set and start its health checks, as the server
/// does at start (on the test's runtime: they end with it).
pub fn attach(state: &mut AppState) {
    let replicas = std::sync::Arc::new(
        pgrpc::http::server::replica_set(&state.config).expect("the replica set builds"),
    );
    replicas.spawn_checks(
        state.config.db.replica_check_interval,
        state.config.db.replica_max_lag,
        state.metrics.clone(),
    );
    state.replicas = Some(replicas);
}

/// Wait until the gateway sees every replica up and past everything the
/// primary has written so far (the test's database and setup). No-op for an
/// app without replicas.
pub async fn wait_caught_up(ctx: &Ctx) {
    let Some(set) = ctx.state.replicas.clone() else {
        return;
    };
    // A position at the end of a WAL record of our own, past everything
    // written before it; committed with synchronous_commit on (the test
    // cluster runs with it off), so the WAL is flushed and streamed now,
    // not when the WAL writer next gets to it.
    let admin = ctx.db.admin().await;
    admin
        .batch_execute("set synchronous_commit = on")
        .await
        .expect("synchronous_commit");
    let target: String = admin
        .query_one(
            "select pg_logical_emit_message(true, 'pgrpc-test', '')::text",
            &[],
        )
        .await
        .expect("a WAL position to wait for")
        .get(0);
    let target: Lsn = target.parse().expect("an LSN");
    let caught_up = || {
        set.replicas()
            .iter()
            .all(|r| r.is_up() && r.replayed() >= target)
    };
    let ok = harness::eventually(CATCH_UP_LIMIT, || {
        let done = caught_up();
        async move { done }
    })
    .await;
    assert!(
        ok,
        "the replicas did not catch up with {target} within {CATCH_UP_LIMIT:?}: {:?}",
        set.replicas()
            .iter()
            .map(|r| (r.name().to_string(), r.is_up(), r.replayed().to_string()))
            .collect::<Vec<_>>()
    );
}

/// Functions that say where they ran, in this test's database only.
const WHERE_FIXTURE: &str = "
    create function api.test_where() returns json language sql stable as
      $$ select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
    create function api.test_where_write() returns json language sql volatile as
      $$ select json_build_object('recovery', pg_is_in_recovery(), 'port', current_setting('port')::int) $$;
    grant execute on function api.test_where(), api.test_where_write() to web_anon;";

/// (in recovery, port) of a `test_where` answer.
fn place(body: &Value) -> (bool, u16) {
    (
        body["recovery"].as_bool().expect("recovery"),
        u16::try_from(body["port"].as_u64().expect("port")).expect("a port"),
    )
}

// The pass is real: a harness app's reads (GET, and POST to a STABLE
// function) run on the replicas, both of them, and its writes on the
// primary; and a read of the fixtures every core test uses is served there
// with the template's data.
#[actix_web::test]
async fn in_the_replica_pass_reads_run_on_the_replicas() {
    if !enabled() {
        eprintln!("skipped: set PGRPC_TEST_REPLICAS=1 to run the suite on replicas");
        return;
    }
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(WHERE_FIXTURE)
        .await
        .expect("fixture");
    ctx.state.load_schema_cache().await.expect("reload");
    let app = ctx.app().await;
    let replica_ports: Vec<u16> = harness::replicas().iter().map(Cluster::port).collect();
    let primary_port = harness::cluster().port();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..20 {
        let req = if i % 2 == 0 {
            get("/rpc/test_where")
        } else {
            post("/rpc/test_where", "{}")
        };
        let r = send(&app, req).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let (recovery, port) = place(&r.json());
        assert!(
            recovery && replica_ports.contains(&port),
            "a read ran on {port} (replicas: {replica_ports:?})"
        );
        assert_eq!(r.header("pgrpc-lsn"), None, "a read carries no Pgrpc-Lsn");
        seen.insert(port);
    }
    assert_eq!(seen.len(), 2, "both replicas serve reads: {seen:?}");
    let r = send(&app, post("/rpc/test_where_write", "{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(place(&r.json()), (false, primary_port), "a write");
    assert!(r.header("pgrpc-lsn").is_some(), "a write carries Pgrpc-Lsn");
    let r = send(&app, get("/rpc/hello?name=replica")).await;
    assert_eq!((r.status, r.json()), (200, Value::from("Hello, replica")));
}
