//! The one renderer: every refusal, whoever found it (the layer, a guard, an
//! extractor, a tonic helper), is answered here. RFC 6750 §3
//! (`WWW-Authenticate: Bearer …`) for HTTP; a trailers-only gRPC status in
//! the client's own gRPC or gRPC-Web content type for gRPC.

use std::fmt::Write as _;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header};

use crate::error::AuthError;

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

/// How failures of a request are answered. gRPC, so gRPC statuses: a POST
/// with an `application/grpc` content type over HTTP/2, or gRPC-Web (which
/// may travel over HTTP/1.1), answered in the request's own gRPC-Web
/// content type. A content type alone must not turn a REST client's 401
/// into an HTTP 200.
pub(crate) fn wire<B>(req: &Request<B>) -> Wire {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE) else {
        return Wire::Http;
    };
    let ct = content_type.as_bytes();
    let grpc = req.method() == Method::POST
        && (ct.starts_with(b"application/grpc-web")
            || (ct.starts_with(b"application/grpc") && req.version() == Version::HTTP_2));
    if grpc { Wire::grpc_for(ct) } else { Wire::Http }
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
    /// `, scope="…"` for 401 challenges: the scopes a client should ask
    /// for (MCP 2025-11-25), or empty.
    scope_hint: String,
    /// `, resource_metadata="…"` (RFC 9728 §5.1) ending every challenge, or
    /// empty.
    challenge_suffix: String,
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
            scope_hint: String::new(),
            challenge_suffix: String::new(),
            missing,
            invalid_token: Default::default(),
            invalid_request: Default::default(),
            detail,
            retry_after: HeaderValue::from(retry_after_secs),
        }
    }

    /// Every challenge also names the metadata document at `url` (RFC 9728
    /// §5.1), and 401 challenges carry `scope` naming `hint` when given.
    /// Both are configuration, checked for control characters at build.
    pub(crate) fn with_resource(mut self, url: Option<&str>, hint: Option<&str>) -> Self {
        self.scope_hint.clear();
        self.challenge_suffix.clear();
        if let Some(hint) = hint {
            self.scope_hint.push_str(", scope=\"");
            push_quoted(&mut self.scope_hint, hint);
            self.scope_hint.push('"');
        }
        if let Some(url) = url {
            self.challenge_suffix.push_str(", resource_metadata=\"");
            push_quoted(&mut self.challenge_suffix, url);
            self.challenge_suffix.push('"');
        }
        let missing = format!(
            "{}{}{}",
            self.challenge_prefix, self.scope_hint, self.challenge_suffix
        );
        self.missing = HeaderValue::from_str(&missing).unwrap_or_else(|_| self.missing.clone());
        self
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
        let mut value = String::with_capacity(
            self.challenge_prefix.len() + self.scope_hint.len() + self.challenge_suffix.len() + 96,
        );
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
        } else if let AuthError::InsufficientUserAuthentication {
            acr_values,
            max_age,
        } = err
        {
            // RFC 9470 §3: what the client asks the authorization server for.
            if !acr_values.is_empty() {
                value.push_str(", acr_values=\"");
                push_quoted(&mut value, acr_values);
                value.push('"');
            }
            if let Some(max_age) = max_age {
                let _ = write!(value, ", max_age={max_age}");
            }
        } else if err.status() == StatusCode::UNAUTHORIZED {
            value.push_str(&self.scope_hint);
        }
        value.push_str(&self.challenge_suffix);
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
        AuthError::InsufficientUserAuthentication { .. } => "insufficient user authentication",
        AuthError::InvalidDpopProof(_) => "invalid DPoP proof",
        AuthError::InvalidRequest(_) => "invalid authorization header",
        AuthError::InsufficientScope { .. } => "permission denied",
        AuthError::Unavailable(_) => "authorization server unavailable",
    }
}

