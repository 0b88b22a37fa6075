//! Verification keys: JWKs (RFC 7517, RFC 7518 §6) parsed once into
//! ready-to-use aws-lc-rs keys, each bound to the algorithms it may verify.
//!
//! The binding comes from the key, never from the token: an RSA key verifies
//! only `RS*`/`PS*`, a P-256 key only `ES256`, an Ed25519 key only `EdDSA`,
//! narrowed further by the JWK's own `alg` and by the configured allow-list.
//! HMAC keys exist only when the user configures a shared secret; `oct` keys
//! in a fetched JWKS are ignored. So `alg: none` and "HMAC signed with the
//! public key" have no key to succeed with.
//!
//! - `algorithm.rs`: the JWS algorithms and allow-lists;
//! - `jwk.rs`: one JWK into one [`VerifyingKey`];
//! - `key_set.rs`: the [`KeySet`] a snapshot holds, and key lookup.

mod algorithm;
mod jwk;
mod key_set;

pub use algorithm::Algorithm;
pub(crate) use algorithm::{AlgorithmSet, parse_alg};
pub(crate) use jwk::VerifyingKey;
pub(crate) use key_set::{KeySet, Lookup};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_lc_rs::signature;
    use base64::Engine as _;
    use jsonwebtoken::jwk::Jwk;

    use super::jwk::KeySkipped;
    use super::key_set::MAX_CANDIDATES;
    use super::*;
    use serde_json::json;

    fn jwk(v: serde_json::Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    fn p256() -> serde_json::Value {
        // RFC 7515 appendix A.3's P-256 key.
        json!({"kty": "EC", "crv": "P-256", "kid": "ec",
               "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
               "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})
    }

    #[test]
    fn ec_key_is_bound_to_its_curve_algorithm() {
        let key = VerifyingKey::from_jwk(&jwk(p256()), AlgorithmSet::ASYMMETRIC).unwrap();
        assert!(key.supports(Algorithm::ES256));
        assert!(!key.supports(Algorithm::ES384));
        assert!(!key.supports(Algorithm::HS256));
        assert!(!key.supports(Algorithm::RS256));
    }

    #[test]
    fn declared_alg_must_fit_the_key() {
        let mut v = p256();
        v["alg"] = json!("ES384");
        assert_eq!(
            VerifyingKey::from_jwk(&jwk(v), AlgorithmSet::ASYMMETRIC).unwrap_err(),
            KeySkipped::AlgorithmDoesNotFitKey(Algorithm::ES384)
        );
        let mut v = p256();
        v["alg"] = json!("HS256");
        assert!(VerifyingKey::from_jwk(&jwk(v), AlgorithmSet::ASYMMETRIC).is_err());
    }

    #[test]
    fn encryption_and_symmetric_keys_are_skipped() {
        let mut v = p256();
        v["use"] = json!("enc");
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk(v), AlgorithmSet::ASYMMETRIC),
            Err(KeySkipped::NotForSignatures(_))
        ));
        let oct = jwk(json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert_eq!(
            VerifyingKey::from_jwk(&oct, AlgorithmSet::from_iter([Algorithm::HS256])).unwrap_err(),
            KeySkipped::Symmetric
        );
    }

    #[test]
    fn allow_list_narrows_keys() {
        let only_rsa = AlgorithmSet::from_iter([Algorithm::RS256]);
        assert_eq!(
            VerifyingKey::from_jwk(&jwk(p256()), only_rsa).unwrap_err(),
            KeySkipped::NoAllowedAlgorithm
        );
    }

    #[test]
    fn broken_parameters_are_reported() {
        let mut v = p256();
        v["x"] = json!("AAAA");
        assert_eq!(
            VerifyingKey::from_jwk(&jwk(v), AlgorithmSet::ASYMMETRIC).unwrap_err(),
            KeySkipped::BrokenParameters
        );
        let small_rsa = jwk(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        assert!(matches!(
            VerifyingKey::from_jwk(&small_rsa, AlgorithmSet::ASYMMETRIC),
            Err(KeySkipped::RsaTooSmall(_))
        ));
    }

    fn rsa_jwk(n: &[u8], e: &[u8]) -> Jwk {
        jwk(json!({"kty": "RSA", "kid": "rsa",
                   "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n),
                   "e": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(e)}))
    }

    #[test]
    fn rsa_modulus_with_leading_zero_octets_is_used() {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            b"message",
            &mut sig,
        )
        .unwrap();
        for zeros in [1, 2] {
            let mut n = vec![0; zeros];
            n.extend_from_slice(&public.n);
            let mut e = vec![0];
            e.extend_from_slice(&public.e);
            let key = VerifyingKey::from_jwk(&rsa_jwk(&n, &e), AlgorithmSet::ASYMMETRIC)
                .unwrap_or_else(|why| panic!("{zeros} leading zeros: {why}"));
            assert_eq!(key.verify(Algorithm::RS256, b"message", &sig), Ok(()));
        }
    }

    #[test]
    fn rsa_modulus_above_8192_bits_is_skipped_with_its_own_reason() {
        let mut n = vec![0xff; 1025];
        n[1024] = 0xfd;
        assert_eq!(
            VerifyingKey::from_jwk(&rsa_jwk(&n, &[1, 0, 1]), AlgorithmSet::ASYMMETRIC).unwrap_err(),
            KeySkipped::RsaTooLarge(8200)
        );
        // Leading zeros do not count: 8192 bits is still in range.
        let mut n = vec![0, 0xff];
        n.extend_from_slice(&[0xff; 1023]);
        assert!(!matches!(
            VerifyingKey::from_jwk(&rsa_jwk(&n, &[1, 0, 1]), AlgorithmSet::ASYMMETRIC),
            Err(KeySkipped::RsaTooLarge(_) | KeySkipped::RsaTooSmall(_))
        ));
    }

    #[test]
    fn a_secret_with_a_kid_verifies_only_tokens_naming_it() {
        let named = |l: Lookup<'_>| match l {
            Lookup::Found(c) => c.iter().map(|k| k.kid().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        let bound = || VerifyingKey::hmac(Some("k1"), b"bound secret", Algorithm::HS256).unwrap();
        let only_bound = KeySet::new(vec![bound()]);
        assert!(matches!(
            only_bound.lookup(None, Algorithm::HS256),
            Lookup::NoCandidate
        ));
        assert_eq!(
            named(only_bound.lookup(Some("k1"), Algorithm::HS256)),
            [Some("k1".to_owned())]
        );
        let free = VerifyingKey::hmac(None, b"free secret", Algorithm::HS256).unwrap();
        let both = KeySet::new(vec![]).with_pinned(&[Arc::new(bound()), Arc::new(free)]);
        assert_eq!(named(both.lookup(None, Algorithm::HS256)), [None]);
        assert_eq!(
            named(both.lookup(Some("k1"), Algorithm::HS256)),
            [Some("k1".to_owned())]
        );
        assert!(!both.still_has(None, bound().thumbprint()));
        // A key from a key set with a `kid` still serves tokens without one.
        let jwks = KeySet::new(vec![
            VerifyingKey::from_jwk(&jwk(p256()), AlgorithmSet::ASYMMETRIC).unwrap(),
        ]);
        assert_eq!(
            named(jwks.lookup(None, Algorithm::ES256)),
            [Some("ec".to_owned())]
        );
    }

    #[test]
    fn alg_names_are_exact() {
        assert_eq!(parse_alg("RS256"), Some(Algorithm::RS256));
        for bad in ["none", "None", "NONE", "rs256", "RS256 ", ""] {
            assert_eq!(parse_alg(bad), None, "{bad}");
        }
    }

    #[test]
    fn kidless_tokens_try_every_supporting_key() {
        let count = |l: Lookup<'_>| match l {
            Lookup::Found(c) => c.iter().count(),
            _ => 0,
        };
        let one = KeySet::new(vec![
            VerifyingKey::from_jwk(&jwk(p256()), AlgorithmSet::ASYMMETRIC).unwrap(),
        ]);
        assert_eq!(count(one.lookup(None, Algorithm::ES256)), 1);
        assert_eq!(count(one.lookup(Some("ec"), Algorithm::ES256)), 1);
        assert!(matches!(
            one.lookup(Some("ec"), Algorithm::RS256),
            Lookup::AlgorithmMismatch
        ));
        assert!(matches!(
            one.lookup(Some("other"), Algorithm::ES256),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            one.lookup(None, Algorithm::RS256),
            Lookup::NoCandidate
        ));
        let many = KeySet::new(
            (0..6)
                .map(|i| {
                    let mut v = p256();
                    v["kid"] = json!(format!("ec{i}"));
                    VerifyingKey::from_jwk(&jwk(v), AlgorithmSet::ASYMMETRIC).unwrap()
                })
                .collect(),
        );
        assert_eq!(count(many.lookup(None, Algorithm::ES256)), MAX_CANDIDATES);
    }
}
