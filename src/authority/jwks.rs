//! The issuer's key set (RFC 7517 §5), fetched from `jwks_uri` and kept
//! fresh without ever making a request wait for a scheduled refresh.
//!
//! - Requests read an immutable [`Snapshot`] through `arc-swap`: no lock.
//! - A background task refreshes the set when its TTL runs out (the
//!   configured TTL, or the freshness the server's headers give, `max-age`
//!   less `Age`, clamped to the configured bounds; a `max-age` given twice
//!   counts as none), with a conditional GET when the server gave an ETag.
//! - A token with an unknown `kid` may trigger an unplanned refresh, at most
//!   `unknown_kid_fetches` per `unknown_kid_window` (default two per 30 s),
//!   single-flight: any number of waiting requests share one fetch. A flood
//!   of made-up `kid`s therefore costs the issuer nothing, while a genuine
//!   rotation is picked up at once.
//! - When a refresh fails, the last good set keeps serving until `max_stale`
//!   after its TTL ran out, with a warning; only then do requests get 503.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::{HeaderValue, StatusCode};
use jsonwebtoken::jwk::Jwk;
use reqwest::Url;
use serde_json::Value;
use tracing::Instrument;

use crate::authority::fetch::{FetchError, Fetcher};
use crate::clock::{self, Instant};
use crate::keys::{AlgorithmSet, KeySet, VerifyingKey};
use crate::observe::Upstream;
use crate::observe::{KeyMetrics, RefreshResult, Trigger};
use crate::single_flight::SingleFlight;

/// At most this many keys are read from one key set; the rest are ignored.
const MAX_KEYS: usize = 256;

/// Timing of the key set cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTiming {
    pub(crate) ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) unknown_kid_fetches: usize,
    pub(crate) unknown_kid_window: Duration,
    pub(crate) retry_min: Duration,
}

/// An immutable view of the usable keys.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) keys: Arc<KeySet>,
    /// Bumped on every successful fetch (a 304 too), so waiters can tell that
    /// a refresh happened while they queued.
    pub(crate) generation: u64,
    fetched_at: Option<Instant>,
    fetched_at_wall: Option<SystemTime>,
    refresh_at: Option<Instant>,
    /// Past this instant the keys are too stale to use; `None`: forever
    /// (static keys).
    usable_until: Option<Instant>,
}

impl Snapshot {
    pub(crate) fn usable(&self, now: Instant) -> bool {
        !self.keys.is_empty() && self.usable_until.is_none_or(|until| now < until)
    }
}

/// What the key set cache knows about its own health.
///
/// ```
/// # async fn demo(gate: tokengate::TokenGate) {
/// let health = gate.jwks_health();
/// if health.consecutive_failures > 0 {
///     eprintln!("JWKS refresh failing: {:?}", health.last_error);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksHealth {
    /// Usable keys in the current set.
    pub key_count: usize,
    /// Time since the current set was fetched (`None` for static keys or
    /// before the first successful fetch).
    pub age: Option<Duration>,
    /// When the current set was fetched.
    pub fetched_at: Option<SystemTime>,
    /// Whether requests can currently be verified with the cached keys.
    pub usable: bool,
    /// Whether the set is past its TTL because refreshing failed.
    pub stale: bool,
    /// The last fetch failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// Fetch failures since the last success.
    pub consecutive_failures: u32,
    /// Successful and failed fetches since start.
    pub fetches: u64,
}

enum Source {
    Static,
    Remote { url: Url, fetcher: Fetcher },
}

#[derive(Default)]
struct State {
    /// When the recent unplanned fetches happened, oldest first.
    unplanned: VecDeque<Instant>,
    etag: Option<HeaderValue>,
    last_error: Option<String>,
    consecutive_failures: u32,
}

/// How an unplanned refresh went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// A fetch completed (by us or by someone we waited for).
    Done,
    /// No fetch: the rate limit is spent.
    Throttled,
    /// The fetch failed.
    Failed,
}

