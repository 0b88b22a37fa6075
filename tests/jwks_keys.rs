//! Which keys a key set yields, end to end: JWKs as real servers publish
//! them (without `alg` or `use`, a modulus with a leading zero octet, an
//! oversize modulus), and which tokens a configured shared secret verifies.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{Algorithm, AuthError, InvalidToken, TokenGate};

/// Serves exactly these JWKs at the issuer's `jwks_uri`.
fn serve_keys(issuer: &TestIssuer, keys: Vec<Value>) {
    let body = json!({ "keys": keys }).to_string();
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Body(body)));
}

fn published(issuer: &TestIssuer, kid: &str) -> Value {
    issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn an_rsa_modulus_with_a_leading_zero_octet_is_used() {
    let issuer = TestIssuer::start().await.unwrap();
    let kid = issuer.add_key(Algorithm::RS256);
    let mut jwk = published(&issuer, &kid);
    let mut n = vec![0];
    n.extend(URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap());
    jwk["n"] = json!(URL_SAFE_NO_PAD.encode(n));
    // The only key: before, startup failed with "no usable signing key".
    serve_keys(&issuer, vec![jwk]);
    let gate = gate(&issuer).await;
    assert_eq!(gate.jwks_health().key_count, 1);
    assert!(gate.verify(&issuer.token().key(&kid).sign()).await.is_ok());
}

#[tokio::test]
async fn an_rsa_modulus_above_8192_bits_is_not_counted_usable() {
    let issuer = TestIssuer::start().await.unwrap();
    let mut n = vec![0xff; 1025];
    n[1024] = 0xfd;
    let oversize = json!({"kty": "RSA", "kid": "huge", "use": "sig",
                          "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"});
    serve_keys(
        &issuer,
        vec![published(&issuer, &issuer.signing_kid()), oversize],
    );
    let gate = gate(&issuer).await;
    assert_eq!(gate.jwks_health().key_count, 1);
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
}

#[tokio::test]
async fn keys_without_alg_or_use_are_bound_by_their_type() {
    let issuer = TestIssuer::start().await.unwrap();
    let rsa = issuer.add_bare_key(Algorithm::RS256);
    let ed = issuer.add_bare_key(Algorithm::EdDSA);
    let declared = issuer.add_key(Algorithm::RS256);
    let gate = gate(&issuer).await;
    assert_eq!(gate.jwks_health().key_count, 4);
    for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::PS512] {
        let token = issuer.token().key(&rsa).alg(alg).sign();
        assert!(gate.verify(&token).await.is_ok(), "{alg:?}");
    }
    assert!(gate.verify(&issuer.token().key(&ed).sign()).await.is_ok());
    // The type still binds: no ES256 with an RSA key; and a key that names
    // its `alg` verifies that one only.
    let token = issuer.token().key(&rsa).header("alg", "ES256").sign();
    assert_eq!(
        gate.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::AlgorithmMismatch)
    );
    let token = issuer.token().key(&declared).alg(Algorithm::PS256).sign();
    assert_eq!(
        gate.verify(&token).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::AlgorithmMismatch)
    );
}

const SECRET: &[u8] = b"a-shared-secret-of-at-least-32-bytes!";
const OTHER_SECRET: &[u8] = b"another-shared-secret-of-32-bytes-or-more";

async fn hmac_gate(issuer: &TestIssuer, secrets: &[(Option<&str>, &[u8])]) -> TokenGate {
    let mut builder = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience());
    for (kid, secret) in secrets {
        builder = builder.hmac_secret(*kid, secret, Algorithm::HS256);
    }
    builder.build().await.unwrap()
}

fn hmac_token(issuer: &TestIssuer, kid: Option<&str>, secret: &[u8]) -> String {
    let token = issuer.token().header("alg", "HS256");
    match kid {
        Some(kid) => token.header("kid", kid),
        None => token.without_header("kid"),
    }
    .sign_with_secret(secret)
}

#[tokio::test]
async fn a_secret_with_a_kid_verifies_only_tokens_naming_it() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = hmac_gate(&issuer, &[(Some("shared"), SECRET)]).await;
    let named = hmac_token(&issuer, Some("shared"), SECRET);
    assert!(gate.verify(&named).await.is_ok());
    let unnamed = hmac_token(&issuer, None, SECRET);
    assert_eq!(
        gate.verify(&unnamed).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::UnknownKey),
        "a token without kid used the secret configured for kid \"shared\""
    );
}

#[tokio::test]
async fn a_secret_without_a_kid_verifies_tokens_without_one() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = hmac_gate(&issuer, &[(Some("shared"), SECRET), (None, OTHER_SECRET)]).await;
    assert!(
        gate.verify(&hmac_token(&issuer, None, OTHER_SECRET))
            .await
            .is_ok()
    );
    assert!(
        gate.verify(&hmac_token(&issuer, Some("shared"), SECRET))
            .await
            .is_ok()
    );
    assert_eq!(
        gate.verify(&hmac_token(&issuer, None, SECRET))
            .await
            .unwrap_err(),
        AuthError::InvalidToken(InvalidToken::BadSignature)
    );
}
