//! The key set cache against a misbehaving JWKS endpoint: refresh rules,
//! single-flight, the unknown-kid rate limit, and outages. Fetches are
//! counted at the test issuer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{AuthError, BuildError, FetchError, InvalidToken, Unavailable};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_with_a_new_kid_cause_one_fetch() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    assert_eq!(issuer.requests(Endpoint::Jwks), 1);
    let kid = issuer.add_key(tokengate::Algorithm::ES256);
    let token = Arc::new(issuer.token().key(&kid).sign());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (gate, token) = (gate.clone(), token.clone());
            tokio::spawn(async move { gate.verify(&token).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Ok(()));
    }
    assert_eq!(issuer.requests(Endpoint::Jwks), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_kids_costs_at_most_the_refresh_budget() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let gate = gate.clone();
            let token = issuer.token().header("kid", format!("made-up-{i}")).sign();
            tokio::spawn(async move { gate.verify(&token).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap(),
            Err(AuthError::InvalidToken(InvalidToken::UnknownKey))
        );
    }
    // One initial fetch plus at most two unplanned ones per 30 s window.
    let fetches = issuer.requests(Endpoint::Jwks);
    assert!((2..=3).contains(&fetches), "{fetches} fetches");
}

#[tokio::test]
async fn the_refresh_budget_comes_back_after_the_window() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .unknown_kid_refresh(1, Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let made_up = issuer.token().header("kid", "nope").sign();
    assert!(gate.verify(&made_up).await.is_err());
    assert!(gate.verify(&made_up).await.is_err());
    assert_eq!(issuer.requests(Endpoint::Jwks), 2);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A real rotation after the window is picked up at once.
    let kid = issuer.add_key(tokengate::Algorithm::EdDSA);
    assert!(gate.verify(&issuer.token().key(&kid).sign()).await.is_ok());
    assert_eq!(issuer.requests(Endpoint::Jwks), 3);
}

#[tokio::test]
async fn rotation_accepts_new_keys_and_drops_removed_ones() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let old_kid = issuer.signing_kid();
    let old_token = issuer.token().sign();
    assert!(gate.verify(&old_token).await.is_ok());
    let new_kid = issuer.rotate();
    let new_token = issuer.token().sign();
    assert!(new_token.len() > 10 && new_kid != old_kid);
    assert!(gate.verify(&new_token).await.is_ok());
    // The refresh for the new kid brought a set without the old key.
    let old_again = issuer.token().key(&old_kid).sign();
    assert_eq!(
        gate.verify(&old_again).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::UnknownKey)
    );
}

#[tokio::test]
async fn keys_are_refreshed_in_the_background_after_the_ttl() {
    let issuer = TestIssuer::start().await.unwrap();
    let _gate = builder(&issuer)
        .jwks_ttl(Duration::from_secs(1))
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    assert_eq!(issuer.requests(Endpoint::Jwks), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fetches = issuer.requests(Endpoint::Jwks);
    assert!((2..=4).contains(&fetches), "{fetches} fetches");
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_within_bounds() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_max_age(Some(1));
    let gate = builder(&issuer)
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(issuer.requests(Endpoint::Jwks) >= 2);
    // The default lower bound (30 s) overrides a tiny max-age.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_max_age(Some(0));
    let _clamped = gate_with_defaults(&issuer).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(issuer.requests(Endpoint::Jwks), 1);
    drop(gate);
}

async fn gate_with_defaults(issuer: &TestIssuer) -> tokengate::TokenGate {
    common::gate(issuer).await
}

#[tokio::test]
async fn an_outage_with_cached_keys_keeps_valid_tokens_working() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .jwks_ttl(Duration::from_secs(1))
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Down));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = gate.jwks_health();
    assert!(health.consecutive_failures >= 1, "{health:?}");
    assert!(health.stale && health.usable, "{health:?}");
    assert!(health.last_error.is_some());
    assert_eq!(
        me(&app, &issuer.token().sign()).await.status,
        StatusCode::OK
    );

    // An unknown kid during the outage: we cannot tell rotation from forgery.
    let answer = me(&app, &issuer.token().header("kid", "rotated?").sign()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));

    // Healing: the next background refresh succeeds.
    issuer.set_fault(Endpoint::Jwks, None);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let health = gate.jwks_health();
    assert_eq!(health.consecutive_failures, 0, "{health:?}");
    assert!(!health.stale);
}

