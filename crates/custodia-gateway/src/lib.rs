//! The Custodia FHIR gateway: a hospital's FHIR R4 records, read-only, each read checked against a
//! patient's grant and logged to the ledger.
//!
//! Every request carries the grant it is made under (`Custodia-Grant`) and is signed by the grantee's key
//! over its method, full URL, time, a nonce and the grant (`Custodia-Signature`), so a stolen grant, a
//! replayed request or one sent to another gateway is refused. The gateway then checks the grant
//! (patient's signature; on the ledger, not revoked, by a state at most half a second old; time window;
//! purpose; read limit) and filters by scope and sensitivity label. Read counts and seen nonces are kept
//! in the gateway's database with the access events, so a restart neither refills a used-up grant nor
//! opens a window for replays. Every read and every refused attempt
//! becomes an access event, written to a local outbox before the answer leaves and posted to the ledger
//! sealed to the patient ([`events`]).
//!
//! The records come from the shipped synthetic dataset, a dataset folder, or an upstream FHIR server
//! ([`records`]). An emergency card's grant is honoured only for enrolled emergency providers who also
//! present the card's signature, and its reads are logged as break-glass.

pub mod dataset;
pub mod events;
pub mod feed;
pub mod fhir;
mod guard;
mod http;
pub mod links;
mod matching;
pub mod ops;
pub mod records;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use custodia_core::Identity;
use custodia_core::time::Timestamp;
use custodia_wallet::{Ledger, LedgerClient, LedgerError};

pub use guard::{DENIED_EVENTS_PER_MINUTE, STATUS_TTL};
pub use http::{CARD_SIGNATURE_HEADER, GRANT_HEADER, PURPOSE_HEADER, SIGNATURE_HEADER, unchecked_router};

use crate::events::{Outbox, OutboxError};
use crate::links::LiveLinks;
use crate::records::Records;

/// Grant-state lookups the gateway makes at once.
const LOOKUP_CLIENTS: usize = 4;

/// The largest `Custodia-Grant` header accepted, in bytes of base64.
pub const MAX_GRANT_HEADER: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("this gateway's key {0} is not enrolled on the ledger as a gateway: ask the network to enroll it")]
    NotEnrolled(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] custodia_net::ServerTlsError),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// How a gateway runs.
#[derive(Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// The base URL clients use and sign (`https://records.example.org`); by default `https://` (or `http://`
    /// without TLS) and the address listened on.
    pub public_url: Option<String>,
    pub ledger_url: String,
    /// The ledger's checkpoint verifier key; without it, the one the ledger announces (trust on first use).
    pub ledger_key: Option<String>,
    pub records: Records,
    pub links: LiveLinks,
    /// The outbox file (SQLite) for access events.
    pub outbox: PathBuf,
    /// The certificate and key to terminate TLS with; without them, plain HTTP.
    pub tls: Option<custodia_net::ServerTls>,
    /// The network's witness policy: every checkpoint the gateway accepts (and so every grant state it
    /// acts on) must carry its quorum's cosignatures.
    pub witness_policy: Option<Arc<custodia_log::policy::Policy>>,
}

/// The gateway's state, shared by its handlers.
#[derive(Debug)]
pub struct Shared {
    pub identity: Arc<Identity>,
    pub name: String,
    pub organisation: String,
    pub public_url: String,
    pub records: Records,
    pub links: LiveLinks,
    pub outbox: Outbox,
    pub ledger: LedgerClient,
    /// The verifying client, for enrollments (behind a lock: it keeps the checkpoint it trusts).
    pub verifying: std::sync::Mutex<Ledger>,
    /// Verifying clients for grant states, taken by grant id, so first reads of many grants overlap.
    lookups: Vec<std::sync::Mutex<Ledger>>,
    caches: guard::Caches,
    matcher: matching::Matcher,
    /// The ledger's grant-change feed, as followed.
    pub feed: feed::FeedState,
}

