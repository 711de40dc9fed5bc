//! tlog-witness requests and checks, tlog-policy, tlog-proof and cosignature known answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::MemStore;
use custodia_log::checkpoint::Checkpoint;
use custodia_log::cosignature::{CosignatureVerifier, Cosigner, verify_cosignature};
use custodia_log::policy::{CheckpointRefusal, Policy, PolicyError};
use custodia_log::proof::{consistency_proof, inclusion_proof};
use custodia_log::tlog_proof::TlogProof;
use custodia_log::witness::{self, AddCheckpoint, Refusal};
use custodia_log::{Hash, NoteSigner, empty_root, leaf_hash};

const ORIGIN: &str = "example.com/custodia-log";

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, &[1; 32]).unwrap()
}

fn cosigner(name: &str, seed: u8) -> Cosigner {
    Cosigner::new(name, &[seed; 32]).unwrap()
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
}

/// A signed checkpoint of the first `size` of `leaves`.
fn note_for(leaves: &[Hash], size: usize) -> (Checkpoint, String) {
    let (_, frontier) = MemStore::build(&leaves[..size]);
    let checkpoint = Checkpoint { origin: ORIGIN.into(), size: size as u64, root: frontier.root(), extensions: vec![] };
    let note = checkpoint.sign(&log_signer());
    (checkpoint, note)
}

fn request(leaves: &[Hash], old: usize, new: usize) -> AddCheckpoint {
    let (store, _) = MemStore::build(leaves);
    let proof = consistency_proof(old as u64, new as u64, &store).unwrap();
    let (_, note) = note_for(leaves, new);
    AddCheckpoint::parse(AddCheckpoint::body(old as u64, &proof, &note).as_bytes()).unwrap()
}

fn root_of(leaves: &[Hash], size: usize) -> Hash {
    MemStore::build(&leaves[..size]).1.root()
}

#[test]
fn the_specification_example_body_parses() {
    let body = "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
        5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n\
        example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\
        \u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
        \u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";
    let request = AddCheckpoint::parse(body.as_bytes()).unwrap();
    assert_eq!(request.old_size, 20852014);
    assert_eq!(request.proof.len(), 4);
    assert_eq!(request.checkpoint.origin, "example.com/behind-the-sofa");
    assert_eq!(request.checkpoint.size, 20852163);
    assert_eq!(request.signed.signatures.len(), 2);
    // What a client builds is what the specification shows.
    assert_eq!(AddCheckpoint::body(request.old_size, &request.proof, &request.note), body);
}

#[test]
fn malformed_bodies_are_400() {
    let (_, note) = note_for(&leaves(4), 4);
    let hash = empty_root().to_base64();
    let many = format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(64));
    for body in [
        format!("old 01\n\n{note}"),
        format!("old -1\n\n{note}"),
        format!("old 1\nnot base64\n\n{note}"),
        format!("old 1\n{hash}\n{note}"), // no empty line: the note's text is read as proof lines
        format!("new 1\n\n{note}"),
        format!("old 5\n\n{note}"), // above the checkpoint's size
        many,
        format!("old 0\n\n{}", note.replace("\n\n", "\n")),
        "x".repeat(witness::MAX_ADD_CHECKPOINT_BYTES + 1),
    ] {
        let refusal = AddCheckpoint::parse(body.as_bytes()).unwrap_err();
        assert_eq!(refusal.status(), 400, "{body:?}: {refusal}");
    }
    // 63 proof lines are allowed.
    let most = format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(63));
    assert_eq!(AddCheckpoint::parse(most.as_bytes()).unwrap().proof.len(), 63);
}

