//! Interop with a real, OpenID-certified authorization server:
//! `oidc-provider` (Node, the fixture in `tests/oidc-provider`), driven
//! through its real grants, in front of an axum API behind tokengate served
//! over HTTP on 127.0.0.1.
//!
//! Needs Node.js >= 20 and npm; `npm ci` runs in `tests/oidc-provider` when
//! its `node_modules` is missing. Without Node the tests fail, saying what
//! to install: they never pass silently.
//!
//! Most tests share one fixture process (they only mint their own tokens);
//! key rotation and the outage test start and stop their own.

mod common;
#[path = "interop/harness.rs"]
mod harness;

use std::time::Duration;

use common::assert_invalid_token;
use harness::{
    AUDIENCE, Api, OTHER_AUDIENCE, Provider, TempDir, gate, gate_builder, genkeys, jwt_claims,
    jwt_header, shared,
};
use http::StatusCode;
use serde_json::{Value, json};

/// A client-credentials JWT of `client_id`, signed with `alg`, reaches the
/// API with the claims the authorization server put in it.
async fn client_credentials_jwt_is_accepted(client_id: &str, alg: &str) {
    let idp = shared();
    let token = idp.token(client_id, "items:read items:write").await;
    let header = jwt_header(&token);
    assert_eq!(header["alg"], alg, "{header}");
    assert_eq!(header["typ"], "at+jwt", "{header}");
    let claims = jwt_claims(&token);

    let gate = gate(idp).await;
    let api = Api::serve(&gate).await;
    let answer = api.me(&token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["source"], "jwt");
    assert_eq!(me["client_id"], client_id);
    assert_eq!(me["sub"], client_id);
    assert_eq!(me["scopes"], json!(["items:read", "items:write"]));
    assert_eq!(me["iss"], idp.issuer());
    assert_eq!(me["aud"], json!([AUDIENCE]));
    assert_eq!(me["jti"], claims["jti"]);

    // oidc-provider's tokens are RFC 9068 tokens, also by the strict rules.
    let strict = gate_builder(idp)
        .strict_rfc9068(true)
        .build()
        .await
        .expect("strict gate");
    let principal = strict.verify(&token).await.expect("strict RFC 9068");
    assert_eq!(principal.client_id(), Some(client_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_jwt_es256_is_accepted() {
    client_credentials_jwt_is_accepted("cc-es256", "ES256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_jwt_rs256_is_accepted() {
    client_credentials_jwt_is_accepted("cc-rs256", "RS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_jwt_ps256_is_accepted() {
    client_credentials_jwt_is_accepted("cc-ps256", "PS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_jwt_eddsa_is_accepted() {
    client_credentials_jwt_is_accepted("cc-eddsa", "EdDSA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_those_granted_and_a_refused_scope_is_absent() {
    let idp = shared();
    let api = Api::serve(&gate(idp).await).await;

    let all = idp.token("cc-es256", "items:read items:write admin").await;
    let answer = api.me(&all).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    assert_eq!(
        answer.json()["scopes"],
        json!(["admin", "items:read", "items:write"])
    );

    // cc-readonly may have items:read only: asking for more is refused by
    // the authorization server, not narrowed.
    let refused = idp
        .client_credentials("cc-readonly", Some("items:read items:write"), AUDIENCE)
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.error(), Some("invalid_scope"), "{refused:?}");
    assert_eq!(refused.json["scope"], "items:write", "{refused:?}");

    let read_only = idp.token("cc-readonly", "items:read").await;
    let answer = api.me(&read_only).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["client_id"], "cc-readonly");
    assert_eq!(me["scopes"], json!(["items:read"]));

    // No scope asked: the token has no `scope` claim, and no scopes.
    let none = idp
        .client_credentials("cc-readonly", None, AUDIENCE)
        .await
        .access_token()
        .to_owned();
    assert_eq!(jwt_claims(&none).get("scope"), None);
    let answer = api.me(&none).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    assert_eq!(answer.json()["scopes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_token_is_introspected() {
    let idp = shared();
    let token = idp.token("cc-opaque", "items:read admin").await;
    assert!(!token.contains('.'), "expected an opaque token");
    let api = Api::serve(&gate(idp).await).await;

    let answer = api.me(&token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["source"], "introspection");
    assert_eq!(me["client_id"], "cc-opaque");
    assert_eq!(me["scopes"], json!(["admin", "items:read"]));
    assert_eq!(me["iss"], idp.issuer());
    assert_eq!(me["aud"], json!([AUDIENCE]));
    // A client-credentials token has no subject.
    assert_eq!(me["sub"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_opaque_token_is_refused_once_its_cached_answer_expires() {
    const CACHE_TTL: Duration = Duration::from_secs(1);
    let idp = shared();
    let gate = gate_builder(idp)
        .introspection_cache_ttl(CACHE_TTL)
        .build()
        .await
        .expect("gate");
    let api = Api::serve(&gate).await;
    let token = idp.token("cc-opaque", "items:read").await;

    let answer = api.me(&token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    assert_eq!(answer.json()["source"], "introspection");

    assert_eq!(idp.revoke("cc-opaque", &token).await, 200);
    // The active answer is still cached: that is the revocation latency
    // (RFC 7662 §4), bounded by introspection_cache_ttl.
    let answer = api.me(&token).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());

    tokio::time::sleep(CACHE_TTL + Duration::from_millis(500)).await;
    assert_invalid_token(&api.me(&token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_with_pkce_then_refresh() {
    let idp = shared();
    let api = Api::serve(&gate(idp).await).await;

    let tokens = idp
        .authorization_code("app", "alice", "openid items:read items:write")
        .await;
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(jwt_header(access)["typ"], "at+jwt");
    let answer = api.me(access).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["sub"], "alice");
    assert_eq!(me["client_id"], "app");
    assert_eq!(me["source"], "jwt");
    assert_eq!(me["scopes"], json!(["items:read", "items:write"]));

    // Neither the ID token (aud = the client) nor the refresh token is an
    // access token for this API.
    let id_token = tokens["id_token"].as_str().expect("id_token");
    assert_invalid_token(&api.me(id_token).await);
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh_token");
    assert_invalid_token(&api.me(refresh_token).await);

    // Refresh: a new access token with the full grant (and a new refresh
    // token: a public client's rotate).
    let renewed = idp.refresh("app", refresh_token, None).await.ok();
    let access2 = renewed["access_token"].as_str().expect("access_token");
    assert_ne!(access2, access);
    let answer = api.me(access2).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me2 = answer.json();
    assert_eq!(me2["sub"], "alice");
    assert_eq!(me2["scopes"], json!(["items:read", "items:write"]));
    assert_ne!(me2["jti"], me["jti"]);

    // Refresh again, narrowing the scope.
    let refresh_token2 = renewed["refresh_token"].as_str().expect("refresh_token");
    let narrowed = idp
        .refresh("app", refresh_token2, Some("items:read"))
        .await
        .ok();
    let answer = api
        .me(narrowed["access_token"].as_str().expect("access_token"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    assert_eq!(answer.json()["scopes"], json!(["items:read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_token_from_a_user_login_is_introspected_with_its_subject() {
    let idp = shared();
    let api = Api::serve(&gate(idp).await).await;
    let tokens = idp
        .authorization_code("app-opaque", "dave", "items:read")
        .await;
    let access = tokens["access_token"].as_str().expect("access_token");
    assert!(!access.contains('.'), "expected an opaque token");
    let answer = api.me(access).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["source"], "introspection");
    assert_eq!(me["sub"], "dave");
    assert_eq!(me["client_id"], "app-opaque");
    assert_eq!(me["scopes"], json!(["items:read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_authorization_grant() {
    let idp = shared();
    let api = Api::serve(&gate(idp).await).await;
    let tokens = idp.device_flow("app", "bob", "items:read").await;
    let access = tokens["access_token"].as_str().expect("access_token");
    let answer = api.me(access).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let me = answer.json();
    assert_eq!(me["sub"], "bob");
    assert_eq!(me["client_id"], "app");
    assert_eq!(me["source"], "jwt");
    assert_eq!(me["scopes"], json!(["items:read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_audience_is_refused() {
    let idp = shared();
    let api = Api::serve(&gate(idp).await).await;

    let jwt = idp
        .client_credentials("cc-es256", Some("items:read"), OTHER_AUDIENCE)
        .await
        .access_token()
        .to_owned();
    assert_eq!(jwt_claims(&jwt)["aud"], OTHER_AUDIENCE);
    assert_invalid_token(&api.me(&jwt).await);

    let opaque = idp
        .client_credentials("cc-opaque", Some("items:read"), OTHER_AUDIENCE)
        .await
        .access_token()
        .to_owned();
    assert_invalid_token(&api.me(&opaque).await);
}

/// Hard rotation: the server restarts on the same port with a new key set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_new_kid_is_fetched_and_removed_key_is_refused() {
    let dir = TempDir::new();
    let keys_a = genkeys(dir.path(), "a");
    let keys_b = genkeys(dir.path(), "b");

    let mut idp = Provider::start(harness::Options {
        port: 0,
        keys_file: Some(keys_a),
    });
    let port = idp.port();
    let old = idp.token("cc-es256", "items:read").await;
    let old_unseen = idp.token("cc-es256", "items:read").await;
    let old_kid = jwt_header(&old)["kid"].as_str().expect("kid").to_owned();
    assert!(old_kid.starts_with("a-es256-"), "{old_kid}");

    let gate = gate(&idp).await;
    let api = Api::serve(&gate).await;
    let answer = api.me(&old).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    let fetches = gate.jwks_health().fetches;

    idp.stop();
    let idp = Provider::restart(port, Some(keys_b));
    let new = idp.token("cc-es256", "items:read").await;
    let new_kid = jwt_header(&new)["kid"].as_str().expect("kid").to_owned();
    assert!(new_kid.starts_with("b-es256-"), "{new_kid}");

    // Unknown kid: the gate refetches the key set at once.
    let answer = api.me(&new).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
    assert_eq!(answer.json()["client_id"], "cc-es256");
    assert_eq!(gate.jwks_health().fetches, fetches + 1);

    // Tokens of the removed key: refused now that the new set is loaded,
    // the one verified before too (it left the cache with its key).
    assert_invalid_token(&api.me(&old).await);
    assert_invalid_token(&api.me(&old_unseen).await);
    let health = gate.jwks_health();
    assert!(health.usable, "{health:?}");
    assert_eq!(health.consecutive_failures, 0, "{health:?}");
}

/// The authorization server goes away: cached keys keep JWTs working; an
/// opaque token with no cached answer cannot be decided (503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_cached_keys_still_verify_uncached_opaque_is_503() {
    let mut idp = Provider::start(harness::Options::default());
    let gate = gate_builder(&idp)
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("gate");
    let api = Api::serve(&gate).await;
    let seen = idp.token("cc-es256", "items:read").await;
    let unseen = idp.token("cc-rs256", "items:read").await;
    let opaque = idp.token("cc-opaque", "items:read").await;
    // A well-formed token whose kid this server never published.
    let foreign_kid = shared().token("cc-eddsa", "items:read").await;
    let answer = api.me(&seen).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());

    idp.stop();

    for token in [&seen, &unseen] {
        let answer = api.me(token).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.challenge());
        assert_eq!(answer.json()["source"], "jwt");
    }
    assert!(gate.jwks_health().usable);

    let answer = api.me(&opaque).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers["retry-after"], "5");
    assert_eq!(answer.challenge(), None);

    // An unknown kid cannot be told from a rotation while the key set
    // cannot be fetched: 503 too, not 401.
    let answer = api.me(&foreign_kid).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.challenge()
    );
    assert_eq!(answer.headers["retry-after"], "5");
}

/// Requirements beyond scopes with oidc-provider's own tokens: the
/// `cc-auditor` clients' tokens carry `roles` and a multi-factor `acr`
/// (its `extraTokenClaims`), as a JWT and as an introspection answer;
/// other clients' tokens are refused with the answers RFC 6750 and RFC 9470
/// prescribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_and_a_step_up_acr_from_oidc_provider_tokens() {
    use axum::routing::get;
    use tokengate::{Require, Requirement, RoleSource};

    let idp = shared();
    let gate = gate_builder(idp)
        .roles_from(RoleSource::claim("roles"))
        .build()
        .await
        .expect("gate");
    let app = axum::Router::new()
        .route(
            "/audit",
            get(|| async { "audit log" }).route_layer(Require::new(Requirement::role("auditor"))),
        )
        .route(
            "/export",
            get(|| async { "export" }).route_layer(Require::new(
                Requirement::scopes_all(["items:read"])
                    .and(Requirement::acr(["urn:tokengate:mfa"]))
                    .and(Requirement::max_auth_age(Duration::from_secs(300))),
            )),
        )
        .layer(gate.layer());
    let api = Api::serve_router(app).await;

    for client in ["cc-auditor", "cc-auditor-opaque"] {
        let token = idp.token(client, "items:read").await;
        for path in ["/audit", "/export"] {
            let answer = api.get(path, &token).await;
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{client} {path}: {:?}",
                answer.challenge()
            );
        }
    }
    let auditor = idp.token("cc-auditor", "items:read").await;
    assert_eq!(jwt_claims(&auditor)["roles"], json!(["auditor"]));

    let plain = idp.token("cc-es256", "items:read").await;
    let answer = api.get("/audit", &plain).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_code().as_deref(), Some("insufficient_scope"));
    assert!(!answer.challenge().unwrap().contains("scope="));
    let answer = api.get("/export", &plain).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer.challenge().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"urn:tokengate:mfa\"")
            && challenge.contains("max_age=300"),
        "{challenge}"
    );
}

/// DPoP with oidc-provider's own tokens: the client asks for a token with a
/// proof (RFC 9449 §5), oidc-provider binds it (`token_type` DPoP,
/// `cnf.jkt`, as a JWT and as an opaque token introspected), and the API
/// takes it only with a fresh proof of the same key, once per proof.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_bound_tokens_from_oidc_provider() {
    use axum::routing::get;
    use tokengate::Algorithm;
    use tokengate::testing::DpopKey;

    let idp = shared();
    // No public URL: the proofs name the Host the client sends, the
    // loopback address the API listens on.
    let gate = gate_builder(idp).build().await.expect("gate");
    let app = axum::Router::new()
        .route("/items", get(|| async { "items" }))
        .layer(gate.layer());
    let api = Api::serve_router(app).await;
    let url = format!("{}/items", api.base());

    for (client, alg) in [
        ("cc-es256", Algorithm::ES256),
        ("cc-opaque", Algorithm::EdDSA),
    ] {
        let key = DpopKey::new(alg);
        let answer = idp.dpop_token(client, "items:read", &key).await;
        let json = answer.ok();
        assert_eq!(json["token_type"], "DPoP", "{json}");
        let token = json["access_token"].as_str().unwrap().to_owned();
        if client == "cc-es256" {
            assert_eq!(jwt_claims(&token)["cnf"]["jkt"], key.thumbprint());
        }
        let proof = key.proof("GET", &url).token(&token).sign();
        let ok = api
            .get_with("/items", &format!("DPoP {token}"), Some(&proof))
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{client}: {:?}", ok.challenge());
        // The same proof again, a bearer presentation, another key's proof.
        let replay = api
            .get_with("/items", &format!("DPoP {token}"), Some(&proof))
            .await;
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
        assert_eq!(replay.error_code().as_deref(), Some("invalid_dpop_proof"));
        let bearer = api.get("/items", &token).await;
        assert_eq!(bearer.status, StatusCode::UNAUTHORIZED);
        let other = DpopKey::new(alg).proof("GET", &url).token(&token).sign();
        let stolen = api
            .get_with("/items", &format!("DPoP {token}"), Some(&other))
            .await;
        assert_eq!(stolen.status, StatusCode::UNAUTHORIZED, "{client}");
    }
}
