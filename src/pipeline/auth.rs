//! Auth stage: the `Authorization` header becomes a role and claims, before any
//! database connection is taken.
//!
//! `Bearer` and `Token` (the scheme one of our seed APIs documents) are the same,
//! case-insensitive. Other schemes (`Basic`, …) are not ours and are ignored,
//! as PostgREST ignores them. With `jwt.cookie_name` set and no `Authorization`
//! header at all, the token is the value of that cookie (the HTTP layer hands
//! it over as text); an empty cookie is no token. No token → the anonymous
//! role. A verified token (from the cache or not) whose `sid` names an ended
//! session is refused here, on every request, by a lookup in memory
//! ([`EndedSessions`]). This module does not decide whether the role may act:
//! PostgreSQL does, when the role is set; nor whether a cookie-borne request
//! may write: [`super::csrf`] does.
//!
//! After the plan, two steps on the arguments belong here too: tokens given
//! as claims-type arguments are verified and replaced by their claims
//! ([`verify_token_arguments`]), and the parameters a function declares in
//! `pgrpc.from_claims` are set from the claims ([`fill_from_claims`]).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{AuthError, Error, RequestError};
use crate::jwt::revoked::EndedSessions;
use crate::jwt::{Jwt, JwtError, Verified};
use crate::pipeline::plan::{Args, CallPlan, ClaimsArg};

/// Who the request runs as.
#[derive(Debug, Clone)]
pub struct AuthContext {
    /// The database role.
    pub role: String,
    /// `request.jwt.claims` as JSON text (always with `role`).
    pub claims_json: String,
    /// Came from a verified token (anonymous otherwise).
    pub authenticated: bool,
    /// The token came from the `jwt.cookie_name` cookie, which a browser sends
    /// by itself: writes then need the CSRF check.
    pub via_cookie: bool,
    /// The verified token the request came with (header or cookie), role
    /// claim or not; None when anonymous. What `pgrpc.from_claims` reads.
    pub token: Option<Arc<Verified>>,
}

/// The token of an `Authorization` header, if it uses our schemes.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, rest) = header
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Some(rest.trim())
    } else {
        None
    }
}

/// The value of cookie `name` in `Cookie` header values (RFC 6265 §5.4:
/// `name=value` pairs separated by `;`; a quoted value loses its quotes).
/// The first one wins when a browser sends several of the same name.
pub fn cookie_value<'a>(
    cookie_headers: impl IntoIterator<Item = &'a str>,
    name: &str,
) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
}

/// Authenticate one request: the `Authorization` header, or when there is
/// none, the token cookie's value (`cookie`, already picked out by name).
pub fn authenticate(
    authorization: Option<&str>,
    cookie: Option<&str>,
    jwt: Option<&Jwt>,
    ended: &EndedSessions,
    anon_role: Option<&str>,
) -> Result<AuthContext, Error> {
    let anonymous = || -> Result<AuthContext, Error> {
        let role = anon_role.ok_or(AuthError::TokenRequired)?;
        Ok(AuthContext {
            role: role.to_string(),
            claims_json: serde_json::json!({ "role": role }).to_string(),
            authenticated: false,
            via_cookie: false,
            token: None,
        })
    };
    // A cleared cookie (`name=`) is no token, not an empty one: that is how
    // a logout leaves it in a browser that does not drop it at once.
    let (token, via_cookie) = match (authorization, cookie.map(str::trim)) {
        (Some(header), _) => match bearer_token(header) {
            Some(token) => (token, false),
            None => return anonymous(),
        },
        (None, Some(token)) if !token.is_empty() => (token, true),
        (None, _) => return anonymous(),
    };
    if token.is_empty() {
        return Err(AuthError::Invalid(JwtError::Empty).into());
    }
    let jwt = jwt.ok_or(AuthError::SecretMissing)?;
    let claims: Arc<Verified> = jwt.verify(token).map_err(AuthError::Invalid)?;
    ended.check(&claims).map_err(AuthError::Invalid)?;
    let role = match claims.role().map_err(AuthError::Invalid)? {
        Some(role) => role.to_string(),
        None => {
            let mut auth = anonymous_with_claims(&claims.claims(), anon_role)?;
            auth.via_cookie = via_cookie;
            auth.token = Some(claims);
            return Ok(auth);
        }
    };
    Ok(AuthContext {
        // Written once at verification and cached: a copy per request.
        claims_json: claims.request_claims().to_owned(),
        role,
        authenticated: true,
        via_cookie,
        token: Some(claims),
    })
}

