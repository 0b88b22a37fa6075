//! What DPoP costs a request whose access token the verified-token cache
//! already holds, against its floor, side by side in one run:
//!
//! - the floor: one raw aws-lc-rs verification of the proof's signature
//!   (`UnparsedPublicKey::verify`, the key parsed from its bytes, as every
//!   proof brings its own key), plus the cache-hit bearer request measured
//!   in the same round;
//! - a DPoP request through the layer: the cached token, then a fresh proof
//!   (parsed, key imported, signature, claims, thumbprint, replay check in
//!   memory). Target: at most 1.15× the floor;
//! - the in-memory replay check alone;
//! - the Redis replay check over loopback (p50/p99 of single `SET NX PX`
//!   round trips), when `redis-server` is installed.
//!
//! For ES256 and EdDSA proofs. Every proof is made before the clock
//! starts, each with its own `jti`. `cargo bench --bench dpop --features redis`
//! (about a minute). Rounds and time per measurement:
//! `TOKENGATE_BENCH_ROUNDS` (default 3) and `TOKENGATE_BENCH_SECS` (default 1).

mod common;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{bearer, call, env_or, median, median_ns, time_requests};
use http::{Request, Response, StatusCode};
use tokengate::dpop::{MemoryReplayStore, ReplayCheck, ReplayStore};
use tokengate::testing::{DpopKey, TestIssuer};
use tokengate::{Algorithm, JwkSet, TokenGate};
use tower::{Layer, service_fn};

const URL: &str = "http://bench.tokengate.test/items";

fn inner(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

fn dpop_request(token: &str, proof: &str) -> Request<()> {
    Request::get("/items")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(())
        .unwrap()
}

/// The raw check of one proof's signature: the public key from its bytes,
/// then the verification.
fn raw_verify(alg: Algorithm, key: &serde_json::Value, proof: &str) -> bool {
    let (input, sig) = proof.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let b = |m: &str| URL_SAFE_NO_PAD.decode(key[m].as_str().unwrap()).unwrap();
    match alg {
        Algorithm::ES256 => {
            let mut point = vec![4u8];
            point.extend(b("x"));
            point.extend(b("y"));
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        _ => UnparsedPublicKey::new(&signature::ED25519, b("x"))
            .verify(input.as_bytes(), &sig)
            .is_ok(),
    }
}

fn main() {
    let rounds: usize = env_or("TOKENGATE_BENCH_ROUNDS", 3);
    let secs: f64 = env_or("TOKENGATE_BENCH_SECS", 1.0);
    let (mut c, dir) = common::criterion("dpop", secs);
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
                .public_url("http://bench.tokengate.test")
                // Proofs are made before the rounds start: keep them valid.
                .dpop_proof_window(Duration::from_secs(3600), Duration::from_secs(5))
                .build(),
        )
        .unwrap();
    let mut svc = gate.layer().layer(service_fn(inner));
    let algs = [("es256", Algorithm::ES256), ("eddsa", Algorithm::EdDSA)];
    let pool: usize = env_or("TOKENGATE_BENCH_PROOFS", 150_000);
    eprintln!("making {pool} proofs per algorithm...");
    let fixtures: Vec<_> = algs
        .iter()
        .map(|&(name, alg)| {
            let key = DpopKey::new(alg);
            let token = issuer.token().key(&kid).dpop_bound(&key).sign();
            let proofs: Vec<String> = (0..pool)
                .map(|_| key.proof("GET", URL).token(&token).sign())
                .collect();
            (name, alg, key, token, proofs, std::cell::Cell::new(0usize))
        })
        .collect();
    let plain = issuer.token().key(&kid).sign();

    for round in 1..=rounds {
        // A fresh store each round, big enough never to fill: a full store
        // sweeps every shard before it refuses, which is not what is measured.
        let store = MemoryReplayStore::new(20_000_000);
        let mut g = c.benchmark_group(format!("round{round}"));
        g.bench_function("bearer_cache_hit", |b| {
            time_requests(b, &mut svc, || bearer(&plain), StatusCode::OK)
        });
        for (name, alg, key, token, proofs, next) in &fixtures {
            let jwk = key.jwk();
            g.bench_function(format!("raw_verify_{name}"), |b| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % proofs.len();
                    black_box(raw_verify(*alg, &jwk, &proofs[i]))
                })
            });
            g.bench_function(format!("dpop_request_{name}"), |b| {
                b.iter_custom(|iters| {
                    let n = iters as usize;
                    let first = next.get();
                    let requests: Vec<_> = (0..n)
                        .map(|k| dpop_request(token, &proofs[(first + k) % proofs.len()]))
                        .collect();
                    next.set(first + n);
                    let mut responses = Vec::with_capacity(n);
                    let start = Instant::now();
                    for req in requests {
                        responses.push(call(&mut svc, req));
                    }
                    let elapsed = start.elapsed();
                    assert!(
                        next.get() > proofs.len()
                            || responses.iter().all(|r| r.status() == StatusCode::OK),
                        "a DPoP request was refused"
                    );
                    black_box(&responses);
                    elapsed
                })
            });
        }
        let mut k = 0u64;
        g.bench_function("memory_replay_check", |b| {
            b.iter(|| {
                // Keys spread like SHA-256 outputs (splitmix64 of a
                // counter), over all shards as real ones are.
                k = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = k;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&z.to_le_bytes());
                key[8..16].copy_from_slice(&z.rotate_left(29).to_le_bytes());
                black_box(matches!(
                    store.first_use(key, Duration::from_secs(61)),
                    ReplayCheck::Done(Ok(true))
                ))
            })
        });
        g.finish();
    }
    c.final_summary();
    if fixtures.iter().any(|f| f.5.get() > f.4.len()) {
        println!(
            "\nnote: the proof pool ({pool}) was used more than once: later DPoP requests were \
             refused as replays; raise TOKENGATE_BENCH_PROOFS"
        );
    }

    let per_round = |id: &str| -> Vec<f64> {
        (1..=rounds)
            .filter_map(|r| median_ns(&dir, r, id))
            .collect()
    };
    let hit = per_round("bearer_cache_hit");
    println!();
    println!(
        "DPoP on a verified-token cache hit: median ns over {rounds} round(s); ratios within each round, median of rounds"
    );
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>14} {:>8}  met (<= 1.15x)",
        "proof", "raw verify", "cache hit", "floor", "DPoP request", "ratio"
    );
    for (name, ..) in &fixtures {
        let raw = per_round(&format!("raw_verify_{name}"));
        let req = per_round(&format!("dpop_request_{name}"));
        if raw.is_empty() || req.is_empty() || hit.is_empty() {
            continue;
        }
        let ratios: Vec<f64> = raw
            .iter()
            .zip(&hit)
            .zip(&req)
            .map(|((r, h), q)| q / (r + h))
            .collect();
        let ratio = median(ratios);
        println!(
            "{:<8} {:>12.0} {:>12.0} {:>12.0} {:>14.0} {:>7.3}x  {}",
            name,
            median(raw.clone()),
            median(hit.clone()),
            median(raw.iter().zip(&hit).map(|(r, h)| r + h).collect()),
            median(req),
            ratio,
            if ratio <= 1.15 { "yes" } else { "NO" }
        );
    }
    let memory = per_round("memory_replay_check");
    if !memory.is_empty() {
        println!("in-memory replay check: {:.0} ns", median(memory));
    }
    redis_round_trips(&rt);
}

