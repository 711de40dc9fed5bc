//! Access events, from the read to the ledger, with nothing lost on a crash; and the gateway's safety
//! state, kept with them.
//!
//! A request is answered only once its event is in the gateway's outbox: a SQLite file, written in
//! group commits (one transaction, one sync, for every event that arrived meanwhile). The same
//! transaction counts an allowed read against its grant and records the request's nonce, so after a
//! crash (kill -9 included) the counts match the events exactly and a recorded request cannot be
//! replayed. Poster threads (one
//! per core, each taking the rows whose sequence number falls to it) post what the outbox holds to the
//! ledger (signed by the gateway, sealed to the patient under a seal session renewed each minute, in batches),
//! verifies each receipt, and deletes only what the ledger acknowledged. After a crash or a ledger outage
//! the outbox is simply posted later. Delivery is at least once: a crash between the ledger's
//! acknowledgment and the delete posts that batch again, and the patient's wallet, which knows each event
//! by its random id, keeps one copy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use custodia_core::entry::{AccessEvent, Content, EntryKind, EntryNonce, LedgerEntry, seal_statement_in};
use custodia_core::grant::GrantId;
use custodia_core::ledger_api::PatientInfo;
use custodia_core::recovery::{MailBody, seal_mail};
use custodia_core::seal::SealSession;
use custodia_core::statement::Verified;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, SigningPublicKey, statement};
use custodia_wallet::Ledger;
use rusqlite::{Connection, params};

/// Events written to the outbox in one transaction at most.
const MAX_JOURNAL_BATCH: usize = 2048;
/// Entries per append request (the ledger's default limit).
const POST_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the access-event outbox {path}: {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error("the access-event outbox is closed")]
    Closed,
    #[error("could not start the outbox's threads: {0}")]
    Thread(std::io::Error),
}

/// Counts for a status page and for benchmarks.
#[derive(Debug, Default)]
pub struct OutboxStats {
    pub journaled: AtomicU64,
    pub posted: AtomicU64,
    pub post_failures: AtomicU64,
}

/// What one journal write holds.
enum Work {
    /// An access event; `counted` (the grant's expiry) adds one to its grant's reads.
    Event { event: Box<AccessEvent>, counted: Option<i64> },
    /// A signed request's nonce, kept until its signature could no longer be accepted anyway.
    Nonce { key: [u8; 32], nonce: [u8; 16], expires: i64 },
}

struct Job {
    work: Work,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// A journal write handed over; [`Written::wait`] returns once it is durable. Writes commit in the
/// order they were handed over, so a later write's success means this one's too.
#[derive(Debug)]
pub struct Written(tokio::sync::oneshot::Receiver<Result<(), String>>);

impl Written {
    pub async fn wait(self) -> Result<(), OutboxError> {
        self.0.await.map_err(|_| OutboxError::Closed)?.map_err(|_| OutboxError::Closed)
    }
}

/// The safety state a previous run left: reads per unexpired grant (with its expiry), and the nonces
/// still within their window.
#[derive(Debug, Default)]
pub struct SavedState {
    pub reads: HashMap<GrantId, (u32, i64)>,
    /// Emergency windows: when each reader first read under each emergency card, with the card's expiry.
    pub windows: HashMap<crate::guard::WindowKey, (i64, i64)>,
    pub nonces: Vec<([u8; 32], EntryNonce)>,
}

/// Events the journal has just made durable, by sequence number, so a poster signs them without
/// parsing their JSON back (which costs a curve point decompression per key). Capped: past the cap, or
/// after a restart, posters read the rows as written.
#[derive(Default)]
struct Fresh(Mutex<HashMap<i64, Box<AccessEvent>>>);

const MAX_FRESH: usize = 65_536;

impl Fresh {
    fn add(&self, events: Vec<(i64, Box<AccessEvent>)>) {
        if let Ok(mut fresh) = self.0.lock() {
            let room = MAX_FRESH.saturating_sub(fresh.len());
            fresh.extend(events.into_iter().take(room));
        }
    }

