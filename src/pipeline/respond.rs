//! Respond stage: the call's outcome becomes the HTTP response.
//!
//! Owns the PostgREST response conventions: `response.status` and
//! `response.headers` set by the function, 204 for void, `Content-Range` for
//! sets (with the total and 206/416 when a count was asked for), the singular
//! and stripped-nulls media types, HEAD without a body, and replacing values of
//! the claims type with signed JWTs (the database never holds the key), also
//! into a `Set-Cookie` the function wrote with the [`TOKEN_PLACEHOLDER`]. It
//! does not decide commit or rollback; the execute stage has already done that.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{Map, Value};

use crate::db::schema_cache::Returns;
use crate::error::{AuthError, Error, RequestError, ResponseSettingsError};
use crate::jwt::Jwt;
use crate::pipeline::execute::Outcome;
use crate::pipeline::plan::{CallPlan, ClaimsAt};

/// In a `Set-Cookie` of `response.headers`, stands for the token the function
/// returns: SQL never holds the key, so it cannot write the signed token itself.
pub const TOKEN_PLACEHOLDER: &str = "{token}";

/// Build the response for a successful call, from its plan and outcome alone.
pub fn respond(
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
    let mut extra_headers = match outcome.headers.as_deref() {
        None => Vec::new(),
        Some(text) => response_headers(text)?,
    };

    // A function that records a failure (and so must not RAISE, which would roll
    // the record back) answers with `response.status` ≥ 400 and the error body
    // in `response.error`; the transaction has committed.
    if let (Some(status), Some(text)) = (status, outcome.error.as_deref()) {
        if status.is_client_error() || status.is_server_error() {
            let body = error_setting(text)?;
            fill_token_cookies(&mut extra_headers, &[])?;
            let mut res = HttpResponse::build(status);
            res.insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"));
            for (name, value) in extra_headers {
                res.append_header((name, value));
            }
            if plan.head {
                return Ok(res.finish());
            }
            return Ok(res.body(body));
        }
    }

    let void = matches!(plan.routine.returns, Returns::Void);
    let range = (plan.routine.returns.is_set() && !plan.singular)
        .then(|| content_range(plan.read.offset, outcome.rows, outcome.total))
        .transpose()?;
    let default_status = match &range {
        _ if void => StatusCode::NO_CONTENT,
        Some((_, partial)) if *partial => StatusCode::PARTIAL_CONTENT,
        _ => StatusCode::OK,
    };
    let mut res = HttpResponse::build(status.unwrap_or(default_status));
    if let Some(profile) = &plan.profile {
        if let Ok(v) = HeaderValue::from_str(profile) {
            res.insert_header((HeaderName::from_static("content-profile"), v));
        }
    }
    if let Some((range, _)) = range {
        // PostgREST answers sets with their range; clients read counts from it.
        res.insert_header((header::CONTENT_RANGE, range));
    }
    if plan.read.count {
        res.insert_header((
            HeaderName::from_static("preference-applied"),
            HeaderValue::from_static("count=exact"),
        ));
    }
    let mut tokens = Vec::new();
    let body = match outcome.body {
        None => String::new(),
        Some(text) => sign_claims(text, &plan.claims_at, jwt, &mut tokens)?,
    };
    fill_token_cookies(&mut extra_headers, &tokens)?;
    let function_sets_type = extra_headers.iter().any(|(n, _)| n == header::CONTENT_TYPE);
    if !void && !function_sets_type {
        res.insert_header((
            header::CONTENT_TYPE,
            match (plan.singular, plan.strip_nulls) {
                (true, false) => "application/vnd.pgrst.object+json; charset=utf-8",
                (true, true) => "application/vnd.pgrst.object+json;nulls=stripped; charset=utf-8",
                (false, false) => "application/json; charset=utf-8",
                (false, true) => "application/vnd.pgrst.array+json;nulls=stripped; charset=utf-8",
            },
        ));
    }
    for (name, value) in extra_headers {
        res.append_header((name, value));
    }

    if plan.head || body.is_empty() {
        return Ok(res.finish());
    }
    Ok(res.body(body))
}

