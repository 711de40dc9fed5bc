//! A signed request for access, as an emergency room or a clinician shows it on a screen for the patient's
//! wallet to scan: who asks, for what, why, for how long, and where to deliver the answer.
//!
//! It travels in a QR code (kind `R`, see [`crate::qr`]), so it is a compact binary body rather than JSON,
//! signed with Ed25519 over the DSSE pre-authentication encoding of [`PAYLOAD_TYPE`] and the exact body
//! bytes. The patient's wallet verifies the signature, then looks the requester up on the ledger: only a
//! member the network enrolled as a provider or an emergency provider can be answered, and the wallet
//! shows that enrollment's name and organisation, not anything the code claims.
//!
//! # Body (version 1)
//!
//! ```text
//! requester signing key (32) ‖ request id (16) ‖ created at, unix seconds (8, big-endian)
//! ‖ answerable for, seconds (2) ‖ purpose (1, index into PURPOSE_CODES) ‖ grant duration, seconds (4)
//! ‖ scope count (1) ‖ scopes ‖ ledger URL length (1) ‖ ledger URL
//! ```
//!
//! A scope is one byte: `1..` names an entry of [`COMMON_SCOPES`] (so the usual requests stay small enough
//! to scan), `0` is followed by a length byte and the scope's text. The 64-byte signature follows the body.

use std::fmt;

use crate::dsse::pae;
use crate::entry::EntryNonce;
use crate::grant::MAX_GRANT_SECONDS;
use crate::keys::{Identity, SigningPublicKey};
use crate::purpose::{PURPOSE_CODES, PurposeOfUse};
use crate::scope::Scope;
use crate::time::Timestamp;

pub const PAYLOAD_TYPE: &str = "application/vnd.custodia.access-request.v1";
/// The longest a request stays answerable: it is shown for a patient standing at the desk.
pub const MAX_ANSWERABLE_SECONDS: u16 = 30 * 60;
/// How long a request stays answerable unless the requester says otherwise.
pub const DEFAULT_ANSWERABLE_SECONDS: u16 = 10 * 60;
/// At most this many scopes in one request.
pub const MAX_REQUEST_SCOPES: usize = 16;
/// Longest ledger URL a request may carry.
pub const MAX_LEDGER_URL: usize = 200;
/// How far a request's creation may lie in the wallet's future (clocks disagree a little).
const CLOCK_SKEW_SECONDS: i64 = 120;