#[test]
fn the_witness_checks_give_the_specified_codes() {
    let all = leaves(20);
    let keys = [log_signer().verifier()];
    let at = |size: usize| Some((size as u64, root_of(&all, size)));

    // First contact: old 0, no proof, any size.
    assert_eq!(witness::check(&request(&all, 0, 7), &keys, None), Ok(()));
    // Growing from what it cosigned, with a proof.
    assert_eq!(witness::check(&request(&all, 7, 20), &keys, at(7)), Ok(()));
    // The same size again, same root: fine (a re-request after a lost answer).
    assert_eq!(witness::check(&request(&all, 7, 7), &keys, at(7)), Ok(()));
    // Not the size it cosigned: 409 with its size.
    let refusal = witness::check(&request(&all, 5, 20), &keys, at(7)).unwrap_err();
    assert_eq!((refusal.status(), refusal.clone()), (409, Refusal::Conflict(7)));
    assert_eq!(witness::check(&request(&all, 0, 20), &keys, at(7)), Err(Refusal::Conflict(7)));
    // Another key, or a bad signature by the log's key: 403.
    let other = [NoteSigner::new(ORIGIN, &[2; 32]).unwrap().verifier()];
    assert_eq!(witness::check(&request(&all, 0, 7), &other, None).unwrap_err().status(), 403);
    let mut forged = request(&all, 0, 7);
    forged.signed.signatures[0].bytes[10] ^= 1;
    assert_eq!(witness::check(&forged, &keys, None).unwrap_err().status(), 403);

    // A different history under the same key: the proof cannot verify, 422.
    let mut fork = all.clone();
    fork[3] = leaf_hash(b"rewritten");
    let refusal = witness::check(&request(&fork, 7, 20), &keys, at(7)).unwrap_err();
    assert_eq!(refusal.status(), 422, "{refusal}");
    // The same size with another root: 422.
    assert_eq!(witness::check(&request(&fork, 7, 7), &keys, at(7)).unwrap_err().status(), 422);
    // A proof from size 0 must be empty.
    let mut with_proof = request(&all, 0, 7);
    with_proof.proof.push(empty_root());
    assert_eq!(witness::check(&with_proof, &keys, None).unwrap_err().status(), 422);
    // Size 0 must have the empty tree's root.
    let zero = Checkpoint { origin: ORIGIN.into(), size: 0, root: leaf_hash(b"x"), extensions: vec![] };
    let body = AddCheckpoint::body(0, &[], &zero.sign(&log_signer()));
    let zero = AddCheckpoint::parse(body.as_bytes()).unwrap();
    assert_eq!(witness::check(&zero, &keys, None).unwrap_err().status(), 422);
}

#[test]
fn answers_parse() {
    assert_eq!(witness::parse_size_body("42\n"), Some(42));
    for bad in ["42", "042\n", "\n", "-1\n", "4 2\n"] {
        assert_eq!(witness::parse_size_body(bad), None, "{bad:?}");
    }
    let (checkpoint, _) = note_for(&leaves(3), 3);
    let w = cosigner("witness.example/w1", 9);
    let lines = witness::parse_cosignature_lines(&w.cosign(&checkpoint, 1_700_000_000)).unwrap();
    assert_eq!(verify_cosignature(&checkpoint, &lines[0], &w.verifier()), Ok(1_700_000_000));
    assert!(witness::parse_cosignature_lines("no dash\n").is_err());
}

