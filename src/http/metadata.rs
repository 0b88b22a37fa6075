//! The RFC 9728 metadata endpoint: [`MetadataService`] answers `GET` at the
//! document's well-known path(s), without authentication, readable from any
//! origin (browser-based MCP clients fetch it cross-origin).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use tower_service::Service;

use crate::verify::gate::TokenGate;

impl TokenGate {
    /// A tower service that serves this gate's RFC 9728 metadata document
    /// (see [`resource_metadata`](Self::resource_metadata)).
    ///
    /// - `GET` and `HEAD` at the well-known path (the path of
    ///   [`resource_metadata_url`](Self::resource_metadata_url), and the
    ///   root one too with
    ///   [`metadata_at_root`](crate::TokenGateBuilder::metadata_at_root)):
    ///   200, `application/json`, `Cache-Control: public, max-age=3600`,
    ///   `Access-Control-Allow-Origin: *` (the document is public and holds
    ///   no secret; clients in browsers read it cross-origin);
    /// - `OPTIONS` there: a 204 CORS preflight answer;
    /// - another method there: 405 with `Allow`;
    /// - any other path, or a gate without a resource: 404.
    ///
    /// Mount it where it answers, outside the gate's layer: it reads the
    /// request's full path, so route it rather than nest it. In axum,
    /// [`tokengate::axum::metadata_router`](crate::axum::metadata_router)
    /// does the routing.
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
    ///     .resource("https://api.example.com/mcp")
    ///     .build()
    ///     .await?;
    /// let request = http::Request::get("/.well-known/oauth-protected-resource/mcp").body(())?;
    /// let response = gate.metadata_service().oneshot(request).await?;
    /// assert_eq!(response.status(), 200);
    /// assert!(response.body().starts_with(r#"{"resource":"https://api.example.com/mcp""#));
    /// # Ok(()) }
    /// ```
    pub fn metadata_service(&self) -> MetadataService {
        MetadataService { gate: self.clone() }
    }

    /// The request paths the metadata is served at; empty without a
    /// resource.
    ///
    /// ```
    /// # async fn demo(gate: tokengate::TokenGate) {
    /// for path in gate.resource_metadata_paths() {
    ///     println!("metadata at {path}");
    /// }
    /// # }
    /// ```
    pub fn resource_metadata_paths(&self) -> impl ExactSizeIterator<Item = &str> {
        self.published()
            .map(|p| p.paths.as_slice())
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
    }
}

/// Serves a gate's RFC 9728 metadata document; made by
/// [`TokenGate::metadata_service`], which says what it answers.
#[derive(Clone, Debug)]
pub struct MetadataService {
    gate: TokenGate,
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.answer(req.method(), req.uri().path())))
    }
}

impl MetadataService {
    fn answer(&self, method: &Method, path: &str) -> Response<String> {
        let Some(published) = self
            .gate
            .published()
            .filter(|p| p.paths.iter().any(|p| p == path))
        else {
            return status(StatusCode::NOT_FOUND);
        };
        let mut response = match *method {
            Method::GET => Response::new(published.json.clone()),
            Method::HEAD => Response::new(String::new()),
            Method::OPTIONS => {
                let mut response = status(StatusCode::NO_CONTENT);
                let headers = response.headers_mut();
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                // MCP clients send `MCP-Protocol-Version` with discovery
                // requests; no credentials are ever involved, so `*` holds.
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("*"),
                );
                headers.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                response
            }
            _ => {
                let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
                let headers = response.headers_mut();
                headers.insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                // Readable cross-origin too, so a browser client sees why.
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                return response;
            }
        };
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        if *method != Method::OPTIONS {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(published.json.len()),
            );
        }
        response
    }
}

fn status(code: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = code;
    response
}
