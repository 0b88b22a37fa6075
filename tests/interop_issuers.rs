//! Several trusted issuers in one gate, against real authorization servers:
//! three `oidc-provider` instances (Node, the fixture in
//! `tests/oidc-provider`) on 127.0.0.1, two of them (A and B) trusted by
//! the gate of an axum API served over HTTP, the third (C) not.
//!
//! They show, with the servers' own tokens and keys, the rules that
//! `tests/several_issuers.rs` shows against the in-process test issuer:
//! each trusted issuer's JWTs are accepted and say whose they are; an
//! untrusted issuer's are refused without any key fetch; when the two
//! trusted servers publish the same `kid`s for different keys, neither's
//! key verifies a token claiming the other; an outage or a flood of unknown
//! `kid`s at one issuer does not touch the other; and opaque tokens are
//! introspected by the one issuer the gate chooses.
//!
//! Needs Node.js >= 20 and npm; `npm ci` runs in `tests/oidc-provider` when
//! its `node_modules` is missing. Without Node the tests fail, saying what
//! to install: they never pass silently.
//!
//! Most tests share three fixture processes (they only mint their own
//! tokens); the kid-collision and outage tests start their own.

mod common;
#[allow(dead_code)] // This suite uses part of the harness only.
#[path = "interop/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Answer, assert_invalid_token_saying};
use harness::{
    AUDIENCE, Api, Options, Provider, RS_CLIENT_ID, RS_CLIENT_SECRET, TempDir, genkeys, jwt_claims,
    jwt_header,
};
use http::StatusCode;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::Value;
use tokengate::{Issuer, TokenGate, TokenGateBuilder};

/// The clients of the fixture whose tokens are JWTs, one per algorithm.
const JWT_CLIENTS: [&str; 4] = ["cc-es256", "cc-rs256", "cc-ps256", "cc-eddsa"];

/// Why a token is refused, as the challenge's `error_description` says.
const OTHER_ISSUER: &str = "issued by another issuer";
const BAD_SIGNATURE: &str = "signature is invalid";
const UNKNOWN_KEY: &str = "signing key is unknown";
const INACTIVE: &str = "is not active";

// ---- the fixtures ------------------------------------------------------------

/// A and B, trusted; C, trusted by no gate of this suite.
struct Trio {
    a: Provider,
    b: Provider,
    c: Provider,
}

/// Three fixtures shared by the tests that stop nothing. They live as long
/// as the test binary (see `harness::shared`).
fn trio() -> &'static Trio {
    static TRIO: OnceLock<Trio> = OnceLock::new();
    TRIO.get_or_init(|| {
        let [a, b, c] = start_all([Options::default(), Options::default(), Options::default()]);
        Trio { a, b, c }
    })
}

/// Starts fixtures side by side: each takes a while to come up.
fn start_all<const N: usize>(options: [Options; N]) -> [Provider; N] {
    std::thread::scope(|s| {
        options
            .map(|o| s.spawn(move || Provider::start(o)))
            .map(|start| start.join().expect("a fixture did not start"))
    })
}

// ---- gates -------------------------------------------------------------------

/// A gate trusting A and B, for the API's audience.
fn two_issuers(a: &Provider, b: &Provider) -> TokenGateBuilder {
    TokenGate::builder()
        .issuers([a.issuer(), b.issuer()])
        .audience(AUDIENCE)
}

async fn build(builder: TokenGateBuilder, servers: &[&Provider]) -> TokenGate {
    builder.build().await.unwrap_or_else(|e| {
        let logs: Vec<String> = servers
            .iter()
            .map(|s| format!("--- {} stderr ---\n{}", s.issuer(), s.stderr()))
            .collect();
        panic!("gate: {e}\n{}", logs.join("\n"))
    })
}

/// Each trusted issuer's key set fetches so far, in the gate's order.
fn fetches(gate: &TokenGate) -> Vec<u64> {
    gate.health().iter().map(|h| h.keys.fetches).collect()
}

/// Asserts a 200 whose principal is `issuer`'s, verified by `source`
/// (`jwt` or `introspection`); its `/me` JSON.
#[track_caller]
fn assert_accepted_as(answer: &Answer, issuer: &str, source: &str) -> Value {
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["iss"], issuer, "{me}");
    assert_eq!(me["source"], source, "{me}");
    me
}

