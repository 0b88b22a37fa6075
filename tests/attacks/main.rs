//! Attacks on the resource server, from RFC 8725 §2–3 and the OWASP JWT
//! cheat sheet, one named test each, grouped in one module per area. Every
//! attack goes through the real layer (the axum app of `common`), so what is
//! asserted is what a client sees: the HTTP status, the RFC 6750 error code
//! and, where the reason is the point of the rule, its description. After
//! each attack the service must still answer a valid request with 200.
//!
//! Expected outcomes: 401 `invalid_token` for a bad token, 400
//! `invalid_request` for a request that is not RFC 6750 syntax, 503 with
//! `Retry-After` when the authorization server fails ([`target::Expect`]).
//! Where a rule has many variants, a test is a table of [`target::Case`]s,
//! each named, and a failing row says which.
//!
//! Run with `-- --nocapture` to see every attack and its observed outcome.

#[path = "../common/mod.rs"]
mod common;

mod jose;
mod target;

mod algorithms;
mod claims;
mod encoding;
mod header;
mod introspection;
mod keys;
mod signatures;
mod size;
mod time_claims;
