//! The directories of an embedded cluster: the data directory (created 0700 for
//! the cluster's OS user), the Unix socket directory (the data directory, or a
//! short private one under /tmp when the socket path would not fit in
//! `sun_path`), and initdb on an empty data directory.
//!
//! It does not start or stop a server (the parent module does) and knows
//! nothing of databases or roles.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tracing::info;

use super::error::{describe_status, io_err, EmbeddedError};
use super::processes::Owner;
use super::PG_USER;

/// Longest socket path we place inside the data directory. `sun_path` holds
/// 108 bytes including the NUL (see unix(7)); the margin keeps us clear of
/// PostgreSQL's own check, which also has to fit the `.lock` file name.
pub(super) const MAX_SOCKET_PATH: usize = 100;

/// 64-bit FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/): tiny, and its
/// value never changes between Rust releases, unlike `DefaultHasher`, so the
/// short socket directory is the same on every run.
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The directory for the Unix socket: the data directory itself (private,
/// mode 0700), unless the socket path would not fit in `sun_path`.
pub(super) fn socket_dir_for(data_dir: &Path, port: u16) -> PathBuf {
    let socket = data_dir.join(format!(".s.PGSQL.{port}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        data_dir.to_path_buf()
    } else {
        let hash = fnv1a64(data_dir.as_os_str().as_bytes());
        PathBuf::from(format!("/tmp/pgrpc-{hash:016x}"))
    }
}

/// Creates the short socket directory under /tmp, or checks that an existing
/// one is ours: /tmp is shared, and a directory planted by another user would
/// let them see or replace our socket.
pub(super) fn prepare_short_socket_dir(
    dir: &Path,
    owner: Option<Owner>,
) -> Result<(), EmbeddedError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("create socket directory", dir, e)),
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| io_err("inspect", dir, e))?;
    if !meta.is_dir() {
        return Err(EmbeddedError::UnsafeSocketDir {
            dir: dir.to_path_buf(),
            reason: "it is not a directory".into(),
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let expected = owner.map_or(me, |o| o.uid);
    if meta.uid() != expected && meta.uid() != me {
        return Err(EmbeddedError::UnsafeSocketDir {
            dir: dir.to_path_buf(),
            reason: format!(
                "it belongs to uid {}, not to uid {expected}; remove it and start again",
                meta.uid()
            ),
        });
    }
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_err("restrict the permissions of", dir, e))?;
    }
    Owner::chown(owner, dir)
}

/// Creates the data directory (0700, owned by the cluster's OS user) and any
/// missing parents (as the current user, default permissions, so they stay
/// traversable). An existing directory without PG_VERSION is handed to the
/// cluster's OS user too, so initdb can fill it.
pub(super) fn prepare_data_dir(data_dir: &Path, owner: Option<Owner>) -> Result<(), EmbeddedError> {
    if let Some(parent) = data_dir.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("create directory", parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if data_dir.join("PG_VERSION").exists() {
                // An initialised cluster: PostgreSQL checks its own ownership and mode.
                return Ok(());
            }
        }
        Err(e) => return Err(io_err("create data directory", data_dir, e)),
    }
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("restrict the permissions of", data_dir, e))?;
    Owner::chown(owner, data_dir)
}

/// When root: proves that the `postgres` user can reach and write the data
/// directory before initdb or postgres fail with a less clear message.
pub(super) fn check_reachable(data_dir: &Path, owner: Option<Owner>) -> Result<(), EmbeddedError> {
    if owner.is_none() {
        return Ok(());
    }
    let sh = Path::new("/bin/sh");
    let mut cmd = Command::new(sh);
    // The path is passed as "$1", so no quoting or shell parsing of it happens.
    cmd.args(["-c", "test -w \"$1\" && test -x \"$1\"", "sh"])
        .arg(data_dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Owner::apply(owner, &mut cmd);
    let status = cmd.status().map_err(|source| EmbeddedError::Spawn {
        program: sh.to_path_buf(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(EmbeddedError::DataDirNotReachable {
            dir: data_dir.to_path_buf(),
        })
    }
}

/// Runs initdb on an empty data directory.
pub(super) fn run_initdb(
    bindir: &Path,
    data_dir: &Path,
    fast: bool,
    owner: Option<Owner>,
) -> Result<(), EmbeddedError> {
    let program = bindir.join("initdb");
    let mut cmd = Command::new(&program);
    // Trust authentication is safe here because the server never listens on
    // TCP (listen_addresses is empty) and its only Unix socket lives in a
    // private 0700 directory, with unix_socket_permissions=0700: only the
    // cluster's OS user (and root) can connect at all.
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
        // A neutral working directory: the postgres user may not be able to
        // enter ours (e.g. /root).
        .current_dir("/")
        .stdin(Stdio::null());
    if fast {
        cmd.arg("--no-sync");
    }
    Owner::apply(owner, &mut cmd);
    let started = Instant::now();
    let out = cmd.output().map_err(|source| EmbeddedError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(EmbeddedError::Initdb {
            data_dir: data_dir.to_path_buf(),
            status: describe_status(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    info!(
        data_dir = %data_dir.display(),
        initdb = %program.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "initdb created a new PostgreSQL cluster"
    );
    Ok(())
}