/// Replace each token of a claims-type argument (or each element of an array
/// of them) by its verified claims, so the function receives claims and never
/// the key. A refused token is the caller's bad input: 400 with the reason.
///
/// The one step of this stage that runs after the plan, on purpose: which
/// arguments hold tokens is known only once overload resolution has chosen
/// the function (a parameter's type is the catalog's, not the request's). It
/// is still before any connection is taken. It reads the payload text once
/// more only when the chosen function has such a parameter (the seed's
/// `verify_token`, `refresh_token`); every other call passes its body through
/// untouched.
pub fn verify_token_arguments(
    payload: &str,
    params: &[ClaimsArg],
    jwt: Option<&Jwt>,
    ended: &EndedSessions,
) -> Result<String, Error> {
    let mut args: Map<String, Value> = serde_json::from_str(payload)
        .map_err(|e| Error::Internal(format!("payload re-parse: {e}")))?;
    for param in params {
        let Some(value) = args.get_mut(&param.name) else {
            continue;
        };
        if param.array {
            match value {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        verify_one(item, &param.name, jwt, ended)?;
                    }
                }
                _ => return Err(not_a_token(&param.name)),
            }
        } else {
            verify_one(value, &param.name, jwt, ended)?;
        }
    }
    Ok(Value::Object(args).to_string())
}

/// One token → its claims object, in place; `null` stays `null`.
fn verify_one(
    value: &mut Value,
    param: &str,
    jwt: Option<&Jwt>,
    ended: &EndedSessions,
) -> Result<(), Error> {
    let refuse = |error: JwtError| -> Error {
        RequestError::TokenArgument {
            param: param.to_string(),
            error,
        }
        .into()
    };
    let claims = match value {
        Value::Null => return Ok(()),
        Value::String(token) => {
            let token = token.trim();
            if token.is_empty() {
                return Err(refuse(JwtError::Empty));
            }
            let jwt = jwt.ok_or(AuthError::SecretMissing)?;
            let claims = jwt.verify(token).map_err(refuse)?;
            ended.check(&claims).map_err(refuse)?;
            claims
        }
        _ => return Err(not_a_token(param)),
    };
    *value = Value::Object(claims.claims());
    Ok(())
}

/// `pgrpc.from_claims`: set each parameter the function has filled from the
/// claims to the claim of its name, so that a client can never choose it.
/// The claims are those of the token given as the call's claims-type
/// argument (already verified and replaced by its claims, see
/// [`verify_token_arguments`]; the first such parameter in order that is not
/// null), else those of the request's own token (`request`). A claim that is
/// a string or a number becomes the argument as it is (JSON, in the payload
/// bound as `$1`) and counts as given in `plan.args`; otherwise the parameter
/// is not given (a value the client sent is dropped) and the function sees
/// its default. Also before any connection is taken; the payload is read
/// again only for a function that declares the setting.
pub fn fill_from_claims(
    payload: String,
    plan: &mut CallPlan,
    request: Option<&Verified>,
) -> Result<String, Error> {
    let (Some(filled), Args::Named(given)) = (plan.from_claims.clone(), &plan.args) else {
        return Ok(payload);
    };
    let mut args: Map<String, Value> = serde_json::from_str(&payload)
        .map_err(|e| Error::Internal(format!("payload re-parse: {e}")))?;
    let from_argument =
        plan.claims_args
            .iter()
            .filter(|c| !c.array)
            .find_map(|c| match args.get(&c.name) {
                Some(Value::Object(claims)) => Some(claims.clone()),
                _ => None,
            });
    let claims = from_argument.or_else(|| request.map(Verified::claims));
    let mut given: Vec<usize> = given.clone();
    for &i in filled.iter() {
        let Some(p) = plan.routine.params.get(i) else {
            continue;
        };
        args.remove(&p.name);
        given.retain(|&g| g != i);
        let value = claims
            .as_ref()
            .and_then(|c| c.get(&p.name))
            .filter(|v| v.is_string() || v.is_number());
        if let Some(value) = value {
            args.insert(p.name.clone(), value.clone());
            given.push(i);
        }
    }
    given.sort_unstable();
    plan.args = Args::Named(given);
    Ok(Value::Object(args).to_string())
}

fn not_a_token(param: &str) -> Error {
    RequestError::InvalidBody {
        message: format!("Parameter '{param}' must be a token string"),
        details: Some(
            "Pass the JWT as a JSON string (an array of them for an array parameter)".into(),
        ),
    }
    .into()
}

