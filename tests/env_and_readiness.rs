//! `TokenGateBuilder::from_env` / `from_lookup`: every documented variable
//! sets what its builder method sets, `_FILE` variants, strict parsing with
//! every problem reported at once and no value shown; and readiness.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{
    Algorithm, ENV_VARIABLES, ErrorDetail, IntrospectionMode, TokenGate, TokenGateBuilder,
};
use tower::ServiceExt;

fn from(vars: &[(&str, &str)]) -> Result<TokenGateBuilder, tokengate::EnvError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (format!("TG_{k}"), (*v).to_owned()))
        .collect();
    TokenGateBuilder::from_lookup("TG_", &|name| vars.get(name).cloned())
}

/// The builder's `Debug` shows every setting (secrets redacted), so equal
/// output means equal configuration.
fn same(a: &TokenGateBuilder, b: &TokenGateBuilder) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn every_variable_sets_its_setting() {
    let env = from(&[
        ("ISSUER", "https://a.example https://b.example"),
        ("AUDIENCE", "https://api.example.com api://x"),
        ("RESOURCE", "https://api.example.com/mcp"),
        ("CLIENT_ID", "my-api"),
        ("CLIENT_SECRET", "s3cret"),
        ("INTROSPECTION_ENDPOINT", "https://a.example/introspect"),
        ("INTROSPECTION_MODE", "all"),
        ("ALGORITHMS", "ES256,RS256"),
        ("LEEWAY", "30s"),
        ("STRICT_RFC9068", "true"),
        ("MAX_TOKEN_LENGTH", "8192"),
        ("ALLOW_QUERY_TOKEN", "false"),
        ("REALM", "items"),
        ("ERROR_DETAIL", "terse"),
        ("RETRY_AFTER", "10s"),
        ("CONNECT_TIMEOUT", "500ms"),
        ("TIMEOUT", "3s"),
        ("MAX_RESPONSE_BYTES", "512KiB"),
        ("JWKS_TTL", "10m"),
        ("JWKS_MAX_STALE", "2h"),
        ("REQUIRE_KEYS_AT_STARTUP", "false"),
        ("VERIFIED_TOKEN_CACHE_BYTES", "32MiB"),
        ("INTROSPECTION_CACHE_BYTES", "1GiB"),
        ("INTROSPECTION_CACHE_TTL", "1m"),
        ("INTROSPECTION_INACTIVE_TTL", "5"),
        ("INTROSPECTION_CONCURRENCY", "8"),
        ("INTROSPECTION_QUEUE", "16"),
        ("SCOPES_SUPPORTED", "items:read items:write"),
        ("CHALLENGE_SCOPE", "items:read"),
        ("RESOURCE_NAME", "Items"),
        ("METADATA_AT_ROOT", "true"),
        ("DPOP", "required"),
        ("DPOP_ALGORITHMS", "ES256 EdDSA"),
        ("PUBLIC_URL", "https://api.example.com"),
        ("DPOP_NONCE_SECRET", "0123456789abcdef0123456789abcdef"),
    ])
    .unwrap();
    let by_hand = TokenGate::builder()
        .issuers(["https://a.example", "https://b.example"])
        .audience("https://api.example.com")
        .audience("api://x")
        .resource("https://api.example.com/mcp")
        .introspection_credentials("my-api", "s3cret")
        .introspection_endpoint("https://a.example/introspect")
        .introspection_mode(IntrospectionMode::All)
        .algorithms([Algorithm::ES256, Algorithm::RS256])
        .leeway(Duration::from_secs(30))
        .strict_rfc9068(true)
        .max_token_length(8192)
        .allow_query_token(false)
        .realm("items")
        .error_detail(ErrorDetail::Terse)
        .retry_after(Duration::from_secs(10))
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(3))
        .max_response_bytes(512 * 1024)
        .jwks_ttl(Duration::from_secs(600))
        .jwks_max_stale(Duration::from_secs(7200))
        .require_keys_at_startup(false)
        .verified_token_cache_bytes(32 << 20)
        .introspection_cache_bytes(1 << 30)
        .introspection_cache_ttl(Duration::from_secs(60))
        .introspection_inactive_ttl(Duration::from_secs(5))
        .introspection_concurrency(8)
        .introspection_queue(16)
        .scopes_supported(["items:read", "items:write"])
        .challenge_scope(["items:read"])
        .resource_name("Items")
        .metadata_at_root(true)
        .dpop(tokengate::dpop::DpopMode::Required)
        .dpop_algorithms([Algorithm::ES256, Algorithm::EdDSA])
        .public_url("https://api.example.com")
        .dpop_nonce("0123456789abcdef0123456789abcdef", Duration::from_secs(300));
    same(&env, &by_hand);
    // Nothing set: the defaults.
    same(&from(&[]).unwrap(), &TokenGate::builder());
    // The secret is not in the Debug output.
    assert!(!format!("{env:?}").contains("s3cret"));
    // JWKS_URI has its own check, as it needs a single issuer.
    same(
        &from(&[
            ("ISSUER", "https://a.example"),
            ("JWKS_URI", "https://a.example/keys"),
        ])
        .unwrap(),
        &TokenGate::builder()
            .issuer("https://a.example")
            .jwks_uri("https://a.example/keys"),
    );
    // Every documented variable is one the loader reads.
    assert_eq!(ENV_VARIABLES.len(), 36);
}

