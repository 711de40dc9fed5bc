//! The shape of the tree: node ids, the frontier that appends leaves, and how proofs read stored nodes.
//!
//! Only complete subtrees are ever stored. A complete subtree never changes once its last leaf is in,
//! so a store written by [`Frontier::push`] is append-only; the incomplete right edge of any tree is
//! recomputed from the complete subtrees it consists of (at most one per bit of the size).

use crate::hash::{Hash, empty_root, node_hash};
use crate::proof::ProofError;

/// A node of the tree: level 0 holds leaf hashes; node (level, index) covers leaves
/// [index << level, (index + 1) << level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }
}

/// Storage of complete-subtree hashes, read in batches (one call per proof, so a database does one
/// round trip).
pub trait HashReader {
    type Error;
    /// Returns the hash of each id, in order. Every id asked for is a complete subtree of a tree the
    /// caller said exists; returning fewer or more hashes than ids is reported as
    /// [`ProofError::ReaderMismatch`].
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("a tree of this size has {expected} frontier hashes, not {found}")]
    WrongHashCount { expected: usize, found: usize },
}

/// The right edge of a tree: the roots of its complete subtrees, one per set bit of `size`, largest
/// first. Enough to append and to compute the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn empty() -> Self {
        Self { size: 0, hashes: Vec::with_capacity(64) }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash; [`empty_root`] for the empty tree.
    pub fn root(&self) -> Hash {
        fold(&self.hashes).unwrap_or_else(empty_root)
    }

    /// Appends a leaf hash; returns every node that became complete: (0, n) first, then each completed
    /// parent upwards. The caller stores exactly these.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut out = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.push_into(leaf, &mut out);
        out
    }

    /// [`Frontier::push`] into a caller's buffer (appended to, not cleared), so a batch of appends
    /// allocates nothing.
    pub fn push_into(&mut self, leaf: Hash, out: &mut Vec<(NodeId, Hash)>) {
        let n = self.size;
        // At 20,000 leaves a second this is 29 million years away; no input can make a bigger tree
        // (from_hashes takes a u64 size, and a tree of u64::MAX leaves is already the largest).
        #[allow(clippy::expect_used)]
        let next = n.checked_add(1).expect("a tree cannot grow past u64::MAX leaves");
        let mut hash = leaf;
        out.push((NodeId::new(0, n), hash));
        // Each trailing one bit of n is a complete subtree on the frontier that the new leaf completes.
        for level in 1..=n.trailing_ones() {
            // The frontier holds one hash per set bit of n, so a trailing one bit always has one.
            #[allow(clippy::expect_used)]
            let left = self.hashes.pop().expect("one frontier hash per set bit of the size");
            hash = node_hash(&left, &hash);
            out.push((NodeId::new(level as u8, n >> level), hash));
        }
        self.hashes.push(hash);
        self.size = next;
    }

    /// The frontier's nodes with their ids: the complete subtrees a proof for a newer leaf may need.
    pub fn nodes(&self) -> Vec<(NodeId, Hash)> {
        Self::node_ids(self.size).into_iter().zip(self.hashes.iter().copied()).collect()
    }

    /// The stored nodes needed to rebuild the frontier of a tree of `size` leaves.
    pub fn node_ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::with_capacity(size.count_ones() as usize);
        range_ids(0, size, &mut ids);
        ids
    }

    /// Rebuilds a frontier from the hashes of [`Frontier::node_ids`]`(size)`, in that order.
    pub fn from_hashes(size: u64, hashes: &[Hash]) -> Result<Self, TreeError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(TreeError::WrongHashCount { expected, found: hashes.len() });
        }
        let mut all = Vec::with_capacity(64);
        all.extend_from_slice(hashes);
        Ok(Self { size, hashes: all })
    }

    /// Reads the frontier of a tree of `size` leaves from storage, in one call.
    pub fn load<R: HashReader>(size: u64, reader: &R) -> Result<Self, ProofError<R::Error>> {
        let ids = Self::node_ids(size);
        let hashes = read(reader, &ids)?;
        Ok(Self { size, hashes })
    }
}

impl Default for Frontier {
    fn default() -> Self {
        Self::empty()
    }
}

/// Root hash of the tree of `size` leaves, from stored nodes.
pub fn root_hash<R: HashReader>(size: u64, reader: &R) -> Result<Hash, ProofError<R::Error>> {
    Ok(Frontier::load(size, reader)?.root())
}

/// Appends the complete subtrees that make up leaves [lo, hi), largest first: the RFC 9162
/// decomposition of a subtree that may not be complete (Go's sumdb/tlog `subTreeIndex`).
///
/// Callers pass ranges of the RFC recursion, where `lo` is a multiple of the largest power of two
/// not above `hi - lo`, so every piece is aligned.
pub(crate) fn range_ids(mut lo: u64, hi: u64, ids: &mut Vec<NodeId>) {
    while lo < hi {
        let level = (hi - lo).ilog2();
        ids.push(NodeId::new(level as u8, lo >> level));
        lo += 1 << level;
    }
}

/// The hash of the range whose [`range_ids`] were `count` hashes at the front of `hashes`; returns it
/// and the rest (Go's sumdb/tlog `subTreeHash`).
pub(crate) fn range_hash(count: usize, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let (mine, rest) = hashes.split_at(count);
    // Ranges are never empty, so count >= 1 and fold finds a hash.
    (fold(mine).unwrap_or_else(empty_root), rest)
}

/// Folds complete-subtree roots, largest first, into the hash of the range they cover.
fn fold(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, left| node_hash(left, &acc)))
}

/// Reads `ids` in one call and checks the reader answered each.
pub(crate) fn read<R: HashReader>(reader: &R, ids: &[NodeId]) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = reader.read_hashes(ids).map_err(ProofError::Read)?;
    if hashes.len() != ids.len() {
        return Err(ProofError::ReaderMismatch { requested: ids.len(), returned: hashes.len() });
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn push_reports_completed_nodes() {
        let mut f = Frontier::empty();
        let ids: Vec<Vec<NodeId>> =
            (0..4u8).map(|i| f.push(leaf_hash(&[i])).into_iter().map(|(id, _)| id).collect()).collect();
        assert_eq!(ids[0], [NodeId::new(0, 0)]);
        assert_eq!(ids[1], [NodeId::new(0, 1), NodeId::new(1, 0)]);
        assert_eq!(ids[2], [NodeId::new(0, 2)]);
        assert_eq!(ids[3], [NodeId::new(0, 3), NodeId::new(1, 1), NodeId::new(2, 0)]);
        assert_eq!(f.nodes(), [(NodeId::new(2, 0), f.root())]);
        f.push(leaf_hash(b"e"));
        assert_eq!(f.nodes().iter().map(|(id, _)| *id).collect::<Vec<_>>(), Frontier::node_ids(5));
        assert_eq!(Frontier::node_ids(6), [NodeId::new(2, 0), NodeId::new(1, 2)]);
        assert_eq!(Frontier::node_ids(u64::MAX).len(), 64);
    }

    #[test]
    fn from_hashes_checks_the_count() {
        assert_eq!(Frontier::from_hashes(3, &[empty_root()]), Err(TreeError::WrongHashCount { expected: 2, found: 1 }));
        assert_eq!(Frontier::from_hashes(0, &[]).map(|f| f.root()), Ok(empty_root()));
    }
}
