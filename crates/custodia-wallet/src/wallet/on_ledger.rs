//! The wallet on its ledger: enrolling, posting grants and revocations, syncing what the ledger holds
//! under the wallet's tag; and, for a wallet that acts as the network authority or as a gateway,
//! enrolling members and posting access events.
//!
//! Every operation runs a verifying [`Ledger`] session resumed from the stored [`LedgerLink`], and
//! writes the vault once at the end with the checkpoint the session accepted and whatever it learned.
//! If anything fails, nothing of it is kept.

use custodia_core::SigningPublicKey;
use custodia_core::entry::{AccessEvent, EntryKind, statement_digest};
use custodia_core::grant::GrantId;
use custodia_core::purpose::PurposeOfUse;
use custodia_core::statement::Verified;
use custodia_core::time::Timestamp;
use custodia_log::hash::{Hash, leaf_hash};

use std::sync::Arc;

use custodia_log::policy::Policy;

use super::{IssuedGrant, Wallet, WalletError};
use crate::ledger::verify::{self, Learned};
use crate::ledger::{self, KeyTrust, Ledger, LedgerError, Member, NewMember, TrustedCheckpoint};
use crate::network::NetworkProfile;

/// The ledger a wallet is enrolled on, and what it learned there.
#[derive(Clone, Debug)]
pub struct LedgerLink {
    /// The ledger's root URL.
    pub url: String,
    /// The C2SP verifier key its checkpoints are opened with.
    pub verifier_key: String,
    /// The network authority, whose signature makes a member.
    pub authority: SigningPublicKey,
    /// The index of this wallet's own enrollment entry.
    pub enrollment_index: u64,
    /// The last checkpoint accepted: every later one must extend it.
    pub checkpoint: TrustedCheckpoint,
    /// The last of this wallet's entries a sync has read.
    pub synced_through: Option<u64>,
    /// Members already looked up and verified.
    pub members: Vec<Member>,
    /// Access events read from the ledger, oldest first.
    pub access_events: Vec<AccessRecord>,
    /// When joined with a network profile: the witness policy every checkpoint must satisfy.
    pub witness_policy: Option<Arc<Policy>>,
    /// The fingerprint of that profile.
    pub network: Option<String>,
}

/// An access event a gateway logged about this wallet's patient, opened and verified.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    /// Its ledger entry.
    pub index: u64,
    /// The entry's leaf hash, kept so its inclusion can be shown again later. `None` for events synced
    /// before the wallet kept it.
    pub leaf: Option<Hash>,
    /// Signed by the gateway it names, which was an enrolled gateway when the entry was logged.
    pub event: Verified<AccessEvent>,
}

/// An access event's inclusion in the wallet's checkpoint, fetched and verified.
#[derive(Clone, Debug)]
pub struct InclusionView {
    pub index: u64,
    pub leaf: Hash,
    pub checkpoint: TrustedCheckpoint,
    /// The audit path, leaf to root.
    pub path: Vec<Hash>,
    /// Under a witness policy: the witnesses whose cosignatures on the checkpoint verified.
    pub cosigned_by: Vec<String>,
}

impl InclusionView {
    /// The proof as a C2SP tlog-proof, to hand to someone else: the entry's index, its audit path and the
    /// (cosigned) checkpoint; the `extra` line carries the entry's leaf hash, which the proof binds to.
    pub fn to_tlog_proof(&self) -> String {
        custodia_log::tlog_proof::TlogProof {
            extra: Some(self.leaf.as_bytes().to_vec()),
            index: self.index,
            proof: self.path.clone(),
            checkpoint: self.checkpoint.note.clone(),
        }
        .to_text()
    }
}

/// The result of [`Wallet::enroll`].
#[derive(Clone, Debug)]
pub struct Enrollment {
    pub url: String,
    /// The enrollment entry's index.
    pub index: u64,
    /// True when the ledger already had this wallet enrolled (then `index` is that enrollment).
    pub already_enrolled: bool,
    pub verifier_key: String,
    pub trust: KeyTrust,
    pub authority: SigningPublicKey,
    pub checkpoint_size: u64,
    /// The fingerprint of the network profile joined with (none: joined from a bare URL).
    pub network: Option<String>,
    /// The witnesses whose quorum every checkpoint needs (empty: none).
    pub witnesses: Vec<String>,
}

