//! Several trusted issuers in one gate: routing by the token's exact `iss`
//! without trusting it (no fetch for an unknown one, a key of one issuer
//! never verifies a token claiming another, even when `kid`s collide),
//! isolation of refresh budgets and outages, per-issuer settings and
//! health, and opaque tokens whose introspection answer names another
//! trusted issuer.

use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{
    Algorithm, AuthError, BuildError, InvalidToken, Issuer, TokenGate, TokenGateBuilder,
    Unavailable,
};

const AUDIENCE: &str = "https://api.example.com";

async fn two() -> (TestIssuer, TestIssuer) {
    (
        TestIssuer::start().await.unwrap(),
        TestIssuer::start().await.unwrap(),
    )
}

fn builder(a: &TestIssuer, b: &TestIssuer) -> TokenGateBuilder {
    TokenGate::builder()
        .issuer(a.issuer())
        .issuer(b.issuer())
        .audience(AUDIENCE)
}

async fn gate(a: &TestIssuer, b: &TestIssuer) -> TokenGate {
    let gate = builder(a, b).build().await.unwrap();
    a.reset_counts();
    b.reset_counts();
    gate
}

fn fetches(issuer: &TestIssuer) -> usize {
    issuer.requests(Endpoint::Jwks)
        + issuer.requests(Endpoint::Discovery)
        + issuer.requests(Endpoint::OAuthMetadata)
}

fn invalid(result: Result<tokengate::Principal, AuthError>) -> InvalidToken {
    match result {
        Err(AuthError::InvalidToken(reason)) => reason,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn each_issuers_tokens_are_accepted_and_say_whose_they_are() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    for issuer in [&a, &b] {
        let token = issuer.token().audience(AUDIENCE).sign();
        let principal = gate.verify(&token).await.unwrap();
        assert_eq!(principal.issuer(), Some(issuer.issuer().as_str()));
        // Again, from the verified-token cache.
        let principal = gate.verify(&token).await.unwrap();
        assert_eq!(principal.issuer(), Some(issuer.issuer().as_str()));
    }
    assert_eq!(gate.cache_stats().verified_tokens, 2);
    assert_eq!(fetches(&a) + fetches(&b), 0);
    let health = gate.health();
    assert_eq!(
        health.iter().map(|h| h.issuer.as_str()).collect::<Vec<_>>(),
        [a.issuer(), b.issuer()]
    );
    assert!(
        health
            .iter()
            .all(|h| h.keys.usable && h.keys.key_count == 1)
    );
}

#[tokio::test]
async fn an_unknown_or_missing_iss_is_refused_without_any_fetch() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    for iss in [
        "https://evil.example".to_owned(),
        format!("{}/", a.issuer()),
        a.issuer().to_uppercase(),
        format!("http://127.0.0.1:1/{}", a.issuer()),
    ] {
        // A fresh kid too, which at a trusted issuer would trigger a refresh.
        let token = a
            .token()
            .audience(AUDIENCE)
            .claim("iss", iss.as_str())
            .header("kid", "never-seen")
            .sign();
        assert_eq!(
            invalid(gate.verify(&token).await),
            InvalidToken::WrongIssuer,
            "{iss}"
        );
    }
    let no_iss = a.token().audience(AUDIENCE).without_claim("iss").sign();
    assert_eq!(
        invalid(gate.verify(&no_iss).await),
        InvalidToken::WrongIssuer
    );
    let null_iss = a
        .token()
        .audience(AUDIENCE)
        .claim("iss", serde_json::Value::Null)
        .sign();
    assert!(gate.verify(&null_iss).await.is_err());
    assert_eq!(fetches(&a) + fetches(&b), 0, "a token's iss made us fetch");
}

#[tokio::test]
async fn a_repeated_iss_is_refused() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    // Claims JSON with `iss` twice: the first names B, the last A.
    let good = a.token().audience(AUDIENCE).sign();
    let payload = good.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    let doubled = claims.replacen('{', &format!("{{\"iss\":\"{}\",", b.issuer()), 1);
    let forged = format!(
        "{}.{}.{}",
        good.split('.').next().unwrap(),
        b64.encode(doubled),
        good.split('.').nth(2).unwrap()
    );
    assert!(gate.verify(&forged).await.is_err());
}

