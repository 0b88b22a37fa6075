//! Introspection answers (RFC 7662 §2.2) parsed into a `Principal`.
//!
//! The answer parser (`read_answer`/`check_active` in src/introspection.rs)
//! is crate-private, so it is reached two public ways, on every input:
//!
//! 1. **Through the gate**: the input (after a flag byte) is the body the
//!    introspection endpoint of a gate (static keys, no discovery, answer
//!    caching off) returns for an opaque token. Every input goes through
//!    the gate's own parser by the `cfg(fuzzing)` hook
//!    `TokenGate::__fuzz_introspection_answer` (what `verify` does with a
//!    fetched answer); one in eight (by a hash of the input, so mutations
//!    of one input spread over both) also goes end to end: an in-process HTTP/1.1 server (std threads, loopback) returns it
//!    to `TokenGate::verify`, and both verdicts must agree. The HTTP round
//!    trip costs about 1.5 ms under ASan, so end to end alone ran at 650
//!    inputs a second. Flag bit 0 picks the gate with
//!    `introspection_require_audience(true)`.
//! 2. **Directly**: `serde_json` → `Principal::from_claims(…,
//!    TokenSource::Introspection)` on the same bytes.
//!
//! Checks, besides "never panics": an unreadable answer (not a JSON object,
//! `active` missing or not a boolean) is 503 `Unavailable::Introspection`,
//! `active: false` is `Inactive`, `active: true` is never a 503; an accepted
//! answer has our issuer (or none), our audience (or none, unless required),
//! an unexpired `exp`, an access-token `token_type`, no `cnf`, and the same
//! principal `from_claims` builds; `from_claims` reports accessors equal to
//! the JSON it was given and accepts every well-typed object; an answer
//! that names any top-level member twice (`active` or another) is never
//! accepted (the other checks do not apply to it: `serde_json`'s last-wins
//! `Map` is not what such an answer said); an accepted answer that
//! `serde_json` cannot hold in a `Map` still shows its members in
//! `claims()`.
#![no_main]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tokengate::{AuthError, InvalidToken, Principal, Scopes, TokenGate, TokenSource, Unavailable};

const LEEWAY: u64 = 60;
const OPAQUE: &str = "opaque-fuzz-token";

/// The body the endpoint returns next.
static BODY: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut request_body = vec![0; length];
        if std::io::Read::read_exact(&mut reader, &mut request_body).is_err() {
            return;
        }
        let body = BODY.lock().unwrap().clone();
        let mut response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(&body);
        if out.write_all(&response).is_err() {
            return;
        }
    }
}

fn endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            stream.set_nodelay(true).ok();
            std::thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}/introspect")
}

struct Gates {
    optional_aud: TokenGate,
    required_aud: TokenGate,
}

fn gates() -> &'static Gates {
    static GATES: OnceLock<Gates> = OnceLock::new();
    GATES.get_or_init(|| {
        let url = endpoint();
        let gate = |require: bool| {
            build(
                builder()
                    .audience(AUDIENCE)
                    .leeway(Duration::from_secs(LEEWAY))
                    .introspection_credentials("resource-server", "s3cret")
                    .introspection_endpoint(url.clone())
                    .introspection_cache_ttl(Duration::ZERO)
                    .introspection_inactive_ttl(Duration::ZERO)
                    .introspection_require_audience(require),
            )
        };
        Gates {
            optional_aud: gate(false),
            required_aud: gate(true),
        }
    })
}

/// One input in eight, chosen by an FNV-1a hash of all its bytes: the flag
/// byte would not do, as mutations seldom change the first byte.
fn end_to_end(data: &[u8]) -> bool {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash % 8 == 0
}

