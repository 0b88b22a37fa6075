//! Opaque tokens: OAuth 2.0 Token Introspection (RFC 7662) behind a cache.
//!
//! - **The request** (§2.1): `POST token=…&token_type_hint=access_token`,
//!   authenticated as the resource server's own client:
//!   `client_secret_basic` (id and secret form-urlencoded before base64, RFC
//!   6749 §2.3.1), `client_secret_post`, or `private_key_jwt` (RFC 7523).
//!   Bounded like every call: timeouts, size cap, no redirects.
//! - **The answer** (§2.2): `active` must be a JSON boolean. An active token is
//!   still checked: `exp`/`nbf` with the leeway, `iss` and `aud` when
//!   present, and `token_type` when present must name an access token (a
//!   refresh token is never accepted). An answer we cannot read (not JSON,
//!   `active` missing or not a boolean, an error status) is the server's
//!   failure: 503, never cached, never a 200.
//! - **The cache** is keyed by the SHA-256 of the token, never the token. An
//!   active answer lives until the earlier of the token's `exp` and
//!   [`introspection_cache_ttl`] (default 2 min): that is also how long a
//!   revoked token may still be accepted (RFC 7662 §4). Inactive answers are
//!   cached briefly (default 10 s) so a flood of one bad token costs one
//!   call. Errors are never cached. The cache is bounded in bytes
//!   ([`introspection_cache_bytes`], default 64 MiB): an answer weighs its
//!   JSON text plus its share of bookkeeping, so answers of up to the 1 MiB
//!   response cap cannot multiply into gigabytes.
//! - **Upstream load**: concurrent requests for the same uncached token share
//!   one call (and a finished call is shared no further: a late request asks
//!   again rather than inherit a failure). Calls in flight are bounded
//!   (default 64), and so is the queue for a slot (default 64 requests, each
//!   waiting at most the [`timeout`]); a request finding the queue full is
//!   answered 503 with `Retry-After` at once. A flood of random tokens
//!   therefore cannot stampede the authorization server, nor keep requests
//!   waiting for long.
//! - **Garbage stays here**: with an [`OpaqueTokenShape`] (prefix, length,
//!   alphabet), a token that cannot be the server's is refused (401
//!   `invalid_token`) without a call, taking no slot from real tokens.
//!
//! The limit that remains: a flood of tokens that *do* have the right shape
//! (random strings after the right prefix) still costs one call each, up to
//! the concurrency bound, and while it lasts a legitimate token seen for the
//! first time competes with it for slots: it is answered within about two
//! call durations, or 503 at once when the queue is full. Tokens already
//! cached are not affected. Rate limiting per client belongs in front of the
//! gate (a proxy, `tower::limit`).
//!
//! [`introspection_cache_ttl`]: crate::TokenGateBuilder::introspection_cache_ttl
//! [`introspection_cache_bytes`]: crate::TokenGateBuilder::introspection_cache_bytes
//! [`timeout`]: crate::TokenGateBuilder::timeout

mod settings;
mod shape;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use moka::sync::Cache;
use reqwest::Url;
use serde_json::Value;
use tokio::sync::{Semaphore, TryAcquireError};

use crate::authority::fetch::{FetchError, Fetcher};
use crate::clock::{self, ExpiresAt, Instant, UntilExpiry};
use crate::error::{AuthError, InvalidToken, Unavailable};
use crate::principal::{ENTRY_OVERHEAD, Principal, TokenSource, cache_weight};
use crate::single_flight::SingleFlight;
use crate::token::TokenHash;
use crate::token::claims::{self, ClaimRules, Registered};

pub use settings::{ClientAuth, IntrospectionMode};
pub(crate) use settings::{Credentials, IntrospectionLimits};
pub use shape::{OpaqueTokenShape, TokenAlphabet};

#[derive(Clone)]
enum Answer {
    Active {
        principal: Principal,
        exp: Option<u64>,
        /// Bytes of the answer's JSON text, which the principal keeps.
        text_len: usize,
    },
    Inactive(InvalidToken),
}

