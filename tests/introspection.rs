//! RFC 7662 introspection of opaque tokens: the request, the answer's rules,
//! the cache, single-flight, the concurrency bound, and outages. Upstream
//! calls are counted at the test issuer.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::json;
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{
    Algorithm, AuthError, BuildError, ClientAuth, IntrospectionMode, InvalidToken,
    TokenGateBuilder, Unavailable,
};

fn introspecting(issuer: &TestIssuer) -> TokenGateBuilder {
    builder(issuer).introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
}

fn calls(issuer: &TestIssuer) -> usize {
    issuer.requests(Endpoint::Introspection)
}

#[tokio::test]
async fn an_active_opaque_token_yields_an_introspection_principal() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&introspecting(&issuer).build().await.unwrap());
    let token = issuer
        .token()
        .subject("bob")
        .client_id("svc")
        .scope("items:read")
        .opaque();
    let answer = me(&app, &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["source"], "introspection");
    assert_eq!(body["sub"], "bob");
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["scopes"], json!(["items:read"]));
    // The secret has characters that RFC 6749 §2.3.1 encoding changes.
    assert_eq!(issuer.last_client_auth(), Some("client_secret_basic"));
}

#[tokio::test]
async fn client_secret_post_and_private_key_jwt_authenticate_too() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer)
        .introspection_auth(ClientAuth::SecretPost)
        .build()
        .await
        .unwrap();
    assert!(gate.verify(&issuer.token().opaque()).await.is_ok());
    assert_eq!(issuer.last_client_auth(), Some("client_secret_post"));

    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let public = tokengate::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    issuer.register_client_key("rs-with-key", &public);
    let gate = builder(&issuer)
        .introspection_credentials("rs-with-key", "")
        .introspection_auth(ClientAuth::PrivateKeyJwt {
            key,
            alg: Algorithm::ES256,
            kid: None,
        })
        .build()
        .await
        .unwrap();
    assert!(gate.verify(&issuer.token().opaque()).await.is_ok());
    assert_eq!(issuer.last_client_auth(), Some("private_key_jwt"));
}

#[tokio::test]
async fn wrong_client_credentials_are_an_outage_not_a_bad_token() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .introspection_credentials(INTROSPECTION_CLIENT_ID, "wrong")
        .build()
        .await
        .unwrap();
    assert_eq!(
        gate.verify(&issuer.token().opaque()).await.unwrap_err(),
        AuthError::Unavailable(Unavailable::Introspection)
    );
}

