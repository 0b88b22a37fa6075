//! The request path, measured against the floor every Rust peer stands on.
//!
//! In one run, and repeated in rounds so that machine drift cannot bias the
//! ratios (each ratio is taken within a round, then the median of the
//! rounds is reported):
//!
//! - the floor: `jsonwebtoken::decode` with a prepared `DecodingKey` and
//!   `Validation`, for RS256, ES256 and EdDSA;
//! - our layer on a first-seen token (a verified-token cache miss: parse,
//!   signature, claims, principal, cache insert), per algorithm;
//! - our layer on a repeated token (a cache hit);
//! - rejections: no token, garbage, a bad signature;
//! - an introspection cache hit (an opaque token answered before);
//! - the inner service alone (the no-auth baseline).
//!
//! Every layer measurement drives the real `TokenGateService` around a
//! trivial inner service, polling its future once with a no-op waker:
//! nothing here needs I/O, and each path is checked to answer the expected
//! status before it is timed. Requests are built before the clock starts and
//! responses dropped after it stops, so what is timed is the layer.
//!
//! `cargo bench --bench verify` (about two minutes). Rounds and time per
//! measurement: `TOKENGATE_BENCH_ROUNDS` (default 3) and
//! `TOKENGATE_BENCH_SECS` (default 1).

mod common;

use common::{bearer, call, env_or, median, median_ns, time_requests};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};
use tokengate::testing::TestIssuer;
use tokengate::{Algorithm, JwkSet, TokenGate, TokenGateLayer};
use tower::util::ServiceFn;
use tower::{Layer, service_fn};

type Inner = ServiceFn<fn(Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>>>;

fn inner_service() -> Inner {
    fn ok(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
        std::future::ready(Ok(Response::new(())))
    }
    service_fn(ok as fn(_) -> _)
}

fn no_token() -> Request<()> {
    Request::get("/items").body(()).unwrap()
}

/// One signing algorithm's fixtures: a pool of distinct tokens, the public
/// key, and the gate configuration.
struct Alg {
    name: &'static str,
    alg: jsonwebtoken::Algorithm,
    tokens: Vec<String>,
    decoding_key: DecodingKey,
    jwks: JwkSet,
}

impl Alg {
    fn new(issuer: &TestIssuer, name: &'static str, ours: Algorithm, pool: usize) -> Alg {
        let kid = issuer.add_key(ours);
        let jwks: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
        let jwk = jwks.find(&kid).unwrap().clone();
        let tokens = common::tokens(issuer, &kid, "items:read items:write", pool);
        Alg {
            name,
            alg: name.parse().unwrap(),
            tokens,
            decoding_key: DecodingKey::from_jwk(&jwk).unwrap(),
            jwks: JwkSet { keys: vec![jwk] },
        }
    }

    fn validation(&self, issuer: &TestIssuer) -> Validation {
        let mut v = Validation::new(self.alg);
        v.set_issuer(&[issuer.issuer()]);
        v.set_audience(&[issuer.audience()]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    issuer: TestIssuer,
    algs: Vec<Alg>,
    opaque: String,
    introspecting: TokenGate,
}

impl Fixture {
    fn new(pool: usize) -> Fixture {
        let rt = common::runtime(1);
        let issuer = rt.block_on(TestIssuer::start()).unwrap();
        let algs = vec![
            Alg::new(&issuer, "RS256", Algorithm::RS256, pool),
            Alg::new(&issuer, "ES256", Algorithm::ES256, pool),
            Alg::new(&issuer, "EdDSA", Algorithm::EdDSA, pool),
        ];
        let opaque = issuer.token().scope("items:read").opaque();
        let introspecting = common::introspecting_gate(&rt, &issuer);
        // Warm the introspection cache: the one upstream call.
        rt.block_on(introspecting.verify(&opaque)).unwrap();
        Fixture {
            rt,
            issuer,
            algs,
            opaque,
            introspecting,
        }
    }

    /// A gate that verifies `alg`'s tokens offline, with a fresh (empty)
    /// verified-token cache.
    fn gate(&self, alg: &Alg) -> TokenGate {
        self.rt
            .block_on(
                TokenGate::builder()
                    .issuer(self.issuer.issuer())
                    .audience(self.issuer.audience())
                    .static_keys(alg.jwks.clone())
                    .build(),
            )
            .unwrap()
    }

    fn service(&self, gate: &TokenGate) -> <TokenGateLayer as Layer<Inner>>::Service {
        gate.layer().layer(inner_service())
    }
}

/// The floor: `jsonwebtoken::decode` of each token of the pool in turn.
fn floor(b: &mut Bencher, f: &Fixture, alg: &Alg) {
    let validation = alg.validation(&f.issuer);
    let decode =
        |t: &String| jsonwebtoken::decode::<Map<String, Value>>(t, &alg.decoding_key, &validation);
    assert!(decode(&alg.tokens[0]).is_ok());
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let n = left.min(alg.tokens.len());
            let mut out = Vec::with_capacity(n);
            let start = Instant::now();
            for t in &alg.tokens[..n] {
                out.push(decode(t));
            }
            total += start.elapsed();
            black_box(&out);
            left -= n;
        }
        total
    });
}

