//! tower middleware: the authenticating layer ([`TokenGateLayer`](crate::TokenGateLayer))
//! the route layer that checks requirements ([`RequireScopes`](crate::RequireScopes)),
//! and the RFC 9728 metadata endpoint ([`MetadataService`](crate::MetadataService)).

pub(crate) mod layer;
pub(crate) mod metadata;
pub(crate) mod ready;
pub(crate) mod require;
