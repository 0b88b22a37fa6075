//! Signatures and integrity: a token whose signature is missing, or whose
//! signed parts were changed, is refused, even once its original sits in
//! the verified-token cache.

use serde_json::{Value, json};
use tokengate::InvalidToken;

use crate::jose::*;
use crate::target::*;

#[tokio::test]
async fn stripped_signature_is_refused() {
    let t = Target::new().await;
    let (h, c, _) = parts(&t.issuer.token().scope("admin").sign());
    let (emptied, removed) = (format!("{h}.{c}."), format!("{h}.{c}"));
    let label = "signature part emptied (h.c.)";
    t.check(label, &emptied, InvalidToken::Malformed).await;
    let label = "signature part removed (h.c)";
    t.check(label, &removed, InvalidToken::NotAJwt).await;
}

#[tokio::test]
async fn tampered_claims_with_the_original_signature_are_refused() {
    let t = Target::new().await;
    let original = t.issuer.token().scope("items:read").sign();
    // Verified once, so it sits in the verified-token cache.
    t.check("the original token", &original, Expect::Served)
        .await;
    let (h, c, s) = parts(&original);
    // Each change comes on top of the ones before.
    let mut claims = json_part(&c);
    let mut escalate = |name: &str, value: Value| {
        claims[name] = value;
        b64(&serde_json::to_vec(&claims).unwrap())
    };
    let tampered = [
        (
            "scope escalated to admin",
            escalate("scope", json!("items:read admin")),
        ),
        ("sub changed", escalate("sub", json!("root"))),
        (
            "exp extended by a year",
            escalate("exp", json!(now_secs() + 31_536_000)),
        ),
    ];
    // The header is signed too.
    let mut header = json_part(&h);
    header["typ"] = json!("JWT");
    let header = b64(&serde_json::to_vec(&header).unwrap());
    // Another genuine signature from the same key does not fit either.
    let (_, _, other) = parts(&t.issuer.token().sign());
    let mut forged: Vec<_> = tampered
        .into_iter()
        .map(|(label, c)| (label, format!("{h}.{c}.{s}")))
        .collect();
    forged.push(("header typ changed", format!("{header}.{c}.{s}")));
    forged.push((
        "signature of another token (3 parts)",
        format!("{h}.{c}.{other}"),
    ));
    t.check_all(cases_with(InvalidToken::BadSignature, forged))
        .await;
}
