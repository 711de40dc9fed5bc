//! Signed statements: a typed payload in a DSSE envelope, parsed first and verified second.
//!
//! Every statement kind (grant, revocation, and later enrollment, access request, access event, guardian
//! set, recovery request, key rotation, redaction) implements [`Statement`]: a versioned payload type,
//! the key that must sign it, and its own field checks. Decoding yields an [`Unverified`] value, which can
//! be shown but authorises nothing; only [`Unverified::verify`] yields a [`Verified`] one.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dsse::{Envelope, EnvelopeError, pae};
use crate::keys::{Identity, SigningPublicKey};

/// The payload types of this protocol share this prefix; a version other than the one a type knows is
/// reported as an unknown version, anything else as the wrong kind of statement.
pub const PAYLOAD_TYPE_PREFIX: &str = "application/vnd.custodia.";

pub trait Statement: Serialize + DeserializeOwned {
    /// The DSSE payload type, `application/vnd.custodia.<kind>.v<N>+json`, or without `+json` for the
    /// statements kept in [`crate::binary`] form.
    const PAYLOAD_TYPE: &'static str;
    /// The JSON payload type an earlier version signed, still read (never written) where old
    /// statements are kept, such as a wallet's stored access events.
    const JSON_PAYLOAD_TYPE: Option<&'static str> = None;
    /// The statement kind for messages, e.g. "grant".
    const KIND: &'static str;

    /// The key that must have signed this statement.
    fn signer(&self) -> &SigningPublicKey;

    /// Checks field values that parsing alone does not (ranges, limits, consistency).
    fn validate(&self) -> Result<(), StatementError>;

