//! DPoP proofs (RFC 9449 §4.3) through the layer: a DPoP-bound access token
//! (ES256, `cnf.jkt` the fixed Ed25519 key's thumbprint) presented with
//! `Authorization: DPoP` and a `DPoP` header made from the input.
//!
//! Input: one flag byte, then bytes. Flag bit 0 clear: the bytes are the
//! proof's claims, signed by the bound key under a valid header (so the
//! fuzzer reaches every claim rule past the signature), with the text
//! `"NOW"` replaced by the current time in seconds and `"ATH"` by the
//! token's hash, so that corpus entries stay valid from run to run; set:
//! the bytes are the whole `DPoP` header value, as sent.
//!
//! Checks, besides "never panics": every answer is 200, 400, or 401 with a
//! `DPoP` challenge whose `error` is `invalid_dpop_proof` and whose
//! description is one of the fixed texts; never a 5xx (the replay store is
//! in memory). A 200 only for claims that meet §4.3 by an independent
//! reading: a JSON object naming no member twice, `jti` a string of 1 to
//! 256 bytes, `htm` `GET`, `htu` the request's URL by RFC 3986 §6.2 (query and fragment
//! aside), `iat` an integer within 60 s before and 5 s after now, `ath` the
//! token's SHA-256; and never twice for the same claims (a replay).
#![no_main]

mod common;

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::signature::KeyPair as _;
use common::*;
use http::{HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokengate::TokenGate;
use tower_layer::Layer;
use tower_service::Service;


const DESCRIPTIONS: [&str; 14] = [
    "the DPoP proof is missing",
    "the DPoP proof is too long",
    "the DPoP proof is malformed",
    "the DPoP proof is not of type dpop+jwt",
    "the DPoP proof's algorithm is not accepted",
    "the DPoP proof's key is not a usable public key",
    "the DPoP proof's signature is invalid",
    "the DPoP proof lacks a required claim",
    "the DPoP proof is for another method",
    "the DPoP proof is for another URL",
    "the DPoP proof is too old or from the future",
    "the DPoP proof is for another access token",
    "the DPoP proof's key is not the one the token is bound to",
    "the DPoP proof was already used",
];

struct Fixture {
    gate: TokenGate,
    token: String,
    header: Vec<u8>,
    ath: String,
    accepted: Mutex<HashSet<Vec<u8>>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(keys().ed.public_key().as_ref())});
        let thumbprint = {
            let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, jwk["x"].as_str().unwrap());
            b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        };
        // Deterministic (EdDSA, a fixed `exp`), so that `ath` is the same
        // in every run and a corpus entry that reached acceptance still does.
        let claims = serde_json::json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "fuzz", "exp": 4_102_444_800u64,
            "cnf": {"jkt": thumbprint},
        });
        let token = sign(
            Signer::EdDsa,
            br#"{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}"#,
            claims.to_string().as_bytes(),
        );
        let header = serde_json::to_vec(&serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk})).unwrap();
        let ath = b64(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        Fixture {
            gate: build(builder().audience(AUDIENCE).public_url("https://api.example")),
            token,
            header,
            ath,
            accepted: Mutex::new(HashSet::new()),
        }
    })
}

/// `rest` with `"NOW"` and `"ATH"` filled in.
fn fill(rest: &[u8], f: &Fixture) -> Vec<u8> {
    let text = String::from_utf8_lossy(rest);
    if !text.contains("\"NOW\"") && !text.contains("\"ATH\"") {
        return rest.to_vec();
    }
    // Only valid UTF-8 is rewritten: the rest is left as the fuzzer made it.
    let Ok(text) = std::str::from_utf8(rest) else {
        return rest.to_vec();
    };
    text.replace("\"NOW\"", &now_secs().to_string())
        .replace("\"ATH\"", &format!("\"{}\"", f.ath))
        .into_bytes()
}

