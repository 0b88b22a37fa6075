//! The tower middleware: extract the bearer token, verify it, put the
//! [`Principal`] in the request extensions, or answer with the RFC 6750 (or
//! gRPC) rejection.
//!
//! The request path is synchronous whenever the keys are cached: the token
//! is verified inside `call` and the inner service is called straight away.
//! Only an unknown `kid` or stale keys take the slow path, a boxed future
//! that refreshes the key set (rate limited, single-flight) first.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::dpop::{self, Dpop, Presentation};
use crate::error::{AuthError, InvalidDpopProof, InvalidRequest};
use crate::mtls::ClientCertificate;
use crate::observe::{self, Outcome};
use crate::principal::Principal;
use crate::response::{Wire, wire};
use crate::token::bearer;
use crate::verify::gate::{GateContext, TokenGate};
use crate::verify::verifier::{Pending, Step};

/// A [`Layer`] that authenticates requests with a [`TokenGate`].
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use tokengate::{Principal, TokenGate};
/// use tokengate::testing::TestIssuer;
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start().await?;
/// let gate = TokenGate::builder()
///     .issuer(issuer.issuer())
///     .audience(issuer.audience())
///     .build()
///     .await?;
/// let app = Router::new()
///     .route("/me", get(|Extension(p): Extension<Principal>| async move {
///         p.subject().unwrap_or("-").to_owned()
///     }))
///     .layer(gate.layer());
///
/// let anonymous = http::Request::get("/me").body(axum::body::Body::empty())?;
/// assert_eq!(app.clone().oneshot(anonymous).await?.status(), 401);
///
/// let token = issuer.token().subject("alice").sign();
/// let request = http::Request::get("/me")
///     .header("authorization", format!("Bearer {token}"))
///     .body(axum::body::Body::empty())?;
/// assert_eq!(app.oneshot(request).await?.status(), 200);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TokenGateLayer {
    gate: TokenGate,
    optional: bool,
}

impl TokenGateLayer {
    /// A layer for `gate` (the same as [`TokenGate::layer`]).
    pub fn new(gate: TokenGate) -> Self {
        TokenGateLayer {
            gate,
            optional: false,
        }
    }

    /// Lets requests without any token through, with no [`Principal`] in
    /// their extensions (the same as [`TokenGate::optional_layer`]). A token
    /// that is present is still verified, and refused if bad (RFC 6750 §3.1).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

// Defined here rather than with `TokenGate`, so the verifier's module does
// not depend on the layer built on it.
impl TokenGate {
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
}

impl<S> Layer<S> for TokenGateLayer {
    type Service = TokenGateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenGateService {
            inner,
            gate: self.gate.clone(),
            optional: self.optional,
        }
    }
}

/// The middleware service made by [`TokenGateLayer`].
///
/// ```
/// # async fn demo(gate: tokengate::TokenGate) {
/// use tower::service_fn;
/// let svc = tokengate::TokenGateService::new(
///     service_fn(|_req: http::Request<String>| async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }),
///     gate,
/// );
/// # drop(svc);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TokenGateService<S> {
    inner: S,
    gate: TokenGate,
    optional: bool,
}

