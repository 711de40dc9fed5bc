//! Custodia's connections over a network.
//!
//! - [`client`]: what every HTTP client trusts (the platform's roots plus a hospital's own CA), the rule that
//!   plain `http://` is for loopback only, and a one-line reason for a refused connection.
//! - `server` (feature `server`, on by default): TLS for the ledger, the gateway and the app's browser mode, with certificates reloaded when
//!   their files change.
//!
//! - [`log`] and [`metrics`]: what an operator reads: log lines as text or JSON, and Prometheus counters.
//!
//! One TLS stack, rustls with the ring provider, for all of them.

pub mod client;
pub mod log;
pub mod metrics;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "test-ca")]
pub mod test_ca;

pub use client::{Trust, TrustError, UrlError};
#[cfg(feature = "server")]
pub use server::{Listener, ServerTls, ServerTlsError};

/// A server's certificate chain (PEM, leaf first) and its private key (PEM, PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// Writes a service's secret key file: readable by its owner only, created fresh (never over an
/// existing file), and on disk before this returns.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes).and_then(|()| file.sync_all())
}
