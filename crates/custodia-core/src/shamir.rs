//! Shamir k-of-n splitting of the master seed, so a patient can recover a lost wallet from trusted people.
//!
//! Splitting is blahaj's byte-wise Shamir over GF(256): any `threshold` shares give back the seed, fewer give
//! nothing about it. On top of that each [`SeedShare`] carries what recovery needs to explain a failure to a
//! person rather than silently produce a wrong wallet: a random set id (shares of different splits are not
//! mixed), the threshold and count, its own index, a commitment to the secret (the recombined seed is checked
//! against it) and a checksum (a mistyped or damaged share is named before any recombining).
//!
//! # Binary form (88 bytes, version 1)
//!
//! | bytes | field |
//! |-------|-------|
//! | 1     | format version, `1` |
//! | 16    | set id, random, the same in every share of one split |
//! | 1     | threshold k |
//! | 1     | count n |
//! | 1     | index, 1..=n (the x coordinate) |
//! | 32    | commitment: SHA-256(`custodia/v1/shamir-commitment` ‖ set id ‖ seed) |
//! | 32    | y, the share's secret value |
//! | 4     | checksum: first 4 bytes of SHA-256(`custodia/v1/shamir-checksum` ‖ all bytes above) |
//!
//! # Text form
//!
//! `custodia-share1:` followed by the binary form in RFC 4648 base32 without padding (141 characters). Base32
//! rather than base64 because shares get printed on paper and typed back: it has one case and no look-alike
//! pairs that differ only in case. Reading is lenient about what people do to long strings: case is ignored,
//! and spaces, line breaks and `-` inside the base32 part are skipped, so a printout may group it. Upper-cased
//! as a whole, the text uses only QR alphanumeric characters.

use std::fmt;

use blahaj::{Share, Sharks};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::keys::MasterSeed;

/// The most shares one split may have; people hand these to friends and family, not to hundreds.
pub const MAX_SHARES: u8 = 16;
/// Fewer than two would make a single share the whole seed.
const MIN_THRESHOLD: u8 = 2;

const VERSION: u8 = 1;
const COMMITMENT_LABEL: &[u8] = b"custodia/v1/shamir-commitment";
const CHECKSUM_LABEL: &[u8] = b"custodia/v1/shamir-checksum";
const TEXT_TAG: &str = "custodia-share";

const SET_ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;

// Offsets into the binary form.
const SET_ID_AT: usize = 1;
const THRESHOLD_AT: usize = SET_ID_AT + SET_ID_LEN;
const COUNT_AT: usize = THRESHOLD_AT + 1;
const INDEX_AT: usize = COUNT_AT + 1;
const COMMITMENT_AT: usize = INDEX_AT + 1;
const Y_AT: usize = COMMITMENT_AT + 32;
const CHECKSUM_AT: usize = Y_AT + SECRET_LEN;

/// Length of a share's binary form; the decoder accepts nothing else.
pub const ENCODED_LEN: usize = CHECKSUM_AT + CHECKSUM_LEN;
const BAD_PREFIX: ShamirError = ShamirError::Malformed("does not start with custodia-share1:");
/// Room for the text form with generous whitespace; longer input is refused before any work is done on it.
const MAX_TEXT_LEN: usize = 512;

