//! The wallet: a patient's keys and the record of what they granted, kept in one encrypted vault file.
//!
//! A `Wallet` is unlocked: it holds the master seed and the derived keys in memory and the directory's
//! file lock, so no other process can write the wallet meanwhile. Every change is written through
//! before the call returns (atomically: the old vault or the new one, never a torn one). `lock()` drops
//! every secret but keeps the file lock, for an app that locks on idle.
//!
//! The vault's plaintext is `version (1) || seed (32) || JSON state`: the seed never passes through a
//! serialiser, and the JSON holds only what the patient already shares (signed grants) plus their name,
//! and once the wallet is enrolled on a ledger, what it learned there (see [`LedgerLink`]). Fields added
//! since the first version are optional, so older vaults open unchanged.

use std::fs;
use std::path::{Path, PathBuf};

use custodia_core::entry::{AccessEvent, Tag};
use custodia_core::grant::{
    GrantId, GrantRequest, Revocation, UnverifiedGrant, UnverifiedRevocation, VerifiedGrant, VerifiedRevocation,
};
use custodia_core::qr::ContactCard;
use custodia_core::statement::{self, StatementError, Unverified};
use custodia_core::time::Timestamp;
use custodia_core::{BoxPublicKey, Fingerprint, Identity, MasterSeed, SigningPublicKey};
use custodia_log::hash::Hash;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ledger::{self as ledger_mod, LedgerError, Member, TrustedCheckpoint};
use crate::vault::{self, KdfParams, Passphrase, VAULT_FILE_NAME, VaultError, WalletLock};

mod care;
mod guardians;
mod on_ledger;
mod watch;

use care::CareState;
pub use care::{AnswerReceived, CheckedRequest, ReceivedGrant, open_card_grant};
use guardians::GuardianState;
pub use guardians::{
    BreakGlassNotice, GuardianContact, GuardianSetView, GuardianView, HeldShareView, Inbox, InboxRequest,
    RECOVERING_NAME, RecoveryAlert, RecoveryOutcome, RecoveryPhase, RecoveryProgress, RequestState, Retired,
};

pub use on_ledger::{
    AccessRecord, Enrollment, GrantStanding, GrantSummary, InclusionView, LedgerLink, Posted, SyncReport,
};
pub use watch::{POLL_FALLBACK, WatchUpdate};

