//! The metrics tokengate records (feature `metrics`), through the
//! [`metrics`](https://docs.rs/metrics) facade.
//!
//! Every handle is registered once, when the gate is built: the request
//! path only increments counters it already holds (one atomic add with the
//! common exporters), and never formats a label. Without the feature the
//! handles are empty structs and every call compiles to nothing.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::AuthError;
use crate::observe::labels::{Outcome, Upstream};
use crate::principal::TokenSource;

#[cfg(feature = "metrics")]
use metrics::{Counter, Gauge, Histogram, Label};

#[cfg(not(feature = "metrics"))]
use self::off::{Counter, Gauge, Histogram, Label};

/// Stand-ins with the handles' shape, so the code that picks a handle is
/// written once.
#[cfg(not(feature = "metrics"))]
mod off {
    #[derive(Clone, Default)]
    pub(crate) struct Counter;
    impl Counter {
        #[inline(always)]
        pub(crate) fn increment(&self, _: u64) {}
    }
    #[derive(Clone, Default)]
    pub(crate) struct Gauge;
    impl Gauge {
        #[inline(always)]
        pub(crate) fn set(&self, _: f64) {}
    }
    #[derive(Clone, Default)]
    pub(crate) struct Histogram;
    impl Histogram {
        #[inline(always)]
        pub(crate) fn record(&self, _: f64) {}
    }
    pub(crate) struct Label;
    impl Label {
        pub(crate) fn new(_: &'static str, _: impl Into<String>) -> Self {
            Label
        }
    }
}

pub(crate) const REQUESTS: &str = "tokengate_requests_total";
pub(crate) const KEY_REFRESHES: &str = "tokengate_key_refreshes_total";
pub(crate) const KEYS: &str = "tokengate_keys";
pub(crate) const KEY_SET_AGE: &str = "tokengate_key_set_age_seconds";
pub(crate) const CACHE_LOOKUPS: &str = "tokengate_cache_lookups_total";
pub(crate) const CACHE_ENTRIES: &str = "tokengate_cache_entries";
pub(crate) const CACHE_BYTES: &str = "tokengate_cache_bytes";
pub(crate) const UPSTREAM_REQUESTS: &str = "tokengate_upstream_requests_total";
pub(crate) const UPSTREAM_DURATION: &str = "tokengate_upstream_duration_seconds";

/// How often the gauges are sampled (the caches' sizes, the key sets'
/// counts and ages), besides after every key set change.
#[cfg(feature = "metrics")]
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[cfg(feature = "metrics")]
fn counter(name: &'static str, labels: Vec<Label>) -> Counter {
    metrics::counter!(name, labels)
}

#[cfg(not(feature = "metrics"))]
fn counter(_: &'static str, _: Vec<Label>) -> Counter {
    Counter
}

#[cfg(feature = "metrics")]
fn gauge(name: &'static str, labels: Vec<Label>) -> Gauge {
    metrics::gauge!(name, labels)
}

#[cfg(not(feature = "metrics"))]
fn gauge(_: &'static str, _: Vec<Label>) -> Gauge {
    Gauge
}

#[cfg(feature = "metrics")]
fn histogram(name: &'static str, labels: Vec<Label>) -> Histogram {
    metrics::histogram!(name, labels)
}

#[cfg(not(feature = "metrics"))]
fn histogram(_: &'static str, _: Vec<Label>) -> Histogram {
    Histogram
}

fn request_counter(outcome: &'static str, reason: &'static str, source: &'static str) -> Counter {
    counter(
        REQUESTS,
        vec![
            Label::new("outcome", outcome),
            Label::new("reason", reason),
            Label::new("source", source),
        ],
    )
}

/// The two caches, as the `cache` label names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    VerifiedToken,
    Introspection,
}

impl Cache {
    fn as_str(self) -> &'static str {
        match self {
            Cache::VerifiedToken => "verified_token",
            Cache::Introspection => "introspection",
        }
    }
}

/// A gate's request and cache handles.
pub(crate) struct Metrics {
    accepted_jwt: Counter,
    accepted_introspection: Counter,
    anonymous: Counter,
    /// Refusals by the layer (no principal), by reason.
    refused: HashMap<&'static str, Counter>,
    /// Refusals by a guard, of a principal the layer accepted.
    guard_refused_jwt: HashMap<&'static str, Counter>,
    guard_refused_introspection: HashMap<&'static str, Counter>,
    /// `[hit, miss]` of the verified-token cache, then of the
    /// introspection cache.
    lookups: [[Counter; 2]; 2],
    /// `[entries, bytes]` of each cache.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    sizes: [[Gauge; 2]; 2],
}

