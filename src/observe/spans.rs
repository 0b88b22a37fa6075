//! The `tokengate.authenticate` and `tokengate.upstream` spans.

use tracing::Span;
use tracing::field::Empty;

use crate::error::AuthError;
use crate::observe::labels::{Outcome, Upstream};

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

/// Records `outcome` on `span` (nothing when no subscriber listens).
pub(crate) fn record(span: &Span, outcome: &Outcome<'_>) {
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
