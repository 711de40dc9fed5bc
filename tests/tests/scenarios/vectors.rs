//! Test vectors: data files of inputs with their expected outcome, including every input that must be
//! refused, read by one table-driven test per kind. `regenerate_vectors` (ignored) writes them anew from
//! fixed seeds; the files are committed so a change in behaviour shows up as a failing vector, and a change
//! in format as a diff.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use custodia_core::grant::{Grant, GrantId, Revocation, UnverifiedGrant, VerifiedGrant};
use custodia_core::policy::{Decision, Denial, PolicyError, ReadAttempt, check};
use custodia_core::qr::{ContactCard, QrError, QrPayload};
use custodia_core::scope::Interaction;
use custodia_core::shamir::{SeedShare, ShamirError, recover, split};
use custodia_core::statement::{self, Statement, StatementError};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, SigningPublicKey};
use custodia_wallet::vault::{KdfParams, Passphrase, VaultError};
use custodia_wallet::wallet::{Wallet, WalletError};
use data_encoding::{BASE64, HEXLOWER};
use serde_json::{Value, json};
use sha2::Digest;

fn vectors(name: &str) -> Vec<Value> {
    let path = custodia_tests::data_dir().join("vectors").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).unwrap();
    let cases = file["cases"].as_array().unwrap().clone();
    assert!(!cases.is_empty(), "{name} has no cases");
    cases
}

fn str_of<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key].as_str().unwrap_or_else(|| panic!("case {} lacks string {key}", case["name"]))
}

fn identity(byte: u8) -> Identity {
    Identity::from_seed(&MasterSeed::from_bytes([byte; 32]))
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

// ---------------------------------------------------------------------------------------------- grants

fn statement_outcome(e: &StatementError) -> &'static str {
    match e {
        StatementError::Malformed { .. } => "malformed",
        StatementError::UnknownVersion { .. } => "unknown_version",
        StatementError::WrongType { .. } => "wrong_type",
        StatementError::Invalid { .. } => "invalid",
        StatementError::BadSignature { .. } => "bad_signature",
        StatementError::WrongKey { .. } => "wrong_key",
    }
}

fn decode_and_verify(envelope: &str, expected_patient: Option<&str>) -> Result<VerifiedGrant, StatementError> {
    let unverified = UnverifiedGrant::decode(envelope.as_bytes())?;
    match expected_patient {
        Some(key) => unverified.verify_signed_by(&key.parse::<SigningPublicKey>().unwrap()),
        None => unverified.verify(),
    }
}

#[test]
fn grant_vectors() {
    for case in vectors("grants.json") {
        let name = str_of(&case, "name");
        let outcome = match decode_and_verify(str_of(&case, "envelope"), case["expected_patient"].as_str()) {
            Ok(_) => "valid",
            Err(e) => statement_outcome(&e),
        };
        assert_eq!(outcome, str_of(&case, "expect"), "grant vector {name:?}");
    }
}

// ---------------------------------------------------------------------------------------------- policy

fn decision_outcome(d: Result<Decision, PolicyError>) -> String {
    match d {
        Ok(Decision::Allow) => "allow".into(),
        Ok(Decision::Deny(denial)) => format!(
            "deny:{}",
            match denial {
                Denial::NotYetValid { .. } => "not_yet_valid",
                Denial::Expired { .. } => "expired",
                Denial::PurposeMismatch { .. } => "purpose_mismatch",
                Denial::ReadLimitReached { .. } => "read_limit_reached",
                Denial::OutOfScope { .. } => "out_of_scope",
                Denial::LabelNotAllowed { .. } => "label_not_allowed",
            }
        ),
        Err(PolicyError::NotAResource(_)) => "error:not_a_resource".into(),
    }
}

