//! The one clock. Every deadline, TTL and `exp` check in the crate reads time
//! here, so tests drive all of it with `tokio::time::pause()` and
//! `advance()` instead of sleeping.
//!
//! - [`now`] is tokio's monotonic [`Instant`](tokio::time::Instant): the key
//!   set's TTLs, refresh budgets and cache lifetimes.
//! - [`unix_secs`] is the wall clock in seconds since 1970, for the claims
//!   (`exp`, `nbf`, `iat`) and client assertions. It is the system clock
//!   shifted by however far tokio's clock stands from the real monotonic
//!   clock: zero in production (both read the same clock), and exactly the
//!   paused-and-advanced offset in a test, so `advance(61 s)` makes a token
//!   with `exp = now + 60` expire.
//! - [`UntilExpiry`] lets the moka caches evict an entry at its deadline on
//!   this clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use tokio::time::Instant;

/// Monotonic now, pausable in tests.
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch. A clock set before 1970 fails closed: it
/// reads as the end of time, so every token is expired.
pub(crate) fn unix_secs() -> u64 {
    let wall = SystemTime::now();
    let tokio_now = Instant::now().into_std();
    let real_now = std::time::Instant::now();
    // tokio's clock only differs from the real one while paused: then it
    // stands still, or ahead after `advance`.
    let shifted = if tokio_now >= real_now {
        wall.checked_add(tokio_now - real_now)
    } else {
        wall.checked_sub(real_now - tokio_now)
    };
    shifted
        .unwrap_or(wall)
        .duration_since(UNIX_EPOCH)
        .map_or(u64::MAX, |d| d.as_secs())
}

/// A cache entry that knows its deadline on [`now`]'s clock.
pub(crate) trait ExpiresAt {
    fn expires(&self) -> Instant;
}

/// Evicts each moka entry at its own deadline, read on this clock rather
/// than moka's. Moka's eviction only reclaims memory: the caches still treat
/// an entry past its deadline as a miss.
pub(crate) struct UntilExpiry;

impl<K, V: ExpiresAt> moka::Expiry<K, V> for UntilExpiry {
    fn expire_after_create(&self, _: &K, entry: &V, _: std::time::Instant) -> Option<Duration> {
        Some(entry.expires().saturating_duration_since(now()))
    }
}
