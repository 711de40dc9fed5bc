//! Any bytes as a submitted ledger entry, a leaf, or a signed-request header: parsing and verifying must
//! never panic, and nothing unsigned verifies.
#![no_main]
use custodia_core::entry::{Leaf, LedgerEntry};
use custodia_core::reqsig::RequestSignature;
use custodia_core::statement::Unverified;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Unverified::<LedgerEntry>::decode(data) {
        let _ = entry.claimed().content.kind();
        let _ = entry.verify();
    }
    let _ = Leaf::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(signature) = RequestSignature::parse(text) {
            let now = custodia_core::time::Timestamp::from_unix(1_800_000_000).unwrap();
            let _ = signature.verify("GET", "/", b"", now);
        }
    }
});