/// Version 2 adds, after the seed, the former seeds, a pending rotation's seed and the shares held as a
/// guardian; version 1 vaults are still read.
const PLAINTEXT_VERSION: u8 = 2;
/// Shares one wallet may hold for others (a hospital's recovery desk holds many).
const MAX_HELD_SHARES: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("there is already a wallet in {}", .0.display())]
    AlreadyExists(PathBuf),
    #[error("there is no wallet in {} (create one with `custodia wallet init`)", .0.display())]
    NotFound(PathBuf),
    #[error("the vault opened but its contents are damaged: {0}")]
    Corrupt(String),
    #[error("wallet name {0}")]
    BadName(&'static str),
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error("this wallet issued no grant with id {0}")]
    UnknownGrant(GrantId),
    #[error("grant {0} is already revoked")]
    AlreadyRevoked(GrantId),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("this wallet is not enrolled on a ledger (enroll it with `custodia wallet enroll`)")]
    NotEnrolled,
    #[error("this wallet is already enrolled on the ledger at {0}")]
    AlreadyEnrolled(String),
    #[error("the {what} of grant {id} is already on the ledger (entry {index})")]
    AlreadyPosted { what: &'static str, id: GrantId, index: u64 },
    #[error("grant {0} is not on the ledger, so its revocation cannot be posted (post the grant first)")]
    GrantNotOnLedger(GrantId),
    #[error("grant {0} is not revoked")]
    NotRevoked(GrantId),
    #[error("this wallet holds no access event at ledger entry {0}")]
    UnknownAccessEvent(u64),
    #[error("{0}")]
    Request(custodia_core::access_request::AccessRequestError),
    #[error("this request is for the ledger at {asked}, but this wallet is on {mine}")]
    RequestElsewhere { asked: String, mine: String },
    #[error("the requester {0} is not enrolled on this wallet's ledger: this may not be a real clinic")]
    RequesterNotEnrolled(String),
    #[error("the requester is enrolled as {0}, not as a provider or an emergency provider")]
    RequesterRole(custodia_core::entry::Role),
    #[error("{0}")]
    BadAnswer(String),
    #[error("grant {0} is not to this wallet")]
    NotForThisWallet(GrantId),
    #[error("{0}")]
    Guardians(String),
    #[error("this wallet has no guardians (add them with `custodia guardian add`)")]
    NoGuardians,
    #[error("{0} is not one of this wallet's guardians")]
    UnknownGuardian(String),
    #[error("could not deliver a share to {guardian}: {reason}; nothing was recorded on the ledger")]
    Delivery { guardian: String, reason: String },
    #[error("{0}")]
    Shares(custodia_core::shamir::ShamirError),
    #[error("need {need} shares, have {have}: wait for more guardians to approve and the waiting period to end")]
    NotEnoughShares { have: usize, need: u8 },
    #[error("this share belongs to guardian set {0}, which the patient has superseded: it no longer opens the wallet")]
    SupersededSet(String),
    #[error("this recovery was cancelled from the patient's old device at {at}; nothing will be released for it")]
    RecoveryCancelled { at: Timestamp },
    #[error(
        "the verification code does not match the one on the patient's new device; ask them to read it again \
         ({left} tries left)"
    )]
    WrongCode { left: u8 },
    #[error("too many wrong codes were typed for this request; it can no longer be approved")]
    TooManyWrongCodes,
    #[error("no recovery request {0} is in this wallet's inbox (run `custodia guardian inbox` first)")]
    UnknownRecoveryRequest(String),
    #[error("this wallet is not recovering anyone (start with `custodia recover start`)")]
    NotRecovering,
    #[error("the shares recombine to a key other than {0}, the patient's: at least one share is wrong")]
    RecoveredKeyMismatch(String),
    #[error(
        "this wallet's key was retired at ledger entry {index}, when it was recovered on another device ({successor})"
    )]
    Retired { index: u64, successor: String },
    #[error("{0} is not an enrolled patient on this ledger")]
    NotAPatient(String),
    #[error("{0} has no guardians on this ledger, so it cannot be recovered through them")]
    NoGuardianSet(String),
}

impl WalletError {
    /// Whether this is a verification failing (the ledger's answers did not check out), as opposed to
    /// bad input, a locked or damaged vault, or a ledger that cannot be reached or refused.
    pub fn is_verification_failure(&self) -> bool {
        match self {
            WalletError::Ledger(e) => e.is_verification_failure(),
            WalletError::Request(_) | WalletError::RequesterNotEnrolled(_) | WalletError::RequesterRole(_) => true,
            _ => false,
        }
    }
}

/// A grant this wallet issued, with its revocation once there is one, and where each is on the ledger.
#[derive(Clone, Debug)]
pub struct IssuedGrant {
    pub grant: VerifiedGrant,
    pub revocation: Option<VerifiedRevocation>,
    /// The index of the grant's ledger entry, once posted (or learned by a sync).
    pub grant_index: Option<u64>,
    /// The index of the revocation's ledger entry, once posted (or learned by a sync).
    pub revocation_index: Option<u64>,
    /// For an emergency card's grant: the card's encryption key, which its ledger entries are sealed to
    /// (the card is not an enrolled member whose key the ledger could tell).
    pub card_box: Option<BoxPublicKey>,
}

impl IssuedGrant {
    /// Revoked once the wallet holds a revocation; otherwise expired from `not_after` on.
    pub fn standing(&self, now: Timestamp) -> GrantStanding {
        if self.revocation.is_some() {
            GrantStanding::Revoked
        } else if now >= self.grant.not_after {
            GrantStanding::Expired
        } else {
            GrantStanding::Active
        }
    }
}

/// The JSON part of the vault plaintext.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    name: String,
    created_at: Timestamp,
    grants: Vec<StoredGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ledger: Option<StoredLedger>,
    /// A clinician's or emergency room's side: requests shown and grants received.
    #[serde(default, skip_serializing_if = "CareState::is_empty")]
    care: CareState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<Tag>,
    #[serde(default, skip_serializing_if = "GuardianState::is_empty")]
    guardians: GuardianState,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGrant {
    /// The signed envelope's JSON, exactly as issued.
    grant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card_box: Option<BoxPublicKey>,
}