/// `Bearer realm="…", error=…` as `DPoP algs="…", realm="…", error=…`.
pub(crate) fn dpop_challenge(bearer: &HeaderValue, algs: &str) -> HeaderValue {
    let params = bearer
        .to_str()
        .ok()
        .and_then(|b| b.strip_prefix("Bearer"))
        .map(|rest| rest.trim_start())
        .unwrap_or_default();
    let value = if params.is_empty() {
        format!("DPoP algs=\"{algs}\"")
    } else {
        format!("DPoP algs=\"{algs}\", {params}")
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("DPoP"))
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
    use crate::error::{InvalidRequest, InvalidToken, Unavailable};

    fn header(r: &Response<()>, name: &str) -> Option<String> {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The HTTP answer to `err` in realm `api`: its status and challenge.
    fn challenge(detail: ErrorDetail, err: &AuthError) -> (StatusCode, Option<String>) {
        let r: Response<()> = Responder::new("api", detail, 5).response(err, false);
        (r.status(), header(&r, "www-authenticate"))
    }

    #[test]
    fn missing_token_is_401_with_realm_and_no_error() {
        assert_eq!(
            challenge(ErrorDetail::Describe, &AuthError::MissingToken),
            (
                StatusCode::UNAUTHORIZED,
                Some("Bearer realm=\"api\"".into())
            )
        );
    }

    #[test]
    fn invalid_token_carries_code_and_fixed_description() {
        assert_eq!(
            challenge(ErrorDetail::Describe, &AuthError::InvalidToken(InvalidToken::Expired)),
            (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"api\", error=\"invalid_token\", error_description=\"the token has expired\"".into()))
        );
    }

    #[test]
    fn terse_mode_drops_descriptions() {
        assert_eq!(
            challenge(
                ErrorDetail::Terse,
                &AuthError::InvalidRequest(InvalidRequest::MultipleTokens)
            ),
            (
                StatusCode::BAD_REQUEST,
                Some("Bearer realm=\"api\", error=\"invalid_request\"".into())
            )
        );
    }

    #[test]
    fn insufficient_scope_lists_required_scopes() {
        let err = AuthError::InsufficientScope {
            required: "items:write admin".into(),
        };
        assert_eq!(
            challenge(ErrorDetail::Describe, &err),
            (StatusCode::FORBIDDEN, Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"items:write admin\"".into()))
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
        assert_eq!(
            challenge(ErrorDetail::Terse, &err),
            (
                StatusCode::FORBIDDEN,
                Some("Bearer realm=\"api\", error=\"insufficient_scope\"".into())
            )
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

    #[test]
    fn every_challenge_names_the_metadata_and_401s_the_scope_hint() {
        let responder = Responder::new("api", ErrorDetail::Terse, 5).with_resource(
            Some("https://h/.well-known/oauth-protected-resource/mcp"),
            Some("mcp:tools"),
        );
        let metadata = r#"resource_metadata="https://h/.well-known/oauth-protected-resource/mcp""#;
        for (err, expected) in [
            (
                AuthError::MissingToken,
                format!(r#"Bearer realm="api", scope="mcp:tools", {metadata}"#),
            ),
            (
                AuthError::InvalidToken(InvalidToken::Expired),
                format!(
                    r#"Bearer realm="api", error="invalid_token", scope="mcp:tools", {metadata}"#
                ),
            ),
            (
                AuthError::InvalidRequest(InvalidRequest::MultipleTokens),
                format!(r#"Bearer realm="api", error="invalid_request", {metadata}"#),
            ),
            (
                AuthError::InsufficientScope {
                    required: "items:write admin".into(),
                },
                format!(
                    r#"Bearer realm="api", error="insufficient_scope", scope="items:write admin", {metadata}"#
                ),
            ),
            (
                AuthError::InsufficientScope {
                    required: String::new(),
                },
                format!(r#"Bearer realm="api", error="insufficient_scope", {metadata}"#),
            ),
        ] {
            // Twice: the second answer comes from the per-reason memo.
            for _ in 0..2 {
                let r: Response<()> = responder.response(&err, false);
                assert_eq!(
                    header(&r, "www-authenticate"),
                    Some(expected.clone()),
                    "{err:?}"
                );
                let r: Response<()> = responder.response(&err, true);
                assert_eq!(
                    header(&r, "www-authenticate"),
                    Some(expected.clone()),
                    "{err:?}"
                );
            }
        }
        let r: Response<()> = responder.response(&AuthError::Unavailable(Unavailable::Keys), false);
        assert_eq!(header(&r, "www-authenticate"), None);
    }

    #[test]
    fn metadata_url_is_escaped_once() {
        let responder = Responder::new("api", ErrorDetail::Terse, 5)
            .with_resource(Some("https://h/a\"b"), None);
        let r: Response<()> = responder.response(&AuthError::MissingToken, false);
        assert_eq!(
            header(&r, "www-authenticate").as_deref(),
            Some(r#"Bearer realm="api", resource_metadata="https://h/a\"b""#)
        );
    }
}
