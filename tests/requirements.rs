//! Requirements beyond scopes, on real axum routers and tonic requests:
//! roles from each provider's claim (tokens shaped like Keycloak's, Entra
//! ID's, Auth0's, Okta's, Cognito's, minted by the test issuer), verified
//! and introspected; a gate's scope hierarchy; and the exact answers of
//! every refusal, step-up included.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use common::*;
use http::StatusCode;
use serde_json::json;
use tokengate::axum::{Authorized, Scoped};
use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tokengate::{Principal, Require, RequireScopes, Requirement, RoleSource, ScopeHierarchy};

tokengate::requirement_set! {
    /// Entra ID: the delegated scope, or the app role for daemons.
    pub struct OrdersRead = Requirement::scopes_any(["Orders.Read"])
        .or(Requirement::role("Orders.Read.All"));
    /// Three clauses.
    pub struct Export = Requirement::all([
        Requirement::scopes_all(["items:read"]),
        Requirement::role("auditor"),
        Requirement::client_in(["reporting"]),
    ]);
}

tokengate::scope_set! {
    /// Reading items.
    pub struct ItemsRead = "items:read";
}

async fn get_with(app: &Router, path: &str, token: &str) -> Answer {
    send(app, path, &[format!("Bearer {token}").as_bytes()]).await
}

fn realm(issuer: &TestIssuer) -> String {
    format!("Bearer realm=\"{}\"", issuer.audience())
}

fn guarded(gate: &tokengate::TokenGate, requirement: Requirement) -> Router {
    Router::new()
        .route(
            "/r",
            get(|| async { "ok" }).route_layer(Require::new(requirement)),
        )
        .route(
            "/roles",
            get(|p: Principal| async move { p.roles().iter().collect::<Vec<_>>().join(" ") }),
        )
        .layer(gate.layer())
}

/// Each provider's preset reads that provider's claim, and only it.
#[tokio::test]
async fn each_provider_preset_reads_its_providers_roles() {
    let issuer = TestIssuer::start().await.unwrap();
    let cases: [(RoleSource, serde_json::Value, &str); 6] = [
        (
            RoleSource::keycloak_realm(),
            json!({"realm_access": {"roles": ["auditor", "offline_access"]}}),
            "auditor",
        ),
        (
            RoleSource::keycloak_client("orders-api"),
            json!({"resource_access": {"orders-api": {"roles": ["auditor"]}, "other": {"roles": ["root"]}}}),
            "auditor",
        ),
        (
            RoleSource::entra(),
            json!({"roles": ["auditor"], "scp": "User.Read"}),
            "auditor",
        ),
        (
            RoleSource::auth0(),
            json!({"permissions": ["auditor", "read:items"]}),
            "auditor",
        ),
        (
            RoleSource::okta(),
            json!({"groups": ["Everyone", "auditor"]}),
            "auditor",
        ),
        (
            RoleSource::cognito(),
            json!({"cognito:groups": ["auditor"]}),
            "auditor",
        ),
    ];
    for (source, claims, role) in cases {
        let gate = builder(&issuer)
            .roles_from(source.clone())
            .build()
            .await
            .unwrap();
        let app = guarded(&gate, Requirement::role(role));
        let mut with = issuer.token();
        for (name, value) in claims.as_object().unwrap() {
            with = with.claim(name, value.clone());
        }
        let with = with.sign();
        assert_eq!(
            get_with(&app, "/r", &with).await.status,
            StatusCode::OK,
            "{source:?}"
        );
        // The same claim under another provider's name gives no role.
        let elsewhere = issuer.token().claim("unrelated", claims.clone()).sign();
        let refused = get_with(&app, "/r", &elsewhere).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{source:?}");
        assert_eq!(
            refused.challenge(),
            Some(
                format!(
                    "{}, error=\"insufficient_scope\", error_description=\"the token does not meet this resource's requirements\"",
                    realm(&issuer)
                )
                .as_str()
            )
        );
    }
    // Keycloak realm and client roles together, merged.
    let gate = builder(&issuer)
        .roles_from(RoleSource::keycloak_realm())
        .roles_from(RoleSource::keycloak_client("orders-api"))
        .build()
        .await
        .unwrap();
    let app = guarded(&gate, Requirement::roles_all(["auditor", "writer"]));
    let token = issuer
        .token()
        .claim("realm_access", json!({"roles": ["auditor"]}))
        .claim(
            "resource_access",
            json!({"orders-api": {"roles": ["writer"]}}),
        )
        .sign();
    assert_eq!(get_with(&app, "/r", &token).await.status, StatusCode::OK);
    assert_eq!(
        get_with(&app, "/roles", &token).await.body,
        "auditor writer"
    );
}

