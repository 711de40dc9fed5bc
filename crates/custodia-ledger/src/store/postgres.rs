//! The shared store: one PostgreSQL database that several ledger front ends append to. Each append locks
//! the tree row (`SELECT ... FOR UPDATE`), so front ends take turns; one that finds the tree grown builds
//! its batch again on top of it before it lets go. A batch is a handful of statements whatever its size: every
//! table is written by one `INSERT ... SELECT FROM unnest(...)` of column arrays. Commits wait for the
//! WAL flush (the server's default `synchronous_commit = on`), so an acknowledged batch is durable.
//!
//! One connection writes; a small pool reads. Statements are prepared once per connection.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use custodia_core::SigningPublicKey;
use custodia_core::entry::{Digest, LEAF_LEN, Tag};
use custodia_core::grant::GrantId;
use custodia_log::{Hash, NodeId};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sqlite::{
    REDACTABLE_KINDS, SCHEMA_VERSION, checkpoint_size, grant_record, mail_message, member_record, patient_record,
    stored_entry,
};
use super::{
    Batch, BuildBatch, Effect, GrantRecord, MailMessage, MemberRecord, NewEntry, PatientRecord, Store, StoreError,
    StoredEntry, TreeState, array, signing_key, to_i64, to_u64,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tree (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    root BYTEA NOT NULL,
    checkpoint_size BIGINT,
    checkpoint TEXT
);
CREATE TABLE IF NOT EXISTS entries (
    idx BIGINT PRIMARY KEY,
    kind BIGINT NOT NULL,
    tag BYTEA,
    leaf BYTEA NOT NULL,
    envelope_hash BYTEA NOT NULL CONSTRAINT entries_envelope_hash_key UNIQUE,
    payload BYTEA,
    sig BYTEA
);
CREATE INDEX IF NOT EXISTS entries_by_tag ON entries (tag, idx) WHERE tag IS NOT NULL;
CREATE TABLE IF NOT EXISTS nodes (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id BYTEA PRIMARY KEY,
    owner BYTEA NOT NULL,
    tag BYTEA NOT NULL,
    idx BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    revoked_idx BIGINT,
    redacted BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS grants_by_tag ON grants (tag);
CREATE TABLE IF NOT EXISTS members (
    key BYTEA PRIMARY KEY,
    box_key BYTEA NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    org TEXT NOT NULL,
    idx BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS patients (
    key BYTEA PRIMARY KEY,
    box_key BYTEA NOT NULL,
    tag BYTEA NOT NULL UNIQUE,
    idx BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS retired_keys (
    key BYTEA PRIMARY KEY,
    successor BYTEA NOT NULL,
    idx BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_tag_kind ON entries (tag, kind, idx) WHERE tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_grant_changes ON entries (idx) WHERE kind IN (4, 6);
CREATE TABLE IF NOT EXISTS mailbox (
    id BYTEA PRIMARY KEY,
    recipient BYTEA NOT NULL,
    sender BYTEA NOT NULL,
    sent_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS mailbox_by_recipient ON mailbox (recipient, sent_at);
CREATE INDEX IF NOT EXISTS mailbox_by_expiry ON mailbox (expires_at);
CREATE TABLE IF NOT EXISTS storage_version (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
";

/// The unique constraint whose violation means a replayed envelope: front ends each keep a replay window
/// and catch up with each other's entries, and this stays as the database's own guarantee.
const ENVELOPE_CONSTRAINT: &str = "entries_envelope_hash_key";

/// Advisory lock classes (the first key of `pg_advisory_xact_lock(int4, int4)`), so front ends starting
/// together create the schema once and agree on each recipient's mailbox count.
const SCHEMA_LOCK: i32 = 0x6375_7301;
const MAILBOX_LOCK: i32 = 0x6375_7302;

const READERS: usize = 4;

const SELECT_TREE_SIZE_FOR_UPDATE: &str = "SELECT size FROM tree WHERE id = 1 FOR UPDATE";
const INSERT_ENTRIES: &str = "INSERT INTO entries (idx, kind, tag, leaf, envelope_hash, payload, sig)
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[])";
const INSERT_PATIENTS: &str = "INSERT INTO patients (key, box_key, tag, idx)
    SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[])";
const INSERT_MEMBERS: &str = "INSERT INTO members (key, box_key, role, name, org, idx)
    SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::bigint[])";
const INSERT_GRANTS: &str = "INSERT INTO grants (grant_id, owner, tag, idx, digest)
    SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bigint[], $5::bytea[])";
/// Each grant takes the first revocation sequenced after it, as if the batch were applied entry by entry.
const REVOKE_GRANTS: &str = "UPDATE grants g SET revoked_idx = r.idx
    FROM (SELECT u.grant_id, min(u.idx) AS idx
          FROM unnest($1::bytea[], $2::bigint[]) AS u (grant_id, idx)
          JOIN grants x ON x.grant_id = u.grant_id AND x.idx < u.idx
          GROUP BY u.grant_id) r
    WHERE g.grant_id = r.grant_id AND g.revoked_idx IS NULL";
/// A redaction covers its tag's entries before it; the latest redaction of a tag covers the most.
const REDACT_ENTRIES: &str = "UPDATE entries e SET payload = NULL, sig = NULL
    FROM (SELECT tag, max(idx) AS idx FROM unnest($1::bytea[], $2::bigint[]) AS u (tag, idx) GROUP BY tag) r
    WHERE e.tag = r.tag AND e.idx < r.idx AND e.kind = ANY($3::bigint[]) AND e.payload IS NOT NULL";
const REDACT_GRANTS: &str = "UPDATE grants g SET redacted = TRUE
    FROM (SELECT tag, max(idx) AS idx FROM unnest($1::bytea[], $2::bigint[]) AS u (tag, idx) GROUP BY tag) r
    WHERE g.tag = r.tag AND g.idx < r.idx AND NOT g.redacted";
const INSERT_NODES: &str =
    "INSERT INTO nodes (level, idx, hash) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])";
const UPDATE_TREE: &str = "UPDATE tree SET size = $1, root = $2 WHERE id = 1";
const SAVE_CHECKPOINT: &str = "UPDATE tree SET checkpoint_size = $1, checkpoint = $2
    WHERE id = 1 AND (checkpoint_size IS NULL OR checkpoint_size < $1)";
const KNOWN_ENVELOPES: &str = "SELECT envelope_hash FROM entries WHERE envelope_hash = ANY($1)";

type Statements = HashMap<&'static str, Statement>;

/// A client and the statements prepared on it.
struct Conn {
    client: Client,
    statements: Statements,
}

impl Conn {
    fn open(config: &Config, tls: Option<&MakeRustlsConnect>) -> Result<Self, StoreError> {
        let client = match tls {
            Some(tls) => config.connect(tls.clone())?,
            None => config.connect(NoTls)?,
        };
        Ok(Self { client, statements: HashMap::new() })
    }

    fn db(&mut self) -> Db<'_, Client> {
        Db { client: &mut self.client, statements: &mut self.statements }
    }
}

/// A client (or a transaction on one) that runs each statement prepared, preparing it on first use:
/// one round trip per statement instead of two.
struct Db<'a, C> {
    client: &'a mut C,
    statements: &'a mut Statements,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Db<'_, C> {
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.execute(&statement, params)
    }

    fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query(&statement, params)
    }

    fn query_opt(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_opt(&statement, params)
    }

    fn query_one(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.client.query_one(&statement, params)
    }

    /// Of `hashes`, those in the log.
    fn known(&mut self, hashes: &[Digest]) -> Result<HashSet<Digest>, StoreError> {
        let wanted: Vec<&[u8]> = hashes.iter().map(|h| h.as_bytes().as_slice()).collect();
        self.query(KNOWN_ENVELOPES, &[&wanted])?
            .iter()
            .map(|row| Ok(Digest::from_bytes(array(row.try_get(0)?, "an envelope hash")?)))
            .collect()
    }
}