#[test]
fn policy_vectors() {
    let grants: Vec<Value> = vectors("policy.json");
    for case in grants {
        let name = str_of(&case, "name");
        let grant = decode_and_verify(str_of(&case, "grant"), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let request = ReadAttempt {
            interaction: if case["interaction"] == "search" { Interaction::Search } else { Interaction::Read },
            purpose: str_of(&case, "purpose").parse().unwrap(),
            at: at(str_of(&case, "at")),
            reads_so_far: case["reads_so_far"].as_u64().unwrap_or(0) as u32,
        };
        let outcome = decision_outcome(check(&grant, &case["resource"], &request));
        assert_eq!(outcome, str_of(&case, "expect"), "policy vector {name:?}");
    }
}

// ---------------------------------------------------------------------------------------------- vaults

fn vault_outcome(r: &Result<Wallet, WalletError>) -> String {
    match r {
        Ok(w) => format!("ok:{}", w.signing_key()),
        Err(WalletError::Vault(e)) => match e {
            VaultError::NotAVault => "not_a_vault",
            VaultError::UnsupportedVersion(_) => "unsupported_version",
            VaultError::UnknownKdf(_) => "unknown_kdf",
            VaultError::KdfOutOfBounds { .. } => "kdf_out_of_bounds",
            VaultError::Truncated => "truncated",
            VaultError::TooLarge => "too_large",
            VaultError::WrongPassphraseOrTampered => "wrong_passphrase_or_tampered",
            other => panic!("unexpected vault error {other}"),
        }
        .into(),
        Err(e) => panic!("unexpected wallet error {e}"),
    }
}

#[test]
fn vault_vectors() {
    for case in vectors("vaults.json") {
        let name = str_of(&case, "name");
        let dir = tempfile::tempdir().unwrap();
        let bytes = BASE64.decode(str_of(&case, "vault").as_bytes()).unwrap();
        let path = dir.path().join("wallet.vault");
        std::fs::write(&path, &bytes).unwrap();
        let opened = Wallet::open(dir.path(), Passphrase::new(str_of(&case, "passphrase").into()).unwrap());
        assert_eq!(vault_outcome(&opened), str_of(&case, "expect"), "vault vector {name:?}");
        drop(opened);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "vault vector {name:?}: opening changed the file");
    }
}

// ---------------------------------------------------------------------------------------------- shares

fn share_outcome(r: Result<MasterSeed, ShamirError>) -> String {
    match r {
        Ok(seed) => format!("ok:{}", HEXLOWER.encode(seed.expose_secret())),
        Err(ShamirError::Corrupted { index }) => format!("corrupted:{index}"),
        Err(ShamirError::ForeignShare { index }) => format!("foreign_share:{index}"),
        Err(ShamirError::DuplicateShare { index }) => format!("duplicate_share:{index}"),
        Err(ShamirError::Inconsistent { index }) => format!("inconsistent:{index}"),
        Err(ShamirError::WrongShare { index }) => format!("wrong_share:{index}"),
        Err(ShamirError::NotEnoughShares { have, need }) => format!("not_enough:{have}/{need}"),
        Err(ShamirError::CommitmentMismatch) => "commitment_mismatch".into(),
        Err(ShamirError::Malformed(_)) => "malformed".into(),
        Err(ShamirError::UnknownVersion(v)) => format!("unknown_version:{v}"),
        Err(ShamirError::BadParameters { .. }) => "bad_parameters".into(),
    }
}

#[test]
fn share_vectors() {
    for case in vectors("shares.json") {
        let name = str_of(&case, "name");
        let texts = case["shares"].as_array().unwrap();
        let parsed: Result<Vec<SeedShare>, ShamirError> =
            texts.iter().map(|t| SeedShare::from_text(t.as_str().unwrap())).collect();
        let outcome = share_outcome(parsed.and_then(|shares| recover(&shares)));
        assert_eq!(outcome, str_of(&case, "expect"), "share vector {name:?}");
    }
}

// ---------------------------------------------------------------------------------------------- QR

fn qr_outcome(r: Result<QrPayload, QrError>) -> String {
    match r {
        Ok(QrPayload::Contact(card)) => format!("contact:{}:{}", card.name, card.signing),
        Ok(_) => "other".into(),
        Err(QrError::NotCustodia) => "not_custodia".into(),
        Err(QrError::UnknownVersion) => "unknown_version".into(),
        Err(QrError::UnknownKind(k)) => format!("unknown_kind:{k}"),
        Err(QrError::BadChecksum) => "bad_checksum".into(),
        Err(QrError::TooLong) => "too_long".into(),
        Err(e) => format!("error:{e}"),
    }
}

