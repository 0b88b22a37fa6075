//! Scope guards on real axum routers: each guard allows, forbids (403
//! insufficient_scope with the exact challenge) and rejects (401).

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use http::StatusCode;
use serde::Deserialize;
use tokengate::axum::{Claims, Scoped};
use tokengate::testing::TestIssuer;
use tokengate::{Principal, RequireScopes, TokenGate, require_scopes};

tokengate::scope_set! {
    /// Reading.
    pub struct ItemsRead = "items:read";
    /// Deleting.
    pub struct ItemsDelete = all("items:write", "admin");
    /// Auditing.
    pub struct AnyReader = any("items:read", "audit:read");
}

fn realm(issuer: &TestIssuer) -> String {
    format!("Bearer realm=\"{}\"", issuer.audience())
}

fn forbidden(issuer: &TestIssuer, scopes: &str) -> String {
    format!(
        "{}, error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"{scopes}\"",
        realm(issuer)
    )
}

async fn setup() -> (TestIssuer, TokenGate) {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    (issuer, gate)
}

#[require_scopes("items:write", "admin")]
async fn delete_item(principal: Principal) -> String {
    format!("deleted by {}", principal.subject().unwrap_or("-"))
}

#[require_scopes(any("items:read", "audit:read"))]
async fn list_items() -> &'static str {
    "items"
}

#[derive(Deserialize)]
struct Tenant {
    tenant: String,
}

/// A claim type whose errors quote the value, as many parsers' do.
#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Region(#[allow(dead_code)] String);

impl TryFrom<String> for Region {
    type Error = String;
    fn try_from(s: String) -> Result<Region, String> {
        match s.as_str() {
            "eu" | "us" => Ok(Region(s)),
            _ => Err(s),
        }
    }
}

#[derive(Deserialize)]
struct Located {
    #[allow(dead_code)]
    region: Region,
}

/// Hand-written requirements that name no scope: "all of none" holds for
/// every token, so they must refuse instead.
struct NoScopes;

impl tokengate::ScopeSet for NoScopes {
    const SCOPES: &'static [&'static str] = &[];
    const ANY: bool = false;
}

struct AnyOfNone;

impl tokengate::ScopeSet for AnyOfNone {
    const SCOPES: &'static [&'static str] = &[];
    const ANY: bool = true;
}

fn router(gate: &TokenGate) -> Router {
    Router::new()
        .route(
            "/layer/all",
            get(|| async { "ok" }).route_layer(RequireScopes::all(["items:write", "admin"])),
        )
        .route(
            "/layer/any",
            get(|| async { "ok" }).route_layer(RequireScopes::any(["items:read", "audit:read"])),
        )
        .route(
            "/layer/typed",
            get(|| async { "ok" }).route_layer(RequireScopes::of::<ItemsDelete>()),
        )
        .route(
            "/principal",
            get(|p: Principal| async move { p.subject().unwrap_or("-").to_owned() }),
        )
        .route(
            "/scoped",
            get(|s: Scoped<ItemsRead>| async move { s.subject().unwrap_or("-").to_owned() }),
        )
        .route("/scoped/any", get(|_: Scoped<AnyReader>| async { "ok" }))
        .route(
            "/claims",
            get(|Claims(t): Claims<Tenant>| async move { t.tenant }),
        )
        .route("/claims/region", get(|_: Claims<Located>| async { "ok" }))
        .route("/scoped/none", get(|_: Scoped<NoScopes>| async { "open" }))
        .route(
            "/scoped/any-of-none",
            get(|_: Scoped<AnyOfNone>| async { "open" }),
        )
        .route("/macro/delete", get(delete_item))
        .route("/macro/list", get(list_items))
        .layer(gate.layer())
}

async fn get_with(app: &Router, path: &str, token: Option<&str>) -> Answer {
    match token {
        Some(t) => send(app, path, &[format!("Bearer {t}").as_bytes()]).await,
        None => send(app, path, &[]).await,
    }
}

