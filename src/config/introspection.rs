//! RFC 7662 for opaque tokens: the client credentials, the endpoint, which
//! tokens go there, and the bounds of the answer cache and of the calls.

use std::fmt;
use std::time::Duration;

use super::{BuildError, TokenGateBuilder};
use crate::authority::discovery::AuthorizationServerMetadata;
use crate::authority::fetch::Fetcher;
use crate::authority::introspection::{
    ClientAuth, Credentials, IntrospectionLimits, IntrospectionMode, Introspector, OpaqueTokenShape,
};

/// A client secret, kept out of `Debug` output.
#[derive(Clone)]
pub(super) struct SecretString(pub(super) String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub(super) struct IntrospectionSettings {
    pub(super) credentials: Option<(String, SecretString)>,
    pub(super) auth: Option<ClientAuth>,
    pub(super) endpoint: Option<String>,
    pub(super) mode: IntrospectionMode,
    pub(super) shape: OpaqueTokenShape,
    /// `queue_timeout` is the HTTP timeout, set at build time.
    pub(super) limits: IntrospectionLimits,
}

impl Default for IntrospectionSettings {
    fn default() -> Self {
        IntrospectionSettings {
            credentials: None,
            auth: None,
            endpoint: None,
            mode: IntrospectionMode::OpaqueOnly,
            shape: OpaqueTokenShape::new(),
            limits: IntrospectionLimits {
                max_ttl: Duration::from_secs(120),
                inactive_ttl: Duration::from_secs(10),
                capacity: 64 * 1024 * 1024,
                concurrency: 64,
                queue: 64,
                queue_timeout: Duration::ZERO,
                require_audience: false,
            },
        }
    }
}

impl IntrospectionSettings {
    pub(super) fn enabled(&self) -> bool {
        self.credentials.is_some() && self.mode != IntrospectionMode::Off
    }
}

impl TokenGateBuilder {
    /// The introspection client, when enabled: the endpoint configured or
    /// discovered, and the client authentication the metadata supports.
    /// The introspection settings of `issuer`: its own credentials (and
    /// endpoint) with the gate's tuning, or for the designated issuer the
    /// gate's own; `None` when it does not introspect.
    pub(super) fn introspection_of(
        &self,
        issuer: &super::Issuer,
        designated: bool,
    ) -> Option<IntrospectionSettings> {
        match &issuer.introspection {
            Some((credentials, endpoint)) => Some(IntrospectionSettings {
                credentials: Some(credentials.clone()),
                endpoint: endpoint.clone(),
                ..self.introspection.clone()
            }),
            None if designated => Some(self.introspection.clone()),
            None => None,
        }
    }

    pub(super) fn introspector(
        &self,
        settings: &IntrospectionSettings,
        fetcher: Fetcher,
        metadata: Option<&AuthorizationServerMetadata>,
        issuer: &str,
    ) -> Result<Option<Introspector>, BuildError> {
        let Some((client_id, secret)) =
            settings.credentials.as_ref().filter(|_| settings.enabled())
        else {
            return Ok(None);
        };
        let endpoint = match (&settings.endpoint, metadata) {
            (Some(url), _) => url.clone(),
            (None, Some(m)) => m
                .introspection_endpoint
                .clone()
                .ok_or(BuildError::NoIntrospectionEndpoint)?,
            (None, None) => return Err(BuildError::NoIntrospectionEndpoint),
        };
        let endpoint = self.http.checked_url("introspection_endpoint", &endpoint)?;
        Ok(Some(Introspector::new(
            endpoint,
            fetcher,
            Credentials {
                client_id: client_id.clone(),
                secret: secret.0.clone(),
                auth: settings
                    .auth
                    .clone()
                    .unwrap_or_else(|| default_client_auth(metadata)),
            },
            issuer.to_owned(),
            settings.mode,
            IntrospectionLimits {
                queue_timeout: self.http.limits.timeout,
                ..settings.limits
            },
            settings.shape.clone(),
        )))
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
        self.introspection.credentials = Some((client_id.into(), SecretString(secret.into())));
        self
    }

    /// How to authenticate at the introspection endpoint. Default:
    /// [`ClientAuth::SecretBasic`], unless the server's metadata lists
    /// `introspection_endpoint_auth_methods_supported` without it and with
    /// `client_secret_post`.
    pub fn introspection_auth(mut self, auth: ClientAuth) -> Self {
        self.introspection.auth = Some(auth);
        self
    }

    /// The introspection endpoint, instead of the one discovery finds.
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        self.introspection.endpoint = Some(url.into());
        self
    }

    setters! {
        /// Which tokens are introspected. Default
        /// [`IntrospectionMode::OpaqueOnly`].
        introspection_mode(mode: IntrospectionMode) => introspection.mode;

        /// The longest an active introspection answer is reused (it is also never
        /// reused past the token's `exp`). This is the revocation latency: a token
        /// revoked at the authorization server is still accepted for up to this
        /// long (RFC 7662 §4). Default 2 min.
        introspection_cache_ttl(ttl: Duration) => introspection.limits.max_ttl;

        /// How long an inactive answer is reused, so a flood of one bad token
        /// costs one call. Default 10 s.
        introspection_inactive_ttl(ttl: Duration) => introspection.limits.inactive_ttl;

        /// How much memory cached introspection answers may take. Each answer
        /// weighs its JSON text, what the principal copies out of it, and about
        /// 750 bytes of bookkeeping (an inactive answer, the bookkeeping only);
        /// a typical answer weighs about 1 KB, one at the 1 MiB
        /// [`max_response_bytes`](Self::max_response_bytes) cap about 1 MiB, so
        /// the bound holds whatever the server sends. An answer heavier than
        /// the whole capacity is not cached. [`TokenGate::cache_stats`](crate::TokenGate::cache_stats) reports
        /// the total. A claims map parsed by a handler
        /// ([`Principal::claims`](crate::Principal::claims)) is not counted.
        /// Default 64 MiB (about 60 000 typical answers); 0 caches nothing.
        introspection_cache_bytes(bytes: u64) => introspection.limits.capacity;

        /// How many introspection calls may be in flight at once. Requests for
        /// further tokens queue for a slot (see
        /// [`introspection_queue`](Self::introspection_queue)). Default 64.
        introspection_concurrency(calls: usize) => introspection.limits.concurrency;

        /// How many requests may wait for an introspection slot while all
        /// [`introspection_concurrency`](Self::introspection_concurrency) calls
        /// are in flight. A waiting request gets a slot within about
        /// `requests / calls` call durations, or 503 after the
        /// [`timeout`](Self::timeout); a request that finds the queue full gets
        /// 503 with `Retry-After` at once, rather than wait behind a flood of
        /// made-up tokens. Default 64; 0 never waits.
        introspection_queue(requests: usize) => introspection.limits.queue;

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
        introspection_token_shape(shape: OpaqueTokenShape) => introspection.shape;

        /// Refuses active introspection answers that carry no `aud`. RFC 7662
        /// makes `aud` optional, so by default it is checked only when present
        /// (servers that restrict introspection to the token's audience omit
        /// it); turn this on when your authorization server always sends it.
        /// Default off.
        introspection_require_audience(require: bool) => introspection.limits.require_audience;
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1 says servers MUST support it),
/// unless the metadata lists methods without it but with `client_secret_post`.
fn default_client_auth(metadata: Option<&AuthorizationServerMetadata>) -> ClientAuth {
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
