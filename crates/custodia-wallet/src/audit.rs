//! A full audit of a ledger's public log through its C2SP tlog-tiles: every leaf, every stored hash,
//! the root.
//!
//! The auditor fetches the signed checkpoint, then every entry bundle and every tile the checkpoint's
//! tree needs (c2sp.org/tlog-tiles, tile height 8): it recomputes each leaf hash from the entry bundles,
//! checks the level-0 tiles hold exactly those hashes, recomputes every higher tile from them, and folds
//! the leaves into the root, which must be the checkpoint's. It learns counts, kinds and times of entries
//! and nothing else: leaves carry no tags, keys or bodies.

use std::collections::BTreeMap;

use custodia_core::entry::{LEAF_LEN, Leaf};
use custodia_log::note::NoteVerifier;
use custodia_log::tiles::{TileRequest, format_path};
use custodia_log::{Frontier, Hash, leaf_hash};

use crate::ledger::{LedgerClient, LedgerError, verify};

pub use custodia_log::tiles::TILE_WIDTH;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
const HASH_LEN: usize = 32;
/// An entry in a bundle is a big-endian u16 length and the 42 leaf bytes.
const BUNDLE_ENTRY_LEN: usize = 2 + LEAF_LEN;

/// What an audit saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Hash tiles and entry bundles fetched.
    pub tiles_fetched: u64,
    /// Entries by kind (`grant`, `access`, ...).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Under a witness policy: the witnesses whose cosignatures on the audited checkpoint verified.
    pub cosigned_by: Vec<String>,
}

/// The path of tile `index` at `level` holding `width` hashes: `/tile/<L>/<N>` or `/tile/<L>/<N>.p/<W>`.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    path(Some(level), index, width)
}

/// The path of the entry bundle `index` holding `width` entries.
pub fn entries_path(index: u64, width: u64) -> String {
    path(None, index, width)
}

fn path(level: Option<u8>, index: u64, width: u64) -> String {
    let width = (width < TILE_WIDTH).then_some(width);
    format!("/tile/{}", format_path(&TileRequest { level, index, width }))
}

/// Fetches a tile, falling back to the full tile when a partial one is gone (a server may drop a partial
/// tile once the full one exists), and returns exactly `width * item` bytes.
fn fetch(
    client: &LedgerClient,
    path: impl Fn(u64) -> String,
    width: u64,
    item: usize,
    fetched: &mut u64,
) -> Result<Vec<u8>, LedgerError> {
    let limit = TILE_WIDTH as usize * item;
    *fetched += 1;
    let mut bytes = match client.tile(&path(width), limit) {
        Err(e) if width < TILE_WIDTH && is_not_found(&e) => {
            *fetched += 1;
            client.tile(&path(TILE_WIDTH), limit)?
        }
        other => other?,
    };
    let want = width as usize * item;
    if bytes.len() < want {
        return Err(LedgerError::Audit(format!(
            "{} has {} bytes, fewer than the {want} it must hold",
            path(width),
            bytes.len()
        )));
    }
    if bytes.len() > want && width == TILE_WIDTH {
        return Err(LedgerError::Audit(format!("{} has {} bytes, more than a full tile", path(width), bytes.len())));
    }
    bytes.truncate(want);
    Ok(bytes)
}

fn is_not_found(e: &LedgerError) -> bool {
    matches!(e, LedgerError::Status { status: 404, .. } | LedgerError::Problem { status: 404, .. })
}

