//! The embedded store: one SQLite file in WAL mode with `synchronous = FULL`, so a committed batch has
//! been fsynced before the sequencer acknowledges it. One connection writes; a small pool reads, so
//! readers never wait for the writer.

use std::path::Path;
use std::sync::Mutex;

use custodia_core::SigningPublicKey;
use custodia_core::entry::{Digest, LEAF_LEN, Tag};
use custodia_core::grant::GrantId;
use custodia_core::keys::BoxPublicKey;
use custodia_log::{Hash, NodeId};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Batch, BuildBatch, Effect, GrantRecord, MailMessage, MemberRecord, PatientRecord, Store, StoreError, StoredEntry,
    TreeState, array, kind_from_code, role_from_str, signing_key, to_i64, to_u64,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tree (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint_size INTEGER,
    checkpoint TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,
    tag BLOB,
    leaf BLOB NOT NULL,
    payload BLOB,
    sig BLOB
);
CREATE INDEX IF NOT EXISTS entries_by_tag ON entries (tag, idx) WHERE tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_for_recovery ON entries (tag, idx) WHERE kind IN (7, 8, 9, 10);
CREATE INDEX IF NOT EXISTS entries_grant_changes ON entries (idx) WHERE kind IN (4, 6);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    grant_id BLOB PRIMARY KEY,
    owner BLOB NOT NULL,
    tag BLOB NOT NULL,
    idx INTEGER NOT NULL,
    digest BLOB NOT NULL,
    revoked_idx INTEGER,
    redacted INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    key BLOB PRIMARY KEY,
    box_key BLOB NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    org TEXT NOT NULL,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS patients (
    key BLOB PRIMARY KEY,
    box_key BLOB NOT NULL,
    tag BLOB NOT NULL UNIQUE,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS retired_keys (
    key BLOB PRIMARY KEY,
    successor BLOB NOT NULL,
    idx INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS mailbox (
    id BLOB PRIMARY KEY,
    recipient BLOB NOT NULL,
    sender BLOB NOT NULL,
    sent_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS mailbox_by_recipient ON mailbox (recipient, sent_at);
CREATE INDEX IF NOT EXISTS mailbox_by_expiry ON mailbox (expires_at);
";

const READERS: usize = 4;

/// The storage version of this layout, kept in `PRAGMA user_version` (and in PostgreSQL's
/// `storage_version`). Version 1 (`user_version` 0) kept entries as `entry.v1` JSON with a unique index on
/// their envelope hashes.
pub(super) const SCHEMA_VERSION: i64 = 2;

#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut writer = open_connection(path)?;
        let tx = writer.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let made: bool =
            tx.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'tree')", [], |r| r.get(0))?;
        // Storage version 1 left `user_version` at 0.
        let found = version.max(1);
        if made && found != SCHEMA_VERSION {
            return Err(StoreError::Version { found, expected: SCHEMA_VERSION });
        }
        tx.execute_batch(SCHEMA)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        writer.execute(
            "INSERT OR IGNORE INTO tree (id, size, root) VALUES (1, 0, ?1)",
            params![custodia_log::empty_root().0.as_slice()],
        )?;
        let readers = (0..READERS).map(|_| open_connection(path)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { writer: Mutex::new(writer), readers: Mutex::new(readers), path: path.to_owned() })
    }

    /// Runs `f` on a reader connection, opening an extra one if all are busy.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.len() < READERS {
            pool.push(conn);
        }
        out
    }
}

fn poisoned() -> StoreError {
    StoreError::Database("a database connection lock was poisoned by a panic".into())
}

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    Ok(Hash(array(bytes, "a hash")?))
}

pub(super) type EntryRow = (i64, i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
}

pub(super) fn stored_entry((index, kind, leaf, payload, sig): EntryRow) -> Result<StoredEntry, StoreError> {
    Ok(StoredEntry {
        index: to_u64(index)?,
        kind: kind_from_code(kind)?,
        leaf: array::<LEAF_LEN>(&leaf, "a leaf")?,
        payload,
        sig: sig.map(|s| array::<64>(&s, "a signature")).transpose()?,
    })
}