/// The ledger the wallet is enrolled on, and what it learned there.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLedger {
    url: String,
    /// The C2SP verifier key of the ledger's checkpoints.
    verifier_key: String,
    authority: SigningPublicKey,
    enrollment_index: u64,
    /// The last checkpoint accepted: every later one must extend it.
    checkpoint: StoredCheckpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    synced_through: Option<u64>,
    /// Members looked up and verified (grantees, gateways), so each is checked once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    members: Vec<Member>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    access_events: Vec<StoredAccess>,
    /// The C2SP tlog-policy every checkpoint must satisfy (joined with a network profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    witness_policy: Option<String>,
    /// The fingerprint of the network profile joined with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredCheckpoint {
    size: u64,
    /// Base64, as in the note.
    root: String,
    note: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAccess {
    index: u64,
    /// The entry's leaf hash, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    leaf: Option<String>,
    /// The gateway's signed access event, as a DSSE envelope.
    event: String,
}

pub struct Wallet {
    dir: PathBuf,
    _lock: WalletLock,
    passphrase: Passphrase,
    kdf: KdfParams,
    seed: MasterSeed,
    identity: Identity,
    name: String,
    created_at: Timestamp,
    grants: Vec<IssuedGrant>,
    ledger: Option<LedgerLink>,
    care: CareState,
    /// Seeds held before key rotations, newest first: they open older entries.
    former: Vec<MasterSeed>,
    /// The tag enrolled with, once a rotation means it is no longer the seed's own.
    tag: Option<Tag>,
    /// A rotation's new seed, kept until the ledger is known to have taken the rotation.
    pending_seed: Option<MasterSeed>,
    /// Shares held for others, in the order of `guardians.held`.
    held: Vec<custodia_core::shamir::SeedShare>,
    guardians: GuardianState,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("dir", &self.dir).field("identity", &self.identity).finish_non_exhaustive()
    }
}

/// A wallet whose secrets are gone from memory, still holding the directory's lock.
#[derive(Debug)]
pub struct LockedWallet {
    dir: PathBuf,
    lock: WalletLock,
}

fn vault_path(dir: &Path) -> PathBuf {
    dir.join(VAULT_FILE_NAME)
}

/// The name travels on the contact card, so the card's rules are the wallet's rules.
fn check_name(name: &str) -> Result<(), WalletError> {
    if name.trim() != name {
        return Err(WalletError::BadName("must not start or end with spaces"));
    }
    custodia_core::qr::check_name(name).map_err(|e| match e {
        custodia_core::qr::QrError::InvalidName(why) => WalletError::BadName(why),
        _ => WalletError::BadName("is not valid"),
    })
}

impl Wallet {
    /// Creates a new wallet with a fresh seed in `dir` (created if missing, private to the user).
    pub fn create(
        dir: &Path,
        name: &str,
        passphrase: Passphrase,
        kdf: KdfParams,
        now: Timestamp,
    ) -> Result<Wallet, WalletError> {
        check_name(name)?;
        kdf.validate()?;
        create_private_dir(dir)?;
        let lock = WalletLock::acquire(dir)?;
        if vault_path(dir).exists() {
            return Err(WalletError::AlreadyExists(dir.to_owned()));
        }
        let seed = MasterSeed::generate();
        let wallet = Wallet {
            dir: dir.to_owned(),
            _lock: lock,
            passphrase,
            kdf,
            identity: Identity::from_seed(&seed),
            seed,
            name: name.to_owned(),
            created_at: now,
            grants: Vec::new(),
            ledger: None,
            care: CareState::default(),
            former: Vec::new(),
            tag: None,
            pending_seed: None,
            held: Vec::new(),
            guardians: GuardianState::default(),
        };
        wallet.save()?;
        Ok(wallet)
    }

    /// Opens the wallet in `dir` for reading and writing, taking its lock.
    pub fn open(dir: &Path, passphrase: Passphrase) -> Result<Wallet, WalletError> {
        // Checked before locking, so a mistyped path leaves no lock file behind.
        if !vault_path(dir).exists() {
            return Err(WalletError::NotFound(dir.to_owned()));
        }
        let lock = WalletLock::acquire(dir)?;
        Self::unlock_with(dir, lock, passphrase).map_err(|(_, e)| e)
    }

