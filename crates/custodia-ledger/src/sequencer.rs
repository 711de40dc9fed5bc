//! The sequencer: one thread that orders admitted entries, commits them in batches (group commit), and
//! only then signs a checkpoint and acknowledges, each entry with its inclusion proof.
//!
//! While one batch is being made durable, new requests queue; the next batch takes all of them, so the
//! cost of an fsync is shared by everyone who arrived during the previous one. The order of the steps is
//! the guarantee: commit (durable), then sign, then publish and reply. A crash before the commit loses
//! only unacknowledged entries; a crash after it loses nothing, because on start the ledger signs a
//! checkpoint for whatever the database holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use custodia_core::SigningPublicKey;
use custodia_core::entry::{EntryKind, LEAF_LEN, Leaf, Tag};
use custodia_core::grant::GrantId;
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::NoteSigner;
use custodia_log::{Frontier, Hash, HashReader, NodeId, leaf_hash};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::admit::Admitted;
use crate::problem::ApiError;
use crate::replay::{Refusal, ReplayWindow};
use crate::store::{Batch, Effect, NewEntry, Store, StoreError, StoreHashes, StoredEntry};

/// A signed checkpoint and what it states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
}

/// The newest published checkpoint, shared with the request handlers.
pub type Latest = Arc<RwLock<Arc<SignedCheckpoint>>>;

/// One request's entries, appended together or not at all.
#[derive(Debug)]
pub struct AppendJob {
    pub entries: Vec<Admitted>,
    pub reply: oneshot::Sender<Result<Receipts, ApiError>>,
}

#[derive(Debug)]
pub struct Receipts {
    pub checkpoint: Arc<SignedCheckpoint>,
    pub entries: Vec<(u64, [u8; LEAF_LEN], Vec<Hash>)>,
}

/// A new entry under a tag, for live streams.
#[derive(Clone, Copy, Debug)]
pub struct Notice {
    pub tag: Tag,
    pub index: u64,
    pub kind: EntryKind,
}

pub struct Sequencer {
    store: Arc<dyn Store>,
    signer: Arc<NoteSigner>,
    origin: String,
    frontier: Frontier,
    latest: Latest,
    notices: broadcast::Sender<Notice>,
    max_batch: usize,
    /// The newest checkpoint not yet written to the store; it rides along with the next batch.
    unsaved: Option<String>,
    replays: ReplayWindow,
    max_age: i64,
}

impl std::fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer").field("size", &self.frontier.size()).finish_non_exhaustive()
    }
}

/// Entries read at a time when the replay window is filled from the store.
const LOAD_CHUNK: u64 = 4096;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn sign_checkpoint(signer: &NoteSigner, origin: &str, size: u64, root: Hash) -> SignedCheckpoint {
    let note = Checkpoint { origin: origin.to_owned(), size, root, extensions: Vec::new() }.sign(signer);
    SignedCheckpoint { size, root, note }
}

/// Hashes from the batch being acknowledged and the frontier before it: all an inclusion proof for a
/// new entry needs, so proofs are made without reading the store.
struct BatchHashes<'a>(&'a HashMap<NodeId, Hash>);

impl HashReader for BatchHashes<'_> {
    type Error = NodeId;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeId> {
        ids.iter().map(|id| self.0.get(id).copied().ok_or(*id)).collect()
    }
}

/// What the batch so far has changed, for the checks that depend on order.
#[derive(Default)]
struct Pending {
    envelopes: HashSet<custodia_core::entry::Digest>,
    /// Grant id to the tag it is filed under: revocations come from the same patient, whatever key they
    /// hold now.
    grants: HashMap<GrantId, Tag>,
    /// Keys rotated away in this batch, and the keys they were rotated to.
    retired: HashSet<SigningPublicKey>,
    revoked: HashSet<GrantId>,
    patients: HashSet<SigningPublicKey>,
    tags: HashSet<Tag>,
    members: HashSet<SigningPublicKey>,
}

