//! Property: whatever a client puts in the `Authorization` header, the
//! layer answers with one of the documented responses (RFC 6750 §3):
//!
//! - 401, with no error code when the request carries no bearer
//!   credentials, or with `error="invalid_token"`;
//! - 400 `invalid_request`;
//! - 503 with `Retry-After` (the only 5xx allowed);
//!
//! never a panic, and never 200 unless the header holds a valid token.
//!
//! Inputs: arbitrary bytes (skipped when `http` refuses them as a header
//! value), bytes `http` accepts, `Bearer ` + anything, dot-joined base64url
//! parts, JWT-shaped tokens with generated JSON headers and claims, and
//! one-character edits of a valid token. 512 cases per property by default
//! (`PROPTEST_CASES` overrides).
//!
//! Needs the dev-dependency `proptest = "1"`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::{HeaderValue, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use tokengate::testing::TestIssuer;

/// A test issuer, a default gate on it (discovery, JWKS, every default
/// limit) and the app behind the gate, with a runtime to drive them from
/// proptest's synchronous runner.
struct Fixture {
    rt: tokio::runtime::Runtime,
    issuer: TestIssuer,
    app: Router,
    valid: String,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (issuer, app) = rt.block_on(async {
            let issuer = TestIssuer::start().await.unwrap();
            let app = app(&gate(&issuer).await);
            (issuer, app)
        });
        let valid = issuer.token().scope("items:read").sign();
        let fixture = Fixture {
            rt,
            issuer,
            app,
            valid,
        };
        let answer = fixture.send(fixture.bearer(&fixture.valid).as_bytes());
        assert_eq!(answer.status, StatusCode::OK, "the valid token works");
        fixture
    }

    fn bearer(&self, token: &str) -> String {
        format!("Bearer {token}")
    }

    fn send(&self, authorization: &[u8]) -> Answer {
        self.rt.block_on(send(&self.app, "/me", &[authorization]))
    }

    /// Sends `authorization` and checks the answer is documented; `valid`
    /// says whether a 200 is the right answer.
    fn check(&self, authorization: &[u8], valid: bool) -> Result<(), TestCaseError> {
        let answer = self.send(authorization);
        documented(&answer, authorization, valid)
    }
}

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    TestRunner::new(Config {
        cases,
        // The runner is driven by hand, so there is no source file to put
        // regressions beside; a failure prints the minimal input instead.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Whether the header value names the Bearer scheme followed by a space
/// (RFC 6750 §2.1: `"Bearer" 1*SP b64token`, scheme case-insensitive).
fn names_bearer(value: &[u8]) -> bool {
    value.len() > 6 && value[..6].eq_ignore_ascii_case(b"bearer") && value[6] == b' '
}

fn documented(answer: &Answer, input: &[u8], valid: bool) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&input[..input.len().min(120)]).into_owned();
    let code = answer.error_code();
    match answer.status {
        StatusCode::OK => prop_assert!(valid, "200 for an invalid token: {shown:?}"),
        StatusCode::UNAUTHORIZED => {
            prop_assert!(!valid, "401 for a valid token: {shown:?}");
            let challenge = answer.challenge();
            prop_assert!(
                challenge.is_some_and(|c| c.starts_with("Bearer realm=")),
                "401 without a Bearer challenge: {challenge:?} for {shown:?}"
            );
            prop_assert!(
                matches!(code.as_deref(), None | Some("invalid_token")),
                "401 with error {code:?} for {shown:?}"
            );
            // RFC 6750 §3.1: no credentials for this scheme, no error code;
            // a Bearer credential that fails gets one.
            if !input
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"bearer"))
            {
                prop_assert_eq!(code.as_deref(), None, "other scheme: {:?}", shown);
            }
            if names_bearer(input) {
                prop_assert!(
                    code.is_some(),
                    "a failed Bearer token with no error code: {shown:?}"
                );
            }
        }
        StatusCode::BAD_REQUEST => {
            prop_assert!(!valid, "400 for a valid token: {shown:?}");
            prop_assert_eq!(
                code.as_deref(),
                Some("invalid_request"),
                "400 for {:?}",
                shown
            );
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            prop_assert!(
                answer.headers.contains_key("retry-after"),
                "503 without Retry-After for {shown:?}"
            );
        }
        other => prop_assert!(false, "undocumented status {other} for {shown:?}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Bytes `http` accepts in a header value: tab, visible ASCII and space,
/// and obs-text.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        1 => Just(b'\t'),
        8 => 0x20u8..=0x7e,
        2 => 0x80u8..=0xff,
    ]
}

