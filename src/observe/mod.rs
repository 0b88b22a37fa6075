//! What tokengate tells operators: the spans it opens and the metrics it
//! records, with the fixed labels they carry. Names, fields, labels and
//! their values are part of the public API: they change only with a
//! semver-major release.
//!
//! # Traces
//!
//! Every request through [`TokenGateLayer`](crate::TokenGateLayer) is
//! authenticated inside one `tracing` span, target `tokengate`, level
//! `DEBUG`, named `tokengate.authenticate`, with these fields:
//!
//! | field | values |
//! |---|---|
//! | `outcome` | `accepted`, `rejected`, `unavailable` (503: the authorization server or its keys cannot be reached), `anonymous` (no token, on an [`optional`](crate::TokenGate::optional_layer) layer) |
//! | `reason` | on a refusal, one of [`AuthError::reason`](crate::AuthError::reason)'s fixed labels (`missing`, `expired`, `bad_signature`, `unknown_key`, `wrong_issuer`, …) |
//! | `source` | `jwt`, `introspection`, or `none` (no principal) |
//! | `issuer` | the issuer identifier of an accepted token (never a token's unverified `iss`) |
//! | `cached` | `true` when the verified-token cache or the introspection cache answered; absent otherwise |
//!
//! The events tokengate logs while authenticating (a key refresh, an
//! introspection call) are inside it, so a subscriber shows them with the
//! request's span.
//!
//! Every call to an authorization server runs in a child span, target
//! `tokengate`, level `DEBUG`, named `tokengate.upstream` (a child of the
//! request's span when a request caused it; a root span for scheduled key
//! refreshes and startup):
//!
//! | field | values |
//! |---|---|
//! | `endpoint` | `discovery`, `jwks`, `introspection` |
//! | `result` | how the HTTP exchange ended: `ok` (the expected status, the body read whole, whatever it holds), `not_modified` (a key set's conditional GET), or [`FetchError::label`](crate::FetchError::label)'s `timeout`, `connect`, `status`, `redirect`, `too_large`, `transport` |
//! | `status` | the HTTP status of the answer, when one came |
//!
//! The URL is not a field (it is configuration, and logged by the events
//! inside the span where it helps). No field ever holds a token, a subject,
//! a client id or a secret. With no subscriber interested in `tokengate` at
//! `DEBUG`, a span costs one relaxed atomic load.
//!
//! # Metrics (feature `metrics`)
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade, so any exporter
//! works (Prometheus, OpenTelemetry, StatsD, …). **Install the recorder
//! before building the gate**: a gate registers every series when it is
//! built (all of them, at zero, so dashboards see them before the first
//! failure), and the request path then only adds to counters it holds —
//! two atomic additions on a verified-token cache hit. Labels are fixed,
//! low-cardinality strings; `issuer` is a configured issuer identifier (a
//! template, for Entra's `{tenantid}`), never a value read from a token.
//! No label ever holds a token, a subject, a client id or a `kid`.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tokengate_requests_total` | counter | `outcome` (`accepted`, `rejected`, `unavailable`, `anonymous`), `reason` (`none` when accepted, `missing` when anonymous, else [`AuthError::reason`](crate::AuthError::reason)), `source` (`jwt`, `introspection`, `none`) |
//! | `tokengate_key_refreshes_total` | counter | `issuer`, `trigger` (`startup`, `scheduled`, `unknown_kid`), `result` (`ok`, `not_modified`, `error`, `rate_limited`) |
//! | `tokengate_keys` | gauge | `issuer`: the usable keys (0 while the set is unusable) |
//! | `tokengate_key_set_age_seconds` | gauge | `issuer`: since the key set was last fetched |
//! | `tokengate_cache_lookups_total` | counter | `cache` (`verified_token`, `introspection`), `result` (`hit`, `miss`) |
//! | `tokengate_cache_entries`, `tokengate_cache_bytes` | gauge | `cache` |
//! | `tokengate_upstream_requests_total` | counter | `endpoint` (`discovery`, `jwks`, `introspection`), `result` (as the `tokengate.upstream` span's) |
//! | `tokengate_upstream_duration_seconds` | histogram | `endpoint` |
//!
//! How to read them:
//!
//! - Every request through the layer counts once in
//!   `tokengate_requests_total`. A guard ([`RequireScopes`](crate::RequireScopes),
//!   the axum extractors, the tonic helpers, the MCP layer) that refuses a
//!   request the layer let through counts it again, as `rejected` with its
//!   reason (`insufficient_scope`, or `missing` behind an optional layer)
//!   and the principal's `source`: `accepted` counts authentications,
//!   refusals with a `source` other than `none` are authorization
//!   refusals. [`TokenGate::verify`](crate::TokenGate::verify) and
//!   [`authenticate`](crate::TokenGate::authenticate), called directly,
//!   are not counted there (the caches and upstream calls they cause are).
//! - A cache lookup is counted each time a cache is consulted: a request
//!   that waits for a key refresh looks again afterwards.
//! - `rate_limited` is an unknown `kid` that found the refresh budget
//!   spent (see [`TokenGateBuilder::unknown_kid_refresh`](crate::TokenGateBuilder::unknown_kid_refresh)):
//!   a steady rate of it with `unknown_key` refusals is a flood of made-up
//!   `kid`s, not a rotation.
//! - The gauges are sampled every 10 seconds while the gate lives, and the
//!   key gauges after every fetch.
//! - A body the authorization server sent whole but tokengate cannot read
//!   is `result="ok"` here, and shows as `tokengate_key_refreshes_total{result="error"}`
//!   or as `unavailable` requests with reason `introspection_unavailable`;
//!   the `tokengate::jwks` and `tokengate::introspection` log events say why.

mod labels;
mod metrics;
mod spans;

pub(crate) use labels::{Outcome, Upstream};
#[cfg(feature = "metrics")]
pub(crate) use metrics::SAMPLE_EVERY;
#[cfg(feature = "metrics")]
pub use metrics::describe;
pub(crate) use metrics::{Cache, KeyMetrics, Metrics, RefreshResult, Trigger, UpstreamMetrics};
pub(crate) use spans::{answered_from_cache, authenticate_span, upstream_span};

/// Records how an authentication through the layer ended: on its span, and
/// in the request counter.
pub(crate) fn authenticated(span: &tracing::Span, metrics: &Metrics, outcome: Outcome<'_>) {
    metrics.request(&outcome);
    spans::record(span, &outcome);
}
