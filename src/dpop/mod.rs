//! DPoP (RFC 9449): access tokens bound to a key the client proves it
//! holds on every request.
//!
//! A client presents a DPoP-bound token as `Authorization: DPoP <token>`
//! with one `DPoP: <proof>` header: a JWT signed by its key, naming the
//! method and URL of the request, a unique `jti`, the time, and the hash
//! of the token. The gate verifies the token as always (the verified-token
//! cache still applies to it), then the proof on every request, by every
//! rule of §4.3, and that the proof's key is the one the token is bound to
//! (`cnf.jkt`); a proof is accepted once (its `jti` goes to a
//! [`ReplayStore`]).
//!
//! | mode ([`TokenGateBuilder::dpop`](crate::TokenGateBuilder::dpop)) | Bearer tokens | DPoP-bound tokens |
//! |---|---|---|
//! | [`Disabled`](DpopMode::Disabled) | accepted | refused (`invalid_token`, as any sender-constrained token) |
//! | [`Allowed`](DpopMode::Allowed) (default) | accepted, unless bound to a key (RFC 9449 §7.2) | accepted with a valid proof |
//! | [`Required`](DpopMode::Required) | refused | accepted with a valid proof |
//!
//! The URL a proof must name is the request's path under the gate's
//! public origin ([`TokenGateBuilder::public_url`](crate::TokenGateBuilder::public_url),
//! else the origin of its [`resource`](crate::TokenGateBuilder::resource)),
//! and only without either, the `Host` the request names, over `http`
//! unless the request URI says otherwise. Behind a proxy or a TLS
//! terminator, configure the public URL: `Host` is not what the client used.
//!
//! Server nonces (RFC 9449 §8, §9) are optional
//! ([`TokenGateBuilder::dpop_nonce`](crate::TokenGateBuilder::dpop_nonce)):
//! stateless, an HMAC over a time step under a secret the replicas share,
//! handed out in `DPoP-Nonce` with a `use_dpop_nonce` refusal.
//!
//! Not yet supported: reading `X-Forwarded-*` / `Forwarded` for the public
//! URL.

pub(crate) mod nonce;
mod proof;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri, header};
use url::Url;

pub use self::replay::{MemoryReplayStore, ReplayCheck, ReplayError, ReplayKey, ReplayStore};
use crate::clock;
use crate::error::{AuthError, InvalidDpopProof, InvalidRequest, Unavailable};
use crate::keys::{Algorithm, AlgorithmSet};
use crate::principal::Principal;
use crate::token::bearer;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::RedisReplayStore;

/// Whether the gate accepts DPoP-bound tokens, and whether it still accepts
/// bearer tokens (see the [module docs](self)).
///
/// ```
/// let builder = tokengate::TokenGate::builder().dpop(tokengate::dpop::DpopMode::Required);
/// # drop(builder);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopMode {
    /// No DPoP: bearer tokens only; tokens bound to a key are refused.
    Disabled,
    /// Bearer and DPoP-bound tokens.
    #[default]
    Allowed,
    /// DPoP-bound tokens only.
    Required,
}

/// How the token of a request was presented, left in the request
/// extensions beside the [`Principal`].
///
/// ```
/// # async fn handler(presented: axum::Extension<tokengate::dpop::Presentation>) {
/// match *presented {
///     tokengate::dpop::Presentation::Dpop => { /* the caller proved its key */ }
///     _ => {}
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presentation {
    /// `Authorization: Bearer` (or the query string, when enabled).
    Bearer,
    /// `Authorization: DPoP` with a proof the gate verified.
    Dpop,
}

/// The DPoP settings a gate runs with.
#[derive(Clone)]
pub(crate) struct Dpop {
    pub(crate) mode: DpopMode,
    rules: proof::ProofRules,
    /// `algs="…"` for the challenges.
    pub(crate) algs: String,
    /// The origin proofs must name (no path).
    origin: Option<Url>,
    replay: Arc<dyn ReplayStore>,
    nonces: Option<nonce::Nonces>,
    /// The origin may come from `Forwarded` / `X-Forwarded-*` (opt-in).
    forwarded: bool,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("algs", &self.algs)
            .field("origin", &self.origin.as_ref().map(Url::as_str))
            .finish_non_exhaustive()
    }
}

