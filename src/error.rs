//! Authentication failures: why a request was refused, as the RFCs name it
//! (RFC 6750 §3.1 error codes, with a fixed reason each). Rendering them as
//! responses is [`crate::response`]'s job.
//!
//! Every description here is a `'static` string chosen by this crate: nothing
//! that came from the request (the token, a claim, a header) can reach a
//! response body, a header or a log line through an [`AuthError`].

use http::StatusCode;

/// Why a request was not authenticated or not authorized.
///
/// Each variant maps to exactly one standard answer (see [`AuthError::status`]).
/// The `Display` text is safe to log: it never contains the token or any
/// value taken from it.
///
/// ```
/// use tokengate::{AuthError, InvalidToken};
/// use http::StatusCode;
///
/// let err = AuthError::InvalidToken(InvalidToken::Expired);
/// assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(err.error_code(), Some("invalid_token"));
/// assert_eq!(err.to_string(), "invalid token: the token has expired");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no bearer token (RFC 6750 §3.1: answered without an
    /// error code).
    #[error("no bearer token in the request")]
    MissingToken,
    /// The request is malformed: several `Authorization` headers, several
    /// tokens, a token that is not `b64token` syntax (400 `invalid_request`).
    #[error("invalid request: {0}")]
    InvalidRequest(InvalidRequest),
    /// The token is expired, revoked, malformed or otherwise not acceptable
    /// (401 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(InvalidToken),
    /// The token is valid but lacks scopes the resource requires
    /// (403 `insufficient_scope`). `required` is the space-separated list of
    /// scopes that would have sufficed, sent as the challenge's `scope`
    /// attribute; it comes from the route's configuration, never from the
    /// request. For a requirement of any one of several scopes it is the
    /// first of them, since RFC 6750 §3 reads the attribute as "all of
    /// these". Empty when no scope would help: the attribute is then left
    /// out.
    #[error("insufficient scope (requires {required})")]
    InsufficientScope {
        /// The scopes the resource requires, space separated.
        required: String,
    },
    /// The token is valid, but the user's authentication is not strong or
    /// recent enough for the resource (RFC 9470: 401
    /// `insufficient_user_authentication`, with `acr_values` and/or
    /// `max_age` telling the client what to ask the authorization server
    /// for). Both come from the route's configuration, never from the
    /// request.
    #[error("insufficient user authentication")]
    InsufficientUserAuthentication {
        /// The acceptable authentication context classes, space separated
        /// (empty: any).
        acr_values: String,
        /// The greatest acceptable time since the user authenticated, in
        /// seconds.
        max_age: Option<u64>,
    },
    /// The DPoP proof (RFC 9449 §4.3) is missing, malformed, replayed or
    /// does not match the request or the token (401 `invalid_dpop_proof`,
    /// in a `DPoP` challenge).
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(InvalidDpopProof),
    /// The authorization server could not be reached and nothing usable is
    /// cached (503 with `Retry-After`).
    #[error("authorization server unavailable: {0}")]
    Unavailable(Unavailable),
}

/// The reasons for a 400 `invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` header.
    MultipleHeaders,
    /// More than one token after `Bearer`, or a token both in the header and
    /// the query string (RFC 6750 §2).
    MultipleTokens,
    /// `Bearer` with nothing after it.
    EmptyToken,
    /// The token contains characters outside RFC 6750's `b64token` syntax, or
    /// the header is not visible ASCII.
    Malformed,
    /// More than one `DPoP` header (RFC 9449 §4.3: exactly one proof).
    MultipleProofs,
}

