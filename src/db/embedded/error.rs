//! The embedded cluster's one error type: everything that can go wrong while
//! finding, initialising, starting or stopping it, each message a sentence for
//! an operator.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::binaries::no_binaries_message;

/// Everything that can go wrong while finding, initialising, starting or
/// stopping the embedded cluster. Each message is a sentence for an operator.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No PostgreSQL 15+ installation with both `initdb` and `postgres` was found.
    #[error("{}", no_binaries_message(.searched, .too_old))]
    NoBinaries {
        /// Directories that were looked at.
        searched: Vec<PathBuf>,
        /// Installations that were found but are older than PostgreSQL 15 (dir, version).
        too_old: Vec<(PathBuf, String)>,
    },
    /// Running as root, but there is no `postgres` OS user to own the cluster.
    #[error(
        "pgrpc runs as root but there is no `postgres` OS user to run the embedded \
         PostgreSQL cluster as (PostgreSQL refuses to run as root); install the \
         PostgreSQL server package, which creates that user, or run pgrpc as an \
         ordinary user"
    )]
    NoPostgresUser,
    /// A file system operation failed.
    #[error("could not {action} {}: {source}", .path.display())]
    Io {
        /// What was being done, e.g. "create directory".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The `postgres` OS user cannot reach the data directory.
    #[error(
        "the `postgres` OS user cannot write to the data directory {}; PostgreSQL runs \
         as that user, so every parent directory must be traversable by it (for example \
         `chmod o+x` on each parent, or choose a data directory outside a private home \
         directory such as /root)",
        .dir.display()
    )]
    DataDirNotReachable {
        /// The data directory.
        dir: PathBuf,
    },
    /// The short socket directory under /tmp exists but belongs to someone else.
    #[error("refusing to use socket directory {}: {reason}", .dir.display())]
    UnsafeSocketDir {
        /// The socket directory.
        dir: PathBuf,
        /// Why it is not safe.
        reason: String,
    },
    /// `initdb` failed.
    #[error("initdb failed to create a cluster in {} ({status}): {stderr}", .data_dir.display())]
    Initdb {
        /// The data directory.
        data_dir: PathBuf,
        /// How initdb exited.
        status: String,
        /// What initdb wrote to stderr.
        stderr: String,
    },
    /// A program could not be run at all.
    #[error("could not run {}: {source}", .program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The postmaster exited before it was ready.
    #[error(
        "PostgreSQL for data directory {} exited during start-up ({status}); the full log \
         is in {}, its last lines are:\n{tail}",
        .data_dir.display(), .log.display()
    )]
    Exited {
        /// The data directory.
        data_dir: PathBuf,
        /// How the postmaster exited.
        status: String,
        /// The server log file.
        log: PathBuf,
        /// The last lines of the server log.
        tail: String,
    },
    /// The postmaster did not report `ready` in time.
    #[error(
        "PostgreSQL for data directory {} did not become ready within {} s; the full log \
         is in {}, its last lines are:\n{tail}",
        .data_dir.display(), .waited.as_secs(), .log.display()
    )]
    StartTimeout {
        /// The data directory.
        data_dir: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// The server log file.
        log: PathBuf,
        /// The last lines of the server log.
        tail: String,
    },
    /// postmaster.pid could not be understood.
    #[error("the PostgreSQL lock file {} is malformed: {reason}", .path.display())]
    BadPidFile {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The postmaster would not exit, even after SIGQUIT.
    #[error(
        "PostgreSQL (pid {pid}) for data directory {} did not shut down, even after an \
         immediate-shutdown request (SIGQUIT)",
        .data_dir.display()
    )]
    StopTimeout {
        /// The postmaster's pid.
        pid: i32,
        /// The data directory.
        data_dir: PathBuf,
    },
}

pub(super) fn io_err(action: &'static str, path: &Path, source: io::Error) -> EmbeddedError {
    EmbeddedError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}
