// The real `pgrpc` binary: embedded default over TCP, restart on the same data directory, --dump-config, invalid config.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{pg_tempdir, superuser};

const BIN: &str = env!("CARGO_BIN_EXE_pgrpc");
/// Start-up includes initdb on first run; allow for a slow machine.
const START_LIMIT: Duration = Duration::from_secs(120);
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A command for the binary with no `PGRPC_*` from our own environment and
/// the repository's config.toml (the shipped default) as its config.
fn pgrpc() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("PGRPC_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A running gateway and where its log goes.
struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Running {
    fn start(data_dir: &Path, log: PathBuf) -> Running {
        let port = free_port();
        let file = fs::File::create(&log).expect("create log file");
        let child = pgrpc()
            .env("PGRPC_DB_DATA_DIR", data_dir)
            .env("PGRPC_SERVER_PORT", port.to_string())
            .env("PGRPC_LOG_LEVEL", "info")
            // The admin server's default port is fixed; keep it out of the way.
            .env("PGRPC_ADMIN_PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn pgrpc");
        let mut running = Running { child, port, log };
        running.wait_ready();
        running
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn stderr(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Poll until the server answers HTTP at all.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "pgrpc exited during start-up ({status}):\n{}",
                    self.stderr()
                );
            }
            match ureq::get(&self.url("/rpc/"))
                .timeout(Duration::from_secs(2))
                .call()
            {
                Ok(_) | Err(ureq::Error::Status(..)) => return,
                Err(ureq::Error::Transport(_)) => {}
            }
            assert!(
                Instant::now() < deadline,
                "pgrpc never answered:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /rpc/<f>` with a JSON body: status and body.
    fn post(&self, f: &str, body: &str) -> (u16, String) {
        let res = ureq::post(&self.url(&format!("/rpc/{f}")))
            .timeout(Duration::from_secs(10))
            .set("Content-Type", "application/json")
            .send_string(body);
        match res {
            Ok(r) => (r.status(), r.into_string().expect("body")),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().expect("body")),
            Err(e) => panic!("request failed: {e}\n{}", self.stderr()),
        }
    }

    /// Send `sig` to the gateway.
    fn signal(&self, sig: libc::c_int) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child process by its pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
    }

    /// SIGTERM and wait for the exit.
    fn terminate(self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Wait for the gateway to exit by itself.
    fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pgrpc did not stop on SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave the gateway (and its cluster) behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = i32::try_from(self.child.id()).expect("pid");
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The socket directory and port from the logged `psql -h DIR -p PORT …` command.
fn psql_target(log: &str) -> (PathBuf, u16) {
    let line = log
        .lines()
        .find(|l| l.contains("psql -h "))
        .unwrap_or_else(|| panic!("no psql command in the log:\n{log}"));
    let command = &line[line.find("psql -h ").expect("psql")..];
    let words = shell_words(command);
    let after = |flag: &str| {
        let i = words
            .iter()
            .position(|w| w == flag)
            .unwrap_or_else(|| panic!("no {flag} in {command}"));
        words[i + 1].clone()
    };
    (
        PathBuf::from(after("-h")),
        after("-p").parse().expect("port number"),
    )
}

/// Split a POSIX shell command line with single quotes (how pgrpc quotes paths).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if !quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    in_word = true;
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn embedded_default_serves_over_tcp_stops_cleanly_and_restarts() {
    let dir = pg_tempdir("pgrpc-bin-");
    let data = dir.path().join("data");

    // First start: initdb, migrations, sql/, then HTTP.
    let gw = Running::start(&data, dir.path().join("first.log"));
    let log = gw.stderr();
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
    let live = poll_until(Duration::from_secs(20), || {
        last = gw.post("bin_hello", r#"{"name": "there"}"#);
        last.0 == 200
    });
    assert!(
        live,
        "the new function never became callable: {last:?}\n{}",
        gw.stderr()
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
    let live = poll_until(Duration::from_secs(20), || {
        gw.post("bin_usr1", "{}").0 == 200
    });
    assert!(live, "SIGUSR1 did not reload:\n{}", gw.stderr());
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
    let gw = Running::start(&data, dir.path().join("second.log"));
    let (socket, pg_port) = psql_target(&gw.stderr());
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
    let gw = Running::start(&data, dir.path().join("first.log"));
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
    let gw = Running::start(&data, dir.path().join("second.log"));
    let log = gw.stderr();
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
    let out = pgrpc()
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
    let out = pgrpc()
        .env("PGRPC_SERVER_PORT", "eighty")
        .output()
        .expect("run pgrpc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("server.port"), "{stderr}");
    assert!(stderr.contains("PGRPC_SERVER_PORT"), "{stderr}");
}
