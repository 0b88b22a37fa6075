//! What arrives with a request: the bearer token's syntax and extraction
//! (RFC 6750), the compact JWS and its header (RFC 7515, RFC 8725), and the
//! claims with the rules they must pass (RFC 7519, RFC 9068, RFC 7662).
//! Nothing here does I/O.

pub(crate) mod bearer;
pub(crate) mod claims;
pub(crate) mod jose;

use sha2::{Digest, Sha256};

/// What caches key a token by: never the token itself.
pub(crate) type TokenHash = [u8; 32];

/// The SHA-256 of the whole token.
pub(crate) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}
