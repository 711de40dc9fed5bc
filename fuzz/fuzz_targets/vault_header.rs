//! Any bytes as a vault file header: parsing must never panic, and nothing outside the caps is accepted.
#![no_main]
use libfuzzer_sys::fuzz_target;

// custodia-wallet's vault module, compiled on its own: it depends on nothing else of the wallet, and the
// wallet as a whole would bring its HTTP and TLS stack into this sanitizer build.
#[allow(dead_code)]
#[path = "../../crates/custodia-wallet/src/vault.rs"]
mod vault;

use vault::{MAX_M_KIB, MAX_P, MAX_T, read_header};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = read_header(data) {
        assert!(header.kdf.m_kib <= MAX_M_KIB && header.kdf.t <= MAX_T && header.kdf.p <= MAX_P);
    }
});