/// Why a split or a recovery failed. Variants name the share at fault so the wallet can say which paper is
/// wrong; none carries secret bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    #[error("a {threshold}-of-{count} split is not possible: need 2 <= threshold <= count <= 16")]
    BadParameters { threshold: u8, count: u8 },
    #[error("not a Custodia recovery share: {0}")]
    Malformed(&'static str),
    #[error("recovery share format {0} is not known to this version of Custodia")]
    UnknownVersion(u8),
    /// The checksum failed. `index` is as written in the share, which may itself be the damaged byte.
    #[error("share {index} is damaged or was copied wrongly (its checksum does not match)")]
    Corrupted { index: u8 },
    #[error("share {index} belongs to a different set of recovery shares")]
    ForeignShare { index: u8 },
    #[error("share {index} was given more than once")]
    DuplicateShare { index: u8 },
    #[error("share {index} disagrees with the others about the threshold, count or commitment")]
    Inconsistent { index: u8 },
    #[error("{have} shares given but {need} are needed")]
    NotEnoughShares { have: usize, need: u8 },
    #[error("share {index} is wrong: the others recombine to the expected seed without it")]
    WrongShare { index: u8 },
    #[error("the shares do not recombine to the expected seed; at least one of them is wrong")]
    CommitmentMismatch,
}

/// One share of a split master seed. Its `y` value is secret: zeroized on drop, never printed, not `Clone`.
pub struct SeedShare {
    version: u8,
    set_id: [u8; SET_ID_LEN],
    threshold: u8,
    count: u8,
    index: u8,
    commitment: [u8; 32],
    y: Zeroizing<[u8; SECRET_LEN]>,
}

/// Splits `seed` into `count` shares of which any `threshold` recover it.
pub fn split(seed: &MasterSeed, threshold: u8, count: u8) -> Result<Vec<SeedShare>, ShamirError> {
    if !(MIN_THRESHOLD..=MAX_SHARES).contains(&count) || !(MIN_THRESHOLD..=count).contains(&threshold) {
        return Err(ShamirError::BadParameters { threshold, count });
    }
    let set_id = crate::random::array();
    let commitment = commit(&set_id, seed.expose_secret());
    let shares = Sharks(threshold)
        .dealer(seed.expose_secret())
        .take(usize::from(count))
        .map(|point| {
            let bytes = Zeroizing::new(Vec::<u8>::from(&point));
            let mut y = Zeroizing::new([0u8; SECRET_LEN]);
            // blahaj evaluates one polynomial per secret byte, so a point is x then exactly 32 y bytes, and the
            // dealer's x runs 1, 2, 3...: the share's index.
            y.copy_from_slice(&bytes[1..]);
            SeedShare { version: VERSION, set_id, threshold, count, index: bytes[0], commitment, y }
        })
        .collect();
    Ok(shares)
}

/// Recombines shares into the master seed, checking it against the shares' commitment.
///
/// Shares are checked before recombining, and every failure names the share at fault where one can be named:
/// a share of another split, a repeated index, a share that disagrees about the parameters. If the recombined
/// seed does not match the commitment and more than `threshold` shares were given, each share is left out in
/// turn; the one whose absence makes the rest match is reported as [`ShamirError::WrongShare`]. With exactly
/// `threshold` shares, or two or more wrong ones, there is no telling which is wrong:
/// [`ShamirError::CommitmentMismatch`].
pub fn recover(shares: &[SeedShare]) -> Result<MasterSeed, ShamirError> {
    let Some(first) = shares.first() else {
        // With no share there is no threshold to report; two is the least any split needs.
        return Err(ShamirError::NotEnoughShares { have: 0, need: MIN_THRESHOLD });
    };
    if let Some(index) = odd_one_out(shares, |s| s.set_id) {
        return Err(ShamirError::ForeignShare { index });
    }
    if let Some(index) = odd_one_out(shares, |s| (s.version, s.threshold, s.count, s.commitment)) {
        return Err(ShamirError::Inconsistent { index });
    }
    let mut seen = [false; 256];
    for share in shares {
        let slot = &mut seen[usize::from(share.index)];
        if *slot {
            return Err(ShamirError::DuplicateShare { index: share.index });
        }
        *slot = true;
    }
    // Indices are now distinct and (checked by the decoder) at most `count` <= 16, so `shares` is short.
    let need = first.threshold;
    if shares.len() < usize::from(need) {
        return Err(ShamirError::NotEnoughShares { have: shares.len(), need });
    }

    let all: Vec<&SeedShare> = shares.iter().collect();
    if let Some(seed) = combine(&all, first) {
        return Ok(seed);
    }
    if shares.len() > usize::from(need) {
        for left_out in shares {
            let rest: Vec<&SeedShare> = shares.iter().filter(|s| s.index != left_out.index).collect();
            if combine(&rest, first).is_some() {
                return Err(ShamirError::WrongShare { index: left_out.index });
            }
        }
    }
    Err(ShamirError::CommitmentMismatch)
}

