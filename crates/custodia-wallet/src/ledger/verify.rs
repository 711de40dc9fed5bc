//! The checks a client makes on what a ledger tells it, as pure functions of the answer (no network):
//! checkpoints extend the last one accepted, proofs lead to the checkpoint's root, leaves commit to the
//! envelopes served with them, envelopes are signed by who they say, members were enrolled by the
//! network authority, and a patient's entries say what a patient's entries may say.

use custodia_core::entry::{
    AccessEvent, Content, EntryKind, LEAF_LEN, Leaf, LedgerEntry, RequestId, Role, SetId, Tag, open_statement,
    statement_digest,
};
use custodia_core::grant::{Grant, Revocation, VerifiedGrant, VerifiedRevocation};
use custodia_core::keys::BoxPublicKey;
use custodia_core::ledger_api::{MemberInfo, TagEntry};
use custodia_core::recovery::{GuardianRoster, ShareMailbox};
use custodia_core::statement::{Unverified, Verified};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, SigningPublicKey};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::NoteVerifier;
use custodia_log::{Hash, leaf_hash};

use super::LedgerError;

/// The longest proof a tree of 2^64 leaves needs is 64 hashes (65 for consistency); more is not a proof.
const MAX_PROOF_HASHES: usize = 65;

/// The last checkpoint a client accepted: every later one must extend it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note, as the ledger served it.
    pub note: String,
}

impl TrustedCheckpoint {
    pub fn new(checkpoint: &Checkpoint, note: &str) -> Self {
        Self { size: checkpoint.size, root: checkpoint.root, note: note.to_owned() }
    }
}

/// Opens a checkpoint note with the ledger's key (the origin must be the key's name).
pub fn open_checkpoint(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, LedgerError> {
    Checkpoint::open(note, verifier)
        .map(|(checkpoint, _)| checkpoint)
        .map_err(|source| LedgerError::BadCheckpoint { key_name: verifier.name().to_owned(), source })
}

fn forked(old: &TrustedCheckpoint, new: &Checkpoint, reason: impl Into<String>) -> LedgerError {
    LedgerError::Forked {
        old_size: old.size,
        old_root: old.root.to_base64(),
        new_size: new.size,
        new_root: new.root.to_base64(),
        reason: reason.into(),
    }
}

/// Checks that `new` extends `old`. A smaller tree, the same size with another root, or a consistency
/// proof that fails is [`LedgerError::Forked`]. `fetch_proof(old_size, new_size)` is called only when
/// the tree grew; an error it returns (the ledger could not be asked) is passed on as it is.
pub fn check_extends(
    old: Option<&TrustedCheckpoint>,
    new: &Checkpoint,
    fetch_proof: impl FnOnce(u64, u64) -> Result<Vec<Hash>, LedgerError>,
) -> Result<(), LedgerError> {
    let Some(old) = old else { return Ok(()) };
    if new.size < old.size {
        return Err(forked(old, new, "the new checkpoint has fewer entries than one it signed before"));
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(forked(old, new, "two checkpoints of the same size have different roots"));
        }
        return Ok(());
    }
    if old.size == 0 {
        // Every tree extends the empty one; there is no proof to ask for.
        return Ok(());
    }
    let proof = fetch_proof(old.size, new.size)?;
    custodia_log::proof::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .map_err(|e| forked(old, new, format!("the consistency proof fails: {e}")))
}

/// Decodes a list of base64 hashes (a proof), capped at the longest proof there can be.
pub fn decode_hashes(hashes: &[String], what: &str) -> Result<Vec<Hash>, String> {
    if hashes.len() > MAX_PROOF_HASHES {
        return Err(format!("the {what} has {} hashes, more than any proof needs", hashes.len()));
    }
    hashes
        .iter()
        .map(|h| Hash::from_base64(h).map_err(|_| format!("the {what} holds a hash that is not base64")))
        .collect()
}

/// Decodes a base64 leaf: the 42 bytes the Merkle tree commits to.
pub fn decode_leaf(text: &str) -> Result<([u8; LEAF_LEN], Leaf), String> {
    let bytes = data_encoding::BASE64.decode(text.as_bytes()).map_err(|_| "the leaf is not base64".to_owned())?;
    let bytes: [u8; LEAF_LEN] =
        bytes.try_into().map_err(|b: Vec<u8>| format!("the leaf is {} bytes, not {LEAF_LEN}", b.len()))?;
    let leaf = Leaf::parse(&bytes).map_err(|e| format!("the leaf does not parse: {e}"))?;
    Ok((bytes, leaf))
}