pub struct PostgresStore {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    writer: Mutex<Conn>,
    readers: Mutex<Vec<Conn>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration may hold a password, so only where it points is shown.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgresql://` URL or `key=value` pairs), creating the schema
    /// if it is missing.
    ///
    /// `sslmode=require`, `verify-ca` or `verify-full` connects over TLS, verifying the server's certificate
    /// and name against the platform's roots plus `sslrootcert=FILE` (or `--ca-file`); a database beyond
    /// this machine must use one of them.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let database = super::pg_tls::Database::parse(url)?;
        Self::open(&database.config, database.tls)
    }

    /// [`PostgresStore::connect`] from a parsed configuration, without TLS.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        Self::open(config, None)
    }

    fn open(config: &Config, tls: Option<MakeRustlsConnect>) -> Result<Self, StoreError> {
        let mut config = config.clone();
        if config.get_application_name().is_none() {
            config.application_name("custodia-ledger");
        }
        let mut writer = Conn::open(&config, tls.as_ref())?;
        let mut tx = writer.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&SCHEMA_LOCK])?;
        let made: bool = tx.query_one("SELECT to_regclass('tree') IS NOT NULL", &[])?.try_get(0)?;
        let version: Option<i64> =
            match tx.query_one("SELECT to_regclass('storage_version') IS NOT NULL", &[])?.try_get(0)? {
                true => tx
                    .query_opt("SELECT version FROM storage_version WHERE id = 1", &[])?
                    .map(|r| r.try_get(0))
                    .transpose()?,
                false => None,
            };
        // Storage version 1 had no version table.
        let found = version.unwrap_or(1);
        if made && found != SCHEMA_VERSION {
            return Err(StoreError::Version { found, expected: SCHEMA_VERSION });
        }
        tx.batch_execute(SCHEMA)?;
        tx.execute(
            "INSERT INTO storage_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&SCHEMA_VERSION],
        )?;
        tx.execute(
            "INSERT INTO tree (id, size, root) VALUES (1, 0, $1) ON CONFLICT (id) DO NOTHING",
            &[&custodia_log::empty_root().0.as_slice()],
        )?;
        tx.commit()?;
        let readers = (0..READERS).map(|_| Conn::open(&config, tls.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { config, tls, writer: Mutex::new(writer), readers: Mutex::new(readers) })
    }

    /// Runs `f` on a reader connection, opening an extra one if all are busy.
    fn read<T>(&self, f: impl FnOnce(&mut Db<'_, Client>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.readers.lock().map_err(|_| poisoned())?.pop();
        let mut conn = match conn {
            Some(c) if !c.client.is_closed() => c,
            _ => Conn::open(&self.config, self.tls.as_ref())?,
        };
        let out = f(&mut conn.db());
        let mut pool = self.readers.lock().map_err(|_| poisoned())?;
        if pool.len() < READERS && !conn.client.is_closed() {
            pool.push(conn);
        }
        out
    }

    /// Runs `f` on the writer connection, reconnecting first if the server closed it.
    fn write<T>(&self, f: impl FnOnce(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        if conn.client.is_closed() {
            *conn = Conn::open(&self.config, self.tls.as_ref())?;
        }
        f(&mut conn)
    }
}

fn poisoned() -> StoreError {
    StoreError::Database("a database connection lock was poisoned by a panic".into())
}

fn hash_from(bytes: &[u8]) -> Result<Hash, StoreError> {
    Ok(Hash(array(bytes, "a hash")?))
}

/// A row of `idx, kind, leaf, payload, sig`.
fn entry_from_row(r: &Row) -> Result<StoredEntry, StoreError> {
    stored_entry((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))
}

fn is_envelope_conflict(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some(ENVELOPE_CONSTRAINT)
}

/// A batch's entries as column arrays, for one `unnest` insert.
#[derive(Default)]
struct EntryColumns<'a> {
    idx: Vec<i64>,
    kind: Vec<i64>,
    tag: Vec<Option<&'a [u8]>>,
    leaf: Vec<&'a [u8]>,
    envelope_hash: Vec<&'a [u8]>,
    payload: Vec<&'a [u8]>,
    sig: Vec<&'a [u8]>,
}

