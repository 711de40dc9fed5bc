//! C2SP tlog-cosignature v1 with Ed25519 (c2sp.org/tlog-cosignature, signature type 0x04): a
//! witness's timestamped statement that a checkpoint is the largest consistent one it has seen.
//!
//! A cosignature is a signature line on the checkpoint note whose bytes (after the key id) are an
//! 8-byte big-endian POSIX timestamp and an Ed25519 signature over
//! `cosignature/v1\ntime <timestamp>\n` followed by the whole checkpoint text. The key id uses type
//! byte 0x04, so a witness's cosignature is never mistaken for a plain note signature by the same key.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::checkpoint::Checkpoint;
use crate::note::{self, NoteError, NoteSignature};

pub(crate) const ALG_COSIGNATURE_V1: u8 = 0x04;
/// The spec bounds timestamps to 2^63 - 1.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    #[error("the signature line is by {found}, not by the witness {witness}")]
    WrongKey { found: String, witness: String },
    #[error("a cosignature is 72 bytes (a timestamp and an Ed25519 signature), not {0}")]
    Malformed(usize),
    #[error("the cosignature's timestamp {0} is above 2^63 - 1")]
    BadTimestamp(u64),
    #[error("the cosignature by {name} does not verify")]
    BadSignature { name: String },
}

/// The message a witness signs for `checkpoint` at `timestamp`:
/// `cosignature/v1\ntime <timestamp>\n` and the checkpoint text.
pub fn signed_message(checkpoint: &Checkpoint, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{}", checkpoint.to_text())
}

/// A witness's cosigning key, as a log client trusts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// Parses `<name>+<hex8>+<base64(0x04 || public key)>` and checks the key id.
    pub fn from_vkey(text: &str) -> Result<Self, NoteError> {
        let (name, key_id, key) = note::parse_vkey(text, ALG_COSIGNATURE_V1)?;
        Ok(Self { name, key_id, key })
    }

    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        note::check_name(name)?;
        let key = note::public_key(public_key)?;
        Ok(Self { name: name.to_owned(), key_id: note::key_id(name, ALG_COSIGNATURE_V1, public_key), key })
    }

    pub fn to_vkey(&self) -> String {
        note::format_vkey(&self.name, self.key_id, ALG_COSIGNATURE_V1, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

impl fmt::Display for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for CosignatureVerifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_vkey(s)
    }
}

/// A witness's cosigning key. Zeroized on drop, never printed.
pub struct Cosigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl Cosigner {
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        note::check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = note::key_id(name, ALG_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(Self { name: name.to_owned(), key_id, key })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8>+<base64(0x04 || seed)>`, the signer-key form with the
    /// cosignature type, and checks the key id.
    pub fn from_skey(text: &str) -> Result<Self, NoteError> {
        let (name, id, seed) = note::parse_skey(text, ALG_COSIGNATURE_V1)?;
        let cosigner = Self::new(&name, &seed)?;
        if cosigner.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(cosigner)
    }

    /// The `PRIVATE+KEY+...` text of this key. Whoever has it can cosign as this witness.
    pub fn to_skey(&self) -> zeroize::Zeroizing<String> {
        note::format_skey(&self.name, self.key_id, ALG_COSIGNATURE_V1, self.key.as_bytes())
    }

    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature line `— <name> <base64(key id || timestamp || signature)>\n` to append to the
    /// checkpoint's note. A timestamp above [`MAX_TIMESTAMP`] makes a line no verifier accepts.
    pub fn cosign(&self, checkpoint: &Checkpoint, timestamp: u64) -> String {
        let signature = self.key.sign(signed_message(checkpoint, timestamp).as_bytes());
        let mut bytes = Vec::with_capacity(72);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        note::signature_line(&self.name, self.key_id, &bytes)
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// Verifies `sig`, a signature line of `checkpoint`'s note, as `witness`'s cosignature; returns its
/// timestamp. The caller decides whether that time is recent enough.
pub fn verify_cosignature(
    checkpoint: &Checkpoint,
    sig: &NoteSignature,
    witness: &CosignatureVerifier,
) -> Result<u64, CosignatureError> {
    if sig.name != witness.name || sig.key_id != witness.key_id {
        return Err(CosignatureError::WrongKey {
            found: format!("{}+{:08x}", sig.name, sig.key_id),
            witness: format!("{}+{:08x}", witness.name, witness.key_id),
        });
    }
    let malformed = || CosignatureError::Malformed(sig.bytes.len());
    if sig.bytes.len() != 72 {
        return Err(malformed());
    }
    let (time, signature) = sig.bytes.split_at(8);
    let time: [u8; 8] = time.try_into().map_err(|_| malformed())?;
    let timestamp = u64::from_be_bytes(time);
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::BadTimestamp(timestamp));
    }
    if !note::verify_ed25519(&witness.key, signed_message(checkpoint, timestamp).as_bytes(), signature) {
        return Err(CosignatureError::BadSignature { name: sig.name.clone() });
    }
    Ok(timestamp)
}
