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
use std::collections::HashMap;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Uri};

use crate::authority::introspection::{IntrospectionMode, Introspector};
use crate::authority::jwks::{Jwks, JwksHealth, Refresh};
use crate::clock;
use crate::error::{AuthError, InvalidToken, Unavailable};
use crate::keys::{AlgorithmSet, Lookup};
use crate::observe::{self, Cache, Metrics};
use crate::principal::Principal;
use crate::token::bearer::{self, BearerPolicy};
use crate::token::claims::ClaimRules;
use crate::token::{self, TokenHash, jose};
use crate::verify::token_cache::TokenCache;

/// One trusted issuer: its key set, the rules its tokens must meet, and
/// whether its JWTs are verified here or introspected.
pub(crate) struct Authority {
    pub(crate) jwks: Arc<Jwks>,
    pub(crate) rules: ClaimRules,
    /// False when the issuer publishes no keys: JWTs are then introspected.
    pub(crate) verify_jwt_locally: bool,
    /// Its RFC 7662 client, when this issuer introspects.
    pub(crate) introspector: Option<Introspector>,
}

/// Chooses the issuer of an opaque token (by its prefix, say): a trusted
/// issuer's identifier, or `None` for a token no issuer of ours made.
#[derive(Clone)]
pub(crate) struct OpaqueRouter(pub(crate) Arc<RouteFn>);

type RouteFn = dyn Fn(&str) -> Option<String> + Send + Sync;

impl std::fmt::Debug for OpaqueRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueRouter(..)")
    }
}

/// The verifier: the trusted issuers, the caches and the introspection
/// client. Knows tokens, keys and claims; nothing of responses.
pub(crate) struct Verifier {
    /// In configuration order; at most `u16::MAX` (the token cache records
    /// an index).
    pub(crate) authorities: Box<[Authority]>,
    /// What a JOSE header must satisfy before any issuer is chosen: the
    /// union of the issuers' algorithms (each issuer's own set is checked
    /// once it is chosen) and the gate-wide RFC 9068 strictness.
    header_rules: ClaimRules,
    pub(crate) bearer: BearerPolicy,
    pub(crate) token_cache: Option<TokenCache>,
    /// The authority that introspects opaque tokens when no router is
    /// configured (its rules check the answers).
    pub(crate) introspecting: usize,
    pub(crate) opaque_router: Option<OpaqueRouter>,
    /// The authorities with one identifier, by identifier (the first of a
    /// repeated one): routing costs one hash lookup however many there are.
    exact: HashMap<Box<str>, usize>,
    /// The template authorities (Entra's `{tenantid}`), tried in order
    /// when no identifier matches exactly.
    templates: Box<[usize]>,
    /// The request and cache counters (empty without the `metrics` feature).
    pub(crate) metrics: Metrics,
}

/// The result of the synchronous part of verification.
pub(crate) enum Step {
    Done(Result<Principal, AuthError>),
    /// I/O is needed first; [`Verifier::finish`] does it.
    Pending(Pending),
}

/// What the slow path must do.
pub(crate) enum Pending {
    /// Refresh the keys of authority `issuer`; `generation` is the key set
    /// looked at.
    Keys { issuer: usize, generation: u64 },
    /// Ask authority `issuer`'s introspection endpoint; `jwt` is the
    /// locally verified principal when JWTs are introspected too.
    Introspection {
        issuer: usize,
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
        self.authorities[0].jwks.health()
    }

