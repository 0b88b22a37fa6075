//! Configuration, resolved once before the first request. [`TokenGateBuilder`]
//! keeps its settings in typed groups, one per concern, each in its own file
//! with its setters and its part of [`build`](TokenGateBuilder::build):
//!
//! - `claims.rs`: whose tokens are accepted (issuer, audiences, time
//!   leeway, RFC 9068 strictness) and where tokens may come from;
//! - `keys.rs`: the key source (discovery, `jwks_uri`, static keys, HMAC
//!   secrets), algorithms, key set timing and the verified-token cache;
//! - `introspection.rs`: RFC 7662 for opaque tokens;
//! - `http.rs`: the bounds of every call to the authorization server and the
//!   URL policy (https, or loopback http);
//! - `answers.rs`: how refusals are answered (realm, detail, `Retry-After`);
//! - `resource.rs`: the protected resource (RFC 9728, RFC 8707): its
//!   identifier and metadata document.
//!
//! Imported by nobody but the crate root: everything else is built from what
//! `build` hands it.

/// Builder setters that store their argument in one field as it is, each
/// written as its rustdoc and `name(argument: Type) => field.path;`. A
/// setter that converts or checks its argument is written out by hand.
macro_rules! setters {
    ($($(#[$meta:meta])* $name:ident($arg:ident: $ty:ty) => $($field:ident).+;)+) => {
        $(
            $(#[$meta])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$($field).+ = $arg;
                self
            }
        )+
    };
}

mod answers;
mod claims;
mod env;
mod error;
mod http;
mod introspection;
mod issuers;
mod keys;
mod resource;

use std::sync::Arc;

use crate::authority::discovery;
use crate::authority::jwks::JwksTiming;
use crate::token::bearer::BearerPolicy;
use crate::token::claims::{TENANT_ID, TenantRule};
use crate::verify::gate::{Shared, TokenGate};
use crate::verify::token_cache::TokenCache;
use crate::verify::verifier::{Authority, OpaqueRouter, Verifier};

pub use env::{ENV_VARIABLES, EnvError};
pub use error::BuildError;
pub use issuers::Issuer;

/// Configures a [`TokenGate`].
///
/// | setting | default |
/// |---|---|
/// | [`issuer`](Self::issuer) | required: one or more ([`trust`](Self::trust) for per-issuer settings; [`introspecting_issuer`](Self::introspecting_issuer), [`opaque_token_issuer`](Self::opaque_token_issuer) for opaque tokens) |
/// | [`audience`](Self::audience) | required, or the [`resource`](Self::resource), or [`accept_any_audience`](Self::accept_any_audience) |
/// | key source | discovery from the issuer; or [`jwks_uri`](Self::jwks_uri), [`static_keys`](Self::static_keys), [`hmac_secret`](Self::hmac_secret) |
/// | [`algorithms`](Self::algorithms) | RS256/384/512, PS256/384/512, ES256/384, EdDSA |
/// | [`leeway`](Self::leeway) | 60 s |
/// | [`strict_rfc9068`](Self::strict_rfc9068) | off (`typ` `at+jwt`, `JWT` or absent) |
/// | [`max_token_length`](Self::max_token_length) | 16 KiB |
/// | [`allow_query_token`](Self::allow_query_token) | off |
/// | [`resource`](Self::resource) | none; when set, the default audience and the RFC 9728 metadata's subject |
/// | [`scopes_supported`](Self::scopes_supported) | none listed in the metadata |
/// | [`challenge_scope`](Self::challenge_scope) | no `scope` in 401 challenges |
/// | [`metadata_at_root`](Self::metadata_at_root) | off: the metadata is served at its path-inserted URL only |
/// | [`realm`](Self::realm) | the first audience, else `"api"` |
/// | [`error_detail`](Self::error_detail) | [`ErrorDetail::Describe`](crate::ErrorDetail::Describe) |
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
    issuers: Vec<issuers::Issuer>,
    introspecting_issuer: Option<String>,
    opaque_router: Option<OpaqueRouter>,
    claims: claims::ClaimSettings,
    bearer: BearerPolicy,
    keys: keys::KeySettings,
    jwks: JwksTiming,
    introspection: introspection::IntrospectionSettings,
    http: http::HttpSettings,
    answers: answers::AnswerSettings,
    resource: resource::ResourceSettings,
    dpop: crate::dpop::DpopSettings,
}

impl Default for TokenGateBuilder {
    fn default() -> Self {
        TokenGateBuilder {
            issuers: Vec::new(),
            introspecting_issuer: None,
            opaque_router: None,
            claims: claims::ClaimSettings::default(),
            bearer: claims::DEFAULT_BEARER,
            keys: keys::KeySettings::default(),
            jwks: keys::DEFAULT_JWKS_TIMING,
            introspection: introspection::IntrospectionSettings::default(),
            http: http::HttpSettings::default(),
            answers: answers::AnswerSettings::default(),
            resource: resource::ResourceSettings::default(),
            dpop: crate::dpop::DpopSettings::default(),
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
    /// Resolves the configuration: checks it, runs discovery, loads the keys,
    /// and starts the background key refresh (which ends when the last clone
    /// of the gate is dropped). Must run inside a tokio runtime.
    pub async fn build(mut self) -> Result<TokenGate, BuildError> {
        // Everything that needs no network is checked first, so a typo
        // fails at once rather than after a discovery round trip.
        let introspecting = self.checked_issuers()?;
        let issuer_urls = self
            .issuers
            .iter()
            .map(|i| {
                // A multi-tenant issuer is discovered where it says; its
                // template, filled, must still meet the URL policy.
                let filled = i.issuer.replace(TENANT_ID, "tenant");
                self.http.checked_url("issuer", &filled)?;
                match i.discover_at.as_deref() {
                    Some(at) if !at.is_empty() => self.http.checked_url("discover_at", at),
                    _ => self.http.checked_url("issuer", &filled),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let resource = self.resource.identifier(&self.http)?;
        if let Some(resource) = &resource
            && self.claims.audiences.is_empty()
            && !self.claims.any_audience
        {
            self.claims.audiences.push(resource.clone());
        }
        self.claims.check(&self.bearer)?;
        let dpop = self
            .dpop
            .build(resource.as_deref())
            .map_err(BuildError::InvalidConfig)?;
        if self
            .issuers
            .iter()
            .any(|i| i.audiences.iter().any(String::is_empty))
        {
            return Err(BuildError::InvalidConfig("an audience is empty"));
        }
        let timing = self.jwks_timing()?;
        let scope_hint = self.resource.hint()?;
        // Concrete issuers only: a template is no authorization server a
        // client could discover.
        let identifiers: Vec<String> = self
            .issuers
            .iter()
            .filter(|i| !i.is_template())
            .map(|i| i.issuer.clone())
            .collect();
        let metadata = self.resource.publish(
            resource,
            &identifiers,
            self.bearer.allow_query,
            dpop.as_ref(),
            self.dpop.certificate_bound,
        )?;
        let responder = self
            .answers
            .responder(&self.claims.audiences)?
            .with_resource(
                metadata.as_ref().map(|m| m.url.as_str()),
                scope_hint.as_deref(),
            );
        let fetcher = self.http.fetcher()?;

        let mut authorities = Vec::with_capacity(self.issuers.len());
        for (index, (issuer, url)) in self.issuers.iter().zip(&issuer_urls).enumerate() {
            let mut keys = self.keys.clone();
            if issuer.jwks_uri.is_some() || issuer.static_keys.is_some() {
                keys.jwks_uri = issuer.jwks_uri.clone();
                keys.static_keys = issuer.static_keys.clone();
            }
            if let Some(algorithms) = &issuer.algorithms {
                keys.algorithms = Some(algorithms.clone());
            }
            let (allowed, secrets) = keys.algorithms_and_secrets()?;
            let from_discovery = keys.keys_from_discovery(&secrets);
            let introspection = self.introspection_of(issuer, index == introspecting);
            let introspects = introspection.as_ref().is_some_and(|i| i.enabled());
            let discovered = if from_discovery
                || introspection
                    .as_ref()
                    .is_some_and(|i| i.enabled() && i.endpoint.is_none())
            {
                Some(discovery::discover(&fetcher, &issuer.issuer, url).await?)
            } else {
                None
            };
            let source = self
                .key_source(
                    &keys,
                    introspects,
                    (allowed, secrets),
                    timing,
                    (&fetcher, discovered.as_ref()),
                    &issuer.issuer,
                )
                .await?;
            let introspector = match &introspection {
                Some(settings) if introspects => self.introspector(
                    settings,
                    fetcher.clone(),
                    discovered.as_ref(),
                    &issuer.issuer,
                )?,
                _ => None,
            };
            let mut rules = self.claims.rules(issuer.issuer.clone(), allowed);
            rules.dpop = dpop.is_some();
            if !issuer.audiences.is_empty() {
                rules.audiences = issuer.audiences.clone();
            }
            if issuer.is_template() {
                rules.tenants = Some(Arc::new(TenantRule {
                    template: issuer.issuer.clone(),
                    allowed: issuer.tenants.clone(),
                }));
            }
            if introspects {
                rules.other_issuers = identifiers
                    .iter()
                    .filter(|i| **i != issuer.issuer)
                    .cloned()
                    .collect();
            }
            authorities.push(Authority {
                jwks: source.jwks,
                rules,
                verify_jwt_locally: source.verify_jwt_locally,
                introspector,
            });
        }
        let token_cache = (self.keys.token_cache_bytes > 0)
            .then(|| TokenCache::new(self.keys.token_cache_bytes, self.claims.leeway.as_secs()));
        let dpop_bare = dpop.as_ref().and_then(|d| {
            responder
                .challenge(&crate::error::AuthError::MissingToken)
                .map(|bare| crate::response::dpop_challenge(&bare, &d.algs))
        });
        let gate = TokenGate {
            inner: Arc::new(Shared {
                verifier: Verifier::new(
                    authorities,
                    self.bearer,
                    token_cache,
                    introspecting,
                    self.opaque_router.clone(),
                ),
                responder,
                metadata,
                hierarchy: self.claims.hierarchy.clone(),
                dpop,
                certificate_header: self.dpop.certificate_header.clone(),
                dpop_bare,
            }),
        };
        #[cfg(feature = "metrics")]
        crate::verify::gate::sample_gauges(&gate);
        Ok(gate)
    }
}
