//! Durable storage behind one trait, with two implementations run by the same tests: SQLite (the embedded
//! default) and PostgreSQL (several ledger front ends over one database).
//!
//! The trait is synchronous: SQLite is a library call and the sequencer runs on its own thread; the HTTP
//! handlers call it through `spawn_blocking`. Every append is one transaction that moves the tree from
//! `old_size` to `new_size`. The sequencer appends with [`Store::append_at_head`]: it takes the tree
//! first, and if another front end appended meanwhile, catches up and rebuilds its batch while it holds
//! the tree, so every turn at the tree appends. [`Store::append`] refuses another size with
//! [`StoreError::Conflict`].

use custodia_core::SigningPublicKey;
use custodia_core::entry::{Digest, EntryKind, LEAF_LEN, Role, Tag};
use custodia_core::grant::GrantId;
use custodia_core::keys::BoxPublicKey;
use custodia_log::{Hash, NodeId};

mod pg_tls;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod suite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the tree has {actual} entries, not the {expected} this append started from")]
    Conflict { expected: u64, actual: u64 },
    #[error("entry {0} is already in the log")]
    Duplicate(Digest),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
    #[error(
        "the database is in storage version {found}, and this ledger reads version {expected} only{}",
        version_advice(*found, *expected)
    )]
    Version { found: i64, expected: i64 },
}

fn version_advice(found: i64, expected: i64) -> &'static str {
    if found < expected {
        ": it was made by an earlier Custodia, which kept entries as entry.v1 JSON; this one keeps the binary \
         entry.v2 and cannot read them. Keep serving that ledger with the version that made it, or start a new \
         ledger with `custodia ledger init`"
    } else {
        ": it was made by a newer Custodia; run that version"
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        // The client error's own text is just "db error"; the server's message is what says what happened.
        match e.as_db_error() {
            Some(db) => StoreError::Database(format!("{}: {}", db.code().code(), db.message())),
            // A refused certificate says which check failed; any other cause is named after the client's text.
            None if custodia_net::client::is_certificate_refusal(&e) => {
                StoreError::Database(format!("{e}: the server {}", custodia_net::client::explain(&e)))
            }
            None => match std::error::Error::source(&e) {
                Some(cause) => StoreError::Database(format!("{e}: {cause}")),
                None => StoreError::Database(e.to_string()),
            },
        }
    }
}

/// What sequencing an entry changes beyond the log itself: the indexes the ledger answers questions from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Patient {
        key: SigningPublicKey,
        box_key: BoxPublicKey,
        tag: Tag,
    },
    Member(MemberRecord),
    Grant {
        grant_id: GrantId,
        owner: SigningPublicKey,
        tag: Tag,
        digest: Digest,
    },
    Revocation {
        grant_id: GrantId,
    },
    /// Deletes the bodies of the tag's earlier grants and access events (revocations and the enrollment
    /// stay, so gateways can still learn that a grant is withdrawn).
    Redaction {
        tag: Tag,
    },
    /// The patient's record passes from `old_key` to `new_key`; the old key is retired for good.
    Rotation {
        old_key: SigningPublicKey,
        new_key: SigningPublicKey,
        new_box_key: BoxPublicKey,
    },
}

/// The kinds [`Store::recovery_entries`] returns (codes 7 to 10, which the stores' indexes name).
pub const RECOVERY_KINDS: [EntryKind; 4] =
    [EntryKind::GuardianSet, EntryKind::RecoveryRequest, EntryKind::RecoveryCancel, EntryKind::KeyRotation];

/// One sequenced entry, ready to store.
#[derive(Clone, Debug)]
pub struct NewEntry {
    pub index: u64,
    pub kind: EntryKind,
    pub tag: Option<Tag>,
    pub leaf: [u8; LEAF_LEN],
    pub envelope_hash: Digest,
    /// The DSSE payload and its one signature; the canonical envelope is rebuilt from these.
    pub payload: Vec<u8>,
    pub sig: [u8; 64],
    pub effect: Effect,
}

/// One group commit: entries `old_size..new_size`, the tree nodes they complete, the new root, and
/// (when one is pending) the newest signed checkpoint to keep.
#[derive(Clone, Debug)]
pub struct Batch {
    pub old_size: u64,
    pub new_size: u64,
    pub new_root: Hash,
    pub entries: Vec<NewEntry>,
    pub nodes: Vec<(NodeId, Hash)>,
    pub checkpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeState {
    pub size: u64,
    pub root: Hash,
    /// The newest signed checkpoint kept, which may be for a smaller size than `size`.
    pub checkpoint: Option<String>,
}

/// An entry as stored; `payload` and `sig` are `None` once redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub index: u64,
    pub kind: EntryKind,
    pub leaf: [u8; LEAF_LEN],
    pub payload: Option<Vec<u8>>,
    pub sig: Option<[u8; 64]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub grant_id: GrantId,
    pub owner: SigningPublicKey,
    pub tag: Tag,
    pub index: u64,
    pub digest: Digest,
    pub revoked_index: Option<u64>,
    pub redacted: bool,
}

