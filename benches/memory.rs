//! Bytes per cached entry, for the verified-token cache and the
//! introspection cache, measured with a counting global allocator.
//!
//! Method: fill a cache with `N` distinct tokens, read the live heap, fill
//! it with `N` more, read it again; the difference over `N` is what one more
//! entry costs (the cache's fixed costs and the process's other allocations
//! cancel out). The tokens themselves are minted before the first reading
//! and stay alive throughout, so they are not counted. Each cache is sized
//! well above `2N`, so nothing is evicted while measuring.
//!
//! `cargo bench --bench memory` (under a minute).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tokengate::{Algorithm, CacheStats, JwkSet, TokenGate};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const N: usize = 10_000;

/// Verifies every token (each a cache miss that inserts one entry), lets
/// the cache settle, and returns the live heap.
async fn fill(gate: &TokenGate, tokens: &[String]) -> (isize, CacheStats) {
    for token in tokens {
        gate.verify(token).await.expect("valid token");
    }
    // moka applies pending writes in batches: settle them before reading.
    let stats = gate.cache_stats();
    (live(), stats)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let issuer = TestIssuer::start().await.unwrap();
    let kid = issuer.add_key(Algorithm::ES256);
    let jwks: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();

    // A typical access token: iss, aud, sub, client_id, iat, exp, jti, scope.
    let mint = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                issuer
                    .token()
                    .key(&kid)
                    .scope("items:read items:write")
                    .sign()
            })
            .collect()
    };
    let (first, second) = (mint(N), mint(N));
    let sample = &first[0];
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .static_keys(jwks)
        .verified_token_cache(4 * N as u64)
        .build()
        .await
        .unwrap();
    let (a, _) = fill(&gate, &first).await;
    let (b, stats) = fill(&gate, &second).await;
    assert_eq!(stats.verified_tokens, 2 * N as u64, "nothing evicted");
    let per_token = (b - a) as f64 / N as f64;

    let opaque = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| issuer.token().scope("items:read items:write").opaque())
            .collect()
    };
    let (first, second) = (opaque(N), opaque(N));
    let introspecting = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .introspection_cache_capacity(4 * N as u64)
        .build()
        .await
        .unwrap();
    let (a, _) = fill(&introspecting, &first).await;
    let (b, stats) = fill(&introspecting, &second).await;
    assert_eq!(stats.introspection_answers, 2 * N as u64, "nothing evicted");
    let per_answer = (b - a) as f64 / N as f64;

    println!();
    println!(
        "tokengate cache memory: live heap growth per entry, {N} entries measured (sample JWT: {} bytes)",
        sample.len()
    );
    println!(
        "{:<24} {:>15} {:>18} {:>16}",
        "cache", "bytes/entry", "default capacity", "at capacity"
    );
    for (name, bytes, capacity) in [
        ("verified-token (JWT)", per_token, 10_000.0),
        ("introspection", per_answer, 100_000.0),
    ] {
        println!(
            "{:<24} {:>15.0} {:>18} {:>13.1} MiB",
            name,
            bytes,
            capacity as u64,
            bytes * capacity / (1024.0 * 1024.0)
        );
    }
}
