//! `McpScopes` (MCP per-tool scopes) on arbitrary POST bodies: the whole
//! input is the body of a `POST /mcp`, sent through a real `gate.layer()`
//! and the MCP layer to a recording inner service, once with a token that
//! has no scope and once with a token that has every scope the rules name.
//!
//! Rules: `read` needs `a`; `write` needs `b c`; `either` needs `d` or `a`;
//! `public` needs authentication only; unlisted tools need every scope (the
//! default); `tools/list` needs `list`; other methods authentication only.
//! Bodies are bounded at 4096 bytes.
//!
//! Properties: never panics; a body above the bound is 413 for both; a
//! request let through reaches the inner service with the very same bytes;
//! the scopeless token is let through only when an independent reading of
//! the body (serde_json `Value`, plus a check for a repeated `method` or
//! `params`) finds that it needs no scope: every message an object with a
//! string `method` that is `tools/call` of `public` or a method other than
//! `tools/list` and `tools/call`, or a response (`result` / `error`), and a
//! batch not empty; or when serde_json's `Value` refuses the body but its
//! `IgnoredAny` skipping reads it, so that the server behind runs nothing
//! (the layer skips `id`s, arguments and other values that choose nothing
//! without checking their numbers, surrogates, UTF-8 or depth), and, where
//! the body holds invalid UTF-8, the body with each bad sequence replaced by
//! U+FFFD needs nothing either (a `method` spelled with bad bytes then
//! needs a scope) or is refused for something else; otherwise
//! it gets 403 `insufficient_scope`; the token with every scope is always
//! let through.
#![no_main]

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokengate::mcp::{McpRequirement, McpScopes};
use tokengate::{ScopeRequirement, TokenGate};
use tower_layer::Layer;
use tower_service::Service;

const LIMIT: usize = 4096;
const EVERY_SCOPE: &str = "a b c d list";

struct Fixture {
    gate: TokenGate,
    scopes: McpScopes,
    none: String,
    every: String,
}

fn token(scope: Option<&str>) -> String {
    let now = now_secs();
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "fuzz", "client_id": "fuzz",
        "iat": now, "exp": now + 86_400, "jti": "j",
    });
    if let Some(scope) = scope {
        claims["scope"] = json!(scope);
    }
    let header = json!({"alg": "HS256", "kid": "hs", "typ": "at+jwt"});
    sign(
        Signer::Hs256,
        header.to_string().as_bytes(),
        claims.to_string().as_bytes(),
    )
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scopes = McpScopes::new()
            .tool("read", ScopeRequirement::all(["a"]))
            .tool("write", ScopeRequirement::all(["b", "c"]))
            .tool("either", ScopeRequirement::any(["d", "a"]))
            .tool("public", McpRequirement::Authenticated)
            .method("tools/list", ScopeRequirement::all(["list"]))
            .max_body_bytes(LIMIT);
        assert_eq!(
            scopes.strictest_scopes().collect::<Vec<_>>().join(" "),
            EVERY_SCOPE
        );
        Fixture {
            gate: build(builder().audience(AUDIENCE)),
            scopes,
            none: token(None),
            every: token(Some(EVERY_SCOPE)),
        }
    })
}

/// Sends `body` with `token`; the status and what the inner service got.
fn send(token: &str, body: &[u8]) -> (Response<Full<Bytes>>, Option<Bytes>) {
    let f = fixture();
    let seen: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let record = seen.clone();
    let inner = tower_service_fn(move |req: Request<Full<Bytes>>| {
        let record = record.clone();
        async move {
            use http_body_util::BodyExt;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            *record.lock().unwrap() = Some(body);
            Ok::<_, std::convert::Infallible>(Response::new(Full::default()))
        }
    });
    let mut svc = f.gate.layer().layer(f.scopes.layer(inner));
    let req = Request::post("/mcp")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = runtime().block_on(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        svc.call(req).await.unwrap()
    });
    let seen = seen.lock().unwrap().take();
    (response, seen)
}

/// A minimal `service_fn`, so the target needs no `tower` utilities.
fn tower_service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

#[derive(Clone)]
struct ServiceFn<F>(F);

impl<F, Fut, R, E> Service<R> for ServiceFn<F>
where
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, E>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Fut {
        (self.0)(req)
    }
}

