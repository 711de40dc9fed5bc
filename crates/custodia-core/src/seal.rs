//! Sealed boxes: encrypt to someone's X25519 public key without a prior exchange.
//!
//! An ephemeral X25519 key meets the recipient's key; HKDF-SHA256 over the shared secret, salted with
//! both public keys, yields the XChaCha20-Poly1305 key and nonce. Because each box has a fresh ephemeral
//! key, key and nonce are never reused. Associated data binds a box to its context (e.g. the entry it
//! belongs to), so a box cannot be lifted into another context and still open.
//!
//! Wire form: `0x01 || ephemeral public key (32) || ciphertext || tag (16)`.
//!
//! A box for several readers ([`seal_to_many`]) encrypts the message once under a random content key and
//! wraps that key for each recipient with the same construction. Recipients are not named in the box, so
//! whoever stores it (the ledger) learns how many readers a body has, not who they are.
//!
//! Wire form: `0x02 || ephemeral public key (32) || count (1) || count x wrapped key (48) || ciphertext || tag (16)`.
//!
//! A [`SealSession`] seals many boxes to one recipient after a single agreement: one ephemeral key, the
//! derived key kept, the ephemeral secret dropped at once, and a random nonce in each box. It is for a
//! sender who writes to the same recipient many times a second (a gateway's access events); the sender
//! keeps a session for a short while only, so what a leak of its memory exposes is that while's boxes.
//!
//! Wire form: `0x03 || ephemeral public key (32) || nonce (24) || ciphertext || tag (16)`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::keys::{BoxPublicKey, Identity};

const SEAL_VERSION: u8 = 1;
const SEAL_LABEL: &[u8] = b"custodia/v1/sealed-box";
const HEADER_LEN: usize = 1 + 32;
const TAG_LEN: usize = 16;
/// Bodies sealed to patients and providers are statements and small records.
pub const MAX_SEALED_BYTES: usize = 16 * 1024 * 1024;

const MULTI_VERSION: u8 = 2;
const MULTI_LABEL: &[u8] = b"custodia/v1/sealed-box-many";
const WRAPPED_LEN: usize = 32 + TAG_LEN;
/// A body is for the patient and the few parties who need it; a cap keeps trial decryption cheap.
pub const MAX_RECIPIENTS: usize = 16;

const SESSION_VERSION: u8 = 3;
const SESSION_LABEL: &[u8] = b"custodia/v1/sealed-session";
const SESSION_HEADER_LEN: usize = 1 + 32 + 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a sealed box has between 1 and {MAX_RECIPIENTS} recipients")]
    RecipientCount,
    #[error("sealed box is truncated")]
    Truncated,
    #[error("sealed box is larger than {MAX_SEALED_BYTES} bytes")]
    TooLarge,
    #[error("unknown sealed box version {0}")]
    UnknownVersion(u8),
    #[error("the recipient's encryption key is a low-order point; nothing sealed to it would be secret")]
    BadRecipient,
    #[error("sealed box does not open: not for this key, altered, or bound to other associated data")]
    DoesNotOpen,
}

fn cipher_for(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> (XChaCha20Poly1305, XNonce) {
    cipher_with_label(SEAL_LABEL, shared, ephemeral, recipient)
}

fn cipher_with_label(
    label: &[u8],
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> (XChaCha20Poly1305, XNonce) {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut okm = Zeroizing::new([0u8; 56]);
    // 56 bytes is far below HKDF-SHA256's output limit.
    #[allow(clippy::expect_used)]
    hk.expand(label, okm.as_mut()).expect("56 bytes is a valid HKDF output length");
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&okm[..32]);
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&okm[32..]);
    (XChaCha20Poly1305::new(&Key::from(*key)), XNonce::from(nonce))
}

