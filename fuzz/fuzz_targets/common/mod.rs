//! Shared fixtures: a small current-thread runtime, fixed keys, and gates
//! built from static keys (no network, no discovery).
#![allow(dead_code)]

use std::sync::OnceLock;

use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{hmac, rand::SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokengate::{JwkSet, TokenGate, TokenGateBuilder};

pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "https://api.example";
/// 32 bytes: the minimum for HS256 (RFC 7518 §3.2).
pub const HS_SECRET: &[u8] = b"fuzz-fuzz-fuzz-fuzz-fuzz-fuzz-32";

/// A fixed P-256 key (PKCS#8 DER), so runs are reproducible.
const EC_PKCS8: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420beb0b6d8fb0d3a341386e85a0f7ebea9861aaba872e31c69cc0ab65eb44ceab3a1440342000411792dbab88aed592508ace9f8fc8a2d4c386ec8b3b8a11606cb09da7952c90db5137e9fec0e1f2774d4933cbe854b3c870ced93bbbaba7839f54d2b314112ff";
/// A fixed Ed25519 seed.
const ED_SEED: [u8; 32] = [7; 32];
/// A fixed 2048-bit RSA modulus (public key only: RSA signing is too slow
/// for a fuzz loop; the key is there for lookup and failed verification).
const RSA_N: &str = include_str!("rsa_n.hex");

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

pub struct Keys {
    pub ec: EcdsaKeyPair,
    pub ed: Ed25519KeyPair,
    pub jwks: JwkSet,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ec = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &unhex(EC_PKCS8),
        )
        .unwrap();
        let ed = Ed25519KeyPair::from_seed_unchecked(&ED_SEED).unwrap();
        let point = ec.public_key().as_ref();
        assert_eq!(point.len(), 65);
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig",
             "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA",
             "x": b64(ed.public_key().as_ref())},
            {"kty": "RSA", "kid": "rsa", "n": b64(&unhex(RSA_N)), "e": "AQAB"},
        ]});
        let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
        Keys { ec, ed, jwks }
    })
}

/// A builder with the fixed keys: ES256 (`ec`), EdDSA (`ed`), RSA (`rsa`)
/// and an HS256 shared secret (`hs`).
pub fn builder() -> TokenGateBuilder {
    TokenGate::builder()
        .issuer(ISSUER)
        .static_keys(keys().jwks.clone())
        .hmac_secret(Some("hs"), HS_SECRET, tokengate::Algorithm::HS256)
}

pub fn build(b: TokenGateBuilder) -> TokenGate {
    runtime().block_on(b.build()).expect("fuzz gate builds")
}

/// How a structured input is signed.
#[derive(Clone, Copy, Debug)]
pub enum Signer {
    Hs256,
    Es256,
    EdDsa,
    /// A fixed garbage signature.
    Garbage,
}

/// `b64(header).b64(claims).b64(signature)` over arbitrary header and
/// claims bytes.
pub fn sign(signer: Signer, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig: Vec<u8> = match signer {
        Signer::Hs256 => {
            let key = hmac::Key::new(hmac::HMAC_SHA256, HS_SECRET);
            hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
        }
        Signer::Es256 => keys()
            .ec
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        Signer::EdDsa => keys().ed.sign(input.as_bytes()).as_ref().to_vec(),
        Signer::Garbage => b"not a signature".to_vec(),
    };
    format!("{input}.{}", b64(&sig))
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `TOKENGATE_FUZZ_DEBUG=1` prints each outcome (for checking seeds).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("TOKENGATE_FUZZ_DEBUG").is_some())
}

/// The member names of a JSON object, duplicates included (a `Map` keeps
/// only the last of each). Names are compared unescaped, as every reader
/// does (`"a"` and `"\u0061"` are one name).
struct MemberNames(Vec<String>);

impl<'de> serde::Deserialize<'de> for MemberNames {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MemberNames;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MemberNames, A::Error> {
                let mut names = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    names.push(k);
                }
                Ok(MemberNames(names))
            }
        }
        d.deserialize_map(V)
    }
}

/// `json` is a JSON object (syntax only: values are skipped, so numbers out
/// of range and lone surrogates in values do not matter) that names one
/// top-level member twice. Repeats inside a member's value do not count.
pub fn duplicate_member(json: &[u8]) -> bool {
    serde_json::from_slice::<MemberNames>(json).is_ok_and(|MemberNames(mut names)| {
        names.sort_unstable();
        names.windows(2).any(|w| w[0] == w[1])
    })
}
