//! Any bytes as a submitted ledger entry, a binary entry or access-event payload, a leaf, or a
//! signed-request header: parsing and verifying must never panic, nothing unsigned verifies, and a binary
//! payload that parses encodes back to the same bytes (each value has one encoding).
#![no_main]
use custodia_core::entry::{AccessEvent, Leaf, LedgerEntry, entry_date};
use custodia_core::reqsig::RequestSignature;
use custodia_core::statement::{Statement, Unverified};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Unverified::<LedgerEntry>::decode(data) {
        let _ = entry.claimed().content.kind();
        let _ = entry.verify();
    }
    if let Ok(entry) = <LedgerEntry as Statement>::decode(data) {
        assert_eq!(entry.encode().as_deref(), Ok(data), "a binary entry re-encodes differently");
        assert_eq!(entry_date(data), Some(entry.at));
    }
    if let Ok(event) = <AccessEvent as Statement>::decode(data) {
        assert_eq!(event.encode().as_deref(), Ok(data), "a binary access event re-encodes differently");
    }
    let _ = Leaf::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(signature) = RequestSignature::parse(text) {
            let now = custodia_core::time::Timestamp::from_unix(1_800_000_000).unwrap();
            let _ = signature.verify("GET", "/", b"", now);
        }
    }
});
