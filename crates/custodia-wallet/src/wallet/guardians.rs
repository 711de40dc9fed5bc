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

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use custodia_core::entry::{Content, EntryKind, EntryNonce, LedgerEntry, RequestId, SetId, Tag, seal_statement};
use custodia_core::keys::BoxPublicKey;
use custodia_core::ledger_api::Mail;
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

impl Wallet {
    // ----- patient -----

    /// The patient's current guardian set, if any.
    pub fn guardian_set(&self) -> Option<GuardianSetView> {
        let s = self.guardians.setup.as_ref()?;
        Some(GuardianSetView {
            set_id: s.set_id,
            threshold: s.threshold,
            count: s.count,
            waiting_seconds: s.waiting_seconds,
            created_at: s.created_at,
            entry_index: s.entry_index,
            challenged_at: s.challenge.map(|(_, at)| at),
            guardians: s
                .guardians
                .iter()
                .map(|g| GuardianView {
                    index: g.mailbox.index,
                    name: g.name.clone(),
                    key: g.key,
                    accepted_at: g.accepted_at,
                    proved_at: g.proved_at,
                })
                .collect(),
        })
    }

    /// Recovery requests filed under this wallet's tag since its last key rotation, newest last.
    pub fn recovery_alerts(&self) -> &[RecoveryAlert] {
        &self.guardians.alerts
    }

    /// Set when another device recovered this wallet and retired its key.
    pub fn retired(&self) -> Option<&Retired> {
        self.guardians.retired.as_ref()
    }

    fn check_not_retired(&self) -> Result<(), WalletError> {
        match &self.guardians.retired {
            Some(r) => Err(WalletError::Retired { index: r.index, successor: r.successor.to_string() }),
            None => Ok(()),
        }
    }

    /// A guardian named by key alone: an enrolled member (checked against the authority's enrollment), or
    /// an enrolled patient as the ledger records them. A scanned contact card is the stronger way: it
    /// carries the keys as the guardian's own wallet shows them.
    pub fn guardian_contact(&mut self, key: &SigningPublicKey) -> Result<GuardianContact, WalletError> {
        match self.member(key) {
            Ok(m) => return Ok(GuardianContact { name: m.name, key: *key, box_key: m.box_key }),
            Err(WalletError::Ledger(LedgerError::NotAMember(_))) => {}
            Err(e) => return Err(e),
        }
        let (mut ledger, link) = self.session()?;
        let view = match ledger.recovery(&self.identity, key) {
            Err(LedgerError::Problem { code, .. }) if code == "not-found" => {
                return Err(WalletError::NotAPatient(key.to_string()));
            }
            other => other?,
        };
        self.commit(link, &ledger, None)?;
        if view.patient.key != *key {
            return Err(WalletError::Guardians(format!(
                "{key} was rotated to {}; ask the guardian for their current contact card",
                view.patient.key
            )));
        }
        let short: String = key.to_string().chars().take(14).collect();
        Ok(GuardianContact { name: format!("Guardian {short}…"), key: *key, box_key: view.patient.box_key })
    }

    /// Names `guardians` (2 to 10) of whom any `threshold` can recover this wallet, and delivers their
    /// shares. If the wallet already has guardians the seed is rotated first, so every share of the old
    /// set becomes worthless, and the new set supersedes the old one on the ledger.
    pub fn set_guardians(
        &mut self,
        guardians: Vec<GuardianContact>,
        threshold: u8,
        waiting_seconds: u64,
        now: Timestamp,
    ) -> Result<GuardianSetView, WalletError> {
        self.check_not_retired()?;
        let n = guardians.len();
        if !(usize::from(recovery::MIN_GUARDIANS)..=usize::from(recovery::MAX_GUARDIANS)).contains(&n) {
            return Err(WalletError::Guardians(format!(
                "choose {} to {} guardians; {n} given",
                recovery::MIN_GUARDIANS,
                recovery::MAX_GUARDIANS
            )));
        }
        let count = u8::try_from(n).unwrap_or(u8::MAX);
        if !(2..=count).contains(&threshold) {
            return Err(WalletError::Guardians(format!(
                "the threshold must be 2 to {count} for {count} guardians; {threshold} given"
            )));
        }
        if waiting_seconds > recovery::MAX_WAITING_SECONDS {
            return Err(WalletError::Guardians(format!(
                "the waiting period may be at most {} days",
                recovery::MAX_WAITING_SECONDS / 86_400
            )));
        }
        let mut seen = BTreeSet::new();
        for g in &guardians {
            if g.key == self.signing_key() {
                return Err(WalletError::Guardians("a wallet cannot be its own guardian".into()));
            }
            if !seen.insert(g.key.to_string()) {
                return Err(WalletError::Guardians(format!("{} ({}) is named twice", g.name, g.key)));
            }
        }
        let (mut ledger, link) = self.session()?;
        let supersedes = self.guardians.setup.as_ref().map(|s| s.set_id);
        if supersedes.is_some() {
            self.rotate(&mut ledger, now)?;
        }
        self.split_and_deliver(&mut ledger, &link, &guardians, threshold, waiting_seconds, supersedes, now)?;
        self.commit(link, &ledger, None)?;
        self.guardian_set().ok_or_else(|| WalletError::Corrupt("the guardian set just made is gone".into()))
    }

    /// Removes one guardian: the seed is rotated and re-split among the others (the threshold is kept
    /// unless fewer guardians remain than it needs).
    pub fn remove_guardian(&mut self, key: &SigningPublicKey, now: Timestamp) -> Result<GuardianSetView, WalletError> {
        let setup = self.guardians.setup.clone().ok_or(WalletError::NoGuardians)?;
        if !setup.guardians.iter().any(|g| g.key == *key) {
            return Err(WalletError::UnknownGuardian(key.to_string()));
        }
        let rest: Vec<GuardianContact> = setup
            .guardians
            .iter()
            .filter(|g| g.key != *key)
            .map(|g| GuardianContact { name: g.name.clone(), key: g.key, box_key: g.box_key })
            .collect();
        if rest.len() < usize::from(recovery::MIN_GUARDIANS) {
            return Err(WalletError::Guardians(format!(
                "a wallet needs at least {} guardians; add another before removing this one",
                recovery::MIN_GUARDIANS
            )));
        }
        let threshold = setup.threshold.min(u8::try_from(rest.len()).unwrap_or(u8::MAX));
        self.set_guardians(rest, threshold, setup.waiting_seconds, now)
    }

