//! What a requirement adds to a request the verified-token cache answers.
//!
//! One gate (roles read from Keycloak's `realm_access.roles`), one repeated
//! token, measured side by side in each round:
//!
//! - the gate alone;
//! - the gate and a `RequireScopes` of one scope (the guard as it was);
//! - the gate and a `Require` of three clauses: a scope, a role and a
//!   client in an allowlist (target: under 100 ns more than the gate alone);
//! - the gate and the same three clauses plus a step-up `acr`, a claim
//!   read from the claims map (parsed once per cached token).
//!
//! The added cost is taken within each round; the median of the rounds is
//! reported. `cargo bench --bench requirements` (under a minute). Rounds
//! and time per measurement: `TOKENGATE_BENCH_ROUNDS` (default 3) and
//! `TOKENGATE_BENCH_SECS` (default 1).

mod common;

use std::convert::Infallible;

use common::{bearer, env_or, median, median_ns, time_requests};
use http::{Request, Response, StatusCode};
use serde_json::json;
use tokengate::testing::TestIssuer;
use tokengate::{Algorithm, JwkSet, Require, RequireScopes, Requirement, RoleSource, TokenGate};
use tower::{Layer, service_fn};

const PATHS: [&str; 4] = ["gate_alone", "one_scope", "three_clauses", "four_with_acr"];

fn inner(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

fn main() {
    let rounds: usize = env_or("TOKENGATE_BENCH_ROUNDS", 3);
    let secs: f64 = env_or("TOKENGATE_BENCH_SECS", 1.0);
    let (mut c, dir) = common::criterion("requirements", secs);

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
                .roles_from(RoleSource::keycloak_realm())
                .build(),
        )
        .unwrap();
    let token = issuer
        .token()
        .key(&kid)
        .scope("items:read")
        .client_id("reporting")
        .claim(
            "realm_access",
            json!({"roles": ["auditor", "offline_access"]}),
        )
        .claim("acr", "urn:tokengate:mfa")
        .sign();
    let three = Requirement::all([
        Requirement::scopes_all(["items:read"]),
        Requirement::role("auditor"),
        Requirement::client_in(["reporting"]),
    ]);
    let four = three.clone().and(Requirement::acr(["urn:tokengate:mfa"]));

    let mut alone = gate.layer().layer(service_fn(inner));
    let mut one = gate
        .layer()
        .layer(RequireScopes::all(["items:read"]).layer(service_fn(inner)));
    let mut three = gate
        .layer()
        .layer(Require::new(three).layer(service_fn(inner)));
    let mut four = gate
        .layer()
        .layer(Require::new(four).layer(service_fn(inner)));
    for round in 1..=rounds {
        let mut g = c.benchmark_group(format!("round{round}"));
        g.bench_function("gate_alone", |b| {
            time_requests(b, &mut alone, || bearer(&token), StatusCode::OK)
        });
        g.bench_function("one_scope", |b| {
            time_requests(b, &mut one, || bearer(&token), StatusCode::OK)
        });
        g.bench_function("three_clauses", |b| {
            time_requests(b, &mut three, || bearer(&token), StatusCode::OK)
        });
        g.bench_function("four_with_acr", |b| {
            time_requests(b, &mut four, || bearer(&token), StatusCode::OK)
        });
        g.finish();
    }
    c.final_summary();

    let per_round = |id: &str| -> Vec<f64> {
        (1..=rounds)
            .filter_map(|r| median_ns(&dir, r, id))
            .collect()
    };
    let base = per_round("gate_alone");
    println!();
    println!(
        "requirements on a verified-token cache hit: median ns per request over {rounds} round(s); \
         the added cost is taken within each round, then the median of the rounds"
    );
    println!(
        "{:<16} {:>11} {:>10}  {:<10} met",
        "path", "ns/request", "added", "target"
    );
    for id in PATHS {
        let values = per_round(id);
        if values.is_empty() || base.is_empty() {
            continue;
        }
        let added = median(values.iter().zip(&base).map(|(v, b)| v - b).collect());
        let (target, met) = match id {
            "three_clauses" => ("< 100 ns", if added < 100.0 { "yes" } else { "NO" }),
            _ => ("", ""),
        };
        println!(
            "{:<16} {:>11.1} {:>10.1}  {:<10} {}",
            id,
            median(values),
            added,
            target,
            met
        );
    }
}
