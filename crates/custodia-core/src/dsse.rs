//! DSSE envelopes (the Dead Simple Signing Envelope of in-toto and Sigstore).
//!
//! The signature covers PAE(payloadType, payload): the exact payload bytes, never a re-serialisation, so a
//! verifier need not agree with the signer on how JSON is formatted. The JSON form follows the DSSE spec:
//! `{"payload": <base64>, "payloadType": <string>, "signatures": [{"keyid": <string>, "sig": <base64>}]}`.

use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD};
use serde::{Deserialize, Serialize};

use crate::keys::{Identity, SigningPublicKey};

/// The largest envelope we will parse. Statements are a few hundred bytes; this leaves room for long
/// scope lists while keeping a hostile input's cost small.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// More signatures than this is not something an honest signer produces.
pub const MAX_SIGNATURES: usize = 4;
const MAX_PAYLOAD_TYPE_LEN: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope is larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    #[error("envelope is not valid DSSE JSON: {0}")]
    Malformed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// The signer's printable key; a hint only, the signature is what counts.
    pub keyid: String,
    pub sig: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

/// Pre-Authentication Encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// DSSE allows standard or URL-safe base64, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&BASE64, &BASE64_NOPAD, &BASE64URL, &BASE64URL_NOPAD].iter().find_map(|e| e.decode(text.as_bytes()).ok())
}

impl Envelope {
    /// Signs `payload` under `payload_type` with one signature.
    pub fn sign(payload_type: &str, payload: Vec<u8>, identity: &Identity) -> Self {
        let sig = identity.sign(&pae(payload_type, &payload));
        let keyid = identity.signing_public().to_string();
        Self { payload_type: payload_type.to_owned(), payload, signatures: vec![EnvelopeSignature { keyid, sig }] }
    }

    /// True if some signature over this envelope verifies under `key`.
    pub fn is_signed_by(&self, key: &SigningPublicKey) -> bool {
        let message = pae(&self.payload_type, &self.payload);
        self.signatures.iter().any(|s| key.verify(&message, &s.sig))
    }

    /// Indented JSON, for files people open.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings cannot fail.
        #[allow(clippy::expect_used)]
        serde_json::to_string_pretty(&self.to_wire()).expect("an envelope of strings always serialises")
    }

    /// One-line JSON, for the wire and the ledger, where every byte is stored.
    pub fn to_compact_json(&self) -> String {
        #[allow(clippy::expect_used)]
        serde_json::to_string(&self.to_wire()).expect("an envelope of strings always serialises")
    }

    fn to_wire(&self) -> WireEnvelope {
        WireEnvelope {
            payload: BASE64.encode(&self.payload),
            payload_type: self.payload_type.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature { keyid: s.keyid.clone(), sig: BASE64.encode(&s.sig) })
                .collect(),
        }
    }

    /// Parses the JSON form. This checks shape only; no signature is checked here.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge);
        }
        let malformed = |m: &str| EnvelopeError::Malformed(m.to_owned());
        let wire: WireEnvelope = serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if wire.payload_type.is_empty() || wire.payload_type.len() > MAX_PAYLOAD_TYPE_LEN {
            return Err(malformed("payloadType is empty or too long"));
        }
        if wire.signatures.is_empty() {
            return Err(malformed("no signatures"));
        }
        if wire.signatures.len() > MAX_SIGNATURES {
            return Err(malformed("too many signatures"));
        }
        let payload = decode_base64(&wire.payload).ok_or_else(|| malformed("payload is not base64"))?;
        let signatures = wire
            .signatures
            .into_iter()
            .map(|s| {
                let sig = decode_base64(&s.sig)
                    .and_then(|b| <[u8; 64]>::try_from(b).ok())
                    .ok_or_else(|| malformed("a signature is not 64 bytes of base64"))?;
                Ok(EnvelopeSignature { keyid: s.keyid, sig })
            })
            .collect::<Result<_, EnvelopeError>>()?;
        Ok(Self { payload_type: wire.payload_type, payload, signatures })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSeed;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn sign_then_parse_verifies() {
        let id = Identity::from_seed(&MasterSeed::generate());
        let env = Envelope::sign("application/x-test", b"{}".to_vec(), &id);
        let back = Envelope::from_json(env.to_json().as_bytes()).unwrap();
        assert_eq!(back, env);
        assert!(back.is_signed_by(&id.signing_public()));
        let other = Identity::from_seed(&MasterSeed::generate());
        assert!(!back.is_signed_by(&other.signing_public()));
    }

    #[test]
    fn changing_the_type_breaks_the_signature() {
        let id = Identity::from_seed(&MasterSeed::generate());
        let mut env = Envelope::sign("application/x-test", b"{}".to_vec(), &id);
        env.payload_type = "application/x-other".into();
        assert!(!env.is_signed_by(&id.signing_public()));
    }

    #[test]
    fn shape_errors() {
        assert!(matches!(Envelope::from_json(b"[]"), Err(EnvelopeError::Malformed(_))));
        assert!(matches!(
            Envelope::from_json(br#"{"payload":"e30=","payloadType":"t","signatures":[]}"#),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::from_json(br#"{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AAAA"}]}"#),
            Err(EnvelopeError::Malformed(_))
        ));
        assert_eq!(Envelope::from_json(&vec![b' '; MAX_ENVELOPE_BYTES + 1]), Err(EnvelopeError::TooLarge));
    }

    proptest::proptest! {
        #[test]
        fn json_round_trip(payload: Vec<u8>, ty in "[a-z/.+-]{1,40}", sig: [u8; 32], keyid in "[a-z0-9]{0,20}") {
            let mut full = [0u8; 64];
            full[..32].copy_from_slice(&sig);
            let env = Envelope { payload_type: ty, payload, signatures: vec![EnvelopeSignature { keyid, sig: full }] };
            proptest::prop_assert_eq!(Envelope::from_json(env.to_json().as_bytes()).unwrap(), env);
        }
    }
}
