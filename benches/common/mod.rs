//! Set-up shared by the benches: the runtime and the tokens they measure.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use http::{Request, Response, StatusCode};
use serde_json::Value;
use tokengate::TokenGate;
use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tower::Service;

/// A multi-thread runtime with `workers` worker threads.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` distinct access tokens signed with `kid`, carrying `scope` besides the
/// test issuer's default claims (iss, aud, sub, client_id, iat, exp, jti).
pub fn tokens(issuer: &TestIssuer, kid: &str, scope: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| issuer.token().key(kid).scope(scope).sign())
        .collect()
}

/// Calls a service whose future must be ready at once (no I/O on the paths
/// the benches measure), polling it once with a no-op waker.
pub fn call<S, B, R>(svc: &mut S, req: Request<B>) -> Response<R>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut fut = pin!(svc.call(req));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        _ => panic!("a measured path needed I/O"),
    }
}

/// `GET /items` with `token` as a bearer token.
pub fn bearer(token: &str) -> Request<()> {
    Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

/// Criterion's median estimate of one benchmark of round `round`, in
/// nanoseconds.
pub fn median_ns(dir: &Path, round: usize, id: &str) -> Option<f64> {
    let path = dir
        .join(format!("round{round}"))
        .join(id)
        .join("new/estimates.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Times `iters` requests through `svc`, each a fresh one from `make`
/// (built before the clock starts; the responses are dropped after it
/// stops), once checked to answer `expect`.
pub fn time_requests<S, B, R>(
    b: &mut Bencher,
    svc: &mut S,
    make: impl Fn() -> Request<B>,
    expect: StatusCode,
) where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
{
    assert_eq!(call(svc, make()).status(), expect);
    b.iter_custom(|iters| {
        let requests: Vec<_> = (0..iters).map(|_| make()).collect();
        let mut responses = Vec::with_capacity(requests.len());
        let start = Instant::now();
        for req in requests {
            responses.push(call(svc, req));
        }
        let elapsed = start.elapsed();
        black_box(&responses);
        elapsed
    });
}

/// The benches' Criterion: results under `target/criterion-<name>`, 20
/// samples, `secs` per measurement, no plots.
pub fn criterion(name: &str, secs: f64) -> (Criterion, std::path::PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/criterion-{name}"));
    let c = Criterion::default()
        .output_directory(&dir)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs_f64(secs))
        .without_plots()
        .configure_from_args();
    (c, dir)
}

/// A gate for `issuer` that verifies its JWTs and introspects its opaque
/// tokens.
pub fn introspecting_gate(rt: &tokio::runtime::Runtime, issuer: &TestIssuer) -> TokenGate {
    rt.block_on(
        TokenGate::builder()
            .issuer(issuer.issuer())
            .audience(issuer.audience())
            .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
            .build(),
    )
    .unwrap()
}

/// What `b` costs per request more than `a`, measured pair by pair so that
/// load on the machine hits both alike: `pairs` times, a batch of `batch`
/// requests through `a` then a batch through `b` (in alternating order),
/// each timed; the median over pairs of the difference, in ns per request,
/// with the medians of `a` and `b` themselves.
pub fn paired_ns<SA, SB, B, R>(
    a: &mut SA,
    b: &mut SB,
    make: impl Fn() -> Request<B>,
    pairs: usize,
    batch: usize,
) -> (f64, f64, f64)
where
    SA: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    SB: Service<Request<B>, Response = Response<R>, Error = Infallible>,
{
    fn timed<S, B, R>(svc: &mut S, requests: Vec<Request<B>>) -> f64
    where
        S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    {
        let n = requests.len() as f64;
        let mut responses = Vec::with_capacity(requests.len());
        let start = Instant::now();
        for req in requests {
            responses.push(call(svc, req));
        }
        let elapsed = start.elapsed();
        black_box(&responses);
        elapsed.as_nanos() as f64 / n
    }
    let batch_of = || (0..batch).map(|_| make()).collect::<Vec<_>>();
    // Warm-up.
    timed(a, batch_of());
    timed(b, batch_of());
    let (mut xs, mut ys, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (x, y) = if pair % 2 == 0 {
            let x = timed(a, batch_of());
            (x, timed(b, batch_of()))
        } else {
            let y = timed(b, batch_of());
            (timed(a, batch_of()), y)
        };
        xs.push(x);
        ys.push(y);
        diffs.push(y - x);
    }
    (median(xs), median(ys), median(diffs))
}
