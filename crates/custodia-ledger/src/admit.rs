//! Admission: parse, verify, then authorise one submitted entry, before it reaches the sequencer.
//!
//! Everything here depends only on the entry and on enrollments, which never change once made, so it
//! runs in parallel on the request threads. Checks that depend on the order of entries (replays, grant
//! ids, revocations) are the sequencer's, which sees one consistent state.

use axum::http::StatusCode;
use custodia_core::SigningPublicKey;
use custodia_core::dsse::Envelope;
use custodia_core::entry::{Content, Digest, EntryKind, LedgerEntry, Role, Tag, canonical_envelope};
use custodia_core::grant::GrantId;
use custodia_core::statement::{self, StatementError, Unverified, Verified};
use custodia_core::time::Timestamp;

use crate::Shared;
use crate::problem::ApiError;
use crate::store::{Effect, MemberRecord};

/// An entry that passed admission.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub kind: EntryKind,
    pub signer: SigningPublicKey,
    pub tag: Option<Tag>,
    pub grant_id: Option<GrantId>,
    pub payload: Vec<u8>,
    pub sig: [u8; 64],
    pub envelope_hash: Digest,
    /// The date the signer gave the entry (Unix seconds), for the replay window.
    pub at: i64,
    pub effect: Effect,
}

fn statement_error(e: StatementError) -> ApiError {
    match e {
        StatementError::BadSignature { signer, .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-signature",
            format!("the entry's signature does not verify under its signer {signer}"),
        ),
        other => ApiError::malformed(other.to_string()),
    }
}

/// Checks one entry as submitted (`raw` is its envelope JSON).
pub fn admit(shared: &Shared, raw: &[u8], now: Timestamp) -> Result<Admitted, ApiError> {
    let mut admitted = admit_all(shared, &[raw], now).map_err(|mut e| {
        e.entry = None;
        e
    })?;
    admitted.pop().ok_or_else(|| ApiError::malformed("no entry"))
}

/// Checks one request's entries, their signatures in one batch; a refusal names the entry it is about.
///
/// The date and who may append what are checked on the claims before any signature, so a request that
/// will be refused costs no more signature checks than the entries up to the refused one; those decide
/// which refusal is reported, as if each entry were checked in turn, signature first.
pub fn admit_all(shared: &Shared, raws: &[&[u8]], now: Timestamp) -> Result<Vec<Admitted>, ApiError> {
    let limits = &shared.limits;
    let mut parsed = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        parsed.push(parse(raw, limits.max_entry_bytes).map_err(|e| e.at(i))?);
    }
    let mut effects = Vec::with_capacity(parsed.len());
    let mut refused = None;
    for (i, entry) in parsed.iter().enumerate() {
        match claims(shared, entry.claimed(), now) {
            Ok(effect) => effects.push(effect),
            Err(refusal) => {
                refused = Some((i, refusal));
                break;
            }
        }
    }
    if let Some((i, refusal)) = refused {
        parsed.truncate(i + 1);
        return Err(match statement::verify_all(parsed) {
            Err((j, e)) => statement_error(e).at(j),
            Ok(_) => refusal.at(i),
        });
    }
    let verified = statement::verify_all(parsed).map_err(|(i, e)| statement_error(e).at(i))?;
    Ok(verified.into_iter().zip(effects).map(|(entry, effect)| admitted(&entry, effect)).collect())
}

/// Shape, size and field values; nothing about the signature yet.
fn parse(raw: &[u8], max_bytes: usize) -> Result<Unverified<LedgerEntry>, ApiError> {
    if raw.len() > max_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("an entry may have at most {max_bytes} bytes; this one has {}", raw.len()),
        ));
    }
    let envelope = Envelope::from_json(raw).map_err(|e| ApiError::malformed(e.to_string()))?;
    if envelope.signatures.len() != 1 {
        return Err(ApiError::malformed("an entry carries exactly one signature, by its signer"));
    }
    Unverified::<LedgerEntry>::from_envelope(envelope).map_err(statement_error)
}

/// The entry's date, and who may append what: from its claims, which count only once its signature
/// is checked.
fn claims(shared: &Shared, entry: &LedgerEntry, now: Timestamp) -> Result<Effect, ApiError> {
    let limits = &shared.limits;
    let age = now.seconds_since(entry.at);
    if age.abs() > limits.max_entry_age_seconds {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "stale",
            format!(
                "the entry is dated {}, more than {} s from the ledger's time {now}; sign it again with a correct clock",
                entry.at, limits.max_entry_age_seconds
            ),
        ));
    }
    authorise(shared, &entry.signer, &entry.content)
}

fn admitted(verified: &Verified<LedgerEntry>, effect: Effect) -> Admitted {
    let payload = verified.envelope().payload.clone();
    // Admission takes envelopes with exactly one signature.
    let sig = verified.envelope().signatures.first().map_or([0; 64], |s| s.sig);
    let envelope_hash = Digest::of(canonical_envelope(&payload, &sig).as_bytes());
    Admitted {
        kind: verified.content.kind(),
        signer: verified.signer,
        tag: verified.content.tag(),
        grant_id: verified.content.grant_id(),
        payload,
        sig,
        envelope_hash,
        at: verified.at.unix(),
        effect,
    }
}

