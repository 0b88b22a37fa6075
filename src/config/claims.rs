//! Whose tokens are accepted and where they may come from: the issuer, the
//! audiences (RFC 8725 §3.9), the clock leeway, RFC 9068 strictness, the
//! token length cap and the query-string opt-in (RFC 6750 §2.3).

use std::time::Duration;

use super::{BuildError, TokenGateBuilder};
use crate::keys::AlgorithmSet;
use crate::requirement::hierarchy::ScopeHierarchy;
use crate::requirement::roles::RoleSource;
use crate::token::bearer::BearerPolicy;
use crate::token::claims::ClaimRules;

/// The longest leeway a build accepts.
const MAX_LEEWAY: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub(super) struct ClaimSettings {
    pub(super) audiences: Vec<String>,
    pub(super) any_audience: bool,
    pub(super) leeway: Duration,
    pub(super) strict_rfc9068: bool,
    pub(super) roles: Vec<RoleSource>,
    pub(super) hierarchy: Option<ScopeHierarchy>,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        ClaimSettings {
            audiences: Vec::new(),
            any_audience: false,
            leeway: Duration::from_secs(60),
            strict_rfc9068: false,
            roles: Vec::new(),
            hierarchy: None,
        }
    }
}

pub(super) const DEFAULT_BEARER: BearerPolicy = BearerPolicy {
    max_token_len: 16 * 1024,
    allow_query: false,
};

impl ClaimSettings {
    pub(super) fn check(&self, bearer: &BearerPolicy) -> Result<(), BuildError> {
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::MissingAudience);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(BuildError::InvalidConfig("an audience is empty"));
        }
        if bearer.max_token_len == 0 {
            return Err(BuildError::InvalidConfig(
                "max_token_length must be positive",
            ));
        }
        if self.roles.iter().any(|r| !r.path().is_valid()) {
            return Err(BuildError::InvalidConfig(
                "a role source's claim path is empty or names an empty member",
            ));
        }
        if self.hierarchy.as_ref().is_some_and(|h| h.check().is_err()) {
            return Err(BuildError::InvalidConfig(
                "a scope hierarchy names a malformed scope",
            ));
        }
        // Longer than a few minutes is a unit slip (3600 meant as ms), not a
        // clock skew: expired tokens would stay valid that long.
        if self.leeway > MAX_LEEWAY {
            return Err(BuildError::InvalidConfig(
                "leeway is longer than 10 minutes: expired tokens would stay valid that long",
            ));
        }
        Ok(())
    }

    pub(super) fn rules(&self, issuer: String, algorithms: AlgorithmSet) -> ClaimRules {
        ClaimRules {
            issuer,
            other_issuers: std::sync::Arc::new([]),
            tenants: None,
            audiences: if self.any_audience {
                Vec::new()
            } else {
                self.audiences.clone()
            },
            leeway_secs: self.leeway.as_secs(),
            strict_rfc9068: self.strict_rfc9068,
            algorithms,
            roles: self.roles.clone().into(),
            dpop: false,
        }
    }
}