impl<'a> EntryColumns<'a> {
    fn of(entries: &'a [NewEntry]) -> Self {
        let mut c = Self::default();
        for e in entries {
            c.idx.push(to_i64(e.index));
            c.kind.push(i64::from(e.kind.code()));
            c.tag.push(e.tag.as_ref().map(|t| t.as_bytes().as_slice()));
            c.leaf.push(&e.leaf);
            c.envelope_hash.push(e.envelope_hash.as_bytes().as_slice());
            c.payload.push(&e.payload);
            c.sig.push(&e.sig);
        }
        c
    }

    fn insert(&self, db: &mut Db<'_, impl GenericClient>) -> Result<(), postgres::Error> {
        if !self.idx.is_empty() {
            db.execute(
                INSERT_ENTRIES,
                &[&self.idx, &self.kind, &self.tag, &self.leaf, &self.envelope_hash, &self.payload, &self.sig],
            )?;
        }
        Ok(())
    }
}

/// Old key, new key, new encryption key, index.
type Rotation<'a> = (&'a [u8], &'a [u8], &'a [u8], i64);

/// A batch's effects as column arrays, one set per statement.
#[derive(Default)]
struct EffectColumns<'a> {
    patient_key: Vec<&'a [u8]>,
    patient_box_key: Vec<&'a [u8]>,
    patient_tag: Vec<&'a [u8]>,
    patient_idx: Vec<i64>,
    member_key: Vec<&'a [u8]>,
    member_box_key: Vec<&'a [u8]>,
    member_role: Vec<&'static str>,
    member_name: Vec<&'a str>,
    member_org: Vec<&'a str>,
    member_idx: Vec<i64>,
    grant_id: Vec<&'a [u8]>,
    grant_owner: Vec<&'a [u8]>,
    grant_tag: Vec<&'a [u8]>,
    grant_idx: Vec<i64>,
    grant_digest: Vec<&'a [u8]>,
    revoked_id: Vec<&'a [u8]>,
    revoked_idx: Vec<i64>,
    redacted_tag: Vec<&'a [u8]>,
    redacted_idx: Vec<i64>,
    /// Old key, new key, new encryption key, index: applied one by one, in order.
    rotations: Vec<Rotation<'a>>,
}

