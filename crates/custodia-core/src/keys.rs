//! Identity keys, all derived from one 32-byte master seed.
//!
//! The seed is the only secret a wallet must keep (it is what Shamir recovery restores). From it HKDF-SHA256
//! derives, under distinct labels, an Ed25519 key that signs statements and an X25519 key that opens sealed
//! boxes, so neither key can be computed from the other and a later key type slots in under a new label.
//!
//! Public keys have one printable form, used wherever a key is typed, printed or put in JSON: Bech32m with
//! the human-readable part `cusig` (signing) or `cubox` (encryption). The checksum catches a mistyped key.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const SEED_SALT: &[u8] = b"custodia/v1/identity";
const SIGNING_LABEL: &[u8] = b"custodia/v1/ed25519-signing";
const AGREEMENT_LABEL: &[u8] = b"custodia/v1/x25519-agreement";
const FINGERPRINT_LABEL: &[u8] = b"custodia/v1/fingerprint";
const LEDGER_TAG_LABEL: &[u8] = b"custodia/v1/ledger-tag";

const SIGNING_HRP: Hrp = Hrp::parse_unchecked("cusig");
const BOX_HRP: Hrp = Hrp::parse_unchecked("cubox");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a Custodia key: {0}")]
    Malformed(&'static str),
    #[error("this is a {found} key where a {expected} key is needed")]
    WrongKind { expected: &'static str, found: String },
    #[error("not a valid Ed25519 public key")]
    InvalidPoint,
}

/// The 32-byte root secret of a wallet. Zeroized on drop; never printed, cloned or serialised.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterSeed([u8; 32]);

impl MasterSeed {
    pub fn generate() -> Self {
        Self(crate::random::array())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw seed, for the vault and for Shamir splitting only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(SEED_SALT), &self.0);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        #[allow(clippy::expect_used)]
        hk.expand(label, out.as_mut()).expect("32 bytes is a valid HKDF output length");
        out
    }
}

impl fmt::Debug for MasterSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSeed(<secret>)")
    }
}

/// A wallet's keys, held in memory while the wallet is unlocked.
pub struct Identity {
    signing: SigningKey,
    agreement: x25519_dalek::StaticSecret,
    ledger_tag: crate::entry::Tag,
}

impl Identity {
    pub fn from_seed(seed: &MasterSeed) -> Self {
        let signing = SigningKey::from_bytes(&seed.derive(SIGNING_LABEL));
        let agreement = x25519_dalek::StaticSecret::from(*seed.derive(AGREEMENT_LABEL));
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&seed.derive(LEDGER_TAG_LABEL)[..16]);
        Self { signing, agreement, ledger_tag: crate::entry::Tag::from_bytes(tag) }
    }

    /// The same keys filed under `tag`: after a key rotation a wallet keeps the tag it enrolled with, so
    /// its whole history stays under one index.
    pub fn with_ledger_tag(mut self, tag: crate::entry::Tag) -> Self {
        self.ledger_tag = tag;
        self
    }

    pub fn signing_public(&self) -> SigningPublicKey {
        SigningPublicKey(self.signing.verifying_key())
    }

    pub fn box_public(&self) -> BoxPublicKey {
        BoxPublicKey(x25519_dalek::PublicKey::from(&self.agreement))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.signing_public(), &self.box_public())
    }

    /// The opaque tag under which the ledger indexes this wallet's entries. Derived from the seed, so it
    /// looks random and says nothing about the keys; only the ledger that enrolled it knows whose it is.
    pub fn ledger_tag(&self) -> crate::entry::Tag {
        self.ledger_tag
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn agreement_secret(&self) -> &x25519_dalek::StaticSecret {
        &self.agreement
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("signing_public", &self.signing_public()).finish_non_exhaustive()
    }
}

/// An Ed25519 public key: who signed a statement, who a grant is for.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SigningPublicKey(VerifyingKey);

impl SigningPublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        // A small-order key lets anyone forge signatures that "verify"; no honest wallet makes one.
        if key.is_weak() {
            return Err(KeyError::InvalidPoint);
        }
        Ok(Self(key))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Strict RFC 8032 verification: rejects non-canonical and small-order encodings, so a signature
    /// has exactly one valid form.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.0.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
    }

    /// Cofactored verification, the rule for ledger entries (see [`crate::cofactored`]).
    pub fn verify_cofactored(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        crate::cofactored::verify(self, message, signature)
    }

    pub(crate) fn point(&self) -> curve25519_dalek::edwards::EdwardsPoint {
        self.0.to_edwards()
    }
}

/// An X25519 public key: whom a sealed box is for.
#[derive(Clone, Copy)]
pub struct BoxPublicKey(x25519_dalek::PublicKey);

impl BoxPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(x25519_dalek::PublicKey::from(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    pub(crate) fn inner(&self) -> &x25519_dalek::PublicKey {
        &self.0
    }
}

impl PartialEq for BoxPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for BoxPublicKey {}

fn encode_key(hrp: Hrp, bytes: &[u8; 32]) -> String {
    // 32 bytes under a five-letter prefix is well within Bech32m's length limit.
    #[allow(clippy::expect_used)]
    bech32::encode::<Bech32m>(hrp, bytes).expect("a 32-byte key always fits in Bech32m")
}

fn decode_key(text: &str, hrp: Hrp, kind: &'static str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    if text.len() > 100 {
        return Err(KeyError::Malformed("too long"));
    }
    let parsed =
        CheckedHrpstring::new::<Bech32m>(text).map_err(|_| KeyError::Malformed("bad characters or checksum"))?;
    if parsed.hrp() != hrp {
        let found = match parsed.hrp() {
            h if h == SIGNING_HRP => "signing".to_owned(),
            h if h == BOX_HRP => "encryption".to_owned(),
            h => format!("unknown ({h})"),
        };
        return Err(KeyError::WrongKind { expected: kind, found });
    }
    let bytes: Vec<u8> = parsed.byte_iter().collect();
    bytes.try_into().map_err(|_| KeyError::Malformed("wrong length"))
}