/// The reasons for a 401 `invalid_token`. The text of each is what clients see
/// as `error_description` (unless descriptions are turned off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Longer than the configured maximum; refused before any parsing.
    TooLong,
    /// Not a JWT, and no introspection endpoint is configured for opaque tokens.
    NotAJwt,
    /// The JOSE header or the claims are not valid base64url JSON of the
    /// expected shape.
    Malformed,
    /// The header names an algorithm this resource server does not accept
    /// (including `none`).
    UnsupportedAlgorithm,
    /// No key in the issuer's key set matches the token's `kid`.
    UnknownKey,
    /// The key exists but may not be used with the header's `alg`.
    AlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The header lists a critical extension (`crit`) that is not understood.
    UnsupportedCritical,
    /// The `typ` header is not an access-token type (RFC 9068 §2.1).
    WrongType,
    /// `exp` is in the past (beyond the clock leeway).
    Expired,
    /// `nbf` is in the future (beyond the clock leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the clock leeway).
    IssuedInFuture,
    /// A claim the profile requires is missing (`exp` always; more in strict
    /// RFC 9068 mode).
    MissingClaim,
    /// A claim has the wrong JSON type or an impossible value.
    MalformedClaim,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not contain this resource server's audience.
    WrongAudience,
    /// The authorization server says the token is not active (RFC 7662 §2.2).
    Inactive,
    /// Introspection says the token is not an access token (a refresh token,
    /// for instance).
    NotAnAccessToken,
    /// The token is bound to a key (`cnf`, RFC 7800: DPoP or mTLS) and so
    /// cannot be accepted as a plain bearer token.
    SenderConstrained,
    /// The token was issued (`iat`) longer ago than the resource accepts
    /// ([`Requirement::issued_within`](crate::Requirement::issued_within)),
    /// or says not when: the client should get a fresh one.
    TooOld,
    /// A bearer token where DPoP is [`Required`](crate::dpop::DpopMode::Required).
    DpopRequired,
    /// The token is bound to a client certificate (RFC 8705 §3) and the
    /// request came with none, or with another.
    CertificateMismatch,
}

