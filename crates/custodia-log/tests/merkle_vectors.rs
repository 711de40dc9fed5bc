//! Published Merkle tree vectors: the Certificate Transparency reference tree (roots, audit paths and
//! consistency proofs) and transparency-dev/merkle's verifier test data, each case with its expected
//! outcome.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use common::{MemStore, flip, vector};
use custodia_log::proof::{VerifyError, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
use custodia_log::tree::root_hash;
use custodia_log::{Frontier, Hash, empty_root, leaf_hash};
use data_encoding::HEXLOWER;
use serde_json::Value;

fn hex_hash(v: &Value) -> Hash {
    Hash::from_hex(v.as_str().unwrap()).unwrap()
}

fn hex_hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hex_hash).collect()
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

struct Ct {
    leaves: Vec<Hash>,
    roots: Vec<Hash>,
    data: Value,
}

fn ct() -> Ct {
    let data = vector("rfc6962-merkle.json");
    let leaves = data["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| leaf_hash(&HEXLOWER.decode(l.as_str().unwrap().as_bytes()).unwrap()))
        .collect();
    let roots = hex_hashes(&data["roots"]);
    Ct { leaves, roots, data }
}

#[test]
fn roots_of_the_reference_tree() {
    let ct = ct();
    assert_eq!(empty_root(), hex_hash(&ct.data["empty_root"]));
    assert_eq!(Frontier::empty().root(), empty_root());
    let (store, frontier) = MemStore::build(&ct.leaves);
    assert_eq!(frontier.size(), 8);
    let mut growing = Frontier::empty();
    for (i, leaf) in ct.leaves.iter().enumerate() {
        growing.push(*leaf);
        let size = i as u64 + 1;
        assert_eq!(growing.root(), ct.roots[i], "frontier root at size {size}");
        assert_eq!(root_hash(size, store.limit_to(size)).unwrap(), ct.roots[i], "stored root at size {size}");
        assert_eq!(Frontier::load(size, &store).unwrap(), growing);
    }
    assert_eq!(root_hash(0, &store).unwrap(), empty_root());
}

#[test]
fn inclusion_proofs_of_the_reference_tree() {
    let ct = ct();
    let (store, _) = MemStore::build(&ct.leaves);
    for case in ct.data["inclusion"].as_array().unwrap() {
        let (index, size) = (num(&case["index"]), num(&case["size"]));
        let want = hex_hashes(&case["proof"]);
        let root = ct.roots[size as usize - 1];
        let leaf = ct.leaves[index as usize];
        let reads = store.reads.get();
        assert_eq!(inclusion_proof(index, size, store.limit_to(size)).unwrap(), want, "proof of {index} in {size}");
        assert!(store.reads.get() - reads <= 1, "one read per proof");
        assert_eq!(verify_inclusion(&leaf, index, size, &want, &root), Ok(()));
        for (desc, probe) in corrupt_inclusion(index, size, &want, &root, &leaf) {
            let (index, size, proof, root, leaf) = probe;
            assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err(), "{desc} of {index} in {size}");
        }
    }
}

#[test]
fn consistency_proofs_of_the_reference_tree() {
    let ct = ct();
    let (store, _) = MemStore::build(&ct.leaves);
    for case in ct.data["consistency"].as_array().unwrap() {
        let (old, new) = (num(&case["old"]), num(&case["new"]));
        let want = hex_hashes(&case["proof"]);
        let (old_root, new_root) = (ct.roots[old as usize - 1], ct.roots[new as usize - 1]);
        assert_eq!(consistency_proof(old, new, store.limit_to(new)).unwrap(), want, "proof {old} -> {new}");
        assert_eq!(verify_consistency(old, new, &old_root, &new_root, &want), Ok(()));
        if want.is_empty() {
            continue;
        }
        for (desc, (old, new, old_root, new_root, proof)) in corrupt_consistency(old, new, &old_root, &new_root, &want)
        {
            assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_err(), "{desc}: {old} -> {new}");
        }
    }
}

