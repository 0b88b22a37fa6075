//! A small items API protected by tokengate.
//!
//! ```text
//! cargo run --example axum_api
//! ```
//!
//! Configuration from the environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `TOKENGATE_ISSUER` | the authorization server, or several separated by spaces (each discovered and trusted); unset: an in-process test issuer is started |
//! | `TOKENGATE_AUDIENCE` | this API's audience, for every issuer (required with `TOKENGATE_ISSUER`, unless `TOKENGATE_RESOURCE` is set) |
//! | `TOKENGATE_RESOURCE` | this API's public URL, e.g. `http://127.0.0.1:3000` (no path): the RFC 9728 metadata is then served at `/.well-known/oauth-protected-resource`, every 401 and 403 names it, and it is the audience when `TOKENGATE_AUDIENCE` is unset |
//! | `TOKENGATE_CLIENT_ID`, `TOKENGATE_CLIENT_SECRET` | this API's client at the (first) authorization server: opaque tokens are then introspected there (RFC 7662) |
//! | `TOKENGATE_LISTEN` | listen address, default `127.0.0.1:3000` (the example's own) |
//! | `TOKENGATE_DPOP` | `allowed` (default: Bearer and DPoP-bound tokens), `required` or `disabled` (RFC 9449) |
//! | `TOKENGATE_PUBLIC_URL` | the origin clients use, which DPoP proofs name; default `http://<TOKENGATE_LISTEN>` |
//! | `TOKENGATE_REDIS_URL` | a Redis server (`redis://127.0.0.1:6379`) for the DPoP replay store, shared by every instance; unset: in memory (the example's own) |
//! | every other variable of `tokengate::ENV_VARIABLES` | read by `TokenGateBuilder::from_env("TOKENGATE_")`: `TOKENGATE_STRICT_RFC9068=true`, `TOKENGATE_LEEWAY=30s`, … (see the README's table); `<NAME>_FILE` for secrets |
//!
//! Routes: `GET /items` (`items:read`), `POST /items` (`items:write`),
//! `DELETE /items/{id}` (`items:write` and `admin`), `GET /me` (any valid
//! token), `GET /audit` (the Keycloak-style realm role `auditor`, read from
//! `realm_access.roles`) and `GET /items/export` (`items:read` and a
//! multi-factor login, `acr` = `urn:tokengate:mfa`: RFC 9470 step-up).
//!
//! `GET /health` (liveness), `GET /ready` (readiness: 200 once every
//! issuer's keys are usable, else 503 with the reasons) and `GET /metrics`
//! (the `tokengate_*` metrics and any others, in the Prometheus text
//! format) need no token. In production, serve `/metrics` on an internal
//! port only.
//!
//! With no `TOKENGATE_ISSUER` it prints ready-to-paste curl commands with
//! tokens for each route, so you see 200, 401 and 403 within a minute.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Value, json};
use tokengate::testing::TestIssuer;
use tokengate::{
    Principal, Require, RequireScopes, Requirement, RoleSource, TokenGate, TokenGateBuilder,
};

type Items = Arc<Mutex<Vec<String>>>;

// The scope checks are the route layers in `router`: a handler runs only
// for a principal that has its route's scopes.

async fn list_items(State(items): State<Items>) -> Json<Value> {
    let items = items.lock().unwrap().clone();
    Json(json!({ "items": items }))
}

async fn create_item(State(items): State<Items>, body: String) -> (StatusCode, Json<Value>) {
    let name = if body.trim().is_empty() {
        "unnamed".to_owned()
    } else {
        body.trim().to_owned()
    };
    let mut items = items.lock().unwrap();
    items.push(name.clone());
    (
        StatusCode::CREATED,
        Json(json!({ "id": items.len() - 1, "name": name })),
    )
}

async fn delete_item(State(items): State<Items>, Path(id): Path<usize>) -> StatusCode {
    let mut items = items.lock().unwrap();
    if id < items.len() {
        items.remove(id);
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn me(Extension(p): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "sub": p.subject(),
        "client_id": p.client_id(),
        "scopes": p.scopes().iter().collect::<Vec<_>>(),
        "source": p.source().as_str(),
    }))
}

