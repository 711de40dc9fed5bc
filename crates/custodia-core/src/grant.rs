//! Access grants and their revocations: the two statements a patient signs to open and close access.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::keys::{Identity, SigningPublicKey};
use crate::labels::SensitivityLabel;
use crate::purpose::PurposeOfUse;
use crate::scope::Scope;
use crate::statement::{self, Statement, StatementError, Unverified, Verified};
use crate::time::Timestamp;

/// The longest a grant may run. Longer-lived access should be renewed, so the patient is asked again.
pub const MAX_GRANT_SECONDS: u64 = 366 * 86_400;
pub const MAX_SCOPES: usize = 32;
pub const MAX_NOTE_CHARS: usize = 500;
const MAX_REASON_CHARS: usize = 500;

/// A grant's random 128-bit id, printed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantId([u8; 16]);

impl GrantId {
    pub fn generate() -> Self {
        Self(crate::random::array())
    }

    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Debug for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrantId({self})")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a grant id (32 hex digits)")]
pub struct BadGrantId;

impl FromStr for GrantId {
    type Err = BadGrantId;
    fn from_str(text: &str) -> Result<Self, BadGrantId> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.trim().as_bytes()).map_err(|_| BadGrantId)?;
        Ok(Self(bytes.try_into().map_err(|_| BadGrantId)?))
    }
}

crate::codes::serde_as_string!(GrantId);

/// A patient's permission for one grantee to read parts of their record, for one purpose, for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub id: GrantId,
    pub patient: SigningPublicKey,
    pub grantee: SigningPublicKey,
    pub scopes: Vec<Scope>,
    /// Sensitivity labels the grantee may see; resources with any other restricting label are withheld.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_labels: Vec<SensitivityLabel>,
    pub purpose: PurposeOfUse,
    pub issued_at: Timestamp,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reads: Option<u32>,
    /// The patient's own words, e.g. "for my knee surgery". Shown to people, never interpreted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// A standing break-glass grant printed on an emergency card. Its grantee is the card's own key; a
    /// gateway honours it only for an enrolled emergency provider who presents the card as well.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency_card: bool,
}

impl Statement for Grant {
    const PAYLOAD_TYPE: &'static str = "application/vnd.custodia.grant.v1+json";
    const KIND: &'static str = "grant";

    fn signer(&self) -> &SigningPublicKey {
        &self.patient
    }

    fn validate(&self) -> Result<(), StatementError> {
        let bad = |reason: &str| Err(StatementError::invalid::<Self>(reason));
        if self.scopes.is_empty() {
            return bad("no scopes");
        }
        if self.scopes.len() > MAX_SCOPES {
            return bad("too many scopes");
        }
        if self.allowed_labels.iter().collect::<BTreeSet<_>>().len() != self.allowed_labels.len() {
            return bad("a label is listed twice");
        }
        if self.not_after <= self.not_before {
            return bad("not_after must be later than not_before");
        }
        let span = self.not_after.seconds_since(self.not_before);
        if span.unsigned_abs() > MAX_GRANT_SECONDS {
            return bad("a grant may last at most 366 days");
        }
        if self.max_reads == Some(0) {
            return bad("max_reads must be at least 1");
        }
        if self.note.chars().count() > MAX_NOTE_CHARS || self.note.chars().any(|c| c.is_control() && c != '\n') {
            return bad("note is too long or has control characters");
        }
        if self.patient == self.grantee {
            return bad("the grantee is the patient");
        }
        if self.emergency_card && self.purpose != PurposeOfUse::EMERGENCY_TREATMENT {
            return bad("an emergency card's grant is for emergency treatment (ETREAT)");
        }
        Ok(())
    }
}

/// What a patient chooses when granting; the wallet fills in ids, keys and times.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub grantee: SigningPublicKey,
    pub scopes: Vec<Scope>,
    pub allowed_labels: Vec<SensitivityLabel>,
    pub purpose: PurposeOfUse,
    pub duration_seconds: u64,
    pub max_reads: Option<u32>,
    pub note: String,
}

