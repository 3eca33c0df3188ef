//! Respond stage: the call's outcome becomes the HTTP response.
//!
//! Owns the PostgREST response conventions: `response.status` and
//! `response.headers` set by the function, 204 for void, `Content-Range` for
//! sets, the singular media type, HEAD without a body, and replacing values of
//! the claims type with signed JWTs (the database never holds the key). It does
//! not decide commit or rollback; the execute stage has already done that.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{Map, Value};

use crate::error::{AuthError, Error, ResponseSettingsError};
use crate::execute::Outcome;
use crate::jwt::Jwt;
use crate::parse::{RpcMethod, RpcRequest};
use crate::plan::{CallPlan, ClaimsAt};
use crate::schema_cache::Returns;

/// Build the response for a successful call.
pub fn respond(
    req: &RpcRequest,
    plan: &CallPlan,
    outcome: Outcome,
    jwt: Option<&Jwt>,
) -> Result<HttpResponse, Error> {
    let status = match outcome.status.as_deref() {
        None => None,
        Some(s) => Some(
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| (100..=599).contains(n))
                .and_then(|n| StatusCode::from_u16(n).ok())
                .ok_or(ResponseSettingsError::Status)?,
        ),
    };
    let extra_headers = match outcome.headers.as_deref() {
        None => Vec::new(),
        Some(text) => response_headers(text)?,
    };

    // A function that records a failure (and so must not RAISE, which would roll
    // the record back) answers with `response.status` ≥ 400 and the error body
    // in `response.error`; the transaction has committed.
    if let (Some(status), Some(text)) = (status, outcome.error.as_deref()) {
        if status.is_client_error() || status.is_server_error() {
            let body = error_setting(text)?;
            let mut res = HttpResponse::build(status);
            res.insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"));
            for (name, value) in extra_headers {
                res.append_header((name, value));
            }
            if req.method == RpcMethod::Head {
                return Ok(res.finish());
            }
            return Ok(res.body(body));
        }
    }

    let void = matches!(plan.routine.returns, Returns::Void);
    let mut res = HttpResponse::build(status.unwrap_or(if void {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::OK
    }));
    if req.schema_from_header {
        if let Ok(v) = HeaderValue::from_str(&req.schema) {
            res.insert_header((HeaderName::from_static("content-profile"), v));
        }
    }
    if plan.routine.returns.is_set() && !plan.singular {
        // PostgREST answers sets with their range; clients read counts from it.
        let range = if outcome.rows > 0 {
            format!("0-{}/*", outcome.rows - 1)
        } else {
            "*/*".to_string()
        };
        res.insert_header((header::CONTENT_RANGE, range));
    }
    let function_sets_type = extra_headers.iter().any(|(n, _)| n == header::CONTENT_TYPE);
    if !void && !function_sets_type {
        res.insert_header((
            header::CONTENT_TYPE,
            if plan.singular {
                "application/vnd.pgrst.object+json; charset=utf-8"
            } else {
                "application/json; charset=utf-8"
            },
        ));
    }
    for (name, value) in extra_headers {
        res.append_header((name, value));
    }

    let body = match outcome.body {
        None => String::new(),
        Some(text) => sign_claims(text, &plan.claims_at, jwt)?,
    };
    if req.method == RpcMethod::Head || body.is_empty() {
        return Ok(res.finish());
    }
    Ok(res.body(body))
}

/// `response.error`: `{"code", "message", "details"?, "hint"?}`, rendered in
/// the gateway's error shape.
fn error_setting(text: &str) -> Result<String, Error> {
    let map: Map<String, Value> =
        serde_json::from_str(text).map_err(|_| ResponseSettingsError::ErrorSetting)?;
    let (Some(Value::String(code)), Some(Value::String(message))) =
        (map.get("code"), map.get("message"))
    else {
        return Err(ResponseSettingsError::ErrorSetting.into());
    };
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "details": map.get("details").cloned().unwrap_or(Value::Null),
        "hint": map.get("hint").cloned().unwrap_or(Value::Null),
    });
    Ok(body.to_string())
}

/// `response.headers`: a JSON array of objects with one key and a string value
/// each (several `Set-Cookie` allowed), as PostgREST defines it.
fn response_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let items: Vec<Map<String, Value>> =
        serde_json::from_str(text).map_err(|_| ResponseSettingsError::Headers)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut entries = item.into_iter();
        let (Some((name, Value::String(value))), None) = (entries.next(), entries.next()) else {
            return Err(ResponseSettingsError::Headers.into());
        };
        let name =
            HeaderName::try_from(name.as_str()).map_err(|_| ResponseSettingsError::Headers)?;
        let value = HeaderValue::from_str(&value).map_err(|_| ResponseSettingsError::Headers)?;
        out.push((name, value));
    }
    Ok(out)
}

/// Replace claims-type values in the JSON result by signed tokens; the text
/// passes through untouched when the function returns none.
fn sign_claims(text: String, at: &ClaimsAt, jwt: Option<&Jwt>) -> Result<String, Error> {
    if *at == ClaimsAt::Nowhere {
        return Ok(text);
    }
    let jwt = jwt.ok_or(AuthError::SecretMissing)?;
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Internal(format!("result is not JSON: {e}")))?;
    let mut rows: Vec<&mut Value> = match &mut value {
        Value::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    for row in rows.iter_mut() {
        match at {
            ClaimsAt::Nowhere => {}
            ClaimsAt::Whole => sign_value(row, jwt)?,
            ClaimsAt::Columns(cols) => {
                if let Value::Object(map) = row {
                    for col in cols {
                        if let Some(v) = map.get_mut(col) {
                            sign_value(v, jwt)?;
                        }
                    }
                }
            }
        }
    }
    Ok(value.to_string())
}

/// One claims value → token: every non-null attribute is a claim; all null →
/// `null` (how a function says "no token").
fn sign_value(v: &mut Value, jwt: &Jwt) -> Result<(), Error> {
    match v {
        Value::Null => Ok(()),
        Value::Object(map) => {
            map.retain(|_, value| !value.is_null());
            if map.is_empty() {
                *v = Value::Null;
                return Ok(());
            }
            let claims = std::mem::take(map);
            let token = jwt
                .sign(claims)
                .map_err(|e| Error::Internal(format!("signing a token failed: {}", e.message())))?;
            *v = Value::String(token);
            Ok(())
        }
        _ => Err(Error::Internal(
            "a value of the claims type is not a JSON object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_format() {
        let h = response_headers(r#"[{"Set-Cookie":"a=1"},{"Set-Cookie":"b=2"},{"X-A":"x"}]"#)
            .expect("valid");
        assert_eq!(h.len(), 3);
        assert!(response_headers(r#"{"X-A":"x"}"#).is_err());
        assert!(response_headers(r#"[{"X-A":1}]"#).is_err());
        assert!(response_headers(r#"[{"X-A":"x","X-B":"y"}]"#).is_err());
    }
}
