//! Attacks on the resource server, from RFC 8725 §2–3 and the OWASP JWT
//! cheat sheet, one named test each. Every attack goes through the real
//! layer (the axum app of `common`), so what is asserted is what a client
//! sees: the HTTP status, the RFC 6750 error code and, where the reason is
//! the point of the rule, its description. After each attack the service
//! must still answer a valid request with 200.
//!
//! Expected outcomes: 401 `invalid_token` for a bad token, 400
//! `invalid_request` for a request that is not RFC 6750 syntax, 503 with
//! `Retry-After` when the authorization server fails.
//!
//! Run with `-- --nocapture` to see every attack and its observed outcome.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use http::StatusCode;
use serde_json::{Value, json};
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{Algorithm, InvalidToken, TokenGateBuilder};

// ---------------------------------------------------------------------------
// The target and how outcomes are checked
// ---------------------------------------------------------------------------

/// A shared secret for the gates that accept HS256, so a test can sign any
/// bytes it likes and reach the claims parser.
const SHARED_SECRET: &[u8] = b"attack-suite-shared-secret-of-32+bytes";

/// A test issuer, a gate on it and the app behind the gate.
struct Target {
    issuer: TestIssuer,
    app: Router,
    /// The gate verifies HS256 with [`SHARED_SECRET`] instead of the JWKS.
    hmac: bool,
}

impl Target {
    /// The default gate: discovery, the issuer's JWKS, default limits.
    async fn new() -> Self {
        Self::with(|b, _| b).await
    }

    async fn with(
        configure: impl FnOnce(TokenGateBuilder, &TestIssuer) -> TokenGateBuilder,
    ) -> Self {
        let issuer = TestIssuer::start().await.unwrap();
        let gate = configure(builder(&issuer), &issuer).build().await.unwrap();
        let app = app(&gate);
        Target {
            issuer,
            app,
            hmac: false,
        }
    }

    /// A gate that knows only [`SHARED_SECRET`] (HS256): no network at all.
    async fn with_shared_secret(max_token_length: usize) -> Self {
        let issuer = TestIssuer::start().await.unwrap();
        let gate = builder(&issuer)
            .hmac_secret(None, SHARED_SECRET, Algorithm::HS256)
            .max_token_length(max_token_length)
            .build()
            .await
            .unwrap();
        let app = app(&gate);
        Target {
            issuer,
            app,
            hmac: true,
        }
    }

    /// A gate that also introspects opaque tokens, with a short timeout.
    async fn introspecting() -> Self {
        Self::with(|b, _| {
            b.introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
                .timeout(Duration::from_millis(300))
        })
        .await
    }

    /// `GET /me` with `Bearer <token>`, reported under `label`; then the
    /// service must still serve a valid token.
    async fn attack(&self, label: &str, token: &str) -> Answer {
        let answer = me(&self.app, token).await;
        report(label, &answer);
        self.still_serves().await;
        answer
    }

    /// `GET /me` with this exact `Authorization` value; then the service
    /// must still serve a valid token.
    async fn attack_raw(&self, label: &str, authorization: &[u8]) -> Answer {
        let answer = send(&self.app, "/me", &[authorization]).await;
        report(label, &answer);
        self.still_serves().await;
        answer
    }

    /// A valid token for this gate.
    fn valid_token(&self) -> String {
        if self.hmac {
            self.issuer
                .token()
                .header("alg", "HS256")
                .without_header("kid")
                .sign_with_secret(SHARED_SECRET)
        } else {
            self.issuer.token().scope("items:read").sign()
        }
    }

    /// The service still answers a valid request with 200.
    async fn still_serves(&self) {
        let answer = me(&self.app, &self.valid_token()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "a valid token after the attack: {:?}",
            answer.challenge()
        );
    }

    /// Unplanned JWKS fetches stayed within the budget: the initial fetch
    /// plus at most two for unknown `kid`s (default 2 per 30 s).
    fn jwks_fetches_bounded(&self) {
        let fetches = self.issuer.requests(Endpoint::Jwks);
        assert!(fetches <= 3, "{fetches} JWKS fetches");
    }
}

fn report(label: &str, answer: &Answer) {
    println!(
        "ATTACK {label:<64} -> {} {} {}",
        answer.status.as_u16(),
        answer.error_code().as_deref().unwrap_or("-"),
        description(answer)
            .map(|d| format!("({d})"))
            .unwrap_or_default()
    );
}

/// The `error_description` of the challenge.
fn description(answer: &Answer) -> Option<String> {
    let c = answer.challenge()?;
    let start = c.find("error_description=\"")? + "error_description=\"".len();
    let end = c[start..].find('"')? + start;
    Some(c[start..end].to_owned())
}

/// 401 `invalid_token`, for `reason` when given.
#[track_caller]
fn refused(answer: &Answer, reason: Option<InvalidToken>, what: &str) {
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "{what}: {:?}",
        answer.challenge()
    );
    if let Some(reason) = reason {
        assert_eq!(
            description(answer).as_deref(),
            Some(reason.text()),
            "{what}"
        );
    }
}

/// 400 `invalid_request`.
#[track_caller]
fn bad_request(answer: &Answer, what: &str) {
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{what}: {:?}",
        answer.challenge()
    );
}

/// 503 with `Retry-After`.
#[track_caller]
fn unavailable(answer: &Answer, what: &str) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {:?}",
        answer.challenge()
    );
    assert_eq!(
        answer.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..]),
        "{what}: Retry-After"
    );
}

// ---------------------------------------------------------------------------
// Token surgery
// ---------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

/// The three parts of a compact JWS.
fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    assert!(it.next().is_none());
    (h.to_owned(), c.to_owned(), s.to_owned())
}

fn json_part(part: &str) -> Value {
    serde_json::from_slice(&unb64(part)).unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// HS256 over exactly these header and payload bytes.
fn hs256(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, SHARED_SECRET),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Claims a [`Target::with_shared_secret`] gate accepts, as JSON text
/// without the closing brace, so a test can append raw members.
fn valid_claims_prefix(t: &Target) -> String {
    format!(
        r#"{{"iss":{},"aud":{},"sub":"mallory","exp":{}"#,
        json!(t.issuer.issuer()),
        json!(t.issuer.audience()),
        now_secs() + 300
    )
}

// DER, just enough to write public keys the way servers store them.

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let mut v = Vec::new();
    if bytes.get(start).is_none_or(|&b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(&bytes[start..]);
    der(0x02, &v)
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    der(0x30, &[der(0x30, algorithm), der(0x03, &bits)].concat())
}

fn pem(label: &str, der: &[u8], trailing_newline: bool) -> Vec<u8> {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let mut out = format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        lines.join("\n")
    );
    if trailing_newline {
        out.push('\n');
    }
    out.into_bytes()
}

