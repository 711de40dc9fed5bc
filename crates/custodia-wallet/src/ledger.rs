//! The wallet's side of the ledger: an HTTP client ([`LedgerClient`]) and a verifying session over it
//! ([`Ledger`]) that believes nothing the ledger says without a proof.
//!
//! A session holds the ledger's checkpoint key and the last checkpoint it accepted. Every checkpoint the
//! ledger sends afterwards is opened with that key and must extend the accepted one: a smaller tree, the
//! same size with another root, or a consistency proof that fails is [`LedgerError::Forked`], and nothing
//! that came with it is used. Every entry the ledger hands back is proven into the tree its checkpoint
//! signs, its leaf must commit to the envelope's exact bytes, and the envelope must be signed by its
//! signer. Only when all of that holds does the session move on to the new checkpoint; the wallet then
//! stores it (see [`crate::wallet`]).
//!
//! What the ledger cannot prove, it is not asked to: a member's record comes with the authority-signed
//! enrollment itself and its inclusion is checked; a patient's encryption key for a gateway
//! ([`Ledger::patient`]) is the ledger's word, which a lying ledger could only use to read an access
//! event it stores anyway.

mod client;
pub mod evidence;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use custodia_log::policy::Policy;

use custodia_core::entry::{
    AccessEvent, Content, EntryKind, LedgerEntry, RequestId, Role, SetId, Tag, seal_statement, statement_digest,
};
use custodia_core::grant::{VerifiedGrant, VerifiedRevocation};
use custodia_core::ledger_api::PatientInfo;
use custodia_core::recovery::ShareMailbox;
use custodia_core::seal::SealError;
use custodia_core::statement::{self, StatementError, Verified};
use custodia_core::time::Timestamp;
use custodia_core::{BoxPublicKey, Identity, SigningPublicKey};
use custodia_log::Hash;
use custodia_log::checkpoint::CheckpointError;
use custodia_log::note::{NoteError, NoteVerifier};

pub(crate) use client::request_time;
pub use client::{
    CONNECT_TIMEOUT, LedgerClient, MAX_RESPONSE_BYTES, REQUEST_TIMEOUT, TagStream, http_client, normalise_url,
};
pub use verify::{LoggedEntry, Member, TrustedCheckpoint};

/// One sync reads at most this many entries; a patient with more syncs again for the rest.
pub const MAX_ENTRIES_PER_SYNC: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not a ledger URL ({url}): {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the ledger at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server's certificate was refused (unknown issuer, expired, another name) or it spoke no TLS: not an
    /// outage, a server this wallet must not talk to.
    #[error("refused the connection to {url}: {reason}")]
    Refused { url: String, reason: String },
    #[error("the system clock is not a usable time")]
    Clock,
    /// The ledger refused, with an RFC 9457 problem: `code` is the part after `urn:custodia:problem:`.
    #[error("the ledger refused: {detail} ({code}{})", entry_suffix(*.entry))]
    Problem { status: u16, code: String, detail: String, entry: Option<usize> },
    #[error("the ledger answered {target} with HTTP status {status}")]
    Status { target: String, status: u16 },
    #[error("the ledger's answer to {target} is larger than {limit} bytes")]
    TooLarge { target: String, limit: usize },
    #[error("the ledger's answer to {target} is malformed: {reason}")]
    Malformed { target: String, reason: String },
    #[error("not a ledger verifier key ({key}): {source}")]
    BadVerifierKey { key: String, source: NoteError },
    #[error("the ledger at {url} says its key is {served}, not the {expected} you gave; refusing to use it")]
    VerifierKeyMismatch { url: String, served: String, expected: String },
    #[error("the ledger's checkpoint does not verify with its key {key_name}: {source}")]
    BadCheckpoint { key_name: String, source: CheckpointError },
    /// The ledger signed two views of its log that cannot both be true. Nothing from the answer that
    /// showed it is used or stored.
    #[error(
        "the ledger has forked or rewritten its history: it signed a log of {old_size} entries with root \
         {old_root}, and now a log of {new_size} entries with root {new_root}, which does not extend it \
         ({reason}); nothing from this answer was accepted"
    )]
    Forked { old_size: u64, old_root: String, new_size: u64, new_root: String, reason: String },
    #[error("ledger entry {index}: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error("the ledger's record of member {key} does not verify: {reason}")]
    BadMember { key: String, reason: String },
    #[error("{0} is not enrolled on the ledger as a member (the network authority enrolls providers and gateways)")]
    NotAMember(String),
    #[error("this wallet ({wallet}) is not the ledger's network authority ({authority})")]
    NotAuthority { wallet: String, authority: String },
    #[error("the ledger's log does not check out: {0}")]
    Audit(String),
    /// A checkpoint without the witness policy's quorum of cosignatures: not accepted, whatever the
    /// ledger signed.
    #[error("the ledger at {url} served a checkpoint its witnesses have not vouched for: {reason}")]
    Unwitnessed { url: String, reason: String },
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error("cannot seal the entry's body: {0}")]
    Seal(#[from] SealError),
}

