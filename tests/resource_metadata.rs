//! RFC 9728 protected-resource metadata and RFC 8707 resource identifiers:
//! the identifier's checks and canonical form, the audience default, the
//! document (members, omissions), the endpoint (paths, methods, headers),
//! `resource_metadata` in every 401 and 403 challenge for HTTP and gRPC, and
//! the CORS recipe that lets browsers read those challenges.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Method, Request, StatusCode, Version, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokengate::testing::TestIssuer;
use tokengate::{BuildError, Principal, RequireScopes, TokenGate, TokenGateBuilder};
use tower::ServiceExt;

const RESOURCE: &str = "https://api.example.com/mcp";
const METADATA_URL: &str = "https://api.example.com/.well-known/oauth-protected-resource/mcp";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

fn builder(issuer: &TestIssuer) -> TokenGateBuilder {
    TokenGate::builder().issuer(issuer.issuer())
}

async fn gate_for(issuer: &TestIssuer, resource: &str) -> TokenGate {
    builder(issuer).resource(resource).build().await.unwrap()
}

async fn build_error(builder: TokenGateBuilder) -> BuildError {
    builder.build().await.unwrap_err()
}

#[tokio::test]
async fn the_resource_is_the_default_audience_compared_exactly() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate_for(&issuer, "HTTPS://API.Example.COM/mcp").await;
    assert_eq!(gate.resource(), Some(RESOURCE));

    let for_us = issuer.token().audience(RESOURCE).sign();
    assert!(gate.verify(&for_us).await.is_ok());
    // Code point by code point: another spelling is another audience.
    for other in [
        "HTTPS://API.Example.COM/mcp",
        "https://api.example.com/mcp/",
        "https://api.example.com/MCP",
        "https://api.example.com",
    ] {
        let token = issuer.token().audience(other).sign();
        assert!(gate.verify(&token).await.is_err(), "aud {other} accepted");
    }
}

#[tokio::test]
async fn an_explicit_audience_wins_over_the_resource() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .resource(RESOURCE)
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    let for_audience = issuer.token().sign();
    assert!(gate.verify(&for_audience).await.is_ok());
    let for_resource = issuer.token().audience(RESOURCE).sign();
    assert!(gate.verify(&for_resource).await.is_err());
    // The metadata still names the resource.
    assert_eq!(gate.resource_metadata().unwrap().resource, RESOURCE);
}

