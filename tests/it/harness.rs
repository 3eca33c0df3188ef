//! Shared test harness: one throwaway PostgreSQL cluster per test run, one
//! database per test cloned from a template that already has the migrations,
//! `sql/` and the test fixtures applied, and the app served in-process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use pgrpc::config::Config;
use pgrpc::db::embedded::{Cluster, ClusterSpec};
use pgrpc::http::{self, AppState};
use pgrpc::jwt::{Jwt, JwtSettings};
use serde_json::Value;

/// The HMAC secret every in-process test app uses.
pub const SECRET: &str = "test-secret-test-secret-test-secret-0123";
const TEMPLATE: &str = "pgrpc_template";
/// Fixture files applied to the template after migrations and sql/, in order.
const FIXTURES: &[(&str, &str)] = &[
    ("core.sql", include_str!("../fixtures/core.sql")),
    ("seed.sql", include_str!("../fixtures/seed.sql")),
    ("jwt.sql", include_str!("../fixtures/jwt.sql")),
];

struct Shared {
    cluster: Cluster,
    /// Citus workers (empty unless `PGRPC_TEST_CITUS=1`; `cluster` is then the coordinator).
    workers: Vec<Cluster>,
    /// PgBouncer in front of the cluster for the request pools, when
    /// `PGRPC_TEST_PGBOUNCER=1` (see `topology::Bouncer`).
    bouncer: Option<crate::topology::Bouncer>,
    /// Streaming replicas of `cluster` (empty unless `PGRPC_TEST_REPLICAS=1`,
    /// see `replica_suite`).
    replicas: Vec<Cluster>,
    next: AtomicUsize,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// A temp dir under /tmp, mode 0755: when the tests run as root, PostgreSQL
/// runs as the `postgres` OS user, which must traverse it.
pub fn pg_tempdir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod temp dir");
    dir
}

/// Run `f` with a superuser connection to database `pgrpc` of the cluster
/// whose socket is in `socket`, on a runtime of its own (for sync tests).
pub fn superuser<T>(
    socket: &std::path::Path,
    port: u16,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> T,
) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host_path(socket)
            .port(port)
            .user("postgres")
            .dbname("pgrpc");
        let client = pgrpc::db::connect(&cfg)
            .await
            .expect("connect to the cluster as postgres");
        f(&client).await
    })
}

extern "C" fn stop_cluster_at_exit() {
    // Runs when the test binary exits: statics are never dropped, so stop the
    // postmaster and remove its directory here, or every run would leak both.
    if let Some(shared) = SHARED.get() {
        if let Some(bouncer) = &shared.bouncer {
            bouncer.stop();
        }
        let _ = shared.cluster.stop();
        for w in &shared.workers {
            let _ = w.stop();
        }
        for r in &shared.replicas {
            let _ = r.stop();
        }
        let _ = std::fs::remove_dir_all(shared._dir.path());
    }
}

fn shared() -> &'static Shared {
    // Built on its own thread: tests call this from inside their runtime,
    // which cannot block on another one.
    SHARED.get_or_init(|| {
        std::thread::spawn(build_shared)
            .join()
            .expect("test cluster set-up panicked")
    })
}

