//! The two token caches are bounded in bytes, whatever the tokens and
//! answers weigh, and keep an entry for as long as it can serve.

mod common;

use std::time::Duration;

use common::*;
use tokengate::CacheStats;
use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};

const KIB: usize = 1024;

/// What a cache bounded in bytes must show after many entries of at least
/// `each` bytes of text each: some kept, no more than fit in `capacity`,
/// and each entry weighed at least by the text it keeps.
fn assert_bounded(entries: u64, bytes: u64, each: usize, capacity: usize, stats: &CacheStats) {
    let (entries, bytes) = (entries as usize, bytes as usize);
    assert!(entries >= 1, "{stats:?}");
    assert!(entries * each <= capacity, "{stats:?}");
    assert!(bytes <= capacity, "{stats:?}");
    assert!(bytes >= entries * each, "{stats:?}");
}

#[tokio::test]
async fn large_introspection_answers_stay_within_the_byte_capacity() {
    let issuer = TestIssuer::start().await.unwrap();
    let capacity = 256 * KIB;
    let gate = builder(&issuer)
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .introspection_cache_bytes(capacity as u64)
        .build()
        .await
        .unwrap();
    let answer = 64 * KIB;
    for _ in 0..20 {
        let token = issuer.token().claim("padding", "x".repeat(answer)).opaque();
        gate.verify(&token).await.unwrap();
    }
    let stats = gate.cache_stats();
    // An entry-count bound would keep all twenty: 1.3 MiB in a 256 KiB cache.
    let (entries, bytes) = (stats.introspection_answers, stats.introspection_bytes);
    assert_bounded(entries, bytes, answer, capacity, &stats);
}

#[tokio::test]
async fn an_answer_heavier_than_the_whole_cache_is_not_kept() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .introspection_cache_bytes(32 * KIB as u64)
        .build()
        .await
        .unwrap();
    let token = issuer
        .token()
        .claim("padding", "x".repeat(64 * KIB))
        .opaque();
    gate.verify(&token).await.unwrap();
    let stats = gate.cache_stats();
    assert_eq!(
        (stats.introspection_answers, stats.introspection_bytes),
        (0, 0)
    );
}

#[tokio::test]
async fn large_jwts_stay_within_the_byte_capacity() {
    let issuer = TestIssuer::start().await.unwrap();
    let capacity = 64 * KIB;
    let gate = builder(&issuer)
        .verified_token_cache_bytes(capacity as u64)
        .build()
        .await
        .unwrap();
    let claims = 8 * KIB;
    for _ in 0..20 {
        let token = issuer.token().claim("padding", "x".repeat(claims)).sign();
        gate.verify(&token).await.unwrap();
    }
    let stats = gate.cache_stats();
    let (entries, bytes) = (stats.verified_tokens, stats.verified_token_bytes);
    assert_bounded(entries, bytes, claims, capacity, &stats);
}

#[tokio::test]
async fn zero_bytes_turns_the_verified_token_cache_off() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .verified_token_cache_bytes(0)
        .build()
        .await
        .unwrap();
    gate.verify(&issuer.token().sign()).await.unwrap();
    assert_eq!(gate.cache_stats().verified_tokens, 0);
}

#[tokio::test]
async fn a_token_inside_its_leeway_stays_cached_until_exp_plus_leeway() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .leeway(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    // Expired 10 s ago: it verifies for 50 s more, and so may its cache
    // entry serve, instead of every request verifying it again.
    let token = issuer.token().expires_in(-10).sign();
    gate.verify(&token).await.unwrap();
    assert_eq!(gate.cache_stats().verified_tokens, 1);
    gate.verify(&token).await.unwrap();
    assert_eq!(gate.cache_stats().verified_tokens, 1);
}
