//! The one verifier. [`TokenGate`] holds the resolved configuration and the
//! key cache; the layer, and every guard built on it, call into it and into
//! nothing else.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use http::request::Parts;
use http::{HeaderMap, Uri};

use crate::bearer::{self, BearerPolicy};
use crate::builder::TokenGateBuilder;
use crate::error::{AuthError, InvalidToken, Responder, Unavailable};
use crate::introspection::{IntrospectionMode, Introspector};
use crate::jwks::{Jwks, JwksHealth, Refresh};
use crate::jwt::{self, ClaimRules};
use crate::keys::Lookup;
use crate::layer::TokenGateLayer;
use crate::principal::Principal;
use crate::token_cache::{self, TokenCache, TokenHash};

/// A configured resource server: verifies bearer tokens and answers failures.
///
/// Build it once at startup with [`TokenGate::builder`], then hand
/// [`TokenGate::layer`] to your router. Cloning is cheap (one reference
/// count); all clones share the key cache.
///
/// ```
/// use tokengate::TokenGate;
/// use tokengate::testing::TestIssuer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start().await?;
/// let gate = TokenGate::builder()
///     .issuer(issuer.issuer())
///     .audience(issuer.audience())
///     .build()
///     .await?;
///
/// let token = issuer.token().scope("items:read").sign();
/// let principal = gate.verify(&token).await?;
/// assert!(principal.scopes().contains("items:read"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenGate {
    pub(crate) inner: Arc<Gate>,
}

impl std::fmt::Debug for TokenGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGate")
            .field("issuer", &self.inner.rules.issuer)
            .field("audiences", &self.inner.rules.audiences)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Gate {
    pub(crate) jwks: Arc<Jwks>,
    pub(crate) rules: ClaimRules,
    pub(crate) bearer: BearerPolicy,
    pub(crate) responder: Responder,
    pub(crate) token_cache: Option<TokenCache>,
    pub(crate) introspector: Option<Introspector>,
    /// False when the issuer publishes no keys: JWTs are then introspected.
    pub(crate) verify_jwt_locally: bool,
}

/// The result of the synchronous part of verification.
pub(crate) enum Step {
    Done(Result<Principal, AuthError>),
    /// I/O is needed first; [`Gate::finish`] does it.
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

impl TokenGate {
    /// Starts configuring a gate. See [`TokenGateBuilder`] for every option
    /// and its default.
    pub fn builder() -> TokenGateBuilder {
        TokenGateBuilder::default()
    }

    /// The tower layer that authenticates every request.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello" }))
    ///     .layer(gate.layer());
    /// # let _: axum::Router = app;
    /// # }
    /// ```
    pub fn layer(&self) -> TokenGateLayer {
        TokenGateLayer::new(self.clone())
    }

    /// A layer for routes where authentication is optional: requests with
    /// no token pass with no [`Principal`] (handlers take
    /// `Option<Principal>`); a token that is present must be valid.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "hello, whoever you are" }))
    ///     .layer(gate.optional_layer());
    /// # let _: axum::Router = app;
    /// # }
    /// ```
    pub fn optional_layer(&self) -> TokenGateLayer {
        TokenGateLayer::new(self.clone()).optional()
    }

