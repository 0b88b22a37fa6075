//! [`TokenGate`], the handle users hold: the one verifier and the one
//! renderer of its refusals, shared by every layer, guard and extractor made
//! from it.

use std::sync::{Arc, LazyLock};

use http::request::Parts;
use http::{Extensions, Response};

use crate::authority::jwks::JwksHealth;
use crate::error::{AuthError, InvalidToken};
use crate::metadata::{Published, ResourceMetadata};
use crate::principal::Principal;
use crate::requirement::hierarchy::ScopeHierarchy;
use crate::response::{ErrorDetail, Responder, Wire};
use crate::verify::verifier::Verifier;

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
    pub(crate) inner: Arc<Shared>,
}

impl std::fmt::Debug for TokenGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGate")
            .field(
                "issuers",
                &self
                    .inner
                    .verifier
                    .authorities
                    .iter()
                    .map(|a| a.rules.issuer.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "audiences",
                &self.inner.verifier.authorities[0].rules.audiences,
            )
            .field("resource", &self.resource())
            .finish_non_exhaustive()
    }
}

impl TokenGate {
    /// Verifies a bearer token (without the `Bearer ` prefix) and returns its
    /// principal. For places the layer does not reach: WebSocket upgrades,
    /// message consumers, custom interceptors.
    ///
    /// A token bound to a DPoP key is refused here (it needs its proof,
    /// which only the layer sees), and with DPoP
    /// [`Required`](crate::dpop::DpopMode::Required) every token is.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.inner
            .as_bearer(self.inner.verifier.verify(token).await, None)
    }

    /// The principal the introspection answer `body` gives, as
    /// [`Self::verify`] would make it after fetching that answer for an
    /// opaque token (the default introspecting issuer's rules). For fuzz
    /// targets only: it exists in `cfg(fuzzing)` builds alone and is not
    /// part of the API.
    #[cfg(fuzzing)]
    #[doc(hidden)]
    pub fn __fuzz_introspection_answer(&self, body: &[u8]) -> Result<Principal, AuthError> {
        let verifier = &self.inner.verifier;
        let authority = &verifier.authorities[verifier.introspecting];
        match &authority.introspector {
            Some(introspector) => self
                .inner
                .as_bearer(introspector.read_fetched(body, &authority.rules), None),
            None => Err(AuthError::InvalidToken(crate::error::InvalidToken::NotAJwt)),
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
        let certificate = self.inner.certificate(&parts.extensions, &parts.headers);
        self.inner.as_bearer(
            self.inner.verifier.authenticate(parts).await,
            certificate.as_deref(),
        )
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

    /// The protected resource's identifier, canonical, as configured with
    /// [`resource`](crate::TokenGateBuilder::resource).
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// if let Some(resource) = gate.resource() {
    ///     println!("clients ask for tokens with resource={resource}");
    /// }
    /// # }
    /// ```
    pub fn resource(&self) -> Option<&str> {
        self.published().map(|p| p.document.resource.as_str())
    }

    /// The RFC 9728 metadata document of the resource, when one is
    /// configured: `resource`, `authorization_servers` (the trusted
    /// issuer), `bearer_methods_supported`, and the optional members that
    /// were set. [`metadata_service`](Self::metadata_service) serves it.
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
    ///     .resource("https://api.example.com")
    ///     .scopes_supported(["items:read"])
    ///     .build()
    ///     .await?;
    /// let document = gate.resource_metadata().unwrap();
    /// assert_eq!(document.authorization_servers, [issuer.issuer()]);
    /// assert_eq!(document.bearer_methods_supported, ["header"]);
    /// # Ok(()) }
    /// ```
    pub fn resource_metadata(&self) -> Option<&ResourceMetadata> {
        self.published().map(|p| &p.document)
    }

    /// Where the metadata document is published (RFC 9728 §3.1: the
    /// well-known suffix inserted before the resource's path), as every 401
    /// and 403 challenge names it in `resource_metadata`.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// // For the resource https://api.example.com/mcp:
    /// assert_eq!(
    ///     gate.resource_metadata_url(),
    ///     Some("https://api.example.com/.well-known/oauth-protected-resource/mcp"),
    /// );
    /// # }
    /// ```
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.published().map(|p| p.url.as_str())
    }

    pub(crate) fn published(&self) -> Option<&Published> {
        self.inner.metadata.as_ref()
    }

    /// The state of the first issuer's key set cache: key count, age, last
    /// error. With several issuers, [`health`](Self::health) reports each.
    pub fn jwks_health(&self) -> JwksHealth {
        self.inner.verifier.jwks_health()
    }

    /// Whether the gate can verify tokens now: ready when every issuer has
    /// a usable key set (an issuer whose tokens are introspected is ready
    /// once built: its endpoint's health shows in its answers, 503 while it
    /// is down). For a readiness probe; liveness is the application's.
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
    /// assert!(gate.readiness().ready);
    /// # Ok(()) }
    /// ```
    pub fn readiness(&self) -> Readiness {
        let issuers: Vec<IssuerReadiness> = self
            .inner
            .verifier
            .authorities
            .iter()
            .map(|a| {
                let reason = if !a.verify_jwt_locally {
                    None
                } else {
                    let keys = a.jwks.health();
                    match (keys.usable, keys.key_count) {
                        (true, _) => None,
                        (false, 0) if keys.fetched_at.is_none() => Some("no key set loaded yet"),
                        (false, 0) => Some("the key set holds no usable key"),
                        (false, _) => {
                            Some("the key set is too stale to serve and refreshing fails")
                        }
                    }
                };
                IssuerReadiness {
                    issuer: a.rules.issuer.clone(),
                    ready: reason.is_none(),
                    reason,
                }
            })
            .collect();
        Readiness {
            ready: issuers.iter().all(|i| i.ready),
            issuers,
        }
    }

    /// The key set health of every trusted issuer, in configuration order.
    ///
    /// ```
    /// use tokengate::TokenGate;
    /// use tokengate::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = (TestIssuer::start().await?, TestIssuer::start().await?);
    /// let gate = TokenGate::builder()
    ///     .issuers([a.issuer(), b.issuer()])
    ///     .audience(a.audience())
    ///     .build()
    ///     .await?;
    /// let health = gate.health();
    /// assert_eq!(health.len(), 2);
    /// assert_eq!(health[1].issuer, b.issuer());
    /// assert!(health.iter().all(|h| h.keys.usable));
    /// # Ok(()) }
    /// ```
    pub fn health(&self) -> Vec<IssuerHealth> {
        self.inner
            .verifier
            .authorities
            .iter()
            .map(|a| IssuerHealth {
                issuer: a.rules.issuer.clone(),
                keys: a.jwks.health(),
            })
            .collect()
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
        let ((verified_tokens, verified_token_bytes), (introspection_answers, introspection_bytes)) =
            self.inner.verifier.cache_stats();
        CacheStats {
            verified_tokens,
            verified_token_bytes,
            introspection_answers,
            introspection_bytes,
        }
    }
}