/// Entra ID's "delegated scope or app role": users carry `scp`, daemons
/// `roles`; either gets in, and the refusal names the scope to ask for.
#[tokio::test]
async fn entra_scope_or_app_role() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .roles_from(RoleSource::entra())
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/orders",
            get(|caller: Authorized<OrdersRead>| async move {
                caller.client_id().unwrap_or("-").to_owned()
            }),
        )
        .layer(gate.layer());
    let user = issuer
        .token()
        .without_claim("scope")
        .claim("scp", "Orders.Read User.Read")
        .sign();
    let daemon = issuer
        .token()
        .without_claim("scope")
        .claim("roles", json!(["Orders.Read.All"]))
        .sign();
    let neither = issuer
        .token()
        .without_claim("scope")
        .claim("scp", "User.Read")
        .sign();
    assert_eq!(
        get_with(&app, "/orders", &user).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_with(&app, "/orders", &daemon).await.status,
        StatusCode::OK
    );
    let refused = get_with(&app, "/orders", &neither).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge(),
        Some(
            format!(
                "{}, error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"Orders.Read\"",
                realm(&issuer)
            )
            .as_str()
        )
    );
}

/// Roles come with the introspection answer too, and are cached with it;
/// `acr` is a top-level introspection member.
#[tokio::test]
async fn introspected_tokens_carry_roles_and_acr() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .roles_from(RoleSource::keycloak_realm())
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .build()
        .await
        .unwrap();
    let app = guarded(
        &gate,
        Requirement::role("auditor").and(Requirement::acr(["urn:tokengate:mfa"])),
    );
    let opaque = issuer
        .token()
        .claim("realm_access", json!({"roles": ["auditor"]}))
        .claim("acr", "urn:tokengate:mfa")
        .opaque();
    assert_eq!(get_with(&app, "/r", &opaque).await.status, StatusCode::OK);
    assert_eq!(get_with(&app, "/roles", &opaque).await.body, "auditor");
    let no_acr = issuer
        .token()
        .claim("realm_access", json!({"roles": ["auditor"]}))
        .opaque();
    assert_eq!(
        get_with(&app, "/r", &no_acr).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// The answers of step-up (RFC 9470 §3), exactly, and their gRPC form.
#[tokio::test]
async fn step_up_challenges_say_what_to_ask_for() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let app = guarded(
        &gate,
        Requirement::all([
            Requirement::acr(["urn:tokengate:mfa", "urn:tokengate:hwk"]),
            Requirement::max_auth_age(Duration::from_secs(300)),
        ]),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stale = issuer
        .token()
        .claim("acr", "urn:tokengate:mfa")
        .claim("auth_time", now - 3600)
        .sign();
    let answer = get_with(&app, "/r", &stale).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        Some(
            format!(
                "{}, error=\"insufficient_user_authentication\", error_description=\"a stronger or more recent user authentication is required\", acr_values=\"urn:tokengate:mfa urn:tokengate:hwk\", max_age=300",
                realm(&issuer)
            )
            .as_str()
        )
    );
    let fresh = issuer
        .token()
        .claim("acr", "urn:tokengate:hwk")
        .claim("auth_time", now - 10)
        .sign();
    assert_eq!(get_with(&app, "/r", &fresh).await.status, StatusCode::OK);

    // A token older than a route accepts: 401 invalid_token, get a new one.
    let young = guarded(&gate, Requirement::issued_within(Duration::from_secs(60)));
    let old = issuer.token().claim("iat", now - 3600).sign();
    let answer = get_with(&young, "/r", &old).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code().as_deref(), Some("invalid_token"));
    assert!(
        answer
            .challenge()
            .unwrap()
            .contains("the token is too old for this resource")
    );
    assert_eq!(
        get_with(&young, "/r", &issuer.token().sign()).await.status,
        StatusCode::OK
    );
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn tonic_step_up_is_unauthenticated_with_the_challenge() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let principal = gate
        .verify(&issuer.token().claim("acr", "urn:tokengate:pwd").sign())
        .await
        .unwrap();
    let mut request = tonic::Request::new(());
    request.extensions_mut().insert(principal);
    let step_up = Requirement::acr(["urn:tokengate:mfa"]);
    let status = tokengate::tonic::authorize(&request, &step_up).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let challenge = status.metadata().get("www-authenticate").unwrap();
    let challenge = challenge.to_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"urn:tokengate:mfa\""),
        "{challenge}"
    );
    let role = Requirement::role("auditor");
    assert_eq!(
        tokengate::tonic::authorize(&request, &role)
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert!(tokengate::tonic::authorized::<Export, _>(&request).is_err());
}