impl Sequencer {
    /// Loads the tree from the store, fills the replay window from its recent entries, and signs a
    /// checkpoint for it (data in the store is durable).
    pub fn start(
        store: Arc<dyn Store>,
        signer: Arc<NoteSigner>,
        origin: String,
        notices: broadcast::Sender<Notice>,
        options: SequencerOptions,
    ) -> Result<(Self, Latest), StoreError> {
        let tree = store.tree()?;
        let frontier = Frontier::load(tree.size, &StoreHashes(store.as_ref()))
            .map_err(|e| StoreError::Corrupt(format!("cannot load the tree's right edge: {e}")))?;
        if frontier.root() != tree.root {
            return Err(StoreError::Corrupt(format!(
                "the stored nodes give root {} for size {}, but the tree records {}",
                frontier.root(),
                tree.size,
                tree.root
            )));
        }
        let checkpoint = sign_checkpoint(&signer, &origin, tree.size, tree.root);
        store.save_checkpoint(checkpoint.size, &checkpoint.note)?;
        let latest = Arc::new(RwLock::new(Arc::new(checkpoint)));
        let replays = load_replay_window(store.as_ref(), tree.size, &options)?;
        let sequencer = Self {
            store,
            signer,
            origin,
            frontier,
            latest: latest.clone(),
            notices,
            max_batch: options.max_batch,
            unsaved: None,
            replays,
            max_age: options.max_entry_age_seconds,
        };
        Ok((sequencer, latest))
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, mut jobs: mpsc::Receiver<AppendJob>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = vec![first];
            let mut count = batch[0].entries.len();
            while count < self.max_batch {
                match jobs.try_recv() {
                    Ok(job) => {
                        count += job.entries.len();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.process(batch);
            if jobs.is_empty()
                && let Some(note) = self.unsaved.take()
            {
                let size = self.frontier.size();
                if let Err(e) = self.store.save_checkpoint(size, &note) {
                    custodia_net::log::warn("custodia-ledger", format_args!("could not save checkpoint {size}: {e}"));
                    self.unsaved = Some(note);
                }
            }
        }
    }

    fn process(&mut self, mut jobs: Vec<AppendJob>) {
        // Only the last append attempt's outcome is sent; a replay found by the store drops its request and
        // the rest go again.
        loop {
            // Catch up with other front ends before taking the tree, so little is left to read while
            // holding it.
            match self.store.tree() {
                Ok(tree) if tree.size > self.frontier.size() => {
                    if let Err(e) = self.reload(tree.size) {
                        return fail_all(jobs, &e);
                    }
                }
                Ok(_) => {}
                Err(e) => return fail_all(jobs, &e),
            }
            jobs = self.screen(jobs);
            if jobs.is_empty() {
                return;
            }
            let store = self.store.clone();
            let mut frontier = None;
            let appended = store.append_at_head(&mut |size| {
                if size != self.frontier.size() {
                    // Another front end appended while this batch waited for the tree. Catch up and check
                    // the batch again while holding the tree, so this turn is not lost as well.
                    self.reload(size)?;
                    jobs = self.screen(std::mem::take(&mut jobs));
                    if jobs.is_empty() {
                        return Ok(None);
                    }
                }
                let (batch, grown) = self.build(&jobs);
                frontier = Some(grown);
                Ok(Some(batch))
            });
            match appended {
                Ok(None) => return,
                Ok(Some(batch)) => {
                    let Some(frontier) = frontier else {
                        return fail_all(jobs, &StoreError::Corrupt("a batch was stored but never built".into()));
                    };
                    match self.finish(&jobs, &batch, frontier) {
                        Ok((receipts, notices)) => {
                            crate::ops::APPENDED.add(jobs.iter().map(|j| j.entries.len() as u64).sum());
                            for (job, receipt) in jobs.into_iter().zip(receipts) {
                                let _ = job.reply.send(Ok(receipt));
                            }
                            for notice in notices {
                                let _ = self.notices.send(notice);
                            }
                        }
                        Err(e) => fail_all(jobs, &e),
                    }
                    return;
                }
                Err(StoreError::Duplicate(hash)) => {
                    // A replay raced us past the screen (another front end); refuse its request only.
                    let (bad, rest): (Vec<_>, Vec<_>) =
                        jobs.into_iter().partition(|j| j.entries.iter().any(|e| e.envelope_hash == hash));
                    if bad.is_empty() {
                        return fail_all(rest, &StoreError::Duplicate(hash));
                    }
                    for job in bad {
                        let _ = job.reply.send(Err(replayed(hash)));
                    }
                    jobs = rest;
                }
                Err(e) => {
                    let reload = self.store.tree().and_then(|t| self.reload(t.size));
                    if let Err(e) = reload {
                        custodia_net::log::warn(
                            "custodia-ledger",
                            format_args!("cannot reload the tree after a storage error: {e}"),
                        );
                    }
                    return fail_all(jobs, &e);
                }
            }
        }
    }

    /// Catches up with entries other front ends appended, up to `size`.
    /// The window takes the new entries before the frontier moves: a failure part way leaves the frontier
    /// behind, so the next attempt reads the same entries again.
    fn reload(&mut self, size: u64) -> Result<(), StoreError> {
        let frontier = Frontier::load(size, &StoreHashes(self.store.as_ref()))
            .map_err(|e| StoreError::Corrupt(format!("cannot load the tree's right edge: {e}")))?;
        let now = (now_ms() / 1000) as i64;
        let mut start = self.frontier.size();
        while start < size {
            let end = size.min(start + LOAD_CHUNK);
            for entry in self.store.read_entries(start, end)? {
                let (hash, at) = dated_envelope(&entry, self.max_age)?;
                self.replays.insert(&hash, at, now);
            }
            start = end;
        }
        self.frontier = frontier;
        Ok(())
    }

    /// The checks that depend on order: replays, reused grant ids, revocations of grants that do not
    /// exist or belong to someone else, double enrollments within one batch. A request failing any of
    /// them is answered at once and left out.
    fn screen(&self, jobs: Vec<AppendJob>) -> Vec<AppendJob> {
        let mut pending = Pending::default();
        let mut keep = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.check_job(&job, &pending) {
                Ok(()) => {
                    for e in &job.entries {
                        pending.envelopes.insert(e.envelope_hash);
                        match &e.effect {
                            Effect::Grant { grant_id, tag, .. } => {
                                pending.grants.insert(*grant_id, *tag);
                            }
                            Effect::Rotation { old_key, new_key, .. } => {
                                pending.retired.insert(*old_key);
                                pending.patients.insert(*new_key);
                            }
                            Effect::Revocation { grant_id } => {
                                pending.revoked.insert(*grant_id);
                            }
                            Effect::Patient { key, tag, .. } => {
                                pending.patients.insert(*key);
                                pending.tags.insert(*tag);
                            }
                            Effect::Member(m) => {
                                pending.members.insert(m.key);
                            }
                            Effect::None | Effect::Redaction { .. } => {}
                        }
                    }
                    keep.push(job);
                }
                Err(problem) => {
                    let _ = job.reply.send(Err(problem));
                }
            }
        }
        keep
    }

    fn check_job(&self, job: &AppendJob, pending: &Pending) -> Result<(), ApiError> {
        let mut own = Pending::default();
        let now = (now_ms() / 1000) as i64;
        for (i, e) in job.entries.iter().enumerate() {
            let h = e.envelope_hash;
            // Admission checked the date with its clock; the window's promise holds for this one's.
            if (now - e.at).abs() > self.max_age {
                return Err(stale(e.at, self.max_age).at(i));
            }
            match self.replays.check(&h, e.at) {
                Err(Refusal::Replayed) => return Err(replayed(h).at(i)),
                Err(Refusal::BeforeHorizon(horizon)) => return Err(before_horizon(horizon).at(i)),
                Ok(()) => {}
            }
            if pending.envelopes.contains(&h) || !own.envelopes.insert(h) {
                return Err(replayed(h).at(i));
            }
            if pending.retired.contains(&e.signer) || own.retired.contains(&e.signer) {
                return Err(ApiError::forbidden(
                    "key-rotated",
                    format!("{} was rotated away by an entry just before this one", e.signer),
                )
                .at(i));
            }
            match &e.effect {
                Effect::Grant { grant_id, tag, .. } => {
                    let taken = pending.grants.contains_key(grant_id)
                        || own.grants.contains_key(grant_id)
                        || self.store.grant(grant_id)?.is_some();
                    if taken {
                        return Err(ApiError::conflict(
                            "duplicate-grant",
                            format!("grant id {grant_id} is already used"),
                        )
                        .at(i));
                    }
                    own.grants.insert(*grant_id, *tag);
                }
                Effect::Revocation { grant_id } => {
                    let (owner, revoked) = match own.grants.get(grant_id).or_else(|| pending.grants.get(grant_id)) {
                        Some(tag) => (*tag, false),
                        None => match self.store.grant(grant_id)? {
                            Some(g) => (g.tag, g.revoked_index.is_some()),
                            None => {
                                return Err(ApiError::new(
                                    StatusCode::NOT_FOUND,
                                    "unknown-grant",
                                    format!("grant {grant_id} is not on this ledger"),
                                )
                                .at(i));
                            }
                        },
                    };
                    if Some(owner) != e.tag {
                        return Err(ApiError::forbidden(
                            "not-owner",
                            format!("grant {grant_id} belongs to another patient; only they can revoke it"),
                        )
                        .at(i));
                    }
                    if revoked || pending.revoked.contains(grant_id) || !own.revoked.insert(*grant_id) {
                        return Err(ApiError::conflict(
                            "already-revoked",
                            format!("grant {grant_id} is already revoked"),
                        )
                        .at(i));
                    }
                }
                Effect::Patient { key, tag, .. } => {
                    let twice = pending.patients.contains(key)
                        || pending.tags.contains(tag)
                        || !own.patients.insert(*key)
                        || !own.tags.insert(*tag);
                    if twice {
                        return Err(ApiError::conflict("already-enrolled", format!("{key} is already enrolling")).at(i));
                    }
                }
                Effect::Member(m) => {
                    if pending.members.contains(&m.key) || !own.members.insert(m.key) {
                        return Err(
                            ApiError::conflict("already-enrolled", format!("{} is already enrolling", m.key)).at(i)
                        );
                    }
                }
                Effect::Rotation { old_key, new_key, .. } => {
                    let twice = pending.patients.contains(new_key) || !own.patients.insert(*new_key);
                    if twice || !own.retired.insert(*old_key) {
                        return Err(ApiError::conflict(
                            "already-enrolled",
                            format!("{new_key} is already enrolling, or {old_key} already rotating"),
                        )
                        .at(i));
                    }
                }
                Effect::None | Effect::Redaction { .. } => {}
            }
        }
        Ok(())
    }

    /// The batch `jobs` make on top of the tree as this sequencer knows it, and the tree it grows to.
    fn build(&self, jobs: &[AppendJob]) -> (Batch, Frontier) {
        let old_size = self.frontier.size();
        let mut frontier = self.frontier.clone();
        let logged_at = now_ms();
        let total: usize = jobs.iter().map(|j| j.entries.len()).sum();
        let mut entries = Vec::with_capacity(total);
        let mut nodes = Vec::with_capacity(total * 2 + 64);
        for e in jobs.iter().flat_map(|j| &j.entries) {
            let index = frontier.size();
            let leaf = Leaf { kind: e.kind, logged_at_ms: logged_at, envelope_hash: e.envelope_hash }.to_bytes();
            frontier.push_into(leaf_hash(&leaf), &mut nodes);
            let mut effect = e.effect.clone();
            if let Effect::Member(m) = &mut effect {
                m.index = index;
            }
            entries.push(NewEntry {
                index,
                kind: e.kind,
                tag: e.tag,
                leaf,
                envelope_hash: e.envelope_hash,
                payload: e.payload.clone(),
                sig: e.sig,
                effect,
            });
        }
        let batch = Batch {
            old_size,
            new_size: frontier.size(),
            new_root: frontier.root(),
            entries,
            nodes,
            checkpoint: self.unsaved.clone(),
        };
        (batch, frontier)
    }

    /// After the batch is durable: moves to the new tree, signs a checkpoint for it, then builds each
    /// request's receipts (proofs from the batch's own nodes) and the live notices.
    fn finish(
        &mut self,
        jobs: &[AppendJob],
        batch: &Batch,
        frontier: Frontier,
    ) -> Result<(Vec<Receipts>, Vec<Notice>), StoreError> {
        let mut known: HashMap<NodeId, Hash> = self.frontier.nodes().into_iter().collect();
        self.frontier = frontier;
        let now = (now_ms() / 1000) as i64;
        for e in jobs.iter().flat_map(|j| &j.entries) {
            self.replays.insert(&e.envelope_hash, e.at, now);
        }
        let new_size = batch.new_size;
        let checkpoint = Arc::new(sign_checkpoint(&self.signer, &self.origin, new_size, batch.new_root));
        self.unsaved = Some(checkpoint.note.clone());
        if let Ok(mut latest) = self.latest.write() {
            *latest = checkpoint.clone();
        }
        known.extend(batch.nodes.iter().copied());
        let reader = BatchHashes(&known);
        let notices = batch
            .entries
            .iter()
            .filter_map(|e| e.tag.map(|tag| Notice { tag, index: e.index, kind: e.kind }))
            .collect();
        let mut next = batch.entries.iter();
        let mut receipts = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut out = Vec::with_capacity(job.entries.len());
            for stored in next.by_ref().take(job.entries.len()) {
                let proof = custodia_log::proof::inclusion_proof(stored.index, new_size, &reader)
                    .map_err(|e| StoreError::Corrupt(format!("inclusion proof for a new entry: {e:?}")))?;
                out.push((stored.index, stored.leaf, proof));
            }
            receipts.push(Receipts { checkpoint: checkpoint.clone(), entries: out });
        }
        Ok((receipts, notices))
    }
}

