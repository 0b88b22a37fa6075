//! Configuration, resolved once before the first request: discovery
//! (RFC 8414 / OIDC), the first key set fetch, and refusal of unsafe
//! combinations.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use reqwest::Url;

use crate::token::bearer::BearerPolicy;
use crate::authority::discovery::{self, DiscoveryError};
use crate::response::{ErrorDetail, Responder};
use crate::authority::fetch::{FetchError, Fetcher, HttpLimits};
use crate::verify::gate::{Shared, TokenGate};
use crate::verify::verifier::Verifier;
use crate::authority::introspection::{
    ClientAuth, Credentials, IntrospectionLimits, IntrospectionMode, Introspector, OpaqueTokenShape,
};
use crate::authority::jwks::{Jwks, JwksTiming};
use crate::token::claims::ClaimRules;
use crate::keys::{Algorithm, AlgorithmSet, KeySet, VerifyingKey};
use crate::verify::token_cache::TokenCache;

/// Why a gate could not be built. Every variant is a configuration or
/// startup problem, reported before the service takes traffic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `.issuer(…)` was not called.
    #[error("no issuer configured: call .issuer(…)")]
    MissingIssuer,
    /// No audience, and no explicit opt-out.
    #[error(
        "no audience configured: call .audience(…), or .accept_any_audience() to opt out knowingly"
    )]
    MissingAudience,
    /// A URL does not parse.
    #[error("{what} is not a valid URL: {url:?}")]
    InvalidUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        url: String,
    },
    /// A plain-http URL off loopback, without `.allow_insecure_http()`.
    #[error(
        "{what} uses plain http off loopback: {url:?} (use https, or .allow_insecure_http() for tests)"
    )]
    InsecureUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        url: String,
    },
    /// Discovery failed or named another issuer.
    #[error("discovery failed: {0}")]
    Discovery(#[from] DiscoveryError),
    /// The metadata has no `jwks_uri` and none was configured.
    #[error("the authorization server metadata has no jwks_uri")]
    NoJwksUri,
    /// The first key set fetch failed.
    #[error("could not load the key set: {0}")]
    Jwks(FetchError),
    /// Static keys were given but none of them is usable.
    #[error("none of the configured keys is usable")]
    NoUsableKeys,
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
    /// Introspection is enabled but no endpoint is configured or discovered.
    #[error(
        "introspection is enabled but the authorization server metadata has no introspection_endpoint"
    )]
    NoIntrospectionEndpoint,
    /// Settings that contradict each other.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// A shared secret, kept out of `Debug` output.
