//! TLS to PostgreSQL: the rustls connector for a URI's [`TlsOptions`], and
//! what a failed handshake means in words an operator can act on.
//!
//! libpq's modes (<https://www.postgresql.org/docs/15/libpq-ssl.html#LIBPQ-SSL-PROTECTION>):
//! `prefer` and `require` encrypt without checking the certificate (unless
//! `require` is given an `sslrootcert`, which makes it `verify-ca`, as in
//! libpq); `verify-ca` checks the chain up to a trusted CA but not the host
//! name; `verify-full` checks both. Trusted CAs are the `sslrootcert` file or,
//! without one, the system's store. `sslcert` + `sslkey` present a client
//! certificate. The files are read once, when the connector is built (at
//! start); a key's contents never reach a log or an error message.
//! tokio-postgres does the protocol part: the SSLRequest, `prefer`'s fallback
//! to plaintext when the server answers `N`, and one handshake per host of a
//! multi-host URI with that host's name. Does not parse URIs (config) nor open
//! connections (db).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{RootCerts, SslMode, TlsOptions};

/// Why a connector could not be built (files missing or unreadable).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `sslrootcert` could not be read or holds no certificate.
    #[error("sslrootcert {}: {reason}", .path.display())]
    RootCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No `sslrootcert` and the system store has no CA certificate.
    #[error("sslmode={mode} needs trusted CA certificates: set sslrootcert (no system CA certificates were found: {reason})")]
    NoSystemRoots {
        /// The mode.
        mode: &'static str,
        /// What the system store said.
        reason: String,
    },
    /// `sslcert` could not be read or holds no certificate.
    #[error("sslcert {}: {reason}", .path.display())]
    ClientCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `sslkey` could not be read or is no PEM private key (its contents are
    /// never shown).
    #[error("sslkey {}: {reason}", .path.display())]
    ClientKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The driver's `sslmode` for ours: tokio-postgres only needs to know whether
/// to ask for TLS and whether to insist; verification is the connector's.
pub fn driver_mode(mode: SslMode) -> tokio_postgres::config::SslMode {
    match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    }
}

/// The connector for `opts`; `None` for `sslmode=disable`.
pub fn connector(opts: &TlsOptions) -> Result<Option<MakeRustlsConnect>, TlsError> {
    if opts.mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = if !opts.verifies_chain() {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    } else {
        let roots = Arc::new(roots(opts)?);
        if opts.mode == SslMode::VerifyFull {
            builder.with_root_certificates(roots)
        } else {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .expect("a root store with at least one CA builds a verifier");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
        }
    };
    let config = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let chain = client_chain(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::ClientKey {
                path: key.clone(),
                reason: pem_reason(&e, "private key"),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| TlsError::ClientKey {
                    path: key.clone(),
                    reason: format!("does not go with sslcert: {e}"),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect::new(config)))
}

fn roots(opts: &TlsOptions) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match &opts.root_cert {
        Some(RootCerts::File(path)) => {
            let certs = read_certs(path).map_err(|reason| TlsError::RootCert {
                path: path.clone(),
                reason,
            })?;
            let (_, ignored) = store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(TlsError::RootCert {
                    path: path.clone(),
                    reason: format!("none of its {ignored} certificates is a usable CA"),
                });
            }
        }
        Some(RootCerts::System) | None => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let reason = found
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_string(), ToString::to_string);
                return Err(TlsError::NoSystemRoots {
                    mode: opts.mode.as_str(),
                    reason,
                });
            }
        }
    }
    Ok(store)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e, "certificate"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

fn client_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certs(path).map_err(|reason| TlsError::ClientCert {
        path: path.to_path_buf(),
        reason,
    })
}

/// Describe a PEM failure without quoting the file.
fn pem_reason(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => format!("holds no PEM {what}"),
        _ => format!("is not a valid PEM {what}"),
    }
}

/// `prefer` and `require`: encrypt, trust any certificate (libpq's meaning).
/// The handshake's signatures are still checked, so the certificate's key is
/// the one the server holds.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
/// rustls's verifier checks the chain first and the name last, so a
/// name-only failure means the chain was good.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error inside a failed connection, if TLS is what failed.
fn rustls_cause(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = err.source();
    }
    None
}