fn replayed(hash: custodia_core::entry::Digest) -> ApiError {
    ApiError::conflict(
        "replayed",
        format!("this exact entry ({hash}) is already in the log; a new entry needs a new nonce"),
    )
}

fn stale(at: i64, max_age: i64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "stale",
        format!(
            "the entry is dated {}, more than {max_age} s from the ledger's time; sign it again with a correct clock",
            custodia_core::time::Timestamp::from_unix(at).map_or_else(|_| at.to_string(), |t| t.to_string())
        ),
    )
}

fn before_horizon(horizon: i64) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "stale",
        format!(
            "under the current load the ledger takes entries dated after {} only; sign it again with a correct clock",
            custodia_core::time::Timestamp::from_unix(horizon).map_or_else(|_| horizon.to_string(), |t| t.to_string())
        ),
    )
}

/// What the sequencer needs besides its store and key.
#[derive(Clone, Copy, Debug)]
pub struct SequencerOptions {
    pub max_batch: usize,
    /// Entries dated further than this from the ledger's clock are refused at admission.
    pub max_entry_age_seconds: i64,
    /// The most envelopes the replay window holds (see [`ReplayWindow`]).
    pub replay_window_entries: usize,
}

/// An entry's envelope hash (from its leaf) and the date its signer gave it. A redacted entry's date
/// is gone with its payload; the latest date the ledger could have taken it with stands in.
fn dated_envelope(entry: &StoredEntry, max_age: i64) -> Result<(custodia_core::entry::Digest, i64), StoreError> {
    let leaf = Leaf::parse(&entry.leaf).map_err(|e| StoreError::Corrupt(format!("entry {}: {e}", entry.index)))?;
    let at = match &entry.payload {
        Some(payload) => custodia_core::entry::entry_date(payload)
            .ok_or_else(|| StoreError::Corrupt(format!("entry {} has no date", entry.index)))?
            .unix(),
        None => (leaf.logged_at_ms / 1000) as i64 + max_age,
    };
    Ok((leaf.envelope_hash, at))
}

