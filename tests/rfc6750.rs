//! RFC 6750 through the layer: where the token may come from and how each
//! failure is answered (§2.1, §2.3, §3).

mod common;

use common::*;
use http::StatusCode;
use tokengate::testing::TestIssuer;
use tokengate::{ErrorDetail, TokenGate};

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_principal() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let token = issuer
        .token()
        .subject("alice")
        .client_id("web")
        .scope("items:read items:write")
        .sign();
    let answer = me(&app, &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "web");
    assert_eq!(
        body["scopes"],
        serde_json::json!(["items:read", "items:write"])
    );
    assert_eq!(body["source"], "jwt");
    assert_eq!(body["iss"], issuer.issuer());
    assert_eq!(body["aud"], serde_json::json!([issuer.audience()]));
}

#[tokio::test]
async fn missing_token_is_a_bare_challenge_with_realm() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let answer = send(&app, "/me", &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        Some(format!("Bearer realm=\"{}\"", issuer.audience()).as_str())
    );
    assert!(answer.body.is_empty());
}

#[tokio::test]
async fn other_schemes_count_as_no_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let answer = send(&app, "/me", &[b"Basic dXNlcjpwYXNz"]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), None);
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let token = issuer.token().sign();
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let answer = send(&app, "/me", &[format!("{scheme} {token}").as_bytes()]).await;
        assert_eq!(answer.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let token = issuer.token().sign();
    let header = format!("Bearer {token}");
    let answer = send(&app, "/me", &[header.as_bytes(), header.as_bytes()]).await;
    assert_invalid_request(&answer);
}

#[tokio::test]
async fn two_tokens_in_one_header_are_invalid_request() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let token = issuer.token().sign();
    let answer = send(&app, "/me", &[format!("Bearer {token} {token}").as_bytes()]).await;
    assert_invalid_request(&answer);
}

