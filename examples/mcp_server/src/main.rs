//! `cargo run -p tokengate-mcp-example`: an MCP server with tokengate in
//! front, at `http://127.0.0.1:3000/mcp`.
//!
//! Configuration from the environment (as `examples/axum_api.rs`):
//!
//! | variable | meaning |
//! |---|---|
//! | `TOKENGATE_ISSUER` | the authorization server; unset: an in-process test issuer is started and tokens are printed |
//! | `TOKENGATE_RESOURCE` | the MCP endpoint's public URL, the resource identifier (RFC 8707, RFC 9728); default `http://<listen address>/mcp` |
//! | `TOKENGATE_AUDIENCE` | the audience tokens must carry; default: the resource, as MCP clients ask for |
//! | `TOKENGATE_CLIENT_ID`, `TOKENGATE_CLIENT_SECRET` | this server's client at the authorization server: opaque tokens are then introspected (RFC 7662) |
//! | `TOKENGATE_LISTEN` | listen address, default `127.0.0.1:3000` (port 0: any free port) |
//!
//! stdout starts with `listening on http://<address>` and `resource <URL>`
//! (the tests read them), then, with the test issuer, how to connect.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokengate::TokenGate;
use tokengate::testing::TestIssuer;
use tokengate_mcp_example::{SCOPES, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tokengate=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let listen: SocketAddr = std::env::var("TOKENGATE_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    // Bound first: with port 0 the default resource names the real port.
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let resource =
        std::env::var("TOKENGATE_RESOURCE").unwrap_or_else(|_| format!("http://{addr}/mcp"));

    let credentials = match (
        std::env::var("TOKENGATE_CLIENT_ID"),
        std::env::var("TOKENGATE_CLIENT_SECRET"),
    ) {
        (Ok(id), Ok(secret)) => Some((id, secret)),
        _ => None,
    };
    let mut builder = TokenGate::builder()
        .resource(&resource)
        .scopes_supported(SCOPES)
        .resource_name("tokengate MCP example");
    if let Ok(audience) = std::env::var("TOKENGATE_AUDIENCE") {
        builder = builder.audience(audience);
    }
    // Keeps the in-process issuer alive while the server runs.
    let mut test_issuer = None;
    let builder = match std::env::var("TOKENGATE_ISSUER") {
        Ok(issuer) => {
            let builder = builder.issuer(issuer);
            match credentials {
                Some((id, secret)) => builder.introspection_credentials(id, secret),
                None => builder,
            }
        }
        Err(_) => {
            let issuer = TestIssuer::start().await?;
            let (id, secret) = credentials.unwrap_or_else(|| {
                (
                    tokengate::testing::INTROSPECTION_CLIENT_ID.to_owned(),
                    tokengate::testing::INTROSPECTION_CLIENT_SECRET.to_owned(),
                )
            });
            issuer.register_client(&id, &secret);
            let builder = builder
                .issuer(issuer.issuer())
                .introspection_credentials(id, secret);
            test_issuer = Some(issuer);
            builder
        }
    };
    let gate = builder.build().await?;

    // Whatever the resource's spelling, the gate's is the canonical one.
    let resource = gate.resource().unwrap_or(&resource).to_owned();
    // rmcp's DNS-rebinding guard accepts loopback `Host`s only, unless told.
    let host = resource
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.authority().map(|a| a.as_str().to_owned()));
    println!("listening on http://{addr}");
    println!("resource {resource}");
    if let Some(metadata) = gate.resource_metadata_url() {
        println!("metadata {metadata}");
    }
    if let Some(issuer) = &test_issuer {
        print_walkthrough(issuer, &resource, gate.resource_metadata_url());
    }
    let items = Arc::new(Mutex::new(vec!["first item".to_owned()]));
    let app = router(&gate, items, &host.into_iter().collect::<Vec<_>>());
    axum::serve(listener, app).await?;
    Ok(())
}

fn print_walkthrough(issuer: &TestIssuer, resource: &str, metadata: Option<&str>) {
    let token = |client: &str, scope: &str| {
        issuer
            .token()
            .subject(client)
            .client_id(client)
            .scope(scope)
            .audience(resource)
            .expires_in(3600)
            .sign()
    };
    let reader = token("reader", "items:read");
    let writer = token("writer", "items:read items:write");
    let call = |token: &str, body: &str| {
        format!(
            "curl -i {resource} -H \"Authorization: Bearer ${token}\" \\\n  \
             -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n  \
             -H 'MCP-Protocol-Version: 2025-11-25' -d '{body}'"
        )
    };
    let tool = |name: &str, arguments: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{arguments}}}}}"#
        )
    };
    println!(
        "\nNo TOKENGATE_ISSUER set: started a test issuer at {} (tokens below are valid for an hour).\n",
        issuer.issuer()
    );
    println!("READER={reader}  # items:read\nWRITER={writer}  # items:read items:write\n");
    if let Some(metadata) = metadata {
        println!("# 200, no token needed: the protected-resource metadata\ncurl -i {metadata}\n");
    }
    println!(
        "# 401 with resource_metadata=\"…\": no token\ncurl -i -X POST {resource} -H 'Content-Type: application/json' -d '{{}}'\n"
    );
    println!(
        "# 200: tools/list\n{}\n",
        call(
            "READER",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        )
    );
    println!(
        "# 200: whoami (any valid token)\n{}\n",
        call("READER", &tool("whoami", "{}"))
    );
    println!(
        "# 200: list_items needs items:read\n{}\n",
        call("READER", &tool("list_items", "{}"))
    );
    println!(
        "# 403 insufficient_scope, scope=\"items:write\": the reader may not add_item\n{}\n",
        call("READER", &tool("add_item", r#"{"name":"new"}"#))
    );
    println!(
        "# 200: the writer may\n{}\n",
        call("WRITER", &tool("add_item", r#"{"name":"new"}"#))
    );
    println!(
        "# An MCP client (e.g. `npx @modelcontextprotocol/inspector`): URL {resource}, transport \
         Streamable HTTP, header `Authorization: Bearer $WRITER`"
    );
}
