//! Any bytes or text as a Shamir share: decoding must never panic; a decoded share re-encodes exactly.
#![no_main]
use custodia_core::shamir::SeedShare;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(share) = SeedShare::decode(data) {
        assert_eq!(share.encode().as_slice(), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SeedShare::from_text(text);
    }
});
