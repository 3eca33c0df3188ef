// Keys from a JWKS URL (issue 15 point 3): fetched at start, refetched on an unknown kid (rate-limited) and on schedule (Cache-Control max-age), failed fetches counted with the last good keys kept; against a local HTTP server that rotates its keys.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use jsonwebtoken::{Algorithm, EncodingKey};
use pgrpc::config::Config;
use pgrpc::http::AppState;
use pgrpc::jwt::jwks::{Jwks, JwksError};
use serde_json::{json, Value};

use crate::harness::*;
use crate::jwt_auth::{context_as, forge};

const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");
const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt/rsa_private.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/jwt/ec_private.pem");

/// A JWK Set holding the fixture keys with these `kid`s.
fn set_of(kids: &[&str]) -> String {
    let all: Value = serde_json::from_str(JWKS).expect("fixture JWKS");
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| kids.contains(&k["kid"].as_str().unwrap_or_default()))
        .cloned()
        .collect();
    json!({ "keys": keys }).to_string()
}

fn rs_token() -> String {
    forge(
        json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}),
        json!({"role": "app_user", "sub": "rs", "exp": now() + 600}),
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("fixture key"),
    )
}

fn es_token() -> String {
    forge(
        json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"}),
        json!({"role": "app_user", "sub": "es", "exp": now() + 600}),
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(EC_PRIVATE).expect("fixture key"),
    )
}

/// What the key server answers: status, body, Cache-Control.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    cache_control: Option<&'static str>,
}

/// A tiny HTTP/1.1 server on loopback answering every request with the
/// current [`Answer`], counting requests. Stops when dropped.
struct KeyServer {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl KeyServer {
    fn start(answer: Answer) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind key server");
        let port = listener.local_addr().expect("addr").port();
        let server = KeyServer {
            port,
            answer: Arc::new(Mutex::new(answer)),
            hits: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (answer, hits, stop) = (
            server.answer.clone(),
            server.hits.clone(),
            server.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                let a = answer.lock().expect("answer").clone();
                let cache = a
                    .cache_control
                    .map(|c| format!("Cache-Control: {c}\r\n"))
                    .unwrap_or_default();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n{cache}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                    a.status,
                    a.body.len(),
                    a.body
                );
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/.well-known/jwks.json", self.port)
    }

