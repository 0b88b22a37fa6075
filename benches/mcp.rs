//! The cost of MCP per-tool scopes: a cache-hit request (one repeated ES256
//! token) through `gate.layer()` alone, and through `gate.layer()` +
//! `McpScopes` with a 2 KiB `tools/call` body, side by side in one run
//! (interleaved rounds, so load on the machine hits both alike). Prints ns
//! per request for each and the difference (target: under 2 µs on top).
//!
//! Both services are called directly, polled once with a no-op waker: a
//! cache hit and an in-memory body need no I/O, so this measures the layers,
//! not sockets. Each request is built the same way for both (headers and a
//! `Full<Bytes>` body, a reference-counted clone), so building it cancels out
//! of the difference.
//!
//! Then the same two services are measured pair by pair: 2,000 pairs of
//! 64-request batches, one through each in alternating order, the added
//! cost taken within each pair (`TOKENGATE_BENCH_PAIRS`). On a machine
//! whose speed drifts from second to second, this is the figure to read.
//!
//! Two floors are measured beside them: serde_json reading the same body
//! into `IgnoredAny` and into a `Value` (what the JSON-RPC server behind
//! the layer does with it anyway).
//!
//! `cargo bench --bench mcp --all-features`. `TOKENGATE_BENCH_ROUNDS`
//! (default 3), `TOKENGATE_BENCH_SECS` per benchmark (default 1).

mod common;

use common::{env_or, median, median_ns, time_requests};

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tokengate::mcp::McpScopes;
use tokengate::testing::TestIssuer;
use tokengate::{Algorithm, JwkSet, ScopeRequirement, TokenGate};
use tower::Layer;

type Body = Full<Bytes>;

fn ok(_: Request<Body>) -> std::future::Ready<Result<Response<Body>, Infallible>> {
    std::future::ready(Ok(Response::new(Body::default())))
}

/// A `tools/call` of about the size MCP clients send for a tool with a
/// few arguments: 2048 bytes exactly.
fn body_2k() -> Bytes {
    let tags: Vec<String> = (0..40).map(|i| format!("tag-{i}")).collect();
    let mut text = String::new();
    let make = |text: &str| {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": 42,
            "method": "tools/call",
            "params": {
                "_meta": {"progressToken": "p-1"},
                "name": "search",
                "arguments": {
                    "query": "scope challenges in \"MCP\" servers",
                    "limit": 25,
                    "score": 0.75,
                    "tags": tags,
                    "filters": {"from": "2026-01-01", "to": null, "exact": false},
                    "text": text,
                }
            }
        })
        .to_string()
    };
    while make(&text).len() < 2048 {
        text.push_str(if text.len().is_multiple_of(7) {
            "é"
        } else {
            "a"
        });
    }
    let mut body = make(&text).into_bytes();
    body.truncate(2048);
    // Trimming may cut the JSON: rebuild with a shorter text, pad with spaces.
    while serde_json::from_slice::<Value>(&body).is_err() {
        text.pop();
        body = make(&text).into_bytes();
        body.resize(2048, b' ');
    }
    assert_eq!(body.len(), 2048);
    body.into()
}

fn main() {
    let rounds: usize = env_or("TOKENGATE_BENCH_ROUNDS", 3);
    let secs: f64 = env_or("TOKENGATE_BENCH_SECS", 1.0);
    let (mut c, dir) = common::criterion("mcp", secs);

    let rt = common::runtime(1);
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let kid = issuer.add_key(Algorithm::ES256);
    let jwks: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
    let gate = rt
        .block_on(
            TokenGate::builder()
                .issuer(issuer.issuer())
                .audience(issuer.audience())
                .static_keys(jwks)
                .build(),
        )
        .unwrap();
    let token = common::tokens(&issuer, &kid, "docs:read", 1).remove(0);
    let authorization = format!("Bearer {token}");
    let body = body_2k();
    let make = || {
        Request::post("/mcp")
            .header("authorization", authorization.as_str())
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Full::new(body.clone()))
            .unwrap()
    };
    let scopes = McpScopes::new()
        .tool("search", ScopeRequirement::all(["docs:read"]))
        .tool("delete", ScopeRequirement::all(["docs:write", "admin"]))
        .tool("fetch", ScopeRequirement::any(["docs:read", "web"]))
        .method("resources/read", ScopeRequirement::all(["docs:read"]));
    let inner = || tower::service_fn(ok as fn(_) -> _);
    let mut alone = gate.layer().layer(inner());
    let mut with_mcp = gate.layer().layer(scopes.layer(inner()));

    for round in 1..=rounds {
        let mut g = c.benchmark_group(format!("round{round}"));
        g.bench_function("gate_alone", |b| {
            time_requests(b, &mut alone, make, StatusCode::OK)
        });
        g.bench_function("gate_plus_mcp", |b| {
            time_requests(b, &mut with_mcp, make, StatusCode::OK)
        });
        // Floors: what reading the same body costs serde_json alone, with
        // nothing kept (`IgnoredAny`) and as the `Value` a JSON-RPC server
        // such as rmcp parses it into behind us anyway.
        g.bench_function("serde_ignored_any", |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap())
        });
        g.bench_function("serde_value", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&body)).unwrap())
        });
        g.finish();
    }
    c.final_summary();

    // Paired: a batch through each in turn, many times, the difference
    // taken batch pair by batch pair (robust to load that comes and goes).
    let pairs: usize = env_or("TOKENGATE_BENCH_PAIRS", 2000);
    let (pa, pm, pdiff) = common::paired_ns(&mut alone, &mut with_mcp, make, pairs, 64);

    let values = |id: &str| -> Vec<f64> {
        (1..=rounds)
            .filter_map(|r| median_ns(&dir, r, id))
            .collect()
    };
    let (a, m) = (values("gate_alone"), values("gate_plus_mcp"));
    if a.is_empty() || a.len() != m.len() {
        return; // filtered by a command-line argument
    }
    let diffs: Vec<f64> = m.iter().zip(&a).map(|(m, a)| m - a).collect();
    let added = median(diffs);
    println!();
    println!(
        "MCP per-tool scopes, cache-hit ES256 token, 2048-byte tools/call body; median of {rounds} round(s)"
    );
    println!("{:<34} {:>12}", "service", "ns/request");
    println!("{:<34} {:>12.1}", "gate.layer() alone", median(a));
    println!("{:<34} {:>12.1}", "gate.layer() + McpScopes", median(m));
    println!(
        "{:<34} {:>12.1}   (target < 2000 ns: {})",
        "added by McpScopes",
        added,
        if added < 2000.0 { "met" } else { "NOT met" }
    );
    println!("paired, {pairs} pairs of 64-request batches, medians:");
    println!("{:<34} {:>12.1}", "  gate.layer() alone", pa);
    println!("{:<34} {:>12.1}", "  gate.layer() + McpScopes", pm);
    println!(
        "{:<34} {:>12.1}   (target < 2000 ns: {})",
        "  added by McpScopes",
        pdiff,
        if pdiff < 2000.0 { "met" } else { "NOT met" }
    );
    let (ignored, value) = (values("serde_ignored_any"), values("serde_value"));
    if !ignored.is_empty() && !value.is_empty() {
        let (ignored, value) = (median(ignored), median(value));
        println!("{:<34} {:>12.1}", "floor: serde_json IgnoredAny", ignored);
        println!("{:<34} {:>12.1}", "floor: serde_json Value", value);
        println!(
            "{:<34} {:>12.2}   (the inner server's own parse of the body)",
            "added / Value parse",
            added / value
        );
    }
}
