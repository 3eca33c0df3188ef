// Ended sessions refused by the gateway itself (issue 15.1): on every function, within 1 s of the NOTIFY, loaded at start and on reconnect, on every gateway, for token parameters too; tokens without sid unaffected; entries expire.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::web;
use serde_json::{json, Value};

use crate::harness::*;
use crate::seed::{claims, register, PASSWORD};
use pgrpc::http::AppState;

/// The issue's promise: refused within 1 s on every gateway.
const WITHIN: Duration = Duration::from_secs(1);
/// For the listener to come up (not the promise under test).
const LIMIT: Duration = Duration::from_secs(10);

/// Functions that are not the seed's: they know nothing of sessions, so
/// only the gateway can refuse an ended one.
const FIXTURE: &str = "
create function api.whoami() returns text language sql stable
  as $$ select current_setting('request.jwt.claims', true)::json->>'username' $$;
revoke all on function api.whoami() from public;
grant execute on function api.whoami() to app_user;
create function api.holder(t auth.jwt_claims) returns text language sql stable
  as $$ select t.username $$;
revoke all on function api.holder(auth.jwt_claims) from public;
grant execute on function api.holder(auth.jwt_claims) to web_anon, app_user;
";

/// A context with the fixture functions in its schema cache.
async fn context(toml: &str) -> Ctx {
    let ctx = setup_with(toml).await;
    ctx.db
        .admin()
        .await
        .batch_execute(FIXTURE)
        .await
        .expect("fixture");
    ctx.state.load_schema_cache().await.expect("reload cache");
    ctx
}

/// Start `state`'s listener on `ctx`'s database and wait until its first
/// load is done: it LISTENs, has loaded the ended sessions (before the
/// schema cache) and swapped in a new cache.
async fn listening(ctx: &Ctx, state: &AppState) -> pgrpc::db::listener::Listener {
    let before = state.cache.load_full().expect("a cache was loaded");
    let listener = pgrpc::db::listener::spawn(ctx.db.config("authenticator"), state.cache_target());
    let up = eventually(LIMIT, || {
        let swapped = state
            .cache
            .load_full()
            .is_some_and(|now| !Arc::ptr_eq(&now, &before));
        async move { swapped }
    })
    .await;
    assert!(up, "the listener never connected");
    listener
}

/// A second gateway on the same database: its own state, pool and set.
async fn second_gateway(ctx: &Ctx) -> web::Data<AppState> {
    let config = ctx.state.config.clone();
    let pools = pgrpc::http::server::pools(
        &config,
        ctx.db.config("authenticator"),
        ctx.db.config("authenticator"),
    );
    let state = web::Data::new(AppState::new(config, pools, ctx.state.jwt.load_full()));
    state.load_schema_cache().await.expect("load schema cache");
    state
}

async fn sign_in<S, B>(app: &S, username: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let body = json!({"username": username, "password": PASSWORD}).to_string();
    let r = send(app, post("/rpc/identify", &body)).await;
    assert_eq!(r.status, 200, "sign in {username}: {}", r.body);
    r.json()["token"].as_str().expect("token").to_string()
}

fn sid(token: &str) -> String {
    claims(&Value::from(token))["sid"]
        .as_str()
        .expect("a session token has a sid")
        .to_string()
}

async fn whoami<S, B>(app: &S, token: &str) -> Resp
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    send(app, bearer(get("/rpc/whoami"), token)).await
}

/// Poll until `token` is refused on `whoami` within `limit`.
async fn refused_within<S, B>(app: &S, token: &str, limit: Duration) -> bool
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    eventually(limit, || async { whoami(app, token).await.status == 401 }).await
}

