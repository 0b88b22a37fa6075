//! DPoP proofs as a client makes them (RFC 9449 §4.2), for tests: a key
//! pair, its thumbprint for a token's `cnf.jkt`, and proofs whose every
//! member can be changed or left out.

use aws_lc_rs::digest;
use serde_json::{Map, Value, json};

use super::keys::{TestKey, alg_name, b64, random_b64};
use crate::keys::Algorithm;

/// A client's DPoP key.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokengate::Algorithm;
/// use tokengate::testing::{DpopKey, TestIssuer};
///
/// let issuer = TestIssuer::start().await?;
/// let key = DpopKey::new(Algorithm::ES256);
/// let token = issuer.token().dpop_bound(&key).sign();
/// let proof = key.proof("GET", "http://127.0.0.1:3000/items").token(&token).sign();
/// assert_eq!(proof.split('.').count(), 3);
/// # Ok(()) }
/// ```
pub struct DpopKey {
    key: TestKey,
    jwk: Value,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.key.alg)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new key pair for `alg` (an asymmetric algorithm).
    pub fn new(alg: Algorithm) -> Self {
        let key = TestKey::new(alg);
        let mut jwk = key.jwk.clone();
        if let Some(members) = jwk.as_object_mut() {
            for m in ["kid", "alg", "use"] {
                members.remove(m);
            }
        }
        DpopKey { key, jwk }
    }

    /// The public key as the proof's `jwk` header carries it.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// Its RFC 7638 thumbprint: what a token bound to it carries as
    /// `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(self.jwk.clone()).expect("a JWK of our own");
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .expect("a thumbprint")
    }

    /// A proof for a request: `htm`, `htu`, a fresh `jti` and `iat` now.
    pub fn proof(&self, method: &str, url: &str) -> ProofBuilder<'_> {
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut header = Map::new();
        header.insert("typ".into(), json!("dpop+jwt"));
        header.insert("alg".into(), json!(alg_name(self.key.alg)));
        header.insert("jwk".into(), self.jwk.clone());
        let mut claims = Map::new();
        claims.insert("jti".into(), json!(random_b64(16)));
        claims.insert("htm".into(), json!(method));
        claims.insert("htu".into(), json!(url));
        claims.insert("iat".into(), json!(iat));
        ProofBuilder {
            key: self,
            header,
            claims,
        }
    }
}

/// A proof being made (see [`DpopKey::proof`]).
#[derive(Debug)]
pub struct ProofBuilder<'k> {
    key: &'k DpopKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl ProofBuilder<'_> {
    /// The access token it goes with: sets `ath` to its SHA-256.
    pub fn token(mut self, token: &str) -> Self {
        let hash = digest::digest(&digest::SHA256, token.as_bytes());
        self.claims.insert("ath".into(), json!(b64(hash.as_ref())));
        self
    }

    /// Sets a claim (`jti`, `iat`, `nonce`, …).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Leaves a claim out.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header member (`typ`, `alg`, `jwk`, …).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.into(), value.into());
        self
    }

    /// Leaves a header member out.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Signs these exact claims bytes under this proof's header, in place
    /// of its claims: for proofs no JSON map can hold (a member named
    /// twice, say).
    pub fn sign_raw_claims(self, claims: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&self.header).expect("JSON")),
            b64(claims)
        );
        let sig = self.key.key.sign(self.key.key.alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// Signs these exact header and claims bytes with the key: for headers
    /// no JSON map can hold (a `jwk` member named twice, say).
    ///
    /// ```
    /// use tokengate::Algorithm;
    /// use tokengate::testing::DpopKey;
    ///
    /// let key = DpopKey::new(Algorithm::ES256);
    /// let proof = key.proof("GET", "https://api.example/items")
    ///     .sign_raw(br#"{"typ":"dpop+jwt","typ":"dpop+jwt"}"#, b"{}");
    /// assert_eq!(proof.split('.').count(), 3);
    /// ```
    pub fn sign_raw(self, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = self.key.key.sign(self.key.key.alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    /// Signs with the key: a compact JWS.
    pub fn sign(self) -> String {
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&self.header).expect("JSON")),
            b64(&serde_json::to_vec(&self.claims).expect("JSON"))
        );
        let sig = self.key.key.sign(self.key.key.alg, input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}
