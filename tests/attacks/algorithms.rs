//! RFC 8725 §2.1, §3.1: algorithm confusion (`alg: none`, HMAC keyed with
//! the issuer's public key) and ECDSA signatures in the wrong shape.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;
use tokengate::{Algorithm, InvalidToken};

use crate::jose::*;
use crate::target::*;

/// Every form of a published public key that an HMAC-confusion attacker
/// might guess the server uses as "the key": the JWK as published, its
/// RFC 7638 canonical form, SubjectPublicKeyInfo DER and PEM (with and
/// without the final newline), PKCS#1 for RSA, and the raw key bytes.
fn public_key_forms(jwk: &Value) -> Vec<(String, Vec<u8>)> {
    let text = |name: &str| jwk[name].as_str().unwrap();
    let field = |name: &str| unb64(text(name));
    let (canonical, spki, raw) = match text("kty") {
        "RSA" => {
            let (n, e) = (field("n"), field("e"));
            let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
            // rsaEncryption, NULL parameters.
            let rsa_oid = [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
            ];
            let spki = spki(&rsa_oid, &pkcs1);
            assert!(
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki).is_ok(),
                "the SPKI we wrote is a real RSA public key"
            );
            let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, text("e"), text("n"));
            let raw = vec![
                ("PKCS#1 DER".to_owned(), pkcs1.clone()),
                (
                    "PKCS#1 PEM + newline".to_owned(),
                    pem("RSA PUBLIC KEY", &pkcs1, true),
                ),
                ("modulus bytes".to_owned(), n),
            ];
            (canonical, spki, raw)
        }
        "EC" => {
            let point = [vec![4], field("x"), field("y")].concat();
            // id-ecPublicKey, prime256v1.
            let ec_oid = [
                0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                0xce, 0x3d, 0x03, 0x01, 0x07,
            ];
            let spki = spki(&ec_oid, &point);
            assert!(
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki).is_ok(),
                "the SPKI we wrote is a real P-256 public key"
            );
            let canonical = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                text("x"),
                text("y")
            );
            (
                canonical,
                spki,
                vec![("uncompressed point".to_owned(), point)],
            )
        }
        other => panic!("unexpected kty {other}"),
    };
    let mut forms = vec![
        (
            "JWK JSON as published".to_owned(),
            serde_json::to_vec(jwk).unwrap(),
        ),
        (
            "JWK RFC 7638 canonical JSON".to_owned(),
            canonical.into_bytes(),
        ),
        ("SPKI DER".to_owned(), spki.clone()),
        ("SPKI PEM".to_owned(), pem("PUBLIC KEY", &spki, false)),
        (
            "SPKI PEM + newline".to_owned(),
            pem("PUBLIC KEY", &spki, true),
        ),
    ];
    forms.extend(raw);
    forms
}

/// One form of one published key.
struct KeyForm {
    kid: String,
    /// The JWK's `kty`, as JSON (`"EC"`).
    kty: String,
    form: String,
    bytes: Vec<u8>,
}

/// Every [`public_key_forms`] of every published key: the issuer's ES256
/// key and an RS256 one it adds. The gate verifies a token of the RSA key
/// first, so no attack needs a refresh.
async fn published_key_forms(t: &Target) -> Vec<KeyForm> {
    let rsa_kid = t.issuer.add_key(Algorithm::RS256);
    let warm = t.issuer.token().key(&rsa_kid).sign();
    t.check("warm-up with the RSA key", &warm, Expect::Served)
        .await;
    let jwks = t.issuer.jwks();
    let mut forms = Vec::new();
    for jwk in jwks["keys"].as_array().unwrap() {
        for (form, bytes) in public_key_forms(jwk) {
            forms.push(KeyForm {
                kid: jwk["kid"].as_str().unwrap().to_owned(),
                kty: jwk["kty"].to_string(),
                form,
                bytes,
            });
        }
    }
    forms
}

#[tokio::test]
async fn alg_none_in_every_casing_is_refused() {
    let t = Target::new().await;
    let (_, _, real_signature) = parts(&t.issuer.token().sign());
    let none = |alg| t.issuer.token().header("alg", alg);
    let algs = ["none", "None", "NONE", "nOnE"];
    let empty = algs.map(|alg| {
        let token = none(alg).with_signature(b"");
        (format!("alg {alg:?}, empty signature"), token)
    });
    t.check_all(cases_with(InvalidToken::Malformed, empty))
        .await;
    let signed = algs.into_iter().flat_map(|alg| {
        let borrowed = format!("{}{real_signature}", none(alg).with_signature(b""));
        [
            (
                format!("alg {alg:?}, junk signature"),
                none(alg).with_signature(b"x"),
            ),
            (
                format!("alg {alg:?}, no kid, junk signature"),
                none(alg).without_header("kid").with_signature(b"x"),
            ),
            (
                format!("alg {alg:?}, a real signature of another token"),
                borrowed,
            ),
        ]
    });
    t.check_all(cases_with(InvalidToken::UnsupportedAlgorithm, signed))
        .await;
}

#[tokio::test]
async fn hmac_signed_with_the_issuers_public_key_is_refused() {
    let t = Target::new().await;
    let forms = published_key_forms(&t).await;
    let rows = forms.iter().flat_map(|key| {
        ["HS256", "HS384", "HS512"].map(|alg| {
            let token = t.issuer.token().key(&key.kid).header("alg", alg);
            let token = token.scope("admin").sign_with_secret(&key.bytes);
            let label = format!("{alg} with {} public key: {}", key.kty, key.form);
            (label, token)
        })
    });
    t.check_all(cases_with(Expect::Refused, rows)).await;
    // Without a kid the gate cannot even pick a key.
    let secret = serde_json::to_vec(&t.issuer.jwks()["keys"][0]).unwrap();
    let token = t
        .issuer
        .token()
        .header("alg", "HS256")
        .without_header("kid");
    let token = token.sign_with_secret(&secret);
    t.check("HS256 with the EC JWK, no kid", &token, Expect::Refused)
        .await;
    t.jwks_fetches_bounded();
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
    let forms = published_key_forms(&t).await;
    let (with_kid, without_kid): (Vec<_>, Vec<_>) = forms
        .iter()
        .map(|key| {
            let label = |kid| {
                format!(
                    "HS256 (secret configured), {} key, {kid}: {}",
                    key.kty, key.form
                )
            };
            let named = t.issuer.token().key(&key.kid).header("alg", "HS256");
            let unnamed = t
                .issuer
                .token()
                .header("alg", "HS256")
                .without_header("kid");
            (
                (label("kid"), named.sign_with_secret(&key.bytes)),
                (label("no kid"), unnamed.sign_with_secret(&key.bytes)),
            )
        })
        .unzip();
    t.check_all(cases_with(InvalidToken::AlgorithmMismatch, with_kid))
        .await;
    t.check_all(cases_with(InvalidToken::BadSignature, without_kid))
        .await;
}

#[tokio::test]
async fn all_zero_ecdsa_signature_is_refused() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 verified everything
    // in some ECDSA implementations.
    let t = Target::new().await;
    let token = t.issuer.token().scope("admin").with_signature(&[0u8; 64]);
    t.check("ES256 with r = s = 0", &token, InvalidToken::BadSignature)
        .await;
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
    t.check(
        "ES256 signature re-encoded as DER",
        &token,
        InvalidToken::BadSignature,
    )
    .await;
}
