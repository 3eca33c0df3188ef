// `pgrpc.from_claims` (issue 16): parameters the gateway fills from the claims (the request's token, or a token argument's), never from the client, on plain PostgreSQL.

use serde_json::json;

use crate::harness::*;

/// Functions that answer the argument they got. `claimed` fills `sub` from
/// the claims; `claimed_by` too, preferring its token argument's claims;
/// `misdeclared` names what cannot be filled (ignored, with a warning);
/// `required` fills a parameter without a default.
const FIXTURE: &str = "
create function api.claimed(sub text default 'nobody', note text default null) returns text
  language sql stable as $$ select sub $$;
alter function api.claimed(text, text) set pgrpc.from_claims = 'sub';
grant execute on function api.claimed(text, text) to web_anon, app_user;
create function api.claimed_by(token auth.jwt_claims default null, sub text default 'nobody')
  returns text language sql stable as $$ select sub $$;
alter function api.claimed_by(auth.jwt_claims, text) set pgrpc.from_claims = ' sub ,';
grant execute on function api.claimed_by(auth.jwt_claims, text) to web_anon, app_user;
create function api.misdeclared(tags text[] default null, x text default 'd') returns text
  language sql stable as $$ select coalesce(array_to_string(tags, '+'), x) $$;
alter function api.misdeclared(text[], text) set pgrpc.from_claims = 'nope, tags';
grant execute on function api.misdeclared(text[], text) to web_anon, app_user;
create function api.required(sub text) returns text language sql stable as $$ select sub $$;
alter function api.required(text) set pgrpc.from_claims = 'sub';
grant execute on function api.required(text) to web_anon, app_user;
";

async fn context() -> Ctx {
    let ctx = setup().await;
    ctx.db
        .admin()
        .await
        .batch_execute(FIXTURE)
        .await
        .expect("fixture");
    ctx.state.load_schema_cache().await.expect("reload cache");
    ctx
}

#[actix_web::test]
async fn the_parameter_is_the_bearer_token_s_claim_and_never_the_client_s() {
    let ctx = context().await;
    let app = ctx.app().await;
    let me = ctx.token(json!({"role": "app_user", "sub": "u-42"}));
    for body in [
        json!({}),
        json!({"sub": "chosen by the client"}),
        json!({"note": "n"}),
    ] {
        let r = send(&app, bearer(post("/rpc/claimed", &body.to_string()), &me)).await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""u-42""#), "{body}");
    }
    // GET: query-string arguments are named arguments too.
    for path in [
        "/rpc/claimed",
        "/rpc/claimed?sub=evil",
        "/rpc/claimed?note=x&sub=evil",
    ] {
        let r = send(&app, bearer(get(path), &me)).await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""u-42""#), "{path}");
    }
    // A number claim is passed as it is (PostgreSQL casts it).
    let numbered = ctx.token(json!({"role": "app_user", "sub": 42}));
    let r = send(&app, bearer(post("/rpc/claimed", "{}"), &numbered)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""42""#));
    // A token without a role claim still has claims.
    let roleless = ctx.token(json!({"sub": "no-role"}));
    let r = send(&app, bearer(post("/rpc/claimed", "{}"), &roleless)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""no-role""#));
}

#[actix_web::test]
async fn without_the_claim_the_function_sees_its_default() {
    let ctx = context().await;
    let app = ctx.app().await;
    for body in [json!({}), json!({"sub": "chosen by the client"})] {
        let r = send(&app, post("/rpc/claimed", &body.to_string())).await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""nobody""#), "{body}");
    }
    let r = send(&app, get("/rpc/claimed?sub=evil")).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""nobody""#));
    // A token whose claim is no string or number counts as no claim.
    for claim in [json!(null), json!({"a": 1}), json!(["x"]), json!(true)] {
        let odd = ctx.token(json!({"role": "app_user", "sub": claim}));
        let body = json!({"sub": "chosen by the client"}).to_string();
        let r = send(&app, bearer(post("/rpc/claimed", &body), &odd)).await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""nobody""#), "{claim}");
    }
}

#[actix_web::test]
async fn a_token_argument_s_claims_come_before_the_request_s() {
    let ctx = context().await;
    let app = ctx.app().await;
    let me = ctx.token(json!({"role": "app_user", "sub": "request"}));
    let other = ctx.token(json!({"role": "app_user", "sub": "argument"}));
    let body = json!({"token": other, "sub": "client"}).to_string();
    let r = send(&app, bearer(post("/rpc/claimed_by", &body), &me)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""argument""#));
    // Anonymous with a token argument: still that token's claim.
    let r = send(&app, post("/rpc/claimed_by", &body)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""argument""#));
    // A null or absent token argument: the request's claims, else the default.
    for body in [json!({"token": null}), json!({})] {
        let r = send(
            &app,
            bearer(post("/rpc/claimed_by", &body.to_string()), &me),
        )
        .await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""request""#), "{body}");
        let r = send(&app, post("/rpc/claimed_by", &body.to_string())).await;
        assert_eq!((r.status, r.body.as_str()), (200, r#""nobody""#), "{body}");
    }
    // A token argument without the claim: not filled from the request's.
    let bare = ctx.token(json!({"role": "app_user"}));
    let body = json!({"token": bare}).to_string();
    let r = send(&app, bearer(post("/rpc/claimed_by", &body), &me)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""nobody""#));
}

#[actix_web::test]
async fn a_setting_naming_what_cannot_be_filled_is_ignored() {
    let ctx = context().await;
    let app = ctx.app().await;
    let me = ctx.token(json!({"role": "app_user", "tags": "claimed", "nope": "x"}));
    let body = json!({"tags": ["a", "b"]}).to_string();
    let r = send(&app, bearer(post("/rpc/misdeclared", &body), &me)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""a+b""#));
}

#[actix_web::test]
async fn a_required_parameter_is_filled_or_the_call_is_refused() {
    let ctx = context().await;
    let app = ctx.app().await;
    let me = ctx.token(json!({"role": "app_user", "sub": "u-1"}));
    // The client need not send it: the gateway does.
    let r = send(&app, bearer(post("/rpc/required", "{}"), &me)).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#""u-1""#));
    // Without the claim it is not given, and PostgreSQL has no such call.
    let r = send(&app, post("/rpc/required", r#"{"sub": "client"}"#)).await;
    assert!(r.status >= 400, "{} {}", r.status, r.body);
    assert!(!r.body.contains("client"), "{}", r.body);
}