#[tokio::test]
async fn a_hundred_sequential_requests_with_one_token_make_one_call() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&introspecting(&issuer).build().await.unwrap());
    let token = issuer.token().opaque();
    for _ in 0..100 {
        assert_eq!(me(&app, &token).await.status, StatusCode::OK);
    }
    assert_eq!(calls(&issuer), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_with_one_fresh_token_make_one_call() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(
        Endpoint::Introspection,
        Some(Fault::Slow(Duration::from_millis(200))),
    );
    let gate = introspecting(&issuer).build().await.unwrap();
    let token = issuer.token().opaque();
    for verified in flood_verify(&gate, std::iter::repeat_n(token, 200)).await {
        assert_eq!(verified, Ok(()));
    }
    assert_eq!(calls(&issuer), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_random_tokens_never_exceed_the_concurrency_bound() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(
        Endpoint::Introspection,
        Some(Fault::Slow(Duration::from_millis(20))),
    );
    // Room for every request to wait: this is about the bound on calls, not
    // the bound on waiting (tests/introspection_flood.rs).
    let gate = introspecting(&issuer)
        .introspection_concurrency(16)
        .introspection_queue(1000)
        .build()
        .await
        .unwrap();
    let tokens = (0..1000).map(|i| format!("random-token-{i}"));
    for verified in flood_verify(&gate, tokens).await {
        assert_eq!(
            verified,
            Err(AuthError::InvalidToken(InvalidToken::Inactive))
        );
    }
    let peak = issuer.max_concurrent(Endpoint::Introspection);
    assert!((2..=16).contains(&peak), "peak {peak}");
    assert_eq!(calls(&issuer), 1000);
}

#[tokio::test(start_paused = true)]
async fn an_outage_with_nothing_cached_is_503() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&introspecting(&issuer)
        .timeout(Duration::from_millis(300))
        .max_response_bytes(64 * 1024)
        .build()
        .await
        .unwrap());
    let token = issuer.token().opaque();
    for fault in [
        Fault::Down,
        Fault::Status(500),
        Fault::Status(401),
        Fault::Garbage,
        Fault::Html,
        Fault::Body(r#"{"active": "true"}"#.into()),
        Fault::Body(r#"{"scope": "a"}"#.into()),
        Fault::Body(r#"[true]"#.into()),
        Fault::Oversize(1024 * 1024),
        Fault::OversizeChunked(1024 * 1024),
        Fault::Redirect,
        Fault::Slow(Duration::from_secs(2)),
    ] {
        issuer.set_fault(Endpoint::Introspection, Some(fault.clone()));
        let answer = me(&app, &token).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert_eq!(answer.headers["retry-after"], "5", "{fault:?}");
    }
    // Errors are never cached: once the server heals, the token works.
    issuer.set_fault(Endpoint::Introspection, None);
    let before = calls(&issuer);
    assert_eq!(me(&app, &token).await.status, StatusCode::OK);
    assert_eq!(calls(&issuer), before + 1);
    assert_eq!(
        issuer.requests(Endpoint::Other),
        0,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_cached_answer_keeps_serving_through_an_outage() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&introspecting(&issuer).build().await.unwrap());
    let known = issuer.token().opaque();
    assert_eq!(me(&app, &known).await.status, StatusCode::OK);
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Down));
    assert_eq!(me(&app, &known).await.status, StatusCode::OK);
    assert_eq!(
        me(&app, &issuer.token().opaque()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_refused_once_its_cache_entry_expires() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer)
        .introspection_cache_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let token = issuer.token().opaque();
    assert!(gate.verify(&token).await.is_ok());
    issuer.revoke(&token);
    // Within the cache lifetime the revocation is not seen (RFC 7662 §4).
    assert!(gate.verify(&token).await.is_ok());
    tokio::time::advance(Duration::from_millis(1200)).await;
    assert_eq!(
        gate.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Inactive)
    );
}

#[tokio::test]
async fn a_flood_of_one_inactive_token_costs_one_call() {
    let issuer = TestIssuer::start().await.unwrap();
    let app = app(&introspecting(&issuer).build().await.unwrap());
    for _ in 0..50 {
        assert_invalid_token(&me(&app, "never-issued").await);
    }
    assert_eq!(calls(&issuer), 1);
}

#[tokio::test]
async fn refresh_tokens_other_audiences_and_expired_answers_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer).build().await.unwrap();
    let cases = [
        (
            issuer.token().claim("token_type", "refresh_token").opaque(),
            InvalidToken::NotAnAccessToken,
        ),
        (
            issuer.token().audience("https://other.api").opaque(),
            InvalidToken::WrongAudience,
        ),
        (
            issuer.token().claim("iss", "https://evil.example").opaque(),
            InvalidToken::WrongIssuer,
        ),
        (
            issuer.token().claim("cnf", json!({"jkt": "abc"})).opaque(),
            InvalidToken::SenderConstrained,
        ),
        (
            issuer.token().claim("scope", json!({"a": 1})).opaque(),
            InvalidToken::MalformedClaim,
        ),
    ];
    for (token, reason) in cases {
        assert_eq!(
            gate.verify(&token).await.unwrap_err(),
            AuthError::InvalidToken(reason)
        );
    }
}

