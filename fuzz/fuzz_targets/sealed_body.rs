//! What a wallet opens from the ledger: sealed boxes of every form (one reader, several readers, a seal
//! session). None may panic, and nothing made without the reader's key opens.
#![no_main]
use custodia_core::seal::{open, open_body, open_from_many, open_session};
use custodia_core::{Identity, MasterSeed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = Identity::from_seed(&MasterSeed::from_bytes([7; 32]));
    let Some((&split, rest)) = data.split_first() else { return };
    let (aad, sealed) = rest.split_at(usize::from(split).min(rest.len()));
    assert!(open(&me, aad, sealed).is_err(), "a forged box opened");
    assert!(open_from_many(&me, aad, sealed).is_err(), "a forged box for several readers opened");
    assert!(open_session(&me, aad, sealed).is_err(), "a forged session box opened");
    assert!(open_body(&me, aad, sealed).is_err(), "a forged body opened");
});