/// Encrypts `plaintext` so only the holder of `recipient`'s secret key can open it, bound to `aad`.
pub fn seal(recipient: &BoxPublicKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let ephemeral = x25519_dalek::StaticSecret::from(crate::random::array::<32>());
    let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient.inner());
    // A low-order recipient key makes the shared secret predictable: anyone could open the box.
    if !shared.was_contributory() {
        return Err(SealError::BadRecipient);
    }
    let (cipher, nonce) = cipher_for(shared.as_bytes(), ephemeral_public.as_bytes(), recipient.as_bytes());
    // Encryption only fails for messages over ChaCha20's 256 GiB limit, which callers never approach.
    #[allow(clippy::expect_used)]
    let ciphertext = cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).expect("message within ChaCha20's limit");
    let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    out.push(SEAL_VERSION);
    out.extend_from_slice(ephemeral_public.as_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a box sealed to `identity`'s encryption key with the same `aad`.
pub fn open(identity: &Identity, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(SealError::TooLarge);
    }
    if sealed.len() < HEADER_LEN + TAG_LEN {
        return Err(SealError::Truncated);
    }
    if sealed[0] != SEAL_VERSION {
        return Err(SealError::UnknownVersion(sealed[0]));
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&sealed[1..HEADER_LEN]);
    let shared = identity.agreement_secret().diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    if !shared.was_contributory() {
        return Err(SealError::DoesNotOpen);
    }
    let (cipher, nonce) = cipher_for(shared.as_bytes(), &ephemeral, identity.box_public().as_bytes());
    cipher
        .decrypt(&nonce, Payload { msg: &sealed[HEADER_LEN..], aad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::DoesNotOpen)
}

/// Encrypts `plaintext` once so that each of `recipients` (and nobody else) can open it, bound to `aad`.
pub fn seal_to_many(recipients: &[BoxPublicKey], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    if recipients.is_empty() || recipients.len() > MAX_RECIPIENTS {
        return Err(SealError::RecipientCount);
    }
    let ephemeral = x25519_dalek::StaticSecret::from(crate::random::array::<32>());
    let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
    let content_key = Zeroizing::new(crate::random::array::<32>());
    let header_len = 1 + 32 + 1 + recipients.len() * WRAPPED_LEN;
    let mut out = Vec::with_capacity(header_len + plaintext.len() + TAG_LEN);
    out.push(MULTI_VERSION);
    out.extend_from_slice(ephemeral_public.as_bytes());
    // The count is at most MAX_RECIPIENTS, checked above.
    out.push(recipients.len() as u8);
    for recipient in recipients {
        let shared = ephemeral.diffie_hellman(recipient.inner());
        if !shared.was_contributory() {
            return Err(SealError::BadRecipient);
        }
        let (cipher, nonce) =
            cipher_with_label(MULTI_LABEL, shared.as_bytes(), ephemeral_public.as_bytes(), recipient.as_bytes());
        // A 32-byte key is far within ChaCha20's limit.
        #[allow(clippy::expect_used)]
        let wrapped = cipher.encrypt(&nonce, content_key.as_slice()).expect("message within ChaCha20's limit");
        out.extend_from_slice(&wrapped);
    }
    // The content key is fresh for every box, so a fixed nonce never repeats under one key. The header
    // is authenticated too, so wrapped keys cannot be swapped between boxes.
    let content = XChaCha20Poly1305::new(&Key::from(*content_key));
    let mut bound = aad.to_vec();
    bound.extend_from_slice(&out);
    #[allow(clippy::expect_used)]
    let ciphertext = content
        .encrypt(&XNonce::default(), Payload { msg: plaintext, aad: &bound })
        .expect("message within ChaCha20's limit");
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Opens a box made by [`seal_to_many`] if `identity` is one of its recipients.
pub fn open_from_many(identity: &Identity, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(SealError::TooLarge);
    }
    if sealed.len() < 1 + 32 + 1 {
        return Err(SealError::Truncated);
    }
    if sealed[0] != MULTI_VERSION {
        return Err(SealError::UnknownVersion(sealed[0]));
    }
    let count = usize::from(sealed[33]);
    if count == 0 || count > MAX_RECIPIENTS {
        return Err(SealError::RecipientCount);
    }
    let header_len = 34 + count * WRAPPED_LEN;
    if sealed.len() < header_len + TAG_LEN {
        return Err(SealError::Truncated);
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&sealed[1..33]);
    let shared = identity.agreement_secret().diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    if !shared.was_contributory() {
        return Err(SealError::DoesNotOpen);
    }
    let (cipher, nonce) =
        cipher_with_label(MULTI_LABEL, shared.as_bytes(), &ephemeral, identity.box_public().as_bytes());
    let content_key = sealed[34..header_len]
        .chunks_exact(WRAPPED_LEN)
        .find_map(|wrapped| cipher.decrypt(&nonce, wrapped).ok())
        .map(Zeroizing::new)
        .ok_or(SealError::DoesNotOpen)?;
    let key: [u8; 32] = content_key.as_slice().try_into().map_err(|_| SealError::DoesNotOpen)?;
    let key = Zeroizing::new(key);
    let mut bound = aad.to_vec();
    bound.extend_from_slice(&sealed[..header_len]);
    XChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(&XNonce::default(), Payload { msg: &sealed[header_len..], aad: &bound })
        .map(Zeroizing::new)
        .map_err(|_| SealError::DoesNotOpen)
}

/// Many boxes to one recipient from one X25519 agreement; see the module's documentation.
pub struct SealSession {
    ephemeral_public: [u8; 32],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SealSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealSession").finish_non_exhaustive()
    }
}

