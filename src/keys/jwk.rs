//! One JWK (RFC 7517, RFC 7518 §6) parsed once into a ready-to-use
//! aws-lc-rs key, bound to the algorithms its type allows.

use std::fmt;

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse, ThumbprintHash,
};

use super::algorithm::{Algorithm, AlgorithmSet};
use crate::error::InvalidToken;

/// JWK members are base64url; some servers pad them, which RFC 7518 does not
/// allow but costs nothing to accept for key material we only read.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

enum Verifier {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

/// One key, ready to verify, with the algorithms it is bound to.
pub(crate) struct VerifyingKey {
    kid: Option<Box<str>>,
    /// At most six entries (an RSA key without `alg`), so a scan beats a map.
    verifiers: Vec<(Algorithm, Verifier)>,
    /// Identifies the key material (RFC 7638 thumbprint for JWKs), so a cache
    /// of verified tokens can tell when a `kid` now names another key.
    thumbprint: Box<str>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field(
                "algorithms",
                &self.verifiers.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Why a JWK was skipped. Logged as a warning; never fatal for the set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeySkipped {
    #[error("key is for encryption (use: {0})")]
    NotForSignatures(String),
    #[error("key_ops does not include verify")]
    NoVerifyOperation,
    #[error("symmetric (oct) keys are never taken from a key set")]
    Symmetric,
    #[error("unsupported key type or curve")]
    UnsupportedKeyType,
    #[error("unsupported or unknown alg {0}")]
    UnsupportedAlgorithm(String),
    #[error("alg {0:?} does not fit the key type")]
    AlgorithmDoesNotFitKey(Algorithm),
    #[error("none of the key's algorithms is allowed by the configuration")]
    NoAllowedAlgorithm,
    #[error("RSA modulus of {0} bits is below the 2048-bit minimum")]
    RsaTooSmall(usize),
    #[error("RSA modulus of {0} bits is above the 8192-bit maximum")]
    RsaTooLarge(usize),
    #[error("broken key parameters")]
    BrokenParameters,
}

impl VerifyingKey {
    /// Parses a JWK into a verifying key for the allowed algorithms.
    pub(crate) fn from_jwk(jwk: &Jwk, allowed: AlgorithmSet) -> Result<Self, KeySkipped> {
        match &jwk.common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(PublicKeyUse::Encryption) => {
                return Err(KeySkipped::NotForSignatures("enc".into()));
            }
            Some(PublicKeyUse::Other(u)) => return Err(KeySkipped::NotForSignatures(u.clone())),
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
        {
            return Err(KeySkipped::NoVerifyOperation);
        }
        let declared = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => Some(
                Algorithm::try_from(ka)
                    .map_err(|_| KeySkipped::UnsupportedAlgorithm(ka.to_string()))?,
            ),
        };
        let fits = |candidates: &[Algorithm]| -> Result<Vec<Algorithm>, KeySkipped> {
            let algs: Vec<Algorithm> = match declared {
                Some(alg) if candidates.contains(&alg) => vec![alg],
                Some(alg) => return Err(KeySkipped::AlgorithmDoesNotFitKey(alg)),
                None => candidates.to_vec(),
            };
            let algs: Vec<Algorithm> = algs.into_iter().filter(|a| allowed.contains(*a)).collect();
            if algs.is_empty() {
                Err(KeySkipped::NoAllowedAlgorithm)
            } else {
                Ok(algs)
            }
        };

        let verifiers = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                use Algorithm::*;
                let algs = fits(&[RS256, RS384, RS512, PS256, PS384, PS512])?;
                let (n, e) = (decode(&rsa.n)?, decode(&rsa.e)?);
                // RFC 7518 §6.3.1.1 wants the shortest encoding, yet warns
                // that producers prepend a zero octet; aws-lc-rs refuses one.
                let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
                let bits = bit_length(n);
                if bits < 2048 {
                    return Err(KeySkipped::RsaTooSmall(bits));
                }
                // The verification parameters stop at 8192 bits: a larger
                // key would parse, count as usable, and fail every token.
                if bits > 8192 {
                    return Err(KeySkipped::RsaTooLarge(bits));
                }
                let components = signature::RsaPublicKeyComponents { n, e };
                algs.into_iter()
                    .map(|alg| {
                        let key = components
                            .to_parsed_public_key(rsa_params(alg))
                            .map_err(|_| KeySkipped::BrokenParameters)?;
                        Ok((alg, Verifier::Public(key)))
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let (alg, verification, len): (
                    _,
                    &'static dyn signature::VerificationAlgorithm,
                    _,
                ) = match ec.curve {
                    EllipticCurve::P256 => {
                        (Algorithm::ES256, &signature::ECDSA_P256_SHA256_FIXED, 32)
                    }
                    EllipticCurve::P384 => {
                        (Algorithm::ES384, &signature::ECDSA_P384_SHA384_FIXED, 48)
                    }
                    _ => return Err(KeySkipped::UnsupportedKeyType),
                };
                let algs = fits(&[alg])?;
                let (x, y) = (decode(&ec.x)?, decode(&ec.y)?);
                if x.len() != len || y.len() != len {
                    return Err(KeySkipped::BrokenParameters);
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = signature::ParsedPublicKey::new(verification, &point)
                    .map_err(|_| KeySkipped::BrokenParameters)?;
                vec![(algs[0], Verifier::Public(key))]
            }
            AlgorithmParameters::OctetKeyPair(okp) => {
                if okp.curve != EllipticCurve::Ed25519 {
                    return Err(KeySkipped::UnsupportedKeyType);
                }
                fits(&[Algorithm::EdDSA])?;
                let x = decode(&okp.x)?;
                if x.len() != 32 {
                    return Err(KeySkipped::BrokenParameters);
                }
                let key = signature::ParsedPublicKey::new(&signature::ED25519, &x)
                    .map_err(|_| KeySkipped::BrokenParameters)?;
                vec![(Algorithm::EdDSA, Verifier::Public(key))]
            }
            AlgorithmParameters::OctetKey(_) => return Err(KeySkipped::Symmetric),
            _ => return Err(KeySkipped::UnsupportedKeyType),
        };
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| KeySkipped::BrokenParameters)?;
        Ok(VerifyingKey {
            kid: jwk.common.key_id.as_deref().map(Into::into),
            verifiers,
            thumbprint: thumbprint.into(),
        })
    }

    /// A key for a shared secret the user configured explicitly.
    pub(crate) fn hmac(kid: Option<&str>, secret: &[u8], alg: Algorithm) -> Option<Self> {
        let h = match alg {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            _ => return None,
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        Some(VerifyingKey {
            kid: kid.map(Into::into),
            verifiers: vec![(alg, Verifier::Hmac(Box::new(hmac::Key::new(h, secret))))],
            // A digest of a digest: identifies the secret without revealing it.
            thumbprint: format!(
                "hmac:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    digest.as_ref()
                ))
            )
            .into(),
        })
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether this is a shared secret the user configured.
    pub(crate) fn is_secret(&self) -> bool {
        self.verifiers
            .iter()
            .any(|(_, v)| matches!(v, Verifier::Hmac(_)))
    }

    pub(crate) fn supports(&self, alg: Algorithm) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == alg)
    }

    /// Verifies `signature` over `message` with `alg`, which must be one of
    /// the key's bound algorithms.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), InvalidToken> {
        let (_, verifier) = self
            .verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .ok_or(InvalidToken::AlgorithmMismatch)?;
        let ok = match verifier {
            Verifier::Public(key) => key.verify_sig(message, sig).is_ok(),
            Verifier::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(InvalidToken::BadSignature)
        }
    }
}

fn rsa_params(alg: Algorithm) -> &'static signature::RsaParameters {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn decode(s: &str) -> Result<Vec<u8>, KeySkipped> {
    JWK_B64.decode(s).map_err(|_| KeySkipped::BrokenParameters)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

fn bit_length(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        None => 0,
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
    }
}
