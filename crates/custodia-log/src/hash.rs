//! RFC 6962 / RFC 9162 section 2.1.1 hashing: SHA-256 with a one-byte prefix that keeps a leaf from
//! ever being taken for an interior node (the second-preimage defence).

use std::fmt;

use data_encoding::{BASE64, HEXLOWER_PERMISSIVE};
use sha2::{Digest, Sha256};

/// A SHA-256 tree hash: a leaf hash, an interior node or a root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashError {
    #[error("not a hash: expected 32 bytes in padded standard base64")]
    BadBase64,
    #[error("not a hash: expected 64 hex digits")]
    BadHex,
}

impl Hash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Standard padded base64, as checkpoints and tiles print hashes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Strict: only the canonical 44-character padded form is accepted, so one hash has one text.
    pub fn from_base64(text: &str) -> Result<Self, HashError> {
        let bytes = crate::note::decode_base64(text).ok_or(HashError::BadBase64)?;
        Ok(Self(bytes.try_into().map_err(|_| HashError::BadBase64)?))
    }

    /// Accepts either case; [`fmt::Display`] prints lowercase.
    pub fn from_hex(text: &str) -> Result<Self, HashError> {
        let mut out = [0u8; 32];
        if text.len() != 64 || HEXLOWER_PERMISSIVE.decode_mut(text.as_bytes(), &mut out) != Ok(32) {
            return Err(HashError::BadHex);
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The hash of one log entry: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Hash(Sha256::new().chain_update([0x00]).chain_update(data).finalize().into())
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One stack buffer and one call: this runs about twice per appended leaf and per proof step.
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 2.1.1).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_are_strict() {
        let h = leaf_hash(b"hello world");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_string()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_string().to_uppercase()), Ok(h));
        assert_eq!(format!("{h:?}"), h.to_string());
        // Go's sumdb/tlog note_test.go: the tree hash of its example is RecordHash("hello world").
        assert_eq!(h.to_base64(), "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=");
        for bad in ["", "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0", "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb1="] {
            assert_eq!(Hash::from_base64(bad), Err(HashError::BadBase64), "{bad}");
        }
        assert_eq!(Hash::from_base64("q6yroAAAAAAAAAAAAAAAAAAAAAAAAAAAAGAGHgASNFYA"), Err(HashError::BadBase64));
        assert_eq!(Hash::from_hex("zz"), Err(HashError::BadHex));
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(empty_root().to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