fn build_shared() -> Shared {
    {
        let dir = pg_tempdir("pgrpc-test-");
        let mut settings = vec![("max_connections".into(), "300".into())];
        let citus = crate::citus::enabled();
        if citus {
            settings.extend(crate::citus::settings());
        }
        let spec = ClusterSpec {
            data_dir: dir.path().join("data"),
            port: 5432,
            fast: true,
            settings: settings.clone(),
        };
        let workers = if citus {
            crate::citus::start_workers(dir.path(), &settings)
        } else {
            Vec::new()
        };
        let cluster = Cluster::start(&spec).expect("start the test cluster");
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe {
            libc::atexit(stop_cluster_at_exit);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let admin =
                pgrpc::db::connect(&pgrpc::db::socket_config(&cluster, "postgres", "postgres"))
                    .await
                    .expect("connect as postgres");
            admin
                .batch_execute(&format!("create database {TEMPLATE}"))
                .await
                .expect("create template");
            if citus {
                crate::citus::prepare_template(&cluster, &workers, TEMPLATE).await;
            }
            let mut owner =
                pgrpc::db::connect(&pgrpc::db::socket_config(&cluster, "postgres", TEMPLATE))
                    .await
                    .expect("connect to template");
            pgrpc::db::migrate::migrate(&mut owner)
                .await
                .expect("migrate template");
            if citus {
                crate::citus::before_fixtures(&owner).await;
            }
            // Tests lower bcrypt's cost through the settings table when there is one.
            for (name, sql) in FIXTURES {
                owner
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("fixture {name}: {e:?}"));
            }
            drop(owner);
            if citus {
                crate::citus::finish_template(&cluster, &workers, TEMPLATE).await;
            }
        });
        drop(rt);
        let bouncer =
            crate::topology::pgbouncer_wanted().then(|| crate::topology::Bouncer::start(&cluster));
        // Copies of the finished template: every test database then streams over.
        let replicas = if crate::replica_suite::enabled() {
            assert!(
                !citus,
                "PGRPC_TEST_REPLICAS and PGRPC_TEST_CITUS do not combine"
            );
            crate::replica_suite::start(&cluster, dir.path(), &settings)
        } else {
            Vec::new()
        };
        Shared {
            cluster,
            workers,
            bouncer,
            replicas,
            next: AtomicUsize::new(0),
            _dir: dir,
        }
    }
}

/// The test cluster (for tests that need its socket).
pub fn cluster() -> &'static Cluster {
    &shared().cluster
}

/// The Citus workers (empty unless `PGRPC_TEST_CITUS=1`).
pub fn workers() -> &'static [Cluster] {
    &shared().workers
}

/// The streaming replicas (empty unless `PGRPC_TEST_REPLICAS=1`).
pub fn replicas() -> &'static [Cluster] {
    &shared().replicas
}

/// A database of the test cluster, fresh from the template.
pub struct TestDb {
    /// Its name.
    pub name: String,
}

impl TestDb {
    /// Create a fresh database.
    pub async fn new() -> TestDb {
        let s = shared();
        let name = format!("t{}", s.next.fetch_add(1, Ordering::SeqCst));
        let admin = pgrpc::db::connect(&pgrpc::db::socket_config(
            &s.cluster, "postgres", "postgres",
        ))
        .await
        .expect("connect as postgres");
        admin
            .batch_execute(&format!(
                "create database {name} template {TEMPLATE} strategy file_copy"
            ))
            .await
            .expect("create test database");
        crate::citus::create_database(&s.workers, &name, TEMPLATE).await;
        TestDb { name }
    }

    /// Connection settings as `user`.
    pub fn config(&self, user: &str) -> tokio_postgres::Config {
        pgrpc::db::socket_config(cluster(), user, &self.name)
    }

    /// A superuser connection (to arrange and inspect state directly).
    pub async fn admin(&self) -> tokio_postgres::Client {
        pgrpc::db::connect(&self.config("postgres"))
            .await
            .expect("connect as postgres")
    }
}

/// A configured in-process gateway on its own test database.
pub struct Ctx {
    /// The database.
    pub db: TestDb,
    /// The app state (cache, pool, config).
    pub state: web::Data<AppState>,
}

/// Build a context with config overrides in TOML (`""` for defaults).
///
/// The JWT verifier is built from the `[jwt]` section exactly as the server
/// builds it (`keys::load`), with `SECRET` as the key unless the section
/// names one.
pub async fn setup_with(toml: &str) -> Ctx {
    let (mut config, _) = Config::from_toml(toml, std::path::Path::new("test.toml"), Vec::new())
        .expect("test config is valid");
    let j = &config.jwt;
    if j.secret.is_none()
        && j.secret_file.is_none()
        && j.public_key_file.is_none()
        && j.private_key_file.is_none()
        && j.jwks_file.is_none()
    {
        config.jwt.secret = Some(SECRET.to_string());
    }
    let jwt = pgrpc::jwt::keys::load(&config, false).expect("test JWT config is valid");
    setup_jwt(toml, jwt).await
}

