//! The on-disk encrypted vault: one file, `wallet.vault`, holding everything the wallet keeps secret.
//!
//! The file is a fixed 63-byte header followed by the ciphertext. All integers are little-endian.
//!
//! | offset | size | field                                          |
//! |-------:|-----:|------------------------------------------------|
//! |      0 |    8 | magic `CUSTVLT\0`                              |
//! |      8 |    2 | format version (1)                             |
//! |     10 |    1 | KDF id (1 = Argon2id, version 0x13)            |
//! |     11 |    4 | Argon2 memory cost, KiB                        |
//! |     15 |    4 | Argon2 time cost (passes)                      |
//! |     19 |    4 | Argon2 parallelism (lanes)                     |
//! |     23 |   16 | Argon2 salt                                    |
//! |     39 |   24 | XChaCha20-Poly1305 nonce                       |
//! |     63 |    … | ciphertext, ending in the 16-byte Poly1305 tag |
//!
//! The key is Argon2id(passphrase, salt, params), 32 bytes. The whole header is the AEAD's associated data,
//! so an attacker who lowers the KDF cost, or swaps the salt or nonce, gets an authentication failure rather
//! than a weaker vault. Because the header is read *before* anything is authenticated, its KDF parameters are
//! checked against fixed caps first: a hostile file cannot make us allocate 4 TiB or run for a week.
//!
//! Writes go through [`write_atomic`], so a crash leaves the old vault or the new one, never half of each;
//! [`WalletLock`] keeps two Custodia processes from writing the same wallet at once.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// The vault's file name inside the wallet directory.
pub const VAULT_FILE_NAME: &str = "wallet.vault";
/// The lock file's name inside the wallet directory. It holds no data; only the OS lock on it matters.
pub const LOCK_FILE_NAME: &str = "wallet.lock";

/// The first eight bytes of every vault, so a stray file is told apart from a corrupt vault.
pub const MAGIC: [u8; 8] = *b"CUSTVLT\0";
/// The only format version this code reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// KDF id for Argon2id, version 0x13 (RFC 9106).
pub const KDF_ARGON2ID: u8 = 1;

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Bytes in the header: magic, version, KDF id, three u32 costs, salt, nonce.
pub const HEADER_LEN: usize = 8 + 2 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN;

/// The largest vault file we read or write. Grants are kilobytes, but the vault also keeps every verified
/// access event (about 1 KiB each), and a patient with a long history may have a hundred thousand of
/// them. Anything past this is not ours, and refusing it keeps a hostile file from making us allocate
/// without bound.
pub const MAX_VAULT_BYTES: usize = 256 * 1024 * 1024;
/// The largest plaintext [`seal`] accepts: whatever fits in [`MAX_VAULT_BYTES`] after header and tag.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_VAULT_BYTES - HEADER_LEN - TAG_LEN;

/// Argon2 memory cap, KiB (1 GiB). The header is unauthenticated when read, so this bounds what a
/// tampered file can make us allocate.
pub const MAX_M_KIB: u32 = 1024 * 1024;
/// Argon2 pass cap: bounds how long a tampered header can make us spin.
pub const MAX_T: u32 = 16;
/// Argon2 lane cap.
pub const MAX_P: u32 = 16;
/// Argon2 memory floor, KiB (8 MiB). A header below it is an attempt to weaken the vault, not a choice.
pub const MIN_M_KIB: u32 = 8192;
// Argon2 needs 8 KiB per lane; with this, every parameter set within the caps is one it accepts.
const _: () = assert!(MIN_M_KIB >= 8 * MAX_P);