#[tokio::test]
async fn stale_keys_stop_serving_after_max_stale() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .jwks_ttl(Duration::from_secs(1))
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .jwks_max_stale(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Status(500)));
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        gate.verify(&issuer.token().sign()).await.unwrap_err(),
        AuthError::Unavailable(Unavailable::Keys)
    );
    assert!(!gate.jwks_health().usable);
}

#[tokio::test]
async fn an_outage_without_cached_keys_is_503_not_401() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Down));
    let err = builder(&issuer).build().await.unwrap_err();
    assert!(matches!(err, BuildError::Jwks(_)), "{err}");

    let gate = builder(&issuer)
        .require_keys_at_startup(false)
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    let answer = me(&app, &issuer.token().sign()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "5");
    assert!(answer.challenge().is_none());

    // Once the endpoint heals, the next request (within the budget) loads keys.
    issuer.set_fault(Endpoint::Jwks, None);
    assert_eq!(
        me(&app, &issuer.token().sign()).await.status,
        StatusCode::OK
    );
}

async fn startup_error(fault: Fault) -> (BuildError, TestIssuer) {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Jwks, Some(fault));
    let err = builder(&issuer)
        .timeout(Duration::from_millis(300))
        .max_response_bytes(64 * 1024)
        .build()
        .await
        .unwrap_err();
    (err, issuer)
}

#[tokio::test]
async fn a_slow_jwks_endpoint_times_out() {
    let (err, _) = startup_error(Fault::Slow(Duration::from_secs(3))).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Timeout)),
        "{err}"
    );
}

#[tokio::test]
async fn an_oversize_key_set_is_refused() {
    let (err, _) = startup_error(Fault::Oversize(1024 * 1024)).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::TooLarge(_))),
        "{err}"
    );
    let (err, _) = startup_error(Fault::OversizeChunked(1024 * 1024)).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::TooLarge(_))),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (err, issuer) = startup_error(Fault::Redirect).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Redirect(302))),
        "{err}"
    );
    assert_eq!(issuer.requests(Endpoint::Other), 0);
}

#[tokio::test]
async fn garbage_and_error_statuses_are_refused() {
    let (err, _) = startup_error(Fault::Garbage).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Malformed(_))),
        "{err}"
    );
    let (err, _) = startup_error(Fault::Html).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Malformed(_))),
        "{err}"
    );
    let (err, _) = startup_error(Fault::Status(500)).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Status(500))),
        "{err}"
    );
    let (err, _) = startup_error(Fault::Body(r#"{"keys": []}"#.into())).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Malformed(_))),
        "{err}"
    );
    let (err, _) = startup_error(Fault::Body(r#"{"keys": {"kty": "EC"}}"#.into())).await;
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Malformed(_))),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_refresh_never_replaces_good_keys() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Body(r#"{"keys": []}"#.into())));
    // An unknown kid triggers a refresh that returns an empty set.
    let made_up = issuer.token().header("kid", "nope").sign();
    assert!(gate.verify(&made_up).await.is_err());
    assert_eq!(gate.jwks_health().key_count, 1);
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
}

#[tokio::test]
async fn a_cached_token_dies_with_its_key() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let old_token = issuer.token().sign();
    assert!(gate.verify(&old_token).await.is_ok());
    assert!(gate.verify(&old_token).await.is_ok());
    issuer.rotate();
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
    assert_eq!(
        gate.verify(&old_token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::UnknownKey)
    );
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let token = issuer.token().expires_in(1).sign();
    assert!(gate.verify(&token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        gate.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Expired)
    );
}
