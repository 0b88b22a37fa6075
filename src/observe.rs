//! What tokengate tells operators: the `tokengate.authenticate` span and
//! the fixed reason labels it carries.
//!
//! # The span
//!
//! Every request through [`TokenGateLayer`](crate::TokenGateLayer) is
//! authenticated inside one `tracing` span, target `tokengate`, level
//! `DEBUG`, named `tokengate.authenticate`. Its fields are part of the
//! public API (names and values change only with a semver-major release):
//!
//! | field | values |
//! |---|---|
//! | `outcome` | `accepted`, `rejected`, `unavailable` (503: the authorization server or its keys cannot be reached), `anonymous` (no token, on an [`optional`](crate::TokenGate::optional_layer) layer) |
//! | `reason` | on a refusal, one of [`AuthError::reason`]'s fixed labels (`missing`, `expired`, `bad_signature`, `unknown_key`, `wrong_issuer`, …) |
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
//! | `result` | how the HTTP exchange ended: `ok`, `not_modified`, or [`FetchError::label`](crate::FetchError::label)'s `timeout`, `connect`, `status`, `redirect`, `too_large`, `malformed`, `transport` |
//! | `status` | the HTTP status of the answer, when one came |
//!
//! The URL is not a field (it is configuration, and logged by the events
//! inside the span where it helps). No field ever holds a token, a subject, a client id or a
//! secret. With no subscriber interested in `tokengate` at `DEBUG`, the span
//! costs one relaxed atomic load.

use tracing::Span;
use tracing::field::Empty;

use crate::error::AuthError;
use crate::principal::Principal;

/// The span one authentication runs in, its fields still empty.
pub(crate) fn authenticate_span() -> Span {
    tracing::debug_span!(
        target: "tokengate",
        "tokengate.authenticate",
        outcome = Empty,
        reason = Empty,
        source = Empty,
        issuer = Empty,
        cached = Empty,
    )
}

/// How an authentication ended, as the span's fields say it.
pub(crate) enum Outcome<'a> {
    Accepted(&'a Principal),
    Refused(&'a AuthError),
    Anonymous,
}

/// Records `outcome` on `span` (nothing when no subscriber listens).
pub(crate) fn record(span: &Span, outcome: Outcome<'_>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Outcome::Accepted(principal) => {
            span.record("outcome", "accepted");
            span.record("source", principal.source().as_str());
            if let Some(issuer) = principal.issuer() {
                span.record("issuer", issuer);
            }
        }
        Outcome::Refused(err) => {
            let outcome = match err {
                AuthError::Unavailable(_) => "unavailable",
                _ => "rejected",
            };
            span.record("outcome", outcome);
            span.record("reason", err.reason());
            span.record("source", "none");
        }
        Outcome::Anonymous => {
            span.record("outcome", "anonymous");
            span.record("source", "none");
        }
    }
}

/// Marks the current authentication as answered from a cache.
pub(crate) fn answered_from_cache() {
    let span = Span::current();
    if !span.is_disabled() {
        span.record("cached", true);
    }
}

/// The authorization server endpoints tokengate calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upstream {
    Discovery,
    Jwks,
    Introspection,
}

impl Upstream {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Upstream::Discovery => "discovery",
            Upstream::Jwks => "jwks",
            Upstream::Introspection => "introspection",
        }
    }
}

/// The span one call to `endpoint` runs in.
pub(crate) fn upstream_span(endpoint: Upstream) -> Span {
    tracing::debug_span!(
        target: "tokengate",
        "tokengate.upstream",
        endpoint = endpoint.as_str(),
        result = Empty,
        status = Empty,
    )
}
