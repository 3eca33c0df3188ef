// TLS to PostgreSQL through the real binary: verify-full, verify-ca, client certificates, and the start-up refusals (wrong host, untrusted CA, no TLS on the server), prefer's fallback.

use std::time::Duration;

use crate::harness::Gateway;
use crate::topology::{start_fails, Pki, TcpCluster, PROBE_FIXTURE, PROBE_SCHEMAS};

const SECRET: &str = "tls-secret-tls-secret-tls-secret-0123456";
/// A failed TLS start must be refused quickly (no retry loop).
const REFUSE_LIMIT: Duration = Duration::from_secs(30);

/// `certgw` logs in with a client certificate and acts as `authenticator`.
const CERT_ROLE: &str = "create role certgw login; grant authenticator to certgw;";

/// Client certificates for `certgw`, trust for the rest, TLS only on TCP.
const TLS_HBA: &str = "
local   all all                 trust
hostssl all certgw 127.0.0.1/32 cert
hostssl all all    127.0.0.1/32 trust
host    all all    127.0.0.1/32 reject
";

/// Whether every connection of `user` to the cluster is encrypted (and there is one).
fn encrypted(cluster: &TcpCluster, user: &str) -> String {
    cluster.query_text(
        "postgres",
        &format!(
            "select coalesce(bool_and(s.ssl)::text, 'none') from pg_stat_ssl s \
             join pg_stat_activity a using (pid) where a.usename = '{user}'"
        ),
    )
}

#[test]
fn verify_full_verify_ca_and_client_certificates_work_and_bad_set_ups_are_refused() {
    let dir = TcpCluster::dir_for();
    let pki = Pki::create(dir.path(), "good");
    let other = Pki::create(dir.path(), "other");
    let db = TcpCluster::start(dir, TLS_HBA, &pki.server_settings());
    db.prepare_app_db(&format!("{PROBE_FIXTURE}; {CERT_ROLE}"));
    let port = db.port;
    let ca = pki.ca.display().to_string();

    // verify-full by name (localhost) for requests, by address for the
    // migrations run at start: both are in the certificate.
    let uri = format!(
        "postgres://authenticator@localhost:{port}/pgrpc?sslmode=verify-full&sslrootcert={ca}"
    );
    let admin =
        format!("postgres://postgres@127.0.0.1:{port}/pgrpc?sslmode=verify-full&sslrootcert={ca}");
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &uri),
            ("PGRPC_DB_ADMIN_URI", &admin),
            ("PGRPC_DB_MIGRATE_ON_START", "true"),
            ("PGRPC_JWT_SECRET", SECRET),
            PROBE_SCHEMAS,
        ],
    );
    assert_eq!(gw.post("ping", "{}"), (200, r#""pong""#.to_string()));
    assert_eq!(encrypted(&db, "authenticator"), "true");
    // The listener is on TLS too: DDL reaches it.
    db.query_text(
        "pgrpc",
        "create function probe.ping2() returns int language sql stable as $$ select 2 $$;
         grant execute on function probe.ping2() to web_anon; select 1",
    );
    assert!(
        crate::harness::wait_until(Duration::from_secs(20), || gw.post("ping2", "{}").0 == 200),
        "DDL did not reach the listener over TLS:\n{}",
        gw.log()
    );
    let log = gw.log();
    assert!(!log.contains("BEGIN PRIVATE KEY"), "{log}");
    drop(gw);

    // verify-ca checks the chain, not the name: a name the certificate does
    // not list is fine.
    let wrong_name = |mode: &str| {
        format!(
            "postgres://authenticator@db.example.invalid:{port}/pgrpc?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}"
        )
    };
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &wrong_name("verify-ca")),
            ("PGRPC_JWT_SECRET", SECRET),
            PROBE_SCHEMAS,
        ],
    );
    assert_eq!(gw.post("ping", "{}").0, 200);
    drop(gw);

    // A client certificate logs in as its CN (hostssl … cert); its key stays
    // out of the log.
    let cert_uri = format!(
        "postgres://certgw@127.0.0.1:{port}/pgrpc?sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let gw = Gateway::start(
        "",
        &[
            ("PGRPC_DB_URI", &cert_uri),
            ("PGRPC_JWT_SECRET", SECRET),
            PROBE_SCHEMAS,
        ],
    );
    assert_eq!(gw.post("ping", "{}"), (200, r#""pong""#.to_string()));
    assert_eq!(encrypted(&db, "certgw"), "true");
    let key = std::fs::read_to_string(&pki.client_key).expect("key");
    let body = key.lines().nth(1).expect("a base64 line");
    assert!(!gw.log().contains(body), "the key reached the log");
    drop(gw);

    let refused = |uri: String| {
        start_fails(
            &[
                ("PGRPC_DB_URI", uri),
                ("PGRPC_JWT_SECRET", SECRET.to_string()),
                (PROBE_SCHEMAS.0, PROBE_SCHEMAS.1.to_string()),
            ],
            REFUSE_LIMIT,
        )
    };
    // verify-full against a name the certificate does not list.
    let log = refused(wrong_name("verify-full"));
    assert!(
        log.contains("not valid for the host name \"db.example.invalid\"")
            && log.contains("localhost"),
        "{log}"
    );
    // A certificate from a CA we do not trust.
    let log = refused(format!(
        "postgres://authenticator@localhost:{port}/pgrpc?sslmode=verify-full&sslrootcert={}",
        other.ca.display()
    ));
    assert!(
        log.contains("not signed by a trusted certificate authority"),
        "{log}"
    );
    // A client certificate from another CA: the server refuses it.
    let log = refused(format!(
        "postgres://certgw@127.0.0.1:{port}/pgrpc?sslmode=require&sslcert={}&sslkey={}",
        other.client_cert.display(),
        other.client_key.display()
    ));
    assert!(log.contains("client certificate"), "{log}");
    // A missing CA file is named.
    let log = refused(format!(
        "postgres://authenticator@localhost:{port}/pgrpc?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
    ));
    assert!(
        log.contains("sslrootcert /nonexistent/ca.pem") && log.contains("db.uri"),
        "{log}"
    );
}

#[test]
fn require_refuses_a_server_without_tls_and_prefer_falls_back() {
    let dir = TcpCluster::dir_for();
    let db = TcpCluster::start(
        dir,
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
        &[],
    );
    db.prepare_app_db(&format!("{PROBE_FIXTURE}; {CERT_ROLE}"));
    let port = db.port;

    let log = start_fails(
        &[
            (
                "PGRPC_DB_URI",
                format!("postgres://authenticator@127.0.0.1:{port}/pgrpc?sslmode=require"),
            ),
            ("PGRPC_JWT_SECRET", SECRET.to_string()),
            (PROBE_SCHEMAS.0, PROBE_SCHEMAS.1.to_string()),
        ],
        REFUSE_LIMIT,
    );
    assert!(
        log.contains("the server does not accept TLS connections"),
        "{log}"
    );

    // prefer (also the default) falls back to plaintext.
    for uri in [
        format!("postgres://authenticator@127.0.0.1:{port}/pgrpc?sslmode=prefer"),
        format!("postgres://authenticator@127.0.0.1:{port}/pgrpc"),
    ] {
        let gw = Gateway::start(
            "",
            &[
                ("PGRPC_DB_URI", &uri),
                ("PGRPC_JWT_SECRET", SECRET),
                PROBE_SCHEMAS,
            ],
        );
        assert_eq!(gw.post("ping", "{}"), (200, r#""pong""#.to_string()));
        assert_eq!(encrypted(&db, "authenticator"), "false");
    }
}
