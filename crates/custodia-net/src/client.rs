//! What every Custodia HTTP client trusts, which addresses it may use without TLS, and why a connection failed.
//!
//! A client verifies servers against the platform's roots (the OS store, `/etc/ssl/certs` on Debian) plus, for a
//! hospital with its own PKI, the certificates in one extra PEM file: `--ca-file` on the command line or
//! `CUSTODIA_CA_FILE`. Plain `http://` is accepted only for a loopback address, where nothing crosses a network.

use std::error::Error as StdError;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig};

/// The environment variable every client reads for an extra CA file when no `--ca-file` was given.
pub const CA_FILE_ENV: &str = "CUSTODIA_CA_FILE";

/// The largest CA file read: a bundle of a few hundred certificates is far smaller.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the CA file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the CA file {path} is larger than {MAX_CA_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("the CA file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificates { path: PathBuf },
    #[error("the CA file {path} holds a certificate that cannot be used as a root: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("no CA certificates to verify servers with: install ca-certificates or give --ca-file ({reason})")]
    NoRoots { reason: String },
}

/// The roots a client verifies servers against, built once and shared by every client of a process.
#[derive(Clone, Debug)]
pub struct Trust {
    config: Arc<ClientConfig>,
    extra_ca: Option<PathBuf>,
}

/// The provider every TLS connection in Custodia uses. Installed as the process default too, so a library that
/// builds its own configuration (reqwest, a PostgreSQL connector) finds the same one.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Another part of the process may have installed one first; ours is then used explicitly.
            let _ = rustls::crypto::CryptoProvider::install_default((*provider).clone());
            provider
        })
        .clone()
}

static GLOBAL: OnceLock<Trust> = OnceLock::new();

impl Trust {
    /// The platform's roots plus the certificates in `extra_ca`, if given.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, TrustError> {
        let extra = match extra_ca {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, crypto_provider()).map_err(|e| {
                match (extra_ca, &e) {
                    (Some(path), rustls::Error::InvalidCertificate(_)) => {
                        TrustError::BadCertificate { path: path.to_owned(), reason: e.to_string() }
                    }
                    _ => TrustError::NoRoots { reason: e.to_string() },
                }
            })?;
        let mut config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::NoRoots { reason: e.to_string() })?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // Custodia's clients speak HTTP/1.1 (one request at a time per connection, kept alive); the servers
        // also offer HTTP/2 to others, such as browsers.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config), extra_ca: extra_ca.map(Path::to_owned) })
    }

    /// Sets the trust every client of this process uses, once, before the first client is made: the command
    /// line's `--ca-file`, or else `CUSTODIA_CA_FILE`. A later call, or one after [`Trust::global`] has been
    /// used, changes nothing and says so.
    pub fn configure(extra_ca: Option<&Path>) -> Result<&'static Trust, TrustError> {
        if let Some(trust) = GLOBAL.get() {
            return Ok(trust);
        }
        let from_env = std::env::var_os(CA_FILE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let trust = Trust::new(extra_ca.or(from_env.as_deref()))?;
        Ok(GLOBAL.get_or_init(|| trust))
    }

    /// The process's trust: what [`Trust::configure`] set, or the platform's roots plus `CUSTODIA_CA_FILE`.
    pub fn global() -> Result<&'static Trust, TrustError> {
        match GLOBAL.get() {
            Some(trust) => Ok(trust),
            None => Self::configure(None),
        }
    }

    /// The extra CA file these roots include, if any.
    pub fn extra_ca(&self) -> Option<&Path> {
        self.extra_ca.as_deref()
    }

    /// The rustls configuration, for a client that is not reqwest (a PostgreSQL connector).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A blocking reqwest client builder that verifies with these roots.
    pub fn blocking_client(&self) -> reqwest::blocking::ClientBuilder {
        reqwest::blocking::Client::builder().tls_backend_preconfigured((*self.config).clone())
    }

    /// An async reqwest client builder that verifies with these roots.
    pub fn async_client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().tls_backend_preconfigured((*self.config).clone())
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    use std::io::Read;
    let read = |source| TrustError::Read { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(read)?.take(MAX_CA_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(TrustError::TooLarge { path: path.to_owned() });
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TrustError::BadCertificate { path: path.to_owned(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TrustError::NoCertificates { path: path.to_owned() });
    }
    Ok(certs)
}

/// Why an address may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("it must start with https:// (or http:// for a loopback address)")]
    Scheme,
    #[error("plain http:// is only for this machine (127.0.0.1, ::1, localhost); use https:// for {host}")]
    PlainHttpBeyondLoopback { host: String },
    #[error("it names no host")]
    NoHost,
}

