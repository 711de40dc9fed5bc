//! Property tests of the tree and proofs against the RFC 6962 reference definitions, on stores built
//! the way the ledger builds them (every node `Frontier::push` reports), and on very large trees.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use common::{MemStore, consistency, flip, mth, path};
use custodia_log::proof::{ProofError, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
use custodia_log::tree::root_hash;
use custodia_log::{Frontier, Hash, HashReader, NodeId, leaf_hash, node_hash};
use proptest::prelude::*;

fn leaves(n: usize, seed: u64) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat())).collect()
}

/// A tree size and a leaf count at least that big, so the store holds nodes past the tree's end that a
/// wrong proof could read by mistake.
fn sizes() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=2000).prop_flat_map(|total| (1..=total, Just(total)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roots_agree((size, total) in sizes(), seed: u64) {
        let all = leaves(total, seed);
        let (store, _) = MemStore::build(&all);
        let mut frontier = Frontier::empty();
        for leaf in &all[..size] {
            frontier.push(*leaf);
        }
        let want = mth(&all[..size]);
        prop_assert_eq!(frontier.root(), want);
        prop_assert_eq!(root_hash(size as u64, store.limit_to(size as u64)).unwrap(), want);
        let loaded = Frontier::load(size as u64, &store).unwrap();
        prop_assert_eq!(&loaded, &frontier);
        // The loaded frontier carries on exactly as the one that was built.
        let (mut a, mut b) = (loaded, frontier);
        for leaf in &all[size..total.min(size + 5)] {
            prop_assert_eq!(a.push(*leaf), b.push(*leaf));
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_match_the_rfc((size, total) in sizes(), seed: u64, pick: u64, bit in 0usize..256) {
        let all = leaves(total, seed);
        let (store, _) = MemStore::build(&all);
        let index = pick % size as u64;
        let root = mth(&all[..size]);
        let leaf = all[index as usize];
        let reads = store.reads.get();
        let proof = inclusion_proof(index, size as u64, store.limit_to(size as u64)).unwrap();
        prop_assert!(store.reads.get() - reads <= 1);
        prop_assert_eq!(&proof, &path(index as usize, &all[..size]));
        prop_assert_eq!(verify_inclusion(&leaf, index, size as u64, &proof, &root), Ok(()));

        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_inclusion(&leaf, index, size as u64, &bad, &root).is_err());
        }
        prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size as u64, &proof, &root).is_err());
        for other in [index ^ 1, index.wrapping_add(1), index.wrapping_sub(1), pick % (size as u64 + 3)] {
            if other != index {
                prop_assert!(verify_inclusion(&leaf, other, size as u64, &proof, &root).is_err(), "index {}", other);
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_match_the_rfc((size, total) in sizes(), seed: u64, pick: u64, bit in 0usize..256) {
        let all = leaves(total, seed);
        let (store, _) = MemStore::build(&all);
        let old = pick % (size as u64 + 1);
        let (old_root, new_root) = (mth(&all[..old as usize]), mth(&all[..size]));
        let proof = consistency_proof(old, size as u64, store.limit_to(size as u64)).unwrap();
        prop_assert_eq!(&proof, &consistency(old as usize, &all[..size]));
        prop_assert_eq!(verify_consistency(old, size as u64, &old_root, &new_root, &proof), Ok(()));

        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], bit);
            prop_assert!(verify_consistency(old, size as u64, &old_root, &new_root, &bad).is_err());
        }
        if old > 0 && old < size as u64 {
            prop_assert!(verify_consistency(old, size as u64, &flip(&old_root, bit), &new_root, &proof).is_err());
            prop_assert!(verify_consistency(old, size as u64, &old_root, &flip(&new_root, bit), &proof).is_err());
            prop_assert!(verify_consistency(old, size as u64, &new_root, &old_root, &proof).is_err());
            prop_assert!(verify_consistency(old, size as u64, &old_root, &new_root, &proof[1..]).is_err());
        }
        let backwards = consistency_proof(size as u64 + 1, size as u64, &store);
        prop_assert!(matches!(backwards, Err(ProofError::BadRange { .. })), "{:?}", backwards);
    }
}

#[test]
fn proofs_for_every_pair_of_a_small_tree() {
    let all = leaves(70, 7);
    let (store, _) = MemStore::build(&all);
    for size in 1..=all.len() {
        let root = mth(&all[..size]);
        for (index, leaf) in all[..size].iter().enumerate() {
            let proof = inclusion_proof(index as u64, size as u64, store.limit_to(size as u64)).unwrap();
            assert_eq!(verify_inclusion(leaf, index as u64, size as u64, &proof, &root), Ok(()));
        }
        for old in 0..=size {
            let proof = consistency_proof(old as u64, size as u64, &store).unwrap();
            assert_eq!(verify_consistency(old as u64, size as u64, &mth(&all[..old]), &root, &proof), Ok(()));
        }
    }
    assert!(matches!(inclusion_proof(70, 70, store.limit_to(70)), Err(ProofError::IndexOutOfRange { .. })));
}

/// A real tree of any size, cheap to read: every leaf is the same except one marked leaf, so a
/// complete subtree's hash depends only on its level and on whether it holds the mark.
struct Marked {
    mark: u64,
    plain: Vec<Hash>,
    marked: Vec<Hash>,
}

impl Marked {
    fn new(mark: u64) -> Self {
        let (mut plain, mut marked) = (vec![leaf_hash(b"plain")], vec![leaf_hash(b"marked")]);
        for level in 1..64 {
            let p = plain[level - 1];
            let m = marked[level - 1];
            // The mark is in the left or right half according to its bit at this level.
            let with_mark = if (mark >> (level - 1)) & 1 == 0 { node_hash(&m, &p) } else { node_hash(&p, &m) };
            plain.push(node_hash(&p, &p));
            marked.push(with_mark);
        }
        Self { mark, plain, marked }
    }

    fn leaf(&self, index: u64) -> Hash {
        if index == self.mark { self.marked[0] } else { self.plain[0] }
    }
}

impl HashReader for Marked {
    type Error = std::convert::Infallible;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        Ok(ids
            .iter()
            .map(|id| {
                let level = usize::from(id.level);
                if self.mark >> id.level == id.index { self.marked[level] } else { self.plain[level] }
            })
            .collect())
    }
}

#[test]
fn large_trees() {
    for (size, mark) in
        [(10_000_000u64, 9_999_998u64), (10_000_000, 12_345), ((1 << 40) + 12_345, 1 << 39), (u64::MAX, u64::MAX - 2)]
    {
        let tree = Marked::new(mark);
        let root = root_hash(size, &tree).unwrap();
        for index in [0, 1, mark, mark ^ 1, mark ^ 2, size / 2, size - 1].into_iter().filter(|&i| i < size) {
            let proof = inclusion_proof(index, size, &tree).unwrap();
            assert!(proof.len() <= 64);
            assert_eq!(verify_inclusion(&tree.leaf(index), index, size, &proof, &root), Ok(()), "{index} in {size}");
        }
        for old in [1, 2, 3, mark, mark + 1, size / 3, size - 1, size] {
            let old_root = root_hash(old, &tree).unwrap();
            let proof = consistency_proof(old, size, &tree).unwrap();
            assert!(proof.len() <= 65);
            assert_eq!(verify_consistency(old, size, &old_root, &root, &proof), Ok(()), "{old} -> {size}");
        }
    }
}