/// Every form of a published public key that an HMAC-confusion attacker
/// might guess the server uses as "the key": the JWK as published, its
/// RFC 7638 canonical form, SubjectPublicKeyInfo DER and PEM (with and
/// without the final newline), PKCS#1 for RSA, and the raw key bytes.
fn public_key_forms(jwk: &Value) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![(
        "JWK JSON as published".to_owned(),
        serde_json::to_vec(jwk).unwrap(),
    )];
    let field = |name: &str| unb64(jwk[name].as_str().unwrap());
    match jwk["kty"].as_str().unwrap() {
        "RSA" => {
            let (n, e) = (field("n"), field("e"));
            let canonical = format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk["e"].as_str().unwrap(),
                jwk["n"].as_str().unwrap()
            );
            let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
            // rsaEncryption, NULL parameters.
            let rsa_oid = [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
            ];
            let spki = spki(&rsa_oid, &pkcs1);
            assert!(
                aws_lc_rs::signature::ParsedPublicKey::new(
                    &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                    &spki
                )
                .is_ok(),
                "the SPKI we wrote is a real RSA public key"
            );
            forms.push(("JWK RFC 7638 canonical JSON".into(), canonical.into_bytes()));
            forms.push(("SPKI DER".into(), spki.clone()));
            forms.push(("SPKI PEM".into(), pem("PUBLIC KEY", &spki, false)));
            forms.push(("SPKI PEM + newline".into(), pem("PUBLIC KEY", &spki, true)));
            forms.push(("PKCS#1 DER".into(), pkcs1.clone()));
            forms.push((
                "PKCS#1 PEM + newline".into(),
                pem("RSA PUBLIC KEY", &pkcs1, true),
            ));
            forms.push(("modulus bytes".into(), n));
        }
        "EC" => {
            let point = [vec![4], field("x"), field("y")].concat();
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap()
            );
            // id-ecPublicKey, prime256v1.
            let ec_oid = [
                0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                0xce, 0x3d, 0x03, 0x01, 0x07,
            ];
            let spki = spki(&ec_oid, &point);
            assert!(
                aws_lc_rs::signature::ParsedPublicKey::new(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                    &spki
                )
                .is_ok(),
                "the SPKI we wrote is a real P-256 public key"
            );
            forms.push(("JWK RFC 7638 canonical JSON".into(), canonical.into_bytes()));
            forms.push(("SPKI DER".into(), spki.clone()));
            forms.push(("SPKI PEM".into(), pem("PUBLIC KEY", &spki, false)));
            forms.push(("SPKI PEM + newline".into(), pem("PUBLIC KEY", &spki, true)));
            forms.push(("uncompressed point".into(), point));
        }
        other => panic!("unexpected kty {other}"),
    }
    forms
}

/// Runs `attack` with a token made for the current second, again if the
/// clock ticked before the answer came back, so `now ± n` is exact.
async fn at_this_second(t: &Target, label: &str, make: impl Fn(u64) -> String) -> Answer {
    for _ in 0..10 {
        let now = now_secs();
        let token = make(now);
        let answer = me(&t.app, &token).await;
        if now_secs() == now {
            report(label, &answer);
            t.still_serves().await;
            return answer;
        }
    }
    panic!("{label}: the clock ticked during every attempt");
}

// ---------------------------------------------------------------------------
// RFC 8725 §2.1, §3.1: algorithm confusion
// ---------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_in_every_casing_is_refused() {
    let t = Target::new().await;
    let (_, _, real_signature) = parts(&t.issuer.token().sign());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let empty = t.issuer.token().header("alg", alg).with_signature(b"");
        let answer = t
            .attack(&format!("alg {alg:?}, empty signature"), &empty)
            .await;
        refused(&answer, Some(InvalidToken::Malformed), alg);

        let junk = t.issuer.token().header("alg", alg).with_signature(b"x");
        let answer = t
            .attack(&format!("alg {alg:?}, junk signature"), &junk)
            .await;
        refused(&answer, Some(InvalidToken::UnsupportedAlgorithm), alg);

        let no_kid = t
            .issuer
            .token()
            .header("alg", alg)
            .without_header("kid")
            .with_signature(b"x");
        let answer = t
            .attack(&format!("alg {alg:?}, no kid, junk signature"), &no_kid)
            .await;
        refused(&answer, Some(InvalidToken::UnsupportedAlgorithm), alg);

        let borrowed = t.issuer.token().header("alg", alg).with_signature(b"");
        let borrowed = format!("{borrowed}{real_signature}");
        let answer = t
            .attack(
                &format!("alg {alg:?}, a real signature of another token"),
                &borrowed,
            )
            .await;
        refused(&answer, Some(InvalidToken::UnsupportedAlgorithm), alg);
    }
    t.still_serves().await;
}