impl<'a> EffectColumns<'a> {
    fn of(entries: &'a [NewEntry]) -> Self {
        let mut c = Self::default();
        for e in entries {
            let idx = to_i64(e.index);
            match &e.effect {
                Effect::None => {}
                Effect::Patient { key, box_key, tag } => {
                    c.patient_key.push(key.as_bytes().as_slice());
                    c.patient_box_key.push(box_key.as_bytes().as_slice());
                    c.patient_tag.push(tag.as_bytes().as_slice());
                    c.patient_idx.push(idx);
                }
                Effect::Member(m) => {
                    c.member_key.push(m.key.as_bytes().as_slice());
                    c.member_box_key.push(m.box_key.as_bytes().as_slice());
                    c.member_role.push(m.role.as_str());
                    c.member_name.push(&m.name);
                    c.member_org.push(&m.org);
                    c.member_idx.push(idx);
                }
                Effect::Grant { grant_id, owner, tag, digest } => {
                    c.grant_id.push(grant_id.as_bytes().as_slice());
                    c.grant_owner.push(owner.as_bytes().as_slice());
                    c.grant_tag.push(tag.as_bytes().as_slice());
                    c.grant_idx.push(idx);
                    c.grant_digest.push(digest.as_bytes().as_slice());
                }
                Effect::Revocation { grant_id } => {
                    c.revoked_id.push(grant_id.as_bytes().as_slice());
                    c.revoked_idx.push(idx);
                }
                Effect::Redaction { tag } => {
                    c.redacted_tag.push(tag.as_bytes().as_slice());
                    c.redacted_idx.push(idx);
                }
                Effect::Rotation { old_key, new_key, new_box_key } => {
                    c.rotations.push((
                        old_key.as_bytes().as_slice(),
                        new_key.as_bytes().as_slice(),
                        new_box_key.as_bytes().as_slice(),
                        idx,
                    ));
                }
            }
        }
        c
    }

