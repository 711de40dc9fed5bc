//! The Custodia ledger: a verifiable, private, append-only log of grants, revocations and access events,
//! with a mailbox beside it.
//!
//! Requests are admitted in parallel ([`admit`]: parse, verify the signature, check who may append what),
//! then ordered and made durable in batches by one [`sequencer`] thread, which signs a checkpoint only
//! over committed data and answers each append with its inclusion proof. Storage is a [`store::Store`]:
//! SQLite by default, PostgreSQL for several front ends over one database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use custodia_core::SigningPublicKey;
use custodia_core::ledger_api::Limits;
use custodia_log::note::{NoteSigner, NoteVerifier};
use tokio::sync::{broadcast, mpsc};

pub mod admit;
pub mod config;
pub mod guard;
pub mod http;
pub mod ops;
pub mod problem;
pub mod replay;
pub mod sequencer;
pub mod store;
pub mod witnessing;

pub use config::{ConfigError, LedgerConfig, LedgerDir};

use sequencer::{AppendJob, Notice, Sequencer, SequencerOptions, SignedCheckpoint};
use store::{MemberRecord, PatientRecord, Store, StoreError};

/// The limits a ledger starts with; each caps a cost that a client's input chooses.
pub fn default_limits() -> Limits {
    Limits {
        max_entry_bytes: 16 * 1024,
        max_entries_per_request: 256,
        entries_per_key_per_second: 50,
        max_page: 1000,
        max_mail_bytes: 64 * 1024,
        max_mail_ttl_seconds: 30 * 86_400,
        max_mail_waiting: 1000,
        max_entry_age_seconds: 600,
    }
}

/// Bursts of this many seconds' allowance are let through at once.
const BURST_SECONDS: u32 = 20;
/// The most entries one group commit takes.
pub const MAX_BATCH_ENTRIES: usize = 8192;
/// The replay window's capacity: about 160 MB at most, reached only after 2 million entries within
/// twice the allowed clock skew (1,700 a second for 20 minutes); past that the horizon narrows.
pub const REPLAY_WINDOW_ENTRIES: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:?} is not a database: use sqlite:PATH or postgres://...")]
    BadDatabase(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] custodia_net::ServerTlsError),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("witness policy: {0}")]
    Policy(String),
}

fn latest_of(latest: &sequencer::Latest) -> Arc<SignedCheckpoint> {
    match latest.read() {
        Ok(l) => l.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// How many key rotations a lookup follows from an old key to the patient's current one.
pub const MAX_ROTATIONS_FOLLOWED: usize = 64;

/// State every request handler shares.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: LedgerConfig,
    pub verifier: NoteVerifier,
    pub limits: Limits,
    signer: Arc<NoteSigner>,
    rate: guard::RateLimiter,
    nonces: guard::NonceCache,
    jobs: mpsc::Sender<AppendJob>,
    latest: sequencer::Latest,
    notices: broadcast::Sender<Notice>,
    /// Member enrollments never change once made, so positive lookups are cached for the hot path.
    /// Patient records are not cached by key: a key rotation moves them to another key.
    members: RwLock<HashMap<SigningPublicKey, MemberRecord>>,
    /// Only whether a tag is enrolled is read from here; that never changes.
    patient_tags: RwLock<HashMap<custodia_core::entry::Tag, PatientRecord>>,
    /// Admission is CPU work (signature checks); running more of it at once than there are cores only
    /// starves the sequencer thread.
    admission: tokio::sync::Semaphore,
    /// Set when the server stops, to end live event streams.
    closing: tokio::sync::watch::Sender<bool>,
    /// With a witness policy: the cosignatures collected and the cosigned checkpoint clients sync to.
    pub witnessing: Option<Arc<witnessing::Witnessing>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("origin", &self.config.origin).finish_non_exhaustive()
    }
}

fn cached<K: std::hash::Hash + Eq + Copy, T: Clone>(
    cache: &RwLock<HashMap<K, T>>,
    key: &K,
    load: impl FnOnce() -> Result<Option<T>, StoreError>,
) -> Result<Option<T>, StoreError> {
    if let Some(hit) = cache.read().ok().and_then(|c| c.get(key).cloned()) {
        return Ok(Some(hit));
    }
    let found = load()?;
    if let (Some(record), Ok(mut c)) = (&found, cache.write()) {
        c.insert(*key, record.clone());
    }
    Ok(found)
}

impl Shared {
    pub fn member(&self, key: &SigningPublicKey) -> Result<Option<MemberRecord>, StoreError> {
        cached(&self.members, key, || self.store.member(key))
    }

    pub fn patient(&self, key: &SigningPublicKey) -> Result<Option<PatientRecord>, StoreError> {
        self.store.patient(key)
    }

