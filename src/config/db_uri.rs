//! `db.uri`, `db.admin_uri` and `db.listen_uri` as libpq spells them, split
//! into what tokio-postgres parses and the TLS options it does not.
//!
//! tokio-postgres's own parser knows `sslmode=disable|prefer|require` only and
//! refuses `verify-ca`, `verify-full`, `sslrootcert`, `sslcert` and `sslkey`
//! as unknown options, so those are taken out of the text here (URL query
//! string or `key=value` pairs, whichever form the URI has) and the rest is
//! handed to tokio-postgres unchanged: multi-host URIs
//! (`postgres://h1:5432,h2:5433/db`), `target_session_attrs` and everything
//! else keep tokio-postgres's meaning. Owns parsing and validation only; the
//! connector is built from [`TlsOptions`] by `db::tls`, which reads the files.
//!
//! Defaults follow libpq (<https://www.postgresql.org/docs/15/libpq-ssl.html>):
//! `sslmode=prefer`. `PGSSLMODE` and the other `PG*` variables are not read:
//! tokio-postgres reads none of them (not `PGHOST` either), and one source of
//! truth for a connection is easier to reason about than half of libpq's.

use std::path::PathBuf;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

/// The TLS keys this module takes out of a URI.
const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// libpq's `sslmode`, without `allow` (plaintext first), which tokio-postgres
/// cannot do and which protects nothing that `prefer` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plaintext; the certificate is not
    /// checked (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is not checked unless `sslrootcert` is
    /// given, which then makes it `verify-ca` (as libpq does).
    Require,
    /// TLS, and the server's certificate chain must lead to a trusted CA.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported (it tries plaintext first); use prefer".into(),
                )
            }
            other => {
                return Err(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }

    /// libpq's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Which certificate authorities to trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The operating system's store (no `sslrootcert`, or `sslrootcert=system`
    /// as in libpq 16).
    System,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The TLS part of a connection URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sslmode`.
    pub mode: SslMode,
    /// `sslrootcert`; `None` when not given.
    pub root_cert: Option<RootCerts>,
    /// `sslcert`: client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            mode: SslMode::Prefer,
            root_cert: None,
            client_cert: None,
            client_key: None,
        }
    }
}

impl TlsOptions {
    /// Whether the server's certificate chain is checked.
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => matches!(self.root_cert, Some(RootCerts::File(_))),
            SslMode::Disable | SslMode::Prefer => false,
        }
    }
}

/// A parsed connection URI.
#[derive(Debug, Clone)]
pub struct DbUri {
    /// What tokio-postgres understands (hosts, ports, user, `options`, …).
    pub pg: tokio_postgres::Config,
    /// TLS.
    pub tls: TlsOptions,
}

impl DbUri {
    /// Parse a URL (`postgres://…?sslmode=…`) or `key=value` connection string.
    pub fn parse(text: &str) -> Result<DbUri, String> {
        let text = text.trim();
        let (rest, pairs) = if text.starts_with("postgres://") || text.starts_with("postgresql://")
        {
            split_url(text)?
        } else {
            split_key_values(text)?
        };
        let mut tls = TlsOptions::default();
        for (key, value) in pairs {
            match key.as_str() {
                "sslmode" => tls.mode = SslMode::parse(&value)?,
                "sslrootcert" if value == "system" => tls.root_cert = Some(RootCerts::System),
                "sslrootcert" => tls.root_cert = Some(RootCerts::File(PathBuf::from(value))),
                "sslcert" => tls.client_cert = Some(PathBuf::from(value)),
                "sslkey" => tls.client_key = Some(PathBuf::from(value)),
                _ => unreachable!("only TLS keys are split off"),
            }
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err("sslcert and sslkey must be given together".into());
        }
        if tls.mode == SslMode::Disable && tls.client_cert.is_some() {
            return Err("sslcert needs TLS, but sslmode=disable".into());
        }
        // The driver's Display leaves out which option was wrong; its source says.
        let pg =
            tokio_postgres::Config::from_str(&rest).map_err(
                |e| match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                },
            )?;
        Ok(DbUri { pg, tls })
    }
}

