//! JWT verification rules (RFC 7519, RFC 8725, RFC 9068) through the public
//! API: one test per rule.

mod common;

use common::*;
use serde_json::json;
use tokengate::testing::{Endpoint, TestIssuer};
use tokengate::{Algorithm, AuthError, InvalidToken, TokenGate};

fn invalid(reason: InvalidToken) -> Result<(), AuthError> {
    Err(AuthError::InvalidToken(reason))
}

async fn check(gate: &TokenGate, token: &str) -> Result<(), AuthError> {
    gate.verify(token).await.map(|_| ())
}

#[tokio::test]
async fn every_supported_asymmetric_algorithm_verifies() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for (alg, kid) in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
    .map(|alg| (alg, issuer.add_key(alg)))
    {
        let token = issuer.token().key(&kid).sign();
        assert_eq!(check(&gate, &token).await, Ok(()), "{alg:?}");
    }
    // All nine keys arrived with one refetch.
    assert_eq!(issuer.requests(Endpoint::Jwks), 2);
}

#[tokio::test]
async fn rsa_key_without_alg_serves_rs_and_ps_but_nothing_else() {
    let issuer = TestIssuer::start().await.unwrap();
    let kid = issuer.add_key(Algorithm::RS256);
    // The same key, published without `alg`.
    let mut jwks = issuer.jwks();
    for key in jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("alg");
    }
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .static_keys(serde_json::from_value(jwks).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(
        check(
            &gate,
            &issuer.token().key(&kid).alg(Algorithm::PS384).sign()
        )
        .await,
        Ok(())
    );
    assert_eq!(
        check(
            &gate,
            &issuer.token().key(&kid).alg(Algorithm::RS512).sign()
        )
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn declared_jwk_alg_binds_the_key() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let kid = issuer.add_key(Algorithm::RS256);
    // The JWK says RS256: a PS256 signature by the same key is refused.
    let token = issuer.token().key(&kid).alg(Algorithm::PS256).sign();
    assert_eq!(
        check(&gate, &token).await,
        invalid(InvalidToken::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn header_alg_cannot_switch_key_type() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    // The default key is ES256; a header claiming RS256 for it is refused.
    let token = issuer.token().header("alg", "RS256").sign();
    assert_eq!(
        check(&gate, &token).await,
        invalid(InvalidToken::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn alg_none_is_refused_in_every_casing() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for none in ["none", "None", "NONE", "nOnE"] {
        let token = issuer.token().header("alg", none).with_signature(b"");
        // An empty signature part is malformed before anything else.
        assert!(check(&gate, &token).await.is_err(), "{none}");
        let token = issuer.token().header("alg", none).with_signature(b"x");
        assert_eq!(
            check(&gate, &token).await,
            invalid(InvalidToken::UnsupportedAlgorithm),
            "{none}"
        );
    }
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let kid = issuer.add_key(Algorithm::RS256);
    let jwks = issuer.jwks();
    let public = serde_json::to_vec(&jwks["keys"][1]).unwrap();
    for alg in ["HS256", "HS384", "HS512"] {
        let token = issuer
            .token()
            .key(&kid)
            .header("alg", alg)
            .sign_with_secret(&public);
        assert!(check(&gate, &token).await.is_err(), "{alg}");
    }
    // Even with an HMAC secret configured, the public key does not become one.
    let with_secret =
        builder(&issuer).hmac_secret(None, b"0123456789abcdef0123456789abcdef", Algorithm::HS256);
    let with_secret = with_secret
        .jwks_uri(issuer.jwks_uri())
        .build()
        .await
        .unwrap();
    let token = issuer
        .token()
        .key(&kid)
        .header("alg", "HS256")
        .sign_with_secret(&public);
    assert_eq!(
        check(&with_secret, &token).await,
        invalid(InvalidToken::AlgorithmMismatch)
    );
}

#[tokio::test]
async fn hmac_works_only_with_a_configured_secret() {
    let issuer = TestIssuer::start().await.unwrap();
    let secret = b"a-shared-secret-of-at-least-32-bytes!";
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .hmac_secret(Some("shared"), secret, Algorithm::HS256)
        .build()
        .await
        .unwrap();
    let token = issuer
        .token()
        .header("alg", "HS256")
        .header("kid", "shared")
        .sign_with_secret(secret);
    assert_eq!(check(&gate, &token).await, Ok(()));
    let forged = issuer
        .token()
        .header("alg", "HS256")
        .header("kid", "shared")
        .sign_with_secret(b"guess");
    assert_eq!(
        check(&gate, &forged).await,
        invalid(InvalidToken::BadSignature)
    );
    // Static HMAC config makes no network call at all.
    assert_eq!(issuer.requests(Endpoint::Jwks), 0);
    assert_eq!(issuer.requests(Endpoint::Discovery), 0);

    // HS256 allowed without a secret is a configuration error.
    let err = builder(&issuer)
        .algorithms([Algorithm::HS256])
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("shared secret"), "{err}");
}

#[tokio::test]
async fn signature_must_verify() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let token = issuer.token().sign();
    let (input, sig) = token.rsplit_once('.').unwrap();
    // Stripped signature.
    assert_eq!(
        check(&gate, &format!("{input}.")).await,
        invalid(InvalidToken::Malformed)
    );
    // Another signature of the right length.
    let mut other = issuer.token().sign();
    other = format!("{input}.{}", other.rsplit_once('.').unwrap().1);
    assert_eq!(
        check(&gate, &other).await,
        invalid(InvalidToken::BadSignature)
    );
    // Tampered claims with the original signature.
    let tampered_claims = issuer.token().scope("admin").sign();
    let (h_and_c, _) = tampered_claims.rsplit_once('.').unwrap();
    assert_eq!(
        check(&gate, &format!("{h_and_c}.{sig}")).await,
        invalid(InvalidToken::BadSignature)
    );
}

#[tokio::test]
async fn expiry_is_required() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    assert_eq!(
        check(&gate, &issuer.token().without_claim("exp").sign()).await,
        invalid(InvalidToken::MissingClaim)
    );
}

#[tokio::test]
async fn expiry_honours_the_leeway() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    // Default leeway 60 s.
    assert_eq!(
        check(&gate, &issuer.token().expires_in(-30).sign()).await,
        Ok(())
    );
    assert_eq!(
        check(&gate, &issuer.token().expires_in(-61).sign()).await,
        invalid(InvalidToken::Expired)
    );
    let strict = builder(&issuer)
        .leeway(std::time::Duration::ZERO)
        .build()
        .await
        .unwrap();
    assert_eq!(
        check(&strict, &issuer.token().expires_in(-1).sign()).await,
        invalid(InvalidToken::Expired)
    );
}

#[tokio::test]
async fn not_before_and_issued_at_honour_the_leeway() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        check(&gate, &issuer.token().claim("nbf", now + 30).sign()).await,
        Ok(())
    );
    assert_eq!(
        check(&gate, &issuer.token().claim("nbf", now + 120).sign()).await,
        invalid(InvalidToken::NotYetValid)
    );
    assert_eq!(
        check(&gate, &issuer.token().claim("iat", now + 30).sign()).await,
        Ok(())
    );
    assert_eq!(
        check(&gate, &issuer.token().claim("iat", now + 120).sign()).await,
        invalid(InvalidToken::IssuedInFuture)
    );
}

