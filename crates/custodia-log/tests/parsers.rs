//! The parsers take untrusted text: they must never panic, must round-trip what this crate writes,
//! and must refuse what is over their caps.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use custodia_log::checkpoint::{CheckpointError, MAX_CHECKPOINT_BYTES, MAX_EXTENSION_LINES};
use custodia_log::cosignature::{CosignatureError, CosignatureVerifier, Cosigner, MAX_TIMESTAMP, verify_cosignature};
use custodia_log::note::{self, MAX_NOTE_BYTES, MAX_SIGNATURES, NoteError, NoteSignature};
use custodia_log::{Checkpoint, Hash, NoteSigner, NoteVerifier, SignedNote, leaf_hash};
use proptest::prelude::*;

/// Text built from the pieces these formats are made of, so the fuzzing reaches past the first check.
fn note_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\n".to_owned()),
        Just("\n\n".to_owned()),
        Just("\u{2014} ".to_owned()),
        Just("+".to_owned()),
        Just(" ".to_owned()),
        Just("PRIVATE+KEY+".to_owned()),
        Just("=".to_owned()),
        "[0-9]{1,21}",
        "[a-f0-9]{8}",
        "[A-Za-z0-9+/]{4,96}={0,2}",
        "[a-z./]{1,12}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn signer(name: &str, byte: u8) -> NoteSigner {
    NoteSigner::new(name, &[byte; 32]).unwrap()
}

proptest! {
    #[test]
    fn parsers_never_panic_on_any_string(text in any::<String>()) {
        let _ = Checkpoint::parse(&text);
        let _ = SignedNote::parse(&text);
        let _ = NoteVerifier::from_vkey(&text);
        let _ = NoteSigner::from_skey(&text);
        let _ = CosignatureVerifier::from_vkey(&text);
        let _ = Hash::from_base64(&text);
        let _ = Hash::from_hex(&text);
    }

    #[test]
    fn parsers_never_panic_on_note_like_text(text in note_like()) {
        let _ = Checkpoint::parse(&text);
        let verifier = signer("example.com/log", 1).verifier();
        if let Ok(note) = SignedNote::parse(&text) {
            let _ = note.verify(std::slice::from_ref(&verifier));
            prop_assert_eq!(SignedNote::parse(&note.to_string()), Ok(note));
        }
        let _ = Checkpoint::open(&text, &verifier);
        let _ = NoteVerifier::from_vkey(&text);
        let _ = NoteSigner::from_skey(&text);
        let _ = CosignatureVerifier::from_vkey(&text);
    }

    #[test]
    fn checkpoints_round_trip(
        origin in "[a-z0-9./-]{1,40}",
        size: u64,
        root: [u8; 32],
        extensions in prop::collection::vec("[ -~]{1,30}", 0..4),
    ) {
        let cp = Checkpoint { origin, size, root: Hash(root), extensions };
        prop_assert_eq!(Checkpoint::parse(&cp.to_text()), Ok(cp.clone()));
        let log = NoteSigner::new(&cp.origin, &root).unwrap();
        let (opened, signed) = Checkpoint::open(&cp.sign(&log), &log.verifier()).unwrap();
        prop_assert_eq!(&opened, &cp);
        prop_assert_eq!(signed.text, cp.to_text());
    }

    #[test]
    fn notes_round_trip(text in "([^\u{0}-\u{1f}]{0,40}\n){1,5}", seed: [u8; 32], name in "[!-*,-~]{1,20}") {
        let signer = NoteSigner::new(&name, &seed).unwrap();
        let signed = signer.sign(&text).unwrap();
        prop_assert_eq!(note::open(&signed, &[signer.verifier()]), Ok(text.clone()));
        prop_assert_eq!(NoteVerifier::from_vkey(&signer.verifier().to_vkey()), Ok(signer.verifier()));
        prop_assert_eq!(NoteSigner::from_skey(&signer.to_skey()).unwrap().verifier(), signer.verifier());
    }

    #[test]
    fn cosignatures_round_trip(seed: [u8; 32], size: u64, root: [u8; 32], timestamp in 0..=MAX_TIMESTAMP) {
        let cp = Checkpoint { origin: "example.com/log".into(), size, root: Hash(root), extensions: vec![] };
        let witness = Cosigner::new("witness.example/w1", &seed).unwrap();
        let note = format!("{}{}", cp.sign(&signer("example.com/log", 2)), witness.cosign(&cp, timestamp));
        let signed = SignedNote::parse(&note).unwrap();
        prop_assert_eq!(verify_cosignature(&cp, &signed.signatures[1], &witness.verifier()), Ok(timestamp));
        prop_assert_eq!(CosignatureVerifier::from_vkey(&witness.verifier().to_vkey()), Ok(witness.verifier()));
    }
}

#[test]
fn caps_are_enforced() {
    let log = signer("example.com/log", 3);
    let line = log.sign_line("x\n");
    let many = format!("x\n\n{}", line.repeat(MAX_SIGNATURES + 1));
    assert_eq!(SignedNote::parse(&many), Err(NoteError::TooLarge));
    let enough = format!("x\n\n{}", line.repeat(MAX_SIGNATURES));
    assert_eq!(note::open(&enough, &[log.verifier()]), Ok("x\n".to_owned()));

    let huge = format!("{}\n\n{line}", "x".repeat(MAX_NOTE_BYTES));
    assert_eq!(SignedNote::parse(&huge), Err(NoteError::TooLarge));
    assert_eq!(log.sign(&format!("{}\n", "x".repeat(MAX_NOTE_BYTES))), Err(NoteError::TooLarge));

    let root = leaf_hash(b"").to_base64();
    let long = format!("example.com/log\n1\n{root}\n{}\n", "x".repeat(MAX_CHECKPOINT_BYTES));
    assert_eq!(Checkpoint::parse(&long), Err(CheckpointError::TooLarge));
    let lines = format!("example.com/log\n1\n{root}\n{}", "e\n".repeat(MAX_EXTENSION_LINES + 1));
    assert_eq!(Checkpoint::parse(&lines), Err(CheckpointError::TooLarge));

    let key = format!("{}+00000000+AQ==", "n".repeat(5000));
    assert!(matches!(NoteVerifier::from_vkey(&key), Err(NoteError::BadKey(_))));
}

