// Deployment topologies for tests: extra PostgreSQL clusters on TCP (with TLS when asked), test certificates, a gateway start that must fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pgrpc::db::embedded::{Cluster, ClusterSpec};

use crate::harness::pg_tempdir;
use crate::process::{free_port, pgrpc_command};

/// A function to call, in an exposed schema of its own (`sql/` re-creates
/// `api` on every migration, so a fixture there would not survive
/// `db.migrate_on_start`). Pair with [`PROBE_SCHEMAS`].
pub const PROBE_FIXTURE: &str = "
    create schema probe;
    grant usage on schema probe to web_anon, authenticator;
    create function probe.ping() returns text language sql stable as $$ select 'pong' $$;
    grant execute on function probe.ping() to web_anon;";

/// `db.schemas` that exposes [`PROBE_FIXTURE`]'s `ping`.
pub const PROBE_SCHEMAS: (&str, &str) = ("PGRPC_DB_SCHEMAS", "probe");

/// The `postgres` OS user's uid and gid when the tests run as root (the
/// clusters then run as that user, which must own their key files).
fn postgres_owner() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: a valid C string; the result is read at once, before any other
    // getpw* call on this thread.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "no postgres OS user");
    // SAFETY: checked non-null above.
    let pw = unsafe { &*pw };
    Some((pw.pw_uid, pw.pw_gid))
}

/// Write `text` to `path` with `mode`, owned by the cluster's OS user.
pub fn write_for_postgres(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write file");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
        .expect("chmod");
    if let Some((uid, gid)) = postgres_owner() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

/// A PostgreSQL cluster of its own that also listens on TCP 127.0.0.1:`port`,
/// with the `pg_hba.conf` the test gives; stopped and removed when dropped.
pub struct TcpCluster {
    /// The running cluster.
    pub cluster: Cluster,
    /// Its TCP port (also the socket file's number).
    pub port: u16,
    /// Holds data/, the hba file and whatever the test writes there.
    _dir: tempfile::TempDir,
    /// How it was started, for [`TcpCluster::restart`].
    settings: Vec<(String, String)>,
}

impl TcpCluster {
    /// Start with `hba` as pg_hba.conf and extra `settings`; files the
    /// settings name must already be in `dir` (see [`TcpCluster::dir_for`]).
    pub fn start(dir: tempfile::TempDir, hba: &str, settings: &[(&str, String)]) -> TcpCluster {
        let port = free_port();
        let hba_path = dir.path().join("pg_hba.conf");
        write_for_postgres(&hba_path, hba, 0o644);
        let mut all: Vec<(String, String)> = vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("hba_file".into(), hba_path.display().to_string()),
            ("max_connections".into(), "60".into()),
        ];
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let spec = ClusterSpec {
            data_dir: dir.path().join("data"),
            port,
            fast: true,
            settings: all.clone(),
        };
        let cluster = Cluster::start(&spec).expect("start the extra cluster");
        TcpCluster {
            cluster,
            port,
            _dir: dir,
            settings: all,
        }
    }

    /// Start it again after `cluster.stop()`, on the same data and port.
    pub fn restart(&mut self) {
        let spec = ClusterSpec {
            data_dir: self._dir.path().join("data"),
            port: self.port,
            fast: true,
            settings: self.settings.clone(),
        };
        self.cluster = Cluster::start(&spec).expect("restart the extra cluster");
    }

    /// A directory the cluster's OS user can read, for its files.
    pub fn dir_for() -> tempfile::TempDir {
        pg_tempdir("pgrpc-topo-")
    }

    /// Create database `pgrpc` with the migrations and `sql/` applied, plus
    /// `extra_sql` (fixtures), over the Unix socket as the superuser.
    pub fn prepare_app_db(&self, extra_sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let admin = pgrpc::db::connect(&self.socket_config("postgres", "postgres"))
                .await
                .expect("connect as postgres");
            pgrpc::db::ensure_database(&admin, "pgrpc")
                .await
                .expect("create db");
            let mut owner = pgrpc::db::connect(&self.socket_config("postgres", "pgrpc"))
                .await
                .expect("connect");
            pgrpc::db::migrate::migrate(&mut owner)
                .await
                .expect("migrate");
            owner.batch_execute(extra_sql).await.expect("fixtures");
        });
    }

    /// Settings for the Unix socket as `user` on `db`.
    pub fn socket_config(&self, user: &str, db: &str) -> tokio_postgres::Config {
        pgrpc::db::socket_config(&self.cluster, user, db)
    }

    /// Run `sql` as the superuser on `db` and return the first column of the
    /// first row as text (NULL → "").
    pub fn query_text(&self, db: &str, sql: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let c = pgrpc::db::connect(&self.socket_config("postgres", db))
                .await
                .expect("connect as postgres");
            let rows = c.simple_query(sql).await.expect(sql);
            rows.iter()
                .find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some(r.get(0).unwrap_or_default().to_string())
                    }
                    _ => None,
                })
                .unwrap_or_default()
        })
    }
}