/// Members are indexed exactly as wallets keep them.
pub type MemberRecord = custodia_core::entry::Member;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientRecord {
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub tag: Tag,
    pub index: u64,
}

/// A sealed message waiting in the mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailMessage {
    pub id: [u8; 16],
    pub recipient: SigningPublicKey,
    pub sender: SigningPublicKey,
    pub sent_at: i64,
    pub expires_at: i64,
    pub body: Vec<u8>,
}

/// Makes the batch for a tree of the given size (see [`Store::append_at_head`]).
pub type BuildBatch<'a> = dyn FnMut(u64) -> Result<Option<Batch>, StoreError> + 'a;

pub trait Store: Send + Sync + 'static {
    fn tree(&self) -> Result<TreeState, StoreError>;
    /// Applies a batch atomically and durably, or not at all.
    fn append(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Takes the tree (other appenders wait), asks `build` for the batch to append on top of the size it
    /// holds, and applies it as [`Store::append`] does. A front end that finds the tree grown by another
    /// catches up and rebuilds its batch inside its turn instead of losing it. `None` from `build`
    /// appends nothing. Returns the batch applied.
    fn append_at_head(&self, build: &mut BuildBatch<'_>) -> Result<Option<Batch>, StoreError>;
    /// Keeps a signed checkpoint if it is newer than the one kept.
    fn save_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError>;

    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError>;
    /// Hashes at one level, indexes `start..end`: what a tile holds.
    fn read_level(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError>;
    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; LEAF_LEN]>, StoreError>;
    fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError>;
    fn entries_by_tag(&self, tag: &Tag, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;
    /// Revocations and redactions after `after`, oldest first: the grant changes gateways follow.
    fn grant_changes(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;
    /// Entries `start..end` (fewer at the end of the log), in order.
    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError>;

    fn grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError>;
    fn member(&self, key: &SigningPublicKey) -> Result<Option<MemberRecord>, StoreError>;
    fn patient(&self, key: &SigningPublicKey) -> Result<Option<PatientRecord>, StoreError>;
    fn patient_by_tag(&self, tag: &Tag) -> Result<Option<PatientRecord>, StoreError>;
    /// The key `key` was rotated to, and the index of the rotation, if `key` is a retired patient key.
    fn retired(&self, key: &SigningPublicKey) -> Result<Option<(SigningPublicKey, u64)>, StoreError>;
    /// The tag's newest `limit` entries of the [`RECOVERY_KINDS`], newest first.
    fn recovery_entries(&self, tag: &Tag, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;

    /// Stores a message unless the recipient already has `max_waiting`; returns whether it was stored.
    fn mailbox_put(&self, message: &MailMessage, max_waiting: u64) -> Result<bool, StoreError>;
    fn mailbox_list(
        &self,
        recipient: &SigningPublicKey,
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailMessage>, StoreError>;
    fn mailbox_delete(&self, recipient: &SigningPublicKey, id: &[u8; 16]) -> Result<bool, StoreError>;
    /// Deletes expired messages; returns how many.
    fn mailbox_purge(&self, now: i64) -> Result<u64, StoreError>;
}

/// A [`custodia_log::HashReader`] over a store, for proofs served from disk.
#[derive(Debug)]
pub struct StoreHashes<'a, S: ?Sized>(pub &'a S);

impl<S: Store + ?Sized> custodia_log::HashReader for StoreHashes<'_, S> {
    type Error = StoreError;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        self.0.read_hashes(ids)
    }
}

pub(crate) fn role_from_str(text: &str) -> Result<Role, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

pub(crate) fn array<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, not {N}", bytes.len())))
}

pub(crate) fn signing_key(bytes: &[u8]) -> Result<SigningPublicKey, StoreError> {
    SigningPublicKey::from_bytes(&array(bytes, "a signing key")?)
        .map_err(|e| StoreError::Corrupt(format!("stored signing key: {e}")))
}

pub(crate) fn kind_from_code(code: i64) -> Result<EntryKind, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(EntryKind::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown entry kind {code}")))
}

/// Converts a u64 for a database column of signed 64-bit integers. Tree sizes never come near 2^63.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative index {n}")))
}