/// Refuses a grant length over [`MAX_GRANT_SECONDS`]; callers check it before asking for a passphrase.
pub fn check_duration(seconds: u64) -> Result<(), StatementError> {
    if seconds > MAX_GRANT_SECONDS {
        return Err(StatementError::invalid::<Grant>("a grant may last at most 366 days"));
    }
    Ok(())
}

impl GrantRequest {
    /// Signs a grant starting at `now`.
    pub fn sign(self, patient: &Identity, now: Timestamp) -> Result<Verified<Grant>, StatementError> {
        self.sign_as(patient, now, false)
    }

    /// Signs the standing grant of an emergency card (see [`Grant::emergency_card`]) with the given id,
    /// which the card carries.
    pub fn sign_emergency_card(
        self,
        patient: &Identity,
        id: GrantId,
        now: Timestamp,
    ) -> Result<Verified<Grant>, StatementError> {
        let signed = self.sign_as(patient, now, true)?;
        let mut grant = signed.statement().clone();
        grant.id = id;
        statement::sign(grant, patient)
    }

    fn sign_as(
        self,
        patient: &Identity,
        now: Timestamp,
        emergency_card: bool,
    ) -> Result<Verified<Grant>, StatementError> {
        check_duration(self.duration_seconds)?;
        let not_after =
            now.checked_add(self.duration_seconds).map_err(|e| StatementError::invalid::<Grant>(e.to_string()))?;
        let grant = Grant {
            id: GrantId::generate(),
            patient: patient.signing_public(),
            grantee: self.grantee,
            scopes: self.scopes,
            allowed_labels: self.allowed_labels,
            purpose: self.purpose,
            issued_at: now,
            not_before: now,
            not_after,
            max_reads: self.max_reads,
            note: self.note,
            emergency_card,
        };
        statement::sign(grant, patient)
    }
}

pub type UnverifiedGrant = Unverified<Grant>;
pub type VerifiedGrant = Verified<Grant>;

/// A patient's withdrawal of a grant. Effective from `revoked_at` for every gateway that has seen it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub grant_id: GrantId,
    pub patient: SigningPublicKey,
    pub revoked_at: Timestamp,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Statement for Revocation {
    const PAYLOAD_TYPE: &'static str = "application/vnd.custodia.revocation.v1+json";
    const KIND: &'static str = "revocation";

    fn signer(&self) -> &SigningPublicKey {
        &self.patient
    }

    fn validate(&self) -> Result<(), StatementError> {
        if self.reason.chars().count() > MAX_REASON_CHARS {
            return Err(StatementError::invalid::<Self>("reason is too long"));
        }
        Ok(())
    }
}

impl Revocation {
    /// Whether this revocation withdraws `grant`: same grant id, signed by the same patient.
    pub fn revokes(&self, grant: &Grant) -> bool {
        self.grant_id == grant.id && self.patient == grant.patient
    }
}