impl Drop for TcpCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}

/// A CA, and certificates it signed, as PEM files in a directory.
pub struct Pki {
    /// The CA certificate (what `sslrootcert` names).
    pub ca: PathBuf,
    /// Server certificate for `localhost` and 127.0.0.1, and its key.
    pub server_cert: PathBuf,
    /// The server's key (owned by the cluster's OS user, mode 0600).
    pub server_key: PathBuf,
    /// A client certificate with CN `certgw` (a login role that is a member
    /// of `authenticator`).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

impl Pki {
    /// Make a CA named `name` and its certificates in `dir`.
    pub fn create(dir: &Path, name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key"))
            .expect("self-sign the CA");

        let leaf = |sans: Vec<String>, cn: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(sans).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &ca).expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key_pem) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_pem, client_key_pem) =
            leaf(Vec::new(), "certgw", ExtendedKeyUsagePurpose::ClientAuth);
        let path = |file: &str| dir.join(format!("{name}-{file}"));
        let pki = Pki {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
        };
        write_for_postgres(&pki.ca, &ca.pem(), 0o644);
        write_for_postgres(&pki.server_cert, &server_pem, 0o644);
        write_for_postgres(&pki.server_key, &server_key_pem, 0o600);
        // The gateway (this process's user) reads the client key.
        std::fs::write(&pki.client_cert, client_pem).expect("write");
        std::fs::write(&pki.client_key, client_key_pem).expect("write");
        std::fs::set_permissions(
            &pki.client_key,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod");
        pki
    }

    /// Server settings for `ssl = on` with this PKI (client certificates
    /// are checked against the same CA).
    pub fn server_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ssl", "on".into()),
            ("ssl_cert_file", self.server_cert.display().to_string()),
            ("ssl_key_file", self.server_key.display().to_string()),
            ("ssl_ca_file", self.ca.display().to_string()),
        ]
    }
}

