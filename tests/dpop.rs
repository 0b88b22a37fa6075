//! DPoP (RFC 9449) through the layer on a real axum router: a bound token
//! with a proof gets in, and each rule of §4.3 broken alone is refused
//! with its own reason, in a `DPoP` challenge; replays, schemes, modes and
//! the public URL.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokengate::dpop::{DpopMode, MemoryReplayStore, Presentation};
use tokengate::testing::{
    DpopKey, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{Algorithm, Principal, TokenGate, TokenGateBuilder};
use tower::ServiceExt;

const HOST: &str = "api.tokengate.test";
const URL: &str = "http://api.tokengate.test/items";

fn app(gate: &TokenGate) -> Router {
    Router::new()
        .route(
            "/items",
            get(
                |Extension(p): Extension<Principal>, Extension(how): Extension<Presentation>| async move {
                    format!("{how:?} {}", p.dpop_thumbprint().unwrap_or("-"))
                },
            )
            .post(|| async { "posted" }),
        )
        .layer(gate.layer())
}

struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    body: String,
}

async fn send(app: &Router, method: &str, authorization: Option<&str>, proofs: &[&str]) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri("/items?page=2")
        .header("host", HOST);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenges,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn builder(issuer: &TestIssuer) -> TokenGateBuilder {
    TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
}

fn refused(answer: &Answer, description: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{description}");
    assert_eq!(answer.challenges.len(), 1, "{:?}", answer.challenges);
    let challenge = &answer.challenges[0];
    assert!(
        challenge.starts_with("DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\", realm="),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("error_description=\"{description}\"")),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_bound_token_with_its_proof_gets_in_once_per_proof() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = app(&gate);
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let key = DpopKey::new(alg);
        let token = issuer.token().dpop_bound(&key).sign();
        let auth = format!("DPoP {token}");
        let proof = key.proof("GET", URL).token(&token).sign();
        let answer = send(&app, "GET", Some(&auth), &[&proof]).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenges);
        assert_eq!(answer.body, format!("Dpop {}", key.thumbprint()));
        // The same proof again: a replay.
        let answer = send(&app, "GET", Some(&auth), &[&proof]).await;
        let description = "the DPoP proof was already used";
        refused(&answer, description);
        assert!(answer.challenges[0].contains("error=\"invalid_dpop_proof\""));
        // A new proof for the same token: in, and the token came from the
        // verified-token cache.
        let again = key.proof("GET", URL).token(&token).sign();
        assert_eq!(
            send(&app, "GET", Some(&auth), &[&again]).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(gate.cache_stats().verified_tokens, 2);
    // A bearer token still works in the default mode.
    let bearer = issuer.token().sign();
    let answer = send(&app, "GET", Some(&format!("Bearer {bearer}")), &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "Bearer -");
}

