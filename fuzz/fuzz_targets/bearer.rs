//! Bearer extraction (RFC 6750 §2.1, and the §2.3 query-string opt-in) from
//! arbitrary `Authorization` header bytes, through the public API:
//! `TokenGate::authenticate(&Parts)` on gates built from static keys.
//!
//! Input: one flag byte, then segments separated by `\n` (which no header
//! value can hold). Flag bits:
//!
//! - bits 0–1: how many `Authorization` headers (0–3), taken from the
//!   segments after the query;
//! - bit 2: the first segment is a query string (`/p?<segment>`);
//! - bit 3: the query gate (`allow_query_token(true)`, 64-byte token cap)
//!   instead of the default gate (header only, 16 KiB cap).
//!
//! Checks, besides "never panics", from RFC 6750 and the crate's documented
//! answers: no header and no query token is `MissingToken`; several headers
//! are `MultipleHeaders`; another scheme is `MissingToken`; `Bearer` 1*SP
//! b64token (within the cap) answers exactly as `verify(token)`; two tokens
//! in one header are `MultipleTokens`; an acceptance always comes from such a
//! header; the default gate ignores the query string; a token in both the
//! header and the query is never accepted; every error is of a documented
//! kind and renders to a response with its status.
#![no_main]

mod common;

use std::sync::OnceLock;

use common::*;
use http::{HeaderValue, Request, header::AUTHORIZATION, request::Parts};
use libfuzzer_sys::fuzz_target;
use tokengate::{AuthError, InvalidRequest, Principal, TokenGate};

const DEFAULT_MAX: usize = 16 * 1024;
const QUERY_MAX: usize = 64;

struct Gates {
    header_only: TokenGate,
    query: TokenGate,
}

fn gates() -> &'static Gates {
    static GATES: OnceLock<Gates> = OnceLock::new();
    GATES.get_or_init(|| Gates {
        header_only: build(builder().audience(AUDIENCE)),
        query: build(
            builder()
                .audience(AUDIENCE)
                .allow_query_token(true)
                .max_token_length(QUERY_MAX),
        ),
    })
}