/// Why a DPoP proof was refused (RFC 9449 §4.3), each with a fixed text
/// sent as the `error_description` of a `DPoP` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidDpopProof {
    /// `Authorization: DPoP` without a `DPoP` header.
    Missing,
    /// Longer than the configured maximum; refused before parsing.
    TooLong,
    /// Not a compact JWS of JSON objects, or a member of the wrong type.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` is not one of the accepted asymmetric algorithms.
    UnsupportedAlgorithm,
    /// `jwk` is missing, not a usable public key, or holds a private member.
    BadKey,
    /// The signature does not verify with the header's `jwk`.
    BadSignature,
    /// `jti`, `htm`, `htu`, `iat` or `ath` is missing.
    MissingClaim,
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the URL of this request.
    WrongUrl,
    /// `iat` is outside the accepted window.
    Stale,
    /// `ath` is not the hash of the access token.
    WrongTokenHash,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`),
    /// or the token is not bound to any.
    KeyMismatch,
    /// This proof was already used.
    Replayed,
    /// The server requires a nonce (RFC 9449 §8) and the proof has none,
    /// or a stale one: answered with `error="use_dpop_nonce"` and a fresh
    /// nonce in `DPoP-Nonce`.
    UseNonce,
}

/// The reasons for a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unavailable {
    /// The key set could not be fetched and no usable keys are cached.
    Keys,
    /// The introspection endpoint could not be reached or answered with an
    /// error, and nothing is cached for the token.
    Introspection,
    /// The DPoP replay store (Redis, say) did not answer in time: a proof
    /// that cannot be checked for replay is not accepted.
    ReplayStore,
}

impl AuthError {
    /// The HTTP status this error answers with.
    ///
    /// ```
    /// # use tokengate::AuthError;
    /// assert_eq!(AuthError::MissingToken.status(), http::StatusCode::UNAUTHORIZED);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingToken
            | AuthError::InvalidToken(_)
            | AuthError::InvalidDpopProof(_)
            | AuthError::InsufficientUserAuthentication { .. } => StatusCode::UNAUTHORIZED,
            AuthError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 §3.1 error code, if the answer carries one.
    ///
    /// ```
    /// # use tokengate::AuthError;
    /// assert_eq!(AuthError::MissingToken.error_code(), None);
    /// ```
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken | AuthError::Unavailable(_) => None,
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InvalidDpopProof(InvalidDpopProof::UseNonce) => Some("use_dpop_nonce"),
            AuthError::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::InsufficientUserAuthentication { .. } => {
                Some("insufficient_user_authentication")
            }
        }
    }

    /// The gRPC status code for this error: 16 `UNAUTHENTICATED`,
    /// 7 `PERMISSION_DENIED`, 3 `INVALID_ARGUMENT` or 14 `UNAVAILABLE`.
    ///
    /// ```
    /// # use tokengate::AuthError;
    /// assert_eq!(AuthError::MissingToken.grpc_code(), 16);
    /// ```
    pub fn grpc_code(&self) -> u8 {
        match self {
            AuthError::MissingToken
            | AuthError::InvalidToken(_)
            | AuthError::InvalidDpopProof(_)
            | AuthError::InsufficientUserAuthentication { .. } => 16,
            AuthError::InvalidRequest(_) => 3,
            AuthError::InsufficientScope { .. } => 7,
            AuthError::Unavailable(_) => 14,
        }
    }

    /// The `error_description` sent to the client: a fixed text per reason.
    /// A fixed, low-cardinality label for this refusal, for traces and
    /// metrics (the `reason` of the
    /// [`tokengate.authenticate` span](crate::observe)): `missing`,
    /// `invalid_request`, `insufficient_scope`, `keys_unavailable`,
    /// `introspection_unavailable`, or for an invalid token its reason in
    /// snake case (`too_long`, `not_a_jwt`, `malformed`,
    /// `unsupported_algorithm`, `unknown_key`, `algorithm_mismatch`,
    /// `bad_signature`, `unsupported_critical`, `wrong_type`, `expired`,
    /// `not_yet_valid`, `issued_in_future`, `missing_claim`,
    /// `malformed_claim`, `wrong_issuer`, `wrong_audience`, `inactive`,
    /// `not_an_access_token`, `sender_constrained`, `too_old`), and
    /// `insufficient_user_authentication` for a step-up. These labels are part
    /// of the public API.
    ///
    /// ```
    /// use tokengate::{AuthError, InvalidToken};
    /// assert_eq!(AuthError::InvalidToken(InvalidToken::Expired).reason(), "expired");
    /// assert_eq!(AuthError::MissingToken.reason(), "missing");
    /// ```
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::InsufficientUserAuthentication { .. } => "insufficient_user_authentication",
            AuthError::Unavailable(Unavailable::Keys) => "keys_unavailable",
            AuthError::Unavailable(Unavailable::Introspection) => "introspection_unavailable",
            AuthError::Unavailable(Unavailable::ReplayStore) => "replay_store_unavailable",
            AuthError::InvalidDpopProof(reason) => match reason {
                InvalidDpopProof::Missing => "dpop_missing",
                InvalidDpopProof::TooLong => "dpop_too_long",
                InvalidDpopProof::Malformed => "dpop_malformed",
                InvalidDpopProof::WrongType => "dpop_wrong_type",
                InvalidDpopProof::UnsupportedAlgorithm => "dpop_unsupported_algorithm",
                InvalidDpopProof::BadKey => "dpop_bad_key",
                InvalidDpopProof::BadSignature => "dpop_bad_signature",
                InvalidDpopProof::MissingClaim => "dpop_missing_claim",
                InvalidDpopProof::WrongMethod => "dpop_wrong_method",
                InvalidDpopProof::WrongUrl => "dpop_wrong_url",
                InvalidDpopProof::Stale => "dpop_stale",
                InvalidDpopProof::WrongTokenHash => "dpop_wrong_token_hash",
                InvalidDpopProof::KeyMismatch => "dpop_key_mismatch",
                InvalidDpopProof::Replayed => "dpop_replayed",
                InvalidDpopProof::UseNonce => "dpop_use_nonce",
            },
            AuthError::InvalidToken(reason) => match reason {
                InvalidToken::TooLong => "too_long",
                InvalidToken::NotAJwt => "not_a_jwt",
                InvalidToken::Malformed => "malformed",
                InvalidToken::UnsupportedAlgorithm => "unsupported_algorithm",
                InvalidToken::UnknownKey => "unknown_key",
                InvalidToken::AlgorithmMismatch => "algorithm_mismatch",
                InvalidToken::BadSignature => "bad_signature",
                InvalidToken::UnsupportedCritical => "unsupported_critical",
                InvalidToken::WrongType => "wrong_type",
                InvalidToken::Expired => "expired",
                InvalidToken::NotYetValid => "not_yet_valid",
                InvalidToken::IssuedInFuture => "issued_in_future",
                InvalidToken::MissingClaim => "missing_claim",
                InvalidToken::MalformedClaim => "malformed_claim",
                InvalidToken::WrongIssuer => "wrong_issuer",
                InvalidToken::WrongAudience => "wrong_audience",
                InvalidToken::Inactive => "inactive",
                InvalidToken::NotAnAccessToken => "not_an_access_token",
                InvalidToken::SenderConstrained => "sender_constrained",
                InvalidToken::TooOld => "too_old",
                InvalidToken::DpopRequired => "dpop_required",
                InvalidToken::CertificateMismatch => "certificate_mismatch",
            },
        }
    }

    /// One error of each reason, so that every [`reason`](Self::reason)
    /// label can be named before any request.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn one_of_each() -> impl Iterator<Item = AuthError> {
        [
            AuthError::MissingToken,
            AuthError::InsufficientScope {
                required: String::new(),
            },
            AuthError::InsufficientUserAuthentication {
                acr_values: String::new(),
                max_age: None,
            },
        ]
        .into_iter()
        .chain(
            InvalidRequest::ALL
                .iter()
                .map(|r| AuthError::InvalidRequest(*r)),
        )
        .chain(Unavailable::ALL.iter().map(|u| AuthError::Unavailable(*u)))
        .chain(
            InvalidToken::ALL
                .iter()
                .map(|r| AuthError::InvalidToken(*r)),
        )
        .chain(
            InvalidDpopProof::ALL
                .iter()
                .map(|r| AuthError::InvalidDpopProof(*r)),
        )
    }

    pub(crate) fn description(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            AuthError::InvalidRequest(r) => Some(r.text()),
            AuthError::InvalidToken(r) => Some(r.text()),
            AuthError::InvalidDpopProof(r) => Some(r.text()),
            AuthError::InsufficientScope { required } if required.is_empty() => {
                Some("the token does not meet this resource's requirements")
            }
            AuthError::InsufficientScope { .. } => Some("the token lacks a required scope"),
            AuthError::InsufficientUserAuthentication { .. } => {
                Some("a stronger or more recent user authentication is required")
            }
            AuthError::Unavailable(r) => Some(r.text()),
        }
    }
}

