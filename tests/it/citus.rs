// The Citus test topology (PGRPC_TEST_CITUS=1): a coordinator and two workers, each a local cluster.
//! With `PGRPC_TEST_CITUS=1` the harness's shared cluster becomes a Citus
//! coordinator and two more clusters are started as its workers, all three
//! with `shared_preload_libraries = 'citus'` and reachable only through their
//! Unix sockets (Citus takes a socket directory as a node's host name, as
//! libpq does). This module owns that topology: the extra settings, starting
//! the workers, turning the template database into a Citus database on all
//! three nodes, and cloning it on the workers for each test. It does not own
//! the gateway (the harness builds the app against the coordinator, as
//! external mode does) nor the distribution itself (a migration does that
//! when it finds the citus extension).
//!
//! Why a template per node: Citus keeps its metadata (nodes, shards,
//! placements, distributed objects) in each database, and the coordinator
//! reaches a worker's shards in the worker's database of the same name. The
//! template is prepared once as a real cluster (extension on all three nodes,
//! workers added, migrations distributing the tables, shards on the workers);
//! a test database is then `CREATE DATABASE … TEMPLATE` on all three nodes,
//! which copies the coordinator's metadata and the workers' shards alike, so
//! every test still gets a cluster of its own in milliseconds.

use pgrpc::db::embedded::{Cluster, ClusterSpec};

/// Ports of the workers (each has its own socket directory anyway; distinct
/// numbers keep the node names readable in pg_dist_node).
const WORKER_PORTS: [u16; 2] = [5433, 5434];

/// Whether the tests run on the Citus topology.
pub fn enabled() -> bool {
    std::env::var("PGRPC_TEST_CITUS").is_ok_and(|v| v == "1")
}

/// Server settings every node needs (on top of the harness's own).
pub fn settings() -> Vec<(String, String)> {
    vec![
        // Citus first, as it requires; pg_stat_statements for the proof of
        // delegation (what ran on which node).
        (
            "shared_preload_libraries".into(),
            "citus,pg_stat_statements".into(),
        ),
        ("pg_stat_statements.track".into(), "all".into()),
        // Citus runs one maintenance daemon per database that uses it, and
        // every test has a database: room for them all.
        ("max_worker_processes".into(), "400".into()),
        // Delegated calls and 2PC open connections between the nodes too.
        ("citus.max_client_connections".into(), "-1".into()),
        // The seed tests log in with wrong passwords on purpose; the logs of
        // three nodes are read when something fails, keep them to the point.
        ("citus.log_remote_commands".into(), "off".into()),
        ("compute_query_id".into(), "on".into()),
    ]
}