/// p50/p99 of the Redis replay check over loopback, when `redis-server`
/// is installed (started here on a free port, stopped after).
#[cfg(feature = "redis")]
fn redis_round_trips(rt: &tokio::runtime::Runtime) {
    use std::process::{Command, Stdio};
    let Some(binary) = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        println!("Redis replay check: redis-server not installed, not measured");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("redis://127.0.0.1:{port}/0");
    let store = rt.block_on(async {
        for _ in 0..100 {
            if let Ok(store) = tokengate::dpop::RedisReplayStore::connect(&url).await {
                return Some(store);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    });
    let Some(store) = store else {
        let _ = child.kill();
        let _ = child.wait();
        println!("Redis replay check: could not connect, not measured");
        return;
    };
    let mut times: Vec<Duration> = rt.block_on(async {
        let mut times = Vec::with_capacity(20_000);
        for i in 0..20_000u64 {
            let mut key = [1u8; 32];
            key[..8].copy_from_slice(&i.to_le_bytes());
            let start = Instant::now();
            let answer = match store.first_use(key, Duration::from_secs(61)) {
                ReplayCheck::Done(a) => a,
                ReplayCheck::Pending(f) => f.await,
            };
            times.push(start.elapsed());
            assert_eq!(answer, Ok(true));
        }
        times
    });
    let _ = child.kill();
    let _ = child.wait();
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "Redis replay check over loopback (20,000 SET NX PX): p50 {:.1} µs, p99 {:.1} µs",
        at(0.50).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}

#[cfg(not(feature = "redis"))]
fn redis_round_trips(_: &tokio::runtime::Runtime) {
    println!("Redis replay check: built without the `redis` feature, not measured");
}
