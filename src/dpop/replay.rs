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

/// The default store: in this process's memory, bounded in entries.
/// Replicas do not see each other's proofs: run one instance, or use a
/// shared store (Redis, feature `redis`).
///
/// Proofs are kept in two generations as long as the longest window the
/// store was asked for: a key goes into the current one; when that is a
/// window old it becomes the previous one, and the previous one is
/// dropped. So every key is kept at least its window, and at most about
/// twice that; a proof is new when neither generation holds it. Keys are
/// SHA-256 outputs, so they are spread over shards by one of their bytes
/// and hashed by their first sixteen mixed with a secret seed of this
/// store (a client grinding `jti`s cannot aim at one bucket), and a
/// generation that was once swollen gives its memory back when it is
/// dropped. A check costs a lock of one of 64 shards and two lookups: a
/// fraction of a general-purpose cache's insert (README, Performance).
pub struct MemoryReplayStore {
    shards: Box<[std::sync::Mutex<Shard>]>,
    capacity: u64,
    /// Entries held in all shards.
    live: std::sync::atomic::AtomicU64,
    /// The longest TTL asked for so far, in nanoseconds: each generation's
    /// length.
    generation: std::sync::atomic::AtomicU64,
}

const SHARDS: usize = 64;

struct Shard {
    started: crate::clock::Instant,
    current: std::collections::HashSet<ReplayKey, KeyBytes>,
    previous: std::collections::HashSet<ReplayKey, KeyBytes>,
}

/// Hashes a [`ReplayKey`] by its first sixteen bytes, already a SHA-256
/// output, mixed with the store's seed (folded multiplies, as foldhash
/// does), so which keys share a bucket depends on a secret.
#[derive(Clone, Copy)]
struct KeyBytes(u64);

impl std::hash::BuildHasher for KeyBytes {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(self.0)
    }
}

struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // The key's bytes (an array hashes its length first, through
        // `write_usize`, ignored below).
        let mut first = [0u8; 16];
        let n = bytes.len().min(16);
        first[..n].copy_from_slice(&bytes[..n]);
        let word = |i: usize| u64::from_le_bytes(first[i..i + 8].try_into().expect("8 bytes"));
        // A folded multiply: the 128-bit product's halves xored.
        let product = u128::from(word(0) ^ self.0) * u128::from(word(8) ^ 0x9E37_79B9_7F4A_7C15);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
    fn write_usize(&mut self, _: usize) {}
}