/// Our layer on tokens it has never seen: each chunk of the pool goes
/// through a new gate, so every request is a verified-token cache miss.
fn first_seen(b: &mut Bencher, f: &Fixture, alg: &Alg) {
    let mut svc = f.service(&f.gate(alg));
    assert_eq!(
        call(&mut svc, bearer(&alg.tokens[0])).status(),
        StatusCode::OK
    );
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let n = left.min(alg.tokens.len());
            let mut svc = f.service(&f.gate(alg));
            let requests: Vec<_> = alg.tokens[..n].iter().map(|t| bearer(t)).collect();
            let mut responses = Vec::with_capacity(n);
            let start = Instant::now();
            for req in requests {
                responses.push(call(&mut svc, req));
            }
            total += start.elapsed();
            debug_assert!(responses.iter().all(|r| r.status() == StatusCode::OK));
            black_box(&responses);
            left -= n;
        }
        total
    });
}

fn bad_signature(token: &str) -> String {
    let (rest, sig) = token.rsplit_once('.').unwrap();
    // Flip one character of the signature (not the last, whose low bits
    // base64url may ignore).
    let mut sig = sig.as_bytes().to_vec();
    sig[4] = if sig[4] == b'A' { b'B' } else { b'A' };
    format!("{rest}.{}", String::from_utf8(sig).unwrap())
}

const BENCHES: &[&str] = &[
    "floor_rs256",
    "floor_es256",
    "floor_eddsa",
    "first_seen_rs256",
    "first_seen_es256",
    "first_seen_eddsa",
    "repeated_token",
    "no_token",
    "garbage_token",
    "bad_signature_rs256",
    "introspection_hit",
    "no_auth_baseline",
];

fn run_round(c: &mut Criterion, f: &Fixture, round: usize) {
    let mut g = c.benchmark_group(format!("round{round}"));
    for alg in &f.algs {
        let id = alg.name.to_ascii_lowercase();
        g.bench_function(format!("floor_{id}"), |b| floor(b, f, alg));
        g.bench_function(format!("first_seen_{id}"), |b| first_seen(b, f, alg));
    }
    let rs = &f.algs[0];
    let gate = f.gate(rs);
    let mut svc = f.service(&gate);
    let token = rs.tokens[0].clone();
    g.bench_function("repeated_token", |b| {
        time_requests(b, &mut svc, || bearer(&token), StatusCode::OK)
    });
    g.bench_function("no_token", |b| {
        time_requests(b, &mut svc, no_token, StatusCode::UNAUTHORIZED)
    });
    let garbage = "eyJnYXJiYWdl.bm90IGEgand0.c2lnbmF0dXJl";
    g.bench_function("garbage_token", |b| {
        time_requests(b, &mut svc, || bearer(garbage), StatusCode::UNAUTHORIZED)
    });
    let forged = bad_signature(&rs.tokens[1]);
    g.bench_function("bad_signature_rs256", |b| {
        time_requests(b, &mut svc, || bearer(&forged), StatusCode::UNAUTHORIZED)
    });
    let mut introspecting = f.service(&f.introspecting);
    g.bench_function("introspection_hit", |b| {
        time_requests(b, &mut introspecting, || bearer(&f.opaque), StatusCode::OK)
    });
    let mut bare = inner_service();
    g.bench_function("no_auth_baseline", |b| {
        time_requests(b, &mut bare, || bearer(&token), StatusCode::OK)
    });
    g.finish();
}

