//! The vocabulary the spans and the metrics share.

use crate::error::AuthError;
use crate::principal::Principal;

/// How an authentication ended, as the span's fields say it.
pub(crate) enum Outcome<'a> {
    Accepted(&'a Principal),
    Refused(&'a AuthError),
    Anonymous,
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
