//! The trusted issuers: one, or several (a migration between identity
//! providers, a realm per tenant, first-party and partner authorization
//! servers), each with its own discovery, key set, refresh budget and
//! health, and optionally its own audiences, algorithms and key source.

use jsonwebtoken::jwk::JwkSet;

use super::{BuildError, TokenGateBuilder};
use crate::keys::Algorithm;

/// A trusted issuer with settings of its own, for
/// [`TokenGateBuilder::trust`]. What it does not set comes from the gate's
/// builder: audiences, algorithms, key set timing and HTTP bounds.
///
/// ```
/// use tokengate::{Issuer, TokenGate};
///
/// let builder = TokenGate::builder()
///     .audience("https://api.example.com")
///     .issuer("https://login.example.com")
///     .trust(
///         Issuer::new("https://partners.example.net")
///             .audience("https://api.example.com/partners")
///             .jwks_uri("https://partners.example.net/keys"),
///     );
/// # drop(builder);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Issuer {
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) jwks_uri: Option<String>,
    pub(super) static_keys: Option<JwkSet>,
    pub(super) algorithms: Option<Vec<Algorithm>>,
}

impl Issuer {
    /// The issuer identifier, exactly as its tokens carry it in `iss` and
    /// as its metadata names it. Its keys are found by discovery unless
    /// [`jwks_uri`](Self::jwks_uri) or [`static_keys`](Self::static_keys)
    /// says otherwise.
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            audiences: Vec::new(),
            jwks_uri: None,
            static_keys: None,
            algorithms: None,
        }
    }

    /// An audience this issuer's tokens may carry, instead of the gate's
    /// (call again for several; a token needs one of them).
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example").audience("api://a");
    /// # drop(issuer);
    /// ```
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Fetches this issuer's keys from `uri`, without discovery.
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example").jwks_uri("https://a.example/keys");
    /// # drop(issuer);
    /// ```
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Verifies this issuer's tokens with these keys only: no network.
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example")
    ///     .static_keys(tokengate::JwkSet { keys: Vec::new() });
    /// # drop(issuer);
    /// ```
    pub fn static_keys(mut self, keys: JwkSet) -> Self {
        self.static_keys = Some(keys);
        self
    }

    /// The algorithms this issuer's tokens may use, instead of the gate's.
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example")
    ///     .algorithms([tokengate::Algorithm::ES256]);
    /// # drop(issuer);
    /// ```
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// The identifier given to [`new`](Self::new).
    ///
    /// ```
    /// assert_eq!(tokengate::Issuer::new("https://a.example").issuer(), "https://a.example");
    /// ```
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl TokenGateBuilder {
    /// Trusts `issuer`: the identifier exactly as tokens carry it in `iss`
    /// and as the server's metadata names it (trailing slash included or
    /// not). Call again, or use [`issuers`](Self::issuers), to trust
    /// several; [`trust`](Self::trust) gives one settings of its own.
    ///
    /// With several issuers, a JWT's `iss`, read before its signature is
    /// checked, only chooses among them by exact match: an unknown or
    /// missing `iss` is a 401 without any network call, and only the
    /// chosen issuer's keys are tried (a key of one never verifies a token
    /// claiming another, whatever their `kid`s). Each issuer has its own
    /// key set, refresh budget and health, so a flood of unknown `kid`s or
    /// an outage at one does not touch the others.
    ///
    /// ```
    /// use tokengate::TokenGate;
    /// use tokengate::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (old, new) = (TestIssuer::start().await?, TestIssuer::start().await?);
    /// let gate = TokenGate::builder()
    ///     .issuer(old.issuer())
    ///     .issuer(new.issuer())
    ///     .audience(old.audience())
    ///     .build()
    ///     .await?;
    /// let principal = gate.verify(&new.token().audience(&old.audience()).sign()).await?;
    /// assert_eq!(principal.issuer(), Some(new.issuer().as_str()));
    /// # Ok(()) }
    /// ```
    pub fn issuer(self, issuer: impl Into<String>) -> Self {
        self.trust(Issuer::new(issuer))
    }

    /// Trusts each of `issuers` (see [`issuer`](Self::issuer)).
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .issuers(["https://a.example", "https://b.example"]);
    /// # drop(builder);
    /// ```
    pub fn issuers<I, T>(mut self, issuers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        for issuer in issuers {
            self = self.issuer(issuer);
        }
        self
    }

    /// Trusts an issuer with settings of its own (see [`Issuer`]).
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .trust(tokengate::Issuer::new("https://a.example").audience("api://a"));
    /// # drop(builder);
    /// ```
    pub fn trust(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Which trusted issuer introspects opaque tokens (RFC 7662 gives no
    /// way to tell an opaque token's issuer): the
    /// [`introspection_credentials`](Self::introspection_credentials) are
    /// that server's, and its endpoint comes from its discovery unless
    /// [`introspection_endpoint`](Self::introspection_endpoint) is set.
    /// Default: the first issuer. An answer's `iss`, when present, must be
    /// one of the trusted issuers, and is the principal's issuer.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .issuers(["https://a.example", "https://b.example"])
    ///     .introspecting_issuer("https://b.example");
    /// # drop(builder);
    /// ```
    pub fn introspecting_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.introspecting_issuer = Some(issuer.into());
        self
    }

    /// The issuers in order, checked: at least one, none twice, a key
    /// source of the gate's own only with one issuer; and the index of the
    /// introspecting one.
    pub(super) fn checked_issuers(&self) -> Result<usize, BuildError> {
        if self.issuers.is_empty() {
            return Err(BuildError::MissingIssuer);
        }
        if self.issuers.len() > usize::from(u16::MAX) {
            return Err(BuildError::InvalidConfig("too many issuers"));
        }
        for (i, a) in self.issuers.iter().enumerate() {
            if self.issuers[..i].iter().any(|b| b.issuer == a.issuer) {
                return Err(BuildError::InvalidConfig("an issuer is configured twice"));
            }
        }
        let gate_wide_keys = self.keys.jwks_uri.is_some()
            || self.keys.static_keys.is_some()
            || !self.keys.secrets.is_empty();
        if self.issuers.len() > 1 && gate_wide_keys {
            return Err(BuildError::InvalidConfig(
                "with several issuers, give each its own key source (Issuer::jwks_uri, Issuer::static_keys); HMAC secrets need a single issuer",
            ));
        }
        match &self.introspecting_issuer {
            None => Ok(0),
            Some(wanted) => self.issuers.iter().position(|i| &i.issuer == wanted).ok_or(
                BuildError::InvalidConfig("introspecting_issuer is not a trusted issuer"),
            ),
        }
    }
}
