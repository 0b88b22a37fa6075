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
    parse_credentials(value, max_len, b"bearer")
}

/// Parses `<scheme> <b64token>` (the scheme in lower case, compared
/// case-insensitively): RFC 6750 §2.1, and RFC 9449 §7.1 for `DPoP`.
/// `Ok(None)` means "another scheme".
pub(crate) fn parse_credentials<'v>(
    value: &'v [u8],
    max_len: usize,
    scheme: &[u8],
) -> Result<Option<&'v str>, AuthError> {
    let starts_with_scheme = |value: &[u8]| {
        value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme)
    };
    // Scheme + SP + token: anything longer than that is refused before it is
    // looked at, whatever it holds.
    if value.len() > max_len.saturating_add(scheme.len() + 1) {
        return if starts_with_scheme(value) {
            Err(AuthError::InvalidToken(InvalidToken::TooLong))
        } else {
            Ok(None)
        };
    }
    if !starts_with_scheme(value) {
        return Ok(None);
    }
    let rest = &value[scheme.len()..];
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

/// The query parameter RFC 6750 §2.3 defines.
const QUERY_NAME: &str = "access_token";

/// The `&`-separated pieces of an `application/x-www-form-urlencoded`
/// query, each with whether it is an `access_token` parameter. Only names
/// that may decode to `access_token` are decoded, so a long unrelated query
/// costs one scan and no allocation.
fn query_pieces(query: &str) -> impl Iterator<Item = (&str, bool)> {
    query.split('&').map(|piece| {
        let name = piece.split_once('=').map_or(piece, |(name, _)| name);
        (piece, is_query_name(name))
    })
}

/// Whether a raw parameter name decodes (as form_urlencoded does: `+` is a
/// space, `%XX` a byte) to `access_token`.
fn is_query_name(raw: &str) -> bool {
    raw == QUERY_NAME
        || (raw.len() <= 3 * QUERY_NAME.len()
            && raw.contains(['%', '+'])
            && form_urlencoded::parse(raw.as_bytes())
                .next()
                .is_some_and(|(name, _)| name == QUERY_NAME))
}

fn from_query(uri: &Uri, max_len: usize) -> Result<Option<String>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for (piece, _) in query_pieces(query).filter(|(_, token)| *token) {
        if found.is_some() {
            return Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens));
        }
        // The cap is on the token, not on the rest of the URL. Decoding
        // shrinks a value at most threefold: a longer one is refused unread.
        let raw_len = piece.split_once('=').map_or(0, |(_, value)| value.len());
        if raw_len > max_len.saturating_mul(3) {
            return Err(AuthError::InvalidToken(InvalidToken::TooLong));
        }
        let value = form_urlencoded::parse(piece.as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default();
        if value.len() > max_len {
            return Err(AuthError::InvalidToken(InvalidToken::TooLong));
        }
        if value.is_empty() {
            return Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken));
        }
        check_b64token(value.as_bytes())?;
        found = Some(value);
    }
    Ok(found)
}

