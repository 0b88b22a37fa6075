//! The test issuer's HTTP/1 server: routing to the endpoints, the injected
//! faults' answers, OpenID Connect and RFC 8414 discovery, the JWKS with its
//! `ETag` and `Cache-Control`, and RFC 7662 introspection with its client
//! authentication (RFC 6749 §2.3.1, RFC 7523).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::clock;
use crate::testing::faults::{Endpoint, Fault};
use crate::testing::keys::{self, b64};
use crate::testing::state::{ClientCredential, Shared, State};

type ServerBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// How long to wait after a failed `accept()`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// The next accepted connection. An `accept()` error (no file descriptor
/// left, say) tends to last a while and returns at once: retrying at once
/// would spin a core.
async fn next_connection<S, F: Future<Output = io::Result<S>>>(mut accept: impl FnMut() -> F) -> S {
    loop {
        match accept().await {
            Ok(connection) => return connection,
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

/// Serves connections until the task is aborted.
pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = next_connection(|| listener.accept()).await;
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection closed")
    }
}

impl std::error::Error for Hangup {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Hangup> {
    let endpoint = match (req.method(), req.uri().path()) {
        (&Method::GET, "/.well-known/openid-configuration") => Endpoint::Discovery,
        (&Method::GET, "/.well-known/oauth-authorization-server") => Endpoint::OAuthMetadata,
        (&Method::GET, "/jwks") => Endpoint::Jwks,
        (&Method::POST, "/introspect") => Endpoint::Introspection,
        _ => Endpoint::Other,
    };
    let _in_flight = shared.counters.enter(endpoint);
    let fault = shared.state().faults.get(&endpoint).cloned();
    if let Some(fault) = fault
        && let Some(answer) = misbehave(fault).await?
    {
        return Ok(answer);
    }
    Ok(match endpoint {
        Endpoint::Discovery | Endpoint::OAuthMetadata => metadata(&shared),
        Endpoint::Jwks => jwks(&shared, &req),
        Endpoint::Introspection => introspect(&shared, req).await,
        Endpoint::Other => json(StatusCode::NOT_FOUND, Bytes::from_static(b"{}")),
    })
}

/// What a fault answers instead of the endpoint, if anything: `None` once a
/// slow fault has waited and the endpoint should answer after all.
async fn misbehave(fault: Fault) -> Result<Option<Response<ServerBody>>, Hangup> {
    Ok(Some(match fault {
        Fault::Down => return Err(Hangup),
        Fault::Slow(d) => {
            tokio::time::sleep(d).await;
            return Ok(None);
        }
        Fault::Status(code) => json(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Bytes::from_static(b"{}"),
        ),
        Fault::Oversize(n) => {
            let mut body = vec![b' '; n];
            body[0] = b'{';
            json(StatusCode::OK, body.into())
        }
        Fault::OversizeChunked(n) => {
            let mut response = Response::new(Chunks { left: n }.boxed());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Fault::Redirect => redirect(StatusCode::FOUND, "/moved"),
        Fault::RedirectTo { status, location } => redirect(
            StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND),
            &location,
        ),
        Fault::Garbage => json(
            StatusCode::OK,
            Bytes::from_static(b"{\"keys\": [ this is not json"),
        ),
        Fault::Html => respond(
            StatusCode::OK,
            "text/html",
            Bytes::from_static(b"<html><body>Please log in</body></html>"),
        ),
        Fault::Body(body) => json(StatusCode::OK, body.into()),
    }))
}

/// The OpenID Connect discovery document, also served as RFC 8414 metadata.
fn metadata(shared: &Shared) -> Response<ServerBody> {
    let issuer = &shared.issuer;
    let named = shared
        .state()
        .metadata_issuer
        .clone()
        .unwrap_or_else(|| issuer.clone());
    let doc = json!({
        "issuer": named,
        "jwks_uri": format!("{issuer}/jwks"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint": format!("{issuer}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["client_credentials"],
    });
    json(StatusCode::OK, doc.to_string().into())
}

/// The JWKS, or `304 Not Modified` when `If-None-Match` names its `ETag`.
fn jwks(shared: &Shared, req: &Request<Incoming>) -> Response<ServerBody> {
    let (body, max_age) = {
        let state = shared.state();
        (keys::jwks(&state.keys).to_string(), state.jwks_max_age)
    };
    let etag = format!(
        "\"{}\"",
        b64(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes()).as_ref()[..12])
    );
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if matches {
        json(StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        respond(StatusCode::OK, "application/jwk-set+json", body.into())
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = max_age.and_then(|age| HeaderValue::from_str(&format!("max-age={age}")).ok()) {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}

/// RFC 7662 §2: authenticate the client, then answer for the token.
async fn introspect(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return json(StatusCode::BAD_REQUEST, Bytes::new());
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut state = shared.state();
    let Some(method) = client_auth(&state, basic.as_deref(), &form, &shared.issuer) else {
        return json(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"error":"invalid_client"}"#),
        );
    };
    state.last_client_auth = Some(method);
    let answer = form
        .get("token")
        .and_then(|t| state.issued.get(t))
        .filter(|issued| !issued.revoked)
        .filter(|issued| {
            issued
                .claims
                .get("exp")
                .and_then(Value::as_u64)
                .is_none_or(|exp| exp > clock::unix_secs())
        })
        .map_or_else(
            || json!({"active": false}),
            |issued| {
                let mut answer = issued.claims.clone();
                answer.insert("active".into(), json!(true));
                answer.entry("token_type").or_insert(json!("Bearer"));
                Value::Object(answer)
            },
        );
    json(StatusCode::OK, answer.to_string().into())
}

/// Which method authenticated the client, if any did.
fn client_auth(
    state: &State,
    basic: Option<&str>,
    form: &HashMap<String, String>,
    issuer: &str,
) -> Option<&'static str> {
    if let Some(basic) = basic {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
        let (id, secret) = basic.split_once(':')?;
        let decode = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return match state.clients.get(&decode(id)) {
            Some(ClientCredential::Secret(s)) if *s == decode(secret) => {
                Some("client_secret_basic")
            }
            _ => None,
        };
    }
    let id = form.get("client_id")?;
    match (
        state.clients.get(id),
        form.get("client_secret"),
        form.get("client_assertion"),
    ) {
        (Some(ClientCredential::Secret(s)), Some(given), None) if s == given => {
            Some("client_secret_post")
        }
        (Some(ClientCredential::PublicKey { key, algorithms }), None, Some(assertion)) => {
            let typ = form.get("client_assertion_type").map(String::as_str);
            if typ != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return None;
            }
            // RFC 7523 §3: `iss` and `sub` name the client, `aud` us, and
            // `exp` is required.
            let mut validation = jsonwebtoken::Validation::new(algorithms[0]);
            validation.algorithms = algorithms.clone();
            validation.leeway = 5;
            validation.set_issuer(&[id]);
            validation.sub = Some(id.clone());
            validation.set_audience(&[issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            jsonwebtoken::decode::<Value>(assertion, key, &validation)
                .ok()
                .map(|_| "private_key_jwt")
        }
        _ => None,
    }
}

fn redirect(status: StatusCode, location: &str) -> Response<ServerBody> {
    let mut response = respond(status, "text/plain", Bytes::new());
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn json(status: StatusCode, body: Bytes) -> Response<ServerBody> {
    respond(status, "application/json", body)
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A body streamed in 64 KiB chunks with no announced length.
struct Chunks {
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_instead_of_spinning() {
        let failures = 10;
        let mut calls = 0;
        let start = tokio::time::Instant::now();
        let accepted = next_connection(|| {
            calls += 1;
            let result = if calls <= failures {
                Err(io::Error::other("too many open files"))
            } else {
                Ok(calls)
            };
            std::future::ready(result)
        })
        .await;
        assert_eq!(accepted, failures + 1);
        assert!(
            start.elapsed() >= ACCEPT_BACKOFF * failures as u32,
            "{:?} for {failures} failed accepts",
            start.elapsed()
        );
    }
}
