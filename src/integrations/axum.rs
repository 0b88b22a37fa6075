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

use crate::error::AuthError;
use crate::principal::Principal;
use crate::requirement::{Guard, RequirementSet, ScopeSet, check_scopes, missing_principal};
use crate::response::Wire;
use crate::verify::gate::{GateContext, TokenGate, responder};

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
    /// How the request presented its token: refusals answer in its scheme.
    presentation: crate::dpop::Presentation,
}

impl AuthRejection {
    fn new(error: AuthError, parts: &Parts) -> Self {
        AuthRejection {
            error,
            context: parts.extensions.get::<GateContext>().cloned(),
            presentation: parts
                .extensions
                .get::<crate::dpop::Presentation>()
                .copied()
                .unwrap_or(crate::dpop::Presentation::Bearer),
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
            presentation: crate::dpop::Presentation::Bearer,
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
        let mut response = responder(self.context.as_ref()).response(&self.error, Wire::Http);
        if let Some(GateContext(gate)) = &self.context {
            gate.inner
                .dpop_challenges(&self.error, &mut response, self.presentation);
        }
        response
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

/// The token's claims, as [`Principal::claims`] shows them, deserialized
/// into your type. A token whose claims do not fit is refused with 401
/// `invalid_token`: "lacks a required claim" when a field is missing,
/// "has a malformed claim" otherwise.
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
        fit::claims::<T>(principal.claims())
            .map(Claims)
            .map_err(|reason| AuthRejection::new(AuthError::InvalidToken(reason), parts))
    }
}

/// `T` read from the claims [`Principal::claims`] shows, through a
/// deserializer with an error type of its own: a missing field is told from
/// a malformed one by the call serde makes (`missing_field`), not by the
/// text of a message.
mod fit {
    use std::fmt;

    use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
    use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
    use serde::forward_to_deserialize_any;
    use serde_json::{Map, Value};

    use crate::error::InvalidToken;

    pub(super) fn claims<T: DeserializeOwned>(
        claims: &Map<String, Value>,
    ) -> Result<T, InvalidToken> {
        T::deserialize(Object(claims)).map_err(|e| match e {
            Unfit::Missing => InvalidToken::MissingClaim,
            Unfit::Malformed => InvalidToken::MalformedClaim,
        })
    }

    /// Why the claims do not fit. No text is kept: a message may quote a
    /// value of the token.
    #[derive(Debug)]
    pub(super) enum Unfit {
        Missing,
        Malformed,
    }

