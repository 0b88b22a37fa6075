//! Verification keys: JWKs (RFC 7517, RFC 7518 §6) parsed once into
//! ready-to-use aws-lc-rs keys, each bound to the algorithms it may verify.
//!
//! The binding comes from the key, never from the token: an RSA key verifies
//! only `RS*`/`PS*`, a P-256 key only `ES256`, an Ed25519 key only `EdDSA`,
//! narrowed further by the JWK's own `alg` and by the configured allow-list.
//! HMAC keys exist only when the user configures a shared secret; `oct` keys
//! in a fetched JWKS are ignored. So `alg: none` and "HMAC signed with the
//! public key" have no key to succeed with.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{hmac, signature};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse, ThumbprintHash,
};

pub use jsonwebtoken::Algorithm;

use crate::error::InvalidToken;

/// JWK members are base64url; some servers pad them, which RFC 7518 does not
/// allow but costs nothing to accept for key material we only read.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const ALL: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// A set of JWS algorithms, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// Every asymmetric algorithm we support: the default allow-list.
    pub(crate) const ASYMMETRIC: AlgorithmSet = AlgorithmSet(
        (1 << 3)
            | (1 << 4)
            | (1 << 5)
            | (1 << 6)
            | (1 << 7)
            | (1 << 8)
            | (1 << 9)
            | (1 << 10)
            | (1 << 11),
    );

    fn bit(alg: Algorithm) -> u16 {
        1 << ALL.iter().position(|a| *a == alg).unwrap_or(15)
    }

    pub(crate) fn from_iter(algs: impl IntoIterator<Item = Algorithm>) -> Self {
        AlgorithmSet(algs.into_iter().fold(0, |acc, a| acc | Self::bit(a)))
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & Self::bit(alg) != 0
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        ALL.into_iter().filter(move |a| self.contains(*a))
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Parses a JOSE `alg` header value. Exact, case-sensitive names only
/// (RFC 7515 §4.1.1); `none` and anything unknown are `None`.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}

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
    fn is_secret(&self) -> bool {
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

/// The outcome of looking a token's key up in a [`KeySet`].
pub(crate) enum Lookup<'a> {
    /// Keys that may verify the token: try them in order.
    Found(Candidates<'a>),
    /// No key has this `kid` (a refresh may find it).
    UnknownKid,
    /// The token has no `kid`, and no key supports its `alg`.
    NoCandidate,
    /// Keys exist for the `kid`, but none may verify the header's `alg`.
    AlgorithmMismatch,
}

/// At most this many keys are tried for one token: a token without `kid`
/// while the issuer publishes its previous, current and next keys, or a
/// `kid` the issuer reused across keys. Each try is a signature check a
/// request can make us pay for, so the bound stays small.
pub(crate) const MAX_CANDIDATES: usize = 3;

/// The keys that support a token's algorithm, among those it may name.
#[derive(Clone, Copy)]
pub(crate) struct Candidates<'a> {
    keys: &'a [Arc<VerifyingKey>],
    alg: Algorithm,
}

impl<'a> Candidates<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a Arc<VerifyingKey>> {
        self.keys
            .iter()
            .filter(move |k| k.supports(self.alg))
            .take(MAX_CANDIDATES)
    }
}

/// An immutable snapshot of usable keys, indexed by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Vec<Arc<VerifyingKey>>>,
    all: Vec<Arc<VerifyingKey>>,
    /// The keys a token without `kid` may use: all but the shared secrets
    /// configured with a `kid`, which verify only tokens naming it.
    kidless: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<VerifyingKey>) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(Arc::new(key));
        }
        set
    }

    fn insert(&mut self, key: Arc<VerifyingKey>) {
        if let Some(kid) = key.kid() {
            self.by_kid.entry(kid.into()).or_default().push(key.clone());
        }
        if key.kid().is_none() || !key.is_secret() {
            self.kidless.push(key.clone());
        }
        self.all.push(key);
    }

    /// Parses every JWK it can; the others are reported, not fatal.
    pub(crate) fn from_jwks(
        keys: impl IntoIterator<Item = Result<Jwk, String>>,
        allowed: AlgorithmSet,
    ) -> (Self, Vec<(Option<String>, String)>) {
        let mut usable = Vec::new();
        let mut skipped = Vec::new();
        for jwk in keys {
            match jwk {
                Ok(jwk) => match VerifyingKey::from_jwk(&jwk, allowed) {
                    Ok(key) => usable.push(key),
                    Err(why) => skipped.push((jwk.common.key_id.clone(), why.to_string())),
                },
                Err(why) => skipped.push((None, why)),
            }
        }
        (KeySet::new(usable), skipped)
    }

    /// This set plus keys the user configured (shared secrets).
    pub(crate) fn with_pinned(mut self, pinned: &[Arc<VerifyingKey>]) -> Self {
        for key in pinned {
            self.insert(key.clone());
        }
        self
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The keys for a token's `kid` and `alg`: those with that `kid`, or for
    /// a token without `kid` every key but the shared secrets configured
    /// with a `kid`; in both cases only keys that support `alg`, and at most
    /// [`MAX_CANDIDATES`] of them.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let (keys, miss) = match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => return Lookup::UnknownKid,
                Some(keys) => (keys.as_slice(), Lookup::AlgorithmMismatch),
            },
            None => (self.kidless.as_slice(), Lookup::NoCandidate),
        };
        if keys.iter().any(|k| k.supports(alg)) {
            Lookup::Found(Candidates { keys, alg })
        } else {
            miss
        }
    }

    /// Whether the key a token was verified with is still in this set.
    pub(crate) fn still_has(&self, kid: Option<&str>, thumbprint: &str) -> bool {
        let keys = match kid {
            Some(kid) => self.by_kid.get(kid).map(Vec::as_slice).unwrap_or(&[]),
            None => &self.kidless,
        };
        keys.iter().any(|k| k.thumbprint() == thumbprint)
    }
}

#[cfg(test)]
mod tests {
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
