//! Ledger entries: the signed statements the ledger appends, and the leaf that commits to each.
//!
//! An entry is a DSSE envelope of type [`ENTRY_PAYLOAD_TYPE`] signed by whoever submits it: an enrolled
//! patient for their own enrollment, grants, revocations and redactions; an enrolled gateway for access
//! events; the network authority for enrolling members. What the ledger must check is in the clear
//! (signer, kind, the patient's opaque [`Tag`], a grant id); everything that names a provider, a scope or
//! a record is a sealed body that only its recipients open.
//!
//! The Merkle leaf is not the entry but a [`Leaf`]: kind, logging time and the SHA-256 of the envelope's
//! bytes. The tree therefore survives a body's redaction: the envelope can go, its hash stays, and every
//! proof still verifies. Leaves carry no tag and no key, so the public tiles show counts and times only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::grant::GrantId;
use crate::keys::{BoxPublicKey, SigningPublicKey};
use crate::labels::SensitivityLabel;
use crate::purpose::PurposeOfUse;
use crate::statement::{Statement, StatementError};
use crate::time::Timestamp;

mod codec;

/// The payload type of every ledger entry.
pub const ENTRY_PAYLOAD_TYPE: &str = "application/vnd.custodia.entry.v2";
/// The largest sealed body an entry may carry. A grant or an access event naming a few dozen resources
/// fits in a few KiB; the cap bounds what a submitter can make the ledger store.
pub const MAX_BODY_BYTES: usize = 12 * 1024;
/// Member names and organisations are shown to patients; long enough for any real name.
pub const MAX_NAME_CHARS: usize = 200;

macro_rules! hex_bytes {
    ($(#[$doc:meta])* $ty:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty([u8; $len]);

        impl $ty {
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                let bad = || format!("not {} ({} hex digits)", $what, 2 * $len);
                if text.len() != 2 * $len {
                    return Err(bad());
                }
                let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).map_err(|_| bad())?;
                Ok(Self(bytes.try_into().map_err(|_| bad())?))
            }
        }

        crate::codes::serde_as_string!($ty);
    };
}

hex_bytes!(
    /// A patient's opaque index on the ledger (see [`crate::Identity::ledger_tag`]).
    Tag, 16, "a ledger tag"
);
hex_bytes!(
    /// Makes every entry unique, so a replayed envelope is recognised as the same bytes.
    EntryNonce, 16, "an entry nonce"
);
hex_bytes!(
    /// A SHA-256 digest.
    Digest, 32, "a SHA-256 digest"
);
hex_bytes!(
    /// Names one guardian set: the set id of its Shamir split (see [`crate::shamir::SeedShare::set_id`]).
    SetId, 16, "a guardian set id"
);
hex_bytes!(
    /// Names one recovery attempt, from the request that starts it to the shares released for it.
    RequestId, 16, "a recovery request id"
);

impl EntryNonce {
    pub fn generate() -> Self {
        Self(crate::random::array())
    }
}

impl RequestId {
    pub fn generate() -> Self {
        Self(crate::random::array())
    }
}

impl Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

/// A sealed body: a [`crate::seal::seal_to_many`] or [`crate::seal::SealSession`] box holding a signed inner
/// statement.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBody(pub Vec<u8>);

impl fmt::Debug for SealedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedBody({} bytes)", self.0.len())
    }
}

impl Serialize for SealedBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&data_encoding::BASE64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SealedBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if text.len() > MAX_BODY_BYTES * 4 / 3 + 4 {
            return Err(serde::de::Error::custom(format!("sealed body is larger than {MAX_BODY_BYTES} bytes")));
        }
        data_encoding::BASE64.decode(text.as_bytes()).map(SealedBody).map_err(serde::de::Error::custom)
    }
}

/// What the network authority enrolls a member as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A clinician or a clinic that may be granted access.
    Provider,
    /// A record custodian's gateway, which posts access events.
    Gateway,
    /// An emergency provider, whom an emergency card's break-glass grant admits.
    Emergency,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Provider => "provider",
            Role::Gateway => "gateway",
            Role::Emergency => "emergency",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "provider" => Ok(Role::Provider),
            "gateway" => Ok(Role::Gateway),
            "emergency" => Ok(Role::Emergency),
            other => Err(format!("unknown role {other:?}: expected provider, gateway or emergency")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An enrolled member of the network, as the ledger indexes it and wallets keep it: the enrollment's
/// fields and the index of its entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub role: Role,
    pub name: String,
    pub org: String,
    /// The index of the enrollment entry.
    pub index: u64,
}