/// Whether `host` (a URL's host: a name or an address, IPv6 in brackets or not) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost"),
    }
}

/// Checks the scheme of a server's address: `https://` anywhere, `http://` only on loopback.
pub fn check_url(url: &reqwest::Url) -> Result<(), UrlError> {
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or(UrlError::NoHost)?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(UrlError::PlainHttpBeyondLoopback { host: host.to_owned() }),
        _ => Err(UrlError::Scheme),
    }
}

/// Whether a failed request failed because the server's certificate was refused (or the server spoke no TLS):
/// a verification failure, not an outage.
pub fn is_certificate_refusal(error: &(dyn StdError + 'static)) -> bool {
    tls_error(error).is_some()
}

/// A one-line reason a request failed, in words an operator can act on: which certificate check refused the
/// server, or that nothing answers, or that it took too long. Never includes a request's content.
pub fn explain(error: &(dyn StdError + 'static)) -> String {
    if let Some(tls) = tls_error(error) {
        return explain_tls(tls);
    }
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return "nothing is listening there (connection refused)".into();
                }
                std::io::ErrorKind::TimedOut => return "it did not answer in time".into(),
                _ => {}
            }
        }
        if e.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout) {
            return "it did not answer in time".into();
        }
        cause = e.source();
    }
    // The innermost cause is usually the most precise (a DNS failure, a reset).
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The rustls error somewhere in `error`'s chain. An `io::Error`'s `source()` skips the error it wraps, so each
/// one is opened by hand
/// (they nest: reqwest's connector wraps tokio-rustls's).
fn tls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            cause = Some(inner);
            continue;
        }
        cause = e.source();
    }
    None
}

fn explain_tls(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "its certificate is not signed by a CA this machine trusts (unknown \
                issuer); if the server uses its own CA, give it with --ca-file or CUSTODIA_CA_FILE"
                .into(),
            CertificateError::Expired => "its certificate has expired".into(),
            CertificateError::ExpiredContext { not_after, .. } => {
                format!("its certificate has expired (valid until {} in Unix seconds)", not_after.as_secs())
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet (check this machine's clock)".into()
            }
            CertificateError::NotValidForName => "its certificate is for another host name (name mismatch)".into(),
            CertificateError::NotValidForNameContext { presented, .. } => {
                format!("its certificate is for another host name (name mismatch: it names {})", presented.join(", "))
            }
            CertificateError::Revoked => "its certificate has been revoked".into(),
            other => format!("its certificate was refused ({other})"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "it did not answer in TLS (is it a plain http:// server?)".into()
        }
        other => format!("the TLS handshake failed ({other})"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        let ok = ["http://127.0.0.1:8080", "http://[::1]:80", "http://localhost:1", "https://ledger.example.org"];
        for url in ok {
            assert_eq!(check_url(&url.parse().unwrap()), Ok(()), "{url}");
        }
        let err = check_url(&"http://ledger.example.org".parse().unwrap()).unwrap_err();
        assert_eq!(err, UrlError::PlainHttpBeyondLoopback { host: "ledger.example.org".into() });
        assert!(err.to_string().contains("use https:// for ledger.example.org"));
        assert!(check_url(&"http://10.0.0.1:80".parse().unwrap()).is_err());
        assert!(check_url(&"http://127.0.0.1.example.org".parse().unwrap()).is_err());
        assert_eq!(check_url(&"ftp://127.0.0.1".parse().unwrap()), Err(UrlError::Scheme));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = Trust::new(Some(&path)).unwrap_err();
        assert!(matches!(err, TrustError::NoCertificates { .. }), "{err}");
        assert!(err.to_string().contains("ca.pem"));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(Trust::new(Some(&missing)), Err(TrustError::Read { .. })));
    }
}