    /// Hands this wallet's record on to a fresh seed: a key rotation signed by the current key, carrying
    /// the seeds held so far sealed to the new key. The new seed is written to the vault before the
    /// rotation is posted, so a crash in between loses nothing ([`Wallet::settle_rotation`] finishes it).
    fn rotate(&mut self, ledger: &mut Ledger, now: Timestamp) -> Result<(), WalletError> {
        let tag = self.identity.ledger_tag();
        let next = MasterSeed::generate();
        let next_identity = Identity::from_seed(&next).with_ledger_tag(tag);
        let mut formers: Vec<&MasterSeed> = vec![&self.seed];
        formers.extend(self.former.iter());
        formers.truncate(recovery::MAX_FORMER_SEEDS);
        let body = recovery::seal_former_seeds(&next_identity.box_public(), &tag, &formers)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let content = Content::KeyRotation {
            tag,
            new_key: next_identity.signing_public(),
            new_box_key: next_identity.box_public(),
            body,
        };
        let entry = statement::sign(LedgerEntry::new(self.signing_key(), now, content), &self.identity)?;
        self.pending_seed = Some(copy_seed(&next));
        self.save()?;
        match ledger.append_one(entry) {
            Ok(_) => self.adopt_seed(next),
            Err(e) => {
                // A refusal is final: forget the new seed. Anything else (a timeout) may have landed;
                // the pending seed stays for the next sync to settle.
                if matches!(e, LedgerError::Problem { .. }) {
                    self.pending_seed = None;
                    self.save()?;
                }
                Err(e.into())
            }
        }
    }

    /// Makes `next` the wallet's seed, keeping the current one to open older entries.
    fn adopt_seed(&mut self, next: MasterSeed) -> Result<(), WalletError> {
        let tag = self.identity.ledger_tag();
        let old = std::mem::replace(&mut self.seed, next);
        self.former.insert(0, old);
        self.former.truncate(recovery::MAX_FORMER_SEEDS);
        self.identity = Identity::from_seed(&self.seed).with_ledger_tag(tag);
        self.tag = Some(tag);
        self.pending_seed = None;
        self.save()
    }

