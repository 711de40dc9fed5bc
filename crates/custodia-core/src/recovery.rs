//! Social recovery, the protocol half: what guardians hold, how they are reached, and what recovery signs.
//!
//! A patient splits their master seed ([`crate::shamir`]) and gives one share to each guardian. Every share
//! doubles as a key: [`share_identity`] derives an Ed25519/X25519 identity from the share's bytes, so
//!
//! - the guardian set on the ledger lists one *share mailbox* per guardian (those public keys), which lets a
//!   new device reach the guardians without the ledger learning who they are;
//! - a guardian proves it still holds a valid share by signing with the share's key, without showing the
//!   share ([`MailBody::Proof`]);
//! - a share of a superseded set answers from a mailbox the current set does not list, and is refused.
//!
//! Everything that travels between wallets is a [`RecoveryMail`]: a signed statement bound to its
//! recipient, sealed to the recipient's encryption key, carrying a share only where the statement names
//! its digest. The ledger's mailbox holds these and deletes them once read; shares never enter the log.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::entry::{Digest, EntryKind, EntryNonce, RequestId, SealedBody, SetId, Tag, body_aad};
use crate::keys::{BoxPublicKey, Identity, MasterSeed, SigningPublicKey};
use crate::seal::{self, SealError};
use crate::shamir::{self, SeedShare, ShamirError};
use crate::statement::{self, Statement, StatementError, Unverified, Verified};
use crate::time::Timestamp;

/// The most guardians a patient may name: people hand these to family and friends.
pub const MAX_GUARDIANS: u8 = 10;
/// The fewest: with one, a single share would be the whole seed.
pub const MIN_GUARDIANS: u8 = 2;
/// How long guardians hold shares back after a recovery request unless the patient chooses otherwise.
pub const DEFAULT_WAITING_SECONDS: u64 = 86_400;
/// The longest waiting period: a patient who lost their phone should not wait more than a month.
pub const MAX_WAITING_SECONDS: u64 = 30 * 86_400;
/// Former seeds a rotation carries forward; a wallet rotates once per guardian change or recovery.
pub const MAX_FORMER_SEEDS: usize = 64;
/// The largest sealed mail this module opens; a share offer is under 2 KiB.
pub const MAX_MAIL_BYTES: usize = 8 * 1024;
const MAX_TEXT_CHARS: usize = 200;
/// An access event naming a few resources is well under this; the cap keeps a notice inside one mail.
const MAX_EVENT_BYTES: usize = 6 * 1024;
const MAX_URL_CHARS: usize = 300;

const SHARE_IDENTITY_LABEL: &[u8] = b"custodia/v1/share-identity";
const SHARE_DIGEST_LABEL: &[u8] = b"custodia/v1/share-digest";
const CODE_LABEL: &[u8] = b"custodia/v1/recovery-code";
const MAIL_AAD: &[u8] = b"custodia/v1/recovery-mail";

/// Where a new device reaches one guardian: the public keys of [`share_identity`] for share `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareMailbox {
    pub index: u8,
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
}

/// Checks a guardian set's public shape: 2 <= k <= n <= 16, a waiting period of at most
/// [`MAX_WAITING_SECONDS`], and one mailbox per share, numbered 1..=n in order.
pub fn check_set_shape(
    threshold: u8,
    count: u8,
    waiting_seconds: u64,
    mailboxes: &[ShareMailbox],
) -> Result<(), String> {
    if !(2..=shamir::MAX_SHARES).contains(&count) || !(2..=count).contains(&threshold) {
        return Err(format!("a {threshold}-of-{count} guardian set is not possible"));
    }
    if waiting_seconds > MAX_WAITING_SECONDS {
        return Err(format!("the waiting period may be at most {} days", MAX_WAITING_SECONDS / 86_400));
    }
    if mailboxes.len() != usize::from(count) || mailboxes.iter().zip(1..).any(|(m, i)| m.index != i) {
        return Err(format!("a guardian set of {count} lists mailboxes 1 to {count}, in order"));
    }
    Ok(())
}

/// The threshold the app proposes for `count` guardians: a majority. Any majority can help the patient
/// back in even if the others are unreachable, and no minority, however close, can act alone.
pub fn default_threshold(count: u8) -> u8 {
    (count / 2 + 1).clamp(MIN_GUARDIANS, count.max(MIN_GUARDIANS))
}

