//! The verified-token cache: a service sees the same access token many times,
//! and verifying its signature once is enough.
//!
//! Why this is sound:
//! - A JWT is immutable: the same bytes verify the same way against the same
//!   key. Entries are keyed by the SHA-256 of the whole token (never the token
//!   itself), so a token that differs by one byte is a different entry.
//! - What can change is time and keys. `exp` is checked again on every hit
//!   (with the leeway), and the entry leaves the cache at `exp` anyway. The
//!   key that verified the token is recorded by `kid` and RFC 7638
//!   thumbprint; a hit is honoured only while the current key set still holds
//!   that very key, so a key removed from the JWKS takes its tokens with it
//!   on the next refresh, and a `kid` reused for new key material does not
//!   vouch for tokens of the old one.
//! - Hits also require the key set to be usable: once cached keys are too
//!   stale to serve, cached tokens stop serving too.
//! - Capacity is bounded (default 10 000 entries); eviction only costs a
//!   re-verification.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::keys::{KeySet, VerifyingKey};
use crate::principal::Principal;

pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
struct Entry {
    principal: Principal,
    key: Arc<VerifyingKey>,
    exp: u64,
}

struct UntilExp;

impl moka::Expiry<TokenHash, Entry> for UntilExp {
    fn expire_after_create(&self, _: &TokenHash, entry: &Entry, _: Instant) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(Duration::from_secs(entry.exp).saturating_sub(now))
    }
}

pub(crate) struct TokenCache {
    entries: Cache<TokenHash, Entry>,
}

impl TokenCache {
    pub(crate) fn new(capacity: u64) -> Self {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The cached principal for `hash`, if its expiry (with `leeway`) has not
    /// passed and `keys` still hold the key that verified it.
    pub(crate) fn get(
        &self,
        hash: &TokenHash,
        keys: &KeySet,
        now: u64,
        leeway: u64,
    ) -> Option<Principal> {
        let entry = self.entries.get(hash)?;
        if now >= entry.exp.saturating_add(leeway)
            || !keys.still_has(entry.key.kid(), entry.key.thumbprint())
        {
            self.entries.invalidate(hash);
            return None;
        }
        Some(entry.principal)
    }

    pub(crate) fn insert(&self, hash: TokenHash, principal: &Principal, key: &Arc<VerifyingKey>) {
        if let Some(exp) = principal.exp_secs() {
            self.entries.insert(
                hash,
                Entry {
                    principal: principal.clone(),
                    key: key.clone(),
                    exp,
                },
            );
        }
    }

    /// Entries, after pending maintenance (exact, but not for the hot path).
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AlgorithmSet;
    use crate::principal::TokenSource;
    use serde_json::json;

    fn key(kid: &str, x: &str, y: &str) -> VerifyingKey {
        let jwk = serde_json::from_value(
            json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": x, "y": y}),
        )
        .unwrap();
        VerifyingKey::from_jwk(&jwk, AlgorithmSet::ASYMMETRIC).unwrap()
    }

    // RFC 7515 A.3's P-256 key and RFC 7520 §3.1's... both valid points.
    const X1: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y1: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const X2: &str = "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0";
    const Y2: &str = "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps";

    fn principal(exp: u64) -> Principal {
        Principal::from_claims(
            json!({"sub": "a", "exp": exp}).as_object().unwrap().clone(),
            TokenSource::Jwt,
        )
        .unwrap()
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn hit_while_the_key_is_in_the_set() {
        let k = Arc::new(key("k", X1, Y1));
        let set = KeySet::new(vec![key("k", X1, Y1)]);
        let cache = TokenCache::new(10);
        let h = hash("token");
        cache.insert(h, &principal(now() + 60), &k);
        assert!(cache.get(&h, &set, now(), 0).is_some());
        assert!(cache.get(&hash("token2"), &set, now(), 0).is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn miss_when_the_key_left_or_the_kid_names_new_material() {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(10);
        let h = hash("token");
        cache.insert(h, &principal(now() + 60), &k);
        let reused_kid = KeySet::new(vec![key("k", X2, Y2)]);
        assert!(cache.get(&h, &reused_kid, now(), 0).is_none());
        // And the entry is gone, not just skipped.
        assert!(
            cache
                .get(&h, &KeySet::new(vec![key("k", X1, Y1)]), now(), 0)
                .is_none()
        );
    }

    #[test]
    fn miss_once_expired_even_if_still_stored() {
        let k = Arc::new(key("k", X1, Y1));
        let set = KeySet::new(vec![key("k", X1, Y1)]);
        let cache = TokenCache::new(10);
        let h = hash("token");
        let exp = now() + 100;
        cache.insert(h, &principal(exp), &k);
        assert!(cache.get(&h, &set, exp + 9, 10).is_some());
        assert!(cache.get(&h, &set, exp + 10, 10).is_none());
    }

    #[test]
    fn tokens_without_exp_are_not_cached() {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(10);
        let p = Principal::from_claims(serde_json::Map::new(), TokenSource::Jwt).unwrap();
        cache.insert(hash("t"), &p, &k);
        assert_eq!(cache.len(), 0);
    }
}
