//! Any bytes as a signed grant: decoding and verifying must never panic, and nothing unsigned verifies.
#![no_main]
use custodia_core::grant::UnverifiedGrant;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(grant) = UnverifiedGrant::decode(data) {
        let _ = grant.verify();
    }
});