    fn take(&self, seqs: impl Iterator<Item = i64>) -> HashMap<i64, Box<AccessEvent>> {
        let Ok(mut fresh) = self.0.lock() else { return HashMap::new() };
        seqs.filter_map(|seq| fresh.remove(&seq).map(|e| (seq, e))).collect()
    }
}

/// Wakes the posters when the journal wrote something: each waits for the count of rings to move.
#[derive(Default)]
struct Bell {
    rings: Mutex<u64>,
    cond: Condvar,
}

impl Bell {
    fn ring(&self) {
        if let Ok(mut rings) = self.rings.lock() {
            *rings = rings.wrapping_add(1);
            self.cond.notify_all();
        }
    }

    fn rings(&self) -> u64 {
        self.rings.lock().map_or(0, |r| *r)
    }

    /// Waits until the bell rings after `seen` (or already has), or `timeout` passes.
    fn wait(&self, seen: u64, timeout: Duration) {
        let Ok(rings) = self.rings.lock() else { return };
        let _ = self.cond.wait_timeout_while(rings, timeout, |r| *r == seen);
    }
}

/// The outbox: hand it an event and await the answer before answering the read.
pub struct Outbox {
    jobs: Mutex<Option<Sender<Job>>>,
    pub stats: Arc<OutboxStats>,
    stop: Arc<AtomicBool>,
    bell: Arc<Bell>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("stats", &self.stats).finish_non_exhaustive()
    }
}