type InclusionProbe = (u64, u64, Vec<Hash>, Hash, Hash);

/// The probes of transparency-dev/merkle proof/verify_test.go `corruptInclusionProof`, for hashes that
/// are 32 bytes (the others cannot be a `Hash` at all).
fn corrupt_inclusion(index: u64, size: u64, proof: &[Hash], root: &Hash, leaf: &Hash) -> Vec<(String, InclusionProbe)> {
    let some = Hash::from_hex("abacaba000000000000000000000000000000000000000000060061e00123456").unwrap();
    let p = proof.to_vec();
    let mut probes = vec![
        ("leafIndex + 1", (index + 1, size, p.clone(), *root, *leaf)),
        ("leafIndex ^ 2", (index ^ 2, size, p.clone(), *root, *leaf)),
        ("treeSize * 2", (index, size * 2, p.clone(), *root, *leaf)),
        ("treeSize / 2", (index, size / 2, p.clone(), *root, *leaf)),
        ("wrong leaf", (index, size, p.clone(), *root, leaf_hash(b"WrongLeaf"))),
        ("empty root", (index, size, p.clone(), empty_root(), *leaf)),
        ("random root", (index, size, p.clone(), some, *leaf)),
        ("trailing root", (index, size, [p.clone(), vec![*root]].concat(), *root, *leaf)),
        ("preceding root", (index, size, [vec![*root], p.clone()].concat(), *root, *leaf)),
    ];
    if index > 0 {
        probes.push(("leafIndex - 1", (index - 1, size, p.clone(), *root, *leaf)));
    }
    for i in 0..p.len() {
        let mut wrong = p.clone();
        wrong[i] = flip(&wrong[i], 3);
        probes.push(("modified proof bit 3", (index, size, wrong, *root, *leaf)));
    }
    if !p.is_empty() {
        probes.push(("removed component", (index, size, p[..p.len() - 1].to_vec(), *root, *leaf)));
    }
    if p.len() > 1 {
        probes.push(("inserted component", (index, size, [vec![p[0], some], p[1..].to_vec()].concat(), *root, *leaf)));
    }
    probes.into_iter().map(|(d, p)| (d.to_owned(), p)).collect()
}

type ConsistencyProbe = (u64, u64, Hash, Hash, Vec<Hash>);

/// The probes of transparency-dev/merkle proof/verify_test.go `corruptConsistencyProof`.
fn corrupt_consistency(old: u64, new: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) -> Vec<(String, ConsistencyProbe)> {
    let p = proof.to_vec();
    let wrong = leaf_hash(b"WrongRoot");
    let mut probes = vec![
        ("size1 - 1", (old - 1, new, *r1, *r2, p.clone())),
        ("size1 + 1", (old + 1, new, *r1, *r2, p.clone())),
        ("size1 ^ 2", (old ^ 2, new, *r1, *r2, p.clone())),
        ("size2 * 2", (old, new * 2, *r1, *r2, p.clone())),
        ("size2 / 2", (old, new / 2, *r1, *r2, p.clone())),
        ("wrong root1", (old, new, wrong, *r2, p.clone())),
        ("wrong root2", (old, new, *r1, wrong, p.clone())),
        ("swapped roots", (old, new, *r2, *r1, p.clone())),
        ("empty proof", (old, new, *r1, *r2, Vec::new())),
        ("trailing root1", (old, new, *r1, *r2, [p.clone(), vec![*r1]].concat())),
        ("trailing root2", (old, new, *r1, *r2, [p.clone(), vec![*r2]].concat())),
        ("preceding root1", (old, new, *r1, *r2, [vec![*r1], p.clone()].concat())),
        ("preceding root2", (old, new, *r1, *r2, [vec![*r2], p.clone()].concat())),
        ("preceding proof[0]", (old, new, *r1, *r2, [vec![p[0]], p.clone()].concat())),
        ("truncated proof", (old, new, *r1, *r2, p[..p.len() - 1].to_vec())),
    ];
    for i in 0..p.len() {
        let mut wrong = p.clone();
        wrong[i] = flip(&wrong[i], 4);
        probes.push(("modified proof bit 4", (old, new, *r1, *r2, wrong)));
    }
    probes.into_iter().map(|(d, p)| (d.to_owned(), p)).collect()
}

