//! Waiting for a postmaster to report `ready` in `postmaster.pid` (as pg_ctl
//! does since PostgreSQL 10), and the server log's tail that an error about a
//! failed start carries.
//!
//! It does not spawn or stop the postmaster (the parent module does).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use super::error::{describe_status, io_err, EmbeddedError};
use super::processes::{pid_alive, PidFile};
use super::POLL;

/// Longest wait for a postmaster to report `ready`.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How many log lines an error about a failed start carries.
pub(super) const LOG_TAIL_LINES: usize = 20;

/// The server log: where it is and where this start began writing.
#[derive(Debug, Clone)]
pub(super) struct ServerLog {
    pub(super) path: PathBuf,
    pub(super) start_offset: u64,
}

impl ServerLog {
    /// The last lines written since this start (the file also holds earlier runs).
    fn tail(&self) -> String {
        read_tail(&self.path, self.start_offset, LOG_TAIL_LINES)
            .unwrap_or_else(|e| format!("(could not read {}: {e})", self.path.display()))
    }
}

/// Returns the last `lines` lines of `path` after byte `from`, reading at most
/// 64 KiB so a huge log costs nothing.
pub(super) fn read_tail(path: &Path, from: u64, lines: usize) -> io::Result<String> {
    const WINDOW: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = from.max(len.saturating_sub(WINDOW)).min(len);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let keep = &all[all.len().saturating_sub(lines)..];
    Ok(keep.join("\n"))
}

/// What the wait for readiness watches besides the lock file.
pub(super) enum Watched<'a> {
    /// Our own postmaster: `try_wait` tells us if it died.
    Child(&'a mut Child),
    /// A postmaster from an earlier run: only its pid is known.
    Pid(i32),
}

/// Polls postmaster.pid until the postmaster named `expected_pid` reports
/// `ready`, which is how pg_ctl waits since PostgreSQL 10.
pub(super) fn wait_ready(
    data_dir: &Path,
    expected_pid: i32,
    mut watched: Watched<'_>,
    log: &ServerLog,
) -> Result<PidFile, EmbeddedError> {
    let started = Instant::now();
    loop {
        // A stale lock file from a crash may still say "ready", so the pid must
        // match the postmaster we are waiting for.
        if let Some(pf) = PidFile::read(data_dir)? {
            if pf.pid == expected_pid && pf.is_ready() {
                return Ok(pf);
            }
        }
        let exited = match &mut watched {
            Watched::Child(child) => child
                .try_wait()
                .map_err(|e| io_err("wait for postgres in", data_dir, e))?
                .map(describe_status),
            Watched::Pid(pid) => (!pid_alive(*pid)).then(|| "the process is gone".to_owned()),
        };
        if let Some(status) = exited {
            return Err(EmbeddedError::Exited {
                data_dir: data_dir.to_path_buf(),
                status,
                log: log.path.clone(),
                tail: log.tail(),
            });
        }
        if started.elapsed() >= START_TIMEOUT {
            return Err(EmbeddedError::StartTimeout {
                data_dir: data_dir.to_path_buf(),
                waited: started.elapsed(),
                log: log.path.clone(),
                tail: log.tail(),
            });
        }
        thread::sleep(POLL);
    }
}