    /// Verifies a bearer token (without the `Bearer ` prefix) and returns its
    /// principal. For places the layer does not reach: WebSocket upgrades,
    /// message consumers, custom interceptors.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.inner.bearer.max_token_len {
            return Err(AuthError::InvalidToken(InvalidToken::TooLong));
        }
        bearer::check_b64token(token.as_bytes())?;
        match self.inner.verify_now(token) {
            Step::Done(result) => result,
            Step::Pending(pending) => self.inner.finish(token, pending).await,
        }
    }

    /// Authenticates request parts: extracts the bearer token exactly as the
    /// layer does, then verifies it.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// let (parts, _body) = http::Request::new(()).into_parts();
    /// let err = gate.authenticate(&parts).await.unwrap_err();
    /// assert_eq!(err, tokengate::AuthError::MissingToken);
    /// # }
    /// ```
    pub async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let token = self.inner.extract(&parts.headers, &parts.uri)?;
        match self.inner.verify_now(&token) {
            Step::Done(result) => result,
            Step::Pending(pending) => self.inner.finish(&token, pending).await,
        }
    }

    /// The RFC 6750 response for `err`, as the layer would send it: the
    /// right status, `WWW-Authenticate` with this gate's realm, `Retry-After`
    /// on 503, and for gRPC (`grpc = true`) a trailers-only gRPC status.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// let response: http::Response<String> = gate.error_response(&tokengate::AuthError::MissingToken, false);
    /// assert_eq!(response.status(), 401);
    /// # }
    /// ```
    pub fn error_response<B: Default>(&self, err: &AuthError, grpc: bool) -> http::Response<B> {
        self.inner.responder.response(err, grpc)
    }

    /// The state of the key set cache: key count, age, last error.
    pub fn jwks_health(&self) -> JwksHealth {
        self.inner.jwks.health()
    }

    /// How many entries the token caches hold, and how many bytes. Runs the
    /// caches' pending maintenance first so the figures are exact: call it
    /// from a metrics scrape or a health check, not per request.
    ///
    /// ```
    /// use tokengate::TokenGate;
    /// use tokengate::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start().await?;
    /// let gate = TokenGate::builder()
    ///     .issuer(issuer.issuer())
    ///     .audience(issuer.audience())
    ///     .build()
    ///     .await?;
    /// gate.verify(&issuer.token().sign()).await?;
    /// assert_eq!(gate.cache_stats().verified_tokens, 1);
    /// # Ok(()) }
    /// ```
    pub fn cache_stats(&self) -> CacheStats {
        let (verified_tokens, verified_token_bytes) = self
            .inner
            .token_cache
            .as_ref()
            .map_or((0, 0), TokenCache::stats);
        let (introspection_answers, introspection_bytes) = self
            .inner
            .introspector
            .as_ref()
            .map_or((0, 0), Introspector::cache_stats);
        CacheStats {
            verified_tokens,
            verified_token_bytes,
            introspection_answers,
            introspection_bytes,
        }
    }
}

/// Entry counts and sizes of a gate's token caches (see
/// [`TokenGate::cache_stats`]). Sizes are the weights the caches are bounded
/// by: an estimate of the heap bytes each entry holds, which never exceeds
/// the configured capacity once maintenance has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// JWTs whose verification is remembered.
    pub verified_tokens: u64,
    /// Their total weight in bytes, within
    /// [`verified_token_cache_bytes`](crate::TokenGateBuilder::verified_token_cache_bytes).
    pub verified_token_bytes: u64,
    /// Introspection answers remembered, active and inactive.
    pub introspection_answers: u64,
    /// Their total weight in bytes, within
    /// [`introspection_cache_bytes`](crate::TokenGateBuilder::introspection_cache_bytes).
    pub introspection_bytes: u64,
}

impl Gate {
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
        let local_jwt = self.verify_jwt_locally && jwt::is_jws_compact(token);
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
        let hash = token_cache::hash(token);
        match introspector.cached(&hash, &self.rules, jwt::now_secs()) {
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
        let jws = match jwt::parse(token, &self.rules) {
            Ok(jws) => jws,
            Err(e) => return Step::Done(Err(AuthError::InvalidToken(e))),
        };
        let now = jwt::now_secs();
        let snapshot = self.jwks.snapshot();
        let usable = snapshot.usable(Instant::now());
        let cached = self
            .token_cache
            .as_ref()
            .map(|cache| (cache, token_cache::hash(token)));
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
                let keys_usable = self.jwks.snapshot().usable(Instant::now());
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
        responder: Responder,
        token_cache: Option<TokenCache>,
        introspector: Option<Introspector>,
        verify_jwt_locally: bool,
    ) -> Self {
        Gate {
            jwks,
            rules,
            bearer,
            responder,
            token_cache,
            introspector,
            verify_jwt_locally,
        }
    }
}
