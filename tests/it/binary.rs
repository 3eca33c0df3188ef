// The real `pgrpc` binary: embedded default over TCP, restart on the same data directory, --dump-config, invalid config.

use std::time::Duration;

use crate::harness::{pg_tempdir, superuser, wait_until, Gateway};
use crate::process::{pgrpc_command, psql_target};

#[test]
fn embedded_default_serves_over_tcp_stops_cleanly_and_restarts() {
    let dir = pg_tempdir("pgrpc-bin-");
    let data = dir.path().join("data");

    // First start: initdb, migrations, sql/, then HTTP.
    let gw = Gateway::shipped(&data, &[]);
    let log = gw.log();
    assert!(
        log.contains(&format!("http://127.0.0.1:{}", gw.port)),
        "no URL in the log:\n{log}"
    );
    let (socket, pg_port) = psql_target(&log);
    assert!(log.contains("-U postgres"), "{log}");

    superuser(&socket, pg_port, async |c| {
        c.batch_execute(
            "create function api.bin_hello(name text) returns text language sql stable as $$ select 'Hi ' || name $$;
             grant execute on function api.bin_hello(text) to web_anon;
             create schema keep;
             create table keep.notes(body text);
             insert into keep.notes values ('kept');",
        )
        .await
        .expect("create function and table");
    });
    // The event trigger reloads the running gateway: no restart, no signal.
    let mut last = (0, String::new());
    let live = wait_until(Duration::from_secs(20), || {
        last = gw.post("bin_hello", r#"{"name": "there"}"#);
        last.0 == 200
    });
    assert!(
        live,
        "the new function never became callable: {last:?}\n{}",
        gw.log()
    );
    assert_eq!(last.1, r#""Hi there""#);
    // Errors over real HTTP are JSON too.
    let (status, body) = gw.post("no_such_function", "{}");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("PGRST202"), "{body}");

    // SIGUSR1 reloads too: with the event triggers off, only the signal can.
    superuser(&socket, pg_port, async |c| {
        c.batch_execute(
            "alter event trigger pgrpc_ddl_end disable;
             alter event trigger pgrpc_sql_drop disable;
             create function api.bin_usr1() returns int language sql stable as $$ select 1 $$;
             grant execute on function api.bin_usr1() to web_anon;",
        )
        .await
        .expect("create without trigger");
    });
    assert_eq!(
        gw.post("bin_usr1", "{}").0,
        404,
        "no reload without the trigger"
    );
    gw.signal(libc::SIGUSR1);
    let live = wait_until(Duration::from_secs(20), || {
        gw.post("bin_usr1", "{}").0 == 200
    });
    assert!(live, "SIGUSR1 did not reload:\n{}", gw.log());
    superuser(&socket, pg_port, async |c| {
        c.batch_execute(
            "alter event trigger pgrpc_ddl_end enable; alter event trigger pgrpc_sql_drop enable;",
        )
        .await
        .expect("re-enable triggers");
    });

    let (status, log) = gw.terminate();
    assert!(status.success(), "exit status {status}:\n{log}");
    assert_eq!(status.code(), Some(0));
    assert!(
        !data.join("postmaster.pid").exists(),
        "the cluster is still running:\n{log}"
    );

    // Second start on the same data directory: no initdb, data kept, api recreated.
    let gw = Gateway::shipped(&data, &[]);
    let (socket, pg_port) = psql_target(&gw.log());
    let (status, body) = gw.post("bin_hello", r#"{"name": "again"}"#);
    assert_eq!(
        status, 404,
        "api is recreated from sql/ on every start: {body}"
    );
    let kept: String = superuser(&socket, pg_port, async |c| {
        c.query_one("select body from keep.notes", &[])
            .await
            .expect("table survives")
            .get(0)
    });
    assert_eq!(kept, "kept");
    let (status, log) = gw.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        !data.join("postmaster.pid").exists(),
        "the cluster is still running:\n{log}"
    );
}

#[test]
fn cluster_left_by_a_crashed_gateway_is_reused_and_stopped() {
    let dir = pg_tempdir("pgrpc-crash-");
    let data = dir.path().join("data");
    let gw = Gateway::shipped(&data, &[]);
    // A crash: the gateway dies without stopping its cluster, which runs in
    // its own process group and so survives.
    gw.signal(libc::SIGKILL);
    let (status, log) = gw.wait_exit();
    assert_eq!(status.code(), None, "killed by a signal");
    let pid_file = data.join("postmaster.pid");
    assert!(
        pid_file.exists(),
        "the cluster should outlive the crash:\n{log}"
    );

    // The next start adopts the running cluster instead of failing on the lock.
    let gw = Gateway::shipped(&data, &[]);
    let log = gw.log();
    assert!(log.contains("reusing"), "{log}");
    let (status, body) = gw.post("no_such_function", "{}");
    assert_eq!(status, 404, "{body}");
    let (status, log) = gw.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        !pid_file.exists(),
        "the adopted cluster is stopped too:\n{log}"
    );
}

#[test]
fn dump_config_masks_the_secret() {
    let secret = "a-very-secret-value-that-must-not-leak-0123456789";
    let out = pgrpc_command()
        .arg("--dump-config")
        .env("PGRPC_JWT_SECRET", secret)
        .env("PGRPC_SERVER_PORT", "4321")
        .output()
        .expect("run pgrpc --dump-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "secret printed:\n{stdout}"
    );
    assert!(stdout.contains(r#"secret = "********""#), "{stdout}");
    // It is the effective config: the environment override shows.
    assert!(stdout.contains("port = 4321"), "{stdout}");
}

#[test]
fn invalid_config_exits_2_naming_the_key_and_variable() {
    let out = pgrpc_command()
        .env("PGRPC_SERVER_PORT", "eighty")
        .output()
        .expect("run pgrpc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");
    assert!(stderr.contains("PGRPC_SERVER_PORT"), "{stderr}");
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    // Regression: the formatter coloured whenever NO_COLOR was unset, so a log
    // redirected to a file (or a journal) was full of escape codes.
    let gw = Gateway::start("", &[]);
    let (status, body) = gw.post("no_such_function", "{}");
    assert_eq!(status, 404, "{body}");
    let log = gw.log();
    assert!(log.contains("pgrpc is listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in the log:\n{log:?}");
}