#[tokio::test]
async fn time_claims_of_the_wrong_type_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for exp in [
        json!("4102444800"),
        json!(-5),
        json!(1e300),
        json!(null),
        json!([1]),
    ] {
        let token = issuer.token().claim("exp", exp.clone()).sign();
        assert!(check(&gate, &token).await.is_err(), "{exp}");
    }
    // A fractional NumericDate is valid (RFC 7519 §2).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(
        check(&gate, &issuer.token().claim("exp", now + 300.5).sign()).await,
        Ok(())
    );
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for iss in [
        format!("{}/", issuer.issuer()),
        issuer.issuer().to_uppercase(),
        format!("{}.evil", issuer.issuer()),
    ] {
        let token = issuer.token().claim("iss", iss.clone()).sign();
        assert_eq!(
            check(&gate, &token).await,
            invalid(InvalidToken::WrongIssuer),
            "{iss}"
        );
    }
    assert_eq!(
        check(&gate, &issuer.token().without_claim("iss").sign()).await,
        invalid(InvalidToken::MissingClaim)
    );
}

#[tokio::test]
async fn audience_must_contain_ours() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let ours = issuer.audience();
    assert_eq!(
        check(
            &gate,
            &issuer.token().claim("aud", json!(["other", ours])).sign()
        )
        .await,
        Ok(())
    );
    assert_eq!(
        check(&gate, &issuer.token().audience("other").sign()).await,
        invalid(InvalidToken::WrongAudience)
    );
    assert_eq!(
        check(&gate, &issuer.token().without_claim("aud").sign()).await,
        invalid(InvalidToken::MissingClaim)
    );
    let any = builder(&issuer)
        .accept_any_audience()
        .build()
        .await
        .unwrap();
    assert_eq!(
        check(&any, &issuer.token().audience("other").sign()).await,
        Ok(())
    );
    // Cognito's access tokens carry no `aud` at all.
    assert_eq!(
        check(&any, &issuer.token().without_claim("aud").sign()).await,
        Ok(())
    );
    let two = builder(&issuer).audience("second").build().await.unwrap();
    assert_eq!(
        check(&two, &issuer.token().audience("second").sign()).await,
        Ok(())
    );
}

#[tokio::test]
async fn typ_at_jwt_works_out_of_the_box_and_others_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for typ in ["at+jwt", "application/at+jwt", "JWT"] {
        assert_eq!(
            check(&gate, &issuer.token().header("typ", typ).sign()).await,
            Ok(()),
            "{typ}"
        );
    }
    assert_eq!(
        check(&gate, &issuer.token().without_header("typ").sign()).await,
        Ok(())
    );
    for typ in ["dpop+jwt", "logout+jwt", "JWE"] {
        assert_eq!(
            check(&gate, &issuer.token().header("typ", typ).sign()).await,
            invalid(InvalidToken::WrongType),
            "{typ}"
        );
    }
}