#[test]
fn signing_refuses_text_that_is_not_a_note() {
    let log = signer("example.com/log", 4);
    for bad in ["", "no newline", "a\rb\n", "tab\there\n"] {
        assert!(matches!(log.sign(bad), Err(NoteError::Malformed(_))), "{bad:?}");
    }
    for bad in ["", "has space", "has+plus", "tab\t", "nl\n", "nbsp\u{a0}"] {
        assert!(matches!(NoteSigner::new(bad, &[0; 32]), Err(NoteError::BadName(_))), "{bad:?}");
        assert!(matches!(Cosigner::new(bad, &[0; 32]), Err(NoteError::BadName(_))), "{bad:?}");
    }
    // Text with blank lines inside is a valid note: the last blank line separates the signatures.
    let text = "a\n\nb\n\n";
    assert_eq!(note::open(&log.sign(text).unwrap(), &[log.verifier()]), Ok(text.to_owned()));
}

#[test]
fn origin_must_be_the_key_name() {
    let log = signer("example.com/log", 5);
    let cp = Checkpoint { origin: "example.com/other".into(), size: 1, root: leaf_hash(b"a"), extensions: vec![] };
    assert_eq!(
        Checkpoint::open(&cp.sign(&log), &log.verifier()),
        Err(CheckpointError::OriginMismatch { origin: "example.com/other".into(), key_name: "example.com/log".into() })
    );
}

#[test]
fn verification_needs_every_known_signature_good() {
    let (a, b) = (signer("a.example", 6), signer("b.example", 7));
    let text = "hello\n";
    let good = format!("{text}\n{}{}", a.sign_line(text), b.sign_line(text));
    let parsed = SignedNote::parse(&good).unwrap();
    assert_eq!(parsed.verify(&[a.verifier(), b.verifier()]), Ok(vec!["a.example".into(), "b.example".into()]));
    assert_eq!(parsed.verify(&[b.verifier()]), Ok(vec!["b.example".into()]));

    // b's line replaced by b's signature over other text: a known key with a bad signature.
    let bad = format!("{text}\n{}{}", a.sign_line(text), b.sign_line("other\n"));
    let parsed = SignedNote::parse(&bad).unwrap();
    assert_eq!(parsed.verify(&[a.verifier()]), Ok(vec!["a.example".into()]), "an unknown key's line is ignored");
    assert_eq!(parsed.verify(&[a.verifier(), b.verifier()]), Err(NoteError::BadSignature { name: "b.example".into() }));

    assert_eq!(
        SignedNote::parse(&good).unwrap().verify(&[]),
        Err(NoteError::UnknownVerifier("any trusted key".into()))
    );
    assert_eq!(
        SignedNote::parse(&good).unwrap().verify(&[signer("c.example", 9).verifier()]).unwrap_err().to_string(),
        "the note is not signed by c.example"
    );
}

#[test]
fn cosignature_refusals() {
    let cp = Checkpoint { origin: "example.com/log".into(), size: 7, root: leaf_hash(b"r"), extensions: vec![] };
    let witness = Cosigner::new("witness.example/w1", &[10; 32]).unwrap();
    let parse = |line: String| SignedNote::parse(&format!("{}\n{line}", cp.to_text())).unwrap().signatures.remove(0);

    let too_late = parse(witness.cosign(&cp, MAX_TIMESTAMP + 1));
    assert_eq!(
        verify_cosignature(&cp, &too_late, &witness.verifier()),
        Err(CosignatureError::BadTimestamp(MAX_TIMESTAMP + 1))
    );

    let good = parse(witness.cosign(&cp, 1_700_000_000));
    let short = NoteSignature { bytes: good.bytes[..71].to_vec(), ..good.clone() };
    assert_eq!(verify_cosignature(&cp, &short, &witness.verifier()), Err(CosignatureError::Malformed(71)));

    // A cosignature's timestamp is signed: changing it breaks the signature.
    let mut moved = good.clone();
    moved.bytes[7] ^= 1;
    assert!(matches!(verify_cosignature(&cp, &moved, &witness.verifier()), Err(CosignatureError::BadSignature { .. })));

    // A plain note signature by the same key is not a cosignature (different key id, different message).
    let plain = NoteSigner::new("witness.example/w1", &[10; 32]).unwrap();
    let as_note = parse(plain.sign_line(&cp.to_text()));
    assert!(matches!(verify_cosignature(&cp, &as_note, &witness.verifier()), Err(CosignatureError::WrongKey { .. })));

    // And a cosignature is not a plain note signature: the log key's verifier does not know its key id.
    let note = format!("{}\n{}", cp.to_text(), witness.cosign(&cp, 1));
    assert!(matches!(note::open(&note, &[plain.verifier()]), Err(NoteError::UnknownVerifier(_))));
    // Extension lines are covered.
    let extended = Checkpoint { extensions: vec!["ext".into()], ..cp.clone() };
    assert!(matches!(
        verify_cosignature(&extended, &good, &witness.verifier()),
        Err(CosignatureError::BadSignature { .. })
    ));
}
