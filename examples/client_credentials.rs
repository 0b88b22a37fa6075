//! A machine-to-machine API: it serves OAuth clients acting for themselves
//! (the client-credentials grant), only clients on an allowlist, and only
//! with the right scopes.
//!
//! ```text
//! cargo run --example client_credentials
//! ```
//!
//! | route | needs |
//! |---|---|
//! | `GET /reports` | an allowed machine client with `reports:read` |
//! | `POST /jobs` | an allowed machine client with `jobs:run` |
//! | `GET /whoami` | any valid token; answers `"kind": "machine"` or `"user"` |
//!
//! A token counts as a machine client's when it names a client and has no
//! `sub`, or a `sub` equal to the client id
//! ([`Principal::is_client_credentials`]). A token a client obtained for a
//! user (`sub` is the user) is refused with 403, even from an allowed client.
//!
//! Configuration from the environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `TOKENGATE_ISSUER` | the authorization server; unset: an in-process test issuer is started |
//! | `TOKENGATE_AUDIENCE` | this API's audience (required with `TOKENGATE_ISSUER`) |
//! | `TOKENGATE_ALLOWED_CLIENTS` | comma-separated client ids (required with `TOKENGATE_ISSUER`) |
//! | `TOKENGATE_LISTEN` | a loopback listen address, default `127.0.0.1:3000` |
//!
//! With no `TOKENGATE_ISSUER` it prints ready-to-paste curl commands with
//! tokens, so you see 200, 401 and both kinds of 403 within a minute.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokengate::testing::TestIssuer;
use tokengate::{AuthError, Principal, RequireScopes, TokenGate};

/// The clients the in-process test issuer's walkthrough allows.
pub const DEMO_CLIENTS: [&str; 2] = ["reporting", "billing"];

/// Who may call the machine routes: client-credentials tokens of allowed
/// clients. Scopes are checked separately, by `RequireScopes` on each route.
#[derive(Clone)]
pub struct Policy {
    gate: TokenGate,
    allowed_clients: Arc<HashSet<String>>,
}

impl Policy {
    /// A 403 for a caller the policy refuses, on the gate's realm.
    ///
    /// tokengate's errors only produce a 403 for a missing scope, with a
    /// `scope` attribute naming it; here no scope would help, so the answer
    /// is RFC 6750 §3.1 `insufficient_scope` without one. The gate's own 401
    /// challenge supplies `Bearer realm="…"`, escaped as the gate escapes it.
    fn refuse(&self, description: &'static str) -> Response {
        let mut response = self
            .gate
            .error_response::<Body>(&AuthError::MissingToken, false);
        *response.status_mut() = StatusCode::FORBIDDEN;
        let mut challenge = response.headers()[WWW_AUTHENTICATE].as_bytes().to_vec();
        challenge.extend_from_slice(
            format!(", error=\"insufficient_scope\", error_description=\"{description}\"")
                .as_bytes(),
        );
        let challenge =
            HeaderValue::from_bytes(&challenge).expect("a realm and fixed ASCII text are valid");
        response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        response
    }
}

/// The principal of a request from an allowed machine client: the
/// extractor that enforces [`Policy`].
pub struct MachineClient(pub Principal);

impl FromRequestParts<Policy> for MachineClient {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, policy: &Policy) -> Result<Self, Response> {
        // No principal (the gate did not run): tokengate's own 401.
        let principal = Principal::from_request_parts(parts, policy)
            .await
            .map_err(IntoResponse::into_response)?;
        if !principal.is_client_credentials() {
            return Err(policy.refuse("this API serves clients, not users"));
        }
        let allowed = principal
            .client_id()
            .is_some_and(|id| policy.allowed_clients.contains(id));
        if !allowed {
            return Err(policy.refuse("this client may not call this API"));
        }
        Ok(MachineClient(principal))
    }
}

async fn reports(MachineClient(client): MachineClient) -> Json<Value> {
    Json(json!({
        "client_id": client.client_id(),
        "reports": ["daily-usage", "invoices"],
    }))
}

async fn run_job(MachineClient(client): MachineClient, body: String) -> (StatusCode, Json<Value>) {
    let job = match body.trim() {
        "" => "nightly-export",
        name => name,
    };
    (
        StatusCode::ACCEPTED,
        Json(json!({ "job": job, "started_by": client.client_id() })),
    )
}

/// Any valid token: tells a machine client from a user.
async fn whoami(principal: Principal) -> Json<Value> {
    let kind = if principal.is_client_credentials() {
        "machine"
    } else {
        "user"
    };
    Json(json!({
        "kind": kind,
        "client_id": principal.client_id(),
        "sub": principal.subject(),
        "scopes": principal.scopes().iter().collect::<Vec<_>>(),
    }))
}

/// The API behind `gate`, serving machine clients in `allowed_clients`.
pub fn router<I, S>(gate: TokenGate, allowed_clients: I) -> Router
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let policy = Policy {
        gate: gate.clone(),
        allowed_clients: Arc::new(allowed_clients.into_iter().map(Into::into).collect()),
    };
    Router::new()
        // Route layers run before the handler's extractors: a request without
        // the scope gets 403 `insufficient_scope` with `scope="…"` first.
        .route(
            "/reports",
            get(reports).route_layer(RequireScopes::all(["reports:read"])),
        )
        .route(
            "/jobs",
            post(run_job).route_layer(RequireScopes::all(["jobs:run"])),
        )
        .route("/whoami", get(whoami))
        // Outermost: every route needs a valid token (401 otherwise).
        .layer(gate.layer())
        .with_state(policy)
}

