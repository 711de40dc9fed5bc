//! Signed HTTP requests: proof that a request comes from the holder of a key, bound to its method, target,
//! body, time and a nonce, so it cannot be replayed elsewhere or later.
//!
//! The ledger uses it for reads of a patient's entries and for the mailbox. The header is one line:
//! `Custodia-Signature: key=<cusig1…>;at=<unix seconds>;nonce=<32 hex>;sig=<base64>`, and the signature
//! covers
//!
//! ```text
//! custodia-request/v1
//! <METHOD>
//! <path and query>
//! <at>
//! <nonce>
//! <hex SHA-256 of the body>
//! ```

use sha2::{Digest as _, Sha256};

use crate::entry::{Digest, EntryNonce};
use crate::keys::{Identity, SigningPublicKey};
use crate::time::Timestamp;

pub const HEADER: &str = "custodia-signature";
const DOMAIN: &str = "custodia-request/v1";
/// Requests to a record gateway sign the whole URL, not only path and query, so a gateway that receives
/// one cannot replay it at another; and they bind the grant they are made under.
const BOUND_DOMAIN: &str = "custodia-gateway-request/v1";
/// How far a request's time may be from the server's clock.
pub const MAX_SKEW_SECONDS: i64 = 60;
const MAX_HEADER_LEN: usize = 512;
const MAX_TARGET_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestSignatureError {
    #[error("malformed {HEADER} header: {0}")]
    Malformed(String),
    #[error("the request is signed at {at}, more than {MAX_SKEW_SECONDS} s from the server's time {now}")]
    Stale { at: Timestamp, now: Timestamp },
    #[error("the request signature does not verify under {0}")]
    BadSignature(String),
}

/// A parsed `Custodia-Signature` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSignature {
    pub key: SigningPublicKey,
    pub at: Timestamp,
    pub nonce: EntryNonce,
    sig: [u8; 64],
}

fn message(method: &str, target: &str, body: &[u8], at: Timestamp, nonce: &EntryNonce) -> Vec<u8> {
    let body_hash = data_encoding::HEXLOWER.encode(&Sha256::digest(body));
    format!("{DOMAIN}\n{}\n{target}\n{}\n{nonce}\n{body_hash}", method.to_ascii_uppercase(), at.unix()).into_bytes()
}

fn bound_message(method: &str, url: &str, binding: &Digest, at: Timestamp, nonce: &EntryNonce) -> Vec<u8> {
    format!("{BOUND_DOMAIN}\n{}\n{url}\n{}\n{nonce}\n{binding}", method.to_ascii_uppercase(), at.unix()).into_bytes()
}

fn header(identity: &Identity, at: Timestamp, nonce: &EntryNonce, sig: &[u8; 64]) -> String {
    format!(
        "key={};at={};nonce={nonce};sig={}",
        identity.signing_public(),
        at.unix(),
        data_encoding::BASE64.encode(sig)
    )
}

/// Signs a request; returns the header value.
pub fn sign(identity: &Identity, method: &str, target: &str, body: &[u8], at: Timestamp) -> String {
    let nonce = EntryNonce::generate();
    header(identity, at, &nonce, &identity.sign(&message(method, target, body, at, &nonce)))
}

/// What a patient's request for their own records is bound to, in place of a grant's digest: no grant
/// stands behind it, only the patient's own key.
pub fn self_access_binding() -> crate::entry::Digest {
    crate::entry::Digest::of(b"custodia/v1/self-access")
}

/// Signs a request to a record gateway: `url` is the full URL as the gateway publishes it
/// (`https://host/fhir/Observation?patient=p1`) and `binding` the digest of what the request is made
/// under (the grant). A co-signer (an emergency card's key) signs with the same `nonce`.
pub fn sign_bound(
    identity: &Identity,
    method: &str,
    url: &str,
    binding: &Digest,
    at: Timestamp,
    nonce: &EntryNonce,
) -> String {
    header(identity, at, nonce, &identity.sign(&bound_message(method, url, binding, at, nonce)))
}

