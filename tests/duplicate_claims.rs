//! A claims object with a member twice (RFC 7519 §4: refuse it, or keep the
//! last) is refused, registered claim or not, so that `Principal::claims()`,
//! `Claims<T>` and every other reader see one and the same token.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use tokengate::axum::Claims;
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{Algorithm, AuthError, InvalidToken, Principal, TokenGate, Unavailable};

const SECRET: &[u8] = b"duplicate-claims-shared-secret-32+bytes";

/// HS256 over exactly this claims text.
fn hs256(claims: &str) -> String {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"at+jwt"}"#),
        b64(claims.as_bytes())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

async fn hmac_gate(issuer: &TestIssuer) -> TokenGate {
    builder(issuer)
        .hmac_secret(None, SECRET, Algorithm::HS256)
        .build()
        .await
        .unwrap()
}

/// Valid claims for `issuer`, as JSON text without the closing brace.
fn prefix(issuer: &TestIssuer) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    format!(
        r#"{{"iss":{},"aud":{},"sub":"ann","exp":{exp}"#,
        json!(issuer.issuer()),
        json!(issuer.audience())
    )
}

#[derive(Deserialize)]
struct Tenant {
    tenant: String,
}

#[tokio::test]
async fn a_jwt_with_a_claim_given_twice_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = hmac_gate(&issuer).await;
    let prefix = prefix(&issuer);
    let once = hs256(&format!(r#"{prefix},"tenant":"acme"}}"#));
    let principal = gate.verify(&once).await.unwrap();
    assert_eq!(principal.claim("tenant"), Some(&json!("acme")));
    for (label, extra) in [
        ("custom claim twice", r#""tenant":"acme","tenant":"evil""#),
        (
            "custom claim twice, same value",
            r#""tenant":"acme","tenant":"acme""#,
        ),
        ("escaped twin", r#""tenant":"acme","\u0074enant":"evil""#),
        ("registered claim twice", r#""sub":"root""#),
        ("ID-token claim twice", r#""nonce":"a","nonce":"b""#),
    ] {
        let token = hs256(&format!("{prefix},{extra}}}"));
        assert_eq!(
            gate.verify(&token).await.err(),
            Some(AuthError::InvalidToken(InvalidToken::Malformed)),
            "{label}"
        );
    }
}

#[tokio::test]
async fn principal_claims_and_typed_claims_agree_on_a_repeated_claim() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = hmac_gate(&issuer).await;
    let app = Router::new()
        .route(
            "/claims",
            get(|p: Principal| async move { p.claims()["tenant"].to_string() }),
        )
        .route(
            "/typed",
            get(|Claims(t): Claims<Tenant>| async move { t.tenant }),
        )
        .layer(gate.layer());
    let token = hs256(&format!(
        r#"{},"tenant":"acme","tenant":"evil"}}"#,
        prefix(&issuer)
    ));
    let header = format!("Bearer {token}");
    for path in ["/claims", "/typed"] {
        let answer = send(&app, path, &[header.as_bytes()]).await;
        assert_invalid_token(&answer);
        assert!(
            answer
                .challenge()
                .unwrap()
                .contains("the token is malformed"),
            "{path}: {:?}",
            answer.challenge()
        );
    }
}

#[tokio::test]
async fn an_introspection_answer_with_a_member_twice_is_unreadable() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .build()
        .await
        .unwrap();
    let token = issuer.token().opaque();
    for body in [
        r#"{"active":true,"tenant":"acme","tenant":"evil"}"#,
        r#"{"active":true,"sub":"ann","sub":"root"}"#,
    ] {
        issuer.set_fault(Endpoint::Introspection, Some(Fault::Body(body.into())));
        assert_eq!(
            gate.verify(&token).await.err(),
            Some(AuthError::Unavailable(Unavailable::Introspection)),
            "{body}"
        );
    }
    issuer.set_fault(Endpoint::Introspection, None);
    assert!(gate.verify(&token).await.is_ok());
    assert_eq!(
        send(&app(&gate), "/me", &[format!("Bearer {token}").as_bytes()])
            .await
            .status,
        StatusCode::OK
    );
}
