//! Ed25519 verification by the cofactored equation, one signature or many at once.
//!
//! Ledger entries are verified in batches: the ledger checks every request's entries together, at about
//! half the cost per signature. Batch verification only agrees with single verification when both use
//! the cofactored equation `[8][s]B = [8]R + [8][k]A` (as ZIP 215 sets out): with the strict,
//! cofactorless equation a signature whose R carries a small torsion component fails alone but can pass
//! in a batch, and a ledger would then take entries that wallets refuse. So ledger entries are verified
//! by this one rule wherever they are checked, alone or in a batch, and both give the same answer.
//!
//! What stays strict: `s` must be canonical (below the group order), `R` must decode, and the key must not
//! be of small order (refused when a key is parsed). Only the signer can make a second valid signature
//! for a message (R is hashed into k, so no one else can move R, and s has one canonical form), as a
//! signer always could by signing again; the ledger's replay check needs no more.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest as _, Sha512};

use crate::keys::SigningPublicKey;

/// One signature to check: the key, the signed message and the signature.
pub type Item<'a> = (&'a SigningPublicKey, &'a [u8], &'a [u8; 64]);

/// R decoded, s canonical, and k = SHA-512(R || A || M) reduced: the parts of one signature.
fn parts(key: &SigningPublicKey, message: &[u8], signature: &[u8; 64]) -> Option<(EdwardsPoint, Scalar, Scalar)> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    h.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Some((r, s, k))
}

/// One signature, by the cofactored equation.
pub fn verify(key: &SigningPublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
    let Some((r, s, k)) = parts(key, message, signature) else {
        return false;
    };
    let expected_r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-key.point(), &s);
    (expected_r - r).mul_by_cofactor().is_identity()
}