#[test]
fn qr_vectors() {
    for case in vectors("qr.json") {
        let name = str_of(&case, "name");
        assert_eq!(qr_outcome(QrPayload::decode(str_of(&case, "text"))), str_of(&case, "expect"), "QR vector {name:?}");
    }
}

// ---------------------------------------------------------------------------------------------- generator

fn write_vectors(name: &str, about: &str, cases: Vec<Value>) {
    let path = custodia_tests::data_dir().join("vectors").join(name);
    let file = json!({"about": about, "cases": cases});
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
}

/// A grant with fixed id and times, signed by identity 1 for identity 2.
fn fixed_grant(scopes: &[&str], labels: &[&str], max_reads: Option<u32>) -> Grant {
    Grant {
        id: "000102030405060708090a0b0c0d0e0f".parse::<GrantId>().unwrap(),
        patient: identity(1).signing_public(),
        grantee: identity(2).signing_public(),
        scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        allowed_labels: labels.iter().map(|s| s.parse().unwrap()).collect(),
        purpose: "TREAT".parse().unwrap(),
        issued_at: at("2026-11-21T09:00:00Z"),
        not_before: at("2026-11-21T09:00:00Z"),
        not_after: at("2026-11-28T09:00:00Z"),
        max_reads,
        note: "vector".into(),
        emergency_card: false,
    }
}

fn with_payload(envelope: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut env: Value = serde_json::from_str(envelope).unwrap();
    let mut payload: Value =
        serde_json::from_slice(&BASE64.decode(env["payload"].as_str().unwrap().as_bytes()).unwrap()).unwrap();
    edit(&mut payload);
    env["payload"] = json!(BASE64.encode(&serde_json::to_vec(&payload).unwrap()));
    env.to_string()
}

fn sign_raw(payload_type: &str, payload: &Value, by: &Identity) -> String {
    custodia_core::dsse::Envelope::sign(payload_type, serde_json::to_vec(payload).unwrap(), by).to_json()
}