macro_rules! printable_key {
    ($ty:ty, $hrp:expr, $kind:literal, $from:expr) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&encode_key($hrp, self.as_bytes()))
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self)
            }
        }
        impl FromStr for $ty {
            type Err = KeyError;
            fn from_str(text: &str) -> Result<Self, KeyError> {
                let bytes = decode_key(text, $hrp, $kind)?;
                $from(bytes)
            }
        }
        crate::codes::serde_as_string!($ty);
    };
}

printable_key!(SigningPublicKey, SIGNING_HRP, "signing", |b: [u8; 32]| SigningPublicKey::from_bytes(&b));
printable_key!(BoxPublicKey, BOX_HRP, "encryption", |b: [u8; 32]| Ok::<_, KeyError>(BoxPublicKey::from_bytes(b)));

/// A short digest of a wallet's two public keys for people to compare aloud: 80 bits as four groups of
/// four Crockford base32 characters (`7K3M-Q9TX-2B8D-HW4R`), easy to read over a phone.
#[derive(Clone, Copy)]
pub struct Fingerprint([u8; 10]);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Fingerprint {
    pub fn of(signing: &SigningPublicKey, boxing: &BoxPublicKey) -> Self {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_LABEL)
            .chain_update(signing.as_bytes())
            .chain_update(boxing.as_bytes())
            .finalize();
        let mut out = [0u8; 10];
        out.copy_from_slice(&digest[..10]);
        Self(out)
    }

    /// The fingerprint of a document people compare (a network profile): SHA-256 of `label` and the
    /// document's exact bytes, read out the same way as a key's.
    pub fn of_document(label: &[u8], bytes: &[u8]) -> Self {
        let digest = Sha256::new().chain_update(label).chain_update(bytes).finalize();
        let mut out = [0u8; 10];
        out.copy_from_slice(&digest[..10]);
        Self(out)
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Fingerprint {}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut acc: u128 = 0;
        for b in self.0 {
            acc = (acc << 8) | u128::from(b);
        }
        for i in 0..16 {
            if i > 0 && i % 4 == 0 {
                f.write_str("-")?;
            }
            let idx = ((acc >> (75 - 5 * i)) & 0x1f) as usize;
            write!(f, "{}", CROCKFORD[idx] as char)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_separated() {
        let a = Identity::from_seed(&MasterSeed::from_bytes([7; 32]));
        let b = Identity::from_seed(&MasterSeed::from_bytes([7; 32]));
        let c = Identity::from_seed(&MasterSeed::from_bytes([8; 32]));
        assert_eq!(a.signing_public(), b.signing_public());
        assert_eq!(a.box_public(), b.box_public());
        assert_ne!(a.signing_public(), c.signing_public());
        // The two keys come from different labels, so their secret scalars differ.
        assert_ne!(a.signing.as_bytes(), &a.agreement.to_bytes());
    }

    #[test]
    fn printable_form_round_trips_and_names_wrong_kinds() {
        let id = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
        let sig = id.signing_public().to_string();
        let bx = id.box_public().to_string();
        assert!(sig.starts_with("cusig1"));
        assert!(bx.starts_with("cubox1"));
        assert_eq!(sig.parse::<SigningPublicKey>().unwrap(), id.signing_public());
        assert_eq!(bx.parse::<BoxPublicKey>().unwrap(), id.box_public());
        assert!(matches!(bx.parse::<SigningPublicKey>(), Err(KeyError::WrongKind { .. })));
        let mut typo = sig.clone().into_bytes();
        typo[10] = if typo[10] == b'q' { b'p' } else { b'q' };
        assert!(String::from_utf8(typo).unwrap().parse::<SigningPublicKey>().is_err());
    }

    #[test]
    fn fingerprint_is_four_groups() {
        let id = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
        let fp = id.fingerprint().to_string();
        assert_eq!(fp.len(), 19);
        assert_eq!(fp.split('-').count(), 4);
    }

    #[test]
    fn signatures_verify_only_for_the_signed_message() {
        let id = Identity::from_seed(&MasterSeed::generate());
        let sig = id.sign(b"hello");
        assert!(id.signing_public().verify(b"hello", &sig));
        assert!(!id.signing_public().verify(b"hellO", &sig));
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point encodes as 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(SigningPublicKey::from_bytes(&identity), Err(KeyError::InvalidPoint));
    }

    proptest::proptest! {
        #[test]
        fn any_seed_gives_keys_that_round_trip(seed: [u8; 32]) {
            let id = Identity::from_seed(&MasterSeed::from_bytes(seed));
            let s = id.signing_public().to_string();
            proptest::prop_assert_eq!(s.parse::<SigningPublicKey>().unwrap(), id.signing_public());
        }
    }
}
