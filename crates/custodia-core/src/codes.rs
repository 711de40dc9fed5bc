//! Shared plumbing for values drawn from a fixed table of HL7 codes (purposes, sensitivity labels):
//! parsed case-insensitively, printed and serialised as the bare code.

/// Implements `FromStr`, `Display`, `Debug`, `Serialize` and `Deserialize` for a newtype over a
/// `&'static str` code. `$lookup` maps an upper-cased code to the table's `&'static str` or `None`.
macro_rules! coded_value {
    ($ty:ident, $err:ident, $lookup:expr) => {
        impl std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(text: &str) -> Result<Self, $err> {
                let upper = text.trim().to_ascii_uppercase();
                let lookup: fn(&str) -> Option<&'static str> = $lookup;
                lookup(&upper).map($ty).ok_or_else(|| $err(text.to_owned()))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }

        crate::codes::serde_as_string!($ty);
    };
}

pub(crate) use coded_value;

/// Serialises a type as its `Display` string and deserialises it through `FromStr`, so the JSON form of
/// a key, a time or a scope is the same text a person types.
macro_rules! serde_as_string {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use serde_as_string;

/// Finds `code` in a `(code, display)` table, returning the table's own string.
pub(crate) fn find(table: &'static [(&'static str, &'static str)], code: &str) -> Option<(&'static str, &'static str)> {
    table.iter().find(|(c, _)| *c == code).copied()
}
