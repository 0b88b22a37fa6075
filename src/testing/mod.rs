//! An in-process authorization server for tests and examples (feature
//! `testing`).
//!
//! [`TestIssuer`] listens on a loopback port and serves OpenID Connect and
//! RFC 8414 discovery and a JWKS. It mints tokens with any header and claims,
//! rotates keys, counts requests per endpoint, and injects faults (down,
//! slow, an error status, an oversize or garbage body, a redirect, here or
//! to another server), so the
//! behaviour of a resource server against a misbehaving authorization server
//! can be tested without one.
//!
//! ```
//! use tokengate::testing::{Endpoint, Fault, TestIssuer};
//! use tokengate::{Algorithm, TokenGate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::start().await?;
//! let gate = TokenGate::builder()
//!     .issuer(issuer.issuer())
//!     .audience(issuer.audience())
//!     .build()
//!     .await?;
//! assert_eq!(issuer.requests(Endpoint::Jwks), 1);
//!
//! // A token signed by a key the gate has not seen yet: one refetch.
//! let kid = issuer.add_key(Algorithm::RS256);
//! let token = issuer.token().key(&kid).scope("items:read").sign();
//! assert!(gate.verify(&token).await.is_ok());
//! assert_eq!(issuer.requests(Endpoint::Jwks), 2);
//!
//! issuer.set_fault(Endpoint::Jwks, Some(Fault::Status(500)));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{hmac, rsa};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::keys::Algorithm;

/// The audience minted tokens carry unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "https://api.tokengate.test";

/// An endpoint of the test issuer, for counters and faults.
///
/// ```
/// assert_ne!(tokengate::testing::Endpoint::Jwks, tokengate::testing::Endpoint::Discovery);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Discovery,
    /// `/.well-known/oauth-authorization-server`
    OAuthMetadata,
    /// `/jwks`
    Jwks,
    /// `/introspect`
    Introspection,
    /// Any other path (where a redirect points, or what a `jku` names).
    Other,
}

const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::Discovery,
    Endpoint::OAuthMetadata,
    Endpoint::Jwks,
    Endpoint::Introspection,
    Endpoint::Other,
];

/// A misbehaviour to inject at an endpoint.
///
/// ```
/// use std::time::Duration;
/// use tokengate::testing::Fault;
/// let slow = Fault::Slow(Duration::from_secs(10));
/// # drop(slow);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close the connection without answering.
    Down,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer with this status and an empty JSON object.
    Status(u16),
    /// Answer 200 with a body of this many bytes, announced by
    /// `Content-Length`.
    Oversize(usize),
    /// Answer 200 with a body of this many bytes, streamed in chunks with no
    /// length announced.
    OversizeChunked(usize),
    /// Answer `302 Found` pointing at another path of this server.
    Redirect,
    /// Answer with this 3xx status (`302`, `307`, `308`, …) and this
    /// `Location`: another test issuer's endpoint, say, which would answer
    /// well, so a client that follows the redirect gets a good answer from
    /// the wrong place.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokengate::testing::{Endpoint, Fault, TestIssuer};
    /// let (issuer, elsewhere) = (TestIssuer::start().await?, TestIssuer::start().await?);
    /// issuer.set_fault(
    ///     Endpoint::Jwks,
    ///     Some(Fault::RedirectTo { status: 307, location: elsewhere.jwks_uri() }),
    /// );
    /// # Ok(()) }
    /// ```
    RedirectTo {
        /// The redirect status.
        status: u16,
        /// The absolute or relative URL the answer points at.
        location: String,
    },
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with an HTML page.
    Html,
    /// Answer 200 with this exact body (JSON of the wrong shape, say).
    Body(String),
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: String,
    alg: Algorithm,
    signer: Signer,
    jwk: Value,
}

impl TestKey {
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

