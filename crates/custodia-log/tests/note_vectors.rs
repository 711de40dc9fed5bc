//! Published signed-note, checkpoint and cosignature vectors (Go's sumdb/note, the C2SP specs,
//! transparency-dev/formats and a real CT checkpoint with a witness cosignature), each with its
//! expected outcome.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod common;

use common::vector;
use custodia_log::checkpoint::CheckpointError;
use custodia_log::cosignature::{CosignatureError, CosignatureVerifier, Cosigner, signed_message, verify_cosignature};
use custodia_log::note::{self, NoteError};
use custodia_log::{Checkpoint, Hash, NoteSigner, NoteVerifier, SignedNote, leaf_hash};
use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn key_id(v: &Value) -> u32 {
    u32::from_str_radix(s(v), 16).unwrap()
}

fn verifiers(v: &Value) -> Vec<NoteVerifier> {
    v.as_array().map(|a| a.iter().map(|k| NoteVerifier::from_vkey(s(k)).unwrap()).collect()).unwrap_or_default()
}

/// Whether `err` is the kind a vector names.
fn note_error_is(err: &NoteError, kind: &str) -> bool {
    match kind {
        "malformed" => matches!(err, NoteError::Malformed(_)),
        "too_large" => matches!(err, NoteError::TooLarge),
        "wrong_algorithm" => matches!(err, NoteError::WrongAlgorithm { .. }),
        "key_id_mismatch" => matches!(err, NoteError::KeyIdMismatch),
        "unknown_verifier" => matches!(err, NoteError::UnknownVerifier(_)),
        "bad_signature" => matches!(err, NoteError::BadSignature { .. }),
        other => panic!("unknown error kind {other} in a vector"),
    }
}

#[test]
fn verifier_keys() {
    let data = vector("signed-notes.json");
    for case in data["verifier_keys"].as_array().unwrap() {
        let v = NoteVerifier::from_vkey(s(&case["vkey"])).unwrap();
        assert_eq!(v.name(), s(&case["name"]));
        assert_eq!(v.key_id(), key_id(&case["key_id"]));
        assert_eq!(v.to_vkey(), s(&case["vkey"]), "prints back the same text");
        assert_eq!(v.to_string().parse::<NoteVerifier>().unwrap(), v);
        assert_eq!(NoteVerifier::new(v.name(), &v.public_key()).unwrap(), v, "the key id is derived, not copied");
        if let Some(pk) = case["public_key"].as_str() {
            assert_eq!(Hash(v.public_key()), Hash::from_hex(pk).unwrap());
        }
    }
    for case in data["bad_verifier_keys"].as_array().unwrap() {
        let err = NoteVerifier::from_vkey(s(&case["vkey"])).unwrap_err();
        if let Some(kind) = case["error"].as_str() {
            assert!(note_error_is(&err, kind), "{}: {err:?}, want {kind}", case["why"]);
        }
    }
}

#[test]
fn signer_keys_and_deterministic_signing() {
    let data = vector("signed-notes.json");
    for case in data["signer_keys"].as_array().unwrap() {
        let signer = NoteSigner::from_skey(s(&case["skey"])).unwrap();
        assert_eq!(signer.verifier().to_vkey(), s(&case["vkey"]));
        assert_eq!(signer.to_skey().as_str(), s(&case["skey"]));
    }
    for case in data["bad_signer_keys"].as_array().unwrap() {
        let err = NoteSigner::from_skey(s(&case["skey"])).unwrap_err();
        if let Some(kind) = case["error"].as_str() {
            assert!(note_error_is(&err, kind), "{}: {err:?}, want {kind}", case["why"]);
        }
        assert!(!err.to_string().contains("AYEKFALV"), "an error never carries key material");
    }
    for case in data["signing"].as_array().unwrap() {
        let signer = NoteSigner::from_skey(s(&case["skey"])).unwrap();
        assert_eq!(signer.sign(s(&case["text"])).unwrap(), s(&case["note"]));
    }
}

#[test]
fn notes() {
    let data = vector("signed-notes.json");
    for case in data["notes"].as_array().unwrap() {
        let why = s(&case["why"]);
        let got = note::open(s(&case["note"]), &verifiers(&case["verifiers"]));
        match case["error"].as_str() {
            Some(kind) => {
                let err = got.unwrap_err();
                assert!(note_error_is(&err, kind), "{why}: {err:?}, want {kind}");
            }
            None => {
                assert_eq!(got.as_deref(), Ok(s(&case["text"])), "{why}");
                let parsed = SignedNote::parse(s(&case["note"])).unwrap();
                let names: Vec<String> = case["names"].as_array().unwrap().iter().map(|n| s(n).to_owned()).collect();
                assert_eq!(parsed.verify(&verifiers(&case["verifiers"])).unwrap(), names, "{why}");
                assert_eq!(parsed.to_string(), s(&case["note"]), "{why}: prints back the same note");
            }
        }
    }
}