    /// The patient `key` is, or was before key rotations: their record as it stands now. Follows at most
    /// [`MAX_ROTATIONS_FOLLOWED`] rotations.
    pub fn current_patient(&self, key: &SigningPublicKey) -> Result<Option<PatientRecord>, StoreError> {
        let mut key = *key;
        for _ in 0..MAX_ROTATIONS_FOLLOWED {
            if let Some(record) = self.store.patient(&key)? {
                return Ok(Some(record));
            }
            match self.store.retired(&key)? {
                Some((successor, _)) => key = successor,
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    pub fn patient_by_tag(&self, tag: &custodia_core::entry::Tag) -> Result<Option<PatientRecord>, StoreError> {
        cached(&self.patient_tags, tag, || self.store.patient_by_tag(tag))
    }

    /// The newest checkpoint the ledger signed: what append receipts and proofs may refer to.
    pub fn latest(&self) -> Arc<SignedCheckpoint> {
        latest_of(&self.latest)
    }

    /// The checkpoint clients sync to: with a witness policy, the newest one its quorum cosigned (none
    /// before the first); without, the newest signed.
    pub fn published(&self) -> Option<Arc<SignedCheckpoint>> {
        match &self.witnessing {
            Some(witnessing) => witnessing.published(),
            None => Some(self.latest()),
        }
    }

    /// Picks up entries other front ends sequenced into a shared database: their data is durable, so a
    /// checkpoint over it may be signed here.
    fn refresh_checkpoint(&self) -> Result<(), StoreError> {
        let tree = self.store.tree()?;
        if tree.size > self.latest().size {
            let checkpoint = sequencer::sign_checkpoint(&self.signer, &self.config.origin, tree.size, tree.root);
            if let Ok(mut latest) = self.latest.write()
                && latest.size < checkpoint.size
            {
                *latest = Arc::new(checkpoint);
            }
        }
        Ok(())
    }
}

/// Opens the store a `--db` argument names, or the folder's SQLite file.
pub fn open_store(dir: &LedgerDir, db: Option<&str>) -> Result<Arc<dyn Store>, LedgerError> {
    match db {
        None => Ok(Arc::new(store::sqlite::SqliteStore::open(&dir.default_database())?)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(store::postgres::PostgresStore::connect(url)?))
        }
        Some(other) => match other.strip_prefix("sqlite:") {
            Some(path) if !path.is_empty() => Ok(Arc::new(store::sqlite::SqliteStore::open(Path::new(path))?)),
            _ => Err(LedgerError::BadDatabase(other.to_owned())),
        },
    }
}

/// A ledger serving on a socket, until [`RunningLedger::shutdown`] or drop.
#[derive(Debug)]
pub struct RunningLedger {
    pub addr: SocketAddr,
    /// `https://ADDR` when it terminates TLS, `http://ADDR` when not.
    pub url: String,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), std::io::Error>>>,
    sequencer: Option<std::thread::JoinHandle<()>>,
}

impl RunningLedger {
    /// Stops accepting requests, lets the sequencer finish what it was given, and waits for both.
    pub async fn shutdown(mut self) -> Result<(), LedgerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.map_err(|e| LedgerError::Serve(std::io::Error::other(e)))?.map_err(LedgerError::Serve)?;
        }
        // The handlers held the last job senders; with the server gone the sequencer drains and stops.
        let sequencer = self.sequencer.take();
        drop(self);
        if let Some(thread) = sequencer {
            tokio::task::spawn_blocking(move || thread.join()).await.ok();
        }
        Ok(())
    }
}

impl Drop for RunningLedger {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// How a ledger serves, beyond its folder, store, address and limits.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Terminate TLS with this.
    pub tls: Option<custodia_net::ServerTls>,
    /// Publish only checkpoints cosigned by this C2SP tlog-policy's quorum, collecting the cosignatures
    /// from the witnesses it names with URLs.
    pub witness_policy: Option<custodia_log::policy::Policy>,
}

/// Starts a ledger over `store` on `listen` (port 0 picks a free one), plain HTTP. Must run inside a Tokio
/// runtime.
pub async fn start(
    dir: &LedgerDir,
    store: Arc<dyn Store>,
    listen: SocketAddr,
    limits: Limits,
) -> Result<RunningLedger, LedgerError> {
    start_with_tls(dir, store, listen, limits, None).await
}

/// [`start`], terminating TLS with `tls` when given.
pub async fn start_with_tls(
    dir: &LedgerDir,
    store: Arc<dyn Store>,
    listen: SocketAddr,
    limits: Limits,
    tls: Option<custodia_net::ServerTls>,
) -> Result<RunningLedger, LedgerError> {
    start_with(dir, store, listen, limits, ServeOptions { tls, witness_policy: None }).await
}

