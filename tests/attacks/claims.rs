//! RFC 8725 §3.8–3.9: issuer and audience compared exactly, and claims of
//! the wrong JSON type refused rather than read loosely.

use serde_json::{Value, json};
use tokengate::InvalidToken;
use tokengate::testing::TestIssuer;

use crate::target::*;

fn look_alike_issuers(issuer: &str) -> Vec<Value> {
    let host_port = issuer.strip_prefix("http://").unwrap();
    let port = host_port.rsplit_once(':').unwrap().1;
    vec![
        json!(format!("{issuer}/")),
        json!(format!("HTTP://{host_port}")),
        json!(format!("Http://{host_port}")),
        json!(format!("{issuer}/extra/path")),
        json!(format!("https://{host_port}")),
        json!(format!("http://localhost:{port}")),
        json!(format!("http://user@{host_port}")),
        json!(format!("{issuer}?")),
        json!(format!("{issuer}#")),
        json!(format!(" {issuer}")),
        json!(format!("{issuer}\u{0}")),
        json!(format!("{issuer}.evil.example")),
    ]
}

#[tokio::test]
async fn look_alike_issuers_are_refused() {
    let t = Target::new().await;
    let ours = t.issuer.issuer();
    // Signed by our issuer's key, naming a look-alike.
    let look_alikes = claim_rows(&t.issuer, "our key, ", "iss", look_alike_issuers(&ours));
    t.check_all(cases_with(InvalidToken::WrongIssuer, look_alikes))
        .await;
    let malformed = [
        ("iss as an array", json!([ours])),
        ("iss as a number", json!(1)),
        ("iss null", Value::Null),
    ]
    .map(|(label, iss)| (label, t.issuer.token().claim("iss", iss).sign()));
    t.check_all(cases_with(InvalidToken::MalformedClaim, malformed))
        .await;
    let missing = t.issuer.token().without_claim("iss").sign();
    t.check("iss missing", &missing, InvalidToken::MissingClaim)
        .await;
    // Signed by another issuer, naming ours or a look-alike.
    let other = TestIssuer::start().await.unwrap();
    let names = look_alike_issuers(&ours)
        .into_iter()
        .chain([json!(ours), json!(other.issuer())]);
    let forged = claim_rows(&other, "another issuer's key, ", "iss", names);
    t.check_all(cases_with(Expect::Refused, forged)).await;
    t.jwks_fetches_bounded();
}

#[tokio::test]
async fn wrong_or_missing_audience_is_refused() {
    let t = Target::new().await;
    let ours = t.issuer.audience();
    let wrong = [
        json!("https://other.api.test"),
        json!(format!("{ours}/")),
        json!(ours.to_uppercase()),
        json!(format!("{ours}.evil")),
        json!(format!(" {ours}")),
        json!([]),
        json!(["https://other.api.test"]),
        json!([format!("{ours}/")]),
    ];
    let wrong = claim_rows(&t.issuer, "", "aud", wrong);
    t.check_all(cases_with(InvalidToken::WrongAudience, wrong))
        .await;
    let malformed = [
        json!(1),
        Value::Null,
        json!({"aud": ours}),
        json!([ours, 1]),
        json!([[ours]]),
    ];
    let malformed = claim_rows(&t.issuer, "", "aud", malformed);
    t.check_all(cases_with(InvalidToken::MalformedClaim, malformed))
        .await;
    let missing = t.issuer.token().without_claim("aud").sign();
    t.check("aud missing", &missing, InvalidToken::MissingClaim)
        .await;
}

#[tokio::test]
async fn scope_of_the_wrong_json_type_is_refused() {
    let t = Target::new().await;
    let scopes = [
        json!(42),
        json!({"admin": true}),
        json!([1, 2]),
        json!(["admin"]),
        json!(true),
        json!("items:read \"admin\""),
        json!("admin\u{0}"),
    ];
    let scps = [json!(7), json!([1]), json!(["ok", {"admin": true}])];
    let mut malformed = claim_rows(&t.issuer, "", "scope", scopes);
    malformed.extend(claim_rows(&t.issuer, "", "scp", scps));
    // A malformed `scope` is not rescued by a well-formed `scp`.
    let token = t.issuer.token().claim("scope", 42).claim("scp", "admin");
    malformed.push(("scope 42 with scp \"admin\"".to_owned(), token.sign()));
    t.check_all(cases_with(InvalidToken::MalformedClaim, malformed))
        .await;
}