fn entry_suffix(entry: Option<usize>) -> String {
    entry.map(|e| format!(", entry {e} of the request")).unwrap_or_default()
}

impl LedgerError {
    /// The problem code when the ledger refused with one (`not-enrolled`, `replayed`, ...).
    pub fn problem_code(&self) -> Option<&str> {
        match self {
            LedgerError::Problem { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether this is the ledger failing a check (a fork, a bad proof, an entry or member record that
    /// does not verify, an audit mismatch), as opposed to not being reachable or refusing a request.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            LedgerError::BadCheckpoint { .. }
                | LedgerError::Forked { .. }
                | LedgerError::BadEntry { .. }
                | LedgerError::BadMember { .. }
                | LedgerError::VerifierKeyMismatch { .. }
                | LedgerError::Audit(_)
                | LedgerError::Refused { .. }
                | LedgerError::Unwitnessed { .. }
        )
    }
}

/// Where the session's checkpoint key came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTrust {
    /// The caller gave it (`--verifier-key`), and the ledger's `/v1/info` agreed.
    Given,
    /// Taken from the ledger's own `/v1/info`: trust on first use.
    FirstUse,
    /// The key the wallet stored when it enrolled.
    Stored,
    /// Pinned by a network profile, with the witness policy and the authority.
    Network,
}

impl KeyTrust {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyTrust::Given => "given",
            KeyTrust::FirstUse => "first-use",
            KeyTrust::Stored => "stored",
            KeyTrust::Network => "network-profile",
        }
    }
}

/// Parses a C2SP verifier key (`<name>+<key id>+<base64>`).
pub fn parse_verifier_key(text: &str) -> Result<NoteVerifier, LedgerError> {
    NoteVerifier::from_vkey(text.trim())
        .map_err(|source| LedgerError::BadVerifierKey { key: text.chars().take(200).collect(), source })
}

/// A grant's state, proven (see [`Ledger::grant_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvenGrant {
    /// Logged at `index` with `digest` (of its DSSE signing input) under the patient's `tag`, not revoked
    /// as of the checkpoint.
    Active { digest: custodia_core::entry::Digest, index: u64, tag: custodia_core::entry::Tag },
    /// Revoked by entry `index`: proven if `witnessed`, else logged after the checkpoint.
    Revoked { index: u64, witnessed: bool },
    /// The patient erased the grant's body.
    Redacted,
}

/// Checks `note` has `policy`'s quorum of cosignatures.
fn witnessed(policy: &Policy, note: &str, url: &str) -> Result<(), LedgerError> {
    policy.accept(note).map(|_| ()).map_err(|e| LedgerError::Unwitnessed { url: url.to_owned(), reason: e.to_string() })
}

/// A checked checkpoint not yet accepted: the session moves to it once everything that came with it
/// has been checked too.
struct Pending {
    checkpoint: custodia_log::Checkpoint,
    note: String,
}

/// A verifying session with one ledger.
#[derive(Debug)]
pub struct Ledger {
    client: LedgerClient,
    verifier: NoteVerifier,
    authority: SigningPublicKey,
    trusted: TrustedCheckpoint,
    /// With a witness policy, a checkpoint is accepted only with its quorum's cosignatures.
    policy: Option<Arc<Policy>>,
    /// Where two signed checkpoints that cannot both be true are kept as evidence.
    evidence_dir: Option<PathBuf>,
}

/// How long a session waits for a cosigned checkpoint to cover an entry it was just told about.
pub const COSIGNED_WAIT: Duration = Duration::from_secs(15);

impl Ledger {
    /// Connects to a ledger for the first time: reads `/v1/info`, takes the checkpoint key given (which
    /// the ledger must agree with) or, without one, the ledger's own (trust on first use), and fetches and
    /// opens the current checkpoint.
    pub fn connect(url: &str, verifier_key: Option<&str>) -> Result<(Ledger, KeyTrust), LedgerError> {
        Self::connect_with(url, verifier_key, None)
    }

