//! Where the keys come from (discovery, `jwks_uri`, static keys, HMAC
//! secrets), which algorithms they may verify (RFC 8725 §3.1, RFC 7518
//! §3.2), how the key set is kept fresh, and the verified-token cache.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;

use super::{BuildError, TokenGateBuilder};
use crate::authority::discovery::AuthorizationServerMetadata;
use crate::authority::fetch::Fetcher;
use crate::authority::jwks::{Jwks, JwksTiming};
use crate::keys::{Algorithm, AlgorithmSet, KeySet, VerifyingKey};
use crate::observe::KeyMetrics;

/// A shared secret, kept out of `Debug` output.
#[derive(Clone)]
pub(super) struct SharedSecret {
    kid: Option<String>,
    secret: Vec<u8>,
    alg: Algorithm,
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone)]
pub(super) struct KeySettings {
    pub(super) jwks_uri: Option<String>,
    pub(super) static_keys: Option<JwkSet>,
    pub(super) secrets: Vec<SharedSecret>,
    pub(super) algorithms: Option<Vec<Algorithm>>,
    /// Unset: 10 × the TTL, whatever TTL is configured.
    pub(super) max_stale: Option<Duration>,
    pub(super) require_at_startup: bool,
    pub(super) token_cache_bytes: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            jwks_uri: None,
            static_keys: None,
            secrets: Vec::new(),
            algorithms: None,
            max_stale: None,
            require_at_startup: true,
            token_cache_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `max_stale` and `retry_min` are derived from the TTL at build time.
pub(super) const DEFAULT_JWKS_TIMING: JwksTiming = JwksTiming {
    ttl: Duration::from_secs(300),
    min_ttl: Duration::from_secs(30),
    max_ttl: Duration::from_secs(3600),
    max_stale: Duration::ZERO,
    unknown_kid_fetches: 2,
    unknown_kid_window: Duration::from_secs(30),
    retry_min: Duration::ZERO,
};

/// The key set a gate verifies with.
pub(super) struct KeySource {
    pub(super) jwks: Arc<Jwks>,
    /// False when the issuer publishes no keys: JWTs are then introspected.
    pub(super) verify_jwt_locally: bool,
}

impl KeySettings {
    /// Keys are found by discovery unless the user named a source.
    pub(super) fn keys_from_discovery(&self, secrets: &[VerifyingKey]) -> bool {
        self.static_keys.is_none() && secrets.is_empty() && self.jwks_uri.is_none()
    }