/// Argon2 pass floor.
pub const MIN_T: u32 = 1;
/// Argon2 lane floor.
pub const MIN_P: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("not a Custodia vault (the file does not start with the vault magic bytes)")]
    NotAVault,
    #[error("vault format version {0} is not supported (this Custodia reads version 1)")]
    UnsupportedVersion(u16),
    #[error("vault uses key-derivation function id {0}, which this Custodia does not know")]
    UnknownKdf(u8),
    /// A KDF parameter outside `MIN_*..=MAX_*`; `limit` is the bound it crossed.
    #[error("vault key-derivation parameter {field} is {value}, outside the allowed range (limit {limit})")]
    KdfOutOfBounds { field: &'static str, value: u32, limit: u32 },
    #[error("vault file is truncated")]
    Truncated,
    #[error("vault is larger than the 256 MiB limit")]
    TooLarge,
    /// The AEAD tag did not verify. A wrong passphrase and an altered file look identical to us.
    #[error("wrong passphrase, or the vault file was altered or corrupted (the two cannot be told apart)")]
    WrongPassphraseOrTampered,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// Argon2 itself failed with parameters already within the caps; in practice, not enough memory.
    #[error("could not derive the vault key: {0}")]
    KeyDerivation(&'static str),
    #[error("another Custodia process has this wallet open")]
    Locked,
    #[error("could not {action} {}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
}

/// Argon2id cost parameters, as stored in the vault header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended profile (64 MiB, 3 passes, 4 lanes), for machines that cannot
    /// spare the 2 GiB of the first. This is what real wallets use.
    pub const DEFAULT: Self = Self { m_kib: 65_536, t: 3, p: 4 };

    /// The cheapest parameters the floor allows. **For tests and benchmarks only**: it is within the
    /// floor so that vaults made with it open normally, but it is far too weak to protect a real wallet.
    pub const TESTING: Self = Self { m_kib: MIN_M_KIB, t: MIN_T, p: MIN_P };

    /// Checks every parameter against the floors and caps, naming the first one outside them.
    pub fn validate(&self) -> Result<(), VaultError> {
        let check = |field, value: u32, min: u32, max: u32| {
            if value < min {
                Err(VaultError::KdfOutOfBounds { field, value, limit: min })
            } else if value > max {
                Err(VaultError::KdfOutOfBounds { field, value, limit: max })
            } else {
                Ok(())
            }
        };
        check("m_cost_kib", self.m_kib, MIN_M_KIB, MAX_M_KIB)?;
        check("t_cost", self.t, MIN_T, MAX_T)?;
        check("p_cost", self.p, MIN_P, MAX_P)
    }
}

/// A parsed vault header. Only format 1 with Argon2id exists, so version and KDF id are implied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaultHeader {
    pub kdf: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub nonce: [u8; NONCE_LEN],
}

impl VaultHeader {
    /// The header's exact bytes, which are also the AEAD's associated data.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let parts: [&[u8]; 8] = [
            &MAGIC,
            &FORMAT_VERSION.to_le_bytes(),
            &[KDF_ARGON2ID],
            &self.kdf.m_kib.to_le_bytes(),
            &self.kdf.t.to_le_bytes(),
            &self.kdf.p.to_le_bytes(),
            &self.salt,
            &self.nonce,
        ];
        let mut at = 0;
        for part in parts {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        out
    }
}

/// A vault passphrase. Zeroized on drop; never printed, cloned or serialised.
///
/// It is used byte for byte as typed: no trimming and no Unicode normalisation, so the same keystrokes
/// must produce the same bytes on every machine that opens the vault.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Refuses an empty or whitespace-only passphrase, which would leave the vault guarded by its KDF alone.
    pub fn new(text: String) -> Result<Self, VaultError> {
        // Wrap first, so the text is zeroized even when it is refused.
        let text = Zeroizing::new(text);
        if text.trim().is_empty() {
            return Err(VaultError::EmptyPassphrase);
        }
        Ok(Self(text))
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<secret>)")
    }
}

/// Parses and checks a vault header without touching the ciphertext or the passphrase.
///
/// Every field is checked as it is read, and the KDF parameters against their caps, so whatever the input
/// this returns quickly and never panics (it is a fuzz target).
pub fn read_header(file: &[u8]) -> Result<VaultHeader, VaultError> {
    if file.len() < MAGIC.len() {
        // A prefix of the magic is a cut-off vault; anything else was never one.
        return Err(if MAGIC.starts_with(file) { VaultError::Truncated } else { VaultError::NotAVault });
    }
    let mut r = Reader(file);
    if r.take::<8>()? != MAGIC {
        return Err(VaultError::NotAVault);
    }
    // Version and KDF id come before the rest: a later format may lay the rest out differently.
    let version = u16::from_le_bytes(r.take()?);
    if version != FORMAT_VERSION {
        return Err(VaultError::UnsupportedVersion(version));
    }
    let [kdf_id] = r.take()?;
    if kdf_id != KDF_ARGON2ID {
        return Err(VaultError::UnknownKdf(kdf_id));
    }
    let m_kib = u32::from_le_bytes(r.take()?);
    let t = u32::from_le_bytes(r.take()?);
    let p = u32::from_le_bytes(r.take()?);
    let kdf = KdfParams { m_kib, t, p };
    kdf.validate()?;
    let salt = r.take()?;
    let nonce = r.take()?;
    Ok(VaultHeader { kdf, salt, nonce })
}