pub(crate) struct Jwks {
    source: Source,
    timing: JwksTiming,
    allowed: AlgorithmSet,
    /// Keys the user configured (HMAC secrets), part of every snapshot.
    pinned: Vec<Arc<VerifyingKey>>,
    current: ArcSwap<Snapshot>,
    /// Held by whoever fetches: the scheduled refresh, or an unplanned one.
    fetch_lock: tokio::sync::Mutex<()>,
    /// Keyed by the generation the caller saw: a request that already saw
    /// a newer set does not wait for (and take the answer of) a refresh
    /// started for an older one.
    unplanned: SingleFlight<u64, Refresh>,
    state: Mutex<State>,
    fetches: AtomicU64,
    metrics: KeyMetrics,
}

impl Jwks {
    /// A key set that never changes (offline use).
    pub(crate) fn fixed(keys: KeySet, timing: JwksTiming, metrics: KeyMetrics) -> Self {
        let snapshot = Snapshot {
            keys: Arc::new(keys),
            generation: 1,
            fetched_at: None,
            fetched_at_wall: None,
            refresh_at: None,
            usable_until: None,
        };
        Self::with(
            Source::Static,
            snapshot,
            timing,
            AlgorithmSet::default(),
            Vec::new(),
            metrics,
        )
    }

    /// A key set fetched from `url`. Nothing is fetched until [`Jwks::load`].
    pub(crate) fn remote(
        url: Url,
        fetcher: Fetcher,
        timing: JwksTiming,
        allowed: AlgorithmSet,
        pinned: Vec<VerifyingKey>,
        metrics: KeyMetrics,
    ) -> Self {
        let pinned: Vec<Arc<VerifyingKey>> = pinned.into_iter().map(Arc::new).collect();
        let snapshot = Snapshot {
            keys: Arc::new(KeySet::default()),
            generation: 0,
            fetched_at: None,
            fetched_at_wall: None,
            refresh_at: None,
            usable_until: Some(clock::now()),
        };
        Self::with(
            Source::Remote { url, fetcher },
            snapshot,
            timing,
            allowed,
            pinned,
            metrics,
        )
    }

    fn with(
        source: Source,
        snapshot: Snapshot,
        timing: JwksTiming,
        allowed: AlgorithmSet,
        pinned: Vec<Arc<VerifyingKey>>,
        metrics: KeyMetrics,
    ) -> Self {
        Jwks {
            source,
            timing,
            allowed,
            pinned,
            current: ArcSwap::from_pointee(snapshot),
            fetch_lock: tokio::sync::Mutex::new(()),
            unplanned: SingleFlight::default(),
            state: Mutex::new(State::default()),
            fetches: AtomicU64::new(0),
            metrics,
        }
    }

