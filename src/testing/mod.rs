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

mod dpop;
mod faults;
mod keys;
mod server;
mod state;
mod tokens;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::keys::Algorithm;

pub use dpop::{DpopKey, ProofBuilder};
pub use faults::{Endpoint, Fault};
use keys::TestKey;
use state::{ClientCredential, Shared};
pub use state::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET};
pub use tokens::{DEFAULT_AUDIENCE, TokenBuilder};

/// An authorization server on a loopback port, for tests.
///
/// Starts with one ES256 key. The server stops when the `TestIssuer` is
/// dropped.
pub struct TestIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
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
        let shared = Arc::new(Shared::new(format!("http://{addr}")));
        let issuer = TestIssuer {
            server: tokio::spawn(server::serve(listener, shared.clone())),
            shared,
            addr,
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
        self.publish(TestKey::new(alg))
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
        self.publish(TestKey::bare(alg))
    }

    /// Adds a key after the published ones; returns its `kid`.
    fn publish(&self, key: TestKey) -> String {
        let kid = key.kid.clone();
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
        let key = TestKey::new(self.shared.signing_key().alg);
        let kid = key.kid.clone();
        let old = std::mem::replace(&mut self.shared.state().keys, vec![Arc::new(key)]);
        self.shared.retire(old);
        kid
    }

    /// The `kid` of the key that signs by default.
    pub fn signing_kid(&self) -> String {
        self.shared.signing_key().kid.clone()
    }

    /// The public JWKS as served.
    pub fn jwks(&self) -> Value {
        keys::jwks(&self.shared.state().keys)
    }

    /// Starts a token with the default header (`alg` of the signing key,
    /// `typ: at+jwt`, `kid`) and claims (`iss`, `aud`, `sub`, `client_id`,
    /// `iat`, `exp` in five minutes, `jti`).
    pub fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(&self.shared)
    }

    /// How many requests an endpoint has received.
    pub fn requests(&self, endpoint: Endpoint) -> usize {
        self.shared.counters.requests(endpoint)
    }

    /// The most requests an endpoint has had in flight at once.
    pub fn max_concurrent(&self, endpoint: Endpoint) -> usize {
        self.shared.counters.max_concurrent(endpoint)
    }

    /// Sets all request counters (and concurrency high-water marks) to zero.
    pub fn reset_counts(&self) {
        self.shared.counters.reset();
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
}
