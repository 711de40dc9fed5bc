//! The ledger's JSON API: request and response bodies, shared by the ledger and its clients so both
//! sides agree on every field. Hashes and leaves travel as standard base64; keys, tags and ids in their
//! printed forms. Envelopes travel as raw JSON, byte for byte as the ledger stores them, because the
//! leaf commits to those exact bytes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::entry::{Digest, EntryKind, Role, Tag};
use crate::grant::GrantId;
use crate::keys::{BoxPublicKey, SigningPublicKey};

/// `POST /v1/entries`: one or more signed entries, appended together or not at all.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppendRequest {
    pub entries: Vec<Box<RawValue>>,
}

/// The acknowledgement of an append: sent only once the entries are durable, with a checkpoint that
/// covers them and an inclusion proof for each.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendResponse {
    /// A C2SP signed note.
    pub checkpoint: String,
    pub entries: Vec<Receipt>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    pub index: u64,
    pub leaf: String,
    pub inclusion: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub leaf: String,
    pub proof: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub old: u64,
    pub new: u64,
    pub proof: Vec<String>,
}

/// `GET /v1/tags/{tag}/entries`: a patient's entries after an index, each with its proof against
/// `checkpoint`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TagEntries {
    pub checkpoint: String,
    pub entries: Vec<TagEntry>,
    /// True when there are more entries after the last one returned.
    pub more: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TagEntry {
    pub index: u64,
    pub kind: EntryKind,
    pub leaf: String,
    /// The canonical envelope, or `None` once the patient has redacted it.
    pub envelope: Option<Box<RawValue>>,
    pub inclusion: Vec<String>,
}

/// `GET /v1/grants/{id}/proof`, signed by an enrolled member: a grant's state as the published (with a
/// witness policy, cosigned) checkpoint proves it: the grant's entry and, if revoked by then, the
/// revocation's, each with its inclusion proof.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantProof {
    pub checkpoint: String,
    pub grant: TagEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<TagEntry>,
    /// A revocation logged after `checkpoint` and not yet covered by it: its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_later: Option<u64>,
}

/// `GET /v1/grants/{id}/entry`: the canonical envelope of a grant's entry (its body sealed).
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantEntry {
    pub index: u64,
    pub envelope: Box<RawValue>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantState {
    Active,
    Revoked,
    Redacted,
}

/// `GET /v1/grants/{id}`: whether a grant is on the ledger and whether it still stands. Time limits are
/// in the grant itself, which the ledger cannot read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantStatus {
    pub grant_id: GrantId,
    pub state: GrantState,
    pub index: u64,
    /// SHA-256 of the grant's DSSE signing input (PAE), to match a grant shown by its grantee.
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_index: Option<u64>,
}

/// `GET /v1/members/{key}`: an enrolled member, with the authority-signed enrollment entry itself so a
/// client can check the signature and the entry's inclusion instead of trusting the ledger's word.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberInfo {
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub role: Role,
    pub name: String,
    pub org: String,
    pub index: u64,
    pub leaf: String,
    pub envelope: Box<RawValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientInfo {
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub tag: Tag,
    pub index: u64,
}

/// `GET /v1/recovery/{key}`: what a new device and a guardian need to know about a patient's recovery:
/// the patient as enrolled now (after any key rotations), and the patient's latest guardian sets,
/// recovery requests, cancels and rotations, oldest first, each with its proof against `checkpoint`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecoveryInfo {
    pub patient: PatientInfo,
    pub checkpoint: String,
    pub entries: Vec<TagEntry>,
}

/// `GET /v1/info`: what a client needs to start, and the limits it must respect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerInfo {
    pub origin: String,
    /// The C2SP verifier key of the checkpoints.
    pub verifier_key: String,
    pub authority: SigningPublicKey,
    pub size: u64,
    pub limits: Limits,
    /// Present when the ledger publishes only witnessed checkpoints (a C2SP tlog-policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witnessing: Option<WitnessingInfo>,
}

/// How far the witnesses' cosigned checkpoint is behind the ledger's newest, and each witness's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessingInfo {
    /// The size of the checkpoint at `/checkpoint`, cosigned by the quorum (none yet: `null`).
    pub cosigned_size: Option<u64>,
    /// Entries logged but not yet covered by a cosigned checkpoint.
    pub lag_entries: u64,
    /// Seconds since the cosigned checkpoint last covered every entry.
    pub lag_seconds: u64,
    pub witnesses: Vec<WitnessInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessInfo {
    /// The witness's name in the policy.
    pub name: String,
    pub vkey: String,
    /// The size it last cosigned, as far as the ledger knows.
    pub size: Option<u64>,
    pub state: WitnessState,
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WitnessState {
    /// Not asked yet.
    #[default]
    Pending,
    Ok,
    /// Unreachable, timing out or failing: retried.
    Failed,
    /// It refused this log's checkpoint (403, 404, 422): possible misbehaviour, shown to operators.
    Alarm,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_entry_bytes: usize,
    pub max_entries_per_request: usize,
    pub entries_per_key_per_second: u32,
    pub max_page: usize,
    pub max_mail_bytes: usize,
    pub max_mail_ttl_seconds: u64,
    pub max_mail_waiting: u64,
    pub max_entry_age_seconds: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailPosted {
    pub id: String,
    pub expires_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MailList {
    pub messages: Vec<Mail>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mail {
    pub id: String,
    pub from: SigningPublicKey,
    pub sent_at: i64,
    pub expires_at: i64,
    pub body: String,
}

/// An RFC 9457 problem: `type` names the problem precisely (`urn:custodia:problem:not-enrolled`),
/// `detail` says what to do about it, `entry` points at the entry of a request that failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
}

pub const PROBLEM_PREFIX: &str = "urn:custodia:problem:";

impl Problem {
    /// The short code after the prefix, e.g. `not-enrolled`.
    pub fn code(&self) -> &str {
        self.problem_type.strip_prefix(PROBLEM_PREFIX).unwrap_or(&self.problem_type)
    }
}

/// `GET /v1/grant-changes`, signed by an enrolled gateway: server-sent events, resumable from
/// `Last-Event-ID` (an index). `event: change` carries a revocation or redaction as soon as the ledger
/// sequenced it, with its inclusion proof when the published checkpoint already covers it (a change is
/// acted on at once either way: refusing is the safe side). `event: head` says every change before `size`
/// was sent.
#[derive(Debug, Serialize, Deserialize)]
pub struct GrantChange {
    pub index: u64,
    pub kind: EntryKind,
    pub tag: Tag,
    /// The revoked grant; `None` for a redaction, which concerns every earlier grant of the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<GrantId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ChangeProof>,
}

/// A change's entry proven into a published checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeProof {
    pub checkpoint: String,
    pub entry: TagEntry,
}

/// `event: head` of the grant-change feed.
#[derive(Debug, Serialize, Deserialize)]
pub struct FeedHead {
    pub size: u64,
}
