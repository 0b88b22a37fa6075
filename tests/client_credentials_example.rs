//! The `client_credentials` example's router and walkthrough: every printed
//! curl line gets the status it promises, and each refusal carries the
//! documented `WWW-Authenticate` challenge.

#[path = "../examples/client_credentials.rs"]
#[allow(
    dead_code,
    reason = "the example's main and printing are not used here"
)]
mod example;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokengate::TokenGate;
use tokengate::testing::TestIssuer;
use tower::ServiceExt;

async fn setup() -> (TestIssuer, Router) {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    let app = example::router(gate, example::DEMO_CLIENTS);
    (issuer, app)
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

async fn call(app: &Router, method: Method, path: &str, token: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    Answer {
        status: response.status(),
        challenge: response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    }
}

/// The curl lines the example prints, sent to the same router.
#[tokio::test]
async fn every_walkthrough_step_gets_its_status() {
    let (issuer, app) = setup().await;
    let steps = example::walkthrough(&issuer);
    assert!(
        [200, 202, 401, 403]
            .iter()
            .all(|code| steps.iter().any(|s| s.expect.as_u16() == *code)),
        "the walkthrough shows 200, 202, 401 and 403"
    );
    for step in steps {
        let answer = call(&app, step.method, step.path, step.token.as_deref()).await;
        assert_eq!(answer.status, step.expect, "{}", step.what);
    }
}

#[tokio::test]
async fn allowed_machine_clients_are_served() {
    let (issuer, app) = setup().await;
    // No `sub` at all.
    let no_sub = issuer
        .token()
        .client_id("reporting")
        .without_claim("sub")
        .scope("reports:read")
        .sign();
    let ok = call(&app, Method::GET, "/reports", Some(&no_sub)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["client_id"], "reporting");
    // `sub` equal to the client id; the client id from `azp`.
    let sub_is_client = issuer
        .token()
        .without_claim("client_id")
        .claim("azp", "billing")
        .subject("billing")
        .scope("jobs:run")
        .sign();
    let ok = call(&app, Method::POST, "/jobs", Some(&sub_is_client)).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    assert_eq!(ok.json()["started_by"], "billing");
}

#[tokio::test]
async fn refusals_carry_the_rfc6750_challenge() {
    let (issuer, app) = setup().await;
    let realm = format!("Bearer realm=\"{}\"", issuer.audience());
    let policy_refusal = |description: &str| {
        format!("{realm}, error=\"insufficient_scope\", error_description=\"{description}\"")
    };

    // No token: 401 with the bare challenge.
    let anonymous = call(&app, Method::GET, "/reports", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.challenge.as_deref(), Some(realm.as_str()));

    // A bad token: 401 invalid_token, before any policy.
    let good = issuer
        .token()
        .client_id("reporting")
        .without_claim("sub")
        .scope("reports:read")
        .sign();
    let tampered = call(&app, Method::GET, "/reports", Some(&format!("{good}x"))).await;
    assert_eq!(tampered.status, StatusCode::UNAUTHORIZED);
    assert!(
        tampered
            .challenge
            .as_deref()
            .unwrap()
            .starts_with(&format!("{realm}, error=\"invalid_token\"")),
        "{:?}",
        tampered.challenge
    );

    // A client not on the allowlist, with every scope.
    let scraper = issuer
        .token()
        .client_id("scraper")
        .without_claim("sub")
        .scope("reports:read jobs:run")
        .sign();
    let refused = call(&app, Method::GET, "/reports", Some(&scraper)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge,
        Some(policy_refusal("this client may not call this API"))
    );

    // A user's token from an allowed client, with the scope.
    let alice = issuer
        .token()
        .client_id("reporting")
        .subject("alice")
        .scope("reports:read")
        .sign();
    let refused = call(&app, Method::GET, "/reports", Some(&alice)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge,
        Some(policy_refusal("this API serves clients, not users"))
    );

    // No client id at all is not a machine client either.
    let anonymous_client = issuer
        .token()
        .without_claim("client_id")
        .without_claim("sub")
        .scope("reports:read")
        .sign();
    let refused = call(&app, Method::GET, "/reports", Some(&anonymous_client)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // An allowed machine client without the route's scope: the scope guard's
    // 403, naming the scope.
    let refused = call(&app, Method::POST, "/jobs", Some(&good)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.challenge,
        Some(format!(
            "{realm}, error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"jobs:run\""
        ))
    );
}

#[tokio::test]
async fn whoami_tells_a_machine_from_a_user() {
    let (issuer, app) = setup().await;
    let machine = issuer
        .token()
        .client_id("scraper")
        .without_claim("sub")
        .sign();
    let answer = call(&app, Method::GET, "/whoami", Some(&machine)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["kind"], "machine");
    assert_eq!(answer.json()["client_id"], "scraper");

    let user = issuer
        .token()
        .client_id("reporting")
        .subject("alice")
        .sign();
    let answer = call(&app, Method::GET, "/whoami", Some(&user)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["kind"], "user");
    assert_eq!(answer.json()["sub"], "alice");

    let anonymous = call(&app, Method::GET, "/whoami", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