fn grant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
}

pub(super) type GrantRow = (Vec<u8>, Vec<u8>, Vec<u8>, i64, Vec<u8>, Option<i64>, i64);

pub(super) fn grant_record(
    (id, owner, tag, idx, digest, revoked, redacted): GrantRow,
) -> Result<GrantRecord, StoreError> {
    Ok(GrantRecord {
        grant_id: GrantId::from_bytes(array(&id, "a grant id")?),
        owner: signing_key(&owner)?,
        tag: Tag::from_bytes(array(&tag, "a tag")?),
        index: to_u64(idx)?,
        digest: Digest::from_bytes(array(&digest, "a digest")?),
        revoked_index: revoked.map(to_u64).transpose()?,
        redacted: redacted != 0,
    })
}

type PatientRow = (Vec<u8>, Vec<u8>, Vec<u8>, i64);

pub(super) fn patient_record((key, box_key, tag, idx): PatientRow) -> Result<PatientRecord, StoreError> {
    Ok(PatientRecord {
        key: signing_key(&key)?,
        box_key: BoxPublicKey::from_bytes(array(&box_key, "a box key")?),
        tag: Tag::from_bytes(array(&tag, "a tag")?),
        index: to_u64(idx)?,
    })
}

type MemberRow = (Vec<u8>, Vec<u8>, String, String, String, i64);

pub(super) fn member_record((key, box_key, role, name, org, idx): MemberRow) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        key: signing_key(&key)?,
        box_key: BoxPublicKey::from_bytes(array(&box_key, "a box key")?),
        role: role_from_str(&role)?,
        name,
        org,
        index: to_u64(idx)?,
    })
}

type MailRow = (Vec<u8>, Vec<u8>, Vec<u8>, i64, i64, Vec<u8>);

pub(super) fn mail_message(
    (id, recipient, sender, sent_at, expires_at, body): MailRow,
) -> Result<MailMessage, StoreError> {
    Ok(MailMessage {
        id: array(&id, "a message id")?,
        recipient: signing_key(&recipient)?,
        sender: signing_key(&sender)?,
        sent_at,
        expires_at,
        body,
    })
}

/// Redaction keeps enrollments and revocations: gateways must still learn that a grant is withdrawn.
pub(super) const REDACTABLE_KINDS: [u8; 2] =
    [custodia_core::entry::EntryKind::Grant as u8, custodia_core::entry::EntryKind::Access as u8];

