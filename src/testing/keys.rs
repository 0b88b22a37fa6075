//! The test issuer's signing keys: one generated key per asymmetric JWS
//! algorithm (RFC 7518 §3), its signatures, and the public JWK it publishes
//! (RFC 7517), plus the base64url and random identifiers minting needs.

use std::sync::Arc;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::keys::Algorithm;

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key and the JWK that publishes its public half.
pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    signer: Signer,
    pub(super) jwk: Value,
}

impl TestKey {
    /// A new key for `alg`, its `kid` named after the algorithm.
    pub(super) fn new(alg: Algorithm) -> Self {
        let kid = format!(
            "{}-{}",
            alg_name(alg).to_ascii_lowercase(),
            &random_b64(16)[..8]
        );
        Self::generate(alg, kid)
    }

    /// A new key whose JWK carries neither `alg` nor `use` (both optional,
    /// RFC 7517 §4.2 and §4.4).
    pub(super) fn bare(alg: Algorithm) -> Self {
        let mut key = Self::generate(alg, format!("bare-{}", &random_b64(16)[..8]));
        if let Some(jwk) = key.jwk.as_object_mut() {
            jwk.remove("alg");
            jwk.remove("use");
        }
        key
    }

    fn generate(alg: Algorithm, kid: String) -> Self {
        let (signer, mut jwk) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = RsaKeyPair::generate(rsa::KeySize::Rsa2048).expect("RSA key generation");
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)});
                (Signer::Rsa(pair), jwk)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, len) = if alg == Algorithm::ES256 {
                    (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::generate(signing).expect("EC key generation");
                let point = pair.public_key().as_ref();
                let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])});
                (Signer::Ec(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().expect("Ed25519 key generation");
                let jwk =
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
                (Signer::Ed(pair), jwk)
            }
            _ => panic!(
                "the test issuer publishes asymmetric keys only; sign HMAC tokens with TokenBuilder::sign_with_secret"
            ),
        };
        jwk["kid"] = json!(kid);
        jwk["alg"] = json!(alg_name(alg));
        jwk["use"] = json!("sig");
        TestKey {
            kid,
            alg,
            signer,
            jwk,
        }
    }

    pub(super) fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .expect("RSA signing");
                sig
            }
            Signer::Ec(pair) => pair
                .sign(&rng, message)
                .expect("EC signing")
                .as_ref()
                .to_vec(),
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

/// The JWK Set document (RFC 7517 §5) of these keys, in this order.
pub(super) fn jwks(keys: &[Arc<TestKey>]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// The `alg` header value (RFC 7518 §3.1).
pub(super) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

pub(super) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes, base64url-encoded.
pub(super) fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    b64(&bytes)
}
