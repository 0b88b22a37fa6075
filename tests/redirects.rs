//! No call to the authorization server follows a redirect, whatever HTTP
//! client the gate uses: discovery, the key set and introspection each refuse
//! an answer from anywhere but the URL asked. The redirect target is a second
//! test issuer that would answer well, so a followed redirect would show as a
//! gate that builds or a token that passes.

mod common;

use common::*;
use http::StatusCode;
use tokengate::testing::{
    Endpoint, Fault, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{BuildError, ClientAuth, DiscoveryError, FetchError, TokenGateBuilder};

const REDIRECTS: [u16; 3] = [302, 307, 308];

/// The gate's own client, or the user's `reqwest::Client::new()`, which
/// follows up to ten redirects.
#[derive(Debug, Clone, Copy)]
enum Client {
    Ours,
    Users,
}

fn with(client: Client, builder: TokenGateBuilder) -> TokenGateBuilder {
    match client {
        Client::Ours => builder,
        Client::Users => builder.http_client(reqwest::Client::new()),
    }
}

/// The status the error names: the 3xx when the gate saw it, 0 when the
/// user's client followed it first.
fn seen(client: Client, status: u16) -> u16 {
    match client {
        Client::Ours => status,
        Client::Users => 0,
    }
}

fn requests_at(issuer: &TestIssuer) -> usize {
    [
        Endpoint::Discovery,
        Endpoint::OAuthMetadata,
        Endpoint::Jwks,
        Endpoint::Introspection,
        Endpoint::Other,
    ]
    .into_iter()
    .map(|e| issuer.requests(e))
    .sum()
}

/// A second issuer whose metadata names `origin`, so discovery through it
/// would succeed.
async fn elsewhere(origin: &TestIssuer) -> TestIssuer {
    let target = TestIssuer::start().await.unwrap();
    target.set_metadata_issuer(Some(origin.issuer()));
    target
}

#[tokio::test]
async fn discovery_refuses_a_redirect() {
    for client in [Client::Ours, Client::Users] {
        for status in REDIRECTS {
            let origin = TestIssuer::start().await.unwrap();
            let target = elsewhere(&origin).await;
            for (endpoint, path) in [
                (Endpoint::Discovery, "/.well-known/openid-configuration"),
                (
                    Endpoint::OAuthMetadata,
                    "/.well-known/oauth-authorization-server",
                ),
            ] {
                let location = target.url(path);
                origin.set_fault(endpoint, Some(Fault::RedirectTo { status, location }));
            }
            let err = with(client, builder(&origin)).build().await.unwrap_err();
            let expected = FetchError::Redirect(seen(client, status));
            assert!(
                matches!(
                    &err,
                    BuildError::Discovery(DiscoveryError::NotFound { oidc_error, rfc8414_error, .. })
                        if *oidc_error == expected && *rfc8414_error == expected
                ),
                "{client:?} {status}: {err}"
            );
            if let Client::Ours = client {
                assert_eq!(requests_at(&target), 0, "{status}");
            }
        }
    }
}

#[tokio::test]
async fn the_key_set_fetch_refuses_a_redirect() {
    for client in [Client::Ours, Client::Users] {
        for status in REDIRECTS {
            let origin = TestIssuer::start().await.unwrap();
            let target = TestIssuer::start().await.unwrap();
            let location = target.jwks_uri();
            origin.set_fault(Endpoint::Jwks, Some(Fault::RedirectTo { status, location }));
            let err = with(client, builder(&origin)).build().await.unwrap_err();
            assert!(
                matches!(err, BuildError::Jwks(FetchError::Redirect(s)) if s == seen(client, status)),
                "{client:?} {status}: {err}"
            );
            if let Client::Ours = client {
                assert_eq!(requests_at(&target), 0, "{status}");
            }
        }
    }
}

/// The target knows the token and authenticates the client by the secret in
/// the form (`client_secret_post`): a re-POSTed form would make it pass.
#[tokio::test]
async fn introspection_refuses_a_redirect_and_never_replays_the_form() {
    for client in [Client::Ours, Client::Users] {
        for status in REDIRECTS {
            let origin = TestIssuer::start().await.unwrap();
            let target = TestIssuer::start().await.unwrap();
            let token = target.token().claim("iss", origin.issuer()).opaque();
            let location = target.url("/introspect");
            origin.set_fault(
                Endpoint::Introspection,
                Some(Fault::RedirectTo { status, location }),
            );
            let gate = with(client, builder(&origin))
                .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
                .introspection_auth(ClientAuth::SecretPost)
                .build()
                .await
                .unwrap();
            let answer = me(&app(&gate), &token).await;
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{client:?} {status}"
            );
            assert_eq!(origin.requests(Endpoint::Introspection), 1);
            // No form (token, client secret) reached the target. A following
            // client turns a 302 into a GET without the form; a 307/308 it
            // cannot replay, so it stops there.
            assert_eq!(
                target.requests(Endpoint::Introspection),
                0,
                "{client:?} {status}"
            );
            if let (Client::Ours, _) | (_, 307 | 308) = (client, status) {
                assert_eq!(requests_at(&target), 0, "{client:?} {status}");
            }
        }
    }
}

#[tokio::test]
async fn an_unasked_304_is_not_taken_for_an_empty_key_set() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Status(304)));
    let err = builder(&issuer).build().await.unwrap_err();
    assert!(
        matches!(err, BuildError::Jwks(FetchError::Status(304))),
        "{err}"
    );
}