    fn serve(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn keys(kids: &[&str], cache_control: Option<&'static str>) -> Answer {
    Answer {
        status: 200,
        body: set_of(kids),
        cache_control,
    }
}

/// An in-process app whose keys come from `server`, started the way the
/// server starts them (`keys::load_settings`, then `Jwks::start`).
async fn jwks_ctx(server: &KeyServer, refresh: u64) -> Ctx {
    let toml = format!(
        "[jwt]\nsecret = \"{SECRET}\"\njwks_url = \"{}\"\njwks_refresh = {refresh}\n",
        server.url()
    );
    let (config, _) = Config::from_toml(&toml, std::path::Path::new("test.toml"), Vec::new())
        .expect("test config is valid");
    let db = TestDb::new().await;
    let default_path =
        pgrpc::pipeline::query::search_path(&config.db.schemas[0], &config.db.extra_search_path);
    let pool = pgrpc::db::pool(
        pgrpc::db::with_search_path(db.config("authenticator"), &default_path),
        4,
        config.db.pool_timeout,
    );
    let settings = pgrpc::jwt::keys::load_settings(&config, false).expect("settings");
    let url = config.jwt.jwks_url.clone().expect("jwks_url");
    let refresh = config.jwt.jwks_refresh;
    let mut state = AppState::new(Arc::new(config), pool, None);
    let jwks = Jwks::start(
        url,
        refresh,
        settings,
        state.jwt.clone(),
        state.metrics.clone(),
    )
    .await
    .expect("first fetch");
    state.jwks = Some(jwks);
    let state = web::Data::new(state);
    state.load_schema_cache().await.expect("load schema cache");
    Ctx { db, state }
}

fn metric(ctx: &Ctx, name: &str) -> u64 {
    let text = ctx.state.metrics.render(&ctx.state.readings());
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// Whether the verifier in force now (no request, so no refetch) accepts `token`.
fn accepts(ctx: &Ctx, token: &str) -> bool {
    ctx.state
        .jwt
        .load_full()
        .is_some_and(|jwt| jwt.verify(token).is_ok())
}

#[actix_web::test]
async fn a_new_kid_refetches_the_keys_once_per_interval() {
    let server = KeyServer::start(keys(&["rsa-1"], None));
    let ctx = jwks_ctx(&server, 300).await;
    let app = ctx.app().await;
    assert_eq!(server.hits(), 1, "fetched at start");
    assert_eq!(metric(&ctx, "pgrpc_jwks_fetches_total"), 1);

    let r = send(&app, context_as(&rs_token())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["claims"]["sub"], "rs");
    // The locally signed tokens still work next to the URL's keys.
    let local = ctx.token(json!({"role": "app_user", "sub": "local"}));
    assert_eq!(send(&app, context_as(&local)).await.status, 200);

    // The provider rotates: rsa-1 out, ec-1 in. The first ec-1 token makes
    // the gateway refetch, and is accepted at once.
    server.serve(keys(&["ec-1"], None));
    let r = send(&app, context_as(&es_token())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["claims"]["sub"], "es");
    assert_eq!(server.hits(), 2, "one refetch");

    // The retired key is gone (and RS256 with it: the set has no RSA key
    // now), and within 30 s neither refusal refetches again.
    let unknown_ec = forge(
        json!({"alg": "ES256", "typ": "JWT", "kid": "ec-9"}),
        json!({"role": "app_user", "exp": now() + 600}),
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(EC_PRIVATE).expect("fixture key"),
    );
    for _ in 0..3 {
        let r = send(&app, context_as(&rs_token())).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.json()["details"],
            "The JWT uses 'RS256'; accepted: HS256, ES256"
        );
        let r = send(&app, context_as(&unknown_ec)).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["details"], "No key has kid 'ec-9'");
    }
    assert_eq!(server.hits(), 2, "rate-limited to one refetch per 30 s");
    assert!(accepts(&ctx, &es_token()));
}

#[actix_web::test]
async fn a_token_parameter_with_a_new_kid_refetches_too() {
    let server = KeyServer::start(keys(&["rsa-1"], None));
    let ctx = jwks_ctx(&server, 300).await;
    let app = ctx.app().await;
    server.serve(keys(&["ec-1"], None));
    // verify_token's parameter: the token passes the gateway (refetched),
    // and the seed's SQL then finds no user for it.
    let r = send(
        &app,
        post(
            "/rpc/verify_token",
            &json!({ "token": es_token() }).to_string(),
        ),
    )
    .await;
    assert_eq!(server.hits(), 2, "refetched for the parameter");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PT400", "the SQL ran: {}", r.body);
    assert_eq!(r.json()["message"], "user no longer exists", "{}", r.body);
}

#[actix_web::test]
async fn max_age_schedules_refreshes_and_failures_keep_the_last_keys() {
    let server = KeyServer::start(keys(&["rsa-1"], Some("public, max-age=1")));
    // jwks_refresh caps both max-age and the retry backoff.
    let ctx = jwks_ctx(&server, 2).await;
    let app = ctx.app().await;
    assert!(accepts(&ctx, &rs_token()));

    // No request asks for it: the schedule (max-age=1) picks the rotation up.
    server.serve(keys(&["ec-1"], Some("max-age=1")));
    assert!(
        eventually(Duration::from_secs(10), || async {
            accepts(&ctx, &es_token())
        })
        .await,
        "the scheduled refresh loaded the rotated set"
    );
    assert!(!accepts(&ctx, &rs_token()));

    // The provider fails: an error status, then a body that is no JWK Set.
    // Both are counted; the last good keys stay.
    let failures = metric(&ctx, "pgrpc_jwks_fetch_failures_total");
    assert_eq!(failures, 0);
    server.serve(Answer {
        status: 503,
        body: "down".into(),
        cache_control: None,
    });
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&ctx, "pgrpc_jwks_fetch_failures_total") >= 1
        })
        .await,
        "a failed fetch is counted"
    );
    server.serve(Answer {
        status: 200,
        body: r#"{"keys": "not a list"}"#.into(),
        cache_control: None,
    });
    let before = metric(&ctx, "pgrpc_jwks_fetch_failures_total");
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&ctx, "pgrpc_jwks_fetch_failures_total") > before
        })
        .await,
        "an unusable set is counted"
    );
    let r = send(&app, context_as(&es_token())).await;
    assert_eq!(r.status, 200, "the last good keys stay: {}", r.body);

    // The provider is back: the next scheduled fetch recovers.
    server.serve(keys(&["rsa-1", "ec-1"], None));
    assert!(
        eventually(Duration::from_secs(10), || async {
            accepts(&ctx, &rs_token())
        })
        .await,
        "recovered after the failures"
    );
    assert!(accepts(&ctx, &es_token()));
}