/// A time claim within reach of the clock ticking between two readings of
/// the same answer (their verdicts may then differ honestly).
fn near_now(m: Option<&Map<String, Value>>, now: u64) -> bool {
    m.is_some_and(|m| {
        ["exp", "nbf", "iat"].iter().any(|n| {
            m.get(*n)
                .and_then(Value::as_u64)
                .is_some_and(|t| t.abs_diff(now) <= LEEWAY + 5)
        })
    })
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Nested well past any sensible claim (the crate caps nesting; where
/// exactly is its business).
fn deep(m: &Map<String, Value>) -> bool {
    m.values().map(depth).max().unwrap_or(0) >= 32
}

/// Every claim `from_claims` reads has its documented type (no `null`s, and
/// far from any nesting limit).
fn well_typed(m: &Map<String, Value>) -> bool {
    const MAX: u64 = 253_402_300_799;
    // `tid` too: Entra's tenant id, read for multi-tenant issuers since
    // issue 11.
    let strings = ["iss", "sub", "client_id", "azp", "cid", "appid", "username", "jti", "tid"]
        .iter()
        .all(|n| matches!(m.get(*n), None | Some(Value::String(_))));
    let aud = match m.get("aud") {
        None | Some(Value::String(_)) => true,
        Some(Value::Array(a)) => a.iter().all(Value::is_string),
        _ => false,
    };
    let dates = ["exp", "nbf", "iat"].iter().all(|n| match m.get(*n) {
        None => true,
        Some(v) => v.as_u64().is_some_and(|u| u <= MAX),
    });
    // `scp` is read (a string or an array of strings) even beside a
    // `scope` string, and refuses the answer when it is anything else.
    let scp_typed = match m.get("scp") {
        None | Some(Value::String(_)) => true,
        Some(Value::Array(a)) => a.iter().all(Value::is_string),
        _ => false,
    };
    let scope = scp_typed
        && match (m.get("scope"), m.get("scp")) {
            (None, None) => true,
            (Some(Value::String(s)), _) => Scopes::parse(s).is_ok(),
            _ => false,
        };
    let shallow = !deep(m);
    strings && aud && dates && scope && shallow
}

/// `from_claims` read the JSON it was given.
fn check_principal_matches(p: &Principal, m: &Map<String, Value>) {
    let s = |n: &str| m.get(n).and_then(Value::as_str);
    assert_eq!(p.claims(), m);
    assert_eq!(p.issuer(), s("iss"));
    assert_eq!(p.subject(), s("sub"));
    assert_eq!(p.username(), s("username"));
    assert_eq!(p.token_id(), s("jti"));
    assert_eq!(
        p.client_id(),
        s("client_id").or(s("azp")).or(s("cid")).or(s("appid"))
    );
    match m.get("aud") {
        Some(Value::String(a)) => assert_eq!(p.audiences(), [a.clone()]),
        Some(Value::Array(a)) => assert_eq!(p.audiences().len(), a.len()),
        _ => assert!(p.audiences().is_empty()),
    }
    if let Some(Value::String(scope)) = m.get("scope") {
        assert_eq!(p.scopes(), &Scopes::parse(scope).unwrap());
    }
    for t in p.scopes().iter() {
        assert!(tokengate::is_scope_token(t));
    }
    if let Some(exp) = m.get("exp").and_then(Value::as_u64) {
        let at = p.expires_at().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(at.as_secs(), exp);
    }
    let _ = (p.issued_at(), p.is_client_credentials(), format!("{p:?}"));
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let require_aud = flags & 1 != 0;

    // 2. Directly: JSON -> Principal::from_claims.
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    let direct = parsed
        .clone()
        .map(|m| Principal::from_claims(m, TokenSource::Introspection));
    if let (Some(m), Some(result)) = (&parsed, &direct) {
        match result {
            Ok(p) => {
                assert_eq!(p.source(), TokenSource::Introspection);
                check_principal_matches(p, m);
            }
            Err(e) => {
                // MalformedClaim; Malformed only past the nesting limit.
                assert!(
                    matches!(e, InvalidToken::MalformedClaim | InvalidToken::Malformed),
                    "from_claims: {e:?}"
                );
                assert!(!well_typed(m), "from_claims refused a well-typed object: {e:?}");
            }
        }
    }

    // 1. Through the gate: its parser on every input (the `cfg(fuzzing)`
    //    hook, what `verify` does with a fetched answer), and end to end,
    //    through HTTP, on one input in eight, where both must agree.
    let gates = gates();
    let gate = if require_aud { &gates.required_aud } else { &gates.optional_aud };
    let now_before = now_secs();
    let hooked = gate.__fuzz_introspection_answer(body);
    let result = if end_to_end(data) {
        *BODY.lock().unwrap() = body.to_vec();
        let fetched = runtime().block_on(gate.verify(OPAQUE));
        if !near_now(parsed.as_ref(), now_before) {
            assert_eq!(
                fetched.as_ref().map(|p| p.claims()).map_err(|e| e.clone()),
                hooked.as_ref().map(|p| p.claims()).map_err(|e| e.clone()),
                "the end-to-end answer differs from the parser's"
            );
        }
        fetched
    } else {
        hooked
    };
    if debug() {
        eprintln!("introspection: flags {flags:#04x}: {:?}", result.as_ref().map(|p| p.subject()));
    }
    if let Err(e) = &result {
        for grpc in [false, true] {
            let r: http::Response<String> = gate.error_response(e, grpc);
            if !grpc {
                assert_eq!(r.status(), e.status());
            }
        }
    }
    let unavailable = AuthError::Unavailable(Unavailable::Introspection);
    if duplicate_member(body) {
        // Any top-level member twice (`active` or another): not one answer
        // that every reader reads alike. The crate answers 503 (unreadable),
        // or `Inactive` when a single `active` is false; whatever the
        // answer, never an acceptance.
        assert!(
            result.is_err(),
            "an answer naming a member twice accepted: {:?}",
            result.as_ref().map(|p| p.claims())
        );
        return;
    }
    let Some(m) = &parsed else {
        let syntax_ok = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
        if !syntax_ok {
            assert_eq!(result.err(), Some(unavailable), "an answer that is not a JSON object");
        } else if let Ok(p) = &result {
            // JSON syntax, but not representable as a `Map` (a number out
            // of range, a lone surrogate): refusing it either way is fine;
            // accepting it must not lose the answer's members.
            assert_eq!(
                p.claim("active"),
                Some(&Value::Bool(true)),
                "accepted answer whose claims() lost its members: {:?}",
                p.claims()
            );
        }
        return;
    };
    match m.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            assert_eq!(result.err(), Some(AuthError::InvalidToken(InvalidToken::Inactive)));
            return;
        }
        _ => {
            assert_eq!(result.err(), Some(unavailable), "\"active\" missing or not a boolean");
            return;
        }
    }
    let p = match result {
        Ok(p) => p,
        Err(AuthError::InvalidToken(_)) => return,
        // A nesting cap may refuse a deep answer as unreadable.
        Err(AuthError::Unavailable(_)) if deep(m) => return,
        Err(other) => panic!("an active answer gave {other:?}"),
    };
    assert_eq!(p.source(), TokenSource::Introspection);
    check_principal_matches(&p, m);
    match direct {
        Some(Ok(d)) => assert_eq!(d.claims(), p.claims()),
        other => panic!("accepted an answer from_claims refuses: {:?}", other.map(|r| r.err())),
    }
    assert!(p.issuer().is_none_or(|i| i == ISSUER), "foreign issuer accepted");
    if require_aud {
        assert!(!p.audiences().is_empty(), "answer without aud accepted");
    }
    if !p.audiences().is_empty() {
        assert!(p.audiences().iter().any(|a| a == AUDIENCE), "foreign audience accepted");
    }
    if let Some(exp) = p.expires_at() {
        let exp = exp.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(exp + LEEWAY > now_before, "expired answer accepted");
    }
    match m.get("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => assert!(
            t.eq_ignore_ascii_case("bearer")
                || t.eq_ignore_ascii_case("access_token")
                || t == "urn:ietf:params:oauth:token-type:access_token",
            "token_type {t:?} accepted"
        ),
        Some(other) => panic!("token_type {other} accepted"),
    }
    assert!(m.get("cnf").is_none_or(Value::is_null), "sender-constrained answer accepted");
});
