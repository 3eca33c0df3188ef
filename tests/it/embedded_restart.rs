// The embedded cluster is stopped at SIGTERM even when it was restarted under the gateway (pg_ctl restart), with the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pgrpc::db::embedded::Cluster;

use crate::harness::pg_tempdir;
use crate::process::{wait_until, Gateway};

/// Line 1 of `postmaster.pid`, when the file is there.
fn postmaster_pid(data: &Path) -> Option<i32> {
    std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Processes whose working directory is `data` (a postmaster and its
/// children chdir there), zombies aside.
fn processes_in(data: &Path) -> Vec<i32> {
    let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie && std::fs::read_link(entry.path().join("cwd")).ok() == Some(data.clone()) {
            found.push(pid);
        }
    }
    found
}

/// A postmaster the test started is stopped (SIGQUIT) if it is still there
/// when the test ends, so a failure does not leak it.
struct Leftover {
    data: PathBuf,
    pid: i32,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if processes_in(&self.data).contains(&self.pid) {
            // SAFETY: signalling the postmaster this test started, by pid.
            unsafe { libc::kill(self.pid, libc::SIGQUIT) };
        }
    }
}

#[test]
fn a_cluster_restarted_with_pg_ctl_is_stopped_at_sigterm() {
    // The data directory outlives the gateway (whose own temp dir goes
    // with it), so what is left on it can be seen.
    let dir = pg_tempdir("pgrpc-restart-");
    let data = dir.path().join("data");
    let gw = Gateway::shipped(&data, &[]);
    let data = std::fs::canonicalize(&data).expect("data dir");
    let first = postmaster_pid(&data).expect("the embedded cluster runs");

    // A DBA restarts the cluster (as the postgres OS user when we are root,
    // since PostgreSQL refuses root).
    let pg_ctl = Cluster::find_bindir()
        .expect("PostgreSQL binaries")
        .join("pg_ctl");
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    // No pipes: the new postmaster inherits them and would hold them open.
    let status = cmd
        .args(["restart", "-w", "-m", "fast", "-D"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl restart");
    assert!(status.success(), "pg_ctl restart failed: {status}");
    let second = postmaster_pid(&data).expect("the restarted cluster runs");
    let _leftover = Leftover {
        data: data.clone(),
        pid: second,
    };
    assert_ne!(first, second, "pg_ctl restart started a new postmaster");
    assert!(
        wait_until(Duration::from_secs(30), || gw.ready() == 200),
        "the gateway did not reconnect to the restarted cluster:\n{}",
        gw.log()
    );

    let (status, log) = gw.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        wait_until(Duration::from_secs(30), || processes_in(&data).is_empty()),
        "PostgreSQL is still running on the data directory (pids {:?}):\n{log}",
        processes_in(&data)
    );
    assert!(
        !data.join("postmaster.pid").exists(),
        "postmaster.pid is left behind:\n{log}"
    );
}