impl Metrics {
    pub(crate) fn new() -> Self {
        describe();
        let by_reason = |source: &'static str, only_guards: bool| {
            AuthError::one_of_each()
                .filter(|e| {
                    !only_guards
                        || matches!(
                            e,
                            AuthError::InsufficientScope { .. }
                                | AuthError::InsufficientUserAuthentication { .. }
                                | AuthError::InvalidToken(crate::error::InvalidToken::TooOld)
                                | AuthError::MissingToken
                        )
                })
                .map(|e| {
                    let reason = e.reason();
                    (reason, request_counter(outcome_of(&e), reason, source))
                })
                .collect()
        };
        let lookups = |cache: Cache| {
            ["hit", "miss"].map(|result| {
                counter(
                    CACHE_LOOKUPS,
                    vec![
                        Label::new("cache", cache.as_str()),
                        Label::new("result", result),
                    ],
                )
            })
        };
        let sizes = |cache: Cache| {
            [CACHE_ENTRIES, CACHE_BYTES]
                .map(|name| gauge(name, vec![Label::new("cache", cache.as_str())]))
        };
        Metrics {
            accepted_jwt: request_counter("accepted", "none", "jwt"),
            accepted_introspection: request_counter("accepted", "none", "introspection"),
            anonymous: request_counter("anonymous", "missing", "none"),
            refused: by_reason("none", false),
            guard_refused_jwt: by_reason("jwt", true),
            guard_refused_introspection: by_reason("introspection", true),
            lookups: [lookups(Cache::VerifiedToken), lookups(Cache::Introspection)],
            sizes: [sizes(Cache::VerifiedToken), sizes(Cache::Introspection)],
        }
    }

    /// Counts one request through the layer.
    #[inline]
    pub(crate) fn request(&self, outcome: &Outcome<'_>) {
        // Without the feature the handles are no-ops: not even a lookup.
        if cfg!(not(feature = "metrics")) {
            return;
        }
        match outcome {
            Outcome::Accepted(principal) => match principal.source() {
                TokenSource::Jwt => self.accepted_jwt.increment(1),
                TokenSource::Introspection => self.accepted_introspection.increment(1),
            },
            Outcome::Anonymous => self.anonymous.increment(1),
            Outcome::Refused(err) => {
                if let Some(counter) = self.refused.get(err.reason()) {
                    counter.increment(1);
                }
            }
        }
    }

    /// Counts a guard's refusal of a request the layer let through, with
    /// the principal's source (`none` for an anonymous request).
    pub(crate) fn guard_refused(&self, err: &AuthError, source: Option<TokenSource>) {
        if cfg!(not(feature = "metrics")) {
            return;
        }
        let counters = match source {
            Some(TokenSource::Jwt) => &self.guard_refused_jwt,
            Some(TokenSource::Introspection) => &self.guard_refused_introspection,
            None => &self.refused,
        };
        if let Some(counter) = counters.get(err.reason()) {
            counter.increment(1);
        }
    }

    /// Counts a cache lookup.
    #[inline]
    pub(crate) fn lookup(&self, cache: Cache, hit: bool) {
        self.lookups[cache as usize][usize::from(!hit)].increment(1);
    }

    /// Sets a cache's size gauges.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn cache_size(&self, cache: Cache, (entries, bytes): (u64, u64)) {
        let [e, b] = &self.sizes[cache as usize];
        e.set(entries as f64);
        b.set(bytes as f64);
    }
}

/// `rejected`, or `unavailable` for a 503.
fn outcome_of(err: &AuthError) -> &'static str {
    match err {
        AuthError::Unavailable(_) => "unavailable",
        _ => "rejected",
    }
}

/// What started a key set fetch, as the `trigger` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    Startup,
    Scheduled,
    UnknownKid,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Scheduled => "scheduled",
            Trigger::UnknownKid => "unknown_kid",
        }
    }
}

/// How a key set refresh went, as the `result` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshResult {
    Ok,
    NotModified,
    Error,
    RateLimited,
}

/// One issuer's key set handles.
pub(crate) struct KeyMetrics {
    /// By trigger, then result, in declaration order.
    refreshes: [[Counter; 4]; 3],
    keys: Gauge,
    age: Gauge,
}

