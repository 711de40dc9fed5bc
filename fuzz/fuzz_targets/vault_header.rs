//! Any bytes as a vault file header: parsing must never panic, and nothing outside the caps is accepted.
#![no_main]
use custodia_wallet::vault::{MAX_M_KIB, MAX_P, MAX_T, read_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = read_header(data) {
        assert!(header.kdf.m_kib <= MAX_M_KIB && header.kdf.t <= MAX_T && header.kdf.p <= MAX_P);
    }
});
