// The real binary behind a stock PgBouncer in transaction mode: unnamed statements, no startup options, role switching and request settings, DDL and `reload config` over db.listen_uri.

use std::time::Duration;

use crate::harness::{wait_until, Gateway, TestDb};
use crate::topology::Bouncer;

/// `POST /rpc/<f>` with a bearer token: status and body.
fn call(gw: &Gateway, f: &str, token: &str) -> (u16, String) {
    let res = ureq::post(&gw.url(&format!("/rpc/{f}")))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json")
        .set("Authorization", &format!("Bearer {token}"))
        .send_string("{}");
    match res {
        Ok(r) => (r.status(), r.into_string().expect("body")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().expect("body")),
        Err(e) => panic!("request failed: {e}\n{}", gw.log()),
    }
}

/// Run `sql` as the superuser on the test database (directly, not through PgBouncer).
fn admin(db: &TestDb, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async { db.admin().await.batch_execute(sql).await.expect(sql) });
}

#[test]
fn the_gateway_works_through_pgbouncer_in_transaction_mode() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = rt.block_on(TestDb::new());
    drop(rt);
    let bouncer = Bouncer::start(crate::harness::cluster());
    let cluster = crate::harness::cluster();
    let secret_dir = crate::harness::pg_tempdir("pgrpc-pgb-key-");
    let secret_file = secret_dir.path().join("jwt_secret");
    std::fs::write(&secret_file, "first-secret-first-secret-first-secret-01").expect("secret");

    let uri = format!(
        "postgres://authenticator@127.0.0.1:{}/{}?sslmode=disable",
        bouncer.port, db.name
    );
    let listen = format!(
        "host={} port={} user=authenticator dbname={}",
        cluster.socket_dir().display(),
        cluster.port(),
        db.name
    );
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &uri),
            ("PGRPC_DB_LISTEN_URI", &listen),
            ("PGRPC_DB_PREPARED_STATEMENTS", "false"),
            ("PGRPC_DB_POOL", "4"),
            ("PGRPC_JWT_SECRET_FILE", &secret_file.display().to_string()),
        ],
    );

    // Role switching, claims and search_path, on whichever server connection
    // PgBouncer hands out (more calls than its pool has connections).
    let token = gw.token("app_user");
    for _ in 0..20 {
        let (status, body) = call(&gw, "context", &token);
        assert_eq!(status, 200, "{body}\n{}", bouncer.log());
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["user"], "app_user", "{v}");
        assert_eq!(v["claims"]["role"], "app_user", "{v}");
        assert_eq!(v["search_path"], r#""api", "public""#, "{v}");
    }
    // Anonymous too, and a function with arguments bound as unnamed statements.
    assert_eq!(
        gw.post("add", r#"{"a": 2, "b": 3}"#),
        (200, "5".to_string())
    );
    // Writes commit and errors roll back, as without PgBouncer.
    assert_eq!(gw.post("add_item_then_fail", r#"{"name": "x"}"#).0, 400);

    // DDL reaches the gateway over the direct listen connection.
    admin(
        &db,
        "create function api.pgb_new() returns int language sql stable as $$ select 7 $$;
         grant execute on function api.pgb_new() to web_anon;",
    );
    assert!(
        wait_until(Duration::from_secs(20), || gw.post("pgb_new", "{}").0
            == 200),
        "DDL did not reload the schema cache:\n{}",
        gw.log()
    );

    // reload config: a new key takes over, the old token is refused.
    std::fs::write(&secret_file, "second-secret-second-secret-second-02").expect("secret");
    admin(&db, "notify pgrpc, 'reload config'");
    assert!(
        wait_until(Duration::from_secs(20), || call(&gw, "context", &token).0
            == 401),
        "reload config did not arrive:\n{}",
        gw.log()
    );
    let fresh = gw.token("app_user");
    assert_eq!(call(&gw, "context", &fresh).0, 200);
    let (status, log) = gw.terminate();
    assert!(status.success(), "{log}");
}