/// Whether one message, read as a `Value`, needs no scope.
fn message_needs_nothing(m: &Value) -> bool {
    let Some(m) = m.as_object() else {
        return false;
    };
    match m.get("method") {
        Some(Value::String(method)) => match method.as_str() {
            "tools/call" => m
                .get("params")
                .and_then(|p| p.get("name"))
                .is_some_and(|n| n == "public"),
            "tools/list" => false,
            _ => true,
        },
        Some(_) => false,
        None => m.contains_key("result") || m.contains_key("error"),
    }
}

/// Whether the object `body` names `method` or `params` twice (unescaped).
/// A `Value` keeps only the last; the layer refuses to guess. Other
/// members may repeat: they do not choose what runs.
fn repeats_method_or_params(body: &[u8]) -> bool {
    struct Counts(usize, usize);
    impl<'de> serde::Deserialize<'de> for Counts {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Counts;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Counts, A::Error> {
                    let mut counts = Counts(0, 0);
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        match k.as_str() {
                            "method" => counts.0 += 1,
                            "params" => counts.1 += 1,
                            _ => {}
                        }
                    }
                    Ok(counts)
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Counts>(body).is_ok_and(|Counts(m, p)| m > 1 || p > 1)
}

/// The independent reading: whether `body` needs no scope at all.
fn needs_nothing(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match &value {
        Value::Array(batch) => !batch.is_empty() && batch.iter().all(message_needs_nothing),
        single => !repeats_method_or_params(body) && message_needs_nothing(single),
    }
}

/// `body` with each invalid UTF-8 sequence replaced by `with` (bytes
/// >= 0x80, so the JSON structure around them stays).
fn repair(body: &[u8], with: char) -> String {
    let mut text = String::new();
    for chunk in body.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            text.push(with);
        }
    }
    text
}

/// Whether a message's `method` is spelled with invalid bytes: it then
/// reads differently in two repairs of `body` with different characters. No
/// method the oracle can judge (a server that dropped the bad bytes could
/// run `tools/call`), so it needs a scope.
fn names_a_repaired_method(body: &[u8]) -> bool {
    let methods = |text: String| -> Vec<Option<String>> {
        let method = |m: &Value| m.get("method").and_then(Value::as_str).map(str::to_owned);
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(batch)) => batch.iter().map(method).collect(),
            Ok(single) => vec![method(&single)],
            Err(_) => Vec::new(),
        }
    };
    methods(repair(body, '\u{FFFD}')) != methods(repair(body, '\u{E000}'))
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (none, none_seen) = send(&f.none, data);
    let (every, every_seen) = send(&f.every, data);
    if debug() {
        eprintln!(
            "no scope: {}, every scope: {}",
            none.status(),
            every.status()
        );
    }

    if data.len() > LIMIT {
        assert_eq!(none.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(every.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(none_seen.is_none() && every_seen.is_none());
        return;
    }

    assert_eq!(every.status(), StatusCode::OK, "every scope was refused");
    assert_eq!(
        every_seen.as_deref(),
        Some(data),
        "the body changed on the way"
    );

    match none.status() {
        StatusCode::OK => {
            assert_eq!(
                none_seen.as_deref(),
                Some(data),
                "the body changed on the way"
            );
            // A body serde_json refuses in a value the layer skips (its
            // structure is sound: serde_json's own skipping reads it) runs
            // nothing on the server, whatever it names. A body whose
            // structure is broken is never let through. Invalid UTF-8 is
            // no excuse by itself: with each bad sequence read as U+FFFD
            // (bytes >= 0x80, so the structure stays) the body must still
            // need nothing, so a `method` or tool name spelled with bad
            // bytes is judged as the misspelling it is.
            let skipped_value_refused = serde_json::from_slice::<Value>(data).is_err()
                && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok()
                && (std::str::from_utf8(data).is_ok() || {
                    let repaired = repair(data, '\u{FFFD}');
                    (needs_nothing(repaired.as_bytes()) && !names_a_repaired_method(data))
                        || serde_json::from_str::<Value>(&repaired).is_err()
                });
            assert!(
                needs_nothing(data) || skipped_value_refused,
                "a scopeless token was let through"
            );
        }
        StatusCode::FORBIDDEN => {
            assert!(none_seen.is_none());
            let challenge = none.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains("error=\"insufficient_scope\""),
                "{challenge}"
            );
            assert!(challenge.contains("scope=\""), "{challenge}");
        }
        other => panic!("no scope: unexpected {other}"),
    }
});
