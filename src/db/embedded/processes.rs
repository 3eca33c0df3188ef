//! The operating system's side of the cluster: the `postgres` OS account the
//! cluster runs as when pgrpc runs as root, `postmaster.pid`, and the checks
//! that a pid is alive, is a postmaster, and is the postmaster of our data
//! directory, before it is ever signalled.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::{io_err, EmbeddedError};
use super::PG_USER;

/// The OS account the cluster runs as when pgrpc itself runs as root.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl Owner {
    /// `None` when we are an ordinary user (the cluster then runs as us);
    /// the `postgres` account when we are root.
    pub(super) fn for_current_process() -> Result<Option<Owner>, EmbeddedError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        lookup_user(PG_USER)
            .map(Some)
            .ok_or(EmbeddedError::NoPostgresUser)
    }

    /// Makes `cmd` run as this account. std drops supplementary groups itself
    /// when `uid` is set while running as root.
    pub(super) fn apply(owner: Option<Owner>, cmd: &mut Command) {
        if let Some(o) = owner {
            cmd.uid(o.uid).gid(o.gid);
        }
    }

    /// Gives `path` to this account (no-op for an ordinary user).
    pub(super) fn chown(owner: Option<Owner>, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(o) = owner {
            std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
                .map_err(|e| io_err("change the owner of", path, e))?;
        }
        Ok(())
    }
}

/// Looks up an OS user's uid and gid. Uses `getpwnam_r` rather than
/// `getpwnam` because the latter returns a static buffer, and tests start
/// clusters from several threads at once.
pub(super) fn lookup_user(name: &str) -> Option<Owner> {
    let cname = CString::new(name).ok()?;
    let mut buf: Vec<libc::c_char> = vec![0; 16 * 1024];
    // SAFETY: passwd is a plain C struct; all-zero is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call and buf.len()
    // is the true size of buf; the strings in pwd point into buf, which we do
    // not read after it is dropped.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(Owner {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

/// The lines of `postmaster.pid` we use. Layout (PostgreSQL `miscadmin.h`,
/// `LOCK_FILE_LINE_*`): 1 pid, 2 data dir, 3 start time, 4 port, 5 first
/// socket dir, 6 first listen address, 7 shared memory key, 8 postmaster status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PidFile {
    pub(super) pid: i32,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) port: Option<u16>,
    pub(super) socket_dir: Option<PathBuf>,
    pub(super) status: Option<String>,
}

impl PidFile {
    /// Parses the lock file text; `None` when line 1 is not (yet) a pid, which
    /// happens while the postmaster is still writing the file.
    pub(super) fn parse(text: &str) -> Option<PidFile> {
        let lines: Vec<&str> = text.lines().collect();
        let pid: i32 = lines.first()?.trim().parse().ok()?;
        if pid <= 0 {
            return None;
        }
        let field = |n: usize| lines.get(n - 1).map(|l| l.trim()).filter(|l| !l.is_empty());
        Some(PidFile {
            pid,
            data_dir: field(2).map(PathBuf::from),
            port: field(4).and_then(|p| p.parse().ok()),
            socket_dir: field(5).map(PathBuf::from),
            status: field(8).map(str::to_owned),
        })
    }

    /// Reads `<data_dir>/postmaster.pid`; `Ok(None)` when absent or half-written.
    pub(super) fn read(data_dir: &Path) -> Result<Option<PidFile>, EmbeddedError> {
        let path = data_dir.join("postmaster.pid");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(PidFile::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path, e)),
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        // PM_STATUS_READY, padded with spaces in the file.
        self.status.as_deref() == Some("ready")
    }
}

/// True when `pid` names a live process (a zombie counts as dead). EPERM means
/// it exists but belongs to another user, which is how pg_ctl reads it too.
pub(super) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        // kill(0 or negative) would address a whole process group.
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    let alive = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    alive && !is_zombie(pid)
}

/// A postmaster that exited but was not yet reaped by its parent (e.g. one
/// started by another `Cluster` in this process) still answers kill(pid, 0).
pub(super) fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Format: "pid (comm) S ..."; comm may contain spaces, so split at the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

/// Guards against a recycled pid: a postmaster.pid left by a crash may name a
/// pid that now belongs to an unrelated process. Where /proc is unavailable we
/// cannot tell, and trust kill(pid, 0) as pg_ctl does.
pub(super) fn looks_like_postmaster(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => matches!(comm.trim(), "postgres" | "postmaster"),
        Err(_) => true,
    }
}

/// True when `pid` is a postmaster serving `data_dir` (canonical): a
/// `postgres` process, not a backend (they retitle themselves `postgres: …`),
/// whose working directory is the data directory (the postmaster chdirs
/// there). Where /proc cannot tell, the pid file's own data-directory line,
/// already checked by the caller, is trusted as pg_ctl does.
pub(super) fn is_postmaster_of(pid: i32, data_dir: &Path) -> bool {
    if !pid_alive(pid) || !looks_like_postmaster(pid) {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if let Ok(cmdline) = fs::read(proc.join("cmdline")) {
        if cmdline.starts_with(b"postgres:") {
            return false;
        }
    }
    match fs::read_link(proc.join("cwd")) {
        Ok(cwd) => cwd == data_dir,
        Err(_) => true,
    }
}

/// Sends `sig` to `pid`, never to a process group.
pub(super) fn send_signal(pid: i32, sig: libc::c_int) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    // SAFETY: pid is a positive process id; no memory is involved.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        // Already gone is what we want.
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(e)
        }
    }
}