impl MemoryReplayStore {
    /// A store for at most `capacity` proofs at once (each entry takes 40
    /// to 80 bytes, as the hash tables grow). When it is full, proofs are refused (503) rather than
    /// forgotten early: size it above twice the number of DPoP requests a
    /// proof window sees (the default store holds a million).
    ///
    /// ```
    /// let store = tokengate::dpop::MemoryReplayStore::new(100_000);
    /// # drop(store);
    /// ```
    pub fn new(capacity: u64) -> Self {
        use std::hash::BuildHasher;
        let now = crate::clock::now();
        // std's random hash keys (drawn from the OS once per thread, then
        // stepped for each new `RandomState`), as a seed nobody outside sees.
        let seed = KeyBytes(std::collections::hash_map::RandomState::new().hash_one(0u64));
        MemoryReplayStore {
            shards: (0..SHARDS)
                .map(|_| {
                    std::sync::Mutex::new(Shard {
                        started: now,
                        current: std::collections::HashSet::with_hasher(seed),
                        previous: std::collections::HashSet::with_hasher(seed),
                    })
                })
                .collect(),
            capacity,
            live: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
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

impl MemoryReplayStore {
    fn lock(&self, index: usize) -> std::sync::MutexGuard<'_, Shard> {
        // A panic while a shard was held left it whole (nothing in the lock
        // panics between two consistent states), so poisoning is moot.
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns `shard`'s generations over if the current one is `generation`
    /// old: a key in `current` was added after `started`, so kept through
    /// one more generation (at least `generation` from now) it has been
    /// kept its TTL when `previous` is next dropped.
    fn rotate(&self, shard: &mut Shard, now: crate::clock::Instant, generation: Duration) {
        let age = now.saturating_duration_since(shard.started);
        if age < generation {
            return;
        }
        let Shard {
            current, previous, ..
        } = shard;
        let mut dropped = previous.len();
        if age >= generation.saturating_mul(2) {
            dropped += current.len();
            current.clear();
        }
        std::mem::swap(current, previous);
        current.clear();
        // `clear` keeps the table: one that a burst (or a client aiming
        // every proof at this shard) swelled is given back, sized for what
        // the last generation held. Both, as after a long idle both are
        // empty.
        let expected = previous.len();
        for set in [&mut *current, &mut *previous] {
            let keep = set.len().max(expected);
            if set.capacity() > keep.saturating_mul(4).max(4096) {
                set.shrink_to(keep);
            }
        }
        shard.started = now;
        self.live
            .fetch_sub(dropped as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts one more entry if there is room: reserved first, so threads
    /// in different shards cannot all pass a check and overshoot.
    fn reserve(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if self.live.fetch_add(1, Relaxed) < self.capacity {
            return true;
        }
        self.live.fetch_sub(1, Relaxed);
        false
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck {
        use std::sync::atomic::Ordering::Relaxed;
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        let generation = Duration::from_nanos(self.generation.fetch_max(ttl, Relaxed).max(ttl));
        let index = usize::from(key[8]) % SHARDS;
        let now = crate::clock::now();
        let mut shard = self.lock(index);
        self.rotate(&mut shard, now, generation);
        if shard.previous.contains(&key) || shard.current.contains(&key) {
            return ReplayCheck::Done(Ok(false));
        }
        if !self.reserve() {
            // Shards turn over when they are used; before refusing, turn
            // over every one that is due (one lock at a time), then look
            // again.
            drop(shard);
            for other in 0..SHARDS {
                self.rotate(&mut self.lock(other), now, generation);
            }
            shard = self.lock(index);
            if shard.previous.contains(&key) || shard.current.contains(&key) {
                return ReplayCheck::Done(Ok(false));
            }
            if !self.reserve() {
                // Full: forgetting a key before its window ends would let
                // its proof through again. Fail closed.
                return ReplayCheck::Done(Err(ReplayError::Unavailable(
                    "the in-memory replay store is full".to_owned(),
                )));
            }
        }
        shard.current.insert(key);
        ReplayCheck::Done(Ok(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(store: &MemoryReplayStore, key: u8, ttl: Duration) -> Result<bool, ReplayError> {
        let mut k = [key; 32];
        k[8] = key; // the shard
        match store.first_use(k, ttl) {
            ReplayCheck::Done(answer) => answer,
            ReplayCheck::Pending(_) => unreachable!("in memory"),
        }
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn a_key_is_new_once_for_at_least_its_ttl_and_then_forgotten() {
        let store = MemoryReplayStore::new(100);
        assert_eq!(first(&store, 1, TTL), Ok(true));
        assert_eq!(first(&store, 1, TTL), Ok(false));
        // Added just before its generation ends, and still kept a full TTL.
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert_eq!(first(&store, 2, TTL), Ok(true));
        tokio::time::advance(Duration::from_secs(1)).await; // rotates
        assert_eq!(first(&store, 1, TTL), Ok(false));
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert_eq!(first(&store, 2, TTL), Ok(false), "kept its whole TTL");
        assert_eq!(first(&store, 1, TTL), Ok(false));
        tokio::time::advance(Duration::from_secs(1)).await; // rotates again
        assert_eq!(first(&store, 1, TTL), Ok(true), "forgotten after 2 TTLs");
        assert_eq!(first(&store, 2, TTL), Ok(false), "a TTL after it was added");
        // Long idle: everything is dropped at once.
        tokio::time::advance(TTL * 3).await;
        assert_eq!(first(&store, 2, TTL), Ok(true));
        assert_eq!(first(&store, 1, TTL), Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_refuses_new_keys_but_still_knows_replays() {
        let store = MemoryReplayStore::new(3);
        for key in 1..=3 {
            assert_eq!(first(&store, key, TTL), Ok(true));
        }
        assert!(matches!(
            first(&store, 4, TTL),
            Err(ReplayError::Unavailable(_))
        ));
        assert_eq!(first(&store, 2, TTL), Ok(false));
        // Room again once the generations have turned over.
        tokio::time::advance(TTL * 2).await;
        assert_eq!(first(&store, 4, TTL), Ok(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_longer_ttl_lengthens_every_generation() {
        let store = MemoryReplayStore::new(100);
        assert_eq!(first(&store, 1, TTL), Ok(true));
        assert_eq!(first(&store, 2, TTL * 3), Ok(true));
        tokio::time::advance(TTL * 3 - Duration::from_secs(1)).await;
        assert_eq!(first(&store, 2, TTL), Ok(false));
        assert_eq!(
            first(&store, 1, TTL),
            Ok(false),
            "kept longer, never shorter"
        );
    }

    #[test]
    fn keys_hash_by_their_first_bytes_and_a_seed_of_the_store() {
        use std::hash::BuildHasher;
        let hasher = |store: &MemoryReplayStore| store.lock(0).current.hasher().to_owned();
        let (one, two) = (MemoryReplayStore::new(1), MemoryReplayStore::new(1));
        let (mut a, mut b) = ([1u8; 32], [1u8; 32]);
        b[16..].fill(9);
        assert_eq!(hasher(&one).hash_one(a), hasher(&one).hash_one(b));
        for i in [0, 7, 8, 15] {
            let mut c = b;
            c[i] = 2;
            assert_ne!(
                hasher(&one).hash_one(c),
                hasher(&one).hash_one(b),
                "byte {i}"
            );
        }
        a[0] = 2;
        // Another store, another seed: which keys collide is not known
        // in advance (equal by chance once in 2^64).
        let (a, b) = (hasher(&one).hash_one(a), hasher(&two).hash_one(a));
        assert_ne!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn a_swollen_generation_gives_its_memory_back_when_dropped() {
        let store = MemoryReplayStore::new(1_000_000);
        let key = |i: u32| {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k // all in shard 0
        };
        for i in 0..50_000 {
            assert!(matches!(
                store.first_use(key(i), TTL),
                ReplayCheck::Done(Ok(true))
            ));
        }
        let swollen = store.lock(0).current.capacity();
        assert!(swollen >= 50_000);
        // Two quiet windows later, a few keys: the big table is not kept.
        for round in 0..2 {
            tokio::time::advance(TTL).await;
            let i = 1_000_000 + round;
            assert!(matches!(
                store.first_use(key(i), TTL),
                ReplayCheck::Done(Ok(true))
            ));
        }
        let shard = store.lock(0);
        assert!(shard.current.capacity() + shard.previous.capacity() < swollen / 4);
        drop(shard);
        assert_eq!(store.live.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_long_idle_neither_generation_keeps_a_swollen_table() {
        let store = MemoryReplayStore::new(1_000_000);
        for i in 0u32..50_000 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            assert!(matches!(
                store.first_use(k, TTL),
                ReplayCheck::Done(Ok(true))
            ));
        }
        let swollen = store.lock(0).current.capacity();
        // Both generations over at once: current and previous end empty.
        tokio::time::advance(TTL * 2).await;
        assert!(matches!(
            store.first_use([0u8; 32], TTL),
            ReplayCheck::Done(Ok(true))
        ));
        let shard = store.lock(0);
        assert!(shard.current.capacity() + shard.previous.capacity() < swollen / 4);
        drop(shard);
        assert_eq!(store.live.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
