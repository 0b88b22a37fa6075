//! `examples/axum_api.rs` as its environment configures it: its
//! `TOKENGATE_RESOURCE` contract (RFC 9728 metadata at the root well-known
//! URL, `resource_metadata` in every 401 and 403, the resource as the default
//! audience) and the routes' answers. The example's own code runs: its file
//! is compiled into this test.

#[allow(dead_code)]
#[path = "../examples/axum_api.rs"]
mod axum_api;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokengate::testing::TestIssuer;
use tower::ServiceExt;

const RESOURCE: &str = "http://127.0.0.1:3000";
const METADATA: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource";

const VARIABLES: [&str; 10] = [
    "TOKENGATE_DPOP",
    "TOKENGATE_PUBLIC_URL",
    "TOKENGATE_REDIS_URL",
    "TOKENGATE_STRICT_RFC9068",
    "TOKENGATE_ISSUER",
    "TOKENGATE_AUDIENCE",
    "TOKENGATE_RESOURCE",
    "TOKENGATE_CLIENT_ID",
    "TOKENGATE_CLIENT_SECRET",
    "TOKENGATE_LISTEN",
];

/// Sets the example's environment. One test in this binary, so nothing
/// reads the environment meanwhile.
fn environment(pairs: &[(&str, &str)]) {
    for name in VARIABLES {
        // SAFETY: this binary's only test runs alone and sets variables
        // before it starts any task that reads them.
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in pairs {
        // SAFETY: as above.
        unsafe { std::env::set_var(name, value) };
    }
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from("an item")).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn challenge(headers: &http::HeaderMap) -> String {
    headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn resource_contract() {
    // 1. With the embedded test issuer.
    environment(&[("TOKENGATE_RESOURCE", RESOURCE)]);
    let (gate, issuer) = axum_api::gate_from_env().await.unwrap();
    let issuer = issuer.expect("no TOKENGATE_ISSUER: the example starts its own");
    let app = axum_api::router(gate);

    let (status, headers, body) =
        send(&app, "GET", "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        document,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [issuer.issuer()],
            "scopes_supported": ["items:read", "items:write", "admin"],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
        })
    );
    let reader = issuer.token().scope("items:read").sign();
    let writer = issuer.token().scope("items:read items:write").sign();
    for (method, path, token, status) in [
        ("GET", "/items", None, StatusCode::UNAUTHORIZED),
        (
            "GET",
            "/me",
            Some(format!("{reader}x")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "POST",
            "/items",
            Some(reader.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            "/items/0",
            Some(writer.clone()),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (got, headers, _) = send(&app, method, path, token.as_deref()).await;
        assert_eq!(got, status, "{method} {path}");
        let challenge = challenge(&headers);
        assert_eq!(
            challenge
                .matches(&format!("resource_metadata=\"{METADATA}\""))
                .count(),
            1,
            "{challenge}"
        );
    }
    // The routes still answer as before.
    for (method, path, token, status) in [
        ("GET", "/health", None, StatusCode::OK),
        ("GET", "/me", Some(&reader), StatusCode::OK),
        ("GET", "/items", Some(&reader), StatusCode::OK),
        ("POST", "/items", Some(&writer), StatusCode::CREATED),
    ] {
        assert_eq!(
            send(&app, method, path, token.map(String::as_str)).await.0,
            status,
            "{method} {path}"
        );
    }

    // Roles and step-up: /audit needs the realm role `auditor`, and
    // /items/export `items:read` and a multi-factor login.
    let auditor = issuer
        .token()
        .scope("items:read")
        .claim(
            "realm_access",
            json!({"roles": ["auditor", "offline_access"]}),
        )
        .sign();
    let (status, _, body) = send(&app, "GET", "/audit", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["roles"],
        json!(["auditor", "offline_access"])
    );
    let (status, headers, _) = send(&app, "GET", "/audit", Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let realm = format!("Bearer realm=\"{}\"", issuer.audience());
    assert_eq!(
        challenge(&headers),
        format!(
            "{realm}, error=\"insufficient_scope\", error_description=\"the token does not meet this resource's requirements\", resource_metadata=\"{METADATA}\""
        )
    );
    let (status, headers, _) = send(&app, "GET", "/items/export", Some(&reader)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&headers),
        format!(
            "{realm}, error=\"insufficient_user_authentication\", error_description=\"a stronger or more recent user authentication is required\", acr_values=\"urn:tokengate:mfa\", resource_metadata=\"{METADATA}\""
        )
    );
    let other_acr = issuer
        .token()
        .scope("items:read")
        .claim("acr", "urn:tokengate:pwd")
        .sign();
    assert_eq!(
        send(&app, "GET", "/items/export", Some(&other_acr)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let mfa = issuer
        .token()
        .scope("items:read")
        .claim("acr", axum_api::MFA)
        .sign();
    assert_eq!(
        send(&app, "GET", "/items/export", Some(&mfa)).await.0,
        StatusCode::OK
    );
    // The scope is still required, step-up or not: the acr alone is a 403.
    let mfa_only = issuer
        .token()
        .scope("other")
        .claim("acr", axum_api::MFA)
        .sign();
    let (status, headers, _) = send(&app, "GET", "/items/export", Some(&mfa_only)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge(&headers).contains("scope=\"items:read\""));

    // DPoP (allowed by default): a bound token with a proof naming the
    // example's public URL, http://<TOKENGATE_LISTEN>.
    let key = tokengate::testing::DpopKey::new(tokengate::Algorithm::ES256);
    let bound = issuer.token().scope("items:read").dpop_bound(&key).sign();
    let proof = key
        .proof("GET", "http://127.0.0.1:3000/items")
        .token(&bound)
        .sign();
    let response = app
        .clone()
        .oneshot(
            Request::get("/items")
                .header(header::AUTHORIZATION, format!("DPoP {bound}"))
                .header("dpop", proof)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        send(&app, "GET", "/items", Some(&bound)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // 2. An issuer of the operator's, no TOKENGATE_AUDIENCE: the resource is
    // the audience.
    let external = TestIssuer::start().await.unwrap();
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_RESOURCE", RESOURCE),
    ]);
    let (gate, embedded) = axum_api::gate_from_env().await.unwrap();
    assert!(embedded.is_none());
    let app = axum_api::router(gate);
    let for_resource = external
        .token()
        .audience(RESOURCE)
        .scope("items:read")
        .sign();
    let for_other = external.token().scope("items:read").sign();
    assert_eq!(
        send(&app, "GET", "/items", Some(&for_resource)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/items", Some(&for_other)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // 3. TOKENGATE_AUDIENCE, when also set, stays the audience.
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_AUDIENCE", &external.audience()),
        ("TOKENGATE_RESOURCE", RESOURCE),
    ]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate);
    assert_eq!(
        send(&app, "GET", "/items", Some(&for_other)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/items", Some(&for_resource)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, headers, body) = send(&app, "GET", "/.well-known/oauth-protected-resource", None).await;
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["resource"], RESOURCE);

    // 4. Several issuers, separated by spaces: each is trusted, and the
    // metadata lists them all.
    let second = TestIssuer::start().await.unwrap();
    environment(&[
        (
            "TOKENGATE_ISSUER",
            &format!("{}  {}", external.issuer(), second.issuer()),
        ),
        ("TOKENGATE_RESOURCE", RESOURCE),
    ]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate);
    for issuer in [&external, &second] {
        let token = issuer.token().audience(RESOURCE).scope("items:read").sign();
        assert_eq!(
            send(&app, "GET", "/items", Some(&token)).await.0,
            StatusCode::OK
        );
    }
    let (_, _, body) = send(&app, "GET", "/.well-known/oauth-protected-resource", None).await;
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        document["authorization_servers"],
        json!([external.issuer(), second.issuer()])
    );

    // 5. Without TOKENGATE_RESOURCE: no metadata, no attribute, and an
    // issuer without an audience is a configuration error.
    environment(&[]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate);
    assert_eq!(
        send(&app, "GET", "/.well-known/oauth-protected-resource", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, headers, _) = send(&app, "GET", "/items", None).await;
    assert!(!challenge(&headers).contains("resource_metadata"));
    environment(&[("TOKENGATE_ISSUER", &external.issuer())]);
    assert!(axum_api::gate_from_env().await.is_err());

    // 6. Every builder setting is a variable: strict RFC 9068 refuses a
    // token without `typ: at+jwt`; a typo'd value is an error naming it.
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_AUDIENCE", &external.audience()),
        ("TOKENGATE_STRICT_RFC9068", "true"),
    ]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate);
    let untyped = external
        .token()
        .scope("items:read")
        .without_header("typ")
        .sign();
    assert_eq!(
        send(&app, "GET", "/items", Some(&untyped)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, body) = send(&app, "GET", "/ready", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["ready"],
        true
    );
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_AUDIENCE", &external.audience()),
        ("TOKENGATE_STRICT_RFC9068", "yes please"),
    ]);
    let err = axum_api::gate_from_env().await.unwrap_err().to_string();
    assert!(err.contains("TOKENGATE_STRICT_RFC9068"), "{err}");

    // TOKENGATE_DPOP=required: bearer tokens are refused, in the DPoP scheme.
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_AUDIENCE", &external.audience()),
        ("TOKENGATE_DPOP", "required"),
    ]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate);
    let (status, headers, _) = send(&app, "GET", "/items", Some(&for_other)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge(&headers).starts_with("DPoP algs="));

    // 7. /metrics: the recorder installed before the gate is built counts
    // its requests, in the Prometheus text format, with no token in it.
    let handle = axum_api::install_metrics().unwrap();
    environment(&[
        ("TOKENGATE_ISSUER", &external.issuer()),
        ("TOKENGATE_AUDIENCE", &external.audience()),
    ]);
    let (gate, _) = axum_api::gate_from_env().await.unwrap();
    let app = axum_api::router(gate).merge(axum_api::metrics_router(handle));
    assert_eq!(
        send(&app, "GET", "/items", Some(&for_other)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/items", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, headers, body) = send(&app, "GET", "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"tokengate_requests_total{outcome="accepted",reason="none",source="jwt"} 1"#,
        r#"tokengate_requests_total{outcome="rejected",reason="missing",source="none"} 1"#,
        r#"tokengate_cache_lookups_total{cache="verified_token",result="miss"} 1"#,
        "# HELP tokengate_requests_total",
    ] {
        assert!(
            text.lines().any(|l| l == line || l.starts_with(line)),
            "{line} not in\n{text}"
        );
    }
    assert!(!text.contains(&for_other), "a token in the metrics");
}
