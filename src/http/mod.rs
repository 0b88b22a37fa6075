//! tower middleware: the authenticating layer ([`TokenGateLayer`](crate::TokenGateLayer))
//! and the route layer that checks requirements ([`RequireScopes`](crate::RequireScopes)).

pub(crate) mod layer;
pub(crate) mod require;
