//! The binary forms of [`LedgerEntry`] (`application/vnd.custodia.entry.v2`) and [`AccessEvent`]
//! (`application/vnd.custodia.access.v2`), in the encoding of [`crate::binary`].
//!
//! A ledger entry is `signer (32) | at (i64) | nonce (16) | kind (the leaf's kind byte) | fields`, the
//! fields in the order [`Content`] declares them. Keys, tags and ids are their bytes; a sealed body is
//! its bytes, not base64.

use crate::binary::{BinaryError, Reader, Writer, code};
use crate::grant::GrantId;
use crate::keys::{BoxPublicKey, SigningPublicKey};
use crate::recovery::ShareMailbox;
use crate::time::Timestamp;

use super::{
    AccessEvent, AccessedResource, Content, Digest, EntryKind, EntryNonce, LedgerEntry, Outcome, RequestId, SealedBody,
    SetId, Tag,
};

fn signing_key(r: &mut Reader<'_>, what: &str) -> Result<SigningPublicKey, BinaryError> {
    SigningPublicKey::from_bytes(&r.fixed(what)?).map_err(|e| BinaryError(format!("{what}: {e}")))
}

fn box_key(r: &mut Reader<'_>, what: &str) -> Result<BoxPublicKey, BinaryError> {
    Ok(BoxPublicKey::from_bytes(r.fixed(what)?))
}

fn timestamp(r: &mut Reader<'_>, what: &str) -> Result<Timestamp, BinaryError> {
    Timestamp::from_unix(r.i64(what)?).map_err(|e| BinaryError(format!("{what}: {e}")))
}

fn tag(r: &mut Reader<'_>) -> Result<Tag, BinaryError> {
    Ok(Tag::from_bytes(r.fixed("tag")?))
}

fn grant_id(r: &mut Reader<'_>) -> Result<GrantId, BinaryError> {
    Ok(GrantId::from_bytes(r.fixed("grant id")?))
}

fn body(r: &mut Reader<'_>) -> Result<SealedBody, BinaryError> {
    Ok(SealedBody(r.bytes("body")?.to_vec()))
}

fn string(r: &mut Reader<'_>, what: &str) -> Result<String, BinaryError> {
    r.str(what).map(str::to_owned)
}

pub(super) fn encode_entry(entry: &LedgerEntry) -> Result<Vec<u8>, BinaryError> {
    let mut w = Writer::new();
    w.fixed(entry.signer.as_bytes());
    w.i64(entry.at.unix());
    w.fixed(entry.nonce.as_bytes());
    w.u8(entry.content.kind().code());
    match &entry.content {
        Content::EnrollPatient { box_key, tag } => {
            w.fixed(box_key.as_bytes());
            w.fixed(tag.as_bytes());
        }
        Content::EnrollMember { key, box_key, role, name, org } => {
            w.fixed(key.as_bytes());
            w.fixed(box_key.as_bytes());
            w.str("role", role.as_str());
            w.str("name", name);
            w.str("org", org);
        }
        Content::Grant { tag, grant_id, grant_digest, body } => {
            w.fixed(tag.as_bytes());
            w.fixed(grant_id.as_bytes());
            w.fixed(grant_digest.as_bytes());
            w.bytes("body", &body.0);
        }
        Content::Revocation { tag, grant_id, body } => {
            w.fixed(tag.as_bytes());
            w.fixed(grant_id.as_bytes());
            w.bytes("body", &body.0);
        }
        Content::Access { tag, grant_id, body } => {
            w.fixed(tag.as_bytes());
            w.option(grant_id.as_ref(), |w, id| w.fixed(id.as_bytes()));
            w.bytes("body", &body.0);
        }
        Content::Redaction { tag } => w.fixed(tag.as_bytes()),
        Content::GuardianSet { tag, set_id, threshold, count, waiting_seconds, mailboxes, supersedes, body } => {
            w.fixed(tag.as_bytes());
            w.fixed(set_id.as_bytes());
            w.u8(*threshold);
            w.u8(*count);
            w.u64(*waiting_seconds);
            w.list("mailboxes", mailboxes, |w, m| {
                w.u8(m.index);
                w.fixed(m.key.as_bytes());
                w.fixed(m.box_key.as_bytes());
            });
            w.option(supersedes.as_ref(), |w, id| w.fixed(id.as_bytes()));
            w.bytes("body", &body.0);
        }
        Content::RecoveryRequest { tag, request_id, device_box } => {
            w.fixed(tag.as_bytes());
            w.fixed(request_id.as_bytes());
            w.fixed(device_box.as_bytes());
        }
        Content::RecoveryCancel { tag, request_id } => {
            w.fixed(tag.as_bytes());
            w.fixed(request_id.as_bytes());
        }
        Content::KeyRotation { tag, new_key, new_box_key, body } => {
            w.fixed(tag.as_bytes());
            w.fixed(new_key.as_bytes());
            w.fixed(new_box_key.as_bytes());
            w.bytes("body", &body.0);
        }
    }
    w.finish()
}

