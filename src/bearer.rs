//! Bearer token extraction: RFC 6750 §2.1 (the `Authorization` header) and,
//! only when enabled, §2.3 (the `access_token` query parameter).
//!
//! ```text
//! credentials = "Bearer" 1*SP b64token
//! b64token    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! A request with no `Authorization` header, or with one for another scheme
//! (`Basic …`), carries no bearer token: RFC 6750 §3.1 answers it with a bare
//! challenge. Everything else that is not exactly one well-formed token is an
//! `invalid_request`.

use std::borrow::Cow;

use http::{HeaderMap, Uri, header::AUTHORIZATION};

use crate::error::{AuthError, InvalidRequest, InvalidToken};

/// Where tokens may come from, and how long they may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BearerPolicy {
    pub(crate) max_token_len: usize,
    pub(crate) allow_query: bool,
}

/// Extracts the one bearer token of a request.
///
/// The header path borrows from the request and does not allocate; a query
/// token (opt-in) is percent-decoded into an owned string.
pub(crate) fn extract<'r>(
    headers: &'r HeaderMap,
    uri: &'r Uri,
    policy: &BearerPolicy,
) -> Result<Cow<'r, str>, AuthError> {
    let from_header = from_headers(headers, policy.max_token_len)?;
    if !policy.allow_query {
        return from_header
            .map(Cow::Borrowed)
            .ok_or(AuthError::MissingToken);
    }
    match (from_header, from_query(uri, policy.max_token_len)?) {
        (Some(_), Some(_)) => Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens)),
        (Some(token), None) => Ok(Cow::Borrowed(token)),
        (None, Some(token)) => Ok(Cow::Owned(token)),
        (None, None) => Err(AuthError::MissingToken),
    }
}

fn from_headers(headers: &HeaderMap, max_len: usize) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidRequest(InvalidRequest::MultipleHeaders));
    }
    parse_authorization(value.as_bytes(), max_len)
}

/// Parses one `Authorization` header value. `Ok(None)` means "another scheme".
pub(crate) fn parse_authorization(value: &[u8], max_len: usize) -> Result<Option<&str>, AuthError> {
    const SCHEME: &[u8] = b"bearer";
    // "Bearer" + SP + token: anything longer than that is refused before it is
    // looked at, whatever it holds.
    if value.len() > max_len.saturating_add(SCHEME.len() + 1) {
        return if starts_with_scheme(value) {
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        } else {
            Ok(None)
        };
    }
    if !starts_with_scheme(value) {
        return Ok(None);
    }
    let rest = &value[SCHEME.len()..];
    // The scheme must be a whole word: "Bearerx" is another scheme.
    match rest.first() {
        None => return Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken)),
        Some(b' ') => {}
        Some(_) => return Ok(None),
    }
    let token = trim_spaces(rest);
    if token.is_empty() {
        return Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken));
    }
    // One pass over the token on the common path; the reason for a refusal
    // is worked out only for tokens that are refused.
    let well_formed = is_b64token(token);
    if !well_formed && (token.contains(&b' ') || token.contains(&b'\t') || token.contains(&b',')) {
        return Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens));
    }
    if token.len() > max_len {
        return Err(AuthError::InvalidToken(InvalidToken::TooLong));
    }
    if !well_formed {
        return Err(AuthError::InvalidRequest(InvalidRequest::Malformed));
    }
    // b64token is ASCII, so this cannot fail; the check keeps it safe anyway.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| AuthError::InvalidRequest(InvalidRequest::Malformed))
}

fn starts_with_scheme(value: &[u8]) -> bool {
    value.len() >= 6 && value[..6].eq_ignore_ascii_case(b"bearer")
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 6750 §2.1 `b64token`: token characters, then optional trailing `=`.
pub(crate) fn check_b64token(token: &[u8]) -> Result<(), AuthError> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(AuthError::InvalidRequest(InvalidRequest::Malformed))
    }
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &[u8]) -> bool {
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    // Tokens run to kilobytes and are checked on every request: test whole
    // chunks without branching per byte, so the compiler can vectorize.
    body_len > 0
        && token[..body_len]
            .chunks(32)
            .all(|chunk| chunk.iter().fold(true, |ok, &b| ok & is_token_char(b)))
}

#[inline(always)]
fn is_token_char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

