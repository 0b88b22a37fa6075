//! The readiness endpoint: [`ReadinessService`] answers a probe with 200 or
//! 503 and [`Readiness`](crate::Readiness) as a small JSON body.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_service::Service;

use crate::verify::gate::TokenGate;

impl TokenGate {
    /// A tower service for a readiness probe (`GET /ready`): 200 when
    /// [`readiness`](Self::readiness) says ready, else 503, with its JSON
    /// (`{"ready":false,"issuers":[{"issuer":"…","ready":false,"reason":"…"}]}`)
    /// and `Cache-Control: no-store`. Serve it without authentication; it
    /// shows issuer identifiers, nothing secret.
    ///
    /// ```
    /// use tower::ServiceExt;
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
    /// let app: axum::Router = axum::Router::new().route_service("/ready", gate.readiness_service());
    /// let response = app.oneshot(http::Request::get("/ready").body(axum::body::Body::empty())?).await?;
    /// assert_eq!(response.status(), 200);
    /// # Ok(()) }
    /// ```
    pub fn readiness_service(&self) -> ReadinessService {
        ReadinessService { gate: self.clone() }
    }
}

/// Answers readiness probes for a gate; made by
/// [`TokenGate::readiness_service`].
#[derive(Clone, Debug)]
pub struct ReadinessService {
    gate: TokenGate,
}

impl<B> Service<Request<B>> for ReadinessService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let readiness = self.gate.readiness();
        // Strings, booleans and fixed texts: serializing cannot fail.
        let body = serde_json::to_string(&readiness).unwrap_or_default();
        let mut response = Response::new(body);
        if !readiness.ready {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        ready(Ok(response))
    }
}
