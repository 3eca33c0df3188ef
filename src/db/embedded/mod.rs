//! A private PostgreSQL cluster run from the system's installed binaries.
//!
//! This module owns the life cycle of the cluster behind the gateway's default
//! "embedded" mode and behind the test harness: finding the PostgreSQL binaries,
//! `initdb` on first start, choosing the Unix socket directory, spawning the
//! postmaster, waiting until it accepts connections, reusing a postmaster left
//! running by a crashed run, and stopping it in order — also when it was
//! restarted under us (`pg_ctl restart`), by whatever postmaster
//! `postmaster.pid` names once it is checked to be ours.
//!
//! It does not open database connections (the caller connects with
//! tokio-postgres to [`Cluster::socket_dir`] and [`Cluster::port`]), does not
//! create roles, databases or schemas, and never listens on TCP. It is plain
//! synchronous `std::process` code because it runs once at start-up, before
//! the async runtime serves anything.
//!
//! PostgreSQL refuses to run as root, so when the gateway runs as root the
//! cluster belongs to, and runs as, the `postgres` OS user.
//!
//! Children: `binaries` finds the server binaries; `datadir` prepares the data
//! and socket directories and runs initdb; `readiness` waits for a postmaster
//! to report ready and reads the server log's tail for errors; `processes`
//! holds the OS account, `postmaster.pid` and the pid checks; `error` is the
//! one error type. This file is the life cycle itself (start, reuse, stop).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tracing::{info, warn};

mod binaries;
mod datadir;
mod error;
mod processes;
mod readiness;

use binaries::{candidate_dirs, resolve_bindir, server_version, version_key};
use datadir::{
    check_reachable, prepare_data_dir, prepare_short_socket_dir, run_initdb, socket_dir_for,
};
use error::io_err;
pub use error::EmbeddedError;
use processes::{is_postmaster_of, looks_like_postmaster, pid_alive, send_signal, Owner, PidFile};
use readiness::{wait_ready, ServerLog, Watched};

/// Oldest PostgreSQL major version the gateway supports.
const MIN_MAJOR: u32 = 15;
/// OS user and database superuser that own the cluster.
const PG_USER: &str = "postgres";
/// How often the postmaster.pid file is polled, like pg_ctl's wait loop.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for a fast shutdown before falling back to SIGQUIT.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait after SIGQUIT (immediate shutdown) before giving up.
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// PostgreSQL data directory; created (parents too) if missing.
    pub data_dir: PathBuf,
    /// Port number; it only names the socket file `.s.PGSQL.<port>`, there is no TCP.
    pub port: u16,
    /// For tests: `initdb --no-sync` and a server that does not wait for the disk
    /// (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`).
    pub fast: bool,
    /// Extra server settings, each passed as `-c name=value`.
    pub settings: Vec<(String, String)>,
}

/// Quotes `s` for a POSIX shell when it holds anything beyond a safe set.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Shared by `stop()`: whether it already ran, and our postmaster to reap.
#[derive(Debug)]
struct StopState {
    child: Option<Child>,
    stopped: bool,
}

/// A running private PostgreSQL cluster. Dropping it does not stop the
/// server: the caller decides when (the gateway on shutdown, the test harness
/// at exit) by calling [`Cluster::stop`].
#[derive(Debug)]
pub struct Cluster {
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    pid: i32,
    initialized_now: bool,
    reused: bool,
    state: Mutex<StopState>,
}