impl Answer {
    /// Its weight in the cache: an estimate of the heap bytes it holds.
    fn weight(&self) -> u32 {
        match self {
            Answer::Active {
                principal,
                text_len,
                ..
            } => cache_weight(principal, *text_len),
            Answer::Inactive(_) => ENTRY_OVERHEAD as u32,
        }
    }
}

#[derive(Clone)]
struct Entry {
    answer: Answer,
    /// On the crate's clock ([`clock::now`]; moka's own clock only reclaims memory): past it, the entry is a miss.
    expires: Instant,
    weight: u32,
}

impl ExpiresAt for Entry {
    fn expires(&self) -> Instant {
        self.expires
    }
}

/// A place in the queue for an upstream slot, given back on drop.
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    /// A place, unless `limit` requests already wait.
    fn take(waiting: &'a AtomicUsize, limit: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| QueuePlace(waiting))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct Introspector {
    endpoint: Url,
    fetcher: Fetcher,
    credentials: Credentials,
    /// `aud` of client assertions: the issuer (RFC 7523 §3, as clarified by
    /// RFC 7523bis).
    issuer: String,
    mode: IntrospectionMode,
    limits: IntrospectionLimits,
    shape: OpaqueTokenShape,
    cache: Cache<TokenHash, Entry>,
    in_flight: SingleFlight<TokenHash, Result<Answer, Unavailable>>,
    slots: Semaphore,
    /// Requests waiting for a slot, at most `limits.queue`.
    waiting: AtomicUsize,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub(crate) fn new(
        endpoint: Url,
        fetcher: Fetcher,
        credentials: Credentials,
        issuer: String,
        mode: IntrospectionMode,
        limits: IntrospectionLimits,
        shape: OpaqueTokenShape,
    ) -> Self {
        Introspector {
            endpoint,
            fetcher,
            credentials,
            issuer,
            mode,
            cache: Cache::builder()
                .max_capacity(limits.capacity)
                .weigher(|_, entry: &Entry| entry.weight)
                .expire_after(UntilExpiry)
                .build(),
            limits,
            shape,
            in_flight: SingleFlight::default(),
            slots: Semaphore::new(limits.concurrency.max(1)),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn mode(&self) -> IntrospectionMode {
        self.mode
    }

    /// Whether `token` may be one of the server's opaque tokens, by the
    /// configured [`OpaqueTokenShape`].
    pub(crate) fn admits(&self, token: &str) -> bool {
        self.shape.admits(token)
    }

    /// The cached answer for a token, without I/O.
    pub(crate) fn cached(
        &self,
        hash: &TokenHash,
        rules: &ClaimRules,
        now: u64,
    ) -> Option<Result<Principal, AuthError>> {
        Some(settle(self.fresh(hash)?, rules, now))
    }

    /// The cached answer, unless its lifetime is over (moka may not have
    /// reclaimed it yet).
    fn fresh(&self, hash: &TokenHash) -> Option<Answer> {
        let entry = self.cache.get(hash)?;
        if clock::now() >= entry.expires {
            self.cache.invalidate(hash);
            return None;
        }
        Some(entry.answer)
    }

    /// Cached answers and their weight in bytes, after pending maintenance
    /// (exact, but not for the hot path).
    pub(crate) fn cache_stats(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    #[cfg(test)]
    fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Asks the authorization server (once per token at a time).
    pub(crate) async fn introspect(
        &self,
        token: &str,
        hash: TokenHash,
        rules: &ClaimRules,
    ) -> Result<Principal, AuthError> {
        // Shared only with the requests that join while the call is in the
        // air: from then on the cache (or, after a failure, a new call)
        // answers for this token.
        let outcome = self
            .in_flight
            .run(hash, || async {
                match self.fresh(&hash) {
                    Some(answer) => Ok(answer),
                    None => self.call(token, rules).await.inspect(|answer| {
                        self.remember(hash, answer);
                    }),
                }
            })
            .await;
        match outcome {
            Ok(answer) => settle(answer, rules, clock::unix_secs()),
            Err(reason) => Err(AuthError::Unavailable(reason)),
        }
    }

    /// What [`Self::introspect`] makes of a fetched answer `body`, without
    /// the fetch: the fuzz target's way to reach the parser many thousand
    /// times a second (it also goes end to end, through HTTP, on a share of
    /// its inputs). Only in `cfg(fuzzing)` builds.
    #[cfg(fuzzing)]
    pub(crate) fn read_fetched(
        &self,
        body: &[u8],
        rules: &ClaimRules,
    ) -> Result<Principal, AuthError> {
        let now = clock::unix_secs();
        match read_answer(body, rules, now, self.limits.require_audience) {
            Ok(answer) => settle(answer, rules, now),
            Err(_) => Err(AuthError::Unavailable(Unavailable::Introspection)),
        }
    }

    fn remember(&self, hash: TokenHash, answer: &Answer) {
        let lifetime = match answer {
            Answer::Active { exp, .. } => {
                let until_exp = exp.map_or(self.limits.max_ttl, |exp| {
                    Duration::from_secs(exp.saturating_sub(clock::unix_secs()))
                });
                until_exp.min(self.limits.max_ttl)
            }
            Answer::Inactive(_) => self.limits.inactive_ttl,
        };
        // A configured TTL of "forever" (`Duration::MAX`) must not overflow
        // the clock: thirty years is forever enough.
        let now = clock::now();
        let expires = now
            .checked_add(lifetime)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        if !lifetime.is_zero() {
            self.cache.insert(
                hash,
                Entry {
                    answer: answer.clone(),
                    expires,
                    weight: answer.weight(),
                },
            );
        }
    }

    /// An upstream slot: at once if one is free; else after a wait, if fewer
    /// than `limits.queue` requests wait already; else none. A request that
    /// would only queue behind a flood gets its 503 now, not after the
    /// timeout.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Unavailable> {
        match self.slots.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(Unavailable::Introspection),
            Err(TryAcquireError::NoPermits) => {}
        }
        let Some(_place) = QueuePlace::take(&self.waiting, self.limits.queue) else {
            // Debug, not warn: under a flood this is every request, and a
            // flood must not turn into one of log lines.
            tracing::debug!(target: "tokengate::introspection", "introspection queue full");
            return Err(Unavailable::Introspection);
        };
        tokio::time::timeout(self.limits.queue_timeout, self.slots.acquire())
            .await
            .map_err(|_| {
                tracing::warn!(target: "tokengate::introspection", "no free introspection slot in time");
                Unavailable::Introspection
            })?
            .map_err(|_| Unavailable::Introspection)
    }

    async fn call(&self, token: &str, rules: &ClaimRules) -> Result<Answer, Unavailable> {
        let _slot = self.slot().await?;
        let (form, authorization) = self.request_body(token).map_err(|e| {
            tracing::error!(target: "tokengate::introspection", error = %e, "could not build the client assertion");
            Unavailable::Introspection
        })?;
        let fetched = self
            .fetcher
            .post_form(&self.endpoint, form, authorization.as_ref())
            .await
            .map_err(|e| self.failed(&e))?;
        let answer = read_answer(
            &fetched.body,
            rules,
            clock::unix_secs(),
            self.limits.require_audience,
        )
        .map_err(|e| self.failed(&e))?;
        tracing::debug!(
            target: "tokengate::introspection",
            active = matches!(answer, Answer::Active { .. }),
            "token introspected"
        );
        Ok(answer)
    }

    fn failed(&self, e: &FetchError) -> Unavailable {
        tracing::error!(target: "tokengate::introspection", endpoint = %self.endpoint, error = %e, "introspection failed");
        Unavailable::Introspection
    }

    /// The form and `Authorization` header of one call. The token only ever
    /// travels here, in the body.
    fn request_body(
        &self,
        token: &str,
    ) -> Result<(String, Option<HeaderValue>), jsonwebtoken::errors::Error> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token);
        form.append_pair("token_type_hint", "access_token");
        let c = &self.credentials;
        let authorization = match &c.auth {
            ClientAuth::SecretBasic => {
                let id: String = form_urlencoded::byte_serialize(c.client_id.as_bytes()).collect();
                let secret: String = form_urlencoded::byte_serialize(c.secret.as_bytes()).collect();
                let mut value = HeaderValue::try_from(format!(
                    "Basic {}",
                    STANDARD.encode(format!("{id}:{secret}"))
                ))
                .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
                value.set_sensitive(true);
                Some(value)
            }
            ClientAuth::SecretPost => {
                form.append_pair("client_id", &c.client_id);
                form.append_pair("client_secret", &c.secret);
                None
            }
            ClientAuth::PrivateKeyJwt { key, alg, kid } => {
                let mut header = jsonwebtoken::Header::new(*alg);
                header.kid = kid.clone();
                let mut jti = [0u8; 16];
                aws_lc_rs::rand::fill(&mut jti)
                    .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
                let claims = assertion_claims(&c.client_id, &self.issuer, clock::unix_secs(), &jti);
                let assertion = jsonwebtoken::encode(&header, &claims, key)?;
                form.append_pair("client_id", &c.client_id);
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                );
                form.append_pair("client_assertion", &assertion);
                None
            }
        };
        Ok((form.finish(), authorization))
    }
}

