//! The compact binary form of the statements the ledger stores for every entry (ledger entries and the
//! access events sealed inside them), where every byte is kept for years.
//!
//! Fields follow each other in a fixed order with no names: fixed-size values (keys, ids, digests) as
//! their bytes, integers big-endian, strings and byte strings after a big-endian u16 length, lists after
//! a u8 count, options and booleans as one byte 0 or 1. Every value has exactly one encoding: the reader
//! refuses any other tag byte, a string that is not UTF-8 and bytes left over at the end.

use std::fmt;

/// Why bytes are not a statement's binary form, or a statement has no binary form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryError(pub String);

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BinaryError {}

/// Builds an encoding; the first field that does not fit is reported by [`Writer::finish`].
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    error: Option<BinaryError>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> Result<Vec<u8>, BinaryError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    fn fail(&mut self, what: &str, reason: String) {
        if self.error.is_none() {
            self.error = Some(BinaryError(format!("{what}: {reason}")));
        }
    }

    pub fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    pub fn u64(&mut self, value: u64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    pub fn bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    /// A value of a size both sides know (a key, an id, a digest).
    pub fn fixed(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub fn bytes(&mut self, what: &str, bytes: &[u8]) {
        match u16::try_from(bytes.len()) {
            Ok(len) => {
                self.out.extend_from_slice(&len.to_be_bytes());
                self.out.extend_from_slice(bytes);
            }
            Err(_) => self.fail(what, format!("{} bytes is more than {}", bytes.len(), u16::MAX)),
        }
    }

    pub fn str(&mut self, what: &str, text: &str) {
        self.bytes(what, text.as_bytes());
    }

    pub fn option<T>(&mut self, value: Option<T>, write: impl FnOnce(&mut Self, T)) {
        match value {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                write(self, v);
            }
        }
    }

    pub fn list<T>(&mut self, what: &str, items: &[T], mut write: impl FnMut(&mut Self, &T)) {
        match u8::try_from(items.len()) {
            Ok(count) => {
                self.u8(count);
                for item in items {
                    write(self, item);
                }
            }
            Err(_) => self.fail(what, format!("{} items is more than {}", items.len(), u8::MAX)),
        }
    }
}

/// Reads an encoding front to back; every method names what it was reading when the bytes ran out.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn take(&mut self, what: &str, n: usize) -> Result<&'a [u8], BinaryError> {
        if self.rest.len() < n {
            return Err(BinaryError(format!("truncated in {what}: {} bytes left, {n} needed", self.rest.len())));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], BinaryError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(what, N)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, BinaryError> {
        Ok(self.fixed::<1>(what)?[0])
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, BinaryError> {
        Ok(u64::from_be_bytes(self.fixed(what)?))
    }

    pub fn i64(&mut self, what: &str) -> Result<i64, BinaryError> {
        Ok(i64::from_be_bytes(self.fixed(what)?))
    }

    pub fn bool(&mut self, what: &str) -> Result<bool, BinaryError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(BinaryError(format!("{what}: {other} is neither 0 nor 1"))),
        }
    }

    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], BinaryError> {
        let len = u16::from_be_bytes(self.fixed(what)?);
        self.take(what, usize::from(len))
    }

    pub fn str(&mut self, what: &str) -> Result<&'a str, BinaryError> {
        std::str::from_utf8(self.bytes(what)?).map_err(|_| BinaryError(format!("{what} is not UTF-8")))
    }

    pub fn option<T>(
        &mut self,
        what: &str,
        read: impl FnOnce(&mut Self) -> Result<T, BinaryError>,
    ) -> Result<Option<T>, BinaryError> {
        if self.bool(what)? { read(self).map(Some) } else { Ok(None) }
    }

    pub fn list<T>(
        &mut self,
        what: &str,
        mut read: impl FnMut(&mut Self) -> Result<T, BinaryError>,
    ) -> Result<Vec<T>, BinaryError> {
        let count = self.u8(what)?;
        // Each item takes at least one byte, so a count cannot make the reader allocate for nothing.
        if usize::from(count) > self.rest.len() {
            return Err(BinaryError(format!("truncated in {what}: {count} items announced")));
        }
        (0..count).map(|_| read(self)).collect()
    }

    /// True once every byte was read: a field added at the end of a format is absent from older encodings.
    pub fn is_done(&self) -> bool {
        self.rest.is_empty()
    }

    /// Refuses bytes after the last field: an encoding has exactly one length.
    pub fn end(self) -> Result<(), BinaryError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(BinaryError(format!("{} bytes after the last field", self.rest.len())))
        }
    }
}

/// Parses a coded value and insists on its one spelling (parsers of codes also accept lower case).
pub fn code<T: std::str::FromStr + fmt::Display>(what: &str, text: &str) -> Result<T, BinaryError> {
    match text.parse::<T>() {
        Ok(value) if value.to_string() == text => Ok(value),
        _ => Err(BinaryError(format!("{what}: {text:?} is not a known code in its canonical form"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exactly_one_encoding() {
        let mut w = Writer::new();
        w.u8(7);
        w.u64(1 << 40);
        w.i64(-5);
        w.bool(true);
        w.fixed(&[9; 4]);
        w.str("name", "Dr. Ö");
        w.option(Some(3u8), |w, v| w.u8(v));
        w.option(None::<u8>, |w, v| w.u8(v));
        w.list("items", &["a", "bc"], |w, s| w.str("item", s));
        let bytes = w.finish().unwrap();

        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u64("b").unwrap(), 1 << 40);
        assert_eq!(r.i64("c").unwrap(), -5);
        assert!(r.bool("d").unwrap());
        assert_eq!(r.fixed::<4>("e").unwrap(), [9; 4]);
        assert_eq!(r.str("name").unwrap(), "Dr. Ö");
        assert_eq!(r.option("f", |r| r.u8("f")).unwrap(), Some(3));
        assert_eq!(r.option("g", |r| r.u8("g")).unwrap(), None);
        assert_eq!(r.list("items", |r| r.str("item").map(str::to_owned)).unwrap(), ["a", "bc"]);
        r.end().unwrap();

        let mut longer = bytes.clone();
        longer.push(0);
        let mut r = Reader::new(&longer);
        r.take("all", bytes.len()).unwrap();
        assert!(r.end().unwrap_err().0.contains("1 bytes after"));
        assert!(Reader::new(&[2]).bool("flag").unwrap_err().0.contains("neither 0 nor 1"));
        assert!(Reader::new(&[0, 5, b'a']).str("name").unwrap_err().0.contains("truncated in name"));
        assert!(Reader::new(&[0, 1, 0xff]).str("name").unwrap_err().0.contains("not UTF-8"));
        assert!(Reader::new(&[200, 0]).list("items", |r| r.u8("item")).unwrap_err().0.contains("200 items"));
    }

    #[test]
    fn oversized_fields_are_refused_when_written() {
        let mut w = Writer::new();
        w.bytes("body", &vec![0; 70_000]);
        assert!(w.finish().unwrap_err().0.starts_with("body: 70000 bytes"));
        let mut w = Writer::new();
        w.list("resources", &[0u8; 256], |w, v| w.u8(*v));
        assert!(w.finish().unwrap_err().0.starts_with("resources: 256 items"));
    }

    #[test]
    fn codes_have_one_spelling() {
        use crate::purpose::PurposeOfUse;
        assert_eq!(code::<PurposeOfUse>("purpose", "TREAT").unwrap(), PurposeOfUse::TREATMENT);
        assert!(code::<PurposeOfUse>("purpose", "treat").is_err());
        assert!(code::<PurposeOfUse>("purpose", "NOPE").is_err());
    }
}