    /// [`Ledger::connect`] under a witness policy: the first checkpoint, like every later one, must carry
    /// the quorum's cosignatures.
    pub fn connect_with(
        url: &str,
        verifier_key: Option<&str>,
        policy: Option<Arc<Policy>>,
    ) -> Result<(Ledger, KeyTrust), LedgerError> {
        let client = LedgerClient::new(url)?;
        let info = client.info()?;
        let served = parse_verifier_key(&info.verifier_key);
        let (verifier, trust) = match verifier_key {
            Some(given) => {
                let given = parse_verifier_key(given)?;
                if served.as_ref().ok() != Some(&given) {
                    return Err(LedgerError::VerifierKeyMismatch {
                        url: client.url().to_owned(),
                        served: info.verifier_key.chars().take(200).collect(),
                        expected: given.to_vkey(),
                    });
                }
                (given, KeyTrust::Given)
            }
            None => (served?, KeyTrust::FirstUse),
        };
        let note = client.checkpoint()?;
        let checkpoint = verify::open_checkpoint(&note, &verifier)?;
        if let Some(policy) = &policy {
            witnessed(policy, &note, client.url())?;
        }
        let trusted = TrustedCheckpoint::new(&checkpoint, &note);
        let ledger = Ledger { client, verifier, authority: info.authority, trusted, policy, evidence_dir: None };
        Ok((ledger, trust))
    }

    /// Resumes a session from what a wallet stored: the URL, the key, the authority and the last
    /// checkpoint accepted. Nothing is fetched until it is needed.
    pub fn resume(
        url: &str,
        verifier_key: &str,
        authority: SigningPublicKey,
        trusted: TrustedCheckpoint,
    ) -> Result<Ledger, LedgerError> {
        let client = LedgerClient::new(url)?;
        let verifier = parse_verifier_key(verifier_key)?;
        Ok(Ledger { client, verifier, authority, trusted, policy: None, evidence_dir: None })
    }

    /// Accepts checkpoints only with `policy`'s quorum of cosignatures from now on.
    pub fn with_policy(mut self, policy: Option<Arc<Policy>>) -> Self {
        self.policy = policy;
        self
    }