impl Store for SqliteStore {
    fn tree(&self) -> Result<TreeState, StoreError> {
        self.read(|c| {
            let (size, root, checkpoint): (i64, Vec<u8>, Option<String>) =
                c.query_row("SELECT size, root, checkpoint FROM tree WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            Ok(TreeState { size: to_u64(size)?, root: hash_from(&root)?, checkpoint })
        })
    }

    fn append(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let size = head_size(&tx)?;
        if size != batch.old_size {
            return Err(StoreError::Conflict { expected: batch.old_size, actual: size });
        }
        write_batch(&tx, batch)?;
        tx.commit()?;
        Ok(())
    }

    fn append_at_head(&self, build: &mut BuildBatch<'_>) -> Result<Option<Batch>, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        // BEGIN IMMEDIATE takes the write lock now: no other connection appends until this commits.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let size = head_size(&tx)?;
        let Some(batch) = build(size)? else {
            return Ok(None);
        };
        if size != batch.old_size {
            return Err(StoreError::Conflict { expected: batch.old_size, actual: size });
        }
        write_batch(&tx, &batch)?;
        tx.commit()?;
        Ok(Some(batch))
    }

    fn save_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        let conn = self.writer.lock().map_err(|_| poisoned())?;
        conn.execute(
            "UPDATE tree SET checkpoint_size = ?1, checkpoint = ?2 WHERE id = 1 AND (checkpoint_size IS NULL OR checkpoint_size < ?1)",
            params![to_i64(size), note],
        )?;
        Ok(())
    }

    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx = ?2")?;
            ids.iter()
                .map(|id| {
                    let bytes: Option<Vec<u8>> =
                        stmt.query_row(params![id.level, to_i64(id.index)], |r| r.get(0)).optional()?;
                    let bytes = bytes.ok_or_else(|| {
                        StoreError::Corrupt(format!("tree node ({}, {}) is missing", id.level, id.index))
                    })?;
                    hash_from(&bytes)
                })
                .collect()
        })
    }

    fn read_level(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT hash FROM nodes WHERE level = ?1 AND idx >= ?2 AND idx < ?3 ORDER BY idx")?;
            let rows = stmt.query_map(params![level, to_i64(start), to_i64(end)], |r| r.get::<_, Vec<u8>>(0))?;
            let hashes = rows.map(|r| hash_from(&r?)).collect::<Result<Vec<_>, _>>()?;
            if hashes.len() as u64 != end - start {
                return Err(StoreError::Corrupt(format!("level {level} has gaps in {start}..{end}")));
            }
            Ok(hashes)
        })
    }

    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; LEAF_LEN]>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT leaf FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")?;
            let rows = stmt.query_map(params![to_i64(start), to_i64(end)], |r| r.get::<_, Vec<u8>>(0))?;
            let leaves = rows.map(|r| array::<LEAF_LEN>(&r?, "a leaf")).collect::<Result<Vec<_>, _>>()?;
            if leaves.len() as u64 != end - start {
                return Err(StoreError::Corrupt(format!("entries {start}..{end} have gaps")));
            }
            Ok(leaves)
        })
    }

    fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT idx, kind, leaf, payload, sig FROM entries WHERE idx = ?1")?
                .query_row(params![to_i64(index)], entry_from_row)
                .optional()?
                .map(stored_entry)
                .transpose()
        })
    }

    fn entries_by_tag(&self, tag: &Tag, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE tag = ?1 AND idx > ?2 ORDER BY idx LIMIT ?3",
            )?;
            let after = after.map(to_i64).unwrap_or(-1);
            let rows =
                stmt.query_map(params![tag.as_bytes().as_slice(), after, to_i64(limit as u64)], entry_from_row)?;
            rows.map(|r| stored_entry(r?)).collect()
        })
    }

    fn grant_changes(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE kind IN (4, 6) AND idx > ?1 ORDER BY idx LIMIT ?2",
            )?;
            let after = after.map(to_i64).unwrap_or(-1);
            let rows = stmt.query_map(params![after, to_i64(limit as u64)], entry_from_row)?;
            rows.map(|r| stored_entry(r?)).collect()
        })
    }

    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )?;
            let rows = stmt.query_map(params![to_i64(start), to_i64(end)], entry_from_row)?;
            rows.map(|r| stored_entry(r?)).collect()
        })
    }

    fn grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT grant_id, owner, tag, idx, digest, revoked_idx, redacted FROM grants WHERE grant_id = ?1",
            )?
            .query_row(params![id.as_bytes().as_slice()], grant_from_row)
            .optional()?
            .map(grant_record)
            .transpose()
        })
    }

    fn member(&self, key: &SigningPublicKey) -> Result<Option<MemberRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT key, box_key, role, name, org, idx FROM members WHERE key = ?1")?
                .query_row(params![key.as_bytes().as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .optional()?
                .map(member_record)
                .transpose()
        })
    }

    fn patient(&self, key: &SigningPublicKey) -> Result<Option<PatientRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT key, box_key, tag, idx FROM patients WHERE key = ?1")?
                .query_row(params![key.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
                .map(patient_record)
                .transpose()
        })
    }

    fn patient_by_tag(&self, tag: &Tag) -> Result<Option<PatientRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT key, box_key, tag, idx FROM patients WHERE tag = ?1")?
                .query_row(params![tag.as_bytes().as_slice()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
                .map(patient_record)
                .transpose()
        })
    }

    fn retired(&self, key: &SigningPublicKey) -> Result<Option<(SigningPublicKey, u64)>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT successor, idx FROM retired_keys WHERE key = ?1")?
                .query_row(params![key.as_bytes().as_slice()], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .optional()?
                .map(|(successor, idx)| Ok((signing_key(&successor)?, to_u64(idx)?)))
                .transpose()
        })
    }

    fn recovery_entries(&self, tag: &Tag, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.read(|c| {
            // The kinds are literals so that the partial index `entries_for_recovery` serves the query.
            let mut stmt = c.prepare_cached(
                "SELECT idx, kind, leaf, payload, sig FROM entries
                 WHERE tag = ?1 AND kind IN (7, 8, 9, 10) ORDER BY idx DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![tag.as_bytes().as_slice(), to_i64(limit as u64)], entry_from_row)?;
            rows.map(|r| stored_entry(r?)).collect()
        })
    }

    fn mailbox_put(&self, m: &MailMessage, max_waiting: u64) -> Result<bool, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let waiting: i64 = tx.query_row(
            "SELECT COUNT(*) FROM mailbox WHERE recipient = ?1 AND expires_at > ?2",
            params![m.recipient.as_bytes().as_slice(), m.sent_at],
            |r| r.get(0),
        )?;
        if to_u64(waiting)? >= max_waiting {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO mailbox (id, recipient, sender, sent_at, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                m.id.as_slice(),
                m.recipient.as_bytes().as_slice(),
                m.sender.as_bytes().as_slice(),
                m.sent_at,
                m.expires_at,
                m.body
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn mailbox_list(
        &self,
        recipient: &SigningPublicKey,
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailMessage>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, recipient, sender, sent_at, expires_at, body FROM mailbox
                 WHERE recipient = ?1 AND expires_at > ?2 ORDER BY sent_at, id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![recipient.as_bytes().as_slice(), now, to_i64(limit as u64)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })?;
            rows.map(|r| mail_message(r?)).collect()
        })
    }

    fn mailbox_delete(&self, recipient: &SigningPublicKey, id: &[u8; 16]) -> Result<bool, StoreError> {
        let conn = self.writer.lock().map_err(|_| poisoned())?;
        let n = conn.execute(
            "DELETE FROM mailbox WHERE recipient = ?1 AND id = ?2",
            params![recipient.as_bytes().as_slice(), id.as_slice()],
        )?;
        Ok(n > 0)
    }

    fn mailbox_purge(&self, now: i64) -> Result<u64, StoreError> {
        let conn = self.writer.lock().map_err(|_| poisoned())?;
        let n = conn.execute("DELETE FROM mailbox WHERE expires_at <= ?1", params![now])?;
        Ok(n as u64)
    }
}