// ---- tokens made here --------------------------------------------------------

/// `token` with its header's `kid` replaced; claims and (now wrong)
/// signature unchanged.
fn with_kid(token: &str, kid: &str) -> String {
    let mut header = jwt_header(token);
    header["kid"] = kid.into();
    let (_, rest) = token.split_once('.').expect("a JWS compact token");
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// A kid no server published.
fn random_kid() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("randomness");
    format!("made-up-{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The claims of `token` with `iss` replaced.
fn claims_with_iss(token: &str, iss: &str) -> Value {
    let mut claims = jwt_claims(token);
    claims["iss"] = iss.into();
    claims
}

/// An RFC 9068 access token (`typ: at+jwt`) with `claims`, signed with the
/// private JWK `jwk` (ES256 or EdDSA, as `genkeys` writes them) and naming
/// `kid`.
fn sign(jwk: &Value, kid: &str, claims: &Value) -> String {
    let field = |name: &str| {
        let b64 = jwk[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", jwk["kid"]));
        URL_SAFE_NO_PAD.decode(b64).expect("base64url key field")
    };
    let (alg, key) = match jwk["alg"].as_str() {
        Some("ES256") => {
            let public = [&[4u8][..], &field("x"), &field("y")].concat();
            let pair = EcdsaKeyPair::from_private_key_and_public_key(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &field("d"),
                &public,
            )
            .expect("a P-256 private JWK");
            let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
            (
                jsonwebtoken::Algorithm::ES256,
                EncodingKey::from_ec_der(pkcs8.as_ref()),
            )
        }
        Some("EdDSA") => {
            let pair = Ed25519KeyPair::from_seed_and_public_key(&field("d"), &field("x"))
                .expect("an Ed25519 private JWK");
            let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
            (
                jsonwebtoken::Algorithm::EdDSA,
                EncodingKey::from_ed_der(pkcs8.as_ref()),
            )
        }
        other => panic!("cannot sign with a {other:?} key"),
    };
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

// ---- key files -----------------------------------------------------------------

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read a keys file");
    serde_json::from_str(&text).expect("a JSON keys file")
}

/// The private JWK of `alg` in a `genkeys` file.
fn private_jwk(keys: &Value, alg: &str) -> Value {
    keys["keys"]
        .as_array()
        .expect("a JWKS")
        .iter()
        .find(|k| k["alg"] == alg)
        .unwrap_or_else(|| panic!("no {alg} key in {keys}"))
        .clone()
}

/// Rewrites `b_file` so that each of its keys has the `kid` of `a_file`'s
/// key of the same `alg`: same kids, other key material.
fn copy_kids(a_file: &Path, b_file: &Path) {
    let a = read_json(a_file);
    let mut b = read_json(b_file);
    for key in b["keys"].as_array_mut().expect("a JWKS") {
        let alg = key["alg"].as_str().expect("alg").to_owned();
        let twin = private_jwk(&a, &alg);
        key["kid"] = twin["kid"].clone();
        assert_ne!(*key, twin, "B's {alg} key should differ from A's");
    }
    std::fs::write(b_file, b.to_string()).expect("write B's keys file");
}

// ---- the tests -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_of_both_trusted_issuers_are_accepted_and_name_their_issuer() {
    let Trio { a, b, .. } = trio();
    let builders = [
        two_issuers(a, b),
        TokenGate::builder()
            .issuer(a.issuer())
            .issuer(b.issuer())
            .audience(AUDIENCE),
    ];
    for builder in builders {
        let gate = build(builder, &[a, b]).await;
        let api = Api::serve(&gate).await;
        for idp in [a, b] {
            for client in JWT_CLIENTS {
                let token = idp.token(client, "items:read").await;
                let me = assert_accepted_as(&api.me(&token).await, idp.issuer(), "jwt");
                assert_eq!(me["client_id"], client, "{me}");
                assert_eq!(me["jti"], jwt_claims(&token)["jti"], "{me}");
            }
        }
        let health = gate.health();
        assert_eq!(
            health.iter().map(|h| h.issuer.as_str()).collect::<Vec<_>>(),
            [a.issuer(), b.issuer()],
            "{health:?}"
        );
        for h in &health {
            assert!(h.keys.usable, "{h:?}");
            assert_eq!(h.keys.key_count, 4, "{h:?}");
            assert_eq!(h.keys.consecutive_failures, 0, "{h:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_an_untrusted_issuer_is_refused_without_a_key_fetch() {
    let Trio { a, b, c } = trio();
    let gate = build(two_issuers(a, b), &[a, b]).await;
    let api = Api::serve(&gate).await;
    let before = fetches(&gate);
    for client in JWT_CLIENTS {
        let token = c.token(client, "items:read").await;
        assert_eq!(jwt_claims(&token)["iss"], c.issuer());
        // Its kid is unknown at A and at B: a trusted issuer's unknown kid
        // would be looked up, an untrusted issuer's is not.
        assert_invalid_token_saying(&api.me(&token).await, OTHER_ISSUER);
    }
    assert_eq!(
        fetches(&gate),
        before,
        "C's tokens made the gate fetch keys: {:?}",
        gate.health()
    );
    // The gate still serves its own issuers.
    let token = b.token("cc-es256", "items:read").await;
    assert_accepted_as(&api.me(&token).await, b.issuer(), "jwt");
}

/// A and B publish the same kids for different keys: each token is checked
/// with the key of the issuer it claims, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_kids_never_let_one_issuers_key_verify_the_others_token() {
    let dir = TempDir::new();
    let a_file = genkeys(dir.path(), "a");
    let b_file = genkeys(dir.path(), "b");
    copy_kids(&a_file, &b_file);
    let (a_keys, b_keys) = (read_json(&a_file), read_json(&b_file));
    let [a, b] = start_all([
        Options {
            port: 0,
            keys_file: Some(a_file),
        },
        Options {
            port: 0,
            keys_file: Some(b_file),
        },
    ]);
    let gate = build(two_issuers(&a, &b), &[&a, &b]).await;
    let api = Api::serve(&gate).await;

    // The servers' own tokens: B's carry A's kids, and are B's.
    let mut real = HashMap::new();
    for client in JWT_CLIENTS {
        let token_a = a.token(client, "items:read").await;
        let token_b = b.token(client, "items:read").await;
        let kid = jwt_header(&token_a)["kid"].clone();
        assert!(kid.as_str().is_some_and(|k| k.starts_with("a-")), "{kid}");
        assert_eq!(jwt_header(&token_b)["kid"], kid, "{client}: kids differ");
        assert_accepted_as(&api.me(&token_a).await, a.issuer(), "jwt");
        assert_accepted_as(&api.me(&token_b).await, b.issuer(), "jwt");
        real.insert(client, (token_a, token_b));
    }
    let before = fetches(&gate);

    for (client, alg) in [("cc-es256", "ES256"), ("cc-eddsa", "EdDSA")] {
        let (token_a, token_b) = &real[client];
        let kid = jwt_header(token_a)["kid"].as_str().expect("kid").to_owned();
        let (key_a, key_b) = (private_jwk(&a_keys, alg), private_jwk(&b_keys, alg));

        // What is signed here verifies when it tells the truth.
        let honest = sign(&key_b, &kid, &jwt_claims(token_b));
        assert_accepted_as(&api.me(&honest).await, b.issuer(), "jwt");

        // Claims A, signed with B's key: A's key of that kid is tried, and
        // does not match.
        let as_a = sign(&key_b, &kid, &claims_with_iss(token_b, a.issuer()));
        assert_invalid_token_saying(&api.me(&as_a).await, BAD_SIGNATURE);
        // Claims B, signed with A's key.
        let as_b = sign(&key_a, &kid, &claims_with_iss(token_a, b.issuer()));
        assert_invalid_token_saying(&api.me(&as_b).await, BAD_SIGNATURE);
    }
    // A known kid with a bad signature is no reason to refetch.
    assert_eq!(fetches(&gate), before, "{:?}", gate.health());
}

/// A goes away: B is untouched, and A's cached keys keep A's tokens working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_at_one_issuer_leaves_the_other_and_cached_keys_working() {
    let b = &trio().b;
    let mut a = Provider::start(Options::default());
    let gate = build(
        two_issuers(&a, b)
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(2)),
        &[&a, b],
    )
    .await;
    let api = Api::serve(&gate).await;
    let seen_a = a.token("cc-es256", "items:read").await;
    let unseen_a = a.token("cc-es256", "items:read").await;
    let seen_b = b.token("cc-es256", "items:read").await;
    assert_accepted_as(&api.me(&seen_a).await, a.issuer(), "jwt");
    assert_accepted_as(&api.me(&seen_b).await, b.issuer(), "jwt");
    let before = fetches(&gate);
    let issuer_a = a.issuer().to_owned();

    a.stop();

    // A's key is cached: its tokens verify, the one never seen too.
    for token in [&seen_a, &unseen_a] {
        assert_accepted_as(&api.me(token).await, &issuer_a, "jwt");
    }
    // B's tokens, old and new.
    let unseen_b = b.token("cc-rs256", "items:read").await;
    for token in [&seen_b, &unseen_b] {
        assert_accepted_as(&api.me(token).await, b.issuer(), "jwt");
    }
    // A kid A never published cannot be looked up now: an outage (503).
    let answer = api.me(&with_kid(&seen_a, &random_kid())).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.challenge()
    );
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );

    let health = gate.health();
    assert!(health[0].keys.consecutive_failures > 0, "{health:?}");
    assert!(health[0].keys.usable, "A's cached keys: {health:?}");
    assert!(health[1].keys.usable, "{health:?}");
    assert_eq!(health[1].keys.consecutive_failures, 0, "{health:?}");
    assert_eq!(health[1].keys.last_error, None, "{health:?}");
    assert_eq!(health[1].keys.fetches, before[1], "{health:?}");
    // And B's tokens still get in after A's failures.
    let later_b = b.token("cc-eddsa", "items:read").await;
    assert_accepted_as(&api.me(&later_b).await, b.issuer(), "jwt");
}