/// What the builder collects.
#[derive(Clone)]
pub(crate) struct DpopSettings {
    pub(crate) mode: DpopMode,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) past: Duration,
    pub(crate) future: Duration,
    pub(crate) max_proof_len: usize,
    pub(crate) public_url: Option<String>,
    pub(crate) replay: Option<Arc<dyn ReplayStore>>,
    /// The nonce secret and time step, when nonces are required.
    pub(crate) nonce: Option<(Vec<u8>, Duration)>,
    /// The service asks clients for TLS certificates (RFC 8705), as the
    /// metadata says.
    pub(crate) certificate_bound: bool,
    /// Trust `Forwarded` / `X-Forwarded-*` for the origin.
    pub(crate) forwarded: bool,
    /// The header a trusted proxy forwards client certificates in.
    pub(crate) certificate_header: Option<http::HeaderName>,
}

impl Default for DpopSettings {
    fn default() -> Self {
        DpopSettings {
            mode: DpopMode::Allowed,
            algorithms: vec![
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::PS256,
                Algorithm::RS256,
            ],
            past: Duration::from_secs(60),
            future: Duration::from_secs(5),
            max_proof_len: 8 * 1024,
            public_url: None,
            replay: None,
            nonce: None,
            certificate_bound: false,
            forwarded: false,
            certificate_header: None,
        }
    }
}

impl std::fmt::Debug for DpopSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSettings")
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("public_url", &self.public_url)
            .field("nonce", &self.nonce.as_ref().map(|(_, step)| step))
            .finish_non_exhaustive()
    }
}

impl DpopSettings {
    /// The gate's settings; `resource` is the RFC 9728 resource, whose
    /// origin is the default public origin. `None` when disabled.
    pub(crate) fn build(&self, resource: Option<&str>) -> Result<Option<Dpop>, &'static str> {
        if self.mode == DpopMode::Disabled {
            return Ok(None);
        }
        let algorithms = AlgorithmSet::from_iter(self.algorithms.iter().copied());
        if algorithms.is_empty()
            || self
                .algorithms
                .iter()
                .any(|a| !AlgorithmSet::ASYMMETRIC.contains(*a))
        {
            return Err("DPoP algorithms must be asymmetric, and at least one");
        }
        if self.max_proof_len == 0 || self.past.is_zero() {
            return Err("the DPoP proof length and window must be positive");
        }
        let origin = match self.public_url.as_deref().or(resource) {
            None => {
                tracing::warn!(
                    target: "tokengate::dpop",
                    "DPoP proofs are checked against the Host of each request: set public_url(..) \
                     (or a resource) so that a proof names this service's public origin"
                );
                None
            }
            Some(url) => {
                let mut url = Url::parse(url).map_err(|_| "the public URL is not a URL")?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err("the public URL must be an http(s) URL with a host");
                }
                url.set_path("");
                url.set_query(None);
                url.set_fragment(None);
                Some(url)
            }
        };
        let algs = self
            .algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Some(Dpop {
            mode: self.mode,
            rules: proof::ProofRules {
                algorithms,
                max_len: self.max_proof_len,
                past: self.past,
                future: self.future,
            },
            algs,
            origin,
            replay: self
                .replay
                .clone()
                .unwrap_or_else(|| Arc::new(MemoryReplayStore::new(1_000_000))),
            forwarded: self.forwarded,
            nonces: match &self.nonce {
                Some((secret, step)) => Some(nonce::Nonces::new(secret, *step)?),
                None => None,
            },
        }))
    }
}

/// The origin a trusted proxy says the client used: the first element of
/// RFC 7239 `Forwarded` (`proto=`, `host=`), else `X-Forwarded-Proto` and
/// `X-Forwarded-Host` (their first values). `None` when they do not name
/// both.
fn forwarded(headers: &HeaderMap) -> Option<(&str, &str)> {
    if let Some(value) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        let first = value.split(',').next().unwrap_or_default();
        let (mut proto, mut host) = (None, None);
        for pair in first.split(';') {
            let (name, value) = pair.trim().split_once('=')?;
            let value = value.trim_matches('"');
            if name.eq_ignore_ascii_case("proto") {
                proto = Some(value);
            } else if name.eq_ignore_ascii_case("host") {
                host = Some(value);
            }
        }
        return Some((proto?, host?));
    }
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    Some((first("x-forwarded-proto")?, first("x-forwarded-host")?))
}

