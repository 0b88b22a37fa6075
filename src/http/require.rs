//! The route layer: [`Require`] refuses, before the handler runs, a
//! request whose principal does not meet the route's requirement
//! ([`RequireScopes`] for scopes alone). The check is [`Guard::check`], the
//! same as every other guard's; the answer is the gate's own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::requirement::{Guard, Requirement, ScopeRequirement, ScopeSet};
use crate::response::wire;
use crate::verify::gate::respond;

/// A layer that lets a request through only if its principal meets a
/// requirement: a [`Requirement`] (roles, claims, step-up, …) or, as
/// [`RequireScopes`], a [`ScopeRequirement`]. Place it inside the
/// [`TokenGate`](crate::TokenGate) layer (in axum: `route_layer(…)` on the
/// route, `layer(gate.layer())` on the router).
///
/// ```
/// use axum::{Router, routing::get};
/// use tokengate::{Require, Requirement};
/// # async fn demo(gate: tokengate::TokenGate) {
/// let app: Router = Router::new()
///     .route("/audit", get(|| async { "log" }).route_layer(Require::new(Requirement::role("auditor"))))
///     .layer(gate.layer());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Require<R = Requirement> {
    requirement: R,
}

/// The scope-only route layer: [`Require`] over a [`ScopeRequirement`].
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use tokengate::RequireScopes;
/// # async fn demo(gate: tokengate::TokenGate) {
/// let app: Router = Router::new()
///     .route("/items", get(|| async { "list" }).route_layer(RequireScopes::any(["items:read", "admin"])))
///     .route("/items/new", post(|| async { "created" }).route_layer(RequireScopes::all(["items:write"])))
///     .layer(gate.layer());
/// # }
/// ```
pub type RequireScopes = Require<ScopeRequirement>;

impl Require<Requirement> {
    /// Requires `requirement`.
    ///
    /// ```
    /// use tokengate::{Require, Requirement};
    /// let layer = Require::new(Requirement::role("auditor").and(Requirement::user()));
    /// # drop(layer);
    /// ```
    pub fn new(requirement: impl Into<Requirement>) -> Self {
        Require {
            requirement: requirement.into(),
        }
    }
}

impl Require<ScopeRequirement> {
    /// Requires every one of `scopes` (see [`ScopeRequirement::all`]).
    pub fn all<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ScopeRequirement::all(scopes).into()
    }

    /// Requires one of `scopes` (see [`ScopeRequirement::any`]); a refusal
    /// names the first of them in the challenge's `scope` attribute.
    pub fn any<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ScopeRequirement::any(scopes).into()
    }

    /// Requires what a [`ScopeSet`] type declares.
    pub fn of<R: ScopeSet>() -> Self {
        ScopeRequirement::of::<R>().into()
    }
}

impl From<ScopeRequirement> for Require<ScopeRequirement> {
    fn from(requirement: ScopeRequirement) -> Self {
        Require { requirement }
    }
}

impl From<Requirement> for Require<Requirement> {
    fn from(requirement: Requirement) -> Self {
        Require { requirement }
    }
}

impl<S, R: Guard> Layer<S> for Require<R> {
    type Service = RequireService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            requirement: self.requirement.clone(),
        }
    }
}

/// The service made by [`Require`] (and [`RequireScopes`]).
///
/// ```
/// # fn demo<S>(inner: S) {
/// use tower_layer::Layer;
/// let guarded = tokengate::RequireScopes::all(["items:read"]).layer(inner);
/// assert_eq!(guarded.requirement(), &tokengate::ScopeRequirement::all(["items:read"]));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RequireService<S, R = Requirement> {
    inner: S,
    requirement: R,
}

/// The service made by [`RequireScopes`].
pub type RequireScopesService<S> = RequireService<S, ScopeRequirement>;

impl<S, R> RequireService<S, R> {
    /// What this guard requires.
    pub fn requirement(&self) -> &R {
        &self.requirement
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: Guard,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match self.requirement.check(req.extensions()) {
            Ok(_) => GuardFuture {
                state: GuardState::Call {
                    fut: self.inner.call(req),
                },
            },
            Err(err) => {
                tracing::debug!(target: "tokengate", reason = %err, "request rejected by a guard");
                GuardFuture {
                    state: GuardState::Reject {
                        response: Some(respond(req.extensions(), &err, wire(&req))),
                    },
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`RequireService`].
    pub struct GuardFuture<F, B> {
        #[pin]
        state: GuardState<F, B>,
    }
}

pin_project! {
    #[project = GuardProj]
    enum GuardState<F, B> {
        Call { #[pin] fut: F },
        Reject { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            GuardProj::Call { fut } => fut.poll(cx),
            GuardProj::Reject { response } => Poll::Ready(Ok(response
                .take()
                .expect("GuardFuture polled after completion"))),
        }
    }
}