/// RFC 6750 §2.1 `b64token`.
fn is_b64token(t: &[u8]) -> bool {
    let body = t.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    body > 0
        && t[..body].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// What RFC 6750 (and the crate's docs) say about one header value, where
/// that is unambiguous.
#[derive(Debug)]
enum Expect {
    /// Another scheme: no bearer credentials.
    Missing,
    /// `Bearer` 1*SP token *SP: answer as `verify(token)`.
    Token(String),
    /// `Bearer` then two space-separated words.
    TwoTokens,
    /// Nothing more precise than "a documented error, never 200".
    Rejected,
}

fn expect_header(v: &[u8], max: usize) -> Expect {
    let bearer = v.len() >= 6 && v[..6].eq_ignore_ascii_case(b"bearer");
    if !bearer {
        return Expect::Missing;
    }
    let long = v.len() > max + 7;
    match v.get(6) {
        Some(b' ') => {}
        // "Bearerx…": another scheme (a long one may be refused unread).
        Some(_) if !long => return Expect::Missing,
        _ => return Expect::Rejected,
    }
    if long {
        return Expect::Rejected;
    }
    let rest = &v[7..];
    // Leading and trailing blanks (SP, and HTAB as HTTP's OWS) are not part
    // of the token.
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
    let end = rest.iter().rposition(|b| !blank(b)).map_or(start, |i| i + 1);
    let t = &rest[start..end.max(start)];
    if !t.is_empty() && t.len() <= max && is_b64token(t) {
        return Expect::Token(String::from_utf8(t.to_vec()).unwrap());
    }
    let words: Vec<&[u8]> = t.split(|&b| b == b' ').filter(|w| !w.is_empty()).collect();
    if words.len() >= 2 && words.iter().all(|w| is_b64token(w)) {
        return Expect::TwoTokens;
    }
    Expect::Rejected
}

fn parts(query: Option<&[u8]>, headers: &[&[u8]]) -> Option<Parts> {
    let mut uri = b"/p".to_vec();
    if let Some(q) = query {
        uri.push(b'?');
        uri.extend_from_slice(q);
    }
    let uri = http::Uri::try_from(uri).ok()?;
    let mut req = Request::builder().uri(uri).body(()).ok()?;
    for h in headers {
        req.headers_mut()
            .append(AUTHORIZATION, HeaderValue::from_bytes(h).ok()?);
    }
    Some(req.into_parts().0)
}

fn run(gate: &TokenGate, p: &Parts) -> Result<Principal, AuthError> {
    let result = runtime().block_on(gate.authenticate(p));
    if let Err(e) = &result {
        match e {
            AuthError::MissingToken | AuthError::InvalidRequest(_) | AuthError::InvalidToken(_) => {}
            other => panic!("undocumented answer: {other:?}"),
        }
        for grpc in [false, true] {
            let r: http::Response<String> = gate.error_response(e, grpc);
            if !grpc {
                assert_eq!(r.status(), e.status());
            }
        }
    }
    result
}

fn same(a: &Result<Principal, AuthError>, b: &Result<Principal, AuthError>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x.claims() == y.claims(),
        (Err(x), Err(y)) => x == y,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let n_headers = (flags & 3) as usize;
    let with_query = flags & 4 != 0;
    let query_gate = flags & 8 != 0;
    let mut segments = rest.split(|&b| b == b'\n');
    let query = if with_query { segments.next() } else { None };
    let headers: Vec<&[u8]> = segments.take(n_headers).collect();
    let Some(p) = parts(query, &headers) else {
        return;
    };
    let gates = gates();
    let (gate, max) = if query_gate {
        (&gates.query, QUERY_MAX)
    } else {
        (&gates.header_only, DEFAULT_MAX)
    };
    let result = run(gate, &p);
    if debug() {
        eprintln!("bearer: flags {flags:#04x}: {:?}", result.as_ref().map(|p| p.subject()));
    }
    let shown = String::from_utf8_lossy(&data[..data.len().min(200)]).into_owned();

    if headers.len() >= 2 {
        assert_eq!(
            result.as_ref().err(),
            Some(&AuthError::InvalidRequest(InvalidRequest::MultipleHeaders)),
            "several Authorization headers: {shown:?}"
        );
        return;
    }

    // Whether the query could carry an `access_token` (names are
    // percent- and plus-decoded, so be generous).
    let query_token = query.is_some_and(|q| {
        q.windows(6).any(|w| w == b"access") || q.contains(&b'%') || q.contains(&b'+')
    });
    let query_counts = query_gate && query_token;

    if !query_gate && query.is_some() {
        // The default gate never looks at the query string.
        let bare = parts(None, &headers).expect("the same request without its query");
        let without = run(gate, &bare);
        assert!(
            same(&result, &without),
            "the query changed the default gate's answer: {shown:?}"
        );
    }

    let Some(value) = headers.first() else {
        if !query_counts {
            assert_eq!(result.as_ref().err(), Some(&AuthError::MissingToken), "{shown:?}");
        }
        return;
    };
    let expect = expect_header(value, max);
    if query_counts {
        if matches!(expect, Expect::Token(_)) {
            let has_access_token = query.is_some_and(|q| {
                q.starts_with(b"access_token=") || q.windows(14).any(|w| w == b"&access_token=")
            });
            if has_access_token {
                assert!(result.is_err(), "accepted a token in both header and query: {shown:?}");
            }
        }
        return;
    }
    match expect {
        Expect::Missing => {
            assert_eq!(result.as_ref().err(), Some(&AuthError::MissingToken), "{shown:?}")
        }
        Expect::Token(t) => {
            let direct = runtime().block_on(gate.verify(&t));
            assert!(same(&result, &direct), "authenticate and verify disagree: {shown:?}: {:?} vs {:?}", result.as_ref().err(), direct.as_ref().err());
        }
        Expect::TwoTokens => assert_eq!(
            result.as_ref().err(),
            Some(&AuthError::InvalidRequest(InvalidRequest::MultipleTokens)),
            "{shown:?}"
        ),
        Expect::Rejected => {
            assert!(result.is_err(), "accepted a malformed header: {shown:?}");
            assert_ne!(result.as_ref().err(), Some(&AuthError::MissingToken), "a Bearer credential read as none: {shown:?}");
        }
    }
});