    fn sign(&self, alg: Algorithm, message: &[u8]) -> Vec<u8> {
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

fn alg_name(alg: Algorithm) -> &'static str {
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

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system randomness");
    b64(&bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token the issuer knows, for introspection.
struct Issued {
    claims: Map<String, Value>,
    revoked: bool,
}

/// How a client may authenticate at the introspection endpoint.
enum ClientCredential {
    Secret(String),
    /// Checked with jsonwebtoken, not with this crate's verifier: the test
    /// issuer is an oracle for the crate, so it must not share its code.
    PublicKey {
        key: Box<jsonwebtoken::DecodingKey>,
        algorithms: Vec<Algorithm>,
    },
}

#[derive(Default)]
struct State {
    /// Published keys, in JWKS order; the first signs by default.
    keys: Vec<Arc<TestKey>>,
    faults: HashMap<Endpoint, Fault>,
    jwks_max_age: Option<u64>,
    metadata_issuer: Option<String>,
    /// Tokens by their exact text (this is a test server).
    issued: HashMap<String, Issued>,
    clients: HashMap<String, ClientCredential>,
    last_client_auth: Option<&'static str>,
}

struct Shared {
    issuer: String,
    state: Mutex<State>,
    counts: [AtomicUsize; 5],
    in_flight: [AtomicUsize; 5],
    max_in_flight: [AtomicUsize; 5],
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(endpoint: Endpoint) -> usize {
        ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(4)
    }

    fn count(&self, endpoint: Endpoint) -> &AtomicUsize {
        &self.counts[Self::index(endpoint)]
    }

    fn remember(&self, token: &str, claims: &Map<String, Value>) {
        self.state().issued.insert(
            token.to_owned(),
            Issued {
                claims: claims.clone(),
                revoked: false,
            },
        );
    }
}

/// Counts a request in flight at an endpoint while alive.
struct InFlight<'a> {
    shared: &'a Shared,
    index: usize,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared, endpoint: Endpoint) -> Self {
        let index = Shared::index(endpoint);
        let now = shared.in_flight[index].fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight[index].fetch_max(now, Ordering::SeqCst);
        InFlight { shared, index }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.in_flight[self.index].fetch_sub(1, Ordering::SeqCst);
    }
}

/// The client the test issuer registers for introspection.
pub const INTROSPECTION_CLIENT_ID: &str = "tokengate-resource-server";
/// Its secret. It contains characters that RFC 6749 §2.3.1's
/// form-urlencoding changes, so a client that skips the encoding fails.
pub const INTROSPECTION_CLIENT_SECRET: &str = "s3cret:with/special+chars%&=";

/// An authorization server on a loopback port, for tests.
///
/// Starts with one ES256 key. The server stops when the `TestIssuer` is
/// dropped.
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    /// Keys rotated out of the JWKS, kept so tests can still sign with them.
    retired: Mutex<Vec<Arc<TestKey>>>,
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestIssuer {
    /// Starts a test issuer on `127.0.0.1` with a free port and one ES256 key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let issuer = tokengate::testing::TestIssuer::start().await?;
    /// assert!(issuer.issuer().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn start() -> io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// Starts a test issuer on a chosen loopback address (to restart one on
    /// the port of another, say).
    pub async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the test issuer listens on loopback only",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut state = State::default();
        state.clients.insert(
            INTROSPECTION_CLIENT_ID.to_owned(),
            ClientCredential::Secret(INTROSPECTION_CLIENT_SECRET.to_owned()),
        );
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            state: Mutex::new(state),
            counts: Default::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let issuer = TestIssuer {
            server: tokio::spawn(serve(listener, shared.clone())),
            shared,
            addr,
            retired: Mutex::new(Vec::new()),
        };
        issuer.add_key(Algorithm::ES256);
        Ok(issuer)
    }

    /// The issuer identifier, `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The audience minted tokens carry by default ([`DEFAULT_AUDIENCE`]).
    pub fn audience(&self) -> String {
        DEFAULT_AUDIENCE.to_owned()
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// A URL on this server (for a `jku` that must never be fetched, say).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.issuer)
    }

