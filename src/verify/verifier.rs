//! The one verifier: a token in, a [`Principal`] or an [`AuthError`] out.
//! The layer, the extractors, the tonic helpers and
//! [`TokenGate::verify`](crate::TokenGate::verify) all call it, and it knows
//! nothing of how a refusal is answered.
//!
//! Verification is split in two so the common case needs no future: the
//! synchronous [`Verifier::verify_now`] settles everything the caches and the
//! current key snapshot can settle, and hands back a [`Pending`] step only
//! when I/O is needed (keys to refresh, a token to introspect), which
//! [`Verifier::finish`] does.

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Uri};

use crate::authority::introspection::{IntrospectionMode, Introspector};
use crate::authority::jwks::{Jwks, JwksHealth, Refresh};
use crate::clock;
use crate::error::{AuthError, InvalidToken, Unavailable};
use crate::keys::Lookup;
use crate::principal::Principal;
use crate::token::bearer::{self, BearerPolicy};
use crate::token::claims::ClaimRules;
use crate::token::{self, TokenHash, jose};
use crate::verify::token_cache::TokenCache;

/// The verifier: configuration, key set and caches. Knows tokens, keys and
/// claims; nothing of responses.
pub(crate) struct Verifier {
    pub(crate) jwks: Arc<Jwks>,
    pub(crate) rules: ClaimRules,
    pub(crate) bearer: BearerPolicy,
    pub(crate) token_cache: Option<TokenCache>,
    pub(crate) introspector: Option<Introspector>,
    /// False when the issuer publishes no keys: JWTs are then introspected.
    pub(crate) verify_jwt_locally: bool,
}

/// The result of the synchronous part of verification.
pub(crate) enum Step {
    Done(Result<Principal, AuthError>),
    /// I/O is needed first; [`Verifier::finish`] does it.
    Pending(Pending),
}

/// What the slow path must do.
pub(crate) enum Pending {
    /// Refresh the keys; `generation` is the key set looked at.
    Keys { generation: u64 },
    /// Ask the introspection endpoint; `jwt` is the locally verified
    /// principal when JWTs are introspected too.
    Introspection {
        hash: TokenHash,
        jwt: Option<Principal>,
    },
}