/// The kinds of entry, with the byte that stands for each in a [`Leaf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    EnrollPatient = 1,
    EnrollMember = 2,
    Grant = 3,
    Revocation = 4,
    Access = 5,
    Redaction = 6,
    GuardianSet = 7,
    RecoveryRequest = 8,
    RecoveryCancel = 9,
    KeyRotation = 10,
}

impl EntryKind {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => EntryKind::EnrollPatient,
            2 => EntryKind::EnrollMember,
            3 => EntryKind::Grant,
            4 => EntryKind::Revocation,
            5 => EntryKind::Access,
            6 => EntryKind::Redaction,
            7 => EntryKind::GuardianSet,
            8 => EntryKind::RecoveryRequest,
            9 => EntryKind::RecoveryCancel,
            10 => EntryKind::KeyRotation,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::EnrollPatient => "enroll-patient",
            EntryKind::EnrollMember => "enroll-member",
            EntryKind::Grant => "grant",
            EntryKind::Revocation => "revocation",
            EntryKind::Access => "access",
            EntryKind::Redaction => "redaction",
            EntryKind::GuardianSet => "guardian-set",
            EntryKind::RecoveryRequest => "recovery-request",
            EntryKind::RecoveryCancel => "recovery-cancel",
            EntryKind::KeyRotation => "key-rotation",
        }
    }
}

/// What an entry says, by kind. Public fields are what the ledger needs to check and index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Content {
    /// A patient enrolls themself: their encryption key, and the tag their entries will carry.
    EnrollPatient { box_key: BoxPublicKey, tag: Tag },
    /// The network authority enrolls a provider, gateway or emergency provider.
    EnrollMember { key: SigningPublicKey, box_key: BoxPublicKey, role: Role, name: String, org: String },
    /// A grant, sealed to the patient and the grantee. `grant_digest` is the SHA-256 of the inner signed
    /// grant's JSON, so a gateway shown the grant can check it is this one without opening the body.
    Grant { tag: Tag, grant_id: GrantId, grant_digest: Digest, body: SealedBody },
    /// A revocation, sealed to the patient and the grantee; the grant id is public so gateways can ask.
    Revocation { tag: Tag, grant_id: GrantId, body: SealedBody },
    /// An access event from a gateway, sealed to the patient.
    Access {
        tag: Tag,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grant_id: Option<GrantId>,
        body: SealedBody,
    },
    /// The patient asks the ledger to delete the bodies of all their earlier entries.
    Redaction { tag: Tag },
    /// The patient's guardian set: what a new device needs to ask the guardians for help (the split's
    /// parameters and each share's mailbox, keys derived from the share itself, so they name no guardian),
    /// and, sealed to the patient alone, who the guardians are. Never a share.
    GuardianSet {
        tag: Tag,
        set_id: SetId,
        threshold: u8,
        count: u8,
        /// How long after a recovery request guardians hold their shares back, so the old device can veto.
        waiting_seconds: u64,
        mailboxes: Vec<crate::recovery::ShareMailbox>,
        /// The set this one replaces; shares of that set no longer open anything current.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        supersedes: Option<SetId>,
        body: SealedBody,
    },
    /// A new device asks to recover the patient's wallet. Signed by the device's one-time key, which is
    /// no member: anyone may ask; only guardians can answer, and the old device is told.
    RecoveryRequest { tag: Tag, request_id: RequestId, device_box: BoxPublicKey },
    /// The patient's current key vetoes a recovery request.
    RecoveryCancel { tag: Tag, request_id: RequestId },
    /// The patient's current key hands the patient's record on to a new key pair. The body, sealed to the
    /// new encryption key, holds the seeds the wallet had before, so it can still open older entries.
    KeyRotation { tag: Tag, new_key: SigningPublicKey, new_box_key: BoxPublicKey, body: SealedBody },
}

impl Content {
    pub fn kind(&self) -> EntryKind {
        match self {
            Content::EnrollPatient { .. } => EntryKind::EnrollPatient,
            Content::EnrollMember { .. } => EntryKind::EnrollMember,
            Content::Grant { .. } => EntryKind::Grant,
            Content::Revocation { .. } => EntryKind::Revocation,
            Content::Access { .. } => EntryKind::Access,
            Content::Redaction { .. } => EntryKind::Redaction,
            Content::GuardianSet { .. } => EntryKind::GuardianSet,
            Content::RecoveryRequest { .. } => EntryKind::RecoveryRequest,
            Content::RecoveryCancel { .. } => EntryKind::RecoveryCancel,
            Content::KeyRotation { .. } => EntryKind::KeyRotation,
        }
    }

