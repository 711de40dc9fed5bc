//! Time as the protocol sees it: whole seconds since the Unix epoch, written as RFC 3339 in UTC.
//!
//! The core never reads a clock; callers pass `Timestamp`s in. Durations are whole seconds too.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The earliest and latest instants a statement may name; outside them RFC 3339 has no four-digit year.
const MIN_UNIX: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("not an RFC 3339 time (expected e.g. 2026-11-21T09:30:00Z): {0:?}")]
    Unparsable(String),
    #[error("time is out of range (years 0001 to 9999)")]
    OutOfRange,
    #[error("not a duration (expected e.g. 90m, 12h, 7d or 2w): {0:?}")]
    BadDuration(String),
}

impl Timestamp {
    pub fn from_unix(secs: i64) -> Result<Self, TimeError> {
        if (MIN_UNIX..=MAX_UNIX).contains(&secs) { Ok(Self(secs)) } else { Err(TimeError::OutOfRange) }
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 with any offset, normalising to UTC. Fractions of a second are dropped.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimeError::Unparsable(text.to_owned()))?;
        Self::from_unix(t.unix_timestamp())
    }

    /// `self + seconds`, or an error past the year 9999.
    pub fn checked_add(self, seconds: u64) -> Result<Self, TimeError> {
        let secs = i64::try_from(seconds).map_err(|_| TimeError::OutOfRange)?;
        Self::from_unix(self.0.checked_add(secs).ok_or(TimeError::OutOfRange)?)
    }

    /// Seconds from `earlier` to `self`, negative if `earlier` is later.
    pub fn seconds_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The constructor keeps `self.0` in the range RFC 3339 can format.
        match OffsetDateTime::from_unix_timestamp(self.0).ok().and_then(|t| t.format(&Rfc3339).ok()) {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.0),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimeError;
    fn from_str(text: &str) -> Result<Self, TimeError> {
        Timestamp::parse(text)
    }
}

crate::codes::serde_as_string!(Timestamp);

/// Parses a human duration: a whole number and one unit of `s`, `m`, `h`, `d` or `w` (`90m`, `7d`).
pub fn parse_duration(text: &str) -> Result<u64, TimeError> {
    let bad = || TimeError::BadDuration(text.to_owned());
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() || digits.len() > 12 {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit_secs).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_normalises_to_utc() {
        let t = Timestamp::parse("2026-11-21T10:30:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-21T09:30:00Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert!(matches!(Timestamp::parse("yesterday"), Err(TimeError::Unparsable(_))));
        assert_eq!(Timestamp::from_unix(i64::MAX), Err(TimeError::OutOfRange));
        assert_eq!(Timestamp::from_unix(MAX_UNIX).unwrap().checked_add(1), Err(TimeError::OutOfRange));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        for bad in ["", "d", "7", "7x", "-1d", "1.5h", "99999999999999d", "7 d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_in_range_timestamp_round_trips(secs in MIN_UNIX..=MAX_UNIX) {
            let t = Timestamp::from_unix(secs).unwrap();
            proptest::prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }
    }
}
