//! axum extractors (feature `axum`): [`Principal`], `Option<Principal>`,
//! [`Claims`] and [`Scoped`]. They read what the gate's layer left in the
//! request extensions and reject with the same RFC 6750 answers as the layer.
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use tokengate::{Principal, TokenGate};
//! use tokengate::axum::Scoped;
//!
//! tokengate::scope_set! {
//!     /// Reading items.
//!     pub struct ItemsRead = "items:read";
//! }
//!
//! async fn me(principal: Principal) -> String {
//!     principal.subject().unwrap_or("a client").to_owned()
//! }
//!
//! async fn greet(principal: Option<Principal>) -> String {
//!     match principal {
//!         Some(p) => format!("hello {}", p.subject().unwrap_or("client")),
//!         None => "hello, stranger".to_owned(),
//!     }
//! }
//!
//! async fn items(Scoped(principal, ..): Scoped<ItemsRead>) -> Json<Vec<String>> {
//!     Json(vec![format!("visible to {}", principal.subject().unwrap_or("-"))])
//! }
//!
//! # async fn demo(gate: TokenGate) {
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/items", get(items))
//!     .layer(gate.layer())
//!     .merge(Router::new().route("/greet", get(greet)).layer(gate.optional_layer()));
//! # }
//! ```

use std::convert::Infallible;
use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{AuthError, InvalidToken};
use crate::guard::{GateContext, RequiredScopes, check_scopes, missing_principal, responder};
use crate::principal::Principal;

/// Why an extractor refused the request; answers like the layer would
/// (the gate's realm and error detail).
///
/// ```
/// use axum_core::response::IntoResponse;
/// let rejection = tokengate::axum::AuthRejection::from(tokengate::AuthError::MissingToken);
/// assert_eq!(rejection.into_response().status(), 401);
/// ```
#[derive(Clone)]
pub struct AuthRejection {
    error: AuthError,
    context: Option<GateContext>,
}

impl AuthRejection {
    fn new(error: AuthError, parts: &Parts) -> Self {
        AuthRejection {
            error,
            context: parts.extensions.get::<GateContext>().cloned(),
        }
    }

    /// What went wrong.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl From<AuthError> for AuthRejection {
    fn from(error: AuthError) -> Self {
        AuthRejection {
            error,
            context: None,
        }
    }
}

impl std::fmt::Debug for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AuthRejection").field(&self.error).finish()
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        responder(self.context.as_ref()).response(&self.error, false)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            None => Err(AuthRejection::new(
                missing_principal(&parts.extensions),
                parts,
            )),
        }
    }
}

/// `Option<Principal>`: `None` when the request came through
/// [`TokenGate::optional_layer`](crate::TokenGate::optional_layer) without
/// a token.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// The token's claims deserialized into your type. A token whose claims do
/// not fit is refused with 401 `invalid_token`.
///
/// ```
/// use tokengate::axum::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct Tenant { tenant: String }
///
/// async fn handler(Claims(t): Claims<Tenant>) -> String {
///     t.tenant
/// }
/// # let _: axum::Router = axum::Router::new().route("/", axum::routing::get(handler));
/// ```
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        principal.claims_as::<T>().map(Claims).map_err(|e| {
            let reason = if e.to_string().starts_with("missing field") {
                InvalidToken::MissingClaim
            } else {
                InvalidToken::MalformedClaim
            };
            AuthRejection::new(AuthError::InvalidToken(reason), parts)
        })
    }
}

/// The principal, provided it has the scopes `R` declares
/// (see [`scope_set!`](crate::scope_set)); otherwise 403 with
/// `error="insufficient_scope"` and the `scope` attribute.
///
/// ```
/// tokengate::scope_set! {
///     /// Deleting needs both.
///     pub struct ItemsDelete = all("items:write", "admin");
/// }
/// async fn delete(scoped: tokengate::axum::Scoped<ItemsDelete>) -> String {
///     format!("deleted by {}", scoped.subject().unwrap_or("-"))
/// }
/// # let _: axum::Router = axum::Router::new().route("/", axum::routing::delete(delete));
/// ```
pub struct Scoped<R>(pub Principal, pub PhantomData<R>);

impl<R> Deref for Scoped<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R> std::fmt::Debug for Scoped<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Scoped").field(&self.0).finish()
    }
}

impl<S: Send + Sync, R: RequiredScopes> FromRequestParts<S> for Scoped<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match check_scopes(&parts.extensions, R::SCOPES, R::ANY) {
            Ok(principal) => Ok(Scoped(principal.clone(), PhantomData)),
            Err(e) => Err(AuthRejection::new(e, parts)),
        }
    }
}