/// A request that uses the DPoP scheme: its token and its one proof.
pub(crate) struct DpopRequest<'r> {
    pub(crate) token: &'r str,
    pub(crate) proof: &'r HeaderValue,
}

/// Whether the request uses the DPoP scheme (`Ok(None)`: it does not, and
/// goes the bearer way).
pub(crate) fn dpop_request<'r>(
    headers: &'r HeaderMap,
    max_token_len: usize,
) -> Result<Option<DpopRequest<'r>>, AuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (authorization.next(), authorization.next()) else {
        // None, or several (the bearer path answers 400 for those).
        return Ok(None);
    };
    let Some(token) = bearer::parse_credentials(value.as_bytes(), max_token_len, b"dpop")? else {
        return Ok(None);
    };
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next()) {
        (None, _) => Err(AuthError::InvalidDpopProof(InvalidDpopProof::Missing)),
        (Some(proof), None) => Ok(Some(DpopRequest { token, proof })),
        (Some(_), Some(_)) => Err(AuthError::InvalidRequest(InvalidRequest::MultipleProofs)),
    }
}

impl Dpop {
    /// The nonce a refused client should use, when nonces are required.
    pub(crate) fn current_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(clock::unix_secs()))
    }

    /// The longest proof accepted, refused before it is copied or parsed.
    pub(crate) fn max_proof_len(&self) -> usize {
        self.rules.max_len
    }

    /// The URL a proof for this request must name: the public origin and
    /// `path` (the path the client sent, before any router rewrote it).
    /// `None` when the request names no usable origin: a `Host` with
    /// userinfo, a query, a fragment or a path would let one proof name
    /// endless "different" URLs.
    pub(crate) fn htu(&self, uri: &Uri, path: &str, headers: &HeaderMap) -> Option<Url> {
        let mut url = match &self.origin {
            Some(origin) => origin.clone(),
            None => {
                let (scheme, host) = match self.forwarded.then(|| forwarded(headers)).flatten() {
                    Some(origin) => origin,
                    None => {
                        let scheme = uri.scheme_str().unwrap_or("http");
                        let host = match uri.authority() {
                            Some(authority) => authority.as_str(),
                            None => headers.get(header::HOST)?.to_str().ok()?,
                        };
                        (scheme, host)
                    }
                };
                if !matches!(scheme, "http" | "https") {
                    return None;
                }
                let url = Url::parse(&format!("{scheme}://{host}")).ok()?;
                let bare = url.username().is_empty()
                    && url.password().is_none()
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.path() == "/";
                if !bare {
                    return None;
                }
                url
            }
        };
        url.set_path(path);
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    }

    /// Checks the proof of a request whose token verified as `principal`:
    /// every §4.3 rule, then the replay store.
    pub(crate) async fn check(
        &self,
        proof: &[u8],
        method: &Method,
        htu: Option<&Url>,
        token: &str,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        let htu = htu.ok_or(AuthError::InvalidDpopProof(InvalidDpopProof::WrongUrl))?;
        let expected = proof::Expected {
            method,
            htu,
            token,
            jkt: principal.dpop_thumbprint(),
            now: clock::unix_secs(),
            nonces: self.nonces.as_ref(),
        };
        let accepted =
            proof::check(proof, &self.rules, &expected).map_err(AuthError::InvalidDpopProof)?;
        let first = match self.replay.first_use(accepted.replay_key, accepted.ttl) {
            ReplayCheck::Done(result) => result,
            ReplayCheck::Pending(answer) => answer.await,
        };
        match first {
            Ok(true) => Ok(()),
            Ok(false) => Err(AuthError::InvalidDpopProof(InvalidDpopProof::Replayed)),
            Err(e) => {
                tracing::warn!(target: "tokengate::dpop", error = %e, "DPoP replay store failed; refusing the proof");
                Err(AuthError::Unavailable(Unavailable::ReplayStore))
            }
        }
    }
}