/// A valid token without a role claim runs as the anonymous role, keeping its claims.
fn anonymous_with_claims(
    claims: &Map<String, Value>,
    anon_role: Option<&str>,
) -> Result<AuthContext, Error> {
    let role = anon_role.ok_or(AuthError::TokenRequired)?;
    Ok(AuthContext {
        claims_json: claims_with_role(claims, role),
        role: role.to_string(),
        authenticated: false,
        via_cookie: false,
        token: None,
    })
}

/// The claims object with a top-level `role`, for SQL that reads
/// `current_setting('request.jwt.claims')::json->>'role'` whatever the claim path.
/// Written straight from the cached claims: no copy of them per request.
fn claims_with_role(claims: &Map<String, Value>, role: &str) -> String {
    serde_json::to_string(&WithRole { claims, role })
        .expect("a map with string keys always serializes")
}

/// Claims as JSON with `role` replaced in place, or added last.
struct WithRole<'a> {
    claims: &'a Map<String, Value>,
    role: &'a str,
}

impl serde::Serialize for WithRole<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let has_role = self.claims.contains_key("role");
        let mut map = s.serialize_map(Some(self.claims.len() + usize::from(!has_role)))?;
        for (key, value) in self.claims {
            if key == "role" {
                map.serialize_entry(key, self.role)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        if !has_role {
            map.serialize_entry("role", self.role)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("TOKEN abc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcg=="), None);
        assert_eq!(bearer_token("Bearer"), Some(""));
    }

    #[test]
    fn claims_get_the_role_in_place_or_last() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"u1","role":"app_user","n":1}"#).expect("json");
        assert_eq!(
            claims_with_role(&claims, "app_user"),
            r#"{"sub":"u1","role":"app_user","n":1}"#
        );
        assert_eq!(
            claims_with_role(&claims, "web_anon"),
            r#"{"sub":"u1","role":"web_anon","n":1}"#
        );
        let nested: Map<String, Value> =
            serde_json::from_str(r#"{"app":{"role":"app_user"},"s":"a\"b"}"#).expect("json");
        assert_eq!(
            claims_with_role(&nested, "app_user"),
            r#"{"app":{"role":"app_user"},"s":"a\"b","role":"app_user"}"#
        );
    }

    #[test]
    fn cookie_values() {
        let headers = ["theme=dark; tok=abc.def.ghi", "tok=second"];
        assert_eq!(cookie_value(headers, "tok"), Some("abc.def.ghi"));
        assert_eq!(cookie_value(["a=1;  tok = \"q\" "], "tok"), Some("q"));
        assert_eq!(cookie_value(["tok="], "tok"), Some(""));
        assert_eq!(cookie_value(["xtok=1; tokx=2"], "tok"), None);
        assert_eq!(cookie_value([], "tok"), None);
    }

    #[test]
    fn cookie_is_read_only_without_an_authorization_header() {
        let jwt = Jwt::new(crate::jwt::JwtSettings::with_secret(
            b"reallyreallyreallyreallyverysafe",
        ))
        .expect("jwt");
        let ended = EndedSessions::new(30);
        let mut claims = Map::new();
        claims.insert("role".into(), Value::from("app_user"));
        let token = jwt.sign(claims).expect("sign");
        let a =
            authenticate(None, Some(&token), Some(&jwt), &ended, Some("web_anon")).expect("cookie");
        assert_eq!((a.role.as_str(), a.via_cookie), ("app_user", true));
        // The header wins, even one that is not ours.
        let a = authenticate(
            Some("Basic dXNlcg=="),
            Some(&token),
            Some(&jwt),
            &ended,
            Some("web_anon"),
        )
        .expect("basic");
        assert_eq!((a.role.as_str(), a.via_cookie), ("web_anon", false));
        let a = authenticate(
            Some(&format!("Bearer {token}")),
            Some("garbage"),
            Some(&jwt),
            &ended,
            Some("web_anon"),
        )
        .expect("header");
        assert_eq!((a.role.as_str(), a.via_cookie), ("app_user", false));
        // A cleared cookie is anonymous; a bad one is refused like a bad header.
        let a =
            authenticate(None, Some(" "), Some(&jwt), &ended, Some("web_anon")).expect("cleared");
        assert_eq!((a.role.as_str(), a.via_cookie), ("web_anon", false));
        let e = authenticate(None, Some("a.b.c"), Some(&jwt), &ended, Some("web_anon"))
            .expect_err("bad");
        assert_eq!(e.status().as_u16(), 401);
    }

    /// A plan for `api.f(token auth.jwt_claims, n int, sub text, who text)`
    /// with `pgrpc.from_claims = 'sub, who'`, given `args`.
    fn filling(args: Vec<usize>) -> CallPlan {
        use crate::db::schema_cache::Volatility;
        use crate::pipeline::plan::tests::{int, routine};
        let r = routine(
            "f",
            &[
                ("token", "auth.jwt_claims", false),
                ("n", "integer", false),
                ("sub", "text", false),
                ("who", "text", false),
            ],
            Volatility::Volatile,
            int(),
        );
        CallPlan {
            routine: Arc::new(r),
            args: Args::Named(args),
            read_only: false,
            singular: false,
            claims_at: crate::pipeline::plan::ClaimsAt::Nowhere,
            claims_args: vec![ClaimsArg {
                name: "token".into(),
                array: false,
                domain: false,
            }],
            query_args: false,
            strip_nulls: false,
            read: Default::default(),
            head: false,
            profile: None,
            citus: false,
            from_claims: Some(Arc::from(vec![2, 3])),
        }
    }

    fn verified(claims: Value) -> Arc<Verified> {
        let jwt = Jwt::new(crate::jwt::JwtSettings::with_secret(
            b"reallyreallyreallyreallyverysafe",
        ))
        .expect("jwt");
        let Value::Object(claims) = claims else {
            panic!("claims are an object");
        };
        let token = jwt.sign(claims).expect("sign");
        jwt.verify(&token).expect("verify")
    }

    fn fill(payload: Value, args: Vec<usize>, request: Option<&Verified>) -> (Value, Args) {
        let mut plan = filling(args);
        let out = fill_from_claims(payload.to_string(), &mut plan, request).expect("fill");
        (serde_json::from_str(&out).expect("json"), plan.args)
    }

    #[test]
    fn parameters_come_from_the_request_claims_never_from_the_client() {
        let me = verified(serde_json::json!({"role": "app_user", "sub": "u1", "who": 7}));
        let (payload, args) = fill(
            serde_json::json!({"n": 1, "sub": "chosen by the client"}),
            vec![1, 2],
            Some(&me),
        );
        assert_eq!(payload, serde_json::json!({"n": 1, "sub": "u1", "who": 7}));
        assert_eq!(args, Args::Named(vec![1, 2, 3]));
        // Anonymous: not given at all, whatever the client sent.
        let (payload, args) = fill(serde_json::json!({"sub": "x", "n": 1}), vec![1, 2], None);
        assert_eq!(payload, serde_json::json!({"n": 1}));
        assert_eq!(args, Args::Named(vec![1]));
        // A claim that is no string or number is not used either.
        let odd = verified(serde_json::json!({"role": "app_user", "sub": {"a": 1}, "who": null}));
        let (payload, args) = fill(serde_json::json!({}), vec![], Some(&odd));
        assert_eq!(payload, serde_json::json!({}));
        assert_eq!(args, Args::Named(vec![]));
    }

    #[test]
    fn a_token_argument_s_claims_come_first() {
        let me = verified(serde_json::json!({"role": "app_user", "sub": "request"}));
        let (payload, args) = fill(
            serde_json::json!({"token": {"sub": "argument"}}),
            vec![0],
            Some(&me),
        );
        assert_eq!(
            payload,
            serde_json::json!({"token": {"sub": "argument"}, "sub": "argument"})
        );
        assert_eq!(args, Args::Named(vec![0, 2]));
        // A null token argument: the request's claims.
        let (payload, _) = fill(serde_json::json!({"token": null}), vec![0], Some(&me));
        assert_eq!(
            payload,
            serde_json::json!({"token": null, "sub": "request"})
        );
    }

    #[test]
    fn a_function_without_the_setting_keeps_its_payload_as_sent() {
        let mut plan = filling(vec![2]);
        plan.from_claims = None;
        let out = fill_from_claims("{\"sub\": 1}".into(), &mut plan, None).expect("fill");
        assert_eq!(out, "{\"sub\": 1}");
        assert_eq!(plan.args, Args::Named(vec![2]));
    }

    #[test]
    fn no_header_is_anonymous_or_401() {
        let ended = EndedSessions::new(30);
        let a = authenticate(None, None, None, &ended, Some("web_anon")).expect("anon");
        assert_eq!(a.role, "web_anon");
        assert_eq!(a.claims_json, r#"{"role":"web_anon"}"#);
        let e = authenticate(None, None, None, &ended, None).expect_err("401");
        assert_eq!(e.code(), "PGRST302");
        assert_eq!(e.status().as_u16(), 401);
    }
}