    /// Sets the key set gauges: the usable keys, and the age of the set.
    pub(crate) fn sample_gauges(&self) {
        let snap = self.current.load();
        let now = clock::now();
        let keys = if snap.usable(now) { snap.keys.len() } else { 0 };
        self.metrics
            .key_set(keys, snap.fetched_at.map(|t| now.duration_since(t)));
    }

    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote { .. })
    }

    /// The current keys, without locking.
    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The first fetch, at build time.
    pub(crate) async fn load(&self) -> Result<(), FetchError> {
        let _guard = self.fetch_lock.lock().await;
        self.fetch_and_install(Trigger::Startup).await
    }

    /// An unplanned refresh: for a token whose `kid` is unknown, or because
    /// the cached keys went stale. `seen` is the generation the caller looked
    /// at; if it changed meanwhile, the caller just looks again. Every
    /// request that asks while a refresh is in the air waits for that one.
    pub(crate) async fn refresh_unplanned(self: &Arc<Self>, seen: u64) -> Refresh {
        if !self.is_remote() {
            return Refresh::Throttled;
        }
        if self.current.load().generation != seen {
            return Refresh::Done;
        }
        let this = Arc::clone(self);
        self.unplanned
            .run(seen, || async move {
                // A flight may have landed between our look and boarding.
                if this.current.load().generation != seen {
                    return Refresh::Done;
                }
                if !this.take_budget(clock::now()) {
                    this.metrics
                        .refresh(Trigger::UnknownKid, RefreshResult::RateLimited);
                    return Refresh::Throttled;
                }
                // The fetch runs in its own task, so a request dropped
                // mid-fetch (a client hanging up) does not abort it; it
                // stays in the span of the request that caused it.
                let task = tokio::spawn(
                    async move {
                        let _guard = this.fetch_lock.lock().await;
                        // The scheduled refresh may have run while we queued.
                        if this.current.load().generation != seen {
                            return Ok(());
                        }
                        this.fetch_and_install(Trigger::UnknownKid).await
                    }
                    .in_current_span(),
                );
                match task.await {
                    Ok(Ok(())) => Refresh::Done,
                    _ => Refresh::Failed,
                }
            })
            .await
    }

    fn take_budget(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::forget_old(&mut state.unplanned, now, self.timing.unknown_kid_window);
        if state.unplanned.len() < self.timing.unknown_kid_fetches {
            state.unplanned.push_back(now);
            true
        } else {
            false
        }
    }

    fn forget_old(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            times.pop_front();
        }
    }

    /// Whether the last fetch failed (the authorization server looks down).
    pub(crate) fn failing(&self) -> bool {
        self.state
            .lock()
            .map_or(true, |s| s.consecutive_failures > 0)
    }

    /// Fetches the key set and swaps it in. Call with `fetch_lock` held.
    async fn fetch_and_install(&self, trigger: Trigger) -> Result<(), FetchError> {
        let result = self.fetch_and_install_inner(trigger).await;
        self.sample_gauges();
        result
    }

    async fn fetch_and_install_inner(&self, trigger: Trigger) -> Result<(), FetchError> {
        let Source::Remote { url, fetcher } = &self.source else {
            return Ok(());
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let etag = self.state.lock().ok().and_then(|s| s.etag.clone());
        let previous = self.current.load_full();
        let etag = etag.filter(|_| !previous.keys.is_empty());
        tracing::debug!(target: "tokengate::jwks", %url, trigger = trigger.as_str(), "fetching key set");
        let result = match fetcher.get(Upstream::Jwks, url, etag.as_ref()).await {
            Ok(fetched) if fetched.status == StatusCode::NOT_MODIFIED => {
                Ok((previous.keys.clone(), fetched))
            }
            Ok(fetched) => self
                .parse(&fetched.body)
                .map(|keys| (Arc::new(keys), fetched)),
            Err(e) => Err(e),
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.refresh(
            trigger,
            match &result {
                Ok((_, fetched)) if fetched.status == StatusCode::NOT_MODIFIED => {
                    RefreshResult::NotModified
                }
                Ok(_) => RefreshResult::Ok,
                Err(_) => RefreshResult::Error,
            },
        );
        match result {
            Ok((keys, fetched)) => {
                let ttl = fetched.fresh_for.map_or(self.timing.ttl, |fresh| {
                    fresh.clamp(self.timing.min_ttl, self.timing.max_ttl)
                });
                let now = clock::now();
                tracing::info!(
                    target: "tokengate::jwks",
                    %url,
                    keys = keys.len(),
                    ttl_secs = ttl.as_secs(),
                    not_modified = fetched.status == StatusCode::NOT_MODIFIED,
                    "key set loaded"
                );
                state.etag = fetched.etag;
                state.last_error = None;
                state.consecutive_failures = 0;
                // Durations come from configuration: saturate rather than
                // panic on "never" (a century is as good).
                let far = now + Duration::from_secs(100 * 365 * 86_400);
                let refresh_at = now.checked_add(ttl).unwrap_or(far);
                let usable_until = refresh_at.checked_add(self.timing.max_stale).unwrap_or(far);
                self.current.store(Arc::new(Snapshot {
                    keys,
                    generation: previous.generation + 1,
                    fetched_at: Some(now),
                    fetched_at_wall: Some(SystemTime::now()),
                    refresh_at: Some(refresh_at),
                    usable_until: Some(usable_until),
                }));
                Ok(())
            }
            Err(e) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                state.last_error = Some(e.to_string());
                if previous.usable(clock::now()) {
                    tracing::warn!(
                        target: "tokengate::jwks",
                        %url,
                        error = %e,
                        failures = state.consecutive_failures,
                        "key set refresh failed; serving the last good key set"
                    );
                } else {
                    tracing::error!(
                        target: "tokengate::jwks",
                        %url,
                        error = %e,
                        failures = state.consecutive_failures,
                        "key set refresh failed and no usable keys are cached"
                    );
                }
                Err(e)
            }
        }
    }

    fn parse(&self, body: &[u8]) -> Result<KeySet, FetchError> {
        #[derive(serde::Deserialize)]
        struct RawSet {
            keys: Vec<Value>,
        }
        let raw: RawSet = serde_json::from_slice(body)
            .map_err(|e| FetchError::Malformed(format!("not a JWK set: {e}")))?;
        if raw.keys.len() > MAX_KEYS {
            tracing::warn!(target: "tokengate::jwks", keys = raw.keys.len(), "key set too large; reading the first {MAX_KEYS} keys");
        }
        let jwks = raw
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .map(|v| serde_json::from_value::<Jwk>(v).map_err(|e| format!("not a JWK: {e}")));
        let (set, skipped) = KeySet::from_jwks(jwks, self.allowed);
        for (kid, why) in skipped {
            tracing::warn!(target: "tokengate::jwks", kid = kid.as_deref().unwrap_or("-"), reason = %why, "skipping key");
        }
        if set.is_empty() {
            return Err(FetchError::Malformed(
                "no usable signing key in the key set".into(),
            ));
        }
        if self.pinned.is_empty() {
            Ok(set)
        } else {
            Ok(set.with_pinned(&self.pinned))
        }
    }

    /// Keeps the key set fresh until the gate is dropped.
    pub(crate) fn spawn_refresher(self: &Arc<Self>) {
        if !self.is_remote() {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = None::<Duration>;
            loop {
                let wait = {
                    let Some(jwks) = weak.upgrade() else { return };
                    match backoff {
                        Some(b) => b,
                        None => {
                            let snap = jwks.current.load();
                            snap.refresh_at.map_or(jwks.timing.retry_min, |at| {
                                at.saturating_duration_since(clock::now())
                            })
                        }
                    }
                };
                tokio::time::sleep(wait).await;
                let Some(jwks) = weak.upgrade() else { return };
                let _guard = jwks.fetch_lock.lock().await;
                // Someone else (an unknown kid) may have refreshed meanwhile.
                if jwks
                    .current
                    .load()
                    .refresh_at
                    .is_some_and(|at| at > clock::now())
                {
                    backoff = None;
                    continue;
                }
                backoff = match jwks.fetch_and_install(Trigger::Scheduled).await {
                    Ok(()) => None,
                    // Retry sooner than the TTL, backing off to it.
                    Err(_) => Some(
                        backoff
                            .map_or(jwks.timing.retry_min, |b| b.saturating_mul(2))
                            .min(jwks.timing.ttl.max(jwks.timing.retry_min)),
                    ),
                };
            }
        });
    }

    pub(crate) fn health(&self) -> JwksHealth {
        let snap = self.current.load();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = clock::now();
        JwksHealth {
            key_count: snap.keys.len(),
            age: snap.fetched_at.map(|t| now.duration_since(t)),
            fetched_at: snap.fetched_at_wall,
            usable: snap.usable(now),
            stale: snap.refresh_at.is_some_and(|at| now >= at) && state.consecutive_failures > 0,
            last_error: state.last_error.clone(),
            consecutive_failures: state.consecutive_failures,
            fetches: self.fetches.load(Ordering::Relaxed),
        }
    }
}
