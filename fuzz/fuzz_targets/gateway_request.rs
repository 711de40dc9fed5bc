//! What a gateway and a patient's wallet parse from strangers: a request-signature header (then checked
//! against a URL and a grant digest), and an access request's raw bytes (then verified). Neither may
//! panic, and nothing unsigned verifies.
#![no_main]
use custodia_core::access_request::SignedAccessRequest;
use custodia_core::entry::Digest;
use custodia_core::reqsig::RequestSignature;
use custodia_core::time::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let now = Timestamp::from_unix(1_800_000_000).unwrap_or_else(|_| unreachable!());
    if which % 2 == 0 {
        if let Ok(header) = std::str::from_utf8(rest)
            && let Ok(sig) = RequestSignature::parse(header)
        {
            let url = "http://127.0.0.1:7430/fhir/Observation?patient=p1";
            assert!(sig.verify_bound("GET", url, &Digest::of(b"grant"), now).is_err());
        }
    } else if let Ok(request) = SignedAccessRequest::from_bytes(rest) {
        let _ = request.verify(now);
        let _ = SignedAccessRequest::from_bytes(&request.to_bytes());
    }
});