#[test]
fn every_problem_is_reported_at_once_without_values() {
    let err = from(&[
        ("LEEWAY", "sixty"),
        ("STRICT_RFC9068", "True"),
        ("CLIENT_ID", "my-api"),
        ("MAX_RESPONSE_BYTES", "1MB"),
        ("ALGORITHMS", "none"),
        ("INTROSPECTION_MODE", "sometimes"),
        ("ISSUER", "   "),
    ])
    .unwrap_err();
    let variables: Vec<&str> = err.problems().iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        variables,
        [
            "TG_ISSUER",
            "TG_CLIENT_SECRET",
            "TG_INTROSPECTION_MODE",
            "TG_ALGORITHMS",
            "TG_LEEWAY",
            "TG_STRICT_RFC9068",
            "TG_MAX_RESPONSE_BYTES",
        ]
    );
    let text = err.to_string();
    for value in ["sixty", "True", "1MB", "sometimes"] {
        assert!(!text.contains(value), "{text}");
    }
}

#[test]
fn file_variants_read_secrets_from_files() {
    let dir = std::env::temp_dir().join(format!("tokengate-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "from-a-file\n").unwrap();
    let path = secret.to_str().unwrap();
    let env = from(&[("CLIENT_ID", "my-api"), ("CLIENT_SECRET_FILE", path)]).unwrap();
    same(
        &env,
        &TokenGate::builder().introspection_credentials("my-api", "from-a-file"),
    );
    // The value read is the file's: "from-a-file" without its newline.
    let env = from(&[("REALM_FILE", path)]).unwrap();
    same(&env, &TokenGate::builder().realm("from-a-file"));

    let big = dir.join("big");
    std::fs::write(&big, vec![b'a'; 70 * 1024]).unwrap();
    // A FIFO nobody writes to: opening it would block the build forever.
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    for (vars, variable) in [
        (
            vec![("REALM_FILE", fifo.to_str().unwrap())],
            "TG_REALM_FILE",
        ),
        (vec![("REALM", "x"), ("REALM_FILE", path)], "TG_REALM"),
        (vec![("REALM_FILE", dir.to_str().unwrap())], "TG_REALM_FILE"),
        (vec![("REALM_FILE", big.to_str().unwrap())], "TG_REALM_FILE"),
        (
            vec![("REALM_FILE", "/nonexistent/tokengate")],
            "TG_REALM_FILE",
        ),
    ] {
        let err = from(&vars).unwrap_err();
        assert_eq!(err.problems()[0].0, variable, "{vars:?}");
        assert!(!err.to_string().contains("from-a-file"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_leeway_longer_than_ten_minutes_fails_the_build() {
    let issuer = TestIssuer::start().await.unwrap();
    let build = |leeway: &str| {
        from(&[
            ("ISSUER", &issuer.issuer()),
            ("AUDIENCE", &issuer.audience()),
            ("LEEWAY", leeway),
        ])
        .unwrap()
        .build()
    };
    assert!(build("10m").await.is_ok());
    let err = build("3600").await.unwrap_err();
    assert!(err.to_string().contains("leeway"), "{err}");
}

#[tokio::test]
async fn a_gate_from_the_environment_works() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = from(&[
        ("ISSUER", &issuer.issuer()),
        ("AUDIENCE", &issuer.audience()),
        ("STRICT_RFC9068", "true"),
    ])
    .unwrap()
    .build()
    .await
    .unwrap();
    // Strict RFC 9068: a token without `typ: at+jwt` is refused.
    let loose = issuer.token().without_header("typ").sign();
    assert!(gate.verify(&loose).await.is_err());
}

async fn probe(gate: &TokenGate) -> (StatusCode, serde_json::Value) {
    let app: axum::Router = axum::Router::new().route_service("/ready", gate.readiness_service());
    let response = app
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "no-store");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn readiness_follows_the_key_sets() {
    let (a, b) = (
        TestIssuer::start().await.unwrap(),
        TestIssuer::start().await.unwrap(),
    );
    b.set_fault(Endpoint::Jwks, Some(Fault::Status(500)));
    let gate = TokenGate::builder()
        .issuers([a.issuer(), b.issuer()])
        .audience(a.audience())
        .require_keys_at_startup(false)
        .build()
        .await
        .unwrap();
    let readiness = gate.readiness();
    assert!(!readiness.ready);
    assert!(readiness.issuers[0].ready);
    assert_eq!(readiness.issuers[1].reason, Some("no key set loaded yet"));
    let (status, body) = probe(&gate).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        serde_json::json!({
            "ready": false,
            "issuers": [
                {"issuer": a.issuer(), "ready": true},
                {"issuer": b.issuer(), "ready": false, "reason": "no key set loaded yet"},
            ],
        })
    );
    // B recovers; a request for its keys loads them.
    b.set_fault(Endpoint::Jwks, None);
    assert!(
        gate.verify(&b.token().audience(&a.audience()).sign())
            .await
            .is_ok()
    );
    let (status, body) = probe(&gate).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
}
