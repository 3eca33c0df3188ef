// Helpers the seed_* modules share: invites, registration, token claims, users and sessions.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

use crate::harness::*;

/// The token-auth seed's paths, as config.toml maps them.
pub(crate) const ROUTES: &str = r#"
[routes]
"/auth/access_token/" = "access_token"
"/auth/refresh_token/" = "refresh_token"
"/auth/verify_token/" = "verify_token"
"#;

/// The password every helper-registered user has.
pub(crate) const PASSWORD: &str = "correct horse";

/// A fresh invite code, made directly in the database.
pub(crate) async fn invite(ctx: &Ctx, max_uses: i32, valid_for: &str) -> String {
    ctx.db
        .admin()
        .await
        .query_one(
            "insert into auth.invites (max_uses, expires_at) \
             values ($1, now() + $2::text::interval) returning code::text",
            &[&max_uses, &valid_for],
        )
        .await
        .expect("create invite")
        .get(0)
}

/// A register body.
pub(crate) fn register_body(username: &str, password: &str, email: &str, code: &str) -> String {
    json!({"username": username, "password": password, "email": email, "invite_code": code})
        .to_string()
}

/// Register `username` (PASSWORD, `<username>@example.com`) with a fresh
/// invite and return its token.
pub(crate) async fn register<S, B>(ctx: &Ctx, app: &S, username: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let code = invite(ctx, 1, "1 day").await;
    let email = format!("{username}@example.com");
    let r = send(
        app,
        post(
            "/rpc/register",
            &register_body(username, PASSWORD, &email, &code),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "register {username}: {}", r.body);
    r.json()["token"]
        .as_str()
        .expect("token string")
        .to_string()
}

/// The claims of a token, checked against the test key independently of the
/// gateway (expiry not checked: some tests look at old tokens).
pub(crate) fn claims(token: &Value) -> Map<String, Value> {
    let token = token
        .as_str()
        .unwrap_or_else(|| panic!("not a token string: {token}"));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap_or_else(|e| panic!("{token} does not verify: {e}"))
    .claims
}

/// An integer claim.
pub(crate) fn int(claims: &Map<String, Value>, name: &str) -> i64 {
    claims[name]
        .as_i64()
        .unwrap_or_else(|| panic!("{name} is not an integer: {claims:?}"))
}

/// The id of a user.
pub(crate) async fn user_id(ctx: &Ctx, username: &str) -> i64 {
    ctx.db
        .admin()
        .await
        .query_one(
            "select id from auth.users where username = $1",
            &[&username],
        )
        .await
        .expect("user exists")
        .get(0)
}

/// Claims as our SQL issued them before sessions (no sid, no gen), for a
/// token crafted with the test key: a token outside any session.
pub(crate) fn user_claims(id: i64, username: &str, iat: i64, exp: i64, orig_iat: i64) -> Value {
    json!({
        "role": "app_user", "sub": id.to_string(), "username": username,
        "iat": iat, "exp": exp, "orig_iat": orig_iat,
        "jti": "00000000-0000-4000-8000-000000000000"
    })
}

/// Claims as our SQL issues them, in a session of their own made directly in
/// the database that started at `orig_iat` (generation 0), for a token
/// crafted with the test key.
pub(crate) async fn session_claims(
    ctx: &Ctx,
    id: i64,
    username: &str,
    iat: i64,
    exp: i64,
    orig_iat: i64,
) -> Value {
    // On Citus a session is keyed by its user's name too (V0017).
    let db = ctx.db.admin().await;
    let row = if crate::citus::enabled() {
        db.query_one(
            "insert into auth.sessions (username, user_id, created_at, tokens_expire_at) \
             values ($4, $1, to_timestamp($2::int8), to_timestamp($3::int8)) returning id::text",
            &[&id, &orig_iat, &exp, &username],
        )
        .await
    } else {
        db.query_one(
            "insert into auth.sessions (user_id, created_at, tokens_expire_at) \
             values ($1, to_timestamp($2::int8), to_timestamp($3::int8)) returning id::text",
            &[&id, &orig_iat, &exp],
        )
        .await
    };
    let sid: String = row.expect("create session").get(0);
    let mut claims = user_claims(id, username, iat, exp, orig_iat);
    claims["sid"] = json!(sid);
    claims["gen"] = json!(0);
    claims
}

/// A connection that LISTENs on channel pgrpc (on the coordinator on Citus,
/// where the gateways listen); its notifications' payloads.
pub async fn listen(
    ctx: &Ctx,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut connection) = ctx
        .db
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.payload().to_string());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute("listen pgrpc").await.expect("listen");
    (client, rx)
}

/// The next `session ended …` payload, skipping schema reloads.
pub async fn next_end(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    loop {
        let payload = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the listener is alive");
        if payload.starts_with("session ended") {
            return payload;
        }
    }
}