impl SealSession {
    pub fn new(recipient: &BoxPublicKey) -> Result<Self, SealError> {
        let ephemeral = x25519_dalek::StaticSecret::from(crate::random::array::<32>());
        let ephemeral_public = x25519_dalek::PublicKey::from(&ephemeral);
        let shared = ephemeral.diffie_hellman(recipient.inner());
        if !shared.was_contributory() {
            return Err(SealError::BadRecipient);
        }
        let key = session_key(shared.as_bytes(), ephemeral_public.as_bytes(), recipient.as_bytes());
        Ok(Self { ephemeral_public: *ephemeral_public.as_bytes(), key })
    }

    /// Encrypts `plaintext` for the session's recipient, bound to `aad`. The nonce is random: 192 bits
    /// make a repeat under one key as unlikely as guessing the key.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = crate::random::array::<24>();
        // Encryption only fails for messages over ChaCha20's 256 GiB limit, which callers never approach.
        #[allow(clippy::expect_used)]
        let ciphertext = XChaCha20Poly1305::new(&Key::from(*self.key))
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
            .expect("message within ChaCha20's limit");
        let mut out = Vec::with_capacity(SESSION_HEADER_LEN + ciphertext.len());
        out.push(SESSION_VERSION);
        out.extend_from_slice(&self.ephemeral_public);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }
}

fn session_key(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's output limit.
    #[allow(clippy::expect_used)]
    Hkdf::<Sha256>::new(Some(&salt), shared).expand(SESSION_LABEL, key.as_mut()).expect("a valid HKDF length");
    key
}

/// Opens a box made by a [`SealSession`] for `identity`'s encryption key with the same `aad`.
pub fn open_session(identity: &Identity, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.len() > MAX_SEALED_BYTES {
        return Err(SealError::TooLarge);
    }
    if sealed.len() < SESSION_HEADER_LEN + TAG_LEN {
        return Err(SealError::Truncated);
    }
    if sealed[0] != SESSION_VERSION {
        return Err(SealError::UnknownVersion(sealed[0]));
    }
    let mut ephemeral = [0u8; 32];
    ephemeral.copy_from_slice(&sealed[1..33]);
    let shared = identity.agreement_secret().diffie_hellman(&x25519_dalek::PublicKey::from(ephemeral));
    if !shared.was_contributory() {
        return Err(SealError::DoesNotOpen);
    }
    let key = session_key(shared.as_bytes(), &ephemeral, identity.box_public().as_bytes());
    let mut nonce = [0u8; 24];
    nonce.copy_from_slice(&sealed[33..SESSION_HEADER_LEN]);
    XChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(&XNonce::from(nonce), Payload { msg: &sealed[SESSION_HEADER_LEN..], aad })
        .map(Zeroizing::new)
        .map_err(|_| SealError::DoesNotOpen)
}