/// A gate's hierarchy applies to every guard: the route layer, the typed
/// extractors, requirements; and the 403 names the route's own scope.
#[tokio::test]
async fn the_scope_hierarchy_applies_to_every_guard() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .scope_hierarchy(
            ScopeHierarchy::new()
                .implies("items:write", ["items:read"])
                .covers("admin", "admin:"),
        )
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/layer",
            get(|| async { "ok" }).route_layer(RequireScopes::all(["items:read"])),
        )
        .route("/typed", get(|_: Scoped<ItemsRead>| async { "ok" }))
        .route(
            "/admin",
            get(|| async { "ok" })
                .route_layer(Require::new(Requirement::scopes_all(["admin:users"]))),
        )
        .layer(gate.layer());
    let writer = issuer.token().scope("items:write").sign();
    let admin = issuer.token().scope("admin").sign();
    for path in ["/layer", "/typed"] {
        assert_eq!(
            get_with(&app, path, &writer).await.status,
            StatusCode::OK,
            "{path}"
        );
        let refused = get_with(&app, path, &admin).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(
            refused
                .challenge()
                .unwrap()
                .ends_with("scope=\"items:read\"")
        );
    }
    assert_eq!(
        get_with(&app, "/admin", &admin).await.status,
        StatusCode::OK
    );
    let refused = get_with(&app, "/admin", &writer).await;
    assert!(
        refused
            .challenge()
            .unwrap()
            .ends_with("scope=\"admin:users\"")
    );
}

/// The three-clause requirement of the bench: each clause is needed.
#[tokio::test]
async fn every_clause_of_a_conjunction_is_needed() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .roles_from(RoleSource::keycloak_realm())
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route("/export", get(|_: Authorized<Export>| async { "ok" }))
        .layer(gate.layer());
    let token = |scope: &str, role: &str, client: &str| {
        issuer
            .token()
            .scope(scope)
            .client_id(client)
            .claim("realm_access", json!({"roles": [role]}))
            .sign()
    };
    let ok = token("items:read", "auditor", "reporting");
    assert_eq!(get_with(&app, "/export", &ok).await.status, StatusCode::OK);
    for (bad, scope) in [
        (token("other", "auditor", "reporting"), Some("items:read")),
        (token("items:read", "viewer", "reporting"), None),
        (token("items:read", "auditor", "web"), None),
    ] {
        let refused = get_with(&app, "/export", &bad).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refused.challenge().unwrap().contains("scope="),
            scope.is_some()
        );
    }
}

#[cfg(feature = "macros")]
mod attribute {
    use super::*;
    use tokengate::require;

    #[require(scopes("items:read"), role("auditor"))]
    async fn audit(principal: Principal) -> String {
        principal.roles().iter().collect::<Vec<_>>().join(" ")
    }

    #[require(
        any(role("admin"), all(machine, client("billing"))),
        acr("urn:tokengate:mfa")
    )]
    async fn settle() -> &'static str {
        "settled"
    }

    /// `#[require]` guards a handler as the layer would, and answers the
    /// same way.
    #[tokio::test]
    async fn the_attribute_guards_the_handler() {
        let issuer = TestIssuer::start().await.unwrap();
        let gate = builder(&issuer)
            .roles_from(RoleSource::keycloak_realm())
            .build()
            .await
            .unwrap();
        let app = Router::new()
            .route("/audit", get(audit))
            .route("/settle", get(settle))
            .layer(gate.layer());
        let roles = |roles: serde_json::Value| json!({"roles": roles});
        let auditor = issuer
            .token()
            .scope("items:read")
            .claim("realm_access", roles(json!(["auditor"])))
            .sign();
        let answer = get_with(&app, "/audit", &auditor).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, "auditor");
        let reader = issuer.token().scope("items:read").sign();
        assert_eq!(
            get_with(&app, "/audit", &reader).await.status,
            StatusCode::FORBIDDEN
        );
        let no_scope = issuer
            .token()
            .scope("other")
            .claim("realm_access", roles(json!(["auditor"])))
            .sign();
        let answer = get_with(&app, "/audit", &no_scope).await;
        assert!(
            answer
                .challenge()
                .unwrap()
                .ends_with("scope=\"items:read\"")
        );

        let billing = |acr: &str| {
            issuer
                .token()
                .client_id("billing")
                .subject("billing")
                .claim("acr", acr)
                .sign()
        };
        assert_eq!(
            get_with(&app, "/settle", &billing("urn:tokengate:mfa"))
                .await
                .status,
            StatusCode::OK
        );
        let answer = get_with(&app, "/settle", &billing("urn:tokengate:pwd")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.error_code().as_deref(),
            Some("insufficient_user_authentication")
        );
        let user = issuer.token().claim("acr", "urn:tokengate:mfa").sign();
        assert_eq!(
            get_with(&app, "/settle", &user).await.status,
            StatusCode::FORBIDDEN
        );
    }
}