/// Whether the TLS set-up (not the network, not authentication) failed:
/// such a failure will not go away by retrying, so start-up refuses it.
pub fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    rustls_cause(e).is_some() || e.to_string().starts_with("error performing TLS handshake")
}

/// A connection error in words: what the TLS failure means and what to
/// change, or the driver's own message for anything else.
pub fn explain(e: &tokio_postgres::Error) -> String {
    use rustls::AlertDescription as A;
    // The driver's Display leaves the cause out; its sources hold it.
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if text.contains("server does not support TLS") {
        return "the server does not accept TLS connections, but sslmode requires TLS \
                (turn ssl on in the server, or use sslmode=prefer or disable)"
            .into();
    }
    let Some(cause) = rustls_cause(e) else {
        return text;
    };
    match cause {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the server's TLS certificate is not signed by a trusted certificate authority \
             (check sslrootcert: it must hold the CA that signed the server's certificate)"
                .into()
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            presented,
        }) => format!(
            "the server's TLS certificate is not valid for the host name \"{}\" \
             (it names {}; sslmode=verify-full checks the name: connect by a name the \
             certificate lists, or use verify-ca)",
            expected.to_str(),
            if presented.is_empty() {
                "no host".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            "the server's TLS certificate is not valid for the host name connected to \
             (sslmode=verify-full checks the name: connect by a name the certificate lists, \
             or use verify-ca)"
                .into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's TLS certificate has expired".into(),
        rustls::Error::InvalidCertificate(other) => {
            format!("the server's TLS certificate was refused: {other:?}")
        }
        rustls::Error::AlertReceived(A::CertificateRequired | A::BadCertificate | A::UnknownCA) => {
            format!(
                "the server refused the TLS handshake ({cause}): it wants a client \
                 certificate it trusts (sslcert and sslkey)"
            )
        }
        other => format!("the TLS handshake with the server failed: {other}"),
    }
}

/// `DnsName("db.example")` → `db.example`, `IpAddress(127.0.0.1)` → `127.0.0.1`
/// (how rustls spells the names a certificate presents).
fn bare_name(presented: &str) -> &str {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: SslMode) -> TlsOptions {
        TlsOptions {
            mode,
            ..TlsOptions::default()
        }
    }

    #[test]
    fn disable_needs_no_connector_and_prefer_builds_one() {
        assert!(connector(&opts(SslMode::Disable)).expect("ok").is_none());
        assert!(connector(&opts(SslMode::Prefer)).expect("ok").is_some());
        assert_eq!(
            driver_mode(SslMode::VerifyFull),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn unreadable_files_are_named_and_key_contents_never_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = opts(SslMode::VerifyFull);
        o.root_cert = Some(RootCerts::File(dir.path().join("missing.pem")));
        let e = connector(&o).err().expect("refused").to_string();
        assert!(
            e.starts_with("sslrootcert ") && e.contains("missing.pem"),
            "{e}"
        );

        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").expect("write");
        std::fs::write(&key, "SECRET-KEY-MATERIAL").expect("write");
        let mut o = opts(SslMode::Require);
        o.client_cert = Some(cert);
        o.client_key = Some(key);
        let e = connector(&o).err().expect("refused").to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        // A good certificate, a key file that is no key.
        let good = rcgen::generate_simple_self_signed(vec!["client".to_string()]).expect("cert");
        std::fs::write(o.client_cert.as_ref().expect("set"), good.cert.pem()).expect("write");
        let e = connector(&o).err().expect("refused").to_string();
        assert!(e.starts_with("sslkey ") && e.contains("private key"), "{e}");
        assert!(!e.contains("SECRET-KEY-MATERIAL"), "{e}");
    }

    #[test]
    fn presented_names_lose_rustls_spelling() {
        assert_eq!(bare_name("DnsName(\"db.example\")"), "db.example");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("plain"), "plain");
    }
}
