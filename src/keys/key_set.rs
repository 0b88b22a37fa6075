//! An immutable snapshot of usable keys, and how a token's `kid` and `alg`
//! pick the keys to try (RFC 7515 §4.1.4, RFC 8725 §3.1).

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::Jwk;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::jwk::VerifyingKey;

/// The outcome of looking a token's key up in a [`KeySet`].
pub(crate) enum Lookup<'a> {
    /// Keys that may verify the token: try them in order.
    Found(Candidates<'a>),
    /// No key has this `kid` (a refresh may find it).
    UnknownKid,
    /// The token has no `kid`, and no key supports its `alg`.
    NoCandidate,
    /// Keys exist for the `kid`, but none may verify the header's `alg`.
    AlgorithmMismatch,
}

/// At most this many keys are tried for one token: a token without `kid`
/// while the issuer publishes its previous, current and next keys, or a
/// `kid` the issuer reused across keys. Each try is a signature check a
/// request can make us pay for, so the bound stays small.
pub(crate) const MAX_CANDIDATES: usize = 3;

/// The keys that support a token's algorithm, among those it may name.
#[derive(Clone, Copy)]
pub(crate) struct Candidates<'a> {
    keys: &'a [Arc<VerifyingKey>],
    alg: Algorithm,
}

impl<'a> Candidates<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a Arc<VerifyingKey>> {
        self.keys
            .iter()
            .filter(move |k| k.supports(self.alg))
            .take(MAX_CANDIDATES)
    }
}

/// An immutable snapshot of usable keys, indexed by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Vec<Arc<VerifyingKey>>>,
    all: Vec<Arc<VerifyingKey>>,
    /// The keys a token without `kid` may use: all but the shared secrets
    /// configured with a `kid`, which verify only tokens naming it.
    kidless: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerifyingKey>) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(Arc::new(key));
        }
        set
    }

    fn insert(&mut self, key: Arc<VerifyingKey>) {
        if let Some(kid) = key.kid() {
            self.by_kid.entry(kid.into()).or_default().push(key.clone());
        }
        if key.kid().is_none() || !key.is_secret() {
            self.kidless.push(key.clone());
        }
        self.all.push(key);
    }

    /// Parses every JWK it can; the others are reported, not fatal.
    pub(crate) fn from_jwks(
        keys: impl IntoIterator<Item = Result<Jwk, String>>,
        allowed: AlgorithmSet,
    ) -> (Self, Vec<(Option<String>, String)>) {
        let mut usable = Vec::new();
        let mut skipped = Vec::new();
        for jwk in keys {
            match jwk {
                Ok(jwk) => match VerifyingKey::from_jwk(&jwk, allowed) {
                    Ok(key) => usable.push(key),
                    Err(why) => skipped.push((jwk.common.key_id.clone(), why.to_string())),
                },
                Err(why) => skipped.push((None, why)),
            }
        }
        (KeySet::new(usable), skipped)
    }

    /// This set plus keys the user configured (shared secrets).
    pub(crate) fn with_pinned(mut self, pinned: &[Arc<VerifyingKey>]) -> Self {
        for key in pinned {
            self.insert(key.clone());
        }
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The keys for a token's `kid` and `alg`: those with that `kid`, or for
    /// a token without `kid` every key but the shared secrets configured
    /// with a `kid`; in both cases only keys that support `alg`, and at most
    /// [`MAX_CANDIDATES`] of them.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let (keys, miss) = match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => return Lookup::UnknownKid,
                Some(keys) => (keys.as_slice(), Lookup::AlgorithmMismatch),
            },
            None => (self.kidless.as_slice(), Lookup::NoCandidate),
        };
        if keys.iter().any(|k| k.supports(alg)) {
            Lookup::Found(Candidates { keys, alg })
        } else {
            miss
        }
    }

    /// Whether the key a token was verified with is still in this set.
    pub(crate) fn still_has(&self, kid: Option<&str>, thumbprint: &str) -> bool {
        let keys = match kid {
            Some(kid) => self.by_kid.get(kid).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.kidless,
        };
        keys.iter().any(|k| k.thumbprint() == thumbprint)
    }
}
