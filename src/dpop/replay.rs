//! Replay protection for DPoP proofs (RFC 9449 §11.1): a proof's `jti` is
//! accepted once within its window. The store is a trait so that a fleet
//! can share one (Redis, feature `redis`); the default is in memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The key a proof is remembered by: SHA-256 of its `jti` and `htu`, so
/// that no client-chosen bytes reach the store as they are.
pub type ReplayKey = [u8; 32];

/// Why a replay store could not answer. DPoP requests are then refused
/// with 503 (fail closed: a proof that cannot be checked is not accepted),
/// while Bearer requests are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// No answer within the store's timeout.
    #[error("the replay store timed out")]
    Timeout,
    /// The store could not be reached or answered with an error; the text
    /// names no key and no secret.
    #[error("the replay store failed: {0}")]
    Unavailable(String),
}

/// The answer of a [`ReplayStore`]: at once (an in-memory store), or after
/// I/O (a network store).
pub enum ReplayCheck {
    /// `Ok(true)`: the key was new and is now recorded; `Ok(false)`: it was
    /// seen within its window (a replay).
    Done(Result<bool, ReplayError>),
    /// The answer to wait for.
    Pending(Pin<Box<dyn Future<Output = Result<bool, ReplayError>> + Send + 'static>>),
}

/// Where seen proofs are remembered.
///
/// `first_use` records `key` for `ttl` and says whether it was new, in one
/// atomic step: two replicas racing with the same proof must not both see
/// it as new.
///
/// ```
/// use std::time::Duration;
/// use tokengate::dpop::{MemoryReplayStore, ReplayCheck, ReplayStore};
///
/// let store = MemoryReplayStore::new(10_000);
/// let key = [7u8; 32];
/// assert!(matches!(store.first_use(key, Duration::from_secs(60)), ReplayCheck::Done(Ok(true))));
/// assert!(matches!(store.first_use(key, Duration::from_secs(60)), ReplayCheck::Done(Ok(false))));
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for `ttl`; whether it was new.
    fn first_use(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck;
}

/// The default store: in this process's memory, bounded in entries, each
/// kept for its proof's window. Replicas do not see each other's proofs:
/// run one instance, or use a shared store (Redis, feature `redis`).
pub struct MemoryReplayStore {
    /// Each entry holds its own TTL, which the expiry policy reads.
    seen: moka::sync::Cache<ReplayKey, Duration>,
    capacity: u64,
    /// Entries inserted and not yet removed (moka's own count lags).
    live: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryReplayStore {
    /// A store for at most `capacity` proofs at once (each entry is about
    /// 100 bytes). When it is full, proofs are refused (503) rather than
    /// forgotten early: size it above the number of DPoP requests a proof
    /// window sees (the default store holds a million).
    ///
    /// ```
    /// let store = tokengate::dpop::MemoryReplayStore::new(100_000);
    /// # drop(store);
    /// ```
    pub fn new(capacity: u64) -> Self {
        let live = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let removed = live.clone();
        MemoryReplayStore {
            // LRU, not TinyLFU: a new key must always be admitted, or a
            // proof could be reported new twice.
            seen: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(OwnTtl)
                .eviction_listener(move |_, _, _| {
                    removed.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                })
                .build(),
            capacity,
            live,
        }
    }
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field(
                "entries",
                &self.live.load(std::sync::atomic::Ordering::Relaxed),
            )
            .finish()
    }
}

/// Each entry lives for the TTL it was inserted with.
struct OwnTtl;

impl moka::Expiry<ReplayKey, Duration> for OwnTtl {
    fn expire_after_create(
        &self,
        _: &ReplayKey,
        ttl: &Duration,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck {
        use std::sync::atomic::Ordering::Relaxed;
        if self.live.load(Relaxed) >= self.capacity {
            // Full: an entry evicted before its window ends would let its
            // proof through again. Fail closed.
            return ReplayCheck::Done(Err(ReplayError::Unavailable(
                "the in-memory replay store is full".to_owned(),
            )));
        }
        let entry = self.seen.entry(key).or_insert(ttl);
        if entry.is_fresh() {
            self.live.fetch_add(1, Relaxed);
        }
        ReplayCheck::Done(Ok(entry.is_fresh()))
    }
}