/// A base64 hash from the transparency-dev files; `None` for the deliberately wrong-length values.
fn b64(v: &Value) -> Option<Hash> {
    Hash::from_base64(v.as_str().unwrap()).ok()
}

fn b64s(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        v => v.as_array().unwrap().iter().map(b64).collect(),
    }
}

#[test]
fn transparency_dev_inclusion_testdata() {
    let data = vector("transparency-dev-merkle-testdata.json");
    for case in data["inclusion"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let parsed = (b64(&case["leafHash"]), b64(&case["root"]), b64s(&case["proof"]));
        let (Some(leaf), Some(root), Some(proof)) = parsed else {
            assert!(want_err, "{file}: a value is not a 32-byte hash, so only an error is acceptable");
            continue;
        };
        let got = verify_inclusion(&leaf, num(&case["leafIdx"]), num(&case["treeSize"]), &proof, &root);
        assert_eq!(got.is_err(), want_err, "{file}: {got:?}");
    }
}

#[test]
fn transparency_dev_consistency_testdata() {
    let data = vector("transparency-dev-merkle-testdata.json");
    for case in data["consistency"].as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let want_err = case["wantErr"].as_bool().unwrap();
        let parsed = (b64(&case["root1"]), b64(&case["root2"]), b64s(&case["proof"]));
        let (Some(r1), Some(r2), Some(proof)) = parsed else {
            assert!(want_err, "{file}: a value is not a 32-byte hash, so only an error is acceptable");
            continue;
        };
        let got = verify_consistency(num(&case["size1"]), num(&case["size2"]), &r1, &r2, &proof);
        assert_eq!(got.is_err(), want_err, "{file}: {got:?}");
    }
}

#[test]
fn edge_cases_of_verification() {
    // transparency-dev/merkle TestVerifyConsistency and TestVerifyInclusion edge cases.
    let (a, b) = (leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2"));
    let e = empty_root();
    assert_eq!(verify_consistency(0, 0, &a, &a, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 1, &a, &b, &[]), Ok(()));
    assert_eq!(verify_consistency(1, 1, &b, &b, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 0, &a, &b, &[]), Err(VerifyError::RootMismatch));
    assert_eq!(verify_consistency(1, 1, &a, &b, &[]), Err(VerifyError::RootMismatch));
    assert_eq!(verify_consistency(1, 0, &a, &b, &[]), Err(VerifyError::BadRange { old: 1, new: 0 }));
    assert_eq!(verify_consistency(2, 1, &a, &b, &[]), Err(VerifyError::BadRange { old: 2, new: 1 }));
    assert_eq!(verify_consistency(1, 2, &a, &b, &[]), Err(VerifyError::WrongProofSize { expected: 1, found: 0 }));
    for (old, new) in [(0, 0), (0, 1), (1, 1)] {
        assert_eq!(
            verify_consistency(old, new, &e, &e, &[e]),
            Err(VerifyError::WrongProofSize { expected: 0, found: 1 })
        );
    }
    for (index, size) in [(0, 0), (1, 0), (2, 1)] {
        assert_eq!(verify_inclusion(&a, index, size, &[], &a), Err(VerifyError::IndexOutOfRange { index, size }));
    }
    assert_eq!(verify_inclusion(&a, 0, 1, &[], &a), Ok(()));
    assert_eq!(verify_inclusion(&a, 0, 1, &[], &b), Err(VerifyError::RootMismatch));
    assert_eq!(VerifyError::RootMismatch.to_string(), "the proof does not lead to the checkpoint's root");
}