fn head_size(tx: &rusqlite::Transaction<'_>) -> Result<u64, StoreError> {
    let size: i64 = tx.query_row("SELECT size FROM tree WHERE id = 1", [], |r| r.get(0))?;
    to_u64(size)
}

/// Writes a batch's entries, effects, nodes, new head and checkpoint inside `tx`.
fn write_batch(tx: &rusqlite::Transaction<'_>, batch: &Batch) -> Result<(), StoreError> {
    // Replays are the sequencer's to refuse (its replay window); the leaf holds the envelope hash.
    let mut insert_entry =
        tx.prepare_cached("INSERT INTO entries (idx, kind, tag, leaf, payload, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
    for e in &batch.entries {
        insert_entry.execute(params![
            to_i64(e.index),
            e.kind.code(),
            e.tag.as_ref().map(|t| t.as_bytes().as_slice()),
            e.leaf.as_slice(),
            e.payload.as_slice(),
            e.sig.as_slice(),
        ])?;
        apply_effect(tx, e.index, &e.effect)?;
    }
    let mut insert_node = tx.prepare_cached("INSERT INTO nodes (level, idx, hash) VALUES (?1, ?2, ?3)")?;
    for (id, hash) in &batch.nodes {
        insert_node.execute(params![id.level, to_i64(id.index), hash.0.as_slice()])?;
    }
    tx.execute(
        "UPDATE tree SET size = ?1, root = ?2 WHERE id = 1",
        params![to_i64(batch.new_size), batch.new_root.0.as_slice()],
    )?;
    if let Some(note) = &batch.checkpoint {
        save_checkpoint_in(tx, note)?;
    }
    Ok(())
}

fn save_checkpoint_in(tx: &rusqlite::Transaction<'_>, note: &str) -> Result<(), StoreError> {
    let size = checkpoint_size(note)?;
    tx.execute(
        "UPDATE tree SET checkpoint_size = ?1, checkpoint = ?2 WHERE id = 1 AND (checkpoint_size IS NULL OR checkpoint_size < ?1)",
        params![to_i64(size), note],
    )?;
    Ok(())
}

/// The tree size a signed checkpoint note states (its second line).
pub(super) fn checkpoint_size(note: &str) -> Result<u64, StoreError> {
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| StoreError::Corrupt("a checkpoint without a size line".into()))
}