/// The scopes a request names by number: the ones the app's plain-word categories and the emergency card
/// use. The order is part of the format: append only.
pub const COMMON_SCOPES: &[&str] = &[
    "patient/AllergyIntolerance.rs",
    "patient/MedicationRequest.rs",
    "patient/MedicationStatement.rs",
    "patient/Condition.rs",
    "patient/Observation.rs?category=laboratory",
    "patient/DiagnosticReport.rs?category=LAB",
    "patient/DiagnosticReport.rs?category=RAD",
    "patient/ImagingStudy.rs",
    "patient/DocumentReference.rs",
    "patient/Immunization.rs",
    "patient/Observation.rs?category=vital-signs",
    "patient/Observation.rs?code=http://loinc.org|882-1",
    "patient/Procedure.rs",
    "patient/Patient.rs",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessRequestError {
    #[error("not a valid access request: {0}")]
    Malformed(&'static str),
    #[error("the access request's signature does not verify: it was altered or not made by {0}")]
    BadSignature(String),
    #[error("the access request expired at {0}; ask for a new code")]
    Expired(Timestamp),
    #[error("the access request is dated {0}, in the future; check this device's clock")]
    FromTheFuture(Timestamp),
    #[error("invalid access request: {0}")]
    Invalid(String),
}

/// What the requester asks for. Build it, then [`AccessRequest::sign`] it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequest {
    pub requester: SigningPublicKey,
    /// Random; the answer names it, so the requester can match answer to request.
    pub id: EntryNonce,
    pub created_at: Timestamp,
    pub answerable_seconds: u16,
    pub purpose: PurposeOfUse,
    pub duration_seconds: u32,
    pub scopes: Vec<Scope>,
    /// The ledger the requester is enrolled on; the answer goes to the requester's mailbox there.
    pub ledger: String,
}

impl AccessRequest {
    pub fn new(
        requester: &Identity,
        scopes: Vec<Scope>,
        purpose: PurposeOfUse,
        duration_seconds: u32,
        ledger: String,
        now: Timestamp,
    ) -> Self {
        Self {
            requester: requester.signing_public(),
            id: EntryNonce::generate(),
            created_at: now,
            answerable_seconds: DEFAULT_ANSWERABLE_SECONDS,
            purpose,
            duration_seconds,
            scopes,
            ledger,
        }
    }

    /// When the request stops being answerable.
    pub fn expires_at(&self) -> Timestamp {
        self.created_at.checked_add(u64::from(self.answerable_seconds)).unwrap_or(self.created_at)
    }

    fn validate(&self) -> Result<(), AccessRequestError> {
        let bad = |reason: &str| Err(AccessRequestError::Invalid(reason.to_owned()));
        if self.scopes.is_empty() || self.scopes.len() > MAX_REQUEST_SCOPES {
            return bad("a request names 1 to 16 scopes");
        }
        if self.answerable_seconds == 0 || self.answerable_seconds > MAX_ANSWERABLE_SECONDS {
            return bad("a request is answerable for 1 second to 30 minutes");
        }
        if self.duration_seconds == 0 || u64::from(self.duration_seconds) > MAX_GRANT_SECONDS {
            return bad("the asked grant lasts 1 second to 366 days");
        }
        if self.ledger.is_empty() || self.ledger.len() > MAX_LEDGER_URL || self.ledger.chars().any(char::is_control) {
            return bad("the ledger URL is empty, too long or has control characters");
        }
        if self.scopes.iter().any(|s| s.to_string().len() > usize::from(u8::MAX)) {
            return bad("a scope is longer than 255 characters");
        }
        Ok(())
    }

    /// Checks and signs.
    pub fn sign(self, requester: &Identity) -> Result<SignedAccessRequest, AccessRequestError> {
        if requester.signing_public() != self.requester {
            return Err(AccessRequestError::Invalid("the request names another requester".into()));
        }
        self.validate()?;
        let body = self.encode();
        let sig = requester.sign(&pae(PAYLOAD_TYPE, &body));
        Ok(SignedAccessRequest { request: self, body, sig })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.ledger.len() + 2 * self.scopes.len());
        out.extend_from_slice(self.requester.as_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.created_at.unix().to_be_bytes());
        out.extend_from_slice(&self.answerable_seconds.to_be_bytes());
        let purpose = PURPOSE_CODES.iter().position(|(code, _)| *code == self.purpose.code()).unwrap_or(0);
        // `validate` bounds every count and length below, so each fits its byte.
        out.push(u8::try_from(purpose).unwrap_or(0));
        out.extend_from_slice(&self.duration_seconds.to_be_bytes());
        out.push(u8::try_from(self.scopes.len()).unwrap_or(0));
        for scope in &self.scopes {
            let text = scope.to_string();
            match COMMON_SCOPES.iter().position(|s| *s == text) {
                Some(i) => out.push(u8::try_from(i + 1).unwrap_or(0)),
                None => {
                    out.push(0);
                    out.push(u8::try_from(text.len()).unwrap_or(0));
                    out.extend_from_slice(text.as_bytes());
                }
            }
        }
        out.push(u8::try_from(self.ledger.len()).unwrap_or(0));
        out.extend_from_slice(self.ledger.as_bytes());
        out
    }

    fn decode(body: &[u8]) -> Result<Self, AccessRequestError> {
        let bad = AccessRequestError::Malformed;
        let mut r = crate::qr::Reader::new(body);
        let requester = SigningPublicKey::from_bytes(r.array().map_err(|_| bad("too short"))?)
            .map_err(|_| bad("the requester's key is not a valid Ed25519 key"))?;
        let id = EntryNonce::from_bytes(*r.array().map_err(|_| bad("too short"))?);
        let created = i64::from_be_bytes(*r.array().map_err(|_| bad("too short"))?);
        let created_at = Timestamp::from_unix(created).map_err(|_| bad("the creation time is out of range"))?;
        let answerable_seconds = u16::from_be_bytes(*r.array().map_err(|_| bad("too short"))?);
        let purpose_index = r.byte().map_err(|_| bad("too short"))?;
        let (purpose_code, _) = PURPOSE_CODES.get(usize::from(purpose_index)).ok_or(bad("unknown purpose of use"))?;
        let purpose: PurposeOfUse = purpose_code.parse().map_err(|_| bad("unknown purpose of use"))?;
        let duration_seconds = u32::from_be_bytes(*r.array().map_err(|_| bad("too short"))?);
        let count = r.byte().map_err(|_| bad("too short"))?;
        let mut scopes = Vec::with_capacity(usize::from(count).min(MAX_REQUEST_SCOPES));
        for _ in 0..count {
            let text = match r.byte().map_err(|_| bad("too short"))? {
                0 => {
                    let len = r.byte().map_err(|_| bad("too short"))?;
                    std::str::from_utf8(r.take(usize::from(len)).map_err(|_| bad("too short"))?)
                        .map_err(|_| bad("a scope is not UTF-8"))?
                }
                n => COMMON_SCOPES.get(usize::from(n) - 1).copied().ok_or(bad("unknown common scope"))?,
            };
            scopes.push(text.parse().map_err(|_| bad("a scope does not parse"))?);
        }
        let len = r.byte().map_err(|_| bad("too short"))?;
        let ledger = std::str::from_utf8(r.take(usize::from(len)).map_err(|_| bad("too short"))?)
            .map_err(|_| bad("the ledger URL is not UTF-8"))?
            .to_owned();
        r.finish().map_err(|_| bad("unexpected trailing data"))?;
        let request = Self { requester, id, created_at, answerable_seconds, purpose, duration_seconds, scopes, ledger };
        request.validate()?;
        Ok(request)
    }
}

