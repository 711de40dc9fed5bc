//! Any text as a checkpoint, a signed note, a verifier key or a tile path: parsers must never panic,
//! and whatever parses must print back to something that parses the same.
#![no_main]
use custodia_log::checkpoint::Checkpoint;
use custodia_log::cosignature::CosignatureVerifier;
use custodia_log::note::{NoteVerifier, SignedNote};
use custodia_log::tiles;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(Checkpoint::parse(&checkpoint.to_text()).as_ref(), Ok(&checkpoint));
    }
    if let Ok(note) = SignedNote::parse(text) {
        let _ = note.verify(&[]);
    }
    if let Ok(key) = NoteVerifier::from_vkey(text) {
        assert_eq!(NoteVerifier::from_vkey(&key.to_vkey()).as_ref(), Ok(&key));
    }
    let _ = CosignatureVerifier::from_vkey(text);
    if let Some(request) = tiles::parse_path(text) {
        assert_eq!(tiles::parse_path(&tiles::format_path(&request)), Some(request));
    }
});
