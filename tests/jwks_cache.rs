//! The key set cache against a misbehaving JWKS endpoint: refresh rules,
//! single-flight, the unknown-kid rate limit, and outages. Fetches are
//! counted at the test issuer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::StatusCode;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{AuthError, BuildError, FetchError, InvalidToken, TokenGate, Unavailable};

/// Moves tokio's clock `by` ahead in one jump, firing every timer it passes
/// (the refresher's sleep; the TTL and the refresh budget's window are read
/// from the clock), and lets a refresh the jump woke begin: it counts its
/// fetch in [`JwksHealth::fetches`](tokengate::JwksHealth) before its first
/// await, so right after the jump that count tells what the jump set off, at
/// exactly the jumped time.
///
/// The clock runs again afterwards: while it is paused, tokio auto-advances
/// it whenever the runtime waits, on a socket too, so a fetch from the test
/// issuer could time out at once. Yielding while paused is safe: the runtime
/// then only polls for I/O, it does not wait.
async fn jump(by: Duration) {
    // A task spawned just now (the refresher, by `build`) must reach its
    // sleep before the clock stops: a timer set while the clock is frozen
    // fires at the next millisecond tick, which yielding never reaches.
    run_ready_tasks().await;
    tokio::time::pause();
    tokio::time::advance(by).await;
    run_ready_tasks().await;
    tokio::time::resume();
}

/// A few turns of the runtime, so every task that is ready runs until it
/// waits.
async fn run_ready_tasks() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Waits, a bounded while on the running clock, until `done` holds: for the
/// fetch a jump set off to cross loopback and land. Wait for the gate to
/// take the answer, not for the test issuer to count the request: the
/// refresher's next sleep starts only then, and the next jump must find it.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("after 2 s, still not: {what}");
}

/// Fetches the gate's key set started, and those the test issuer received.
fn fetches(gate: &TokenGate, issuer: &TestIssuer) -> (u64, usize) {
    (gate.jwks_health().fetches, issuer.requests(Endpoint::Jwks))
}

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
    jump(Duration::from_millis(600)).await;
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
    let gate = builder(&issuer)
        .jwks_ttl(Duration::from_secs(1))
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    assert_eq!(fetches(&gate, &issuer), (1, 1));
    for round in 2..=3 {
        let before = gate.jwks_health().fetched_at;
        jump(Duration::from_millis(1100)).await;
        assert_eq!(gate.jwks_health().fetches, round as u64, "refresh began");
        eventually("a scheduled refresh", || {
            gate.jwks_health().fetched_at != before
        })
        .await;
        assert_eq!(fetches(&gate, &issuer), (round as u64, round));
    }
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
    // The default TTL is 300 s: only `max-age=1` refreshes this soon.
    let before = gate.jwks_health().fetched_at;
    jump(Duration::from_millis(1600)).await;
    assert_eq!(gate.jwks_health().fetches, 2, "refresh began");
    eventually("a refresh after max-age", || {
        gate.jwks_health().fetched_at != before
    })
    .await;
    assert_eq!(fetches(&gate, &issuer), (2, 2));
    // The default lower bound (30 s) overrides a tiny max-age.
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_jwks_max_age(Some(0));
    let clamped = gate_with_defaults(&issuer).await;
    jump(Duration::from_secs(29)).await;
    assert_eq!(fetches(&clamped, &issuer), (1, 1));
    let before = clamped.jwks_health().fetched_at;
    jump(Duration::from_secs(2)).await;
    assert_eq!(clamped.jwks_health().fetches, 2, "refresh began");
    eventually("a refresh after the lower bound", || {
        clamped.jwks_health().fetched_at != before
    })
    .await;
    assert_eq!(fetches(&clamped, &issuer), (2, 2));
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
    jump(Duration::from_millis(1500)).await;
    assert_eq!(gate.jwks_health().fetches, 2, "refresh began");
    eventually("a failed scheduled refresh", || {
        gate.jwks_health().consecutive_failures >= 1
    })
    .await;
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
    let before = gate.jwks_health().fetches;
    jump(Duration::from_millis(2500)).await;
    assert_eq!(gate.jwks_health().fetches, before + 1, "retry began");
    eventually("a successful scheduled refresh", || {
        gate.jwks_health().consecutive_failures == 0
    })
    .await;
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
    jump(Duration::from_millis(2300)).await;
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
    jump(Duration::from_millis(2100)).await;
    assert_eq!(
        gate.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::Expired)
    );
}