/// A request with its signature, as carried in a QR code. Parsing it checks the form; [`Self::verify`]
/// checks the signature and the time. Neither checks the requester's enrollment: the wallet does that
/// with the ledger.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedAccessRequest {
    request: AccessRequest,
    body: Vec<u8>,
    sig: [u8; 64],
}

impl fmt::Debug for SignedAccessRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedAccessRequest").field("request", &self.request).finish_non_exhaustive()
    }
}

impl SignedAccessRequest {
    /// The body and the signature, as the QR code carries them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.body.clone();
        out.extend_from_slice(&self.sig);
        out
    }

    /// Parses body and signature; does not verify.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AccessRequestError> {
        let split = bytes.len().checked_sub(64).ok_or(AccessRequestError::Malformed("too short"))?;
        let (body, sig) = bytes.split_at(split);
        let sig: [u8; 64] = sig.try_into().map_err(|_| AccessRequestError::Malformed("too short"))?;
        Ok(Self { request: AccessRequest::decode(body)?, body: body.to_vec(), sig })
    }

    /// What the request claims, whether or not it verifies.
    pub fn claimed(&self) -> &AccessRequest {
        &self.request
    }

    /// Checks the signature, then that the request is answerable at `now`.
    pub fn verify(&self, now: Timestamp) -> Result<&AccessRequest, AccessRequestError> {
        let r = &self.request;
        if !r.requester.verify(&pae(PAYLOAD_TYPE, &self.body), &self.sig) {
            return Err(AccessRequestError::BadSignature(r.requester.to_string()));
        }
        if r.created_at.seconds_since(now) > CLOCK_SKEW_SECONDS {
            return Err(AccessRequestError::FromTheFuture(r.created_at));
        }
        if now >= r.expires_at() {
            return Err(AccessRequestError::Expired(r.expires_at()));
        }
        Ok(r)
    }
}

/// The associated data an [`AccessAnswer`] is sealed under, so no other sealed message passes for one.
pub const ANSWER_AAD: &[u8] = b"custodia-mail/access-answer/v1";

/// A patient wallet's answer to a request, left in the requester's mailbox on the ledger and sealed to the
/// requester: the signed grant's JSON, or nothing when the patient declined.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessAnswer {
    pub request: EntryNonce,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSeed;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(s).unwrap()
    }

    fn request(id: &Identity, scopes: &[&str]) -> AccessRequest {
        AccessRequest::new(
            id,
            scopes.iter().map(|s| s.parse().unwrap()).collect(),
            PurposeOfUse::EMERGENCY_TREATMENT,
            12 * 3600,
            "http://127.0.0.1:7420".into(),
            at(1_800_000_000),
        )
    }

    #[test]
    fn round_trips_and_verifies() {
        let er = Identity::from_seed(&MasterSeed::generate());
        let asked = request(&er, &["patient/AllergyIntolerance.rs", "patient/Observation.rs?category=laboratory|x"]);
        let signed = asked.clone().sign(&er).unwrap();
        let parsed = SignedAccessRequest::from_bytes(&signed.to_bytes()).unwrap();
        assert_eq!(parsed, signed);
        assert_eq!(parsed.verify(at(1_800_000_060)).unwrap(), &asked);
        // A common scope costs one byte; the other is spelled out.
        assert!(signed.to_bytes().len() < 200, "{}", signed.to_bytes().len());
    }

    #[test]
    fn refuses_altered_expired_and_future_requests() {
        let er = Identity::from_seed(&MasterSeed::generate());
        let signed = request(&er, &["patient/Condition.rs"]).sign(&er).unwrap();
        let mut bytes = signed.to_bytes();
        let purpose_at = 32 + 16 + 8 + 2;
        bytes[purpose_at] = 0; // ETREAT → TREAT
        let altered = SignedAccessRequest::from_bytes(&bytes).unwrap();
        assert!(matches!(altered.verify(at(1_800_000_000)), Err(AccessRequestError::BadSignature(_))));
        let expired = at(1_800_000_000 + i64::from(DEFAULT_ANSWERABLE_SECONDS));
        assert!(matches!(signed.verify(expired), Err(AccessRequestError::Expired(_))));
        assert!(matches!(signed.verify(at(1_799_999_000)), Err(AccessRequestError::FromTheFuture(_))));
    }

    #[test]
    fn refuses_malformed_bodies_without_panicking() {
        let er = Identity::from_seed(&MasterSeed::generate());
        let bytes = request(&er, &["patient/Condition.rs"]).sign(&er).unwrap().to_bytes();
        for cut in 0..bytes.len() {
            assert!(SignedAccessRequest::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.insert(bytes.len() - 64, 0);
        assert!(SignedAccessRequest::from_bytes(&extra).is_err());
        let wrong_signer = Identity::from_seed(&MasterSeed::generate());
        assert!(request(&er, &["patient/Condition.rs"]).sign(&wrong_signer).is_err());
        assert!(request(&er, &[]).sign(&er).is_err());
    }
}