    /// The patient tag the entry is filed under; member enrollments have none.
    pub fn tag(&self) -> Option<Tag> {
        match self {
            Content::EnrollPatient { tag, .. }
            | Content::Grant { tag, .. }
            | Content::Revocation { tag, .. }
            | Content::Access { tag, .. }
            | Content::Redaction { tag }
            | Content::GuardianSet { tag, .. }
            | Content::RecoveryRequest { tag, .. }
            | Content::RecoveryCancel { tag, .. }
            | Content::KeyRotation { tag, .. } => Some(*tag),
            Content::EnrollMember { .. } => None,
        }
    }

    pub fn grant_id(&self) -> Option<GrantId> {
        match self {
            Content::Grant { grant_id, .. } | Content::Revocation { grant_id, .. } => Some(*grant_id),
            Content::Access { grant_id, .. } => *grant_id,
            _ => None,
        }
    }

    pub fn body(&self) -> Option<&SealedBody> {
        match self {
            Content::Grant { body, .. }
            | Content::Revocation { body, .. }
            | Content::Access { body, .. }
            | Content::GuardianSet { body, .. }
            | Content::KeyRotation { body, .. } => Some(body),
            _ => None,
        }
    }
}

/// The associated data a body is sealed under: it binds the body to its kind and patient, so it cannot
/// be lifted into another entry.
pub fn body_aad(kind: EntryKind, tag: &Tag) -> Vec<u8> {
    format!("custodia/v1/entry-body\n{}\n{tag}", kind.as_str()).into_bytes()
}

/// The digest a grant entry publishes: SHA-256 of the grant's DSSE signing input, the same whatever JSON
/// layout the envelope that carries it has.
pub fn statement_digest(envelope: &crate::dsse::Envelope) -> Digest {
    Digest::of(&crate::dsse::pae(&envelope.payload_type, &envelope.payload))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("the body does not open with this wallet's key: {0}")]
    Seal(#[from] crate::seal::SealError),
    #[error("the body is not a signed statement")]
    Truncated,
    #[error(transparent)]
    Statement(#[from] StatementError),
}

/// Seals a signed statement as an entry body for `recipients`. The body holds the signature and the
/// payload only; the payload type follows from the entry's kind, which the body is bound to.
pub fn seal_statement<T: Statement>(
    statement: &crate::statement::Verified<T>,
    recipients: &[BoxPublicKey],
    kind: EntryKind,
    tag: &Tag,
) -> Result<SealedBody, crate::seal::SealError> {
    crate::seal::seal_to_many(recipients, &body_aad(kind, tag), &signed_plaintext(statement)).map(SealedBody)
}

/// Seals a signed statement as an entry body for a session's one recipient; opened like any other.
pub fn seal_statement_in<T: Statement>(
    session: &crate::seal::SealSession,
    statement: &crate::statement::Verified<T>,
    kind: EntryKind,
    tag: &Tag,
) -> SealedBody {
    SealedBody(session.seal(&body_aad(kind, tag), &signed_plaintext(statement)))
}

fn signed_plaintext<T: Statement>(statement: &crate::statement::Verified<T>) -> zeroize::Zeroizing<Vec<u8>> {
    let envelope = statement.envelope();
    let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(64 + envelope.payload.len()));
    // A verified statement was signed by this crate or checked to carry a signature.
    let sig = envelope.signatures.first().map(|s| s.sig).unwrap_or([0; 64]);
    plain.extend_from_slice(&sig);
    plain.extend_from_slice(&envelope.payload);
    plain
}

/// Opens a body sealed by [`seal_statement`] or [`seal_statement_in`]; the statement still has to be verified.
pub fn open_statement<T: Statement>(
    identity: &crate::keys::Identity,
    kind: EntryKind,
    tag: &Tag,
    body: &SealedBody,
) -> Result<crate::statement::Unverified<T>, BodyError> {
    let plain = crate::seal::open_body(identity, &body_aad(kind, tag), &body.0)?;
    if plain.len() < 64 {
        return Err(BodyError::Truncated);
    }
    let mut sig = [0u8; 64];
    sig.copy_from_slice(&plain[..64]);
    let envelope = crate::dsse::Envelope {
        payload_type: T::PAYLOAD_TYPE.to_owned(),
        payload: plain[64..].to_vec(),
        signatures: vec![crate::dsse::EnvelopeSignature { keyid: String::new(), sig }],
    };
    Ok(crate::statement::Unverified::from_envelope(envelope)?)
}