/// An entry posted by the network authority or a gateway.
#[derive(Clone, Copy, Debug)]
pub struct Posted {
    pub index: u64,
    pub trust: KeyTrust,
}

/// Where a grant stands, as far as the wallet knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantStanding {
    Active,
    Expired,
    Revoked,
}

impl GrantStanding {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStanding::Active => "active",
            GrantStanding::Expired => "expired",
            GrantStanding::Revoked => "revoked",
        }
    }
}

/// One grant in a [`SyncReport`].
#[derive(Clone, Debug)]
pub struct GrantSummary {
    pub id: GrantId,
    pub status: GrantStanding,
    pub grantee: SigningPublicKey,
    pub purpose: PurposeOfUse,
    pub not_after: Timestamp,
    /// The grant's ledger entry; `None` if it was never posted.
    pub index: Option<u64>,
    pub revocation_index: Option<u64>,
}

/// What a sync found.
#[derive(Clone, Debug)]
pub struct SyncReport {
    pub url: String,
    /// The size of the checkpoint the wallet now holds.
    pub checkpoint_size: u64,
    /// How many of this wallet's entries the sync read (each verified).
    pub new_entries: usize,
    /// False when more entries remain than one sync reads ([`ledger::MAX_ENTRIES_PER_SYNC`]).
    pub complete: bool,
    /// Every grant the wallet holds, with its standing.
    pub grants: Vec<GrantSummary>,
    /// The access events this sync read, oldest first ([`Wallet::access_events`] has them all).
    pub new_access_events: Vec<AccessRecord>,
    /// Entries read in this sync whose bodies the patient had redacted: their leaves are proven, their
    /// contents gone.
    pub redacted: Vec<(u64, EntryKind)>,
    /// Recovery requests for this wallet found in this sync and not cancelled: if the patient did not
    /// make them, someone is trying to take the wallet over, and the patient should cancel them.
    pub new_recovery_requests: Vec<super::RecoveryAlert>,
    /// Under a witness policy: how far the witnessed checkpoint is behind the ledger, as the ledger
    /// reports it (`None` when it did not answer or there is no policy). Entries it has not had
    /// cosigned yet show in a later sync.
    pub witnessing: Option<custodia_core::ledger_api::WitnessingInfo>,
}

impl Wallet {
    /// The ledger this wallet is enrolled on, if any.
    pub fn ledger(&self) -> Option<&LedgerLink> {
        self.ledger.as_ref()
    }

    /// Access events read from the ledger so far, oldest first.
    pub fn access_events(&self) -> &[AccessRecord] {
        self.ledger.as_ref().map(|l| l.access_events.as_slice()).unwrap_or_default()
    }

    /// Resumes a session with the enrolled ledger.
    pub(super) fn session(&self) -> Result<(Ledger, LedgerLink), WalletError> {
        let link = self.ledger.clone().ok_or(WalletError::NotEnrolled)?;
        let ledger = Ledger::resume(&link.url, &link.verifier_key, link.authority, link.checkpoint.clone())?
            .with_policy(link.witness_policy.clone())
            .with_evidence_dir(Some(self.evidence_dir()));
        Ok((ledger, link))
    }

    /// Stores what a session learned: its checkpoint, the link, and the grants if they changed. On a
    /// failed write the wallet keeps what it had.
    pub(super) fn commit(
        &mut self,
        mut link: LedgerLink,
        ledger: &Ledger,
        grants: Option<Vec<IssuedGrant>>,
    ) -> Result<(), WalletError> {
        link.checkpoint = ledger.checkpoint().clone();
        let old_link = self.ledger.replace(link);
        let old_grants = grants.map(|g| std::mem::replace(&mut self.grants, g));
        if let Err(e) = self.save() {
            self.ledger = old_link;
            if let Some(g) = old_grants {
                self.grants = g;
            }
            return Err(e);
        }
        Ok(())
    }