#[derive(Clone)]
struct SharedSecret {
    kid: Option<String>,
    secret: Vec<u8>,
    alg: Algorithm,
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Configures a [`TokenGate`].
///
/// | setting | default |
/// |---|---|
/// | [`issuer`](Self::issuer) | required |
/// | [`audience`](Self::audience) | required, or [`accept_any_audience`](Self::accept_any_audience) |
/// | key source | discovery from the issuer; or [`jwks_uri`](Self::jwks_uri), [`static_keys`](Self::static_keys), [`hmac_secret`](Self::hmac_secret) |
/// | [`algorithms`](Self::algorithms) | RS256/384/512, PS256/384/512, ES256/384, EdDSA |
/// | [`leeway`](Self::leeway) | 60 s |
/// | [`strict_rfc9068`](Self::strict_rfc9068) | off (`typ` `at+jwt`, `JWT` or absent) |
/// | [`max_token_length`](Self::max_token_length) | 16 KiB |
/// | [`allow_query_token`](Self::allow_query_token) | off |
/// | [`realm`](Self::realm) | the first audience, else `"api"` |
/// | [`error_detail`](Self::error_detail) | [`ErrorDetail::Describe`] |
/// | [`retry_after`](Self::retry_after) | 5 s |
/// | [`connect_timeout`](Self::connect_timeout) / [`timeout`](Self::timeout) | 2 s / 5 s |
/// | [`max_response_bytes`](Self::max_response_bytes) | 1 MiB |
/// | [`jwks_ttl`](Self::jwks_ttl) | 5 min, server `max-age` honoured within [`jwks_ttl_bounds`](Self::jwks_ttl_bounds) (30 s to 1 h) |
/// | [`jwks_max_stale`](Self::jwks_max_stale) | 10 × TTL |
/// | [`unknown_kid_refresh`](Self::unknown_kid_refresh) | 2 fetches per 30 s |
/// | [`require_keys_at_startup`](Self::require_keys_at_startup) | on |
/// | [`verified_token_cache_bytes`](Self::verified_token_cache_bytes) | 16 MiB (about 15 000 typical tokens) |
/// | [`introspection_credentials`](Self::introspection_credentials) | none: opaque tokens are refused |
/// | [`introspection_auth`](Self::introspection_auth) | `client_secret_basic` |
/// | [`introspection_mode`](Self::introspection_mode) | opaque tokens only |
/// | [`introspection_cache_ttl`](Self::introspection_cache_ttl) | 2 min (the revocation latency) |
/// | [`introspection_inactive_ttl`](Self::introspection_inactive_ttl) | 10 s |
/// | [`introspection_cache_bytes`](Self::introspection_cache_bytes) | 64 MiB (about 60 000 typical answers) |
/// | [`introspection_concurrency`](Self::introspection_concurrency) | 64 calls in flight |
/// | [`introspection_queue`](Self::introspection_queue) | 64 requests waiting for a call |
/// | [`introspection_token_shape`](Self::introspection_token_shape) | any `b64token` |
///
/// ```
/// use std::time::Duration;
/// use tokengate::{Algorithm, TokenGate};
/// use tokengate::testing::TestIssuer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = TestIssuer::start().await?;
/// let gate = TokenGate::builder()
///     .issuer(issuer.issuer())
///     .audience(issuer.audience())
///     .algorithms([Algorithm::ES256, Algorithm::RS256])
///     .leeway(Duration::from_secs(30))
///     .jwks_ttl(Duration::from_secs(600))
///     .build()
///     .await?;
/// # drop(gate);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TokenGateBuilder {
    issuer: Option<String>,
    audiences: Vec<String>,
    any_audience: bool,
    jwks_uri: Option<String>,
    static_keys: Option<JwkSet>,
    secrets: Vec<SharedSecret>,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Duration,
    strict_rfc9068: bool,
    max_token_len: usize,
    query_token: bool,
    realm: Option<String>,
    error_detail: ErrorDetail,
    retry_after: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    max_response_bytes: usize,
    jwks_ttl: Duration,
    jwks_ttl_bounds: (Duration, Duration),
    jwks_max_stale: Option<Duration>,
    unknown_kid_fetches: usize,
    unknown_kid_window: Duration,
    insecure_http: bool,
    http_client: Option<reqwest::Client>,
    require_keys: bool,
    token_cache_bytes: u64,
    introspection: Option<(String, SecretString)>,
    introspection_auth: Option<ClientAuth>,
    introspection_endpoint: Option<String>,
    introspection_mode: IntrospectionMode,
    introspection_cache_ttl: Duration,
    introspection_inactive_ttl: Duration,
    introspection_cache_bytes: u64,
    introspection_concurrency: usize,
    introspection_queue: usize,
    introspection_shape: OpaqueTokenShape,
    introspection_require_audience: bool,
}

