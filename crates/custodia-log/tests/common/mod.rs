//! Test helpers: an in-memory node store filled by `Frontier::push`, and the RFC 6962 reference
//! definitions (MTH, PATH, PROOF) written as directly as the RFC states them.

#![allow(dead_code, clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use custodia_log::{Frontier, Hash, HashReader, NodeId, empty_root, node_hash};

pub fn vector(name: &str) -> serde_json::Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", name].iter().collect();
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every node `Frontier::push` reported, as a ledger would store them. `limit` is the size of the tree
/// a proof is made for: asking for a node outside it is an error, so a proof that reads beyond its
/// tree fails the test. `reads` counts `read_hashes` calls.
pub struct MemStore {
    pub nodes: HashMap<NodeId, Hash>,
    pub limit: Cell<u64>,
    pub reads: Cell<usize>,
}

#[derive(Debug)]
pub struct Missing(pub NodeId);

impl HashReader for MemStore {
    type Error = Missing;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Missing> {
        self.reads.set(self.reads.get() + 1);
        ids.iter()
            .map(|id| {
                let end = (id.index + 1).checked_mul(1 << id.level);
                match end {
                    Some(end) if end <= self.limit.get() => self.nodes.get(id).copied().ok_or(Missing(*id)),
                    _ => Err(Missing(*id)),
                }
            })
            .collect()
    }
}

impl MemStore {
    pub fn build(leaves: &[Hash]) -> (Self, Frontier) {
        let mut frontier = Frontier::empty();
        let mut nodes = HashMap::new();
        for leaf in leaves {
            nodes.extend(frontier.push(*leaf));
        }
        (Self { nodes, limit: Cell::new(leaves.len() as u64), reads: Cell::new(0) }, frontier)
    }

    /// Proofs made after this may only read nodes of the first `size` leaves.
    pub fn limit_to(&self, size: u64) -> &Self {
        self.limit.set(size);
        self
    }
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 2.1: MTH(D[n]).
pub fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 6962 2.1.1: PATH(m, D[n]).
pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

/// RFC 6962 2.1.2: PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole { Vec::new() } else { vec![mth(leaves)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = subproof(m, &leaves[..k], whole);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }
    if m == 0 { Vec::new() } else { subproof(m, leaves, true) }
}

/// `hash` with one bit flipped.
pub fn flip(hash: &Hash, bit: usize) -> Hash {
    let mut bytes = hash.0;
    bytes[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash(bytes)
}