/// Whether a gate can verify tokens now, as [`TokenGate::readiness`]
/// reports it (and [`ReadinessService`](crate::ReadinessService) serves it).
///
/// ```
/// let ready = tokengate::Readiness::default();
/// assert!(!ready.ready);
/// assert_eq!(serde_json::to_string(&ready).unwrap(), r#"{"ready":false,"issuers":[]}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Every issuer is ready.
    pub ready: bool,
    /// Each trusted issuer, in configuration order.
    pub issuers: Vec<IssuerReadiness>,
}

/// One issuer's part of [`Readiness`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct IssuerReadiness {
    /// The issuer identifier.
    pub issuer: String,
    /// Its tokens can be verified now.
    pub ready: bool,
    /// Why not, when not: a fixed text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One trusted issuer's health, as [`TokenGate::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerHealth {
    /// The issuer identifier.
    pub issuer: String,
    /// Its key set cache.
    pub keys: JwksHealth,
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

/// What a gate is made of. One allocation, so a clone (one per request, for
/// the extensions) is one reference count.
pub(crate) struct Shared {
    pub(crate) verifier: Verifier,
    pub(crate) responder: Responder,
    /// The RFC 9728 document, when a resource is configured.
    pub(crate) metadata: Option<Published>,
    /// The scope implications the guards apply.
    pub(crate) hierarchy: Option<ScopeHierarchy>,
    /// DPoP, unless disabled.
    pub(crate) dpop: Option<crate::dpop::Dpop>,
    /// The header a trusted TLS-terminating proxy forwards the client's
    /// certificate in, when configured.
    pub(crate) certificate_header: Option<http::HeaderName>,
    /// The bare `DPoP` challenge a 401 to a bearer request adds, built once:
    /// refusing garbage must stay cheap.
    pub(crate) dpop_bare: Option<http::HeaderValue>,
}

/// Samples the gauges now and every [`SAMPLE_EVERY`](crate::observe)
/// until the gate is dropped: the caches' sizes, the key sets' counts and
/// ages change without a request to record them.
#[cfg(feature = "metrics")]
pub(crate) fn sample_gauges(gate: &TokenGate) {
    gate.inner.verifier.sample_gauges();
    let weak = Arc::downgrade(&gate.inner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::observe::SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            shared.verifier.sample_gauges();
        }
    });
}