    /// Generates a key for `alg`, publishes it after the existing ones, and
    /// returns its `kid`. Tokens are still signed by the first key unless
    /// they ask for this one ([`TokenBuilder::key`]).
    pub fn add_key(&self, alg: Algorithm) -> String {
        let kid = format!(
            "{}-{}",
            alg_name(alg).to_ascii_lowercase(),
            &random_id()[..8]
        );
        let key = Arc::new(TestKey::generate(alg, kid.clone()));
        self.shared.state().keys.push(key);
        kid
    }

    /// Like [`add_key`](Self::add_key), but the published JWK carries
    /// neither `alg` nor `use` (both are optional, RFC 7517 §4.2 and §4.4),
    /// so the resource server has to bind the key to algorithms from its type
    /// alone: an RSA key then verifies RS* and PS* alike.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let issuer = tokengate::testing::TestIssuer::start().await?;
    /// let kid = issuer.add_bare_key(tokengate::Algorithm::RS256);
    /// let jwk = &issuer.jwks()["keys"][1];
    /// assert_eq!(jwk["kid"], kid.as_str());
    /// assert!(jwk.get("alg").is_none() && jwk.get("use").is_none());
    /// # Ok(()) }
    /// ```
    pub fn add_bare_key(&self, alg: Algorithm) -> String {
        let kid = format!("bare-{}", &random_id()[..8]);
        let mut key = TestKey::generate(alg, kid.clone());
        if let Some(jwk) = key.jwk.as_object_mut() {
            jwk.remove("alg");
            jwk.remove("use");
        }
        self.shared.state().keys.push(Arc::new(key));
        kid
    }

    /// Removes a key from the JWKS; tokens can still be signed with it
    /// (they should then be refused).
    pub fn remove_key(&self, kid: &str) {
        let mut state = self.shared.state();
        state.keys.retain(|k| k.kid != kid);
    }

    /// Replaces every key with one new key of the same algorithm as the
    /// current signing key, returning the new `kid`. Keys that left are kept
    /// for signing, so tests can mint tokens the server no longer vouches for.
    pub fn rotate(&self) -> String {
        let alg = self.signing_key().alg;
        let kid = format!(
            "{}-{}",
            alg_name(alg).to_ascii_lowercase(),
            &random_id()[..8]
        );
        let key = Arc::new(TestKey::generate(alg, kid.clone()));
        let mut state = self.shared.state();
        let old = std::mem::take(&mut state.keys);
        state.keys.push(key);
        drop(state);
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(old);
        kid
    }

    /// The `kid` of the key that signs by default.
    pub fn signing_kid(&self) -> String {
        self.signing_key().kid.clone()
    }

    /// The public JWKS as served.
    pub fn jwks(&self) -> Value {
        jwks_json(&self.shared.state())
    }