    /// A member from the cache, or from the ledger (verified) into the cache.
    pub(super) fn member_in(
        ledger: &mut Ledger,
        link: &mut LedgerLink,
        key: &SigningPublicKey,
    ) -> Result<Member, LedgerError> {
        if let Some(m) = link.members.iter().find(|m| m.key == *key) {
            return Ok(m.clone());
        }
        let member = ledger.member(key)?;
        link.members.push(member.clone());
        Ok(member)
    }

    /// Enrolls this wallet on the ledger at `url` as a patient, and remembers the ledger. The checkpoint
    /// key is `verifier_key` if given (the ledger must agree), else the one the ledger announces (trust on
    /// first use, reported in [`Enrollment::trust`]). A ledger that already has this wallet enrolled is
    /// remembered with that enrollment.
    pub fn enroll(&mut self, url: &str, verifier_key: Option<&str>, now: Timestamp) -> Result<Enrollment, WalletError> {
        self.enroll_with(url, verifier_key, None, now)
    }

    /// Enrolls on the network a profile describes: its ledger, whose checkpoint key, authority and
    /// witness policy are the profile's (nothing is taken on first use), and whose every checkpoint must
    /// carry the witnesses' quorum from now on.
    pub fn enroll_network(&mut self, profile: &NetworkProfile, now: Timestamp) -> Result<Enrollment, WalletError> {
        self.enroll_with(&profile.ledger_url, Some(&profile.log_key().to_vkey()), Some(profile), now)
    }

    fn enroll_with(
        &mut self,
        url: &str,
        verifier_key: Option<&str>,
        profile: Option<&NetworkProfile>,
        now: Timestamp,
    ) -> Result<Enrollment, WalletError> {
        if let Some(link) = &self.ledger {
            return Err(WalletError::AlreadyEnrolled(link.url.clone()));
        }
        let policy = profile.map(|p| Arc::new(p.policy.clone()));
        let (ledger, trust) = Ledger::connect_with(url, verifier_key, policy.clone())?;
        let trust = if profile.is_some() { KeyTrust::Network } else { trust };
        let mut ledger = ledger.with_evidence_dir(Some(self.evidence_dir()));
        if let Some(profile) = profile
            && ledger.authority() != profile.authority
        {
            return Err(LedgerError::BadMember {
                key: ledger.authority().to_string(),
                reason: format!(
                    "the ledger names this network authority, the network profile names {}",
                    profile.authority
                ),
            }
            .into());
        }
        let entry = ledger::enrollment_entry(&self.identity, now)?;
        let (index, already_enrolled) = match ledger.append_one(entry) {
            Ok(index) => (index, false),
            Err(e) if e.problem_code() == Some("already-enrolled") => {
                let info = ledger.patient(&self.identity, &self.signing_key())?;
                if info.box_key != self.identity.box_public() || info.tag != self.identity.ledger_tag() {
                    return Err(LedgerError::BadEntry {
                        index: info.index,
                        reason: "the ledger's record of this wallet's enrollment names other keys".into(),
                    }
                    .into());
                }
                (info.index, true)
            }
            Err(e) => return Err(e.into()),
        };
        let link = LedgerLink {
            url: ledger.url().to_owned(),
            verifier_key: ledger.verifier_key(),
            authority: ledger.authority(),
            enrollment_index: index,
            checkpoint: ledger.checkpoint().clone(),
            synced_through: None,
            members: Vec::new(),
            access_events: Vec::new(),
            witness_policy: policy,
            network: profile.map(|p| p.fingerprint().to_string()),
        };
        let enrollment = Enrollment {
            url: link.url.clone(),
            index,
            already_enrolled,
            verifier_key: link.verifier_key.clone(),
            trust,
            authority: link.authority,
            checkpoint_size: ledger.checkpoint().size,
            network: link.network.clone(),
            witnesses: link.witness_policy.iter().flat_map(|p| p.witnesses.iter().map(|w| w.name.clone())).collect(),
        };
        self.commit(link, &ledger, None)?;
        Ok(enrollment)
    }