/// Checks that `leaf` is entry `index` of the tree of `size` leaves with root `root`, by its inclusion
/// proof.
pub fn check_inclusion(
    index: u64,
    leaf: &[u8; LEAF_LEN],
    proof: &[String],
    size: u64,
    root: &Hash,
) -> Result<(), LedgerError> {
    let bad = |reason: String| LedgerError::BadEntry { index, reason };
    let proof = decode_hashes(proof, "inclusion proof").map_err(bad)?;
    custodia_log::proof::verify_inclusion(&leaf_hash(leaf), index, size, &proof, root)
        .map_err(|e| bad(format!("its inclusion proof against the checkpoint of size {size} fails: {e}")))
}

/// Checks an append receipt for `envelope` (the entry as submitted): the leaf is of the entry's kind,
/// commits to the entry's canonical form, and is in the tree `checkpoint` signs at the receipt's index.
pub fn check_receipt(
    envelope: &Verified<LedgerEntry>,
    index: u64,
    leaf: &str,
    inclusion: &[String],
    checkpoint: &Checkpoint,
) -> Result<Leaf, LedgerError> {
    let bad = |reason: String| LedgerError::BadEntry { index, reason };
    let (bytes, parsed) = decode_leaf(leaf).map_err(bad)?;
    if parsed.kind != envelope.content.kind() {
        return Err(bad(format!(
            "the receipt's leaf is a {} entry, not a {}",
            parsed.kind.as_str(),
            envelope.content.kind().as_str()
        )));
    }
    if !parsed.commits_to(canonical(envelope).as_bytes()) {
        return Err(bad("the receipt's leaf does not commit to the entry that was posted".into()));
    }
    check_inclusion(index, &bytes, inclusion, checkpoint.size, &checkpoint.root)?;
    Ok(parsed)
}

/// The canonical form of an entry envelope, which the ledger stores and the leaf commits to.
pub fn canonical(envelope: &Verified<LedgerEntry>) -> String {
    let e = envelope.envelope();
    // A verified statement always carries the signature that verified.
    let sig = e.signatures.first().map(|s| s.sig).unwrap_or([0; 64]);
    custodia_core::entry::canonical_envelope(&e.payload, &sig)
}

/// One entry as served from a patient's tag, with its proof checked.
#[derive(Clone, Debug)]
pub struct LoggedEntry {
    pub index: u64,
    pub leaf: Leaf,
    /// The signed entry, or `None` when the patient has redacted its body (only the leaf remains).
    pub entry: Option<Verified<LedgerEntry>>,
}

/// Checks one served entry against the checkpoint it came with: the leaf is in the tree, it is of the
/// kind the ledger says, it commits to the envelope's exact bytes, the envelope is a ledger entry of that
/// kind, and its signature is by the signer it names.
pub fn check_tag_entry(served: &TagEntry, checkpoint: &Checkpoint) -> Result<LoggedEntry, LedgerError> {
    let index = served.index;
    let bad = |reason: String| LedgerError::BadEntry { index, reason };
    let (bytes, leaf) = decode_leaf(&served.leaf).map_err(bad)?;
    check_inclusion(index, &bytes, &served.inclusion, checkpoint.size, &checkpoint.root)?;
    if leaf.kind != served.kind {
        return Err(bad(format!(
            "the ledger says it is a {} entry but its leaf says {}",
            served.kind.as_str(),
            leaf.kind.as_str()
        )));
    }
    let Some(raw) = &served.envelope else {
        return Ok(LoggedEntry { index, leaf, entry: None });
    };
    let envelope = raw.get().as_bytes();
    if !leaf.commits_to(envelope) {
        return Err(bad("its leaf does not commit to the envelope served with it".into()));
    }
    let entry = Unverified::<LedgerEntry>::decode(envelope)
        .and_then(Unverified::verify)
        .map_err(|e| bad(format!("its envelope does not verify: {e}")))?;
    if entry.content.kind() != leaf.kind {
        return Err(bad(format!(
            "its leaf says {} but the entry is a {}",
            leaf.kind.as_str(),
            entry.content.kind().as_str()
        )));
    }
    Ok(LoggedEntry { index, leaf, entry: Some(entry) })
}

pub use custodia_core::entry::Member;