    /// Starts a token with the default header (`alg` of the signing key,
    /// `typ: at+jwt`, `kid`) and claims (`iss`, `aud`, `sub`, `client_id`,
    /// `iat`, `exp` in five minutes, `jti`).
    pub fn token(&self) -> TokenBuilder<'_> {
        let key = self.signing_key();
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.shared.issuer));
        claims.insert("aud".into(), json!(DEFAULT_AUDIENCE));
        claims.insert("sub".into(), json!("test-user"));
        claims.insert("client_id".into(), json!("test-client"));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        claims.insert("jti".into(), json!(random_id()));
        let mut header = Map::new();
        header.insert("alg".into(), json!(alg_name(key.alg)));
        header.insert("typ".into(), json!("at+jwt"));
        header.insert("kid".into(), json!(key.kid));
        TokenBuilder {
            issuer: self,
            key,
            alg: None,
            header,
            claims,
        }
    }

    /// How many requests an endpoint has received.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.shared.count(endpoint).load(Ordering::SeqCst)
    }

    /// The most requests an endpoint has had in flight at once.
    pub fn max_concurrent(&self, endpoint: Endpoint) -> usize {
        self.shared.max_in_flight[Shared::index(endpoint)].load(Ordering::SeqCst)
    }

    /// Sets all request counters (and concurrency high-water marks) to zero.
    pub fn reset_counts(&self) {
        for c in self.shared.counts.iter().chain(&self.shared.max_in_flight) {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// Revokes a token: introspection answers `active: false` from now on.
    pub fn revoke(&self, token: &str) {
        if let Some(issued) = self.shared.state().issued.get_mut(token) {
            issued.revoked = true;
        }
    }

    /// Registers another client for the introspection endpoint, with a
    /// secret (`client_secret_basic` or `client_secret_post`).
    pub fn register_client(&self, client_id: &str, secret: &str) {
        self.shared.state().clients.insert(
            client_id.to_owned(),
            ClientCredential::Secret(secret.to_owned()),
        );
    }

    /// Registers a client that authenticates with `private_key_jwt`
    /// (RFC 7523), with its public key as a JWK.
    ///
    /// # Panics
    /// If the JWK is not a usable asymmetric signing key.
    pub fn register_client_key(&self, client_id: &str, public_jwk: &crate::Jwk) {
        use jsonwebtoken::jwk::AlgorithmParameters;
        let family = match &public_jwk.algorithm {
            AlgorithmParameters::RSA(_) => jsonwebtoken::AlgorithmFamily::Rsa,
            AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::AlgorithmFamily::Ec,
            AlgorithmParameters::OctetKeyPair(_) => jsonwebtoken::AlgorithmFamily::Ed,
            _ => panic!("a client key must be an asymmetric public key"),
        };
        let algorithms = match public_jwk.common.key_algorithm {
            Some(ka) => vec![Algorithm::try_from(ka).expect("a JWS signing algorithm")],
            None => family.algorithms().to_vec(),
        };
        let key =
            jsonwebtoken::DecodingKey::from_jwk(public_jwk).expect("a usable public signing key");
        self.shared.state().clients.insert(
            client_id.to_owned(),
            ClientCredential::PublicKey {
                key: Box::new(key),
                algorithms,
            },
        );
    }

    /// How the last introspection call authenticated: `"client_secret_basic"`,
    /// `"client_secret_post"` or `"private_key_jwt"`.
    pub fn last_client_auth(&self) -> Option<&'static str> {
        self.shared.state().last_client_auth
    }

    /// Injects a fault at an endpoint (`None` heals it).
    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut state = self.shared.state();
        match fault {
            Some(f) => state.faults.insert(endpoint, f),
            None => state.faults.remove(&endpoint),
        };
    }

    /// Sends `Cache-Control: max-age=N` with the JWKS.
    pub fn set_jwks_max_age(&self, max_age: Option<u64>) {
        self.shared.state().jwks_max_age = max_age;
    }

    /// Makes the metadata documents name another issuer (to test the
    /// exact-match rule of RFC 8414 §3.3).
    pub fn set_metadata_issuer(&self, issuer: Option<String>) {
        self.shared.state().metadata_issuer = issuer;
    }

    fn signing_key(&self) -> Arc<TestKey> {
        self.shared
            .state()
            .keys
            .first()
            .cloned()
            .or_else(|| self.retired.lock().ok().and_then(|r| r.last().cloned()))
            .expect("the test issuer has no key; add one with add_key")
    }

    fn find_key(&self, kid: &str) -> Option<Arc<TestKey>> {
        let published = self
            .shared
            .state()
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .cloned();
        published.or_else(|| {
            self.retired
                .lock()
                .ok()
                .and_then(|r| r.iter().find(|k| k.kid == kid).cloned())
        })
    }
}

/// Builds and signs a token; see [`TestIssuer::token`].
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
    issuer: &'a TestIssuer,
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

impl TokenBuilder<'_> {
    /// Sets a claim (any JSON value).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
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
        let exp = now() as i64 + secs;
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
        self.issuer.shared.remember(&token, &self.claims);
        token
    }

    /// An opaque token with these claims: a random string that only the
    /// issuer's introspection endpoint can resolve.
    pub fn opaque(self) -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("system randomness");
        let token = b64(&bytes);
        self.issuer.shared.remember(&token, &self.claims);
        token
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
        self.issuer.shared.remember(&token, &self.claims);
        token
    }

    /// The header and claims with this exact signature part (empty for an
    /// unsigned token).
    pub fn with_signature(self, signature: &[u8]) -> String {
        format!("{}.{}", self.signing_input(), b64(signature))
    }
}

