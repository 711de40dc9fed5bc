//! Core operation costs: grant sign/verify, the policy check, sealed boxes and Shamir 5-of-9, each
//! beside raw Ed25519 sign and verify measured in the same run. Goals from the design brief.

#[path = "../../../benches/ratio.rs"]
mod ratio;

use criterion::Criterion;
use custodia_core::grant::{GrantRequest, UnverifiedGrant};
use custodia_core::policy::{ReadAttempt, check};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::scope::Interaction;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, seal, shamir};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let patient = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
    let doctor = Identity::from_seed(&MasterSeed::from_bytes([2; 32]));
    let now = Timestamp::from_unix(1_800_000_000).expect("in range");
    let request = GrantRequest {
        grantee: doctor.signing_public(),
        scopes: vec![
            "patient/Observation.rs?category=laboratory".parse().expect("valid scope"),
            "patient/Condition.rs".parse().expect("valid scope"),
        ],
        allowed_labels: vec!["PSY".parse().expect("known label")],
        purpose: PurposeOfUse::TREATMENT,
        duration_seconds: 7 * 86_400,
        max_reads: Some(100),
        note: "knee surgery follow-up".into(),
    };
    let signed = request.clone().sign(&patient, now).expect("signs");
    let grant_json = signed.to_json().into_bytes();
    let resource: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/fhir/observation-lab-hba1c.json")).expect("json");
    let read =
        ReadAttempt { interaction: Interaction::Read, purpose: PurposeOfUse::TREATMENT, at: now, reads_so_far: 3 };
    let body = vec![7u8; 1024];
    let boxed = seal::seal(&doctor.box_public(), b"aad", &body).expect("seals");
    let seed = MasterSeed::from_bytes([9; 32]);
    let shares = shamir::split(&seed, 5, 9).expect("splits");

    ratio::bench_ceilings(&mut c);
    c.bench_function("grant sign", |b| ratio::iter(b, "grant sign", || request.clone().sign(&patient, now)));
    c.bench_function("grant decode+verify", |b| {
        ratio::iter(b, "grant decode+verify", || UnverifiedGrant::decode(&grant_json).and_then(|g| g.verify()))
    });
    c.bench_function("policy check", |b| ratio::iter(b, "policy check", || check(&signed, &resource, &read)));
    c.bench_function("sealed box seal 1 KiB", |b| {
        ratio::iter(b, "sealed box seal 1 KiB", || seal::seal(&doctor.box_public(), b"aad", &body))
    });
    c.bench_function("sealed box open 1 KiB", |b| {
        ratio::iter(b, "sealed box open 1 KiB", || seal::open(&doctor, b"aad", &boxed))
    });
    c.bench_function("shamir split 5-of-9", |b| ratio::iter(b, "shamir split 5-of-9", || shamir::split(&seed, 5, 9)));
    c.bench_function("shamir recover 5-of-9", |b| {
        ratio::iter(b, "shamir recover 5-of-9", || shamir::recover(&shares[2..7]))
    });
    c.final_summary();

    ratio::summary(&[
        ("grant sign", "<= 100 us"),
        ("grant decode+verify", "<= 100 us"),
        ("policy check", "<= 5 us"),
        ("sealed box seal 1 KiB", ""),
        ("sealed box open 1 KiB", ""),
        ("shamir split 5-of-9", "<= 100 us"),
        ("shamir recover 5-of-9", "<= 100 us"),
    ]);
}
