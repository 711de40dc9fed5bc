//! Any text as a QR payload: decoding must never panic, and what decodes re-encodes to the same value.
#![no_main]
use custodia_core::qr::QrPayload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(payload) = QrPayload::decode(text) {
            let again = QrPayload::decode(&payload.encode()).expect("an encoded payload decodes");
            assert_eq!(again, payload);
        }
    }
});