    /// Applies the effects with the same outcome as applying them entry by entry in index order (what
    /// the SQLite store does): rows are inserted first, then revocations and redactions, which only
    /// touch rows sequenced before them.
    fn apply(&self, db: &mut Db<'_, impl GenericClient>) -> Result<(), postgres::Error> {
        if !self.patient_idx.is_empty() {
            db.execute(
                INSERT_PATIENTS,
                &[&self.patient_key, &self.patient_box_key, &self.patient_tag, &self.patient_idx],
            )?;
        }
        for (old, new, new_box, idx) in &self.rotations {
            db.execute("UPDATE patients SET key = $2, box_key = $3 WHERE key = $1", &[old, new, new_box])?;
            db.execute("INSERT INTO retired_keys (key, successor, idx) VALUES ($1, $2, $3)", &[old, new, idx])?;
        }
        if !self.member_idx.is_empty() {
            db.execute(
                INSERT_MEMBERS,
                &[
                    &self.member_key,
                    &self.member_box_key,
                    &self.member_role,
                    &self.member_name,
                    &self.member_org,
                    &self.member_idx,
                ],
            )?;
        }
        if !self.grant_idx.is_empty() {
            db.execute(
                INSERT_GRANTS,
                &[&self.grant_id, &self.grant_owner, &self.grant_tag, &self.grant_idx, &self.grant_digest],
            )?;
        }
        if !self.revoked_idx.is_empty() {
            db.execute(REVOKE_GRANTS, &[&self.revoked_id, &self.revoked_idx])?;
        }
        if !self.redacted_idx.is_empty() {
            let kinds = REDACTABLE_KINDS.map(i64::from);
            db.execute(REDACT_ENTRIES, &[&self.redacted_tag, &self.redacted_idx, &kinds.as_slice()])?;
            db.execute(REDACT_GRANTS, &[&self.redacted_tag, &self.redacted_idx])?;
        }
        Ok(())
    }
}

fn insert_nodes(db: &mut Db<'_, impl GenericClient>, nodes: &[(NodeId, Hash)]) -> Result<(), postgres::Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    let level: Vec<i64> = nodes.iter().map(|(id, _)| i64::from(id.level)).collect();
    let idx: Vec<i64> = nodes.iter().map(|(id, _)| to_i64(id.index)).collect();
    let hash: Vec<&[u8]> = nodes.iter().map(|(_, h)| h.0.as_slice()).collect();
    db.execute(INSERT_NODES, &[&level, &idx, &hash])?;
    Ok(())
}

/// Why a batch's entries could not be inserted: the first entry, in batch order, whose envelope is
/// already in the log or earlier in the batch (the entry SQLite's one-by-one inserts would stop at).
fn first_duplicate(db: &mut Db<'_, Client>, entries: &[NewEntry]) -> Result<Option<Digest>, StoreError> {
    let hashes: Vec<Digest> = entries.iter().map(|e| e.envelope_hash).collect();
    let known = db.known(&hashes)?;
    let mut seen = HashSet::with_capacity(hashes.len());
    Ok(hashes.into_iter().find(|h| known.contains(h) || !seen.insert(*h)))
}

