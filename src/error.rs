//! Authentication failures and their one mapping to responses: RFC 6750 §3
//! (`WWW-Authenticate: Bearer …`) for HTTP, gRPC statuses for gRPC.
//!
//! Every description here is a `'static` string chosen by this crate: nothing
//! that came from the request (the token, a claim, a header) can reach a
//! response body, a header or a log line through an [`AuthError`].

use std::fmt::Write as _;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

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
            AuthError::MissingToken | AuthError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
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
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
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
            AuthError::MissingToken | AuthError::InvalidToken(_) => 16,
            AuthError::InvalidRequest(_) => 3,
            AuthError::InsufficientScope { .. } => 7,
            AuthError::Unavailable(_) => 14,
        }
    }

    /// The `error_description` sent to the client: a fixed text per reason.
    fn description(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            AuthError::InvalidRequest(r) => Some(r.text()),
            AuthError::InvalidToken(r) => Some(r.text()),
            AuthError::InsufficientScope { .. } => Some("the token lacks a required scope"),
            AuthError::Unavailable(r) => Some(r.text()),
        }
    }
}

macro_rules! static_text {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
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
});
static_text!(Unavailable {
    Keys => "signing keys cannot be fetched",
    Introspection => "token introspection failed",
});

/// How much rejections tell the client.
///
/// ```
/// use tokengate::ErrorDetail;
/// assert_eq!(ErrorDetail::default(), ErrorDetail::Describe);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorDetail {
    /// `error` and a fixed `error_description` (never a value from the token).
    #[default]
    Describe,
    /// `error` only: no `error_description`, for deployments that reveal
    /// nothing beyond the RFC 6750 code.
    Terse,
}

/// How a refused request is answered: with an HTTP status, or with a gRPC
/// status in the content type the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    /// RFC 6750: the status says it all.
    Http,
    /// A trailers-only gRPC answer with this `content-type`: a gRPC-Web
    /// client only reads answers in its own framing (`-text` is base64).
    Grpc(&'static str),
}

impl Wire {
    /// Native gRPC over HTTP/2.
    pub(crate) const GRPC: Wire = Wire::Grpc("application/grpc");

    /// The answer's wire for a request with this `content-type`, already
    /// known to be gRPC: gRPC-Web keeps its own media type (parameters
    /// dropped), native gRPC is answered as `application/grpc`.
    pub(crate) fn grpc_for(content_type: &[u8]) -> Wire {
        const WEB: [&str; 8] = [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web+json",
            "application/grpc-web+thrift",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
            "application/grpc-web-text+json",
            "application/grpc-web-text+thrift",
        ];
        let media_type = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if let Some(known) = WEB
            .iter()
            .find(|w| w.as_bytes().eq_ignore_ascii_case(media_type))
        {
            return Wire::Grpc(known);
        }
        // Another message format: the framing is what the client must be
        // able to read, and that the prefix tells.
        let starts = |prefix: &str| {
            media_type.len() >= prefix.len()
                && media_type[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        };
        if starts(WEB[4]) {
            Wire::Grpc(WEB[4])
        } else if starts(WEB[0]) {
            Wire::Grpc(WEB[0])
        } else {
            Wire::GRPC
        }
    }
}

/// `true` is native gRPC, as [`TokenGate::error_response`](crate::TokenGate::error_response) takes it.
impl From<bool> for Wire {
    fn from(grpc: bool) -> Wire {
        if grpc { Wire::GRPC } else { Wire::Http }
    }
}

/// Builds responses for [`AuthError`]s: the single place that knows RFC 6750
/// §3 and the gRPC mapping. Created once per gate, so the realm is escaped
/// once and not per request.
#[derive(Debug, Clone)]
pub(crate) struct Responder {
    /// `Bearer realm="…"`, already escaped as an RFC 7230 quoted-string.
    challenge_prefix: String,
    /// The full challenge for a request without a token, prebuilt because it
    /// is the most common rejection.
    missing: HeaderValue,
    /// The challenges for `invalid_token` and `invalid_request`, one per
    /// reason (indexed by variant), built on first use: rejecting garbage
    /// must stay cheap, since garbage is what a flood sends.
    invalid_token: [OnceLock<HeaderValue>; 32],
    invalid_request: [OnceLock<HeaderValue>; 16],
    detail: ErrorDetail,
    retry_after: HeaderValue,
}

impl Responder {
    pub(crate) fn new(realm: &str, detail: ErrorDetail, retry_after_secs: u64) -> Self {
        let mut challenge_prefix = String::from("Bearer realm=\"");
        push_quoted(&mut challenge_prefix, realm);
        challenge_prefix.push('"');
        let missing = HeaderValue::from_str(&challenge_prefix)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        Responder {
            challenge_prefix,
            missing,
            invalid_token: Default::default(),
            invalid_request: Default::default(),
            detail,
            retry_after: HeaderValue::from(retry_after_secs),
        }
    }

