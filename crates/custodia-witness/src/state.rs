//! The witness's folder: `witness.key` (its cosigning key, readable by the owner only) and
//! `witness.sqlite`, the logs it witnesses and, for each, the latest checkpoint it cosigned.
//!
//! A log's row is changed only by a compare-and-swap on the (size, root) it was read with, in one
//! statement committed with `synchronous = FULL` before the cosignature leaves: two requests racing
//! from the same size cannot both win, and a cosigned size survives kill -9.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use custodia_log::cosignature::{CosignatureVerifier, Cosigner};
use custodia_log::note::NoteVerifier;
use custodia_log::{Hash, empty_root};
use rusqlite::{Connection, OptionalExtension, params};

const KEY_FILE: &str = "witness.key";
const DB_FILE: &str = "witness.sqlite";
/// Bumped when the layout changes; a database in another version is refused.
const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} already holds a witness")]
    Exists(PathBuf),
    #[error("{path} is not usable: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("the witness database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("bad key: {0}")]
    BadKey(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_owned(), source }
}

/// What the witness last cosigned for one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogState {
    pub origin: String,
    pub keys: Vec<NoteVerifier>,
    pub size: u64,
    pub root: Hash,
    /// The checkpoint with the log's signature and this witness's cosignature (none before the first).
    pub note: Option<String>,
}

/// An opened witness folder.
#[derive(Debug)]
pub struct WitnessDir {
    pub path: PathBuf,
    cosigner: Cosigner,
    /// Readers, pooled.
    db: Mutex<Vec<Connection>>,
    /// The one connection that writes: writers queue on this lock rather than in SQLite's busy handler,
    /// which sleeps in steps of milliseconds.
    writer: Mutex<Connection>,
}

fn open_connection(path: &Path) -> Result<Connection, StateError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn random_seed() -> zeroize::Zeroizing<[u8; 32]> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    // Without OS randomness no key can be made safely; there is nothing sensible to continue with.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut seed[..]).expect("the operating system's random number generator failed");
    seed
}

/// Sizes are u64 in the protocol; SQLite integers are i64. The bits are stored as they are, and only
/// compared for equality in SQL.
fn to_sql(size: u64) -> i64 {
    size as i64
}

fn row_to_state(
    origin: String,
    keys: String,
    size: i64,
    root: Vec<u8>,
    note: Option<String>,
) -> Result<LogState, String> {
    let keys = keys.lines().map(NoteVerifier::from_vkey).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let root: [u8; 32] = root.try_into().map_err(|_| "a stored root is not 32 bytes".to_owned())?;
    Ok(LogState { origin, keys, size: size as u64, root: Hash(root), note })
}

impl WitnessDir {
    /// Makes a new witness folder with a fresh cosigning key named `name` (by default
    /// `custodia-witness/<the key's first 8 hex digits>`).
    pub fn init(path: &Path, name: Option<&str>) -> Result<Self, StateError> {
        fs::create_dir_all(path).map_err(io(path))?;
        let key_path = path.join(KEY_FILE);
        if key_path.exists() {
            return Err(StateError::Exists(path.to_owned()));
        }
        let seed = random_seed();
        let name = match name {
            Some(name) => name.to_owned(),
            None => {
                let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
                format!("custodia-witness/{}", data_encoding::HEXLOWER.encode(&public.as_bytes()[..4]))
            }
        };
        let cosigner = Cosigner::new(&name, &seed).map_err(|e| StateError::BadKey(e.to_string()))?;
        custodia_net::write_private(&key_path, cosigner.to_skey().as_bytes()).map_err(io(&key_path))?;
        Self::open(path)
    }