pub type UnverifiedRevocation = Unverified<Revocation>;
pub type VerifiedRevocation = Verified<Revocation>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSeed;

    fn request(grantee: &Identity) -> GrantRequest {
        GrantRequest {
            grantee: grantee.signing_public(),
            scopes: vec!["patient/Observation.rs?category=laboratory".parse().unwrap()],
            allowed_labels: vec!["SEX".parse().unwrap()],
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 7 * 86_400,
            max_reads: Some(10),
            note: "knee surgery".into(),
        }
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T09:00:00Z").unwrap()
    }

    #[test]
    fn sign_decode_verify() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let doctor = Identity::from_seed(&MasterSeed::generate());
        let signed = request(&doctor).sign(&patient, now()).unwrap();
        let json = signed.to_json();
        let back = UnverifiedGrant::decode(json.as_bytes()).unwrap();
        assert_eq!(back.claimed(), signed.statement());
        let verified = back.clone().verify_signed_by(&patient.signing_public()).unwrap();
        assert_eq!(verified.not_after.to_string(), "2026-11-28T09:00:00Z");
        assert!(matches!(back.verify_signed_by(&doctor.signing_public()), Err(StatementError::WrongKey { .. })));
    }

    #[test]
    fn a_grant_signed_by_someone_else_is_a_bad_signature() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let thief = Identity::from_seed(&MasterSeed::generate());
        let doctor = Identity::from_seed(&MasterSeed::generate());
        let signed = request(&doctor).sign(&patient, now()).unwrap();
        let forged = crate::dsse::Envelope::sign(Grant::PAYLOAD_TYPE, signed.envelope().payload.clone(), &thief);
        let back = UnverifiedGrant::from_envelope(forged).unwrap();
        assert!(matches!(back.verify(), Err(StatementError::BadSignature { .. })));
    }

    #[test]
    fn field_limits() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let doctor = Identity::from_seed(&MasterSeed::generate());
        let mut r = request(&doctor);
        r.duration_seconds = MAX_GRANT_SECONDS + 1;
        assert!(matches!(r.sign(&patient, now()), Err(StatementError::Invalid { .. })));
        let mut r = request(&doctor);
        r.scopes.clear();
        assert!(matches!(r.sign(&patient, now()), Err(StatementError::Invalid { .. })));
        let mut r = request(&doctor);
        r.max_reads = Some(0);
        assert!(matches!(r.sign(&patient, now()), Err(StatementError::Invalid { .. })));
        let r = request(&patient);
        assert!(matches!(r.sign(&patient, now()), Err(StatementError::Invalid { .. })));
    }

    #[test]
    fn versions_and_types() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let doctor = Identity::from_seed(&MasterSeed::generate());
        let signed = request(&doctor).sign(&patient, now()).unwrap();
        let mut env = signed.envelope().clone();
        env.payload_type = "application/vnd.custodia.grant.v2+json".into();
        assert!(matches!(UnverifiedGrant::from_envelope(env.clone()), Err(StatementError::UnknownVersion { .. })));
        env.payload_type = Revocation::PAYLOAD_TYPE.into();
        assert!(matches!(UnverifiedGrant::from_envelope(env), Err(StatementError::WrongType { .. })));
    }

    #[test]
    fn revocation_names_its_grant() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let doctor = Identity::from_seed(&MasterSeed::generate());
        let grant = request(&doctor).sign(&patient, now()).unwrap();
        let rev = Revocation {
            grant_id: grant.id,
            patient: patient.signing_public(),
            revoked_at: now(),
            reason: String::new(),
        };
        let signed = statement::sign(rev, &patient).unwrap();
        let back = UnverifiedRevocation::decode(signed.to_json().as_bytes()).unwrap().verify().unwrap();
        assert!(back.revokes(&grant));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn grants_round_trip(
            seed: [u8; 32], other: [u8; 32], days in 1u64..=366, reads in proptest::option::of(1u32..1000),
            note in "[ -~]{0,60}", labels in proptest::sample::subsequence(vec!["PSY", "HIV", "ETH", "R"], 0..4),
        ) {
            proptest::prop_assume!(seed != other);
            let patient = Identity::from_seed(&MasterSeed::from_bytes(seed));
            let doctor = Identity::from_seed(&MasterSeed::from_bytes(other));
            let mut r = request(&doctor);
            r.duration_seconds = days * 86_400;
            r.max_reads = reads;
            r.note = note;
            r.allowed_labels = labels.iter().map(|l| l.parse().unwrap()).collect();
            let signed = r.sign(&patient, now()).unwrap();
            let back = UnverifiedGrant::decode(signed.to_json().as_bytes()).unwrap().verify().unwrap();
            proptest::prop_assert_eq!(back.statement(), signed.statement());
        }
    }
}