/// Start the two workers, with their data directories under `dir`.
pub fn start_workers(dir: &std::path::Path, base: &[(String, String)]) -> Vec<Cluster> {
    let threads: Vec<_> = WORKER_PORTS
        .iter()
        .enumerate()
        .map(|(i, &port)| {
            let spec = ClusterSpec {
                data_dir: dir.join(format!("worker{}", i + 1)),
                port,
                fast: true,
                settings: base.to_vec(),
            };
            std::thread::spawn(move || Cluster::start(&spec).expect("start a Citus worker"))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("worker start panicked"))
        .collect()
}

/// The node name Citus uses for `cluster`: its socket directory.
fn node_name(cluster: &Cluster) -> String {
    cluster
        .socket_dir()
        .to_str()
        .expect("socket directories are UTF-8 paths")
        .to_string()
}

async fn connect(cluster: &Cluster, db: &str) -> tokio_postgres::Client {
    pgrpc::db::connect(&pgrpc::db::socket_config(cluster, "postgres", db))
        .await
        .unwrap_or_else(|e| panic!("connect to {db} on {}: {e}", node_name(cluster)))
}

/// Make `template` (already created on the coordinator) a Citus database on
/// all three nodes, before the migrations run in it on the coordinator.
pub async fn prepare_template(coordinator: &Cluster, workers: &[Cluster], template: &str) {
    for w in workers {
        connect(w, "postgres")
            .await
            .batch_execute(&format!("create database {template}"))
            .await
            .expect("create the template on a worker");
        connect(w, template)
            .await
            .batch_execute("create extension citus")
            .await
            .expect("citus on a worker");
    }
    let c = connect(coordinator, template).await;
    c.batch_execute("create extension citus")
        .await
        .expect("citus on the coordinator");
    // The workers connect back to the coordinator (metadata, reference
    // tables written from a worker), so it needs a reachable name too.
    c.execute(
        "select citus_set_coordinator_host($1, $2)",
        &[&node_name(coordinator), &i32::from(coordinator.port())],
    )
    .await
    .expect("citus_set_coordinator_host");
    for w in workers {
        c.execute(
            "select citus_add_node($1, $2)",
            &[&node_name(w), &i32::from(w.port())],
        )
        .await
        .expect("citus_add_node");
    }
}

/// Before the test fixtures: they stay on the coordinator. They are the
/// core tests' functions, which the seed tests never call, and Citus 13.2
/// cannot propagate one of them to the workers (`api."Weird Name"` comes out
/// unquoted: "syntax error at or near Name" on the worker).
pub async fn before_fixtures(owner: &tokio_postgres::Client) {
    owner
        .batch_execute("set citus.enable_ddl_propagation = off")
        .await
        .expect("fixtures stay on the coordinator");
}

/// After the migrations: what a DBA does on the workers, then close the
/// template to connections on every node so that it can be copied.
pub async fn finish_template(coordinator: &Cluster, workers: &[Cluster], template: &str) {
    for w in workers {
        // Citus reaches a worker as the current user: the request's role,
        // or auth_owner inside the seed API's SECURITY DEFINER functions. So
        // these roles must be able to log in on the workers (pg_hba lets only
        // the coordinator in); on the coordinator they stay NOLOGIN.
        connect(w, template)
            .await
            .batch_execute(
                "set citus.enable_alter_role_propagation = off;
                 alter role web_anon login; alter role app_user login; alter role app_admin login;
                 alter role auth_owner login;",
            )
            .await
            .expect("request roles can log in on the workers");
    }
    for node in std::iter::once(coordinator).chain(workers) {
        // CREATE DATABASE … TEMPLATE refuses a template anyone is connected
        // to, and Citus keeps a maintenance daemon connected to every
        // database it is used in: stop new connections, then end the ones
        // there are (the daemon's restarts then fail harmlessly).
        let admin = connect(node, "postgres").await;
        admin
            .batch_execute(&format!(
                "alter database {template} with allow_connections false;
                 select pg_terminate_backend(pid) from pg_stat_activity
                  where datname = '{template}' and pid <> pg_backend_pid();"
            ))
            .await
            .expect("close the template");
        crate::harness::eventually(std::time::Duration::from_secs(10), || async {
            admin
                .query_one(
                    "select count(*) from pg_stat_activity where datname = $1",
                    &[&template],
                )
                .await
                .map(|r| r.get::<_, i64>(0) == 0)
                .unwrap_or(false)
        })
        .await;
    }
}

/// Clone `template` as `name` on every worker (the harness clones it on the
/// coordinator).
pub async fn create_database(workers: &[Cluster], name: &str, template: &str) {
    for w in workers {
        connect(w, "postgres")
            .await
            .batch_execute(&format!(
                "create database {name} template {template} strategy file_copy"
            ))
            .await
            .expect("create the test database on a worker");
    }
}

/// How often `node` ran statements whose text (whitespace collapsed) matches
/// the `ILIKE` pattern `like` in `ctx`'s database, by pg_stat_statements,
/// which tracks the statements inside functions too (with PL/pgSQL's INTO
/// blanked out): the delegation proofs count where a body ran with it.
pub async fn statement_calls(ctx: &crate::harness::Ctx, node: &Cluster, like: &str) -> i64 {
    let client = pgrpc::db::connect(&pgrpc::db::socket_config(node, "postgres", &ctx.db.name))
        .await
        .expect("connect to a node");
    client
        .query_one(
            "select coalesce(sum(s.calls), 0)::int8 from pg_stat_statements s
               join pg_database d on d.oid = s.dbid
              where d.datname = current_database()
                and regexp_replace(s.query, '\\s+', ' ', 'g') ilike $1
                and s.query not ilike 'create%'",
            &[&like],
        )
        .await
        .expect("pg_stat_statements")
        .get(0)
}

/// The port of the worker that holds the shard of `table` for the
/// distribution value `key`, as Citus's metadata says.
pub async fn shard_port(ctx: &crate::harness::Ctx, table: &str, key: &str) -> i32 {
    ctx.db
        .admin()
        .await
        .query_one(
            "select p.nodeport from pg_dist_shard_placement p
              where p.shardid = get_shard_id_for_distribution_column($1::text::regclass, $2::text)",
            &[&table, &key],
        )
        .await
        .expect("placement of a shard")
        .get(0)
}
