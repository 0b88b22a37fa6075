//! Requirements: what a route requires of the [`Principal`] the gate put in
//! the request extensions: scopes ([`ScopeRequirement`], [`ScopeSet`]) or
//! anything a [`Requirement`] can say (roles, claims, the client, step-up).
//! Every guard — the route layer ([`Require`]), the axum extractors,
//! `#[require_scopes]`, the tonic helpers — checks through [`Guard::check`],
//! which applies the gate's [`ScopeHierarchy`] and counts refusals. A
//! failure is an [`AuthError`] (403 `insufficient_scope`, 401
//! `insufficient_user_authentication`, or 401 when no principal is there
//! at all); the one renderer answers it.

pub(crate) mod hierarchy;
pub(crate) mod roles;
mod rule;

use std::sync::Arc;

use http::Extensions;

pub use self::hierarchy::ScopeHierarchy;
pub use self::roles::{ClaimPath, RoleSource, Roles};
pub use self::rule::Requirement;
use crate::error::AuthError;
use crate::principal::Principal;
use crate::scope::{InvalidScope, Scopes, is_scope_token};
use crate::verify::gate::GateContext;

/// What the guards check: a [`ScopeRequirement`] or a [`Requirement`].
/// Sealed: the crate's two requirement types are the only ones.
pub trait Guard: sealed::Sealed + Clone + Send + Sync + 'static {
    /// The principal the gate left in `extensions`, if it meets the
    /// requirement (scopes through the gate's [`ScopeHierarchy`]);
    /// otherwise the error to answer with. Refusals are counted in the
    /// gate's metrics.
    ///
    /// ```
    /// use tokengate::{Guard, Requirement};
    /// let err = Requirement::role("auditor").check(&http::Extensions::new()).unwrap_err();
    /// assert_eq!(err, tokengate::AuthError::MissingToken);
    /// ```
    fn check<'e>(&self, extensions: &'e Extensions) -> Result<&'e Principal, AuthError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::ScopeRequirement {}
    impl Sealed for super::Requirement {}
}

impl Guard for ScopeRequirement {
    fn check<'e>(&self, extensions: &'e Extensions) -> Result<&'e Principal, AuthError> {
        check_scopes(extensions, &self.scopes, self.any)
    }
}

impl Guard for Requirement {
    fn check<'e>(&self, extensions: &'e Extensions) -> Result<&'e Principal, AuthError> {
        let Some(principal) = extensions.get::<Principal>() else {
            return Err(counted(extensions, missing_principal(extensions)));
        };
        match self.verdict(principal, hierarchy(extensions)) {
            Ok(()) => Ok(principal),
            Err(e) => Err(counted(extensions, e)),
        }
    }
}

/// The scope hierarchy of the gate that ran, if it has one.
pub(crate) fn hierarchy(extensions: &Extensions) -> Option<&ScopeHierarchy> {
    extensions
        .get::<GateContext>()
        .and_then(|GateContext(gate)| gate.inner.hierarchy.as_ref())
}

/// A type that names a [`Requirement`], for the typed extractor
/// [`Authorized`](crate::axum::Authorized) and
/// [`tonic::authorized`](crate::tonic::authorized). Declare one with
/// [`requirement_set!`](crate::requirement_set).
pub trait RequirementSet {
    /// The requirement, built once.
    fn requirement() -> &'static Requirement;
}

/// Declares requirement types: each names a [`Requirement`] expression,
/// built the first time it is checked and kept for the life of the
/// process.
///
/// ```
/// use tokengate::{Requirement, RequirementSet};
///
/// tokengate::requirement_set! {
///     /// Auditors, from a known client.
///     pub struct Auditors = Requirement::role("auditor").and(Requirement::client_in(["audit-ui"]));
///     /// A multi-factor login.
///     pub struct StepUp = Requirement::acr(["urn:tokengate:mfa"]);
/// }
/// assert!(format!("{:?}", Auditors::requirement()).contains("auditor"));
/// ```
#[macro_export]
macro_rules! requirement_set {
    () => {};
    ($(#[$meta:meta])* $vis:vis struct $name:ident = $requirement:expr; $($rest:tt)*) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::RequirementSet for $name {
            fn requirement() -> &'static $crate::Requirement {
                static REQUIREMENT: ::std::sync::LazyLock<$crate::Requirement> =
                    ::std::sync::LazyLock::new(|| $requirement);
                &REQUIREMENT
            }
        }
        $crate::requirement_set!($($rest)*);
    };
}

