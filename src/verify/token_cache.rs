//! The verified-token cache: a service sees the same access token many times,
//! and verifying its signature once is enough.
//!
//! Why this is sound:
//! - A JWT is immutable: the same bytes verify the same way against the same
//!   key. Entries are keyed by the SHA-256 of the whole token (never the token
//!   itself), so a token that differs by one byte is a different entry.
//! - What can change is time and keys. `exp` is checked again on every hit
//!   (with the leeway), and the entry leaves the cache at `exp` + leeway, the
//!   last moment the token verifies. The key that verified the token is
//!   recorded by `kid` and RFC 7638 thumbprint; a hit is honoured only while
//!   the current key set still holds that very key, so a key removed from the
//!   JWKS takes its tokens with it on the next refresh, and a `kid` reused for
//!   new key material does not vouch for tokens of the old one.
//! - Hits also require the key set to be usable: once cached keys are too
//!   stale to serve, cached tokens stop serving too.
//! - Capacity is bounded in bytes (default 16 MiB): each entry weighs an
//!   estimate of the heap it holds ([`cache_weight`]), so a few huge tokens cannot
//!   hold more memory than many small ones. Eviction only costs a
//!   re-verification.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::clock::{self, ExpiresAt, Instant, UntilExpiry};
use crate::keys::VerifyingKey;
use crate::principal::{Principal, cache_weight};
use crate::token::TokenHash;

/// No entry outlives a day, so its expiry instant cannot overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
struct Entry {
    principal: Principal,
    key: Arc<VerifyingKey>,
    /// Which of the gate's issuers verified it (its index): a hit is checked
    /// against that issuer's keys only.
    issuer: u16,
    exp: u64,
    /// `exp` + leeway on the crate's clock ([`clock::now`]; moka's own clock only reclaims memory): past it, a hit is a miss.
    expires: Instant,
    weight: u32,
}

impl ExpiresAt for Entry {
    fn expires(&self) -> Instant {
        self.expires
    }
}

pub(crate) struct TokenCache {
    entries: Cache<TokenHash, Entry>,
    leeway: u64,
}