impl<S> TokenGateService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, gate: TokenGate) -> Self {
        TokenGateService {
            inner,
            gate,
            optional: false,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type Verification = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TokenGateService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let wire = wire(&req);
        let span = observe::authenticate_span();
        if let Some(dpop) = &self.gate.inner.dpop {
            let max_len = self.gate.inner.verifier.bearer.max_token_len;
            match dpop::dpop_request(req.headers(), max_len) {
                Ok(None) => {}
                Ok(Some(request)) => {
                    // One way to send the token (RFC 6750 §2), and a proof
                    // within its bound before it is copied.
                    let refused = if request.proof.len() > dpop.max_proof_len() {
                        Some(AuthError::InvalidDpopProof(InvalidDpopProof::TooLong))
                    } else if self.gate.inner.verifier.bearer.allow_query
                        && matches!(bearer::strip_query_token(req.uri()), Ok(Some(_)) | Err(_))
                    {
                        Some(AuthError::InvalidRequest(InvalidRequest::MultipleTokens))
                    } else {
                        None
                    };
                    if let Some(e) = refused {
                        observe::authenticated(
                            &span,
                            &self.gate.inner.verifier.metrics,
                            Outcome::Refused(&e),
                        );
                        return ResponseFuture::reject(reject(&self.gate, &e, wire, Scheme::Dpop));
                    }
                    let (token, proof) =
                        (request.token.to_owned(), request.proof.as_bytes().to_vec());
                    let dpop = dpop.clone();
                    return self.dpop_path(req, token, proof, dpop, wire, span);
                }
                Err(e) => {
                    observe::authenticated(
                        &span,
                        &self.gate.inner.verifier.metrics,
                        Outcome::Refused(&e),
                    );
                    return ResponseFuture::reject(reject(&self.gate, &e, wire, Scheme::Dpop));
                }
            }
        }
        let gate = &self.gate.inner.verifier;
        let fast = span.in_scope(|| match gate.extract(req.headers(), req.uri()) {
            Err(e) => Ok(Err(e)),
            Ok(token) => match gate.verify_now(&token) {
                Step::Pending(pending) => Err((token.into_owned(), pending)),
                Step::Done(result) => Ok(result),
            },
        });
        let result = match fast {
            Ok(result) => {
                let certificate = self.gate.inner.certificate(req.extensions(), req.headers());
                self.gate.inner.as_bearer(result, certificate.as_deref())
            }
            Err((token, pending)) => {
                return match take_query_token(&mut req, &self.gate) {
                    Ok(private) => self.slow_path(req, token, pending, wire, private, span),
                    Err(e) => {
                        observe::authenticated(
                            &span,
                            &self.gate.inner.verifier.metrics,
                            Outcome::Refused(&e),
                        );
                        ResponseFuture::reject(reject(&self.gate, &e, wire, Scheme::Bearer))
                    }
                };
            }
        };
        match result {
            Ok(principal) => match take_query_token(&mut req, &self.gate) {
                Ok(private) => {
                    observe::authenticated(
                        &span,
                        &self.gate.inner.verifier.metrics,
                        Outcome::Accepted(&principal),
                    );
                    attach(&mut req, principal, &self.gate, Scheme::Bearer);
                    // `self.inner` is the service `poll_ready` readied: call it.
                    ResponseFuture::call(self.inner.call(req), private)
                }
                Err(e) => {
                    observe::authenticated(
                        &span,
                        &self.gate.inner.verifier.metrics,
                        Outcome::Refused(&e),
                    );
                    ResponseFuture::reject(reject(&self.gate, &e, wire, Scheme::Bearer))
                }
            },
            Err(AuthError::MissingToken) if self.optional => {
                observe::authenticated(
                    &span,
                    &self.gate.inner.verifier.metrics,
                    Outcome::Anonymous,
                );
                req.extensions_mut().insert(GateContext(self.gate.clone()));
                ResponseFuture::call(self.inner.call(req), false)
            }
            Err(e) => {
                observe::authenticated(
                    &span,
                    &self.gate.inner.verifier.metrics,
                    Outcome::Refused(&e),
                );
                ResponseFuture::reject(reject(&self.gate, &e, wire, Scheme::Bearer))
            }
        }
    }
}

impl<S> TokenGateService<S> {
    /// Verification needs I/O (keys to refresh, a token to introspect): do it
    /// in a boxed future, then call the inner service.
    fn slow_path<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        token: String,
        pending: Pending,
        wire: Wire,
        private: bool,
        span: tracing::Span,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        let gate = self.gate.clone();
        let certificate: Option<ClientCertificate> = self
            .gate
            .inner
            .certificate(req.extensions(), req.headers())
            .map(std::borrow::Cow::into_owned);
        let verification = async move {
            gate.inner.as_bearer(
                gate.inner.verifier.finish(&token, pending).await,
                certificate.as_ref(),
            )
        };
        self.deferred(req, verification, wire, private, Scheme::Bearer, span)
    }

    /// `Authorization: DPoP`: the token as always (its caches included),
    /// then the proof, whose replay check may need I/O: all in one boxed
    /// future.
    fn dpop_path<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        token: String,
        proof: Vec<u8>,
        dpop: Dpop,
        wire: Wire,
        span: tracing::Span,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        // The path the client sent: a nesting router may have rewritten it.
        #[cfg(feature = "axum")]
        let path = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or(req.uri().path(), |original| original.0.path());
        #[cfg(not(feature = "axum"))]
        let path = req.uri().path();
        let htu = dpop.htu(req.uri(), path, req.headers());
        let method = req.method().clone();
        let gate = self.gate.clone();
        let verification = async move {
            let verifier = &gate.inner.verifier;
            let principal = match verifier.verify_now(&token) {
                Step::Done(result) => result?,
                Step::Pending(pending) => verifier.finish(&token, pending).await?,
            };
            dpop.check(&proof, &method, htu.as_ref(), &token, &principal)
                .await?;
            Ok(principal)
        };
        self.deferred(req, verification, wire, false, Scheme::Dpop, span)
    }

    /// Runs `verification` in a boxed future inside the request's span,
    /// records how it ended, then calls the inner service.
    fn deferred<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        verification: impl Future<Output = Result<Principal, AuthError>> + Send + 'static,
        wire: Wire,
        private: bool,
        scheme: Scheme,
        span: tracing::Span,
    ) -> ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    {
        // The ready service goes into the future; `self` keeps a fresh
        // clone, which will be polled ready before its own use (tower's "be
        // careful when cloning inner services").
        let clone = self.inner.clone();
        let ready = mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        let recorded = span.clone();
        let verification: Verification = Box::pin(
            async move {
                let result = verification.await;
                observe::authenticated(
                    &recorded,
                    &gate.inner.verifier.metrics,
                    match &result {
                        Ok(principal) => Outcome::Accepted(principal),
                        Err(e) => Outcome::Refused(e),
                    },
                );
                result
            }
            .instrument(span),
        );
        ResponseFuture {
            state: State::Verify {
                verification,
                pending: Some((req, ready)),
                wire,
                private,
                gate: self.gate.clone(),
                scheme,
            },
        }
    }
}