/// The identity a share signs and receives with. Derived from the share's whole encoding, so it is
/// different for every share and set, and only a holder of the share can compute it.
pub fn share_identity(share: &SeedShare) -> Identity {
    let encoded = share.encode();
    let mut bytes = Zeroizing::new([0u8; 32]);
    bytes.copy_from_slice(&Sha256::new().chain_update(SHARE_IDENTITY_LABEL).chain_update(&*encoded).finalize());
    Identity::from_seed(&MasterSeed::from_bytes(*bytes))
}

/// The public half of [`share_identity`], as a guardian set lists it.
pub fn share_mailbox(share: &SeedShare) -> ShareMailbox {
    let identity = share_identity(share);
    ShareMailbox { index: share.index(), key: identity.signing_public(), box_key: identity.box_public() }
}

/// Binds a share to the signed statement that carries it, without putting the share in the statement.
pub fn share_digest(share: &SeedShare) -> Digest {
    let encoded = share.encode();
    Digest::from_bytes(Sha256::new().chain_update(SHARE_DIGEST_LABEL).chain_update(&*encoded).finalize().into())
}

/// The six digits a guardian and the patient read to each other: they prove the request the guardian is
/// approving is the one on the patient's new device. Derived from the request id and the device's keys,
/// so a second request (an attacker's) shows other digits.
pub fn verification_code(request_id: &RequestId, device_key: &SigningPublicKey, device_box: &BoxPublicKey) -> String {
    let digest = Sha256::new()
        .chain_update(CODE_LABEL)
        .chain_update(request_id.as_bytes())
        .chain_update(device_key.as_bytes())
        .chain_update(device_box.as_bytes())
        .finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

/// Whether `typed` is `expected`, ignoring spaces and dashes people add or drop; constant time.
pub fn codes_match(expected: &str, typed: &str) -> bool {
    let digits = |s: &str| s.bytes().filter(|b| !matches!(b, b' ' | b'-')).collect::<Vec<u8>>();
    let (a, b) = (digits(expected), digits(typed));
    a.len() == b.len() && bool::from(a.ct_eq(&b))
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars == 0 || chars > max || text.chars().any(char::is_control) || text.trim() != text {
        return Err(format!("{field} must be 1 to {max} characters, without control characters or outer spaces"));
    }
    Ok(())
}

/// Who the guardians of one set are, sealed to the patient alone inside the set's ledger entry: what a
/// recovered wallet needs to re-split to the same people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardianRoster {
    pub patient: SigningPublicKey,
    pub set_id: SetId,
    /// The wallet's name, restored with it.
    pub patient_name: String,
    pub guardians: Vec<RosterGuardian>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterGuardian {
    pub index: u8,
    pub key: SigningPublicKey,
    pub box_key: BoxPublicKey,
    pub name: String,
}

impl Statement for GuardianRoster {
    const PAYLOAD_TYPE: &'static str = "application/vnd.custodia.guardian-roster.v1+json";
    const KIND: &'static str = "guardian roster";

    fn signer(&self) -> &SigningPublicKey {
        &self.patient
    }

    fn validate(&self) -> Result<(), StatementError> {
        let bad = |reason: String| StatementError::invalid::<Self>(reason);
        check_text("the patient's name", &self.patient_name, MAX_TEXT_CHARS).map_err(bad)?;
        if self.guardians.is_empty() || self.guardians.len() > usize::from(shamir::MAX_SHARES) {
            return Err(bad("a roster names 1 to 16 guardians".into()));
        }
        for (g, i) in self.guardians.iter().zip(1u8..) {
            if g.index != i {
                return Err(bad("guardians are listed by share index, 1 upwards".into()));
            }
            check_text("a guardian's name", &g.name, MAX_TEXT_CHARS).map_err(bad)?;
        }
        Ok(())
    }
}

/// What one recovery mail says. Variants that carry a share name its [`share_digest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MailBody {
    /// Patient to guardian: please hold this share (attached).
    ShareOffer {
        ledger: String,
        tag: Tag,
        patient_box: BoxPublicKey,
        patient_name: String,
        set_id: SetId,
        index: u8,
        threshold: u8,
        count: u8,
        waiting_seconds: u64,
        share_digest: Digest,
    },
    /// Guardian (signing with the share's key) to patient: I hold share `index` of `set_id`. `guardian` is
    /// the guardian's own key, so the patient can tell who accepted.
    ShareAccepted { set_id: SetId, index: u8, guardian: SigningPublicKey },
    /// Patient to a share mailbox: prove you still hold the share.
    Challenge { set_id: SetId, nonce: EntryNonce },
    /// Share mailbox to patient: the answer, signed with the share's key.
    Proof { set_id: SetId, index: u8, nonce: EntryNonce },
    /// New device to a share mailbox: a recovery request is on the ledger at `entry_index`.
    RecoveryNotice { patient: SigningPublicKey, request_id: RequestId, entry_index: u64 },
    /// Gateway to a share mailbox: the patient's records were read with their emergency card. `event` is the
    /// gateway's signed access event (DSSE JSON), so the guardian can check it as the patient would.
    BreakGlass { event: String },
    /// Share mailbox to new device: the guardian approved `request_id`; the share follows after the
    /// waiting period.
    RecoveryApproved { patient: SigningPublicKey, request_id: RequestId, set_id: SetId, index: u8 },
    /// Share mailbox to new device: the share (attached), released for `request_id`.
    ShareRelease { patient: SigningPublicKey, request_id: RequestId, set_id: SetId, index: u8, share_digest: Digest },
}