    /// The payload bytes of [`Self::PAYLOAD_TYPE`]: JSON unless the statement has a binary form.
    fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }

    /// Parses a payload of [`Self::PAYLOAD_TYPE`].
    fn decode(payload: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }

    /// Whether `signature` by `key` over `message` (the DSSE signing input) is valid: strict RFC 8032,
    /// unless the kind is verified in batches (then the cofactored rule, alone or together).
    fn signature_valid(key: &SigningPublicKey, message: &[u8], signature: &[u8; 64]) -> bool {
        key.verify(message, signature)
    }

    /// Whether every signature of a batch is valid by [`Statement::signature_valid`]; kinds verified
    /// in batches override this with one multiscalar check.
    fn signatures_valid(batch: &[crate::cofactored::Item<'_>]) -> bool {
        batch.iter().all(|(key, message, signature)| Self::signature_valid(key, message, signature))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatementError {
    #[error("malformed {kind}: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("unknown {kind} version: payload type {found:?}")]
    UnknownVersion { kind: &'static str, found: String },
    #[error("not a {kind}: payload type {found:?}")]
    WrongType { kind: &'static str, found: String },
    #[error("invalid {kind}: {reason}")]
    Invalid { kind: &'static str, reason: String },
    #[error("bad signature: the {kind} is not signed by {signer}, the key it names")]
    BadSignature { kind: &'static str, signer: String },
    #[error("wrong key: the {kind} is signed by {found}, not {expected}")]
    WrongKey { kind: &'static str, expected: String, found: String },
}

impl StatementError {
    pub fn invalid<T: Statement>(reason: impl Into<String>) -> Self {
        StatementError::Invalid { kind: T::KIND, reason: reason.into() }
    }

    fn wrong_key<T: Statement>(expected: &SigningPublicKey, found: &SigningPublicKey) -> Self {
        StatementError::WrongKey { kind: T::KIND, expected: expected.to_string(), found: found.to_string() }
    }
}

/// A statement parsed from an envelope whose signature has not been checked.
#[derive(Debug, Clone)]
pub struct Unverified<T> {
    envelope: Envelope,
    statement: T,
}

/// A statement whose signature by its signer has been checked. Only these authorise anything.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    envelope: Envelope,
    statement: T,
}

/// Signs a statement. The identity must be the statement's signer.
pub fn sign<T: Statement>(statement: T, identity: &Identity) -> Result<Verified<T>, StatementError> {
    statement.validate()?;
    let signer = identity.signing_public();
    if *statement.signer() != signer {
        return Err(StatementError::wrong_key::<T>(statement.signer(), &signer));
    }
    // Validation caps every field, so only a statement it let through by mistake fails here.
    let payload = statement.encode().map_err(|reason| StatementError::Invalid { kind: T::KIND, reason })?;
    let envelope = Envelope::sign(T::PAYLOAD_TYPE, payload, identity);
    Ok(Verified { envelope, statement })
}

impl<T: Statement> Unverified<T> {
    /// Parses an envelope's JSON and its payload. Checks shape, type, version and field values.
    pub fn decode(bytes: &[u8]) -> Result<Self, StatementError> {
        let envelope = Envelope::from_json(bytes).map_err(|e| match e {
            EnvelopeError::TooLarge => StatementError::Malformed { kind: T::KIND, reason: e.to_string() },
            EnvelopeError::Malformed(reason) => StatementError::Malformed { kind: T::KIND, reason },
        })?;
        Self::from_envelope(envelope)
    }

    pub fn from_envelope(envelope: Envelope) -> Result<Self, StatementError> {
        let malformed = |reason| StatementError::Malformed { kind: T::KIND, reason };
        let statement: T = if envelope.payload_type == T::PAYLOAD_TYPE {
            T::decode(&envelope.payload).map_err(malformed)?
        } else if T::JSON_PAYLOAD_TYPE == Some(envelope.payload_type.as_str()) {
            serde_json::from_slice(&envelope.payload).map_err(|e| malformed(e.to_string()))?
        } else {
            let found = envelope.payload_type.clone();
            let same_kind = T::PAYLOAD_TYPE
                .rsplit_once(".v")
                .map(|(stem, _)| stem)
                .filter(|stem| found.strip_prefix(stem).and_then(|rest| rest.strip_prefix(".v")).is_some());
            return Err(match same_kind {
                Some(_) => StatementError::UnknownVersion { kind: T::KIND, found },
                None => StatementError::WrongType { kind: T::KIND, found },
            });
        };
        statement.validate()?;
        Ok(Self { envelope, statement })
    }

    /// The claimed contents, for display before verification. Authorises nothing.
    pub fn claimed(&self) -> &T {
        &self.statement
    }

    /// Checks the signature by the key the statement names as its signer.
    pub fn verify(self) -> Result<Verified<T>, StatementError> {
        let signer = *self.statement.signer();
        let message = pae(&self.envelope.payload_type, &self.envelope.payload);
        if self.envelope.signatures.iter().any(|s| T::signature_valid(&signer, &message, &s.sig)) {
            Ok(Verified { envelope: self.envelope, statement: self.statement })
        } else {
            Err(StatementError::BadSignature { kind: T::KIND, signer: signer.to_string() })
        }
    }

    /// Checks the signature and that the signer is `expected` (e.g. the patient whose wallet this is).
    pub fn verify_signed_by(self, expected: &SigningPublicKey) -> Result<Verified<T>, StatementError> {
        let found = *self.statement.signer();
        if found != *expected {
            return Err(StatementError::wrong_key::<T>(expected, &found));
        }
        self.verify()
    }
}

/// Verifies statements of one kind together ([`Statement::signatures_valid`]), each by the key it names.
/// Gives the same answer as verifying each alone: when the batch does not pass, each is checked alone
/// and the first that fails is reported with its position.
pub fn verify_all<T: Statement>(statements: Vec<Unverified<T>>) -> Result<Vec<Verified<T>>, (usize, StatementError)> {
    let messages: Vec<Vec<u8>> =
        statements.iter().map(|u| pae(&u.envelope.payload_type, &u.envelope.payload)).collect();
    // Only single-signature envelopes go into the batch; the rest (rare) are checked alone below.
    let single = statements.iter().all(|u| u.envelope.signatures.len() == 1);
    let batch: Vec<crate::cofactored::Item<'_>> = statements
        .iter()
        .zip(&messages)
        .filter_map(|(u, m)| u.envelope.signatures.first().map(|s| (u.statement.signer(), m.as_slice(), &s.sig)))
        .collect();
    if single && T::signatures_valid(&batch) {
        return Ok(statements.into_iter().map(|u| Verified { envelope: u.envelope, statement: u.statement }).collect());
    }
    statements.into_iter().enumerate().map(|(i, u)| u.verify().map_err(|e| (i, e))).collect()
}

impl<T> Verified<T> {
    pub fn statement(&self) -> &T {
        &self.statement
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    pub fn to_json(&self) -> String {
        self.envelope.to_json()
    }

    pub fn to_compact_json(&self) -> String {
        self.envelope.to_compact_json()
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.statement
    }
}