    /// Shows again that one of this wallet's access events is in the ledger: fetches an inclusion proof
    /// of its leaf in the checkpoint the wallet holds (which every sync checked for consistency) and
    /// verifies it. Changes nothing.
    pub fn access_inclusion(&self, index: u64) -> Result<InclusionView, WalletError> {
        let (ledger, link) = self.session()?;
        let record = link
            .access_events
            .binary_search_by_key(&index, |a| a.index)
            .ok()
            .map(|i| &link.access_events[i])
            .ok_or(WalletError::UnknownAccessEvent(index))?;
        let leaf = record.leaf.ok_or(WalletError::UnknownAccessEvent(index))?;
        let checkpoint = link.checkpoint.clone();
        let served = ledger.client().inclusion_proof(index, checkpoint.size)?;
        let path = verify::decode_hashes(&served.proof, "inclusion proof")
            .map_err(|reason| LedgerError::BadEntry { index, reason })?;
        custodia_log::proof::verify_inclusion(&leaf, index, checkpoint.size, &path, &checkpoint.root).map_err(|e| {
            LedgerError::BadEntry {
                index,
                reason: format!("its inclusion proof against the checkpoint of size {} fails: {e}", checkpoint.size),
            }
        })?;
        let cosigned_by = link
            .witness_policy
            .as_ref()
            .and_then(|p| p.accept(&checkpoint.note).ok())
            .map(|a| a.cosigned_by.into_iter().map(|(name, _)| name).collect())
            .unwrap_or_default();
        Ok(InclusionView { index, leaf, checkpoint, path, cosigned_by })
    }

    /// Moves the wallet to a new address of the same ledger: the ledger there must sign with the stored
    /// key, name the same authority, and serve a checkpoint consistent with the one the wallet holds.
    pub fn move_ledger(&mut self, url: &str) -> Result<String, WalletError> {
        let (_, mut link) = self.session()?;
        let mut ledger = Ledger::resume(url, &link.verifier_key, link.authority, link.checkpoint.clone())?
            .with_policy(link.witness_policy.clone());
        let info = ledger.client().info()?;
        if info.authority != link.authority {
            return Err(LedgerError::BadEntry {
                index: link.enrollment_index,
                reason: format!("the ledger at {} names another network authority ({})", ledger.url(), info.authority),
            }
            .into());
        }
        ledger.refresh()?;
        link.url = ledger.url().to_owned();
        self.commit(link, &ledger, None)?;
        Ok(ledger.url().to_owned())
    }

    /// Looks up an enrolled member on the wallet's ledger, verified (see [`Ledger::member`]), and caches it.
    pub fn member(&mut self, key: &SigningPublicKey) -> Result<Member, WalletError> {
        let cached = self.ledger.as_ref().ok_or(WalletError::NotEnrolled)?.members.iter().find(|m| m.key == *key);
        if let Some(member) = cached {
            return Ok(member.clone());
        }
        let (mut ledger, mut link) = self.session()?;
        let member = Self::member_in(&mut ledger, &mut link, key)?;
        self.commit(link, &ledger, None)?;
        Ok(member)
    }

    fn grant_position(&self, id: GrantId) -> Result<usize, WalletError> {
        self.grants.iter().position(|g| g.grant.id == id).ok_or(WalletError::UnknownGrant(id))
    }

    /// Posts one of this wallet's grants to its ledger, sealed to the patient and the grantee (who must be
    /// an enrolled member). Returns the entry's index.
    pub fn post_grant(&mut self, id: GrantId, now: Timestamp) -> Result<u64, WalletError> {
        let position = self.grant_position(id)?;
        if let Some(index) = self.grants[position].grant_index {
            return Err(WalletError::AlreadyPosted { what: "grant", id, index });
        }
        let (mut ledger, mut link) = self.session()?;
        let issued = &self.grants[position];
        let grantee_box = match issued.card_box {
            Some(card) => card,
            None => Self::member_in(&mut ledger, &mut link, &issued.grant.grantee)?.box_key,
        };
        let index = ledger.append_one(ledger::grant_entry(&self.identity, &issued.grant, &grantee_box, now)?)?;
        let mut grants = self.grants.clone();
        grants[position].grant_index = Some(index);
        self.commit(link, &ledger, Some(grants))?;
        Ok(index)
    }

