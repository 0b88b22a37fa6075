//! The trusted issuers: one, or several (a migration between identity
//! providers, a realm per tenant, first-party and partner authorization
//! servers), each with its own discovery, key set, refresh budget and
//! health, and optionally its own audiences, algorithms and key source.

use jsonwebtoken::jwk::JwkSet;

use super::introspection::SecretString;
use super::{BuildError, TokenGateBuilder};
use crate::keys::Algorithm;
use crate::token::claims::{TENANT_ID, TenantRule};
use crate::verify::verifier::OpaqueRouter;

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
    /// Set for a multi-tenant issuer: where its metadata is discovered.
    pub(super) discover_at: Option<String>,
    /// `None`: every tenant; only for a multi-tenant issuer.
    pub(super) tenants: Option<Vec<String>>,
    /// Its own RFC 7662 client, and endpoint (else discovered).
    pub(super) introspection: Option<((String, SecretString), Option<String>)>,
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
            discover_at: None,
            tenants: None,
            introspection: None,
        }
    }

    /// Introspects opaque tokens of this issuer (RFC 7662), authenticating
    /// as this client; the endpoint comes from its discovery unless
    /// [`introspection_endpoint`](Self::introspection_endpoint) is set. The
    /// gate's other introspection settings (client authentication, caching,
    /// bounds, mode) apply, and each introspecting issuer has its own answer
    /// cache of [`introspection_cache_bytes`](TokenGateBuilder::introspection_cache_bytes).
    /// Which issuer an opaque token goes to: see
    /// [`opaque_token_issuer`](TokenGateBuilder::opaque_token_issuer).
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example")
    ///     .introspection_credentials("my-api", "secret");
    /// # drop(issuer);
    /// ```
    pub fn introspection_credentials(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        let endpoint = self.introspection.take().and_then(|(_, e)| e);
        self.introspection = Some(((client_id.into(), SecretString(secret.into())), endpoint));
        self
    }

    /// This issuer's introspection endpoint, instead of the discovered one;
    /// only with [`introspection_credentials`](Self::introspection_credentials).
    ///
    /// ```
    /// let issuer = tokengate::Issuer::new("https://a.example")
    ///     .introspection_credentials("my-api", "secret")
    ///     .introspection_endpoint("https://a.example/oauth2/introspect");
    /// # drop(issuer);
    /// ```
    pub fn introspection_endpoint(mut self, url: impl Into<String>) -> Self {
        if let Some((_, endpoint)) = &mut self.introspection {
            *endpoint = Some(url.into());
        }
        self
    }

    /// A multi-tenant issuer, such as Entra ID's
    /// `https://login.microsoftonline.com/{tenantid}/v2.0`: a token's `iss`
    /// must be `template` with every `{tenantid}` replaced by the token's
    /// own `tid` claim, exactly. Its keys come from the metadata found at
    /// [`discover_at`](Self::discover_at) (for Entra, the `common` tenant's,
    /// whose `issuer` is the template itself), or from
    /// [`jwks_uri`](Self::jwks_uri).
    ///
    /// **Without [`allowed_tenants`](Self::allowed_tenants), every tenant
    /// of the provider gets in**: anyone can create an Entra tenant and
    /// get a token for your app's audience from it. List your customers'
    /// tenant ids unless your app really is open to every organization.
    ///
    /// ```
    /// use tokengate::{Issuer, TokenGate};
    ///
    /// let builder = TokenGate::builder()
    ///     .audience("api://my-app")
    ///     .trust(
    ///         Issuer::tenants("https://login.microsoftonline.com/{tenantid}/v2.0")
    ///             .discover_at("https://login.microsoftonline.com/common/v2.0")
    ///             .allowed_tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47"]),
    ///     );
    /// # drop(builder);
    /// ```
    pub fn tenants(template: impl Into<String>) -> Self {
        let mut issuer = Issuer::new(template);
        issuer.discover_at = Some(String::new());
        issuer
    }

    /// Where a multi-tenant issuer's metadata is discovered: the
    /// `/.well-known/openid-configuration` (or RFC 8414 metadata) under this
    /// URL, whose `issuer` must equal the template exactly.
    ///
    /// ```
    /// let issuer = tokengate::Issuer::tenants("https://login.microsoftonline.com/{tenantid}/v2.0")
    ///     .discover_at("https://login.microsoftonline.com/common/v2.0");
    /// # drop(issuer);
    /// ```
    pub fn discover_at(mut self, url: impl Into<String>) -> Self {
        self.discover_at = Some(url.into());
        self
    }

    /// Only these tenants' tokens get in (a multi-tenant issuer's `tid`
    /// values); call again to add more.
    ///
    /// ```
    /// let issuer = tokengate::Issuer::tenants("https://login.microsoftonline.com/{tenantid}/v2.0")
    ///     .allowed_tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47"]);
    /// # drop(issuer);
    /// ```
    pub fn allowed_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tenants
            .get_or_insert_with(Vec::new)
            .extend(tenants.into_iter().map(Into::into));
        self
    }

    /// Whether this is a multi-tenant issuer (see [`tenants`](Self::tenants)).
    pub(super) fn is_template(&self) -> bool {
        self.discover_at.is_some()
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
    /// way to tell an opaque token's issuer) unless
    /// [`opaque_token_issuer`](Self::opaque_token_issuer) decides. The
    /// gate's [`introspection_credentials`](Self::introspection_credentials)
    /// are that server's (unless it has its own,
    /// [`Issuer::introspection_credentials`]), and its endpoint comes from
    /// its discovery unless
    /// [`introspection_endpoint`](Self::introspection_endpoint) is set.
    /// Default: the first issuer with credentials of its own, else the
    /// first issuer. An answer's `iss`, when present, must be one of the
    /// trusted issuers, and is the principal's issuer.
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

    /// Chooses the issuer that introspects each opaque token, for
    /// authorization servers whose tokens tell (a prefix, as Okta's and
    /// GitHub-style tokens have): `route` returns a trusted issuer's
    /// identifier, or `None`. A token routed nowhere, or to an issuer that
    /// does not introspect, is refused (401) without a call. Without it,
    /// every opaque token goes to the
    /// [`introspecting_issuer`](Self::introspecting_issuer).
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .issuers(["https://a.example", "https://b.example"])
    ///     .opaque_token_issuer(|token| match token.split_once('_') {
    ///         Some(("a", _)) => Some("https://a.example".to_owned()),
    ///         Some(("b", _)) => Some("https://b.example".to_owned()),
    ///         _ => None,
    ///     });
    /// # drop(builder);
    /// ```
    pub fn opaque_token_issuer(
        mut self,
        route: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.opaque_router = Some(OpaqueRouter(std::sync::Arc::new(route)));
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
        for issuer in &self.issuers {
            let placeholders = issuer.issuer.matches(TENANT_ID).count();
            if issuer.is_template() != (placeholders > 0) {
                return Err(BuildError::InvalidConfig(
                    "a multi-tenant issuer (Issuer::tenants) needs {tenantid} in its template, and only it may have one",
                ));
            }
            if issuer.tenants.is_some() && !issuer.is_template() {
                return Err(BuildError::InvalidConfig(
                    "allowed_tenants is for a multi-tenant issuer (Issuer::tenants)",
                ));
            }
            // A tenant no `tid` can be (empty, `{tenantid}`, a URL) would
            // lock its users out without a word; an empty list lets no one in.
            if let Some(tenants) = &issuer.tenants
                && (tenants.is_empty() || !tenants.iter().all(|t| TenantRule::plausible(t)))
            {
                return Err(BuildError::InvalidConfig(
                    "allowed_tenants must list tenant ids (letters, digits, '-', '.', '_'; at most 64)",
                ));
            }
            if issuer.is_template()
                && issuer.discover_at.as_deref() == Some("")
                && issuer.jwks_uri.is_none()
                && issuer.static_keys.is_none()
            {
                return Err(BuildError::InvalidConfig(
                    "a multi-tenant issuer needs discover_at(..), jwks_uri(..) or static_keys(..)",
                ));
            }
        }
        let introspecting = match &self.introspecting_issuer {
            None => self
                .issuers
                .iter()
                .position(|i| i.introspection.is_some())
                .unwrap_or(0),
            Some(wanted) => self
                .issuers
                .iter()
                .position(|i| &i.issuer == wanted)
                .ok_or(BuildError::InvalidConfig(
                    "introspecting_issuer is not a trusted issuer",
                ))?,
        };
        let introspects = |(index, issuer): &(usize, &Issuer)| {
            issuer.introspection.is_some()
                || (*index == introspecting && self.introspection.enabled())
        };
        if self
            .issuers
            .iter()
            .enumerate()
            .filter(introspects)
            .any(|(_, i)| i.is_template())
        {
            return Err(BuildError::InvalidConfig(
                "a multi-tenant issuer cannot introspect: choose another with introspecting_issuer",
            ));
        }
        Ok(introspecting)
    }
}
