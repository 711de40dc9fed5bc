//! Evidence of a split view: two checkpoints signed by the same ledger key that cannot both be true
//! (the same size with two roots, a smaller tree, or a larger one no consistency proof connects). Kept
//! as files beside the wallet so that a patient can hand them to the network's authority, a witness
//! operator or a regulator, who can check both signatures themselves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder name, beside the wallet's vault.
pub const DIR: &str = "evidence";
/// The most evidence files read back; a ledger that keeps lying does not need a thousand proofs.
pub const MAX_RECORDS: usize = 1000;
const MAX_RECORD_BYTES: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitView {
    /// When it was seen (Unix seconds).
    pub found_at: u64,
    pub ledger: String,
    /// The key both checkpoints are signed with (C2SP vkey).
    pub log_key: String,
    pub reason: String,
    /// The checkpoint the wallet had accepted (signed note).
    pub accepted: String,
    /// The one that does not extend it (signed note).
    pub conflicting: String,
}

/// Writes `record` as a new file in `dir` (made if missing), atomically.
pub fn keep(dir: &Path, record: &SplitView) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let digest = custodia_log::hash::leaf_hash(record.conflicting.as_bytes());
    let name = format!("split-view-{}-{}.json", record.found_at, &digest.to_string()[..12]);
    let path = dir.join(name);
    let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    crate::vault::write_atomic(&path, &json).map_err(std::io::Error::other)?;
    Ok(path)
}

/// Every record in `dir`, oldest first (none if the folder does not exist). Unreadable files are
/// skipped: evidence is what it is, whoever else wrote into the folder.
pub fn read_all(dir: &Path) -> std::io::Result<Vec<SplitView>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    for entry in entries.flatten().take(MAX_RECORDS) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") || entry.metadata().map_or(true, |m| m.len() > MAX_RECORD_BYTES)
        {
            continue;
        }
        if let Some(record) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<SplitView>(&b).ok()) {
            records.push(record);
        }
    }
    records.sort_by_key(|r| r.found_at);
    Ok(records)
}
