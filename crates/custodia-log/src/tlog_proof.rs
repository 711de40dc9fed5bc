//! C2SP tlog-proof (c2sp.org/tlog-proof@v1): an offline proof that an entry is in a log, with the
//! checkpoint (and its witnesses' cosignatures) it is proved against, that a patient can hand on.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <n>
//! <inclusion proof hashes, base64, one per line>
//!
//! <signed checkpoint note>
//! ```

use data_encoding::BASE64;

use crate::checkpoint::parse_decimal;
use crate::hash::Hash;
use crate::note::{MAX_NOTE_BYTES, decode_base64};
use crate::proof::{VerifyError, verify_inclusion};

pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// A tree of 2^64 leaves needs at most 64 hashes.
pub const MAX_PROOF_HASHES: usize = 64;
pub const MAX_EXTRA_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogProofError {
    #[error("malformed tlog-proof: {0}")]
    Malformed(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated data for the application.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim; verify it (and its cosignatures) under a policy.
    pub checkpoint: String,
}

impl TlogProof {
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            text.push_str(&hash.to_base64());
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        let malformed = TlogProofError::Malformed;
        if text.len() > MAX_NOTE_BYTES + 2 * MAX_EXTRA_BYTES {
            return Err(malformed("too large"));
        }
        let (head, checkpoint) = text.split_once("\n\n").ok_or(malformed("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n').peekable();
        if lines.next() != Some(HEADER) {
            return Err(malformed("the first line must be c2sp.org/tlog-proof@v1"));
        }
        let mut extra = None;
        if let Some(line) = lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            if line.len() > MAX_EXTRA_BYTES * 4 / 3 + 4 {
                return Err(malformed("the extra data is too large"));
            }
            extra = Some(decode_base64(line).ok_or(malformed("the extra data is not base64"))?);
            lines.next();
        }
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .and_then(parse_decimal)
            .ok_or(malformed("expected `index <n>` in decimal"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_HASHES {
                return Err(malformed("more than 64 proof hashes"));
            }
            proof.push(Hash::from_base64(line).map_err(|_| malformed("a proof line is not a base64 hash"))?);
        }
        Ok(Self { extra, index, proof, checkpoint: checkpoint.to_owned() })
    }

    /// Checks that `leaf` (the entry's leaf hash) is at [`TlogProof::index`] in the tree of `size` and
    /// `root`, which the caller takes from the checkpoint once it has accepted it.
    pub fn verify_leaf(&self, leaf: &Hash, size: u64, root: &Hash) -> Result<(), VerifyError> {
        verify_inclusion(leaf, self.index, size, &self.proof, root)
    }
}