    /// The `WWW-Authenticate` value for `err` (RFC 6750 §3), or `None` for a
    /// 503, which is not a challenge.
    pub(crate) fn challenge(&self, err: &AuthError) -> Option<HeaderValue> {
        let slot = match err {
            AuthError::MissingToken => return Some(self.missing.clone()),
            AuthError::Unavailable(_) => return None,
            AuthError::InvalidToken(r) => self.invalid_token.get(*r as usize),
            AuthError::InvalidRequest(r) => self.invalid_request.get(*r as usize),
            _ => None,
        };
        Some(match slot {
            Some(slot) => slot.get_or_init(|| self.build_challenge(err)).clone(),
            None => self.build_challenge(err),
        })
    }

    fn build_challenge(&self, err: &AuthError) -> HeaderValue {
        let code = match err {
            AuthError::MissingToken => return self.missing.clone(),
            other => match other.error_code() {
                Some(code) => code,
                None => return self.missing.clone(),
            },
        };
        let mut value = String::with_capacity(self.challenge_prefix.len() + 96);
        value.push_str(&self.challenge_prefix);
        let _ = write!(value, ", error=\"{code}\"");
        if self.detail == ErrorDetail::Describe
            && let Some(description) = err.description()
        {
            let _ = write!(value, ", error_description=\"{description}\"");
        }
        if let AuthError::InsufficientScope { required } = err
            && !required.is_empty()
        {
            value.push_str(", scope=\"");
            push_quoted(&mut value, required);
            value.push('"');
        }
        // Every piece is either a fixed ASCII text or escaped configuration,
        // so this only fails on a realm or scope with control characters,
        // which configuration validation refuses.
        HeaderValue::from_str(&value).unwrap_or_else(|_| self.missing.clone())
    }

    /// The headers of the answer to `err`.
    pub(crate) fn headers(&self, err: &AuthError, wire: Wire) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(6);
        // A rejection is about this request's credentials: never cache it.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge(err) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if matches!(err, AuthError::Unavailable(_)) {
            headers.insert(header::RETRY_AFTER, self.retry_after.clone());
        }
        if let Wire::Grpc(content_type) = wire {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert("grpc-status", HeaderValue::from(u16::from(err.grpc_code())));
            let message = match (self.detail, err.description()) {
                (ErrorDetail::Describe, Some(d)) => d,
                _ => grpc_default_message(err),
            };
            // Our texts are printable ASCII without '%', which the gRPC
            // spec's percent-encoding leaves as they are.
            headers.insert("grpc-message", HeaderValue::from_static(message));
        }
        headers
    }

    /// The complete answer to `err`. HTTP requests get the RFC 6750 status
    /// with an empty body; gRPC requests get a trailers-only response
    /// (HTTP 200 with `grpc-status` in the headers) as gRPC requires.
    pub(crate) fn response<B: Default>(
        &self,
        err: &AuthError,
        wire: impl Into<Wire>,
    ) -> Response<B> {
        let wire = wire.into();
        let mut response = Response::new(B::default());
        *response.status_mut() = match wire {
            Wire::Grpc(_) => StatusCode::OK,
            Wire::Http => err.status(),
        };
        *response.headers_mut() = self.headers(err, wire);
        response
    }
}

fn grpc_default_message(err: &AuthError) -> &'static str {
    match err {
        AuthError::MissingToken | AuthError::InvalidToken(_) => "unauthenticated",
        AuthError::InvalidRequest(_) => "invalid authorization header",
        AuthError::InsufficientScope { .. } => "permission denied",
        AuthError::Unavailable(_) => "authorization server unavailable",
    }
}