    /// The algorithms accepted, and the HMAC keys, refusing secrets too
    /// short for their hash (RFC 7518 §3.2) and HS* algorithms without one.
    pub(super) fn algorithms_and_secrets(
        &self,
    ) -> Result<(AlgorithmSet, Vec<VerifyingKey>), BuildError> {
        let mut allowed = AlgorithmSet::from_iter(
            self.algorithms
                .clone()
                .unwrap_or_else(|| AlgorithmSet::ASYMMETRIC.iter().collect()),
        );
        for s in &self.secrets {
            let min = match s.alg {
                Algorithm::HS256 => 32,
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => {
                    return Err(BuildError::InvalidConfig(
                        "hmac_secret needs an HS256, HS384 or HS512 algorithm",
                    ));
                }
            };
            if s.secret.len() < min {
                return Err(BuildError::InvalidConfig(
                    "hmac_secret is shorter than its hash output (32/48/64 bytes for HS256/384/512, RFC 7518 §3.2)",
                ));
            }
            if self
                .algorithms
                .as_ref()
                .is_some_and(|algs| !algs.contains(&s.alg))
            {
                return Err(BuildError::InvalidConfig(
                    "hmac_secret's algorithm is not in the configured algorithms",
                ));
            }
            if self.algorithms.is_none() {
                allowed = AlgorithmSet::from_iter(allowed.iter().chain([s.alg]));
            }
        }
        let hs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        if hs
            .iter()
            .any(|a| allowed.contains(*a) && !self.secrets.iter().any(|s| s.alg == *a))
        {
            return Err(BuildError::InvalidConfig(
                "an HS* algorithm is allowed without a shared secret for it",
            ));
        }
        if allowed.is_empty() {
            return Err(BuildError::InvalidConfig("no algorithm allowed"));
        }
        let secrets = self
            .secrets
            .iter()
            .filter(|s| allowed.contains(s.alg))
            .filter_map(|s| VerifyingKey::hmac(s.kid.as_deref(), &s.secret, s.alg))
            .collect();
        Ok((allowed, secrets))
    }
}

impl TokenGateBuilder {
    pub(super) fn jwks_timing(&self) -> Result<JwksTiming, BuildError> {
        let t = self.jwks;
        let second = Duration::from_secs(1);
        if t.ttl < second || t.min_ttl < second || t.min_ttl > t.max_ttl {
            return Err(BuildError::InvalidConfig(
                "jwks_ttl and its lower bound must be at least 1 s, and the bounds ordered",
            ));
        }
        if t.unknown_kid_fetches > 0 && t.unknown_kid_window.is_zero() {
            return Err(BuildError::InvalidConfig(
                "unknown_kid_refresh needs a non-zero window (use 0 fetches to turn it off)",
            ));
        }
        Ok(JwksTiming {
            max_stale: self
                .keys
                .max_stale
                .unwrap_or_else(|| t.ttl.saturating_mul(10)),
            retry_min: Duration::from_secs(5).min(t.ttl),
            ..t
        })
    }

    /// The key set: static, or fetched (first fetch now, then refreshed in
    /// the background), or none for an issuer of opaque tokens only.
    pub(super) async fn key_source(
        &self,
        keys: &KeySettings,
        introspects: bool,
        (allowed, secrets): (AlgorithmSet, Vec<VerifyingKey>),
        timing: JwksTiming,
        (fetcher, metadata): (&Fetcher, Option<&AuthorizationServerMetadata>),
        issuer: &str,
    ) -> Result<KeySource, BuildError> {
        let fixed = |keys| KeySource {
            jwks: Arc::new(Jwks::fixed(keys, timing, KeyMetrics::new(issuer))),
            verify_jwt_locally: true,
        };
        if let Some(set) = &keys.static_keys {
            let (keys, skipped) = KeySet::from_jwks(set.keys.iter().cloned().map(Ok), allowed);
            for (kid, why) in skipped {
                tracing::warn!(target: "tokengate::jwks", kid = kid.as_deref().unwrap_or("-"), reason = %why, "skipping static key");
            }
            let keys = keys.with_pinned(&secrets.into_iter().map(Arc::new).collect::<Vec<_>>());
            if keys.is_empty() {
                return Err(BuildError::NoUsableKeys);
            }
            return Ok(fixed(keys));
        }
        if !secrets.is_empty() && keys.jwks_uri.is_none() {
            return Ok(fixed(KeySet::new(secrets)));
        }
        let jwks_uri = keys
            .jwks_uri
            .clone()
            .or_else(|| metadata.and_then(|m| m.jwks_uri.clone()));
        let Some(uri) = jwks_uri else {
            // An issuer of opaque tokens only: JWTs, if any, are introspected.
            if introspects {
                return Ok(KeySource {
                    jwks: Arc::new(Jwks::fixed(
                        KeySet::default(),
                        timing,
                        KeyMetrics::new(issuer),
                    )),
                    verify_jwt_locally: false,
                });
            }
            return Err(BuildError::NoJwksUri);
        };
        let jwks_url = self.http.checked_url("jwks_uri", &uri)?;
        let jwks = Arc::new(Jwks::remote(
            jwks_url,
            fetcher.clone(),
            timing,
            allowed,
            secrets,
            KeyMetrics::new(issuer),
        ));
        if let Err(e) = jwks.load().await {
            if self.keys.require_at_startup {
                return Err(BuildError::Jwks(e));
            }
            tracing::error!(target: "tokengate::jwks", error = %e, "starting without keys; requests get 503 until the key set loads");
        }
        jwks.spawn_refresher();
        Ok(KeySource {
            jwks,
            verify_jwt_locally: true,
        })
    }
    /// Fetches keys from this URL instead of the one discovery would find,
    /// and skips discovery.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.keys.jwks_uri = Some(uri.into());
        self
    }

