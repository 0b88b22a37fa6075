//! Bytes per cached entry, for the verified-token cache and the
//! introspection cache, measured with a counting global allocator, next to
//! the weight the cache charges for it against its byte capacity.
//!
//! Method: fill a cache with `N` distinct tokens, read the live heap, fill
//! it with `N` more, read it again; the difference over `N` is what one more
//! entry costs (the cache's fixed costs and the process's other allocations
//! cancel out). The tokens themselves are minted before the first reading
//! and stay alive throughout, so they are not counted. Each cache is sized
//! well above `2N` entries, so nothing is evicted while measuring. The
//! weight per entry comes from `cache_stats()` the same way; the totals at
//! the default capacity are the entries that capacity admits, by weight,
//! times the measured bytes. Last, a handler reading `Principal::claims()`
//! parses the claims map into the cached principal: what that adds is shown
//! apart (the weight does not count it).
//!
//! `cargo bench --bench memory` (under a minute).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tokengate::{Algorithm, JwkSet, TokenGate};

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
const MIB: f64 = 1024.0 * 1024.0;

/// The builder's defaults, in bytes.
const TOKEN_CACHE_DEFAULT: u64 = 16 * 1024 * 1024;
const INTROSPECTION_CACHE_DEFAULT: u64 = 64 * 1024 * 1024;

/// Live heap and the cache's total weight after verifying every token.
type Reading = (isize, u64);

/// Verifies every token (each a cache miss that inserts one entry), lets
/// the cache settle, and reads the live heap and the caches' weight.
async fn fill(gate: &TokenGate, tokens: &[String]) -> Reading {
    for token in tokens {
        gate.verify(token).await.expect("valid token");
    }
    // moka applies pending writes in batches: cache_stats settles them.
    let stats = gate.cache_stats();
    (
        live(),
        stats.verified_token_bytes + stats.introspection_bytes,
    )
}

/// What one entry costs and weighs: the growth between two fills of `n`
/// tokens each, then what parsing each cached principal's claims map adds.
struct PerEntry {
    heap: f64,
    weight: f64,
    claims_map: f64,
}

async fn per_entry(gate: &TokenGate, first: &[String], second: &[String]) -> PerEntry {
    let (heap_a, weight_a) = fill(gate, first).await;
    let (heap_b, weight_b) = fill(gate, second).await;
    let n = second.len() as f64;
    for token in second {
        // A cache hit: the principal is the cached one, and keeps its map.
        let principal = gate.verify(token).await.expect("valid token");
        assert!(!principal.claims().is_empty());
    }
    let heap_c = live();
    PerEntry {
        heap: (heap_b - heap_a) as f64 / n,
        weight: (weight_b - weight_a) as f64 / n,
        claims_map: (heap_c - heap_b) as f64 / n,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let issuer = TestIssuer::start().await.unwrap();
    let kid = issuer.add_key(Algorithm::ES256);
    let jwks: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();

    // A typical access token: iss, aud, sub, client_id, iat, exp, jti, scope.
    let mint = |n: usize| common::tokens(&issuer, &kid, "items:read items:write", n);
    let (first, second) = (mint(N), mint(N));
    let sample = first[0].len();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .static_keys(jwks)
        .verified_token_cache_bytes(1 << 30)
        .build()
        .await
        .unwrap();
    let jwt = per_entry(&gate, &first, &second).await;
    assert_eq!(
        gate.cache_stats().verified_tokens,
        2 * N as u64,
        "nothing evicted"
    );

    let introspecting = || {
        TokenGate::builder()
            .issuer(issuer.issuer())
            .audience(issuer.audience())
            .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
            .introspection_cache_bytes(1 << 30)
            .build()
    };
    let opaque = |n: usize, padding: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let token = issuer.token().scope("items:read items:write");
                if padding == 0 {
                    token.opaque()
                } else {
                    token.claim("padding", "x".repeat(padding)).opaque()
                }
            })
            .collect()
    };
    let (first, second) = (opaque(N, 0), opaque(N, 0));
    let gate = introspecting().await.unwrap();
    let answer = per_entry(&gate, &first, &second).await;
    assert_eq!(
        gate.cache_stats().introspection_answers,
        2 * N as u64,
        "nothing evicted"
    );

    // Answers near the response cap: the weight must follow the size.
    const LARGE: usize = 64 * 1024;
    let (first, second) = (opaque(N / 100, LARGE), opaque(N / 100, LARGE));
    let gate = introspecting().await.unwrap();
    let large = per_entry(&gate, &first, &second).await;

    println!();
    println!(
        "tokengate cache memory: live heap growth per entry, {N} entries measured (sample JWT: {sample} bytes)"
    );
    println!(
        "{:<30} {:>12} {:>13} {:>17} {:>17} {:>14} {:>15}",
        "cache",
        "bytes/entry",
        "weight/entry",
        "default capacity",
        "entries admitted",
        "heap at cap.",
        "+ claims map"
    );
    for (name, entry, capacity) in [
        ("verified-token (JWT)", &jwt, TOKEN_CACHE_DEFAULT),
        ("introspection", &answer, INTROSPECTION_CACHE_DEFAULT),
        (
            "introspection, 64 KiB answers",
            &large,
            INTROSPECTION_CACHE_DEFAULT,
        ),
    ] {
        let admitted = (capacity as f64 / entry.weight).floor();
        println!(
            "{:<30} {:>12.0} {:>13.0} {:>13.0} MiB {:>17.0} {:>10.1} MiB {:>15.0}",
            name,
            entry.heap,
            entry.weight,
            capacity as f64 / MIB,
            admitted,
            admitted * entry.heap / MIB,
            entry.claims_map,
        );
    }
}