#[test]
fn checkpoint_texts() {
    let data = vector("checkpoints.json");
    for case in data["parse"].as_array().unwrap() {
        let cp = Checkpoint::parse(s(&case["text"])).unwrap();
        assert_eq!(cp.origin, s(&case["origin"]));
        assert_eq!(cp.size, case["size"].as_u64().unwrap());
        assert_eq!(cp.root, Hash::from_base64(s(&case["root"])).unwrap());
        let extensions: Vec<&str> = case["extensions"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(cp.extensions, extensions);
        assert_eq!(cp.to_text(), s(&case["text"]), "prints back the same text");
        if let Some(data) = case["root_is_leaf_hash_of"].as_str() {
            assert_eq!(cp.root, leaf_hash(data.as_bytes()));
        }
    }
    for case in data["bad_parse"].as_array().unwrap() {
        let err = Checkpoint::parse(s(&case["text"])).unwrap_err();
        let ok = match s(&case["error"]) {
            "bad_size" => err == CheckpointError::BadSize,
            "bad_root" => err == CheckpointError::BadRoot,
            "malformed" => matches!(err, CheckpointError::Malformed(_)),
            other => panic!("unknown error kind {other}"),
        };
        assert!(ok, "{:?}: {err:?}", case["text"]);
    }
}

#[test]
fn a_real_cosigned_checkpoint() {
    let data = vector("checkpoints.json");
    for case in data["signed"].as_array().unwrap() {
        let log = NoteVerifier::from_vkey(s(&case["log_vkey"])).unwrap();
        let (cp, signed) = Checkpoint::open(s(&case["note"]), &log).unwrap();
        assert_eq!(cp.origin, s(&case["origin"]));
        assert_eq!(cp.size, case["size"].as_u64().unwrap());
        assert_eq!(cp.root, Hash::from_base64(s(&case["root"])).unwrap());
        assert_eq!(signed.signatures.len() as u64, case["signature_count"].as_u64().unwrap());
        for cosig in case["cosignatures"].as_array().unwrap() {
            let witness = CosignatureVerifier::from_vkey(s(&cosig["witness_vkey"])).unwrap();
            assert_eq!(witness.to_vkey(), s(&cosig["witness_vkey"]));
            let line = signed.signatures.iter().find(|sig| sig.name == witness.name()).unwrap();
            assert_eq!(verify_cosignature(&cp, line, &witness), Ok(cosig["timestamp"].as_u64().unwrap()));

            // The cosignature covers the size: the same line on another checkpoint fails.
            let other = Checkpoint { size: 42, ..cp.clone() };
            assert_eq!(
                verify_cosignature(&other, line, &witness),
                Err(CosignatureError::BadSignature { name: witness.name().to_owned() })
            );
            // The witness's cosignature is not a note signature by the log.
            assert!(matches!(
                NoteVerifier::from_vkey(s(&cosig["witness_vkey"])),
                Err(NoteError::WrongAlgorithm { .. })
            ));
        }

        // The log's key does not vouch for a checkpoint after a bit of it changed.
        let tampered = s(&case["note"]).replacen("1432088532", "1432088533", 1);
        assert!(matches!(
            Checkpoint::open(&tampered, &log),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
        // A verifier that does not know the log's key rejects the note.
        let stranger =
            NoteVerifier::from_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
        assert!(matches!(
            Checkpoint::open(s(&case["note"]), &stranger),
            Err(CheckpointError::Note(NoteError::UnknownVerifier(_)))
        ));
    }
}

#[test]
fn the_cosignature_spec_example() {
    let data = vector("checkpoints.json");
    for case in data["unverifiable_cosignatures"].as_array().unwrap() {
        let cp = Checkpoint::parse(s(&case["checkpoint"])).unwrap();
        let note = format!("{}\n{}", s(&case["checkpoint"]), s(&case["line"]));
        let signed = SignedNote::parse(&note).unwrap();
        let sig = &signed.signatures[0];
        assert_eq!(sig.name, s(&case["name"]));
        assert_eq!(sig.key_id, key_id(&case["key_id"]));
        assert_eq!(sig.bytes.len(), 72);
        assert_eq!(u64::from_be_bytes(sig.bytes[..8].try_into().unwrap()), case["timestamp"].as_u64().unwrap());
        assert_eq!(signed_message(&cp, case["timestamp"].as_u64().unwrap()), s(&case["signed_message"]));

        // A witness of the same name but another key is not this signer.
        let impostor = Cosigner::new(s(&case["name"]), &[1; 32]).unwrap().verifier();
        assert!(matches!(verify_cosignature(&cp, sig, &impostor), Err(CosignatureError::WrongKey { .. })));
    }
}