pub(super) fn decode_entry(bytes: &[u8]) -> Result<LedgerEntry, BinaryError> {
    let mut r = Reader::new(bytes);
    let signer = signing_key(&mut r, "signer")?;
    let at = timestamp(&mut r, "at")?;
    let nonce = EntryNonce::from_bytes(r.fixed("nonce")?);
    let kind_byte = r.u8("kind")?;
    let kind = EntryKind::from_code(kind_byte).ok_or_else(|| BinaryError(format!("unknown entry kind {kind_byte}")))?;
    let content = match kind {
        EntryKind::EnrollPatient => Content::EnrollPatient { box_key: box_key(&mut r, "box key")?, tag: tag(&mut r)? },
        EntryKind::EnrollMember => Content::EnrollMember {
            key: signing_key(&mut r, "member key")?,
            box_key: box_key(&mut r, "box key")?,
            role: code("role", r.str("role")?)?,
            name: string(&mut r, "name")?,
            org: string(&mut r, "org")?,
        },
        EntryKind::Grant => Content::Grant {
            tag: tag(&mut r)?,
            grant_id: grant_id(&mut r)?,
            grant_digest: Digest::from_bytes(r.fixed("grant digest")?),
            body: body(&mut r)?,
        },
        EntryKind::Revocation => {
            Content::Revocation { tag: tag(&mut r)?, grant_id: grant_id(&mut r)?, body: body(&mut r)? }
        }
        EntryKind::Access => {
            Content::Access { tag: tag(&mut r)?, grant_id: r.option("grant id", grant_id)?, body: body(&mut r)? }
        }
        EntryKind::Redaction => Content::Redaction { tag: tag(&mut r)? },
        EntryKind::GuardianSet => Content::GuardianSet {
            tag: tag(&mut r)?,
            set_id: SetId::from_bytes(r.fixed("set id")?),
            threshold: r.u8("threshold")?,
            count: r.u8("count")?,
            waiting_seconds: r.u64("waiting seconds")?,
            mailboxes: r.list("mailboxes", |r| {
                Ok(ShareMailbox {
                    index: r.u8("mailbox index")?,
                    key: signing_key(r, "mailbox key")?,
                    box_key: box_key(r, "mailbox box key")?,
                })
            })?,
            supersedes: r.option("supersedes", |r| Ok(SetId::from_bytes(r.fixed("supersedes")?)))?,
            body: body(&mut r)?,
        },
        EntryKind::RecoveryRequest => Content::RecoveryRequest {
            tag: tag(&mut r)?,
            request_id: RequestId::from_bytes(r.fixed("request id")?),
            device_box: box_key(&mut r, "device box key")?,
        },
        EntryKind::RecoveryCancel => {
            Content::RecoveryCancel { tag: tag(&mut r)?, request_id: RequestId::from_bytes(r.fixed("request id")?) }
        }
        EntryKind::KeyRotation => Content::KeyRotation {
            tag: tag(&mut r)?,
            new_key: signing_key(&mut r, "new key")?,
            new_box_key: box_key(&mut r, "new box key")?,
            body: body(&mut r)?,
        },
    };
    r.end()?;
    Ok(LedgerEntry { signer, at, nonce, content })
}

pub(super) fn encode_access(event: &AccessEvent) -> Result<Vec<u8>, BinaryError> {
    let mut w = Writer::new();
    w.fixed(event.id.as_bytes());
    w.fixed(event.gateway.as_bytes());
    w.fixed(event.patient.as_bytes());
    w.fixed(event.reader.as_bytes());
    w.str("reader name", &event.reader_name);
    w.str("organisation", &event.organisation);
    w.option(event.grant_id.as_ref(), |w, id| w.fixed(id.as_bytes()));
    w.str("purpose", event.purpose.code());
    w.i64(event.at.unix());
    w.bool(event.outcome == Outcome::Denied);
    w.bool(event.break_glass);
    w.str("request", &event.request);
    w.list("resources", &event.resources, |w, resource| {
        w.str("resource type", &resource.resource_type);
        w.str("resource id", &resource.id);
        w.list("labels", &resource.labels, |w, label| w.str("label", label.code()));
        w.option(resource.category.as_deref(), |w, c| w.str("category", c));
    });
    w.option(event.reason.as_deref(), |w, reason| w.str("reason", reason));
    // Added later, at the end and only when present, so events without it encode as they always did.
    if let Some(code) = &event.emergency_reason {
        w.str("emergency reason", code);
    }
    w.finish()
}

pub(super) fn decode_access(bytes: &[u8]) -> Result<AccessEvent, BinaryError> {
    let mut r = Reader::new(bytes);
    let event = AccessEvent {
        id: EntryNonce::from_bytes(r.fixed("id")?),
        gateway: signing_key(&mut r, "gateway")?,
        patient: signing_key(&mut r, "patient")?,
        reader: signing_key(&mut r, "reader")?,
        reader_name: string(&mut r, "reader name")?,
        organisation: string(&mut r, "organisation")?,
        grant_id: r.option("grant id", grant_id)?,
        purpose: code("purpose", r.str("purpose")?)?,
        at: timestamp(&mut r, "at")?,
        outcome: if r.bool("outcome")? { Outcome::Denied } else { Outcome::Allowed },
        break_glass: r.bool("break glass")?,
        request: string(&mut r, "request")?,
        resources: r.list("resources", |r| {
            Ok(AccessedResource {
                resource_type: string(r, "resource type")?,
                id: string(r, "resource id")?,
                labels: r.list("labels", |r| code("label", r.str("label")?))?,
                category: r.option("category", |r| string(r, "category"))?,
            })
        })?,
        reason: r.option("reason", |r| string(r, "reason"))?,
        emergency_reason: None,
    };
    let event = AccessEvent {
        emergency_reason: if r.is_done() { None } else { Some(string(&mut r, "emergency reason")?) },
        ..event
    };
    r.end()?;
    Ok(event)
}