#[test]
#[ignore = "writes tests/vectors/*.json; run when a format changes on purpose"]
fn regenerate_vectors() {
    let patient = identity(1);
    let good = statement::sign(fixed_grant(&["patient/Observation.rs?category=laboratory"], &[], Some(3)), &patient)
        .unwrap()
        .to_json();
    let good_payload: Value =
        serde_json::to_value(fixed_grant(&["patient/Observation.rs?category=laboratory"], &[], Some(3))).unwrap();
    let mut bad_sig: Value = serde_json::from_str(&good).unwrap();
    let sig = bad_sig["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let mut sig_bytes = BASE64.decode(sig.as_bytes()).unwrap();
    sig_bytes[0] ^= 1;
    bad_sig["signatures"][0]["sig"] = json!(BASE64.encode(&sig_bytes));
    let mut too_long = good_payload.clone();
    too_long["not_after"] = json!("2028-01-01T00:00:00Z");
    let mut v1_rev = Revocation {
        grant_id: "000102030405060708090a0b0c0d0e0f".parse().unwrap(),
        patient: patient.signing_public(),
        revoked_at: at("2026-11-22T09:00:00Z"),
        reason: String::new(),
    };
    v1_rev.reason = "vector".into();
    let revocation = statement::sign(v1_rev, &patient).unwrap().to_json();
    write_vectors(
        "grants.json",
        "Signed grants (DSSE JSON) and whether decode+verify accepts them. expected_patient, when present, is the key the verifier requires.",
        vec![
            json!({"name": "valid grant", "envelope": good, "expect": "valid"}),
            json!({"name": "valid grant, required patient matches", "envelope": good, "expected_patient": patient.signing_public().to_string(), "expect": "valid"}),
            json!({"name": "valid grant, a different patient required", "envelope": good, "expected_patient": identity(3).signing_public().to_string(), "expect": "wrong_key"}),
            json!({"name": "tampered signature", "envelope": bad_sig.to_string(), "expect": "bad_signature"}),
            json!({"name": "tampered payload: wider scope", "envelope": with_payload(&good, |p| p["scopes"] = json!(["patient/*.rs"])), "expect": "bad_signature"}),
            json!({"name": "tampered payload: later expiry", "envelope": with_payload(&good, |p| p["not_after"] = json!("2026-12-28T09:00:00Z")), "expect": "bad_signature"}),
            json!({"name": "signed by someone other than the named patient", "envelope": sign_raw(Grant::PAYLOAD_TYPE, &good_payload, &identity(3)), "expect": "bad_signature"}),
            json!({"name": "unknown version", "envelope": sign_raw("application/vnd.custodia.grant.v9+json", &good_payload, &patient), "expect": "unknown_version"}),
            json!({"name": "a revocation is not a grant", "envelope": revocation, "expect": "wrong_type"}),
            json!({"name": "longer than 366 days", "envelope": sign_raw(Grant::PAYLOAD_TYPE, &too_long, &patient), "expect": "invalid"}),
            json!({"name": "unknown field in payload", "envelope": sign_raw(Grant::PAYLOAD_TYPE, &{ let mut p = good_payload.clone(); p["admin"] = json!(true); p }, &patient), "expect": "malformed"}),
            json!({"name": "unknown label", "envelope": sign_raw(Grant::PAYLOAD_TYPE, &{ let mut p = good_payload.clone(); p["allowed_labels"] = json!(["SECRET"]); p }, &patient), "expect": "malformed"}),
            json!({"name": "SMART v1 scope", "envelope": sign_raw(Grant::PAYLOAD_TYPE, &{ let mut p = good_payload.clone(); p["scopes"] = json!(["patient/Observation.read"]); p }, &patient), "expect": "malformed"}),
            json!({"name": "truncated envelope", "envelope": &good[..good.len() / 2], "expect": "malformed"}),
            json!({"name": "not JSON", "envelope": "grant please", "expect": "malformed"}),
            json!({"name": "no signatures", "envelope": ({ let mut e: Value = serde_json::from_str(&good).unwrap(); e["signatures"] = json!([]); e.to_string() }), "expect": "malformed"}),
        ],
    );

    let lab = json!({"resourceType": "Observation", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]});
    let vitals = json!({"resourceType": "Observation", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]});
    let mut hiv_lab = lab.clone();
    hiv_lab["meta"] =
        json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]});
    let mut restricted_lab = lab.clone();
    restricted_lab["meta"] =
        json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]});
    let mut normal_lab = lab.clone();
    normal_lab["meta"] =
        json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}]});
    let lab_grant = good.clone();
    let hiv_grant =
        statement::sign(fixed_grant(&["patient/Observation.rs?category=laboratory"], &["HIV"], None), &patient)
            .unwrap()
            .to_json();
    let case = |name: &str, grant: &str, resource: &Value, purpose: &str, when: &str, reads: u32, expect: &str| json!({"name": name, "grant": grant, "resource": resource, "purpose": purpose, "at": when, "reads_so_far": reads, "interaction": "read", "expect": expect});
    let mid = "2026-11-22T12:00:00Z";
    let mut search_case = case("search under a grant that allows search", &lab_grant, &lab, "TREAT", mid, 0, "allow");
    search_case["interaction"] = json!("search");
    write_vectors(
        "policy.json",
        "A verified grant, a FHIR resource and a read (purpose, time, reads already made): the decision.",
        vec![
            case("lab result in scope and time", &lab_grant, &lab, "TREAT", mid, 0, "allow"),
            search_case,
            case("vital signs are out of a lab-only scope", &lab_grant, &vitals, "TREAT", mid, 0, "deny:out_of_scope"),
            case(
                "HIV-labelled lab denied without the label",
                &lab_grant,
                &hiv_lab,
                "TREAT",
                mid,
                0,
                "deny:label_not_allowed",
            ),
            case("HIV-labelled lab allowed with the label", &hiv_grant, &hiv_lab, "TREAT", mid, 0, "allow"),
            case("restricted (R) lab denied", &hiv_grant, &restricted_lab, "TREAT", mid, 0, "deny:label_not_allowed"),
            case("normal (N) confidentiality does not restrict", &lab_grant, &normal_lab, "TREAT", mid, 0, "allow"),
            case("expired", &lab_grant, &lab, "TREAT", "2026-11-28T09:00:00Z", 0, "deny:expired"),
            case(
                "within the clock-skew tolerance before the start",
                &lab_grant,
                &lab,
                "TREAT",
                "2026-11-21T08:59:01Z",
                0,
                "allow",
            ),
            case(
                "not yet valid beyond the tolerance",
                &lab_grant,
                &lab,
                "TREAT",
                "2026-11-21T08:58:59Z",
                0,
                "deny:not_yet_valid",
            ),
            case("research is not treatment", &lab_grant, &lab, "HRESCH", mid, 0, "deny:purpose_mismatch"),
            case("last allowed read", &lab_grant, &lab, "TREAT", mid, 2, "allow"),
            case("read limit reached", &lab_grant, &lab, "TREAT", mid, 3, "deny:read_limit_reached"),
            case("not a resource", &lab_grant, &json!({"status": "final"}), "TREAT", mid, 0, "error:not_a_resource"),
            case(
                "unreadable security label",
                &lab_grant,
                &json!({"resourceType": "Observation", "meta": {"security": "PSY"}}),
                "TREAT",
                mid,
                0,
                "error:not_a_resource",
            ),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let wallet = Wallet::create(
        &dir.path().join("w"),
        "Vector",
        Passphrase::new("vector passphrase".into()).unwrap(),
        KdfParams::TESTING,
        at("2026-11-21T09:00:00Z"),
    )
    .unwrap();
    let key = wallet.signing_key().to_string();
    drop(wallet);
    let vault = std::fs::read(dir.path().join("w/wallet.vault")).unwrap();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = vault.clone();
        f(&mut v);
        BASE64.encode(&v)
    };
    let vcase = |name: &str, bytes: String, pass: &str, expect: String| json!({"name": name, "vault": bytes, "passphrase": pass, "expect": expect});
    write_vectors(
        "vaults.json",
        "Vault files (base64) opened with a passphrase: the wallet's signing key, or why it does not open. Argon2id parameters are the cheap testing profile.",
        vec![
            vcase("opens with the right passphrase", BASE64.encode(&vault), "vector passphrase", format!("ok:{key}")),
            vcase(
                "wrong passphrase",
                BASE64.encode(&vault),
                "vector passphrase!",
                "wrong_passphrase_or_tampered".into(),
            ),
            vcase(
                "ciphertext bit flipped",
                edit(&|v| {
                    let n = v.len();
                    v[n - 20] ^= 1
                }),
                "vector passphrase",
                "wrong_passphrase_or_tampered".into(),
            ),
            vcase(
                "salt altered (header is authenticated)",
                edit(&|v| v[30] ^= 1),
                "vector passphrase",
                "wrong_passphrase_or_tampered".into(),
            ),
            vcase(
                "truncated in the ciphertext",
                edit(&|v| v.truncate(v.len() - 40)),
                "vector passphrase",
                "wrong_passphrase_or_tampered".into(),
            ),
            vcase("truncated to the header", edit(&|v| v.truncate(60)), "vector passphrase", "truncated".into()),
            vcase("truncated in the header", edit(&|v| v.truncate(20)), "vector passphrase", "truncated".into()),
            vcase("empty file", String::new(), "vector passphrase", "truncated".into()),
            vcase(
                "not a vault",
                BASE64.encode(b"{\"seed\": \"hunter2\"} and then some more bytes to fill a header out"),
                "vector passphrase",
                "not_a_vault".into(),
            ),
            vcase("future format version", edit(&|v| v[8] = 9), "vector passphrase", "unsupported_version".into()),
            vcase("unknown KDF", edit(&|v| v[10] = 7), "vector passphrase", "unknown_kdf".into()),
            vcase(
                "memory cost above the cap",
                edit(&|v| v[11..15].copy_from_slice(&u32::MAX.to_le_bytes())),
                "vector passphrase",
                "kdf_out_of_bounds".into(),
            ),
            vcase(
                "time cost above the cap",
                edit(&|v| v[15..19].copy_from_slice(&1000u32.to_le_bytes())),
                "vector passphrase",
                "kdf_out_of_bounds".into(),
            ),
            vcase(
                "memory cost below the floor",
                edit(&|v| v[11..15].copy_from_slice(&8u32.to_le_bytes())),
                "vector passphrase",
                "kdf_out_of_bounds".into(),
            ),
        ],
    );

    let seed = MasterSeed::from_bytes([0x42; 32]);
    let seed_hex = HEXLOWER.encode(seed.expose_secret());
    let shares = split(&seed, 3, 5).unwrap();
    let other = split(&MasterSeed::from_bytes([0x43; 32]), 3, 5).unwrap();
    let text = |s: &SeedShare| s.to_text().to_string();
    let t: Vec<String> = shares.iter().map(text).collect();
    let corrupted = {
        let mut bytes = shares[1].encode().to_vec();
        bytes[40] ^= 0x10;
        // Re-wrap the damaged bytes in the text form, as a misread printout would be.
        let good_text = t[1].clone();
        let (prefix, _) = good_text.split_once(':').unwrap();
        format!("{prefix}:{}", data_encoding::BASE32_NOPAD.encode(&bytes))
    };
    let forged = {
        // A share with a valid checksum but a different y: what a dishonest guardian could hand over.
        let mut bytes = shares[4].encode().to_vec();
        bytes[60] ^= 0x01;
        let body_end = bytes.len() - 4;
        let sum = sha2::Sha256::new()
            .chain_update(b"custodia/v1/shamir-checksum")
            .chain_update(&bytes[..body_end])
            .finalize();
        bytes[body_end..].copy_from_slice(&sum[..4]);
        let (prefix, _) = t[4].split_once(':').unwrap();
        format!("{prefix}:{}", data_encoding::BASE32_NOPAD.encode(&bytes))
    };
    let scase =
        |name: &str, list: Vec<&String>, expect: String| json!({"name": name, "shares": list, "expect": expect});
    write_vectors(
        "shares.json",
        "Shamir share texts given to recovery: the recovered seed (hex), or the error naming the share at fault. One 3-of-5 split of the seed 42..42 and a foreign one.",
        vec![
            scase("any three recover", vec![&t[0], &t[2], &t[4]], format!("ok:{seed_hex}")),
            scase("all five recover", t.iter().collect(), format!("ok:{seed_hex}")),
            scase("two are not enough", vec![&t[0], &t[1]], "not_enough:2/3".into()),
            scase("the same share twice", vec![&t[0], &t[1], &t[1]], "duplicate_share:2".into()),
            scase(
                "a share of another set",
                vec![&t[0], &t[1], &other.iter().map(text).collect::<Vec<_>>()[2]],
                "foreign_share:3".into(),
            ),
            scase("a damaged share", vec![&t[0], &corrupted, &t[2]], "corrupted:2".into()),
            scase("a forged share among four is named", vec![&t[0], &t[1], &t[2], &forged], "wrong_share:5".into()),
            scase("a forged share among exactly three", vec![&t[0], &t[1], &forged], "commitment_mismatch".into()),
        ],
    );

    let alice = identity(1);
    let card = ContactCard::new("Ada Lovelace", alice.signing_public(), alice.box_public()).unwrap();
    let good_qr = QrPayload::Contact(card).encode();
    let flip = |s: &str, i: usize| {
        let mut b = s.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let qcase = |name: &str, text: String, expect: String| json!({"name": name, "text": text, "expect": expect});
    write_vectors(
        "qr.json",
        "QR payload texts: what they decode to, or why not.",
        vec![
            qcase("contact card", good_qr.clone(), format!("contact:Ada Lovelace:{}", alice.signing_public())),
            qcase(
                "contact card, lower case",
                good_qr.to_lowercase(),
                format!("contact:Ada Lovelace:{}", alice.signing_public()),
            ),
            qcase("one character misread", flip(&good_qr, good_qr.len() - 10), "bad_checksum".into()),
            qcase("unknown kind", good_qr.replacen(":C:", ":Z:", 1), "unknown_kind:Z".into()),
            qcase("newer version", good_qr.replacen("CU1", "CU9", 1), "unknown_version".into()),
            qcase("someone else's QR code", "https://example.com/".into(), "not_custodia".into()),
            qcase("far too long", format!("CU1:C:{}", "A".repeat(5000)), "too_long".into()),
        ],
    );
}
