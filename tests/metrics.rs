//! The `tokengate_*` metrics (feature `metrics`), as a recorder receives
//! them: names, label sets and values after real requests through the
//! layer and the guards, key refreshes and calls to a test issuer, and no
//! token, subject or kid in any label.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::OnceLock;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{Algorithm, RequireScopes, TokenGate};
use tower::{Layer, Service, ServiceExt, service_fn};

/// The one recorder of this test binary, and a lock so that one test at a
/// time reads it.
fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One metric as a recorder keys it: its name and labels, sorted.
type Name = (String, Vec<(String, String)>);

/// What was recorded since the last call (the debugging recorder hands out
/// counter deltas), with zero counters and gauges left out.
#[derive(Debug)]
struct Recorded {
    counters: BTreeMap<Name, u64>,
    gauges: BTreeMap<Name, f64>,
    histograms: BTreeMap<Name, usize>,
    descriptions: BTreeMap<String, String>,
    labels: Vec<String>,
}

fn take() -> Recorded {
    let mut recorded = Recorded {
        counters: BTreeMap::new(),
        gauges: BTreeMap::new(),
        histograms: BTreeMap::new(),
        descriptions: BTreeMap::new(),
        labels: Vec::new(),
    };
    for (key, _unit, description, value) in recorder().snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        recorded
            .labels
            .extend(labels.iter().map(|(_, v)| v.clone()));
        let name = (key.name().to_owned(), labels);
        if let Some(description) = description {
            recorded
                .descriptions
                .insert(name.0.clone(), description.to_string());
        }
        match value {
            DebugValue::Counter(0) => {}
            DebugValue::Counter(n) => {
                recorded.counters.insert(name, n);
            }
            DebugValue::Gauge(g) if g.0 == 0.0 => {}
            DebugValue::Gauge(g) => {
                recorded.gauges.insert(name, g.0);
            }
            DebugValue::Histogram(v) if v.is_empty() => {}
            DebugValue::Histogram(v) => {
                recorded.histograms.insert(name, v.len());
            }
        }
    }
    recorded
}

fn name(metric: &str, labels: &[(&str, &str)]) -> Name {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (metric.to_owned(), labels)
}

fn requests(outcome: &str, reason: &str, source: &str) -> Name {
    name(
        "tokengate_requests_total",
        &[("outcome", outcome), ("reason", reason), ("source", source)],
    )
}

fn counters(pairs: &[(Name, u64)]) -> BTreeMap<Name, u64> {
    pairs.iter().cloned().collect()
}

/// The inner service: 200 for whatever reaches it.
fn app() -> impl Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
}

async fn status<S>(svc: S, token: Option<&str>) -> StatusCode
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut req = Request::get("/items");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    svc.oneshot(req.body(()).unwrap()).await.unwrap().status()
}