impl TokenCache {
    /// A cache of at most `capacity` bytes (by [`cache_weight`]) for tokens
    /// verified with `leeway` seconds of clock skew.
    pub(crate) fn new(capacity: u64, leeway: u64) -> Self {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(capacity)
                .weigher(|_, entry: &Entry| entry.weight)
                .expire_after(UntilExpiry)
                .build(),
            leeway,
        }
    }

    /// The cached principal for `hash`, if its expiry (with the leeway) has
    /// not passed and the issuer that verified it still vouches for the
    /// key that did: `vouches(issuer index, key)` is `Some(true)` while
    /// that issuer's usable keys hold the very key, `Some(false)` once they
    /// do not (the entry is dropped), `None` while they are not usable (a
    /// miss; the entry stays for when they are).
    pub(crate) fn get(
        &self,
        hash: &TokenHash,
        now: u64,
        vouches: impl FnOnce(usize, &VerifyingKey) -> Option<bool>,
    ) -> Option<Principal> {
        let entry = self.entries.get(hash)?;
        let expired = now >= entry.exp.saturating_add(self.leeway) || clock::now() >= entry.expires;
        match (expired, vouches(usize::from(entry.issuer), &entry.key)) {
            (false, Some(true)) => Some(entry.principal),
            (false, None) => None,
            _ => {
                self.entries.invalidate(hash);
                None
            }
        }
    }

    /// Remembers `principal`, verified from `token` with `key` of the
    /// gate's issuer number `issuer` at `now`,
    /// until `exp` + leeway: the token verifies until then, so every request
    /// until then may reuse the verification.
    pub(crate) fn insert(
        &self,
        hash: TokenHash,
        token: &str,
        principal: &Principal,
        key: &Arc<VerifyingKey>,
        issuer: usize,
        now: u64,
    ) {
        let Ok(issuer) = u16::try_from(issuer) else {
            return;
        };
        let Some(exp) = principal.exp_secs() else {
            return;
        };
        let left = exp.saturating_add(self.leeway).saturating_sub(now);
        if left == 0 {
            return;
        }
        // A token valid for years is verified again daily, which costs one
        // verification and keeps the expiry instant representable.
        let lifetime = Duration::from_secs(left).min(MAX_LIFETIME);
        // The claims text is the payload decoded: 3 bytes per 4 characters.
        let payload = token.split('.').nth(1).map_or(0, str::len);
        self.entries.insert(
            hash,
            Entry {
                principal: principal.clone(),
                key: key.clone(),
                issuer,
                exp,
                expires: clock::now() + lifetime,
                weight: cache_weight(principal, payload / 4 * 3),
            },
        );
    }

    /// Entries and their total weight in bytes, after pending maintenance
    /// (exact, but not for the hot path).
    pub(crate) fn stats(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{AlgorithmSet, KeySet};
    use crate::principal::TokenSource;
    use crate::principal::{ENTRY_OVERHEAD, cache_weight as weight};
    use crate::token::hash;
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
    const TOKEN: &str = "header.cGF5bG9hZA.signature";
    const MIB: u64 = 1024 * 1024;

    fn principal(exp: u64) -> Principal {
        Principal::from_claims(
            json!({"sub": "a", "exp": exp}).as_object().unwrap().clone(),
            TokenSource::Jwt,
        )
        .unwrap()
    }

    fn now() -> u64 {
        crate::clock::unix_secs()
    }

    fn still_has(set: &KeySet, key: &VerifyingKey) -> bool {
        set.still_has(key.kid(), key.thumbprint())
    }

    /// A cache with `leeway` holding one token, `hash("token")`, that
    /// expires at `exp` and was verified at `now` with the key `k` (X1, Y1);
    /// and a key set that still holds that key.
    fn one_entry(leeway: u64, exp: u64, now: u64) -> (TokenCache, TokenHash, KeySet) {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(MIB, leeway);
        let h = hash("token");
        cache.insert(h, TOKEN, &principal(exp), &k, 0, now);
        (cache, h, KeySet::new(vec![key("k", X1, Y1)]))
    }

    #[test]
    fn hit_while_the_key_is_in_the_set() {
        let (cache, h, set) = one_entry(0, now() + 60, now());
        assert!(
            cache
                .get(&h, now(), |_, k| Some(still_has(&set, k)))
                .is_some()
        );
        assert!(
            cache
                .get(&hash("token2"), now(), |_, k| Some(still_has(&set, k)))
                .is_none()
        );
        assert_eq!(cache.stats().0, 1);
    }

    #[test]
    fn miss_when_the_key_left_or_the_kid_names_new_material() {
        let (cache, h, _) = one_entry(0, now() + 60, now());
        let reused_kid = KeySet::new(vec![key("k", X2, Y2)]);
        assert!(
            cache
                .get(&h, now(), |_, k| Some(still_has(&reused_kid, k)))
                .is_none()
        );
        // And the entry is gone, not just skipped.
        assert!(
            cache
                .get(&h, now(), |_, k| Some(still_has(
                    &KeySet::new(vec![key("k", X1, Y1)]),
                    k
                )))
                .is_none()
        );
    }

    #[test]
    fn miss_once_expired_even_if_still_stored() {
        let exp = now() + 100;
        let (cache, h, set) = one_entry(10, exp, now());
        assert!(
            cache
                .get(&h, exp + 9, |_, k| Some(still_has(&set, k)))
                .is_some()
        );
        assert!(
            cache
                .get(&h, exp + 10, |_, k| Some(still_has(&set, k)))
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_inside_its_leeway_is_kept_until_exp_plus_leeway() {
        let now = now();
        // Expired 10 s ago, still within the 60 s leeway: it verifies, so the
        // verification is worth keeping for the 50 s it still holds.
        let (cache, h, set) = one_entry(60, now - 10, now);
        assert_eq!(cache.stats().0, 1);
        tokio::time::advance(Duration::from_secs(49)).await;
        assert!(
            cache
                .get(&h, now, |_, k| Some(still_has(&set, k)))
                .is_some()
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            cache
                .get(&h, now, |_, k| Some(still_has(&set, k)))
                .is_none(),
            "past exp + leeway"
        );
    }

    #[test]
    fn tokens_without_exp_or_past_their_leeway_are_not_cached() {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(MIB, 10);
        let p = Principal::from_claims(serde_json::Map::new(), TokenSource::Jwt).unwrap();
        cache.insert(hash("t"), TOKEN, &p, &k, 0, now());
        cache.insert(hash("u"), TOKEN, &principal(now() - 10), &k, 0, now());
        assert_eq!(cache.stats().0, 0);
    }

    #[test]
    fn a_token_valid_for_a_century_is_cached_too() {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(MIB, 60);
        cache.insert(
            hash("t"),
            TOKEN,
            &principal(now() + 100 * 365 * 86_400),
            &k,
            0,
            now(),
        );
        assert_eq!(cache.stats().0, 1);
    }

    #[test]
    fn weight_counts_the_claims_text_and_what_is_copied_out_of_it() {
        let scopes = (0..100).map(|i| format!("scope{i}")).collect::<Vec<_>>();
        let p = Principal::from_claims(
            json!({"aud": ["https://api.example.com"], "scope": scopes.join(" ")})
                .as_object()
                .unwrap()
                .clone(),
            TokenSource::Jwt,
        )
        .unwrap();
        let copied = 24 + 23 + scopes.iter().map(|s| 16 + s.len()).sum::<usize>();
        assert_eq!(weight(&p, 5000) as usize, ENTRY_OVERHEAD + 5000 + copied);
        assert_eq!(weight(&p, usize::MAX), u32::MAX);
    }

    #[test]
    fn a_hit_is_checked_against_the_keys_of_the_issuer_that_verified_it() {
        let k = Arc::new(key("k", X1, Y1));
        let cache = TokenCache::new(MIB, 0);
        let h = hash("token");
        cache.insert(h, TOKEN, &principal(now() + 60), &k, 3, now());
        let set = KeySet::new(vec![key("k", X1, Y1)]);
        let mut asked = None;
        assert!(
            cache
                .get(&h, now(), |issuer, k| {
                    asked = Some(issuer);
                    Some(still_has(&set, k))
                })
                .is_some()
        );
        assert_eq!(asked, Some(3));
        // That issuer's keys not usable: a miss, but the entry stays.
        assert!(cache.get(&h, now(), |_, _| None).is_none());
        assert!(
            cache
                .get(&h, now(), |_, k| Some(still_has(&set, k)))
                .is_some()
        );
    }
}
