//! Per-key rate limits and the replay cache for signed requests. Both live in memory and are bounded:
//! a flood of fresh keys or nonces evicts old state rather than growing without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use custodia_core::SigningPublicKey;
use custodia_core::entry::EntryNonce;

/// Beyond this many tracked keys, idle buckets are dropped.
const MAX_TRACKED_KEYS: usize = 100_000;
const MAX_TRACKED_NONCES: usize = 1_000_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per signing key: `rate` units a second, up to `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<SigningPublicKey, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate_per_second: u32, burst: u32) -> Self {
        Self { rate: f64::from(rate_per_second), burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `cost` units from `key`'s bucket; false if it does not hold that many.
    pub fn allow(&self, key: &SigningPublicKey, cost: u32) -> bool {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return false };
        if buckets.len() >= MAX_TRACKED_KEYS && !buckets.contains_key(key) {
            let full = Duration::from_secs_f64(self.burst / self.rate.max(1e-9));
            buckets.retain(|_, b| now.duration_since(b.last) < full);
        }
        let bucket = buckets.entry(*key).or_insert(Bucket { tokens: self.burst, last: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * self.rate).min(self.burst);
        bucket.last = now;
        let cost = f64::from(cost);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// Nonces of signed requests seen within the accepted clock skew; a second use is a replay.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<EntryNonce, Instant>>,
}

impl NonceCache {
    /// Records `nonce`; false if it was already used within `window`.
    pub fn first_use(&self, nonce: EntryNonce, window: Duration) -> bool {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else { return false };
        if seen.len() >= MAX_TRACKED_NONCES {
            seen.retain(|_, at| now.duration_since(*at) < window);
            if seen.len() >= MAX_TRACKED_NONCES {
                return false;
            }
        }
        match seen.get(&nonce) {
            Some(at) if now.duration_since(*at) < window => false,
            _ => {
                seen.insert(nonce, now);
                true
            }
        }
    }

    pub fn prune(&self, window: Duration) {
        let now = Instant::now();
        if let Ok(mut seen) = self.seen.lock() {
            seen.retain(|_, at| now.duration_since(*at) < window);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodia_core::{Identity, MasterSeed};

    #[test]
    fn buckets_refuse_beyond_the_burst_and_per_key() {
        let limiter = RateLimiter::new(1, 5);
        let a = Identity::from_seed(&MasterSeed::from_bytes([1; 32])).signing_public();
        let b = Identity::from_seed(&MasterSeed::from_bytes([2; 32])).signing_public();
        assert!(limiter.allow(&a, 5));
        assert!(!limiter.allow(&a, 1));
        assert!(limiter.allow(&b, 1));
    }

    #[test]
    fn a_nonce_is_good_once() {
        let cache = NonceCache::default();
        let n = EntryNonce::generate();
        assert!(cache.first_use(n, Duration::from_secs(120)));
        assert!(!cache.first_use(n, Duration::from_secs(120)));
        assert!(cache.first_use(EntryNonce::generate(), Duration::from_secs(120)));
    }
}
