//! # tokengate
//!
//! An OAuth 2.0 resource server for any tower service (axum, tonic, hyper).
//!
//! On every request the [`TokenGateLayer`]:
//!
//! 1. extracts the one bearer token (RFC 6750 §2.1);
//! 2. verifies it: a JWT against its issuer's keys (found by RFC 8414 / OIDC
//!    discovery, cached, refreshed on an unknown `kid` under a rate limit),
//!    with the claims checked per RFC 7519, RFC 8725 and RFC 9068; an opaque
//!    token by RFC 7662 introspection, cached. Several issuers may be
//!    trusted ([`TokenGateBuilder::issuer`], [`Issuer`]): the token's `iss`
//!    picks one by exact match, and only that one's keys are tried;
//! 3. puts a [`Principal`] (issuer, subject, client id, scopes, claims) in
//!    the request extensions;
//! 4. or answers the standard way: 401/400/403 with `WWW-Authenticate:
//!    Bearer …` (RFC 6750 §3; with `resource_metadata`, RFC 9728 §5.1, when
//!    a [`resource`](TokenGateBuilder::resource) is configured), a gRPC
//!    status for gRPC requests, 503 with `Retry-After` when the
//!    authorization server cannot be reached and nothing usable is cached.
//!
//! Besides: the RFC 9728 metadata document ([`TokenGate::metadata_service`],
//! [`axum::metadata_router`]), MCP per-tool scopes (feature `mcp`), a
//! readiness probe ([`TokenGate::readiness_service`]) and configuration from
//! environment variables ([`TokenGateBuilder::from_env`]).
//!
//! ```
//! use axum::{Extension, Router, routing::get};
//! use tokengate::{Principal, TokenGate};
//! # use tokengate::testing::TestIssuer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let test_issuer = TestIssuer::start().await?;
//! # let (issuer, audience) = (test_issuer.issuer(), test_issuer.audience());
//! let gate = TokenGate::builder()
//!     .issuer(issuer)        // e.g. "https://auth.example.com"
//!     .audience(audience)    // e.g. "https://api.example.com"
//!     .build()
//!     .await?;
//!
//! let app: Router = Router::new()
//!     .route("/me", get(|Extension(me): Extension<Principal>| async move {
//!         format!("hello {}", me.subject().unwrap_or("client"))
//!     }))
//!     .layer(gate.layer());
//! # Ok(()) }
//! ```
//!
//! ## Design
//!
//! - **One verifier, one renderer.** [`TokenGate`] holds the configuration,
//!   the key cache and the renderer of refusals; the layer, the guards, the
//!   extractors and the tonic helpers all call the same code and answer the
//!   same way.
//! - **The hot path takes no lock and makes no network call.** Keys are parsed
//!   once into aws-lc-rs keys and read from a lock-free snapshot; the network
//!   is reached only on a cache miss, and then once however many requests
//!   wait.
//! - **Attackers cannot steer our I/O.** An unknown `kid` refreshes the key
//!   set at most twice per 30 s (configurable); `jku`, `x5u` and embedded
//!   `jwk` headers are never followed.
//! - **Fail closed, but tell an outage from a bad token.** Doubt about a
//!   token is a 401; an unreachable authorization server with nothing cached
//!   is a 503. The last good key set keeps serving through an outage.
//! - **Secrets stay secret.** Tokens never appear in logs, error texts or
//!   `Debug` output.
//! - **Bounded everything.** Token length, HTTP timeouts, response sizes,
//!   refresh rates: each has a default and a builder method
//!   ([`TokenGateBuilder`]).
//!
//! ## How the crate is laid out
//!
//! The folders of `src/` are the stages of a request's path, and each
//! imports only from the stages below it (no import circles):
//!
//! | module | what it owns |
//! |---|---|
//! | `token/` | what arrives: RFC 6750 extraction (`bearer`), the compact JWS and its header (`jose`), the claims and their rules (`claims`); no I/O |
//! | `keys/` | JWKs parsed once into aws-lc-rs keys, bound to their algorithms; the key set and `kid` lookup |
//! | `authority/` | the authorization server: bounded fetches (`fetch`: timeouts, size cap, no redirects), discovery, the key set cache (`jwks`), introspection |
//! | `verify/` | the one verifier, the verified-token cache, and [`TokenGate`], which joins the verifier with the one renderer |
//! | `response.rs` | the one renderer: RFC 6750 challenges, gRPC and gRPC-Web statuses |
//! | `requirement.rs` | what a route requires of the [`Principal`], checked by one function |
//! | `metadata.rs` | the RFC 9728 document and its well-known URL |
//! | `http/` | the tower layers and services: [`TokenGateLayer`] authenticates, [`RequireScopes`] authorizes, [`MetadataService`] and [`ReadinessService`] answer |
//! | `integrations/` | axum extractors, tonic helpers and the MCP layer over the same verifier and renderer |
//! | `config/` | [`TokenGateBuilder`], split by concern; imported by nobody but the crate root |
//! | `clock.rs`, `single_flight.rs` | the one clock (tokio's, so tests pause it) and the one "one call per key" helper |
//!
//! The renderer sits below the verifier rather than in `http/` because
//! [`TokenGate`] carries it (its [`error_response`](TokenGate::error_response)
//! answers like the layer): with the renderer in `http/`, `verify/` and
//! `http/` would import each other. It depends only on the error types.
//!
//! ## Types from other crates in this API
//!
//! Most of the API is this crate's own types. Three come from dependencies,
//! chosen because a wrapper would only rename them; each ties our semver to
//! theirs, which the changelog will call out:
//!
//! - [`Algorithm`] is `jsonwebtoken`'s: the JWS algorithm names every Rust
//!   JOSE user already knows.
//! - [`Jwk`] and [`JwkSet`] are `jsonwebtoken`'s JWK model, accepted by
//!   [`TokenGateBuilder::static_keys`] (and deserializable from any JWKS).
//! - [`TokenGateBuilder::http_client`] accepts a `reqwest::Client`, for
//!   proxies, private CAs and client certificates; the builder's bounds and
//!   redirect refusal apply to it all the same.
//!
//! Everything else users handle, errors included, is defined here, so the
//! HTTP client and the JSON parser can change without breaking callers.
//!
//! ## The verified-token cache, and why it is sound
//!
//! A service sees the same access token many times; verifying its signature
//! once is enough, so verified JWTs are remembered (up to 16 MiB by default,
//! [`TokenGateBuilder::verified_token_cache_bytes`]; 0 turns it off).
//!
//! - A JWT is immutable: the same bytes verify the same way against the same
//!   key. Entries are keyed by the SHA-256 of the whole token, never the
//!   token itself, so a token that differs by one byte is another entry.
//! - What can change is time and keys. `exp` is checked again on every hit,
//!   with the leeway, and the entry leaves the cache at `exp` + leeway anyway.
//!   The key that verified the token is recorded by `kid` and RFC 7638
//!   thumbprint; a hit is honoured only while the current key set still holds
//!   that very key, so a key removed from the JWKS takes its tokens with it at
//!   the next refresh, and a `kid` reused for new key material does not vouch
//!   for tokens of the old one.
//! - Hits also require the key set to be usable: once cached keys are too
//!   stale to serve, cached tokens stop too.
//! - Eviction only costs a verification.
//!
//! ## Standards
//!
//! RFC 6750 (bearer usage and errors), RFC 7515/7517/7518 (JWS, JWK, JWA),
//! RFC 7519 and RFC 8725 (JWT and its best current practice), RFC 9068 (JWT
//! access tokens), RFC 8414 and OpenID Connect Discovery (metadata),
//! RFC 7662 (introspection), RFC 9728 (protected-resource metadata),
//! RFC 8707 (resource indicators), RFC 6749 §3.3 (scope syntax), the MCP
//! authorization spec.
//!
//! ## Features
//!
//! - `testing`: [`testing::TestIssuer`], an in-process authorization server
//!   for tests and examples.
//! - `axum`: the extractors in [`axum`].
//! - `tonic`: the helpers in [`tonic`].
//! - `macros`: [`require_scopes`], for axum handlers (implies `axum`).
//! - `mcp`: `mcp::McpScopes`, per-tool scopes for MCP servers.