/// Audits the ledger behind `client` against its checkpoint opened with `verifier`, and accepted under
/// `policy` (the witnesses' quorum) when one is given. `progress(done, total)` is called after each
/// entry bundle.
pub fn audit(
    client: &LedgerClient,
    verifier: &NoteVerifier,
    policy: Option<&custodia_log::policy::Policy>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<AuditReport, LedgerError> {
    let note = client.checkpoint()?;
    let checkpoint = verify::open_checkpoint(&note, verifier)?;
    let cosigned_by = match policy {
        Some(policy) => policy
            .accept(&note)
            .map_err(|e| LedgerError::Unwitnessed { url: client.url().to_owned(), reason: e.to_string() })?
            .cosigned_by
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
        None => Vec::new(),
    };
    let size = checkpoint.size;
    let mut fetched = 0u64;
    let mut kinds = BTreeMap::new();
    let mut frontier = Frontier::empty();
    // Hashes of tree levels 8, 16, ...: what the tiles of level 1, 2, ... must hold.
    let mut upper: Vec<Vec<Hash>> = Vec::new();

    let bundles = size.div_ceil(TILE_WIDTH);
    for n in 0..bundles {
        let width = (size - n * TILE_WIDTH).min(TILE_WIDTH);
        let bundle = fetch(client, |w| entries_path(n, w), width, BUNDLE_ENTRY_LEN, &mut fetched)?;
        let tile = fetch(client, |w| tile_path(0, n, w), width, HASH_LEN, &mut fetched)?;
        for (i, (entry, stored)) in bundle.chunks_exact(BUNDLE_ENTRY_LEN).zip(tile.chunks_exact(HASH_LEN)).enumerate() {
            let index = n * TILE_WIDTH + i as u64;
            let len = u16::from_be_bytes([entry[0], entry[1]]);
            if usize::from(len) != LEAF_LEN {
                return Err(LedgerError::Audit(format!(
                    "entry {index} in {} is {len} bytes long, not a {LEAF_LEN}-byte leaf",
                    entries_path(n, width)
                )));
            }
            let leaf_bytes = &entry[2..];
            let leaf =
                Leaf::parse(leaf_bytes).map_err(|e| LedgerError::Audit(format!("entry {index} is not a leaf: {e}")))?;
            *kinds.entry(leaf.kind.as_str()).or_insert(0) += 1;
            let hash = leaf_hash(leaf_bytes);
            if hash.as_bytes()[..] != stored[..] {
                return Err(LedgerError::Audit(format!(
                    "the level-0 tile {} holds {} for entry {index}, but the entry's leaf hashes to {hash}",
                    tile_path(0, n, width),
                    hex(stored)
                )));
            }
            for (id, node) in frontier.push(hash) {
                if id.level > 0 && id.level % TILE_HEIGHT == 0 {
                    let tile_level = usize::from(id.level / TILE_HEIGHT);
                    if upper.len() < tile_level {
                        upper.resize_with(tile_level, Vec::new);
                    }
                    upper[tile_level - 1].push(node);
                }
            }
        }
        progress((n * TILE_WIDTH + width).min(size), size);
    }

    let root = frontier.root();
    if root != checkpoint.root {
        return Err(LedgerError::Audit(format!(
            "the root of the {size} leaves is {}, but the checkpoint says {}",
            root.to_base64(),
            checkpoint.root.to_base64()
        )));
    }

    // Higher tiles: tile level L holds the hashes of tree level 8L, one per 256^L leaves.
    for (i, hashes) in upper.iter().enumerate() {
        let level = u8::try_from(i + 1).unwrap_or(u8::MAX);
        let count = hashes.len() as u64;
        for n in 0..count.div_ceil(TILE_WIDTH) {
            let width = (count - n * TILE_WIDTH).min(TILE_WIDTH);
            let tile = fetch(client, |w| tile_path(level, n, w), width, HASH_LEN, &mut fetched)?;
            let start = (n * TILE_WIDTH) as usize;
            for (j, stored) in tile.chunks_exact(HASH_LEN).enumerate() {
                let expected = hashes[start + j];
                if expected.as_bytes()[..] != stored[..] {
                    return Err(LedgerError::Audit(format!(
                        "the tile {} holds {} at position {j}, but the leaves below it hash to {expected}",
                        tile_path(level, n, width),
                        hex(stored)
                    )));
                }
            }
        }
    }

    Ok(AuditReport { origin: checkpoint.origin, size, root, tiles_fetched: fetched, kinds, cosigned_by })
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_follow_c2sp() {
        assert_eq!(tile_path(0, 0, 256), "/tile/0/000");
        assert_eq!(tile_path(0, 1_234_067, 256), "/tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 1000, 17), "/tile/1/x001/000.p/17");
        assert_eq!(entries_path(5, 3), "/tile/entries/005.p/3");
        assert_eq!(entries_path(999, 256), "/tile/entries/999");
    }
}
