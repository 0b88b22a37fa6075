//! A flood of never-seen opaque tokens against an authorization server that
//! answers in 200 ms: what it costs upstream, and what a legitimate token
//! used for the first time meanwhile gets, and how fast. Time is tokio's
//! paused clock (the test issuer runs on the same runtime), so the 200 ms
//! answers and the waits are measured exactly and cost no wall-clock time.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{
    AuthError, InvalidToken, OpaqueTokenShape, TokenAlphabet, TokenGate, TokenGateBuilder,
    Unavailable,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const FLOOD: usize = 1000;
const ANSWER_TIME: Duration = Duration::from_millis(200);

fn introspecting(issuer: &TestIssuer) -> TokenGateBuilder {
    builder(issuer).introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
}

fn calls(issuer: &TestIssuer) -> usize {
    issuer.requests(Endpoint::Introspection)
}

/// `FLOOD` requests with distinct made-up tokens, all in flight at once.
fn flood(gate: &TokenGate) -> Vec<JoinHandle<Result<(), AuthError>>> {
    (0..FLOOD)
        .map(|i| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.verify(&format!("made-up-{i}")).await.map(|_| ()) })
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn during_a_flood_a_first_use_gets_503_at_once_not_after_the_timeout() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Slow(ANSWER_TIME)));
    // Defaults: 64 calls in flight, 64 requests waiting, 5 s timeout.
    let gate = introspecting(&issuer).build().await.unwrap();
    let app = app(&gate);
    let token = issuer.token().opaque();
    let flood = flood(&gate);
    while calls(&issuer) < 64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let start = Instant::now();
    let answer = me(&app, &token).await;
    let waited = start.elapsed();
    // Unbounded, the request would queue behind 936 others: about 3 s here,
    // the whole 5 s timeout and a 503 with a slower server or a bigger flood.
    assert_eq!(
        (answer.status, waited),
        (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO),
        "got {} after {waited:?}",
        answer.status
    );
    assert_eq!(answer.headers["retry-after"], "5");

    let mut answered = 0;
    for task in flood {
        match task.await.unwrap() {
            Err(AuthError::InvalidToken(InvalidToken::Inactive)) => answered += 1,
            Err(AuthError::Unavailable(Unavailable::Introspection)) => {}
            other => panic!("{other:?}"),
        }
    }
    // The ones in flight and the ones in the queue; the rest were refused.
    assert_eq!(answered, 128);
    assert_eq!(calls(&issuer), 128);
    // Once the flood is over, the same token is served in one answer time.
    let start = Instant::now();
    assert_eq!(me(&app, &token).await.status, StatusCode::OK);
    assert_eq!(start.elapsed(), ANSWER_TIME);
}

#[tokio::test(start_paused = true)]
async fn with_a_token_shape_the_flood_never_reaches_the_authorization_server() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Slow(ANSWER_TIME)));
    // The test issuer's tokens: 32 random bytes in unpadded base64url.
    let gate = introspecting(&issuer)
        .introspection_token_shape(
            OpaqueTokenShape::new()
                .length(43..=43)
                .alphabet(TokenAlphabet::Base64Url),
        )
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    let token = issuer.token().opaque();
    let flood = flood(&gate);
    // Every flood request has had its turn before the real one comes.
    tokio::time::sleep(Duration::from_millis(1)).await;

    let start = Instant::now();
    let answer = me(&app, &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(start.elapsed(), ANSWER_TIME, "no wait for a slot");

    for task in flood {
        assert_eq!(
            task.await.unwrap(),
            Err(AuthError::InvalidToken(InvalidToken::Malformed))
        );
    }
    assert_invalid_token(&me(&app, "made-up-token").await);
    assert_eq!(calls(&issuer), 1, "only the real token was introspected");
}

#[tokio::test(start_paused = true)]
async fn a_queued_request_waits_at_most_its_turn() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Introspection, Some(Fault::Slow(ANSWER_TIME)));
    let gate = introspecting(&issuer)
        .introspection_concurrency(2)
        .introspection_queue(2)
        .build()
        .await
        .unwrap();
    let begin = Instant::now();
    let busy: Vec<_> = (0..4)
        .map(|i| {
            let gate = gate.clone();
            tokio::spawn(async move { gate.verify(&format!("busy-{i}")).await.map(|_| ()) })
        })
        .collect();
    while calls(&issuer) < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Two in flight, two waiting: the queue is full.
    let start = Instant::now();
    assert_eq!(
        gate.verify(&issuer.token().opaque()).await.unwrap_err(),
        AuthError::Unavailable(Unavailable::Introspection)
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    for task in busy {
        assert_eq!(
            task.await.unwrap(),
            Err(AuthError::InvalidToken(InvalidToken::Inactive))
        );
    }
    // The two that waited got their slots after one answer time.
    assert_eq!(begin.elapsed(), 2 * ANSWER_TIME);
}