impl MailBody {
    /// The share digest a mail of this kind must carry a share for, if any.
    fn attached(&self) -> Option<(SetId, u8, Digest)> {
        match self {
            MailBody::ShareOffer { set_id, index, share_digest, .. }
            | MailBody::ShareRelease { set_id, index, share_digest, .. } => Some((*set_id, *index, *share_digest)),
            _ => None,
        }
    }
}

/// A signed recovery message from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryMail {
    pub from: SigningPublicKey,
    /// The recipient, so a mail cannot be forwarded to someone else as if sent to them.
    pub to: SigningPublicKey,
    pub at: Timestamp,
    pub body: MailBody,
}

impl Statement for RecoveryMail {
    const PAYLOAD_TYPE: &'static str = "application/vnd.custodia.recovery-mail.v1+json";
    const KIND: &'static str = "recovery message";

    fn signer(&self) -> &SigningPublicKey {
        &self.from
    }

    fn validate(&self) -> Result<(), StatementError> {
        let bad = |reason: String| StatementError::invalid::<Self>(reason);
        if let MailBody::BreakGlass { event } = &self.body
            && event.len() > MAX_EVENT_BYTES
        {
            return Err(bad(format!("an access event in a notice may have at most {MAX_EVENT_BYTES} bytes")));
        }
        if let MailBody::ShareOffer { ledger, patient_name, threshold, count, waiting_seconds, index, .. } = &self.body
        {
            check_text("the ledger's address", ledger, MAX_URL_CHARS).map_err(bad)?;
            check_text("the patient's name", patient_name, MAX_TEXT_CHARS).map_err(bad)?;
            let ok = (2..=shamir::MAX_SHARES).contains(count)
                && (2..=*count).contains(threshold)
                && (1..=*count).contains(index)
                && *waiting_seconds <= MAX_WAITING_SECONDS;
            if !ok {
                return Err(bad("impossible threshold, count, index or waiting period".into()));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("the message does not open with this key: {0}")]
    Seal(#[from] SealError),
    #[error("malformed recovery message: {0}")]
    Malformed(&'static str),
    #[error(transparent)]
    Statement(#[from] StatementError),
    #[error(transparent)]
    Share(#[from] ShamirError),
    #[error("the message is addressed to another key")]
    NotForMe,
    #[error("the attached share is not the one the message's signature covers")]
    ShareMismatch,
}

/// A mail opened and verified: the statement, and the share it carried if its kind carries one.
#[derive(Debug)]
pub struct OpenedMail {
    pub mail: Verified<RecoveryMail>,
    pub share: Option<SeedShare>,
}

/// Signs `body` as `sender`, for `to`, and seals it (with `share` attached) to `to_box`.
pub fn seal_mail(
    sender: &Identity,
    to: &SigningPublicKey,
    to_box: &BoxPublicKey,
    body: MailBody,
    share: Option<&SeedShare>,
    now: Timestamp,
) -> Result<Vec<u8>, MailError> {
    let attached = body.attached();
    match (attached, share) {
        (Some((set_id, index, digest)), Some(s))
            if share_digest(s) == digest && SetId::from_bytes(*s.set_id()) == set_id && s.index() == index => {}
        (None, None) => {}
        _ => return Err(MailError::ShareMismatch),
    }
    let mail = statement::sign(RecoveryMail { from: sender.signing_public(), to: *to, at: now, body }, sender)?;
    let json = mail.to_compact_json();
    let json_len = u32::try_from(json.len()).map_err(|_| MailError::Malformed("too large"))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(4 + json.len() + shamir::ENCODED_LEN));
    plain.extend_from_slice(&json_len.to_be_bytes());
    plain.extend_from_slice(json.as_bytes());
    if let Some(s) = share {
        plain.extend_from_slice(&s.encode());
    }
    Ok(seal::seal(to_box, MAIL_AAD, &plain)?)
}

/// Opens a mail sealed to `me`, verifies its signature and recipient, and checks an attached share
/// against the digest the signature covers.
pub fn open_mail(me: &Identity, sealed: &[u8]) -> Result<OpenedMail, MailError> {
    if sealed.len() > MAX_MAIL_BYTES {
        return Err(MailError::Malformed("too large"));
    }
    let plain = seal::open(me, MAIL_AAD, sealed)?;
    parse_mail(&me.signing_public(), &plain)
}

/// Parses and verifies an opened mail's plaintext (`u32 length ‖ signed statement JSON ‖ share?`) for the
/// recipient `me`.
pub fn parse_mail(me: &SigningPublicKey, plain: &[u8]) -> Result<OpenedMail, MailError> {
    let (len, rest) = plain.split_first_chunk::<4>().ok_or(MailError::Malformed("truncated"))?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| MailError::Malformed("truncated"))?;
    if rest.len() < len {
        return Err(MailError::Malformed("truncated"));
    }
    let (json, attachment) = rest.split_at(len);
    let mail = Unverified::<RecoveryMail>::decode(json)?.verify()?;
    if mail.to != *me {
        return Err(MailError::NotForMe);
    }
    let share = match mail.body.attached() {
        None if attachment.is_empty() => None,
        None => return Err(MailError::Malformed("an attachment this kind of message does not carry")),
        Some((set_id, index, digest)) => {
            let share = SeedShare::decode(attachment)?;
            if share_digest(&share) != digest || SetId::from_bytes(*share.set_id()) != set_id || share.index() != index
            {
                return Err(MailError::ShareMismatch);
            }
            Some(share)
        }
    };
    Ok(OpenedMail { mail, share })
}

/// Seals the seeds a wallet held before a rotation to its new encryption key, as a key rotation's body.
pub fn seal_former_seeds(new_box: &BoxPublicKey, tag: &Tag, seeds: &[&MasterSeed]) -> Result<SealedBody, MailError> {
    if seeds.is_empty() || seeds.len() > MAX_FORMER_SEEDS {
        return Err(MailError::Malformed("a rotation carries 1 to 64 former seeds"));
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(32 * seeds.len()));
    for seed in seeds {
        plain.extend_from_slice(seed.expose_secret());
    }
    Ok(SealedBody(seal::seal_to_many(&[*new_box], &body_aad(EntryKind::KeyRotation, tag), &plain)?))
}

/// Opens a key rotation's body with the rotated-to identity: the seeds held before, newest first.
pub fn open_former_seeds(identity: &Identity, tag: &Tag, body: &SealedBody) -> Result<Vec<MasterSeed>, MailError> {
    let plain = seal::open_from_many(identity, &body_aad(EntryKind::KeyRotation, tag), &body.0)?;
    if plain.is_empty() || plain.len() % 32 != 0 || plain.len() / 32 > MAX_FORMER_SEEDS {
        return Err(MailError::Malformed("a rotation's body is a list of 32-byte seeds"));
    }
    Ok(plain
        .chunks_exact(32)
        .map(|c| {
            let mut seed = Zeroizing::new([0u8; 32]);
            seed.copy_from_slice(c);
            MasterSeed::from_bytes(*seed)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000).unwrap()
    }

    fn copy(share: &SeedShare) -> SeedShare {
        SeedShare::decode(&share.encode()).unwrap()
    }

    #[test]
    fn default_threshold_is_a_majority() {
        let got: Vec<u8> = (2..=10).map(default_threshold).collect();
        assert_eq!(got, [2, 2, 3, 3, 4, 4, 5, 5, 6]);
    }

    #[test]
    fn share_mailboxes_differ_per_share_and_set() {
        let seed = MasterSeed::generate();
        let a = shamir::split(&seed, 2, 3).unwrap();
        let b = shamir::split(&seed, 2, 3).unwrap();
        let keys: Vec<_> = a.iter().chain(&b).map(|s| share_mailbox(s).key).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(!keys[i + 1..].contains(k));
        }
        assert_eq!(share_mailbox(&a[1]), share_mailbox(&copy(&a[1])));
    }

    #[test]
    fn codes_are_six_digits_and_compare_leniently() {
        let device = Identity::from_seed(&MasterSeed::generate());
        let id = RequestId::generate();
        let code = verification_code(&id, &device.signing_public(), &device.box_public());
        assert_eq!(code.len(), 7);
        assert!(codes_match(&code, &code.replace(' ', "")));
        assert!(codes_match(&code, &code.replace(' ', "-")));
        let other = verification_code(&RequestId::generate(), &device.signing_public(), &device.box_public());
        assert!(code == other || !codes_match(&code, &other));
        assert!(!codes_match(&code, ""));
        assert!(!codes_match(&code, &code[..5]));
    }

    #[test]
    fn mail_with_a_share_round_trips_and_binds_the_share() {
        let patient = Identity::from_seed(&MasterSeed::generate());
        let guardian = Identity::from_seed(&MasterSeed::generate());
        let shares = shamir::split(&MasterSeed::generate(), 2, 3).unwrap();
        let body = |s: &SeedShare| MailBody::ShareOffer {
            ledger: "http://127.0.0.1:1".into(),
            tag: patient.ledger_tag(),
            patient_box: patient.box_public(),
            patient_name: "Ana".into(),
            set_id: SetId::from_bytes(*s.set_id()),
            index: s.index(),
            threshold: 2,
            count: 3,
            waiting_seconds: 60,
            share_digest: share_digest(s),
        };
        let sealed = seal_mail(
            &patient,
            &guardian.signing_public(),
            &guardian.box_public(),
            body(&shares[1]),
            Some(&shares[1]),
            now(),
        )
        .unwrap();
        let opened = open_mail(&guardian, &sealed).unwrap();
        assert_eq!(opened.mail.from, patient.signing_public());
        assert_eq!(*opened.share.unwrap().encode(), *shares[1].encode());

        // Another share than the signed digest names is refused by the sender...
        let wrong = seal_mail(
            &patient,
            &guardian.signing_public(),
            &guardian.box_public(),
            body(&shares[1]),
            Some(&shares[2]),
            now(),
        );
        assert_eq!(wrong.unwrap_err(), MailError::ShareMismatch);
        // ...and a mail opened by someone it was not sealed to does not open.
        let stranger = Identity::from_seed(&MasterSeed::generate());
        assert!(matches!(open_mail(&stranger, &sealed), Err(MailError::Seal(_))));
        // Sealed to the right box but addressed to another key: refused.
        let misaddressed = seal_mail(
            &patient,
            &stranger.signing_public(),
            &guardian.box_public(),
            body(&shares[0]),
            Some(&shares[0]),
            now(),
        )
        .unwrap();
        assert_eq!(open_mail(&guardian, &misaddressed).unwrap_err(), MailError::NotForMe);
    }

    #[test]
    fn former_seeds_open_only_with_the_new_key() {
        let old = MasterSeed::generate();
        let older = MasterSeed::generate();
        let new = Identity::from_seed(&MasterSeed::generate());
        let tag = new.ledger_tag();
        let body = seal_former_seeds(&new.box_public(), &tag, &[&old, &older]).unwrap();
        let back = open_former_seeds(&new, &tag, &body).unwrap();
        assert_eq!(back[0].expose_secret(), old.expose_secret());
        assert_eq!(back[1].expose_secret(), older.expose_secret());
        let stranger = Identity::from_seed(&old);
        assert!(open_former_seeds(&stranger, &tag, &body).is_err());
    }

    proptest::proptest! {
        #[test]
        fn open_mail_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let me = Identity::from_seed(&MasterSeed::from_bytes([7; 32]));
            let _ = open_mail(&me, &bytes);
        }
    }
}