/// RFC 6750 `b64token` characters, with `=` (allowed only at the end).
fn b64token_char() -> impl Strategy<Value = u8> {
    prop::sample::select(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=".to_vec(),
    )
}

/// "Bearer" in any case, then some spaces or tabs.
fn scheme() -> impl Strategy<Value = String> {
    "[bB][eE][aA][rR][eE][rR][ \t]{0,3}"
}

/// A JSON value of bounded size, for headers and claims.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "none", "None", "HS256", "RS256", "ES256", "EdDSA", "at+jwt", "JWT",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Names JOSE headers and JWT claims use, and a few others.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "alg",
            "kid",
            "typ",
            "crit",
            "jku",
            "jwk",
            "x5u",
            "x5c",
            "iss",
            "aud",
            "exp",
            "nbf",
            "iat",
            "sub",
            "scope",
            "scp",
            "client_id",
            "cnf",
            "jti",
        ])
        .prop_map(str::to_owned),
        "[a-z]{1,6}",
    ]
}

/// A JSON object with at least an `alg`, often one a key could have.
fn jose_header() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop_oneof![
            3 => prop::sample::select(vec!["ES256", "RS256", "EdDSA", "HS256", "none", "NONE"])
                .prop_map(Value::from),
            1 => json_value(),
        ],
        prop::collection::vec((member_name(), json_value()), 0..5),
    )
        .prop_map(|(alg, rest)| {
            let mut header: Map<String, Value> = rest.into_iter().collect();
            header.insert("alg".into(), alg);
            header
        })
}