fn apply_effect(tx: &rusqlite::Transaction<'_>, index: u64, effect: &Effect) -> Result<(), StoreError> {
    let idx = to_i64(index);
    match effect {
        Effect::None => {}
        Effect::Patient { key, box_key, tag } => {
            tx.prepare_cached("INSERT INTO patients (key, box_key, tag, idx) VALUES (?1, ?2, ?3, ?4)")?.execute(
                params![key.as_bytes().as_slice(), box_key.as_bytes().as_slice(), tag.as_bytes().as_slice(), idx],
            )?;
        }
        Effect::Member(m) => {
            tx.prepare_cached(
                "INSERT INTO members (key, box_key, role, name, org, idx) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                m.key.as_bytes().as_slice(),
                m.box_key.as_bytes().as_slice(),
                m.role.as_str(),
                m.name,
                m.org,
                idx
            ])?;
        }
        Effect::Grant { grant_id, owner, tag, digest } => {
            tx.prepare_cached("INSERT INTO grants (grant_id, owner, tag, idx, digest) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![
                    grant_id.as_bytes().as_slice(),
                    owner.as_bytes().as_slice(),
                    tag.as_bytes().as_slice(),
                    idx,
                    digest.as_bytes().as_slice()
                ])?;
        }
        Effect::Revocation { grant_id } => {
            tx.prepare_cached("UPDATE grants SET revoked_idx = ?2 WHERE grant_id = ?1 AND revoked_idx IS NULL")?
                .execute(params![grant_id.as_bytes().as_slice(), idx])?;
        }
        Effect::Rotation { old_key, new_key, new_box_key } => {
            let moved =
                tx.prepare_cached("UPDATE patients SET key = ?2, box_key = ?3 WHERE key = ?1")?.execute(params![
                    old_key.as_bytes().as_slice(),
                    new_key.as_bytes().as_slice(),
                    new_box_key.as_bytes().as_slice()
                ])?;
            if moved != 1 {
                return Err(StoreError::Corrupt(format!("rotating {old_key}: it is not a current patient key")));
            }
            tx.prepare_cached("INSERT INTO retired_keys (key, successor, idx) VALUES (?1, ?2, ?3)")?
                .execute(params![old_key.as_bytes().as_slice(), new_key.as_bytes().as_slice(), idx])?;
        }
        Effect::Redaction { tag } => {
            tx.prepare_cached(
                "UPDATE entries SET payload = NULL, sig = NULL WHERE tag = ?1 AND idx < ?2 AND kind IN (?3, ?4)",
            )?
            .execute(params![tag.as_bytes().as_slice(), idx, REDACTABLE_KINDS[0], REDACTABLE_KINDS[1]])?;
            tx.prepare_cached("UPDATE grants SET redacted = 1 WHERE tag = ?1 AND idx < ?2")?
                .execute(params![tag.as_bytes().as_slice(), idx])?;
        }
    }
    Ok(())
}