    /// Keeps evidence of a split view (two signed checkpoints that cannot both be true) in `dir`.
    pub fn with_evidence_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.evidence_dir = dir;
        self
    }

    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.policy.as_ref()
    }

    pub fn client(&self) -> &LedgerClient {
        &self.client
    }

    pub fn url(&self) -> &str {
        self.client.url()
    }

    pub fn verifier_key(&self) -> String {
        self.verifier.to_vkey()
    }

    pub fn authority(&self) -> SigningPublicKey {
        self.authority
    }

    /// The last checkpoint this session accepted.
    pub fn checkpoint(&self) -> &TrustedCheckpoint {
        &self.trusted
    }

    /// Opens a checkpoint, checks it has the witness policy's quorum (if the session has a policy) and
    /// that it extends the accepted one (fetching a consistency proof when the tree grew). Does not
    /// accept it.
    fn check(&self, note: &str) -> Result<Pending, LedgerError> {
        let pending = self.check_signed(note)?;
        if let Some(policy) = &self.policy {
            witnessed(policy, note, self.client.url())?;
        }
        Ok(pending)
    }

    /// [`Ledger::check`] without the witnesses: for an append's receipt, which the ledger signs at once
    /// and the witnesses cosign later. A checkpoint that does not extend the accepted one is kept as
    /// evidence.
    fn check_signed(&self, note: &str) -> Result<Pending, LedgerError> {
        let checkpoint = verify::open_checkpoint(note, &self.verifier)?;
        let extends = verify::check_extends(Some(&self.trusted), &checkpoint, |old, new| self.consistency(old, new));
        if let Err(e @ LedgerError::Forked { .. }) = &extends {
            self.keep_evidence(note, &e.to_string());
        }
        extends?;
        Ok(Pending { checkpoint, note: note.to_owned() })
    }

    /// Writes the accepted checkpoint and `conflicting` (both signed by the ledger's key) to the
    /// evidence folder, one JSON file per split view seen. Failing to write is not a reason to stop
    /// refusing; it is reported on standard error.
    fn keep_evidence(&self, conflicting: &str, reason: &str) {
        let Some(dir) = &self.evidence_dir else { return };
        let found_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let record = evidence::SplitView {
            found_at,
            ledger: self.client.url().to_owned(),
            log_key: self.verifier.to_vkey(),
            reason: reason.to_owned(),
            accepted: self.trusted.note.clone(),
            conflicting: conflicting.to_owned(),
        };
        if let Err(e) = evidence::keep(dir, &record) {
            eprintln!("custodia: could not keep the evidence of a split view in {}: {e}", dir.display());
        }
    }

    fn accept(&mut self, pending: Pending) {
        self.trusted = TrustedCheckpoint::new(&pending.checkpoint, &pending.note);
    }

    fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LedgerError> {
        let proof = self.client.consistency_proof(old, new)?;
        let target = || format!("/v1/proof/consistency?old={old}&new={new}");
        if (proof.old, proof.new) != (old, new) {
            return Err(LedgerError::Malformed { target: target(), reason: "the proof is for other sizes".into() });
        }
        verify::decode_hashes(&proof.proof, "consistency proof")
            .map_err(|reason| LedgerError::Malformed { target: target(), reason })
    }

    /// Fetches the ledger's current checkpoint and moves to it if it extends the accepted one.
    pub fn refresh(&mut self) -> Result<&TrustedCheckpoint, LedgerError> {
        let note = self.client.checkpoint()?;
        let pending = self.check(&note)?;
        self.accept(pending);
        Ok(&self.trusted)
    }

    /// Refreshes until the accepted checkpoint covers `size` entries: under a witness policy the
    /// cosigned checkpoint follows appends by a moment, so this waits up to [`COSIGNED_WAIT`] for it.
    pub fn refresh_to(&mut self, size: u64) -> Result<&TrustedCheckpoint, LedgerError> {
        let deadline = std::time::Instant::now() + COSIGNED_WAIT;
        loop {
            self.refresh()?;
            if self.trusted.size >= size || self.policy.is_none() || std::time::Instant::now() >= deadline {
                return Ok(&self.trusted);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Appends entries (all or none) and checks the receipts: the checkpoint extends the accepted one,
    /// each leaf commits to its entry and is proven into the tree. Returns the entries' indexes.
    pub fn append(&mut self, entries: &[Verified<LedgerEntry>]) -> Result<Vec<u64>, LedgerError> {
        let envelopes: Vec<String> = entries.iter().map(Verified::to_compact_json).collect();
        let response = self.client.append(&envelopes)?;
        if response.entries.len() != entries.len() {
            return Err(LedgerError::Malformed {
                target: "/v1/entries".into(),
                reason: format!("{} receipts for {} entries", response.entries.len(), entries.len()),
            });
        }
        // The receipt's checkpoint is the ledger's alone: it proves the entries are logged, and it must
        // extend what was accepted, but under a witness policy the session moves only to cosigned ones.
        let pending = self.check_signed(&response.checkpoint)?;
        let mut indexes = Vec::with_capacity(entries.len());
        for (entry, receipt) in entries.iter().zip(&response.entries) {
            verify::check_receipt(entry, receipt.index, &receipt.leaf, &receipt.inclusion, &pending.checkpoint)?;
            indexes.push(receipt.index);
        }
        if self.policy.is_none() {
            self.accept(pending);
        }
        Ok(indexes)
    }

    /// Appends one entry; returns its index.
    pub fn append_one(&mut self, entry: Verified<LedgerEntry>) -> Result<u64, LedgerError> {
        let indexes = self.append(std::slice::from_ref(&entry))?;
        indexes.first().copied().ok_or_else(|| LedgerError::Malformed {
            target: "/v1/entries".into(),
            reason: "no receipt for the entry".into(),
        })
    }

    /// Checks that `leaf` is entry `index` of the log, by an inclusion proof against the accepted
    /// checkpoint (refreshed first if it does not cover the entry yet).
    fn check_included(&mut self, index: u64, leaf: &[u8; custodia_core::entry::LEAF_LEN]) -> Result<(), LedgerError> {
        if self.trusted.size <= index {
            self.refresh_to(index + 1)?;
        }
        let size = self.trusted.size;
        if size <= index {
            return Err(LedgerError::BadEntry {
                index,
                reason: format!("the ledger's checkpoint (size {size}) does not cover it"),
            });
        }
        let proof = self.client.inclusion_proof(index, size)?;
        if (proof.index, proof.size) != (index, size) {
            return Err(LedgerError::Malformed {
                target: format!("/v1/proof/inclusion?index={index}&size={size}"),
                reason: "the proof is for another entry or size".into(),
            });
        }
        if data_encoding::BASE64.decode(proof.leaf.as_bytes()).ok().as_deref() != Some(&leaf[..]) {
            return Err(LedgerError::BadEntry { index, reason: "the inclusion proof is for another leaf".into() });
        }
        verify::check_inclusion(index, leaf, &proof.proof, size, &self.trusted.root)
    }

    /// A grant's state as the ledger's published checkpoint proves it (under a witness policy, one the
    /// witnesses cosigned): the grant's own entry, and its revocation's if revoked by then, each checked
    /// by inclusion proof and signature, as an enrolled member (`asker`) may ask. A revocation logged
    /// after that checkpoint is reported as such: it cannot be proven yet, but refusing on it is safe.
    pub fn grant_state(
        &mut self,
        asker: &Identity,
        id: &custodia_core::grant::GrantId,
    ) -> Result<ProvenGrant, LedgerError> {
        let proof = self.client.grant_proof(asker, id)?;
        let pending = self.check(&proof.checkpoint)?;
        let grant = verify::check_tag_entry(&proof.grant, &pending.checkpoint)?;
        let bad = |index: u64, reason: &str| LedgerError::BadEntry { index, reason: reason.to_owned() };
        if grant.leaf.kind != EntryKind::Grant {
            return Err(bad(grant.index, "the ledger gave another kind of entry as the grant's"));
        }
        let (tag, digest) = match grant.entry.as_ref().map(|e| &e.content) {
            Some(Content::Grant { tag, grant_id, grant_digest, .. }) if grant_id == id => {
                (Some(*tag), Some(*grant_digest))
            }
            Some(_) => return Err(bad(grant.index, "the entry given as the grant's is another grant's")),
            None => (None, None),
        };
        let revoked = match &proof.revocation {
            Some(served) => {
                let revocation = verify::check_tag_entry(served, &pending.checkpoint)?;
                match revocation.entry.as_ref().map(|e| &e.content) {
                    Some(Content::Revocation { tag: by, grant_id, .. })
                        if grant_id == id && (tag.is_none() || tag == Some(*by)) => {}
                    None if revocation.leaf.kind == EntryKind::Revocation => {}
                    _ => return Err(bad(revocation.index, "the entry given as the grant's revocation is not one")),
                }
                Some(revocation.index)
            }
            None => None,
        };
        self.accept(pending);
        Ok(match (digest.zip(tag), revoked, proof.revoked_later) {
            (_, Some(index), _) => ProvenGrant::Revoked { index, witnessed: true },
            (_, None, Some(index)) => ProvenGrant::Revoked { index, witnessed: false },
            (None, None, None) => ProvenGrant::Redacted,
            (Some((digest, tag)), None, None) => ProvenGrant::Active { digest, index: grant.index, tag },
        })
    }

    /// Checks a grant change from the ledger's feed that came with a proof: the checkpoint (consistent
    /// with the accepted one, with the witnesses' quorum), the entry proven into it, and the entry saying
    /// what the change says. The session moves to the checkpoint.
    pub fn check_grant_change(&mut self, change: &custodia_core::ledger_api::GrantChange) -> Result<(), LedgerError> {
        let Some(proof) = &change.proof else { return Ok(()) };
        let pending = self.check(&proof.checkpoint)?;
        let logged = verify::check_tag_entry(&proof.entry, &pending.checkpoint)?;
        let says = match logged.entry.as_ref().map(|e| &e.content) {
            Some(Content::Revocation { tag, grant_id, .. }) => *tag == change.tag && Some(*grant_id) == change.grant_id,
            Some(Content::Redaction { tag }) => *tag == change.tag && change.grant_id.is_none(),
            _ => false,
        };
        if logged.index != change.index || logged.leaf.kind != change.kind || !says {
            return Err(LedgerError::BadEntry {
                index: change.index,
                reason: "the feed's change is not what its proven entry says".into(),
            });
        }
        self.accept(pending);
        Ok(())
    }

    /// An enrolled member, checked: enrolled by the network authority, the record matches the signed
    /// enrollment, and the enrollment is in the log. [`LedgerError::NotAMember`] if the ledger knows no
    /// such member.
    pub fn member(&mut self, key: &SigningPublicKey) -> Result<Member, LedgerError> {
        let info = match self.client.member(key) {
            Err(LedgerError::Problem { code, .. }) if code == "not-found" => {
                return Err(LedgerError::NotAMember(key.to_string()));
            }
            other => other?,
        };
        let (member, leaf) = verify::check_member(key, &info, &self.authority)?;
        self.check_included(member.index, &leaf)?;
        Ok(member)
    }

    /// A patient's encryption key and tag, as the ledger records them: a signed request by `asker`, an
    /// enrolled member or the patient.
    ///
    /// A key the patient has since rotated away answers with the patient's current record (a gateway
    /// holding a grant signed before the rotation seals its events to the key the patient holds now); the
    /// rotations from `key` to it are then checked in the patient's recovery entries.
    pub fn patient(&mut self, asker: &Identity, key: &SigningPublicKey) -> Result<PatientInfo, LedgerError> {
        let info = self.client.patient(asker, key)?;
        if info.key != *key {
            let view = self.recovery(asker, key)?;
            if view.patient != info || !view.keys.contains(key) {
                return Err(LedgerError::Malformed {
                    target: format!("/v1/patients/{key}"),
                    reason: format!("the answer is about {}, and no rotation from {key} to it is shown", info.key),
                });
            }
        }
        Ok(info)
    }

    /// The patient's entries after `after` (from the first without it), page by page, each page's
    /// checkpoint checked to extend the last and each entry checked by [`verify::check_tag_entry`].
    /// Returns the entries and whether more remain (past [`MAX_ENTRIES_PER_SYNC`]).
    pub fn tag_entries(
        &mut self,
        patient: &Identity,
        mut after: Option<u64>,
    ) -> Result<(Vec<LoggedEntry>, bool), LedgerError> {
        let mut out = Vec::new();
        loop {
            let page = self.client.tag_entries(patient, after, None)?;
            let pending = self.check(&page.checkpoint)?;
            let mut logged = Vec::with_capacity(page.entries.len());
            for served in &page.entries {
                if after.is_some_and(|a| served.index <= a) {
                    return Err(LedgerError::BadEntry {
                        index: served.index,
                        reason: "the ledger served it out of order or again".into(),
                    });
                }
                logged.push(verify::check_tag_entry(served, &pending.checkpoint)?);
                after = Some(served.index);
            }
            self.accept(pending);
            out.append(&mut logged);
            if !page.more {
                return Ok((out, false));
            }
            if page.entries.is_empty() {
                return Err(LedgerError::Malformed {
                    target: format!("/v1/tags/{}/entries", patient.ledger_tag()),
                    reason: "a page says more entries follow but holds none".into(),
                });
            }
            if out.len() >= MAX_ENTRIES_PER_SYNC {
                return Ok((out, true));
            }
        }
    }
}

/// A guardian set as the ledger publishes it: what a new device and a guardian may know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicSet {
    pub index: u64,
    pub at: Timestamp,
    pub signer: SigningPublicKey,
    pub set_id: SetId,
    pub threshold: u8,
    pub count: u8,
    pub waiting_seconds: u64,
    pub mailboxes: Vec<ShareMailbox>,
    pub supersedes: Option<SetId>,
}

/// A recovery request on the ledger, and its veto if the patient's key cancelled it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicRequest {
    pub index: u64,
    pub at: Timestamp,
    pub request_id: RequestId,
    pub device: SigningPublicKey,
    pub device_box: BoxPublicKey,
    pub cancelled: Option<(u64, Timestamp)>,
}