/// Appends `s` escaped as the inside of an RFC 7230 quoted-string.
fn push_quoted(out: &mut String, s: &str) {
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<()>, name: &str) -> Option<String> {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn missing_token_is_401_with_realm_and_no_error() {
        let r: Response<()> = Responder::new("api", ErrorDetail::Describe, 5)
            .response(&AuthError::MissingToken, false);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some("Bearer realm=\"api\"")
        );
    }

    #[test]
    fn invalid_token_carries_code_and_fixed_description() {
        let r: Response<()> = Responder::new("api", ErrorDetail::Describe, 5)
            .response(&AuthError::InvalidToken(InvalidToken::Expired), false);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\""
            )
        );
    }

    #[test]
    fn terse_mode_drops_descriptions() {
        let r: Response<()> = Responder::new("api", ErrorDetail::Terse, 5).response(
            &AuthError::InvalidRequest(InvalidRequest::MultipleTokens),
            false,
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some("Bearer realm=\"api\", error=\"invalid_request\"")
        );
    }

    #[test]
    fn insufficient_scope_lists_required_scopes() {
        let err = AuthError::InsufficientScope {
            required: "items:write admin".into(),
        };
        let r: Response<()> = Responder::new("api", ErrorDetail::Describe, 5).response(&err, false);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some(
                "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"items:write admin\""
            )
        );
    }

    #[test]
    fn unavailable_is_503_with_retry_after_and_no_challenge() {
        let r: Response<()> = Responder::new("api", ErrorDetail::Describe, 7)
            .response(&AuthError::Unavailable(Unavailable::Keys), false);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&r, "retry-after").as_deref(), Some("7"));
        assert_eq!(header(&r, "www-authenticate"), None);
    }

    #[test]
    fn grpc_answers_are_trailers_only() {
        let responder = Responder::new("api", ErrorDetail::Describe, 5);
        for (err, code) in [
            (AuthError::MissingToken, "16"),
            (AuthError::InvalidToken(InvalidToken::BadSignature), "16"),
            (
                AuthError::InsufficientScope {
                    required: "a".into(),
                },
                "7",
            ),
            (AuthError::Unavailable(Unavailable::Introspection), "14"),
        ] {
            let r: Response<()> = responder.response(&err, true);
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(
                header(&r, "content-type").as_deref(),
                Some("application/grpc")
            );
            assert_eq!(header(&r, "grpc-status").as_deref(), Some(code));
            assert!(header(&r, "grpc-message").is_some());
        }
    }

    #[test]
    fn grpc_web_is_answered_in_its_own_content_type() {
        for (request, answer) in [
            (&b"application/grpc"[..], "application/grpc"),
            (b"application/grpc+proto", "application/grpc"),
            (b"application/grpc-web", "application/grpc-web"),
            (b"application/grpc-web+proto", "application/grpc-web+proto"),
            (b"application/grpc-web-text", "application/grpc-web-text"),
            (
                b"application/grpc-web-text+proto",
                "application/grpc-web-text+proto",
            ),
            (
                b"application/grpc-web+json ; charset=utf-8",
                "application/grpc-web+json",
            ),
            (b"APPLICATION/GRPC-WEB-TEXT", "application/grpc-web-text"),
            (b"application/grpc-web+x\"y", "application/grpc-web"),
            (b"application/grpc-web-text+x", "application/grpc-web-text"),
        ] {
            assert_eq!(Wire::grpc_for(request), Wire::Grpc(answer), "{request:?}");
            let r: Response<()> = Responder::new("api", ErrorDetail::Describe, 5)
                .response(&AuthError::MissingToken, Wire::grpc_for(request));
            assert_eq!(header(&r, "content-type").as_deref(), Some(answer));
        }
    }

    #[test]
    fn insufficient_scope_without_scopes_has_no_scope_attribute() {
        let err = AuthError::InsufficientScope {
            required: String::new(),
        };
        let r: Response<()> = Responder::new("api", ErrorDetail::Terse, 5).response(&err, false);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some("Bearer realm=\"api\", error=\"insufficient_scope\"")
        );
    }

    #[test]
    fn realm_is_escaped_as_quoted_string() {
        let r: Response<()> = Responder::new("a\"b\\c", ErrorDetail::Describe, 5)
            .response(&AuthError::MissingToken, false);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some(r#"Bearer realm="a\"b\\c""#)
        );
    }
}