    /// Posts the revocation of one of this wallet's grants, which must be on the ledger already. Returns
    /// the entry's index.
    pub fn post_revocation(&mut self, id: GrantId, now: Timestamp) -> Result<u64, WalletError> {
        let position = self.grant_position(id)?;
        let issued = &self.grants[position];
        let revocation = issued.revocation.as_ref().ok_or(WalletError::NotRevoked(id))?;
        if let Some(index) = issued.revocation_index {
            return Err(WalletError::AlreadyPosted { what: "revocation", id, index });
        }
        if issued.grant_index.is_none() {
            return Err(WalletError::GrantNotOnLedger(id));
        }
        let (mut ledger, mut link) = self.session()?;
        let grantee_box = match issued.card_box {
            Some(card) => card,
            None => Self::member_in(&mut ledger, &mut link, &issued.grant.grantee)?.box_key,
        };
        let entry = ledger::revocation_entry(&self.identity, revocation, &grantee_box, now)?;
        let index = ledger.append_one(entry)?;
        let mut grants = self.grants.clone();
        grants[position].revocation_index = Some(index);
        self.commit(link, &ledger, Some(grants))?;
        Ok(index)
    }

    /// Reads this wallet's new entries from its ledger, verifies each (proof, leaf, signature, tag,
    /// signer, sealed body; see [`verify::learn`]), and keeps what they say: grants and revocations
    /// (including ones issued from another device with the same seed), and access events. Any entry that
    /// fails is an error naming its index, and then nothing of the sync is kept.
    pub fn sync(&mut self, now: Timestamp) -> Result<SyncReport, WalletError> {
        let (mut ledger, _) = self.session()?;
        // The ledger's head first: a fork is found even if the forked ledger refuses everything else.
        ledger.refresh()?;
        self.settle_rotation(&mut ledger)?;
        let (mut ledger, mut link) = self.session()?;
        let (logged, more) = match ledger.tag_entries(&self.identity, link.synced_through) {
            Ok(read) => read,
            // Refused: perhaps this wallet's key was rotated away by a recovery on another device, which
            // the ledger's public recovery record shows.
            Err(LedgerError::Problem { code, status, detail, entry }) if code == "forbidden" => {
                self.learn_retirement(&mut ledger)?;
                return Err(LedgerError::Problem { code, status, detail, entry }.into());
            }
            Err(e) => return Err(e.into()),
        };
        let mut grants = self.grants.clone();
        let mut redacted = Vec::new();
        let mut new_access_events = Vec::new();
        let mut recovery = Vec::new();
        let mut keys = self.keys();
        for entry in &logged {
            let learned = verify::learn(&keys, entry, |key| Self::member_in(&mut ledger, &mut link, key))?;
            let leaf = leaf_hash(&entry.leaf.to_bytes());
            match learned {
                learned @ (Learned::GuardianSet(_)
                | Learned::RecoveryRequest { .. }
                | Learned::RecoveryCancel { .. }
                | Learned::KeyRotation { .. }) => {
                    let rotation = matches!(learned, Learned::KeyRotation { .. });
                    self.learn_recovery(learned)?;
                    recovery.push(entry.index);
                    if rotation {
                        // Seeds a rotation carries open the entries after it.
                        keys = self.keys();
                    }
                }
                learned => absorb(learned, leaf, &mut grants, &mut link, &mut redacted, &mut new_access_events)?,
            }
            link.synced_through = Some(entry.index);
        }
        link.access_events.sort_by_key(|a| a.index);
        // Readers the patient has never dealt with (an emergency provider who used their card): look up
        // their enrollment, so the log names them verified. A key that is no member stays unnamed.
        let mut unknown: Vec<SigningPublicKey> = Vec::new();
        for record in &new_access_events {
            let reader = record.event.reader;
            if !unknown.contains(&reader) && !link.members.iter().any(|m| m.key == reader) {
                unknown.push(reader);
            }
        }
        for reader in unknown.into_iter().take(MAX_READER_LOOKUPS) {
            match Self::member_in(&mut ledger, &mut link, &reader) {
                Ok(_) | Err(LedgerError::NotAMember(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let new_recovery_requests = self
            .recovery_alerts()
            .iter()
            .filter(|a| a.cancelled_at.is_none() && recovery.contains(&a.index))
            .cloned()
            .collect();
        if logged.is_empty() {
            // Nothing of this wallet's changed: keep the newer checkpoint in memory and leave the vault
            // alone (rewriting a large vault every poll costs more than it protects; after a crash the
            // next sync checks consistency from the stored, older checkpoint).
            link.checkpoint = ledger.checkpoint().clone();
            self.ledger = Some(link);
        } else {
            self.commit(link, &ledger, Some(grants))?;
        }
        let grants = self
            .grants
            .iter()
            .map(|g| GrantSummary {
                id: g.grant.id,
                status: g.standing(now),
                grantee: g.grant.grantee,
                purpose: g.grant.purpose,
                not_after: g.grant.not_after,
                index: g.grant_index,
                revocation_index: g.revocation_index,
            })
            .collect();
        let witnessing =
            if ledger.policy().is_some() { ledger.client().info().ok().and_then(|info| info.witnessing) } else { None };
        Ok(SyncReport {
            witnessing,
            url: ledger.url().to_owned(),
            checkpoint_size: ledger.checkpoint().size,
            new_entries: logged.len(),
            complete: !more,
            grants,
            new_access_events,
            redacted,
            new_recovery_requests,
        })
    }

    /// A session with the ledger at `url` for the authority and gateway roles: the wallet's own ledger
    /// (its stored key and checkpoint) if it is enrolled there, else a new connection.
    pub(super) fn session_for(
        &self,
        url: &str,
        verifier_key: Option<&str>,
    ) -> Result<(Ledger, Option<LedgerLink>, KeyTrust), WalletError> {
        let normalised = ledger::normalise_url(url)?;
        match &self.ledger {
            Some(link) if link.url == normalised => {
                if let Some(given) = verifier_key
                    && ledger::parse_verifier_key(given)?.to_vkey() != link.verifier_key
                {
                    return Err(LedgerError::VerifierKeyMismatch {
                        url: normalised,
                        served: link.verifier_key.clone(),
                        expected: given.to_owned(),
                    }
                    .into());
                }
                let (ledger, link) = self.session()?;
                Ok((ledger, Some(link), KeyTrust::Stored))
            }
            _ => {
                let (ledger, trust) = Ledger::connect(url, verifier_key)?;
                Ok((ledger, None, trust))
            }
        }
    }

    /// As the network authority: enrolls a provider, gateway or emergency provider on the ledger at `url`.
    pub fn enroll_member(
        &mut self,
        url: &str,
        verifier_key: Option<&str>,
        member: NewMember,
        now: Timestamp,
    ) -> Result<Posted, WalletError> {
        let (mut ledger, link, trust) = self.session_for(url, verifier_key)?;
        let index = ledger::enroll_member(&mut ledger, &self.identity, member, now)?;
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        Ok(Posted { index, trust })
    }

    /// As a gateway: posts an access event (whose `gateway` is this wallet) on the ledger at `url`.
    pub fn post_access_event(
        &mut self,
        url: &str,
        verifier_key: Option<&str>,
        event: AccessEvent,
        now: Timestamp,
    ) -> Result<Posted, WalletError> {
        let (mut ledger, link, trust) = self.session_for(url, verifier_key)?;
        let index = ledger::post_access_event(&mut ledger, &self.identity, event, now)?;
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        Ok(Posted { index, trust })
    }
}

impl Wallet {
    /// As a gateway: posts many access events about one patient, in requests of `batch` entries (for
    /// demonstrations and load tests; a real gateway posts each read as it happens).
    pub fn post_access_events(
        &mut self,
        url: &str,
        verifier_key: Option<&str>,
        events: Vec<AccessEvent>,
        batch: usize,
        now: Timestamp,
        progress: impl FnMut(usize),
    ) -> Result<Vec<u64>, WalletError> {
        let (mut ledger, link, _) = self.session_for(url, verifier_key)?;
        let indexes = ledger::post_access_events(&mut ledger, &self.identity, events, batch, now, progress)?;
        if let Some(link) = link {
            self.commit(link, &ledger, None)?;
        }
        Ok(indexes)
    }
}

/// Readers a sync looks up on the ledger at most, so a flood of strangers cannot make it slow.
const MAX_READER_LOOKUPS: usize = 32;

/// How many of the latest access events a sync compares a new one with, to drop a gateway's repeat.
const REPEAT_WINDOW: usize = 4096;

/// Folds what one entry taught into the wallet's grants and ledger state (copies, kept only if the whole
/// sync succeeds).
fn absorb(
    learned: Learned,
    leaf: Hash,
    grants: &mut Vec<IssuedGrant>,
    link: &mut LedgerLink,
    redacted: &mut Vec<(u64, EntryKind)>,
    new_access_events: &mut Vec<AccessRecord>,
) -> Result<(), LedgerError> {
    let bad = |index: u64, reason: String| LedgerError::BadEntry { index, reason };
    match learned {
        Learned::Enrollment { index } => {
            if index != link.enrollment_index {
                return Err(bad(
                    index,
                    format!("a second enrollment of this wallet (the first is entry {})", link.enrollment_index),
                ));
            }
        }
        Learned::Grant { index, grant } => match grants.iter_mut().find(|g| g.grant.id == grant.id) {
            Some(held) => {
                if statement_digest(held.grant.envelope()) != statement_digest(grant.envelope()) {
                    return Err(bad(
                        index,
                        format!("grant {} differs from the one this wallet holds under that id", grant.id),
                    ));
                }
                match held.grant_index {
                    Some(i) if i != index => {
                        return Err(bad(index, format!("grant {} is on the ledger twice (also entry {i})", grant.id)));
                    }
                    _ => held.grant_index = Some(index),
                }
            }
            None => grants.push(IssuedGrant {
                grant: *grant,
                revocation: None,
                grant_index: Some(index),
                revocation_index: None,
                card_box: None,
            }),
        },
        Learned::Revocation { index, revocation } => {
            let id = revocation.grant_id;
            // The patient's own revocation (the ledger files it under the patient's tag, and a sync checks
            // it is theirs) of a grant this wallet cannot see: one whose body the patient redacted, met by a
            // wallet restored afterwards. Nothing is left to mark revoked.
            let Some(held) = grants.iter_mut().find(|g| g.grant.id == id) else {
                return Ok(());
            };
            match held.revocation_index {
                Some(i) if i != index => {
                    return Err(bad(index, format!("grant {id} is revoked on the ledger twice (also entry {i})")));
                }
                _ => {
                    // The ledger's revocation is the one gateways see; keep that one.
                    held.revocation = Some(*revocation);
                    held.revocation_index = Some(index);
                }
            }
        }
        Learned::Access { index, event } => {
            // Held events are sorted by index, and a sync reads entries in index order.
            let held = link.access_events.last().is_some_and(|a| a.index >= index)
                && link.access_events.binary_search_by_key(&index, |a| a.index).is_ok();
            // A gateway posts at least once: after a crash it may post an event again under a new entry.
            // The event's random id tells; a repeat lands close behind the first.
            let repeated = link
                .access_events
                .iter()
                .rev()
                .take(REPEAT_WINDOW)
                .any(|a| a.event.id == event.id && a.event.gateway == event.gateway);
            if !held && !repeated {
                let record = AccessRecord { index, leaf: Some(leaf), event: *event };
                new_access_events.push(record.clone());
                link.access_events.push(record);
            }
        }
        Learned::Redaction { .. }
        | Learned::GuardianSet(_)
        | Learned::RecoveryRequest { .. }
        | Learned::RecoveryCancel { .. }
        | Learned::KeyRotation { .. } => {}
        Learned::Redacted { index, kind } => redacted.push((index, kind)),
    }
    Ok(())
}
