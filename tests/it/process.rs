//! The real `pgrpc` binary as a child process, for every test that needs it:
//! a clean environment, free ports, its log, waiting for it and stopping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::pg_tempdir;

/// Start-up includes initdb on a first start; allow for a slow machine.
pub const START_LIMIT: Duration = Duration::from_secs(120);
/// A graceful stop, cluster included.
pub const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Poll `check` every 25 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The binary in the repository (so the shipped config.toml applies unless
/// `--config` says otherwise), with none of the environment's
/// `PGRPC_*`/`PGRST_*` variables (they are configuration: a stray one would
/// change or break the run).
pub fn pgrpc_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgrpc"));
    for (name, _) in std::env::vars() {
        if name.starts_with("PGRPC_") || name.starts_with("PGRST_") || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    // Its log goes to a file: no colour codes even where colours are wanted.
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR");
    cmd
}

/// The real `pgrpc` binary on its embedded default; SIGTERM when dropped, so
/// a failed assertion never leaves it (and its cluster) behind.
pub struct Gateway {
    /// The process.
    pub child: Child,
    /// HTTP port.
    pub port: u16,
    /// Admin port.
    pub admin: u16,
    /// Holds the log, config.toml when given, and data/ unless another data
    /// directory was given.
    pub dir: tempfile::TempDir,
    data: PathBuf,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Gateway {
    /// Start with `config` as its config file and extra environment, on a
    /// data directory of its own; waits for `/ready`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = pg_tempdir("pgrpc-bin-");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let data = dir.path().join("data");
        Gateway::spawn(dir, data, Some(config_path), env)
    }

    /// Start with the shipped config.toml on `data` (kept by the caller, so a
    /// second gateway can start on the same directory); waits for `/ready`.
    pub fn shipped(data: &Path, env: &[(&str, &str)]) -> Gateway {
        Gateway::spawn(pg_tempdir("pgrpc-bin-"), data.to_path_buf(), None, env)
    }

    fn spawn(
        dir: tempfile::TempDir,
        data: PathBuf,
        config: Option<PathBuf>,
        extra: &[(&str, &str)],
    ) -> Gateway {
        let (port, admin) = (free_port(), free_port());
        let mut env: Vec<(String, String)> = vec![
            ("PGRPC_DB_DATA_DIR".into(), data.display().to_string()),
            ("PGRPC_SERVER_PORT".into(), port.to_string()),
            ("PGRPC_ADMIN_PORT".into(), admin.to_string()),
            ("PGRPC_LOG_LEVEL".into(), "info".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let child = command_for(config.as_deref(), &env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pgrpc");
        let mut gw = Gateway {
            child,
            port,
            admin,
            dir,
            data,
            config,
            env,
        };
        gw.wait_for(START_LIMIT, "become ready", |gw| gw.ready() == 200);
        gw
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The binary with this gateway's environment (for `pgrpc token` and the
    /// like, which must see the same key).
    pub fn command(&self) -> Command {
        command_for(self.config.as_deref(), &self.env)
    }

    /// `pgrpc token --role <role>` for this gateway's key.
    pub fn token(&self, role: &str) -> String {
        let out = self
            .command()
            .args(["token", "--role", role])
            .output()
            .expect("run pgrpc token");
        assert!(
            out.status.success(),
            "pgrpc token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout)
            .expect("utf-8 token")
            .trim()
            .to_string();
        assert_eq!(token.split('.').count(), 3, "not a JWT: {token:?}");
        token
    }

    /// Poll `check` until it holds; panic with the log if the process exits
    /// or `limit` passes.
    pub fn wait_for(
        &mut self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Gateway) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "pgrpc exited ({status}) before it would {what}:\n{}",
                    self.log()
                );
            }
            if check(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pgrpc did not {what} in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `GET /ready` on the admin port (0 when it does not answer).
    pub fn ready(&self) -> u16 {
        get_status(&format!("http://127.0.0.1:{}/ready", self.admin))
    }

    /// `GET <path>`: the status (0 when the request failed).
    pub fn status(&self, path: &str) -> u16 {
        get_status(&self.url(path))
    }

    /// `POST /rpc/<f>` with a JSON body: status and body.
    pub fn post(&self, f: &str, body: &str) -> (u16, String) {
        let res = ureq::post(&self.url(&format!("/rpc/{f}")))
            .timeout(Duration::from_secs(10))
            .set("Content-Type", "application/json")
            .send_string(body);
        match res {
            Ok(r) => (r.status(), r.into_string().expect("body")),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().expect("body")),
            Err(e) => panic!("request failed: {e}\n{}", self.log()),
        }
    }

    /// What the process wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The embedded data (and socket) directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// Run SQL as the superuser through the socket.
    pub fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args(["-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.data_dir())
            .args(["-U", "postgres", "-d", "pgrpc", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Send `sig` to the process.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: signalling our own child process by its pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
    }

    /// SIGTERM, then wait for the exit: its status and the whole log.
    pub fn terminate(self) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Wait for the process to exit by itself: its status and the whole log.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pgrpc did not stop in time:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = i32::try_from(self.child.id()).expect("pid");
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_LIMIT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary with `--config` when given and `env` added.
fn command_for(config: Option<&Path>, env: &[(String, String)]) -> Command {
    let mut cmd = pgrpc_command();
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `GET url`: the status (0 when no answer came).
fn get_status(url: &str) -> u16 {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// The socket directory and port from the logged `psql -h DIR -p PORT …` command.
pub fn psql_target(log: &str) -> (PathBuf, u16) {
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
