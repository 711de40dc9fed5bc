//! What the gateway remembers between requests, so each read costs two signature checks and a few map
//! lookups: verified grants by digest, grant states from the ledger (for at most [`STATUS_TTL`]), enrolled
//! members, nonces seen, reads per grant, and a budget for logging refused attempts. Reads and nonces are
//! also written to the outbox's database with each request ([`crate::events`]); these maps are what a
//! request checks, restored from it at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use custodia_core::entry::{Digest, EntryNonce, Tag};
use custodia_core::grant::{GrantId, VerifiedGrant};
use custodia_core::{SigningPublicKey, reqsig};
use custodia_wallet::ledger::Member;

/// How long an emergency card stays open to one reader after their first read under it: an emergency
/// is hours, not years. Another reader, in a later emergency, gets their own window.
pub const EMERGENCY_WINDOW_SECONDS: i64 = 12 * 3600;

/// How long a grant's state from the ledger is trusted: a revocation takes effect within this plus one
/// ledger round trip.
pub const STATUS_TTL: Duration = Duration::from_millis(500);
/// How long an enrolled member (or the ledger's word that a key is none) is trusted.
pub const MEMBER_TTL: Duration = Duration::from_secs(60);
/// Refused attempts logged per grant per minute; more are answered but not each logged, so a thief with a
/// stolen grant cannot flood the patient's log.
pub const DENIED_EVENTS_PER_MINUTE: u32 = 30;
/// Caches are cleared when they grow past this, rather than grow without bound.
const MAX_CACHED: usize = 100_000;
/// Verified grants kept: a large hospital's active grants, each checked once.
const MAX_GRANTS: usize = 400_000;
/// Grant states are kept for many more: every active grant's, while the ledger's feed keeps them current.
const MAX_STATES: usize = 2_000_000;
const MAX_NONCES: usize = 2_000_000;

/// What the ledger proved of a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerState {
    /// On the ledger with this digest, under the patient's tag, and standing.
    Active(Digest, Tag),
    Revoked,
    Redacted,
    NotOnLedger,
}

/// A card's grant and a reader's key.
pub type WindowKey = (GrantId, [u8; 32]);

#[derive(Default)]
pub struct Caches {
    grants: RwLock<HashMap<Digest, Arc<VerifiedGrant>>>,
    states: Mutex<HashMap<GrantId, (Instant, LedgerState)>>,
    members: RwLock<HashMap<SigningPublicKey, (Instant, Option<Member>)>>,
    nonces: Mutex<NonceWindow>,
    /// Reads per grant, with the grant's expiry (Unix seconds), after which the count is dropped.
    reads: Mutex<HashMap<GrantId, (u32, i64)>>,
    /// When each reader's emergency window under each card opened, and the card's expiry.
    windows: Mutex<HashMap<WindowKey, (i64, i64)>>,
    denied: Mutex<HashMap<GrantId, (Instant, u32)>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caches")
    }
}