    /// Sets the gauges from the caches and key sets (exact sizes: not for
    /// the request path).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn sample_gauges(&self) {
        if let Some(cache) = &self.token_cache {
            self.metrics.cache_size(Cache::VerifiedToken, cache.stats());
        }
        let introspection = self
            .authorities
            .iter()
            .filter_map(|a| a.introspector.as_ref())
            .map(Introspector::cache_stats)
            .reduce(|(n, b), (n2, b2)| (n + n2, b + b2));
        if let Some(sizes) = introspection {
            self.metrics.cache_size(Cache::Introspection, sizes);
        }
        for authority in &self.authorities {
            authority.jwks.sample_gauges();
        }
    }

    /// (entries, bytes) of the verified-token cache and of the
    /// introspection cache.
    pub(crate) fn cache_stats(&self) -> ((u64, u64), (u64, u64)) {
        (
            self.token_cache.as_ref().map_or((0, 0), TokenCache::stats),
            self.authorities
                .iter()
                .filter_map(|a| a.introspector.as_ref())
                .map(Introspector::cache_stats)
                .fold((0, 0), |(n, b), (n2, b2)| (n + n2, b + b2)),
        )
    }

    pub(crate) fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Cow<'r, str>, AuthError> {
        bearer::extract(headers, uri, &self.bearer)
    }

    fn introspector(&self, issuer: usize) -> Option<&Introspector> {
        self.authorities
            .get(issuer)?
            .introspector
            .as_ref()
            .filter(|i| i.mode() != IntrospectionMode::Off)
    }

    /// The authority that introspects this opaque token.
    fn opaque_issuer(&self, token: &str) -> Option<usize> {
        match &self.opaque_router {
            None => Some(self.introspecting),
            Some(route) => {
                let issuer = (route.0)(token)?;
                self.exact.get(issuer.as_str()).copied().or_else(|| {
                    self.templates
                        .iter()
                        .copied()
                        .find(|&i| self.authorities[i].rules.issuer == issuer)
                })
            }
        }
    }

    /// Everything that needs no I/O: cached answers, and JWT verification
    /// with the current key snapshot. Asks for I/O only on a cache miss.
    pub(crate) fn verify_now(&self, token: &str) -> Step {
        let only_issuer_introspects_jwts =
            self.authorities.len() == 1 && !self.authorities[0].verify_jwt_locally;
        if only_issuer_introspects_jwts || !jose::is_jws_compact(token) {
            return match self.opaque_issuer(token) {
                Some(issuer) => self.opaque_now(token, issuer, None),
                None => Step::Done(Err(AuthError::InvalidToken(InvalidToken::WrongIssuer))),
            };
        }
        // The header first: it is short, and a token it refuses (garbage, a
        // forbidden algorithm) costs no hash and no cache lookup. A cached
        // token passed these same checks when it was verified.
        let jws = match jose::parse(token, &self.header_rules) {
            Ok(jws) => jws,
            Err(e) => return Step::Done(Err(AuthError::InvalidToken(e))),
        };
        let now = clock::unix_secs();
        let cached = self
            .token_cache
            .as_ref()
            .map(|cache| (cache, token::hash(token)));
        let mut hit_issuer = 0;
        if let Some((cache, hash)) = &cached
            && let Some(principal) = cache.get(hash, now, |issuer, key| {
                hit_issuer = issuer;
                let snapshot = self.authorities.get(issuer)?.jwks.snapshot();
                snapshot
                    .usable(clock::now())
                    .then(|| snapshot.keys.still_has(key.kid(), key.thumbprint()))
            })
        {
            self.metrics.lookup(Cache::VerifiedToken, true);
            observe::answered_from_cache();
            return self.after_jwt(token, hit_issuer, principal);
        }
        if cached.is_some() {
            self.metrics.lookup(Cache::VerifiedToken, false);
        }
        let issuer = match self.route(&jws) {
            Ok(issuer) => issuer,
            Err(e) => return Step::Done(Err(AuthError::InvalidToken(e))),
        };
        let authority = &self.authorities[issuer];
        if !authority.rules.algorithms.contains(jws.alg) {
            return Step::Done(Err(AuthError::InvalidToken(
                InvalidToken::UnsupportedAlgorithm,
            )));
        }
        if !authority.verify_jwt_locally {
            return self.opaque_now(token, issuer, None);
        }
        match self.verify_jwt_now(&jws, issuer, authority, cached, token, now) {
            Step::Done(Ok(principal)) => self.after_jwt(token, issuer, principal),
            other => other,
        }
    }

    /// Which authority a JWT belongs to: the only one, or the one whose
    /// identifier equals the token's unverified `iss` exactly. An unknown
    /// or missing `iss` costs no network call: nothing is ever fetched
    /// because of what a token says.
    fn route(&self, jws: &jose::Jws<'_>) -> Result<usize, InvalidToken> {
        if self.authorities.len() == 1 {
            return Ok(0);
        }
        jws.with_unverified_issuer(|iss, tid| {
            let iss = iss.ok_or(InvalidToken::WrongIssuer)?;
            // An exact identifier wins over a template that would admit
            // the same `iss`.
            if let Some(&index) = self.exact.get(iss) {
                return Ok(index);
            }
            self.templates
                .iter()
                .copied()
                .find(|&i| {
                    self.authorities[i]
                        .rules
                        .tenants
                        .as_ref()
                        .is_some_and(|t| t.admits(iss, tid))
                })
                .ok_or(InvalidToken::WrongIssuer)
        })
    }

    /// A JWT verified for authority `issuer`: done, unless that issuer
    /// introspects JWTs too (mode `All`, for revocation).
    fn after_jwt(&self, token: &str, issuer: usize, principal: Principal) -> Step {
        match self.introspector(issuer) {
            Some(i) if i.mode() == IntrospectionMode::All => {
                self.opaque_now(token, issuer, Some(principal))
            }
            _ => Step::Done(Ok(principal)),
        }
    }

    /// The introspection path: the cached answer, or a call to make.
    /// `jwt` is the locally verified principal of a JWT introspected for
    /// revocation.
    fn opaque_now(&self, token: &str, issuer: usize, jwt: Option<Principal>) -> Step {
        let Some(introspector) = self.introspector(issuer) else {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::NotAJwt)));
        };
        // A token that cannot be the server's costs no hash, no lookup and
        // no call.
        if jwt.is_none() && !introspector.admits(token) {
            return Step::Done(Err(AuthError::InvalidToken(InvalidToken::Malformed)));
        }
        let hash = token::hash(token);
        let rules = &self.authorities[issuer].rules;
        let cached = introspector.cached(&hash, rules, clock::unix_secs());
        self.metrics.lookup(Cache::Introspection, cached.is_some());
        match cached {
            Some(result) => {
                observe::answered_from_cache();
                Step::Done(result.map(|answer| jwt.unwrap_or(answer)))
            }
            None => Step::Pending(Pending::Introspection { issuer, hash, jwt }),
        }
    }

    /// The JWT path after routing: pick the key from the issuer's current
    /// snapshot and verify.
    fn verify_jwt_now(
        &self,
        jws: &jose::Jws<'_>,
        issuer: usize,
        authority: &Authority,
        cached: Option<(&TokenCache, TokenHash)>,
        token: &str,
        now: u64,
    ) -> Step {
        let snapshot = authority.jwks.snapshot();
        let needs_keys = Step::Pending(Pending::Keys {
            issuer,
            generation: snapshot.generation,
        });
        if !snapshot.usable(clock::now()) {
            return needs_keys;
        }
        match snapshot.keys.lookup(jws.kid.as_deref(), jws.alg) {
            Lookup::Found(candidates) => {
                // Usually one key; more only for a token without `kid` during
                // a rotation, or a reused `kid`. A claims failure is final:
                // the signature matched.
                let mut verified = Err(InvalidToken::BadSignature);
                for key in candidates.iter() {
                    verified = jws.verify(key, &authority.rules, now).map(|p| (p, key));
                    if !matches!(verified, Err(InvalidToken::BadSignature)) {
                        break;
                    }
                }
                Step::Done(match verified {
                    Ok((principal, key)) => {
                        if let Some((cache, hash)) = cached {
                            cache.insert(hash, token, &principal, key, issuer, now);
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
            Lookup::UnknownKid | Lookup::NoCandidate if authority.jwks.is_remote() => needs_keys,
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
            Pending::Keys { issuer, generation } => {
                match self.verify_after_refresh(token, issuer, generation).await? {
                    Step::Done(result) => result,
                    // JWT verified; introspection (mode `All`) still to ask.
                    Step::Pending(Pending::Introspection { issuer, hash, jwt }) => {
                        self.introspect(token, issuer, hash, jwt).await
                    }
                    Step::Pending(Pending::Keys { .. }) => {
                        Err(AuthError::Unavailable(Unavailable::Keys))
                    }
                }
            }
            Pending::Introspection { issuer, hash, jwt } => {
                self.introspect(token, issuer, hash, jwt).await
            }
        }
    }

    async fn introspect(
        &self,
        token: &str,
        issuer: usize,
        hash: TokenHash,
        jwt: Option<Principal>,
    ) -> Result<Principal, AuthError> {
        let Some(introspector) = self.introspector(issuer) else {
            return Err(AuthError::InvalidToken(InvalidToken::NotAJwt));
        };
        let rules = &self.authorities[issuer].rules;
        let answer = introspector.introspect(token, hash, rules).await?;
        Ok(jwt.unwrap_or(answer))
    }

    /// Refreshes the keys (rate limited, single-flight), then looks again.
    async fn verify_after_refresh(
        &self,
        token: &str,
        issuer: usize,
        generation: u64,
    ) -> Result<Step, AuthError> {
        let jwks = &self.authorities[issuer].jwks;
        let refresh = jwks.refresh_unplanned(generation).await;
        match self.verify_now(token) {
            // Still no key. If the server could not be asked, we cannot
            // tell a rotation from a forgery: that is an outage (503). If it
            // answered, or the refresh budget is spent while it is healthy,
            // the kid is simply unknown (401).
            Step::Pending(Pending::Keys { .. }) => {
                let keys_usable = jwks.snapshot().usable(clock::now());
                let outage = !keys_usable || refresh == Refresh::Failed || jwks.failing();
                if outage {
                    Err(AuthError::Unavailable(Unavailable::Keys))
                } else {
                    Err(AuthError::InvalidToken(InvalidToken::UnknownKey))
                }
            }
            other => Ok(other),
        }
    }

    /// A verifier over `authorities` (at least one); opaque tokens go to
    /// the one `opaque_router` names, or else to authority `introspecting`.
    pub(crate) fn new(
        authorities: Vec<Authority>,
        bearer: BearerPolicy,
        token_cache: Option<TokenCache>,
        introspecting: usize,
        opaque_router: Option<OpaqueRouter>,
    ) -> Self {
        let first = &authorities[0].rules;
        let header_rules = ClaimRules {
            algorithms: AlgorithmSet::from_iter(
                authorities.iter().flat_map(|a| a.rules.algorithms.iter()),
            ),
            ..first.clone()
        };
        let mut exact = HashMap::with_capacity(authorities.len());
        let mut templates = Vec::new();
        for (index, authority) in authorities.iter().enumerate() {
            if authority.rules.tenants.is_some() {
                templates.push(index);
            } else {
                exact
                    .entry(authority.rules.issuer.as_str().into())
                    .or_insert(index);
            }
        }
        Verifier {
            exact,
            templates: templates.into_boxed_slice(),
            authorities: authorities.into_boxed_slice(),
            header_rules,
            bearer,
            token_cache,
            introspecting,
            opaque_router,
            metrics: Metrics::new(),
        }
    }
}
