//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys (signature type 0x01), compatible with
//! Go's golang.org/x/mod/sumdb/note.
//!
//! A note is text ending in a newline, a blank line, then signature lines `— <name> <base64>`. The
//! signature covers the text including its final newline. Keys travel as text: a verifier key is
//! `<name>+<key id>+<base64(type || public key)>`, a signer key is `PRIVATE+KEY+` followed by the same
//! with the 32-byte seed in place of the public key. The key id is the first four bytes of
//! SHA-256(name || "\n" || type || public key), so it binds a signature line to one name, type and key.
//!
//! Verification is strict where Go's is lenient: every signature line from a known key must verify
//! (Go checks only the first per key), and Ed25519 is checked with `verify_strict`.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The largest note we parse; checkpoints with a few cosignatures are well under a kilobyte.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// Go's cap. The spec requires accepting at least 16.
pub const MAX_SIGNATURES: usize = 100;
/// The longest verifier or signer key text we parse (an Ed25519 vkey is under 100 bytes plus the name).
pub const MAX_KEY_TEXT: usize = 4096;

pub(crate) const ALG_ED25519: u8 = 0x01;
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const SKEY_PREFIX: &str = "PRIVATE+KEY+";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("the note is larger than {MAX_NOTE_BYTES} bytes or has more than {MAX_SIGNATURES} signatures")]
    TooLarge,
    #[error("invalid key name {0:?}: a name is non-empty, with no spaces, '+' or control characters")]
    BadName(String),
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("the key is of signature type {found:#04x}, not {expected:#04x}")]
    WrongAlgorithm { expected: u8, found: u8 },
    #[error("the key id does not match the key's name and public key")]
    KeyIdMismatch,
    #[error("two different trusted keys are named {name} with key id {key_id:08x}")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("the note is not signed by {0}")]
    UnknownVerifier(String),
    #[error("the signature by {name} does not verify")]
    BadSignature { name: String },
}

fn malformed(what: &str) -> NoteError {
    NoteError::Malformed(what.to_owned())
}

/// Standard padded base64, canonical form only. data-encoding alone would accept padding between
/// blocks ("AQ==AQ=="), which Go and the C2SP specs do not; trailing bits are already checked.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) || text.trim_end_matches('=').contains('=') {
        return None;
    }
    BASE64.decode(text.as_bytes()).ok()
}

/// Names are non-empty, with no Unicode whitespace and no '+' (the spec), and no control characters
/// (which a note cannot carry).
pub(crate) fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(NoteError::BadName(name.to_owned()));
    }
    Ok(())
}

/// SHA-256(name || "\n" || type || public key)[..4], big-endian.
pub(crate) fn key_id(name: &str, alg: u8, public: &[u8; 32]) -> u32 {
    let digest = Sha256::new().chain_update(name).chain_update([b'\n', alg]).chain_update(public).finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// An Ed25519 public key we are willing to trust: a valid point, and not of small order (under which
/// anyone could forge signatures).
pub(crate) fn public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, NoteError> {
    match VerifyingKey::from_bytes(bytes) {
        Ok(key) if !key.is_weak() => Ok(key),
        _ => Err(NoteError::BadKey("not a valid Ed25519 public key".into())),
    }
}

/// Strict RFC 8032 verification: rejects non-canonical encodings, so a signature has one valid form.
pub(crate) fn verify_ed25519(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(bytes) = <[u8; 64]>::try_from(signature) else { return false };
    key.verify_strict(message, &Signature::from_bytes(&bytes)).is_ok()
}

/// `— <name> <base64(key id || signature)>\n`.
pub(crate) fn signature_line(name: &str, key_id: u32, signature: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(4 + signature.len());
    bytes.extend_from_slice(&key_id.to_be_bytes());
    bytes.extend_from_slice(signature);
    format!("{SIGNATURE_PREFIX}{name} {}\n", BASE64.encode(&bytes))
}

fn parse_key_id(hex: &str) -> Result<u32, NoteError> {
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::BadKey("the key id is not 8 hex digits".into()));
    }
    u32::from_str_radix(hex, 16).map_err(|_| NoteError::BadKey("the key id is not 8 hex digits".into()))
}

/// Splits `<name>+<hex8>+<base64>` into its name, key id and the decoded key bytes, which must be the
/// type byte `alg` and 32 bytes. The name cannot hold a '+', so the first two are the separators.
fn split_key(text: &str, alg: u8) -> Result<(&str, u32, Zeroizing<Vec<u8>>), NoteError> {
    if text.len() > MAX_KEY_TEXT {
        return Err(NoteError::BadKey(format!("longer than {MAX_KEY_TEXT} bytes")));
    }
    let shape = || NoteError::BadKey("expected <name>+<key id>+<base64 key>".into());
    let (name, rest) = text.split_once('+').ok_or_else(shape)?;
    let (hex, b64) = rest.split_once('+').ok_or_else(shape)?;
    check_name(name)?;
    let id = parse_key_id(hex)?;
    // Zeroizing: for a signer key these bytes are the seed.
    let bytes = Zeroizing::new(decode_base64(b64).ok_or_else(|| NoteError::BadKey("the key is not base64".into()))?);
    match bytes.first() {
        None => return Err(NoteError::BadKey("the key is empty".into())),
        Some(&found) if found != alg => return Err(NoteError::WrongAlgorithm { expected: alg, found }),
        Some(_) if bytes.len() != 33 => return Err(NoteError::BadKey("an Ed25519 key is 32 bytes".into())),
        Some(_) => {}
    }
    Ok((name, id, bytes))
}