/// What `GET /v1/recovery/{key}` said, every entry proven into a checkpoint consistent with the session's,
/// signed by the patient (or, for requests, by anyone), and filed under the patient's tag. Guardian sets
/// and cancels count only when signed by the patient's current key or one it was rotated from.
#[derive(Clone, Debug)]
pub struct RecoveryView {
    pub patient: PatientInfo,
    /// The patient's keys, newest first: the current one and those rotated away, as far as the entries go.
    pub keys: Vec<SigningPublicKey>,
    pub sets: Vec<PublicSet>,
    pub requests: Vec<PublicRequest>,
    /// (index, time, old key, new key), oldest first.
    pub rotations: Vec<(u64, Timestamp, SigningPublicKey, SigningPublicKey)>,
    /// The key-rotation entries themselves, for the wallet that holds the new key to open.
    pub rotation_entries: Vec<LoggedEntry>,
}

impl RecoveryView {
    /// The guardian set that counts: the newest one.
    pub fn current_set(&self) -> Option<&PublicSet> {
        self.sets.last()
    }

    pub fn set(&self, id: &SetId) -> Option<&PublicSet> {
        self.sets.iter().find(|s| s.set_id == *id)
    }

    pub fn request(&self, id: &RequestId) -> Option<&PublicRequest> {
        self.requests.iter().find(|r| r.request_id == *id)
    }
}