/// The gateway's refusal of an ended session's token in the Authorization header.
fn assert_ended_401(r: &Resp) {
    assert_eq!(r.status, 401, "{}", r.body);
    let body = r.json();
    assert_eq!(body["code"], "PGRST351", "{body}");
    assert_eq!(body["message"], "session has ended", "{body}");
    assert!(
        body["details"]
            .as_str()
            .is_some_and(|d| d.contains("sign in again")),
        "{body}"
    );
    assert_eq!(
        r.header("www-authenticate").as_deref(),
        Some(r#"Bearer error="invalid_token", error_description="session has ended""#)
    );
}

/// End a session as a DBA would; `expire` moves its last token's exp (Unix seconds).
async fn end_session_as_dba(ctx: &Ctx, sid: &str, expire: Option<i64>) {
    ctx.db
        .admin()
        .await
        .execute(
            "update auth.sessions set ended_at = now(), end_reason = 'revoked', \
             tokens_expire_at = coalesce(to_timestamp($2::bigint), tokens_expire_at) \
             where id = $1::text::uuid",
            &[&sid, &expire],
        )
        .await
        .expect("end the session");
}

#[actix_web::test]
async fn a_logged_out_token_is_refused_on_every_function_within_a_second() {
    let ctx = context("").await;
    let app = ctx.app().await;
    let _listener = listening(&ctx, &ctx.state).await;
    register(&ctx, &app, "alice").await;
    let laptop = sign_in(&app, "alice").await;
    let phone = sign_in(&app, "alice").await;
    let r = whoami(&app, &laptop).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""alice""#));

    let r = send(&app, bearer(post("/rpc/logout", ""), &laptop)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(
        refused_within(&app, &laptop, WITHIN).await,
        "the logged-out token still works after 1 s"
    );
    assert_ended_401(&whoami(&app, &laptop).await);
    // Cached verification or not, every request is checked.
    assert_ended_401(&whoami(&app, &laptop).await);
    // The seed's own functions now hear it from the gateway first.
    assert_ended_401(&send(&app, bearer(get("/rpc/me"), &laptop)).await);

    // As a token parameter: 400, like any refused token argument.
    let r = send(
        &app,
        post("/rpc/holder", &json!({ "t": laptop }).to_string()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "PGRST351");
    assert_eq!(r.json()["message"], "session has ended");
    assert!(
        r.json()["details"]
            .as_str()
            .is_some_and(|d| d.contains("parameter 't'")),
        "{}",
        r.body
    );

    // The other session, and a token without a sid, are not affected.
    let r = whoami(&app, &phone).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""alice""#));
    let r = send(
        &app,
        post("/rpc/holder", &json!({ "t": phone }).to_string()),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""alice""#));
    let bare = ctx.token(json!({"role": "app_user", "username": "script"}));
    let r = whoami(&app, &bare).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""script""#));
    assert_eq!(ctx.state.ended_sessions.len(), 1);
    let metrics = ctx.state.metrics.render(&ctx.state.readings());
    assert!(
        metrics.lines().any(|l| l == "pgrpc_ended_sessions 1"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn sessions_ended_before_the_start_are_refused_from_the_first_request() {
    let ctx = context("").await;
    let app = ctx.app().await;
    register(&ctx, &app, "bob").await;
    let token = sign_in(&app, "bob").await;
    let other = sign_in(&app, "bob").await;
    end_session_as_dba(&ctx, &sid(&token), None).await;
    // Nobody listened: this gateway cannot know yet (README: the set is only
    // as fresh as the listener).
    assert_eq!(whoami(&app, &token).await.status, 200);

    // What `serve` does before it accepts a request.
    ctx.state.load_ended_sessions().await;
    assert_ended_401(&whoami(&app, &token).await);
    assert_eq!(whoami(&app, &other).await.status, 200);

    // A gateway that starts now loads it with its listener, no request first.
    let late = second_gateway(&ctx).await;
    let late_app = actix_web::test::init_service(pgrpc::http::app(late.clone())).await;
    let _listener = listening(&ctx, &late).await;
    assert_ended_401(&whoami(&late_app, &token).await);
    assert_eq!(whoami(&late_app, &other).await.status, 200);
}

#[actix_web::test]
async fn every_gateway_refuses_within_a_second() {
    let ctx = context("").await;
    let one = ctx.app().await;
    let _one_listens = listening(&ctx, &ctx.state).await;
    let two_state = second_gateway(&ctx).await;
    let two = actix_web::test::init_service(pgrpc::http::app(two_state.clone())).await;
    let _two_listens = listening(&ctx, &two_state).await;

    register(&ctx, &one, "carol").await;
    let token = sign_in(&one, "carol").await;
    assert_eq!(whoami(&one, &token).await.status, 200);
    assert_eq!(whoami(&two, &token).await.status, 200);
    // Logged out through gateway two; both hear it.
    let r = send(&two, bearer(post("/rpc/logout_all", ""), &token)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let (a, b) = futures_util::join!(
        refused_within(&one, &token, WITHIN),
        refused_within(&two, &token, WITHIN)
    );
    assert!(a && b, "refused by gateway one: {a}, by two: {b}");
    assert_ended_401(&whoami(&one, &token).await);
    assert_ended_401(&whoami(&two, &token).await);
}

#[actix_web::test]
async fn a_reconnected_listener_reloads_what_it_missed() {
    let ctx = context("").await;
    let app = ctx.app().await;
    let _listener = listening(&ctx, &ctx.state).await;
    register(&ctx, &app, "dave").await;
    let token = sign_in(&app, "dave").await;
    assert_eq!(whoami(&app, &token).await.status, 200);

    // Keep the listener out: no new connections to this database, then end
    // its connection (named `pgrpc listener`; request connections stay open).
    let admin = ctx.db.admin().await;
    let db = &ctx.db.name;
    admin
        .batch_execute(&format!(
            "revoke connect on database {db} from public;
             select pg_terminate_backend(pid) from pg_stat_activity
              where datname = current_database() and usename = 'authenticator'
                and application_name = 'pgrpc listener';"
        ))
        .await
        .expect("cut the listener off");
    let gone = eventually(LIMIT, || {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "select count(*) from pg_stat_activity where datname = current_database() \
                     and usename = 'authenticator' and application_name = 'pgrpc listener'",
                    &[],
                )
                .await
                .expect("activity")
                .get::<_, i64>(0)
                == 0
        }
    })
    .await;
    assert!(gone, "the listener's connection did not end");
    // Its notification is lost: the set is stale while the listener is away.
    end_session_as_dba(&ctx, &sid(&token), None).await;
    let r = whoami(&app, &token).await;
    assert_eq!(r.status, 200, "{}", r.body);

    admin
        .batch_execute(&format!("grant connect on database {db} to public"))
        .await
        .expect("let it back");
    assert!(
        refused_within(&app, &token, LIMIT).await,
        "the reconnected listener did not load the missed session"
    );
    assert_ended_401(&whoami(&app, &token).await);
}

#[actix_web::test]
async fn an_entry_is_forgotten_once_its_tokens_are_expired() {
    // No leeway, so the entry lasts exactly until the session's exp.
    let ctx = context("[jwt]\nleeway = 0").await;
    let app = ctx.app().await;
    let _listener = listening(&ctx, &ctx.state).await;
    register(&ctx, &app, "erin").await;
    let token = sign_in(&app, "erin").await;
    let sid = sid(&token);
    let exp = now() + 2;
    end_session_as_dba(&ctx, &sid, Some(exp)).await;
    // The session's tokens are refused while any could still be valid. A
    // token of that session valid for longer than the session says (signed
    // here with the key; the seed never issues one) shows when the entry ends.
    let longer = ctx.token(json!({"role": "app_user", "sid": sid, "exp": exp + 3600}));
    assert!(refused_within(&app, &longer, WITHIN).await);
    assert_ended_401(&whoami(&app, &token).await);
    let forgotten = eventually(LIMIT, || async {
        whoami(&app, &longer).await.status == 200
    })
    .await;
    assert!(forgotten, "the entry outlived its exp");
    assert!(now() > exp, "forgotten before its exp");
}

#[actix_web::test]
async fn a_database_without_sessions_leaves_the_feature_off() {
    let ctx = context("").await;
    let admin = ctx.db.admin().await;
    admin
        .batch_execute("drop function pgrpc.ended_sessions(int)")
        .await
        .expect("drop");
    let client = pgrpc::db::connect(&ctx.db.config("authenticator"))
        .await
        .expect("connect");
    let loaded = pgrpc::db::sessions::load(&client, &ctx.state.ended_sessions)
        .await
        .expect("no function is not an error");
    assert_eq!(loaded, pgrpc::db::sessions::Loaded::Off);
    admin
        .batch_execute("drop schema pgrpc cascade")
        .await
        .expect("drop schema");
    let loaded = pgrpc::db::sessions::load(&client, &ctx.state.ended_sessions)
        .await
        .expect("no schema is not an error");
    assert_eq!(loaded, pgrpc::db::sessions::Loaded::Off);
    // The gateway serves as before.
    let app = ctx.app().await;
    let _listener = listening(&ctx, &ctx.state).await;
    let token = ctx.token(json!({
        "role": "app_user", "username": "x", "sid": "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54"
    }));
    let r = whoami(&app, &token).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""x""#));
}

/// `GET /rpc/whoami` on the real binary with a bearer token: the status.
fn binary_whoami(gw: &Gateway, token: &str) -> u16 {
    match ureq::get(&gw.url("/rpc/whoami"))
        .timeout(Duration::from_secs(5))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(_) => 0,
    }
}

/// `pgrpc token --role app_user` with extra `--claim`s, for `gw`'s key.
fn binary_token(gw: &Gateway, claims: &[&str]) -> String {
    let mut cmd = gw.command();
    cmd.args(["token", "--role", "app_user"]);
    for claim in claims {
        cmd.args(["--claim", claim]);
    }
    let out = cmd.output().expect("pgrpc token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn the_real_binary_refuses_an_ended_session_and_again_after_a_restart() {
    const SID: &str = "5e5510e0-0000-4000-8000-00000000b1a5";
    let dir = pg_tempdir("pgrpc-bin-");
    let data = dir.path().join("data");
    let gw = Gateway::shipped(&data, &[]);
    gw.psql(&format!(
        "{FIXTURE}
         insert into auth.sessions (id, tokens_expire_at) values ('{SID}', now() + interval '1 hour');"
    ));
    let token = binary_token(&gw, &[&format!("sid={SID}"), "username=bin"]);
    // The DDL reloads the schema cache through the listener.
    assert!(
        wait_until(LIMIT, || binary_whoami(&gw, &token) == 200),
        "whoami never answered:\n{}",
        gw.log()
    );
    gw.psql(&format!(
        "update auth.sessions set ended_at = now(), end_reason = 'revoked' where id = '{SID}'"
    ));
    assert!(
        wait_until(WITHIN, || binary_whoami(&gw, &token) == 401),
        "not refused within 1 s:\n{}",
        gw.log()
    );
    let (status, log) = gw.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("ended sessions loaded"), "{log}");

    // Restarted on the same data, it refuses the token from its first
    // request, before anything else (sql/ recreated api: whoami is gone, 404
    // for a token without a session).
    let gw = Gateway::shipped(&data, &[]);
    assert_eq!(binary_whoami(&gw, &token), 401, "{}", gw.log());
    let bare = binary_token(&gw, &[]);
    assert_eq!(binary_whoami(&gw, &bare), 404, "{}", gw.log());
}
