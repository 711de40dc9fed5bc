//! The replay window: which envelopes the ledger has taken recently, in memory.
//!
//! An entry dated more than `max_age` from the ledger's clock is refused as stale, so an envelope can
//! only be replayed while its own date is within `max_age` of now. The window therefore needs to hold
//! only the envelopes whose date plus `max_age` lies ahead, and answers from memory what used to be a
//! database lookup per entry (and a unique index on a random key, the slowest part of a large store).
//!
//! Whatever the window lets go (stale by the clock, or the oldest-dated when it holds `capacity`), its
//! horizon moves up to that date: entries dated at or before the horizon are refused as stale, so an
//! envelope that was forgotten can never come back, whatever the clock does. Under sustained full load
//! this narrows how far behind a submitter's clock may be; it never lets a replay through.

use std::collections::{BTreeSet, HashSet};

use custodia_core::entry::Digest;

/// The first 16 bytes of an envelope's SHA-256: a collision between honest entries is beyond reach,
/// and a replay is the same bytes, so the same key.
type Key = u128;

fn key(hash: &Digest) -> Key {
    let mut head = [0u8; 16];
    head.copy_from_slice(&hash.as_bytes()[..16]);
    u128::from_be_bytes(head)
}

#[derive(Debug)]
pub struct ReplayWindow {
    max_age: i64,
    capacity: usize,
    keys: HashSet<Key>,
    /// (date of the entry, key), oldest-dated first.
    by_date: BTreeSet<(i64, Key)>,
    /// Entries dated at or before this (Unix seconds) are refused: the window may have forgotten them.
    horizon: i64,
}

/// Why the window refuses an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The same envelope is in the log.
    Replayed,
    /// The entry is dated at or before the horizon, which full load has moved this close to now.
    BeforeHorizon(i64),
}

impl ReplayWindow {
    pub fn new(max_age_seconds: i64, capacity: usize) -> Self {
        Self {
            max_age: max_age_seconds,
            capacity: capacity.max(1),
            keys: HashSet::new(),
            by_date: BTreeSet::new(),
            horizon: i64::MIN,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn horizon(&self) -> i64 {
        self.horizon
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Refuses entries dated at or before `at` from now on (an envelope dated `at` was not kept).
    pub fn raise_horizon(&mut self, at: i64) {
        self.horizon = self.horizon.max(at);
    }

    /// Whether an envelope dated `at` (Unix seconds) may be taken.
    pub fn check(&self, hash: &Digest, at: i64) -> Result<(), Refusal> {
        if at <= self.horizon {
            return Err(Refusal::BeforeHorizon(self.horizon));
        }
        if self.keys.contains(&key(hash)) { Err(Refusal::Replayed) } else { Ok(()) }
    }

    /// Remembers an envelope the log now holds, dated `at`; lets go of what can no longer be replayed at
    /// `now`, and of the oldest-dated beyond the capacity, moving the horizon past each.
    pub fn insert(&mut self, hash: &Digest, at: i64, now: i64) {
        if at + self.max_age < now {
            // Stale already: refused by date from now on, whichever clock admits it next.
            self.raise_horizon(at);
        } else if self.keys.insert(key(hash)) {
            self.by_date.insert((at, key(hash)));
        }
        while let Some(&(oldest, k)) = self.by_date.first() {
            if oldest + self.max_age >= now && self.by_date.len() <= self.capacity {
                break;
            }
            self.raise_horizon(oldest);
            self.by_date.pop_first();
            self.keys.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> Digest {
        Digest::of(&n.to_be_bytes())
    }

    #[test]
    fn a_taken_envelope_is_refused_until_it_is_stale_anyway() {
        let mut window = ReplayWindow::new(600, 100);
        window.insert(&hash(1), 1_000, 1_000);
        assert_eq!(window.check(&hash(1), 1_000), Err(Refusal::Replayed));
        assert_eq!(window.check(&hash(2), 1_000), Ok(()));
        // Still replayable (dated within max_age of now): still remembered.
        window.insert(&hash(2), 1_500, 1_600);
        assert_eq!(window.check(&hash(1), 1_000), Err(Refusal::Replayed));
        // Past max_age the window lets it go, and refuses it by date from then on, even to a clock that
        // went back.
        window.insert(&hash(3), 1_700, 1_601);
        assert_eq!(window.len(), 2);
        assert_eq!(window.horizon(), 1_000);
        assert_eq!(window.check(&hash(1), 1_000), Err(Refusal::BeforeHorizon(1_000)));
        // An entry already stale when it is logged is not kept, but nothing at its date passes again.
        window.insert(&hash(4), 1_050, 1_700);
        assert_eq!(window.check(&hash(4), 1_050), Err(Refusal::BeforeHorizon(1_050)));
    }

    #[test]
    fn the_oldest_dated_go_first_whatever_the_order_they_came_in() {
        let mut window = ReplayWindow::new(600, 2);
        // A far-future date arriving first must not become the horizon when the window fills.
        window.insert(&hash(1), 1_590, 1_000);
        window.insert(&hash(2), 1_000, 1_000);
        window.insert(&hash(3), 1_001, 1_000);
        assert_eq!(window.horizon(), 1_000);
        assert_eq!(window.check(&hash(1), 1_590), Err(Refusal::Replayed));
        assert_eq!(window.check(&hash(9), 1_002), Ok(()));
    }

    #[test]
    fn a_full_window_moves_its_horizon_instead_of_forgetting_silently() {
        let mut window = ReplayWindow::new(600, 3);
        for n in 0..5 {
            window.insert(&hash(n), 1_000 + n as i64, 1_010);
        }
        assert_eq!(window.len(), 3);
        assert_eq!(window.horizon(), 1_001);
        // Forgotten envelopes are refused by date, before the replay check could miss them.
        assert_eq!(window.check(&hash(0), 1_000), Err(Refusal::BeforeHorizon(1_001)));
        assert_eq!(window.check(&hash(1), 1_001), Err(Refusal::BeforeHorizon(1_001)));
        assert_eq!(window.check(&hash(4), 1_004), Err(Refusal::Replayed));
        assert_eq!(window.check(&hash(9), 1_002), Ok(()));
    }
}