/// A cursor over the header bytes that reports running off the end as [`VaultError::Truncated`].
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], VaultError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(VaultError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
}

/// Encrypts `plaintext` into a complete vault file under a fresh random salt and nonce.
pub fn seal(plaintext: &[u8], passphrase: &Passphrase, params: KdfParams) -> Result<Vec<u8>, VaultError> {
    params.validate()?;
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return Err(VaultError::TooLarge);
    }
    let header = VaultHeader { kdf: params, salt: random(), nonce: random() };
    let aad = header.to_bytes();
    let key = derive_key(passphrase, &header.salt, params)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    // XChaCha20-Poly1305 only refuses messages of hundreds of GiB; ours is capped at 256 MiB above.
    let ciphertext = cipher
        .encrypt(&XNonce::from(header.nonce), Payload { msg: plaintext, aad: &aad })
        .map_err(|_| VaultError::TooLarge)?;
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.extend_from_slice(&aad);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts a vault file. All header checks happen before the (deliberately slow) key derivation.
pub fn open(file: &[u8], passphrase: &Passphrase) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if file.len() > MAX_VAULT_BYTES {
        return Err(VaultError::TooLarge);
    }
    let header = read_header(file)?;
    let (aad, ciphertext) = file.split_at(HEADER_LEN);
    if ciphertext.len() < TAG_LEN {
        return Err(VaultError::Truncated);
    }
    let key = derive_key(passphrase, &header.salt, header.kdf)?;
    let cipher = XChaCha20Poly1305::new((&*key).into());
    cipher
        .decrypt(&XNonce::from(header.nonce), Payload { msg: ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| VaultError::WrongPassphraseOrTampered)
}