#[tokio::test]
async fn malformed_resources_fail_the_build() {
    let issuer = TestIssuer::start().await.unwrap();
    for bad in [
        "https://api.example.com/mcp?tenant=1",
        "https://api.example.com/mcp#top",
        "https://user:secret@api.example.com/mcp",
        "/mcp",
        "urn:example:mcp",
        "ftp://api.example.com/mcp",
        // Not what a client sends byte for byte (it would percent-encode or
        // resolve these), and `{` would make the metadata route panic in axum.
        "https://api.example.com/mcp/{tool}",
        "https://api.example.com/my api",
        "https://api.example.com/a\"b",
        "https://api.example.com/caf\u{e9}",
        "https://api.example.com/a/../mcp",
    ] {
        let err = build_error(builder(&issuer).resource(bad)).await;
        assert!(
            matches!(
                err,
                BuildError::InvalidUrl {
                    what: "resource",
                    ..
                }
            ),
            "{bad}: {err:?}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let err = build_error(builder(&issuer).resource("http://api.example.com/mcp")).await;
    assert!(
        matches!(
            err,
            BuildError::InsecureUrl {
                what: "resource",
                ..
            }
        ),
        "{err:?}"
    );
    // Loopback http is allowed, as for issuers.
    let gate = gate_for(&issuer, "http://127.0.0.1:3000").await;
    assert_eq!(
        gate.resource_metadata_url(),
        Some("http://127.0.0.1:3000/.well-known/oauth-protected-resource")
    );
    // Without resource or audience there is still nothing to check `aud` against.
    assert!(matches!(
        build_error(builder(&issuer)).await,
        BuildError::MissingAudience
    ));
}

#[tokio::test]
async fn the_document_lists_what_is_set_and_omits_the_rest() {
    let issuer = TestIssuer::start().await.unwrap();
    let bare = gate_for(&issuer, RESOURCE).await;
    let json = serde_json::to_value(bare.resource_metadata().unwrap()).unwrap();
    assert_eq!(
        json,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [issuer.issuer()],
            "bearer_methods_supported": ["header"],
            // DPoP is allowed by default: the algorithms proofs may use.
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
        })
    );
    // Required: said so; disabled: nothing about DPoP.
    for (mode, members) in [
        (
            tokengate::dpop::DpopMode::Required,
            json!({"dpop_signing_alg_values_supported": ["ES256"], "dpop_bound_access_tokens_required": true}),
        ),
        (
            tokengate::dpop::DpopMode::Disabled,
            json!({"tls_client_certificate_bound_access_tokens": true}),
        ),
    ] {
        let gate = builder(&issuer)
            .resource(RESOURCE)
            .certificate_bound_tokens(mode == tokengate::dpop::DpopMode::Disabled)
            .dpop(mode)
            .dpop_algorithms([tokengate::Algorithm::ES256])
            .build()
            .await
            .unwrap();
        let mut expected = json!({
            "resource": RESOURCE,
            "authorization_servers": [issuer.issuer()],
            "bearer_methods_supported": ["header"],
        });
        for (k, v) in members.as_object().unwrap() {
            expected[k] = v.clone();
        }
        let json = serde_json::to_value(gate.resource_metadata().unwrap()).unwrap();
        assert_eq!(json, expected, "{mode:?}");
    }

    let full = builder(&issuer)
        .resource(RESOURCE)
        .scopes_supported(["items:read", "items:write"])
        .scopes_supported(["items:read", "admin"])
        .resource_name("Items \"MCP\"")
        .resource_documentation("https://docs.example.com/items")
        .resource_policy_uri("https://example.com/privacy")
        .resource_tos_uri("https://example.com/terms")
        .allow_query_token(true)
        .build()
        .await
        .unwrap();
    let json = serde_json::to_value(full.resource_metadata().unwrap()).unwrap();
    assert_eq!(
        json,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [issuer.issuer()],
            "scopes_supported": ["items:read", "items:write", "admin"],
            "bearer_methods_supported": ["header", "query"],
            "resource_name": "Items \"MCP\"",
            "resource_documentation": "https://docs.example.com/items",
            "resource_policy_uri": "https://example.com/privacy",
            "resource_tos_uri": "https://example.com/terms",
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
        })
    );

    // A gate without a resource publishes nothing.
    let plain = builder(&issuer)
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    assert!(plain.resource_metadata().is_none());
    assert_eq!(plain.resource_metadata_paths().len(), 0);
}

#[tokio::test]
async fn bad_metadata_settings_fail_the_build() {
    let issuer = TestIssuer::start().await.unwrap();
    let with = |b: TokenGateBuilder| b.resource(RESOURCE);
    for (builder, what) in [
        (
            with(builder(&issuer)).scopes_supported(["two words"]),
            "scopes",
        ),
        (with(builder(&issuer)).challenge_scope(["a\"b"]), "hint"),
        (with(builder(&issuer)).resource_name("line\nbreak"), "name"),
        (
            with(builder(&issuer)).resource_documentation("not a url"),
            "doc",
        ),
        (
            with(builder(&issuer)).resource_tos_uri("javascript:alert(1)"),
            "tos",
        ),
    ] {
        assert!(builder.build().await.is_err(), "{what} accepted");
    }
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, body)
}