/// Interpolates `shares` and returns the seed if it matches `reference`'s commitment.
fn combine(shares: &[&SeedShare], reference: &SeedShare) -> Option<MasterSeed> {
    let points: Vec<Share> = shares
        .iter()
        .filter_map(|s| {
            let mut point = Zeroizing::new([0u8; 1 + SECRET_LEN]);
            point[0] = s.index;
            point[1..].copy_from_slice(s.y.as_ref());
            // blahaj's `Share` zeroizes itself on drop.
            Share::try_from(&point[..]).ok()
        })
        .collect();
    // blahaj only refuses fewer distinct points than the threshold, which `recover` has already ruled out.
    let secret = Zeroizing::new(Sharks(reference.threshold).recover(&points).ok()?);
    if secret.len() != SECRET_LEN {
        return None;
    }
    let mut seed = Zeroizing::new([0u8; SECRET_LEN]);
    seed.copy_from_slice(&secret);
    let matches: bool = commit(&reference.set_id, &seed).ct_eq(&reference.commitment).into();
    matches.then(|| MasterSeed::from_bytes(*seed))
}

/// The index of the first share whose `key` differs from the majority's (or, with no majority, the first
/// share's), so that one stray share among good ones is the one named.
fn odd_one_out<K: PartialEq>(shares: &[SeedShare], key: impl Fn(&SeedShare) -> K) -> Option<u8> {
    // Boyer-Moore majority vote: linear, however many shares a caller passes.
    let mut candidate: Option<(K, usize)> = None;
    for share in shares {
        let k = key(share);
        candidate = match candidate {
            Some((c, n)) if c == k => Some((c, n + 1)),
            Some((c, n)) if n > 1 => Some((c, n - 1)),
            Some(_) | None => Some((k, 1)),
        };
    }
    let majority = candidate
        .map(|(c, _)| c)
        .filter(|c| shares.iter().filter(|s| key(s) == *c).count() * 2 > shares.len())
        .or_else(|| shares.first().map(&key))?;
    shares.iter().find(|s| key(s) != majority).map(|s| s.index)
}