/// Cognito's ID tokens say `token_use: id` and carry the client id as
/// `aud`; Keycloak's say `typ: ID` (refresh tokens `Refresh`) in the
/// payload. Neither is an access token, even with our audience.
#[tokio::test]
async fn tokens_that_say_they_are_id_or_refresh_tokens_are_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    for (claim, value) in [
        ("token_use", json!("id")),
        ("token_use", json!("refresh")),
        ("token_use", json!(["access"])),
        ("typ", json!("ID")),
        ("typ", json!("Refresh")),
        ("typ", json!("Logout")),
    ] {
        assert_eq!(
            check(&gate, &issuer.token().claim(claim, value.clone()).sign()).await,
            invalid(InvalidToken::WrongType),
            "{claim}: {value}"
        );
    }
    for (claim, value) in [
        ("token_use", "access"),
        ("typ", "Bearer"),
        ("typ", "at+jwt"),
    ] {
        assert_eq!(
            check(&gate, &issuer.token().claim(claim, value).sign()).await,
            Ok(()),
            "{claim}: {value}"
        );
    }
}

#[tokio::test]
async fn strict_rfc9068_requires_typ_and_claims() {
    let issuer = TestIssuer::start().await.unwrap();
    let strict = builder(&issuer).strict_rfc9068(true).build().await.unwrap();
    assert_eq!(check(&strict, &issuer.token().sign()).await, Ok(()));
    assert_eq!(
        check(&strict, &issuer.token().header("typ", "JWT").sign()).await,
        invalid(InvalidToken::WrongType)
    );
    assert_eq!(
        check(&strict, &issuer.token().without_claim("jti").sign()).await,
        invalid(InvalidToken::MissingClaim)
    );
    assert_eq!(
        check(&strict, &issuer.token().without_claim("client_id").sign()).await,
        invalid(InvalidToken::MissingClaim)
    );
}

#[tokio::test]
async fn unknown_crit_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let token = issuer
        .token()
        .header("crit", json!(["http://example.com/ext"]))
        .header("http://example.com/ext", true)
        .sign();
    assert_eq!(
        check(&gate, &token).await,
        invalid(InvalidToken::UnsupportedCritical)
    );
}

#[tokio::test]
async fn jku_x5u_and_jwk_headers_are_never_followed() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let attacker = TestIssuer::start().await.unwrap();
    let kid = attacker.signing_kid();
    let embedded = attacker.jwks()["keys"][0].clone();
    let token = attacker
        .token()
        .claim("iss", issuer.issuer())
        .header("jku", attacker.jwks_uri())
        .header("x5u", attacker.url("/cert.pem"))
        .header("jwk", embedded)
        .sign();
    let before = issuer.requests(Endpoint::Jwks);
    // The attacker's kid is unknown to our issuer: refused, and nothing was
    // fetched from the attacker.
    assert!(check(&gate, &token).await.is_err());
    assert_eq!(attacker.requests(Endpoint::Jwks), 0);
    assert_eq!(attacker.requests(Endpoint::Other), 0);
    // Our issuer was asked once for the unknown kid (rate limited).
    assert!(issuer.requests(Endpoint::Jwks) <= before + 1);
    let _ = kid;
}

#[tokio::test]
async fn principal_carries_claims_and_client_identity() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    let token = issuer
        .token()
        .without_claim("client_id")
        .claim("azp", "spa")
        .claim("scp", json!(["a", "b"]))
        .claim("tenant", "acme")
        .sign();
    let p = gate.verify(&token).await.unwrap();
    assert_eq!(p.client_id(), Some("spa"));
    assert!(p.scopes().contains_all(["a", "b"]));
    assert_eq!(p.claim("tenant"), Some(&json!("acme")));
    assert!(p.expires_at().is_some() && p.issued_at().is_some() && p.token_id().is_some());
    let bad_scope = issuer.token().claim("scope", json!(7)).sign();
    assert_eq!(
        check(&gate, &bad_scope).await,
        invalid(InvalidToken::MalformedClaim)
    );
}

#[tokio::test]
async fn opaque_tokens_are_refused_without_introspection() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = gate(&issuer).await;
    assert_eq!(
        check(&gate, "an-opaque-token").await,
        invalid(InvalidToken::NotAJwt)
    );
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped_not_fatal() {
    let issuer = TestIssuer::start().await.unwrap();
    let good = issuer.jwks()["keys"][0].clone();
    let set = json!({"keys": [
        {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "XYZ", "kid": "weird"},
        {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AAAA", "y": "AAAA"},
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AAAA", "y": "AAAA"},
        good,
    ]});
    issuer.set_fault(
        tokengate::testing::Endpoint::Jwks,
        Some(tokengate::testing::Fault::Body(set.to_string())),
    );
    let gate = gate(&issuer).await;
    assert_eq!(gate.jwks_health().key_count, 1);
    assert_eq!(check(&gate, &issuer.token().sign()).await, Ok(()));
}
