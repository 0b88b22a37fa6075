//! Key selection. RFC 8725 §3.10: the header chooses among the issuer's
//! keys and nothing more; a `kid` naming no key costs at most the refresh
//! budget, and `jku`, `x5u`, `x5c` and embedded `jwk` are never followed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokengate::testing::{Endpoint, TestIssuer};
use tokengate::{Algorithm, InvalidToken};

use crate::common::*;
use crate::target::*;

/// A token of the issuer's own key whose header says `kid: <kid>`.
fn with_kid(t: &Target, kid: impl Into<Value>) -> String {
    t.issuer.token().header("kid", kid).sign()
}

/// Each `(label, kid)` names no key: refused as `UnknownKey`, at no more
/// JWKS fetches than the budget.
async fn unknown_keys<'a>(kids: impl IntoIterator<Item = (String, &'a str)>) -> Target {
    let t = Target::new().await;
    let cases: Vec<Case> = kids
        .into_iter()
        .map(|(label, kid)| case(label, with_kid(&t, kid), InvalidToken::UnknownKey))
        .collect();
    t.check_all(cases).await;
    t.jwks_fetches_bounded();
    t
}

/// `kid {kid:?}` for each.
fn labelled<'a>(kids: &[&'a str]) -> Vec<(String, &'a str)> {
    kids.iter()
        .map(|&kid| (format!("kid {kid:?}"), kid))
        .collect()
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    unknown_keys([("kid unknown".to_owned(), "no-such-key")]).await;
}

#[tokio::test]
async fn empty_kid_is_refused() {
    unknown_keys(labelled(&[""])).await;
}

#[tokio::test]
async fn very_long_kid_is_refused() {
    let kid = "k".repeat(8 * 1024);
    let t = unknown_keys([("kid of 8 KiB".to_owned(), kid.as_str())]).await;
    assert!(
        with_kid(&t, kid).len() < 16 * 1024,
        "within the token limit"
    );
}

#[tokio::test]
async fn path_traversal_kid_is_refused() {
    let t = unknown_keys(labelled(&[
        "../../etc/passwd",
        "../../../../../../dev/null",
        "/proc/self/environ",
        "file:///etc/passwd",
        "..\\..\\windows\\win.ini",
    ]))
    .await;
    assert_eq!(t.issuer.requests(Endpoint::Other), 0);
}

#[tokio::test]
async fn sql_injection_kid_is_refused() {
    unknown_keys(labelled(&[
        "' OR 1=1 --",
        "x' UNION SELECT 'secret' --",
        "\"; DROP TABLE keys; --",
    ]))
    .await;
}

#[tokio::test]
async fn non_string_kid_is_refused() {
    let t = Target::new().await;
    let kids = [json!(42), json!(true), json!(["a"]), json!({"a": 1})];
    let tokens = kids.map(|kid| (format!("kid {kid}"), with_kid(&t, kid)));
    t.check_all(cases_with(InvalidToken::Malformed, tokens))
        .await;
    // An attacker's `kid: null` has no key to succeed with either.
    let attacker = TestIssuer::start().await.unwrap();
    let forged = attacker
        .token()
        .claim("iss", t.issuer.issuer())
        .header("kid", Value::Null)
        .sign();
    let label = "kid null, signed by an attacker's key";
    t.check(label, &forged, Expect::Refused).await;
}

#[tokio::test]
async fn null_kid_is_malformed() {
    // RFC 7515 §4.1.4: `kid` is a string. A header with `"kid": null` is not
    // a valid JOSE header, and should be refused like `"kid": 42`, even when
    // the issuer's key signed it.
    let t = Target::new().await;
    t.check(
        "kid null, signed by the issuer's key",
        &with_kid(&t, Value::Null),
        InvalidToken::Malformed,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_at_most_the_refresh_budget() {
    let t = Target::new().await;
    assert_eq!(t.issuer.requests(Endpoint::Jwks), 1);
    let tokens = (0..300).map(|i| with_kid(&t, format!("flood-{i}")));
    for (i, answer) in flood_me(&t.app, tokens).await.iter().enumerate() {
        Expect::from(InvalidToken::UnknownKey).check(answer, &format!("flood-{i}"));
    }
    let fetches = t.issuer.requests(Endpoint::Jwks);
    println!("ATTACK 300 concurrent unknown kids -> all 401 invalid_token, {fetches} JWKS fetches");
    assert!(fetches <= 3, "1 initial + at most 2, got {fetches}");
    t.still_serves().await;
}

#[tokio::test]
async fn jku_x5u_and_embedded_jwk_are_never_followed() {
    let t = Target::new().await;
    let attacker = TestIssuer::start().await.unwrap();
    let our_kid = t.issuer.signing_kid();
    let attacker_jwk = attacker.jwks()["keys"][0].clone();
    let forge = || {
        attacker
            .token()
            .claim("iss", t.issuer.issuer())
            .scope("admin")
    };
    // An RSA key of the attacker's, embedded, with an algorithm we have no
    // key for.
    let attacker_rsa = attacker.add_key(Algorithm::RS256);
    let rsa_jwk = attacker.jwks()["keys"][1].clone();
    let cases = cases_with(
        Expect::Refused,
        [
            (
                "jku at the attacker, attacker kid",
                forge().header("jku", attacker.jwks_uri()),
            ),
            (
                "jku at the attacker, our kid",
                forge()
                    .header("jku", attacker.jwks_uri())
                    .header("kid", our_kid.clone()),
            ),
            (
                "x5u at the attacker",
                forge().header("x5u", attacker.url("/cert.pem")),
            ),
            (
                "x5c with a made-up certificate",
                forge().header("x5c", json!([STANDARD.encode(b"not a certificate")])),
            ),
            (
                "embedded attacker jwk, no kid",
                forge()
                    .header("jwk", attacker_jwk.clone())
                    .without_header("kid"),
            ),
            (
                "embedded attacker jwk, our kid",
                forge()
                    .header("jwk", attacker_jwk.clone())
                    .header("kid", our_kid.clone()),
            ),
            (
                "embedded attacker jwk, attacker kid, jku too",
                forge()
                    .header("jwk", attacker_jwk.clone())
                    .header("jku", attacker.jwks_uri()),
            ),
            (
                "embedded attacker RSA jwk, RS256, no kid",
                forge()
                    .key(&attacker_rsa)
                    .header("jwk", rsa_jwk)
                    .without_header("kid"),
            ),
        ]
        .map(|(label, token)| (label, token.sign())),
    );
    t.check_all(cases).await;
    for endpoint in [
        Endpoint::Discovery,
        Endpoint::OAuthMetadata,
        Endpoint::Jwks,
        Endpoint::Introspection,
        Endpoint::Other,
    ] {
        assert_eq!(attacker.requests(endpoint), 0, "{endpoint:?}");
    }
    assert_eq!(t.issuer.requests(Endpoint::Other), 0);
    t.jwks_fetches_bounded();
}