fn commit(set_id: &[u8; SET_ID_LEN], secret: &[u8; SECRET_LEN]) -> [u8; 32] {
    Sha256::new().chain_update(COMMITMENT_LABEL).chain_update(set_id).chain_update(secret).finalize().into()
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new().chain_update(CHECKSUM_LABEL).chain_update(body).finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

impl SeedShare {
    /// The binary form described in the module docs. It contains the secret `y`, hence `Zeroizing`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        // Reserved up front so no reallocation leaves a copy of `y` behind.
        let mut out = Zeroizing::new(Vec::with_capacity(ENCODED_LEN));
        out.push(self.version);
        out.extend_from_slice(&self.set_id);
        out.extend_from_slice(&[self.threshold, self.count, self.index]);
        out.extend_from_slice(&self.commitment);
        out.extend_from_slice(self.y.as_ref());
        let sum = checksum(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses the binary form. Accepts exactly [`ENCODED_LEN`] bytes of version 1 with a valid checksum and
    /// possible parameters (2 <= k <= n <= 16, 1 <= index <= n).
    pub fn decode(bytes: &[u8]) -> Result<Self, ShamirError> {
        let Some(&version) = bytes.first() else {
            return Err(ShamirError::Malformed("empty"));
        };
        if version != VERSION {
            return Err(ShamirError::UnknownVersion(version));
        }
        let Ok(bytes) = <&[u8; ENCODED_LEN]>::try_from(bytes) else {
            return Err(ShamirError::Malformed("wrong length"));
        };
        let (body, sum) = bytes.split_at(CHECKSUM_AT);
        let index = bytes[INDEX_AT];
        if checksum(body) != sum {
            return Err(ShamirError::Corrupted { index });
        }
        let (threshold, count) = (bytes[THRESHOLD_AT], bytes[COUNT_AT]);
        if !(MIN_THRESHOLD..=MAX_SHARES).contains(&count)
            || !(MIN_THRESHOLD..=count).contains(&threshold)
            || !(1..=count).contains(&index)
        {
            return Err(ShamirError::Malformed("impossible threshold, count or index"));
        }
        let mut set_id = [0u8; SET_ID_LEN];
        set_id.copy_from_slice(&bytes[SET_ID_AT..THRESHOLD_AT]);
        let mut commitment = [0u8; 32];
        commitment.copy_from_slice(&bytes[COMMITMENT_AT..Y_AT]);
        let mut y = Zeroizing::new([0u8; SECRET_LEN]);
        y.copy_from_slice(&bytes[Y_AT..CHECKSUM_AT]);
        Ok(Self { version, set_id, threshold, count, index, commitment, y })
    }

    /// The printable form: `custodia-share1:` and upper-case base32 of [`encode`](Self::encode).
    pub fn to_text(&self) -> Zeroizing<String> {
        let encoded = self.encode();
        let mut out = Zeroizing::new(String::with_capacity(TEXT_TAG.len() + 2 + (ENCODED_LEN * 8).div_ceil(5)));
        out.push_str(TEXT_TAG);
        out.push_str("1:");
        data_encoding::BASE32_NOPAD.encode_append(&encoded, &mut out);
        out
    }

    /// Parses the printable form, ignoring case, surrounding whitespace, and whitespace or `-` in the base32.
    pub fn from_text(text: &str) -> Result<Self, ShamirError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ShamirError::Malformed("too long"));
        }
        let (head, body) = text.trim().split_once(':').ok_or(BAD_PREFIX)?;
        let tag = head.get(..TEXT_TAG.len()).filter(|t| t.eq_ignore_ascii_case(TEXT_TAG));
        let version = tag.and_then(|_| head.get(TEXT_TAG.len()..)).ok_or(BAD_PREFIX)?;
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BAD_PREFIX);
        }
        match version.parse::<u8>() {
            Ok(VERSION) => {}
            Ok(other) => return Err(ShamirError::UnknownVersion(other)),
            Err(_) => return Err(ShamirError::Malformed("unknown version")),
        }
        let mut compact = Zeroizing::new(Vec::with_capacity(body.len()));
        compact.extend(body.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'-').map(|b| b.to_ascii_uppercase()));
        let bytes = Zeroizing::new(
            data_encoding::BASE32_NOPAD.decode(&compact).map_err(|_| ShamirError::Malformed("not base32"))?,
        );
        Self::decode(&bytes)
    }

    pub fn version(&self) -> u8 {
        self.version
    }

    /// Random, and the same for every share of one split.
    pub fn set_id(&self) -> &[u8; SET_ID_LEN] {
        &self.set_id
    }

    /// How many shares recovery needs (k).
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// How many shares the split made (n).
    pub fn count(&self) -> u8 {
        self.count
    }

    /// This share's number, 1..=count; what the wallet shows ("share 2 of 5").
    pub fn index(&self) -> u8 {
        self.index
    }

    /// SHA-256 over the commitment label, the set id and the seed.
    pub fn commitment(&self) -> &[u8; 32] {
        &self.commitment
    }
}