/// [`start`] with [`ServeOptions`].
pub async fn start_with(
    dir: &LedgerDir,
    store: Arc<dyn Store>,
    listen: SocketAddr,
    limits: Limits,
    options: ServeOptions,
) -> Result<RunningLedger, LedgerError> {
    let ServeOptions { tls, witness_policy } = options;
    // One signing key, shared by the sequencer and the checkpoint refresher.
    let signer = Arc::new(dir.signer()?);
    let verifier = signer.verifier();
    let (notices, _) = broadcast::channel(4096);
    let (jobs, job_rx) = mpsc::channel(16_384);
    let sequencer_signer = signer.clone();
    let (seq_store, origin, seq_notices) = (store.clone(), dir.config.origin.clone(), notices.clone());
    let options = SequencerOptions {
        max_batch: MAX_BATCH_ENTRIES,
        max_entry_age_seconds: limits.max_entry_age_seconds,
        replay_window_entries: REPLAY_WINDOW_ENTRIES,
    };
    let (sequencer, latest) = tokio::task::spawn_blocking(move || {
        Sequencer::start(seq_store, sequencer_signer, origin, seq_notices, options)
    })
    .await
    .map_err(|e| LedgerError::Serve(std::io::Error::other(e)))??;
    let sequencer_thread = std::thread::Builder::new()
        .name("custodia-sequencer".into())
        .spawn(move || sequencer.run(job_rx))
        .map_err(LedgerError::Serve)?;
    let witnessing = match witness_policy {
        Some(policy) => {
            if !policy.logs.iter().any(|l| l.key == verifier) {
                return Err(LedgerError::Policy(format!(
                    "the witness policy does not list this ledger's key ({}) as a log",
                    verifier.to_vkey()
                )));
            }
            let (dir_path, seed_store, now) = (dir.path.clone(), store.clone(), latest_of(&latest));
            let built = tokio::task::spawn_blocking(move || {
                witnessing::Witnessing::new(policy, &dir_path, now, seed_store.as_ref())
            })
            .await
            .map_err(|e| LedgerError::Serve(std::io::Error::other(e)))?;
            Some(Arc::new(built))
        }
        None => None,
    };
    let rate = limits.entries_per_key_per_second;
    let shared = Arc::new(Shared {
        store,
        config: dir.config.clone(),
        verifier,
        rate: guard::RateLimiter::new(rate, rate.saturating_mul(BURST_SECONDS)),
        limits,
        signer,
        nonces: guard::NonceCache::default(),
        jobs,
        latest,
        notices,
        members: RwLock::new(HashMap::new()),
        patient_tags: RwLock::new(HashMap::new()),
        admission: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        closing: tokio::sync::watch::Sender::new(false),
        witnessing,
    });
    if let Some(witnessing) = &shared.witnessing {
        let client = custodia_net::Trust::global()
            .map_err(|e| LedgerError::Policy(e.to_string()))?
            .async_client()
            .build()
            .map_err(|e| LedgerError::Policy(format!("cannot make the witnesses' HTTP client: {e}")))?;
        witnessing::spawn(
            witnessing.clone(),
            shared.latest.clone(),
            shared.store.clone(),
            client,
            shared.closing.subscribe(),
        );
    }
    let listener = custodia_net::Listener::bind(listen, tls).await?;
    let addr = listener.local_addr().map_err(|source| LedgerError::Listen { addr: listen, source })?;
    let url = format!("{}://{addr}", listener.scheme());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let closing = shared.closing.clone();
    let app = http::router(shared.clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                // Live streams never end by themselves; tell them to, so the server can drain.
                let _ = closing.send(true);
            })
            .await
    });
    tokio::spawn(housekeeping(Arc::downgrade(&shared)));
    Ok(RunningLedger { addr, url, shared, stop: Some(stop), server: Some(server), sequencer: Some(sequencer_thread) })
}

/// Once a second: checkpoints for other front ends' entries; once a minute: expired mail and nonces.
async fn housekeeping(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        n += 1;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = shared.refresh_checkpoint() {
                custodia_net::log::warn("custodia-ledger", format_args!("checkpoint refresh failed: {e}"));
            }
            if n.is_multiple_of(60) {
                shared.nonces.prune(Duration::from_secs(2 * custodia_core::reqsig::MAX_SKEW_SECONDS as u64 + 1));
                if let Err(e) = shared.store.mailbox_purge(http::now().unix()) {
                    custodia_net::log::warn("custodia-ledger", format_args!("mailbox purge failed: {e}"));
                }
            }
        })
        .await;
    }
}

/// Serves until `stop` completes (the binary's Ctrl-C or SIGTERM); `ready` is told the address once the
/// ledger is listening.
pub fn serve_blocking(
    dir: &LedgerDir,
    db: Option<&str>,
    listen: SocketAddr,
    limits: Limits,
    options: ServeOptions,
    ready: impl FnOnce(&str, &str),
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), LedgerError> {
    let store = open_store(dir, db)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(LedgerError::Serve)?;
    runtime.block_on(async {
        let running = start_with(dir, store, listen, limits, options).await?;
        ready(&running.url, &running.shared.verifier.to_vkey());
        stop.await;
        running.shutdown().await
    })
}