/// A ledger entry: who submits it, when, a nonce, and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub signer: SigningPublicKey,
    pub at: Timestamp,
    pub nonce: EntryNonce,
    pub content: Content,
}

impl LedgerEntry {
    pub fn new(signer: SigningPublicKey, at: Timestamp, content: Content) -> Self {
        Self { signer, at, nonce: EntryNonce::generate(), content }
    }
}

fn check_name(field: &str, text: &str) -> Result<(), StatementError> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || text.chars().any(char::is_control) || text.trim() != text {
        return Err(StatementError::invalid::<LedgerEntry>(format!(
            "{field} must be 1 to {MAX_NAME_CHARS} characters, without control characters or outer spaces"
        )));
    }
    Ok(())
}

impl Statement for LedgerEntry {
    const PAYLOAD_TYPE: &'static str = ENTRY_PAYLOAD_TYPE;
    const KIND: &'static str = "ledger entry";

    fn encode(&self) -> Result<Vec<u8>, String> {
        codec::encode_entry(self).map_err(|e| e.0)
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        codec::decode_entry(payload).map_err(|e| e.0)
    }

    /// The ledger verifies entries in batches, so entries follow the cofactored rule everywhere.
    fn signature_valid(key: &SigningPublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        key.verify_cofactored(message, signature)
    }

    fn signatures_valid(batch: &[crate::cofactored::Item<'_>]) -> bool {
        crate::cofactored::verify_batch(batch)
    }

    fn signer(&self) -> &SigningPublicKey {
        &self.signer
    }

    fn validate(&self) -> Result<(), StatementError> {
        if let Content::EnrollMember { name, org, .. } = &self.content {
            check_name("name", name)?;
            check_name("org", org)?;
        }
        if let Some(body) = self.content.body()
            && (body.0.is_empty() || body.0.len() > MAX_BODY_BYTES)
        {
            return Err(StatementError::invalid::<Self>(format!(
                "a sealed body must have 1 to {MAX_BODY_BYTES} bytes"
            )));
        }
        if let Content::GuardianSet { threshold, count, waiting_seconds, mailboxes, .. } = &self.content {
            crate::recovery::check_set_shape(*threshold, *count, *waiting_seconds, mailboxes)
                .map_err(StatementError::invalid::<Self>)?;
        }
        if let Content::KeyRotation { new_key, .. } = &self.content
            && *new_key == self.signer
        {
            return Err(StatementError::invalid::<Self>("a key rotation must name a new key"));
        }
        Ok(())
    }
}

/// The date an entry's signer gave it, read from its payload's fixed prefix without decoding the rest
/// (the ledger reads it back for every recent entry when it starts).
pub fn entry_date(payload: &[u8]) -> Option<Timestamp> {
    let at: [u8; 8] = payload.get(32..40)?.try_into().ok()?;
    Timestamp::from_unix(i64::from_be_bytes(at)).ok()
}

/// The one form in which the ledger stores and serves an entry: compact DSSE JSON with a single signature
/// and an empty key id (the signer is in the payload). Clients submit any valid form; the leaf commits to
/// this one, so everyone hashes the same bytes.
pub fn canonical_envelope(payload: &[u8], sig: &[u8; 64]) -> String {
    crate::dsse::Envelope {
        payload_type: ENTRY_PAYLOAD_TYPE.to_owned(),
        payload: payload.to_vec(),
        signatures: vec![crate::dsse::EnvelopeSignature { keyid: String::new(), sig: *sig }],
    }
    .to_compact_json()
}

/// Length of an encoded [`Leaf`].
pub const LEAF_LEN: usize = 1 + 1 + 8 + 32;
const LEAF_VERSION: u8 = 1;

/// What the Merkle tree commits to for one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub kind: EntryKind,
    /// When the ledger sequenced the entry, in milliseconds since the Unix epoch.
    pub logged_at_ms: u64,
    /// SHA-256 of the envelope's exact bytes as submitted.
    pub envelope_hash: Digest,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("a leaf is {LEAF_LEN} bytes, this one is {0}")]
    Length(usize),
    #[error("unknown leaf version {0}")]
    Version(u8),
    #[error("unknown entry kind {0}")]
    Kind(u8),
}