/// `Content-Range` of a page of a set (RFC 9110 §14.4; PostgREST's
/// `rangeStatusHeader`): `first-last/total`, `*` for an empty page, `*` for an
/// unknown total; and whether the page is partial (206). An offset past the
/// counted total is 416.
fn content_range(offset: i64, rows: i64, total: Option<i64>) -> Result<(String, bool), Error> {
    if let Some(total) = total {
        if offset > total {
            return Err(RequestError::InvalidRange {
                details: format!(
                    "An offset of {offset} was requested, but there are only {total} rows."
                ),
            }
            .into());
        }
    }
    let first_last = if rows > 0 && total != Some(0) {
        format!("{offset}-{}", offset + rows - 1)
    } else {
        "*".to_string()
    };
    let total_text = total.map_or_else(|| "*".to_string(), |t| t.to_string());
    let partial = total.is_some_and(|t| rows < t);
    Ok((format!("{first_last}/{total_text}"), partial))
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

/// Put the one token of the result into each `Set-Cookie` that holds the
/// [`TOKEN_PLACEHOLDER`] (how `identify` sets the `jwt.cookie_name` cookie).
/// With no token or several, which one is meant is unknown: the function's
/// mistake, 500 `PGRST111`.
fn fill_token_cookies(
    headers: &mut [(HeaderName, HeaderValue)],
    tokens: &[String],
) -> Result<(), Error> {
    for (name, value) in headers.iter_mut() {
        if *name != header::SET_COOKIE {
            continue;
        }
        let Some(text) = value
            .to_str()
            .ok()
            .filter(|t| t.contains(TOKEN_PLACEHOLDER))
        else {
            continue;
        };
        let [token] = tokens else {
            return Err(ResponseSettingsError::TokenCookie {
                tokens: tokens.len(),
            }
            .into());
        };
        *value = HeaderValue::from_str(&text.replace(TOKEN_PLACEHOLDER, token))
            .map_err(|_| ResponseSettingsError::Headers)?;
    }
    Ok(())
}

/// Replace claims-type values in the JSON result by signed tokens, each also
/// pushed to `tokens`; the text passes through untouched when the function
/// returns none.
fn sign_claims(
    text: String,
    at: &ClaimsAt,
    jwt: Option<&Jwt>,
    tokens: &mut Vec<String>,
) -> Result<String, Error> {
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
            ClaimsAt::Whole => sign_value(row, jwt, tokens)?,
            ClaimsAt::Columns(cols) => {
                if let Value::Object(map) = row {
                    for col in cols {
                        if let Some(v) = map.get_mut(col) {
                            sign_value(v, jwt, tokens)?;
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
fn sign_value(v: &mut Value, jwt: &Jwt, tokens: &mut Vec<String>) -> Result<(), Error> {
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
            tokens.push(token.clone());
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
    fn content_range_follows_postgrest() {
        let ok = |o, r, t| content_range(o, r, t).expect("in range");
        assert_eq!(ok(0, 3, None), ("0-2/*".to_string(), false));
        assert_eq!(ok(0, 0, None), ("*/*".to_string(), false));
        assert_eq!(ok(2, 1, None), ("2-2/*".to_string(), false));
        assert_eq!(ok(0, 3, Some(3)), ("0-2/3".to_string(), false));
        assert_eq!(ok(0, 0, Some(0)), ("*/0".to_string(), false));
        assert_eq!(ok(1, 2, Some(5)), ("1-2/5".to_string(), true));
        assert_eq!(ok(3, 0, Some(3)), ("*/3".to_string(), true));
        let e = content_range(4, 0, Some(3)).expect_err("past the end");
        assert_eq!(e.status().as_u16(), 416);
        assert_eq!(e.code(), "PGRST103");
    }

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