fn jwks_json(state: &State) -> Value {
    json!({ "keys": state.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

type ServerBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// How long to wait after a failed `accept()`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);

/// The next accepted connection. An `accept()` error (no file descriptor
/// left, say) tends to last a while and returns at once: retrying at once
/// would spin a core.
async fn next_connection<S, F: Future<Output = io::Result<S>>>(mut accept: impl FnMut() -> F) -> S {
    loop {
        match accept().await {
            Ok(connection) => return connection,
            Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = next_connection(|| listener.accept()).await;
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { handle(shared, req).await }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Hangup;

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection closed")
    }
}

impl std::error::Error for Hangup {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ServerBody>, Hangup> {
    let endpoint = match (req.method(), req.uri().path()) {
        (&Method::GET, "/.well-known/openid-configuration") => Endpoint::Discovery,
        (&Method::GET, "/.well-known/oauth-authorization-server") => Endpoint::OAuthMetadata,
        (&Method::GET, "/jwks") => Endpoint::Jwks,
        (&Method::POST, "/introspect") => Endpoint::Introspection,
        _ => Endpoint::Other,
    };
    shared.count(endpoint).fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(&shared, endpoint);
    let fault = shared.state().faults.get(&endpoint).cloned();
    if let Some(fault) = fault {
        match fault {
            Fault::Down => return Err(Hangup),
            Fault::Slow(d) => tokio::time::sleep(d).await,
            Fault::Status(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Ok(respond(
                    status,
                    "application/json",
                    Bytes::from_static(b"{}"),
                ));
            }
            Fault::Oversize(n) => {
                let mut body = vec![b' '; n];
                body[0] = b'{';
                return Ok(respond(StatusCode::OK, "application/json", body.into()));
            }
            Fault::OversizeChunked(n) => {
                let body = Chunks { left: n };
                let mut response = Response::new(body.boxed());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(response);
            }
            Fault::Redirect => {
                return Ok(redirect(StatusCode::FOUND, "/moved"));
            }
            Fault::RedirectTo { status, location } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
                return Ok(redirect(status, &location));
            }
            Fault::Garbage => {
                return Ok(respond(
                    StatusCode::OK,
                    "application/json",
                    Bytes::from_static(b"{\"keys\": [ this is not json"),
                ));
            }
            Fault::Html => {
                return Ok(respond(
                    StatusCode::OK,
                    "text/html",
                    Bytes::from_static(b"<html><body>Please log in</body></html>"),
                ));
            }
            Fault::Body(body) => {
                return Ok(respond(StatusCode::OK, "application/json", body.into()));
            }
        }
    }
    let issuer = &shared.issuer;
    Ok(match endpoint {
        Endpoint::Discovery | Endpoint::OAuthMetadata => {
            let named = shared
                .state()
                .metadata_issuer
                .clone()
                .unwrap_or_else(|| issuer.clone());
            let doc = json!({
                "issuer": named,
                "jwks_uri": format!("{issuer}/jwks"),
                "introspection_endpoint": format!("{issuer}/introspect"),
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["client_credentials"],
            });
            respond(StatusCode::OK, "application/json", doc.to_string().into())
        }
        Endpoint::Jwks => {
            let (body, max_age) = {
                let state = shared.state();
                (jwks_json(&state).to_string(), state.jwks_max_age)
            };
            let etag = format!(
                "\"{}\"",
                b64(
                    &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes())
                        .as_ref()[..12]
                )
            );
            let matches = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            let mut response = if matches {
                respond(StatusCode::NOT_MODIFIED, "application/json", Bytes::new())
            } else {
                respond(StatusCode::OK, "application/jwk-set+json", body.into())
            };
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&etag) {
                headers.insert(header::ETAG, v);
            }
            if let Some(v) =
                max_age.and_then(|age| HeaderValue::from_str(&format!("max-age={age}")).ok())
            {
                headers.insert(header::CACHE_CONTROL, v);
            }
            response
        }
        Endpoint::Introspection => introspect(&shared, req).await,
        Endpoint::Other => respond(
            StatusCode::NOT_FOUND,
            "application/json",
            Bytes::from_static(b"{}"),
        ),
    })
}

/// RFC 7662 §2: authenticate the client, then answer for the token.
async fn introspect(shared: &Shared, req: Request<Incoming>) -> Response<ServerBody> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return respond(StatusCode::BAD_REQUEST, "application/json", Bytes::new());
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut state = shared.state();
    let Some(method) = client_auth(&state, basic.as_deref(), &form, &shared.issuer) else {
        return respond(
            StatusCode::UNAUTHORIZED,
            "application/json",
            Bytes::from_static(br#"{"error":"invalid_client"}"#),
        );
    };
    state.last_client_auth = Some(method);
    let answer = form
        .get("token")
        .and_then(|t| state.issued.get(t))
        .filter(|issued| !issued.revoked)
        .filter(|issued| {
            issued
                .claims
                .get("exp")
                .and_then(Value::as_u64)
                .is_none_or(|exp| exp > now())
        })
        .map_or_else(
            || json!({"active": false}),
            |issued| {
                let mut answer = issued.claims.clone();
                answer.insert("active".into(), json!(true));
                answer.entry("token_type").or_insert(json!("Bearer"));
                Value::Object(answer)
            },
        );
    respond(
        StatusCode::OK,
        "application/json",
        answer.to_string().into(),
    )
}

/// Which method authenticated the client, if any did.
fn client_auth(
    state: &State,
    basic: Option<&str>,
    form: &HashMap<String, String>,
    issuer: &str,
) -> Option<&'static str> {
    if let Some(basic) = basic {
        // RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
        let (id, secret) = basic.split_once(':')?;
        let decode = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return match state.clients.get(&decode(id)) {
            Some(ClientCredential::Secret(s)) if *s == decode(secret) => {
                Some("client_secret_basic")
            }
            _ => None,
        };
    }
    let id = form.get("client_id")?;
    match (
        state.clients.get(id),
        form.get("client_secret"),
        form.get("client_assertion"),
    ) {
        (Some(ClientCredential::Secret(s)), Some(given), None) if s == given => {
            Some("client_secret_post")
        }
        (Some(ClientCredential::PublicKey { key, algorithms }), None, Some(assertion)) => {
            let typ = form.get("client_assertion_type").map(String::as_str);
            if typ != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
                return None;
            }
            // RFC 7523 §3: `iss` and `sub` name the client, `aud` us, and
            // `exp` is required.
            let mut validation = jsonwebtoken::Validation::new(algorithms[0]);
            validation.algorithms = algorithms.clone();
            validation.leeway = 5;
            validation.set_issuer(&[id]);
            validation.sub = Some(id.clone());
            validation.set_audience(&[issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            jsonwebtoken::decode::<Value>(assertion, key, &validation)
                .ok()
                .map(|_| "private_key_jwt")
        }
        _ => None,
    }
}

fn redirect(status: StatusCode, location: &str) -> Response<ServerBody> {
    let mut response = respond(status, "text/plain", Bytes::new());
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A body streamed in 64 KiB chunks with no announced length.
struct Chunks {
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(64 * 1024);
        self.left -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b' '; n])))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_instead_of_spinning() {
        let failures = 10;
        let mut calls = 0;
        let start = tokio::time::Instant::now();
        let accepted = next_connection(|| {
            calls += 1;
            let result = if calls <= failures {
                Err(io::Error::other("too many open files"))
            } else {
                Ok(calls)
            };
            std::future::ready(result)
        })
        .await;
        assert_eq!(accepted, failures + 1);
        assert!(
            start.elapsed() >= ACCEPT_BACKOFF * failures as u32,
            "{:?} for {failures} failed accepts",
            start.elapsed()
        );
    }
}