#[actix_web::test]
async fn no_usable_keys_at_start_is_an_error() {
    let server = KeyServer::start(Answer {
        status: 404,
        body: "no".into(),
        cache_control: None,
    });
    let url = url::Url::parse(&server.url()).expect("url");
    let target = Arc::new(arc_swap::ArcSwapOption::empty());
    let metrics = Arc::new(pgrpc::ops::metrics::Metrics::new());
    let e = Jwks::start(
        url.clone(),
        Duration::from_secs(300),
        pgrpc::jwt::JwtSettings::default(),
        target.clone(),
        metrics.clone(),
    )
    .await
    .expect_err("404");
    assert!(matches!(e, JwksError::Status { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("jwt.jwks_url"), "{e}");
    assert!(target.load().is_none());

    server.serve(Answer {
        status: 200,
        body: "[]".into(),
        cache_control: None,
    });
    let e = Jwks::start(
        url,
        Duration::from_secs(300),
        pgrpc::jwt::JwtSettings::default(),
        target.clone(),
        metrics.clone(),
    )
    .await
    .expect_err("not a set");
    assert!(matches!(e, JwksError::Keys(_)), "{e}");
    let text = metrics.render(&Default::default());
    assert!(text.contains("pgrpc_jwks_fetch_failures_total 2"), "{text}");
}

/// `POST /rpc/nope` with a token: 404 once the token passed (the planner
/// knows no such function), 401 when the JWT stage refused it.
fn status_with_token(gw: &Gateway, token: &str) -> u16 {
    match ureq::post(&gw.url("/rpc/nope"))
        .set("authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(20))
        .send_string("{}")
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("request failed: {e}\n{}", gw.log()),
    }
}

#[test]
fn the_binary_starts_with_its_jwks_url_and_keeps_the_keys_on_reload() {
    let server = KeyServer::start(keys(&["rsa-1"], None));
    let gw = Gateway::start(
        &format!(
            "[jwt]\nsecret = \"{SECRET}\"\njwks_url = \"{}\"\n",
            server.url()
        ),
        &[],
    );
    assert_eq!(server.hits(), 1, "fetched at start");
    assert_eq!(status_with_token(&gw, &rs_token()), 404, "{}", gw.log());

    // Rotation: the first token of the new key brings it in, at once.
    server.serve(keys(&["ec-1"], None));
    assert_eq!(status_with_token(&gw, &es_token()), 404, "{}", gw.log());
    assert_eq!(server.hits(), 2);
    // The retired key is refused, without another fetch within 30 s.
    assert_eq!(status_with_token(&gw, &rs_token()), 401);
    assert_eq!(server.hits(), 2);

    // A config reload keeps the URL's keys (it rebuilds from the last good set).
    gw.signal(libc::SIGUSR2);
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .log()
            .contains("configuration reloaded")),
        "{}",
        gw.log()
    );
    assert_eq!(status_with_token(&gw, &es_token()), 404, "{}", gw.log());
    let metrics = ureq::get(&format!("http://127.0.0.1:{}/metrics", gw.admin))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    assert!(metrics.contains("pgrpc_jwks_fetches_total"), "{metrics}");
}