/// Checks a member record: it is for `key`, its envelope is an enrollment of `key` signed by the
/// network `authority`, the record's fields are the envelope's, and its leaf commits to the envelope.
/// Returns the member and the leaf bytes, whose inclusion the caller checks.
pub fn check_member(
    key: &SigningPublicKey,
    info: &MemberInfo,
    authority: &SigningPublicKey,
) -> Result<(Member, [u8; LEAF_LEN]), LedgerError> {
    let bad = |reason: String| LedgerError::BadMember { key: key.to_string(), reason };
    if info.key != *key {
        return Err(bad(format!("the ledger answered with the record of {}", info.key)));
    }
    let (bytes, leaf) = decode_leaf(&info.leaf).map_err(bad)?;
    if leaf.kind != EntryKind::EnrollMember {
        return Err(bad(format!("the record's leaf is a {} entry", leaf.kind.as_str())));
    }
    let envelope = info.envelope.get().as_bytes();
    if !leaf.commits_to(envelope) {
        return Err(bad("the record's leaf does not commit to its enrollment entry".into()));
    }
    let entry = Unverified::<LedgerEntry>::decode(envelope)
        .and_then(|u| u.verify_signed_by(authority))
        .map_err(|e| bad(format!("the enrollment is not signed by the network authority {authority}: {e}")))?;
    let Content::EnrollMember { key: enrolled, box_key, role, name, org } = &entry.content else {
        return Err(bad("the enrollment entry is not a member enrollment".into()));
    };
    let member = Member {
        key: *enrolled,
        box_key: *box_key,
        role: *role,
        name: name.clone(),
        org: org.clone(),
        index: info.index,
    };
    let claimed = Member {
        key: info.key,
        box_key: info.box_key,
        role: info.role,
        name: info.name.clone(),
        org: info.org.clone(),
        index: info.index,
    };
    if member != claimed {
        return Err(bad("the record does not match the enrollment entry it carries".into()));
    }
    Ok((member, bytes))
}

/// A guardian set as its ledger entry states it, with the roster sealed inside.
#[derive(Debug)]
pub struct LearnedSet {
    pub index: u64,
    pub at: Timestamp,
    /// The patient key that posted it.
    pub signer: SigningPublicKey,
    pub set_id: SetId,
    pub threshold: u8,
    pub count: u8,
    pub waiting_seconds: u64,
    pub mailboxes: Vec<ShareMailbox>,
    pub supersedes: Option<SetId>,
    pub roster: Verified<GuardianRoster>,
}

/// What one of a patient's entries told the patient, after every check.
#[derive(Debug)]
pub enum Learned {
    Enrollment {
        index: u64,
    },
    Grant {
        index: u64,
        grant: Box<VerifiedGrant>,
    },
    Revocation {
        index: u64,
        revocation: Box<VerifiedRevocation>,
    },
    Access {
        index: u64,
        event: Box<Verified<AccessEvent>>,
    },
    Redaction {
        index: u64,
    },
    GuardianSet(Box<LearnedSet>),
    RecoveryRequest {
        index: u64,
        at: Timestamp,
        request_id: RequestId,
        device: SigningPublicKey,
        device_box: BoxPublicKey,
    },
    RecoveryCancel {
        index: u64,
        at: Timestamp,
        request_id: RequestId,
    },
    /// `former_seeds` is `None` when this wallet does not hold the new key: its key was rotated away by
    /// another device (a recovery).
    KeyRotation {
        index: u64,
        at: Timestamp,
        old_key: SigningPublicKey,
        new_key: SigningPublicKey,
        former_seeds: Option<Vec<MasterSeed>>,
    },
    /// An entry whose body the patient redacted: its leaf is proven, its contents are gone.
    Redacted {
        index: u64,
        kind: EntryKind,
    },
}

