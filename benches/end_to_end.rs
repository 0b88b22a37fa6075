//! End to end over loopback: an axum server with and without the layer,
//! driven by a bounded load generator, reporting requests per second and
//! p50/p99 latency for three workloads (no auth; one repeated token; a new
//! token on every request) with the server on 1 and on 2 worker threads.
//!
//! The load generator runs in this process on its own thread (one tokio
//! current-thread runtime, `CONNECTIONS` keep-alive HTTP/1.1 connections),
//! so on a 2-core machine it competes with a 2-worker server for CPU: the
//! figures are what this machine can show, not the server's ceiling.
//! Tokens are ES256, minted before the clock starts; the distinct-token run
//! stops early rather than reuse a token. Only 127.0.0.1 is used.
//!
//! Because the load generator and the kernel's loopback work share the two
//! cores with the server, a last run shows the scaling of the verification
//! path itself: the layer called directly (no sockets, no HTTP) from 1 and
//! then 2 threads, each with its own share of distinct tokens. Any global
//! lock on the path would show there as a ratio near 1.
//!
//! `cargo bench --bench end_to_end` (under a minute). Seconds per run:
//! `TOKENGATE_BENCH_SECS` (default 2).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokengate::testing::TestIssuer;
use tokengate::{Algorithm, JwkSet, TokenGate};

const CONNECTIONS: usize = 32;

#[derive(Clone, Copy, PartialEq)]
enum Workload {
    NoAuth,
    Repeated,
    Distinct,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::NoAuth => "no auth (inner service alone)",
            Workload::Repeated => "repeated token",
            Workload::Distinct => "distinct token per request",
        }
    }
}

struct Outcome {
    rps: f64,
    p50_us: u32,
    p99_us: u32,
    requests: usize,
}