    /// Verifies with these keys only: no discovery, no network (offline use,
    /// tests). Unusable keys are skipped with a warning.
    pub fn static_keys(mut self, keys: JwkSet) -> Self {
        self.keys.static_keys = Some(keys);
        self
    }

    /// Accepts HMAC-signed tokens (`HS256`/`HS384`/`HS512`) verified with
    /// this shared secret. HMAC is used only with a secret configured here:
    /// `oct` keys in a fetched key set are ignored, and public keys never
    /// serve as HMAC secrets. With `kid`, only tokens naming that `kid` use
    /// the secret; without, only tokens without a `kid`. Unless
    /// [`jwks_uri`](Self::jwks_uri) is also set, the gate then needs no
    /// network.
    pub fn hmac_secret(
        mut self,
        kid: Option<&str>,
        secret: impl AsRef<[u8]>,
        alg: Algorithm,
    ) -> Self {
        self.keys.secrets.push(SharedSecret {
            kid: kid.map(str::to_owned),
            secret: secret.as_ref().to_vec(),
            alg,
        });
        self
    }

    /// The JWS algorithms accepted. A key is still used only with the
    /// algorithms its own type allows. Default: every asymmetric algorithm
    /// supported (RS256/384/512, PS256/384/512, ES256/384, EdDSA).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.keys.algorithms = Some(algs.into_iter().collect());
        self
    }

    setters! {
        /// How long a fetched key set is fresh when the server sends no
        /// `Cache-Control: max-age`. Default 5 min.
        jwks_ttl(ttl: Duration) => jwks.ttl;
    }

    /// The bounds within which a server's `max-age` is honoured. Default
    /// 30 s to 1 h.
    pub fn jwks_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.jwks.min_ttl = min;
        self.jwks.max_ttl = max;
        self
    }

    /// How long past its TTL the last good key set keeps serving while
    /// refreshes fail. Default 10 × the TTL.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.keys.max_stale = Some(max_stale);
        self
    }

    /// How many unplanned key set fetches (for an unknown `kid`, or keys gone
    /// stale) may happen per `window`. Default 2 per 30 s: a rotation is
    /// picked up at once, a flood of made-up `kid`s costs one or two fetches.
    pub fn unknown_kid_refresh(mut self, fetches: usize, window: Duration) -> Self {
        self.jwks.unknown_kid_fetches = fetches;
        self.jwks.unknown_kid_window = window;
        self
    }

    setters! {
        /// Whether `build` fails when the first key set fetch fails. Default on.
        /// Off, the gate starts anyway and requests get 503 until keys are
        /// fetched (retried in the background and, rate limited, on requests).
        require_keys_at_startup(require: bool) => keys.require_at_startup;

        /// How much memory remembering verified tokens may take, so a repeated
        /// token skips the signature check (see the crate docs for why this is
        /// sound: entries expire at the token's `exp`, plus the
        /// [`leeway`](Self::leeway), and leave with their signing key).
        ///
        /// Each entry weighs an estimate of the heap bytes it holds: the claims
        /// text, what the principal copies out of it, and about 750 bytes of
        /// bookkeeping; a typical access token (ES256, 438 bytes) weighs about
        /// 1 KB, and [`TokenGate::cache_stats`](crate::TokenGate::cache_stats) reports the total. A claims map
        /// parsed by a handler ([`Principal::claims`](crate::Principal::claims))
        /// is not counted. Default 16 MiB (about 15 000 typical tokens); 0 turns
        /// the cache off.
        verified_token_cache_bytes(bytes: u64) => keys.token_cache_bytes;
    }
}