/// Parses a verifier key of signature type `alg` and checks its key id.
pub(crate) fn parse_vkey(text: &str, alg: u8) -> Result<(String, u32, VerifyingKey), NoteError> {
    let (name, id, bytes) = split_key(text, alg)?;
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&bytes[1..]);
    let key = public_key(&raw)?;
    if key_id(name, alg, &raw) != id {
        return Err(NoteError::KeyIdMismatch);
    }
    Ok((name.to_owned(), id, key))
}

pub(crate) fn format_vkey(name: &str, key_id: u32, alg: u8, public: &[u8; 32]) -> String {
    let mut bytes = [0u8; 33];
    bytes[0] = alg;
    bytes[1..].copy_from_slice(public);
    format!("{name}+{key_id:08x}+{}", BASE64.encode(&bytes))
}

/// Checks that `text` can be the text of a note: it ends in a newline and holds no control
/// character other than newline.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(malformed("the text must end with a newline"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("the text holds a control character other than newline"));
    }
    Ok(())
}

/// Parses `PRIVATE+KEY+<name>+<hex8>+<base64(alg || seed)>`: the name, key id and seed. The caller
/// derives the key and checks the id.
pub(crate) fn parse_skey(text: &str, alg: u8) -> Result<(String, u32, Zeroizing<[u8; 32]>), NoteError> {
    let rest = text
        .strip_prefix(SKEY_PREFIX)
        .ok_or_else(|| NoteError::BadKey(format!("a signer key starts with {SKEY_PREFIX}")))?;
    // A malformed signer key may put part of the seed where the name goes: never echo it.
    let (name, id, bytes) = split_key(rest, alg).map_err(|e| match e {
        NoteError::BadName(_) => NoteError::BadKey("the key name is not valid".into()),
        other => other,
    })?;
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&bytes[1..]);
    Ok((name.to_owned(), id, seed))
}

/// `PRIVATE+KEY+<name>+<hex8>+<base64(alg || seed)>`.
pub(crate) fn format_skey(name: &str, key_id: u32, alg: u8, seed: &[u8; 32]) -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 33]);
    raw[0] = alg;
    raw[1..].copy_from_slice(seed);
    // Sized up front so the string never reallocates and leaves a copy of the seed behind.
    let mut out = Zeroizing::new(String::with_capacity(SKEY_PREFIX.len() + name.len() + 10 + 44));
    out.push_str(SKEY_PREFIX);
    out.push_str(name);
    out.push_str(&format!("+{key_id:08x}+"));
    BASE64.encode_append(&raw[..], &mut out);
    out
}

/// A note signing key: Ed25519, zeroized on drop, never printed.
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl NoteSigner {
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, ALG_ED25519, key.verifying_key().as_bytes());
        Ok(Self { name: name.to_owned(), key_id, key })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>` (Go's note.NewSigner form) and checks
    /// that the key id matches the public key the seed derives.
    pub fn from_skey(text: &str) -> Result<Self, NoteError> {
        let (name, id, seed) = parse_skey(text, ALG_ED25519)?;
        let signer = Self::new(&name, &seed)?;
        if signer.key_id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(signer)
    }

    /// The `PRIVATE+KEY+...` text of this key. Whoever has it can sign as this key.
    pub fn to_skey(&self) -> Zeroizing<String> {
        format_skey(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key_id: self.key_id, key: self.key.verifying_key() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature line `— <name> <base64>\n` over `text`, which is signed exactly as given.
    pub fn sign_line(&self, text: &str) -> String {
        signature_line(&self.name, self.key_id, &self.key.sign(text.as_bytes()).to_bytes())
    }

    /// The signed note: `text`, a blank line, and this key's signature line. `text` must end in a
    /// newline and hold no other control character.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let line = self.sign_line(text);
        if text.len() + 1 + line.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        Ok(format!("{text}\n{line}"))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// A trusted note key: a name, its key id and an Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hex8>+<base64(0x01 || public key)>` and checks the key id.
    pub fn from_vkey(text: &str) -> Result<Self, NoteError> {
        let (name, key_id, key) = parse_vkey(text, ALG_ED25519)?;
        Ok(Self { name, key_id, key })
    }

    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = self::public_key(public_key)?;
        Ok(Self { name: name.to_owned(), key_id: key_id(name, ALG_ED25519, public_key), key })
    }

    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, self.key_id, ALG_ED25519, self.key.as_bytes())
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

    fn matches(&self, signature: &NoteSignature) -> bool {
        self.name == signature.name && self.key_id == signature.key_id
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_vkey())
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::from_vkey(s)
    }
}