/// The claims of an RFC 7523 §3 client assertion issued at `now`, valid for
/// a minute. `now` may be anything a clock returns, `u64::MAX` included (a
/// clock before 1970): the expiry saturates rather than overflow.
fn assertion_claims(client_id: &str, issuer: &str, now: u64, jti: &[u8]) -> Value {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": issuer,
        "iat": now,
        "exp": now.saturating_add(60),
        "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
    })
}

/// Reads an RFC 7662 §2.2 answer. `Err` means the answer itself is broken
/// (not a JSON object, or no boolean `active`): the server failed, and that
/// is never the token's fault.
fn read_answer(
    body: &[u8],
    rules: &ClaimRules,
    now: u64,
    require_audience: bool,
) -> Result<Answer, FetchError> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        active: Option<Value>,
    }
    let text = std::str::from_utf8(body)
        .ok()
        .filter(|t| t.trim_start().starts_with('{') && claims::nesting_within_limit(t))
        .ok_or_else(|| FetchError::Malformed("not a JSON object".into()))?;
    let envelope: Envelope = serde_json::from_str(text)
        .map_err(|e| FetchError::Malformed(format!("not a JSON object: {e}")))?;
    match envelope.active {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Answer::Inactive(InvalidToken::Inactive)),
        Some(_) => return Err(FetchError::Malformed("\"active\" is not a boolean".into())),
        None => return Err(FetchError::Malformed("\"active\" is missing".into())),
    }
    let checked = Principal::from_json(
        text.to_owned(),
        TokenSource::Introspection,
        &rules.roles,
        |claims| check_active(claims, rules, now, require_audience),
    );
    Ok(match checked {
        Ok(principal) => {
            let exp = principal.exp_secs();
            Answer::Active {
                principal,
                exp,
                text_len: text.len(),
            }
        }
        // JSON no reader can represent (a number out of range, a lone
        // surrogate): the answer is broken, not the token.
        Err(InvalidToken::Malformed) => {
            return Err(FetchError::Malformed("not a readable JSON object".into()));
        }
        Err(reason) => Answer::Inactive(reason),
    })
}