async fn audit(Extension(p): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "audit": "the audit log",
        "roles": p.roles().iter().collect::<Vec<_>>(),
    }))
}

async fn export_items(State(items): State<Items>) -> Json<Value> {
    let items = items.lock().unwrap().clone();
    Json(json!({ "export": items }))
}

/// The authentication context class `GET /items/export` requires (RFC
/// 9470 step-up): a multi-factor login.
pub(crate) const MFA: &str = "urn:tokengate:mfa";

/// The scopes the routes below require, as the metadata lists them.
const SCOPES: [&str; 3] = ["items:read", "items:write", "admin"];

pub(crate) fn router(gate: TokenGate) -> Router {
    let items: Items = Arc::new(Mutex::new(vec!["first item".to_owned()]));
    // Each method has its own requirement: 403 `insufficient_scope` with
    // `scope="…"` naming what is missing, before the handler runs.
    let read = || RequireScopes::all(["items:read"]);
    let write = || RequireScopes::all(["items:write"]);
    let protected = Router::new()
        .route(
            "/items",
            get(list_items)
                .route_layer(read())
                .merge(post(create_item).route_layer(write())),
        )
        .route(
            "/items/{id}",
            delete(delete_item).route_layer(RequireScopes::all(["items:write", "admin"])),
        )
        .route("/me", get(me))
        // A Keycloak-style realm role (the gate reads `realm_access.roles`):
        // 403 `insufficient_scope`, without `scope=`, for anyone else.
        .route(
            "/audit",
            get(audit).route_layer(Require::new(Requirement::role("auditor"))),
        )
        // The scope, and a multi-factor login (RFC 9470): a token without
        // `acr` = MFA gets 401 `insufficient_user_authentication` with
        // `acr_values`, so the client can ask for a stronger login.
        .route(
            "/items/export",
            get(export_items).route_layer(Require::new(
                Requirement::scopes_all(["items:read"]).and(Requirement::acr([MFA])),
            )),
        )
        // Outside the guards: it authenticates, they authorize.
        .layer(gate.layer())
        .with_state(items);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        // Readiness: 200 once every issuer's keys are usable, else 503.
        .route_service("/ready", gate.readiness_service())
        .merge(protected)
        // Public, like /health: clients read it before they have a token.
        .merge(tokengate::axum::metadata_router(&gate))
}

/// `GET /metrics`: what the recorder behind `handle` holds, for Prometheus
/// to scrape.
pub(crate) fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