#[tokio::test]
async fn a_key_of_one_issuer_never_verifies_a_token_claiming_another() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    // B signs (B's key, B's kid) a token that claims to be A's: routed to
    // A, whose key set has no such kid. A refresh may look for it at A,
    // never at B, and it fails.
    let claims_a = b.token().audience(AUDIENCE).claim("iss", a.issuer()).sign();
    assert!(matches!(
        invalid(gate.verify(&claims_a).await),
        InvalidToken::UnknownKey
    ));
    // And the reverse.
    let claims_b = a.token().audience(AUDIENCE).claim("iss", b.issuer()).sign();
    assert!(matches!(
        invalid(gate.verify(&claims_b).await),
        InvalidToken::UnknownKey
    ));
    assert_eq!(
        a.requests(Endpoint::Jwks),
        1,
        "A refreshed once, for B's kid"
    );
    assert_eq!(
        b.requests(Endpoint::Jwks),
        1,
        "B refreshed once, for A's kid"
    );
}

#[tokio::test]
async fn colliding_kids_do_not_cross_issuers() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    // B signs with its own key but names A's kid, claiming A: A's key with
    // that kid is tried, and the signature does not match.
    let forged = b
        .token()
        .audience(AUDIENCE)
        .claim("iss", a.issuer())
        .header("kid", a.signing_kid())
        .sign();
    assert_eq!(
        invalid(gate.verify(&forged).await),
        InvalidToken::BadSignature
    );
    // B names A's kid, claiming B: B has no such kid; A is not asked.
    let forged = b
        .token()
        .audience(AUDIENCE)
        .header("kid", a.signing_kid())
        .sign();
    assert_eq!(
        invalid(gate.verify(&forged).await),
        InvalidToken::UnknownKey
    );
    assert_eq!(fetches(&a), 0);
    // A genuine token of each still verifies.
    assert!(
        gate.verify(&a.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
    assert!(
        gate.verify(&b.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
}

#[tokio::test(start_paused = true)]
async fn a_kid_flood_at_one_issuer_spends_only_its_budget() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    for i in 0..50 {
        let token = a
            .token()
            .audience(AUDIENCE)
            .header("kid", format!("made-up-{i}"))
            .sign();
        assert!(gate.verify(&token).await.is_err());
    }
    assert!(
        a.requests(Endpoint::Jwks) <= 2,
        "{} fetches at A",
        a.requests(Endpoint::Jwks)
    );
    assert_eq!(b.requests(Endpoint::Jwks), 0);
    // B rotates meanwhile: its budget is untouched, so the new key is
    // fetched at once.
    b.rotate();
    let rotated = b.token().audience(AUDIENCE).sign();
    assert!(gate.verify(&rotated).await.is_ok());
    assert_eq!(b.requests(Endpoint::Jwks), 1);
}

#[tokio::test(start_paused = true)]
async fn an_outage_at_one_issuer_does_not_touch_the_other() {
    let (a, b) = two().await;
    let gate = gate(&a, &b).await;
    let cached_a = a.token().audience(AUDIENCE).sign();
    a.set_fault(Endpoint::Jwks, Some(Fault::Down));
    a.rotate();
    // A new kid at A cannot be fetched: an outage, 503.
    let new_a = a.token().audience(AUDIENCE).sign();
    assert_eq!(
        gate.verify(&new_a).await.unwrap_err(),
        AuthError::Unavailable(Unavailable::Keys)
    );
    // A's known key still serves A's tokens; B is untouched.
    assert!(gate.verify(&cached_a).await.is_ok());
    assert!(
        gate.verify(&b.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
    let health = gate.health();
    assert!(health[0].keys.consecutive_failures > 0);
    assert_eq!(health[1].keys.consecutive_failures, 0);
    assert_eq!(b.requests(Endpoint::Jwks), 0);
}

#[tokio::test]
async fn each_issuer_may_have_its_own_audience_and_algorithms() {
    let (a, b) = two().await;
    let ec = b.add_key(Algorithm::ES256);
    let rsa = b.add_key(Algorithm::RS256);
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .issuer(a.issuer())
        .trust(
            Issuer::new(b.issuer())
                .audience("https://api.example.com/partners")
                .algorithms([Algorithm::ES256]),
        )
        .build()
        .await
        .unwrap();
    // A keeps the gate's audience.
    assert!(
        gate.verify(&a.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
    let a_partner = a
        .token()
        .audience("https://api.example.com/partners")
        .sign();
    assert_eq!(
        invalid(gate.verify(&a_partner).await),
        InvalidToken::WrongAudience
    );
    // B has its own, and only ES256.
    let partner = |kid: &str| {
        b.token()
            .audience("https://api.example.com/partners")
            .key(kid)
            .sign()
    };
    assert!(gate.verify(&partner(&ec)).await.is_ok());
    assert_eq!(
        invalid(gate.verify(&partner(&rsa)).await),
        InvalidToken::UnsupportedAlgorithm
    );
    let b_gate_audience = b.token().audience(AUDIENCE).key(&ec).sign();
    assert_eq!(
        invalid(gate.verify(&b_gate_audience).await),
        InvalidToken::WrongAudience
    );
}

#[tokio::test]
async fn opaque_tokens_are_introspected_at_the_designated_issuer() {
    let (a, b) = two().await;
    let (id, secret) = ("api", "api-secret");
    b.register_client(id, secret);
    let gate = builder(&a, &b)
        .introspecting_issuer(b.issuer())
        .introspection_credentials(id, secret)
        .build()
        .await
        .unwrap();
    // B's answer names B: its principal is B's.
    let opaque = b.token().audience(AUDIENCE).opaque();
    let principal = gate.verify(&opaque).await.unwrap();
    assert_eq!(principal.issuer(), Some(b.issuer().as_str()));
    // An answer naming the other trusted issuer is accepted as A's.
    let for_a = b
        .token()
        .audience(AUDIENCE)
        .claim("iss", a.issuer())
        .opaque();
    assert_eq!(
        gate.verify(&for_a).await.unwrap().issuer(),
        Some(a.issuer().as_str())
    );
    // One naming an untrusted issuer is refused.
    let foreign = b
        .token()
        .audience(AUDIENCE)
        .claim("iss", "https://evil.example")
        .opaque();
    assert_eq!(
        invalid(gate.verify(&foreign).await),
        InvalidToken::WrongIssuer
    );
    assert_eq!(a.requests(Endpoint::Introspection), 0);
}

#[tokio::test]
async fn bad_issuer_lists_fail_the_build() {
    let (a, b) = two().await;
    let err = |r: Result<TokenGate, BuildError>| r.unwrap_err();
    assert!(matches!(
        err(TokenGate::builder().audience(AUDIENCE).build().await),
        BuildError::MissingIssuer
    ));
    assert!(matches!(
        err(builder(&a, &b).issuer(a.issuer()).build().await),
        BuildError::InvalidConfig(_)
    ));
    assert!(matches!(
        err(builder(&a, &b).jwks_uri(a.jwks_uri()).build().await),
        BuildError::InvalidConfig(_)
    ));
    assert!(matches!(
        err(builder(&a, &b)
            .introspecting_issuer("https://c.example")
            .build()
            .await),
        BuildError::InvalidConfig(_)
    ));
    assert!(matches!(
        err(builder(&a, &b).issuer("http://10.0.0.1/").build().await),
        BuildError::InsecureUrl { .. }
    ));
    // An Issuer's own key source is fine.
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .trust(Issuer::new(a.issuer()).jwks_uri(a.jwks_uri()))
        .trust(Issuer::new(b.issuer()).jwks_uri(b.jwks_uri()))
        .build()
        .await
        .unwrap();
    assert_eq!(
        a.requests(Endpoint::Discovery),
        0,
        "jwks_uri skips discovery"
    );
    assert!(
        gate.verify(&b.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_metadata_lists_every_trusted_issuer() {
    let (a, b) = two().await;
    let gate = builder(&a, &b)
        .resource("https://api.example.com")
        .build()
        .await
        .unwrap();
    assert_eq!(
        gate.resource_metadata().unwrap().authorization_servers,
        [a.issuer(), b.issuer()]
    );
}

/// A test issuer that looks like Entra ID's `common` endpoint: its metadata
/// names the template as `issuer`, and its tokens name their tenant.
async fn entra_like() -> (TestIssuer, String) {
    let entra = TestIssuer::start().await.unwrap();
    let template = format!("{}/{{tenantid}}/v2.0", entra.issuer());
    entra.set_metadata_issuer(Some(template.clone()));
    (entra, template)
}

fn tenant_token(entra: &TestIssuer, iss_tenant: &str, tid: Option<&str>) -> String {
    let mut token = entra
        .token()
        .audience(AUDIENCE)
        .claim("iss", format!("{}/{iss_tenant}/v2.0", entra.issuer()));
    if let Some(tid) = tid {
        token = token.claim("tid", tid);
    }
    token.sign()
}

#[tokio::test]
async fn a_multi_tenant_issuer_admits_its_allowed_tenants_only() {
    let (entra, template) = entra_like().await;
    let other = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .issuer(other.issuer())
        .trust(
            Issuer::tenants(&template)
                .discover_at(entra.issuer())
                .allowed_tenants(["t1", "t2"]),
        )
        .build()
        .await
        .unwrap();
    entra.reset_counts();
    let principal = gate
        .verify(&tenant_token(&entra, "t1", Some("t1")))
        .await
        .unwrap();
    assert_eq!(
        principal.issuer(),
        Some(format!("{}/t1/v2.0", entra.issuer()).as_str())
    );
    assert!(
        gate.verify(&tenant_token(&entra, "t2", Some("t2")))
            .await
            .is_ok()
    );
    // The concrete issuer beside it still routes.
    assert!(
        gate.verify(&other.token().audience(AUDIENCE).sign())
            .await
            .is_ok()
    );
    for (iss_tenant, tid) in [
        ("t3", Some("t3")), // not allowed
        ("t1", Some("t2")), // iss and tid disagree
        ("t1", None),       // no tid
        ("t1/x", Some("t1/x")),
    ] {
        assert_eq!(
            invalid(gate.verify(&tenant_token(&entra, iss_tenant, tid)).await),
            InvalidToken::WrongIssuer,
            "{iss_tenant} {tid:?}"
        );
    }
    // The template itself, or the endpoint's own URL, is no issuer.
    for iss in [template.clone(), entra.issuer()] {
        let token = entra
            .token()
            .audience(AUDIENCE)
            .claim("iss", iss)
            .claim("tid", "t1")
            .sign();
        assert_eq!(
            invalid(gate.verify(&token).await),
            InvalidToken::WrongIssuer
        );
    }
    assert_eq!(fetches(&entra), 0, "refusals cost no fetch");
    // Templates are no authorization server to list in the metadata.
    let gate = TokenGate::builder()
        .issuer(other.issuer())
        .trust(Issuer::tenants(&template).discover_at(entra.issuer()))
        .resource("https://api.example.com")
        .build()
        .await
        .unwrap();
    assert_eq!(
        gate.resource_metadata().unwrap().authorization_servers,
        [other.issuer()]
    );
    // With templates alone the document would name no authorization server:
    // the build says so, until one is named by hand.
    let only_templates = || {
        TokenGate::builder()
            .trust(Issuer::tenants(&template).discover_at(entra.issuer()))
            .resource("https://api.example.com")
    };
    let err = only_templates().build().await.unwrap_err();
    assert!(
        err.to_string().contains("metadata_authorization_servers"),
        "{err}"
    );
    let home = format!("{}/t1/v2.0", entra.issuer());
    let gate = only_templates()
        .metadata_authorization_servers([home.clone()])
        .build()
        .await
        .unwrap();
    assert_eq!(
        gate.resource_metadata().unwrap().authorization_servers,
        [home]
    );
}

#[tokio::test]
async fn an_exact_issuer_wins_over_a_template_listed_before_it() {
    // One tenant has its own authorization server (its own keys) under the
    // identifier the template would also admit.
    let (entra, template) = entra_like().await;
    let own = TestIssuer::start().await.unwrap();
    let exact = format!("{}/t1/v2.0", entra.issuer());
    let own_keys: tokengate::JwkSet = serde_json::from_value(own.jwks()).unwrap();
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .trust(Issuer::tenants(&template).discover_at(entra.issuer()))
        .trust(Issuer::new(&exact).static_keys(own_keys))
        .build()
        .await
        .unwrap();
    let token = own
        .token()
        .audience(AUDIENCE)
        .claim("iss", exact.as_str())
        .claim("tid", "t1")
        .sign();
    let principal = gate.verify(&token).await.unwrap();
    assert_eq!(principal.issuer(), Some(exact.as_str()));
    // Other tenants still go to the template.
    assert!(
        gate.verify(&tenant_token(&entra, "t2", Some("t2")))
            .await
            .is_ok()
    );
    // And the template's keys never verify a token for the exact issuer.
    assert!(
        gate.verify(&tenant_token(&entra, "t1", Some("t1")))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn without_an_allowlist_every_tenant_gets_in() {
    let (entra, template) = entra_like().await;
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .trust(Issuer::tenants(&template).discover_at(entra.issuer()))
        .build()
        .await
        .unwrap();
    assert!(
        gate.verify(&tenant_token(&entra, "anyone", Some("anyone")))
            .await
            .is_ok()
    );
    assert!(
        gate.verify(&tenant_token(&entra, "a", Some("b")))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn multi_tenant_settings_are_checked() {
    let (entra, template) = entra_like().await;
    let build = |b: TokenGateBuilder| async move { b.audience(AUDIENCE).build().await };
    // Discovery must name the template exactly.
    let err = build(TokenGate::builder().trust(
        Issuer::tenants(format!("{}/{{tenantid}}/v1", entra.issuer())).discover_at(entra.issuer()),
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, BuildError::Discovery(_)), "{err:?}");
    for issuer in [
        Issuer::tenants(&template), // nowhere to find keys
        Issuer::new(&template),     // a placeholder in a plain issuer
        Issuer::tenants(entra.issuer()).discover_at(entra.issuer()), // no placeholder
        Issuer::new(entra.issuer()).allowed_tenants(["t1"]),
        // Tenants no `tid` can be: a silent lockout.
        Issuer::tenants(&template)
            .discover_at(entra.issuer())
            .allowed_tenants(["{tenantid}"]),
        Issuer::tenants(&template)
            .discover_at(entra.issuer())
            .allowed_tenants(["t1/v2.0"]),
        Issuer::tenants(&template)
            .discover_at(entra.issuer())
            .allowed_tenants(Vec::<String>::new()),
    ] {
        let err = build(TokenGate::builder().trust(issuer)).await.unwrap_err();
        assert!(matches!(err, BuildError::InvalidConfig(_)), "{err:?}");
    }
}

#[tokio::test]
async fn each_issuer_may_introspect_and_a_router_picks_one_per_token() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let (a, b) = two().await;
    let c = TestIssuer::start().await.unwrap();
    a.register_client("api-a", "secret-a");
    b.register_client("api-b", "secret-b");
    // Which issuer made which token, as a prefix would tell.
    let made_by: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let router = made_by.clone();
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .trust(Issuer::new(a.issuer()).introspection_credentials("api-a", "secret-a"))
        .trust(Issuer::new(b.issuer()).introspection_credentials("api-b", "secret-b"))
        .issuer(c.issuer())
        .opaque_token_issuer(move |token| router.lock().unwrap().get(token).cloned())
        .build()
        .await
        .unwrap();
    let mint = |issuer: &TestIssuer| {
        let token = issuer.token().audience(AUDIENCE).opaque();
        made_by
            .lock()
            .unwrap()
            .insert(token.clone(), issuer.issuer());
        token
    };
    for issuer in [&a, &b] {
        let token = mint(issuer);
        let principal = gate.verify(&token).await.unwrap();
        assert_eq!(principal.issuer(), Some(issuer.issuer().as_str()));
    }
    assert_eq!(a.requests(Endpoint::Introspection), 1);
    assert_eq!(b.requests(Endpoint::Introspection), 1);
    // Routed nowhere, or to an issuer that does not introspect: refused
    // without a call.
    let unknown = a.token().audience(AUDIENCE).opaque();
    assert!(gate.verify(&unknown).await.is_err());
    let at_c = mint(&c);
    assert!(gate.verify(&at_c).await.is_err());
    assert_eq!(a.requests(Endpoint::Introspection), 1);
    assert_eq!(b.requests(Endpoint::Introspection), 1);
    assert_eq!(c.requests(Endpoint::Introspection), 0);
    assert_eq!(gate.cache_stats().introspection_answers, 2);
}

#[tokio::test]
async fn without_a_router_the_first_issuer_with_credentials_introspects() {
    let (a, b) = two().await;
    b.register_client("api-b", "secret-b");
    let gate = TokenGate::builder()
        .audience(AUDIENCE)
        .issuer(a.issuer())
        .trust(Issuer::new(b.issuer()).introspection_credentials("api-b", "secret-b"))
        .build()
        .await
        .unwrap();
    let token = b.token().audience(AUDIENCE).opaque();
    assert_eq!(
        gate.verify(&token).await.unwrap().issuer(),
        Some(b.issuer().as_str())
    );
    assert_eq!(a.requests(Endpoint::Introspection), 0);
}
