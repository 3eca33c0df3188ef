//! A verified token as the request path uses it: the claims as JSON text, the
//! role, the session and the validity window, worked out once at verification
//! and kept in the cache ([`super::cache`]) in this form.
//!
//! Why text and not the parsed claims map: the map (an `IndexMap` of `String`
//! keys and `Value`s, one heap allocation per key and string value) cost about
//! 2.4 KB per cached token in the soak (bench/results/soak.md), three times the
//! token itself, while every request needs only the claims as JSON text for
//! `request.jwt.claims`, the role and the `sid`. The few callers that want a
//! map (token-valued function arguments) parse the text again with
//! [`Verified::claims`].
//!
//! This module does not verify anything (the parent does) nor decide what an
//! ended session is ([`super::revoked`]); it only holds the results.

use serde_json::Value;

use super::revoked::{parse_uuid, SessionClaim, SID_CLAIM};
use super::{Claims, JwtError};

/// The validity window of a verified token, kept next to it in the cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    pub(crate) exp: Option<f64>,
    /// The later of `nbf` and `iat`.
    pub(crate) not_before: Option<f64>,
}

impl Window {
    pub(crate) fn contains(&self, now: f64, leeway: f64) -> bool {
        self.exp.is_none_or(|exp| now <= exp + leeway)
            && self.not_before.is_none_or(|nb| nb <= now + leeway)
    }

    pub(crate) fn is_expired(&self, now: f64, leeway: f64) -> bool {
        self.exp.is_some_and(|exp| now > exp + leeway)
    }
}

/// What [`super::Jwt::verify`] gives: a token whose signature, algorithm and
/// time/audience/issuer claims passed, in the form the request path needs.
#[derive(Debug, PartialEq)]
pub struct Verified {
    /// The claims object as compact JSON, keys in the token's order.
    claims: Box<str>,
    /// `request.jwt.claims` when it differs from `claims`: the role claim is
    /// not a top-level `role` (`jwt.role_claim = app_metadata.role`), so the
    /// role is set at the top level (in place, or added last). `None` in the
    /// common case, where `claims` already is that text.
    request_claims: Option<Box<str>>,
    /// The role at the configured claim path, or why it is not a role.
    role: Result<Option<Box<str>>, JwtError>,
    /// The `sid` claim, when there is one (checked against the ended sessions).
    session: Option<SessionClaim>,
    pub(crate) window: Window,
}

impl Verified {
    /// Keep what the request path needs of verified claims. `role` is what
    /// [`super::Jwt::role`] found at the configured path.
    pub(crate) fn new(
        claims: &Claims,
        role: Result<Option<&str>, JwtError>,
        window: Window,
    ) -> Verified {
        let text = serde_json::to_string(claims).expect("a map with string keys always serializes");
        // serde_json's preserve_order map replaces an existing key's value in
        // place and appends a new key last: exactly where PostgREST-style
        // SQL expects `role` (`current_setting('request.jwt.claims')::json->>'role'`).
        let request_claims = match &role {
            Ok(Some(role)) if claims.get("role").and_then(Value::as_str) != Some(role) => {
                let mut with_role = claims.clone();
                with_role.insert("role".to_owned(), Value::from(*role));
                Some(
                    serde_json::to_string(&with_role)
                        .expect("a map with string keys always serializes")
                        .into_boxed_str(),
                )
            }
            _ => None,
        };
        let session = claims.get(SID_CLAIM).map(|sid| SessionClaim {
            sid: sid.as_str().and_then(parse_uuid),
            exp: window.exp,
        });
        Verified {
            claims: text.into_boxed_str(),
            request_claims,
            role: role.map(|r| r.map(Box::from)),
            session,
            window,
        }
    }

    /// The claims as compact JSON text.
    pub fn claims_json(&self) -> &str {
        &self.claims
    }

    /// The claims as a map (parsed again from the text: for the few callers
    /// that rewrite them, such as token-valued function arguments).
    pub fn claims(&self) -> Claims {
        serde_json::from_str(&self.claims).expect("the text is a JSON object this module wrote")
    }