impl fmt::Debug for SeedShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedShare")
            .field("set_id", &data_encoding::HEXLOWER.encode(&self.set_id))
            .field("threshold", &self.threshold)
            .field("count", &self.count)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> MasterSeed {
        MasterSeed::from_bytes(*b"custodia test seed, 32 bytes!!!!")
    }

    /// `SeedShare` is deliberately not `Clone`; tests copy through the binary form.
    fn copy(share: &SeedShare) -> SeedShare {
        SeedShare::decode(&share.encode()).unwrap()
    }

    fn pick(shares: &[SeedShare], indices: &[u8]) -> Vec<SeedShare> {
        indices.iter().map(|&i| copy(&shares[usize::from(i) - 1])).collect()
    }

    #[test]
    fn every_subset_of_three_of_five() {
        let shares = split(&seed(), 3, 5).unwrap();
        assert_eq!(shares.iter().map(SeedShare::index).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(shares.iter().all(|s| s.set_id() == shares[0].set_id() && s.commitment() == shares[0].commitment()));
        for mask in 1u32..32 {
            let subset: Vec<SeedShare> =
                shares.iter().filter(|s| mask & (1 << (s.index() - 1)) != 0).map(copy).collect();
            match recover(&subset) {
                Ok(got) => {
                    assert!(subset.len() >= 3);
                    assert_eq!(got.expose_secret(), seed().expose_secret());
                }
                Err(e) => assert_eq!(e, ShamirError::NotEnoughShares { have: subset.len(), need: 3 }),
            }
        }
    }

    #[test]
    fn extreme_parameters_work() {
        for (k, n) in [(2, 2), (2, MAX_SHARES), (MAX_SHARES, MAX_SHARES)] {
            let shares = split(&seed(), k, n).unwrap();
            assert_eq!(shares.len(), usize::from(n));
            let got = recover(&shares[usize::from(n - k)..]).unwrap();
            assert_eq!(got.expose_secret(), seed().expose_secret());
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        for (k, n) in [(0, 0), (1, 1), (1, 3), (3, 2), (2, 17), (17, 17), (255, 255)] {
            assert_eq!(split(&seed(), k, n).unwrap_err(), ShamirError::BadParameters { threshold: k, count: n });
        }
    }

    #[test]
    fn each_split_has_a_fresh_set_id() {
        let a = split(&seed(), 2, 3).unwrap();
        let b = split(&seed(), 2, 3).unwrap();
        assert_ne!(a[0].set_id(), b[0].set_id());
        assert_ne!(a[0].commitment(), b[0].commitment());
    }

    #[test]
    fn foreign_share_is_named() {
        let a = split(&seed(), 2, 3).unwrap();
        let b = split(&seed(), 2, 3).unwrap();
        let mixed = vec![copy(&a[0]), copy(&a[1]), copy(&b[2])];
        assert_eq!(recover(&mixed).unwrap_err(), ShamirError::ForeignShare { index: 3 });
        // The stray share is named even when it comes first.
        let mixed = vec![copy(&b[0]), copy(&a[1]), copy(&a[2])];
        assert_eq!(recover(&mixed).unwrap_err(), ShamirError::ForeignShare { index: 1 });
    }

    #[test]
    fn duplicate_share_is_named() {
        let shares = split(&seed(), 2, 3).unwrap();
        let twice = pick(&shares, &[2, 1, 2]);
        assert_eq!(recover(&twice).unwrap_err(), ShamirError::DuplicateShare { index: 2 });
    }

    #[test]
    fn inconsistent_share_is_named() {
        let shares = split(&seed(), 2, 4).unwrap();
        let mut odd = pick(&shares, &[1, 2, 3]);
        odd[1].threshold = 3;
        let odd = odd.iter().map(copy).collect::<Vec<_>>();
        assert_eq!(recover(&odd).unwrap_err(), ShamirError::Inconsistent { index: 2 });
    }

    #[test]
    fn not_enough_shares() {
        let shares = split(&seed(), 3, 5).unwrap();
        assert_eq!(recover(&pick(&shares, &[4, 1])).unwrap_err(), ShamirError::NotEnoughShares { have: 2, need: 3 });
        assert_eq!(recover(&[]).unwrap_err(), ShamirError::NotEnoughShares { have: 0, need: 2 });
    }

    #[test]
    fn wrong_share_is_found_with_a_spare() {
        let shares = split(&seed(), 3, 5).unwrap();
        let mut given = pick(&shares, &[1, 2, 4, 5]);
        // A share whose checksum is valid but whose y is not on the polynomial.
        given[1].y[7] ^= 0x40;
        let given: Vec<SeedShare> = given.iter().map(copy).collect();
        assert_eq!(recover(&given).unwrap_err(), ShamirError::WrongShare { index: 2 });
        // With exactly k shares there is no way to tell which one is wrong.
        assert_eq!(recover(&given[..3]).unwrap_err(), ShamirError::CommitmentMismatch);
        // Without it, the rest are fine.
        let good: Vec<SeedShare> = given.iter().filter(|s| s.index() != 2).map(copy).collect();
        assert_eq!(recover(&good).unwrap().expose_secret(), seed().expose_secret());
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let shares = split(&seed(), 3, 5).unwrap();
        let share = &shares[3];
        let good = share.encode();
        for at in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.to_vec();
                bad[at] ^= flip;
                match SeedShare::decode(&bad) {
                    Err(ShamirError::UnknownVersion(_)) => assert_eq!(at, 0),
                    Err(ShamirError::Corrupted { index }) => assert!(at == INDEX_AT || index == share.index()),
                    Err(ShamirError::Malformed(_)) => {}
                    other => panic!("byte {at} ^ {flip:#x} gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn truncated_or_padded_input_is_malformed() {
        let shares = split(&seed(), 2, 2).unwrap();
        let good = shares[0].encode();
        assert_eq!(SeedShare::decode(&[]).unwrap_err(), ShamirError::Malformed("empty"));
        for len in 1..good.len() {
            assert_eq!(SeedShare::decode(&good[..len]).unwrap_err(), ShamirError::Malformed("wrong length"));
        }
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(SeedShare::decode(&long).unwrap_err(), ShamirError::Malformed("wrong length"));
        assert_eq!(SeedShare::decode(&[2, 0, 0]).unwrap_err(), ShamirError::UnknownVersion(2));
    }

    #[test]
    fn text_form_is_lenient_about_layout_only() {
        let shares = split(&seed(), 2, 3).unwrap();
        let text = shares[2].to_text();
        assert!(text.starts_with("custodia-share1:"));
        assert!(text.to_ascii_uppercase().bytes().all(|b| b.is_ascii_alphanumeric() || b"-:".contains(&b)));
        let body = &text["custodia-share1:".len()..];
        let grouped: Vec<&str> = body.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let messy = format!("  CUSTODIA-SHARE1:{}\n", grouped.join("- ").to_lowercase());
        assert_eq!(*SeedShare::from_text(&messy).unwrap().encode(), *shares[2].encode());

        assert_eq!(SeedShare::from_text("custodia-share2:AAAA").unwrap_err(), ShamirError::UnknownVersion(2));
        assert!(matches!(SeedShare::from_text("share1:AAAA"), Err(ShamirError::Malformed(_))));
        assert!(matches!(SeedShare::from_text("custodia-share1:AAA!"), Err(ShamirError::Malformed(_))));
        assert!(matches!(SeedShare::from_text(&"A".repeat(10_000)), Err(ShamirError::Malformed("too long"))));
        // A typo in the base32 is caught by the checksum (or is not even base32).
        let mut typo = text.to_string().into_bytes();
        let at = typo.len() / 2;
        typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
        assert!(matches!(
            SeedShare::from_text(std::str::from_utf8(&typo).unwrap()),
            Err(ShamirError::Corrupted { .. } | ShamirError::Malformed(_))
        ));
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shares = split(&seed(), 2, 2).unwrap();
        let shown = format!("{:?}", shares[0]);
        assert!(shown.contains("index: 1"));
        assert!(!shown.contains(&data_encoding::HEXLOWER.encode(shares[0].y.as_ref())));
        assert!(!shown.contains(&format!("{:?}", shares[0].y.as_ref())));
    }

    proptest::prop_compose! {
        fn any_share()(count in MIN_THRESHOLD..=MAX_SHARES)
            (threshold in MIN_THRESHOLD..=count, index in 1..=count, count in proptest::strategy::Just(count),
             set_id in proptest::prelude::any::<[u8; 16]>(), commitment in proptest::prelude::any::<[u8; 32]>(),
             y in proptest::prelude::any::<[u8; 32]>()) -> SeedShare {
            SeedShare { version: VERSION, set_id, threshold, count, index, commitment, y: Zeroizing::new(y) }
        }
    }

    proptest::proptest! {
        #[test]
        fn binary_form_round_trips(share in any_share()) {
            let bytes = share.encode();
            proptest::prop_assert_eq!(bytes.len(), ENCODED_LEN);
            let back = SeedShare::decode(&bytes).unwrap();
            proptest::prop_assert_eq!(&*back.encode(), &*bytes);
            proptest::prop_assert_eq!(back.index(), share.index());
        }

        #[test]
        fn text_form_round_trips(share in any_share()) {
            let text = share.to_text();
            let back = SeedShare::from_text(&text).unwrap();
            proptest::prop_assert_eq!(&*back.encode(), &*share.encode());
            let back = SeedShare::from_text(&text.to_lowercase()).unwrap();
            proptest::prop_assert_eq!(&*back.encode(), &*share.encode());
        }

        /// Any k of n shares, in any order, give back the seed; any k - 1 fail with "need k"; k shares of
        /// which one comes from another split of the same seed fail, naming that share.
        #[test]
        fn any_k_recover_and_fewer_or_mixed_fail(
            count in MIN_THRESHOLD..=10u8,
            k_pick in 0u8..=255,
            order in proptest::collection::vec(proptest::num::u8::ANY, 16),
            secret in proptest::prelude::any::<[u8; 32]>(),
        ) {
            let threshold = MIN_THRESHOLD + k_pick % (count - MIN_THRESHOLD + 1);
            let seed = MasterSeed::from_bytes(secret);
            let shares = split(&seed, threshold, count).unwrap();
            // A permutation of 1..=count driven by `order`.
            let mut indices: Vec<u8> = (1..=count).collect();
            for (i, r) in order.iter().enumerate().take(usize::from(count)) {
                indices.swap(i, usize::from(*r) % usize::from(count));
            }
            let k = usize::from(threshold);
            let chosen = pick(&shares, &indices[..k]);
            let recovered = recover(&chosen).unwrap();
            proptest::prop_assert_eq!(recovered.expose_secret(), &secret);
            let fewer = pick(&shares, &indices[..k - 1]);
            proptest::prop_assert_eq!(
                recover(&fewer).unwrap_err(),
                ShamirError::NotEnoughShares { have: k - 1, need: threshold }
            );
            let other = split(&seed, threshold, count).unwrap();
            let mut mixed = pick(&shares, &indices[..k]);
            let stray = indices[k - 1];
            mixed[k - 1] = copy(&other[usize::from(stray) - 1]);
            // With two shares neither set is a majority; the later one is named then too.
            proptest::prop_assert_eq!(recover(&mixed).unwrap_err(), ShamirError::ForeignShare { index: stray });
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = SeedShare::decode(&bytes);
        }

        #[test]
        fn from_text_never_panics(text in "\\PC{0,200}") {
            let _ = SeedShare::from_text(&text);
            let _ = SeedShare::from_text(&format!("custodia-share1:{text}"));
        }
    }
}