    impl fmt::Display for Unfit {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Unfit::Missing => "a required claim is missing",
                Unfit::Malformed => "a claim does not fit",
            })
        }
    }

    impl std::error::Error for Unfit {}

    impl de::Error for Unfit {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Unfit::Malformed
        }

        fn missing_field(_: &'static str) -> Self {
            Unfit::Missing
        }
    }

    /// A JSON object.
    struct Object<'a>(&'a Map<String, Value>);

    /// Any JSON value.
    struct Any<'a>(&'a Value);

    impl<'de, 'a> IntoDeserializer<'de, Unfit> for Any<'a> {
        type Deserializer = Self;

        fn into_deserializer(self) -> Self {
            self
        }
    }

    fn entries<'de, 'a>(
        map: &'a Map<String, Value>,
    ) -> MapDeserializer<'de, impl Iterator<Item = (&'a str, Any<'a>)>, Unfit> {
        MapDeserializer::new(map.iter().map(|(k, v)| (k.as_str(), Any(v))))
    }

    impl<'de> de::Deserializer<'de> for Object<'_> {
        type Error = Unfit;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unfit> {
            let mut map = entries(self.0);
            let value = visitor.visit_map(&mut map)?;
            map.end()?;
            Ok(value)
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct enum identifier ignored_any
        }
    }

    impl<'de> de::Deserializer<'de> for Any<'_> {
        type Error = Unfit;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unfit> {
            match self.0 {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(*b),
                Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                    (Some(u), _, _) => visitor.visit_u64(u),
                    (None, Some(i), _) => visitor.visit_i64(i),
                    (None, None, Some(f)) => visitor.visit_f64(f),
                    (None, None, None) => Err(Unfit::Malformed),
                },
                Value::String(s) => visitor.visit_str(s),
                Value::Array(items) => {
                    let mut seq = SeqDeserializer::new(items.iter().map(Any));
                    let value = visitor.visit_seq(&mut seq)?;
                    seq.end()?;
                    Ok(value)
                }
                Value::Object(map) => Object(map).deserialize_any(visitor),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unfit> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            visitor: V,
        ) -> Result<V::Value, Unfit> {
            visitor.visit_newtype_struct(self)
        }

        // As serde_json reads enums: a string for a unit variant, an object
        // of one member for the others.
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Unfit> {
            match self.0 {
                Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
                Value::Object(map) if map.len() == 1 => {
                    visitor.visit_enum(MapAccessDeserializer::new(entries(map)))
                }
                _ => Err(Unfit::Malformed),
            }
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    #[cfg(test)]
    mod tests {
        use serde::Deserialize;
        use serde_json::json;

        use super::*;

        fn fit<T: DeserializeOwned>(v: Value) -> Result<T, InvalidToken> {
            claims(v.as_object().unwrap())
        }

        #[derive(Deserialize, Debug, PartialEq)]
        struct Custom {
            tenant: String,
            level: Option<u8>,
            #[serde(default)]
            roles: Vec<Role>,
            region: Option<Region>,
        }

        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(rename_all = "lowercase")]
        enum Role {
            Admin,
            Reader,
        }

        #[derive(Deserialize, Debug, PartialEq)]
        enum Region {
            Eu { zone: u8 },
        }

        #[test]
        fn claims_fit_as_serde_json_reads_them() {
            let all = json!({
                "tenant": "acme", "level": 3, "roles": ["admin", "reader"],
                "region": {"Eu": {"zone": 2}}, "other": [1, -2, 0.5, null, {"x": true}],
            });
            assert_eq!(
                fit::<Custom>(all.clone()).unwrap(),
                serde_json::from_value::<Custom>(all.clone()).unwrap()
            );
            assert_eq!(fit::<Value>(all.clone()).unwrap(), all);
            let few: Custom = fit(json!({"tenant": "acme", "level": null})).unwrap();
            assert_eq!((few.level, few.roles.len(), few.region), (None, 0, None));
        }

        #[test]
        fn a_missing_field_is_told_from_a_malformed_one() {
            assert_eq!(
                fit::<Custom>(json!({})).unwrap_err(),
                InvalidToken::MissingClaim
            );
            for malformed in [
                json!({"tenant": 1}),
                json!({"tenant": "a", "level": 300}),
                json!({"tenant": "a", "roles": ["owner"]}),
                json!({"tenant": "a", "region": "Eu"}),
            ] {
                assert_eq!(
                    fit::<Custom>(malformed.clone()).unwrap_err(),
                    InvalidToken::MalformedClaim,
                    "{malformed}"
                );
            }
            // An error whose text reads like a missing field is not one.
            #[derive(Deserialize, Debug)]
            #[serde(try_from = "String")]
            struct Echo;
            impl TryFrom<String> for Echo {
                type Error = String;
                fn try_from(s: String) -> Result<Echo, String> {
                    Err(s)
                }
            }
            #[derive(Deserialize, Debug)]
            #[allow(dead_code)]
            struct Echoes {
                tenant: Echo,
            }
            assert_eq!(
                fit::<Echoes>(json!({"tenant": "missing field `tenant`"})).unwrap_err(),
                InvalidToken::MalformedClaim
            );
        }
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

impl<S: Send + Sync, R: ScopeSet> FromRequestParts<S> for Scoped<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match check_scopes(&parts.extensions, R::SCOPES, R::ANY) {
            Ok(principal) => Ok(Scoped(principal.clone(), PhantomData)),
            Err(e) => Err(AuthRejection::new(e, parts)),
        }
    }
}

/// The principal, provided it meets the [`Requirement`](crate::Requirement)
/// `R` names (see [`requirement_set!`](crate::requirement_set)); otherwise
/// the requirement's answer: 403 `insufficient_scope`, or 401
/// `insufficient_user_authentication` for a step-up.
///
/// ```
/// use tokengate::Requirement;
/// use tokengate::axum::Authorized;
///
/// tokengate::requirement_set! {
///     /// Auditors with a multi-factor login.
///     pub struct Audit = Requirement::role("auditor").and(Requirement::acr(["urn:tokengate:mfa"]));
/// }
/// async fn audit(caller: Authorized<Audit>) -> String {
///     format!("audit log for {}", caller.client_id().unwrap_or("-"))
/// }
/// # let _: axum::Router = axum::Router::new().route("/audit", axum::routing::get(audit));
/// ```
pub struct Authorized<R>(pub Principal, pub PhantomData<R>);

impl<R> Deref for Authorized<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R> std::fmt::Debug for Authorized<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authorized").field(&self.0).finish()
    }
}

impl<S: Send + Sync, R: RequirementSet> FromRequestParts<S> for Authorized<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match R::requirement().check(&parts.extensions) {
            Ok(principal) => Ok(Authorized(principal.clone(), PhantomData)),
            Err(e) => Err(AuthRejection::new(e, parts)),
        }
    }
}

/// An axum `Router` that serves the gate's RFC 9728 metadata document at
/// its well-known path(s), as [`TokenGate::metadata_service`] describes.
/// Merge it into your app beside the routes the gate protects, not under
/// the gate's layer: clients fetch the metadata before they have a token.
/// Without a [`resource`](crate::TokenGateBuilder::resource) the router is
/// empty.
///
/// ```
/// use axum::{Router, routing::post};
/// # async fn demo(gate: tokengate::TokenGate) {
/// let app: Router = Router::new()
///     .route("/mcp", post(|| async { "…" }))
///     .layer(gate.layer())
///     .merge(tokengate::axum::metadata_router(&gate));
/// # }
/// ```
pub fn metadata_router<S>(gate: &TokenGate) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    gate.resource_metadata_paths()
        .fold(axum::Router::new(), |router, path| {
            router.route_service(path, gate.metadata_service())
        })
}