/// Scopes a resource requires: all of a list, or any one of it.
///
/// ```
/// use tokengate::{ScopeRequirement, Scopes};
///
/// let write = ScopeRequirement::all(["items:write", "admin"]);
/// assert!(write.is_satisfied_by(&Scopes::parse("admin items:write").unwrap()));
/// assert!(!write.is_satisfied_by(&Scopes::parse("items:write").unwrap()));
///
/// let read = ScopeRequirement::any(["items:read", "admin"]);
/// assert!(read.is_satisfied_by(&Scopes::parse("admin").unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    any: bool,
    scopes: Arc<[Box<str>]>,
}

impl ScopeRequirement {
    /// Every one of `scopes` is required.
    ///
    /// # Panics
    /// If a scope is not RFC 6749 §3.3 syntax or the list is empty: a
    /// programming error, caught when the router is built. See
    /// [`try_all`](Self::try_all) for a fallible version.
    pub fn all<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::try_all(scopes).unwrap_or_else(|e| panic!("RequireScopes: {e}"))
    }

    /// At least one of `scopes` is required.
    ///
    /// A principal with none of them is refused with a challenge that names
    /// the first of `scopes` as its `scope` attribute: RFC 6750 §3 reads
    /// that attribute as every scope the token needs, so it can name one
    /// alternative only. List first the scope clients should ask for.
    ///
    /// # Panics
    /// As [`all`](Self::all).
    pub fn any<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::try_any(scopes).unwrap_or_else(|e| panic!("RequireScopes: {e}"))
    }

    /// [`all`](Self::all), refusing malformed scopes with an error.
    ///
    /// ```
    /// assert!(tokengate::ScopeRequirement::try_all(["two words"]).is_err());
    /// ```
    pub fn try_all<I, T>(scopes: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::new(false, scopes)
    }

    /// [`any`](Self::any), refusing malformed scopes with an error.
    ///
    /// ```
    /// assert!(tokengate::ScopeRequirement::try_any(Vec::<String>::new()).is_err());
    /// ```
    pub fn try_any<I, T>(scopes: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self::new(true, scopes)
    }

    fn new<I, T>(any: bool, scopes: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let scopes: Vec<Box<str>> = scopes
            .into_iter()
            .map(|s| s.into().into_boxed_str())
            .collect();
        if scopes.is_empty() || !scopes.iter().all(|s| is_scope_token(s)) {
            return Err(InvalidScope);
        }
        Ok(ScopeRequirement {
            any,
            scopes: scopes.into(),
        })
    }

    /// The requirement a [`ScopeSet`] type declares.
    pub fn of<R: ScopeSet>() -> Self {
        if R::ANY {
            Self::any(R::SCOPES.iter().copied())
        } else {
            Self::all(R::SCOPES.iter().copied())
        }
    }

    /// The scopes named, in the order given, and whether one suffices:
    /// what the MCP layer needs to name them in a challenge.
    #[cfg_attr(not(feature = "mcp"), allow(dead_code))]
    pub(crate) fn parts(&self) -> (&[Box<str>], bool) {
        (&self.scopes, self.any)
    }

    /// Whether granted `scopes` meet the requirement.
    pub fn is_satisfied_by(&self, scopes: &Scopes) -> bool {
        satisfied(scopes, &self.scopes, self.any)
    }

    /// The principal the gate left in `extensions`, if it meets the
    /// requirement; otherwise the error to answer with (403, or 401 when
    /// there is no principal). The same as [`Guard::check`].
    ///
    /// ```
    /// let requirement = tokengate::ScopeRequirement::all(["items:read"]);
    /// let err = requirement.check(&http::Extensions::new()).unwrap_err();
    /// assert_eq!(err, tokengate::AuthError::MissingToken);
    /// ```
    pub fn check<'e>(&self, extensions: &'e Extensions) -> Result<&'e Principal, AuthError> {
        check_scopes(extensions, &self.scopes, self.any)
    }
}