/// Each guard on each path: allowed with the scopes, 403 without, 401 with no token.
#[tokio::test]
async fn every_guard_allows_forbids_and_rejects() {
    let (issuer, gate) = setup().await;
    let app = router(&gate);
    let cases = [
        (
            "/layer/all",
            "items:write admin",
            "items:write",
            "items:write admin",
        ),
        // RFC 6750 §3 reads `scope` as "all of these": an any-guard names
        // the first alternative.
        ("/layer/any", "audit:read", "items:write", "items:read"),
        (
            "/layer/typed",
            "admin items:write",
            "admin",
            "items:write admin",
        ),
        ("/scoped", "items:read", "items:write", "items:read"),
        ("/scoped/any", "items:read", "admin", "items:read"),
        (
            "/macro/delete",
            "items:write admin",
            "items:write",
            "items:write admin",
        ),
        ("/macro/list", "audit:read", "admin", "items:read"),
    ];
    for (path, enough, too_little, required) in cases {
        let ok = get_with(&app, path, Some(&issuer.token().scope(enough).sign())).await;
        assert_eq!(ok.status, StatusCode::OK, "{path}");
        let no = get_with(&app, path, Some(&issuer.token().scope(too_little).sign())).await;
        assert_eq!(no.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            no.challenge(),
            Some(forbidden(&issuer, required).as_str()),
            "{path}"
        );
        let anonymous = get_with(&app, path, None).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            anonymous.challenge(),
            Some(realm(&issuer).as_str()),
            "{path}"
        );
    }
    let deleted = get_with(
        &app,
        "/macro/delete",
        Some(
            &issuer
                .token()
                .subject("ann")
                .scope("items:write admin")
                .sign(),
        ),
    )
    .await;
    assert_eq!(deleted.body, "deleted by ann");
}

#[tokio::test]
async fn claims_extractor_reads_custom_claims() {
    let (issuer, gate) = setup().await;
    let app = router(&gate);
    let ok = get_with(
        &app,
        "/claims",
        Some(&issuer.token().claim("tenant", "acme").sign()),
    )
    .await;
    assert_eq!(
        (ok.status, ok.body.as_ref()),
        (StatusCode::OK, b"acme".as_ref())
    );
    let missing = get_with(&app, "/claims", Some(&issuer.token().sign())).await;
    assert_invalid_token_saying(&missing, "lacks a required claim");
}

#[tokio::test]
async fn claims_errors_are_classified_by_kind_not_by_text() {
    let (issuer, gate) = setup().await;
    let app = router(&gate);
    let region = |value: &str| issuer.token().claim("region", value).sign();
    let ok = get_with(&app, "/claims/region", Some(&region("eu"))).await;
    assert_eq!(ok.status, StatusCode::OK);
    // The value's own text in the error must not make it a missing claim.
    for value in ["missing field `region`", "mars"] {
        let bad = get_with(&app, "/claims/region", Some(&region(value))).await;
        assert_invalid_token_saying(&bad, "has a malformed claim");
    }
    let missing = get_with(&app, "/claims/region", Some(&issuer.token().sign())).await;
    assert_invalid_token_saying(&missing, "lacks a required claim");
}

#[tokio::test]
async fn a_requirement_without_scopes_refuses_every_principal() {
    let (issuer, gate) = setup().await;
    let app = router(&gate);
    let no_scope = format!(
        "{}, error=\"insufficient_scope\", error_description=\"the token does not meet this resource's requirements\"",
        realm(&issuer)
    );
    for path in ["/scoped/none", "/scoped/any-of-none"] {
        for scopes in ["items:read admin", ""] {
            let answer = get_with(&app, path, Some(&issuer.token().scope(scopes).sign())).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} {scopes:?}");
            // No `scope` attribute: no scope would help.
            assert_eq!(answer.challenge(), Some(no_scope.as_str()), "{path}");
        }
    }
}

