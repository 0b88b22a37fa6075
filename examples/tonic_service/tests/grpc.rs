//! The gate on a real tonic server, called by a real tonic client: gRPC
//! statuses for every outcome.

use std::time::Duration;

use tokengate::TokenGate;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate_tonic_example::pb::items_client::ItemsClient;
use tokengate_tonic_example::pb::{CreateItemRequest, ListItemsRequest};
use tonic::transport::Channel;
use tonic::{Code, Request};

async fn start(gate: TokenGate) -> ItemsClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tokengate_tonic_example::serve(listener, gate));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ItemsClient::new(channel)
}

fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn setup() -> (TestIssuer, ItemsClient<Channel>) {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    let client = start(gate).await;
    (issuer, client)
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_a_challenge() {
    let (_issuer, mut client) = setup().await;
    let status = client.list_items(ListItemsRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.metadata().get("www-authenticate").is_some());
}

#[tokio::test]
async fn a_bad_token_is_unauthenticated() {
    let (issuer, mut client) = setup().await;
    let expired = issuer.token().scope("items:read").expires_in(-3600).sign();
    let status = client
        .list_items(with_token(ListItemsRequest {}, &expired))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the token has expired");
}

#[tokio::test]
async fn scopes_allow_and_deny_per_method() {
    let (issuer, mut client) = setup().await;
    let reader = issuer
        .token()
        .client_id("reporting")
        .scope("items:read")
        .sign();
    let writer = issuer
        .token()
        .client_id("ingest")
        .scope("items:read items:write")
        .sign();

    let denied = client
        .create_item(with_token(CreateItemRequest { name: "x".into() }, &reader))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let challenge = denied
        .metadata()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"items:write\"")
    );

    let created = client
        .create_item(with_token(
            CreateItemRequest {
                name: "widget".into(),
            },
            &writer,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.created_by, "ingest");
    let listed = client
        .list_items(with_token(ListItemsRequest {}, &reader))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items.len(), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_is_unavailable() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Jwks, Some(Fault::Down));
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .timeout(Duration::from_millis(500))
        .require_keys_at_startup(false)
        .build()
        .await
        .unwrap();
    let mut client = start(gate).await;
    let token = issuer.token().scope("items:read").sign();
    let status = client
        .list_items(with_token(ListItemsRequest {}, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}