/// Installs the Prometheus recorder, and drains its histograms every few
/// seconds (the exporter's upkeep, which its HTTP listener would do). Call
/// before building the gate: the gate registers its metrics as it is
/// built.
pub(crate) fn install_metrics() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The gate the `TOKENGATE_*` variables describe (every variable of
/// `tokengate::ENV_VARIABLES`, through `TokenGateBuilder::from_env`), and
/// the in-process test issuer when `TOKENGATE_ISSUER` is unset.
pub(crate) async fn gate_from_env()
-> Result<(TokenGate, Option<TestIssuer>), Box<dyn std::error::Error>> {
    let mut builder =
        TokenGateBuilder::from_env("TOKENGATE_")?.roles_from(RoleSource::keycloak_realm());
    // DPoP proofs name the URL clients use: this server's, unless told.
    if std::env::var_os("TOKENGATE_PUBLIC_URL").is_none() {
        builder = builder.public_url(format!("http://{}", listen_addr()?));
    }
    if let Ok(url) = std::env::var("TOKENGATE_REDIS_URL") {
        let store = tokengate::dpop::RedisReplayStore::connect(&url).await?;
        builder = builder.dpop_replay_store(Arc::new(store));
    }
    if std::env::var_os("TOKENGATE_RESOURCE").is_some() {
        builder = builder.scopes_supported(SCOPES);
    }
    if std::env::var_os("TOKENGATE_ISSUER").is_some() {
        return Ok((builder.build().await?, None));
    }
    let issuer = TestIssuer::start().await?;
    let credentials = match (
        std::env::var("TOKENGATE_CLIENT_ID"),
        std::env::var("TOKENGATE_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => (id, secret),
        _ => (
            tokengate::testing::INTROSPECTION_CLIENT_ID.to_owned(),
            tokengate::testing::INTROSPECTION_CLIENT_SECRET.to_owned(),
        ),
    };
    issuer.register_client(&credentials.0, &credentials.1);
    let gate = builder
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .introspection_credentials(credentials.0, credentials.1)
        .build()
        .await?;
    Ok((gate, Some(issuer)))
}

/// `TOKENGATE_LISTEN`, or the example's default.
pub(crate) fn listen_addr() -> Result<SocketAddr, std::net::AddrParseError> {
    std::env::var("TOKENGATE_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
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
    let listen = listen_addr()?;

    let metrics = install_metrics()?;
    // Keeps the in-process issuer alive while the server runs.
    let (gate, test_issuer) = gate_from_env().await?;

    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    if let Some(issuer) = &test_issuer {
        print_walkthrough(issuer, addr);
    }
    axum::serve(listener, router(gate).merge(metrics_router(metrics))).await?;
    Ok(())
}

fn print_walkthrough(issuer: &TestIssuer, addr: SocketAddr) {
    let token = |sub: &str, scope: &str| {
        issuer
            .token()
            .subject(sub)
            .scope(scope)
            .expires_in(3600)
            .sign()
    };
    let reader = token("reader", "items:read");
    let writer = token("writer", "items:read items:write");
    let admin = token("admin", "items:read items:write admin");
    let base = format!("http://{addr}");
    println!(
        "\nNo TOKENGATE_ISSUER set: started a test issuer at {} (tokens below are valid for an hour).\n",
        issuer.issuer()
    );
    println!("# 200, no token needed\ncurl -i {base}/health\n");
    println!("# the tokengate_* metrics, Prometheus text format\ncurl -s {base}/metrics\n");
    println!("# 401: no token\ncurl -i {base}/items\n");
    println!("# 200: any valid token\ncurl -i -H 'Authorization: Bearer {reader}' {base}/me\n");
    println!("# 200: items:read\ncurl -i -H 'Authorization: Bearer {reader}' {base}/items\n");
    println!(
        "# 403: the reader lacks items:write\ncurl -i -X POST -d 'a new item' -H 'Authorization: Bearer {reader}' {base}/items\n"
    );
    println!(
        "# 201: items:write\ncurl -i -X POST -d 'a new item' -H 'Authorization: Bearer {writer}' {base}/items\n"
    );
    println!(
        "# 403: deleting needs items:write and admin\ncurl -i -X DELETE -H 'Authorization: Bearer {writer}' {base}/items/0\n"
    );
    println!("# 204: admin\ncurl -i -X DELETE -H 'Authorization: Bearer {admin}' {base}/items/0\n");
    println!("# 401: a tampered token\ncurl -i -H 'Authorization: Bearer {reader}x' {base}/me\n");
    let auditor = issuer
        .token()
        .subject("auditor")
        .scope("items:read")
        .claim("realm_access", json!({ "roles": ["auditor"] }))
        .expires_in(3600)
        .sign();
    println!(
        "# 200: the realm role auditor\ncurl -i -H 'Authorization: Bearer {auditor}' {base}/audit\n"
    );
    println!(
        "# 403 insufficient_scope, no scope=: the reader is no auditor\ncurl -i -H 'Authorization: Bearer {reader}' {base}/audit\n"
    );
    println!(
        "# 401 insufficient_user_authentication, acr_values: no multi-factor login\ncurl -i -H 'Authorization: Bearer {reader}' {base}/items/export\n"
    );
    let mfa = issuer
        .token()
        .subject("reader")
        .scope("items:read")
        .claim("acr", MFA)
        .expires_in(3600)
        .sign();
    println!(
        "# 200: items:read and acr {MFA}\ncurl -i -H 'Authorization: Bearer {mfa}' {base}/items/export\n"
    );
    let opaque = issuer
        .token()
        .subject("service")
        .client_id("billing")
        .scope("items:read")
        .expires_in(3600)
        .opaque();
    println!(
        "# 200: an opaque token, introspected (\"source\": \"introspection\")\ncurl -i -H 'Authorization: Bearer {opaque}' {base}/me\n"
    );
}