/// Interprets one of the patient's entries (already checked by [`check_tag_entry`]). `keys` are the
/// wallet's identities, the current one first and then those it held before key rotations, all under one
/// tag. The entry is filed under that tag; enrollments, grants, revocations, redactions, guardian sets,
/// cancels and rotations are signed by one of the wallet's keys; access events by a gateway that `gateway`
/// vouches for (enrolled before the entry, with role gateway); recovery requests by anyone (a new device).
/// Sealed bodies open with the wallet's keys and hold a statement signed by the right key that matches the
/// entry's public fields. Any failure names the entry's index.
pub fn learn(
    keys: &[Identity],
    logged: &LoggedEntry,
    mut gateway: impl FnMut(&SigningPublicKey) -> Result<Member, LedgerError>,
) -> Result<Learned, LedgerError> {
    let index = logged.index;
    let bad = |reason: String| LedgerError::BadEntry { index, reason };
    let Some(entry) = &logged.entry else {
        return Ok(Learned::Redacted { index, kind: logged.leaf.kind });
    };
    let Some(current) = keys.first() else {
        return Err(bad("the wallet has no key to read it with".into()));
    };
    let tag: Tag = current.ledger_tag();
    match entry.content.tag() {
        Some(t) if t == tag => {}
        Some(t) => return Err(bad(format!("it is filed under tag {t}, not this wallet's"))),
        None => return Err(bad("it is a member enrollment, which no patient's tag holds".into())),
    }
    let kind = entry.content.kind();
    let signed_by_me = keys.iter().find(|k| k.signing_public() == entry.signer);
    let patient = match (kind, signed_by_me) {
        (EntryKind::Access | EntryKind::RecoveryRequest, _) => current,
        (_, Some(identity)) => identity,
        (_, None) => {
            return Err(bad(format!("this {} entry is signed by {}, not by this wallet", kind.as_str(), entry.signer)));
        }
    };
    let me = patient.signing_public();
    match &entry.content {
        Content::EnrollPatient { box_key, .. } => {
            if *box_key != patient.box_public() {
                return Err(bad("the enrollment names another encryption key than this wallet's".into()));
            }
            Ok(Learned::Enrollment { index })
        }
        Content::Grant { grant_id, grant_digest, body, .. } => {
            let grant = open_statement::<Grant>(patient, kind, &tag, body)
                .map_err(|e| bad(format!("its body: {e}")))?
                .verify_signed_by(&me)
                .map_err(|e| bad(format!("the grant inside: {e}")))?;
            if grant.id != *grant_id {
                return Err(bad(format!("the sealed grant is {}, the entry says {grant_id}", grant.id)));
            }
            if statement_digest(grant.envelope()) != *grant_digest {
                return Err(bad("the published digest is not the sealed grant's".into()));
            }
            Ok(Learned::Grant { index, grant: Box::new(grant) })
        }
        Content::Revocation { grant_id, body, .. } => {
            let revocation = open_statement::<Revocation>(patient, kind, &tag, body)
                .map_err(|e| bad(format!("its body: {e}")))?
                .verify_signed_by(&me)
                .map_err(|e| bad(format!("the revocation inside: {e}")))?;
            if revocation.grant_id != *grant_id {
                return Err(bad(format!(
                    "the sealed revocation is of grant {}, the entry says {grant_id}",
                    revocation.grant_id
                )));
            }
            Ok(Learned::Revocation { index, revocation: Box::new(revocation) })
        }
        Content::Access { grant_id, body, .. } => {
            let member = gateway(&entry.signer).map_err(|e| match e {
                LedgerError::NotAMember(key) => bad(format!("it is signed by {key}, who is not an enrolled member")),
                other => other,
            })?;
            if member.role != Role::Gateway {
                return Err(bad(format!(
                    "it is signed by {}, enrolled as {}, not as a gateway",
                    entry.signer, member.role
                )));
            }
            if member.index >= index {
                return Err(bad(format!("its gateway was enrolled only later, at entry {}", member.index)));
            }
            // Sealed to whichever key the patient held when the gateway looked it up.
            let opened = keys.iter().find_map(|k| open_statement::<AccessEvent>(k, kind, &tag, body).ok());
            let event = opened
                .ok_or_else(|| bad("its body does not open with any of this wallet's keys".into()))?
                .verify_signed_by(&entry.signer)
                .map_err(|e| bad(format!("the access event inside: {e}")))?;
            if !keys.iter().any(|k| k.signing_public() == event.patient) {
                return Err(bad(format!("the access event is about {}, not this wallet", event.patient)));
            }
            if event.grant_id != *grant_id {
                return Err(bad("the access event names another grant than the entry".into()));
            }
            Ok(Learned::Access { index, event: Box::new(event) })
        }
        Content::Redaction { .. } => Ok(Learned::Redaction { index }),
        Content::GuardianSet { set_id, threshold, count, waiting_seconds, mailboxes, supersedes, body, .. } => {
            let roster = open_statement::<GuardianRoster>(patient, kind, &tag, body)
                .map_err(|e| bad(format!("its body: {e}")))?
                .verify_signed_by(&me)
                .map_err(|e| bad(format!("the guardian roster inside: {e}")))?;
            if roster.set_id != *set_id || roster.guardians.len() != usize::from(*count) {
                return Err(bad("the sealed roster is of another guardian set than the entry".into()));
            }
            Ok(Learned::GuardianSet(Box::new(LearnedSet {
                index,
                at: entry.at,
                signer: me,
                set_id: *set_id,
                threshold: *threshold,
                count: *count,
                waiting_seconds: *waiting_seconds,
                mailboxes: mailboxes.clone(),
                supersedes: *supersedes,
                roster,
            })))
        }
        Content::RecoveryRequest { request_id, device_box, .. } => Ok(Learned::RecoveryRequest {
            index,
            at: entry.at,
            request_id: *request_id,
            device: entry.signer,
            device_box: *device_box,
        }),
        Content::RecoveryCancel { request_id, .. } => {
            Ok(Learned::RecoveryCancel { index, at: entry.at, request_id: *request_id })
        }
        Content::KeyRotation { new_key, new_box_key, body, .. } => {
            // Only the wallet that rotated (or a later one) holds the new key; the old device learns that
            // its key was retired and nothing else.
            let new_identity = keys.iter().find(|k| k.signing_public() == *new_key && k.box_public() == *new_box_key);
            let former_seeds = match new_identity {
                Some(identity) => Some(
                    custodia_core::recovery::open_former_seeds(identity, &tag, body)
                        .map_err(|e| bad(format!("its body: {e}")))?,
                ),
                None => None,
            };
            Ok(Learned::KeyRotation { index, at: entry.at, old_key: me, new_key: *new_key, former_seeds })
        }
        Content::EnrollMember { .. } => Err(bad("a member enrollment under a patient's tag".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use custodia_core::MasterSeed;
    use custodia_core::entry::{AccessedResource, EntryNonce, Outcome, seal_statement};
    use custodia_core::grant::GrantRequest;
    use custodia_core::purpose::PurposeOfUse;
    use custodia_core::statement;
    use custodia_core::time::Timestamp;
    use custodia_log::note::NoteSigner;
    use custodia_log::{Frontier, HashReader, NodeId};
    use serde_json::value::RawValue;

    use super::*;

    const ORIGIN: &str = "ledger.test/custodia";

    /// A log in memory: the leaves' bytes and every complete subtree, so tests can make real proofs.
    #[derive(Default)]
    struct MemLog {
        frontier: Frontier,
        nodes: HashMap<NodeId, Hash>,
    }

    impl HashReader for MemLog {
        type Error = ();
        fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ()> {
            ids.iter().map(|id| self.nodes.get(id).copied().ok_or(())).collect()
        }
    }

    impl MemLog {
        fn push(&mut self, data: &[u8]) -> u64 {
            let index = self.frontier.size();
            self.nodes.extend(self.frontier.push(leaf_hash(data)));
            index
        }

        fn checkpoint(&self) -> Checkpoint {
            Checkpoint {
                origin: ORIGIN.into(),
                size: self.frontier.size(),
                root: self.frontier.root(),
                extensions: vec![],
            }
        }

        fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
            custodia_log::proof::consistency_proof(old, new, self).unwrap()
        }

        fn inclusion(&self, index: u64, size: u64) -> Vec<String> {
            custodia_log::proof::inclusion_proof(index, size, self).unwrap().iter().map(Hash::to_base64).collect()
        }
    }

    fn signer() -> NoteSigner {
        NoteSigner::new(ORIGIN, &[42; 32]).unwrap()
    }

    fn trusted(log: &MemLog, signer: &NoteSigner) -> TrustedCheckpoint {
        let cp = log.checkpoint();
        TrustedCheckpoint::new(&cp, &cp.sign(signer))
    }

    fn log_of(n: u8) -> MemLog {
        let mut log = MemLog::default();
        for i in 0..n {
            log.push(&[i; 42]);
        }
        log
    }

    #[test]
    fn checkpoints_open_only_with_the_ledgers_key() {
        let log = log_of(3);
        let note = log.checkpoint().sign(&signer());
        assert_eq!(open_checkpoint(&note, &signer().verifier()).unwrap(), log.checkpoint());
        let impostor = NoteSigner::new(ORIGIN, &[43; 32]).unwrap();
        assert!(matches!(open_checkpoint(&note, &impostor.verifier()), Err(LedgerError::BadCheckpoint { .. })));
        let tampered = note.replacen("\n3\n", "\n4\n", 1);
        assert!(matches!(open_checkpoint(&tampered, &signer().verifier()), Err(LedgerError::BadCheckpoint { .. })));
    }

    #[test]
    fn a_grown_log_with_a_good_proof_extends() {
        let mut log = log_of(5);
        let old = trusted(&log, &signer());
        for i in 5..13 {
            log.push(&[i; 42]);
        }
        let new = log.checkpoint();
        let mut asked = None;
        check_extends(Some(&old), &new, |a, b| {
            asked = Some((a, b));
            Ok(log.consistency(a, b))
        })
        .unwrap();
        assert_eq!(asked, Some((5, 13)));
        // The same checkpoint again needs no proof; nor does a first checkpoint.
        check_extends(Some(&trusted(&log, &signer())), &new, |_, _| panic!("no proof needed")).unwrap();
        check_extends(None, &new, |_, _| panic!("no proof needed")).unwrap();
        check_extends(Some(&trusted(&MemLog::default(), &signer())), &new, |_, _| panic!("no proof needed")).unwrap();
    }

    fn assert_forked(result: Result<(), LedgerError>, sizes: (u64, u64)) {
        match result {
            Err(e @ LedgerError::Forked { old_size, new_size, .. }) => {
                assert_eq!((old_size, new_size), sizes);
                let message = e.to_string();
                assert!(message.contains("forked or rewritten its history"), "{message}");
                assert!(message.contains(&format!("{} entries", sizes.0)), "{message}");
                assert!(message.contains(&format!("{} entries", sizes.1)), "{message}");
            }
            other => panic!("expected a fork, got {other:?}"),
        }
    }

    #[test]
    fn same_size_with_another_root_is_a_fork() {
        let honest = log_of(6);
        let old = trusted(&honest, &signer());
        // Same size, one leaf rewritten: correctly signed by the ledger's key, but another history.
        let mut rewritten = log_of(5);
        rewritten.push(b"a different sixth entry");
        let result = check_extends(Some(&old), &rewritten.checkpoint(), |_, _| panic!("no proof for equal sizes"));
        assert_forked(result, (6, 6));
        let message = check_extends(Some(&old), &rewritten.checkpoint(), |_, _| Ok(vec![])).unwrap_err().to_string();
        assert!(message.contains(&old.root.to_base64()) && message.contains(&rewritten.checkpoint().root.to_base64()));
    }

    #[test]
    fn a_smaller_log_is_a_fork() {
        let old = trusted(&log_of(9), &signer());
        assert_forked(check_extends(Some(&old), &log_of(4).checkpoint(), |_, _| panic!("no proof")), (9, 4));
    }

    #[test]
    fn a_grown_log_that_rewrote_its_past_is_a_fork() {
        let honest = log_of(5);
        let old = trusted(&honest, &signer());
        // A log of 8 whose third entry differs: no proof can link it to the old root.
        let mut other = MemLog::default();
        for i in 0..8u8 {
            let honest = [i; 42];
            other.push(if i == 2 { b"rewritten".as_slice() } else { &honest });
        }
        let new = other.checkpoint();
        assert_forked(check_extends(Some(&old), &new, |a, b| Ok(other.consistency(a, b))), (5, 8));
        // A proof from the honest log's continuation does not fit the rewritten root either.
        assert_forked(check_extends(Some(&old), &new, |a, b| Ok(log_of(8).consistency(a, b))), (5, 8));
        // Nor does garbage, nor a proof of the wrong length.
        assert_forked(check_extends(Some(&old), &new, |_, _| Ok(vec![Hash([0; 32]); 3])), (5, 8));
        assert_forked(check_extends(Some(&old), &new, |_, _| Ok(vec![])), (5, 8));
    }

    #[test]
    fn a_failure_to_fetch_the_proof_is_not_called_a_fork() {
        let old = trusted(&log_of(2), &signer());
        let err = check_extends(Some(&old), &log_of(3).checkpoint(), |_, _| Err(LedgerError::Clock)).unwrap_err();
        assert!(matches!(err, LedgerError::Clock));
    }

    fn patient() -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes([1; 32]))
    }

    fn grantee() -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes([2; 32]))
    }

    fn gateway() -> Identity {
        Identity::from_seed(&MasterSeed::from_bytes([3; 32]))
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-11-21T09:00:00Z").unwrap()
    }

    fn grant_entry(patient: &Identity) -> (VerifiedGrant, Verified<LedgerEntry>) {
        let grant = GrantRequest {
            grantee: grantee().signing_public(),
            scopes: vec!["patient/Observation.rs".parse().unwrap()],
            allowed_labels: vec![],
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 3600,
            max_reads: None,
            note: String::new(),
        }
        .sign(patient, now())
        .unwrap();
        let tag = patient.ledger_tag();
        let body =
            seal_statement(&grant, &[patient.box_public(), grantee().box_public()], EntryKind::Grant, &tag).unwrap();
        let content =
            Content::Grant { tag, grant_id: grant.id, grant_digest: statement_digest(grant.envelope()), body };
        let entry = statement::sign(LedgerEntry::new(patient.signing_public(), now(), content), patient).unwrap();
        (grant, entry)
    }

    fn access_entry(patient: &Identity, gateway: &Identity) -> Verified<LedgerEntry> {
        let event = AccessEvent {
            id: EntryNonce::generate(),
            gateway: gateway.signing_public(),
            patient: patient.signing_public(),
            reader: grantee().signing_public(),
            reader_name: "Dr Hopper".into(),
            organisation: "St Mary's".into(),
            grant_id: None,
            purpose: PurposeOfUse::TREATMENT,
            at: now(),
            outcome: Outcome::Allowed,
            break_glass: false,
            request: "GET Observation/1".into(),
            resources: vec![AccessedResource {
                resource_type: "Observation".into(),
                id: "1".into(),
                labels: vec![],
                category: None,
            }],
            reason: None,
            emergency_reason: None,
        };
        let signed = statement::sign(event, gateway).unwrap();
        let tag = patient.ledger_tag();
        let body = seal_statement(&signed, &[patient.box_public()], EntryKind::Access, &tag).unwrap();
        let content = Content::Access { tag, grant_id: None, body };
        statement::sign(LedgerEntry::new(gateway.signing_public(), now(), content), gateway).unwrap()
    }

    /// Logs `entries` after some filler and serves them as the ledger would: canonical envelope, leaf,
    /// inclusion proof against the final checkpoint.
    fn serve(entries: &[Verified<LedgerEntry>]) -> (Vec<TagEntry>, Checkpoint) {
        let mut log = log_of(3);
        let mut placed = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let envelope = canonical(entry);
            let leaf = Leaf::for_envelope(entry.content.kind(), 1_700_000_000_000 + i as u64, envelope.as_bytes());
            let index = log.push(&leaf.to_bytes());
            placed.push((index, leaf, envelope));
        }
        let cp = log.checkpoint();
        let served = placed
            .into_iter()
            .map(|(index, leaf, envelope)| TagEntry {
                index,
                kind: leaf.kind,
                leaf: data_encoding::BASE64.encode(&leaf.to_bytes()),
                envelope: Some(RawValue::from_string(envelope).unwrap()),
                inclusion: log.inclusion(index, cp.size),
            })
            .collect();
        (served, cp)
    }

    fn gateway_member(index: u64) -> Member {
        let g = gateway();
        Member {
            key: g.signing_public(),
            box_key: g.box_public(),
            role: Role::Gateway,
            name: "GW".into(),
            org: "St Mary's".into(),
            index,
        }
    }

    #[test]
    fn served_entries_verify_and_teach_the_patient() {
        let p = patient();
        let (grant, entry) = grant_entry(&p);
        let (served, cp) = serve(&[entry, access_entry(&p, &gateway())]);
        let logged: Vec<_> = served.iter().map(|s| check_tag_entry(s, &cp).unwrap()).collect();
        match learn(std::slice::from_ref(&p), &logged[0], |_| panic!("no gateway for a grant")).unwrap() {
            Learned::Grant { index: 3, grant: learned } => assert_eq!(learned.id, grant.id),
            other => panic!("{other:?}"),
        }
        match learn(std::slice::from_ref(&p), &logged[1], |_| Ok(gateway_member(0))).unwrap() {
            Learned::Access { index: 4, event } => assert_eq!(event.reader_name, "Dr Hopper"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_inclusion_proof_names_the_entry() {
        let (_, entry) = grant_entry(&patient());
        let (mut served, cp) = serve(&[entry]);
        let mut flipped = data_encoding::BASE64.decode(served[0].inclusion[0].as_bytes()).unwrap();
        flipped[0] ^= 1;
        served[0].inclusion[0] = data_encoding::BASE64.encode(&flipped);
        let err = check_tag_entry(&served[0], &cp).unwrap_err();
        assert!(matches!(err, LedgerError::BadEntry { index: 3, .. }), "{err:?}");
        assert!(err.to_string().contains("ledger entry 3") && err.to_string().contains("inclusion proof"), "{err}");
        served[0].inclusion.pop();
        assert!(check_tag_entry(&served[0], &cp).unwrap_err().to_string().contains("inclusion proof"));
        // A proof for another index.
        let (mut served, cp) = serve(&[grant_entry(&patient()).1]);
        served[0].index = 2;
        assert!(matches!(check_tag_entry(&served[0], &cp), Err(LedgerError::BadEntry { index: 2, .. })));
    }

    #[test]
    fn a_leaf_that_does_not_commit_to_the_envelope_is_refused() {
        let p = patient();
        let (_, first) = grant_entry(&p);
        let (_, second) = grant_entry(&p);
        let (mut served, cp) = serve(&[first, second]);
        // The first leaf (proven) served with the second envelope (validly signed, but not what was logged).
        let other = served[1].envelope.take();
        served[0].envelope = other;
        let err = check_tag_entry(&served[0], &cp).unwrap_err();
        assert!(err.to_string().contains("does not commit to the envelope"), "{err}");
        // The same envelope re-serialised (pretty JSON): same statement, other bytes, refused too.
        let (mut served, cp) = serve(&[grant_entry(&p).1]);
        let pretty: serde_json::Value = serde_json::from_str(served[0].envelope.as_ref().unwrap().get()).unwrap();
        served[0].envelope = Some(RawValue::from_string(serde_json::to_string_pretty(&pretty).unwrap()).unwrap());
        assert!(check_tag_entry(&served[0], &cp).unwrap_err().to_string().contains("does not commit"));
    }

    #[test]
    fn a_leaf_of_another_kind_is_refused() {
        let (_, entry) = grant_entry(&patient());
        let (mut served, cp) = serve(&[entry]);
        served[0].kind = EntryKind::Access;
        assert!(check_tag_entry(&served[0], &cp).unwrap_err().to_string().contains("leaf says grant"));
    }

    #[test]
    fn receipts_are_checked_against_the_posted_entry() {
        let (_, entry) = grant_entry(&patient());
        let (served, cp) = serve(std::slice::from_ref(&entry));
        let s = &served[0];
        check_receipt(&entry, s.index, &s.leaf, &s.inclusion, &cp).unwrap();
        let (_, other) = grant_entry(&patient());
        let err = check_receipt(&other, s.index, &s.leaf, &s.inclusion, &cp).unwrap_err();
        assert!(err.to_string().contains("does not commit to the entry that was posted"), "{err}");
        assert!(check_receipt(&entry, s.index + 1, &s.leaf, &s.inclusion, &cp).is_err());
    }

    #[test]
    fn entries_for_someone_else_or_signed_by_someone_else_are_refused() {
        let p = patient();
        let stranger = Identity::from_seed(&MasterSeed::from_bytes([9; 32]));
        let (_, theirs) = grant_entry(&stranger);
        let (served, cp) = serve(&[theirs, access_entry(&p, &gateway())]);
        let logged: Vec<_> = served.iter().map(|s| check_tag_entry(s, &cp).unwrap()).collect();
        let err = learn(std::slice::from_ref(&p), &logged[0], |_| panic!()).unwrap_err();
        assert!(err.to_string().contains("not this wallet's"), "{err}");
        // An access event from a member that is not a gateway, or was enrolled after the event.
        let mut provider = gateway_member(0);
        provider.role = Role::Provider;
        assert!(
            learn(std::slice::from_ref(&p), &logged[1], |_| Ok(provider.clone()))
                .unwrap_err()
                .to_string()
                .contains("not as a gateway")
        );
        assert!(
            learn(std::slice::from_ref(&p), &logged[1], |_| Ok(gateway_member(10)))
                .unwrap_err()
                .to_string()
                .contains("only later")
        );
        // A gateway the ledger does not know: the lookup's error is the answer.
        let err = learn(std::slice::from_ref(&p), &logged[1], |k| {
            Err(LedgerError::BadMember { key: k.to_string(), reason: "unknown".into() })
        })
        .unwrap_err();
        assert!(matches!(err, LedgerError::BadMember { .. }));
    }

    #[test]
    fn members_must_be_enrolled_by_the_authority() {
        let authority = Identity::from_seed(&MasterSeed::from_bytes([5; 32]));
        let g = gateway();
        let content = Content::EnrollMember {
            key: g.signing_public(),
            box_key: g.box_public(),
            role: Role::Gateway,
            name: "GW".into(),
            org: "St Mary's".into(),
        };
        let entry =
            |by: &Identity| statement::sign(LedgerEntry::new(by.signing_public(), now(), content.clone()), by).unwrap();
        let info = |entry: &Verified<LedgerEntry>| {
            let envelope = canonical(entry);
            let leaf = Leaf::for_envelope(EntryKind::EnrollMember, 1, envelope.as_bytes());
            MemberInfo {
                key: g.signing_public(),
                box_key: g.box_public(),
                role: Role::Gateway,
                name: "GW".into(),
                org: "St Mary's".into(),
                index: 7,
                leaf: data_encoding::BASE64.encode(&leaf.to_bytes()),
                envelope: RawValue::from_string(envelope).unwrap(),
            }
        };
        let good = info(&entry(&authority));
        let (member, _) = check_member(&g.signing_public(), &good, &authority.signing_public()).unwrap();
        assert_eq!(member, gateway_member(7));
        let forged = info(&entry(&patient()));
        let err = check_member(&g.signing_public(), &forged, &authority.signing_public()).unwrap_err();
        assert!(err.to_string().contains("not signed by the network authority"), "{err}");
        let mut lying = good.clone();
        lying.box_key = patient().box_public();
        assert!(check_member(&g.signing_public(), &lying, &authority.signing_public()).is_err());
        assert!(check_member(&patient().signing_public(), &good, &authority.signing_public()).is_err());
    }
}