#[tokio::test]
async fn each_rule_of_section_4_3_broken_alone_is_refused() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let other = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let auth = format!("DPoP {token}");
    let proof = || key.proof("GET", URL).token(&token);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = {
        // Signed by `other`, carrying `key`'s public key.
        other
            .proof("GET", URL)
            .token(&token)
            .header("jwk", key.jwk())
            .sign()
    };
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    let cases: Vec<(String, &str)> = vec![
        (
            proof().header("typ", "JWT").sign(),
            "the DPoP proof is not of type dpop+jwt",
        ),
        (
            proof().without_header("typ").sign(),
            "the DPoP proof is not of type dpop+jwt",
        ),
        (
            proof().header("alg", "none").sign(),
            "the DPoP proof's algorithm is not accepted",
        ),
        (
            proof().header("alg", "HS256").sign(),
            "the DPoP proof's algorithm is not accepted",
        ),
        (
            proof().without_header("jwk").sign(),
            "the DPoP proof's key is not a usable public key",
        ),
        (
            proof().header("jwk", private).sign(),
            "the DPoP proof's key is not a usable public key",
        ),
        (forged, "the DPoP proof's signature is invalid"),
        (
            key.proof("POST", URL).token(&token).sign(),
            "the DPoP proof is for another method",
        ),
        (
            key.proof("GET", "http://api.tokengate.test/other")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "https://api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://elsewhere.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        // RFC 3986 spellings the WHATWG parser would take for this URL (the
        // fuzzer found the first accepted).
        (
            key.proof("GET", "http:///api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api.tokengate.test\\items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        // A `://` later in the string is not the one after the scheme
        // (a reviewer found these two accepted), and userinfo is part of
        // the authority.
        (
            key.proof("GET", "http:/api.tokengate.test/items?x=://y")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http:api.tokengate.test/items#://a")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://someone@api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://:pw@api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        // Hosts the parser would rewrite into this one: an empty
        // userinfo (dropped), percent-escapes (decoded, then IDNA-mapped:
        // `%EF%BC%A1` is a fullwidth A), and characters no URI holds.
        (
            key.proof("GET", "http://@api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://:@api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api%2Etokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://%EF%BC%A1pi.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api.tokengate.test/items%")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api.tokengate.test/it\"ems")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        // Spaces and controls, which the parser strips at either end
        // (tabs and newlines inside too; the fuzzer found the first accepted).
        (
            key.proof("GET", " http://api.tokengate.test/items")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api.tokengate.test/items ")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            key.proof("GET", "http://api.token\tgate.test/it\nems")
                .token(&token)
                .sign(),
            "the DPoP proof is for another URL",
        ),
        (
            proof().claim("iat", now - 120).sign(),
            "the DPoP proof is too old or from the future",
        ),
        (
            proof().claim("iat", now + 60).sign(),
            "the DPoP proof is too old or from the future",
        ),
        (
            proof().without_claim("jti").sign(),
            "the DPoP proof lacks a required claim",
        ),
        (
            proof().without_claim("htm").sign(),
            "the DPoP proof lacks a required claim",
        ),
        (
            proof().without_claim("htu").sign(),
            "the DPoP proof lacks a required claim",
        ),
        (
            proof().without_claim("iat").sign(),
            "the DPoP proof lacks a required claim",
        ),
        (
            key.proof("GET", URL).sign(),
            "the DPoP proof lacks a required claim",
        ),
        (
            proof().claim("iat", "now").sign(),
            "the DPoP proof is malformed",
        ),
        (
            proof().claim("jti", "x".repeat(300)).sign(),
            "the DPoP proof is malformed",
        ),
        (
            key.proof("GET", URL).token("another-token").sign(),
            "the DPoP proof is for another access token",
        ),
        (
            other.proof("GET", URL).token(&token).sign(),
            "the DPoP proof's key is not the one the token is bound to",
        ),
        ("not.a.jws".to_owned(), "the DPoP proof is malformed"),
        (
            proof().claim("pad", "x".repeat(9000)).sign(),
            "the DPoP proof is too long",
        ),
    ];
    for (bad, description) in &cases {
        let answer = send(&app, "GET", Some(&auth), &[bad]).await;
        refused(&answer, description);
    }
    // The URL rule ignores the query and fragment (whatever they hold),
    // default ports, an empty port, dot segments and the host's case.
    for url in [
        "http://api.tokengate.test/items?page=9",
        "http://API.tokengate.test:80/items",
        "http://api.tokengate.test/./items#frag",
        "HTTP://api.tokengate.test:/items?a|b^c#{x}",
        "http://api.tokengate.test:0080/x/../items",
    ] {
        let ok = key.proof("GET", url).token(&token).sign();
        assert_eq!(
            send(&app, "GET", Some(&auth), &[&ok]).await.status,
            StatusCode::OK,
            "{url}"
        );
    }
    // No proof; two proofs.
    refused(
        &send(&app, "GET", Some(&auth), &[]).await,
        "the DPoP proof is missing",
    );
    let (a, b) = (proof().sign(), proof().sign());
    let answer = send(&app, "GET", Some(&auth), &[&a, &b]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // An unbound token presented with a proof: no key to match.
    let unbound = issuer.token().sign();
    let p = key.proof("GET", URL).token(&unbound).sign();
    refused(
        &send(&app, "GET", Some(&format!("DPoP {unbound}")), &[&p]).await,
        "the DPoP proof's key is not the one the token is bound to",
    );
}

#[tokio::test]
async fn bound_tokens_as_bearer_and_challenges_in_both_schemes() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let bound = issuer.token().dpop_bound(&key).sign();
    let realm = format!("realm=\"{}\"", issuer.audience());
    let algs = "DPoP algs=\"ES256 ES384 EdDSA PS256 RS256\"";
    // RFC 9449 §7.2: a bound token presented as a bearer token is refused.
    let answer = send(&app, "GET", Some(&format!("Bearer {bound}")), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.challenges[0].starts_with("Bearer ")
            && answer.challenges[0].contains("invalid_token")
    );
    assert_eq!(answer.challenges[1], format!("{algs}, {realm}"));
    // No credentials: both challenges.
    let answer = send(&app, "GET", None, &[]).await;
    assert_eq!(
        answer.challenges,
        [format!("Bearer {realm}"), format!("{algs}, {realm}")]
    );
}

#[tokio::test]
async fn required_and_disabled_modes() {
    let issuer = TestIssuer::start().await.unwrap();
    let key = DpopKey::new(Algorithm::EdDSA);
    let bound = issuer.token().dpop_bound(&key).sign();
    let bearer = issuer.token().sign();

    let required = builder(&issuer)
        .dpop(DpopMode::Required)
        .build()
        .await
        .unwrap();
    let router = app(&required);
    let answer = send(&router, "GET", Some(&format!("Bearer {bearer}")), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenges.len(), 1);
    assert!(
        answer.challenges[0].starts_with("DPoP algs="),
        "{:?}",
        answer.challenges
    );
    assert!(answer.challenges[0].contains("this resource accepts DPoP-bound tokens only"));
    let proof = key.proof("GET", URL).token(&bound).sign();
    assert_eq!(
        send(&router, "GET", Some(&format!("DPoP {bound}")), &[&proof])
            .await
            .status,
        StatusCode::OK
    );
    assert!(required.verify(&bearer).await.is_err());

    let disabled = builder(&issuer)
        .dpop(DpopMode::Disabled)
        .build()
        .await
        .unwrap();
    let router = app(&disabled);
    let answer = send(&router, "GET", Some(&format!("Bearer {bound}")), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenges.len(), 1);
    assert!(answer.challenges[0].contains("sender-constrained"));
    // The DPoP scheme is just another scheme there: no bearer token.
    let answer = send(&router, "GET", Some(&format!("DPoP {bound}")), &[&proof]).await;
    assert_eq!(
        answer.challenges,
        [format!("Bearer realm=\"{}\"", issuer.audience())]
    );
}

#[tokio::test]
async fn the_public_url_is_what_proofs_name_and_stores_are_pluggable() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .public_url("https://api.example.com/ignored/path")
        .dpop_replay_store(Arc::new(MemoryReplayStore::new(10)))
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let auth = format!("DPoP {token}");
    let public = key
        .proof("GET", "https://api.example.com/items")
        .token(&token)
        .sign();
    assert_eq!(
        send(&app, "GET", Some(&auth), &[&public]).await.status,
        StatusCode::OK
    );
    let by_host = key.proof("GET", URL).token(&token).sign();
    refused(
        &send(&app, "GET", Some(&auth), &[&by_host]).await,
        "the DPoP proof is for another URL",
    );
}

#[tokio::test]
async fn introspected_tokens_are_bound_by_the_answer() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let opaque = issuer
        .token()
        .dpop_bound(&key)
        .claim("token_type", "DPoP")
        .opaque();
    let proof = key.proof("GET", URL).token(&opaque).sign();
    let answer = send(&app, "GET", Some(&format!("DPoP {opaque}")), &[&proof]).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenges);
    assert_eq!(answer.body, format!("Dpop {}", key.thumbprint()));
    let answer = send(&app, "GET", Some(&format!("Bearer {opaque}")), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// A guard's refusal of a DPoP request answers in the DPoP scheme too.
#[tokio::test]
async fn guards_answer_dpop_requests_in_the_dpop_scheme() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "ok" }).route_layer(tokengate::RequireScopes::all(["items:write"])),
        )
        .layer(gate.layer());
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).scope("items:read").sign();
    let proof = key.proof("GET", URL).token(&token).sign();
    let answer = send(&app, "GET", Some(&format!("DPoP {token}")), &[&proof]).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.challenges.len(), 1);
    assert!(
        answer.challenges[0].starts_with("DPoP algs=")
            && answer.challenges[0].ends_with("scope=\"items:write\""),
        "{:?}",
        answer.challenges
    );
}