/// Takes the tree's row lock and appends the batch `build` makes for the size found there (a batch made
/// for another size is refused as a conflict).
fn append_in(conn: &mut Conn, build: &mut BuildBatch<'_>) -> Result<Option<Batch>, StoreError> {
    let mut tx = conn.client.transaction()?;
    let mut db = Db { client: &mut tx, statements: &mut conn.statements };
    let size = to_u64(db.query_one(SELECT_TREE_SIZE_FOR_UPDATE, &[])?.try_get(0)?)?;
    let Some(batch) = build(size)? else {
        return Ok(None);
    };
    if size != batch.old_size {
        return Err(StoreError::Conflict { expected: batch.old_size, actual: size });
    }
    // The column arrays borrow from the batch: building them is a pass over pointers.
    let entries = EntryColumns::of(&batch.entries);
    let effects = EffectColumns::of(&batch.entries);
    if let Err(e) = entries.insert(&mut db) {
        // The transaction is aborted: roll it back, then find which envelope it was.
        drop(tx);
        if is_envelope_conflict(&e)
            && let Some(hash) = first_duplicate(&mut conn.db(), &batch.entries)?
        {
            return Err(StoreError::Duplicate(hash));
        }
        return Err(e.into());
    }
    effects.apply(&mut db)?;
    insert_nodes(&mut db, &batch.nodes)?;
    db.execute(UPDATE_TREE, &[&to_i64(batch.new_size), &batch.new_root.0.as_slice()])?;
    if let Some(note) = &batch.checkpoint {
        db.execute(SAVE_CHECKPOINT, &[&to_i64(checkpoint_size(note)?), note])?;
    }
    tx.commit()?;
    drop(entries);
    drop(effects);
    Ok(Some(batch))
}

impl Store for PostgresStore {
    fn tree(&self) -> Result<TreeState, StoreError> {
        self.read(|db| {
            let row = db.query_one("SELECT size, root, checkpoint FROM tree WHERE id = 1", &[])?;
            Ok(TreeState {
                size: to_u64(row.try_get(0)?)?,
                root: hash_from(row.try_get(1)?)?,
                checkpoint: row.try_get(2)?,
            })
        })
    }

    fn append(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut given = Some(batch.clone());
        self.write(|conn| append_in(conn, &mut |_| Ok(given.take()))).map(drop)
    }

    fn append_at_head(&self, build: &mut BuildBatch<'_>) -> Result<Option<Batch>, StoreError> {
        self.write(|conn| append_in(conn, build))
    }