macro_rules! static_text {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// Every reason, in declaration order.
            #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The fixed, client-safe text of this reason.
            pub fn text(&self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.text())
            }
        }

        impl std::error::Error for $ty {}
    };
}

// One text per reason: it is both the `Display` and the client's `error_description`.
static_text!(InvalidRequest {
    MultipleHeaders => "more than one Authorization header",
    MultipleTokens => "more than one bearer token",
    EmptyToken => "empty bearer token",
    Malformed => "bearer token is not b64token syntax",
    MultipleProofs => "more than one DPoP header",
});
static_text!(InvalidToken {
    TooLong => "the token is too long",
    NotAJwt => "the token is not a JWT",
    Malformed => "the token is malformed",
    UnsupportedAlgorithm => "the token's algorithm is not accepted",
    UnknownKey => "the token's signing key is unknown",
    AlgorithmMismatch => "the token's algorithm does not match its key",
    BadSignature => "the token's signature is invalid",
    UnsupportedCritical => "the token uses an unsupported critical header",
    WrongType => "the token is not an access token",
    Expired => "the token has expired",
    NotYetValid => "the token is not valid yet",
    IssuedInFuture => "the token was issued in the future",
    MissingClaim => "the token lacks a required claim",
    MalformedClaim => "the token has a malformed claim",
    WrongIssuer => "the token was issued by another issuer",
    WrongAudience => "the token is not intended for this audience",
    Inactive => "the token is not active",
    NotAnAccessToken => "the token is not an access token",
    SenderConstrained => "the token is sender-constrained and cannot be used as a bearer token",
    TooOld => "the token is too old for this resource",
    DpopRequired => "this resource accepts DPoP-bound tokens only",
    CertificateMismatch => "the token is bound to another client certificate",
});
static_text!(Unavailable {
    Keys => "signing keys cannot be fetched",
    Introspection => "token introspection failed",
    ReplayStore => "the DPoP replay store cannot be reached",
});
static_text!(InvalidDpopProof {
    Missing => "the DPoP proof is missing",
    TooLong => "the DPoP proof is too long",
    Malformed => "the DPoP proof is malformed",
    WrongType => "the DPoP proof is not of type dpop+jwt",
    UnsupportedAlgorithm => "the DPoP proof's algorithm is not accepted",
    BadKey => "the DPoP proof's key is not a usable public key",
    BadSignature => "the DPoP proof's signature is invalid",
    MissingClaim => "the DPoP proof lacks a required claim",
    WrongMethod => "the DPoP proof is for another method",
    WrongUrl => "the DPoP proof is for another URL",
    Stale => "the DPoP proof is too old or from the future",
    WrongTokenHash => "the DPoP proof is for another access token",
    KeyMismatch => "the DPoP proof's key is not the one the token is bound to",
    Replayed => "the DPoP proof was already used",
    UseNonce => "the DPoP proof needs the nonce in the DPoP-Nonce header",
});
