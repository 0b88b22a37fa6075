//! Why a gate could not be built: configuration and startup problems,
//! reported before the service takes traffic.

use crate::authority::discovery::DiscoveryError;
use crate::authority::fetch::FetchError;

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
        "no audience configured: call .audience(…) or .resource(…), or .accept_any_audience() to opt out knowingly"
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