impl Verifier {
    /// [`TokenGate::verify`](crate::TokenGate::verify): a bare token.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.bearer.max_token_len {
            return Err(AuthError::InvalidToken(InvalidToken::TooLong));
        }
        bearer::check_b64token(token.as_bytes())?;
        match self.verify_now(token) {
            Step::Done(result) => result,
            Step::Pending(pending) => self.finish(token, pending).await,
        }
    }

    /// [`TokenGate::authenticate`](crate::TokenGate::authenticate): the
    /// token as the layer extracts it from request parts.
    pub(crate) async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token = self.extract(&parts.headers, &parts.uri)?;
        match self.verify_now(&token) {
            Step::Done(result) => result,
            Step::Pending(pending) => self.finish(&token, pending).await,
        }
    }

    pub(crate) fn jwks_health(&self) -> JwksHealth {
        self.jwks.health()
    }

    /// (entries, bytes) of the verified-token cache and of the
    /// introspection cache.
    pub(crate) fn cache_stats(&self) -> ((u64, u64), (u64, u64)) {
        (
            self.token_cache.as_ref().map_or((0, 0), TokenCache::stats),
            self.introspector
                .as_ref()
                .map_or((0, 0), Introspector::cache_stats),
        )
    }

    pub(crate) fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Cow<'r, str>, AuthError> {
        bearer::extract(headers, uri, &self.bearer)
    }

    fn introspector(&self) -> Option<&Introspector> {
        self.introspector
            .as_ref()
            .filter(|i| i.mode() != IntrospectionMode::Off)
    }

    /// Everything that needs no I/O: cached answers, and JWT verification
    /// with the current key snapshot. Asks for I/O only on a cache miss.
    pub(crate) fn verify_now(&self, token: &str) -> Step {
        let local_jwt = self.verify_jwt_locally && jose::is_jws_compact(token);
        let Some(introspector) = self.introspector() else {
            return if local_jwt {
                self.verify_jwt_now(token)
            } else {
                Step::Done(Err(AuthError::InvalidToken(InvalidToken::NotAJwt)))
            };
        };
        let jwt = if local_jwt {
            match self.verify_jwt_now(token) {
                Step::Done(Ok(principal)) if introspector.mode() == IntrospectionMode::All => {
                    Some(principal)
                }
                other => return other,
            }
        } else {
            None
        };
        // A token that cannot be the server's costs no hash, no lookup and
        // no call.
        if jwt.is_none() && !introspector.admits(token) {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::Malformed)));
        }
        let hash = token::hash(token);
        match introspector.cached(&hash, &self.rules, clock::unix_secs()) {
            Some(Ok(answer)) => Step::Done(Ok(jwt.unwrap_or(answer))),
            Some(Err(e)) => Step::Done(Err(e)),
            None => Step::Pending(Pending::Introspection { hash, jwt }),
        }
    }

    /// The JWT path: parse the header, then the verified-token cache, then
    /// pick the key from the current snapshot and verify.
    fn verify_jwt_now(&self, token: &str) -> Step {
        // The header first: it is short, and a token it refuses (garbage, a
        // forbidden algorithm) costs no hash and no cache lookup. A cached
        // token passed these same checks when it was verified.
        let jws = match jose::parse(token, &self.rules) {
            Ok(jws) => jws,
            Err(e) => return Step::Done(Err(AuthError::InvalidToken(e))),
        };
        let now = clock::unix_secs();
        let snapshot = self.jwks.snapshot();
        let usable = snapshot.usable(clock::now());
        let cached = self
            .token_cache
            .as_ref()
            .map(|cache| (cache, token::hash(token)));
        if usable
            && let Some((cache, hash)) = &cached
            && let Some(principal) = cache.get(hash, &snapshot.keys, now)
        {
            return Step::Done(Ok(principal));
        }
        let needs_keys = Step::Pending(Pending::Keys {
            generation: snapshot.generation,
        });
        if !usable {
            return needs_keys;
        }
        match snapshot.keys.lookup(jws.kid.as_deref(), jws.alg) {
            Lookup::Found(candidates) => {
                // Usually one key; more only for a token without `kid` during
                // a rotation, or a reused `kid`. A claims failure is final:
                // the signature matched.
                let mut verified = Err(InvalidToken::BadSignature);
                for key in candidates.iter() {
                    verified = jws.verify(key, &self.rules, now).map(|p| (p, key));
                    if !matches!(verified, Err(InvalidToken::BadSignature)) {
                        break;
                    }
                }
                Step::Done(match verified {
                    Ok((principal, key)) => {
                        if let Some((cache, hash)) = cached {
                            cache.insert(hash, token, &principal, key, now);
                        }
                        Ok(principal)
                    }
                    Err(e) => Err(AuthError::InvalidToken(e)),
                })
            }
            Lookup::AlgorithmMismatch => Step::Done(Err(AuthError::InvalidToken(
                InvalidToken::AlgorithmMismatch,
            ))),
            // A new key (for a kid-less token: one for its algorithm) may
            // be published by now: refresh, within the unknown-kid budget.
            Lookup::UnknownKid | Lookup::NoCandidate if self.jwks.is_remote() => needs_keys,
            Lookup::UnknownKid | Lookup::NoCandidate => {
                Step::Done(Err(AuthError::InvalidToken(InvalidToken::UnknownKey)))
            }
        }
    }

    /// The slow path, for what `verify_now` could not settle.
    pub(crate) async fn finish(
        &self,
        token: &str,
        pending: Pending,
    ) -> Result<Principal, AuthError> {
        match pending {
            Pending::Keys { generation } => {
                match self.verify_after_refresh(token, generation).await? {
                    Step::Done(result) => result,
                    // JWT verified; introspection (mode `All`) still to ask.
                    Step::Pending(Pending::Introspection { hash, jwt }) => {
                        self.introspect(token, hash, jwt).await
                    }
                    Step::Pending(Pending::Keys { .. }) => {
                        Err(AuthError::Unavailable(Unavailable::Keys))
                    }
                }
            }
            Pending::Introspection { hash, jwt } => self.introspect(token, hash, jwt).await,
        }
    }

    async fn introspect(
        &self,
        token: &str,
        hash: TokenHash,
        jwt: Option<Principal>,
    ) -> Result<Principal, AuthError> {
        let Some(introspector) = self.introspector() else {
            return Err(AuthError::InvalidToken(InvalidToken::NotAJwt));
        };
        let answer = introspector.introspect(token, hash, &self.rules).await?;
        Ok(jwt.unwrap_or(answer))
    }

    /// Refreshes the keys (rate limited, single-flight), then looks again.
    async fn verify_after_refresh(&self, token: &str, generation: u64) -> Result<Step, AuthError> {
        let refresh = self.jwks.refresh_unplanned(generation).await;
        match self.verify_now(token) {
            // Still no key. If the server could not be asked, we cannot
            // tell a rotation from a forgery: that is an outage (503). If it
            // answered, or the refresh budget is spent while it is healthy,
            // the kid is simply unknown (401).
            Step::Pending(Pending::Keys { .. }) => {
                let keys_usable = self.jwks.snapshot().usable(clock::now());
                let outage = !keys_usable || refresh == Refresh::Failed || self.jwks.failing();
                if outage {
                    Err(AuthError::Unavailable(Unavailable::Keys))
                } else {
                    Err(AuthError::InvalidToken(InvalidToken::UnknownKey))
                }
            }
            other => Ok(other),
        }
    }

    pub(crate) fn new(
        jwks: Arc<Jwks>,
        rules: ClaimRules,
        bearer: BearerPolicy,
        token_cache: Option<TokenCache>,
        introspector: Option<Introspector>,
        verify_jwt_locally: bool,
    ) -> Self {
        Verifier {
            jwks,
            rules,
            bearer,
            token_cache,
            introspector,
            verify_jwt_locally,
        }
    }
}