/// One request of the walkthrough and the status it gets.
pub struct Step {
    /// What it shows.
    pub what: &'static str,
    /// The status it gets.
    pub expect: StatusCode,
    /// The method.
    pub method: Method,
    /// The path.
    pub path: &'static str,
    /// The bearer token, if any.
    pub token: Option<String>,
}

/// The walkthrough printed at startup (and checked by
/// `tests/client_credentials_example.rs`), with tokens from `issuer`.
pub fn walkthrough(issuer: &TestIssuer) -> Vec<Step> {
    // The test issuer puts `sub: "test-user"` in every token unless told
    // otherwise: a client-credentials token has no `sub`, or the client id.
    let machine = |client: &str, scope: &str| {
        issuer
            .token()
            .client_id(client)
            .without_claim("sub")
            .scope(scope)
            .expires_in(3600)
            .sign()
    };
    let reporting = machine("reporting", "reports:read");
    let billing = issuer
        .token()
        .client_id("billing")
        .subject("billing")
        .scope("reports:read jobs:run")
        .expires_in(3600)
        .sign();
    let scraper = machine("scraper", "reports:read jobs:run");
    let alice = issuer
        .token()
        .client_id("reporting")
        .subject("alice")
        .scope("reports:read")
        .expires_in(3600)
        .sign();
    let step = |what, expect, method, path, token: Option<&String>| Step {
        what,
        expect,
        method,
        path,
        token: token.cloned(),
    };
    vec![
        step(
            "200: an allowed machine client (no sub) with reports:read",
            StatusCode::OK,
            Method::GET,
            "/reports",
            Some(&reporting),
        ),
        step(
            "202: an allowed machine client (sub = client id) with jobs:run",
            StatusCode::ACCEPTED,
            Method::POST,
            "/jobs",
            Some(&billing),
        ),
        step(
            "403 insufficient_scope, scope=\"jobs:run\": allowed client, missing scope",
            StatusCode::FORBIDDEN,
            Method::POST,
            "/jobs",
            Some(&reporting),
        ),
        step(
            "403: a machine client that is not on the allowlist",
            StatusCode::FORBIDDEN,
            Method::GET,
            "/reports",
            Some(&scraper),
        ),
        step(
            "403: a user's token (sub = alice), even from an allowed client",
            StatusCode::FORBIDDEN,
            Method::GET,
            "/reports",
            Some(&alice),
        ),
        step(
            "401: no token",
            StatusCode::UNAUTHORIZED,
            Method::GET,
            "/reports",
            None,
        ),
        step(
            "200 \"kind\": \"machine\"",
            StatusCode::OK,
            Method::GET,
            "/whoami",
            Some(&reporting),
        ),
        step(
            "200 \"kind\": \"user\"",
            StatusCode::OK,
            Method::GET,
            "/whoami",
            Some(&alice),
        ),
    ]
}

fn print_walkthrough(issuer: &TestIssuer, addr: SocketAddr) {
    println!(
        "\nNo TOKENGATE_ISSUER set: started a test issuer at {} (tokens below are valid for an hour).",
        issuer.issuer()
    );
    println!("Allowed clients: {}.\n", DEMO_CLIENTS.join(", "));
    for step in walkthrough(issuer) {
        let method = match step.method {
            Method::GET => String::new(),
            ref other => format!(" -X {other}"),
        };
        let auth = match &step.token {
            Some(token) => format!(" -H 'Authorization: Bearer {token}'"),
            None => String::new(),
        };
        println!(
            "# {}\ncurl -i{method}{auth} http://{addr}{}\n",
            step.what, step.path
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tokengate=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let listen: SocketAddr = std::env::var("TOKENGATE_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    if !listen.ip().is_loopback() {
        return Err("TOKENGATE_LISTEN must be a loopback address: this is an example".into());
    }

    // Keeps the in-process issuer alive while the server runs.
    let mut test_issuer = None;
    let (gate, allowed_clients) = match std::env::var("TOKENGATE_ISSUER") {
        Ok(issuer) => {
            let audience = std::env::var("TOKENGATE_AUDIENCE")
                .map_err(|_| "TOKENGATE_AUDIENCE is required with TOKENGATE_ISSUER")?;
            let allowed = std::env::var("TOKENGATE_ALLOWED_CLIENTS")
                .map_err(|_| "TOKENGATE_ALLOWED_CLIENTS is required with TOKENGATE_ISSUER")?;
            let allowed: Vec<String> = allowed
                .split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect();
            let gate = TokenGate::builder()
                .issuer(issuer)
                .audience(audience)
                .build()
                .await?;
            (gate, allowed)
        }
        Err(_) => {
            let issuer = TestIssuer::start().await?;
            let gate = TokenGate::builder()
                .issuer(issuer.issuer())
                .audience(issuer.audience())
                .build()
                .await?;
            test_issuer = Some(issuer);
            (gate, DEMO_CLIENTS.map(str::to_owned).to_vec())
        }
    };

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    if let Some(issuer) = &test_issuer {
        print_walkthrough(issuer, addr);
    }
    axum::serve(listener, router(gate, allowed_clients)).await?;
    Ok(())
}
