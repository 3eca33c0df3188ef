//! Finding PostgreSQL's server binaries: the directories to look in
//! (`pg_config`, PATH, the distributions' layouts), the newest installed
//! version not older than [`MIN_MAJOR`], and the message that says what to
//! install when there is none. Runs the binaries only for `--version`.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::MIN_MAJOR;

/// Builds the one-paragraph [`EmbeddedError::NoBinaries`] message.
pub(super) fn no_binaries_message(searched: &[PathBuf], too_old: &[(PathBuf, String)]) -> String {
    let mut msg = format!(
        "No PostgreSQL {MIN_MAJOR} or newer server binaries (initdb and postgres) were found, \
         and pgrpc needs them to run its embedded database."
    );
    if !too_old.is_empty() {
        let old: Vec<String> = too_old
            .iter()
            .map(|(dir, version)| format!("{version} in {}", dir.display()))
            .collect();
        msg.push_str(&format!(" Too old: {}.", old.join(", ")));
    }
    if !searched.is_empty() {
        let dirs: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
        msg.push_str(&format!(" Searched: {}.", dirs.join(", ")));
    }
    msg.push_str(
        " Install them with `apt-get install postgresql` on Debian or Ubuntu, \
         `dnf install postgresql-server` on Fedora or RHEL, or `brew install postgresql@16` \
         on macOS (and make sure `pg_config` or the server's bin directory is on PATH), \
         or set `db.uri` to use an existing PostgreSQL server instead.",
    );
    msg
}

/// Parses the major version from `postgres --version` output such as
/// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" or
/// "postgres (PostgreSQL) 17beta1". Returns (major, full version text).
pub(super) fn parse_version(output: &str) -> Option<(u32, String)> {
    let line = output.lines().next()?;
    let after = match line.find("(PostgreSQL)") {
        Some(i) => &line[i + "(PostgreSQL)".len()..],
        None => line,
    };
    let version = after.split_whitespace().next()?;
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().ok()?;
    Some((major, version.to_owned()))
}

/// Numeric components of a version, so "15.18" sorts above "15.2".
pub(super) fn version_key(version: &str) -> Vec<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// Directories that may hold PostgreSQL server binaries, best guesses first.
pub(super) fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let dir = text.trim();
            if !dir.is_empty() {
                dirs.push(PathBuf::from(dir));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| d.is_absolute()));
    }
    // Debian/Ubuntu keep every major version side by side here.
    dirs.extend(glob_bindirs(Path::new("/usr/lib/postgresql"), "", "bin"));
    // Also the layouts of the PGDG RPMs and Homebrew (keg-only, so not on PATH).
    dirs.extend(glob_bindirs(Path::new("/usr"), "pgsql-", "bin"));
    dirs.extend(glob_bindirs(
        Path::new("/opt/homebrew/opt"),
        "postgresql@",
        "bin",
    ));
    dirs.extend(glob_bindirs(
        Path::new("/usr/local/opt"),
        "postgresql@",
        "bin",
    ));
    dirs
}

/// `<root>/<prefix>*/<leaf>` for every entry of `root`, in name order.
pub(super) fn glob_bindirs(root: &Path, prefix: &str, leaf: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().as_bytes().starts_with(prefix.as_bytes()))
        .map(|e| e.path().join(leaf))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// The real directory of a usable installation found through `dir`: the
/// directory `postgres` resolves to (so symlinks such as /usr/local/bin/postgres
/// collapse onto /usr/lib/postgresql/15/bin), provided `initdb` is there too.
pub(super) fn resolve_bindir(dir: &Path) -> Option<PathBuf> {
    if !dir.join("initdb").is_file() || !dir.join("postgres").is_file() {
        return None;
    }
    let real = fs::canonicalize(dir.join("postgres")).ok()?;
    let real_dir = real.parent()?.to_path_buf();
    real_dir.join("initdb").is_file().then_some(real_dir)
}

/// `postgres --version` of the installation in `bindir`.
pub(super) fn server_version(bindir: &Path) -> Option<(u32, String)> {
    // --version is answered before PostgreSQL's refusal to run as root.
    let out = Command::new(bindir.join("postgres"))
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}
