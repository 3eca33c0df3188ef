//! CSRF protection for requests authenticated by the token cookie.
//!
//! A browser sends the `jwt.cookie_name` cookie by itself, also on a request a
//! page of another site makes, so a request that can write (anything but
//! GET, HEAD and OPTIONS) and rides on that cookie must show where it comes
//! from (OWASP CSRF cheat sheet, "Verifying origin with standard headers"):
//! its `Origin`, or when a browser sent none, the origin of its `Referer`,
//! must be one of `server.cors_allowed_origins`. An empty allowlist means
//! "any origin" for CORS, but not here: it allows only the same origin, the
//! `Origin`'s host and port equal to the `Host` header's. A request with
//! neither header is refused (browsers send `Origin` on every POST).
//!
//! It owns that decision only. It does not see tokens (the auth stage says
//! whether the cookie was used) nor headers as actix types (the HTTP layer
//! passes text), and CORS response headers are `http::cors`'s.

use crate::error::{AuthError, Error};

/// The request facts the check reads, as text.
#[derive(Debug, Clone, Copy)]
pub struct CsrfInput<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// `Origin` header.
    pub origin: Option<&'a str>,
    /// `Referer` header.
    pub referer: Option<&'a str>,
    /// `Host` header (or the request URI's authority).
    pub host: Option<&'a str>,
    /// `server.cors_allowed_origins`.
    pub allowed_origins: &'a [String],
    /// `jwt.cookie_name`, for the error text.
    pub cookie_name: &'a str,
}

/// Refuse (403, `PGRST350`) a cookie-authenticated write from an origin that
/// is not allowed.
pub fn check(input: &CsrfInput<'_>) -> Result<(), Error> {
    if matches!(input.method, "GET" | "HEAD" | "OPTIONS") {
        return Ok(());
    }
    let (what, origin) = match (input.origin, input.referer) {
        (Some(origin), _) => ("Origin", origin.trim().to_string()),
        (None, Some(referer)) => ("Referer", referer_origin(referer)),
        (None, None) => {
            return Err(refuse(
                input,
                "the request has neither an Origin nor a Referer header".to_string(),
            ))
        }
    };
    let allowed = if input.allowed_origins.is_empty() {
        same_origin(&origin, input.host)
    } else {
        input.allowed_origins.contains(&origin)
    };
    if allowed {
        return Ok(());
    }
    let rule = if input.allowed_origins.is_empty() {
        "is not this server's own origin (server.cors_allowed_origins is empty: same origin only)"
    } else {
        "is not in server.cors_allowed_origins"
    };
    Err(refuse(input, format!("its {what} '{origin}' {rule}")))
}

fn refuse(input: &CsrfInput<'_>, why: String) -> Error {
    AuthError::CrossSite {
        details: format!(
            "The token came from the cookie '{}' and {why}",
            input.cookie_name
        ),
    }
    .into()
}

/// The origin (`scheme://host[:port]`) of a Referer URL; the text itself when
/// it is not a URL, so it matches nothing.
fn referer_origin(referer: &str) -> String {
    match url::Url::parse(referer.trim()) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => referer.trim().to_string(),
    }
}

/// Whether `origin`'s host and port are the `Host` header's (the port
/// defaulting to the origin scheme's).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let (Ok(origin), Some(host)) = (url::Url::parse(origin), host) else {
        return false;
    };
    let Ok(host) = url::Url::parse(&format!("{}://{}", origin.scheme(), host.trim())) else {
        return false;
    };
    origin.host_str().is_some()
        && origin.host_str() == host.host_str()
        && origin.port_or_known_default() == host.port_or_known_default()
        && host.path() == "/"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        method: &'a str,
        origin: Option<&'a str>,
        referer: Option<&'a str>,
        allowed: &'a [String],
    ) -> CsrfInput<'a> {
        CsrfInput {
            method,
            origin,
            referer,
            host: Some("api.example.com"),
            allowed_origins: allowed,
            cookie_name: "tok",
        }
    }

    #[test]
    fn reads_pass_and_writes_need_an_allowed_origin() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(check(&input("GET", None, None, &allowed)).is_ok());
        assert!(check(&input("HEAD", Some("https://evil.test"), None, &allowed)).is_ok());
        assert!(check(&input(
            "POST",
            Some("https://app.example.com"),
            None,
            &allowed
        ))
        .is_ok());
        let e = check(&input("POST", Some("https://evil.test"), None, &allowed)).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code().as_str()), (403, "PGRST350"));
        assert!(check(&input("POST", Some("null"), None, &allowed)).is_err());
        // Referer stands in for a missing Origin; Origin wins when both are there.
        let page = Some("https://app.example.com/login?next=/");
        assert!(check(&input("POST", None, page, &allowed)).is_ok());
        assert!(check(&input("POST", Some("https://evil.test"), page, &allowed)).is_err());
        assert!(check(&input("POST", None, Some("https://evil.test/x"), &allowed)).is_err());
        assert!(check(&input("POST", None, None, &allowed)).is_err());
    }

    #[test]
    fn an_empty_allowlist_means_same_origin_only() {
        let none: Vec<String> = Vec::new();
        assert!(check(&input("POST", Some("https://api.example.com"), None, &none)).is_ok());
        assert!(check(&input("POST", Some("http://api.example.com"), None, &none)).is_ok());
        assert!(check(&input(
            "POST",
            Some("https://api.example.com:8443"),
            None,
            &none
        ))
        .is_err());
        assert!(check(&input("POST", Some("https://evil.test"), None, &none)).is_err());
        let e = check(&input("POST", Some("https://evil.test"), None, &none)).unwrap_err();
        let details = e.details().expect("details").to_string();
        assert!(details.contains("same origin only"), "{details}");
        let local = CsrfInput {
            host: Some("127.0.0.1:3000"),
            ..input("POST", Some("http://127.0.0.1:3000"), None, &none)
        };
        assert!(check(&local).is_ok());
        let other_port = CsrfInput {
            host: Some("127.0.0.1:3000"),
            ..input("POST", Some("http://127.0.0.1:8080"), None, &none)
        };
        assert!(check(&other_port).is_err());
        let no_host = CsrfInput {
            host: None,
            ..input("POST", Some("https://api.example.com"), None, &none)
        };
        assert!(check(&no_host).is_err());
    }
}