    /// Reads and decrypts the vault under `lock`; on failure the lock is handed back with the error.
    fn unlock_with(dir: &Path, lock: WalletLock, passphrase: Passphrase) -> Result<Wallet, (WalletLock, WalletError)> {
        match Self::read_secrets(dir, &passphrase) {
            Ok(Loaded { kdf, secrets, name, created_at, grants, ledger, care, tag, guardians }) => Ok(Wallet {
                dir: dir.to_owned(),
                _lock: lock,
                passphrase,
                kdf,
                identity: identity_of(&secrets.seed, tag),
                seed: secrets.seed,
                name,
                created_at,
                grants,
                ledger,
                care,
                former: secrets.former,
                tag,
                pending_seed: secrets.pending,
                held: secrets.held,
                guardians,
            }),
            Err(e) => Err((lock, e)),
        }
    }

    fn read_secrets(dir: &Path, passphrase: &Passphrase) -> Result<Loaded, WalletError> {
        let path = vault_path(dir);
        if !path.exists() {
            return Err(WalletError::NotFound(dir.to_owned()));
        }
        let file = vault::read_vault(&path)?;
        let kdf = vault::read_header(&file)?.kdf;
        let plaintext = vault::open(&file, passphrase)?;
        let (secrets, state) = decode_plaintext(&plaintext)?;
        let identity = identity_of(&secrets.seed, state.tag);
        let me = identity.signing_public();
        let mine: Vec<SigningPublicKey> =
            std::iter::once(me).chain(secrets.former.iter().map(|s| Identity::from_seed(s).signing_public())).collect();
        // Grants issued before a key rotation are signed by the key of their day.
        let by_mine = |claimed: &SigningPublicKey| if mine.contains(claimed) { *claimed } else { me };
        let grants = state
            .grants
            .iter()
            .map(|g| {
                let grant = UnverifiedGrant::decode(g.grant.as_bytes())?;
                let signer = by_mine(&grant.claimed().patient);
                let grant = grant.verify_signed_by(&signer)?;
                let revocation = match &g.revocation {
                    Some(r) => {
                        let r = UnverifiedRevocation::decode(r.as_bytes())?;
                        let signer = by_mine(&r.claimed().patient);
                        Some(r.verify_signed_by(&signer)?)
                    }
                    None => None,
                };
                Ok(IssuedGrant {
                    grant,
                    revocation,
                    grant_index: g.grant_index,
                    revocation_index: g.revocation_index,
                    card_box: g.card_box,
                })
            })
            .collect::<Result<Vec<_>, StatementError>>()
            .map_err(|e| WalletError::Corrupt(format!("a stored grant does not verify: {e}")))?;
        let ledger = state.ledger.map(load_ledger).transpose()?;
        let care = state.care.checked(&me)?;
        if secrets.held.len() != state.guardians.held.len() {
            return Err(WalletError::Corrupt("the shares held and what they are for do not match".into()));
        }
        Ok(Loaded {
            kdf,
            secrets,
            name: state.name,
            created_at: state.created_at,
            grants,
            ledger,
            care,
            tag: state.tag,
            guardians: state.guardians,
        })
    }