/// The scheme a request presented its token with: refusals answer in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Dpop,
}

/// Puts the principal, and the gate for guards to answer with, in the
/// request extensions.
fn attach<B>(req: &mut Request<B>, principal: Principal, gate: &TokenGate, scheme: Scheme) {
    let extensions = req.extensions_mut();
    extensions.insert(principal);
    extensions.insert(GateContext(gate.clone()));
    extensions.insert(match scheme {
        Scheme::Bearer => Presentation::Bearer,
        Scheme::Dpop => Presentation::Dpop,
    });
}

/// RFC 6750 §2.3 and §5.3, for a gate that takes query tokens: a token
/// that came in the query leaves the URI before the inner service (its
/// access log, `TraceLayer`) sees it. Returns whether it did, so that the
/// answer can be marked private. A token that came in the header leaves a
/// query without `access_token` (both at once is refused), so it is left
/// alone.
fn take_query_token<B>(req: &mut Request<B>, gate: &TokenGate) -> Result<bool, AuthError> {
    if !gate.inner.verifier.bearer.allow_query {
        return Ok(false);
    }
    match bearer::strip_query_token(req.uri())? {
        Some(uri) => {
            // axum's router keeps the URI as it arrived in `OriginalUri`
            // before route layers run: it must not keep the token either.
            #[cfg(feature = "axum")]
            if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>()
                && let Ok(Some(stripped)) = bearer::strip_query_token(&original.0)
            {
                original.0 = stripped;
            }
            *req.uri_mut() = uri;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// RFC 6750 §2.3: answers to a request whose token was in its URL must not
/// be stored by shared caches. A `Cache-Control` that already says
/// `private` or `no-store` is kept; otherwise `private` is added to it, and
/// `public`, which would contradict it, is dropped.
fn mark_private<B>(response: &mut Response<B>) {
    let headers = response.headers_mut();
    let mut directives: Vec<String> = Vec::new();
    for value in headers.get_all(header::CACHE_CONTROL) {
        for directive in value.to_str().unwrap_or_default().split(',') {
            let directive = directive.trim();
            let name = directive.split('=').next().unwrap_or_default().trim();
            // Only a bare `private` keeps shared caches out: the qualified
            // form (`private="set-cookie"`, RFC 9111 §5.2.2.7) lets them
            // store the rest of the answer, so it gives way to the bare one.
            if directive.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store") {
                return;
            }
            let dropped =
                name.eq_ignore_ascii_case("public") || name.eq_ignore_ascii_case("private");
            if !directive.is_empty() && !dropped {
                directives.push(directive.to_owned());
            }
        }
    }
    directives.insert(0, "private".to_owned());
    let value = HeaderValue::from_str(&directives.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static("private"));
    headers.insert(header::CACHE_CONTROL, value);
}

fn reject<B: Default>(
    gate: &TokenGate,
    err: &AuthError,
    wire: Wire,
    scheme: Scheme,
) -> Response<B> {
    tracing::debug!(target: "tokengate", reason = %err, status = err.status().as_u16(), "request rejected");
    let mut response = gate.inner.responder.response(err, wire);
    let presentation = match scheme {
        Scheme::Bearer => Presentation::Bearer,
        Scheme::Dpop => Presentation::Dpop,
    };
    gate.inner.dpop_challenges(err, &mut response, presentation);
    response
}

pin_project! {
    /// The response future of [`TokenGateService`]: the inner service's
    /// future, after verification when that needed I/O, or the rejection.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Reject { response: Option<S::Response> },
        Verify {
            verification: Verification,
            pending: Option<(Request<ReqBody>, S)>,
            wire: Wire,
            private: bool,
            gate: TokenGate,
            scheme: Scheme,
        },
        // `private`: the token came in the URL (see `mark_private`).
        Call { #[pin] fut: S::Future, private: bool },
    }
}

impl<S: Service<Request<ReqBody>>, ReqBody> ResponseFuture<S, ReqBody> {
    fn call(fut: S::Future, private: bool) -> Self {
        ResponseFuture {
            state: State::Call { fut, private },
        }
    }

    fn reject(response: S::Response) -> Self {
        ResponseFuture {
            state: State::Reject {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Reject { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::Verify {
                    verification,
                    pending,
                    wire,
                    private,
                    gate,
                    scheme,
                } => {
                    let result = ready!(verification.as_mut().poll(cx));
                    let (mut req, mut inner) = pending
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match result {
                        Ok(principal) => {
                            attach(&mut req, principal, gate, *scheme);
                            let fut = inner.call(req);
                            let private = *private;
                            state.set(State::Call { fut, private });
                        }
                        Err(e) => {
                            let response = reject(gate, &e, *wire, *scheme);
                            state.set(State::Reject { response: None });
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Call { fut, private } => {
                    let mut response = ready!(fut.poll(cx));
                    if *private && let Ok(response) = &mut response {
                        mark_private(response);
                    }
                    return Poll::Ready(response);
                }
            }
        }
    }
}