/// Opens an entry body: a box for several readers ([`seal_to_many`]) or one from a [`SealSession`].
pub fn open_body(identity: &Identity, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    match sealed.first() {
        Some(&SESSION_VERSION) => open_session(identity, aad, sealed),
        _ => open_from_many(identity, aad, sealed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSeed;

    #[test]
    fn opens_only_for_the_recipient_with_the_same_aad() {
        let alice = Identity::from_seed(&MasterSeed::generate());
        let mallory = Identity::from_seed(&MasterSeed::generate());
        let boxed = seal(&alice.box_public(), b"entry 7", b"secret body").unwrap();
        assert_eq!(open(&alice, b"entry 7", &boxed).unwrap().as_slice(), b"secret body");
        assert_eq!(open(&mallory, b"entry 7", &boxed), Err(SealError::DoesNotOpen));
        assert_eq!(open(&alice, b"entry 8", &boxed), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn every_bit_matters() {
        let alice = Identity::from_seed(&MasterSeed::generate());
        let boxed = seal(&alice.box_public(), b"", b"hello").unwrap();
        for i in 1..boxed.len() {
            let mut bad = boxed.clone();
            bad[i] ^= 0x01;
            assert!(open(&alice, b"", &bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert_eq!(open(&alice, b"", &boxed[..HEADER_LEN + TAG_LEN - 1]), Err(SealError::Truncated));
        let mut v2 = boxed;
        v2[0] = 2;
        assert_eq!(open(&alice, b"", &v2), Err(SealError::UnknownVersion(2)));
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let alice = Identity::from_seed(&MasterSeed::generate());
        let mut boxed = vec![SEAL_VERSION];
        boxed.extend_from_slice(&[0u8; 32]); // the all-zero point has low order
        boxed.extend_from_slice(&[0u8; 32]);
        assert_eq!(open(&alice, b"", &boxed), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn low_order_recipients_are_refused() {
        assert_eq!(seal(&BoxPublicKey::from_bytes([0; 32]), b"", b"x"), Err(SealError::BadRecipient));
    }

    #[test]
    fn many_recipients_each_open_and_nobody_else() {
        let ids: Vec<Identity> = (0..3).map(|_| Identity::from_seed(&MasterSeed::generate())).collect();
        let keys: Vec<BoxPublicKey> = ids.iter().map(Identity::box_public).collect();
        let boxed = seal_to_many(&keys, b"grant", b"body").unwrap();
        for id in &ids {
            assert_eq!(open_from_many(id, b"grant", &boxed).unwrap().as_slice(), b"body");
            assert_eq!(open_from_many(id, b"access", &boxed), Err(SealError::DoesNotOpen));
        }
        let outsider = Identity::from_seed(&MasterSeed::generate());
        assert_eq!(open_from_many(&outsider, b"grant", &boxed), Err(SealError::DoesNotOpen));
        for i in 1..boxed.len() {
            let mut bad = boxed.clone();
            bad[i] ^= 0x40;
            assert!(open_from_many(&ids[0], b"grant", &bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert_eq!(seal_to_many(&[], b"", b"x"), Err(SealError::RecipientCount));
        assert_eq!(seal_to_many(&vec![keys[0]; MAX_RECIPIENTS + 1], b"", b"x"), Err(SealError::RecipientCount));
    }

    #[test]
    fn a_session_seals_many_boxes_each_with_its_own_nonce() {
        let alice = Identity::from_seed(&MasterSeed::generate());
        let session = SealSession::new(&alice.box_public()).unwrap();
        let first = session.seal(b"access", b"one");
        let second = session.seal(b"access", b"one");
        assert_ne!(first, second, "the same message twice must not give the same box");
        assert_eq!(first[1..33], second[1..33], "one ephemeral key for the session");
        for boxed in [&first, &second] {
            assert_eq!(open_body(&alice, b"access", boxed).unwrap().as_slice(), b"one");
            assert_eq!(open_session(&alice, b"grant", boxed), Err(SealError::DoesNotOpen));
        }
        let mallory = Identity::from_seed(&MasterSeed::generate());
        assert_eq!(open_session(&mallory, b"access", &first), Err(SealError::DoesNotOpen));
        for i in 1..first.len() {
            let mut bad = first.clone();
            bad[i] ^= 0x10;
            assert!(open_body(&alice, b"access", &bad).is_err(), "flip at byte {i} went unnoticed");
        }
        assert_eq!(open_session(&alice, b"", &first[..SESSION_HEADER_LEN + TAG_LEN - 1]), Err(SealError::Truncated));
        assert!(matches!(SealSession::new(&BoxPublicKey::from_bytes([0; 32])), Err(SealError::BadRecipient)));
        // Boxes for several readers still open through the same entry point.
        let many = seal_to_many(&[alice.box_public()], b"access", b"two").unwrap();
        assert_eq!(open_body(&alice, b"access", &many).unwrap().as_slice(), b"two");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(seed: [u8; 32], aad: Vec<u8>, msg: Vec<u8>) {
            let id = Identity::from_seed(&MasterSeed::from_bytes(seed));
            let boxed = seal(&id.box_public(), &aad, &msg).unwrap();
            let opened = open(&id, &aad, &boxed).unwrap();
            proptest::prop_assert_eq!(opened.as_slice(), msg.as_slice());
        }
    }
}