impl TokenGateBuilder {
    /// An audience this resource server accepts in `aud`. Call again to
    /// accept several; a token needs one of them.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.claims.audiences.push(audience.into());
        self
    }

    /// Reads the principal's roles from `source` when a token is verified
    /// (call again to merge several, e.g. Keycloak realm and client roles);
    /// they are cached with the token and checked by
    /// [`Requirement::role`](crate::Requirement::role) and its kin. See
    /// [`RoleSource`] for the presets (Keycloak, Entra ID, Auth0, Okta,
    /// Cognito).
    ///
    /// ```
    /// use tokengate::{RoleSource, TokenGate};
    /// let builder = TokenGate::builder()
    ///     .roles_from(RoleSource::keycloak_realm())
    ///     .roles_from(RoleSource::keycloak_client("orders-api"));
    /// # drop(builder);
    /// ```
    pub fn roles_from(mut self, source: RoleSource) -> Self {
        self.claims.roles.push(source);
        self
    }

    /// Scope implications every guard of this gate applies (see
    /// [`ScopeHierarchy`]): `items:write` ⇒ `items:read`, `admin` ⇒
    /// everything under `admin:`. Without one, a scope stands only for
    /// itself.
    ///
    /// ```
    /// use tokengate::{ScopeHierarchy, TokenGate};
    /// let builder = TokenGate::builder().scope_hierarchy(
    ///     ScopeHierarchy::new().implies("items:write", ["items:read"]).covers("admin", "admin:"),
    /// );
    /// # drop(builder);
    /// ```
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> Self {
        self.claims.hierarchy = Some(hierarchy);
        self
    }

    /// Accepts tokens whatever their `aud`. Without an audience check a token
    /// issued for any other service of the same issuer is accepted here too
    /// (RFC 8725 §3.9): choose this only when the issuer serves this API alone.
    pub fn accept_any_audience(mut self) -> Self {
        self.claims.any_audience = true;
        self
    }

    setters! {
        /// Clock skew tolerated for `exp`, `nbf` and `iat`. Default 60 s; at
        /// most 10 minutes (a longer one fails the build).
        leeway(leeway: Duration) => claims.leeway;

        /// Requires RFC 9068 access tokens strictly: `typ` `at+jwt` and the
        /// claims of §2.2 (`iss`, `exp`, `aud`, `sub`, `client_id`, `iat`,
        /// `jti`). Default off: `typ` may also be `JWT` or absent, as many
        /// issuers send.
        strict_rfc9068(strict: bool) => claims.strict_rfc9068;

        /// The longest token accepted; longer ones are refused before parsing.
        /// Default 16 KiB.
        max_token_length(bytes: usize) => bearer.max_token_len;

        /// Also accepts the token in the `access_token` query parameter
        /// (RFC 6750 §2.3). Off by default: URLs end up in logs and browser
        /// history, which is why RFC 6750 discourages it. When on, the length
        /// cap applies to the `access_token` value alone; a token taken from the
        /// query is removed from the URI before the inner service sees it (every
        /// other parameter kept as it was), and the service's answers get
        /// `Cache-Control: private`.
        allow_query_token(allow: bool) => bearer.allow_query;
    }
}

impl TokenGateBuilder {
    /// Whether DPoP-bound tokens (RFC 9449) are accepted, and bearer tokens
    /// still are: [`DpopMode::Allowed`](crate::dpop::DpopMode::Allowed) by
    /// default. See [`tokengate::dpop`](crate::dpop).
    ///
    /// ```
    /// use tokengate::dpop::DpopMode;
    /// let builder = tokengate::TokenGate::builder().dpop(DpopMode::Required);
    /// # drop(builder);
    /// ```
    pub fn dpop(mut self, mode: crate::dpop::DpopMode) -> Self {
        self.dpop.mode = mode;
        self
    }

    /// The algorithms DPoP proofs may be signed with (asymmetric only;
    /// default ES256, ES384, EdDSA, PS256, RS256), as the `algs` of the
    /// `DPoP` challenge lists them.
    ///
    /// ```
    /// use tokengate::Algorithm;
    /// let builder = tokengate::TokenGate::builder().dpop_algorithms([Algorithm::ES256, Algorithm::EdDSA]);
    /// # drop(builder);
    /// ```
    pub fn dpop_algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = crate::Algorithm>,
    ) -> Self {
        self.dpop.algorithms = algorithms.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s) and how far ahead of
    /// this server's clock (default 5 s). Replay entries live as long.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = tokengate::TokenGate::builder().dpop_proof_window(Duration::from_secs(30), Duration::from_secs(2));
    /// # drop(builder);
    /// ```
    pub fn dpop_proof_window(mut self, past: Duration, future: Duration) -> Self {
        self.dpop.past = past;
        self.dpop.future = future;
        self
    }

    /// The longest `DPoP` header accepted (default 8 KiB), refused before
    /// it is parsed.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().dpop_max_proof_length(4096);
    /// # drop(builder);
    /// ```
    pub fn dpop_max_proof_length(mut self, bytes: usize) -> Self {
        self.dpop.max_proof_len = bytes;
        self
    }

    /// Where seen proofs are remembered: by default in memory (a million
    /// proofs at most); a fleet shares one, such as
    /// `RedisReplayStore` (feature `redis`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tokengate::dpop::MemoryReplayStore;
    /// let builder = tokengate::TokenGate::builder().dpop_replay_store(Arc::new(MemoryReplayStore::new(100_000)));
    /// # drop(builder);
    /// ```
    pub fn dpop_replay_store(
        mut self,
        store: std::sync::Arc<dyn crate::dpop::ReplayStore>,
    ) -> Self {
        self.dpop.replay = Some(store);
        self
    }

    /// The origin clients reach this service at (`https://api.example.com`;
    /// a path is ignored): what a DPoP proof's `htu` must name. Defaults to
    /// the [`resource`](Self::resource)'s origin; without either, the
    /// request's `Host`. Set it behind a proxy or TLS terminator.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().public_url("https://api.example.com");
    /// # drop(builder);
    /// ```
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.dpop.public_url = Some(url.into());
        self
    }
}