/// A client secret, kept out of `Debug` output.
#[derive(Clone)]
struct SecretString(String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for TokenGateBuilder {
    fn default() -> Self {
        TokenGateBuilder {
            issuer: None,
            audiences: Vec::new(),
            any_audience: false,
            jwks_uri: None,
            static_keys: None,
            secrets: Vec::new(),
            algorithms: None,
            leeway: Duration::from_secs(60),
            strict_rfc9068: false,
            max_token_len: 16 * 1024,
            query_token: false,
            realm: None,
            error_detail: ErrorDetail::Describe,
            retry_after: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024 * 1024,
            jwks_ttl: Duration::from_secs(300),
            jwks_ttl_bounds: (Duration::from_secs(30), Duration::from_secs(3600)),
            jwks_max_stale: None,
            unknown_kid_fetches: 2,
            unknown_kid_window: Duration::from_secs(30),
            insecure_http: false,
            http_client: None,
            require_keys: true,
            token_cache_bytes: 16 * 1024 * 1024,
            introspection: None,
            introspection_auth: None,
            introspection_endpoint: None,
            introspection_mode: IntrospectionMode::OpaqueOnly,
            introspection_cache_ttl: Duration::from_secs(120),
            introspection_inactive_ttl: Duration::from_secs(10),
            introspection_cache_bytes: 64 * 1024 * 1024,
            introspection_concurrency: 64,
            introspection_queue: 64,
            introspection_shape: OpaqueTokenShape::new(),
            introspection_require_audience: false,
        }
    }
}

impl TokenGate {
    /// Starts configuring a gate. See [`TokenGateBuilder`] for every option
    /// and its default.
    pub fn builder() -> TokenGateBuilder {
        TokenGateBuilder::default()
    }
}

impl TokenGateBuilder {
    /// The issuer identifier, exactly as tokens carry it in `iss` and as the
    /// server's metadata names it (trailing slash included or not).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// An audience this resource server accepts in `aud`. Call again to
    /// accept several; a token needs one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens whatever their `aud`. Without an audience check a token
    /// issued for any other service of the same issuer is accepted here too
    /// (RFC 8725 §3.9): choose this only when the issuer serves this API alone.
    pub fn accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Fetches keys from this URL instead of the one discovery would find,
    /// and skips discovery.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Verifies with these keys only: no discovery, no network (offline use,
    /// tests). Unusable keys are skipped with a warning.
    pub fn static_keys(mut self, keys: JwkSet) -> Self {
        self.static_keys = Some(keys);
        self
    }

    /// Accepts HMAC-signed tokens (`HS256`/`HS384`/`HS512`) verified with
    /// this shared secret. HMAC is used only with a secret configured here:
    /// `oct` keys in a fetched key set are ignored, and public keys never
    /// serve as HMAC secrets. With `kid`, only tokens naming that `kid` use
    /// the secret; without, only tokens without a `kid`. Unless
    /// [`jwks_uri`](Self::jwks_uri) is also set, the gate then needs no
    /// network.
    pub fn hmac_secret(
        mut self,
        kid: Option<&str>,
        secret: impl AsRef<[u8]>,
        alg: Algorithm,
    ) -> Self {
        self.secrets.push(SharedSecret {
            kid: kid.map(str::to_owned),
            secret: secret.as_ref().to_vec(),
            alg,
        });
        self
    }

    /// The JWS algorithms accepted. A key is still used only with the
    /// algorithms its own type allows. Default: every asymmetric algorithm
    /// supported (RS256/384/512, PS256/384/512, ES256/384, EdDSA).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Clock skew tolerated for `exp`, `nbf` and `iat`. Default 60 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires RFC 9068 access tokens strictly: `typ` `at+jwt` and the
    /// claims of §2.2 (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`,
    /// `jti`). Default off: `typ` may also be `JWT` or absent, as many
    /// issuers send.
    pub fn strict_rfc9068(mut self, strict: bool) -> Self {
        self.strict_rfc9068 = strict;
        self
    }

    /// The longest token accepted; longer ones are refused before parsing.
    /// Default 16 KiB.
    pub fn max_token_length(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Also accepts the token in the `access_token` query parameter
    /// (RFC 6750 §2.3). Off by default: URLs end up in logs and browser
    /// history, which is why RFC 6750 discourages it. When on, the length
    /// cap applies to the `access_token` value alone; a token taken from the
    /// query is removed from the URI before the inner service sees it (every
    /// other parameter kept as it was), and the service's answers get
    /// `Cache-Control: private`.
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.query_token = allow;
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges. Default: the first
    /// audience, else `"api"`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// How much rejections tell the client. Default
    /// [`ErrorDetail::Describe`].
    pub fn error_detail(mut self, detail: ErrorDetail) -> Self {
        self.error_detail = detail;
        self
    }

    /// The `Retry-After` sent with 503 answers. Default 5 s.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// Connect timeout for calls to the authorization server. Default 2 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Total timeout of one call to the authorization server, body
    /// included. Default 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response accepted from the authorization server.
    /// Default 1 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// How long a fetched key set is fresh when the server sends no
    /// `Cache-Control: max-age`. Default 5 min.
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// The bounds within which a server's `max-age` is honoured. Default
    /// 30 s to 1 h.
    pub fn jwks_ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.jwks_ttl_bounds = (min, max);
        self
    }

    /// How long past its TTL the last good key set keeps serving while
    /// refreshes fail. Default 10 × the TTL.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.jwks_max_stale = Some(max_stale);
        self
    }

    /// How many unplanned key set fetches (for an unknown `kid`, or keys gone
    /// stale) may happen per `window`. Default 2 per 30 s: a rotation is
    /// picked up at once, a flood of made-up `kid`s costs one or two fetches.
    pub fn unknown_kid_refresh(mut self, fetches: usize, window: Duration) -> Self {
        self.unknown_kid_fetches = fetches;
        self.unknown_kid_window = window;
        self
    }

    /// Allows plain `http://` URLs off loopback. Loopback (`127.0.0.0/8`,
    /// `::1`, `localhost`) is always allowed; anywhere else, tokens and keys
    /// would travel unprotected, so this is for tests only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }

    /// Uses your HTTP client (a proxy, a private CA, mTLS). The timeouts and
    /// size cap of this builder still bound every call, and redirects are
    /// refused whatever its policy: an answer from another URL than the one
    /// asked is an error ([`FetchError::Redirect`]), and the introspection
    /// form (token, client credentials) is sent so that it cannot be
    /// replayed to a `Location`. A client that follows redirects may still
    /// send a GET without a body there before the answer is refused (reqwest
    /// keeps an `Authorization` header when the `Location` is on the same
    /// host); build yours with `redirect(reqwest::redirect::Policy::none())`
    /// to avoid even that.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Whether `build` fails when the first key set fetch fails. Default on.
    /// Off, the gate starts anyway and requests get 503 until keys are
    /// fetched (retried in the background and, rate limited, on requests).
    pub fn require_keys_at_startup(mut self, require: bool) -> Self {
        self.require_keys = require;
        self
    }

    /// How much memory remembering verified tokens may take, so a repeated
    /// token skips the signature check (see the crate docs for why this is
    /// sound: entries expire at the token's `exp`, plus the
    /// [`leeway`](Self::leeway), and leave with their signing key).
    ///
    /// Each entry weighs an estimate of the heap bytes it holds: the claims
    /// text, what the principal copies out of it, and about 750 bytes of
    /// bookkeeping; a typical access token (ES256, 438 bytes) weighs about
    /// 1 KB, and [`TokenGate::cache_stats`] reports the total. A claims map
    /// parsed by a handler ([`Principal::claims`](crate::Principal::claims))
    /// is not counted. Default 16 MiB (about 15 000 typical tokens); 0 turns
    /// the cache off.
    pub fn verified_token_cache_bytes(mut self, bytes: u64) -> Self {
        self.token_cache_bytes = bytes;
        self
    }

    /// Enables RFC 7662 introspection of opaque tokens, authenticating as
    /// this client (`client_secret_basic` unless
    /// [`introspection_auth`](Self::introspection_auth) says otherwise). The
    /// endpoint comes from discovery unless
    /// [`introspection_endpoint`](Self::introspection_endpoint) is set.
    pub fn introspection_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        self.introspection = Some((client_id.into(), SecretString(secret.into())));
        self
    }

    /// How to authenticate at the introspection endpoint. Default:
    /// [`ClientAuth::SecretBasic`], unless the server's metadata lists
    /// `introspection_endpoint_auth_methods_supported` without it and with
    /// `client_secret_post`.
    pub fn introspection_auth(mut self, auth: ClientAuth) -> Self {
        self.introspection_auth = Some(auth);
        self
    }

    /// The introspection endpoint, instead of the one discovery finds.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection_endpoint = Some(url.into());
        self
    }

    /// Which tokens are introspected. Default
    /// [`IntrospectionMode::OpaqueOnly`].
    pub fn introspection_mode(mut self, mode: IntrospectionMode) -> Self {
        self.introspection_mode = mode;
        self
    }

    /// The longest an active introspection answer is reused (it is also never
    /// reused past the token's `exp`). This is the revocation latency: a token
    /// revoked at the authorization server is still accepted for up to this
    /// long (RFC 7662 §4). Default 2 min.
    pub fn introspection_cache_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_cache_ttl = ttl;
        self
    }

    /// How long an inactive answer is reused, so a flood of one bad token
    /// costs one call. Default 10 s.
    pub fn introspection_inactive_ttl(mut self, ttl: Duration) -> Self {
        self.introspection_inactive_ttl = ttl;
        self
    }

    /// How much memory cached introspection answers may take. Each answer
    /// weighs its JSON text, what the principal copies out of it, and about
    /// 750 bytes of bookkeeping (an inactive answer, the bookkeeping only);
    /// a typical answer weighs about 1 KB, one at the 1 MiB
    /// [`max_response_bytes`](Self::max_response_bytes) cap about 1 MiB, so
    /// the bound holds whatever the server sends. An answer heavier than
    /// the whole capacity is not cached. [`TokenGate::cache_stats`] reports
    /// the total. A claims map parsed by a handler
    /// ([`Principal::claims`](crate::Principal::claims)) is not counted.
    /// Default 64 MiB (about 60 000 typical answers); 0 caches nothing.
    pub fn introspection_cache_bytes(mut self, bytes: u64) -> Self {
        self.introspection_cache_bytes = bytes;
        self
    }

    /// How many introspection calls may be in flight at once. Requests for
    /// further tokens queue for a slot (see
    /// [`introspection_queue`](Self::introspection_queue)). Default 64.
    pub fn introspection_concurrency(mut self, calls: usize) -> Self {
        self.introspection_concurrency = calls;
        self
    }

    /// How many requests may wait for an introspection slot while all
    /// [`introspection_concurrency`](Self::introspection_concurrency) calls
    /// are in flight. A waiting request gets a slot within about
    /// `requests / calls` call durations, or 503 after the
    /// [`timeout`](Self::timeout); a request that finds the queue full gets
    /// 503 with `Retry-After` at once, rather than wait behind a flood of
    /// made-up tokens. Default 64; 0 never waits.
    pub fn introspection_queue(mut self, requests: usize) -> Self {
        self.introspection_queue = requests;
        self
    }

    /// What the authorization server's opaque tokens look like (prefix,
    /// length, alphabet): tokens of any other shape are refused as
    /// `invalid_token` without a call, so garbage never reaches the server
    /// and takes no slot from real tokens. Applies to every token that is
    /// introspected without being verified locally as a JWT first. Default:
    /// any `b64token`.
    ///
    /// ```
    /// use tokengate::{OpaqueTokenShape, TokenAlphabet};
    /// # use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET};
    /// # fn demo(builder: tokengate::TokenGateBuilder) -> tokengate::TokenGateBuilder {
    /// builder
    ///     .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
    ///     .introspection_token_shape(
    ///         OpaqueTokenShape::new()
    ///             .prefix("at_")
    ///             .length(35..=35)
    ///             .alphabet(TokenAlphabet::Base64Url),
    ///     )
    /// # }
    /// ```
    pub fn introspection_token_shape(mut self, shape: OpaqueTokenShape) -> Self {
        self.introspection_shape = shape;
        self
    }

    /// Refuses active introspection answers that carry no `aud`. RFC 7662
    /// makes `aud` optional, so by default it is checked only when present
    /// (servers that restrict introspection to the token's audience omit
    /// it); turn this on when your authorization server always sends it.
    /// Default off.
    pub fn introspection_require_audience(mut self, require: bool) -> Self {
        self.introspection_require_audience = require;
        self
    }

    /// Resolves the configuration: checks it, runs discovery, loads the keys,
    /// and starts the background key refresh (which ends when the last clone
    /// of the gate is dropped). Must run inside a tokio runtime.
    pub async fn build(self) -> Result<TokenGate, BuildError> {
        let issuer = self.issuer.clone().ok_or(BuildError::MissingIssuer)?;
        let issuer_url = self.checked_url("issuer", &issuer)?;
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::MissingAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(BuildError::InvalidConfig("an audience is empty"));
        }
        if self.max_token_len == 0 {
            return Err(BuildError::InvalidConfig(
                "max_token_length must be positive",
            ));
        }
        let (min_ttl, max_ttl) = self.jwks_ttl_bounds;
        let second = Duration::from_secs(1);
        if self.jwks_ttl < second || min_ttl < second || min_ttl > max_ttl {
            return Err(BuildError::InvalidConfig(
                "jwks_ttl and its lower bound must be at least 1 s, and the bounds ordered",
            ));
        }
        if self.unknown_kid_fetches > 0 && self.unknown_kid_window.is_zero() {
            return Err(BuildError::InvalidConfig(
                "unknown_kid_refresh needs a non-zero window (use 0 fetches to turn it off)",
            ));
        }
        let realm = self
            .realm
            .clone()
            .or_else(|| self.audiences.first().cloned())
            .unwrap_or_else(|| "api".to_owned());
        if realm.chars().any(char::is_control) {
            return Err(BuildError::InvalidConfig(
                "realm contains control characters",
            ));
        }

        let mut allowed = AlgorithmSet::from_iter(
            self.algorithms
                .clone()
                .unwrap_or_else(|| AlgorithmSet::ASYMMETRIC.iter().collect()),
        );
        for s in &self.secrets {
            // RFC 7518 §3.2: a key at least as long as the hash output.
            let min = match s.alg {
                Algorithm::HS256 => 32,
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => {
                    return Err(BuildError::InvalidConfig(
                        "hmac_secret needs an HS256, HS384 or HS512 algorithm",
                    ));
                }
            };
            if s.secret.len() < min {
                return Err(BuildError::InvalidConfig(
                    "hmac_secret is shorter than its hash output (32/48/64 bytes for HS256/384/512, RFC 7518 §3.2)",
                ));
            }
            if self
                .algorithms
                .as_ref()
                .is_some_and(|algs| !algs.contains(&s.alg))
            {
                return Err(BuildError::InvalidConfig(
                    "hmac_secret's algorithm is not in the configured algorithms",
                ));
            }
            if self.algorithms.is_none() {
                allowed = AlgorithmSet::from_iter(allowed.iter().chain([s.alg]));
            }
        }
        let hs = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        if hs
            .iter()
            .any(|a| allowed.contains(*a) && !self.secrets.iter().any(|s| s.alg == *a))
        {
            return Err(BuildError::InvalidConfig(
                "an HS* algorithm is allowed without a shared secret for it",
            ));
        }
        if allowed.is_empty() {
            return Err(BuildError::InvalidConfig("no algorithm allowed"));
        }
        let secrets: Vec<VerifyingKey> = self
            .secrets
            .iter()
            .filter(|s| allowed.contains(s.alg))
            .filter_map(|s| VerifyingKey::hmac(s.kid.as_deref(), &s.secret, s.alg))
            .collect();

        let timing = JwksTiming {
            ttl: self.jwks_ttl,
            min_ttl,
            max_ttl,
            max_stale: self
                .jwks_max_stale
                .unwrap_or_else(|| self.jwks_ttl.saturating_mul(10)),
            unknown_kid_fetches: self.unknown_kid_fetches,
            unknown_kid_window: self.unknown_kid_window,
            retry_min: Duration::from_secs(5).min(self.jwks_ttl),
        };
        let limits = HttpLimits {
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            max_response_bytes: self.max_response_bytes,
        };

        let introspecting =
            self.introspection.is_some() && self.introspection_mode != IntrospectionMode::Off;
        let keys_from_discovery =
            self.static_keys.is_none() && secrets.is_empty() && self.jwks_uri.is_none();
        let fetcher = Fetcher::new(limits, self.http_client.clone())
            .map_err(|e| BuildError::HttpClient(e.to_string()))?;
        let metadata =
            if keys_from_discovery || (introspecting && self.introspection_endpoint.is_none()) {
                Some(discovery::discover(&fetcher, &issuer, &issuer_url).await?)
            } else {
                None
            };

        let mut verify_jwt_locally = true;
        let jwks = if let Some(set) = &self.static_keys {
            let (keys, skipped) = KeySet::from_jwks(set.keys.iter().cloned().map(Ok), allowed);
            for (kid, why) in skipped {
                tracing::warn!(target: "tokengate::jwks", kid = kid.as_deref().unwrap_or("-"), reason = %why, "skipping static key");
            }
            let keys = keys.with_pinned(&secrets.into_iter().map(Arc::new).collect::<Vec<_>>());
            if keys.is_empty() {
                return Err(BuildError::NoUsableKeys);
            }
            Arc::new(Jwks::fixed(keys, timing))
        } else if !secrets.is_empty() && self.jwks_uri.is_none() {
            Arc::new(Jwks::fixed(KeySet::new(secrets), timing))
        } else {
            let jwks_uri = self
                .jwks_uri
                .clone()
                .or_else(|| metadata.as_ref().and_then(|m| m.jwks_uri.clone()));
            match jwks_uri {
                Some(uri) => {
                    let jwks_url = self.checked_url("jwks_uri", &uri)?;
                    let jwks = Arc::new(Jwks::remote(
                        jwks_url,
                        fetcher.clone(),
                        timing,
                        allowed,
                        secrets,
                    ));
                    if let Err(e) = jwks.load().await {
                        if self.require_keys {
                            return Err(BuildError::Jwks(e));
                        }
                        tracing::error!(target: "tokengate::jwks", error = %e, "starting without keys; requests get 503 until the key set loads");
                    }
                    jwks.spawn_refresher();
                    jwks
                }
                // An issuer of opaque tokens only: JWTs, if any, are introspected.
                None if introspecting => {
                    verify_jwt_locally = false;
                    Arc::new(Jwks::fixed(KeySet::default(), timing))
                }
                None => return Err(BuildError::NoJwksUri),
            }
        };

        let introspector = match &self.introspection {
            Some((client_id, secret)) if introspecting => {
                let endpoint = match (&self.introspection_endpoint, metadata.as_ref()) {
                    (Some(url), _) => url.clone(),
                    (None, Some(m)) => m
                        .introspection_endpoint
                        .clone()
                        .ok_or(BuildError::NoIntrospectionEndpoint)?,
                    (None, None) => return Err(BuildError::NoIntrospectionEndpoint),
                };
                let endpoint = self.checked_url("introspection_endpoint", &endpoint)?;
                Some(Introspector::new(
                    endpoint,
                    fetcher,
                    Credentials {
                        client_id: client_id.clone(),
                        secret: secret.0.clone(),
                        auth: self
                            .introspection_auth
                            .clone()
                            .unwrap_or_else(|| default_client_auth(metadata.as_ref())),
                    },
                    issuer.clone(),
                    self.introspection_mode,
                    IntrospectionLimits {
                        max_ttl: self.introspection_cache_ttl,
                        inactive_ttl: self.introspection_inactive_ttl,
                        capacity: self.introspection_cache_bytes,
                        concurrency: self.introspection_concurrency,
                        queue: self.introspection_queue,
                        queue_timeout: self.timeout,
                        require_audience: self.introspection_require_audience,
                    },
                    self.introspection_shape.clone(),
                ))
            }
            _ => None,
        };

        let rules = ClaimRules {
            issuer,
            audiences: if self.any_audience {
                Vec::new()
            } else {
                self.audiences.clone()
            },
            leeway_secs: self.leeway.as_secs(),
            strict_rfc9068: self.strict_rfc9068,
            algorithms: allowed,
        };
        let bearer = BearerPolicy {
            max_token_len: self.max_token_len,
            allow_query: self.query_token,
        };
        let responder =
            Responder::new(&realm, self.error_detail, self.retry_after.as_secs().max(1));
        Ok(TokenGate {
            inner: Arc::new(Shared {
                verifier: Verifier::new(
                    jwks,
                    rules,
                    bearer,
                    (self.token_cache_bytes > 0)
                        .then(|| TokenCache::new(self.token_cache_bytes, self.leeway.as_secs())),
                    introspector,
                    verify_jwt_locally,
                ),
                responder,
            }),
        })
    }

    fn checked_url(&self, what: &'static str, url: &str) -> Result<Url, BuildError> {
        let parsed = Url::parse(url).map_err(|_| BuildError::InvalidUrl {
            what,
            url: redacted(url),
        })?;
        // RFC 8414 §2: no query or fragment in an issuer; and credentials in
        // a URL would end up in logs (so the error shows them redacted).
        let issuer_extras =
            what == "issuer" && (parsed.query().is_some() || parsed.fragment().is_some());
        if issuer_extras || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(BuildError::InvalidUrl {
                what,
                url: redacted(url),
            });
        }
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.insecure_http || is_loopback(&parsed) => Ok(parsed),
            "http" => Err(BuildError::InsecureUrl {
                what,
                url: url.to_owned(),
            }),
            _ => Err(BuildError::InvalidUrl {
                what,
                url: url.to_owned(),
            }),
        }
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1 says servers MUST support it),
/// unless the metadata lists methods without it but with `client_secret_post`.
fn default_client_auth(metadata: Option<&discovery::AuthorizationServerMetadata>) -> ClientAuth {
    let methods = metadata.and_then(|m| m.introspection_endpoint_auth_methods_supported.as_deref());
    match methods {
        Some(m)
            if !m.iter().any(|x| x == "client_secret_basic")
                && m.iter().any(|x| x == "client_secret_post") =>
        {
            ClientAuth::SecretPost
        }
        _ => ClientAuth::SecretBasic,
    }
}

/// `url` for an error message: any `user:password@` part replaced, since
/// errors are printed and logged.
fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