#![warn(missing_docs)]
#![deny(unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, lowest first; each module imports only from the ones above it
// in this list (no circles: `python3 ../shared/tools/circles.py`).
mod authority;
mod clock;
mod config;
pub mod dpop;
mod error;
mod http;
mod integrations;
mod keys;
mod metadata;
pub mod mtls;
pub mod observe;
mod principal;
#[doc = include_str!("../docs/providers.md")]
pub mod providers {}
mod requirement;
mod response;
mod scope;
mod single_flight;
mod token;
mod verify;

#[cfg(feature = "axum")]
pub use integrations::axum;
#[cfg(feature = "mcp")]
pub use integrations::mcp;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tonic")]
pub use integrations::tonic;

/// `#[require_scopes("a", "b")]` / `#[require_scopes(any("a", "b"))]` on an
/// axum handler: the handler runs only for principals with those scopes;
/// others get 403 `insufficient_scope` (401 without a token). Scope strings
/// are checked at compile time.
///
/// ```
/// use tokengate::{Principal, require_scopes};
///
/// #[require_scopes("items:write", "admin")]
/// async fn delete_item(principal: Principal) -> String {
///     format!("deleted by {}", principal.subject().unwrap_or("-"))
/// }
///
/// #[require_scopes(any("items:read", "audit:read"))]
/// async fn list_items() -> &'static str {
///     "items"
/// }
/// # let _: axum::Router =
/// #     axum::Router::new().route("/", axum::routing::get(delete_item).post(list_items));
/// ```
///
/// Each scope is checked with [`is_scope_token`], the rule the crate applies
/// at run time, while the handler compiles (error E0080, pointing at the
/// scope):
///
/// ```compile_fail,E0080
/// #[tokengate::require_scopes("items write")]
/// async fn handler() {}
/// ```
///
/// ```compile_fail,E0080
/// #[tokengate::require_scopes(any("items:read", "say\"hi\""))]
/// async fn handler() {}
/// ```
///
/// At least one scope, each a string literal:
///
/// ```compile_fail
/// #[tokengate::require_scopes()]
/// async fn handler() {}
/// ```
///
/// ```compile_fail
/// const SCOPE: &str = "items:read";
/// #[tokengate::require_scopes(SCOPE)]
/// async fn handler() {}
/// ```
#[cfg(feature = "macros")]
pub use tokengate_macros::require_scopes;