fn satisfied<T: AsRef<str>>(granted: &Scopes, required: &[T], any: bool) -> bool {
    // "All of no scopes" holds for every token: a requirement that names
    // none (a hand-written `ScopeSet` with `SCOPES = &[]`) is a
    // mistake, and must close the route, not open it.
    hierarchy::scopes_met(granted, required, any, None)
}

/// The one scope check every guard uses: the principal the gate left in
/// `extensions`, if it has `required` (all of them, or one when `any`).
///
/// No principal means the gate did not run for this request (the layer is
/// missing or applied inside the guard): that is answered 401 and logged as
/// the configuration error it is.
pub(crate) fn check_scopes<'e, T: AsRef<str>>(
    extensions: &'e Extensions,
    required: &[T],
    any: bool,
) -> Result<&'e Principal, AuthError> {
    let Some(principal) = extensions.get::<Principal>() else {
        return Err(counted(extensions, missing_principal(extensions)));
    };
    if hierarchy::scopes_met(principal.scopes(), required, any, hierarchy(extensions)) {
        Ok(principal)
    } else {
        Err(counted(extensions, insufficient_scope(required, any)))
    }
}

/// A guard's refusal, counted in the gate's request counter (with the
/// principal's source) when the gate ran.
pub(crate) fn counted(extensions: &Extensions, err: AuthError) -> AuthError {
    if let Some(GateContext(gate)) = extensions.get::<GateContext>() {
        let source = extensions.get::<Principal>().map(Principal::source);
        gate.inner.verifier.metrics.guard_refused(&err, source);
    }
    err
}

/// The 403 for a principal that lacks `required`. RFC 6750 §3 reads the
/// `scope` attribute as every scope the token needs, so an any-requirement
/// names one alternative that suffices: the first listed, the one clients
/// should ask for.
fn insufficient_scope<T: AsRef<str>>(required: &[T], any: bool) -> AuthError {
    let required = match required {
        [] => {
            tracing::error!(
                target: "tokengate",
                "a scope requirement names no scope: every request is refused (declare scope sets \
                 with tokengate::scope_set!)"
            );
            String::new()
        }
        [first, ..] if any => first.as_ref().to_owned(),
        all => {
            let listed: Vec<&str> = all.iter().map(AsRef::as_ref).collect();
            listed.join(" ")
        }
    };
    AuthError::InsufficientScope { required }
}

/// The error for a guarded request that carries no principal.
pub(crate) fn missing_principal(extensions: &Extensions) -> AuthError {
    if extensions.get::<GateContext>().is_none() {
        tracing::error!(
            target: "tokengate",
            "a scope guard found no Principal: apply the TokenGate layer outside (after, in axum's \
             .layer order) every RequireScopes layer and extractor, or the route is unprotected"
        );
    }
    // With the gate present, no principal means an optional layer let an
    // anonymous request through: a plain 401 challenge.
    AuthError::MissingToken
}

/// A type that names the scopes a handler needs, for the typed extractors
/// and `#[require_scopes]`. Declare one with [`scope_set!`](crate::scope_set),
/// which refuses an empty list at compile time. A hand-written
/// implementation with no scope fails closed: every principal is refused
/// with 403 (and the mistake is logged), as "all of no scopes" would
/// otherwise let every token through.
///
/// ```
/// tokengate::scope_set! {
///     /// Writing items.
///     pub struct ItemsWrite = "items:write";
/// }
/// use tokengate::ScopeSet;
/// assert_eq!(ItemsWrite::SCOPES, ["items:write"]);
/// assert!(!ItemsWrite::ANY);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare required scopes",
    label = "declare it with `tokengate::scope_set!`",
    note = "e.g. `tokengate::scope_set! {{ pub struct ItemsWrite = \"items:write\"; }}`"
)]
pub trait ScopeSet {
    /// The scopes.
    const SCOPES: &'static [&'static str];
    /// Whether one of them suffices (otherwise all are needed).
    const ANY: bool;
}