    /// The role at the configured claim path: `Ok(None)` when absent, `Err`
    /// when present but not a non-empty string.
    pub fn role(&self) -> Result<Option<&str>, JwtError> {
        match &self.role {
            Ok(role) => Ok(role.as_deref()),
            Err(e) => Err(e.clone()),
        }
    }

    /// `request.jwt.claims` for a token that has a role: the claims with that
    /// role as the top-level `role` (written once, at verification).
    pub fn request_claims(&self) -> &str {
        self.request_claims.as_deref().unwrap_or(&self.claims)
    }

    /// The token's session (`sid` claim), if it names one.
    pub fn session(&self) -> Option<&SessionClaim> {
        self.session.as_ref()
    }

    /// `exp`, Unix seconds, if the token has one.
    pub fn exp(&self) -> Option<f64> {
        self.window.exp
    }

    /// Heap bytes this value owns besides itself (the cache's accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        let role = match &self.role {
            Ok(role) => role.as_ref().map_or(0, |r| r.len()),
            Err(JwtError::RoleNotString(path)) => path.capacity(),
            Err(_) => 0,
        };
        self.claims.len() + self.request_claims.as_ref().map_or(0, |c| c.len()) + role
    }

    /// Heap allocations this value owns (each costs the allocator a header).
    pub(crate) fn allocations(&self) -> usize {
        1 + usize::from(self.request_claims.is_some())
            + usize::from(matches!(self.role, Ok(Some(_)) | Err(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const WINDOW: Window = Window {
        exp: Some(2e9),
        not_before: None,
    };

    fn obj(v: Value) -> Claims {
        match v {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn top_level_role_needs_no_second_text() {
        let claims = obj(json!({"sub": "u1", "role": "app_user", "n": 1}));
        let v = Verified::new(&claims, Ok(Some("app_user")), WINDOW);
        assert_eq!(v.claims_json(), r#"{"sub":"u1","role":"app_user","n":1}"#);
        assert_eq!(v.request_claims(), v.claims_json());
        assert!(v.request_claims.is_none());
        assert_eq!(v.role(), Ok(Some("app_user")));
        assert_eq!(v.claims(), claims);
        assert_eq!(v.session(), None);
    }

    #[test]
    fn a_nested_role_is_set_at_the_top_in_place_or_last() {
        let claims = obj(json!({"app": {"role": "app_user"}, "s": "a\"b"}));
        let v = Verified::new(&claims, Ok(Some("app_user")), WINDOW);
        assert_eq!(v.claims_json(), r#"{"app":{"role":"app_user"},"s":"a\"b"}"#);
        assert_eq!(
            v.request_claims(),
            r#"{"app":{"role":"app_user"},"s":"a\"b","role":"app_user"}"#
        );
        let claims = obj(json!({"role": "other", "app": {"role": "app_user"}}));
        let v = Verified::new(&claims, Ok(Some("app_user")), WINDOW);
        assert_eq!(
            v.request_claims(),
            r#"{"role":"app_user","app":{"role":"app_user"}}"#
        );
    }

    #[test]
    fn sessions_and_role_errors_are_kept() {
        let sid = "3f0c2a9e-5b7d-4c1e-9a8f-2d6b1e0c7a54";
        let claims = obj(json!({"sid": sid, "role": 42}));
        let error = JwtError::RoleNotString("role".into());
        let v = Verified::new(&claims, Err(error.clone()), WINDOW);
        assert_eq!(v.role(), Err(error));
        assert_eq!(
            v.session(),
            Some(&SessionClaim {
                sid: parse_uuid(sid),
                exp: Some(2e9)
            })
        );
        // A sid that is not a uuid is still a session claim (the ended set's
        // horizon applies to it).
        let v = Verified::new(&obj(json!({"sid": 7})), Ok(None), WINDOW);
        assert_eq!(
            v.session(),
            Some(&SessionClaim {
                sid: None,
                exp: Some(2e9)
            })
        );
    }
}
