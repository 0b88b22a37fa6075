//! tonic helpers (feature `tonic`).
//!
//! The [`TokenGateLayer`](crate::TokenGateLayer) itself works on
//! `tonic::transport::Server::builder().layer(gate.layer())`: for gRPC
//! requests it answers failures as trailers-only gRPC responses
//! (`grpc-status` 16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE,
//! with `www-authenticate` kept). Inside a handler, these helpers read the
//! principal from `request.extensions()` and check scopes with the same
//! function as every other guard, returning a [`tonic::Status`].
//!
//! ```
//! use tokengate::tonic::authorize;
//! use tokengate::ScopeRequirement;
//!
//! fn create_item(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
//!     let principal = authorize(request, &ScopeRequirement::all(["items:write"]))?;
//!     Ok(format!("created by {}", principal.client_id().unwrap_or("-")))
//! }
//!
//! // Without the gate's layer there is no principal: UNAUTHENTICATED.
//! let status = create_item(&tonic::Request::new(())).unwrap_err();
//! assert_eq!(status.code(), tonic::Code::Unauthenticated);
//! ```

use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use crate::error::AuthError;
use crate::principal::Principal;
use crate::requirement::{Guard, RequirementSet, ScopeSet, check_scopes, missing_principal};
use crate::response::Wire;
use crate::verify::gate::{GateContext, dpop_algs, responder};

/// The principal of a request that went through the gate.
///
/// ```
/// let status = tokengate::tonic::principal(&tonic::Request::new(())).unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unauthenticated);
/// ```
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    let extensions = request.extensions();
    extensions
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| status(&missing_principal(extensions), request))
}

/// The principal, if it meets `requirement` (a
/// [`ScopeRequirement`](crate::ScopeRequirement) or a
/// [`Requirement`](crate::Requirement)); otherwise PERMISSION_DENIED, or
/// UNAUTHENTICATED without a principal or for a step-up (with the RFC 9470
/// challenge in `www-authenticate`). For a requirement built at run time;
/// a [`ScopeSet`] type goes through [`require`], a [`RequirementSet`]
/// through [`authorized`].
///
/// ```
/// use tokengate::{Requirement, ScopeRequirement};
/// let write = ScopeRequirement::all(["items:write"]);
/// let status = tokengate::tonic::authorize(&tonic::Request::new(()), &write).unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unauthenticated);
/// let audit = Requirement::role("auditor");
/// assert!(tokengate::tonic::authorize(&tonic::Request::new(()), &audit).is_err());
/// ```
pub fn authorize<T, R: Guard>(request: &Request<T>, requirement: &R) -> Result<Principal, Status> {
    requirement
        .check(request.extensions())
        .cloned()
        .map_err(|e| status(&e, request))
}

/// The principal, if it has the scopes `R` declares
/// (see [`scope_set!`](crate::scope_set)).
///
/// ```
/// tokengate::scope_set! {
///     /// Writing items.
///     pub struct ItemsWrite = "items:write";
/// }
/// let status = tokengate::tonic::require::<ItemsWrite, _>(&tonic::Request::new(())).unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unauthenticated);
/// ```
pub fn require<R: ScopeSet, T>(request: &Request<T>) -> Result<Principal, Status> {
    check_scopes(request.extensions(), R::SCOPES, R::ANY)
        .cloned()
        .map_err(|e| status(&e, request))
}

/// The principal, if it meets the requirement `R` names
/// (see [`requirement_set!`](crate::requirement_set)).
///
/// ```
/// tokengate::requirement_set! {
///     /// Auditors.
///     pub struct Audit = tokengate::Requirement::role("auditor");
/// }
/// let status = tokengate::tonic::authorized::<Audit, _>(&tonic::Request::new(())).unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unauthenticated);
/// ```
pub fn authorized<R: RequirementSet, T>(request: &Request<T>) -> Result<Principal, Status> {
    authorize(request, R::requirement())
}

/// The gRPC status for an [`AuthError`], with the same code and message the
/// layer sends, and the RFC 6750 challenge as `www-authenticate` metadata.
fn status<T>(err: &AuthError, request: &Request<T>) -> Status {
    let context = request.extensions().get::<GateContext>();
    let mut headers = responder(context).headers(err, Wire::GRPC);
    if let Some(algs) = dpop_algs(request.extensions())
        && let Some(bearer) = headers.get(http::header::WWW_AUTHENTICATE).cloned()
    {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            crate::response::dpop_challenge(&bearer, algs),
        );
    }
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unauthenticated")
        .to_owned();
    let mut status = Status::new(Code::from(i32::from(err.grpc_code())), message);
    if let Some(challenge) = headers.get(http::header::WWW_AUTHENTICATE)
        && let Ok(value) = MetadataValue::try_from(challenge.as_bytes())
    {
        status.metadata_mut().insert("www-authenticate", value);
    }
    status
}