/// Which floor a benchmark is compared with, and its target.
fn target(id: &str) -> (&'static str, &'static str, Option<(f64, bool)>) {
    // (floor id, target text, (limit, limit is a ratio?))
    match id {
        "first_seen_rs256" => ("floor_rs256", "<= 1.00x floor", Some((1.0, true))),
        "first_seen_es256" => ("floor_es256", "<= 1.00x floor", Some((1.0, true))),
        "first_seen_eddsa" => ("floor_eddsa", "<= 1.00x floor", Some((1.0, true))),
        "repeated_token" => ("floor_rs256", "<= 2000 ns, <= 0.10x", Some((2000.0, false))),
        "no_token" => ("floor_rs256", "<= 200 ns", Some((200.0, false))),
        "garbage_token" => ("floor_rs256", "<= 300 ns", Some((300.0, false))),
        "introspection_hit" => ("floor_rs256", "<= 2000 ns", Some((2000.0, false))),
        "floor_es256" => ("floor_es256", "", None),
        "floor_eddsa" => ("floor_eddsa", "", None),
        _ => ("floor_rs256", "", None),
    }
}

fn report(dir: &Path, rounds: usize) {
    let mut per_round: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for id in BENCHES {
        for r in 1..=rounds {
            if let Some(ns) = median_ns(dir, r, id) {
                per_round.entry(id).or_default().push(ns);
            }
        }
    }
    println!();
    println!(
        "tokengate request path: median ns per request over {rounds} round(s); ratios within each round, median of rounds"
    );
    println!(
        "{:<22} {:>11} {:>14} {:>10}  {:<22} met",
        "benchmark", "ns/request", "vs its floor", "vs RS256", "target"
    );
    for id in BENCHES {
        let Some(values) = per_round.get(id) else {
            continue;
        };
        let (floor_id, text, limit) = target(id);
        let ratio_to = |f_id: &str| {
            let floors = per_round.get(f_id)?;
            let ratios = values.iter().zip(floors).map(|(v, f)| v / f).collect();
            Some(median(ratios))
        };
        let ns = median(values.clone());
        let own = ratio_to(floor_id);
        let rs = ratio_to("floor_rs256");
        let met = match limit {
            Some((l, true)) => own.map_or("?", |r| if r <= l { "yes" } else { "NO" }),
            Some((l, false)) => {
                let hit_ok = *id != "repeated_token" || rs.is_some_and(|r| r <= 0.10);
                if ns <= l && hit_ok { "yes" } else { "NO" }
            }
            None => "",
        };
        let fmt = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.3}x"));
        println!(
            "{:<22} {:>11.1} {:>14} {:>10}  {:<22} {}",
            id,
            ns,
            fmt(own),
            fmt(rs),
            text,
            met
        );
    }
}

fn main() {
    let rounds: usize = env_or("TOKENGATE_BENCH_ROUNDS", 3);
    let secs: f64 = env_or("TOKENGATE_BENCH_SECS", 1.0);
    let (mut c, dir) = common::criterion("verify", secs);
    eprintln!("minting token pools...");
    let fixture = Fixture::new(2_000);
    for round in 1..=rounds {
        run_round(&mut c, &fixture, round);
    }
    c.final_summary();
    report(&dir, rounds);
}