/// Build a context with default config.
pub async fn setup() -> Ctx {
    setup_with("").await
}

/// Build a context with config overrides and explicit JWT settings.
pub async fn setup_full(toml: &str, jwt: JwtSettings) -> Ctx {
    setup_jwt(toml, Jwt::new(jwt).expect("test JWT settings are valid")).await
}

async fn setup_jwt(toml: &str, jwt: Jwt) -> Ctx {
    let db = TestDb::new().await;
    let (mut config, _) = Config::from_toml(toml, std::path::Path::new("test.toml"), Vec::new())
        .expect("test config is valid");
    // The in-process app is one worker; each test database takes few
    // connections so that many tests fit the cluster's max_connections.
    config.server.workers = 1;
    config.db.pool_size = config.db.pool_size.min(4);
    if !shared().replicas.is_empty() {
        crate::replica_suite::configure(&mut config, &shared().replicas, &db.name);
    }
    let pools = match &shared().bouncer {
        // As the server builds them with db.prepared_statements = false and
        // db.listen_uri set: requests through PgBouncer, the schema cache on
        // a direct connection.
        Some(bouncer) => {
            config.db.prepared_statements = false;
            pgrpc::http::server::pools(
                &config,
                bouncer.config("authenticator", &db.name),
                db.config("authenticator"),
            )
        }
        None => pgrpc::http::server::pools(
            &config,
            db.config("authenticator"),
            db.config("authenticator"),
        ),
    };
    let mut state = AppState::new(Arc::new(config), pools, Some(Arc::new(jwt)));
    if !state.config.db.replica_uris.is_empty() {
        crate::replica_suite::attach(&mut state);
    }
    let state = web::Data::new(state);
    state.load_schema_cache().await.expect("load schema cache");
    Ctx { db, state }
}

impl Ctx {
    /// The in-process service. With replicas, first waits until they have
    /// replayed everything the test set up so far (`replica_suite`).
    pub async fn app(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    > {
        crate::replica_suite::wait_caught_up(self).await;
        test::init_service(http::app(self.state.clone())).await
    }

    /// A single-number query as the superuser (row counts, to check what a
    /// request did or did not write).
    pub async fn count(&self, sql: &str) -> i64 {
        self.db
            .admin()
            .await
            .query_one(sql, &[])
            .await
            .expect(sql)
            .get(0)
    }

    /// Start the NOTIFY listener (for reload tests).
    pub fn listen(&self) -> pgrpc::db::listener::Listener {
        pgrpc::db::listener::spawn(self.db.config("authenticator"), self.state.cache_target())
    }

    /// Sign claims with the test app's key.
    pub fn token(&self, claims: Value) -> String {
        let Value::Object(map) = claims else {
            panic!("claims must be an object")
        };
        self.state
            .jwt
            .load_full()
            .expect("test apps have a key")
            .sign(map)
            .expect("sign")
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body text.
    pub body: String,
}

impl Resp {
    /// Body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
            .collect()
    }

    /// The error body's code.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

/// Send a request to the in-process app.
pub async fn send<S, B>(app: &S, req: TestRequest) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    Resp {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
    }
}

/// `POST path` with a JSON body.
pub fn post(path: &str, body: &str) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

/// `GET path`.
pub fn get(path: &str) -> TestRequest {
    TestRequest::get().uri(path)
}

/// Poll `check` until it returns true or `limit` passes (for asynchronous
/// effects such as a schema reload); no fixed sleeps.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// The real binary: see `process`.
pub use crate::process::{wait_until, Gateway};

/// `req` with `Authorization: Bearer <token>`.
pub fn bearer(req: TestRequest, token: &str) -> TestRequest {
    req.insert_header(("authorization", format!("Bearer {token}")))
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds since 1970 fit an i64")
}

/// base64url (no padding) of a JSON value's compact text, for tokens built by hand.
pub fn b64(value: &Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(value).expect("serializable"))
}