#[tokio::test]
async fn malformed_tokens_are_invalid_request() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    for bad in [
        &b"Bearer "[..],
        b"Bearer",
        b"Bearer a\"b",
        b"Bearer a=b.c",
        b"Bearer \xff\xfe",
    ] {
        let answer = send(&app, "/me", &[bad]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(
            answer.error_code().as_deref(),
            Some("invalid_request"),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn tokens_over_the_limit_are_refused_before_parsing() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let huge = format!("Bearer {}", "a".repeat(16 * 1024 + 1));
    let answer = send(&app, "/me", &[huge.as_bytes()]).await;
    assert_invalid_token_saying(&answer, "too long");

    let small = builder(&issuer).max_token_length(64).build().await.unwrap();
    let token = issuer.token().sign();
    assert!(token.len() > 64);
    assert_invalid_token(&me(&common::app(&small), &token).await);
}

#[tokio::test]
async fn query_token_is_ignored_by_default_and_accepted_when_enabled() {
    let issuer = TestIssuer::start().await.unwrap();
    let token = issuer.token().sign();
    let path = format!("/me?access_token={token}");

    let default = app(&gate(&issuer).await);
    let answer = send(&default, &path, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), None);

    let opted_in = app(&builder(&issuer)
        .allow_query_token(true)
        .build()
        .await
        .unwrap());
    assert_eq!(send(&opted_in, &path, &[]).await.status, StatusCode::OK);
    // Both a header and a query token: RFC 6750 §2 allows one method only.
    let both = send(&opted_in, &path, &[format!("Bearer {token}").as_bytes()]).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unprotected_routes_are_untouched() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    assert_eq!(send(&app, "/health", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn terse_mode_omits_descriptions() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .error_detail(ErrorDetail::Terse)
        .realm("items")
        .build()
        .await
        .unwrap();
    let answer = me(&app(&gate), &issuer.token().expires_in(-3600).sign()).await;
    assert_eq!(
        answer.challenge(),
        Some("Bearer realm=\"items\", error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    use axum::body::Body;
    use tower::ServiceExt;
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    let grpc = |version: http::Version, content_type: &str| {
        http::Request::post("/me")
            .version(version)
            .header("content-type", content_type)
            .body(Body::empty())
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(grpc(http::Version::HTTP_2, "application/grpc+proto"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(response.headers().contains_key("www-authenticate"));
    let web = app
        .clone()
        .oneshot(grpc(http::Version::HTTP_11, "application/grpc-web+proto"))
        .await
        .unwrap();
    assert_eq!(web.headers()["grpc-status"], "16");
    // A gRPC content type on HTTP/1.1 is not gRPC: a REST client cannot turn
    // its 401 into an HTTP 200 by choosing a header.
    let fake = app
        .oneshot(grpc(http::Version::HTTP_11, "application/grpc"))
        .await
        .unwrap();
    assert_eq!(fake.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fake.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn service_keeps_answering_after_rejections() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate: TokenGate = gate(&issuer).await;
    let app = app(&gate);
    for bad in [
        &b"Bearer x.y.z"[..],
        b"Bearer ....",
        b"Bearer \x80\x81",
        b"Bearer a b",
    ] {
        let _ = send(&app, "/me", &[bad]).await;
    }
    assert_eq!(
        me(&app, &issuer.token().sign()).await.status,
        StatusCode::OK
    );
}

/// The URIs an inner service was called with.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A gate's layer around a service that records the URI of every request
/// it gets and answers 200 with `cache_control`, if any.
fn recording(
    gate: TokenGate,
    cache_control: Option<&'static str>,
) -> (
    impl tower::Service<
        http::Request<String>,
        Response = http::Response<String>,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
    Seen,
) {
    use tower::Layer;
    let seen = Seen::default();
    let record = seen.clone();
    let inner = tower::service_fn(move |req: http::Request<String>| {
        record.lock().unwrap().push(req.uri().to_string());
        let mut response = http::Response::new(String::new());
        if let Some(value) = cache_control {
            response
                .headers_mut()
                .insert("cache-control", http::HeaderValue::from_static(value));
        }
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    (gate.layer().layer(inner), seen)
}

async fn call_with<S>(svc: &S, uri: &str, header_token: Option<&str>) -> http::Response<String>
where
    S: tower::Service<
            http::Request<String>,
            Response = http::Response<String>,
            Error = std::convert::Infallible,
        > + Clone,
{
    use tower::ServiceExt;
    let mut request = http::Request::get(uri);
    if let Some(token) = header_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    svc.clone()
        .oneshot(request.body(String::new()).unwrap())
        .await
        .unwrap()
}

async fn query_gate(issuer: &TestIssuer) -> TokenGate {
    builder(issuer)
        .allow_query_token(true)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_query_token_is_removed_from_the_uri_the_service_sees() {
    let issuer = TestIssuer::start().await.unwrap();
    let token = issuer.token().sign();
    let (svc, seen) = recording(query_gate(&issuer).await, None);
    // Every other parameter is kept byte for byte, in order: encodings,
    // empty pieces, names without values, look-alike names.
    for (uri, expected) in [
        (
            format!("/items?a=1&access_token={token}&b=%20x+y&&c"),
            "/items?a=1&b=%20x+y&&c",
        ),
        (format!("/items?access_token={token}"), "/items"),
        (
            format!("/items?access_token={token}&access_tokens=1&x_access_token=2"),
            "/items?access_tokens=1&x_access_token=2",
        ),
        (
            format!("/items?z=%41&access%5Ftoken={token}"),
            "/items?z=%41",
        ),
        (
            format!("http://api.example.com/items?access_token={token}&p=q"),
            "http://api.example.com/items?p=q",
        ),
    ] {
        let answer = call_with(&svc, &uri, None).await;
        assert_eq!(answer.status(), StatusCode::OK, "{uri}");
        assert_eq!(seen.lock().unwrap().pop().as_deref(), Some(expected));
    }
    // The same when verification waits for I/O: a key not fetched yet.
    let kid = issuer.add_key(tokengate::Algorithm::ES256);
    let fresh = issuer.token().key(&kid).sign();
    let answer = call_with(&svc, &format!("/new?access_token={fresh}&k=v"), None).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["cache-control"], "private");
    assert_eq!(seen.lock().unwrap().pop().as_deref(), Some("/new?k=v"));
    // A header token leaves the query alone.
    let answer = call_with(&svc, "/items?a=1&&b=%2F", Some(&token)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        seen.lock().unwrap().pop().as_deref(),
        Some("/items?a=1&&b=%2F")
    );
    // Without the feature, an `access_token` parameter is not ours to touch.
    let (off, seen) = recording(gate(&issuer).await, None);
    let uri = "/items?access_token=not-ours&a=1";
    assert_eq!(
        call_with(&off, uri, Some(&token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(seen.lock().unwrap().pop().as_deref(), Some(uri));
}

#[tokio::test]
async fn answers_to_a_query_token_are_private() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = query_gate(&issuer).await;
    let token = issuer.token().sign();
    let by_query = format!("/items?access_token={token}");
    for (set, expected) in [
        (None, Some("private")),
        (Some("max-age=60"), Some("private, max-age=60")),
        (Some("public, max-age=60"), Some("private, max-age=60")),
        (Some("no-store"), Some("no-store")),
        (Some("private, max-age=5"), Some("private, max-age=5")),
        // Qualified, `private` still lets shared caches keep the rest.
        (
            Some("private=\"set-cookie\", max-age=60"),
            Some("private, max-age=60"),
        ),
    ] {
        let (svc, _) = recording(gate.clone(), set);
        let answer = call_with(&svc, &by_query, None).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(
            answer
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            expected,
            "{set:?}"
        );
        // The header path is not RFC 6750 §2.3's business.
        let answer = call_with(&svc, "/items", Some(&token)).await;
        assert_eq!(
            answer
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            set
        );
    }
}

#[tokio::test]
async fn the_length_cap_applies_to_the_query_token_only() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .allow_query_token(true)
        .max_token_length(2048)
        .build()
        .await
        .unwrap();
    let (svc, _) = recording(gate, None);
    let token = issuer.token().sign();
    let long_query = format!(
        "/search?q={}&filter={}",
        "a".repeat(20_000),
        "%41".repeat(5000)
    );
    let answer = call_with(&svc, &long_query, Some(&token)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let with_query_token = format!("{long_query}&access_token={token}");
    assert_eq!(
        call_with(&svc, &with_query_token, None).await.status(),
        StatusCode::OK
    );
    // The token itself is still capped, encoded or not.
    for long in [
        format!("/search?access_token={}", "a".repeat(2049)),
        format!("/search?access_token={}", "%41".repeat(2049)),
    ] {
        let answer = call_with(&svc, &long, None).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("too long"), "{challenge}");
    }
}

#[tokio::test]
async fn grpc_web_rejections_keep_the_requests_content_type() {
    use axum::body::Body;
    use tower::ServiceExt;
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&gate(&issuer).await);
    for (sent, answered) in [
        ("application/grpc-web", "application/grpc-web"),
        ("application/grpc-web+proto", "application/grpc-web+proto"),
        ("application/grpc-web-text", "application/grpc-web-text"),
        (
            "application/grpc-web-text+proto",
            "application/grpc-web-text+proto",
        ),
        (
            "application/grpc-web+proto; charset=utf-8",
            "application/grpc-web+proto",
        ),
        ("application/grpc-web+avro", "application/grpc-web"),
        (
            "application/grpc-web-text+avro",
            "application/grpc-web-text",
        ),
    ] {
        let request = http::Request::post("/me")
            .version(http::Version::HTTP_11)
            .header("content-type", sent)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{sent}");
        assert_eq!(response.headers()["grpc-status"], "16", "{sent}");
        assert_eq!(response.headers()["content-type"], answered, "{sent}");
    }
}