/// Serves the app on a runtime of `workers` threads until the returned
/// sender is dropped.
fn serve(
    workers: usize,
    gate: Option<TokenGate>,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = std::thread::spawn(move || {
        let rt = common::runtime(workers);
        rt.block_on(async move {
            let mut app = Router::new().route("/items", get(|| async { "ok" }));
            if let Some(gate) = gate {
                app = app.layer(gate.layer());
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop_tx, handle)
}

/// Drives `addr` with `CONNECTIONS` connections for `secs`, each request
/// carrying the token `tokens[i]` (`i` from a shared counter; the run stops
/// when the tokens run out) or, for a pool of one, that token every time.
fn load(addr: SocketAddr, tokens: Arc<Vec<String>>, secs: f64) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let next = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let tokens = tokens.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    let mut latencies = Vec::with_capacity(64 * 1024);
                    while Instant::now() < deadline {
                        let token = match tokens.len() {
                            0 => None,
                            1 => Some(&tokens[0]),
                            n => match next.fetch_add(1, Ordering::Relaxed) {
                                i if i < n => Some(&tokens[i]),
                                _ => break,
                            },
                        };
                        let mut req = http::Request::get("/items").header("host", "127.0.0.1");
                        if let Some(token) = token {
                            req = req.header("authorization", format!("Bearer {token}"));
                        }
                        let req = req.body(Empty::<Bytes>::new()).unwrap();
                        let sent = Instant::now();
                        sender.ready().await.unwrap();
                        let response = sender.send_request(req).await.unwrap();
                        assert_eq!(response.status(), 200);
                        response.into_body().collect().await.unwrap();
                        latencies.push(sent.elapsed().as_micros() as u32);
                    }
                    latencies
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let elapsed = start.elapsed().as_secs_f64();
        all.sort_unstable();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        Outcome {
            rps: all.len() as f64 / elapsed,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            requests: all.len(),
        }
    })
}

/// The layer alone, called from `threads` threads at once, each verifying
/// its own slice of `tokens` (every one new to the gate) for up to `secs`.
/// Returns verifications per second.
fn direct(gate: &TokenGate, tokens: &[String], threads: usize, secs: f64) -> f64 {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    use tower::{Layer, Service};

    let per_thread = tokens.len() / threads;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let done: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = tokens
            .chunks(per_thread)
            .take(threads)
            .map(|share| {
                let mut svc = gate
                    .layer()
                    .layer(tower::service_fn(|_: http::Request<()>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(()))
                    }));
                scope.spawn(move || {
                    let mut cx = Context::from_waker(Waker::noop());
                    let mut n = 0;
                    for token in share {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let req = http::Request::get("/items")
                            .header("authorization", format!("Bearer {token}"))
                            .body(())
                            .unwrap();
                        let mut fut = std::pin::pin!(svc.call(req));
                        match fut.as_mut().poll(&mut cx) {
                            Poll::Ready(Ok(r)) => assert_eq!(r.status(), 200),
                            _ => panic!("verification needed I/O"),
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no other arguments.
    let secs: f64 = std::env::var("TOKENGATE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let rt = common::runtime(1);
    let issuer = rt.block_on(TestIssuer::start()).unwrap();
    let kid = issuer.add_key(Algorithm::ES256);
    let jwks: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
    let gate = || {
        rt.block_on(
            TokenGate::builder()
                .issuer(issuer.issuer())
                .audience(issuer.audience())
                .static_keys(jwks.clone())
                .build(),
        )
        .unwrap()
    };
    let mint = |n: usize| Arc::new(common::tokens(&issuer, &kid, "items:read", n));
    let pool = (secs * 30_000.0) as usize;
    eprintln!("minting {pool} ES256 tokens...");
    let distinct = mint(pool);
    let repeated = mint(1);

    let mut results = Vec::new();
    for workers in [1, 2] {
        for workload in [Workload::NoAuth, Workload::Repeated, Workload::Distinct] {
            let (tokens, gate) = match workload {
                Workload::NoAuth => (Arc::new(Vec::new()), None),
                Workload::Repeated => (repeated.clone(), Some(gate())),
                Workload::Distinct => (distinct.clone(), Some(gate())),
            };
            let (addr, stop, server) = serve(workers, gate);
            // A short warm-up (connections, allocator, the repeated token's
            // first verification), then the measured run.
            if workload != Workload::Distinct {
                load(addr, tokens.clone(), 0.2);
            }
            let outcome = load(addr, tokens, secs);
            drop(stop);
            server.join().unwrap();
            eprintln!(
                "{workers} worker(s), {:<28} {:>9.0} req/s  p50 {:>5} us  p99 {:>5} us  ({} requests)",
                workload.name(),
                outcome.rps,
                outcome.p50_us,
                outcome.p99_us,
                outcome.requests
            );
            results.push((workers, workload, outcome));
        }
    }

    let rps = |w: usize, wl: Workload| {
        results
            .iter()
            .find(|(rw, rwl, _)| *rw == w && *rwl == wl)
            .map(|(_, _, o)| o.rps)
            .unwrap()
    };
    println!();
    println!("tokengate end to end over 127.0.0.1: {CONNECTIONS} connections, {secs} s per run");
    println!(
        "{:<8} {:<30} {:>10} {:>9} {:>9} {:>12}",
        "workers", "workload", "req/s", "p50 us", "p99 us", "vs no auth"
    );
    for (workers, workload, o) in &results {
        println!(
            "{:<8} {:<30} {:>10.0} {:>9} {:>9} {:>11.1}%",
            workers,
            workload.name(),
            o.rps,
            o.p50_us,
            o.p99_us,
            100.0 * o.rps / rps(*workers, Workload::NoAuth)
        );
    }
    for w in [1, 2] {
        let share = rps(w, Workload::Repeated) / rps(w, Workload::NoAuth);
        println!(
            "repeated tokens, {w} worker(s): {:.1}% of no-auth throughput (target >= 80%): {}",
            100.0 * share,
            if share >= 0.8 { "met" } else { "NOT met" }
        );
    }
    let scaling = rps(2, Workload::Distinct) / rps(1, Workload::Distinct);
    println!(
        "distinct tokens over loopback, 2 workers vs 1: {scaling:.2}x (load generator and kernel share the 2 cores)"
    );

    // The verification path alone: fresh gates, so every token is new.
    let one = direct(&gate(), &distinct, 1, secs);
    let two = direct(&gate(), &distinct, 2, secs);
    println!(
        "distinct tokens, layer called directly: 1 thread {one:.0}/s, 2 threads {two:.0}/s: {:.2}x (target >= 1.7x): {}",
        two / one,
        if two / one >= 1.7 { "met" } else { "NOT met" }
    );
}
