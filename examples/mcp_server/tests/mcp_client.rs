//! The example MCP server, as its binary, with oidc-provider (the fixture in
//! `tests/oidc-provider`) as its authorization server, all on 127.0.0.1,
//! and three clients:
//!
//! - plain HTTP (reqwest): the 401 challenge, the metadata document, a
//!   wrong audience and a 403 step-up challenge, byte for byte;
//! - the official MCP TypeScript SDK (`tests/mcp-client/client.mjs`),
//!   which discovers everything from the 401 as a real MCP client does;
//! - rmcp's own client, with a bearer token it was given.
//!
//! Needs Node.js >= 20 and npm, like `tests/interop.rs`: `npm ci` runs in
//! `tests/oidc-provider` and `tests/mcp-client` when their `node_modules`
//! is missing; without Node the tests fail, saying what to install.

#[path = "../../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../../tests/interop/harness.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use harness::{AUDIENCE, Provider, jwt_claims, shared};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// How long the example may take to print where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the TypeScript client may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("examples/mcp_server is two levels below the workspace root")
}

// ---- the example, as a child process ----------------------------------------

/// The example binary serving on a free loopback port, trusting `issuer`.
/// Dropping it kills the process.
struct McpServer {
    child: Child,
    /// `http://127.0.0.1:<port>`
    base: String,
    /// `http://127.0.0.1:<port>/mcp`: the MCP endpoint and the resource.
    resource: String,
    /// Where the metadata is, as the example printed it.
    metadata: String,
}

impl McpServer {
    fn start(issuer: &str) -> McpServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokengate-mcp-example"))
            .env("TOKENGATE_ISSUER", issuer)
            .env("TOKENGATE_LISTEN", "127.0.0.1:0")
            .env_remove("TOKENGATE_RESOURCE")
            .env_remove("TOKENGATE_AUDIENCE")
            .env_remove("TOKENGATE_CLIENT_ID")
            .env_remove("TOKENGATE_CLIENT_SECRET")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the example binary");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                    continue;
                }
            }
        });
        let mut printed = Vec::new();
        let mut field = |prefix: &str| loop {
            let line = lines_rx.recv_timeout(START_TIMEOUT).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the example printed no {prefix:?} line; it printed {printed:?}")
            });
            if let Some(value) = line.strip_prefix(prefix) {
                return value.to_owned();
            }
            printed.push(line);
        };
        let base = field("listening on ");
        let resource = field("resource ");
        let metadata = field("metadata ");
        McpServer {
            child,
            base,
            resource,
            metadata,
        }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// POSTs one JSON-RPC message to the MCP endpoint as a streamable HTTP
/// client would.
async fn post_mcp(server: &McpServer, token: Option<&str>, message: Value) -> reqwest::Response {
    let mut request = http()
        .post(&server.resource)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST /mcp")
}

fn challenge(response: &reqwest::Response) -> String {
    let values: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ASCII challenge").to_owned())
        .collect();
    // One Bearer challenge; a 401 adds the DPoP one (RFC 9449 §7.1: the
    // gate also accepts DPoP-bound tokens), naming the same metadata.
    assert!(values[0].starts_with("Bearer "), "{values:?}");
    match values.as_slice() {
        [_] => {}
        [bearer, dpop] => {
            assert!(dpop.starts_with("DPoP algs="), "{values:?}");
            let metadata = |c: &str| c.split("resource_metadata=").nth(1).map(str::to_owned);
            assert_eq!(metadata(dpop), metadata(bearer), "{values:?}");
        }
        _ => panic!("more challenges than Bearer and DPoP: {values:?}"),
    }
    values.into_iter().next().unwrap()
}