    fn save_checkpoint(&self, size: u64, note: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.db().execute(SAVE_CHECKPOINT, &[&to_i64(size), &note])?;
            Ok(())
        })
    }

    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let level: Vec<i64> = ids.iter().map(|id| i64::from(id.level)).collect();
        let idx: Vec<i64> = ids.iter().map(|id| to_i64(id.index)).collect();
        self.read(|db| {
            let rows = db.query(
                "SELECT n.hash FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS q (level, idx, ord)
                 LEFT JOIN nodes n ON n.level = q.level AND n.idx = q.idx ORDER BY q.ord",
                &[&level, &idx],
            )?;
            if rows.len() != ids.len() {
                return Err(StoreError::Corrupt(format!("asked for {} tree nodes, got {}", ids.len(), rows.len())));
            }
            ids.iter()
                .zip(&rows)
                .map(|(id, row)| {
                    let bytes: Option<&[u8]> = row.try_get(0)?;
                    let bytes = bytes.ok_or_else(|| {
                        StoreError::Corrupt(format!("tree node ({}, {}) is missing", id.level, id.index))
                    })?;
                    hash_from(bytes)
                })
                .collect()
        })
    }

    fn read_level(&self, level: u8, start: u64, end: u64) -> Result<Vec<Hash>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT hash FROM nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                &[&i64::from(level), &to_i64(start), &to_i64(end)],
            )?;
            if rows.len() as u64 != end.saturating_sub(start) {
                return Err(StoreError::Corrupt(format!("level {level} has gaps in {start}..{end}")));
            }
            rows.iter().map(|row| hash_from(row.try_get(0)?)).collect()
        })
    }

    fn read_leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; LEAF_LEN]>, StoreError> {
        self.read(|db| {
            let rows = db.query(
                "SELECT leaf FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&to_i64(start), &to_i64(end)],
            )?;
            if rows.len() as u64 != end.saturating_sub(start) {
                return Err(StoreError::Corrupt(format!("entries {start}..{end} have gaps")));
            }
            rows.iter().map(|row| array::<LEAF_LEN>(row.try_get(0)?, "a leaf")).collect()
        })
    }

    fn entry(&self, index: u64) -> Result<Option<StoredEntry>, StoreError> {
        self.read(|db| {
            db.query_opt("SELECT idx, kind, leaf, payload, sig FROM entries WHERE idx = $1", &[&to_i64(index)])?
                .map(|r| entry_from_row(&r))
                .transpose()
        })
    }

    fn entries_by_tag(&self, tag: &Tag, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let after = after.map(to_i64).unwrap_or(-1);
        self.read(|db| {
            db.query(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE tag = $1 AND idx > $2 ORDER BY idx LIMIT $3",
                &[&tag.as_bytes().as_slice(), &after, &to_i64(limit as u64)],
            )?
            .iter()
            .map(entry_from_row)
            .collect()
        })
    }

    fn grant_changes(&self, after: Option<u64>, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let after = after.map(to_i64).unwrap_or(-1);
        self.read(|db| {
            db.query(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE kind IN (4, 6) AND idx > $1 ORDER BY idx LIMIT $2",
                &[&after, &to_i64(limit as u64)],
            )?
            .iter()
            .map(entry_from_row)
            .collect()
        })
    }

    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.read(|db| {
            db.query(
                "SELECT idx, kind, leaf, payload, sig FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&to_i64(start), &to_i64(end)],
            )?
            .iter()
            .map(entry_from_row)
            .collect()
        })
    }

    fn grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        self.read(|db| {
            db.query_opt(
                "SELECT grant_id, owner, tag, idx, digest, revoked_idx, redacted FROM grants WHERE grant_id = $1",
                &[&id.as_bytes().as_slice()],
            )?
            .map(|r| {
                let redacted: bool = r.try_get(6)?;
                grant_record((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    i64::from(redacted),
                ))
            })
            .transpose()
        })
    }

    fn member(&self, key: &SigningPublicKey) -> Result<Option<MemberRecord>, StoreError> {
        self.read(|db| {
            db.query_opt(
                "SELECT key, box_key, role, name, org, idx FROM members WHERE key = $1",
                &[&key.as_bytes().as_slice()],
            )?
            .map(|r| {
                member_record((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                ))
            })
            .transpose()
        })
    }

    fn patient(&self, key: &SigningPublicKey) -> Result<Option<PatientRecord>, StoreError> {
        self.read(|db| {
            db.query_opt("SELECT key, box_key, tag, idx FROM patients WHERE key = $1", &[&key.as_bytes().as_slice()])?
                .map(|r| patient_record((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .transpose()
        })
    }

    fn patient_by_tag(&self, tag: &Tag) -> Result<Option<PatientRecord>, StoreError> {
        self.read(|db| {
            db.query_opt("SELECT key, box_key, tag, idx FROM patients WHERE tag = $1", &[&tag.as_bytes().as_slice()])?
                .map(|r| patient_record((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                .transpose()
        })
    }

    fn retired(&self, key: &SigningPublicKey) -> Result<Option<(SigningPublicKey, u64)>, StoreError> {
        self.read(|db| {
            db.query_opt("SELECT successor, idx FROM retired_keys WHERE key = $1", &[&key.as_bytes().as_slice()])?
                .map(|r| {
                    let successor: Vec<u8> = r.try_get(0)?;
                    Ok((signing_key(&successor)?, to_u64(r.try_get(1)?)?))
                })
                .transpose()
        })
    }

    fn recovery_entries(&self, tag: &Tag, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        let kinds: Vec<i64> = super::RECOVERY_KINDS.iter().map(|k| i64::from(k.code())).collect();
        self.read(|db| {
            db.query(
                "SELECT idx, kind, leaf, payload, sig FROM entries
                 WHERE tag = $1 AND kind = ANY($2) ORDER BY idx DESC LIMIT $3",
                &[&tag.as_bytes().as_slice(), &kinds, &to_i64(limit as u64)],
            )?
            .iter()
            .map(entry_from_row)
            .collect()
        })
    }

    fn mailbox_put(&self, m: &MailMessage, max_waiting: u64) -> Result<bool, StoreError> {
        let recipient = m.recipient.as_bytes().as_slice();
        // Front ends serialise on the recipient, so two concurrent puts cannot both pass the cap.
        let lock_key = i32::from_be_bytes([recipient[0], recipient[1], recipient[2], recipient[3]]);
        self.write(|conn| {
            let mut tx = conn.client.transaction()?;
            let mut db = Db { client: &mut tx, statements: &mut conn.statements };
            db.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&MAILBOX_LOCK, &lock_key])?;
            let stored = db.execute(
                "INSERT INTO mailbox (id, recipient, sender, sent_at, expires_at, body)
                 SELECT $1::bytea, $2::bytea, $3::bytea, $4::bigint, $5::bigint, $6::bytea
                 WHERE (SELECT COUNT(*) FROM mailbox WHERE recipient = $2 AND expires_at > $4) < $7",
                &[
                    &m.id.as_slice(),
                    &recipient,
                    &m.sender.as_bytes().as_slice(),
                    &m.sent_at,
                    &m.expires_at,
                    &m.body,
                    &to_i64(max_waiting),
                ],
            )?;
            tx.commit()?;
            Ok(stored > 0)
        })
    }

    fn mailbox_list(
        &self,
        recipient: &SigningPublicKey,
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailMessage>, StoreError> {
        self.read(|db| {
            db.query(
                "SELECT id, recipient, sender, sent_at, expires_at, body FROM mailbox
                 WHERE recipient = $1 AND expires_at > $2 ORDER BY sent_at, id LIMIT $3",
                &[&recipient.as_bytes().as_slice(), &now, &to_i64(limit as u64)],
            )?
            .iter()
            .map(|r| {
                mail_message((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?))
            })
            .collect()
        })
    }

    fn mailbox_delete(&self, recipient: &SigningPublicKey, id: &[u8; 16]) -> Result<bool, StoreError> {
        self.write(|conn| {
            let n = conn.db().execute(
                "DELETE FROM mailbox WHERE recipient = $1 AND id = $2",
                &[&recipient.as_bytes().as_slice(), &id.as_slice()],
            )?;
            Ok(n > 0)
        })
    }

    fn mailbox_purge(&self, now: i64) -> Result<u64, StoreError> {
        self.write(|conn| Ok(conn.db().execute("DELETE FROM mailbox WHERE expires_at <= $1", &[&now])?))
    }
}

/// A database of its own on a PostgreSQL server, for one test or benchmark run: created empty, dropped
/// (with any connections still open to it) when this is. Not for production use.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin: Config,
    name: String,
    /// The database's configuration (the server's, with this database's name).
    pub config: Config,
    /// The database as `custodia ledger serve --db` takes it: `postgres://user@host:port/name`.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `prefix_<random>` on the server `server` names (a URL or `key=value` pairs, as
    /// `CUSTODIA_TEST_POSTGRES` holds), which must be reached over TCP.
    pub fn create(server: &str, prefix: &str) -> Result<Self, StoreError> {
        let admin: Config = server.parse()?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| StoreError::Database(format!("no randomness: {e}")))?;
        let name = format!("{prefix}_{}", data_encoding::HEXLOWER.encode(&random));
        admin.connect(NoTls)?.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let host = match admin.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            _ => return Err(StoreError::Database(format!("{server:?} names no TCP host"))),
        };
        let port = admin.get_ports().first().copied().unwrap_or(5432);
        let user = admin.get_user().unwrap_or("postgres");
        let mut config = admin.clone();
        config.dbname(&name);
        let url = format!("postgres://{user}@{host}:{port}/{name}");
        Ok(Self { admin, name, config, url })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let dropped = self.admin.connect(NoTls).and_then(|mut client| {
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the scratch database {}: {e}", self.name);
        }
    }
}
