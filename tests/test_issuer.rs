//! The test issuer's own promises, checked over plain HTTP: what its
//! introspection endpoint knows, and how it authenticates `private_key_jwt`
//! clients (with jsonwebtoken, independently of the crate under test).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tokengate::{Algorithm, Jwk};

/// POSTs `form` to the issuer's introspection endpoint: the status and, for
/// a 200, the answer.
async fn introspect(issuer: &TestIssuer, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(issuer.url("/introspect"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn introspect_with_secret(issuer: &TestIssuer, token: &str) -> Value {
    let form = [
        ("token", token),
        ("client_id", INTROSPECTION_CLIENT_ID),
        ("client_secret", INTROSPECTION_CLIENT_SECRET),
    ];
    let (status, answer) = introspect(issuer, &form).await;
    assert_eq!(status, 200);
    answer
}

#[tokio::test]
async fn every_minted_token_is_known_to_introspection() {
    let issuer = TestIssuer::start().await.unwrap();
    let tokens = [
        issuer.token().sign(),
        issuer.token().opaque(),
        issuer
            .token()
            .header("alg", "HS256")
            .sign_with_secret(b"a-shared-secret-of-at-least-32-bytes!"),
    ];
    for token in tokens {
        let answer = introspect_with_secret(&issuer, &token).await;
        assert_eq!(answer["active"], true, "{answer}");
        assert_eq!(answer["sub"], "test-user");
    }
    let answer = introspect_with_secret(&issuer, "never-issued").await;
    assert_eq!(answer, json!({"active": false}));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn client_key() -> (EncodingKey, Jwk) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    (key, jwk)
}

#[tokio::test]
async fn private_key_jwt_assertions_are_checked_per_rfc_7523() {
    let issuer = TestIssuer::start().await.unwrap();
    let (key, jwk) = client_key();
    issuer.register_client_key("rs", &jwk);
    let (other_key, _) = client_key();
    let token = issuer.token().opaque();
    let good = || {
        json!({"iss": "rs", "sub": "rs", "aud": issuer.issuer(),
               "iat": now(), "exp": now() + 60, "jti": "1"})
    };
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good();
        change(&mut claims);
        claims
    };
    let cases: [(&str, Value, &EncodingKey, u16); 6] = [
        ("good", good(), &key, 200),
        ("another key", good(), &other_key, 401),
        (
            "another audience",
            with(&|c| c["aud"] = json!("https://elsewhere")),
            &key,
            401,
        ),
        (
            "another subject",
            with(&|c| c["sub"] = json!("someone")),
            &key,
            401,
        ),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("someone")),
            &key,
            401,
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 3600)),
            &key,
            401,
        ),
    ];
    for (case, claims, signer, expected) in cases {
        let assertion =
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, signer).unwrap();
        let form = [
            ("token", token.as_str()),
            ("client_id", "rs"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ];
        let (status, answer) = introspect(&issuer, &form).await;
        assert_eq!(status, expected, "{case}: {answer}");
    }
    assert_eq!(issuer.last_client_auth(), Some("private_key_jwt"));
}
