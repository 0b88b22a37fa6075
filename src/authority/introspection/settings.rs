//! What configures introspection: which tokens go there, how the resource
//! server authenticates (RFC 6749 §2.3.1, RFC 7523), and the cache and load
//! limits.

use std::fmt;
use std::time::Duration;

use crate::keys::Algorithm;

/// Which tokens go to the introspection endpoint.
///
/// ```
/// assert_eq!(tokengate::IntrospectionMode::default(), tokengate::IntrospectionMode::OpaqueOnly);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntrospectionMode {
    /// Opaque tokens are introspected; JWTs are verified locally.
    #[default]
    OpaqueOnly,
    /// JWTs are verified locally *and* introspected, so revoked JWTs are
    /// refused (within the cache lifetime). Costs a call per new token.
    All,
    /// Nothing is introspected: opaque tokens get 401 `invalid_token`.
    Off,
}

/// How the resource server authenticates to the introspection endpoint.
///
/// ```
/// use tokengate::ClientAuth;
/// let auth = ClientAuth::SecretBasic;
/// # drop(auth);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    /// The default.
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
    /// A signed client assertion (RFC 7523 §2.2), fresh for each call. The
    /// secret given with the credentials is not used.
    PrivateKeyJwt {
        /// The signing key.
        key: jsonwebtoken::EncodingKey,
        /// Its algorithm.
        alg: Algorithm,
        /// Its `kid`, if the server needs one to pick the key.
        kid: Option<String>,
    },
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::SecretBasic => f.write_str("SecretBasic"),
            ClientAuth::SecretPost => f.write_str("SecretPost"),
            ClientAuth::PrivateKeyJwt { alg, kid, .. } => f
                .debug_struct("PrivateKeyJwt")
                .field("alg", alg)
                .field("kid", kid)
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

/// The resource server's client credentials, kept out of `Debug`.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) client_id: String,
    pub(crate) secret: String,
    pub(crate) auth: ClientAuth,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("secret", &"<redacted>")
            .field("auth", &self.auth)
            .finish()
    }
}

/// Cache and load limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntrospectionLimits {
    pub(crate) max_ttl: Duration,
    pub(crate) inactive_ttl: Duration,
    /// Cache capacity in bytes, by [`cache_weight`].
    pub(crate) capacity: u64,
    pub(crate) concurrency: usize,
    /// How many requests may wait for a free upstream slot at once.
    pub(crate) queue: usize,
    /// How long a request may wait for a free upstream slot.
    pub(crate) queue_timeout: Duration,
    /// Refuse active answers without `aud`.
    pub(crate) require_audience: bool,
}