impl Ledger {
    /// A patient's recovery information (see [`RecoveryView`]), asked as `asker`.
    pub fn recovery(&mut self, asker: &Identity, key: &SigningPublicKey) -> Result<RecoveryView, LedgerError> {
        let info = self.client.recovery(asker, key)?;
        let target = || format!("/v1/recovery/{key}");
        let pending = self.check(&info.checkpoint)?;
        let mut logged = Vec::with_capacity(info.entries.len());
        for served in &info.entries {
            if logged.last().is_some_and(|l: &LoggedEntry| l.index >= served.index) {
                return Err(LedgerError::Malformed { target: target(), reason: "entries out of order".into() });
            }
            logged.push(verify::check_tag_entry(served, &pending.checkpoint)?);
        }
        self.accept(pending);
        let tag = info.patient.tag;
        let mut keys = vec![info.patient.key];
        let entries: Vec<(u64, &LedgerEntry)> =
            logged.iter().filter_map(|l| l.entry.as_ref().map(|e| (l.index, e.statement()))).collect();
        if let Some((index, _)) = entries.iter().find(|(_, e)| e.content.tag() != Some(tag)) {
            return Err(LedgerError::BadEntry { index: *index, reason: format!("it is not filed under tag {tag}") });
        }
        let mut rotations = Vec::new();
        for (index, e) in entries.iter().rev() {
            if let Content::KeyRotation { new_key, .. } = &e.content
                && keys.contains(new_key)
                && !keys.contains(&e.signer)
            {
                keys.push(e.signer);
                rotations.push((*index, e.at, e.signer, *new_key));
            }
        }
        rotations.reverse();
        if *key != info.patient.key && !keys.contains(key) {
            return Err(LedgerError::Malformed {
                target: target(),
                reason: format!("the answer is about {}, and no rotation from {key} to it is shown", info.patient.key),
            });
        }
        let rotation_entries = logged
            .iter()
            .filter(|l| {
                l.entry
                    .as_ref()
                    .is_some_and(|e| matches!(e.content, Content::KeyRotation { .. }) && keys.contains(&e.signer))
            })
            .cloned()
            .collect();
        let mut sets = Vec::new();
        let mut requests: Vec<PublicRequest> = Vec::new();
        for (index, e) in entries {
            match &e.content {
                Content::GuardianSet { set_id, threshold, count, waiting_seconds, mailboxes, supersedes, .. }
                    if keys.contains(&e.signer) =>
                {
                    sets.push(PublicSet {
                        index,
                        at: e.at,
                        signer: e.signer,
                        set_id: *set_id,
                        threshold: *threshold,
                        count: *count,
                        waiting_seconds: *waiting_seconds,
                        mailboxes: mailboxes.clone(),
                        supersedes: *supersedes,
                    });
                }
                Content::RecoveryRequest { request_id, device_box, .. } => requests.push(PublicRequest {
                    index,
                    at: e.at,
                    request_id: *request_id,
                    device: e.signer,
                    device_box: *device_box,
                    cancelled: None,
                }),
                Content::RecoveryCancel { request_id, .. } if keys.contains(&e.signer) => {
                    if let Some(r) = requests.iter_mut().find(|r| r.request_id == *request_id && r.cancelled.is_none())
                    {
                        r.cancelled = Some((index, e.at));
                    }
                }
                _ => {}
            }
        }
        Ok(RecoveryView { patient: info.patient, keys, sets, requests, rotations, rotation_entries })
    }
}

