//! The verifier and the handle users hold: [`TokenGate`](crate::TokenGate)
//! joins the one [`Verifier`](verifier::Verifier) (tokens, keys, caches) with
//! the one renderer of its refusals ([`crate::response`]).

pub(crate) mod gate;
pub(crate) mod token_cache;
pub(crate) mod verifier;