impl KeyMetrics {
    /// The handles labelled with `issuer`, a configured issuer identifier
    /// (or template): never a value taken from a token.
    pub(crate) fn new(issuer: &str) -> Self {
        let issuer_label = || Label::new("issuer", issuer.to_owned());
        let refreshes = [Trigger::Startup, Trigger::Scheduled, Trigger::UnknownKid].map(|t| {
            ["ok", "not_modified", "error", "rate_limited"].map(|result| {
                counter(
                    KEY_REFRESHES,
                    vec![
                        issuer_label(),
                        Label::new("trigger", t.as_str()),
                        Label::new("result", result),
                    ],
                )
            })
        });
        KeyMetrics {
            refreshes,
            keys: gauge(KEYS, vec![issuer_label()]),
            age: gauge(KEY_SET_AGE, vec![issuer_label()]),
        }
    }

    pub(crate) fn refresh(&self, trigger: Trigger, result: RefreshResult) {
        self.refreshes[trigger as usize][result as usize].increment(1);
    }

    /// Sets the gauges: the usable keys, and how long ago the key set was
    /// last fetched (`None`: never, which leaves the age unset).
    pub(crate) fn key_set(&self, keys: usize, age: Option<Duration>) {
        self.keys.set(keys as f64);
        if let Some(age) = age {
            self.age.set(age.as_secs_f64());
        }
    }
}

/// The handles of the calls to authorization servers.
pub(crate) struct UpstreamMetrics {
    /// By endpoint, then result label.
    results: [HashMap<&'static str, Counter>; 3],
    durations: [Histogram; 3],
}

/// Every `result` an upstream call can have.
/// (`malformed` is not one: a body is read whole here and judged by its
/// caller.)
const UPSTREAM_RESULTS: [&str; 8] = [
    "ok",
    "not_modified",
    "timeout",
    "connect",
    "status",
    "redirect",
    "too_large",
    "transport",
];

impl UpstreamMetrics {
    pub(crate) fn new() -> Self {
        let endpoints = [Upstream::Discovery, Upstream::Jwks, Upstream::Introspection];
        UpstreamMetrics {
            results: endpoints.map(|endpoint| {
                UPSTREAM_RESULTS
                    .iter()
                    // Only key sets are fetched conditionally.
                    .filter(|&&r| r != "not_modified" || endpoint == Upstream::Jwks)
                    .map(|&result| {
                        let labels = vec![
                            Label::new("endpoint", endpoint.as_str()),
                            Label::new("result", result),
                        ];
                        (result, counter(UPSTREAM_REQUESTS, labels))
                    })
                    .collect()
            }),
            durations: endpoints.map(|endpoint| {
                histogram(
                    UPSTREAM_DURATION,
                    vec![Label::new("endpoint", endpoint.as_str())],
                )
            }),
        }
    }

    /// Counts one call, `result` being one of the labels above.
    pub(crate) fn call(&self, endpoint: Upstream, result: &'static str, took: Duration) {
        if let Some(counter) = self.results[endpoint as usize].get(result) {
            counter.increment(1);
        }
        self.durations[endpoint as usize].record(took.as_secs_f64());
    }
}

/// Registers the help text and unit of every tokengate metric with the
/// installed recorder. A gate does this when it is built; call it yourself
/// to have the descriptions before the first gate exists.
///
/// ```
/// tokengate::observe::describe();
/// ```
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests authenticated by tokengate, and guard refusals, by outcome, reason and token source"
    );
    describe_counter!(
        KEY_REFRESHES,
        Unit::Count,
        "Key set fetches by issuer, trigger and result"
    );
    describe_gauge!(KEYS, Unit::Count, "Usable keys in the issuer's key set");
    describe_gauge!(
        KEY_SET_AGE,
        Unit::Seconds,
        "Time since the issuer's key set was last fetched"
    );
    describe_counter!(
        CACHE_LOOKUPS,
        Unit::Count,
        "Lookups in the verified-token and introspection caches"
    );
    describe_gauge!(CACHE_ENTRIES, Unit::Count, "Entries in the cache");
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "Weight of the cache's entries in bytes"
    );
    describe_counter!(
        UPSTREAM_REQUESTS,
        Unit::Count,
        "Calls to authorization servers by endpoint and result"
    );
    describe_histogram!(
        UPSTREAM_DURATION,
        Unit::Seconds,
        "Duration of calls to authorization servers, body included"
    );
}

#[cfg(not(feature = "metrics"))]
fn describe() {}