/// What the review of this code found, each pinned: a `Host` that is not a
/// bare origin, two spellings of one URL, `typ` as a media type, `crit`,
/// a query token beside DPoP, and a full replay store.
#[tokio::test]
async fn hosts_spellings_types_and_a_full_store() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .allow_query_token(true)
        .dpop_replay_store(Arc::new(MemoryReplayStore::new(3)))
        .build()
        .await
        .unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let auth = format!("DPoP {token}");
    let with_host = |host: &str, proof: &str, uri: &str| {
        let request = Request::get(uri)
            .header("host", host)
            .header("authorization", auth.clone())
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap();
        let app = app.clone();
        async move { app.oneshot(request).await.unwrap().status() }
    };
    // A Host with a query (or userinfo) names no origin: refused, so one
    // proof cannot be sent again under endless "different" URLs.
    let proof = key.proof("GET", URL).token(&token).sign();
    for host in ["api.tokengate.test?1", "u@api.tokengate.test"] {
        assert_eq!(
            with_host(host, &proof, "/items").await,
            StatusCode::UNAUTHORIZED,
            "{host}"
        );
    }
    // Two spellings of one URL are one URL for replays.
    assert_eq!(with_host(HOST, &proof, "/items").await, StatusCode::OK);
    assert_eq!(
        with_host("API.TOKENGATE.TEST:80", &proof, "/items").await,
        StatusCode::UNAUTHORIZED
    );
    // `typ` is a media type; `crit` names an extension nobody understands.
    let typed = key
        .proof("GET", URL)
        .token(&token)
        .header("typ", "application/DPoP+JWT")
        .sign();
    assert_eq!(with_host(HOST, &typed, "/items").await, StatusCode::OK);
    let crit = key
        .proof("GET", URL)
        .token(&token)
        .header("crit", json!(["exp"]))
        .sign();
    refused(
        &send(&app, "GET", Some(&auth), &[&crit]).await,
        "the DPoP proof is malformed",
    );
    // One way to send the token: not also in the query.
    let proof = key.proof("GET", URL).token(&token).sign();
    assert_eq!(
        with_host(HOST, &proof, &format!("/items?access_token={token}")).await,
        StatusCode::BAD_REQUEST
    );
    // The store holds three proofs: the fourth is refused, not forgotten.
    let proof = key.proof("GET", URL).token(&token).sign();
    assert_eq!(with_host(HOST, &proof, "/items").await, StatusCode::OK);
    let proof = key.proof("GET", URL).token(&token).sign();
    assert_eq!(
        with_host(HOST, &proof, "/items").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// Server nonces (RFC 9449 §8, §9): a proof without one gets
/// `use_dpop_nonce` and a nonce in `DPoP-Nonce`; with it, in; another
/// replica sharing the secret accepts it too; a forged one is refused.
#[tokio::test]
async fn nonces_are_handed_out_and_shared_by_replicas() {
    let issuer = TestIssuer::start().await.unwrap();
    let secret = [42u8; 32];
    let replica = || async {
        builder(&issuer)
            .dpop_nonce(secret, std::time::Duration::from_secs(300))
            .build()
            .await
            .unwrap()
    };
    let (one, two) = (app(&replica().await), app(&replica().await));
    let key = DpopKey::new(Algorithm::EdDSA);
    let token = issuer.token().dpop_bound(&key).sign();
    let auth = format!("DPoP {token}");
    let request = |proof: &str| {
        Request::get("/items")
            .header("host", HOST)
            .header("authorization", auth.clone())
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let without = key.proof("GET", URL).token(&token).sign();
    let response = one.clone().oneshot(request(&without)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = response.headers()["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    for app in [&one, &two] {
        let proof = key
            .proof("GET", URL)
            .token(&token)
            .claim("nonce", nonce.clone())
            .sign();
        let response = app.clone().oneshot(request(&proof)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let forged = key
        .proof("GET", URL)
        .token(&token)
        .claim("nonce", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .sign();
    let response = one.clone().oneshot(request(&forged)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("dpop-nonce"));
    // A secret shorter than 32 bytes is a configuration error.
    assert!(
        builder(&issuer)
            .dpop_nonce([1u8; 16], std::time::Duration::from_secs(300))
            .build()
            .await
            .is_err()
    );
}

/// A guard's 401 to a bearer request (a step-up) offers DPoP too, as the
/// layer's own 401s do; its 403s stay in the scheme the client used.
#[tokio::test]
async fn guard_401s_offer_both_schemes() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = Router::new()
        .route(
            "/items",
            get(|| async { "ok" }).route_layer(tokengate::Require::new(
                tokengate::Requirement::acr(["urn:tokengate:mfa"]),
            )),
        )
        .layer(gate.layer());
    let bearer = issuer.token().sign();
    let answer = send(&app, "GET", Some(&format!("Bearer {bearer}")), &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenges.len(), 2, "{:?}", answer.challenges);
    assert!(answer.challenges[0].contains("insufficient_user_authentication"));
    assert!(answer.challenges[1].starts_with("DPoP algs="));
}

/// Under a nesting router the proof names the URL the client sent (with
/// the prefix), not the path the router hands the nested service.
#[tokio::test]
async fn a_nested_route_is_named_by_its_full_path() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let nested = Router::new().nest("/v1", app(&gate));
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let request = |proof: String| {
        Request::get("/v1/items")
            .header("host", HOST)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let full = key
        .proof("GET", "http://api.tokengate.test/v1/items")
        .token(&token)
        .sign();
    let stripped = key.proof("GET", URL).token(&token).sign();
    assert_eq!(
        nested
            .clone()
            .oneshot(request(full))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        nested
            .clone()
            .oneshot(request(stripped))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Behind a proxy, opted in: the origin proofs name comes from `Forwarded`
/// or `X-Forwarded-*`; without the opt-in those headers are ignored.
#[tokio::test]
async fn forwarded_origins_only_when_trusted() {
    let issuer = TestIssuer::start().await.unwrap();
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let public = "https://api.example.com/items";
    let request = |forwarded: &[(&str, &str)], proof: String| {
        let mut request = Request::get("/items")
            .header("host", "10.0.0.7:8080")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof);
        for (name, value) in forwarded {
            request = request.header(*name, *value);
        }
        request.body(Body::empty()).unwrap()
    };
    let trusting = app(&builder(&issuer)
        .dpop_trust_forwarded_headers(true)
        .build()
        .await
        .unwrap());
    let plain = app(&builder(&issuer).build().await.unwrap());
    for headers in [
        &[(
            "forwarded",
            "for=192.0.2.1;proto=https;host=api.example.com, for=10.0.0.1",
        )][..],
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "api.example.com"),
        ][..],
    ] {
        let proof = key.proof("GET", public).token(&token).sign();
        let status = trusting
            .clone()
            .oneshot(request(headers, proof))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::OK, "{headers:?}");
        let proof = key.proof("GET", public).token(&token).sign();
        let status = plain
            .clone()
            .oneshot(request(headers, proof))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "not trusted: {headers:?}");
    }
    // A forwarded host that is not a bare origin names no URL.
    let proof = key.proof("GET", public).token(&token).sign();
    let odd = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com/x?y"),
    ];
    let status = trusting
        .clone()
        .oneshot(request(&odd, proof))
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A member named twice refuses the proof, known or not (the fuzzer found
/// `"x":1,"x":2` accepted), as everywhere else in tokengate; so does one
/// whose value no JSON reader can hold.
#[tokio::test]
async fn a_member_named_twice_refuses_the_proof() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer).build().await.unwrap();
    let app = app(&gate);
    let key = DpopKey::new(Algorithm::ES256);
    let token = issuer.token().dpop_bound(&key).sign();
    let auth = format!("DPoP {token}");
    // Claims and header with a repeated member, signed by hand.
    let claims = key.proof("GET", URL).token(&token).sign();
    let payload = claims.split('.').nth(1).unwrap();
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    for twice in [
        decoded.replacen('{', r#"{"x":1,"x":2,"#, 1),
        decoded.replacen('{', r#"{"htm":"GET","#, 1),
        // Nor is a member no JSON reader can hold, though unread (the
        // fuzzer found `"jtd":1e999` accepted), as in tokens.
        decoded.replacen('{', r#"{"x":1e999,"#, 1),
        decoded.replacen('{', r#"{"x":["\ud800"],"#, 1),
    ] {
        let signed = key.proof("GET", URL).sign_raw_claims(twice.as_bytes());
        refused(
            &send(&app, "GET", Some(&auth), &[&signed]).await,
            "the DPoP proof is malformed",
        );
    }
    // The same in the header, and in its `jwk`; and `crit`, even `null`.
    let header = claims.split('.').next().unwrap();
    let header = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert!(header.contains(r#""jwk":{"#), "{header}");
    for (bad, description) in [
        (
            header.replacen('{', r#"{"x":1e999,"#, 1),
            "the DPoP proof is malformed",
        ),
        (
            header.replacen('{', r#"{"crit":null,"#, 1),
            "the DPoP proof is malformed",
        ),
        (
            header.replacen(r#""jwk":{"#, r#""jwk":{"x":1e999,"#, 1),
            "the DPoP proof's key is not a usable public key",
        ),
        (
            header.replacen(r#""jwk":{"#, r#""jwk":{"x":1,"x":2,"#, 1),
            "the DPoP proof's key is not a usable public key",
        ),
    ] {
        let signed = key
            .proof("GET", URL)
            .sign_raw(bad.as_bytes(), decoded.as_bytes());
        refused(
            &send(&app, "GET", Some(&auth), &[&signed]).await,
            description,
        );
    }
    // The header as it was, signed the same way, is accepted: the cases
    // above fail for what they add.
    let signed = key
        .proof("GET", URL)
        .sign_raw(header.as_bytes(), decoded.as_bytes());
    let answer = send(&app, "GET", Some(&auth), &[&signed]).await;
    assert_eq!(answer.status, StatusCode::OK);
}
