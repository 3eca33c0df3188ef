// Many gateways on one database: two real binaries started together migrate safely, both reload on DDL, NOTIFY and `reload config`, and accept each other's tokens.

use std::time::Duration;

use crate::harness::{cluster, wait_until, Gateway};

/// `POST /rpc/<f>` with an optional bearer token: status and body.
fn call(gw: &Gateway, f: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::post(&gw.url(&format!("/rpc/{f}")))
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_string("{}") {
        Ok(r) => (r.status(), r.into_string().expect("body")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().expect("body")),
        Err(e) => panic!("request failed: {e}\n{}", gw.log()),
    }
}

/// Run `sql` as the superuser on database `db` of the shared cluster.
fn admin(db: &str, sql: &str) {
    let cfg = pgrpc::db::socket_config(cluster(), "postgres", db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = pgrpc::db::connect(&cfg).await.expect("connect");
        client.batch_execute(sql).await.expect(sql);
    });
}

fn one_number(db: &str, sql: &str) -> i64 {
    let cfg = pgrpc::db::socket_config(cluster(), "postgres", db);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = pgrpc::db::connect(&cfg).await.expect("connect");
        client.query_one(sql, &[]).await.expect(sql).get(0)
    })
}

#[test]
fn two_gateways_share_one_database() {
    let c = cluster();
    // An empty database: both gateways migrate it at start, at the same time.
    let db = format!("gw{}", std::process::id());
    admin("postgres", &format!("create database {db}"));
    let keys = crate::harness::pg_tempdir("pgrpc-gw-key-");
    let secret = keys.path().join("jwt_secret");
    std::fs::write(&secret, "shared-secret-shared-secret-shared-0001").expect("secret");
    let socket = c.socket_dir().display().to_string();
    let uri = format!(
        "host={socket} port={} user=authenticator dbname={db}",
        c.port()
    );
    let admin_uri = format!("host={socket} port={} user=postgres dbname={db}", c.port());
    let secret_path = secret.display().to_string();
    let start = || {
        let (uri, admin_uri, secret_path) = (uri.clone(), admin_uri.clone(), secret_path.clone());
        std::thread::spawn(move || {
            Gateway::start(
                "",
                &[
                    ("PGRPC_DB_URI", &uri),
                    ("PGRPC_DB_ADMIN_URI", &admin_uri),
                    ("PGRPC_DB_MIGRATE_ON_START", "true"),
                    ("PGRPC_DB_POOL", "2"),
                    ("PGRPC_JWT_SECRET_FILE", &secret_path),
                ],
            )
        })
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.join().expect("gateway a"), b.join().expect("gateway b"));

    // The migration lock made the second start wait: each migration once.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .count() as i64;
    assert_eq!(
        one_number(&db, "select count(*) from refinery_schema_history"),
        migrations
    );
    for gw in [&a, &b] {
        assert!(!gw.log().contains("ERROR"), "{}", gw.log());
    }

    // DDL reaches both (the event trigger's NOTIFY).
    admin(
        &db,
        "create function api.gw_whoami() returns text language sql stable as $$ select current_user::text $$;
         grant execute on function api.gw_whoami() to web_anon, app_user;
         create function api.gw_issue() returns auth.jwt_claims language sql stable as
           $$ select json_populate_record(null::auth.jwt_claims, json_build_object('role', 'app_user', 'sub', 'gw-test', 'exp', extract(epoch from now())::bigint + 600)) $$;
         grant execute on function api.gw_issue() to web_anon;",
    );
    for gw in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(20), || call(gw, "gw_whoami", None).0
                == 200),
            "DDL did not reach a gateway:\n{}",
            gw.log()
        );
    }

    // So does NOTIFY, with the event triggers off.
    admin(
        &db,
        "alter event trigger pgrpc_ddl_end disable;
         alter event trigger pgrpc_sql_drop disable;
         create function api.gw_quiet() returns int language sql stable as $$ select 1 $$;
         grant execute on function api.gw_quiet() to web_anon;",
    );
    assert_eq!(
        call(&a, "gw_quiet", None).0,
        404,
        "no reload without NOTIFY"
    );
    admin(&db, "notify pgrpc, 'reload schema'");
    for gw in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(20), || call(gw, "gw_quiet", None).0
                == 200),
            "NOTIFY did not reach a gateway:\n{}",
            gw.log()
        );
    }

    // A token one gateway signed is good at the other (one key file).
    let (status, body) = call(&a, "gw_issue", None);
    assert_eq!(status, 200, "{body}");
    let token: String = serde_json::from_str(&body).expect("a JSON string token");
    assert_eq!(token.split('.').count(), 3, "{token}");
    assert_eq!(
        call(&b, "gw_whoami", Some(&token)),
        (200, r#""app_user""#.to_string())
    );

    // reload config reaches both: a new key replaces the old everywhere.
    std::fs::write(&secret, "rotated-secret-rotated-secret-rotated-02").expect("secret");
    admin(&db, "notify pgrpc, 'reload config'");
    for gw in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(20), || call(
                gw,
                "gw_whoami",
                Some(&token)
            )
            .0 == 401),
            "reload config did not reach a gateway:\n{}",
            gw.log()
        );
    }
    let (_, body) = call(&b, "gw_issue", None);
    let fresh: String = serde_json::from_str(&body).expect("token");
    assert_eq!(call(&a, "gw_whoami", Some(&fresh)).0, 200);

    drop((a, b));
    admin("postgres", &format!("drop database {db} with (force)"));
}