#[tokio::test]
async fn introspection_off_refuses_opaque_tokens_without_calling() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer)
        .introspection_mode(IntrospectionMode::Off)
        .build()
        .await
        .unwrap();
    assert_eq!(
        gate.verify(&issuer.token().opaque()).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::NotAJwt)
    );
    assert_eq!(calls(&issuer), 0);
}

#[tokio::test(start_paused = true)]
async fn mode_all_introspects_jwts_after_verifying_them() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer)
        .introspection_mode(IntrospectionMode::All)
        .introspection_cache_ttl(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let jwt = issuer.token().scope("items:read").sign();
    let principal = gate.verify(&jwt).await.unwrap();
    assert_eq!(principal.source(), tokengate::TokenSource::Jwt);
    assert_eq!(calls(&issuer), 1);
    assert!(gate.verify(&jwt).await.is_ok());
    assert_eq!(calls(&issuer), 1);
    issuer.revoke(&jwt);
    tokio::time::advance(Duration::from_millis(1200)).await;
    assert_eq!(
        gate.verify(&jwt).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Inactive)
    );
    // A forged JWT never reaches the introspection endpoint.
    let forged = format!("{}x", &jwt[..jwt.len() - 1]);
    assert!(gate.verify(&forged).await.is_err());
    assert_eq!(calls(&issuer), 2);
}

#[tokio::test]
async fn the_endpoint_comes_from_discovery_or_configuration() {
    let issuer = TestIssuer::start().await.unwrap();
    let explicit = builder(&issuer)
        .jwks_uri(issuer.jwks_uri())
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .introspection_endpoint(issuer.url("/introspect"))
        .build()
        .await
        .unwrap();
    assert!(explicit.verify(&issuer.token().opaque()).await.is_ok());
    assert_eq!(issuer.requests(Endpoint::Discovery), 0);

    let metadata = json!({"issuer": issuer.issuer(), "jwks_uri": issuer.jwks_uri()}).to_string();
    issuer.set_fault(Endpoint::Discovery, Some(Fault::Body(metadata)));
    let err = introspecting(&issuer).build().await.unwrap_err();
    assert!(matches!(err, BuildError::NoIntrospectionEndpoint), "{err}");
}

#[tokio::test]
async fn jwts_with_cnf_are_refused_as_bearer_tokens() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let bound = issuer
        .token()
        .claim("cnf", json!({"x5t#S256": "abc"}))
        .sign();
    assert_eq!(
        gate.verify(&bound).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::SenderConstrained)
    );
}

/// Polls `fut` once, so it has joined whatever it waits for, and leaves it
/// pending.
async fn poll_once<F: std::future::Future>(fut: &mut std::pin::Pin<Box<F>>) {
    std::future::poll_fn(|cx| {
        assert!(fut.as_mut().poll(cx).is_pending(), "expected to wait");
        std::task::Poll::Ready(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_late_request_does_not_inherit_a_finished_calls_failure() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = introspecting(&issuer)
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let token = issuer.token().opaque();
    issuer.set_fault(
        Endpoint::Introspection,
        Some(Fault::Slow(Duration::from_secs(2))),
    );
    let first = tokio::spawn({
        let (gate, token) = (gate.clone(), token.clone());
        async move { gate.verify(&token).await.map(|_| ()) }
    });
    while calls(&issuer) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A second request shares the call and is then not polled for a while
    // (a slow client, a busy worker): it still holds its share when the
    // call fails.
    let mut second = Box::pin(gate.verify(&token));
    poll_once(&mut second).await;
    assert_eq!(
        first.await.unwrap(),
        Err(AuthError::Unavailable(Unavailable::Introspection))
    );
    issuer.set_fault(Endpoint::Introspection, None);
    // The failure is not cached, so a request arriving now asks again.
    assert!(gate.verify(&token).await.is_ok());
    assert_eq!(calls(&issuer), 2);
    assert_eq!(
        second.await.unwrap_err(),
        AuthError::Unavailable(Unavailable::Introspection)
    );
}