/// One signature line of a note, not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The signature after the key id: 64 bytes for Ed25519, 72 for a cosignature.
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, as it appears in a note.
    pub fn to_line(&self) -> String {
        signature_line(&self.name, self.key_id, &self.bytes)
    }
}

/// A parsed note: its text and signature lines. Parsing checks the shape only; the text means
/// nothing until [`SignedNote::verify`] has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedNote {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Splits a note at its last blank line and parses the signature lines after it.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(malformed("the note holds a control character other than newline"));
        }
        let split = note.rfind("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
        let (text, block) = (&note[..split + 1], &note[split + 2..]);
        let lines = block.strip_suffix('\n').ok_or_else(|| malformed("no signature line ending in a newline"))?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooLarge);
            }
            signatures.push(parse_signature_line(line)?);
        }
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// Verifies: at least one signature by one of `verifiers` (matched by name+key id) is valid, and
    /// every signature whose name+key id matches a known verifier is valid (a bad signature from a
    /// known key is an error, not ignored); unknown signatures are ignored. Returns the names that
    /// verified, in signature order, each once.
    pub fn verify(&self, verifiers: &[NoteVerifier]) -> Result<Vec<String>, NoteError> {
        let mut names: Vec<String> = Vec::new();
        for signature in &self.signatures {
            let mut known = verifiers.iter().filter(|v| v.matches(signature));
            let Some(verifier) = known.next() else { continue };
            if known.any(|other| other.key != verifier.key) {
                return Err(NoteError::AmbiguousKey { name: signature.name.clone(), key_id: signature.key_id });
            }
            if !verify_ed25519(&verifier.key, self.text.as_bytes(), &signature.bytes) {
                return Err(NoteError::BadSignature { name: signature.name.clone() });
            }
            if !names.contains(&signature.name) {
                names.push(signature.name.clone());
            }
        }
        if names.is_empty() {
            let wanted: Vec<&str> = verifiers.iter().map(|v| v.name.as_str()).collect();
            let wanted = if wanted.is_empty() { "any trusted key".to_owned() } else { wanted.join(", ") };
            return Err(NoteError::UnknownVerifier(wanted));
        }
        Ok(names)
    }
}

impl fmt::Display for SignedNote {
    /// The note text, a blank line and the signature lines: what [`SignedNote::parse`] read.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        self.signatures.iter().try_for_each(|s| f.write_str(&s.to_line()))
    }
}

fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or_else(|| malformed("a signature line must start with an em dash and a space"))?;
    let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed("a signature line is `— <name> <base64>`"))?;
    if check_name(name).is_err() {
        return Err(malformed("a signature line has an invalid key name"));
    }
    let bytes = decode_base64(b64).ok_or_else(|| malformed("a signature is not base64"))?;
    if bytes.len() < 5 {
        return Err(malformed("a signature is shorter than a key id and one byte"));
    }
    let key_id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Ok(NoteSignature { name: name.to_owned(), key_id, bytes: bytes[4..].to_vec() })
}

/// Parses `note` and verifies it with `verifiers` (see [`SignedNote::verify`]); returns its text.
pub fn open(note: &str, verifiers: &[NoteVerifier]) -> Result<String, NoteError> {
    let note = SignedNote::parse(note)?;
    note.verify(verifiers)?;
    Ok(note.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_key() {
        let signer = NoteSigner::new("example.com/log", &[7; 32]).unwrap();
        let printed = format!("{signer:?}");
        assert!(printed.contains("example.com/log"));
        assert!(!printed.contains(&BASE64.encode(&[7; 32])));
        assert!(!printed.contains("[7, 7"));
    }

    #[test]
    fn skey_round_trips() {
        let signer = NoteSigner::new("example.com/log", &[9; 32]).unwrap();
        let again = NoteSigner::from_skey(&signer.to_skey()).unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        assert_eq!(signer.verifier().to_vkey().parse::<NoteVerifier>(), Ok(signer.verifier()));
    }

    #[test]
    fn signer_key_errors_do_not_echo_the_key() {
        let err = NoteSigner::from_skey("PRIVATE+KEY+AYEKFALV FGyNhPJE+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr").unwrap_err();
        assert!(!err.to_string().contains("AYEK"), "{err}");
    }

    #[test]
    fn base64_is_canonical_only() {
        assert_eq!(decode_base64("AQ=="), Some(vec![1]));
        assert_eq!(decode_base64("AQ==AQ=="), None);
        assert_eq!(decode_base64("AR=="), None);
        assert_eq!(decode_base64("AQ"), None);
    }
}