/// A patient's own enrollment entry: their encryption key and ledger tag.
pub fn enrollment_entry(patient: &Identity, now: Timestamp) -> Result<Verified<LedgerEntry>, LedgerError> {
    let content = Content::EnrollPatient { box_key: patient.box_public(), tag: patient.ledger_tag() };
    Ok(statement::sign(LedgerEntry::new(patient.signing_public(), now, content), patient)?)
}

/// A grant entry: the grant sealed to the patient and the grantee, with its id and digest public.
pub fn grant_entry(
    patient: &Identity,
    grant: &VerifiedGrant,
    grantee_box: &BoxPublicKey,
    now: Timestamp,
) -> Result<Verified<LedgerEntry>, LedgerError> {
    let tag: Tag = patient.ledger_tag();
    let body = seal_statement(grant, &[patient.box_public(), *grantee_box], EntryKind::Grant, &tag)?;
    let content = Content::Grant { tag, grant_id: grant.id, grant_digest: statement_digest(grant.envelope()), body };
    Ok(statement::sign(LedgerEntry::new(patient.signing_public(), now, content), patient)?)
}

/// A revocation entry, sealed to the patient and the grantee, with the grant id public.
pub fn revocation_entry(
    patient: &Identity,
    revocation: &VerifiedRevocation,
    grantee_box: &BoxPublicKey,
    now: Timestamp,
) -> Result<Verified<LedgerEntry>, LedgerError> {
    let tag: Tag = patient.ledger_tag();
    let body = seal_statement(revocation, &[patient.box_public(), *grantee_box], EntryKind::Revocation, &tag)?;
    let content = Content::Revocation { tag, grant_id: revocation.grant_id, body };
    Ok(statement::sign(LedgerEntry::new(patient.signing_public(), now, content), patient)?)
}