/// An active answer is still checked: RFC 7662 makes these fields optional,
/// so each is checked when present (`aud` also when required by option).
fn check_active(
    claims: &Registered<'_>,
    rules: &ClaimRules,
    now: u64,
    require_audience: bool,
) -> Result<(), InvalidToken> {
    claims.check_times(false, rules.leeway_secs, now)?;
    claims.check_issuer_among(&rules.issuer, &rules.other_issuers)?;
    claims.check_audience(&rules.audiences, require_audience)?;
    match &claims.token_type {
        None => {}
        Some(Value::String(t)) if is_access_token_type(t) => {}
        // A DPoP-bound token (RFC 9449 §6.2) needs its proof checked: the
        // layer does, when DPoP is enabled and the answer names the key.
        Some(Value::String(t))
            if t.eq_ignore_ascii_case("dpop") && rules.dpop && claims.jkt().is_some() => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("dpop") => {
            return Err(InvalidToken::SenderConstrained);
        }
        Some(_) => return Err(InvalidToken::NotAnAccessToken),
    }
    // A refresh or ID token is never an access token, whatever `active`
    // says.
    if claims.says_not_an_access_token() {
        return Err(InvalidToken::NotAnAccessToken);
    }
    claims.check_binding(rules.dpop)
}

/// RFC 7662 `token_type` names an RFC 6749 §7.1 access token type; servers
/// also send RFC 8693's URN or plain `access_token`.
fn is_access_token_type(t: &str) -> bool {
    t.eq_ignore_ascii_case("bearer")
        || t.eq_ignore_ascii_case("access_token")
        || t == "urn:ietf:params:oauth:token-type:access_token"
}