    /// Finishes a rotation whose outcome was unknown: adopts the pending seed if the ledger moved the
    /// record to it, forgets it if the ledger still names the current key.
    pub(super) fn settle_rotation(&mut self, ledger: &mut Ledger) -> Result<(), WalletError> {
        let Some(pending) = self.pending_seed.as_ref().map(copy_seed) else { return Ok(()) };
        let pending_key = Identity::from_seed(&pending).signing_public();
        let view = ledger.recovery(&self.identity, &self.signing_key())?;
        if view.patient.key == pending_key {
            self.adopt_seed(pending)
        } else {
            self.pending_seed = None;
            self.save()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn split_and_deliver(
        &mut self,
        ledger: &mut Ledger,
        link: &LedgerLink,
        guardians: &[GuardianContact],
        threshold: u8,
        waiting_seconds: u64,
        supersedes: Option<SetId>,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        let count = u8::try_from(guardians.len()).unwrap_or(u8::MAX);
        let shares = shamir::split(&self.seed, threshold, count).map_err(WalletError::Shares)?;
        let Some(first) = shares.first() else { return Err(WalletError::Guardians("no shares".into())) };
        let set_id = SetId::from_bytes(*first.set_id());
        let tag = self.identity.ledger_tag();
        let me = self.signing_key();
        // Shares go out first: a set on the ledger whose shares never arrived would promise a recovery
        // that cannot happen.
        for (g, share) in guardians.iter().zip(&shares) {
            let offer = MailBody::ShareOffer {
                ledger: link.url.clone(),
                tag,
                patient_box: self.identity.box_public(),
                patient_name: self.name.clone(),
                set_id,
                index: share.index(),
                threshold,
                count,
                waiting_seconds,
                share_digest: share_digest(share),
            };
            let sealed = seal_mail(&self.identity, &g.key, &g.box_key, offer, Some(share), now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&self.identity, &g.key, OFFER_TTL_SECONDS, &sealed).map_err(|e| {
                WalletError::Delivery { guardian: format!("{} ({})", g.name, g.key), reason: e.to_string() }
            })?;
        }
        let records: Vec<GuardianRecord> = guardians
            .iter()
            .zip(&shares)
            .map(|(g, s)| GuardianRecord {
                name: g.name.clone(),
                key: g.key,
                box_key: g.box_key,
                mailbox: recovery::share_mailbox(s),
                accepted_at: None,
                proved_at: None,
            })
            .collect();
        let roster = GuardianRoster {
            patient: me,
            set_id,
            patient_name: self.name.clone(),
            guardians: records
                .iter()
                .map(|r| RosterGuardian {
                    index: r.mailbox.index,
                    key: r.key,
                    box_key: r.box_key,
                    name: r.name.clone(),
                })
                .collect(),
        };
        let roster = statement::sign(roster, &self.identity)?;
        let body = seal_statement(&roster, &[self.identity.box_public()], EntryKind::GuardianSet, &tag)
            .map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let content = Content::GuardianSet {
            tag,
            set_id,
            threshold,
            count,
            waiting_seconds,
            mailboxes: records.iter().map(|r| r.mailbox).collect(),
            supersedes,
            body,
        };
        let entry = statement::sign(LedgerEntry::new(me, now, content), &self.identity)?;
        let index = ledger.append_one(entry)?;
        self.guardians.setup = Some(GuardianSetup {
            set_id,
            threshold,
            count,
            waiting_seconds,
            created_at: now,
            entry_index: Some(index),
            guardians: records,
            challenge: None,
        });
        // Requests made before this set are answered by nobody any more.
        self.guardians.alerts.clear();
        self.save()
    }

    /// Collects guardians' acknowledgements and liveness proofs, then asks every guardian again to prove
    /// it still holds a valid share (answered when the guardian's wallet next looks at its inbox).
    pub fn check_guardians(&mut self, now: Timestamp) -> Result<GuardianSetView, WalletError> {
        let url = self.ledger.as_ref().ok_or(WalletError::NotEnrolled)?.url.clone();
        self.guardians.setup.as_ref().ok_or(WalletError::NoGuardians)?;
        let mut inbox = Inbox::default();
        self.process_ledger(&url, &mut BTreeMap::new(), &mut inbox, now)?;
        let (ledger, _) = self.session()?;
        let nonce = EntryNonce::generate();
        let setup = self.guardians.setup.as_mut().ok_or(WalletError::NoGuardians)?;
        for g in &setup.guardians {
            let body = MailBody::Challenge { set_id: setup.set_id, nonce };
            let sealed = seal_mail(&self.identity, &g.mailbox.key, &g.mailbox.box_key, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&self.identity, &g.mailbox.key, MAIL_TTL_SECONDS, &sealed)?;
        }
        setup.challenge = Some((nonce, now));
        self.save()?;
        self.guardian_set().ok_or(WalletError::NoGuardians)
    }

    /// As the patient's old device: vetoes recovery requests on the ledger (`only` one, or every open one
    /// a sync finds). Returns the requests cancelled.
    pub fn cancel_recovery(&mut self, only: Option<RequestId>, now: Timestamp) -> Result<Vec<RequestId>, WalletError> {
        self.check_not_retired()?;
        self.sync(now)?;
        let open: Vec<RecoveryAlert> = self
            .guardians
            .alerts
            .iter()
            .filter(|a| a.cancelled_at.is_none() && only.is_none_or(|id| a.request_id == id))
            .cloned()
            .collect();
        if let Some(id) = only
            && open.is_empty()
        {
            return Err(WalletError::UnknownRecoveryRequest(id.to_string()));
        }
        let (mut ledger, link) = self.session()?;
        let tag = self.identity.ledger_tag();
        let mut cancelled = Vec::new();
        for alert in open {
            let content = Content::RecoveryCancel { tag, request_id: alert.request_id };
            let entry = statement::sign(LedgerEntry::new(self.signing_key(), now, content), &self.identity)?;
            ledger.append_one(entry)?;
            if let Some(a) = self.guardians.alerts.iter_mut().find(|a| a.request_id == alert.request_id) {
                a.cancelled_at = Some(now);
            }
            cancelled.push(alert.request_id);
        }
        self.commit(link, &ledger, None)?;
        Ok(cancelled)
    }

    /// Keeps what a sync learned about recovery on this wallet's own tag.
    pub(super) fn learn_recovery(&mut self, learned: crate::ledger::verify::Learned) -> Result<(), WalletError> {
        use crate::ledger::verify::Learned;
        match learned {
            Learned::GuardianSet(set) => {
                let newer = self.guardians.setup.as_ref().is_none_or(|s| s.entry_index.is_none_or(|i| i < set.index));
                let same = self.guardians.setup.as_ref().is_some_and(|s| s.set_id == set.set_id);
                if same {
                    if let Some(s) = self.guardians.setup.as_mut() {
                        s.entry_index = Some(set.index);
                    }
                } else if newer {
                    // A set made on another device with this seed, or the one a recovered wallet restores.
                    let guardians = set
                        .roster
                        .guardians
                        .iter()
                        .zip(&set.mailboxes)
                        .map(|(g, m)| GuardianRecord {
                            name: g.name.clone(),
                            key: g.key,
                            box_key: g.box_key,
                            mailbox: *m,
                            accepted_at: None,
                            proved_at: None,
                        })
                        .collect();
                    self.guardians.setup = Some(GuardianSetup {
                        set_id: set.set_id,
                        threshold: set.threshold,
                        count: set.count,
                        waiting_seconds: set.waiting_seconds,
                        created_at: set.at,
                        entry_index: Some(set.index),
                        guardians,
                        challenge: None,
                    });
                    if self.name.starts_with(RECOVERING_NAME) {
                        self.name = set.roster.patient_name.clone();
                    }
                }
                self.guardians.alerts.retain(|a| a.index > set.index);
            }
            Learned::RecoveryRequest { index, at, request_id, device, .. } => {
                let own = self.guardians.recovering.as_ref().is_some_and(|r| r.request_id == request_id);
                if !own && !self.guardians.alerts.iter().any(|a| a.request_id == request_id) {
                    self.guardians.alerts.push(RecoveryAlert {
                        index,
                        request_id,
                        device,
                        asked_at: at,
                        cancelled_at: None,
                    });
                }
            }
            Learned::RecoveryCancel { at, request_id, .. } => {
                if let Some(a) = self.guardians.alerts.iter_mut().find(|a| a.request_id == request_id) {
                    a.cancelled_at.get_or_insert(at);
                }
            }
            Learned::KeyRotation { index, at, new_key, former_seeds, .. } => match former_seeds {
                Some(seeds) => {
                    for seed in seeds {
                        if seed.expose_secret() != self.seed.expose_secret()
                            && !self.former.iter().any(|f| f.expose_secret() == seed.expose_secret())
                        {
                            self.former.push(seed);
                        }
                    }
                    self.former.truncate(recovery::MAX_FORMER_SEEDS);
                    self.guardians.alerts.retain(|a| a.index > index);
                }
                None => {
                    if new_key != self.signing_key() && !self.keys_include(&new_key) {
                        self.guardians.retired = Some(Retired { index, at, successor: new_key });
                    }
                }
            },
            _ => {}
        }
        Ok(())
    }

    /// Checks the ledger's public recovery record for this wallet's key: if another device rotated it
    /// away, remembers that (and the successor) and answers [`WalletError::Retired`].
    pub(super) fn learn_retirement(&mut self, ledger: &mut Ledger) -> Result<(), WalletError> {
        let me = self.signing_key();
        let view = ledger.recovery(&self.identity, &me)?;
        if view.patient.key == me || !view.keys.contains(&me) {
            return Ok(());
        }
        let (index, at) = view
            .rotations
            .iter()
            .find(|(_, _, old, _)| *old == me)
            .map(|(index, at, _, _)| (*index, *at))
            .unwrap_or((view.patient.index, self.created_at));
        self.guardians.retired = Some(Retired { index, at, successor: view.patient.key });
        self.save()?;
        Err(WalletError::Retired { index, successor: view.patient.key.to_string() })
    }

    fn keys_include(&self, key: &SigningPublicKey) -> bool {
        self.former.iter().any(|s| Identity::from_seed(s).signing_public() == *key)
    }

    // ----- guardian -----

    /// The shares this wallet holds for others.
    pub fn held_shares(&self) -> Vec<HeldShareView> {
        self.guardians.held.iter().map(held_view).collect()
    }

    /// Reads this wallet's mail at its own ledger, at `extra_ledger`, and at the ledgers of the shares it
    /// holds: accepts offered shares (and acknowledges them), answers liveness challenges, takes note of
    /// recovery requests, and releases approved shares whose waiting period is over. Meant to run
    /// unattended, too (a hospital's recovery desk).
    pub fn guardian_inbox(&mut self, extra_ledger: Option<&str>, now: Timestamp) -> Result<Inbox, WalletError> {
        let mut urls: Vec<String> = Vec::new();
        let mut add = |url: String| {
            if !urls.contains(&url) && urls.len() < MAX_LEDGERS {
                urls.push(url);
            }
        };
        if let Some(link) = &self.ledger {
            add(link.url.clone());
        }
        if let Some(url) = extra_ledger {
            add(crate::ledger::normalise_url(url)?);
        }
        for meta in &self.guardians.held {
            add(meta.ledger.clone());
        }
        let mut inbox = Inbox::default();
        let mut views: BTreeMap<String, RecoveryView> = BTreeMap::new();
        for url in &urls {
            self.process_ledger(url, &mut views, &mut inbox, now)?;
        }
        self.release_due(&mut views, &mut inbox, now)?;
        self.save()?;
        inbox.shares = self.held_shares();
        inbox.requests = self.inbox_requests();
        inbox.break_glass = self.guardians.notices.clone();
        Ok(inbox)
    }

    fn inbox_requests(&self) -> Vec<InboxRequest> {
        self.guardians
            .requests
            .iter()
            .map(|r| {
                let name = self
                    .guardians
                    .held
                    .iter()
                    .find(|m| m.set_id == r.set_id)
                    .map(|m| m.patient_name.clone())
                    .unwrap_or_default();
                InboxRequest {
                    request_id: r.request_id,
                    patient: r.patient,
                    patient_name: name,
                    device: r.device,
                    asked_at: r.asked_at,
                    release_at: r.release_at(),
                    state: request_state(r),
                }
            })
            .collect()
    }

    /// One ledger's mail: this wallet's own mailbox (offers; as a patient, acknowledgements and proofs)
    /// and the mailbox of every current share it holds there (challenges, recovery notices).
    fn process_ledger(
        &mut self,
        url: &str,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        let (mut ledger, link, _) = self.session_for(url, None)?;
        let mut done: Vec<(Identity, String)> = Vec::new();
        for mail in ledger.client().mail_list(&self.identity)?.messages {
            let Some(bytes) = decode_mail(&mail) else { continue };
            // Not every message is about recovery (access answers share the mailbox): leave the rest.
            let Ok(opened) = open_mail(&self.identity, &bytes) else { continue };
            if opened.mail.from != mail.from {
                done.push((self.service_identity(), mail.id));
                continue;
            }
            if self.handle_own_mail(&ledger, url, opened, inbox, now)? {
                done.push((self.service_identity(), mail.id));
            }
        }
        let held: Vec<usize> = (0..self.guardians.held.len())
            .filter(|&i| self.guardians.held[i].ledger == url && !self.guardians.held[i].superseded)
            .collect();
        for i in held {
            let sid = share_identity(&self.held[i]);
            for mail in ledger.client().mail_list(&sid)?.messages {
                let Some(bytes) = decode_mail(&mail) else { continue };
                let handled = match open_mail(&sid, &bytes) {
                    Ok(opened) if opened.mail.from == mail.from => {
                        self.handle_share_mail(&mut ledger, i, &sid, opened, views, inbox, now)?
                    }
                    _ => true,
                };
                if handled {
                    done.push((share_identity(&self.held[i]), mail.id));
                }
            }
        }
        // Every patient with a share here: is the share still current, is any request cancelled?
        let patients: BTreeSet<String> = self
            .guardians
            .held
            .iter()
            .filter(|m| m.ledger == url && !m.superseded)
            .map(|m| m.patient.to_string())
            .collect();
        for patient in patients {
            let Some(i) = self.guardians.held.iter().position(|m| m.patient.to_string() == patient) else { continue };
            let key = self.guardians.held[i].patient;
            let sid = share_identity(&self.held[i]);
            let view = match ledger.recovery(&sid, &key) {
                Ok(v) => v,
                Err(LedgerError::Problem { code, .. }) if code == "not-found" => continue,
                Err(e) => return Err(e.into()),
            };
            self.apply_view(&view);
            views.insert(key.to_string(), view);
        }
        self.save()?;
        for (identity, id) in done {
            ledger.client().mail_delete(&identity, &id)?;
        }
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        Ok(())
    }

    /// Marks shares superseded and requests cancelled as `view` says.
    fn apply_view(&mut self, view: &RecoveryView) {
        let current = view.current_set().map(|s| s.set_id);
        for m in self.guardians.held.iter_mut().filter(|m| view.keys.contains(&m.patient)) {
            if current != Some(m.set_id) {
                m.superseded = true;
            }
        }
        for r in self.guardians.requests.iter_mut().filter(|r| view.keys.contains(&r.patient)) {
            if let Some(public) = view.request(&r.request_id)
                && let Some((_, at)) = public.cancelled
            {
                r.cancelled_at.get_or_insert(at);
            }
        }
    }

    /// Mail to this wallet's own key. Returns whether it was dealt with (and may be deleted).
    fn handle_own_mail(
        &mut self,
        ledger: &Ledger,
        url: &str,
        opened: OpenedMail,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<bool, WalletError> {
        let OpenedMail { mail, share } = opened;
        match &mail.body {
            MailBody::ShareOffer {
                ledger: at,
                tag,
                patient_box,
                patient_name,
                set_id,
                index,
                threshold,
                count,
                waiting_seconds,
                ..
            } => {
                let Some(share) = share else { return Ok(true) };
                if crate::ledger::normalise_url(at).ok().as_deref() != Some(url) {
                    // An offer names the ledger it was posted to; one naming another is not honest.
                    return Ok(true);
                }
                if !self.guardians.held.iter().any(|m| m.set_id == *set_id && m.index == *index) {
                    self.guardians.held.push(HeldMeta {
                        patient: mail.from,
                        patient_box: *patient_box,
                        patient_name: patient_name.clone(),
                        ledger: url.to_owned(),
                        tag: *tag,
                        set_id: *set_id,
                        index: *index,
                        threshold: *threshold,
                        count: *count,
                        waiting_seconds: *waiting_seconds,
                        received_at: now,
                        superseded: false,
                    });
                    self.held.push(copy_share(&share)?);
                    // Kept before it is acknowledged: an acknowledged share is one the vault holds.
                    self.save()?;
                    inbox.accepted += 1;
                }
                let sid = share_identity(&share);
                let body = MailBody::ShareAccepted { set_id: *set_id, index: *index, guardian: self.signing_key() };
                let sealed = seal_mail(&sid, &mail.from, patient_box, body, None, now)
                    .map_err(|e| WalletError::Corrupt(e.to_string()))?;
                ledger.client().mail_post(&sid, &mail.from, MAIL_TTL_SECONDS, &sealed)?;
                Ok(true)
            }
            MailBody::ShareAccepted { set_id, index, guardian } => {
                if let Some(g) = self.setup_guardian(set_id, *index, &mail.from)
                    && g.key == *guardian
                {
                    g.accepted_at.get_or_insert(mail.at.min(now));
                    inbox.acknowledgements += 1;
                }
                Ok(true)
            }
            MailBody::Proof { set_id, index, nonce } => {
                let expected = self.guardians.setup.as_ref().and_then(|s| s.challenge).map(|(n, _)| n);
                if expected == Some(*nonce)
                    && let Some(g) = self.setup_guardian(set_id, *index, &mail.from)
                {
                    g.proved_at = Some(mail.at.min(now));
                    g.accepted_at.get_or_insert(mail.at.min(now));
                    inbox.acknowledgements += 1;
                }
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// The guardian of the current set whose share mailbox is `from` and index `index`.
    fn setup_guardian(&mut self, set_id: &SetId, index: u8, from: &SigningPublicKey) -> Option<&mut GuardianRecord> {
        let setup = self.guardians.setup.as_mut().filter(|s| s.set_id == *set_id)?;
        setup.guardians.iter_mut().find(|g| g.mailbox.index == index && g.mailbox.key == *from)
    }

    /// Mail to the mailbox of held share `i`. Returns whether it was dealt with.
    #[allow(clippy::too_many_arguments)]
    fn handle_share_mail(
        &mut self,
        ledger: &mut Ledger,
        i: usize,
        sid: &Identity,
        opened: OpenedMail,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<bool, WalletError> {
        let meta = self.guardians.held[i].clone();
        let mail = opened.mail;
        match &mail.body {
            MailBody::Challenge { set_id, nonce } if *set_id == meta.set_id => {
                if mail.from != meta.patient {
                    return Ok(true);
                }
                let body = MailBody::Proof { set_id: meta.set_id, index: meta.index, nonce: *nonce };
                let sealed = seal_mail(sid, &meta.patient, &meta.patient_box, body, None, now)
                    .map_err(|e| WalletError::Corrupt(e.to_string()))?;
                ledger.client().mail_post(sid, &meta.patient, MAIL_TTL_SECONDS, &sealed)?;
                inbox.proofs_sent += 1;
                Ok(true)
            }
            MailBody::BreakGlass { event } => {
                // The gateway's signature, its enrollment as a gateway, and the patient: as the patient's
                // own wallet checks an access event.
                let Ok(event) =
                    custodia_core::statement::Unverified::<custodia_core::entry::AccessEvent>::decode(event.as_bytes())
                        .and_then(|e| e.verify_signed_by(&mail.from))
                else {
                    return Ok(true);
                };
                let gateway = match ledger.member(&mail.from) {
                    Ok(m) => m,
                    Err(LedgerError::NotAMember(_)) => return Ok(true),
                    Err(e) => return Err(e.into()),
                };
                if gateway.role != custodia_core::entry::Role::Gateway
                    || !event.break_glass
                    || event.patient != meta.patient
                {
                    return Ok(true);
                }
                let id = event.id.to_string();
                if !self.guardians.notices.iter().any(|n| n.id == id) {
                    self.guardians.notices.push(BreakGlassNotice {
                        id,
                        patient: event.patient,
                        patient_name: meta.patient_name.clone(),
                        gateway: mail.from,
                        reader: event.reader,
                        reader_name: event.reader_name.clone(),
                        organisation: event.organisation.clone(),
                        at: event.at,
                        outcome: event.outcome,
                        resources: event.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect(),
                    });
                    let excess = self.guardians.notices.len().saturating_sub(MAX_NOTICES);
                    self.guardians.notices.drain(..excess);
                    inbox.new_break_glass += 1;
                }
                Ok(true)
            }
            MailBody::RecoveryNotice { patient, request_id, .. } => {
                if self.guardians.requests.iter().any(|r| r.request_id == *request_id && r.set_id == meta.set_id) {
                    return Ok(true);
                }
                let key = meta.patient;
                let view = match views.entry(key.to_string()) {
                    std::collections::btree_map::Entry::Occupied(seen) => seen.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => slot.insert(ledger.recovery(sid, &key)?),
                };
                // The request must be on the ledger under this patient, from the device that mailed it,
                // while this share's set is the current one.
                let Some(public) = view.request(request_id) else { return Ok(true) };
                let current = view.current_set().is_some_and(|s| s.set_id == meta.set_id);
                if public.device != mail.from || !view.keys.contains(patient) || !current {
                    return Ok(true);
                }
                self.guardians.requests.push(SeenRequest {
                    request_id: *request_id,
                    patient: key,
                    set_id: meta.set_id,
                    ledger: meta.ledger.clone(),
                    device: public.device,
                    device_box: public.device_box,
                    asked_at: public.at,
                    entry_index: public.index,
                    waiting_seconds: view.current_set().map(|s| s.waiting_seconds).unwrap_or(meta.waiting_seconds),
                    wrong_codes: 0,
                    approved_at: None,
                    released_at: None,
                    cancelled_at: public.cancelled.map(|(_, at)| at),
                });
                let excess = self.guardians.requests.len().saturating_sub(MAX_SEEN_REQUESTS);
                self.guardians.requests.drain(..excess);
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// Approves a recovery request after the guardian compared `code` with the patient. The share is
    /// released now if the waiting period is over, else by the first inbox run after it.
    pub fn approve_recovery(
        &mut self,
        request_id: RequestId,
        code: &str,
        now: Timestamp,
    ) -> Result<InboxRequest, WalletError> {
        let position = self
            .guardians
            .requests
            .iter()
            .position(|r| r.request_id == request_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))?;
        let request = self.guardians.requests[position].clone();
        if request.wrong_codes >= MAX_WRONG_CODES {
            return Err(WalletError::TooManyWrongCodes);
        }
        // The ledger's word, fresh: a veto or a new guardian set since the request was seen stops it.
        let share_at = self
            .guardians
            .held
            .iter()
            .position(|m| m.set_id == request.set_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))?;
        let sid = share_identity(&self.held[share_at]);
        let (mut ledger, link, _) = self.session_for(&request.ledger, None)?;
        let view = ledger.recovery(&sid, &request.patient)?;
        self.apply_view(&view);
        let request = self.guardians.requests[position].clone();
        if let Some(at) = request.cancelled_at {
            self.save()?;
            return Err(WalletError::RecoveryCancelled { at });
        }
        if self.guardians.held[share_at].superseded {
            self.save()?;
            return Err(WalletError::SupersededSet(request.set_id.to_string()));
        }
        if !codes_match(&request.code(), code) {
            self.guardians.requests[position].wrong_codes += 1;
            self.save()?;
            let left = MAX_WRONG_CODES.saturating_sub(self.guardians.requests[position].wrong_codes);
            return Err(WalletError::WrongCode { left });
        }
        if self.guardians.requests[position].approved_at.is_none() {
            self.guardians.requests[position].approved_at = Some(now);
            self.save()?;
            // Tells the new device at once, so the patient sees who approved while the waiting runs.
            let body = MailBody::RecoveryApproved {
                patient: request.patient,
                request_id,
                set_id: request.set_id,
                index: self.held[share_at].index(),
            };
            let sealed = seal_mail(&sid, &request.device, &request.device_box, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&sid, &request.device, MAIL_TTL_SECONDS, &sealed)?;
        }
        let mut views = BTreeMap::from([(request.patient.to_string(), view)]);
        let mut inbox = Inbox::default();
        self.release_due(&mut views, &mut inbox, now)?;
        self.save()?;
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        self.inbox_requests()
            .into_iter()
            .find(|r| r.request_id == request_id)
            .ok_or_else(|| WalletError::UnknownRecoveryRequest(request_id.to_string()))
    }

    /// Sends the shares of approved requests whose waiting period is over and that no veto stopped.
    fn release_due(
        &mut self,
        views: &mut BTreeMap<String, RecoveryView>,
        inbox: &mut Inbox,
        now: Timestamp,
    ) -> Result<(), WalletError> {
        for position in 0..self.guardians.requests.len() {
            let request = self.guardians.requests[position].clone();
            if request.approved_at.is_none()
                || request.released_at.is_some()
                || request.cancelled_at.is_some()
                || now < request.release_at()
            {
                continue;
            }
            let Some(share_at) = self.guardians.held.iter().position(|m| m.set_id == request.set_id) else { continue };
            if self.guardians.held[share_at].superseded {
                continue;
            }
            let sid = share_identity(&self.held[share_at]);
            let (mut ledger, _, _) = self.session_for(&request.ledger, None)?;
            // Checked against the ledger at the moment of release, not when last seen.
            let view = ledger.recovery(&sid, &request.patient)?;
            self.apply_view(&view);
            views.insert(request.patient.to_string(), view);
            let request = self.guardians.requests[position].clone();
            if request.cancelled_at.is_some() || self.guardians.held[share_at].superseded {
                continue;
            }
            let share = &self.held[share_at];
            let body = MailBody::ShareRelease {
                patient: request.patient,
                request_id: request.request_id,
                set_id: request.set_id,
                index: share.index(),
                share_digest: share_digest(share),
            };
            let sealed = seal_mail(&sid, &request.device, &request.device_box, body, Some(share), now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            ledger.client().mail_post(&sid, &request.device, MAIL_TTL_SECONDS, &sealed)?;
            self.guardians.requests[position].released_at = Some(now);
            self.save()?;
            inbox.released.push(request.request_id);
        }
        Ok(())
    }

    // ----- new device -----

    /// Starts recovering the patient `patient` on a new device: creates a wallet in `dir` whose fresh key
    /// is the device's one-time key, records the request on the ledger (which tells the patient's old
    /// device), and notifies every guardian of the current set through its share mailbox.
    #[allow(clippy::too_many_arguments)]
    pub fn start_recovery(
        dir: &Path,
        passphrase: Passphrase,
        kdf: KdfParams,
        url: &str,
        verifier_key: Option<&str>,
        patient: &SigningPublicKey,
        now: Timestamp,
    ) -> Result<(Wallet, RecoveryProgress), WalletError> {
        let (mut ledger, _) = Ledger::connect(url, verifier_key)?;
        // Looked up before the wallet is made (with a throwaway key: the lookup is any signer's), so a
        // mistyped key or a patient without guardians leaves nothing behind.
        let asker = Identity::from_seed(&MasterSeed::generate());
        let view = match ledger.recovery(&asker, patient) {
            Err(LedgerError::Problem { code, .. }) if code == "not-found" => {
                return Err(WalletError::NotAPatient(patient.to_string()));
            }
            other => other?,
        };
        let set = view.current_set().cloned().ok_or_else(|| WalletError::NoGuardianSet(patient.to_string()))?;
        let mut wallet = Wallet::create(dir, RECOVERING_NAME, passphrase, kdf, now)?;
        let request_id = RequestId::generate();
        let device_box = wallet.identity.box_public();
        let content = Content::RecoveryRequest { tag: view.patient.tag, request_id, device_box };
        let entry = statement::sign(LedgerEntry::new(wallet.signing_key(), now, content), &wallet.identity)?;
        let entry_index = ledger.append_one(entry)?;
        let mut reached = 0;
        for mailbox in &set.mailboxes {
            let body = MailBody::RecoveryNotice { patient: view.patient.key, request_id, entry_index };
            let sealed = seal_mail(&wallet.identity, &mailbox.key, &mailbox.box_key, body, None, now)
                .map_err(|e| WalletError::Corrupt(e.to_string()))?;
            if ledger.client().mail_post(&wallet.identity, &mailbox.key, MAIL_TTL_SECONDS, &sealed).is_ok() {
                reached += 1;
            }
        }
        if reached < set.threshold {
            return Err(WalletError::Delivery {
                guardian: format!("{} of {} guardians", set.count - reached, set.count),
                reason: "their mailboxes did not take the notice; run `recover start` again".into(),
            });
        }
        wallet.guardians.recovering = Some(Recovering {
            ledger: ledger.url().to_owned(),
            verifier_key: ledger.verifier_key(),
            authority: ledger.authority(),
            patient: view.patient.key,
            tag: view.patient.tag,
            request_id,
            entry_index,
            asked_at: now,
            set_id: set.set_id,
            threshold: set.threshold,
            count: set.count,
            waiting_seconds: set.waiting_seconds,
            mailboxes: set.mailboxes.clone(),
        });
        wallet.save()?;
        let progress = wallet.progress(&view, &Collected::default())?;
        Ok((wallet, progress))
    }

    /// Whether this wallet is a new device in the middle of a recovery.
    pub fn is_recovering(&self) -> bool {
        self.guardians.recovering.is_some()
    }

    fn recovering(&self) -> Result<&Recovering, WalletError> {
        self.guardians.recovering.as_ref().ok_or(WalletError::NotRecovering)
    }

    fn recovery_session(&self) -> Result<(Ledger, RecoveryView), WalletError> {
        let r = self.recovering()?;
        let (mut ledger, _) = Ledger::connect(&r.ledger, Some(&r.verifier_key))?;
        let view = ledger.recovery(&self.identity, &r.patient)?;
        Ok((ledger, view))
    }

    /// What the guardians sent this device for the recovery under way, checked: from a mailbox of the
    /// request's guardian set, for this request, a share matching what was signed. Returns the released
    /// shares, the indexes approved (released or not), and the ids of the mails read.
    fn collect_releases(&self, ledger: &Ledger) -> Result<Collected, WalletError> {
        let r = self.recovering()?;
        let mut collected = Collected::default();
        for mail in ledger.client().mail_list(&self.identity)?.messages {
            let Some(bytes) = decode_mail(&mail) else { continue };
            let Ok(opened) = open_mail(&self.identity, &bytes) else { continue };
            if opened.mail.from != mail.from {
                continue;
            }
            let (request_id, set_id, index) = match opened.mail.body {
                MailBody::ShareRelease { request_id, set_id, index, .. }
                | MailBody::RecoveryApproved { request_id, set_id, index, .. } => (request_id, set_id, index),
                _ => continue,
            };
            if request_id != r.request_id {
                continue;
            }
            let from_set = r.mailboxes.iter().any(|m| m.index == index && m.key == opened.mail.from);
            if set_id != r.set_id || !from_set {
                return Err(WalletError::SupersededSet(set_id.to_string()));
            }
            if !collected.approved.contains(&index) {
                collected.approved.push(index);
            }
            collected.mail_ids.push(mail.id);
            if let Some(share) = opened.share
                && !collected.shares.iter().any(|s| s.index() == share.index())
            {
                collected.shares.push(share);
            }
        }
        collected.approved.sort_unstable();
        Ok(collected)
    }

    fn progress(&self, view: &RecoveryView, collected: &Collected) -> Result<RecoveryProgress, WalletError> {
        let shares = &collected.shares;
        let r = self.recovering()?;
        let public = view.request(&r.request_id);
        let cancelled_at = public.and_then(|p| p.cancelled.map(|(_, at)| at));
        let asked_at = public.map(|p| p.at).unwrap_or(r.asked_at);
        let superseded = view.current_set().is_none_or(|s| s.set_id != r.set_id);
        let phase = if cancelled_at.is_some() {
            RecoveryPhase::Cancelled
        } else if superseded {
            RecoveryPhase::Superseded
        } else if shares.len() >= usize::from(r.threshold) {
            RecoveryPhase::Ready
        } else {
            RecoveryPhase::Waiting
        };
        let mut received: Vec<u8> = shares.iter().map(SeedShare::index).collect();
        received.sort_unstable();
        Ok(RecoveryProgress {
            request_id: r.request_id,
            patient: r.patient,
            ledger: r.ledger.clone(),
            code: verification_code(&r.request_id, &self.signing_key(), &self.identity.box_public()),
            entry_index: r.entry_index,
            asked_at,
            release_at: ts_add(asked_at, r.waiting_seconds),
            threshold: r.threshold,
            count: r.count,
            approved: collected.approved.clone(),
            received,
            phase,
            cancelled_at,
        })
    }

    /// Where the recovery under way stands: shares received, the waiting period, a veto.
    pub fn recovery_status(&self) -> Result<RecoveryProgress, WalletError> {
        let (ledger, view) = self.recovery_session()?;
        let collected = self.collect_releases(&ledger)?;
        self.progress(&view, &collected)
    }

    /// Gives up the recovery under way on this device (the request stays on the ledger, unanswered).
    pub fn abandon_recovery(&mut self) -> Result<RequestId, WalletError> {
        let id = self.recovering()?.request_id;
        self.guardians.recovering = None;
        self.save()?;
        Ok(id)
    }

    /// Recombines the released shares, checks the seed is the patient's current key, becomes that wallet
    /// (restoring grants, guardians and the access log from the ledger), then rotates to a new seed and
    /// re-splits it to the same guardians, so the shares just used are worthless.
    pub fn finish_recovery(&mut self, now: Timestamp) -> Result<RecoveryOutcome, WalletError> {
        let (ledger, view) = self.recovery_session()?;
        let collected = self.collect_releases(&ledger)?;
        let progress = self.progress(&view, &collected)?;
        let Collected { shares, mail_ids, .. } = collected;
        match progress.phase {
            RecoveryPhase::Cancelled => {
                return Err(WalletError::RecoveryCancelled { at: progress.cancelled_at.unwrap_or(now) });
            }
            RecoveryPhase::Superseded => return Err(WalletError::SupersededSet(self.recovering()?.set_id.to_string())),
            RecoveryPhase::Waiting => {
                return Err(WalletError::NotEnoughShares { have: shares.len(), need: progress.threshold });
            }
            RecoveryPhase::Ready => {}
        }
        let seed = shamir::recover(&shares).map_err(|e| match e {
            ShamirError::NotEnoughShares { have, need } => WalletError::NotEnoughShares { have, need },
            other => WalletError::Shares(other),
        })?;
        let tag = view.patient.tag;
        let identity = Identity::from_seed(&seed).with_ledger_tag(tag);
        if identity.signing_public() != view.patient.key {
            return Err(if view.keys.contains(&identity.signing_public()) {
                WalletError::SupersededSet(self.recovering()?.set_id.to_string())
            } else {
                WalletError::RecoveredKeyMismatch(view.patient.key.to_string())
            });
        }
        let mut former = Vec::new();
        for logged in view.rotation_entries.iter().rev() {
            let Some(entry) = &logged.entry else { continue };
            if let Content::KeyRotation { new_key, body, .. } = &entry.content
                && *new_key == identity.signing_public()
            {
                former = recovery::open_former_seeds(&identity, &tag, body)
                    .map_err(|e| LedgerError::BadEntry { index: logged.index, reason: e.to_string() })?;
                break;
            }
        }
        let device = self.service_identity();
        let link = LedgerLink {
            url: ledger.url().to_owned(),
            verifier_key: ledger.verifier_key(),
            authority: ledger.authority(),
            enrollment_index: view.patient.index,
            checkpoint: ledger.checkpoint().clone(),
            synced_through: None,
            members: Vec::new(),
            access_events: Vec::new(),
        };
        // From here on this vault is the patient's wallet: written before anything else happens.
        self.seed = seed;
        self.former = former;
        self.identity = identity;
        self.tag = Some(tag);
        self.ledger = Some(link);
        self.grants.clear();
        self.guardians = GuardianState { recovering: self.guardians.recovering.take(), ..GuardianState::default() };
        self.save()?;
        for id in mail_ids {
            ledger.client().mail_delete(&device, &id)?;
        }
        self.sync(now)?;
        let recovered_key = self.signing_key();
        self.guardians.recovering = None;
        self.save()?;
        let setup = self.guardians.setup.clone();
        let set_id = match setup {
            Some(setup) => {
                let contacts = setup
                    .guardians
                    .iter()
                    .map(|g| GuardianContact { name: g.name.clone(), key: g.key, box_key: g.box_key })
                    .collect();
                self.set_guardians(contacts, setup.threshold, setup.waiting_seconds, now)?.set_id
            }
            None => {
                let (mut ledger, link) = self.session()?;
                self.rotate(&mut ledger, now)?;
                self.commit(link, &ledger, None)?;
                return Ok(RecoveryOutcome {
                    patient: recovered_key,
                    new_key: self.signing_key(),
                    grants: self.grants.len(),
                    access_events: self.access_events().len(),
                    guardians: 0,
                    set_id: None,
                });
            }
        };
        Ok(RecoveryOutcome {
            patient: recovered_key,
            new_key: self.signing_key(),
            grants: self.grants.len(),
            access_events: self.access_events().len(),
            guardians: self.guardians.setup.as_ref().map_or(0, |s| s.guardians.len()),
            set_id: Some(set_id),
        })
    }
}

/// What a new device's mailbox held for its recovery.
#[derive(Default)]
struct Collected {
    shares: Vec<SeedShare>,
    approved: Vec<u8>,
    mail_ids: Vec<String>,
}

/// The name a recovering wallet has until the patient's own name is restored from the ledger.
pub const RECOVERING_NAME: &str = "Recovering wallet";

fn request_state(r: &SeenRequest) -> RequestState {
    if r.cancelled_at.is_some() {
        RequestState::Cancelled
    } else if r.released_at.is_some() {
        RequestState::Released
    } else if r.approved_at.is_some() {
        RequestState::Approved
    } else if r.wrong_codes >= MAX_WRONG_CODES {
        RequestState::Locked
    } else {
        RequestState::AwaitingCode
    }
}

fn held_view(m: &HeldMeta) -> HeldShareView {
    HeldShareView {
        patient: m.patient,
        patient_name: m.patient_name.clone(),
        ledger: m.ledger.clone(),
        set_id: m.set_id,
        index: m.index,
        threshold: m.threshold,
        count: m.count,
        received_at: m.received_at,
        superseded: m.superseded,
    }
}
