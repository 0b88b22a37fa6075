//! Helpers shared by the integration tests: a gate on a test issuer and an
//! axum app behind it that reports the principal, a log capture, and floods
//! of concurrent requests.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokengate::testing::TestIssuer;
use tokengate::{AuthError, Principal, TokenGate, TokenGateBuilder};
use tower::ServiceExt;

/// A builder already pointed at `issuer`, with its default audience.
pub fn builder(issuer: &TestIssuer) -> TokenGateBuilder {
    TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
}

pub async fn gate(issuer: &TestIssuer) -> TokenGate {
    builder(issuer).build().await.expect("gate builds")
}

/// `/me` answers the principal as JSON; `/health` is outside the gate.
pub fn app(gate: &TokenGate) -> Router {
    let protected = Router::new()
        .route(
            "/me",
            get(|Extension(p): Extension<Principal>| async move {
                Json(json!({
                    "sub": p.subject(),
                    "client_id": p.client_id(),
                    "scopes": p.scopes().iter().collect::<Vec<_>>(),
                    "source": p.source().as_str(),
                    "iss": p.issuer(),
                    "aud": p.audiences(),
                    "jti": p.token_id(),
                }))
            }),
        )
        .layer(gate.layer());
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(protected)
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn challenge(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ASCII challenge"))
    }

    /// The RFC 6750 `error` code of the challenge.
    pub fn error_code(&self) -> Option<String> {
        let c = self.challenge()?;
        let start = c.find("error=\"")? + 7;
        let end = c[start..].find('"')? + start;
        Some(c[start..end].to_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends a request with the given `Authorization` header values.
pub async fn send(app: &Router, path: &str, authorization: &[&[u8]]) -> Answer {
    let mut request = Request::get(path);
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// `GET /me` with `Bearer <token>`.
pub async fn me(app: &Router, token: &str) -> Answer {
    send(app, "/me", &[format!("Bearer {token}").as_bytes()]).await
}

/// Asserts a 401 `invalid_token`.
#[track_caller]
pub fn assert_invalid_token(answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        answer.challenge()
    );
    assert_eq!(
        answer.error_code().as_deref(),
        Some("invalid_token"),
        "{:?}",
        answer.challenge()
    );
}

/// Asserts a 400 `invalid_request`.
#[track_caller]
pub fn assert_invalid_request(answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        answer.challenge()
    );
    assert_eq!(
        answer.error_code().as_deref(),
        Some("invalid_request"),
        "{:?}",
        answer.challenge()
    );
}

/// Asserts a 401 `invalid_token` whose challenge contains `description`.
#[track_caller]
pub fn assert_invalid_token_saying(answer: &Answer, description: &str) {
    assert_invalid_token(answer);
    let challenge = answer.challenge().unwrap();
    assert!(challenge.contains(description), "{challenge}");
}

/// A `tracing` writer that keeps every byte written to it, so a test can read
/// what was logged. Clones share one buffer.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Sends the current thread's events at `level` and above here (plain
    /// text, no colours) until the guard is dropped.
    pub fn install(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("UTF-8 logs")
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `each` on every item at once, each in its own task, and returns the
/// outputs in the items' order: a flood of concurrent requests.
pub async fn flood<I, F, Fut>(items: impl IntoIterator<Item = I>, each: F) -> Vec<Fut::Output>
where
    F: Fn(I) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| tokio::spawn(each(item)))
        .collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("a flood task panicked"));
    }
    outputs
}

/// `gate.verify` of every token at once: see [`flood`].
pub async fn flood_verify(
    gate: &TokenGate,
    tokens: impl IntoIterator<Item = String>,
) -> Vec<Result<(), AuthError>> {
    flood(tokens, |token| {
        let gate = gate.clone();
        async move { gate.verify(&token).await.map(|_| ()) }
    })
    .await
}

/// `GET /me` with every token at once: see [`flood`].
pub async fn flood_me(app: &Router, tokens: impl IntoIterator<Item = String>) -> Vec<Answer> {
    flood(tokens, |token| {
        let app = app.clone();
        async move { me(&app, &token).await }
    })
    .await
}