impl Shared {
    /// The client certificate of a request: the acceptor's extension, else
    /// tonic's TLS connection info (feature `tonic-tls`), else (when
    /// configured) the trusted proxy's header.
    pub(crate) fn certificate<'r>(
        &self,
        extensions: &'r http::Extensions,
        headers: &'r http::HeaderMap,
    ) -> Option<std::borrow::Cow<'r, crate::mtls::ClientCertificate>> {
        if let Some(certificate) = extensions.get::<crate::mtls::ClientCertificate>() {
            return Some(std::borrow::Cow::Borrowed(certificate));
        }
        // A connection tonic terminated says itself whether the client
        // sent a certificate: a header is never consulted then, or a
        // client without one could name someone else's.
        #[cfg(feature = "tonic-tls")]
        if let Some(tls) = crate::mtls::tonic_tls(extensions) {
            return crate::mtls::from_tonic(tls).map(std::borrow::Cow::Owned);
        }
        let name = self.certificate_header.as_ref()?;
        crate::mtls::from_header(headers.get(name)?).map(std::borrow::Cow::Owned)
    }

    /// The DPoP side of a refusal (RFC 9449 §7.1): a request that used
    /// DPoP, or any where DPoP is required, is challenged in the DPoP
    /// scheme alone; a 401 to a bearer request where DPoP is also accepted
    /// gets a second, bare `DPoP` challenge; a nonce refusal hands out the
    /// nonce to use (§9).
    pub(crate) fn dpop_challenges<B>(
        &self,
        err: &AuthError,
        response: &mut Response<B>,
        presentation: crate::dpop::Presentation,
    ) {
        let Some(dpop) = &self.dpop else {
            return;
        };
        let dpop_only = presentation == crate::dpop::Presentation::Dpop
            || dpop.mode == crate::dpop::DpopMode::Required;
        let headers = response.headers_mut();
        if !dpop_only && err.status() != http::StatusCode::UNAUTHORIZED {
            return;
        }
        if !headers.contains_key(http::header::WWW_AUTHENTICATE) {
            return;
        }
        if matches!(
            err,
            AuthError::InvalidDpopProof(crate::error::InvalidDpopProof::UseNonce)
        ) && let Some(nonce) = dpop.current_nonce()
            && let Ok(nonce) = http::HeaderValue::from_str(&nonce)
        {
            headers.insert("dpop-nonce", nonce);
        }
        if dpop_only {
            if let Some(bearer) = headers.get(http::header::WWW_AUTHENTICATE) {
                let in_dpop = crate::response::dpop_challenge(bearer, &dpop.algs);
                headers.insert(http::header::WWW_AUTHENTICATE, in_dpop);
            }
        } else if err.status() == http::StatusCode::UNAUTHORIZED
            && let Some(bare) = &self.dpop_bare
        {
            headers.append(http::header::WWW_AUTHENTICATE, bare.clone());
        }
    }

    /// A principal whose token came as a bearer token: refused when the
    /// token is bound to a key (RFC 9449 §7.2, RFC 8705 §3) or when DPoP is
    /// required.
    ///
    /// A token bound to a client certificate (RFC 8705 §3) needs the
    /// request's `certificate`, with its thumbprint.
    pub(crate) fn as_bearer(
        &self,
        verified: Result<Principal, AuthError>,
        certificate: Option<&crate::mtls::ClientCertificate>,
    ) -> Result<Principal, AuthError> {
        let principal = verified?;
        if principal.dpop_thumbprint().is_some() {
            return Err(AuthError::InvalidToken(InvalidToken::SenderConstrained));
        }
        if let Some(bound) = principal.certificate_thumbprint()
            && certificate.is_none_or(|c| c.thumbprint() != bound)
        {
            return Err(AuthError::InvalidToken(InvalidToken::CertificateMismatch));
        }
        if self
            .dpop
            .as_ref()
            .is_some_and(|d| d.mode == crate::dpop::DpopMode::Required)
        {
            return Err(AuthError::InvalidToken(InvalidToken::DpopRequired));
        }
        Ok(principal)
    }
}

/// What the gate leaves in the extensions besides the principal, so guards
/// answer with the same realm and detail as the gate itself.
#[derive(Clone)]
pub(crate) struct GateContext(pub(crate) TokenGate);

static FALLBACK: LazyLock<Responder> =
    LazyLock::new(|| Responder::new("api", ErrorDetail::Describe, 5));

/// The answer to `err` for a request with these extensions: the gate's own
/// mapping when the gate ran, a default one otherwise.
pub(crate) fn respond<B: Default>(
    extensions: &Extensions,
    err: &AuthError,
    wire: Wire,
) -> Response<B> {
    let context = extensions.get::<GateContext>();
    let mut response = responder(context).response(err, wire);
    if let Some(GateContext(gate)) = context {
        let presentation = extensions
            .get::<crate::dpop::Presentation>()
            .copied()
            .unwrap_or(crate::dpop::Presentation::Bearer);
        gate.inner.dpop_challenges(err, &mut response, presentation);
    }
    response
}

/// The `algs` of the gate's DPoP challenge, when the request presented its
/// token with a DPoP proof: its refusals answer in that scheme.
#[cfg(feature = "tonic")]
pub(crate) fn dpop_algs(extensions: &Extensions) -> Option<&str> {
    match extensions.get::<crate::dpop::Presentation>() {
        Some(crate::dpop::Presentation::Dpop) => extensions
            .get::<GateContext>()
            .and_then(|GateContext(gate)| gate.inner.dpop.as_ref())
            .map(|d| d.algs.as_str()),
        _ => None,
    }
}

/// The responder of the gate that ran, or a default one.
pub(crate) fn responder(context: Option<&GateContext>) -> &Responder {
    match context {
        Some(GateContext(gate)) => &gate.inner.responder,
        None => &FALLBACK,
    }
}