fn request(method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_endpoint_serves_the_document_publicly() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate_for(&issuer, RESOURCE).await;
    let app: Router = Router::new()
        .route("/mcp", get(|_: Principal| async { "tools" }))
        .layer(gate.layer())
        .merge(tokengate::axum::metadata_router(&gate));

    let (status, headers, body) = call(&app, request(Method::GET, METADATA_PATH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        document,
        serde_json::to_value(gate.resource_metadata().unwrap()).unwrap()
    );

    let (status, headers, body) = call(&app, request(Method::HEAD, METADATA_PATH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(body.is_empty());

    // A CORS preflight, as browsers send for `MCP-Protocol-Version`.
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(METADATA_PATH)
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "mcp-protocol-version",
        )
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&app, preflight).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("GET")
    );

    let (status, headers, _) = call(&app, request(Method::POST, METADATA_PATH)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "GET, HEAD, OPTIONS");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

    // Not at the root by default (the resource has a path), and the
    // protected route still needs a token.
    let (status, _, _) = call(
        &app,
        request(Method::GET, "/.well-known/oauth-protected-resource"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(&app, request(Method::GET, "/mcp")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_root_is_served_too_when_asked() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .resource(RESOURCE)
        .metadata_at_root(true)
        .build()
        .await
        .unwrap();
    let app: Router = tokengate::axum::metadata_router(&gate);
    for path in [METADATA_PATH, "/.well-known/oauth-protected-resource"] {
        let (status, _, body) = call(&app, request(Method::GET, path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let document: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(document["resource"], RESOURCE);
    }

    // The tower service alone answers only at its paths.
    let service = gate.metadata_service();
    let answer = service
        .clone()
        .oneshot(request(Method::GET, "/elsewhere"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let trailing = gate_for(&issuer, "https://api.example.com/a/b/").await;
    assert_eq!(
        trailing.resource_metadata_paths().collect::<Vec<_>>(),
        [
            "/.well-known/oauth-protected-resource/a/b/",
            "/.well-known/oauth-protected-resource/a/b"
        ]
    );
    // With and without the last slash (clients that trim it), one document
    // whose `resource` keeps the slash.
    for path in [
        "/.well-known/oauth-protected-resource/a/b/",
        "/.well-known/oauth-protected-resource/a/b",
    ] {
        let answer = trailing
            .metadata_service()
            .oneshot(request(Method::GET, path))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let body = answer.into_body();
        let document: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(document["resource"], "https://api.example.com/a/b/");
    }
}

/// The `resource_metadata` attribute of a challenge, and how often it occurs.
fn metadata_attribute(challenge: &str) -> (usize, Option<String>) {
    let attribute = "resource_metadata=\"";
    let count = challenge.matches(attribute).count();
    let value = challenge.split_once(attribute).map(|(_, rest)| {
        rest.split_once('"')
            .map(|(v, _)| v.to_owned())
            .unwrap_or_default()
    });
    (count, value)
}

fn protected_app(gate: &TokenGate) -> Router {
    Router::new()
        .route(
            "/items",
            get(|| async { "items" }).route_layer(RequireScopes::all(["items:write", "admin"])),
        )
        .layer(gate.layer())
}

#[tokio::test]
async fn every_401_and_403_names_the_metadata_once() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .resource(RESOURCE)
        .challenge_scope(["items:read"])
        .build()
        .await
        .unwrap();
    let app = protected_app(&gate);
    let bearer = |token: &str| format!("Bearer {token}");
    let cases = [
        (None, StatusCode::UNAUTHORIZED, Some("items:read")),
        (
            Some(bearer(&format!(
                "{}x",
                issuer.token().audience(RESOURCE).sign()
            ))),
            StatusCode::UNAUTHORIZED,
            Some("items:read"),
        ),
        (
            Some(bearer(
                &issuer
                    .token()
                    .audience(RESOURCE)
                    .scope("items:write")
                    .sign(),
            )),
            StatusCode::FORBIDDEN,
            Some("items:write admin"),
        ),
        (Some("Bearer a b".to_owned()), StatusCode::BAD_REQUEST, None),
    ];
    for (authorization, expected, scope) in cases {
        let mut request = Request::get("/items");
        if let Some(value) = &authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let (status, headers, _) = call(&app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, expected);
        let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            metadata_attribute(challenge),
            (1, Some(METADATA_URL.to_owned())),
            "{challenge}"
        );
        if let Some(scope) = scope {
            assert!(
                challenge.contains(&format!("scope=\"{scope}\"")),
                "{challenge}"
            );
            assert_eq!(challenge.matches("scope=\"").count(), 1, "{challenge}");
        }
    }

    // A gate without a resource names none.
    let plain = builder(&issuer)
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    let (_, headers, _) = call(&protected_app(&plain), request(Method::GET, "/items")).await;
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert_eq!(metadata_attribute(challenge), (0, None));
    assert!(!challenge.contains("scope="), "{challenge}");
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_answers_carry_the_metadata_in_www_authenticate() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate_for(&issuer, RESOURCE).await;
    let app = Router::new()
        .route("/items.Items/List", axum::routing::post(|| async { "" }))
        .layer(gate.layer());
    let grpc = Request::post("/items.Items/List")
        .version(Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&app, grpc).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["grpc-status"], "16");
    let challenge = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert_eq!(
        metadata_attribute(challenge),
        (1, Some(METADATA_URL.to_owned()))
    );

    // The tonic helpers' statuses, for a principal that lacks a scope.
    let token = issuer.token().audience(RESOURCE).scope("items:read").sign();
    let principal = gate.verify(&token).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    let handler = move |request: Request<Body>| {
        let record = record.clone();
        async move {
            let (parts, _) = request.into_parts();
            let mut grpc_request = tonic::Request::new(());
            *grpc_request.extensions_mut() = parts.extensions;
            let status = tokengate::tonic::authorize(
                &grpc_request,
                &tokengate::ScopeRequirement::all(["items:write"]),
            )
            .unwrap_err();
            *record.lock().unwrap() = Some(status);
            ""
        }
    };
    let app = Router::new()
        .route("/items.Items/Add", axum::routing::post(handler))
        .layer(gate.layer());
    let grpc = Request::post("/items.Items/Add")
        .version(Version::HTTP_2)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    call(&app, grpc).await;
    let status = seen.lock().unwrap().take().expect("handler ran");
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.contains("scope=\"items:write\""), "{challenge}");
    assert_eq!(
        metadata_attribute(challenge),
        (1, Some(METADATA_URL.to_owned()))
    );
    drop(principal);
}

/// The documented CORS recipe: `CorsLayer` outside the gate answers
/// preflights before the gate sees them, and exposes `WWW-Authenticate` so
/// a browser client can read a cross-origin 401's challenge.
#[tokio::test]
async fn cors_recipe_lets_browsers_read_challenges() {
    use tower_http::cors::{AllowOrigin, CorsLayer};

    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate_for(&issuer, RESOURCE).await;
    let app: Router = Router::new()
        .route("/mcp", axum::routing::post(|_: Principal| async { "{}" }))
        .layer(gate.layer())
        .merge(tokengate::axum::metadata_router(&gate))
        .layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::exact("https://app.example".parse().unwrap()))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    "mcp-protocol-version".parse().unwrap(),
                    "mcp-session-id".parse().unwrap(),
                ])
                .expose_headers([header::WWW_AUTHENTICATE, "mcp-session-id".parse().unwrap()]),
        );

    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&app, preflight).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the preflight never reached the gate"
    );
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );

    let post = Request::post("/mcp")
        .header(header::ORIGIN, "https://app.example")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&app, post).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let exposed = headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    assert!(headers.contains_key(header::WWW_AUTHENTICATE));

    // Without the recipe the gate refuses a preflight like any request
    // without a token: it does not guess which OPTIONS are harmless.
    let bare: Router = Router::new()
        .route("/mcp", axum::routing::any(|| async { "ran" }))
        .layer(gate.layer());
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/mcp")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&bare, preflight).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.is_empty());
}