#[tokio::test]
async fn hmac_signed_with_the_issuers_public_key_is_refused() {
    let t = Target::new().await;
    let rsa_kid = t.issuer.add_key(Algorithm::RS256);
    let jwks = t.issuer.jwks();
    // The gate learns the RSA key now, so the attacks below need no refresh.
    let warm = t.issuer.token().key(&rsa_kid).sign();
    assert_eq!(
        t.attack("warm-up with the RSA key", &warm).await.status,
        200
    );

    for jwk in jwks["keys"].as_array().unwrap() {
        let kid = jwk["kid"].as_str().unwrap();
        for (form, secret) in public_key_forms(jwk) {
            for alg in ["HS256", "HS384", "HS512"] {
                let token = t
                    .issuer
                    .token()
                    .key(kid)
                    .header("alg", alg)
                    .scope("admin")
                    .sign_with_secret(&secret);
                let label = format!("{alg} with {} public key: {form}", jwk["kty"]);
                refused(&t.attack(&label, &token).await, None, &label);
            }
        }
    }
    // Without a kid the gate cannot even pick a key.
    let secret = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let token = t
        .issuer
        .token()
        .header("alg", "HS256")
        .without_header("kid")
        .sign_with_secret(&secret);
    refused(
        &t.attack("HS256 with the EC JWK, no kid", &token).await,
        None,
        "no kid",
    );
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn hmac_with_the_public_key_is_refused_when_a_shared_secret_is_configured() {
    // Here HS256 *is* an accepted algorithm, so only the key binding stops
    // a public key from serving as the HMAC secret.
    let t = Target::with(|b, issuer| {
        b.hmac_secret(None, SHARED_SECRET, Algorithm::HS256)
            .jwks_uri(issuer.jwks_uri())
    })
    .await;
    let rsa_kid = t.issuer.add_key(Algorithm::RS256);
    let warm = t.issuer.token().key(&rsa_kid).sign();
    assert_eq!(
        t.attack("warm-up with the RSA key", &warm).await.status,
        200
    );
    let jwks = t.issuer.jwks();
    for jwk in jwks["keys"].as_array().unwrap() {
        let kid = jwk["kid"].as_str().unwrap();
        for (form, secret) in public_key_forms(jwk) {
            let with_kid = t
                .issuer
                .token()
                .key(kid)
                .header("alg", "HS256")
                .sign_with_secret(&secret);
            let label = format!("HS256 (secret configured), {} key, kid: {form}", jwk["kty"]);
            refused(
                &t.attack(&label, &with_kid).await,
                Some(InvalidToken::AlgorithmMismatch),
                &label,
            );
            let without_kid = t
                .issuer
                .token()
                .header("alg", "HS256")
                .without_header("kid")
                .sign_with_secret(&secret);
            let label = format!(
                "HS256 (secret configured), {} key, no kid: {form}",
                jwk["kty"]
            );
            refused(
                &t.attack(&label, &without_kid).await,
                Some(InvalidToken::BadSignature),
                &label,
            );
        }
    }
    t.still_serves().await;
}

#[tokio::test]
async fn all_zero_ecdsa_signature_is_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 verified everything
    // in some ECDSA implementations.
    let t = Target::new().await;
    let token = t.issuer.token().scope("admin").with_signature(&[0u8; 64]);
    refused(
        &t.attack("ES256 with r = s = 0", &token).await,
        Some(InvalidToken::BadSignature),
        "r = s = 0",
    );
    t.still_serves().await;
}

#[tokio::test]
async fn der_encoded_ecdsa_signature_is_refused() {
    // RFC 7518 §3.4: an ES256 signature is R || S, 64 bytes. The same
    // signature in ASN.1 DER is not a JWS signature.
    let t = Target::new().await;
    let (h, c, s) = parts(&t.issuer.token().sign());
    let raw = unb64(&s);
    let der_sig = der(0x30, &[der_uint(&raw[..32]), der_uint(&raw[32..])].concat());
    let token = format!("{h}.{c}.{}", b64(&der_sig));
    refused(
        &t.attack("ES256 signature re-encoded as DER", &token).await,
        Some(InvalidToken::BadSignature),
        "DER",
    );
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// Signatures and integrity
// ---------------------------------------------------------------------------

#[tokio::test]
async fn stripped_signature_is_refused() {
    let t = Target::new().await;
    let (h, c, _) = parts(&t.issuer.token().scope("admin").sign());
    refused(
        &t.attack("signature part emptied (h.c.)", &format!("{h}.{c}."))
            .await,
        Some(InvalidToken::Malformed),
        "h.c.",
    );
    refused(
        &t.attack("signature part removed (h.c)", &format!("{h}.{c}"))
            .await,
        Some(InvalidToken::NotAJwt),
        "h.c",
    );
    t.still_serves().await;
}

#[tokio::test]
async fn tampered_claims_with_the_original_signature_are_refused() {
    let t = Target::new().await;
    let original = t.issuer.token().scope("items:read").sign();
    // Verified once, so it sits in the verified-token cache.
    assert_eq!(t.attack("the original token", &original).await.status, 200);
    let (h, c, s) = parts(&original);
    let mut claims = json_part(&c);

    let mut escalate = |name: &str, value: Value| {
        claims[name] = value;
        b64(&serde_json::to_vec(&claims).unwrap())
    };
    for (label, tampered) in [
        (
            "scope escalated to admin",
            escalate("scope", json!("items:read admin")),
        ),
        ("sub changed", escalate("sub", json!("root"))),
        (
            "exp extended by a year",
            escalate("exp", json!(now_secs() + 31_536_000)),
        ),
    ] {
        let token = format!("{h}.{tampered}.{s}");
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::BadSignature),
            label,
        );
    }
    // The header is signed too.
    let mut header = json_part(&h);
    header["typ"] = json!("JWT");
    let token = format!("{}.{c}.{s}", b64(&serde_json::to_vec(&header).unwrap()));
    refused(
        &t.attack("header typ changed", &token).await,
        Some(InvalidToken::BadSignature),
        "header",
    );
    // Another genuine signature from the same key does not fit either.
    let (_, _, other) = parts(&t.issuer.token().sign());
    refused(
        &t.attack(
            "signature of another token (3 parts)",
            &format!("{h}.{c}.{other}"),
        )
        .await,
        Some(InvalidToken::BadSignature),
        "spliced",
    );
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// kid: RFC 8725 §3.10 (do not trust what the header says beyond key choice)
// ---------------------------------------------------------------------------