#[cfg(feature = "tonic")]
#[test]
fn tonic_requirements_without_scopes_refuse_every_principal() {
    let claims = serde_json::json!({"sub": "ann", "scope": "items:read admin"});
    let principal = Principal::from_claims(
        claims.as_object().unwrap().clone(),
        tokengate::TokenSource::Jwt,
    )
    .unwrap();
    let mut request = tonic::Request::new(());
    request.extensions_mut().insert(principal);
    tokengate::scope_set! {
        /// A well-declared set, for contrast.
        pub struct Admin = "admin";
    }
    assert!(tokengate::tonic::require::<Admin, _>(&request).is_ok());
    for status in [
        tokengate::tonic::require::<NoScopes, _>(&request).unwrap_err(),
        tokengate::tonic::require::<AnyOfNone, _>(&request).unwrap_err(),
    ] {
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}

#[test]
fn requirements_without_scopes_cannot_be_built() {
    use tokengate::ScopeRequirement;
    assert!(ScopeRequirement::try_all(Vec::<String>::new()).is_err());
    assert!(ScopeRequirement::try_any(Vec::<String>::new()).is_err());
    for build in [
        || drop(ScopeRequirement::all(Vec::<String>::new())),
        || drop(ScopeRequirement::any(Vec::<String>::new())),
        || drop(ScopeRequirement::of::<NoScopes>()),
        || drop(RequireScopes::of::<AnyOfNone>()),
    ] {
        assert!(std::panic::catch_unwind(build).is_err());
    }
}

#[tokio::test]
async fn optional_routes_work_with_and_without_a_token() {
    let (issuer, gate) = setup().await;
    let app = Router::new()
        .route(
            "/greet",
            get(|p: Option<Principal>| async move {
                match p {
                    Some(p) => format!("hello {}", p.subject().unwrap_or("-")),
                    None => "hello stranger".to_owned(),
                }
            }),
        )
        .route(
            "/greet/scoped",
            get(|| async { "ok" }).route_layer(RequireScopes::all(["items:read"])),
        )
        .layer(gate.optional_layer());
    let anonymous = get_with(&app, "/greet", None).await;
    assert_eq!(
        (anonymous.status, anonymous.body.as_ref()),
        (StatusCode::OK, b"hello stranger".as_ref())
    );
    let known = get_with(&app, "/greet", Some(&issuer.token().subject("zoe").sign())).await;
    assert_eq!(known.body, "hello zoe");
    // A token that is present must be valid (RFC 6750 §3.1).
    assert_invalid_token(
        &get_with(
            &app,
            "/greet",
            Some(&issuer.token().expires_in(-3600).sign()),
        )
        .await,
    );
    // A guard behind an optional gate still wants a principal: a plain challenge.
    let guarded = get_with(&app, "/greet/scoped", None).await;
    assert_eq!(guarded.status, StatusCode::UNAUTHORIZED);
    assert_eq!(guarded.challenge(), Some(realm(&issuer).as_str()));
}

#[tokio::test(flavor = "current_thread")]
async fn misordered_layers_answer_401_and_log_the_mistake() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (issuer, gate) = setup().await;
    // The guard is outside the gate: it runs first and finds no principal.
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .route(
            "/p",
            get(|p: Principal| async move { p.subject().unwrap_or("-").to_owned() }),
        )
        .layer(gate.layer())
        .layer(RequireScopes::all(["items:read"]));
    let answer = get_with(&app, "/x", Some(&issuer.token().scope("items:read").sign())).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("ERROR") && logs.contains("found no Principal"),
        "{logs}"
    );

    // An extractor on a route the gate does not cover.
    let unprotected = Router::new().route(
        "/p",
        get(|p: Principal| async move { p.subject().unwrap_or("-").to_owned() }),
    );
    let answer = get_with(&unprotected, "/p", Some(&issuer.token().sign())).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some("Bearer realm=\"api\""));
}

#[tokio::test]
async fn grpc_requests_get_permission_denied_from_the_guard() {
    use axum::body::Body;
    use tower::ServiceExt;
    let (issuer, gate) = setup().await;
    let app = Router::new()
        .route(
            "/items.v1.Items/CreateItem",
            axum::routing::post(|| async { "ok" })
                .route_layer(RequireScopes::all(["items:write", "admin"])),
        )
        .layer(gate.layer());
    let request = http::Request::post("/items.v1.Items/CreateItem")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header(
            "authorization",
            format!("Bearer {}", issuer.token().scope("items:read").sign()),
        )
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

#[test]
#[should_panic(expected = "RequireScopes")]
fn malformed_scopes_in_a_route_layer_fail_at_startup() {
    let _ = RequireScopes::all(["items write"]);
}
