//! C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed statement of a log's size and root.
//!
//! The text is the origin line, the decimal tree size, the base64 root hash, then optional extension
//! lines. Parsing is strict (one checkpoint has one text), so that [`Checkpoint::to_text`] of a parsed
//! checkpoint gives back the exact bytes that were signed, which cosignatures rely on.

use crate::hash::Hash;
use crate::note::{NoteError, NoteSigner, NoteVerifier, SignedNote};

/// The longest checkpoint text we parse; a real one is about a hundred bytes.
pub const MAX_CHECKPOINT_BYTES: usize = 64 * 1024;
/// Extension lines are opaque and not recommended; a few are plenty.
pub const MAX_EXTENSION_LINES: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error(
        "the checkpoint is larger than {MAX_CHECKPOINT_BYTES} bytes or has more than {MAX_EXTENSION_LINES} extension lines"
    )]
    TooLarge,
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    #[error("the tree size is not a decimal number below 2^64 without leading zeros")]
    BadSize,
    #[error("the root hash is not 32 bytes of padded base64")]
    BadRoot,
    #[error("the checkpoint's origin {origin:?} is not the name of the log's key, {key_name:?}")]
    OriginMismatch { origin: String, key_name: String },
    #[error(transparent)]
    Note(#[from] NoteError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// `<origin>\n<size>\n<base64 root>\n`, then each extension line and a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses checkpoint text (a note's text, without the signatures).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge);
        }
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CheckpointError::Malformed("a control character other than newline"));
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Malformed("the text must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("the origin line is empty"));
        }
        let (Some(size), Some(root)) = (lines.next(), lines.next()) else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        let size = parse_size(size)?;
        let root = Hash::from_base64(root).map_err(|_| CheckpointError::BadRoot)?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(CheckpointError::Malformed("an extension line is empty"));
            }
            if extensions.len() == MAX_EXTENSION_LINES {
                return Err(CheckpointError::TooLarge);
            }
            extensions.push(line.to_owned());
        }
        Ok(Self { origin: origin.to_owned(), size, root, extensions })
    }

    /// The signed note of this checkpoint. A checkpoint that [`Checkpoint::parse`] would reject (an
    /// empty origin, a line holding a newline) signs to a note no verifier accepts.
    pub fn sign(&self, signer: &NoteSigner) -> String {
        let text = self.to_text();
        let line = signer.sign_line(&text);
        format!("{text}\n{line}")
    }

    /// Opens a signed checkpoint note: verifies it with the log's key, parses the text, and checks the
    /// origin equals the key's name (C2SP says the key name should match the origin; we require it, so
    /// one log key cannot vouch for another log's tree).
    pub fn open(note: &str, log_key: &NoteVerifier) -> Result<(Checkpoint, SignedNote), CheckpointError> {
        let signed = SignedNote::parse(note)?;
        signed.verify(std::slice::from_ref(log_key))?;
        let checkpoint = Self::parse(&signed.text)?;
        if checkpoint.origin != log_key.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: log_key.name().to_owned(),
            });
        }
        Ok((checkpoint, signed))
    }
}

/// ASCII decimal, no sign, no leading zeros (except "0" itself), at most u64::MAX: how every size
/// and index in the C2SP text formats is written.
pub fn parse_decimal(line: &str) -> Option<u64> {
    let digits_only = !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (line.len() > 1 && line.starts_with('0')) {
        return None;
    }
    line.parse().ok()
}

fn parse_size(line: &str) -> Result<u64, CheckpointError> {
    parse_decimal(line).ok_or(CheckpointError::BadSize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_canonical() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        for bad in ["", "00", "01", "+1", "-1", " 1", "1 ", "0x10", "18446744073709551616", "1_000"] {
            assert_eq!(parse_size(bad), Err(CheckpointError::BadSize), "{bad:?}");
        }
    }
}