impl Leaf {
    pub fn for_envelope(kind: EntryKind, logged_at_ms: u64, envelope: &[u8]) -> Self {
        Self { kind, logged_at_ms, envelope_hash: Digest::of(envelope) }
    }

    pub fn to_bytes(&self) -> [u8; LEAF_LEN] {
        let mut out = [0u8; LEAF_LEN];
        out[0] = LEAF_VERSION;
        out[1] = self.kind.code();
        out[2..10].copy_from_slice(&self.logged_at_ms.to_be_bytes());
        out[10..].copy_from_slice(self.envelope_hash.as_bytes());
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, LeafError> {
        let bytes: &[u8; LEAF_LEN] = bytes.try_into().map_err(|_| LeafError::Length(bytes.len()))?;
        if bytes[0] != LEAF_VERSION {
            return Err(LeafError::Version(bytes[0]));
        }
        let kind = EntryKind::from_code(bytes[1]).ok_or(LeafError::Kind(bytes[1]))?;
        let mut at = [0u8; 8];
        at.copy_from_slice(&bytes[2..10]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[10..]);
        Ok(Self { kind, logged_at_ms: u64::from_be_bytes(at), envelope_hash: Digest(hash) })
    }

    /// Whether `envelope` is the entry this leaf commits to.
    pub fn commits_to(&self, envelope: &[u8]) -> bool {
        Digest::of(envelope) == self.envelope_hash
    }
}

/// Whether a gateway let a read through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
}

/// One resource an access touched, with its labels, as the patient will see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessedResource {
    pub resource_type: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<SensitivityLabel>,
    /// A category word for people ("laboratory", "medications"), when the gateway knows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// At most this many resources are named in one event; a larger search is summarised by count.
pub const MAX_ACCESSED_RESOURCES: usize = 200;
/// More labels than this on one resource is not a real record.
pub const MAX_RESOURCE_LABELS: usize = 32;
/// An access event's id is random; the same read is never logged twice under different ids.
pub type AccessEventId = EntryNonce;

/// A gateway's record of one read (or refused attempt): who, from which organisation, what, when, under
/// which grant and purpose, and whether it was break-glass. The body of an [`Content::Access`] entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEvent {
    pub id: AccessEventId,
    pub gateway: SigningPublicKey,
    pub patient: SigningPublicKey,
    pub reader: SigningPublicKey,
    pub reader_name: String,
    pub organisation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<GrantId>,
    pub purpose: PurposeOfUse,
    pub at: Timestamp,
    pub outcome: Outcome,
    #[serde(default)]
    pub break_glass: bool,
    /// The request as the reader sent it, e.g. `GET Observation?patient=p1&category=laboratory`.
    pub request: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<AccessedResource>,
    /// Why a refused attempt was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On an emergency-card read, the reason the reader gave (a code of [`EMERGENCY_REASONS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency_reason: Option<String>,
}

/// Why an emergency clinician opens a patient's emergency card: each card read must give one, and the
/// patient and their guardians see it under the read.
pub const EMERGENCY_REASONS: &[(&str, &str)] = &[
    ("unconscious", "the patient was unconscious or could not communicate"),
    ("life-threatening", "a life-threatening condition needed the records at once"),
    ("cannot-consent", "the patient could not consent (confused, sedated, or a child without a guardian there)"),
    ("other-urgent", "another urgent reason, which the clinician must justify"),
];

/// The words for an emergency reason code, if it is one.
pub fn emergency_reason_words(code: &str) -> Option<&'static str> {
    EMERGENCY_REASONS.iter().find(|(c, _)| *c == code).map(|(_, words)| *words)
}

impl Statement for AccessEvent {
    const PAYLOAD_TYPE: &'static str = "application/vnd.custodia.access.v2";
    const JSON_PAYLOAD_TYPE: Option<&'static str> = Some("application/vnd.custodia.access.v1+json");
    const KIND: &'static str = "access event";

    fn encode(&self) -> Result<Vec<u8>, String> {
        codec::encode_access(self).map_err(|e| e.0)
    }

    fn decode(payload: &[u8]) -> Result<Self, String> {
        codec::decode_access(payload).map_err(|e| e.0)
    }