/// Unknown kids at A spend A's refresh budget (two per 30 s by default),
/// not B's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kid_flood_at_one_issuer_spends_only_its_refresh_budget() {
    const BUDGET: u64 = 2;
    let Trio { a, b, .. } = trio();
    let gate = build(two_issuers(a, b), &[a, b]).await;
    let api = Arc::new(Api::serve(&gate).await);
    let real_a = a.token("cc-es256", "items:read").await;
    let real_b = b.token("cc-es256", "items:read").await;
    assert_accepted_as(&api.me(&real_b).await, b.issuer(), "jwt");
    let before = fetches(&gate);

    let forged = (0..50).map(|_| with_kid(&real_a, &random_kid()));
    let answers = common::flood(forged, |token| {
        let api = Arc::clone(&api);
        async move { api.me(&token).await }
    })
    .await;
    for answer in &answers {
        assert_invalid_token_saying(answer, UNKNOWN_KEY);
    }
    // A few more, one at a time: whatever the flood left of A's budget is
    // spent, then nothing more is fetched.
    for _ in 0..3 {
        let answer = api.me(&with_kid(&real_a, &random_kid())).await;
        assert_invalid_token_saying(&answer, UNKNOWN_KEY);
    }
    let after = fetches(&gate);
    assert_eq!(after[0], before[0] + BUDGET, "{:?}", gate.health());
    assert_eq!(after[1], before[1], "the flood at A fetched at B");

    // B's tokens keep getting in, a new one too.
    let new_b = b.token("cc-ps256", "items:read").await;
    for token in [&real_b, &new_b] {
        assert_accepted_as(&api.me(token).await, b.issuer(), "jwt");
    }
    // B's budget is whole: B's own unknown kid is looked up at once.
    let answer = api.me(&with_kid(&real_b, &random_kid())).await;
    assert_invalid_token_saying(&answer, UNKNOWN_KEY);
    let last = fetches(&gate);
    assert_eq!(last[1], before[1] + 1, "{:?}", gate.health());
    assert_eq!(last[0], after[0], "{:?}", gate.health());
}

