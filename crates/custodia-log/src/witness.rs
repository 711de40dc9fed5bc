//! C2SP tlog-witness (c2sp.org/tlog-witness): the `add-checkpoint` request body and the checks a
//! witness makes before it cosigns, as pure functions both sides share.
//!
//! A request is `old <size>\n`, at most 63 consistency-proof lines (base64 hashes), an empty line and
//! a signed checkpoint note. The witness answers 200 with cosignature lines, 400 for a malformed body,
//! 403 for a checkpoint without a valid signature by the log's key, 404 for a log it does not know,
//! 409 (`text/x.tlog.size`, its size) when `old` is not the size it last cosigned, and 422 when the
//! checkpoint is not consistent with what it cosigned.

use crate::checkpoint::{Checkpoint, parse_decimal};
use crate::hash::{Hash, empty_root};
use crate::note::{MAX_NOTE_BYTES, NoteError, NoteSignature, NoteVerifier, SignedNote};
use crate::proof::verify_consistency;

/// The specification's cap: a client never sends more proof lines than this.
pub const MAX_PROOF_LINES: usize = 63;
/// The largest request body a witness reads: the proof lines and a checkpoint with its signatures.
pub const MAX_ADD_CHECKPOINT_BYTES: usize = 64 * 1024;
/// The content type of a 409 answer's body, the witness's size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` body. The note is checked only for its shape until [`check`] verifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<Hash>,
    /// The checkpoint's signed note, exactly as sent.
    pub note: String,
    pub signed: SignedNote,
    pub checkpoint: Checkpoint,
}

/// Why a witness refuses; each maps to the status code the specification gives it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Forbidden(String),
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    /// The size the witness last cosigned, which the client should send as `old`.
    #[error("the witness last cosigned size {0}")]
    Conflict(u64),
    #[error("not consistent with what the witness cosigned: {0}")]
    Inconsistent(String),
}

impl Refusal {
    /// The HTTP status code tlog-witness requires for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict(_) => 409,
            Refusal::Inconsistent(_) => 422,
        }
    }
}

fn bad(what: impl Into<String>) -> Refusal {
    Refusal::BadRequest(what.into())
}

impl AddCheckpoint {
    /// Parses a request body: the old size, the proof and the note's shape (signatures unverified).
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        if body.len() > MAX_ADD_CHECKPOINT_BYTES {
            return Err(bad(format!("the body is larger than {MAX_ADD_CHECKPOINT_BYTES} bytes")));
        }
        let body = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (head, note) = body.split_once("\n\n").ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines.next().unwrap_or_default();
        let old_size = old
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| bad("the first line must be `old <size>` in decimal without leading zeros"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!("more than {MAX_PROOF_LINES} consistency proof lines")));
            }
            proof.push(Hash::from_base64(line).map_err(|_| bad("a proof line is not a base64 SHA-256 hash"))?);
        }
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad("the checkpoint note is too large"));
        }
        let signed = SignedNote::parse(note).map_err(|e| bad(format!("the checkpoint is not a signed note: {e}")))?;
        let checkpoint = Checkpoint::parse(&signed.text).map_err(|e| bad(format!("malformed checkpoint: {e}")))?;
        if old_size > checkpoint.size {
            return Err(bad(format!("the old size {old_size} is above the checkpoint's size {}", checkpoint.size)));
        }
        Ok(Self { old_size, proof, note: note.to_owned(), signed, checkpoint })
    }

    /// The request body for `note` (a signed checkpoint) from `old_size`, with `proof`.
    pub fn body(old_size: u64, proof: &[Hash], note: &str) -> String {
        let mut body = format!("old {old_size}\n");
        for hash in proof {
            body.push_str(&hash.to_base64());
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        body
    }
}

/// A witness's checks, in the specification's order, once it has found the log's keys for the
/// checkpoint's origin and read what it last cosigned for it (`None`: never). On success the
/// checkpoint may be recorded and cosigned.
pub fn check(request: &AddCheckpoint, log_keys: &[NoteVerifier], cosigned: Option<(u64, Hash)>) -> Result<(), Refusal> {
    request.signed.verify(log_keys).map_err(|e| match e {
        NoteError::UnknownVerifier(_) => {
            Refusal::Forbidden("no signature by a key the witness trusts for this log".into())
        }
        other => Refusal::Forbidden(other.to_string()),
    })?;
    let (size, root) = cosigned.unwrap_or((0, empty_root()));
    if request.old_size != size {
        return Err(Refusal::Conflict(size));
    }
    let checkpoint = &request.checkpoint;
    if checkpoint.size == 0 && checkpoint.root != empty_root() {
        return Err(Refusal::Inconsistent("a checkpoint of size 0 must have the empty tree's root".into()));
    }
    if request.old_size == 0 {
        if !request.proof.is_empty() {
            return Err(Refusal::Inconsistent("a proof from size 0 must be empty".into()));
        }
        return Ok(());
    }
    if request.old_size == checkpoint.size {
        if checkpoint.root != root {
            return Err(Refusal::Inconsistent(format!("a different root for size {size}")));
        }
        return Ok(());
    }
    verify_consistency(size, checkpoint.size, &root, &checkpoint.root, &request.proof)
        .map_err(|e| Refusal::Inconsistent(format!("the consistency proof from {size} does not verify: {e}")))
}

/// Reads a 409 answer's body: a decimal size and a newline.
pub fn parse_size_body(body: &str) -> Option<u64> {
    body.strip_suffix('\n').and_then(parse_decimal)
}

/// Reads a 200 answer's body: one or more signature lines, each ending in a newline. What they sign
/// is for the caller to verify.
pub fn parse_cosignature_lines(body: &str) -> Result<Vec<NoteSignature>, NoteError> {
    if body.len() > MAX_ADD_CHECKPOINT_BYTES {
        return Err(NoteError::TooLarge);
    }
    // A signature block is parsed as a note's: prefix a one-line text and a blank line.
    let note = SignedNote::parse(&format!("x\n\n{body}"))?;
    Ok(note.signatures)
}
