//! Any `DPoP` header gets a documented answer: for a bound token presented
//! with the DPoP scheme, whatever the header's bytes (raw, or a compact
//! JWS of random JSON, or a real proof with one member changed), the gate
//! answers 200 only for a proof that is valid, and otherwise 401 with a
//! `DPoP` challenge whose `error_description` is one of the fixed texts of
//! `InvalidDpopProof`, or 400 `invalid_request`; never a 5xx, never a
//! panic, and never the header echoed.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tokengate::testing::{DpopKey, TestIssuer};
use tokengate::{Algorithm, TokenGate};
use tower::ServiceExt;

const URL: &str = "http://api.tokengate.test/items";

/// Every description a refused proof may carry.
const DESCRIPTIONS: [&str; 14] = [
    "the DPoP proof is missing",
    "the DPoP proof is too long",
    "the DPoP proof is malformed",
    "the DPoP proof is not of type dpop+jwt",
    "the DPoP proof's algorithm is not accepted",
    "the DPoP proof's key is not a usable public key",
    "the DPoP proof's signature is invalid",
    "the DPoP proof lacks a required claim",
    "the DPoP proof is for another method",
    "the DPoP proof is for another URL",
    "the DPoP proof is too old or from the future",
    "the DPoP proof is for another access token",
    "the DPoP proof's key is not the one the token is bound to",
    "the DPoP proof was already used",
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    key: DpopKey,
    token: String,
    _issuer: TestIssuer,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let gate = rt
        .block_on(
            TokenGate::builder()
                .issuer(issuer.issuer())
                .audience(issuer.audience())
                .build(),
        )
        .unwrap();
    let app = Router::new()
        .route("/items", get(|| async { "items" }))
        .layer(gate.layer());
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    Fixture {
        rt,
        app,
        key,
        token,
        _issuer: issuer,
    }
}

/// The answer to one request with `proof` as its `DPoP` header (`None`:
/// the bytes cannot be a header value at all); an error when it is not one
/// the documentation allows.
fn check(f: &Fixture, proof: &[u8]) -> Result<Option<StatusCode>, TestCaseError> {
    let Ok(value) = HeaderValue::from_bytes(proof) else {
        return Ok(None);
    };
    let request = Request::get("/items")
        .header("host", "api.tokengate.test")
        .header("authorization", format!("DPoP {}", f.token))
        .header("dpop", value)
        .body(Body::empty())
        .unwrap();
    let response = f.rt.block_on(f.app.clone().oneshot(request)).unwrap();
    let status = response.status();
    let challenges: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    match status {
        StatusCode::OK | StatusCode::BAD_REQUEST => {}
        StatusCode::UNAUTHORIZED => {
            prop_assert_eq!(challenges.len(), 1);
            let c = &challenges[0];
            prop_assert!(c.starts_with("DPoP algs="), "{}", c);
            prop_assert!(c.contains("error=\"invalid_dpop_proof\""), "{}", c);
            prop_assert!(
                DESCRIPTIONS
                    .iter()
                    .any(|d| c.contains(&format!("error_description=\"{d}\""))),
                "{}",
                c
            );
        }
        other => prop_assert!(false, "status {other}"),
    }
    for c in &challenges {
        if proof.len() > 8 {
            let text = String::from_utf8_lossy(proof);
            prop_assert!(!c.contains(&*text), "the proof was echoed");
        }
    }
    Ok(Some(status))
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("typ".to_owned()),
                    Just("alg".to_owned()),
                    Just("jwk".to_owned()),
                    Just("htu".to_owned()),
                    Just("iat".to_owned()),
                    "[a-z]{1,4}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn raw_bytes_get_a_documented_answer() {
    let f = fixture();
    let mut runner = TestRunner::new(Config::with_cases(400));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..300), |bytes| {
            let status = check(&f, &bytes)?;
            prop_assert_ne!(status, Some(StatusCode::OK));
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_jws_shapes_get_a_documented_answer() {
    let f = fixture();
    let mut runner = TestRunner::new(Config::with_cases(400));
    runner
        .run(
            &(json_value(), json_value(), "[A-Za-z0-9_-]{0,90}"),
            |(header, claims, sig)| {
                let proof = format!("{}.{}.{sig}", b64(&header), b64(&claims));
                let status = check(&f, proof.as_bytes())?;
                prop_assert_ne!(status, Some(StatusCode::OK));
                Ok(())
            },
        )
        .unwrap();
}

/// A valid proof with one claim replaced by a random value: accepted only
/// when the value leaves the proof valid (the same `htm` or `htu`, say).
#[test]
fn one_member_changed_gets_a_documented_answer() {
    let f = fixture();
    let mut runner = TestRunner::new(Config::with_cases(300));
    let member = prop_oneof![
        Just("jti"),
        Just("htm"),
        Just("htu"),
        Just("iat"),
        Just("ath"),
        Just("nonce")
    ];
    runner
        .run(&(member, json_value()), |(name, value)| {
            let proof = f
                .key
                .proof("GET", URL)
                .token(&f.token)
                .claim(name, value.clone())
                .sign();
            let status = check(&f, proof.as_bytes())?;
            if status == Some(StatusCode::OK) {
                // Only a change that leaves the proof valid gets in.
                let valid = match name {
                    "nonce" => true,
                    "jti" => value
                        .as_str()
                        .is_some_and(|s| !s.is_empty() && s.len() <= 256),
                    _ => false,
                };
                prop_assert!(valid, "{} = {} was accepted", name, value);
            }
            Ok(())
        })
        .unwrap();
}