impl Cluster {
    /// Finds the newest installed PostgreSQL (15 or later) bin directory that
    /// holds both `initdb` and `postgres`.
    pub fn find_bindir() -> Result<PathBuf, EmbeddedError> {
        let searched = candidate_dirs();
        let mut seen = BTreeSet::new();
        let mut best: Option<(Vec<u32>, PathBuf)> = None;
        let mut too_old = Vec::new();
        for dir in &searched {
            let Some(real) = resolve_bindir(dir) else {
                continue;
            };
            if !seen.insert(real.clone()) {
                continue;
            }
            let Some((major, version)) = server_version(&real) else {
                continue;
            };
            if major < MIN_MAJOR {
                too_old.push((real, version));
                continue;
            }
            let key = version_key(&version);
            // Strictly newer only, so among equals the earlier (pg_config, PATH) wins.
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, real));
            }
        }
        match best {
            Some((_, dir)) => Ok(dir),
            None => {
                let mut uniq = BTreeSet::new();
                let searched = searched
                    .into_iter()
                    .filter(|d| uniq.insert(d.clone()))
                    .collect();
                Err(EmbeddedError::NoBinaries { searched, too_old })
            }
        }
    }

    /// Runs initdb if the data directory is new, then starts the postmaster
    /// (or reuses one left running by a crashed run) and blocks until it
    /// accepts connections.
    pub fn start(spec: &ClusterSpec) -> Result<Cluster, EmbeddedError> {
        let owner = Owner::for_current_process()?;
        let mut data_dir = std::path::absolute(&spec.data_dir)
            .map_err(|e| io_err("resolve", &spec.data_dir, e))?;
        if data_dir.exists() {
            data_dir = fs::canonicalize(&data_dir).map_err(|e| io_err("resolve", &data_dir, e))?;
            if let Some(cluster) = Self::try_reuse(&data_dir, spec)? {
                return Ok(cluster);
            }
        }

        let bindir = Self::find_bindir()?;
        prepare_data_dir(&data_dir, owner)?;
        // Canonical from here on, so the socket-dir hash is the same every run.
        let data_dir = fs::canonicalize(&data_dir).map_err(|e| io_err("resolve", &data_dir, e))?;
        check_reachable(&data_dir, owner)?;

        let initialized_now = !data_dir.join("PG_VERSION").exists();
        if initialized_now {
            run_initdb(&bindir, &data_dir, spec.fast, owner)?;
        }

        let socket_dir = socket_dir_for(&data_dir, spec.port);
        if socket_dir != data_dir {
            prepare_short_socket_dir(&socket_dir, owner)?;
        }

        let log = Self::open_log(&data_dir)?;
        let (mut child, log) =
            Self::spawn_postmaster(&bindir, &data_dir, &socket_dir, spec, owner, log)?;
        let pid = i32::try_from(child.id()).map_err(|_| EmbeddedError::BadPidFile {
            path: data_dir.join("postmaster.pid"),
            reason: format!("child pid {} does not fit in pid_t", child.id()),
        })?;
        if let Err(e) = wait_ready(&data_dir, pid, Watched::Child(&mut child), &log) {
            // Do not leave a half-started server behind us.
            let _ = send_signal(pid, libc::SIGQUIT);
            let _ = child.wait();
            return Err(e);
        }
        info!(
            data_dir = %data_dir.display(),
            socket_dir = %socket_dir.display(),
            port = spec.port,
            pid,
            log = %log.path.display(),
            bindir = %bindir.display(),
            "embedded PostgreSQL started"
        );
        Ok(Cluster {
            data_dir,
            socket_dir,
            port: spec.port,
            pid,
            initialized_now,
            reused: false,
            state: Mutex::new(StopState {
                child: Some(child),
                stopped: false,
            }),
        })
    }

    /// Adopts a live postmaster named in postmaster.pid. A dead one is left
    /// alone: postgres removes its own stale lock file on start.
    fn try_reuse(data_dir: &Path, spec: &ClusterSpec) -> Result<Option<Cluster>, EmbeddedError> {
        let Some(pf) = PidFile::read(data_dir)? else {
            return Ok(None);
        };
        if !pid_alive(pf.pid) || !looks_like_postmaster(pf.pid) {
            info!(
                data_dir = %data_dir.display(),
                pid = pf.pid,
                "postmaster.pid names a process that is gone; starting a new server"
            );
            return Ok(None);
        }
        let log = ServerLog {
            path: log_path(data_dir),
            start_offset: 0,
        };
        let pf = wait_ready(data_dir, pf.pid, Watched::Pid(pf.pid), &log)?;
        let pid_path = data_dir.join("postmaster.pid");
        let socket_dir = pf
            .socket_dir
            .clone()
            .ok_or_else(|| EmbeddedError::BadPidFile {
                path: pid_path.clone(),
                reason: "line 5 (socket directory) is empty".into(),
            })?;
        let port = pf.port.ok_or_else(|| EmbeddedError::BadPidFile {
            path: pid_path,
            reason: "line 4 (port) is not a port number".into(),
        })?;
        if port != spec.port {
            warn!(
                configured = spec.port,
                running = port,
                "reusing a running PostgreSQL that uses a different port number"
            );
        }
        info!(
            data_dir = %data_dir.display(),
            socket_dir = %socket_dir.display(),
            port,
            pid = pf.pid,
            "reusing the PostgreSQL server left running by an earlier run (its settings are kept)"
        );
        Ok(Some(Cluster {
            data_dir: data_dir.to_path_buf(),
            socket_dir,
            port,
            pid: pf.pid,
            initialized_now: false,
            reused: true,
            state: Mutex::new(StopState {
                child: None,
                stopped: false,
            }),
        }))
    }

    /// Opens `<parent of data_dir>/postgres.log` for appending. We open it,
    /// not the postgres user, so its directory's permissions do not matter.
    fn open_log(data_dir: &Path) -> Result<(File, ServerLog), EmbeddedError> {
        let path = log_path(data_dir);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            // The log may contain query text; keep it to the operator.
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_err("open the server log", &path, e))?;
        let start_offset = file
            .metadata()
            .map_err(|e| io_err("inspect", &path, e))?
            .len();
        Ok((file, ServerLog { path, start_offset }))
    }

    fn spawn_postmaster(
        bindir: &Path,
        data_dir: &Path,
        socket_dir: &Path,
        spec: &ClusterSpec,
        owner: Option<Owner>,
        (log_file, log): (File, ServerLog),
    ) -> Result<(Child, ServerLog), EmbeddedError> {
        let program = bindir.join("postgres");
        let stderr = log_file
            .try_clone()
            .map_err(|e| io_err("duplicate the handle of", &log.path, e))?;
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            data_dir.into(),
            "-k".into(),
            socket_dir.into(),
            "-p".into(),
            spec.port.to_string().into(),
        ];
        let mut settings: Vec<(String, String)> = vec![
            // No TCP at all: the socket directory is the only way in.
            ("listen_addresses".into(), String::new()),
            ("unix_socket_permissions".into(), "0700".into()),
        ];
        if spec.fast {
            // Throwaway test clusters: durability buys nothing and costs time.
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                settings.push((name.into(), "off".into()));
            }
        }
        settings.extend(spec.settings.iter().cloned());
        for (name, value) in &settings {
            args.push("-c".into());
            args.push(format!("{name}={value}").into());
        }

        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(stderr)
            // Own process group: a terminal Ctrl-C reaches only the gateway,
            // which then stops the cluster in order (fast shutdown).
            .process_group(0);
        Owner::apply(owner, &mut cmd);
        let child = cmd.spawn().map_err(|source| EmbeddedError::Spawn {
            program: program.clone(),
            source,
        })?;
        Ok((child, log))
    }

    /// The directory holding the Unix socket `.s.PGSQL.<port>`.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The port number naming the socket file.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The absolute (canonical) data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True when this start ran initdb (first start).
    pub fn initialized_now(&self) -> bool {
        self.initialized_now
    }

    /// True when an already-running postmaster (left by a crashed run) was reused.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// The exact psql command a DBA types to open database `db` as the
    /// `postgres` superuser.
    pub fn psql_command(&self, db: &str) -> String {
        format!(
            "psql -h {} -p {} -U {PG_USER} {}",
            shell_quote(&self.socket_dir.to_string_lossy()),
            self.port,
            shell_quote(db)
        )
    }

    fn lock_state(&self) -> MutexGuard<'_, StopState> {
        // A panic while holding the lock leaves the state usable: stop() only
        // ever moves it towards "stopped".
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fast shutdown (SIGINT to the postmaster) and wait until it is gone;
    /// SIGQUIT as a last resort. A second call does nothing.
    pub fn stop(&self) -> Result<(), EmbeddedError> {
        let mut state = self.lock_state();
        if state.stopped {
            return Ok(());
        }
        let running = match state.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|e| io_err("wait for postgres in", &self.data_dir, e))?
                .is_none(),
            // Not our child: only signal the pid while the lock file still
            // names it, so a recycled pid is never hit.
            None => {
                PidFile::read(&self.data_dir)?.is_some_and(|pf| pf.pid == self.pid)
                    && pid_alive(self.pid)
            }
        };
        if running {
            info!(
                pid = self.pid,
                data_dir = %self.data_dir.display(),
                "stopping embedded PostgreSQL (fast shutdown)"
            );
            send_signal(self.pid, libc::SIGINT)
                .map_err(|e| io_err("signal the postmaster of", &self.data_dir, e))?;
            if !self.wait_gone(&mut state, STOP_TIMEOUT)? {
                warn!(
                    pid = self.pid,
                    data_dir = %self.data_dir.display(),
                    waited_s = STOP_TIMEOUT.as_secs(),
                    "PostgreSQL did not finish a fast shutdown; sending SIGQUIT \
                     (immediate shutdown: crash recovery runs on the next start)"
                );
                send_signal(self.pid, libc::SIGQUIT)
                    .map_err(|e| io_err("signal the postmaster of", &self.data_dir, e))?;
                if !self.wait_gone(&mut state, QUIT_TIMEOUT)? {
                    return Err(EmbeddedError::StopTimeout {
                        pid: self.pid,
                        data_dir: self.data_dir.clone(),
                    });
                }
            }
            info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        } else if let Some(child) = state.child.as_mut() {
            // Already exited on its own: reap it.
            let _ = child.wait();
        }
        if PidFile::read(&self.data_dir)?.is_some_and(|pf| pf.pid == self.pid) {
            warn!(
                data_dir = %self.data_dir.display(),
                "PostgreSQL exited without removing postmaster.pid; the next start removes it"
            );
        }
        state.child = None;
        self.stop_successors()?;
        state.stopped = true;
        Ok(())
    }

    /// Stop a postmaster that replaced ours on the same data directory: a
    /// DBA's `pg_ctl restart`, or a restart after a crash. Its pid differs
    /// from the one we started or adopted, so only one that postmaster.pid
    /// names, whose data-directory line is ours, and that is a postmaster
    /// working in our data directory is signalled. A few rounds, in case it
    /// was restarting again meanwhile.
    fn stop_successors(&self) -> Result<(), EmbeddedError> {
        for _ in 0..3 {
            let Some(pf) = PidFile::read(&self.data_dir)? else {
                return Ok(());
            };
            let same_dir = pf
                .data_dir
                .as_deref()
                .and_then(|d| fs::canonicalize(d).ok())
                .is_some_and(|d| d == self.data_dir);
            if pf.pid == self.pid || !same_dir || !is_postmaster_of(pf.pid, &self.data_dir) {
                return Ok(());
            }
            info!(
                pid = pf.pid,
                data_dir = %self.data_dir.display(),
                "stopping the PostgreSQL that replaced ours on the data directory \
                 (pg_ctl restart or a restart after a crash; fast shutdown)"
            );
            send_signal(pf.pid, libc::SIGINT)
                .map_err(|e| io_err("signal the postmaster of", &self.data_dir, e))?;
            if !self.wait_pid_gone(pf.pid, STOP_TIMEOUT)? {
                warn!(
                    pid = pf.pid,
                    data_dir = %self.data_dir.display(),
                    "PostgreSQL did not finish a fast shutdown; sending SIGQUIT"
                );
                send_signal(pf.pid, libc::SIGQUIT)
                    .map_err(|e| io_err("signal the postmaster of", &self.data_dir, e))?;
                if !self.wait_pid_gone(pf.pid, QUIT_TIMEOUT)? {
                    return Err(EmbeddedError::StopTimeout {
                        pid: pf.pid,
                        data_dir: self.data_dir.clone(),
                    });
                }
            }
            info!(data_dir = %self.data_dir.display(), "embedded PostgreSQL stopped");
        }
        Ok(())
    }

    /// Polls until `pid` (not our child) has exited and the lock file no
    /// longer names it. Returns false on time-out.
    fn wait_pid_gone(&self, pid: i32, timeout: Duration) -> Result<bool, EmbeddedError> {
        let started = Instant::now();
        loop {
            let file_gone = PidFile::read(&self.data_dir)?.is_none_or(|pf| pf.pid != pid);
            if !pid_alive(pid) && (file_gone || started.elapsed() >= POLL * 10) {
                return Ok(true);
            }
            if started.elapsed() >= timeout {
                return Ok(false);
            }
            thread::sleep(POLL);
        }
    }

    /// Polls until the postmaster has exited and its lock file is gone (or no
    /// longer names it). Returns false on time-out.
    fn wait_gone(&self, state: &mut StopState, timeout: Duration) -> Result<bool, EmbeddedError> {
        let started = Instant::now();
        loop {
            let process_gone = match state.child.as_mut() {
                Some(child) => child
                    .try_wait()
                    .map_err(|e| io_err("wait for postgres in", &self.data_dir, e))?
                    .is_some(),
                None => !pid_alive(self.pid),
            };
            // The postmaster unlinks its lock file just before it exits, so
            // once the process is gone the file is too (unless it crashed,
            // and then waiting longer would not help).
            // A short grace lets a file read mid-exit settle before we accept that.
            let file_gone = PidFile::read(&self.data_dir)?.is_none_or(|pf| pf.pid != self.pid);
            if process_gone && (file_gone || started.elapsed() >= POLL * 10) {
                return Ok(true);
            }
            if started.elapsed() >= timeout {
                return Ok(false);
            }
            thread::sleep(POLL);
        }
    }
}