/// Whether `claims` meet §4.3 for this request, read independently.
fn meets_the_rules(claims: &[u8], f: &Fixture) -> bool {
    if duplicate_member(claims) {
        return false;
    }
    let Ok(Value::Object(c)) = serde_json::from_slice::<Value>(claims) else {
        return false;
    };
    let now = now_secs();
    let jti_ok = c
        .get("jti")
        .and_then(Value::as_str)
        .is_some_and(|j| !j.is_empty() && j.len() <= 256);
    let htm_ok = c.get("htm").and_then(Value::as_str) == Some("GET");
    let htu_ok = c.get("htu").and_then(Value::as_str).is_some_and(same_as_url);
    let iat_ok = c
        .get("iat")
        .and_then(Value::as_u64)
        .is_some_and(|iat| iat <= now + 6 && iat + 61 >= now);
    let ath_ok = c.get("ath").and_then(Value::as_str) == Some(f.ath.as_str());
    jti_ok && htm_ok && htu_ok && iat_ok && ath_ok
}

/// Whether `htu` is the request's URL, `https://api.example/items`,
/// under RFC 3986 §6.2 (query and
/// fragment ignored): scheme and host in any case, the default port
/// written, empty or with leading zeros, dot segments (`%2e` is a dot)
/// removed; nothing else is read as equal. Written apart from the crate's
/// reading, which follows the WHATWG parser after a check of its own.
fn same_as_url(htu: &str) -> bool {
    let u = htu.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = u.split_once(':') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.is_empty() || (p.bytes().all(|b| b.is_ascii_digit()) && p.trim_start_matches('0') == "443")
    });
    let path = path.replace("%2e", ".").replace("%2E", ".");
    scheme.eq_ignore_ascii_case("https")
        && host.eq_ignore_ascii_case("api.example")
        && port_ok
        && remove_dot_segments(&path) == "/items"
        && !htu.bytes().any(|b| b <= b' ' || b >= 0x7f)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(mut input: &str) -> String {
    let mut out = String::new();
    let pop = |out: &mut String| out.truncate(out.rfind('/').unwrap_or(0));
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest;
        } else if input.starts_with("/./") || input == "/." {
            input = if input == "/." { "/" } else { &input[2..] };
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            pop(&mut out);
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

/// The inner service: 200 for whatever reaches it.
#[derive(Clone)]
struct Ok200;

impl Service<Request<()>> for Ok200 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        std::future::ready(Ok(Response::new(())))
    }
}

fn call(f: &Fixture, proof: HeaderValue) -> Response<()> {
    let mut svc = f.gate.layer().layer(Ok200);
    let request = Request::get("/items")
        .header("authorization", format!("DPoP {}", f.token))
        .header("dpop", proof)
        .body(())
        .unwrap();
    runtime().block_on(async move { svc.call(request).await.unwrap() })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let filled;
    let (proof, claims) = if flag & 1 == 0 {
        filled = fill(rest, f);
        (sign(Signer::EdDsa, &f.header, &filled).into_bytes(), Some(&filled[..]))
    } else {
        (rest.to_vec(), None)
    };
    let Ok(value) = HeaderValue::from_bytes(&proof) else {
        return;
    };
    let response = call(f, value);
    let status = response.status();
    match status {
        StatusCode::OK => {
            let claims = claims.expect("a 200 for bytes nobody signed");
            assert!(meets_the_rules(claims, f), "accepted: {}", String::from_utf8_lossy(claims));
            assert!(
                f.accepted.lock().unwrap().insert(claims.to_vec()),
                "the same proof accepted twice"
            );
        }
        StatusCode::BAD_REQUEST => {}
        StatusCode::UNAUTHORIZED => {
            let challenges: Vec<_> = response.headers().get_all("www-authenticate").iter().collect();
            assert_eq!(challenges.len(), 1);
            let c = challenges[0].to_str().unwrap();
            assert!(c.starts_with("DPoP algs="), "{c}");
            assert!(c.contains("error=\"invalid_dpop_proof\""), "{c}");
            assert!(
                DESCRIPTIONS.iter().any(|d| c.contains(&format!("error_description=\"{d}\""))),
                "{c}"
            );
        }
        other => panic!("status {other}"),
    }
    if debug() {
        eprintln!("{status}");
    }
});