/// The three servers' opaque tokens for the API.
async fn opaque_tokens(trio: &Trio) -> [String; 3] {
    let mut tokens = Vec::new();
    for idp in [&trio.a, &trio.b, &trio.c] {
        let token = idp.token("cc-opaque", "items:read").await;
        assert!(!token.contains('.'), "expected an opaque token: {token}");
        tokens.push(token);
    }
    tokens.try_into().expect("three tokens")
}

/// RFC 7662 gives no way to tell an opaque token's issuer: one issuer
/// introspects them all, the first unless the gate names another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_go_to_the_first_issuer_unless_another_is_named() {
    let trio = trio();
    let Trio { a, b, .. } = trio;
    let [opaque_a, opaque_b, opaque_c] = opaque_tokens(trio).await;

    // The gate's credentials are the first issuer's: A introspects, and
    // knows its own tokens only.
    let by_a = build(
        two_issuers(a, b).introspection_credentials(RS_CLIENT_ID, RS_CLIENT_SECRET),
        &[a, b],
    )
    .await;
    let api = Api::serve(&by_a).await;
    let me = assert_accepted_as(&api.me(&opaque_a).await, a.issuer(), "introspection");
    assert_eq!(me["client_id"], "cc-opaque", "{me}");
    assert_invalid_token_saying(&api.me(&opaque_b).await, INACTIVE);
    assert_invalid_token_saying(&api.me(&opaque_c).await, INACTIVE);

    // Named: B introspects.
    let by_b = build(
        two_issuers(a, b)
            .introspection_credentials(RS_CLIENT_ID, RS_CLIENT_SECRET)
            .introspecting_issuer(b.issuer()),
        &[a, b],
    )
    .await;
    let api = Api::serve(&by_b).await;
    assert_accepted_as(&api.me(&opaque_b).await, b.issuer(), "introspection");
    assert_invalid_token_saying(&api.me(&opaque_a).await, INACTIVE);
    assert_invalid_token_saying(&api.me(&opaque_c).await, INACTIVE);
}