fn from_query(uri: &Uri, max_len: usize) -> Result<Option<String>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    if query.len() > max_len.saturating_mul(3).saturating_add(4096) {
        return Err(AuthError::InvalidToken(InvalidToken::TooLong));
    }
    let mut found = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name != "access_token" {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens));
        }
        if value.len() > max_len {
            return Err(AuthError::InvalidToken(InvalidToken::TooLong));
        }
        if value.is_empty() {
            return Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken));
        }
        check_b64token(value.as_bytes())?;
        found = Some(value.into_owned());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const POLICY: BearerPolicy = BearerPolicy {
        max_token_len: 64,
        allow_query: false,
    };

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    fn run(values: &[&[u8]]) -> Result<String, AuthError> {
        let h = headers(values);
        let uri = Uri::from_static("/");
        extract(&h, &uri, &POLICY).map(|t| t.into_owned())
    }

    #[test]
    fn token_chars_are_exactly_rfc6750_b64token() {
        for b in 0..=u8::MAX {
            let spec =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_token_char(b), spec, "byte {b:#04x}");
        }
        assert!(is_b64token(b"abc=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
        // A bad byte in any chunk, including the last, partial one.
        let mut long = vec![b'a'; 100];
        for at in [0, 31, 32, 64, 99] {
            long[at] = b'\0';
            assert!(!is_b64token(&long), "{at}");
            long[at] = b'a';
        }
        assert!(is_b64token(&long));
    }

    #[test]
    fn accepts_one_bearer_token_with_any_scheme_case() {
        assert_eq!(run(&[b"Bearer abc.def-_~+/=="]).unwrap(), "abc.def-_~+/==");
        assert_eq!(run(&[b"bearer abc"]).unwrap(), "abc");
        assert_eq!(run(&[b"BEARER abc"]).unwrap(), "abc");
        assert_eq!(run(&[b"Bearer   abc"]).unwrap(), "abc");
    }

    #[test]
    fn no_header_or_other_scheme_is_missing() {
        assert_eq!(run(&[]), Err(AuthError::MissingToken));
        assert_eq!(run(&[b"Basic dXNlcjpwYXNz"]), Err(AuthError::MissingToken));
        assert_eq!(run(&[b"Bearerabc"]), Err(AuthError::MissingToken));
        assert_eq!(run(&[b"DPoP abc"]), Err(AuthError::MissingToken));
    }

    #[test]
    fn several_headers_or_tokens_are_invalid_request() {
        assert_eq!(
            run(&[b"Bearer a", b"Bearer b"]),
            Err(AuthError::InvalidRequest(InvalidRequest::MultipleHeaders))
        );
        assert_eq!(
            run(&[b"Bearer a b"]),
            Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens))
        );
        assert_eq!(
            run(&[b"Bearer a,Bearer b"]),
            Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens))
        );
    }

    #[test]
    fn empty_or_malformed_token_is_invalid_request() {
        assert_eq!(
            run(&[b"Bearer"]),
            Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken))
        );
        assert_eq!(
            run(&[b"Bearer   "]),
            Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken))
        );
        for bad in [
            &b"Bearer a\"b"[..],
            b"Bearer a=b",
            b"Bearer ===",
            b"Bearer a;b",
            b"Bearer \xc3\xa9",
        ] {
            assert_eq!(
                run(&[bad]),
                Err(AuthError::InvalidRequest(InvalidRequest::Malformed)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_tokens_are_refused_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(65));
        assert_eq!(
            run(&[long.as_bytes()]),
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        );
        let huge = format!("Bearer {}", "\"".repeat(10_000));
        assert_eq!(
            run(&[huge.as_bytes()]),
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        );
        let exact = format!("Bearer {}", "a".repeat(64));
        assert!(run(&[exact.as_bytes()]).is_ok());
    }

    #[test]
    fn query_tokens_are_ignored_unless_enabled() {
        let h = HeaderMap::new();
        let uri = Uri::from_static("/items?access_token=abc");
        assert_eq!(extract(&h, &uri, &POLICY), Err(AuthError::MissingToken));

        let policy = BearerPolicy {
            allow_query: true,
            ..POLICY
        };
        assert_eq!(extract(&h, &uri, &policy).unwrap(), "abc");
        let encoded = Uri::from_static("/items?x=1&access_token=a%2Bb%2F%3D");
        assert_eq!(extract(&h, &encoded, &policy).unwrap(), "a+b/=");
        let twice = Uri::from_static("/items?access_token=a&access_token=b");
        assert_eq!(
            extract(&h, &twice, &policy),
            Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens))
        );
        let both = headers(&[b"Bearer abc"]);
        assert_eq!(
            extract(&both, &uri, &policy),
            Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens))
        );
    }
}