/// A cached answer, with expiry checked again now.
fn settle(answer: Answer, rules: &ClaimRules, now: u64) -> Result<Principal, AuthError> {
    match answer {
        Answer::Active { principal, exp, .. } => match exp {
            Some(exp) if now >= exp.saturating_add(rules.leeway_secs) => {
                Err(AuthError::InvalidToken(InvalidToken::Expired))
            }
            _ => Ok(principal),
        },
        Answer::Inactive(reason) => Err(AuthError::InvalidToken(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Result<Principal, InvalidToken>, FetchError> {
        read_answer(
            &serde_json::to_vec(&v).unwrap(),
            &ClaimRules::for_tests(),
            1000,
            false,
        )
        .map(|a| match a {
            Answer::Active { principal, .. } => Ok(principal),
            Answer::Inactive(r) => Err(r),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn abandoned_requests_leave_no_flight_behind() {
        use crate::testing::{
            Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
        };
        let issuer = TestIssuer::start().await.unwrap();
        issuer.set_fault(
            Endpoint::Introspection,
            Some(Fault::Slow(Duration::from_secs(5))),
        );
        let gate = crate::TokenGate::builder()
            .issuer(issuer.issuer())
            .audience(issuer.audience())
            .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
            .build()
            .await
            .unwrap();
        let introspector = gate.inner.verifier.authorities[0]
            .introspector
            .as_ref()
            .unwrap();
        for i in 0..50 {
            let token = format!("abandoned-{i}");
            let _ = tokio::time::timeout(Duration::from_millis(10), gate.verify(&token)).await;
        }
        assert_eq!(introspector.in_flight_len(), 0);
    }

    #[test]
    fn the_client_assertion_expiry_saturates_before_1970() {
        // `now_secs` answers u64::MAX for a clock before the epoch.
        let claims = assertion_claims("rs", "https://as", u64::MAX, &[0; 16]);
        assert_eq!(claims["exp"], u64::MAX);
        assert_eq!(claims["iat"], u64::MAX);
        let claims = assertion_claims("rs", "https://as", 1000, &[0; 16]);
        assert_eq!(claims["exp"], 1060);
    }

    #[test]
    fn the_token_shape_checks_prefix_length_and_alphabet() {
        let any = OpaqueTokenShape::new();
        assert!(any.admits("x") && any.admits("a.b~c+d/e=="));
        let shape = OpaqueTokenShape::new()
            .prefix("at_")
            .length(6..=8)
            .alphabet(TokenAlphabet::Hex);
        assert!(shape.admits("at_00f") && shape.admits("at_00fFa"));
        for refused in ["at_00", "at_00fFab", "AT_00f", "bt_00f", "at_00g", "00fFab"] {
            assert!(!shape.admits(refused), "{refused}");
        }
        let b64url = OpaqueTokenShape::new().alphabet(TokenAlphabet::Base64Url);
        assert!(b64url.admits("aZ09-_"));
        assert!(!b64url.admits("aZ09+") && !b64url.admits("aZ09==") && !b64url.admits("a.b"));
        let alnum = OpaqueTokenShape::new().alphabet(TokenAlphabet::Alphanumeric);
        assert!(alnum.admits("aZ09") && !alnum.admits("a-b"));
        assert!(OpaqueTokenShape::new().length(3..).admits("abc"));
        assert!(!OpaqueTokenShape::new().length(3..).admits("ab"));
        assert!(!OpaqueTokenShape::new().length(..3).admits("abc"));
        assert!(!OpaqueTokenShape::new().length(..0).admits("a"));
    }

    #[test]
    fn the_queue_hands_out_at_most_its_limit_of_places() {
        let waiting = AtomicUsize::new(0);
        let first = QueuePlace::take(&waiting, 2).unwrap();
        let second = QueuePlace::take(&waiting, 2).unwrap();
        assert!(QueuePlace::take(&waiting, 2).is_none());
        drop(first);
        let third = QueuePlace::take(&waiting, 2);
        assert!(third.is_some());
        drop((second, third));
        assert_eq!(waiting.load(Ordering::Relaxed), 0);
        assert!(QueuePlace::take(&waiting, 0).is_none());
    }

    #[test]
    fn active_must_be_a_boolean() {
        assert!(read(json!({"active": "true"})).is_err());
        assert!(read(json!({"active": 1})).is_err());
        assert!(read(json!({})).is_err());
        assert_eq!(
            read(json!({"active": false})).unwrap().unwrap_err(),
            InvalidToken::Inactive
        );
    }

    #[test]
    fn active_answers_are_still_checked() {
        let ok = read(json!({"active": true, "scope": "a b", "client_id": "c", "exp": 2000}))
            .unwrap()
            .unwrap();
        assert_eq!(ok.source(), TokenSource::Introspection);
        assert!(ok.scopes().contains("b"));
        let cases = [
            (json!({"active": true, "exp": 900}), InvalidToken::Expired),
            (
                json!({"active": true, "nbf": 2000}),
                InvalidToken::NotYetValid,
            ),
            (
                json!({"active": true, "iss": "https://other"}),
                InvalidToken::WrongIssuer,
            ),
            (
                json!({"active": true, "aud": "other"}),
                InvalidToken::WrongAudience,
            ),
            (
                json!({"active": true, "token_type": "refresh_token"}),
                InvalidToken::NotAnAccessToken,
            ),
            (
                json!({"active": true, "token_type": 3}),
                InvalidToken::NotAnAccessToken,
            ),
            (
                json!({"active": true, "scope": [1]}),
                InvalidToken::MalformedClaim,
            ),
            (
                json!({"active": true, "cnf": {"jkt": "x"}}),
                InvalidToken::SenderConstrained,
            ),
            (
                json!({"active": true, "token_type": "DPoP"}),
                InvalidToken::SenderConstrained,
            ),
            (
                json!({"active": true, "token_use": "id"}),
                InvalidToken::NotAnAccessToken,
            ),
            (
                json!({"active": true, "typ": "Refresh"}),
                InvalidToken::NotAnAccessToken,
            ),
            (
                json!({"active": true, "token_use": ["refresh"]}),
                InvalidToken::NotAnAccessToken,
            ),
            (
                json!({"active": true, "typ": 5}),
                InvalidToken::NotAnAccessToken,
            ),
        ];
        for (answer, reason) in cases {
            assert_eq!(
                read(answer.clone()).unwrap().unwrap_err(),
                reason,
                "{answer}"
            );
        }
        for unreadable in [
            &br#"{"active": true, "x": 1e400}"#[..],
            br#"{"active": true, "x": "\ud800"}"#,
        ] {
            assert!(matches!(
                read_answer(unreadable, &ClaimRules::for_tests(), 1000, false),
                Err(FetchError::Malformed(_))
            ));
        }
        let required = read_answer(br#"{"active": true}"#, &ClaimRules::for_tests(), 1000, true);
        assert!(matches!(
            required,
            Ok(Answer::Inactive(InvalidToken::MissingClaim))
        ));
        for t in [
            "Bearer",
            "bearer",
            "access_token",
            "urn:ietf:params:oauth:token-type:access_token",
        ] {
            assert!(
                read(json!({"active": true, "token_type": t}))
                    .unwrap()
                    .is_ok(),
                "{t}"
            );
        }
    }
}