fn call(name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

// ---- plain HTTP ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_and_the_challenges_are_what_the_spec_says() {
    let idp = shared();
    let server = McpServer::start(idp.issuer());
    assert!(
        server.resource.starts_with("http://127.0.0.1:") && server.resource.ends_with("/mcp"),
        "{}",
        server.resource
    );
    let metadata_url = server
        .resource
        .replace("/mcp", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(
        server.metadata, metadata_url,
        "RFC 9728 §3.1 path insertion"
    );

    // The document, without a token.
    let response = http()
        .get(&metadata_url)
        .send()
        .await
        .expect("GET metadata");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert!(
        response.headers().contains_key("cache-control"),
        "{:?}",
        response.headers()
    );
    let document: Value = response.json().await.expect("JSON metadata");
    assert_eq!(
        document,
        json!({
            "resource": server.resource,
            "authorization_servers": [idp.issuer()],
            "scopes_supported": ["items:read", "items:write", "admin"],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "EdDSA", "PS256", "RS256"],
            "resource_name": "tokengate MCP example",
        })
    );

    // No token: 401 pointing at the document.
    let response = post_mcp(&server, None, call("whoami")).await;
    assert_eq!(response.status(), 401);
    let text = challenge(&response);
    assert!(text.starts_with("Bearer "), "{text}");
    assert!(
        text.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{text}"
    );
    assert!(!text.contains("error="), "no error without a token: {text}");

    // A token of the same authorization server for another API: its
    // audience is not this resource (RFC 8707).
    let other = idp.token("cc-es256", "items:read").await;
    assert_eq!(jwt_claims(&other)["aud"], AUDIENCE);
    let response = post_mcp(&server, Some(&other), call("whoami")).await;
    assert_eq!(response.status(), 401);
    let text = challenge(&response);
    assert!(text.contains(r#"error="invalid_token""#), "{text}");
    assert!(
        text.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{text}"
    );

    // A token for this resource, without the tool's scope: 403 naming it.
    let reader = resource_token(idp, &server, "cc-readonly", "items:read").await;
    let response = post_mcp(&server, Some(&reader), call("purge")).await;
    assert_eq!(response.status(), 403);
    let text = challenge(&response);
    assert!(text.contains(r#"error="insufficient_scope""#), "{text}");
    assert!(text.contains(r#"scope="admin""#), "{text}");
    assert!(
        text.contains(&format!(r#"resource_metadata="{metadata_url}""#)),
        "{text}"
    );

    // ... and the tools its scope allows.
    let response = post_mcp(&server, Some(&reader), call("list_items")).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON-RPC answer");
    assert_eq!(
        answer["result"]["structuredContent"],
        json!({"items": ["first item"]}),
        "{answer}"
    );

    let response = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(response.status(), 200);
}

/// A client-credentials token whose audience is the example's resource.
async fn resource_token(idp: &Provider, server: &McpServer, client: &str, scope: &str) -> String {
    let token = idp
        .client_credentials(client, Some(scope), &server.resource)
        .await
        .access_token()
        .to_owned();
    assert_eq!(jwt_claims(&token)["aud"], server.resource);
    token
}

// ---- the MCP TypeScript SDK ---------------------------------------------------

fn client_dir() -> PathBuf {
    workspace_dir().join("tests/mcp-client")
}

/// `npm ci` in tests/mcp-client when the SDK is not installed; once per
/// test binary.
fn ensure_client_installed() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    let setup = SETUP.get_or_init(|| {
        let dir = client_dir();
        if dir
            .join("node_modules/@modelcontextprotocol/sdk/package.json")
            .is_file()
        {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "could not run `npm ci` in {} (Node.js >= 20 with npm is needed): {e}",
                    dir.display()
                )
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`npm ci` in {} failed ({}):\n{}{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = setup {
        panic!("{e}");
    }
}

/// Runs `node client.mjs`; its stdout's JSON lines and its stderr.
fn run_ts_client(envs: &[(&str, &str)]) -> (Vec<Value>, String) {
    ensure_client_installed();
    let mut child = Command::new("node")
        .arg("client.mjs")
        .current_dir(client_dir())
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node client.mjs (Node.js >= 20 is needed)");
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let out = std::thread::spawn(move || std::io::read_to_string(stdout));
    let err = std::thread::spawn(move || std::io::read_to_string(stderr));
    let status = done_rx
        .recv_timeout(CLIENT_TIMEOUT)
        .unwrap_or_else(|_| panic!("node client.mjs (pid {pid}) ran over {CLIENT_TIMEOUT:?}"))
        .expect("wait for node");
    let stdout = out.join().unwrap().expect("stdout");
    let stderr = err.join().unwrap().expect("stderr");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n--- stderr ---\n{stderr}"))
        })
        .collect();
    assert!(
        status.status.success(),
        "client.mjs failed ({}):\n{}\n--- stderr ---\n{stderr}",
        status.status,
        lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    (lines, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_discovers_authorizes_and_calls_tools() {
    let idp = shared();
    let server = McpServer::start(idp.issuer());
    let (lines, stderr) = tokio::task::block_in_place(|| {
        run_ts_client(&[
            ("MCP_URL", &server.resource),
            ("ISSUER", idp.issuer()),
            ("CLIENT_ID", "cc-es256"),
            ("CLIENT_SECRET", "cc-es256-secret"),
            ("SCOPE", "items:read items:write"),
            ("DENIED_TOOL", "purge"),
        ])
    });
    let log = || {
        let steps: Vec<_> = lines.iter().map(Value::to_string).collect();
        format!("{}\n--- stderr ---\n{stderr}", steps.join("\n"))
    };
    let http: Vec<&Value> = lines.iter().filter(|l| l["step"] == "http").collect();
    let mcp_url = server.resource.as_str();

    // 1. The first request has no token: 401 naming the metadata.
    let first = http.first().unwrap_or_else(|| panic!("{}", log()));
    assert_eq!(first["url"], mcp_url, "{}", log());
    assert_eq!(first["authorization"], false, "{}", log());
    assert_eq!(first["status"], 401, "{}", log());
    let resource_metadata = format!(r#"resource_metadata="{}""#, server.metadata);
    assert!(
        first["www_authenticate"]
            .as_str()
            .is_some_and(|c| c.contains(&resource_metadata)),
        "{}",
        log()
    );
    // 2. It fetches exactly that document, next.
    assert_eq!(http[1]["method"], "GET", "{}", log());
    assert_eq!(http[1]["url"], server.metadata.as_str(), "{}", log());
    assert_eq!(http[1]["status"], 200, "{}", log());
    // 3. It found the authorization server there: its metadata, then a token
    //    for this resource (RFC 8707), with the audience the gate wants.
    let issuer = idp.issuer();
    let token_requests: Vec<&&Value> = http.iter().filter(|x| x.get("form").is_some()).collect();
    let first_token = token_requests
        .first()
        .unwrap_or_else(|| panic!("{}", log()));
    assert_eq!(first_token["url"], format!("{issuer}/token"), "{}", log());
    assert_eq!(
        first_token["form"],
        json!({"grant_type": "client_credentials", "scope": "items:read items:write", "resource": mcp_url}),
        "{}",
        log()
    );
    assert_eq!(first_token["status"], 200, "{}", log());
    assert_eq!(
        first_token["token"],
        json!({"token_type": "Bearer", "scope": "items:read items:write", "aud": mcp_url, "client_id": "cc-es256", "iss": issuer}),
        "{}",
        log()
    );
    let discovered = http
        .iter()
        .take_while(|x| x.get("form").is_none())
        .any(|x| x["url"].as_str().is_some_and(|u| u.starts_with(issuer)) && x["status"] == 200);
    assert!(
        discovered,
        "authorization server metadata fetched: {}",
        log()
    );
    // Every later MCP request carries the token.
    let later_mcp = http
        .iter()
        .skip(1)
        .filter(|x| x["url"] == mcp_url)
        .collect::<Vec<_>>();
    assert!(
        later_mcp.iter().all(|x| x["authorization"] == true),
        "{}",
        log()
    );

    // 4. initialize, tools/list.
    let step = |name: &str| {
        lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no {name:?} step: {}", log()))
    };
    assert_eq!(step("initialized")["tools_capability"], true, "{}", log());
    assert_eq!(
        step("tools")["names"],
        json!(["add_item", "list_items", "purge", "whoami"]),
        "{}",
        log()
    );

    // 5. Calls its scopes allow.
    let calls: Vec<&Value> = lines.iter().filter(|l| l["step"] == "call").collect();
    let tools: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(
        tools,
        [
            "whoami",
            "list_items",
            "add_item",
            "list_items",
            "purge",
            "whoami"
        ],
        "{}",
        log()
    );
    let whoami = json!({
        "client_id": "cc-es256",
        "sub": "cc-es256",
        "scopes": ["items:read", "items:write"],
        "source": "jwt",
    });
    for (index, expected) in [
        (0, whoami.clone()),
        (1, json!({"items": ["first item"]})),
        (2, json!({"id": 1, "name": "from the TypeScript SDK"})),
        (
            3,
            json!({"items": ["first item", "from the TypeScript SDK"]}),
        ),
        (5, whoami),
    ] {
        assert_eq!(calls[index]["ok"], true, "{}", log());
        assert_eq!(calls[index]["isError"], false, "{}", log());
        assert_eq!(calls[index]["structured"], expected, "{}", log());
    }

    // 6. A call they do not allow: 403 insufficient_scope naming the tool's
    //    scope, with the metadata; the SDK tries its step-up path once (a new
    //    token: its client-credentials provider asks for its configured
    //    scope again, not the challenge's), gets the same 403, and gives up.
    let purge = calls[4];
    assert_eq!(purge["ok"], false, "{}", log());
    assert_eq!(purge["error"]["code"], 403, "{}", log());
    assert!(
        purge["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("upscoping")),
        "{}",
        log()
    );
    let refusals: Vec<&&Value> = http
        .iter()
        .filter(|x| x["tool"] == "purge")
        .collect::<Vec<_>>();
    assert_eq!(refusals.len(), 2, "the call and one retry: {}", log());
    for refusal in &refusals {
        assert_eq!(refusal["status"], 403, "{}", log());
        let text = refusal["www_authenticate"].as_str().unwrap_or_default();
        assert!(text.contains(r#"error="insufficient_scope""#), "{}", log());
        assert!(text.contains(r#"scope="admin""#), "{}", log());
        assert!(text.contains(&resource_metadata), "{}", log());
    }
    assert_eq!(token_requests.len(), 2, "one token, one step-up: {}", log());
    assert_eq!(token_requests[1]["form"], first_token["form"], "{}", log());

    assert_eq!(lines.last().map(|l| &l["step"]), Some(&json!("done")));
}

// ---- rmcp's own client ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_calls_tools_with_a_bearer_token() {
    let idp = shared();
    let server = McpServer::start(idp.issuer());
    let token = resource_token(idp, &server, "cc-es256", "items:read").await;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.resource.clone()).auth_header(token),
    );
    let client = ().serve(transport).await.expect("initialize");
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["add_item", "list_items", "purge", "whoami"]);

    let whoami = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .expect("whoami");
    assert_eq!(
        whoami.structured_content,
        Some(
            json!({"client_id": "cc-es256", "sub": "cc-es256", "scopes": ["items:read"], "source": "jwt"})
        )
    );

    let refused =
        client
            .call_tool(CallToolRequestParams::new("add_item").with_arguments(
                serde_json::from_value(json!({"name": "x"})).expect("a JSON object"),
            ))
            .await
            .expect_err("add_item needs items:write");
    let text = format!("{refused:?}");
    assert!(text.contains("insufficient"), "{text}");
    assert!(text.contains(r#"scope=\"items:write\""#), "{text}");
    let _ = client.cancel().await;
}
