//! Social recovery: the patient's guardians, a guardian's inbox, and recovery on a new device.
//!
//! - **Patient** ([`Wallet::set_guardians`], [`Wallet::remove_guardian`], [`Wallet::check_guardians`]): splits
//!   the seed k-of-n, mails each guardian its share sealed to the guardian's key, and posts the guardian set
//!   (parameters, one share mailbox per guardian, the roster sealed to the patient alone). Changing the
//!   guardians first rotates the seed, so the old set's shares recombine only to a retired key.
//! - **Guardian** ([`Wallet::guardian_inbox`], [`Wallet::approve_recovery`]): accepts shares and acknowledges
//!   them, answers liveness challenges by signing with the share's key, learns of recovery requests, and
//!   releases its share to the new device only after the patient's code was typed in and the waiting
//!   period passed with no veto on the ledger.
//! - **New device** ([`Wallet::start_recovery`], [`Wallet::recovery_status`], [`Wallet::finish_recovery`]):
//!   asks on the ledger and in every share mailbox, collects released shares, recombines them, checks the
//!   seed is the patient's current key, restores the wallet from the ledger, rotates and re-splits.
//! - **Old device** ([`Wallet::cancel_recovery`]): sees requests in its sync and vetoes them.

mod device;
mod guardian;
mod patient;

pub use device::RECOVERING_NAME;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use custodia_core::entry::{Content, EntryKind, EntryNonce, LedgerEntry, RequestId, SetId, Tag, seal_statement};
use custodia_core::keys::BoxPublicKey;
use custodia_core::ledger_api::Mail;
use custodia_core::qr::QrPayload;
use custodia_core::recovery::{
    self, GuardianRoster, MailBody, OpenedMail, RosterGuardian, ShareMailbox, codes_match, open_mail, seal_mail,
    share_digest, share_identity, verification_code,
};
use custodia_core::shamir::{self, SeedShare, ShamirError};
use custodia_core::statement;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, SigningPublicKey};
use serde::{Deserialize, Serialize};

use super::{LedgerLink, Wallet, WalletError};
use crate::ledger::{Ledger, LedgerError, RecoveryView};
use crate::vault::{KdfParams, Passphrase};

/// How long a share offer waits in a guardian's mailbox: guardians may be away for weeks.
const OFFER_TTL_SECONDS: u64 = 30 * 86_400;
/// How long a notice, challenge, answer or released share waits.
const MAIL_TTL_SECONDS: u64 = 14 * 86_400;
/// Wrong codes a guardian may type for one request before the wallet stops accepting any.
const MAX_WRONG_CODES: u8 = 5;
/// Ledgers one inbox run visits; a guardian holds shares from patients on a handful of networks.
const MAX_LEDGERS: usize = 16;
/// Requests a guardian remembers; older ones are dropped first.
const MAX_SEEN_REQUESTS: usize = 200;

/// Someone who will hold a share: as their contact card names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardianContact {
    pub name: String,
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
}

impl From<custodia_core::qr::ContactCard> for GuardianContact {
    fn from(card: custodia_core::qr::ContactCard) -> Self {
        Self { name: card.name, key: card.signing, box_key: card.boxing }
    }
}

/// Everything recovery keeps in the vault (shares themselves are kept apart, in the vault's binary part).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuardianState {
    /// As a patient: the current guardian set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    setup: Option<GuardianSetup>,
    /// As a guardian: what each held share is for, in the order of the vault's shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) held: Vec<HeldMeta>,
    /// As a guardian: recovery requests received.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    requests: Vec<SeenRequest>,
    /// As a patient: recovery requests filed under this wallet's tag, learned by sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alerts: Vec<RecoveryAlert>,
    /// As a new device: the recovery under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovering: Option<Recovering>,
    /// This wallet's key was rotated away by another device (the patient recovered elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retired: Option<Retired>,
    /// As a guardian: emergency-card reads of the records of patients this wallet guards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notices: Vec<BreakGlassNotice>,
}