/// Split `postgres://…?a=b&sslmode=…` into the URL without TLS keys and the
/// TLS pairs (decoded). Other pairs are kept byte for byte; the query string
/// is split by hand because the authority of a multi-host URI is no URL.
fn split_url(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = text.split_once('?') else {
        return Ok((text.to_string(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| format!("{s:?} is not valid percent-encoded UTF-8"))
        };
        let key = decode(key)?;
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, decode(value)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, tls))
}

/// Split libpq's `key=value key='quoted \' value'` form the same way.
fn split_key_values(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("expected `=` after {key:?}"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err("unterminated quoted value".into()),
                    },
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), tls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::config::{Host, TargetSessionAttrs};

    #[test]
    fn tls_keys_are_taken_out_of_a_url() {
        let uri = DbUri::parse(
            "postgres://u:p%40ss@db.example:6432/app?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem&application_name=gw&sslcert=/c.pem&sslkey=/k.pem",
        )
        .expect("valid");
        assert_eq!(uri.tls.mode, SslMode::VerifyFull);
        assert_eq!(
            uri.tls.root_cert,
            Some(RootCerts::File("/etc/ca x.pem".into()))
        );
        assert_eq!(uri.tls.client_cert, Some("/c.pem".into()));
        assert_eq!(uri.tls.client_key, Some("/k.pem".into()));
        assert_eq!(uri.pg.get_application_name(), Some("gw"));
        assert_eq!(uri.pg.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(uri.pg.get_ports(), &[6432]);
    }

    #[test]
    fn multi_host_urls_keep_their_hosts_and_session_attrs() {
        let uri = DbUri::parse(
            "postgresql://authenticator@h1:5432,h2:5433/app?target_session_attrs=read-write&sslmode=require",
        )
        .expect("valid");
        assert_eq!(
            uri.pg.get_hosts(),
            &[Host::Tcp("h1".into()), Host::Tcp("h2".into())]
        );
        assert_eq!(uri.pg.get_ports(), &[5432, 5433]);
        assert_eq!(
            uri.pg.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(uri.tls.mode, SslMode::Require);
        assert!(!uri.tls.verifies_chain());
    }

    #[test]
    fn key_value_strings_work_too() {
        let uri = DbUri::parse(
            "host=/run/pg port=5432 user=authenticator sslmode = 'verify-ca' sslrootcert='/a b/c\\'s.pem' options='-c statement_timeout=5s'",
        )
        .expect("valid");
        assert_eq!(uri.tls.mode, SslMode::VerifyCa);
        assert_eq!(
            uri.tls.root_cert,
            Some(RootCerts::File("/a b/c's.pem".into()))
        );
        assert_eq!(uri.pg.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(uri.pg.get_user(), Some("authenticator"));
    }

    #[test]
    fn defaults_and_libpq_rules() {
        let uri = DbUri::parse("postgres://u@localhost/db").expect("valid");
        assert_eq!(uri.tls, TlsOptions::default());
        assert_eq!(uri.tls.mode, SslMode::Prefer);
        // require with a CA file is verify-ca (libpq's rule).
        let uri =
            DbUri::parse("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").expect("valid");
        assert!(uri.tls.verifies_chain());
        let uri = DbUri::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=system")
            .expect("valid");
        assert_eq!(uri.tls.root_cert, Some(RootCerts::System));
    }

    #[test]
    fn bad_tls_options_are_refused_with_the_reason() {
        let e = |s: &str| DbUri::parse(s).expect_err(s);
        assert!(e("postgres://u@h/db?sslmode=verify").contains("not one of"));
        assert!(e("postgres://u@h/db?sslmode=allow").contains("use prefer"));
        assert!(e("postgres://u@h/db?sslcert=/c.pem").contains("together"));
        assert!(e("postgres://u@h/db?sslmode=disable&sslcert=/c&sslkey=/k").contains("disable"));
        // Everything else is still tokio-postgres's to refuse.
        let unknown = e("postgres://u@h/db?nonsense=1");
        assert!(unknown.contains("nonsense"), "{unknown}");
        assert!(e("host=h sslmode").contains("="));
    }
}