/// Credentials of an issuer's own make it the introspecting one; with a
/// router, each issuer introspects the tokens routed to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_issuer_may_introspect_with_its_own_credentials() {
    let trio = trio();
    let Trio { a, b, c } = trio;
    let [opaque_a, opaque_b, opaque_c] = opaque_tokens(trio).await;
    let own = |idp: &Provider| {
        Issuer::new(idp.issuer()).introspection_credentials(RS_CLIENT_ID, RS_CLIENT_SECRET)
    };

    // Only B has credentials: B introspects, though A comes first.
    let by_b = build(
        TokenGate::builder()
            .audience(AUDIENCE)
            .issuer(a.issuer())
            .trust(own(b)),
        &[a, b],
    )
    .await;
    let api = Api::serve(&by_b).await;
    assert_accepted_as(&api.me(&opaque_b).await, b.issuer(), "introspection");
    assert_invalid_token_saying(&api.me(&opaque_a).await, INACTIVE);

    // Both have credentials, and a router knows whose each token is (as a
    // prefix would tell); C's is routed nowhere.
    let made_by = Arc::new(Mutex::new(HashMap::from([
        (opaque_a.clone(), a.issuer().to_owned()),
        (opaque_b.clone(), b.issuer().to_owned()),
    ])));
    let router = Arc::clone(&made_by);
    let routed = build(
        TokenGate::builder()
            .audience(AUDIENCE)
            .trust(own(a))
            .trust(own(b))
            .opaque_token_issuer(move |token| router.lock().unwrap().get(token).cloned()),
        &[a, b],
    )
    .await;
    let api = Api::serve(&routed).await;
    assert_accepted_as(&api.me(&opaque_a).await, a.issuer(), "introspection");
    assert_accepted_as(&api.me(&opaque_b).await, b.issuer(), "introspection");
    assert_invalid_token_saying(&api.me(&opaque_c).await, OTHER_ISSUER);
    // Routed to C, which is no trusted issuer: refused too.
    made_by
        .lock()
        .unwrap()
        .insert(opaque_c.clone(), c.issuer().to_owned());
    assert_invalid_token_saying(&api.me(&opaque_c).await, OTHER_ISSUER);
}