impl GuardianState {
    pub(super) fn is_empty(&self) -> bool {
        self.setup.is_none()
            && self.held.is_empty()
            && self.requests.is_empty()
            && self.alerts.is_empty()
            && self.recovering.is_none()
            && self.retired.is_none()
            && self.notices.is_empty()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardianSetup {
    set_id: SetId,
    threshold: u8,
    count: u8,
    waiting_seconds: u64,
    created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry_index: Option<u64>,
    guardians: Vec<GuardianRecord>,
    /// The liveness challenge last sent, which proofs must answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    challenge: Option<(EntryNonce, Timestamp)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardianRecord {
    name: String,
    key: SigningPublicKey,
    box_key: BoxPublicKey,
    mailbox: ShareMailbox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proved_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeldMeta {
    patient: SigningPublicKey,
    patient_box: BoxPublicKey,
    patient_name: String,
    ledger: String,
    tag: Tag,
    set_id: SetId,
    index: u8,
    threshold: u8,
    count: u8,
    waiting_seconds: u64,
    received_at: Timestamp,
    #[serde(default)]
    superseded: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenRequest {
    request_id: RequestId,
    patient: SigningPublicKey,
    set_id: SetId,
    ledger: String,
    device: SigningPublicKey,
    device_box: BoxPublicKey,
    asked_at: Timestamp,
    entry_index: u64,
    waiting_seconds: u64,
    #[serde(default)]
    wrong_codes: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<Timestamp>,
}

impl SeenRequest {
    fn release_at(&self) -> Timestamp {
        self.asked_at.checked_add(self.waiting_seconds).unwrap_or(self.asked_at)
    }

    fn code(&self) -> String {
        verification_code(&self.request_id, &self.device, &self.device_box)
    }
}

/// An emergency-card read of a guarded patient's records, as the gateway that served it signed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassNotice {
    /// The access event's id.
    pub id: String,
    pub patient: SigningPublicKey,
    pub patient_name: String,
    pub gateway: SigningPublicKey,
    pub reader: SigningPublicKey,
    pub reader_name: String,
    pub organisation: String,
    pub at: Timestamp,
    pub outcome: custodia_core::entry::Outcome,
    /// `Type/id` of each record read.
    pub resources: Vec<String>,
}

/// Notices a guardian's wallet keeps; older ones are dropped first.
const MAX_NOTICES: usize = 500;

/// A recovery request on the patient's own tag, as the patient's wallet learned it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryAlert {
    pub index: u64,
    pub request_id: RequestId,
    pub device: SigningPublicKey,
    pub asked_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recovering {
    ledger: String,
    verifier_key: String,
    authority: SigningPublicKey,
    patient: SigningPublicKey,
    tag: Tag,
    request_id: RequestId,
    entry_index: u64,
    asked_at: Timestamp,
    set_id: SetId,
    threshold: u8,
    count: u8,
    waiting_seconds: u64,
    mailboxes: Vec<ShareMailbox>,
    /// When started from a network profile: its witness policy (the recovered wallet stays pinned to it)
    /// and its fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    witness_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retired {
    pub index: u64,
    pub at: Timestamp,
    pub successor: SigningPublicKey,
}

/// One guardian as the patient sees them.
#[derive(Clone, Debug, Serialize)]
pub struct GuardianView {
    pub index: u8,
    pub name: String,
    pub key: SigningPublicKey,
    /// When the guardian's wallet acknowledged the share.
    pub accepted_at: Option<Timestamp>,
    /// When the guardian last proved it still holds a valid share.
    pub proved_at: Option<Timestamp>,
}

/// The patient's guardian set.
#[derive(Clone, Debug, Serialize)]
pub struct GuardianSetView {
    pub set_id: SetId,
    pub threshold: u8,
    pub count: u8,
    pub waiting_seconds: u64,
    pub created_at: Timestamp,
    pub entry_index: Option<u64>,
    pub challenged_at: Option<Timestamp>,
    pub guardians: Vec<GuardianView>,
}

/// A share this wallet holds for someone.
#[derive(Clone, Debug, Serialize)]
pub struct HeldShareView {
    pub patient: SigningPublicKey,
    pub patient_name: String,
    pub ledger: String,
    pub set_id: SetId,
    pub index: u8,
    pub threshold: u8,
    pub count: u8,
    pub received_at: Timestamp,
    /// The patient has since chosen other guardians or rotated keys: this share opens nothing current.
    pub superseded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    /// Waiting for the guardian to compare the code with the patient.
    AwaitingCode,
    /// Approved; the share goes out when the waiting period ends.
    Approved,
    Released,
    Cancelled,
    /// Too many wrong codes were typed.
    Locked,
}

/// A recovery request in a guardian's inbox. The code is not shown: the patient reads it from the new
/// device and the guardian types it.
#[derive(Clone, Debug, Serialize)]
pub struct InboxRequest {
    pub request_id: RequestId,
    pub patient: SigningPublicKey,
    pub patient_name: String,
    pub device: SigningPublicKey,
    pub asked_at: Timestamp,
    pub release_at: Timestamp,
    pub state: RequestState,
}

/// What a guardian's inbox run did and what it holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Inbox {
    pub shares: Vec<HeldShareView>,
    pub requests: Vec<InboxRequest>,
    /// Shares accepted in this run.
    pub accepted: usize,
    /// Liveness challenges answered in this run.
    pub proofs_sent: usize,
    /// Requests whose shares went out in this run.
    pub released: Vec<RequestId>,
    /// As a patient: acknowledgements and proofs collected in this run.
    pub acknowledgements: usize,
    /// Emergency-card reads of guarded patients' records, newest last.
    pub break_glass: Vec<BreakGlassNotice>,
    /// How many of them arrived in this run.
    pub new_break_glass: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryPhase {
    /// Fewer shares than the threshold have come back.
    Waiting,
    /// Enough shares are in; `finish` will recover.
    Ready,
    /// The patient's old device vetoed the request.
    Cancelled,
    /// The patient chose other guardians since the request: start again.
    Superseded,
}

/// Where a recovery on a new device stands.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryProgress {
    pub request_id: RequestId,
    pub patient: SigningPublicKey,
    pub ledger: String,
    /// What the patient reads to each guardian.
    pub code: String,
    pub entry_index: u64,
    pub asked_at: Timestamp,
    /// When guardians start releasing shares.
    pub release_at: Timestamp,
    pub threshold: u8,
    pub count: u8,
    /// Share indexes whose guardians approved (released ones included).
    pub approved: Vec<u8>,
    /// Share indexes received so far.
    pub received: Vec<u8>,
    pub phase: RecoveryPhase,
    pub cancelled_at: Option<Timestamp>,
}

/// What a finished recovery did.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryOutcome {
    pub patient: SigningPublicKey,
    /// The patient's key after the rotation that ends recovery.
    pub new_key: SigningPublicKey,
    pub grants: usize,
    pub access_events: usize,
    pub guardians: usize,
    pub set_id: Option<SetId>,
}

fn ts_add(at: Timestamp, seconds: u64) -> Timestamp {
    at.checked_add(seconds).unwrap_or(at)
}

fn copy_seed(seed: &MasterSeed) -> MasterSeed {
    MasterSeed::from_bytes(*seed.expose_secret())
}

fn copy_share(share: &SeedShare) -> Result<SeedShare, WalletError> {
    SeedShare::decode(&share.encode()).map_err(|e| WalletError::Corrupt(format!("a held share: {e}")))
}

fn decode_mail(mail: &Mail) -> Option<Vec<u8>> {
    data_encoding::BASE64.decode(mail.body.as_bytes()).ok()
}