/// `uri` without its `access_token` parameters, every other parameter kept
/// byte for byte and in order; `None` when it has none. RFC 6750 §5.3:
/// URLs are logged, so a token taken from the query must not travel on to
/// the inner service, its access log or its tracing spans.
pub(crate) fn strip_query_token(uri: &Uri) -> Result<Option<Uri>, AuthError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    if !query_pieces(query).any(|(_, token)| token) {
        return Ok(None);
    }
    let kept: Vec<&str> = query_pieces(query)
        .filter(|(_, token)| !token)
        .map(|(piece, _)| piece)
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    // Every byte kept was valid in the original URI, so this cannot fail;
    // if it did, the request would be refused rather than keep the token.
    let malformed = AuthError::InvalidRequest(InvalidRequest::Malformed);
    parts.path_and_query = Some(path_and_query.try_into().map_err(|_| malformed.clone())?);
    Uri::from_parts(parts).map(Some).map_err(|_| malformed)
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
        for (headers, reason) in [
            (
                &[&b"Bearer a"[..], b"Bearer b"][..],
                InvalidRequest::MultipleHeaders,
            ),
            (&[b"Bearer a b"], InvalidRequest::MultipleTokens),
            (&[b"Bearer a,Bearer b"], InvalidRequest::MultipleTokens),
        ] {
            assert_eq!(
                run(headers),
                Err(AuthError::InvalidRequest(reason)),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn empty_or_malformed_token_is_invalid_request() {
        for (bad, reason) in [
            (&b"Bearer"[..], InvalidRequest::EmptyToken),
            (b"Bearer   ", InvalidRequest::EmptyToken),
            (b"Bearer a\"b", InvalidRequest::Malformed),
            (b"Bearer a=b", InvalidRequest::Malformed),
            (b"Bearer ===", InvalidRequest::Malformed),
            (b"Bearer a;b", InvalidRequest::Malformed),
            (b"Bearer \xc3\xa9", InvalidRequest::Malformed),
        ] {
            assert_eq!(
                run(&[bad]),
                Err(AuthError::InvalidRequest(reason)),
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
        let multiple = Err(AuthError::InvalidRequest(InvalidRequest::MultipleTokens));
        for (query, expected) in [
            ("/items?access_token=abc", Ok("abc")),
            ("/items?x=1&access_token=a%2Bb%2F%3D", Ok("a+b/=")),
            ("/items?access_token=a&access_token=b", multiple.clone()),
            ("/items?access%5ftoken=abc", Ok("abc")),
            ("/items?access_token=abc%3D%3D", Ok("abc==")),
            ("/items?access_token=abc==", Ok("abc==")),
            (
                "/items?access_token",
                Err(AuthError::InvalidRequest(InvalidRequest::EmptyToken)),
            ),
        ] {
            let uri = Uri::from_static(query);
            let expected = expected.map(Cow::Borrowed);
            assert_eq!(extract(&h, &uri, &policy), expected, "{query}");
        }
        let both = headers(&[b"Bearer abc"]);
        assert_eq!(extract(&both, &uri, &policy), multiple.map(Cow::Borrowed));
    }

    #[test]
    fn the_length_cap_is_on_the_query_token_not_the_query() {
        let policy = BearerPolicy {
            allow_query: true,
            ..POLICY
        };
        let long = format!("/x?q={}&access_token=abc", "a".repeat(60_000));
        let uri: Uri = long.parse().unwrap();
        assert_eq!(extract(&HeaderMap::new(), &uri, &policy).unwrap(), "abc");
        let header = headers(&[b"Bearer abc"]);
        let uri: Uri = format!("/x?q={}", "%41".repeat(20_000)).parse().unwrap();
        assert_eq!(extract(&header, &uri, &policy).unwrap(), "abc");
        for token in ["a".repeat(65), "%41".repeat(65), "%41".repeat(10_000)] {
            let uri: Uri = format!("/x?access_token={token}").parse().unwrap();
            assert_eq!(
                extract(&HeaderMap::new(), &uri, &policy),
                Err(AuthError::InvalidToken(InvalidToken::TooLong))
            );
        }
        let exact: Uri = format!("/x?access_token={}", "%41".repeat(64))
            .parse()
            .unwrap();
        assert_eq!(
            extract(&HeaderMap::new(), &exact, &policy).unwrap(),
            "A".repeat(64)
        );
    }

    #[test]
    fn stripping_the_query_token_keeps_everything_else() {
        let strip = |uri: &'static str| {
            strip_query_token(&Uri::from_static(uri))
                .unwrap()
                .map(|u| u.to_string())
        };
        for (uri, stripped) in [
            ("/a?access_token=t", "/a"),
            ("/a?access_token=t&b=1", "/a?b=1"),
            ("/a?b=1&access_token=t", "/a?b=1"),
            ("/a?b=1&access_token=t&c=%2F+x&", "/a?b=1&c=%2F+x&"),
            ("/a?&&access_token=t", "/a?&"),
            ("/a?access+token=1&access%5Ftoken=t", "/a?access+token=1"),
            (
                "https://h:8443/a/b?x&access_token=t#",
                "https://h:8443/a/b?x",
            ),
        ] {
            assert_eq!(strip(uri).as_deref(), Some(stripped), "{uri}");
        }
        for untouched in ["/a", "/a?", "/a?b=access_token", "/a?xaccess_token=1"] {
            assert_eq!(strip(untouched), None, "{untouched}");
        }
    }
}