pub(crate) fn insert_capped<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V, cap: usize) {
    if map.len() >= cap && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl Caches {
    pub fn grant(&self, digest: &Digest) -> Option<Arc<VerifiedGrant>> {
        self.grants.read().ok()?.get(digest).cloned()
    }

    pub fn keep_grant(&self, digest: Digest, grant: Arc<VerifiedGrant>) {
        if let Ok(mut g) = self.grants.write() {
            insert_capped(&mut g, digest, grant, MAX_GRANTS);
        }
    }

    /// The grant's state: any known one while the ledger's feed is `fresh` (it would have changed it),
    /// else one learned within [`STATUS_TTL`].
    pub fn state(&self, id: &GrantId, fresh: bool) -> Option<LedgerState> {
        let states = self.states.lock().ok()?;
        let (at, state) = states.get(id)?;
        (fresh || at.elapsed() < STATUS_TTL).then(|| state.clone())
    }

    /// Keeps a state learned at `learned`, unless a later one is kept (an answer the ledger gave before
    /// the feed's revocation must not undo it).
    pub fn keep_state(&self, id: GrantId, state: LedgerState, learned: Instant) {
        if let Ok(mut s) = self.states.lock() {
            if s.get(&id).is_some_and(|(at, _)| *at > learned) {
                return;
            }
            insert_capped(&mut s, id, (learned, state), MAX_STATES);
        }
    }

    /// Forgets the states of the tag's grants (a redaction), so each is asked again.
    pub fn forget_tag(&self, tag: &Tag) {
        if let Ok(mut s) = self.states.lock() {
            s.retain(|_, (_, state)| !matches!(state, LedgerState::Active(_, t) if t == tag));
        }
    }

    /// `Some(answer)` if looked up within [`MEMBER_TTL`]; the answer is `None` for a key that is no member.
    pub fn member(&self, key: &SigningPublicKey) -> Option<Option<Member>> {
        let members = self.members.read().ok()?;
        let (at, member) = members.get(key)?;
        (at.elapsed() < MEMBER_TTL).then(|| member.clone())
    }

    pub fn keep_member(&self, key: SigningPublicKey, member: Option<Member>) {
        if let Ok(mut m) = self.members.write() {
            insert_capped(&mut m, key, (Instant::now(), member), MAX_CACHED);
        }
    }

    /// True the first time a signer uses a nonce within the signature's time window.
    pub fn first_use(&self, key: &SigningPublicKey, nonce: &EntryNonce) -> bool {
        self.nonces.lock().is_ok_and(|mut n| n.first_use(key, nonce))
    }

    /// Takes up state a previous run left.
    pub fn restore(&self, saved: crate::events::SavedState) {
        if let Ok(mut reads) = self.reads.lock() {
            reads.extend(saved.reads);
        }
        if let Ok(mut windows) = self.windows.lock() {
            windows.extend(saved.windows);
        }
        if let Ok(mut nonces) = self.nonces.lock() {
            for (key, nonce) in saved.nonces {
                nonces.current.insert((key, nonce), ());
            }
        }
    }

    /// Counts a read under the grant (which expires at `expires`, Unix seconds) before it is served, so
    /// two at once cannot both take the last one; returns the reads made before it. The slot gives the
    /// read back when dropped unless kept.
    pub fn reserve_read(&self, id: GrantId, expires: i64) -> (u32, ReadSlot<'_>) {
        let before = self.reads.lock().map_or(u32::MAX, |mut r| {
            if r.len() >= MAX_STATES {
                let now = crate::now().unix();
                r.retain(|_, (_, until)| *until >= now);
            }
            let (count, _) = r.entry(id).or_insert((0, expires));
            let before = *count;
            *count = count.saturating_add(1);
            before
        });
        (before, ReadSlot { reads: &self.reads, id, kept: false })
    }

    /// When `reader`'s emergency window under the card's grant opened: at their first read (`at`), kept
    /// until the card expires (`expires`). The outbox makes it durable with that read's event.
    pub fn emergency_window(&self, id: GrantId, reader: &SigningPublicKey, at: i64, expires: i64) -> i64 {
        self.windows.lock().map_or(at, |mut w| {
            if w.len() >= MAX_STATES {
                w.retain(|_, (_, until)| *until >= at);
            }
            w.entry((id, *reader.as_bytes())).or_insert((at, expires)).0
        })
    }

    /// Whether a refused attempt under this grant should be logged now.
    pub fn may_log_denial(&self, id: GrantId) -> bool {
        let Ok(mut denied) = self.denied.lock() else { return true };
        if denied.len() >= MAX_CACHED && !denied.contains_key(&id) {
            denied.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
        }
        let (since, count) = denied.entry(id).or_insert((Instant::now(), 0));
        if since.elapsed() >= Duration::from_secs(60) {
            *since = Instant::now();
            *count = 0;
        }
        *count += 1;
        *count <= DENIED_EVENTS_PER_MINUTE
    }
}

/// A read counted in advance: given back on drop unless [`ReadSlot::keep`] says it was served.
pub struct ReadSlot<'a> {
    reads: &'a Mutex<HashMap<GrantId, (u32, i64)>>,
    id: GrantId,
    kept: bool,
}

impl ReadSlot<'_> {
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for ReadSlot<'_> {
    fn drop(&mut self) {
        if !self.kept
            && let Ok(mut reads) = self.reads.lock()
            && let Some((count, _)) = reads.get_mut(&self.id)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                reads.remove(&self.id);
            }
        }
    }
}

/// Nonces seen in the last two skew windows, in two generations: a nonce older than both has a signature
/// too old to be accepted anyway.
#[derive(Default)]
struct NonceWindow {
    current: HashMap<([u8; 32], EntryNonce), ()>,
    previous: HashMap<([u8; 32], EntryNonce), ()>,
    started: Option<Instant>,
}

impl NonceWindow {
    fn first_use(&mut self, key: &SigningPublicKey, nonce: &EntryNonce) -> bool {
        let window = Duration::from_secs(2 * reqsig::MAX_SKEW_SECONDS.unsigned_abs() + 1);
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed() >= window || self.current.len() >= MAX_NONCES {
            self.previous = std::mem::take(&mut self.current);
            self.started = Some(Instant::now());
        }
        let k = (*key.as_bytes(), *nonce);
        if self.current.contains_key(&k) || self.previous.contains_key(&k) {
            return false;
        }
        self.current.insert(k, ());
        true
    }
}