/// Declares scope sets as types, checked at compile time: a malformed scope
/// string is a compile error.
///
/// ```
/// tokengate::scope_set! {
///     /// Read access.
///     pub struct ItemsRead = "items:read";
///     /// Deleting needs both.
///     pub struct ItemsDelete = all("items:write", "admin");
///     /// Either will do.
///     pub struct AnyReader = any("items:read", "audit:read");
/// }
/// use tokengate::ScopeSet;
/// assert_eq!(ItemsDelete::SCOPES, ["items:write", "admin"]);
/// assert!(AnyReader::ANY);
/// ```
///
/// ```compile_fail
/// tokengate::scope_set! { pub struct Bad = "two words"; }
/// ```
///
/// A set names at least one scope:
///
/// ```compile_fail
/// tokengate::scope_set! { pub struct Nothing = all(); }
/// ```
///
/// ```compile_fail
/// tokengate::scope_set! { pub struct Nothing = any(); }
/// ```
///
/// With `any(…)`, a refusal names the first scope as the one to ask for
/// (see [`ScopeRequirement::any`]).
#[macro_export]
macro_rules! scope_set {
    () => {};
    ($(#[$meta:meta])* $vis:vis struct $name:ident = all($($scope:literal),+ $(,)?); $($rest:tt)*) => {
        $crate::scope_set!(@define $(#[$meta])* $vis $name, false, $($scope),+);
        $crate::scope_set!($($rest)*);
    };
    ($(#[$meta:meta])* $vis:vis struct $name:ident = any($($scope:literal),+ $(,)?); $($rest:tt)*) => {
        $crate::scope_set!(@define $(#[$meta])* $vis $name, true, $($scope),+);
        $crate::scope_set!($($rest)*);
    };
    ($(#[$meta:meta])* $vis:vis struct $name:ident = $($scope:literal),+; $($rest:tt)*) => {
        $crate::scope_set!(@define $(#[$meta])* $vis $name, false, $($scope),+);
        $crate::scope_set!($($rest)*);
    };
    (@define $(#[$meta:meta])* $vis:vis $name:ident, $any:expr, $($scope:literal),+) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;
        impl $crate::ScopeSet for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
            const ANY: bool = $any;
        }
        const _: () = {
            $( assert!($crate::is_scope_token($scope), concat!("not an RFC 6749 scope: ", $scope)); )+
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::TokenSource;

    fn with_scopes(scope: &str) -> Extensions {
        let claims = serde_json::json!({ "scope": scope });
        let principal =
            Principal::from_claims(claims.as_object().unwrap().clone(), TokenSource::Jwt).unwrap();
        let mut extensions = Extensions::new();
        extensions.insert(principal);
        extensions
    }

    #[test]
    fn no_required_scope_is_never_enough() {
        let none: [&str; 0] = [];
        for any in [false, true] {
            for granted in ["", "a b"] {
                assert_eq!(
                    check_scopes(&with_scopes(granted), &none, any).unwrap_err(),
                    AuthError::InsufficientScope {
                        required: String::new()
                    }
                );
            }
        }
    }

    #[test]
    fn the_challenge_names_what_would_suffice() {
        let required = ["b", "a"];
        let err = |any| check_scopes(&with_scopes("c"), &required, any).unwrap_err();
        let scope = |required: &str| AuthError::InsufficientScope {
            required: required.to_owned(),
        };
        assert_eq!(err(false), scope("b a"));
        // One alternative: "b a" would say both are needed.
        assert_eq!(err(true), scope("b"));
        assert!(check_scopes(&with_scopes("a"), &required, true).is_ok());
    }
}