/// Who the network authority enrolls.
#[derive(Clone, Debug)]
pub struct NewMember {
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub role: Role,
    pub name: String,
    pub org: String,
}

/// The network authority enrolls a member. Returns the entry's index.
pub fn enroll_member(
    ledger: &mut Ledger,
    authority: &Identity,
    member: NewMember,
    now: Timestamp,
) -> Result<u64, LedgerError> {
    let wallet = authority.signing_public();
    if wallet != ledger.authority() {
        return Err(LedgerError::NotAuthority {
            wallet: wallet.to_string(),
            authority: ledger.authority().to_string(),
        });
    }
    let NewMember { key, box_key, role, name, org } = member;
    let content = Content::EnrollMember { key, box_key, role, name, org };
    ledger.append_one(statement::sign(LedgerEntry::new(wallet, now, content), authority)?)
}

/// A gateway posts an access event about a patient: it asks the ledger for the patient's encryption key
/// and tag (a signed request), signs the event, seals it to the patient and appends it. `event.gateway`
/// must be `gateway`'s key. Returns the entry's index.
pub fn post_access_event(
    ledger: &mut Ledger,
    gateway: &Identity,
    event: AccessEvent,
    now: Timestamp,
) -> Result<u64, LedgerError> {
    let patient = ledger.patient(gateway, &event.patient)?;
    let signed = statement::sign(event, gateway)?;
    let body = seal_statement(&signed, &[patient.box_key], EntryKind::Access, &patient.tag)?;
    let content = Content::Access { tag: patient.tag, grant_id: signed.grant_id, body };
    ledger.append_one(statement::sign(LedgerEntry::new(gateway.signing_public(), now, content), gateway)?)
}

/// As [`post_access_event`], for many events about one patient, appended in requests of `batch`
/// entries. Returns the entries' indexes.
pub fn post_access_events(
    ledger: &mut Ledger,
    gateway: &Identity,
    events: Vec<AccessEvent>,
    batch: usize,
    now: Timestamp,
    mut progress: impl FnMut(usize),
) -> Result<Vec<u64>, LedgerError> {
    let Some(about) = events.first().map(|e| e.patient) else { return Ok(Vec::new()) };
    let patient = ledger.patient(gateway, &about)?;
    let mut indexes = Vec::with_capacity(events.len());
    let mut pending = Vec::with_capacity(batch);
    let total = events.len();
    for (i, event) in events.into_iter().enumerate() {
        if event.patient != about {
            return Err(LedgerError::Statement(StatementError::invalid::<AccessEvent>(
                "every event of one batch must be about the same patient",
            )));
        }
        let signed = statement::sign(event, gateway)?;
        let body = seal_statement(&signed, &[patient.box_key], EntryKind::Access, &patient.tag)?;
        let content = Content::Access { tag: patient.tag, grant_id: signed.grant_id, body };
        pending.push(statement::sign(LedgerEntry::new(gateway.signing_public(), now, content), gateway)?);
        if pending.len() >= batch.max(1) || i + 1 == total {
            indexes.extend(ledger.append(&pending)?);
            pending.clear();
            progress(indexes.len());
        }
    }
    Ok(indexes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_code_detail_and_entry() {
        let e =
            LedgerError::Problem { status: 409, code: "replayed".into(), detail: "seen before".into(), entry: Some(1) };
        assert_eq!(e.to_string(), "the ledger refused: seen before (replayed, entry 1 of the request)");
        assert_eq!(e.problem_code(), Some("replayed"));
        assert!(!e.is_verification_failure());
    }
}
