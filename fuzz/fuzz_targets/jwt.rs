//! JWT header + claims parsing and verification on arbitrary tokens, through
//! the public API (`TokenGate::verify`) of gates built from static keys.
//!
//! Input: one flag byte, then either the raw token (mode 0), or
//! `header bytes 0xFF claims bytes`, base64url-encoded here and signed with a
//! real key (modes 1–3), so the fuzzer gets past the signature and into the
//! claim rules. Flag bits:
//!
//! - bits 0–1: 0 raw token, 1 HS256 (`kid` "hs"), 2 ES256 (`kid` "ec"),
//!   3 EdDSA (`kid` "ed");
//! - bit 2: the strict gate (RFC 9068 strict, any audience, no token cache,
//!   no leeway) instead of the default one;
//! - bit 3: (modes 1–3) a garbage signature instead of a real one.
//!
//! Checks, besides "never panics": an accepted token satisfies the claim
//! rules (issuer, audience, `exp`, no `cnf`, RFC 9068 claims when strict);
//! `claims()` holds the payload's `iss` and `exp`; a payload that names a
//! claim twice is never accepted (the crate documents it as
//! `invalid_token`); a garbage signature is never accepted; errors are only
//! the documented
//! kinds and render to responses; the verified-token cache (default gate)
//! answers a repeated token as the first verification did.
#![no_main]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokengate::{AuthError, InvalidRequest, InvalidToken, Principal, TokenGate};

const LEEWAY: u64 = 60;

struct Gates {
    default: TokenGate,
    strict: TokenGate,
}

fn gates() -> &'static Gates {
    static GATES: OnceLock<Gates> = OnceLock::new();
    GATES.get_or_init(|| Gates {
        default: build(builder().audience(AUDIENCE).leeway(Duration::from_secs(LEEWAY))),
        strict: build(
            builder()
                .accept_any_audience()
                .strict_rfc9068(true)
                .verified_token_cache_bytes(0)
                .leeway(Duration::ZERO),
        ),
    })
}

fn time_related(e: &AuthError) -> bool {
    matches!(
        e,
        AuthError::InvalidToken(
            InvalidToken::Expired | InvalidToken::NotYetValid | InvalidToken::IssuedInFuture
        )
    )
}

fn check_error(gate: &TokenGate, e: &AuthError) {
    match e {
        AuthError::InvalidRequest(InvalidRequest::Malformed) | AuthError::InvalidToken(_) => {}
        other => panic!("undocumented verify error: {other:?}"),
    }
    let _ = e.to_string();
    for grpc in [false, true] {
        let r: http::Response<String> = gate.error_response(e, grpc);
        if !grpc {
            assert_eq!(r.status(), e.status());
        }
    }
}

fn check_principal(p: &Principal, strict: bool, now_before: u64) {
    assert_eq!(p.source(), tokengate::TokenSource::Jwt);
    assert_eq!(p.issuer(), Some(ISSUER), "accepted a foreign issuer");
    // `claims()` shows the payload the accessors were read from.
    assert_eq!(
        p.claim("iss").and_then(Value::as_str),
        Some(ISSUER),
        "claims() lost the payload: {:?}",
        p.claims()
    );
    assert!(p.claim("exp").is_some(), "claims() lost exp");
    if !strict {
        assert!(
            p.audiences().iter().any(|a| a == AUDIENCE),
            "accepted a token for another audience: {:?}",
            p.audiences()
        );
    }
    let leeway = if strict { 0 } else { LEEWAY };
    let exp = p
        .expires_at()
        .expect("accepted a token without exp")
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        exp.saturating_add(leeway) > now_before,
        "accepted an expired token (exp {exp}, now {now_before})"
    );
    assert!(
        p.claim("cnf").is_none_or(Value::is_null),
        "accepted a sender-constrained token"
    );
    if strict {
        for name in ["sub", "client_id", "iat", "jti", "aud"] {
            assert!(
                p.claim(name).is_some_and(|v| !v.is_null()),
                "strict gate accepted a token without {name}"
            );
        }
    }
    for s in p.scopes().iter() {
        assert!(tokengate::is_scope_token(s));
    }
    let _ = (p.subject(), p.client_id(), p.issued_at(), p.token_id(), p.is_client_credentials());
    let _ = format!("{p:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let strict = flags & 4 != 0;
    let garbage = flags & 8 != 0;
    // The claims bytes as signed (modes 1–3), or as the raw token carries
    // them (mode 0, when its second segment decodes).
    let payload: Option<Vec<u8>>;
    let token = match flags & 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(t) => {
                payload = t.split('.').nth(1).and_then(|p| URL_SAFE_NO_PAD.decode(p).ok());
                t.to_owned()
            }
            Err(_) => return,
        },
        mode => {
            let (header, claims) = match rest.iter().position(|&b| b == 0xFF) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b"{}"[..]),
            };
            payload = Some(claims.to_vec());
            let signer = match (garbage, mode) {
                (true, _) => Signer::Garbage,
                (false, 1) => Signer::Hs256,
                (false, 2) => Signer::Es256,
                (false, _) => Signer::EdDsa,
            };
            sign(signer, header, claims)
        }
    };
    let structured_garbage = flags & 3 != 0 && garbage;

    let gates = gates();
    let gate = if strict { &gates.strict } else { &gates.default };
    let now_before = now_secs();
    let first = runtime().block_on(gate.verify(&token));
    if debug() {
        eprintln!("jwt: flags {flags:#04x}: {:?}", first.as_ref().map(|p| p.subject()));
    }
    match &first {
        Ok(p) => {
            assert!(!structured_garbage, "accepted a garbage signature");
            assert!(
                !payload.as_deref().is_some_and(duplicate_member),
                "accepted a token naming a claim twice: {:?}",
                p.claims()
            );
            check_principal(p, strict, now_before);
        }
        Err(e) => check_error(gate, e),
    }

    if strict {
        return;
    }
    // The default gate caches verified tokens: the second answer must agree.
    let second = runtime().block_on(gate.verify(&token));
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a.claims(), b.claims(), "cache changed the claims"),
        (Err(a), Err(b)) if a == b => {}
        (Ok(_), Err(e)) if time_related(e) => {}
        (Err(e), Ok(_)) if time_related(e) => {}
        (Err(a), Err(b)) if time_related(a) || time_related(b) => {}
        (a, b) => panic!("a repeated token got another answer: {:?} then {:?}", a.as_ref().err(), b.as_ref().err()),
    }
});