fn derive_key(
    passphrase: &Passphrase,
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, VaultError> {
    params.validate()?;
    // Within our caps Argon2 accepts every parameter set (m >= 8p holds since MIN_M_KIB >= 8 * MAX_P), so
    // the only realistic failure is allocating the memory.
    let params = Params::new(params.m_kib, params.t, params.p, Some(KEY_LEN))
        .map_err(|_| VaultError::KeyDerivation("Argon2 refused the parameters"))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(|e| match e {
            argon2::Error::OutOfMemory => {
                VaultError::KeyDerivation("not enough memory for the vault's Argon2 parameters")
            }
            argon2::Error::PwdTooLong => VaultError::KeyDerivation("passphrase too long"),
            _ => VaultError::KeyDerivation("Argon2 failed"),
        })?;
    Ok(key)
}

/// Fills an array from the OS CSPRNG.
///
/// A machine that cannot give us randomness cannot make a salt or nonce safely; as in `custodia-core`,
/// there is nothing sensible to continue with.
fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves either the old file or the new one.
///
/// Writes a uniquely named temporary file beside the target, syncs it, renames it over the target, then
/// syncs the directory so the rename itself is durable. If anything fails before the rename takes effect,
/// the temporary file is removed and the target is untouched. (On non-Unix systems the directory sync is
/// skipped: they cannot open a directory as a file.)
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let name = path.file_name().ok_or_else(|| {
        io_err("write", path)(io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let suffix: String = random::<8>().iter().map(|b| format!("{b:02x}")).collect();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{suffix}.tmp"));
    let tmp = dir.join(tmp_name);

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io_err("create a temporary file", &tmp))?;

    let written = file
        .write_all(bytes)
        .map_err(io_err("write", &tmp))
        .and_then(|()| file.sync_all().map_err(io_err("sync", &tmp)));
    drop(file);
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path).map_err(io_err("rename into place", path))) {
        // Best effort: the error that matters is the one we return.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(io_err("sync the directory", dir))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Builds a `map_err` adapter that records what we were doing, and to which path, when `io::Error` struck.
fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VaultError {
    let path = path.to_owned();
    move |source| VaultError::Io { action, path, source }
}

/// Reads a vault file, refusing one over [`MAX_VAULT_BYTES`] before reading it.
pub fn read_vault(path: &Path) -> Result<Vec<u8>, VaultError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let len = file.metadata().map_err(io_err("inspect", path))?.len();
    let cap = MAX_VAULT_BYTES as u64;
    if len > cap {
        return Err(VaultError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // The file may grow between the size check and the read; never read more than one byte past the cap.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io_err("read", path))?;
    if bytes.len() > MAX_VAULT_BYTES {
        return Err(VaultError::TooLarge);
    }
    Ok(bytes)
}

/// Exclusive ownership of a wallet directory for as long as this value lives.
///
/// An OS advisory lock on `wallet.lock`, so it dies with the process and a crash never leaves a wallet
/// locked. The lock file itself is left in place on drop: deleting it would race with the next acquirer.
#[derive(Debug)]
#[must_use = "the wallet is unlocked again as soon as the lock is dropped"]
pub struct WalletLock {
    _file: File,
}

impl WalletLock {
    /// Takes the lock without waiting, or returns [`VaultError::Locked`] if anyone holds it, including
    /// another `WalletLock` in this same process.
    pub fn acquire(dir: &Path) -> Result<Self, VaultError> {
        let path = dir.join(LOCK_FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = match options.open(&path) {
            Ok(file) => file,
            Err(source) => return Err(VaultError::Io { action: "open the lock file", path, source }),
        };
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(VaultError::Locked),
            Err(TryLockError::Error(source)) => Err(VaultError::Io { action: "lock", path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(text: &str) -> Passphrase {
        Passphrase::new(text.to_owned()).unwrap()
    }

    fn sealed(plaintext: &[u8]) -> Vec<u8> {
        seal(plaintext, &pass("correct horse battery staple"), KdfParams::TESTING).unwrap()
    }

    fn open_ok(file: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        open(file, &pass("correct horse battery staple"))
    }

    #[test]
    fn header_length_matches_the_layout() {
        assert_eq!(HEADER_LEN, 63);
        assert_eq!(sealed(b"").len(), HEADER_LEN + TAG_LEN);
    }

    #[test]
    fn presets_are_within_bounds() {
        KdfParams::DEFAULT.validate().unwrap();
        KdfParams::TESTING.validate().unwrap();
    }

    #[test]
    fn round_trip() {
        for plaintext in [&b""[..], b"x", &[0xa5; 4096]] {
            let file = sealed(plaintext);
            assert_eq!(open_ok(&file).unwrap().as_slice(), plaintext);
            let header = read_header(&file).unwrap();
            assert_eq!(header.kdf, KdfParams::TESTING);
            assert_eq!(header.to_bytes()[..], file[..HEADER_LEN]);
        }
    }

    #[test]
    fn round_trip_with_default_params() {
        let p = pass("a real passphrase");
        let file = seal(b"{\"grants\":[]}", &p, KdfParams::DEFAULT).unwrap();
        assert_eq!(read_header(&file).unwrap().kdf, KdfParams::DEFAULT);
        assert_eq!(open(&file, &p).unwrap().as_slice(), b"{\"grants\":[]}");
    }

    #[test]
    fn wrong_passphrase_is_refused() {
        let file = sealed(b"secret");
        assert!(matches!(
            open(&file, &pass("Correct horse battery staple")),
            Err(VaultError::WrongPassphraseOrTampered)
        ));
    }

    #[test]
    fn every_header_byte_is_protected() {
        let file = sealed(b"secret");
        for i in 0..HEADER_LEN {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            let err = open_ok(&bad).unwrap_err();
            // With TESTING params (m = 0x2000, t = 1, p = 1), flipping the low bit of each byte either stays
            // in bounds (so the AEAD must catch it) or crosses a floor or cap (so the header check must).
            let ok = match i {
                0..8 => matches!(err, VaultError::NotAVault),
                8..10 => matches!(err, VaultError::UnsupportedVersion(_)),
                10 => matches!(err, VaultError::UnknownKdf(_)),
                11..14 => matches!(err, VaultError::WrongPassphraseOrTampered),
                14 => matches!(err, VaultError::KdfOutOfBounds { field: "m_cost_kib", .. }),
                15..19 => matches!(err, VaultError::KdfOutOfBounds { field: "t_cost", .. }),
                19..23 => matches!(err, VaultError::KdfOutOfBounds { field: "p_cost", .. }),
                _ => matches!(err, VaultError::WrongPassphraseOrTampered),
            };
            assert!(ok, "byte {i}: unexpected {err:?}");
        }
    }

    #[test]
    fn in_bounds_parameter_changes_fail_authentication() {
        let file = sealed(b"secret");
        for (offset, value) in [(11, MIN_M_KIB + 1024), (15, 2), (19, 2)] {
            let mut bad = file.clone();
            bad[offset..offset + 4].copy_from_slice(&u32::to_le_bytes(value));
            assert!(matches!(open_ok(&bad), Err(VaultError::WrongPassphraseOrTampered)), "offset {offset}");
        }
    }

    #[test]
    fn over_cap_headers_are_refused_before_any_work() {
        let file = sealed(b"secret");
        // u32::MAX of memory or passes would take terabytes or years if it reached Argon2.
        let cases = [
            (11, u32::MAX, "m_cost_kib", MAX_M_KIB),
            (11, MAX_M_KIB + 1, "m_cost_kib", MAX_M_KIB),
            (11, MIN_M_KIB - 1, "m_cost_kib", MIN_M_KIB),
            (15, u32::MAX, "t_cost", MAX_T),
            (15, 0, "t_cost", MIN_T),
            (19, MAX_P + 1, "p_cost", MAX_P),
            (19, 0, "p_cost", MIN_P),
        ];
        for (offset, value, name, bound) in cases {
            let mut bad = file.clone();
            bad[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
            let start = std::time::Instant::now();
            match open_ok(&bad) {
                Err(VaultError::KdfOutOfBounds { field, value: v, limit }) => {
                    assert_eq!((field, v, limit), (name, value, bound));
                }
                other => panic!("{name}={value}: unexpected {other:?}"),
            }
            assert!(start.elapsed() < std::time::Duration::from_millis(100), "{name}: the KDF ran");
            assert!(matches!(read_header(&bad), Err(VaultError::KdfOutOfBounds { .. })));
        }
        assert!(matches!(
            seal(b"", &pass("p"), KdfParams { m_kib: MAX_M_KIB + 1, t: 1, p: 1 }),
            Err(VaultError::KdfOutOfBounds { field: "m_cost_kib", .. })
        ));
    }

    #[test]
    fn truncation_at_every_length_is_refused() {
        let file = sealed(b"secret");
        for len in 0..HEADER_LEN + TAG_LEN {
            let err = open_ok(&file[..len]).unwrap_err();
            assert!(matches!(err, VaultError::Truncated | VaultError::NotAVault), "length {len}: {err:?}");
            let header = read_header(&file[..len]);
            assert_eq!(header.is_ok(), len >= HEADER_LEN, "length {len}");
        }
        // Cut inside the ciphertext but past the tag's length: only the AEAD can notice.
        assert!(matches!(open_ok(&file[..file.len() - 1]), Err(VaultError::WrongPassphraseOrTampered)));
        assert!(matches!(read_header(b"CUSTV"), Err(VaultError::Truncated)));
        assert!(matches!(read_header(b"PK\x03\x04"), Err(VaultError::NotAVault)));
    }

    #[test]
    fn ciphertext_changes_are_refused() {
        let file = sealed(b"some consent records");
        for i in HEADER_LEN..file.len() {
            for bit in [0x01, 0x80] {
                let mut bad = file.clone();
                bad[i] ^= bit;
                assert!(matches!(open_ok(&bad), Err(VaultError::WrongPassphraseOrTampered)), "byte {i}");
            }
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(open_ok(&longer), Err(VaultError::WrongPassphraseOrTampered)));
    }

    #[test]
    fn two_seals_differ() {
        let (a, b) = (sealed(b"same"), sealed(b"same"));
        let (ha, hb) = (read_header(&a).unwrap(), read_header(&b).unwrap());
        assert_ne!(ha.salt, hb.salt);
        assert_ne!(ha.nonce, hb.nonce);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    }

    #[test]
    fn size_caps() {
        let p = pass("p");
        assert!(matches!(seal(&vec![0; MAX_PLAINTEXT_BYTES + 1], &p, KdfParams::TESTING), Err(VaultError::TooLarge)));
        let mut huge = sealed(b"");
        huge.resize(MAX_VAULT_BYTES + 1, 0);
        assert!(matches!(open(&huge, &p), Err(VaultError::TooLarge)));
    }

    #[test]
    fn passphrases_refuse_blank_and_never_print() {
        for blank in ["", " ", "\t\n "] {
            assert!(matches!(Passphrase::new(blank.to_owned()), Err(VaultError::EmptyPassphrase)));
        }
        let p = pass("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(VAULT_FILE_NAME);
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(read_vault(&path).unwrap(), b"second, longer");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [VAULT_FILE_NAME]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn write_atomic_cleans_up_when_the_rename_fails() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory in the way makes the rename fail after the temp file is written.
        let path = dir.path().join(VAULT_FILE_NAME);
        fs::create_dir(&path).unwrap();
        fs::write(path.join("occupied"), b"").unwrap();
        assert!(matches!(write_atomic(&path, b"data"), Err(VaultError::Io { action: "rename into place", .. })));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [VAULT_FILE_NAME]);
        assert!(matches!(
            write_atomic(&dir.path().join("missing").join(VAULT_FILE_NAME), b"data"),
            Err(VaultError::Io { action: "create a temporary file", .. })
        ));
    }

    #[test]
    fn read_vault_refuses_oversized_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(VAULT_FILE_NAME);
        // Sparse: the size check must trip on metadata, not after reading 256 MiB.
        File::create(&path).unwrap().set_len(MAX_VAULT_BYTES as u64 + 1).unwrap();
        assert!(matches!(read_vault(&path), Err(VaultError::TooLarge)));
        assert!(matches!(read_vault(&dir.path().join("absent")), Err(VaultError::Io { action: "open", .. })));
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(VAULT_FILE_NAME);
        write_atomic(&path, &sealed(b"on disk")).unwrap();
        assert_eq!(open_ok(&read_vault(&path).unwrap()).unwrap().as_slice(), b"on disk");
    }

    #[test]
    fn lock_contention() {
        let dir = tempfile::tempdir().unwrap();
        let first = WalletLock::acquire(dir.path()).unwrap();
        assert!(matches!(WalletLock::acquire(dir.path()), Err(VaultError::Locked)));
        drop(first);
        let _again = WalletLock::acquire(dir.path()).unwrap();
        assert!(dir.path().join(LOCK_FILE_NAME).exists());
    }

    #[test]
    fn errors_name_no_secrets() {
        let file = sealed(b"secret");
        let err = open(&file, &pass("the wrong one")).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("the wrong one"));
    }

    proptest::proptest! {
        // Each round trip runs Argon2 twice; 64 cases keep the suite quick.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn read_header_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = read_header(&bytes);
        }

        #[test]
        fn read_header_never_panics_past_the_magic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[1, 0, 1]);
            bytes.extend_from_slice(&tail);
            if let Ok(header) = read_header(&bytes) {
                header.kdf.validate().unwrap();
                proptest::prop_assert_eq!(&header.to_bytes()[..], &bytes[..HEADER_LEN]);
            }
        }

        #[test]
        fn seal_open_round_trip(plaintext in proptest::collection::vec(proptest::num::u8::ANY, 0..2048), pw in "[ -~]{1,40}") {
            proptest::prop_assume!(!pw.trim().is_empty());
            let file = seal(&plaintext, &pass(&pw), KdfParams::TESTING).unwrap();
            let header = read_header(&file).unwrap();
            proptest::prop_assert_eq!(header.kdf, KdfParams::TESTING);
            let opened = open(&file, &pass(&pw)).unwrap();
            proptest::prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
        }
    }
}