#[tokio::test(start_paused = true)]
async fn requests_guards_caches_and_key_refreshes_are_counted() {
    let _serial = SERIAL.lock().await;
    recorder();
    let issuer = TestIssuer::start().await.unwrap();
    let iss = issuer.issuer();
    take();
    let gate = TokenGate::builder()
        .issuer(&iss)
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();

    // Startup: one discovery and one key set fetch, the key gauge set, and
    // every metric described.
    let startup = take();
    let upstream = |endpoint, result| {
        name(
            "tokengate_upstream_requests_total",
            &[("endpoint", endpoint), ("result", result)],
        )
    };
    let refreshes = |trigger, result| {
        name(
            "tokengate_key_refreshes_total",
            &[
                ("issuer", iss.as_str()),
                ("result", result),
                ("trigger", trigger),
            ],
        )
    };
    assert_eq!(
        startup.counters,
        counters(&[
            (refreshes("startup", "ok"), 1),
            (upstream("discovery", "ok"), 1),
            (upstream("jwks", "ok"), 1),
        ])
    );
    assert_eq!(
        startup
            .gauges
            .get(&name("tokengate_keys", &[("issuer", &iss)])),
        Some(&(issuer.jwks()["keys"].as_array().unwrap().len() as f64))
    );
    for endpoint in ["discovery", "jwks"] {
        assert_eq!(
            startup.histograms.get(&name(
                "tokengate_upstream_duration_seconds",
                &[("endpoint", endpoint)]
            )),
            Some(&1)
        );
    }
    for metric in [
        "tokengate_requests_total",
        "tokengate_key_refreshes_total",
        "tokengate_keys",
        "tokengate_key_set_age_seconds",
        "tokengate_cache_lookups_total",
        "tokengate_cache_entries",
        "tokengate_cache_bytes",
        "tokengate_upstream_requests_total",
        "tokengate_upstream_duration_seconds",
    ] {
        assert!(
            startup.descriptions.contains_key(metric),
            "{metric} has no description"
        );
    }

    // Requests through the layer and through a guard behind it.
    const SUBJECT: &str = "alice-the-subject";
    const CLIENT: &str = "billing-client-7";
    let layer = gate.layer().layer(app());
    let guarded = gate
        .layer()
        .layer(RequireScopes::all(["items:write"]).layer(app()));
    let token = issuer
        .token()
        .subject(SUBJECT)
        .client_id(CLIENT)
        .scope("items:read")
        .sign();
    let expired = issuer.token().subject(SUBJECT).expires_in(-3600).sign();
    assert_eq!(status(layer.clone(), Some(&token)).await, StatusCode::OK);
    assert_eq!(status(layer.clone(), Some(&token)).await, StatusCode::OK);
    assert_eq!(
        status(layer.clone(), Some(&expired)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(layer.clone(), None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(layer.clone(), Some("not-a-jwt")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(gate.optional_layer().layer(app()), None).await,
        StatusCode::OK
    );
    assert_eq!(
        status(guarded.clone(), Some(&token)).await,
        StatusCode::FORBIDDEN
    );
    let lookups = |result| {
        name(
            "tokengate_cache_lookups_total",
            &[("cache", "verified_token"), ("result", result)],
        )
    };
    let seen = take();
    assert_eq!(
        seen.counters,
        counters(&[
            (requests("accepted", "none", "jwt"), 3),
            (requests("rejected", "expired", "none"), 1),
            (requests("rejected", "missing", "none"), 1),
            (requests("rejected", "not_a_jwt", "none"), 1),
            (requests("anonymous", "missing", "none"), 1),
            (requests("rejected", "insufficient_scope", "jwt"), 1),
            (lookups("miss"), 2),
            (lookups("hit"), 2),
        ])
    );

    // A new key is fetched for its unknown kid; a made-up kid spends the
    // rest of the budget (2 per 30 s) on a fetch that finds the set
    // unchanged (304), and the next are rate limited. A request that waited
    // for a refresh looks in the cache again after it: two lookups.
    let kid = issuer.add_key(Algorithm::ES256);
    let rotated = issuer.token().key(&kid).subject(SUBJECT).sign();
    assert_eq!(status(layer.clone(), Some(&rotated)).await, StatusCode::OK);
    for i in 0..3 {
        let made_up = issuer.token().header("kid", format!("made-up-{i}")).sign();
        assert_eq!(
            status(layer.clone(), Some(&made_up)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let refreshed = take();
    assert_eq!(
        refreshed.counters,
        counters(&[
            (requests("accepted", "none", "jwt"), 1),
            (requests("rejected", "unknown_key", "none"), 3),
            (lookups("miss"), 8),
            (refreshes("unknown_kid", "ok"), 1),
            (refreshes("unknown_kid", "not_modified"), 1),
            (refreshes("unknown_kid", "rate_limited"), 2),
            (upstream("jwks", "ok"), 1),
            (upstream("jwks", "not_modified"), 1),
        ])
    );
    assert_eq!(
        refreshed
            .gauges
            .get(&name("tokengate_keys", &[("issuer", &iss)])),
        Some(&(issuer.jwks()["keys"].as_array().unwrap().len() as f64))
    );

    // The gauges are sampled every 10 s: the cache's entries and bytes, the
    // key set's age.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let sampled = take();
    let entries = name("tokengate_cache_entries", &[("cache", "verified_token")]);
    let bytes = name("tokengate_cache_bytes", &[("cache", "verified_token")]);
    let stats = gate.cache_stats();
    assert_eq!(
        sampled.gauges.get(&entries),
        Some(&(stats.verified_tokens as f64))
    );
    assert_eq!(
        sampled.gauges.get(&bytes),
        Some(&(stats.verified_token_bytes as f64))
    );
    assert_eq!(stats.verified_tokens, 2);
    let age = sampled
        .gauges
        .get(&name("tokengate_key_set_age_seconds", &[("issuer", &iss)]))
        .copied()
        .unwrap();
    assert!((10.0..=12.0).contains(&age), "age {age}");

    // No token, subject or kid in any label ever recorded.
    for label in startup
        .labels
        .iter()
        .chain(&seen.labels)
        .chain(&refreshed.labels)
        .chain(&sampled.labels)
    {
        for secret in [
            token.as_str(),
            expired.as_str(),
            rotated.as_str(),
            SUBJECT,
            CLIENT,
            kid.as_str(),
        ] {
            assert!(!label.contains(secret), "{label}");
        }
        assert!(!label.contains("made-up"), "{label}");
    }
}

#[tokio::test(start_paused = true)]
async fn outages_are_unavailable_and_upstream_failures_say_which() {
    let _serial = SERIAL.lock().await;
    recorder();
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .build()
        .await
        .unwrap();
    let layer = gate.layer().layer(app());
    let opaque = issuer.token().opaque();
    assert_eq!(status(layer.clone(), Some(&opaque)).await, StatusCode::OK);
    assert_eq!(status(layer.clone(), Some(&opaque)).await, StatusCode::OK);
    take();

    issuer.set_fault(Endpoint::Introspection, Some(Fault::Status(500)));
    let other = issuer.token().opaque();
    assert_eq!(
        status(layer.clone(), Some(&other)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let introspection = |result| {
        name(
            "tokengate_cache_lookups_total",
            &[("cache", "introspection"), ("result", result)],
        )
    };
    assert_eq!(
        take().counters,
        counters(&[
            (
                requests("unavailable", "introspection_unavailable", "none"),
                1
            ),
            (introspection("miss"), 1),
            (
                name(
                    "tokengate_upstream_requests_total",
                    &[("endpoint", "introspection"), ("result", "status")]
                ),
                1
            ),
        ])
    );

    // The answer cached before the outage still serves.
    assert_eq!(status(layer.clone(), Some(&opaque)).await, StatusCode::OK);
    assert_eq!(
        take().counters,
        counters(&[
            (requests("accepted", "none", "introspection"), 1),
            (introspection("hit"), 1),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn scheduled_refreshes_count_their_results_and_the_age_grows_through_an_outage() {
    let _serial = SERIAL.lock().await;
    recorder();
    let issuer = TestIssuer::start().await.unwrap();
    let iss = issuer.issuer();
    let gate = TokenGate::builder()
        .issuer(&iss)
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    take();
    let scheduled = |result| {
        name(
            "tokengate_key_refreshes_total",
            &[
                ("issuer", iss.as_str()),
                ("result", result),
                ("trigger", "scheduled"),
            ],
        )
    };
    let jwks = |result| {
        name(
            "tokengate_upstream_requests_total",
            &[("endpoint", "jwks"), ("result", result)],
        )
    };
    // The TTL (5 min) passes: a conditional GET finds the set unchanged.
    tokio::time::sleep(Duration::from_secs(301)).await;
    let refreshed = take();
    assert_eq!(
        refreshed.counters,
        counters(&[(scheduled("not_modified"), 1), (jwks("not_modified"), 1)])
    );
    // A rotation: the next one fetches the new set.
    issuer.rotate();
    tokio::time::sleep(Duration::from_secs(301)).await;
    let refreshed = take();
    assert_eq!(
        refreshed.counters,
        counters(&[(scheduled("ok"), 1), (jwks("ok"), 1)])
    );
    // The key set is down at the next: each attempt is an error, the keys
    // keep serving, and the age gauge tells how old they are.
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Down));
    tokio::time::sleep(Duration::from_secs(301)).await;
    let failing = take();
    let errors = failing.counters[&scheduled("error")];
    assert!(errors >= 1, "{failing:?}");
    assert_eq!(failing.counters[&jwks("transport")], errors);
    assert_eq!(
        failing
            .counters
            .keys()
            .filter(|n| n.0 == "tokengate_key_refreshes_total")
            .count(),
        1,
        "{failing:?}"
    );
    assert!(failing.gauges[&name("tokengate_keys", &[("issuer", &iss)])] >= 1.0);
    let age = failing.gauges[&name("tokengate_key_set_age_seconds", &[("issuer", &iss)])];
    assert!(age >= 300.0, "age {age}");
    let token = issuer.token().sign();
    assert_eq!(
        status(gate.layer().layer(app()), Some(&token)).await,
        StatusCode::OK
    );
}
