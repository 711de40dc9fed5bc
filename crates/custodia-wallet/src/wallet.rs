//! The wallet: a patient's keys and the record of what they granted, kept in one encrypted vault file.
//!
//! A `Wallet` is unlocked: it holds the master seed and the derived keys in memory and the directory's
//! file lock, so no other process can write the wallet meanwhile. Every change is written through
//! before the call returns (atomically: the old vault or the new one, never a torn one). `lock()` drops
//! every secret but keeps the file lock, for an app that locks on idle.
//!
//! The vault's plaintext is `version (1) || seed (32) || JSON state`: the seed never passes through a
//! serialiser, and the JSON holds only what the patient already shares (signed grants) plus their name.

use std::fs;
use std::path::{Path, PathBuf};

use custodia_core::grant::{
    GrantId, GrantRequest, Revocation, UnverifiedGrant, UnverifiedRevocation, VerifiedGrant, VerifiedRevocation,
};
use custodia_core::qr::ContactCard;
use custodia_core::statement::{self, StatementError};
use custodia_core::time::Timestamp;
use custodia_core::{Fingerprint, Identity, MasterSeed, SigningPublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::vault::{self, KdfParams, Passphrase, VAULT_FILE_NAME, VaultError, WalletLock};

const PLAINTEXT_VERSION: u8 = 1;

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
}

/// A grant this wallet issued, with its revocation once there is one.
#[derive(Clone, Debug)]
pub struct IssuedGrant {
    pub grant: VerifiedGrant,
    pub revocation: Option<VerifiedRevocation>,
}

/// The JSON part of the vault plaintext.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredState {
    name: String,
    created_at: Timestamp,
    grants: Vec<StoredGrant>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredGrant {
    /// The signed envelope's JSON, exactly as issued.
    grant: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation: Option<String>,
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
            Ok((kdf, seed, state, grants)) => Ok(Wallet {
                dir: dir.to_owned(),
                _lock: lock,
                passphrase,
                kdf,
                identity: Identity::from_seed(&seed),
                seed,
                name: state.name,
                created_at: state.created_at,
                grants,
            }),
            Err(e) => Err((lock, e)),
        }
    }

    #[allow(clippy::type_complexity)]
    fn read_secrets(
        dir: &Path,
        passphrase: &Passphrase,
    ) -> Result<(KdfParams, MasterSeed, StoredState, Vec<IssuedGrant>), WalletError> {
        let path = vault_path(dir);
        if !path.exists() {
            return Err(WalletError::NotFound(dir.to_owned()));
        }
        let file = vault::read_vault(&path)?;
        let kdf = vault::read_header(&file)?.kdf;
        let plaintext = vault::open(&file, passphrase)?;
        let (seed, state) = decode_plaintext(&plaintext)?;
        let identity = Identity::from_seed(&seed);
        let me = identity.signing_public();
        let grants = state
            .grants
            .iter()
            .map(|g| {
                let grant = UnverifiedGrant::decode(g.grant.as_bytes())?.verify_signed_by(&me)?;
                let revocation = match &g.revocation {
                    Some(r) => Some(UnverifiedRevocation::decode(r.as_bytes())?.verify_signed_by(&me)?),
                    None => None,
                };
                Ok(IssuedGrant { grant, revocation })
            })
            .collect::<Result<Vec<_>, StatementError>>()
            .map_err(|e| WalletError::Corrupt(format!("a stored grant does not verify: {e}")))?;
        Ok((kdf, seed, state, grants))
    }

    /// Forgets every secret, keeping the directory locked for this process.
    pub fn lock(self) -> LockedWallet {
        LockedWallet { dir: self.dir, lock: self._lock }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
        self.grants.push(IssuedGrant { grant: grant.clone(), revocation: None });
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
                })
                .collect(),
        };
        let mut plaintext = Zeroizing::new(Vec::with_capacity(4096));
        plaintext.push(PLAINTEXT_VERSION);
        plaintext.extend_from_slice(self.seed.expose_secret());
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

fn decode_plaintext(plaintext: &[u8]) -> Result<(MasterSeed, StoredState), WalletError> {
    let (&version, rest) = plaintext.split_first().ok_or_else(|| WalletError::Corrupt("empty".into()))?;
    if version != PLAINTEXT_VERSION {
        return Err(WalletError::Corrupt(format!("unknown contents version {version}")));
    }
    if rest.len() < 32 {
        return Err(WalletError::Corrupt("too short".into()));
    }
    let (seed_bytes, json) = rest.split_at(32);
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(seed_bytes);
    let state: StoredState = serde_json::from_slice(json).map_err(|e| WalletError::Corrupt(e.to_string()))?;
    Ok((MasterSeed::from_bytes(*seed), state))
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
