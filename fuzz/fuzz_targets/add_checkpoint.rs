//! Any bytes as a C2SP tlog-witness `add-checkpoint` body, a witness's answer (cosignature lines, a
//! `text/x.tlog.size` body) or a tlog-proof: nothing panics, a parsed body prints back to one that
//! parses the same, and a witness's checks on it end in an answer.
#![no_main]
use custodia_log::note::NoteSigner;
use custodia_log::tlog_proof::TlogProof;
use custodia_log::witness::{self, AddCheckpoint};
use custodia_log::{empty_root, leaf_hash};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = AddCheckpoint::parse(data) {
        let again = AddCheckpoint::body(request.old_size, &request.proof, &request.note);
        assert_eq!(AddCheckpoint::parse(again.as_bytes()).as_ref(), Ok(&request));
        let key = NoteSigner::new(&request.checkpoint.origin, &[7; 32]).map(|s| s.verifier());
        if let Ok(key) = key {
            for stored in [None, Some((request.old_size, empty_root())), Some((3, leaf_hash(b"x")))] {
                let refusal = witness::check(&request, std::slice::from_ref(&key), stored).err();
                assert!(refusal.is_none_or(|r| [400, 403, 404, 409, 422].contains(&r.status())));
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = witness::parse_cosignature_lines(text);
    let _ = witness::parse_size_body(text);
    if let Ok(proof) = TlogProof::parse(text) {
        assert_eq!(TlogProof::parse(&proof.to_text()).as_ref(), Ok(&proof));
        let _ = proof.verify_leaf(&leaf_hash(b"x"), proof.index.saturating_add(1), &empty_root());
    }
});