/// Start the real binary with `env` (external mode) and expect it to exit
/// with an error by itself within `limit`: returns its log.
pub fn start_fails(env: &[(&str, String)], limit: Duration) -> String {
    let dir = pg_tempdir("pgrpc-fail-");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = pgrpc_command();
    cmd.env("PGRPC_SERVER_PORT", free_port().to_string())
        .env("PGRPC_ADMIN_PORT", free_port().to_string())
        .env("PGRPC_DB_DATA_DIR", dir.path().join("data"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = cmd.spawn().expect("start pgrpc");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pgrpc did not refuse to start:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(!status.success(), "pgrpc exited successfully:\n{text}");
    text
}

/// Whether the suite runs its request pools through PgBouncer
/// (`PGRPC_TEST_PGBOUNCER=1`, see the harness).
pub fn pgbouncer_wanted() -> bool {
    std::env::var("PGRPC_TEST_PGBOUNCER").is_ok_and(|v| v == "1")
}

/// The distribution's PgBouncer in `pool_mode = transaction` with its stock
/// settings otherwise (no `ignore_startup_parameters`), on 127.0.0.1 and a
/// free port, in front of a cluster's Unix socket; every database of the
/// cluster is reachable by its own name (the `*` fallback). Runs as the
/// cluster's OS user, which alone may open that socket. Stopped when dropped.
pub struct Bouncer {
    child: std::sync::Mutex<Option<std::process::Child>>,
    /// Its TCP port.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// Where the distribution installs it.
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

impl Bouncer {
    /// Start in front of `cluster`'s socket; waits until it accepts connections.
    pub fn start(cluster: &Cluster) -> Bouncer {
        assert!(
            Path::new(PGBOUNCER).exists(),
            "PgBouncer is not installed ({PGBOUNCER}); apt-get install pgbouncer"
        );
        let dir = pg_tempdir("pgrpc-pgbouncer-");
        let port = free_port();
        let users = dir.path().join("userlist.txt");
        write_for_postgres(&users, "\"authenticator\" \"\"\n\"postgres\" \"\"\n", 0o644);
        let ini = dir.path().join("pgbouncer.ini");
        write_for_postgres(
            &ini,
            &format!(
                "[databases]\n* = host={} port={}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = transaction\n\
                 max_client_conn = 1000\ndefault_pool_size = 8\n\
                 admin_users = postgres\n",
                cluster.socket_dir().display(),
                cluster.port(),
                users.display()
            ),
            0o644,
        );
        let log = std::fs::File::create(dir.path().join("pgbouncer.log")).expect("log file");
        let mut cmd = if postgres_owner().is_some() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", PGBOUNCER]);
            c
        } else {
            std::process::Command::new(PGBOUNCER)
        };
        let child = cmd
            .arg(&ini)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Bouncer {
            child: std::sync::Mutex::new(Some(child)),
            port,
            dir,
        };
        let up = crate::process::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "pgbouncer did not start:\n{}", bouncer.log());
        bouncer
    }

    /// Settings to reach database `db` through PgBouncer as `user`.
    pub fn config(&self, user: &str, db: &str) -> tokio_postgres::Config {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(db)
            .ssl_mode(tokio_postgres::config::SslMode::Disable)
            .connect_timeout(Duration::from_secs(5));
        cfg
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// SIGTERM (immediate shutdown) and wait; a second call does nothing.
    pub fn stop(&self) {
        let taken = self.child.lock().map(|mut c| c.take());
        if let Ok(Some(mut child)) = taken {
            // runuser passes the signal on to pgbouncer.
            let pid = i32::try_from(child.id()).expect("pid");
            // SAFETY: signalling our own child process by its pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A streaming standby of `primary`, made with `pg_basebackup -R` (its
/// `primary_conninfo` names the primary's socket), started with `hba` and
/// `cluster_name = name`, which is the name `synchronous_standby_names`
/// matches.
pub fn start_standby(primary: &TcpCluster, name: &str, hba: &str) -> TcpCluster {
    start_standby_with(primary, name, hba, &[])
}

/// [`start_standby`] with extra server `settings` (a replica that applies
/// WAL late: `recovery_min_apply_delay`).
pub fn start_standby_with(
    primary: &TcpCluster,
    name: &str,
    hba: &str,
    settings: &[(&str, String)],
) -> TcpCluster {
    let dir = TcpCluster::dir_for();
    base_backup(
        primary.cluster.socket_dir(),
        primary.port,
        &dir.path().join("data"),
    );
    let mut all = vec![("cluster_name", name.to_string())];
    all.extend(settings.iter().cloned());
    TcpCluster::start(dir, hba, &all)
}

/// `pg_basebackup -R` of the cluster listening on `socket_dir`/`port` into
/// the new directory `data` (owned by the cluster's OS user, mode 0700): a
/// standby's data directory, its `primary_conninfo` naming that socket.
pub fn base_backup(socket_dir: &Path, port: u16, data: &Path) {
    std::fs::create_dir(data).expect("mkdir");
    std::fs::set_permissions(data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    if let Some((uid, gid)) = postgres_owner() {
        std::os::unix::fs::chown(data, Some(uid), Some(gid)).expect("chown");
    }
    let bindir = Cluster::find_bindir().expect("PostgreSQL binaries");
    let mut cmd = if postgres_owner().is_some() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(bindir.join("pg_basebackup"));
        c
    } else {
        std::process::Command::new(bindir.join("pg_basebackup"))
    };
    let out = cmd
        .arg("-D")
        .arg(data)
        // A fast checkpoint: the default spreads it over minutes.
        .args(["-R", "-X", "stream", "-c", "fast", "-U", "postgres", "-h"])
        .arg(socket_dir)
        .args(["-p", &port.to_string()])
        .current_dir("/")
        .output()
        .expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