/// `#[require(...)]` on an axum handler: the handler runs only for callers
/// who meet every clause (scopes, roles, claims, the client, machine or
/// user, token age, step-up; combined with `all`, `any`, `not`); others get
/// the [`Requirement`]'s answer. Checked at compile time.
///
/// ```
/// use tokengate::{Principal, require};
///
/// #[require(scopes("items:read"), role("auditor"), acr("urn:tokengate:mfa"))]
/// async fn export(principal: Principal) -> String {
///     format!("export for {}", principal.client_id().unwrap_or("-"))
/// }
///
/// #[require(any(role("admin"), all(machine, client("billing"))), claim_equals("tenant.region", "eu"))]
/// async fn settle() -> &'static str {
///     "settled"
/// }
/// # let _: axum::Router = axum::Router::new()
/// #     .route("/export", axum::routing::get(export))
/// #     .route("/settle", axum::routing::post(settle));
/// ```
///
/// ```compile_fail
/// #[tokengate::require(scopes("two words"))]
/// async fn bad() {}
/// ```
#[cfg(feature = "macros")]
pub use tokengate_macros::require;

pub use authority::discovery::DiscoveryError;
pub use authority::fetch::FetchError;
pub use authority::introspection::{
    ClientAuth, IntrospectionMode, OpaqueTokenShape, TokenAlphabet,
};
pub use authority::jwks::JwksHealth;
pub use config::{BuildError, ENV_VARIABLES, EnvError, Issuer, TokenGateBuilder};
pub use error::{AuthError, InvalidDpopProof, InvalidRequest, InvalidToken, Unavailable};
pub use http::layer::{ResponseFuture, TokenGateLayer, TokenGateService};
pub use http::metadata::MetadataService;
pub use http::ready::ReadinessService;
pub use http::require::{
    GuardFuture, Require, RequireScopes, RequireScopesService, RequireService,
};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
pub use keys::Algorithm;
pub use metadata::ResourceMetadata;
pub use principal::{Principal, TokenSource};
pub use requirement::{
    ClaimPath, Guard, Requirement, RequirementSet, RoleSource, Roles, ScopeHierarchy,
    ScopeRequirement, ScopeSet,
};
pub use response::ErrorDetail;
pub use scope::{InvalidScope, Scopes, is_scope_token};
pub use verify::gate::{CacheStats, IssuerHealth, IssuerReadiness, Readiness, TokenGate};

// The README's examples are compiled (and, where they can run offline, run)
// as doctests, so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
