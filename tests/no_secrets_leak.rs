//! No token or secret reaches a log line, a response, or `Debug` output, on
//! any error path.

mod common;

use std::time::Duration;

use common::*;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{Algorithm, TokenGate};

#[tokio::test(flavor = "current_thread")]
async fn tokens_and_secrets_never_reach_logs_responses_or_debug() {
    let capture = Capture::default();
    let _guard = capture.install(tracing::Level::TRACE);

    let issuer = TestIssuer::start().await.unwrap();
    let secret = "hmac-secret-value-that-must-stay-hidden";
    let builder = builder(&issuer)
        .jwks_uri(issuer.jwks_uri())
        .hmac_secret(Some("shared"), secret, Algorithm::HS256)
        .jwks_ttl(Duration::from_secs(1))
        .jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(60));
    let builder_debug = format!("{builder:?}");
    let gate: TokenGate = builder.build().await.unwrap();
    let app = app(&gate);

    // One marker in every token's claims, so any echo of any part is caught.
    let marker = "tokenmarker";
    let tokens = vec![
        issuer.token().claim("m", marker).expires_in(-3600).sign(),
        issuer
            .token()
            .claim("m", marker)
            .audience("elsewhere")
            .sign(),
        issuer
            .token()
            .claim("m", marker)
            .header("kid", "unknown-kid")
            .sign(),
        issuer
            .token()
            .claim("m", marker)
            .header("alg", "none")
            .with_signature(b"x"),
        issuer
            .token()
            .claim("m", marker)
            .header("alg", "HS256")
            .header("kid", "shared")
            .sign_with_secret(b"wrong"),
        format!(
            "{}.garbage.{marker}",
            issuer.token().claim("m", marker).sign()
        ),
        format!("{marker}-opaque"),
        format!("{marker}{}", "a".repeat(20_000)),
        issuer.token().claim("m", marker).claim("scope", 5).sign(),
    ];
    let mut outputs = Vec::new();
    for token in &tokens {
        let answer = me(&app, token).await;
        assert_ne!(answer.status, 200);
        outputs.push(format!("{:?} {:?}", answer.headers, answer.body));
        if let Err(e) = gate.verify(token).await {
            outputs.push(format!("{e} {e:?}"));
        }
    }
    // An outage path too: the key set's 1 s TTL runs out while the JWKS
    // endpoint is down, so the scheduled refresh fails and logs why.
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Down));
    // Let the refresher arm its timer on the running clock, jump past the
    // TTL, and run the rest (loopback I/O) on the running clock again, so a
    // paused clock cannot fire an I/O timeout by itself.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(1300)).await;
    tokio::time::resume();
    for _ in 0..10_000 {
        if gate.jwks_health().consecutive_failures > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        gate.jwks_health().consecutive_failures > 0,
        "the scheduled refresh ran into the outage"
    );
    let answer = me(&app, &tokens[2]).await;
    outputs.push(format!("{:?} {:?}", answer.headers, answer.body));
    // And a success, whose principal is logged by a careless user.
    issuer.set_fault(Endpoint::Jwks, None);
    let ok = gate
        .verify(&issuer.token().claim("m", "fine").sign())
        .await
        .unwrap();
    outputs.push(format!("{ok:?} {gate:?} {builder_debug}"));

    let logs = capture.text();
    assert!(logs.contains("key set"), "the capture works: {logs}");
    let everything = format!("{logs}\n{}", outputs.join("\n"));
    assert!(!everything.contains(marker), "marker leaked:\n{everything}");
    assert!(!everything.contains(secret), "secret leaked");
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            signature.len() < 8 || !everything.contains(signature),
            "a token part leaked"
        );
    }
}