/// A gateway serving on a socket, until [`RunningGateway::shutdown`].
#[derive(Debug)]
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub url: String,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
    follower: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// Stops taking requests, gives the outbox a few seconds to post what it holds, and stops.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?.map_err(GatewayError::Serve)?;
        }
        self.follower.abort();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.outbox.shutdown(Duration::from_secs(5))).await.ok();
        Ok(())
    }
}

/// The current time, whole seconds.
pub(crate) fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    #[allow(clippy::expect_used)]
    Timestamp::from_unix(secs).expect("the system clock reads a time within Timestamp's range")
}

/// Starts a gateway as `identity`, which must be enrolled on the ledger as a gateway. Must run inside a
/// Tokio runtime; the ledger calls made while starting block.
pub async fn start(identity: Identity, config: GatewayConfig) -> Result<RunningGateway, GatewayError> {
    let identity = Arc::new(identity);
    let (ledger_url, ledger_key, policy) =
        (config.ledger_url.clone(), config.ledger_key.clone(), config.witness_policy.clone());
    let me = identity.signing_public();
    let posters = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    let (verifying, poster_ledgers, lookup_ledgers, member) = tokio::task::spawn_blocking(move || {
        let (mut verifying, _) = Ledger::connect_with(&ledger_url, ledger_key.as_deref(), policy.clone())?;
        // One verifying client per poster thread: each keeps the checkpoint it has checked.
        let poster_ledgers = (0..posters)
            .map(|_| Ok(Ledger::connect_with(verifying.url(), Some(&verifying.verifier_key()), policy.clone())?.0))
            .collect::<Result<Vec<_>, LedgerError>>()?;
        // Grants' first lookups, several at once: each client keeps the checkpoint it has checked.
        let lookup_ledgers = (0..LOOKUP_CLIENTS)
            .map(|_| Ok(Ledger::connect_with(verifying.url(), Some(&verifying.verifier_key()), policy.clone())?.0))
            .collect::<Result<Vec<_>, LedgerError>>()?;
        let member = match verifying.member(&me) {
            Err(LedgerError::NotAMember(_)) => return Err(GatewayError::NotEnrolled(me.to_string())),
            other => other?,
        };
        Ok::<_, GatewayError>((verifying, poster_ledgers, lookup_ledgers, member))
    })
    .await
    .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
    if member.role != custodia_core::entry::Role::Gateway {
        return Err(GatewayError::NotEnrolled(me.to_string()));
    }
    config.records.prepare().await.map_err(|e| GatewayError::Config(e.to_string()))?;
    let (outbox, saved) = Outbox::start(&config.outbox, identity.clone(), poster_ledgers)?;
    let caches = guard::Caches::default();
    caches.restore(saved);
    let listener = custodia_net::Listener::bind(config.listen, config.tls).await?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Listen { addr: config.listen, source })?;
    let public_url =
        config.public_url.unwrap_or_else(|| format!("{}://{addr}", listener.scheme())).trim_end_matches('/').to_owned();
    let shared = Arc::new(Shared {
        identity,
        name: member.name,
        organisation: member.org,
        public_url: public_url.clone(),
        records: config.records,
        links: config.links,
        outbox,
        ledger: verifying.client().clone(),
        verifying: std::sync::Mutex::new(verifying),
        lookups: lookup_ledgers.into_iter().map(std::sync::Mutex::new).collect(),
        caches,
        matcher: matching::Matcher::default(),
        feed: feed::FeedState::default(),
    });
    let follower = tokio::spawn(feed::follow(shared.clone()));
    let app = http::router(shared.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningGateway { addr, url: public_url, shared, stop: Some(stop), server: Some(server), follower })
}

/// Serves until `stop` completes (the binary's Ctrl-C or SIGTERM); `ready` is told the gateway's URL once
/// it is listening.
pub fn serve_blocking(
    identity: Identity,
    config: GatewayConfig,
    ready: impl FnOnce(&RunningGateway),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), GatewayError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(GatewayError::Serve)?;
    runtime.block_on(async {
        let running = start(identity, config).await?;
        ready(&running);
        stop.await;
        running.shutdown().await
    })
}