    fn signer(&self) -> &SigningPublicKey {
        &self.gateway
    }

    fn validate(&self) -> Result<(), StatementError> {
        let bad = |reason: &str| Err(StatementError::invalid::<Self>(reason));
        if self.resources.len() > MAX_ACCESSED_RESOURCES {
            return bad("too many resources in one event");
        }
        if self.request.len() > 2048 || self.reader_name.chars().count() > MAX_NAME_CHARS {
            return bad("request or reader name is too long");
        }
        if self.organisation.chars().count() > MAX_NAME_CHARS {
            return bad("organisation is too long");
        }
        if self.resources.iter().any(|r| r.resource_type.len() > 64 || r.id.len() > 64) {
            return bad("a resource type or id is too long");
        }
        let long_category = |r: &AccessedResource| r.category.as_ref().is_some_and(|c| c.len() > 256);
        if self.resources.iter().any(|r| r.labels.len() > MAX_RESOURCE_LABELS || long_category(r)) {
            return bad("a resource has too many labels or too long a category");
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > 2048) {
            return bad("the reason is too long");
        }
        if self.outcome == Outcome::Denied && self.reason.is_none() {
            return bad("a denied attempt needs a reason");
        }
        if self.emergency_reason.as_deref().is_some_and(|c| emergency_reason_words(c).is_none()) {
            return bad("unknown emergency reason code");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Identity, MasterSeed};
    use crate::statement::{self, Unverified};

    fn patient() -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes([7; 32]))
    }

    fn at() -> Timestamp {
        Timestamp::from_unix(1_700_000_000).unwrap()
    }

    /// One entry of every kind, with every optional field both present and absent somewhere.
    fn one_of_each(id: &Identity) -> Vec<Content> {
        let (tag, key, box_key) = (id.ledger_tag(), id.signing_public(), id.box_public());
        let other = Identity::from_seed(&MasterSeed::from_bytes([8; 32]));
        let body = SealedBody(vec![0xab; 300]);
        let mailboxes = (1..=3)
            .map(|index| crate::recovery::ShareMailbox { index, key: other.signing_public(), box_key })
            .collect();
        vec![
            Content::EnrollPatient { box_key, tag },
            Content::EnrollMember {
                key,
                box_key,
                role: Role::Emergency,
                name: "Dr. Ö".into(),
                org: "St Mary's".into(),
            },
            Content::Grant {
                tag,
                grant_id: GrantId::from_bytes([1; 16]),
                grant_digest: Digest::of(b"g"),
                body: body.clone(),
            },
            Content::Revocation { tag, grant_id: GrantId::from_bytes([1; 16]), body: body.clone() },
            Content::Access { tag, grant_id: Some(GrantId::from_bytes([2; 16])), body: body.clone() },
            Content::Access { tag, grant_id: None, body: body.clone() },
            Content::Redaction { tag },
            Content::GuardianSet {
                tag,
                set_id: SetId::from_bytes([3; 16]),
                threshold: 2,
                count: 3,
                waiting_seconds: 86_400,
                mailboxes,
                supersedes: Some(SetId::from_bytes([4; 16])),
                body: body.clone(),
            },
            Content::RecoveryRequest { tag, request_id: RequestId::from_bytes([5; 16]), device_box: box_key },
            Content::RecoveryCancel { tag, request_id: RequestId::from_bytes([5; 16]) },
            Content::KeyRotation { tag, new_key: other.signing_public(), new_box_key: other.box_public(), body },
        ]
    }

    #[test]
    fn entries_of_every_kind_round_trip_in_binary() {
        let id = patient();
        for content in one_of_each(&id) {
            let entry = LedgerEntry::new(id.signing_public(), at(), content);
            let signed = statement::sign(entry.clone(), &id).unwrap();
            assert_eq!(signed.envelope().payload_type, "application/vnd.custodia.entry.v2");
            let back =
                Unverified::<LedgerEntry>::decode(signed.to_compact_json().as_bytes()).unwrap().verify().unwrap();
            assert_eq!(*back, entry);
        }
    }

    #[test]
    fn the_binary_entry_is_laid_out_as_documented() {
        let id = patient();
        let entry = LedgerEntry::new(id.signing_public(), at(), Content::Redaction { tag: id.ledger_tag() });
        let bytes = entry.encode().unwrap();
        let mut expected = id.signing_public().as_bytes().to_vec();
        expected.extend_from_slice(&1_700_000_000i64.to_be_bytes());
        expected.extend_from_slice(entry.nonce.as_bytes());
        expected.push(EntryKind::Redaction.code());
        expected.extend_from_slice(id.ledger_tag().as_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(entry_date(&bytes), Some(at()));
        assert_eq!(entry_date(&bytes[..39]), None);
    }

    #[test]
    fn malformed_binary_entries_are_refused_with_what_is_wrong() {
        let id = patient();
        let entry = LedgerEntry::new(
            id.signing_public(),
            at(),
            Content::Access { tag: id.ledger_tag(), grant_id: None, body: SealedBody(vec![1; 10]) },
        );
        let bytes = entry.encode().unwrap();
        let refused = |bytes: &[u8]| LedgerEntry::decode(bytes).unwrap_err();
        assert!(refused(&bytes[..bytes.len() - 1]).contains("truncated in body"));
        assert!(refused(&[bytes.as_slice(), &[0]].concat()).contains("after the last field"));
        let mut kind = bytes.clone();
        kind[56] = 99;
        assert!(refused(&kind).contains("unknown entry kind 99"));
        let mut option = bytes.clone();
        option[57 + 16] = 2;
        assert!(refused(&option).contains("grant id: 2 is neither"));
        let mut weak = bytes;
        weak[..32].copy_from_slice(&[0; 32]);
        assert!(refused(&weak).starts_with("signer"));
        // A version-1 JSON entry is an old version, said so.
        let old = crate::dsse::Envelope::sign("application/vnd.custodia.entry.v1+json", b"{}".to_vec(), &id);
        assert!(matches!(Unverified::<LedgerEntry>::from_envelope(old), Err(StatementError::UnknownVersion { .. })));
    }

    fn access_event(gateway: &Identity) -> AccessEvent {
        AccessEvent {
            id: EntryNonce::from_bytes([6; 16]),
            gateway: gateway.signing_public(),
            patient: patient().signing_public(),
            reader: patient().signing_public(),
            reader_name: "Dr. Example".into(),
            organisation: "St Mary's".into(),
            grant_id: Some(GrantId::from_bytes([1; 16])),
            purpose: PurposeOfUse::TREATMENT,
            at: at(),
            outcome: Outcome::Denied,
            break_glass: true,
            request: "GET Observation?patient=p1".into(),
            resources: vec![AccessedResource {
                resource_type: "Observation".into(),
                id: "o1".into(),
                labels: vec!["PSY".parse().unwrap(), "R".parse().unwrap()],
                category: Some("laboratory".into()),
            }],
            reason: Some("outside the grant's scope".into()),
            emergency_reason: None,
        }
    }

    #[test]
    fn access_events_are_binary_and_version_1_json_is_still_read() {
        let gateway = Identity::from_seed(&MasterSeed::from_bytes([11; 32]));
        let event = access_event(&gateway);
        let signed = statement::sign(event.clone(), &gateway).unwrap();
        assert_eq!(signed.envelope().payload_type, "application/vnd.custodia.access.v2");
        let back = Unverified::<AccessEvent>::decode(signed.to_json().as_bytes()).unwrap().verify().unwrap();
        assert_eq!(*back, event);
        let bare = AccessEvent { grant_id: None, resources: vec![], reason: None, outcome: Outcome::Allowed, ..event };
        assert_eq!(AccessEvent::decode(&bare.encode().unwrap()).unwrap(), bare);

        // What wallets stored before the binary form: a version-1 JSON event, signed as such.
        let json = serde_json::to_vec(&bare).unwrap();
        let old = crate::dsse::Envelope::sign("application/vnd.custodia.access.v1+json", json, &gateway);
        let read = Unverified::<AccessEvent>::from_envelope(old).unwrap().verify().unwrap();
        assert_eq!(*read, bare);
        let mut lower = bare.encode().unwrap();
        let at = lower.windows(5).position(|w| w == b"TREAT").unwrap();
        lower[at..at + 5].copy_from_slice(b"treat");
        assert!(AccessEvent::decode(&lower).unwrap_err().contains("canonical"));
    }

    #[test]
    fn an_emergency_reason_is_added_at_the_end_and_events_without_one_encode_as_before() {
        let gateway = Identity::from_seed(&MasterSeed::from_bytes([11; 32]));
        let without = AccessEvent { reason: None, outcome: Outcome::Allowed, ..access_event(&gateway) };
        let with = AccessEvent { emergency_reason: Some("unconscious".into()), ..without.clone() };
        let (old, new) = (without.encode().unwrap(), with.encode().unwrap());
        assert_eq!(&new[..old.len()], old.as_slice(), "the reason only follows what was there");
        assert_eq!(AccessEvent::decode(&old).unwrap().emergency_reason, None);
        let signed = statement::sign(with.clone(), &gateway).unwrap();
        let back = Unverified::<AccessEvent>::decode(signed.to_json().as_bytes()).unwrap().verify().unwrap();
        assert_eq!(back.emergency_reason.as_deref(), Some("unconscious"));
        let unknown = AccessEvent { emergency_reason: Some("bored".into()), ..without };
        assert!(statement::sign(unknown, &gateway).is_err(), "only the listed reasons");
    }

    #[test]
    fn member_names_are_checked() {
        let id = patient();
        let member = |name: &str| {
            LedgerEntry::new(
                id.signing_public(),
                Timestamp::from_unix(0).unwrap(),
                Content::EnrollMember {
                    key: id.signing_public(),
                    box_key: id.box_public(),
                    role: Role::Gateway,
                    name: name.into(),
                    org: "St Mary's".into(),
                },
            )
        };
        assert!(member("Gateway 1").validate().is_ok());
        assert!(member("").validate().is_err());
        assert!(member("bad\u{7}bell").validate().is_err());
        assert!(member(&"x".repeat(MAX_NAME_CHARS + 1)).validate().is_err());
    }

    #[test]
    fn leaves_round_trip_and_reject_junk() {
        let leaf = Leaf::for_envelope(EntryKind::Grant, 1_700_000_000_123, b"{}");
        assert_eq!(Leaf::parse(&leaf.to_bytes()), Ok(leaf));
        assert!(leaf.commits_to(b"{}"));
        assert!(!leaf.commits_to(b"{ }"));
        assert_eq!(Leaf::parse(&[1; 5]), Err(LeafError::Length(5)));
        let mut bad = leaf.to_bytes();
        bad[1] = 99;
        assert_eq!(Leaf::parse(&bad), Err(LeafError::Kind(99)));
        bad[0] = 2;
        assert_eq!(Leaf::parse(&bad), Err(LeafError::Version(2)));
    }

    #[test]
    fn sealed_statements_open_for_recipients_in_their_entry_only() {
        let patient = patient();
        let grantee = Identity::from_seed(&MasterSeed::from_bytes([9; 32]));
        let grant = crate::grant::GrantRequest {
            grantee: grantee.signing_public(),
            scopes: vec!["patient/AllergyIntolerance.rs".parse().unwrap()],
            allowed_labels: vec![],
            purpose: "TREAT".parse().unwrap(),
            duration_seconds: 3600,
            max_reads: None,
            note: String::new(),
        }
        .sign(&patient, Timestamp::from_unix(1_800_000_000).unwrap())
        .unwrap();
        let tag = patient.ledger_tag();
        let body =
            seal_statement(&grant, &[patient.box_public(), grantee.box_public()], EntryKind::Grant, &tag).unwrap();
        for reader in [&patient, &grantee] {
            let opened = open_statement::<crate::grant::Grant>(reader, EntryKind::Grant, &tag, &body).unwrap();
            let opened = opened.verify_signed_by(&patient.signing_public()).unwrap();
            assert_eq!(*opened, *grant);
            assert_eq!(statement_digest(opened.envelope()), statement_digest(grant.envelope()));
        }
        assert!(open_statement::<crate::grant::Grant>(&patient, EntryKind::Access, &tag, &body).is_err());
        let stranger = Identity::from_seed(&MasterSeed::from_bytes([10; 32]));
        assert!(open_statement::<crate::grant::Grant>(&stranger, EntryKind::Grant, &tag, &body).is_err());
    }

    #[test]
    fn tags_are_stable_per_seed_and_differ_between_seeds() {
        assert_eq!(patient().ledger_tag(), patient().ledger_tag());
        assert_ne!(patient().ledger_tag(), Identity::from_seed(&MasterSeed::from_bytes([8; 32])).ledger_tag());
        let tag = patient().ledger_tag();
        assert_eq!(tag.to_string().parse::<Tag>(), Ok(tag));
        assert!("abc".parse::<Tag>().is_err());
    }
}