fn b64_json(value: &impl serde::Serialize) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// `header.claims.signature` from generated JSON and random signature bytes.
fn jwt_shaped() -> impl Strategy<Value = String> {
    (
        jose_header(),
        prop::collection::vec((member_name(), json_value()), 0..8),
        prop::collection::vec(any::<u8>(), 0..96),
    )
        .prop_map(|(header, claims, sig)| {
            let claims: Map<String, Value> = claims.into_iter().collect();
            format!(
                "{}.{}.{}",
                b64_json(&header),
                b64_json(&claims),
                URL_SAFE_NO_PAD.encode(sig)
            )
        })
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[test]
fn arbitrary_bytes_get_a_documented_answer() {
    let fx = Fixture::new();
    let skipped = AtomicUsize::new(0);
    let tried = AtomicUsize::new(0);
    runner()
        .run(&prop::collection::vec(any::<u8>(), 0..16), |bytes| {
            tried.fetch_add(1, Ordering::Relaxed);
            if HeaderValue::from_bytes(&bytes).is_err() {
                skipped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            fx.check(&bytes, false)
        })
        .unwrap();
    let (skipped, tried) = (skipped.into_inner(), tried.into_inner());
    println!("arbitrary bytes: {tried} generated, {skipped} refused by http as header values");
}

#[test]
fn header_value_bytes_get_a_documented_answer() {
    let fx = Fixture::new();
    runner()
        .run(&prop::collection::vec(header_byte(), 0..512), |bytes| {
            prop_assume!(HeaderValue::from_bytes(&bytes).is_ok());
            fx.check(&bytes, false)
        })
        .unwrap();
}

#[test]
fn bearer_and_anything_gets_a_documented_answer() {
    let fx = Fixture::new();
    let strategy = (
        scheme(),
        prop_oneof![
            prop::collection::vec(header_byte(), 0..256),
            prop::collection::vec(b64token_char(), 0..256),
        ],
    );
    runner()
        .run(&strategy, |(scheme, rest)| {
            let value = [scheme.as_bytes(), &rest].concat();
            prop_assume!(HeaderValue::from_bytes(&value).is_ok());
            fx.check(&value, false)
        })
        .unwrap();
}

#[test]
fn dot_joined_base64url_parts_get_a_documented_answer() {
    let fx = Fixture::new();
    let strategy = (scheme(), prop::collection::vec("[A-Za-z0-9_-]{0,48}", 1..7));
    runner()
        .run(&strategy, |(scheme, parts)| {
            let value = format!("{scheme}{}", parts.join("."));
            fx.check(value.as_bytes(), false)
        })
        .unwrap();
}

#[test]
fn jwt_shaped_tokens_with_generated_json_get_a_documented_answer() {
    let fx = Fixture::new();
    runner()
        .run(&jwt_shaped(), |token| {
            fx.check(fx.bearer(&token).as_bytes(), false)
        })
        .unwrap();
}

#[test]
fn a_valid_token_is_accepted_under_any_scheme_casing_and_spacing() {
    let fx = Fixture::new();
    let strategy = ("[bB][eE][aA][rR][eE][rR]", " {1,4}", " {0,3}");
    runner()
        .run(&strategy, |(scheme, before, after)| {
            let value = format!("{scheme}{before}{}{after}", fx.valid);
            fx.check(value.as_bytes(), true)
        })
        .unwrap();
}

/// One edit to a token: replace, insert or delete a character.
#[derive(Debug, Clone)]
enum Edit {
    Replace(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), b64token_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<prop::sample::Index>(), b64token_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
    ]
}

#[test]
fn no_edit_of_a_valid_token_is_accepted() {
    let fx = Fixture::new();
    let exercised = AtomicUsize::new(0);
    runner()
        .run(&prop::collection::vec(edit(), 1..4), |edits| {
            let mut token = fx.valid.clone().into_bytes();
            for edit in edits {
                match edit {
                    Edit::Replace(i, c) => {
                        let i = i.index(token.len());
                        token[i] = c;
                    }
                    Edit::Insert(i, c) => {
                        let i = i.index(token.len() + 1);
                        token.insert(i, c);
                    }
                    Edit::Delete(i) => {
                        if token.len() > 1 {
                            let i = i.index(token.len());
                            token.remove(i);
                        }
                    }
                }
            }
            let unchanged = token == fx.valid.as_bytes();
            if !unchanged {
                exercised.fetch_add(1, Ordering::Relaxed);
            }
            let value = [b"Bearer ".as_slice(), &token].concat();
            fx.check(&value, unchanged)
        })
        .unwrap();
    assert!(exercised.into_inner() > 0);
    // Nothing above needed more than the refresh budget from the issuer.
    assert!(fx.issuer.requests(tokengate::testing::Endpoint::Jwks) <= 3);
}

#[test]
fn two_authorization_headers_are_always_invalid_request() {
    let fx = Fixture::new();
    let value = || {
        prop_oneof![
            prop::collection::vec(header_byte(), 0..64),
            Just(format!("Bearer {}", fx.valid).into_bytes()),
        ]
    };
    runner()
        .run(&(value(), value()), |(first, second)| {
            prop_assume!(HeaderValue::from_bytes(&first).is_ok());
            prop_assume!(HeaderValue::from_bytes(&second).is_ok());
            let answer =
                fx.rt
                    .block_on(send(&fx.app, "/me", &[first.as_slice(), second.as_slice()]));
            let code = answer.error_code();
            prop_assert_eq!(answer.status, StatusCode::BAD_REQUEST);
            prop_assert_eq!(code.as_deref(), Some("invalid_request"));
            Ok(())
        })
        .unwrap();
}