/// Fixed keys, checkpoint and timestamps give these exact lines (Ed25519 is deterministic). The
/// expected values were computed apart from this code, from the specification's definitions with
/// Python's `cryptography`; a real witness's cosignature is checked in `note_vectors.rs`.
#[test]
fn cosignature_known_answers() {
    let checkpoint = Checkpoint {
        origin: "example.com/behind-the-sofa".into(),
        size: 20852163,
        root: Hash::from_base64("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap(),
        extensions: vec![],
    };
    let w1 = cosigner("witness.example/w1", 0x11);
    let w2 = cosigner("witness.example/w2", 0x22);
    assert_eq!(w1.verifier().to_vkey(), "witness.example/w1+f65f8fd1+BNBKsjJ0K7SrOhNovUYV5ObQIkq3GgFrr4UgozLJd4c3");
    let known = [
        (
            &w1,
            1_700_000_000u64,
            "\u{2014} witness.example/w1 9l+P0QAAAABlU/EALBclKKCCkYdyVeW6nB2OmUuKLkRU/D+c4JncXYcHwkusroQfyBuMAXVYpXDdvoedagoLLgf0C2JQedR5NTYxBg==\n",
        ),
        (
            &w1,
            1,
            "\u{2014} witness.example/w1 9l+P0QAAAAAAAAAB7EwAiq/o1cyO200aHH+86l3nh332pTSWpLmN4REevdt1O4KGh5Z82Ysr3c83CLRUMGyXBDKve6ZzuHrGThliBw==\n",
        ),
        (
            &w2,
            1_700_000_000,
            "\u{2014} witness.example/w2 uJq8bgAAAABlU/EA8OmWD/JNoIYP04uqb1DFevQdIF8QOjy3a6umEuJLGRwIBCBnmfxZmo0N9NZYH4NBawk/yGo7e78m5/tH1vBlAg==\n",
        ),
    ];
    for (witness, time, line) in known {
        assert_eq!(witness.cosign(&checkpoint, time), line, "{} at {time}", witness.name());
        let parsed = custodia_log::witness::parse_cosignature_lines(line).unwrap();
        assert_eq!(verify_cosignature(&checkpoint, &parsed[0], &witness.verifier()), Ok(time));
    }
}

fn policy_text(witnesses: &[&Cosigner], quorum: &str) -> String {
    let mut text = format!("# a comment\nlog {}\n\n", log_signer().verifier().to_vkey());
    for (i, w) in witnesses.iter().enumerate() {
        text.push_str(&format!("witness W{} {} https://w{i}.example/\n", i + 1, w.verifier().to_vkey()));
    }
    text.push_str(quorum);
    text
}

#[test]
fn policies_parse_as_specified() {
    let ws: Vec<Cosigner> = (1..=6).map(|i| cosigner(&format!("w{i}.example"), i)).collect();
    let refs: Vec<&Cosigner> = ws.iter().collect();
    // The specification's example, with real keys.
    let text =
        policy_text(&refs, "group X 2 W1 W2 W3\n  group\tY any W4 W5 W6  \ngroup X-and-Y all X Y\nquorum X-and-Y\n");
    let policy = Policy::parse(&text).unwrap();
    assert_eq!((policy.logs.len(), policy.witnesses.len(), policy.groups.len()), (1, 6, 3));
    assert_eq!(policy.witnesses[0].url.as_deref(), Some("https://w0.example/"));
    let met = |set: &[usize]| policy.quorum_met(&(0..6).map(|i| set.contains(&i)).collect::<Vec<_>>());
    assert!(met(&[0, 1, 3]));
    assert!(!met(&[0, 1]));
    assert!(!met(&[0, 3, 4, 5]));
    assert!(Policy::parse(&policy_text(&[], "quorum none\n")).unwrap().quorum_met(&[]));

    let w1 = w_line(&ws[0], "W1");
    for (text, wanted) in [
        (format!("{w1}quorum W2\n"), "not a witness or group defined above"),
        (format!("{w1}{}quorum W1\n", w_line(&ws[0], "W2")), "listed twice"),
        (format!("{w1}{}", w_line(&ws[1], "W1")), "already defined"),
        (format!("{w1}group G all W1 W1\nquorum G\n"), "listed twice in the group"),
        (format!("{w1}group G 2 W1\nquorum G\n"), "threshold"),
        (format!("{w1}group G 0 W1\nquorum G\n"), "threshold"),
        (format!("{w1}group G all none\nquorum G\n"), "not a witness or group"),
        (format!("{w1}group none all W1\nquorum none\n"), "reserved"),
        (format!("{w1}quorum W1\nquorum W1\n"), "second quorum"),
        (format!("{w1}quorum G\ngroup G any W1\n"), "not a witness or group defined above"),
        (format!("{w1}witness W9 {}\nquorum W1\n", log_signer().verifier().to_vkey()), "bad witness key"),
        (format!("{w1}quorum W1\nfrobnicate\n"), "unknown keyword"),
        (format!("{w1}quorum W1\x0b\n"), "control character"),
    ] {
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(wanted), "{text:?}: {err}");
    }
    assert_eq!(Policy::parse(&w1), Err(PolicyError::NoQuorum));
}

