//! Set-up shared by the benches: the runtime and the tokens they measure.
#![allow(dead_code)]

use tokengate::testing::TestIssuer;

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
