//! `cargo run -p tokengate-tonic-example`: the items gRPC service on
//! 127.0.0.1:50051 behind a test issuer, printing tokens to call it with.

use tokengate::TokenGate;
use tokengate::testing::TestIssuer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = TestIssuer::start().await?;
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
    println!("listening on http://{}", listener.local_addr()?);
    let reader = issuer
        .token()
        .client_id("reporting")
        .scope("items:read")
        .expires_in(3600)
        .sign();
    let writer = issuer
        .token()
        .client_id("ingest")
        .scope("items:read items:write")
        .expires_in(3600)
        .sign();
    println!("items:read token:\n{reader}\nitems:write token:\n{writer}");
    println!(
        "e.g. grpcurl -plaintext -import-path proto -proto items.proto -H \"authorization: Bearer $TOKEN\" 127.0.0.1:50051 items.v1.Items/ListItems"
    );
    tokengate_tonic_example::serve(listener, gate).await?;
    Ok(())
}