/// Many signatures at once: true exactly when [`verify`] would accept every one of them (but for a
/// chance of 2^-128 that a bad batch passes). A random 128-bit weight per signature, drawn here from the
/// OS so that no submitter can choose signatures that cancel out, and one multiscalar multiplication;
/// signatures by the same key share that key's term. A false answer says that some signature is bad,
/// not which: check them one by one to find it.
pub fn verify_batch(items: &[Item<'_>]) -> bool {
    match items {
        [] => return true,
        [(key, message, signature)] => return verify(key, message, signature),
        _ => {}
    }
    let mut weights = vec![0u8; 16 * items.len()];
    crate::random::fill(&mut weights);
    let mut scalars = Vec::with_capacity(items.len() + 8);
    let mut points = Vec::with_capacity(items.len() + 8);
    let mut key_terms: Vec<(&SigningPublicKey, Scalar)> = Vec::new();
    let mut basepoint = Scalar::ZERO;
    for ((key, message, signature), weight) in items.iter().zip(weights.chunks_exact(16)) {
        let Some((r, s, k)) = parts(key, message, signature) else {
            return false;
        };
        let mut wide = [0u8; 32];
        wide[..16].copy_from_slice(weight);
        let z = Scalar::from_bytes_mod_order(wide);
        basepoint -= z * s;
        scalars.push(z);
        points.push(r);
        match key_terms.iter_mut().find(|(k2, _)| *k2 == *key) {
            Some((_, sum)) => *sum += z * k,
            None => key_terms.push((key, z * k)),
        }
    }
    for (key, sum) in key_terms {
        scalars.push(sum);
        points.push(key.point());
    }
    scalars.push(basepoint);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Identity, MasterSeed};
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn signer(n: u8) -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes([n; 32]))
    }

    /// A signature made by hand with a point of order 8 added to R (what an honest signer never does),
    /// under the key `[a]B`.
    fn signed_with_torsion(a: Scalar, message: &[u8]) -> (SigningPublicKey, [u8; 64]) {
        let public = ED25519_BASEPOINT_POINT * a;
        let key = SigningPublicKey::from_bytes(public.compress().as_bytes()).unwrap();
        let r = Scalar::from_bytes_mod_order([7; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1]).compress();
        let mut h = Sha512::new();
        h.update(big_r.as_bytes());
        h.update(key.as_bytes());
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(big_r.as_bytes());
        signature[32..].copy_from_slice((r + k * a).as_bytes());
        (key, signature)
    }

    #[test]
    fn honest_signatures_verify_alone_and_together() {
        let ids: Vec<Identity> = (1..=3).map(signer).collect();
        let keys: Vec<SigningPublicKey> = ids.iter().map(Identity::signing_public).collect();
        let messages: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let signatures: Vec<[u8; 64]> = messages.iter().enumerate().map(|(i, m)| ids[i % 3].sign(m)).collect();
        let items: Vec<Item<'_>> = (0..10).map(|i| (&keys[i % 3], messages[i].as_slice(), &signatures[i])).collect();
        assert!(items.iter().all(|(k, m, s)| verify(k, m, s) && k.verify(m, s)));
        assert!(verify_batch(&items));
        assert!(verify_batch(&items[..1]) && verify_batch(&[]));

        // One wrong message, one wrong key, one altered s: the batch fails, as each alone does.
        for broken in 0..3 {
            let mut bad = items.clone();
            let mut altered = signatures[4];
            match broken {
                0 => bad[4].1 = b"another message",
                1 => bad[4].0 = &keys[(4 + 1) % 3],
                _ => {
                    altered[40] ^= 1;
                    bad[4].2 = &altered;
                }
            }
            assert!(!verify(bad[4].0, bad[4].1, bad[4].2));
            assert!(!verify_batch(&bad), "case {broken}");
        }
    }

    #[test]
    fn a_torsion_component_in_r_gets_the_same_answer_alone_and_in_a_batch() {
        // The case where strict single verification and a cofactorless batch disagree. Here both
        // verifications use one rule, so they agree: the signature is valid in either, and strict
        // verification alone refuses it.
        let message = b"an entry".to_vec();
        let (key, twisted) = signed_with_torsion(Scalar::from_bytes_mod_order([9; 32]), &message);
        assert!(!key.verify(&message, &twisted), "strict verification refuses a torsion component");
        assert!(verify(&key, &message, &twisted));
        let other = signer(5);
        let other_signature = other.sign(b"x");
        let other_key = other.signing_public();
        for _ in 0..32 {
            assert!(verify_batch(&[(&key, &message, &twisted), (&other_key, b"x", &other_signature)]));
        }
    }

    #[test]
    fn ledger_entries_follow_the_cofactored_rule_and_other_statements_the_strict_one() {
        use crate::entry::{Content, LedgerEntry};
        use crate::statement::{self, Statement, StatementError, Unverified};
        let a = Scalar::from_bytes_mod_order([11; 32]);
        let key = SigningPublicKey::from_bytes((ED25519_BASEPOINT_POINT * a).compress().as_bytes()).unwrap();
        let at = crate::time::Timestamp::from_unix(1_800_000_000).unwrap();
        let entry = LedgerEntry::new(key, at, Content::Redaction { tag: crate::entry::Tag::from_bytes([1; 16]) });
        let payload = entry.encode().unwrap();
        let message = crate::dsse::pae(LedgerEntry::PAYLOAD_TYPE, &payload);
        let (_, twisted) = signed_with_torsion(a, &message);
        let envelope = crate::dsse::Envelope {
            payload_type: LedgerEntry::PAYLOAD_TYPE.into(),
            payload,
            signatures: vec![crate::dsse::EnvelopeSignature { keyid: String::new(), sig: twisted }],
        };
        let unverified = || Unverified::<LedgerEntry>::from_envelope(envelope.clone()).unwrap();
        assert!(unverified().verify().is_ok(), "alone");
        assert!(statement::verify_all(vec![unverified(), unverified()]).is_ok(), "in a batch");
        assert!(!LedgerEntry::signature_valid(&key, b"other", &twisted));

        // A batch with one bad entry: the same answer as one by one, naming the first bad one.
        let mut forged = envelope.clone();
        forged.signatures[0].sig[40] ^= 1;
        let forged = Unverified::<LedgerEntry>::from_envelope(forged).unwrap();
        let refused = statement::verify_all(vec![unverified(), forged, unverified()]).unwrap_err();
        assert!(matches!(refused, (1, StatementError::BadSignature { .. })), "{refused:?}");

        // Statements outside the ledger keep strict verification: the same twisted signature fails there.
        assert!(!<crate::grant::Grant as Statement>::signature_valid(&key, &message, &twisted));
    }

    #[test]
    fn a_non_canonical_s_or_an_undecodable_r_is_refused() {
        let id = signer(6);
        let key = id.signing_public();
        let mut signature = id.sign(b"m");
        // An s of 2^252 or more is beyond the group order: never canonical.
        signature[63] |= 0xf0;
        assert!(!verify(&key, b"m", &signature));
        let mut undecodable = id.sign(b"m");
        undecodable[..32].copy_from_slice(&[0xff; 32]);
        assert!(!verify(&key, b"m", &undecodable));
        assert!(!verify_batch(&[(&key, b"m", &undecodable), (&key, b"m", &id.sign(b"m"))]));
    }
}