async fn kid_attack(t: &Target, label: &str, kid: Value) -> Answer {
    let token = t.issuer.token().header("kid", kid).sign();
    t.attack(label, &token).await
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let t = Target::new().await;
    let answer = kid_attack(&t, "kid unknown", json!("no-such-key")).await;
    refused(&answer, Some(InvalidToken::UnknownKey), "unknown");
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn empty_kid_is_refused() {
    let t = Target::new().await;
    let answer = kid_attack(&t, "kid \"\"", json!("")).await;
    refused(&answer, Some(InvalidToken::UnknownKey), "empty");
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn very_long_kid_is_refused() {
    let t = Target::new().await;
    let kid = "k".repeat(8 * 1024);
    let token = t.issuer.token().header("kid", kid).sign();
    assert!(token.len() < 16 * 1024, "within the token limit");
    let answer = t.attack("kid of 8 KiB", &token).await;
    refused(&answer, Some(InvalidToken::UnknownKey), "8 KiB kid");
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn path_traversal_kid_is_refused() {
    let t = Target::new().await;
    for kid in [
        "../../etc/passwd",
        "../../../../../../dev/null",
        "/proc/self/environ",
        "file:///etc/passwd",
        "..\\..\\windows\\win.ini",
    ] {
        let answer = kid_attack(&t, &format!("kid {kid:?}"), json!(kid)).await;
        refused(&answer, Some(InvalidToken::UnknownKey), kid);
    }
    t.jwks_fetches_bounded();
    assert_eq!(t.issuer.requests(Endpoint::Other), 0);
    t.still_serves().await;
}

#[tokio::test]
async fn sql_injection_kid_is_refused() {
    let t = Target::new().await;
    for kid in [
        "' OR 1=1 --",
        "x' UNION SELECT 'secret' --",
        "\"; DROP TABLE keys; --",
    ] {
        let answer = kid_attack(&t, &format!("kid {kid:?}"), json!(kid)).await;
        refused(&answer, Some(InvalidToken::UnknownKey), kid);
    }
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn non_string_kid_is_refused() {
    let t = Target::new().await;
    for kid in [json!(42), json!(true), json!(["a"]), json!({"a": 1})] {
        let answer = kid_attack(&t, &format!("kid {kid}"), kid.clone()).await;
        refused(&answer, Some(InvalidToken::Malformed), &kid.to_string());
    }
    // An attacker's `kid: null` has no key to succeed with either.
    let attacker = TestIssuer::start().await.unwrap();
    let forged = attacker
        .token()
        .claim("iss", t.issuer.issuer())
        .header("kid", Value::Null)
        .sign();
    refused(
        &t.attack("kid null, signed by an attacker's key", &forged)
            .await,
        None,
        "null",
    );
    t.still_serves().await;
}

#[tokio::test]
async fn null_kid_is_malformed() {
    // RFC 7515 §4.1.4: `kid` is a string. A header with `"kid": null` is not
    // a valid JOSE header, and should be refused like `"kid": 42`, even when
    // the issuer's key signed it.
    let t = Target::new().await;
    let answer = kid_attack(&t, "kid null, signed by the issuer's key", Value::Null).await;
    refused(&answer, Some(InvalidToken::Malformed), "null");
    t.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_at_most_the_refresh_budget() {
    let t = Target::new().await;
    assert_eq!(t.issuer.requests(Endpoint::Jwks), 1);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let token = t.issuer.token().header("kid", format!("flood-{i}")).sign();
            let app = t.app.clone();
            tokio::spawn(async move { me(&app, &token).await })
        })
        .collect();
    for task in tasks {
        refused(
            &task.await.unwrap(),
            Some(InvalidToken::UnknownKey),
            "flood",
        );
    }
    let fetches = t.issuer.requests(Endpoint::Jwks);
    println!("ATTACK 300 concurrent unknown kids -> all 401 invalid_token, {fetches} JWKS fetches");
    assert!(fetches <= 3, "1 initial + at most 2, got {fetches}");
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// RFC 8725 §3.10 / OWASP: headers that name keys are never followed
// ---------------------------------------------------------------------------

#[tokio::test]
async fn jku_x5u_and_embedded_jwk_are_never_followed() {
    let t = Target::new().await;
    let attacker = TestIssuer::start().await.unwrap();
    let attacker_kid = attacker.signing_kid();
    let our_kid = t.issuer.signing_kid();
    let attacker_jwk = attacker.jwks()["keys"][0].clone();
    let forge = || {
        attacker
            .token()
            .claim("iss", t.issuer.issuer())
            .scope("admin")
    };
    let cases = [
        (
            "jku at the attacker, attacker kid",
            forge().header("jku", attacker.jwks_uri()).sign(),
        ),
        (
            "jku at the attacker, our kid",
            forge()
                .header("jku", attacker.jwks_uri())
                .header("kid", our_kid.clone())
                .sign(),
        ),
        (
            "x5u at the attacker",
            forge().header("x5u", attacker.url("/cert.pem")).sign(),
        ),
        (
            "x5c with a made-up certificate",
            forge()
                .header("x5c", json!([STANDARD.encode(b"not a certificate")]))
                .sign(),
        ),
        (
            "embedded attacker jwk, no kid",
            forge()
                .header("jwk", attacker_jwk.clone())
                .without_header("kid")
                .sign(),
        ),
        (
            "embedded attacker jwk, our kid",
            forge()
                .header("jwk", attacker_jwk.clone())
                .header("kid", our_kid.clone())
                .sign(),
        ),
        (
            "embedded attacker jwk, attacker kid, jku too",
            forge()
                .header("jwk", attacker_jwk.clone())
                .header("jku", attacker.jwks_uri())
                .sign(),
        ),
    ];
    for (label, token) in cases {
        refused(&t.attack(label, &token).await, None, label);
    }
    // An RSA key of the attacker's, embedded, with an algorithm we have no
    // key for.
    let attacker_rsa = attacker.add_key(Algorithm::RS256);
    let rsa_jwk = attacker.jwks()["keys"][1].clone();
    let token = forge()
        .key(&attacker_rsa)
        .header("jwk", rsa_jwk)
        .without_header("kid")
        .sign();
    refused(
        &t.attack("embedded attacker RSA jwk, RS256, no kid", &token)
            .await,
        None,
        "rsa",
    );
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
    t.still_serves().await;
    let _ = attacker_kid;
}

// ---------------------------------------------------------------------------
// Header parameters: crit, typ
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_crit_is_refused() {
    let t = Target::new().await;
    let cases = [
        (
            "crit names an unknown extension",
            t.issuer
                .token()
                .header("crit", json!(["https://example.com/ext"]))
                .header("https://example.com/ext", true)
                .sign(),
        ),
        (
            "crit names an absent extension",
            t.issuer.token().header("crit", json!(["nope"])).sign(),
        ),
        (
            "crit b64=false (RFC 7797)",
            t.issuer
                .token()
                .header("crit", json!(["b64"]))
                .header("b64", false)
                .sign(),
        ),
        (
            "crit empty list",
            t.issuer.token().header("crit", json!([])).sign(),
        ),
        (
            "crit not a list",
            t.issuer.token().header("crit", json!("exp")).sign(),
        ),
    ];
    for (label, token) in cases {
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::UnsupportedCritical),
            label,
        );
    }
    t.still_serves().await;
}

#[tokio::test]
async fn wrong_typ_is_refused_in_strict_mode() {
    let t = Target::with(|b, _| b.strict_rfc9068(true)).await;
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("dpop+jwt"),
        json!("id_token+jwt"),
        json!("at+jwt "),
        json!(""),
    ] {
        let token = t.issuer.token().header("typ", typ.clone()).sign();
        let label = format!("strict mode, typ {typ}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::WrongType),
            &label,
        );
    }
    let token = t.issuer.token().without_header("typ").sign();
    refused(
        &t.attack("strict mode, no typ", &token).await,
        Some(InvalidToken::WrongType),
        "no typ",
    );
    let token = t.issuer.token().header("typ", 9068).sign();
    refused(
        &t.attack("strict mode, typ 9068 (a number)", &token).await,
        Some(InvalidToken::Malformed),
        "typ number",
    );
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// RFC 8725 §3.8–3.9: issuer and audience
// ---------------------------------------------------------------------------

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
    for iss in look_alike_issuers(&ours) {
        let token = t.issuer.token().claim("iss", iss.clone()).sign();
        let label = format!("our key, iss {iss}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::WrongIssuer),
            &label,
        );
    }
    for (label, iss) in [
        ("iss as an array", json!([ours])),
        ("iss as a number", json!(1)),
        ("iss null", Value::Null),
    ] {
        let token = t.issuer.token().claim("iss", iss).sign();
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::MalformedClaim),
            label,
        );
    }
    let token = t.issuer.token().without_claim("iss").sign();
    refused(
        &t.attack("iss missing", &token).await,
        Some(InvalidToken::MissingClaim),
        "missing",
    );
    // Signed by another issuer, naming ours or a look-alike.
    let other = TestIssuer::start().await.unwrap();
    let mut names = look_alike_issuers(&ours);
    names.push(json!(ours));
    names.push(json!(other.issuer()));
    for iss in names {
        let token = other.token().claim("iss", iss.clone()).sign();
        let label = format!("another issuer's key, iss {iss}");
        refused(&t.attack(&label, &token).await, None, &label);
    }
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn wrong_or_missing_audience_is_refused() {
    let t = Target::new().await;
    let ours = t.issuer.audience();
    for aud in [
        json!("https://other.api.test"),
        json!(format!("{ours}/")),
        json!(ours.to_uppercase()),
        json!(format!("{ours}.evil")),
        json!(format!(" {ours}")),
        json!([]),
        json!(["https://other.api.test"]),
        json!([format!("{ours}/")]),
    ] {
        let token = t.issuer.token().claim("aud", aud.clone()).sign();
        let label = format!("aud {aud}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::WrongAudience),
            &label,
        );
    }
    for aud in [
        json!(1),
        Value::Null,
        json!({"aud": ours}),
        json!([ours, 1]),
        json!([[ours]]),
    ] {
        let token = t.issuer.token().claim("aud", aud.clone()).sign();
        let label = format!("aud {aud}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::MalformedClaim),
            &label,
        );
    }
    let token = t.issuer.token().without_claim("aud").sign();
    refused(
        &t.attack("aud missing", &token).await,
        Some(InvalidToken::MissingClaim),
        "missing",
    );
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// Time claims, default leeway 60 s
// ---------------------------------------------------------------------------

#[tokio::test]
async fn exp_at_and_around_the_leeway_boundary() {
    let t = Target::new().await;
    let exp = |offset: i64| {
        let issuer = &t.issuer;
        move |now: u64| {
            issuer
                .token()
                .claim("exp", (now as i64 + offset) as u64)
                .claim("iat", now - 600)
                .sign()
        }
    };
    // Valid while now < exp + leeway (RFC 7519 §4.1.4).
    let answer = at_this_second(&t, "exp = now - 61", exp(-61)).await;
    refused(&answer, Some(InvalidToken::Expired), "now - 61");
    let answer = at_this_second(&t, "exp = now - 60 (boundary)", exp(-60)).await;
    refused(&answer, Some(InvalidToken::Expired), "now - 60");
    let answer = at_this_second(&t, "exp = now - 59", exp(-59)).await;
    assert_eq!(answer.status, StatusCode::OK, "now - 59");
    let answer = at_this_second(&t, "exp = now", exp(0)).await;
    assert_eq!(answer.status, StatusCode::OK, "now");
    t.still_serves().await;
}

#[tokio::test]
async fn nbf_at_and_around_the_leeway_boundary() {
    let t = Target::new().await;
    let nbf = |offset: u64| {
        let issuer = &t.issuer;
        move |now: u64| issuer.token().claim("nbf", now + offset).sign()
    };
    // Valid once now + leeway >= nbf (RFC 7519 §4.1.5).
    let answer = at_this_second(&t, "nbf = now + 59", nbf(59)).await;
    assert_eq!(answer.status, StatusCode::OK, "now + 59");
    let answer = at_this_second(&t, "nbf = now + 60 (boundary)", nbf(60)).await;
    assert_eq!(answer.status, StatusCode::OK, "now + 60");
    let answer = at_this_second(&t, "nbf = now + 61", nbf(61)).await;
    refused(&answer, Some(InvalidToken::NotYetValid), "now + 61");
    t.still_serves().await;
}

#[tokio::test]
async fn iat_at_and_around_the_leeway_boundary() {
    let t = Target::new().await;
    let iat = |offset: u64| {
        let issuer = &t.issuer;
        move |now: u64| issuer.token().claim("iat", now + offset).sign()
    };
    let answer = at_this_second(&t, "iat = now + 59", iat(59)).await;
    assert_eq!(answer.status, StatusCode::OK, "now + 59");
    let answer = at_this_second(&t, "iat = now + 60 (boundary)", iat(60)).await;
    assert_eq!(answer.status, StatusCode::OK, "now + 60");
    let answer = at_this_second(&t, "iat = now + 61", iat(61)).await;
    refused(&answer, Some(InvalidToken::IssuedInFuture), "now + 61");
    t.still_serves().await;
}

#[tokio::test]
async fn exp_of_the_wrong_type_or_out_of_range_is_refused() {
    let t = Target::new().await;
    let now = now_secs();
    let malformed = [
        json!((now + 300).to_string()),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(-0.5),
        json!(253_402_300_800u64), // 10000-01-01: past the NumericDate range we accept
        json!(true),
        Value::Null,
        json!([now + 300]),
        json!({"exp": now + 300}),
    ];
    for exp in malformed {
        let token = t.issuer.token().claim("exp", exp.clone()).sign();
        let label = format!("exp {exp}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::MalformedClaim),
            &label,
        );
    }
    for (exp, reason) in [
        (json!(0), InvalidToken::Expired),
        (json!(now as f64 - 120.5), InvalidToken::Expired),
        (json!(1e-300), InvalidToken::Expired),
    ] {
        let token = t.issuer.token().claim("exp", exp.clone()).sign();
        let label = format!("exp {exp}");
        refused(&t.attack(&label, &token).await, Some(reason), &label);
    }
    // RFC 7519 §2: a NumericDate may be fractional; a fraction in the
    // future is valid.
    let token = t.issuer.token().claim("exp", now as f64 + 300.5).sign();
    let answer = t.attack("exp now + 300.5 (float, future)", &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    for (name, value) in [
        ("nbf", json!("0")),
        ("nbf", json!(-1)),
        ("nbf", json!(1e308)),
        ("iat", json!(u64::MAX)),
        ("iat", json!("now")),
    ] {
        let token = t.issuer.token().claim(name, value.clone()).sign();
        let label = format!("{name} {value}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::MalformedClaim),
            &label,
        );
    }
    t.still_serves().await;
}

#[tokio::test]
async fn far_future_exp_at_the_range_limit_does_not_break_the_caches() {
    // 9999-12-31T23:59:59Z, the largest exp accepted: the verified-token
    // cache keeps it "until exp", thousands of years away.
    let t = Target::new().await;
    let token = t.issuer.token().claim("exp", 253_402_300_799u64).sign();
    for round in 0..2 {
        let answer = t
            .attack(&format!("exp 9999-12-31T23:59:59Z, round {round}"), &token)
            .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// Claims of the wrong JSON type
// ---------------------------------------------------------------------------

#[tokio::test]
async fn scope_of_the_wrong_json_type_is_refused() {
    let t = Target::new().await;
    let cases = [
        ("scope", json!(42)),
        ("scope", json!({"admin": true})),
        ("scope", json!([1, 2])),
        ("scope", json!(["admin"])),
        ("scope", json!(true)),
        ("scope", json!("items:read \"admin\"")),
        ("scope", json!("admin\u{0}")),
        ("scp", json!(7)),
        ("scp", json!([1])),
        ("scp", json!(["ok", {"admin": true}])),
    ];
    for (name, value) in cases {
        let token = t.issuer.token().claim(name, value.clone()).sign();
        let label = format!("{name} {value}");
        refused(
            &t.attack(&label, &token).await,
            Some(InvalidToken::MalformedClaim),
            &label,
        );
    }
    // A malformed `scope` is not rescued by a well-formed `scp`.
    let token = t
        .issuer
        .token()
        .claim("scope", json!(42))
        .claim("scp", "admin")
        .sign();
    refused(
        &t.attack("scope 42 with scp \"admin\"", &token).await,
        Some(InvalidToken::MalformedClaim),
        "scope+scp",
    );
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// Encoding and shape (RFC 7515 §3.1, §7.1; RFC 6750 §2.1 b64token)
// ---------------------------------------------------------------------------

/// `part` with the character at `index` replaced by `c`.
fn with_char(part: &str, index: usize, c: char) -> String {
    let mut s: Vec<char> = part.chars().collect();
    s[index] = c;
    s.into_iter().collect()
}

/// A base64url string of the same decoded bytes but with the unused low
/// bits of the last character set: a non-canonical encoding.
fn non_canonical(part: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match part.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *part.as_bytes().last()?;
    let value = ALPHABET.iter().position(|&b| b == last)?;
    let changed = value | ((1 << unused_bits) - 1);
    if changed == value {
        return None;
    }
    let mut s = part[..part.len() - 1].to_owned();
    s.push(ALPHABET[changed] as char);
    Some(s)
}

#[tokio::test]
async fn invalid_base64url_in_each_part_is_refused() {
    let t = Target::new().await;
    let (h, c, s) = parts(&t.issuer.token().sign());
    // Characters b64token allows but base64url does not: the token is
    // well-formed for RFC 6750, malformed for RFC 7515.
    for (label, token) in [
        (
            "header with '+'",
            format!("{}.{c}.{s}", with_char(&h, 3, '+')),
        ),
        (
            "header with '/'",
            format!("{}.{c}.{s}", with_char(&h, 3, '/')),
        ),
        (
            "header with '~'",
            format!("{}.{c}.{s}", with_char(&h, 3, '~')),
        ),
        (
            "header of impossible length",
            format!("{}.{c}.{s}", impossible_length(&h)),
        ),
        (
            "signature with '+'",
            format!("{h}.{c}.{}", with_char(&s, 3, '+')),
        ),
        (
            "signature with '/'",
            format!("{h}.{c}.{}", with_char(&s, 3, '/')),
        ),
        ("signature padded with '=='", format!("{h}.{c}.{s}==")),
        (
            "signature of impossible length",
            format!("{h}.{c}.{}", impossible_length(&s)),
        ),
    ] {
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    // The payload is covered by the signature, so any change to its text
    // fails there first.
    for (label, token) in [
        (
            "payload with '+'",
            format!("{h}.{}.{s}", with_char(&c, 3, '+')),
        ),
        (
            "payload with '~'",
            format!("{h}.{}.{s}", with_char(&c, 3, '~')),
        ),
        (
            "payload of impossible length",
            format!("{h}.{}.{s}", impossible_length(&c)),
        ),
    ] {
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::BadSignature),
            label,
        );
    }
    // Non-canonical base64url: same bytes, different text.
    if let Some(sig) = non_canonical(&s) {
        assert_eq!(unb64_lenient(&sig), unb64(&s));
        refused(
            &t.attack(
                "signature base64url non-canonical (same bytes)",
                &format!("{h}.{c}.{sig}"),
            )
            .await,
            Some(InvalidToken::Malformed),
            "non-canonical signature",
        );
    }
    if let Some(header) = non_canonical(&h) {
        refused(
            &t.attack(
                "header base64url non-canonical (same bytes)",
                &format!("{header}.{c}.{s}"),
            )
            .await,
            Some(InvalidToken::Malformed),
            "non-canonical header",
        );
    }
    // Characters outside b64token (RFC 6750 §2.1; '=' only at the end): the
    // request itself is malformed.
    for (label, token) in [
        (
            "header with '!'",
            format!("{}.{c}.{s}", with_char(&h, 3, '!')),
        ),
        (
            "payload with '*'",
            format!("{h}.{}.{s}", with_char(&c, 3, '*')),
        ),
        (
            "signature with '%'",
            format!("{h}.{c}.{}", with_char(&s, 3, '%')),
        ),
        ("header padded ('=' mid-token)", format!("{h}=.{c}.{s}")),
        ("header padded twice", format!("{h}==.{c}.{s}")),
    ] {
        bad_request(&t.attack(label, &token).await, label);
    }
    t.still_serves().await;
}

/// `part` grown to a length no base64 string can have (4n + 1).
fn impossible_length(part: &str) -> String {
    let mut s = part.to_owned();
    while s.len() % 4 != 1 {
        s.push('A');
    }
    s
}

/// Decodes ignoring non-canonical trailing bits.
fn unb64_lenient(part: &str) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(part).unwrap()
}

#[tokio::test]
async fn extra_dots_are_refused() {
    let t = Target::new().await;
    let (h, c, s) = parts(&t.issuer.token().sign());
    for (label, token, reason) in [
        ("4 parts", format!("{h}.{c}.{s}.{s}"), InvalidToken::NotAJwt),
        (
            "5 parts (JWE-shaped)",
            format!("{h}.{c}.{s}.{c}.{s}"),
            InvalidToken::NotAJwt,
        ),
        (
            "trailing dot",
            format!("{h}.{c}.{s}."),
            InvalidToken::NotAJwt,
        ),
        (
            "leading dot",
            format!(".{h}.{c}.{s}"),
            InvalidToken::NotAJwt,
        ),
        ("double dot", format!("{h}..{c}.{s}"), InvalidToken::NotAJwt),
        ("empty header", format!(".{c}.{s}"), InvalidToken::Malformed),
        (
            "empty payload",
            format!("{h}..{s}"),
            InvalidToken::Malformed,
        ),
        ("dots only (..)", "..".to_owned(), InvalidToken::Malformed),
        ("dots only (....)", "....".to_owned(), InvalidToken::NotAJwt),
    ] {
        refused(&t.attack(label, &token).await, Some(reason), label);
    }
    t.still_serves().await;
}

#[tokio::test]
async fn non_utf8_and_control_bytes_in_the_header_are_refused() {
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    let malformed: [(&str, &[u8]); 9] = [
        (
            "invalid UTF-8 in kid",
            b"{\"alg\":\"ES256\",\"kid\":\"\xff\"}",
        ),
        ("truncated UTF-8 in alg", b"{\"alg\":\"ES256\xc3\"}"),
        (
            "overlong UTF-8 '/'",
            b"{\"alg\":\"ES256\",\"kid\":\"\xc0\xaf\"}",
        ),
        ("UTF-8 byte order mark", b"\xef\xbb\xbf{\"alg\":\"ES256\"}"),
        (
            "raw NUL in a string",
            b"{\"alg\":\"ES256\",\"kid\":\"a\x00b\"}",
        ),
        (
            "raw control byte as whitespace",
            b"{\"alg\":\"ES256\",\x01\"kid\":\"k\"}",
        ),
        ("trailing NUL after the object", b"{\"alg\":\"ES256\"}\x00"),
        (
            "lone surrogate escape in kid",
            b"{\"alg\":\"ES256\",\"kid\":\"\\ud800\"}",
        ),
        (
            "duplicate alg (none, then ES256)",
            b"{\"alg\":\"none\",\"alg\":\"ES256\"}",
        ),
    ];
    for (label, header) in malformed {
        let token = format!("{}.{c}.{s}", b64(header));
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    // Well-formed JSON whose values hold escaped control characters.
    let token = format!(
        "{}.{c}.{s}",
        b64(br#"{"alg":"ES256\u0000","typ":"at+jwt"}"#)
    );
    refused(
        &t.attack("escaped NUL in alg", &token).await,
        Some(InvalidToken::UnsupportedAlgorithm),
        "alg NUL",
    );
    let token = format!("{}.{c}.{s}", b64(br#"{"alg":"ES256","kid":"a\u0000b"}"#));
    refused(
        &t.attack("escaped NUL in kid", &token).await,
        Some(InvalidToken::UnknownKey),
        "kid NUL",
    );
    for (label, header) in [
        ("header JSON null", &b"null"[..]),
        ("header JSON string", b"\"ES256\""),
        ("header empty object", b"{}"),
        ("header not JSON", b"alg=ES256"),
    ] {
        let token = format!("{}.{c}.{s}", b64(header));
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    t.jwks_fetches_bounded();
    t.still_serves().await;
}

#[tokio::test]
async fn non_object_jose_header_is_refused() {
    // RFC 7515 §4: the JOSE header is a JSON object. A JSON array in its
    // place should be malformed; today it is read positionally as (alg, kid,
    // typ, crit) and refused only because the signature does not verify (see
    // `signed_token_with_an_array_header_is_refused`), so the reason is not
    // pinned here.
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    for (label, header) in [
        ("header JSON array [\"ES256\"]", &br#"["ES256"]"#[..]),
        (
            "header JSON array [\"ES256\", kid, \"at+jwt\"]",
            br#"["ES256",null,"at+jwt"]"#,
        ),
    ] {
        let token = format!("{}.{c}.{s}", b64(header));
        refused(&t.attack(label, &token).await, None, label);
    }
    t.still_serves().await;
}

#[tokio::test]
async fn signed_token_with_an_array_header_is_refused() {
    // With a key the attacker holds (here a shared secret), a token whose
    // header is `["HS256"]` verifies. The header is not a JSON object, so
    // RFC 7515 §4 says it is not a JWS; other parsers on the path (a
    // gateway, a logger) will read it differently.
    let t = Target::with_shared_secret(16 * 1024).await;
    let claims = format!("{}}}", valid_claims_prefix(&t));
    for (label, header) in [
        ("HS256-signed, header [\"HS256\"]", &br#"["HS256"]"#[..]),
        (
            "HS256-signed, header [\"HS256\", null, \"at+jwt\"]",
            br#"["HS256",null,"at+jwt"]"#,
        ),
    ] {
        let token = hs256(header, claims.as_bytes());
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// Size and depth
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_64_kib_token_is_refused_before_parsing() {
    let t = Target::new().await;
    let (h, _, s) = parts(&t.issuer.token().sign());
    let big_payload = b64(&vec![b' '; 48 * 1024]);
    let jwt_shaped = format!("{h}.{big_payload}.{s}");
    assert!(jwt_shaped.len() >= 64 * 1024);
    let cases = [
        ("64 KiB of 'a'", "a".repeat(64 * 1024)),
        ("64 KiB JWT-shaped", jwt_shaped),
        ("64 KiB of '\"' (not b64token)", "\"".repeat(64 * 1024)),
        ("16 KiB + 1 of 'a'", "a".repeat(16 * 1024 + 1)),
    ];
    for (label, token) in cases {
        let answer = t
            .attack_raw(label, format!("Bearer {token}").as_bytes())
            .await;
        refused(&answer, Some(InvalidToken::TooLong), label);
        assert!(answer.challenge().unwrap().contains("too long"), "{label}");
    }
    t.still_serves().await;
}

#[tokio::test]
async fn deeply_nested_json_in_the_header_is_refused() {
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    // Unbalanced, so it fits the default 16 KiB limit.
    let header = format!(r#"{{"alg":"ES256","x":{}"#, "[".repeat(10_000));
    let token = format!("{}.{c}.{s}", b64(header.as_bytes()));
    assert!(token.len() <= 16 * 1024);
    refused(
        &t.attack("header with 10 000 unclosed '['", &token).await,
        Some(InvalidToken::Malformed),
        "unclosed",
    );
    // Balanced, through a gate that allows big tokens.
    let big = Target::with(|b, _| b.max_token_length(256 * 1024)).await;
    for (label, nested) in [
        (
            "header with 10 000 levels of [ ]",
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        ),
        (
            "header with 10 000 levels of {\"a\": }",
            format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)),
        ),
    ] {
        let header = format!(r#"{{"alg":"ES256","x":{nested}}}"#);
        let token = format!("{}.{c}.{s}", b64(header.as_bytes()));
        let answer = big.attack(label, &token).await;
        refused(&answer, None, label);
        // The same nesting as the `crit` value.
        let header = format!(r#"{{"alg":"ES256","crit":{nested}}}"#);
        let token = format!("{}.{c}.{s}", b64(header.as_bytes()));
        refused(
            &big.attack(&format!("{label} in crit"), &token).await,
            None,
            label,
        );
    }
    big.still_serves().await;
    t.still_serves().await;
}

#[tokio::test]
async fn claims_no_json_reader_can_represent_are_refused() {
    // Members tokengate itself never reads must still be readable through
    // Principal::claims(): a number out of range or a lone surrogate is
    // refused, not accepted with claims a handler would then find empty.
    let t = Target::with_shared_secret(16 * 1024).await;
    let header = br#"{"alg":"HS256","typ":"at+jwt"}"#;
    let prefix = valid_claims_prefix(&t);
    for (label, extra) in [
        ("number out of range", r#""x":1e400"#),
        ("negative number out of range", r#""x":[{"y":-1e309}]"#),
        ("lone high surrogate", r#""x":"\ud800""#),
        (
            "lone low surrogate in a skipped object",
            r#""x":{"y":"\udfff"}"#,
        ),
    ] {
        let token = hs256(header, format!("{prefix},{extra}}}").as_bytes());
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    t.still_serves().await;
}

#[tokio::test]
async fn deeply_nested_json_in_the_claims_is_refused() {
    // The claims are parsed only after the signature verifies, so the
    // attacker here holds a signing key: a gate with a shared secret.
    let t = Target::with_shared_secret(256 * 1024).await;
    let header = br#"{"alg":"HS256","typ":"at+jwt"}"#;
    let prefix = valid_claims_prefix(&t);
    let cases = [
        (
            "claims with 10 000 unclosed '['",
            format!(r#"{prefix},"deep":{}"#, "[".repeat(10_000)),
        ),
        (
            "claims with 10 000 levels of [ ]",
            format!(
                r#"{prefix},"deep":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ),
        (
            "claims with 10 000 levels of {\"a\": }",
            format!(
                r#"{prefix},"deep":{}1{}}}"#,
                "{\"a\":".repeat(10_000),
                "}".repeat(10_000)
            ),
        ),
        (
            "scope nested 10 000 deep",
            format!(
                r#"{prefix},"scope":{}"a"{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ),
    ];
    for (label, claims) in cases {
        let token = hs256(header, claims.as_bytes());
        refused(
            &t.attack(label, &token).await,
            Some(InvalidToken::Malformed),
            label,
        );
    }
    // Within the documented limit (64 levels, the claims object included)
    // nesting is an ordinary claim; one level more is refused.
    let nested = |levels: usize| {
        let claims = format!(
            r#"{prefix},"deep":{}{}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        );
        hs256(header, claims.as_bytes())
    };
    let answer = t
        .attack("claims with 63 levels of [ ] (valid)", &nested(63))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    refused(
        &t.attack("claims with 64 levels of [ ]", &nested(64)).await,
        Some(InvalidToken::Malformed),
        "64 levels",
    );
    // No network was needed for any of it.
    assert_eq!(t.issuer.requests(Endpoint::Jwks), 0);
    t.still_serves().await;
}

// ---------------------------------------------------------------------------
// RFC 7662 introspection: a misbehaving authorization server is a 503
// ---------------------------------------------------------------------------

async fn introspection_fault(label: &str, fault: Fault) {
    let t = Target::introspecting().await;
    let token = t.issuer.token().scope("items:read").opaque();
    t.issuer.set_fault(Endpoint::Introspection, Some(fault));
    let answer = t.attack(label, &token).await;
    unavailable(&answer, label);
    // JWTs do not need the introspection endpoint: still served.
    t.still_serves().await;
    // The failure was not cached: healed, the same token works.
    t.issuer.set_fault(Endpoint::Introspection, None);
    let answer = t.attack(&format!("{label}, healed"), &token).await;
    assert_eq!(answer.status, StatusCode::OK, "{label}, healed");
}

#[tokio::test]
async fn introspection_answering_active_as_a_string_is_503() {
    introspection_fault(
        "introspection: {\"active\": \"true\"}",
        Fault::Body(r#"{"active":"true","scope":"admin","client_id":"c"}"#.into()),
    )
    .await;
}

#[tokio::test]
async fn introspection_answer_without_active_is_503() {
    introspection_fault(
        "introspection: active omitted",
        Fault::Body(r#"{"scope":"admin","client_id":"c","token_type":"Bearer"}"#.into()),
    )
    .await;
}

#[tokio::test]
async fn introspection_answering_html_is_503() {
    introspection_fault("introspection: HTML page", Fault::Html).await;
}

#[tokio::test]
async fn introspection_answer_too_large_is_503() {
    introspection_fault(
        "introspection: 2 MiB body with Content-Length",
        Fault::Oversize(2 * 1024 * 1024),
    )
    .await;
}

#[tokio::test]
async fn introspection_answer_too_large_and_chunked_is_503() {
    introspection_fault(
        "introspection: 2 MiB chunked body",
        Fault::OversizeChunked(2 * 1024 * 1024),
    )
    .await;
}

#[tokio::test]
async fn introspection_stalling_past_the_timeout_is_503() {
    let started = std::time::Instant::now();
    introspection_fault(
        "introspection: stalls 3 s, timeout 300 ms",
        Fault::Slow(Duration::from_secs(3)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the gate gave up at its own timeout"
    );
}

#[tokio::test]
async fn introspection_answer_deeply_nested_is_503() {
    introspection_fault(
        "introspection: 10 000 levels of [",
        Fault::Body(format!(
            r#"{{"active":true,"x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        )),
    )
    .await;
}