fn not_enrolled(who: &SigningPublicKey, what: &str) -> ApiError {
    ApiError::forbidden("not-enrolled", format!("{who} is not enrolled {what} on this ledger"))
}

fn retired(key: &SigningPublicKey, successor: &SigningPublicKey, index: u64) -> ApiError {
    ApiError::forbidden(
        "key-rotated",
        format!("{key} was rotated to {successor} at entry {index}; it signs nothing on this ledger any more"),
    )
}

/// Who may append what: the permissioned part of the ledger.
fn authorise(shared: &Shared, signer: &SigningPublicKey, content: &Content) -> Result<Effect, ApiError> {
    let own_tag = |tag: &Tag| -> Result<(), ApiError> {
        let Some(patient) = shared.patient(signer)? else {
            return Err(match shared.store.retired(signer)? {
                Some((successor, index)) => retired(signer, &successor, index),
                None => not_enrolled(signer, "as a patient"),
            });
        };
        if patient.tag != *tag {
            return Err(ApiError::forbidden(
                "wrong-tag",
                format!("{signer} may file entries under its own tag only, not {tag}"),
            ));
        }
        Ok(())
    };
    match content {
        Content::EnrollPatient { box_key, tag } => {
            if shared.member(signer)?.is_some() {
                return Err(ApiError::forbidden(
                    "wrong-role",
                    format!("{signer} is enrolled as a member, not a patient"),
                ));
            }
            if shared.patient(signer)?.is_some() {
                return Err(ApiError::conflict("already-enrolled", format!("{signer} is already enrolled")));
            }
            if let Some((successor, index)) = shared.store.retired(signer)? {
                return Err(retired(signer, &successor, index));
            }
            if shared.patient_by_tag(tag)?.is_some() {
                return Err(ApiError::conflict("already-enrolled", format!("tag {tag} already belongs to a patient")));
            }
            Ok(Effect::Patient { key: *signer, box_key: *box_key, tag: *tag })
        }
        Content::EnrollMember { key, box_key, role, name, org } => {
            if *signer != shared.config.authority {
                return Err(ApiError::forbidden(
                    "wrong-role",
                    format!(
                        "only the network authority {} enrolls members; {signer} is not it",
                        shared.config.authority
                    ),
                ));
            }
            if shared.member(key)?.is_some() || shared.patient(key)?.is_some() {
                return Err(ApiError::conflict("already-enrolled", format!("{key} is already enrolled")));
            }
            Ok(Effect::Member(MemberRecord {
                key: *key,
                box_key: *box_key,
                role: *role,
                name: name.clone(),
                org: org.clone(),
                index: 0,
            }))
        }
        Content::Grant { tag, grant_id, grant_digest, .. } => {
            own_tag(tag)?;
            Ok(Effect::Grant { grant_id: *grant_id, owner: *signer, tag: *tag, digest: *grant_digest })
        }
        Content::Revocation { tag, grant_id, .. } => {
            own_tag(tag)?;
            Ok(Effect::Revocation { grant_id: *grant_id })
        }
        Content::Redaction { tag } => {
            own_tag(tag)?;
            Ok(Effect::Redaction { tag: *tag })
        }
        Content::GuardianSet { tag, .. } | Content::RecoveryCancel { tag, .. } => {
            own_tag(tag)?;
            Ok(Effect::None)
        }
        Content::RecoveryRequest { tag, .. } => {
            // The one-time key of a new device: no member, no patient. Anyone may ask; the patient's
            // old device sees the request and guardians decide.
            if shared.member(signer)?.is_some() || shared.patient(signer)?.is_some() {
                return Err(ApiError::forbidden(
                    "wrong-role",
                    format!("{signer} is enrolled; a recovery request is signed by a new device's one-time key"),
                ));
            }
            if shared.patient_by_tag(tag)?.is_none() {
                return Err(ApiError::not_found(format!("no patient is enrolled under tag {tag}")));
            }
            Ok(Effect::None)
        }
        Content::KeyRotation { tag, new_key, new_box_key, .. } => {
            own_tag(tag)?;
            let taken = shared.member(new_key)?.is_some()
                || shared.patient(new_key)?.is_some()
                || shared.store.retired(new_key)?.is_some();
            if taken {
                return Err(ApiError::conflict("already-enrolled", format!("{new_key} is already enrolled")));
            }
            Ok(Effect::Rotation { old_key: *signer, new_key: *new_key, new_box_key: *new_box_key })
        }
        Content::Access { tag, .. } => {
            let member = shared.member(signer)?.ok_or_else(|| not_enrolled(signer, "as a gateway"))?;
            if member.role != Role::Gateway {
                return Err(ApiError::forbidden(
                    "wrong-role",
                    format!("{signer} is enrolled as {}, and only gateways post access events", member.role),
                ));
            }
            if shared.patient_by_tag(tag)?.is_none() {
                return Err(ApiError::not_found(format!("no patient is enrolled under tag {tag}")));
            }
            Ok(Effect::None)
        }
    }
}
