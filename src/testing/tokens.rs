//! Minting tokens: the [`TokenBuilder`] behind [`TestIssuer::token`], with
//! the default header and claims of an RFC 9068 access token, signed by one
//! of the issuer's keys, by an HMAC secret, by any given signature, or
//! opaque. Every token the issuer signs is remembered for introspection.
//!
//! [`TestIssuer::token`]: crate::testing::TestIssuer::token

use std::sync::Arc;

use aws_lc_rs::hmac;
use serde_json::{Map, Value, json};

use crate::clock;
use crate::keys::Algorithm;
use crate::testing::keys::{TestKey, alg_name, b64, random_b64};
use crate::testing::state::Shared;

/// The audience minted tokens carry unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "https://api.tokengate.test";

/// Builds and signs a token; see [`TestIssuer::token`](crate::testing::TestIssuer::token).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let issuer = tokengate::testing::TestIssuer::start().await?;
/// let token = issuer
///     .token()
///     .subject("alice")
///     .scope("items:read items:write")
///     .claim("tenant", "acme")
///     .expires_in(60)
///     .sign();
/// assert_eq!(token.split('.').count(), 3);
/// # Ok(()) }
/// ```
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a Shared,
    key: Arc<TestKey>,
    alg: Option<Algorithm>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl<'a> TokenBuilder<'a> {
    /// The default header (`alg` of the signing key, `typ: at+jwt`, `kid`)
    /// and claims (`iss`, `aud`, `sub`, `client_id`, `iat`, `exp` in five
    /// minutes, `jti`).
    pub(super) fn new(issuer: &'a Shared) -> Self {
        let key = issuer.signing_key();
        let now = clock::unix_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer.issuer));
        claims.insert("aud".into(), json!(DEFAULT_AUDIENCE));
        claims.insert("sub".into(), json!("test-user"));
        claims.insert("client_id".into(), json!("test-client"));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        claims.insert("jti".into(), json!(random_b64(16)));
        let mut header = Map::new();
        header.insert("alg".into(), json!(alg_name(key.alg)));
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(key.kid));
        TokenBuilder {
            issuer,
            key,
            alg: None,
            header,
            claims,
        }
    }

    /// Sets a claim (any JSON value).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Binds the token to a DPoP key (RFC 9449 §6): `cnf.jkt` is its
    /// thumbprint.
    pub fn dpop_bound(self, key: &super::DpopKey) -> Self {
        self.claim("cnf", serde_json::json!({ "jkt": key.thumbprint() }))
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header parameter (any JSON value).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.into(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `client_id`.
    pub fn client_id(self, client_id: &str) -> Self {
        self.claim("client_id", client_id)
    }

    /// Sets `scope` (space-separated).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets `aud` to one audience.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `exp` to this many seconds from now (negative: in the past).
    pub fn expires_in(self, secs: i64) -> Self {
        let exp = clock::unix_secs() as i64 + secs;
        self.claim("exp", exp)
    }

    /// Signs with this key (its `kid` goes in the header, its algorithm too
    /// unless [`alg`](Self::alg) says otherwise).
    pub fn key(mut self, kid: &str) -> Self {
        let key = self
            .issuer
            .find_key(kid)
            .unwrap_or_else(|| panic!("no test key with kid {kid:?}"));
        self.header.insert("kid".into(), json!(key.kid));
        self.header.insert("alg".into(), json!(alg_name(key.alg)));
        self.key = key;
        self
    }

    /// Signs with `alg` (which must suit the key: an RSA key signs RS* and
    /// PS*) and names it in the header.
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = Some(alg);
        self.header.insert("alg".into(), json!(alg_name(alg)));
        self
    }

    /// The `header.payload` part.
    fn signing_input(&self) -> String {
        let header = serde_json::to_vec(&self.header).expect("header serializes");
        let claims = serde_json::to_vec(&self.claims).expect("claims serialize");
        format!("{}.{}", b64(&header), b64(&claims))
    }

    /// Signs with the chosen key: a compact JWS. The issuer remembers it,
    /// so introspection knows it too.
    pub fn sign(self) -> String {
        let input = self.signing_input();
        let alg = self.alg.unwrap_or(self.key.alg);
        let sig = self.key.sign(alg, input.as_bytes());
        let token = format!("{input}.{}", b64(&sig));
        self.issued(token)
    }

    /// An opaque token with these claims: a random string that only the
    /// issuer's introspection endpoint can resolve.
    pub fn opaque(self) -> String {
        let token = random_b64(32);
        self.issued(token)
    }

    /// Signs with HMAC over `secret`, with the `alg` already in the header
    /// (HS256 if it names no HMAC algorithm). For shared-secret setups, and
    /// for the attack of signing with the issuer's public key. The issuer
    /// remembers it, so introspection knows it too.
    pub fn sign_with_secret(self, secret: &[u8]) -> String {
        let input = self.signing_input();
        let alg = match self.header.get("alg").and_then(Value::as_str) {
            Some("HS384") => hmac::HMAC_SHA384,
            Some("HS512") => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        };
        let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
        let token = format!("{input}.{}", b64(tag.as_ref()));
        self.issued(token)
    }

    /// The header and claims with this exact signature part (empty for an
    /// unsigned token).
    pub fn with_signature(self, signature: &[u8]) -> String {
        format!("{}.{}", self.signing_input(), b64(signature))
    }

    /// Hands out a token the issuer has signed, after telling introspection.
    fn issued(self, token: String) -> String {
        self.issuer.remember(&token, &self.claims);
        token
    }
}