    pub fn open(path: &Path) -> Result<Self, StateError> {
        let key_path = path.join(KEY_FILE);
        let text = zeroize::Zeroizing::new(fs::read_to_string(&key_path).map_err(io(&key_path))?);
        let cosigner = Cosigner::from_skey(text.trim())
            .map_err(|e| StateError::Damaged { path: key_path.clone(), reason: e.to_string() })?;
        let db_path = path.join(DB_FILE);
        let mut conn = open_connection(&db_path)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match version {
            0 => {
                tx.execute_batch(
                    "CREATE TABLE logs (
                        origin TEXT PRIMARY KEY,
                        keys TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        root BLOB NOT NULL,
                        note TEXT
                    ) STRICT;",
                )?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            }
            SCHEMA_VERSION => {}
            other => {
                return Err(StateError::Damaged {
                    path: db_path,
                    reason: format!("storage version {other}; this witness reads version {SCHEMA_VERSION}"),
                });
            }
        }
        tx.commit()?;
        let writer = Mutex::new(open_connection(&db_path)?);
        Ok(Self { path: path.to_owned(), cosigner, db: Mutex::new(vec![conn]), writer })
    }

    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        self.cosigner.verifier()
    }

    /// Runs `f` on a pooled connection (a new one if all are in use).
    fn with_db<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StateError>) -> Result<T, StateError> {
        let taken = self.db.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match taken {
            Some(conn) => conn,
            None => open_connection(&self.path.join(DB_FILE))?,
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.db.lock() {
            pool.push(conn);
        }
        out
    }

    fn with_writer<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StateError>) -> Result<T, StateError> {
        let conn = self.writer.lock().map_err(|_| StateError::Damaged {
            path: self.path.join(DB_FILE),
            reason: "a write failed midway in another thread".into(),
        })?;
        f(&conn)
    }

    /// Starts witnessing the log `origin` signed by `key`, or adds `key` to a log already witnessed.
    /// Returns whether anything changed.
    pub fn add_log(&self, origin: &str, key: &NoteVerifier) -> Result<bool, StateError> {
        self.with_writer(|conn| {
            let keys: Option<String> =
                conn.query_row("SELECT keys FROM logs WHERE origin = ?1", [origin], |r| r.get(0)).optional()?;
            let vkey = key.to_vkey();
            match keys {
                Some(keys) if keys.lines().any(|k| k == vkey) => Ok(false),
                Some(keys) => {
                    conn.execute(
                        "UPDATE logs SET keys = ?2 WHERE origin = ?1",
                        params![origin, format!("{keys}\n{vkey}")],
                    )?;
                    Ok(true)
                }
                None => {
                    conn.execute(
                        "INSERT INTO logs (origin, keys, size, root) VALUES (?1, ?2, 0, ?3)",
                        params![origin, vkey, empty_root().as_bytes().as_slice()],
                    )?;
                    Ok(true)
                }
            }
        })
    }

    pub fn log(&self, origin: &str) -> Result<Option<LogState>, StateError> {
        self.with_db(|conn| {
            let row = conn
                .query_row("SELECT origin, keys, size, root, note FROM logs WHERE origin = ?1", [origin], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            row.map(|(o, k, s, r, n)| {
                row_to_state(o, k, s, r, n)
                    .map_err(|reason| StateError::Damaged { path: self.path.join(DB_FILE), reason })
            })
            .transpose()
        })
    }

    pub fn logs(&self) -> Result<Vec<LogState>, StateError> {
        self.with_db(|conn| {
            let mut statement = conn.prepare("SELECT origin, keys, size, root, note FROM logs ORDER BY origin")?;
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(o, k, s, r, n)| {
                    row_to_state(o, k, s, r, n)
                        .map_err(|reason| StateError::Damaged { path: self.path.join(DB_FILE), reason })
                })
                .collect()
        })
    }

    /// Moves `origin` from (`old_size`, `old_root`) to (`size`, `root`) with `note`, only if it is
    /// still at the former. Returns false when another request moved it first.
    pub fn advance(
        &self,
        origin: &str,
        (old_size, old_root): (u64, &Hash),
        (size, root): (u64, &Hash),
        note: &str,
    ) -> Result<bool, StateError> {
        self.with_writer(|conn| {
            let changed = conn.execute(
                "UPDATE logs SET size = ?4, root = ?5, note = ?6 WHERE origin = ?1 AND size = ?2 AND root = ?3",
                params![
                    origin,
                    to_sql(old_size),
                    old_root.as_bytes().as_slice(),
                    to_sql(size),
                    root.as_bytes().as_slice(),
                    note
                ],
            )?;
            Ok(changed == 1)
        })
    }
}
