//! Inclusion and consistency proofs (RFC 9162 sections 2.1.3 and 2.1.4), made from stored nodes and
//! verified from hashes alone.
//!
//! Making a proof reads only complete subtrees ([`NodeId`]s), all in one [`HashReader::read_hashes`]
//! call. A subtree of the RFC's recursion that is not complete (it lies on the right edge of the tree)
//! is computed by folding the complete subtrees it consists of; the structure follows Go's sumdb/tlog
//! (`leafProofIndex`/`leafProof`, `treeProofIndex`/`treeProof`). Proofs are leaf-to-root, as in the RFC.
//!
//! Verifying checks the proof's length against the one the sizes imply before hashing anything, so a
//! hostile proof costs at most 65 hashes and a wrong-length proof is reported as such.

use crate::hash::{Hash, node_hash};
use crate::tree::{HashReader, NodeId, range_hash, range_ids, read};

#[derive(Debug, thiserror::Error)]
pub enum ProofError<E> {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a tree of {old} leaves cannot be a prefix of one of {new} leaves")]
    BadRange { old: u64, new: u64 },
    #[error("the hash store returned {returned} hashes for {requested} nodes")]
    ReaderMismatch { requested: usize, returned: usize },
    #[error("could not read the stored tree hashes")]
    Read(#[source] E),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {found} hashes where {expected} are needed")]
    WrongProofSize { expected: usize, found: usize },
    #[error("the proof does not lead to the checkpoint's root")]
    RootMismatch,
    #[error("the proof does not lead to the earlier checkpoint's root")]
    OldRootMismatch,
    #[error("a tree of {old} leaves cannot be a prefix of one of {new} leaves")]
    BadRange { old: u64, new: u64 },
}

/// The largest power of two strictly below `n` (n >= 2): where the RFC splits a range of n leaves.
fn split(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

/// Reads the complete subtrees of each range in one call and folds each range to its hash, in order.
fn range_hashes<R: HashReader>(ranges: &[(u64, u64)], reader: &R) -> Result<Vec<Hash>, ProofError<R::Error>> {
    let mut ids: Vec<NodeId> = Vec::with_capacity(2 * ranges.len());
    let mut counts = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges {
        let before = ids.len();
        range_ids(lo, hi, &mut ids);
        counts.push(ids.len() - before);
    }
    let hashes = read(reader, &ids)?;
    let mut rest = &hashes[..];
    let mut out = Vec::with_capacity(ranges.len());
    for count in counts {
        let (hash, tail) = range_hash(count, rest);
        out.push(hash);
        rest = tail;
    }
    Ok(out)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 2.1.3.1).
pub fn inclusion_proof<R: HashReader>(index: u64, size: u64, reader: &R) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk from the root down to the leaf, noting the sibling range (the path not taken) at each step.
    let mut siblings = Vec::with_capacity(64);
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
        }
    }
    siblings.reverse();
    range_hashes(&siblings, reader)
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves
/// (RFC 9162 2.1.4.1). Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof<R: HashReader>(
    old_size: u64,
    new_size: u64,
    reader: &R,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    if old_size > new_size {
        return Err(ProofError::BadRange { old: old_size, new: new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b) of RFC 6962 2.1.2, unrolled: lo < old_size <= hi throughout.
    let mut ranges = Vec::with_capacity(65);
    let (mut lo, mut hi) = (0, new_size);
    while old_size < hi {
        let k = split(hi - lo);
        if old_size <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    // Reached the subtree that is the old tree's last piece; the verifier already knows the old
    // root, so it is sent only when it is not the whole old tree.
    if lo != 0 {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    range_hashes(&ranges, reader)
}

/// Bit length of `x`: the number of levels a path crosses below the split point.
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// The length of an inclusion proof: the levels below where the paths to `index` and to the last
/// leaf part (inner), plus one per left sibling above it (border).
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Checks that `leaf` is the hash of leaf `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofSize { expected, found: proof.len() });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    // The length check above makes the path end exactly at the root (s == 0).
    if s != 0 || r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// The length of a consistency proof for 0 < old < new.
fn consistency_len(old: u64, new: u64) -> usize {
    // The old tree's last complete subtree of 2^level leaves is where the proof starts.
    let level = old.trailing_zeros();
    let index = (old - 1) >> level;
    let last = (new - 1) >> level;
    let seed = usize::from(index != 0);
    seed + inclusion_len(index, last + 1)
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root` (RFC 9162 2.1.4.2). Equal sizes need equal roots and an empty
/// proof; every tree extends the empty tree, with an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::BadRange { old: old_size, new: new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofSize { expected: 0, found: proof.len() });
        }
        if old_size == new_size && old_root != new_root {
            return Err(VerifyError::RootMismatch);
        }
        return Ok(());
    }
    let expected = consistency_len(old_size, new_size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofSize { expected, found: proof.len() });
    }
    // When the old tree is one complete subtree its root is the proof's implicit first hash.
    let (seed, rest) = match (old_size.is_power_of_two(), proof.split_first()) {
        (true, _) => (*old_root, proof),
        (false, Some((first, rest))) => (*first, rest),
        // The length check above makes a non-power-of-two proof non-empty.
        (false, None) => return Err(VerifyError::WrongProofSize { expected, found: 0 }),
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if s == 0 {
            return Err(VerifyError::RootMismatch);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if fr != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if s != 0 || sr != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}