/// The replay window as it stood: every entry that could still be replayed, found by scanning back from
/// the end of the log to entries logged more than twice the allowed age ago (an entry is dated at most
/// `max_age` after it is logged, and replayable until `max_age` after its date).
fn load_replay_window(store: &dyn Store, size: u64, options: &SequencerOptions) -> Result<ReplayWindow, StoreError> {
    let max_age = options.max_entry_age_seconds;
    let mut window = ReplayWindow::new(max_age, options.replay_window_entries);
    let now = (now_ms() / 1000) as i64;
    let mut found = Vec::new();
    let mut end = size;
    let mut cutoff = None;
    while end > 0 {
        let start = end.saturating_sub(LOAD_CHUNK);
        let chunk = store.read_entries(start, end)?;
        let mut any_recent = false;
        for entry in chunk.iter().rev() {
            let logged = Leaf::parse(&entry.leaf)
                .map_err(|e| StoreError::Corrupt(format!("entry {}: {e}", entry.index)))?
                .logged_at_ms as i64
                / 1000;
            // A clock set back since the last run must not shorten the scan.
            let cutoff = *cutoff.get_or_insert(now.min(logged) - 2 * max_age - 60);
            if logged < cutoff {
                continue;
            }
            any_recent = true;
            found.push(dated_envelope(entry, max_age)?);
            if found.len() >= 2 * window.capacity() {
                // More than the window can hold: the oldest-dated half would be dropped anyway.
                found.sort_unstable_by_key(|(_, at)| std::cmp::Reverse(*at));
                for (_, at) in found.drain(window.capacity()..) {
                    window.raise_horizon(at);
                }
            }
        }
        // Front ends' clocks differ a little, so leaves are not quite in time order: stop only after a
        // whole chunk logged before the cutoff.
        if !any_recent {
            break;
        }
        end = start;
    }
    // Whatever was logged before the cutoff is dated before cutoff + max_age: refused by date.
    if let Some(cutoff) = cutoff {
        window.raise_horizon(cutoff + max_age);
    }
    found.sort_unstable_by_key(|(_, at)| *at);
    for (hash, at) in found {
        window.insert(&hash, at, now);
    }
    Ok(window)
}

fn fail_all(jobs: Vec<AppendJob>, e: &StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(ApiError::unavailable(format!("the entries were not stored: {e}"))));
    }
}