impl RequestSignature {
    pub fn parse(header: &str) -> Result<Self, RequestSignatureError> {
        let bad = |m: &str| RequestSignatureError::Malformed(m.to_owned());
        if header.len() > MAX_HEADER_LEN {
            return Err(bad("too long"));
        }
        let (mut key, mut at, mut nonce, mut sig) = (None, None, None, None);
        for part in header.split(';') {
            let (name, value) = part.trim().split_once('=').ok_or_else(|| bad("expected name=value pairs"))?;
            let slot = match name {
                "key" => &mut key,
                "at" => &mut at,
                "nonce" => &mut nonce,
                "sig" => &mut sig,
                _ => return Err(bad("unknown parameter")),
            };
            if slot.replace(value).is_some() {
                return Err(bad("a parameter is repeated"));
            }
        }
        let key = key.ok_or_else(|| bad("no key"))?.parse().map_err(|_| bad("key is not a cusig1 key"))?;
        let at = at
            .ok_or_else(|| bad("no at"))?
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_unix(s).ok())
            .ok_or_else(|| bad("at is not a time"))?;
        let nonce = nonce.ok_or_else(|| bad("no nonce"))?.parse().map_err(|_| bad("nonce is not 32 hex digits"))?;
        let sig = data_encoding::BASE64
            .decode(sig.ok_or_else(|| bad("no sig"))?.as_bytes())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| bad("sig is not 64 bytes of base64"))?;
        Ok(Self { key, at, nonce, sig })
    }

    /// Checks time and signature. Nonce reuse is the server's to track, for as long as the skew allows.
    pub fn verify(&self, method: &str, target: &str, body: &[u8], now: Timestamp) -> Result<(), RequestSignatureError> {
        if target.len() > MAX_TARGET_LEN {
            return Err(RequestSignatureError::Malformed("request target is too long".into()));
        }
        if now.seconds_since(self.at).abs() > MAX_SKEW_SECONDS {
            return Err(RequestSignatureError::Stale { at: self.at, now });
        }
        if self.key.verify(&message(method, target, body, self.at, &self.nonce), &self.sig) {
            Ok(())
        } else {
            Err(RequestSignatureError::BadSignature(self.key.to_string()))
        }
    }

    /// As [`Self::verify`], for a request signed with [`sign_bound`].
    pub fn verify_bound(
        &self,
        method: &str,
        url: &str,
        binding: &Digest,
        now: Timestamp,
    ) -> Result<(), RequestSignatureError> {
        if url.len() > MAX_TARGET_LEN {
            return Err(RequestSignatureError::Malformed("request URL is too long".into()));
        }
        if now.seconds_since(self.at).abs() > MAX_SKEW_SECONDS {
            return Err(RequestSignatureError::Stale { at: self.at, now });
        }
        if self.key.verify(&bound_message(method, url, binding, self.at, &self.nonce), &self.sig) {
            Ok(())
        } else {
            Err(RequestSignatureError::BadSignature(self.key.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSeed;

    #[test]
    fn signs_and_verifies_and_binds_every_part() {
        let id = Identity::from_seed(&MasterSeed::generate());
        let now = Timestamp::from_unix(1_800_000_000).unwrap();
        let header = sign(&id, "GET", "/v1/tags/ab/entries?after=3", b"", now);
        let parsed = RequestSignature::parse(&header).unwrap();
        assert_eq!(parsed.key, id.signing_public());
        parsed.verify("GET", "/v1/tags/ab/entries?after=3", b"", now).unwrap();
        assert!(parsed.verify("POST", "/v1/tags/ab/entries?after=3", b"", now).is_err());
        assert!(parsed.verify("GET", "/v1/tags/ab/entries?after=4", b"", now).is_err());
        assert!(parsed.verify("GET", "/v1/tags/ab/entries?after=3", b"x", now).is_err());
        let later = now.checked_add(61).unwrap();
        assert!(matches!(
            parsed.verify("GET", "/v1/tags/ab/entries?after=3", b"", later),
            Err(RequestSignatureError::Stale { .. })
        ));
    }

    #[test]
    fn bound_signatures_cover_url_and_binding() {
        let id = Identity::from_seed(&MasterSeed::generate());
        let now = Timestamp::from_unix(1_800_000_000).unwrap();
        let url = "http://127.0.0.1:7430/fhir/Observation?patient=p1";
        let grant = Digest::of(b"grant");
        let nonce = EntryNonce::generate();
        let parsed = RequestSignature::parse(&sign_bound(&id, "GET", url, &grant, now, &nonce)).unwrap();
        assert_eq!(parsed.nonce, nonce);
        parsed.verify_bound("GET", url, &grant, now).unwrap();
        assert!(parsed.verify_bound("GET", "http://127.0.0.1:7431/fhir/Observation?patient=p1", &grant, now).is_err());
        assert!(parsed.verify_bound("GET", url, &Digest::of(b"another grant"), now).is_err());
        // A signature for the ledger's requests is not one for a gateway's, and the other way round.
        assert!(parsed.verify("GET", url, b"", now).is_err());
    }

    #[test]
    fn malformed_headers_are_named() {
        for header in ["", "key=x", "key=a;key=b", "foo=1", &"a".repeat(600)] {
            assert!(matches!(RequestSignature::parse(header), Err(RequestSignatureError::Malformed(_))), "{header}");
        }
    }
}