impl TokenGateBuilder {
    /// Requires a server-provided nonce in every DPoP proof (RFC 9449 §8):
    /// a proof without one, or with a stale one, is refused with
    /// `error="use_dpop_nonce"` and the nonce to use in `DPoP-Nonce`.
    /// Nonces are an HMAC over a time step of `step` under `secret` (at
    /// least 32 bytes, shared by every replica, so that each accepts the
    /// others' nonces with no store); this step's and the previous one's
    /// are accepted.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = tokengate::TokenGate::builder().dpop_nonce(&[7u8; 32], Duration::from_secs(300));
    /// # drop(builder);
    /// ```
    pub fn dpop_nonce(mut self, secret: impl AsRef<[u8]>, step: Duration) -> Self {
        self.dpop.nonce = Some((secret.as_ref().to_vec(), step));
        self
    }
}

impl TokenGateBuilder {
    /// Says in the RFC 9728 metadata that this service takes
    /// certificate-bound access tokens (`tls_client_certificate_bound_access_tokens`,
    /// RFC 8705): set it when its TLS acceptor asks clients for certificates
    /// and hands them to the gate (see [`tokengate::mtls`](crate::mtls)).
    /// Bound tokens are checked either way.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().certificate_bound_tokens(true);
    /// # drop(builder);
    /// ```
    pub fn certificate_bound_tokens(mut self, announced: bool) -> Self {
        self.dpop.certificate_bound = announced;
        self
    }
}

impl TokenGateBuilder {
    /// Takes the origin DPoP proofs must name from `Forwarded` (RFC 7239:
    /// `proto=` and `host=` of its first element), else `X-Forwarded-Proto`
    /// and `X-Forwarded-Host`, when no [`public_url`](Self::public_url) or
    /// resource is configured. **Only behind a proxy that sets these
    /// headers and drops the client's own**: otherwise a client names the
    /// URL its proofs are checked against. Off by default.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().dpop_trust_forwarded_headers(true);
    /// # drop(builder);
    /// ```
    pub fn dpop_trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.dpop.forwarded = trust;
        self
    }
}

impl TokenGateBuilder {
    /// Reads the client certificate from `header` when the request has no
    /// [`ClientCertificate`](crate::mtls::ClientCertificate) extension: for
    /// a service behind a TLS-terminating proxy that forwards it (PEM,
    /// URL-encoded or not, as nginx's `$ssl_client_escaped_cert`; or bare
    /// base64 DER). **Only behind a proxy that sets this header and drops
    /// the client's own**: otherwise a client sends whatever certificate it
    /// likes. Certificate-bound tokens (RFC 8705) are then checked against
    /// it.
    ///
    /// # Panics
    /// If `header` is not a valid header name (a programming error).
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().client_certificate_header("x-client-cert");
    /// # drop(builder);
    /// ```
    pub fn client_certificate_header(mut self, header: &str) -> Self {
        self.dpop.certificate_header =
            Some(http::HeaderName::from_bytes(header.as_bytes()).expect("a valid header name"));
        self
    }
}
