//! The listening side of every Custodia server: plain HTTP on loopback, or TLS anywhere, with the certificate
//! and key read again whenever their files change, so a renewal (certbot, a hospital's PKI) needs no restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::TlsFiles;
use crate::client::crypto_provider;

/// How often the certificate files are looked at for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// A client gets this long to finish its TLS handshake; a slow or silent one is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond this, new connections wait in the kernel's backlog.
const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Certificate chains and keys are a few kilobytes; anything larger is not one.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a PEM private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch { cert: PathBuf, key: PathBuf, reason: String },
    #[error("{path} is larger than {MAX_PEM_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(
        "refusing to listen on {addr} without TLS: give --tls-cert and --tls-key, or put it behind a TLS proxy and \
         set {public_env}=1"
    )]
    PlainBeyondLoopback { addr: SocketAddr, public_env: &'static str },
}

/// Refuses a plain-HTTP listener beyond loopback unless the operator says a TLS proxy stands in front
/// (`public_env` set to anything).
pub fn check_listen(addr: SocketAddr, tls: bool, public_env: &'static str) -> Result<(), ServerTlsError> {
    if tls || addr.ip().is_loopback() || std::env::var_os(public_env).is_some() {
        return Ok(());
    }
    Err(ServerTlsError::PlainBeyondLoopback { addr, public_env })
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ServerTlsError> {
    use std::io::Read;
    let read = |source| ServerTlsError::Read { path: path.to_owned(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(read)?.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(ServerTlsError::TooLarge { path: path.to_owned() });
    }
    Ok(bytes)
}

/// Reads and checks a certificate chain and its key.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, ServerTlsError> {
    let cert_pem = read_pem(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| ServerTlsError::NoCertificate { path: files.cert.clone() })?;
    if chain.is_empty() {
        return Err(ServerTlsError::NoCertificate { path: files.cert.clone() });
    }
    let key_pem = zeroize::Zeroizing::new(read_pem(&files.key)?);
    let bad_key = |reason: String| ServerTlsError::BadKey { path: files.key.clone(), reason };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing_key = crypto_provider().key_provider.load_private_key(key).map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| ServerTlsError::Mismatch {
        cert: files.cert.clone(),
        key: files.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// When the files were last seen changed, to notice a renewal without reading them every time.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(files: &TlsFiles) -> Stamp {
    let meta = |p: &Path| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
    let (cert, key) = (meta(&files.cert)?, meta(&files.key)?);
    Some((cert.0, cert.1, key.0, key.1))
}

/// Hands every handshake the certificate most recently loaded.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<(Arc<CertifiedKey>, Stamp)>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone())
    }
}

impl ReloadingCert {
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, ServerTlsError> {
        let stamp = stamp(&files);
        let key = load_certified_key(&files)?;
        Ok(Arc::new(Self { files, current: RwLock::new((Arc::new(key), stamp)) }))
    }

    /// Reads the files again if they changed since the last look. A pair that does not load (the key written
    /// but not yet the certificate) keeps the previous one in service and is tried again at the next look.
    pub fn reload_if_changed(&self) -> Result<bool, ServerTlsError> {
        let now = stamp(&self.files);
        if now == self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).1 {
            return Ok(false);
        }
        let key = load_certified_key(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(key), now);
        Ok(true)
    }

    /// Looks at the files every [`RELOAD_INTERVAL`] until the last handle to `this` is dropped.
    fn watch(this: Weak<Self>) {
        tokio::spawn(async move {
            let mut failed_before = false;
            loop {
                tokio::time::sleep(RELOAD_INTERVAL).await;
                let Some(cert) = this.upgrade() else { return };
                let reloaded = tokio::task::spawn_blocking(move || cert.reload_if_changed()).await;
                match reloaded {
                    Ok(Ok(true)) => {
                        failed_before = false;
                        crate::log::info("custodia", "TLS certificate reloaded");
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) if !failed_before => {
                        failed_before = true;
                        crate::log::warn("custodia", format_args!("keeping the current TLS certificate: {e}"));
                    }
                    Ok(Err(_)) | Err(_) => {}
                }
            }
        });
    }
}

/// The TLS side of a server: the acceptor and the certificate it serves.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    cert: Arc<ReloadingCert>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.cert.files).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files and builds a TLS 1.2/1.3 configuration offering HTTP/2 and HTTP/1.1.
    pub fn new(files: &TlsFiles) -> Result<Self, ServerTlsError> {
        Self::with_alpn(files, &[b"h2", b"http/1.1"])
    }

    /// [`ServerTls::new`], offering only HTTP/1.1: for a server whose checks read the `Host` header, which
    /// HTTP/2 does not send.
    pub fn http1_only(files: &TlsFiles) -> Result<Self, ServerTlsError> {
        Self::with_alpn(files, &[b"http/1.1"])
    }

    fn with_alpn(files: &TlsFiles, protocols: &[&[u8]]) -> Result<Self, ServerTlsError> {
        let cert = ReloadingCert::load(files.clone())?;
        let mut config = ServerConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerTlsError::BadKey { path: files.key.clone(), reason: e.to_string() })?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        Ok(Self { acceptor: TlsAcceptor::from(Arc::new(config)), cert })
    }
}

/// Anything a connection can be: a TCP stream, or TLS over one.
pub trait Connection: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Connection for T {}

/// A listener for `axum::serve`: plain TCP, or TLS with handshakes run side by side so one slow client does not
/// hold up the others.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    tls: Option<ServerTls>,
    handshakes: JoinSet<Option<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>>,
}

impl Listener {
    /// Binds `addr`; with `tls`, starts watching its files for a renewal. Call inside a Tokio runtime.
    pub async fn bind(addr: SocketAddr, tls: Option<ServerTls>) -> Result<Self, ServerTlsError> {
        let tcp = TcpListener::bind(addr).await.map_err(|source| ServerTlsError::Listen { addr, source })?;
        if let Some(tls) = &tls {
            ReloadingCert::watch(Arc::downgrade(&tls.cert));
        }
        Ok(Self { tcp, tls, handshakes: JoinSet::new() })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// `https` or `http`, for the URL a server prints.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

impl axum::serve::Listener for Listener {
    type Io = Box<dyn Connection>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(tls) = &self.tls else {
                match self.tcp.accept().await {
                    Ok((stream, addr)) => {
                        // Answers are small and wanted at once; Nagle's algorithm would hold them back.
                        let _ = stream.set_nodelay(true);
                        return (Box::new(stream), addr);
                    }
                    Err(_) => {
                        // Out of file descriptors or a connection reset before accept: wait, then go on.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            };
            let room = self.handshakes.len() < MAX_PENDING_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let acceptor = tls.acceptor.clone();
                        self.handshakes.spawn(async move {
                            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                            Some((stream.ok()?.ok()?, addr))
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some((stream, addr))) = done {
                        return (Box::new(stream), addr);
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
