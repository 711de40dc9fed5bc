//! Any text as a scope, and any JSON as a FHIR resource under a fixed grant: never a panic.
#![no_main]
use std::sync::OnceLock;

use custodia_core::grant::{GrantRequest, VerifiedGrant};
use custodia_core::policy::{ReadAttempt, check};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::scope::{Interaction, Scope};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed};
use libfuzzer_sys::fuzz_target;

fn grant() -> &'static VerifiedGrant {
    static GRANT: OnceLock<VerifiedGrant> = OnceLock::new();
    GRANT.get_or_init(|| {
        let patient = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
        let doctor = Identity::from_seed(&MasterSeed::from_bytes([2; 32]));
        GrantRequest {
            grantee: doctor.signing_public(),
            scopes: vec!["patient/Observation.rs?category=laboratory,vital-signs&code=http://loinc.org|4548-4".parse().unwrap()],
            allowed_labels: vec!["PSY".parse().unwrap()],
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 86_400,
            max_reads: Some(5),
            note: String::new(),
        }
        .sign(&patient, Timestamp::from_unix(1_800_000_000).unwrap())
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(scope) = text.parse::<Scope>() {
        assert_eq!(scope.to_string().parse::<Scope>().expect("a printed scope parses"), scope);
    }
    if let Ok(resource) = serde_json::from_str::<serde_json::Value>(text) {
        let request = ReadAttempt {
            interaction: Interaction::Read,
            purpose: PurposeOfUse::TREATMENT,
            at: Timestamp::from_unix(1_800_000_100).unwrap(),
            reads_so_far: 0,
        };
        let _ = check(grant(), &resource, &request);
    }
});