/// Where the server log goes: next to, not inside, the data directory, so
/// it survives re-initialising the cluster and is easy to find.
fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.parent().unwrap_or(data_dir).join("postgres.log")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    use super::binaries::parse_version;
    use super::datadir::fnv1a64;
    use super::*;
    use std::sync::atomic::{AtomicU16, Ordering};

    /// Distinct port numbers per test, only to make the socket names differ
    /// from the default in case a test reads the wrong directory.
    static NEXT_PORT: AtomicU16 = AtomicU16::new(54_400);

    fn port() -> u16 {
        NEXT_PORT.fetch_add(1, Ordering::Relaxed)
    }

    /// A temp dir under /tmp that the `postgres` user can traverse (TempDir is
    /// created 0700 by root otherwise).
    fn tempdir() -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("pgrpc-embedded-")
            .tempdir_in("/tmp")
            .expect("create temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        dir
    }

    fn spec(data_dir: PathBuf) -> ClusterSpec {
        ClusterSpec {
            data_dir,
            port: port(),
            fast: true,
            // Small, so parallel tests do not compete for shared memory.
            settings: vec![("shared_buffers".into(), "16MB".into())],
        }
    }

    /// Stops the cluster even when an assertion fails, so no server outlives the test.
    struct StopOnDrop<'a>(&'a Cluster);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            let _ = self.0.stop();
        }
    }

    fn psql(cluster: &Cluster, sql: &str) -> String {
        let bindir = Cluster::find_bindir().expect("bindir");
        let program = if bindir.join("psql").is_file() {
            bindir.join("psql")
        } else {
            PathBuf::from("psql")
        };
        let mut cmd = Command::new(program);
        cmd.arg("-X")
            .arg("-h")
            .arg(cluster.socket_dir())
            .args([
                "-p",
                &cluster.port().to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .current_dir("/");
        Owner::apply(Owner::for_current_process().expect("owner"), &mut cmd);
        let out = cmd.output().expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn parses_postgres_version_output() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, "15.18".into()))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17beta1"),
            Some((17, "17beta1".into()))
        );
        assert_eq!(parse_version("garbage"), None);
        assert!(version_key("15.18") > version_key("15.2"));
        assert!(version_key("16.0") > version_key("15.18"));
    }

    #[test]
    fn parses_pid_file() {
        let text = "1234\n/data\n1700000000\n5432\n/tmp/sock\n\n  5432001  12\nready   \n";
        assert_eq!(
            PidFile::parse(text),
            Some(PidFile {
                pid: 1234,
                data_dir: Some("/data".into()),
                port: Some(5432),
                socket_dir: Some("/tmp/sock".into()),
                status: Some("ready".into()),
            })
        );
        assert!(PidFile::parse(text).is_some_and(|p| p.is_ready()));
        assert_eq!(PidFile::parse(""), None);
        assert_eq!(PidFile::parse("0\n"), None);
    }

    #[test]
    fn no_binaries_message_is_one_paragraph() {
        let msg = EmbeddedError::NoBinaries {
            searched: vec!["/usr/bin".into()],
            too_old: vec![("/usr/lib/postgresql/13/bin".into(), "13.9".into())],
        }
        .to_string();
        assert!(!msg.contains('\n'), "{msg}");
        for needle in [
            "apt-get install postgresql",
            "dnf install postgresql-server",
            "brew install postgresql@16",
            "db.uri",
            "13.9",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
    }

    #[test]
    fn psql_command_quotes_paths_with_spaces() {
        let cluster = Cluster {
            data_dir: "/srv/my data".into(),
            socket_dir: "/srv/my data".into(),
            port: 5432,
            pid: 1,
            initialized_now: false,
            reused: false,
            state: Mutex::new(StopState {
                child: None,
                stopped: true,
            }),
        };
        assert_eq!(
            cluster.psql_command("pgrpc"),
            "psql -h '/srv/my data' -p 5432 -U postgres pgrpc"
        );
    }

    #[test]
    fn find_bindir_finds_a_supported_version() {
        let dir = Cluster::find_bindir().expect("PostgreSQL 15+ installed");
        assert!(dir.join("initdb").is_file());
        let (major, _) = server_version(&dir).expect("version");
        assert!(major >= MIN_MAJOR, "{} is {major}", dir.display());
    }

    #[test]
    fn starts_stops_and_restarts_with_persisted_data() {
        let tmp = tempdir();
        let spec = spec(tmp.path().join("data"));

        let cluster = Cluster::start(&spec).expect("first start");
        let guard = StopOnDrop(&cluster);
        assert!(cluster.initialized_now());
        assert!(!cluster.reused());
        assert_eq!(cluster.socket_dir(), cluster.data_dir());
        assert!(cluster
            .socket_dir()
            .join(format!(".s.PGSQL.{}", spec.port))
            .exists());
        assert_eq!(psql(&cluster, "select 1"), "1");
        assert_eq!(psql(&cluster, "show fsync"), "off");
        psql(
            &cluster,
            "create table kept (v int); insert into kept values (42)",
        );
        assert!(cluster.psql_command("postgres").starts_with(&format!(
            "psql -h {} -p {}",
            cluster.socket_dir().display(),
            spec.port
        )));
        cluster.stop().expect("stop");
        cluster.stop().expect("second stop is a no-op");
        drop(guard);
        assert!(!cluster.data_dir().join("postmaster.pid").exists());
        assert!(tmp.path().join("postgres.log").exists());

        let again = Cluster::start(&spec).expect("second start");
        let _guard = StopOnDrop(&again);
        assert!(!again.initialized_now());
        assert!(!again.reused());
        assert_eq!(psql(&again, "select v from kept"), "42");
        again.stop().expect("stop again");
        assert!(!again.data_dir().join("postmaster.pid").exists());
    }

    #[test]
    fn long_data_dir_uses_short_socket_dir() {
        let tmp = tempdir();
        let deep = tmp
            .path()
            .join("x".repeat(60))
            .join("y".repeat(40))
            .join("data");
        let spec = spec(deep);
        let cluster = Cluster::start(&spec).expect("start");
        let _guard = StopOnDrop(&cluster);
        let sock = cluster.socket_dir().to_path_buf();
        assert_ne!(sock, cluster.data_dir());
        assert!(sock.starts_with("/tmp"));
        assert!(sock
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pgrpc-")));
        assert_eq!(
            sock,
            socket_dir_for(cluster.data_dir(), spec.port),
            "stable"
        );
        assert!(sock.join(format!(".s.PGSQL.{}", spec.port)).exists());
        assert_eq!(psql(&cluster, "select 1"), "1");
        cluster.stop().expect("stop");
        let _ = fs::remove_dir(&sock);
    }

    #[test]
    fn stale_lock_file_from_a_crash_is_not_reused() {
        let tmp = tempdir();
        let spec = spec(tmp.path().join("data"));
        let cluster = Cluster::start(&spec).expect("start");
        cluster.stop().expect("stop");
        // A crash leaves postmaster.pid behind, possibly saying "ready"; its
        // pid is dead (a reaped child of ours).
        let mut dead = Command::new("true").spawn().expect("spawn true");
        let dead_pid = dead.id();
        dead.wait().expect("reap true");
        let sock = cluster.socket_dir().display().to_string();
        let stale = format!(
            "{dead_pid}\n{}\n0\n{}\n{sock}\n\n0 0\nready   \n",
            cluster.data_dir().display(),
            spec.port
        );
        fs::write(cluster.data_dir().join("postmaster.pid"), stale).expect("write stale lock file");

        let again = Cluster::start(&spec).expect("start over a stale lock file");
        let _guard = StopOnDrop(&again);
        assert!(!again.reused());
        assert_eq!(psql(&again, "select 1"), "1");
        again.stop().expect("stop");
    }

    #[test]
    fn unreachable_data_dir_is_reported_when_root() {
        if Owner::for_current_process().expect("owner").is_none() {
            return; // Only root hands the cluster to another OS user.
        }
        let tmp = tempdir();
        let private = tmp.path().join("private");
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .expect("mkdir");
        let err = Cluster::start(&spec(private.join("data"))).expect_err("must fail");
        assert!(
            matches!(err, EmbeddedError::DataDirNotReachable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("private/data"), "{err}");
    }

    #[test]
    fn failed_start_reports_the_log_tail() {
        let tmp = tempdir();
        let mut spec = spec(tmp.path().join("data"));
        spec.settings.push(("no_such_setting".into(), "1".into()));
        let err = Cluster::start(&spec).expect_err("bad setting must fail");
        assert!(matches!(err, EmbeddedError::Exited { .. }), "{err}");
        assert!(err.to_string().contains("no_such_setting"), "{err}");
        assert!(!tmp.path().join("data/postmaster.pid").exists());
    }

    #[test]
    fn reuses_a_running_cluster() {
        let tmp = tempdir();
        let spec = spec(tmp.path().join("data"));
        let first = Cluster::start(&spec).expect("start");
        let _first_guard = StopOnDrop(&first);
        let second = Cluster::start(&spec).expect("reuse");
        let _second_guard = StopOnDrop(&second);
        assert!(second.reused());
        assert!(!second.initialized_now());
        assert_eq!(second.socket_dir(), first.socket_dir());
        assert_eq!(second.port(), first.port());
        assert_eq!(psql(&second, "select 1"), "1");
        // Stopping through the adopted handle must work although the
        // postmaster is the first handle's child (it lingers as a zombie).
        second.stop().expect("stop reused");
        assert!(!first.data_dir().join("postmaster.pid").exists());
        first.stop().expect("stop first reaps the child");
    }
}