fn open_db(path: &Path) -> Result<Connection, OutboxError> {
    let db_err = |source| OutboxError::Db { path: path.to_owned(), source };
    let db = Connection::open(path).map_err(db_err)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS reads (
             grant_id BLOB PRIMARY KEY, count INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS windows (
             grant_id BLOB NOT NULL, reader BLOB NOT NULL, opened INTEGER NOT NULL, expires INTEGER NOT NULL,
             PRIMARY KEY (grant_id, reader)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS nonces (
             signer BLOB NOT NULL, nonce BLOB NOT NULL, expires INTEGER NOT NULL,
             PRIMARY KEY (signer, nonce)) WITHOUT ROWID;",
    )
    .map_err(db_err)?;
    Ok(db)
}

impl Outbox {
    /// Opens (or creates) the outbox at `path` and starts its threads: the journal, and one poster per
    /// client in `ledgers`, each appending as `gateway`.
    pub fn start(path: &Path, gateway: Arc<Identity>, ledgers: Vec<Ledger>) -> Result<(Self, SavedState), OutboxError> {
        let journal_db = open_db(path)?;
        let saved = saved_state(&journal_db, crate::now().unix())
            .map_err(|source| OutboxError::Db { path: path.to_owned(), source })?;
        // What a previous run left counts as journaled, so `pending` shows it until it is posted; counted
        // before any poster starts, so no caller sees an outbox emptier than it is.
        let left: i64 = journal_db
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .map_err(|source| OutboxError::Db { path: path.to_owned(), source })?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let stats = Arc::new(OutboxStats::default());
        stats.journaled.store(u64::try_from(left).unwrap_or(0), Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let bell = Arc::new(Bell::default());
        let fresh = Arc::new(Fresh::default());
        let journal = {
            let (stats, bell, path, fresh) = (stats.clone(), bell.clone(), path.to_owned(), fresh.clone());
            std::thread::Builder::new()
                .name("custodia-outbox".into())
                .spawn(move || journal_loop(journal_db, &path, &rx, &stats, &bell, &fresh))
                .map_err(OutboxError::Thread)?
        };
        let mut threads = vec![journal];
        let share = i64::try_from(ledgers.len().max(1)).unwrap_or(1);
        for (part, ledger) in (0i64..).zip(ledgers) {
            let db = open_db(path)?;
            let (stats, bell, stop, gateway) = (stats.clone(), bell.clone(), stop.clone(), gateway.clone());
            let poster = Poster { db, gateway, ledger, patients: HashMap::new(), fresh: fresh.clone(), part, share };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("custodia-poster-{part}"))
                    .spawn(move || poster.run(&stats, &bell, &stop))
                    .map_err(OutboxError::Thread)?,
            );
        }
        bell.ring();
        Ok((Self { jobs: Mutex::new(Some(tx)), stats, stop, bell, threads: Mutex::new(threads) }, saved))
    }

    fn hand_over(&self, work: Work) -> Result<Written, OutboxError> {
        let (done, written) = tokio::sync::oneshot::channel();
        let jobs = self.jobs.lock().map_err(|_| OutboxError::Closed)?;
        jobs.as_ref().ok_or(OutboxError::Closed)?.send(Job { work, done }).map_err(|_| OutboxError::Closed)?;
        Ok(Written(written))
    }

    /// Writes `event` to the outbox; returns once it is durable.
    pub async fn record(&self, event: AccessEvent) -> Result<(), OutboxError> {
        self.hand_over(Work::Event { event: Box::new(event), counted: None })?.wait().await
    }

    /// Writes the event of an allowed read, counting the read against its grant (kept until the grant
    /// expires) in the same commit.
    pub async fn record_read(&self, event: AccessEvent, grant_expires: Timestamp) -> Result<(), OutboxError> {
        self.hand_over(Work::Event { event: Box::new(event), counted: Some(grant_expires.unix()) })?.wait().await
    }

    /// Records a signed request's nonce, durable once the returned write (or any later one) is.
    pub fn remember_nonce(
        &self,
        signer: &SigningPublicKey,
        nonce: &EntryNonce,
        expires: Timestamp,
    ) -> Result<Written, OutboxError> {
        self.hand_over(Work::Nonce { key: *signer.as_bytes(), nonce: *nonce.as_bytes(), expires: expires.unix() })
    }

    /// Events in the outbox not yet acknowledged by the ledger.
    pub fn pending(&self) -> u64 {
        let journaled = self.stats.journaled.load(Ordering::Relaxed);
        journaled.saturating_sub(self.stats.posted.load(Ordering::Relaxed))
    }

    /// Stops taking events, lets the journal finish, gives the poster `drain` to post what is left
    /// (what it cannot post stays in the outbox for next time), and waits for both threads.
    pub fn shutdown(&self, drain: Duration) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let deadline = std::time::Instant::now() + drain;
        while self.pending() > 0 && std::time::Instant::now() < deadline {
            self.bell.ring();
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop.store(true, Ordering::Relaxed);
        self.bell.ring();
        let threads = self.threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// How often the journal deletes nonces past their window.
const NONCE_PURGE_SECONDS: i64 = 60;

/// Reads per grant, and the nonces whose signatures could still be accepted at `now`.
fn saved_state(db: &Connection, now: i64) -> rusqlite::Result<SavedState> {
    let mut state = SavedState::default();
    let mut reads = db.prepare("SELECT grant_id, count, expires FROM reads WHERE expires >= ?1")?;
    let mut rows = reads.query(params![now])?;
    while let Some(row) = rows.next()? {
        let (id, count, expires): (Vec<u8>, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        if let Ok(id) = <[u8; 16]>::try_from(id.as_slice()) {
            state.reads.insert(GrantId::from_bytes(id), (u32::try_from(count).unwrap_or(u32::MAX), expires));
        }
    }
    let mut windows = db.prepare("SELECT grant_id, reader, opened, expires FROM windows WHERE expires >= ?1")?;
    let mut rows = windows.query(params![now])?;
    while let Some(row) = rows.next()? {
        let (id, reader, opened, expires): (Vec<u8>, Vec<u8>, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        if let (Ok(id), Ok(reader)) = (<[u8; 16]>::try_from(id.as_slice()), <[u8; 32]>::try_from(reader.as_slice())) {
            state.windows.insert((GrantId::from_bytes(id), reader), (opened, expires));
        }
    }
    let mut nonces = db.prepare("SELECT signer, nonce FROM nonces WHERE expires >= ?1")?;
    let mut rows = nonces.query(params![now])?;
    while let Some(row) = rows.next()? {
        let (signer, nonce): (Vec<u8>, Vec<u8>) = (row.get(0)?, row.get(1)?);
        if let (Ok(signer), Ok(nonce)) =
            (<[u8; 32]>::try_from(signer.as_slice()), <[u8; 16]>::try_from(nonce.as_slice()))
        {
            state.nonces.push((signer, EntryNonce::from_bytes(nonce)));
        }
    }
    Ok(state)
}

fn journal_loop(mut db: Connection, path: &Path, rx: &Receiver<Job>, stats: &OutboxStats, bell: &Bell, fresh: &Fresh) {
    let mut next_purge = 0i64;
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_JOURNAL_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = crate::now().unix();
        let purge = now >= next_purge;
        let mut events = Vec::new();
        let written = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            {
                let mut insert = tx.prepare_cached("INSERT INTO outbox (event) VALUES (?1)")?;
                let mut count = tx.prepare_cached(
                    "INSERT INTO reads (grant_id, count, expires) VALUES (?1, 1, ?2)
                     ON CONFLICT (grant_id) DO UPDATE SET count = count + 1",
                )?;
                let mut nonce =
                    tx.prepare_cached("INSERT OR IGNORE INTO nonces (signer, nonce, expires) VALUES (?1, ?2, ?3)")?;
                // The first allowed read of a reader under an emergency card opens their window; later
                // reads leave it as it was.
                let mut window = tx.prepare_cached(
                    "INSERT OR IGNORE INTO windows (grant_id, reader, opened, expires) VALUES (?1, ?2, ?3, ?4)",
                )?;
                for job in &batch {
                    match &job.work {
                        Work::Event { event, counted } => {
                            let json = serde_json::to_string(event).unwrap_or_default();
                            insert.execute(params![json])?;
                            events.push(tx.last_insert_rowid());
                            if let (Some(expires), Some(grant)) = (counted, event.grant_id) {
                                count.execute(params![grant.as_bytes().as_slice(), expires])?;
                                if event.break_glass {
                                    let (id, reader) =
                                        (grant.as_bytes().as_slice(), event.reader.as_bytes().as_slice());
                                    window.execute(params![id, reader, event.at.unix(), expires])?;
                                }
                            }
                        }
                        Work::Nonce { key, nonce: n, expires } => {
                            nonce.execute(params![key.as_slice(), n.as_slice(), expires])?;
                        }
                    }
                }
            }
            if purge {
                tx.execute("DELETE FROM nonces WHERE expires < ?1", params![now])?;
                // An expired grant is refused before its count or its windows matter.
                tx.execute("DELETE FROM reads WHERE expires < ?1", params![now])?;
                tx.execute("DELETE FROM windows WHERE expires < ?1", params![now])?;
            }
            tx.commit()
        })();
        if purge {
            next_purge = now + NONCE_PURGE_SECONDS;
        }
        let result = written.map_err(|e| {
            custodia_net::log::warn(
                "custodia-gateway",
                format_args!("could not write the outbox {}: {e}", path.display()),
            );
            e.to_string()
        });
        let mut made = Vec::with_capacity(events.len());
        let mut seqs = events.iter();
        for job in batch {
            let _ = job.done.send(result.clone());
            if let (Ok(()), Work::Event { event, .. }) = (&result, job.work) {
                made.extend(seqs.next().map(|&seq| (seq, event)));
            }
        }
        if result.is_ok() {
            stats.journaled.fetch_add(events.len() as u64, Ordering::Relaxed);
            fresh.add(made);
            bell.ring();
        }
    }
}

/// How long a patient's keys as the ledger gave them are used before asking again; also how long one
/// seal session (one X25519 agreement) serves that patient's events.
const PATIENT_TTL: Duration = Duration::from_secs(60);
const MAX_PATIENTS: usize = 100_000;

/// How long an emergency-card notice waits in a guardian's share mailbox.
const NOTICE_TTL_SECONDS: u64 = 14 * 86_400;

struct Poster {
    db: Connection,
    gateway: Arc<Identity>,
    ledger: Ledger,
    patients: HashMap<SigningPublicKey, (std::time::Instant, PatientInfo, Arc<SealSession>)>,
    fresh: Arc<Fresh>,
    /// This poster takes the rows whose `seq % share == part`.
    part: i64,
    share: i64,
}

impl Poster {
    fn run(mut self, stats: &OutboxStats, bell: &Bell, stop: &AtomicBool) {
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            let seen = bell.rings();
            match self.post_some() {
                Ok(0) => bell.wait(seen, Duration::from_secs(1)),
                Ok(n) => {
                    stats.posted.fetch_add(n as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    stats.post_failures.fetch_add(1, Ordering::Relaxed);
                    custodia_net::log::warn(
                        "custodia-gateway",
                        format_args!("access events not posted yet (will retry): {e}"),
                    );
                    // New events must not cut the back-off short: the ledger is what is failing.
                    let resume = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < resume && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Posts up to one batch; returns how many events the ledger acknowledged.
    fn post_some(&mut self) -> Result<usize, String> {
        let rows: Vec<(i64, String)> = {
            let mut select = self
                .db
                .prepare_cached("SELECT seq, event FROM outbox WHERE seq % ?2 = ?3 ORDER BY seq LIMIT ?1")
                .map_err(|e| e.to_string())?;
            let rows = select
                .query_map(params![POST_BATCH as i64, self.share, self.part], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| e.to_string())?;
            rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
        };
        let Some(&(last, _)) = rows.last() else { return Ok(0) };
        let now = crate::now();
        let mut entries = Vec::with_capacity(rows.len());
        let mut break_glass = Vec::new();
        let mut fresh = self.fresh.take(rows.iter().map(|(seq, _)| *seq));
        for (seq, json) in &rows {
            let parsed = match fresh.remove(seq) {
                Some(event) => Ok(*event),
                None => serde_json::from_str::<AccessEvent>(json),
            };
            let event = match parsed {
                Ok(e) => e,
                Err(e) => {
                    // Written by this program; unreadable means a damaged file. Keep it out of the way.
                    custodia_net::log::warn(
                        "custodia-gateway",
                        format_args!("outbox row {seq} is unreadable ({e}); skipped"),
                    );
                    continue;
                }
            };
            // Looked up again after a while, so a patient's rotated key is what events are sealed to.
            let (patient, session) =
                match self.patients.get(&event.patient).filter(|(at, _, _)| at.elapsed() < PATIENT_TTL) {
                    Some((_, p, session)) => (p.clone(), session.clone()),
                    None => {
                        let p = self.ledger.patient(&self.gateway, &event.patient).map_err(|e| e.to_string())?;
                        let session = Arc::new(SealSession::new(&p.box_key).map_err(|e| e.to_string())?);
                        if self.patients.len() >= MAX_PATIENTS {
                            self.patients.clear();
                        }
                        self.patients.insert(event.patient, (std::time::Instant::now(), p.clone(), session.clone()));
                        (p, session)
                    }
                };
            let signed = statement::sign(event, &self.gateway).map_err(|e| e.to_string())?;
            if signed.break_glass {
                break_glass.push(signed.clone());
            }
            let body = seal_statement_in(&session, &signed, EntryKind::Access, &patient.tag);
            let content = Content::Access { tag: patient.tag, grant_id: signed.grant_id, body };
            entries.push(
                statement::sign(LedgerEntry::new(self.gateway.signing_public(), now, content), &self.gateway)
                    .map_err(|e| e.to_string())?,
            );
        }
        if !entries.is_empty() {
            self.ledger.append(&entries).map_err(|e| e.to_string())?;
        }
        let delete = "DELETE FROM outbox WHERE seq <= ?1 AND seq % ?2 = ?3";
        self.db.execute(delete, params![last, self.share, self.part]).map_err(|e| e.to_string())?;
        for event in break_glass {
            if let Err(e) = self.notify_guardians(&event, now) {
                custodia_net::log::warn(
                    "custodia-gateway",
                    format_args!("could not tell a patient's guardians of an emergency-card read: {e}"),
                );
            }
        }
        Ok(rows.len())
    }

    /// Tells the patient's guardians of an emergency-card read, through the share mailboxes of the
    /// patient's current guardian set (the ledger says where they are, never who they are). Best effort:
    /// the event itself is already on the ledger for the patient.
    fn notify_guardians(&mut self, event: &Verified<AccessEvent>, now: Timestamp) -> Result<(), String> {
        let view = match self.ledger.recovery(&self.gateway, &event.patient) {
            Ok(view) => view,
            Err(e) => return Err(e.to_string()),
        };
        let Some(set) = view.current_set() else { return Ok(()) };
        let body = MailBody::BreakGlass { event: event.to_compact_json() };
        for mailbox in &set.mailboxes {
            let sealed = seal_mail(&self.gateway, &mailbox.key, &mailbox.box_key, body.clone(), None, now)
                .map_err(|e| e.to_string())?;
            self.ledger
                .client()
                .mail_post(&self.gateway, &mailbox.key, NOTICE_TTL_SECONDS, &sealed)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
