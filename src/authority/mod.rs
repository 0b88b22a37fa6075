//! The authorization server, seen from the resource server: bounded HTTP
//! fetches (no redirects, size and time caps), metadata discovery (RFC 8414,
//! OpenID Connect Discovery), the key set cache (RFC 7517), and token
//! introspection (RFC 7662). Nothing here knows of requests to the service.

pub(crate) mod discovery;
pub(crate) mod fetch;
pub(crate) mod introspection;
pub(crate) mod jwks;