fn w_line(w: &Cosigner, name: &str) -> String {
    format!("witness {name} {}\n", w.verifier().to_vkey())
}

#[test]
fn a_checkpoint_needs_the_quorum() {
    let ws: Vec<Cosigner> = (1..=3).map(|i| cosigner(&format!("w{i}.example"), i)).collect();
    let policy = Policy::parse(&policy_text(&ws.iter().collect::<Vec<_>>(), "group Q 2 W1 W2 W3\nquorum Q\n")).unwrap();
    let (checkpoint, note) = note_for(&leaves(5), 5);
    let with = |idx: &[usize]| {
        let mut n = note.clone();
        for i in idx {
            n.push_str(&ws[*i].cosign(&checkpoint, 1_700_000_000 + *i as u64));
        }
        n
    };
    let accepted = policy.accept(&with(&[0, 2])).unwrap();
    assert_eq!(accepted.checkpoint, checkpoint);
    assert_eq!(accepted.cosigned_by, vec![("W1".to_owned(), 1_700_000_000), ("W3".to_owned(), 1_700_000_002)]);
    let refusal = policy.accept(&with(&[1])).unwrap_err();
    assert_eq!(
        refusal,
        CheckpointRefusal::NoQuorum { size: 5, cosigned: vec!["W2".into()], missing: vec!["W1".into(), "W3".into()] }
    );
    assert!(refusal.to_string().contains("cosigned by W2, missing W1, W3"), "{refusal}");
    assert!(matches!(policy.accept(&note), Err(CheckpointRefusal::NoQuorum { .. })));
    // A cosignature that does not verify names its witness.
    let (other, _) = note_for(&leaves(6), 6);
    let mut bad = with(&[0]);
    bad.push_str(&ws[1].cosign(&other, 5));
    assert!(matches!(policy.accept(&bad), Err(CheckpointRefusal::BadCosignature { witness, .. }) if witness == "W2"));
    // Another log's checkpoint, even with the witnesses' cosignatures, is not accepted.
    let stranger = NoteSigner::new("example.com/other", &[3; 32]).unwrap();
    let foreign = Checkpoint { origin: "example.com/other".into(), ..checkpoint.clone() };
    let mut note = foreign.sign(&stranger);
    note.push_str(&ws[0].cosign(&foreign, 1));
    note.push_str(&ws[1].cosign(&foreign, 1));
    assert!(matches!(policy.accept(&note), Err(CheckpointRefusal::Log(_))));
    // A witness named in a policy must use a cosignature key (type 0x04).
    assert!(CosignatureVerifier::from_vkey(&log_signer().verifier().to_vkey()).is_err());
}

#[test]
fn tlog_proofs_round_trip_and_verify() {
    let all = leaves(9);
    let (store, _) = MemStore::build(&all);
    let (checkpoint, note) = note_for(&all, 9);
    let proof = TlogProof {
        extra: Some(b"grant 42".to_vec()),
        index: 4,
        proof: inclusion_proof(4, 9, &store).unwrap(),
        checkpoint: note,
    };
    let text = proof.to_text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra Z3JhbnQgNDI=\nindex 4\n"), "{text}");
    let parsed = TlogProof::parse(&text).unwrap();
    assert_eq!(parsed, proof);
    assert_eq!(parsed.verify_leaf(&all[4], checkpoint.size, &checkpoint.root), Ok(()));
    assert!(parsed.verify_leaf(&all[5], checkpoint.size, &checkpoint.root).is_err());
    let without = TlogProof { extra: None, ..proof };
    assert_eq!(TlogProof::parse(&without.to_text()).unwrap(), without);
    for bad in [
        "c2sp.org/tlog-proof@v2\nindex 1\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
        "c2sp.org/tlog-proof@v1\nindex 1\n",
    ] {
        assert!(TlogProof::parse(bad).is_err(), "{bad:?}");
    }
}
