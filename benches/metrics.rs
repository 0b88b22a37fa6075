//! What the `metrics` feature costs a request, with a real recorder.
//!
//! Two gates with the same configuration, side by side in one run: one
//! built with no recorder installed (its handles are the facade's no-ops),
//! one built under the Prometheus exporter's recorder (what most services
//! install), so every request counts into real atomics. Each is measured on
//! the request paths that never wait: a repeated token (the verified-token
//! cache hit, one request counter and one cache-lookup counter), a refusal
//! of garbage (a request counter found by its reason), and an
//! introspection cache hit. Rounds alternate the two gates, the difference
//! is taken within each round, and the median of the rounds is reported
//! with the target: at most 60 ns per request on the cache-hit path.
//!
//! The two counter increments the cache-hit path adds are also timed
//! alone, on the same recorder: the added cost without the noise of two
//! whole requests.
//!
//! After the clock stops, the Prometheus output is checked to hold the
//! requests just counted, so the recorder was really in the path.
//!
//! `cargo bench --bench metrics --features metrics` (under a minute).
//! Rounds and time per measurement: `TOKENGATE_BENCH_ROUNDS` (default 3)
//! and `TOKENGATE_BENCH_SECS` (default 1).

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;

use common::{bearer, env_or, median, median_ns, time_requests};
use http::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokengate::Algorithm;
use tokengate::testing::TestIssuer;
use tower::{Layer, service_fn};

const PATHS: [&str; 3] = ["repeated_token", "garbage_token", "introspection_hit"];
const GATES: [&str; 2] = ["no_recorder", "prometheus"];

fn inner(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

fn main() {
    let rounds: usize = env_or("TOKENGATE_BENCH_ROUNDS", 3);
    let secs: f64 = env_or("TOKENGATE_BENCH_SECS", 1.0);
    let (mut c, dir) = common::criterion("metrics", secs);

    let rt = common::runtime(1);
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let kid = issuer.add_key(Algorithm::ES256);
    let token = common::tokens(&issuer, &kid, "items:read", 1).remove(0);
    let opaque = issuer.token().scope("items:read").opaque();
    let build = || {
        let gate = common::introspecting_gate(&rt, &issuer);
        // Warm both caches: the only I/O.
        rt.block_on(gate.verify(&token)).unwrap();
        rt.block_on(gate.verify(&opaque)).unwrap();
        gate
    };
    let plain = build();
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle: PrometheusHandle = recorder.handle();
    // The gate registers its handles while it is built: under this
    // recorder, on this thread.
    let recorded = metrics::with_local_recorder(&recorder, build);

    let garbage = "eyJnYXJiYWdl.bm90IGEgand0.c2lnbmF0dXJl";
    for round in 1..=rounds {
        let mut g = c.benchmark_group(format!("round{round}"));
        for (name, gate) in GATES.iter().zip([&plain, &recorded]) {
            let mut svc = gate.layer().layer(service_fn(inner));
            g.bench_function(format!("repeated_token_{name}"), |b| {
                time_requests(b, &mut svc, || bearer(&token), StatusCode::OK)
            });
            g.bench_function(format!("garbage_token_{name}"), |b| {
                time_requests(b, &mut svc, || bearer(garbage), StatusCode::UNAUTHORIZED)
            });
            g.bench_function(format!("introspection_hit_{name}"), |b| {
                time_requests(b, &mut svc, || bearer(&opaque), StatusCode::OK)
            });
        }
        // What the cache-hit path adds, alone: its two counter increments
        // on the same recorder.
        let (requests, lookups) = metrics::with_local_recorder(&recorder, || {
            (
                metrics::counter!("bench_requests_total", "outcome" => "accepted"),
                metrics::counter!("bench_cache_lookups_total", "result" => "hit"),
            )
        });
        g.bench_function("two_increments_prometheus", |b| {
            b.iter(|| {
                black_box(&requests).increment(1);
                black_box(&lookups).increment(1);
            })
        });
        g.finish();
    }
    c.final_summary();

    let rendered = handle.render();
    let accepted = rendered
        .lines()
        .find(|l| {
            l.starts_with("tokengate_requests_total")
                && l.contains(r#"outcome="accepted""#)
                && l.contains(r#"source="jwt""#)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        accepted >= 1000.0,
        "the recorder did not see the requests:\n{rendered}"
    );

    let mut ns: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for round in 1..=rounds {
        for path in PATHS {
            for gate in GATES {
                if let Some(v) = median_ns(&dir, round, &format!("{path}_{gate}")) {
                    ns.entry((path, gate)).or_default().push(v);
                }
            }
        }
    }
    let increments = (1..=rounds)
        .filter_map(|round| median_ns(&dir, round, "two_increments_prometheus"))
        .collect::<Vec<_>>();
    println!();
    println!(
        "tokengate with the `metrics` feature: median ns per request over {rounds} round(s); \
         the added cost is taken within each round, then the median of the rounds"
    );
    println!("(the Prometheus recorder counted {accepted} accepted JWT requests during the run)");
    println!(
        "{:<20} {:>12} {:>12} {:>10}  {:<10} met",
        "path", "no recorder", "prometheus", "added", "target"
    );
    for path in PATHS {
        let (Some(off), Some(on)) = (
            ns.get(&(path, "no_recorder")),
            ns.get(&(path, "prometheus")),
        ) else {
            continue;
        };
        let added = median(on.iter().zip(off).map(|(on, off)| on - off).collect());
        let (target, met) = if path == "repeated_token" {
            ("<= 60 ns", if added <= 60.0 { "yes" } else { "NO" })
        } else {
            ("", "")
        };
        println!(
            "{:<20} {:>12.1} {:>12.1} {:>10.1}  {:<10} {}",
            path,
            median(off.clone()),
            median(on.clone()),
            added,
            target,
            met
        );
    }
    if !increments.is_empty() {
        println!(
            "{:<20} {:>12} {:>12.1}  (what the cache-hit path adds: its two counter increments alone)",
            "two increments",
            "",
            median(increments)
        );
    }
}