    /// Forgets every secret, keeping the directory locked for this process.
    pub fn lock(self) -> LockedWallet {
        LockedWallet { dir: self.dir, lock: self._lock }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where evidence of a ledger's split view is kept (see [`crate::ledger::evidence`]).
    pub fn evidence_dir(&self) -> PathBuf {
        self.dir.join(crate::ledger::evidence::DIR)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A copy of the wallet's keys for a long-running service (a gateway) that signs on threads of its own
    /// after the wallet is closed. It holds secrets: keep it in memory only.
    pub fn service_identity(&self) -> Identity {
        identity_of(&self.seed, self.tag)
    }

    /// This wallet's identities, the current one first and then those before each key rotation: what
    /// opens the wallet's entries on the ledger.
    pub(crate) fn keys(&self) -> Vec<Identity> {
        let tag = self.identity.ledger_tag();
        std::iter::once(self.service_identity())
            .chain(self.former.iter().map(|s| Identity::from_seed(s).with_ledger_tag(tag)))
            .collect()
    }

    pub fn signing_key(&self) -> SigningPublicKey {
        self.identity.signing_public()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// The card a guardian or a clinician scans to learn this wallet's public keys.
    pub fn contact_card(&self) -> ContactCard {
        ContactCard { name: self.name.clone(), signing: self.signing_key(), boxing: self.identity.box_public() }
    }

    /// Re-encrypts the vault under a new passphrase (with fresh salt and nonce).
    pub fn change_passphrase(&mut self, new: Passphrase) -> Result<(), WalletError> {
        let old = std::mem::replace(&mut self.passphrase, new);
        if let Err(e) = self.save() {
            self.passphrase = old;
            return Err(e);
        }
        Ok(())
    }

    pub fn grants(&self) -> &[IssuedGrant] {
        &self.grants
    }

    pub fn grant(&self, id: GrantId) -> Option<&IssuedGrant> {
        self.grants.iter().find(|g| g.grant.id == id)
    }

    /// Signs a grant, records it, and writes the vault before returning it.
    pub fn issue_grant(&mut self, request: GrantRequest, now: Timestamp) -> Result<VerifiedGrant, WalletError> {
        let grant = request.sign(&self.identity, now)?;
        self.keep_issued(grant, None)
    }

    /// Records a grant just signed, and writes the vault.
    fn keep_issued(
        &mut self,
        grant: VerifiedGrant,
        card_box: Option<BoxPublicKey>,
    ) -> Result<VerifiedGrant, WalletError> {
        self.grants.push(IssuedGrant {
            grant: grant.clone(),
            revocation: None,
            grant_index: None,
            revocation_index: None,
            card_box,
        });
        if let Err(e) = self.save() {
            self.grants.pop();
            return Err(e);
        }
        Ok(grant)
    }

    /// Signs a revocation of one of this wallet's grants, records it, and writes the vault.
    pub fn revoke_grant(
        &mut self,
        id: GrantId,
        now: Timestamp,
        reason: &str,
    ) -> Result<VerifiedRevocation, WalletError> {
        let index = self.grants.iter().position(|g| g.grant.id == id).ok_or(WalletError::UnknownGrant(id))?;
        if self.grants[index].revocation.is_some() {
            return Err(WalletError::AlreadyRevoked(id));
        }
        let revocation =
            Revocation { grant_id: id, patient: self.signing_key(), revoked_at: now, reason: reason.to_owned() };
        let signed = statement::sign(revocation, &self.identity)?;
        self.grants[index].revocation = Some(signed.clone());
        self.grants[index].revocation_index = None;
        if let Err(e) = self.save() {
            self.grants[index].revocation = None;
            return Err(e);
        }
        Ok(signed)
    }

    fn save(&self) -> Result<(), WalletError> {
        let state = StoredState {
            name: self.name.clone(),
            created_at: self.created_at,
            grants: self
                .grants
                .iter()
                .map(|g| StoredGrant {
                    grant: g.grant.to_json(),
                    revocation: g.revocation.as_ref().map(|r| r.to_json()),
                    grant_index: g.grant_index,
                    revocation_index: g.revocation_index,
                    card_box: g.card_box,
                })
                .collect(),
            ledger: self.ledger.as_ref().map(store_ledger),
            care: self.care.clone(),
            tag: self.tag,
            guardians: self.guardians.clone(),
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(
            4096 + 32 * self.former.len() + custodia_core::shamir::ENCODED_LEN * self.held.len(),
        ));
        plaintext.push(PLAINTEXT_VERSION);
        plaintext.extend_from_slice(self.seed.expose_secret());
        let former = self.former.iter().take(custodia_core::recovery::MAX_FORMER_SEEDS);
        plaintext.push(u8::try_from(former.len()).unwrap_or(u8::MAX));
        for seed in former {
            plaintext.extend_from_slice(seed.expose_secret());
        }
        match &self.pending_seed {
            Some(seed) => {
                plaintext.push(1);
                plaintext.extend_from_slice(seed.expose_secret());
            }
            None => plaintext.push(0),
        }
        if self.held.len() > MAX_HELD_SHARES {
            return Err(WalletError::Guardians(format!("a wallet holds at most {MAX_HELD_SHARES} shares")));
        }
        plaintext.extend_from_slice(&u16::try_from(self.held.len()).unwrap_or(u16::MAX).to_be_bytes());
        for share in &self.held {
            plaintext.extend_from_slice(&share.encode());
        }
        serde_json::to_writer(&mut *plaintext, &state).map_err(|e| WalletError::Corrupt(e.to_string()))?;
        let sealed = vault::seal(&plaintext, &self.passphrase, self.kdf)?;
        vault::write_atomic(&vault_path(&self.dir), &sealed)?;
        Ok(())
    }
}

impl LockedWallet {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Unlocks again. On a wrong passphrase the wallet stays locked and is handed back with the error.
    pub fn unlock(self, passphrase: Passphrase) -> Result<Wallet, (LockedWallet, WalletError)> {
        let LockedWallet { dir, lock } = self;
        Wallet::unlock_with(&dir.clone(), lock, passphrase).map_err(|(lock, e)| (LockedWallet { dir, lock }, e))
    }
}

/// What a vault holds, decoded and verified.
struct Loaded {
    kdf: KdfParams,
    secrets: Secrets,
    tag: Option<Tag>,
    guardians: GuardianState,
    name: String,
    created_at: Timestamp,
    grants: Vec<IssuedGrant>,
    ledger: Option<LedgerLink>,
    care: CareState,
}

/// Checks what the vault says about the ledger as if the ledger had said it again: the checkpoint opens
/// with the stored key and is the stored size and root, and every access event verifies.
fn load_ledger(stored: StoredLedger) -> Result<LedgerLink, WalletError> {
    let corrupt = |what: String| WalletError::Corrupt(format!("the stored ledger state: {what}"));
    let verifier = ledger_mod::parse_verifier_key(&stored.verifier_key).map_err(|e| corrupt(e.to_string()))?;
    let checkpoint =
        ledger_mod::verify::open_checkpoint(&stored.checkpoint.note, &verifier).map_err(|e| corrupt(e.to_string()))?;
    if checkpoint.size != stored.checkpoint.size || checkpoint.root.to_base64() != stored.checkpoint.root {
        return Err(corrupt("the checkpoint's size or root is not its note's".into()));
    }
    let witness_policy = stored
        .witness_policy
        .as_deref()
        .map(|text| {
            let policy =
                custodia_log::policy::Policy::parse(text).map_err(|e| corrupt(format!("the witness policy: {e}")))?;
            policy.accept(&stored.checkpoint.note).map_err(|e| corrupt(format!("the checkpoint: {e}")))?;
            Ok::<_, WalletError>(std::sync::Arc::new(policy))
        })
        .transpose()?;
    let access_events = stored
        .access_events
        .iter()
        .map(|a| {
            Unverified::<AccessEvent>::decode(a.event.as_bytes())
                .and_then(Unverified::verify)
                .map_err(|e| corrupt(format!("access event {}: {e}", a.index)))
                .and_then(|event| {
                    let leaf = a
                        .leaf
                        .as_deref()
                        .map(Hash::from_base64)
                        .transpose()
                        .map_err(|e| corrupt(format!("access event {}'s leaf hash: {e}", a.index)))?;
                    Ok(AccessRecord { index: a.index, leaf, event })
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LedgerLink {
        url: stored.url,
        verifier_key: stored.verifier_key,
        authority: stored.authority,
        enrollment_index: stored.enrollment_index,
        checkpoint: TrustedCheckpoint::new(&checkpoint, &stored.checkpoint.note),
        synced_through: stored.synced_through,
        members: stored.members,
        access_events,
        witness_policy,
        network: stored.network,
    })
}

fn store_ledger(link: &LedgerLink) -> StoredLedger {
    StoredLedger {
        url: link.url.clone(),
        verifier_key: link.verifier_key.clone(),
        authority: link.authority,
        enrollment_index: link.enrollment_index,
        checkpoint: StoredCheckpoint {
            size: link.checkpoint.size,
            root: link.checkpoint.root.to_base64(),
            note: link.checkpoint.note.clone(),
        },
        synced_through: link.synced_through,
        members: link.members.clone(),
        access_events: link
            .access_events
            .iter()
            .map(|a| StoredAccess {
                index: a.index,
                leaf: a.leaf.map(|h| h.to_base64()),
                event: a.event.to_compact_json(),
            })
            .collect(),
        witness_policy: link.witness_policy.as_ref().map(|p| p.text().to_owned()),
        network: link.network.clone(),
    }
}

/// The secret part of the vault plaintext, kept out of the JSON so every byte of it is zeroized.
struct Secrets {
    seed: MasterSeed,
    former: Vec<MasterSeed>,
    pending: Option<MasterSeed>,
    held: Vec<custodia_core::shamir::SeedShare>,
}

fn identity_of(seed: &MasterSeed, tag: Option<Tag>) -> Identity {
    let identity = Identity::from_seed(seed);
    match tag {
        Some(tag) => identity.with_ledger_tag(tag),
        None => identity,
    }
}

/// Reads `version ‖ seed ‖ [v2: n ‖ n former seeds ‖ 0|1 ‖ pending seed ‖ m (u16) ‖ m shares] ‖ JSON`.
fn decode_plaintext(plaintext: &[u8]) -> Result<(Secrets, StoredState), WalletError> {
    let short = || WalletError::Corrupt("too short".into());
    let (&version, mut rest) = plaintext.split_first().ok_or_else(|| WalletError::Corrupt("empty".into()))?;
    if version != 1 && version != PLAINTEXT_VERSION {
        return Err(WalletError::Corrupt(format!("unknown contents version {version}")));
    }
    let mut take = |n: usize| -> Result<&[u8], WalletError> {
        if rest.len() < n {
            return Err(short());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let seed_of = |bytes: &[u8]| {
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(bytes);
        MasterSeed::from_bytes(*seed)
    };
    let seed = seed_of(take(32)?);
    let mut secrets = Secrets { seed, former: Vec::new(), pending: None, held: Vec::new() };
    if version == PLAINTEXT_VERSION {
        let n = usize::from(take(1)?[0]);
        for _ in 0..n {
            secrets.former.push(seed_of(take(32)?));
        }
        if take(1)?[0] == 1 {
            secrets.pending = Some(seed_of(take(32)?));
        }
        let m = take(2)?;
        let m = usize::from(u16::from_be_bytes([m[0], m[1]]));
        for _ in 0..m {
            let share = custodia_core::shamir::SeedShare::decode(take(custodia_core::shamir::ENCODED_LEN)?)
                .map_err(|e| WalletError::Corrupt(format!("a held share: {e}")))?;
            secrets.held.push(share);
        }
    }
    let state: StoredState = serde_json::from_slice(rest).map_err(|e| WalletError::Corrupt(e.to_string()))?;
    Ok((secrets, state))
}

/// Creates the wallet directory readable by its owner only: the vault is encrypted, but its size and
/// timestamps are nobody else's business.
fn create_private_dir(dir: &Path) -> Result<(), WalletError> {
    let io = |action| move |source| VaultError::Io { action, path: dir.to_owned(), source };
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io("create the wallet directory"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodia_core::purpose::PurposeOfUse;
    use serde_json::json;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned()).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T09:00:00Z").unwrap()
    }

    fn request(to: SigningPublicKey) -> GrantRequest {
        GrantRequest {
            grantee: to,
            scopes: vec!["patient/Observation.rs".parse().unwrap()],
            allowed_labels: vec![],
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 3_600,
            max_reads: None,
            note: String::new(),
        }
    }

    fn doctor() -> SigningPublicKey {
        Identity::from_seed(&MasterSeed::generate()).signing_public()
    }

    #[test]
    fn create_issue_revoke_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wallet::create(dir.path(), "Ada", pass("correct horse"), KdfParams::TESTING, now()).unwrap();
        let key = w.signing_key();
        let g = w.issue_grant(request(doctor()), now()).unwrap();
        w.revoke_grant(g.id, now(), "done").unwrap();
        assert!(matches!(w.revoke_grant(g.id, now(), ""), Err(WalletError::AlreadyRevoked(_))));
        drop(w);
        let w = Wallet::open(dir.path(), pass("correct horse")).unwrap();
        assert_eq!(w.signing_key(), key);
        assert_eq!(w.name(), "Ada");
        assert_eq!(w.grants().len(), 1);
        assert!(w.grants()[0].revocation.as_ref().is_some_and(|r| r.reason == "done"));
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let _w = Wallet::create(dir.path(), "Ada", pass("pw"), KdfParams::TESTING, now()).unwrap();
        assert!(matches!(Wallet::open(dir.path(), pass("pw")), Err(WalletError::Vault(VaultError::Locked))));
    }

    #[test]
    fn refuses_to_overwrite_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        drop(Wallet::create(dir.path(), "Ada", pass("pw"), KdfParams::TESTING, now()).unwrap());
        assert!(matches!(
            Wallet::create(dir.path(), "Eve", pass("pw"), KdfParams::TESTING, now()),
            Err(WalletError::AlreadyExists(_))
        ));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(Wallet::open(empty.path(), pass("pw")), Err(WalletError::NotFound(_))));
    }

    #[test]
    fn lock_unlock_and_passphrase_change() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::create(dir.path(), "Ada", pass("old"), KdfParams::TESTING, now()).unwrap();
        let key = w.signing_key();
        let locked = w.lock();
        let (locked, err) = locked.unlock(pass("wrong")).unwrap_err();
        assert!(matches!(err, WalletError::Vault(VaultError::WrongPassphraseOrTampered)));
        // Still locked against other processes while locked in memory.
        assert!(matches!(Wallet::open(dir.path(), pass("old")), Err(WalletError::Vault(VaultError::Locked))));
        let mut w = locked.unlock(pass("old")).unwrap();
        w.change_passphrase(pass("new")).unwrap();
        drop(w);
        assert!(Wallet::open(dir.path(), pass("old")).is_err());
        assert_eq!(Wallet::open(dir.path(), pass("new")).unwrap().signing_key(), key);
    }

    #[test]
    fn vaults_from_before_the_ledger_open_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::create(dir.path(), "Ada", pass("pw"), KdfParams::TESTING, now()).unwrap();
        let other = Wallet::create(&dir.path().join("other"), "Bo", pass("pw"), KdfParams::TESTING, now()).unwrap();
        let grant = request(other.signing_key()).sign(w.identity(), now()).unwrap();
        // The state as the first version wrote it: no ledger, no entry indexes.
        let old = json!({"name": "Ada", "created_at": now(), "grants": [{"grant": grant.to_json()}]});
        let mut plaintext = vec![1];
        plaintext.extend_from_slice(w.seed.expose_secret());
        plaintext.extend_from_slice(old.to_string().as_bytes());
        drop(w);
        let sealed = vault::seal(&plaintext, &pass("pw"), KdfParams::TESTING).unwrap();
        vault::write_atomic(&dir.path().join(VAULT_FILE_NAME), &sealed).unwrap();
        let w = Wallet::open(dir.path(), pass("pw")).unwrap();
        assert_eq!(w.grants().len(), 1);
        assert_eq!((w.grants()[0].grant_index, w.grants()[0].revocation_index), (None, None));
        assert!(w.ledger().is_none() && w.access_events().is_empty());
    }

    fn stored_ledger(signer: &custodia_log::NoteSigner, size: u64) -> StoredLedger {
        let checkpoint = custodia_log::Checkpoint {
            origin: signer.name().into(),
            size,
            root: custodia_log::empty_root(),
            extensions: vec![],
        };
        StoredLedger {
            url: "http://127.0.0.1:8080".into(),
            verifier_key: signer.verifier().to_vkey(),
            authority: doctor(),
            enrollment_index: 0,
            checkpoint: StoredCheckpoint { size, root: checkpoint.root.to_base64(), note: checkpoint.sign(signer) },
            synced_through: None,
            members: vec![],
            access_events: vec![],
            witness_policy: None,
            network: None,
        }
    }

    #[test]
    fn stored_ledger_state_is_checked_when_loaded() {
        let signer = custodia_log::NoteSigner::new("ledger.test", &[3; 32]).unwrap();
        let link = load_ledger(stored_ledger(&signer, 5)).unwrap();
        assert_eq!(link.checkpoint.size, 5);
        let mut lying = stored_ledger(&signer, 5);
        lying.checkpoint.size = 6;
        assert!(matches!(load_ledger(lying), Err(WalletError::Corrupt(_))));
        let mut other_key = stored_ledger(&signer, 5);
        other_key.verifier_key = custodia_log::NoteSigner::new("ledger.test", &[4; 32]).unwrap().verifier().to_vkey();
        assert!(matches!(load_ledger(other_key), Err(WalletError::Corrupt(_))));
        let mut bad_event = stored_ledger(&signer, 5);
        bad_event.access_events.push(StoredAccess { index: 2, leaf: None, event: "{}".into() });
        assert!(matches!(load_ledger(bad_event), Err(WalletError::Corrupt(m)) if m.contains("access event 2")));
        // And what is stored is what loads.
        let again = load_ledger(store_ledger(&link)).unwrap();
        assert_eq!(again.checkpoint, link.checkpoint);
    }

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", " Ada", "A\nda", &"x".repeat(65)] {
            assert!(matches!(
                Wallet::create(dir.path(), bad, pass("pw"), KdfParams::TESTING, now()),
                Err(WalletError::BadName(_))
            ));
        }
    }
}
