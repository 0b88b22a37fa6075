//! JWS algorithms (RFC 7518 §3): the names tokens carry and the sets keys
//! and configuration allow.

use std::fmt;

pub use jsonwebtoken::Algorithm;

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// A set of JWS algorithms, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// Every asymmetric algorithm we support: the default allow-list.
    pub(crate) const ASYMMETRIC: AlgorithmSet = AlgorithmSet(
        (1 << 3)
            | (1 << 4)
            | (1 << 5)
            | (1 << 6)
            | (1 << 7)
            | (1 << 8)
            | (1 << 9)
            | (1 << 10)
            | (1 << 11),
    );

    fn bit(alg: Algorithm) -> u16 {
        1 << ALL.iter().position(|a| *a == alg).unwrap_or(15)
    }

    pub(crate) fn from_iter(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        AlgorithmSet(algs.into_iter().fold(0, |acc, a| acc | Self::bit(a)))
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL.into_iter().filter(move |a| self.contains(*a))
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Parses a JOSE `alg` header value. Exact, case-sensitive names only
/// (RFC 7515 §4.1.1); `none` and anything unknown are `None`.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}
