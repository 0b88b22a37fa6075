//! MCP per-tool scopes through the public API: a real `gate.layer()` in
//! front of `McpScopes` in front of a recording inner service, tokens from
//! the test issuer. Each JSON trick is also read by rmcp's own
//! `ClientJsonRpcMessage` (what `rmcp`'s streamable-HTTP server parses a
//! POST body into): the tool we enforce is the tool rmcp would run, or we
//! demand the strictest set.
#![cfg(feature = "mcp")]

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use tokengate::ScopeRequirement;
use tokengate::TokenGate;
use tokengate::mcp::{McpRequirement, McpScopes};
use tokengate::testing::TestIssuer;
use tower::{Layer, ServiceExt};

/// Every scope the rules below name, sorted: what an unclassifiable body
/// needs.
const STRICTEST: &str = "admin audit:read docs:read docs:write";
const LIMIT: usize = 4096;

fn rules() -> McpScopes {
    McpScopes::new()
        .tool("search", ScopeRequirement::all(["docs:read"]))
        .tool("delete", ScopeRequirement::all(["docs:write", "admin"]))
        .tool("audit", ScopeRequirement::any(["audit:read", "admin"]))
        .tool("echo", McpRequirement::Authenticated)
        .method("resources/read", ScopeRequirement::all(["docs:read"]))
        .max_body_bytes(LIMIT)
}

/// What a scopeless principal is told a request needs: `None` when it is
/// let through, else the challenge's `scope` (empty when it has none).
type Needs = Option<String>;

/// What the rules above require for a tool, as a challenge would name it
/// for a principal without scopes.
fn tool_needs(name: &str) -> Needs {
    match name {
        "search" => Some("docs:read".into()),
        "delete" => Some("docs:write admin".into()),
        "audit" => Some("audit:read".into()),
        "echo" => None,
        _ => Some(STRICTEST.into()),
    }
}

fn method_needs(method: &str) -> Needs {
    match method {
        "resources/read" => Some("docs:read".into()),
        _ => None,
    }
}

type Seen = Arc<Mutex<Vec<(http::Method, Bytes)>>>;

struct Setup {
    issuer: TestIssuer,
    gate: TokenGate,
}

impl Setup {
    async fn new() -> Setup {
        let issuer = TestIssuer::start().await.unwrap();
        let gate = common::gate(&issuer).await;
        Setup { issuer, gate }
    }

    fn token(&self, scope: &str) -> String {
        let t = self.issuer.token();
        if scope.is_empty() { t } else { t.scope(scope) }.sign()
    }

    /// Sends `req` with a token of `scope` through gate → `layer` →
    /// recorder; returns the answer and what the inner service received.
    async fn send_with(
        &self,
        layer: McpScopes,
        scope: &str,
        mut req: Request<Body>,
    ) -> (Response<Body>, Vec<(http::Method, Bytes)>) {
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let inner = tower::service_fn(move |req: Request<Body>| {
            let record = record.clone();
            async move {
                let method = req.method().clone();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                record.lock().unwrap().push((method, body));
                Ok::<_, Infallible>(Response::new(Body::from("{}")))
            }
        });
        let service = self.gate.layer().layer(layer.layer(inner));
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token(scope)).parse().unwrap(),
        );
        let response = service.oneshot(req).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        (response, seen)
    }

    async fn post(
        &self,
        scope: &str,
        body: impl Into<Bytes>,
    ) -> (Response<Body>, Vec<(http::Method, Bytes)>) {
        self.send_with(rules(), scope, post(body)).await
    }

    /// What a principal with `scope` is told `body` needs, checking that
    /// a request let through reached the inner service with its very bytes.
    async fn needs_with(&self, scope: &str, body: &[u8]) -> Needs {
        let body = Bytes::copy_from_slice(body);
        let (response, seen) = self.post(scope, body.clone()).await;
        match response.status() {
            StatusCode::OK => {
                assert_eq!(
                    seen,
                    [(http::Method::POST, body)],
                    "body changed on the way"
                );
                None
            }
            StatusCode::FORBIDDEN => {
                assert!(seen.is_empty());
                Some(scope_of(&response).expect("a 403 names its scopes"))
            }
            other => panic!("unexpected {other}"),
        }
    }

    async fn needs(&self, body: &[u8]) -> Needs {
        self.needs_with("", body).await
    }
}

fn post(body: impl Into<Bytes>) -> Request<Body> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Body::from(body.into()))
        .unwrap()
}

fn challenge(response: &Response<Body>) -> &str {
    response.headers()["www-authenticate"].to_str().unwrap()
}

/// The `scope="…"` attribute of the challenge, exactly.
fn scope_of(response: &Response<Body>) -> Option<String> {
    let c = challenge(response);
    assert!(c.contains(r#"error="insufficient_scope""#), "{c}");
    let start = c.find("scope=\"")? + 7;
    let end = c[start..].find('"')? + start;
    Some(c[start..end].to_owned())
}

fn call(tool: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    )
}

// --- Tool calls.

#[tokio::test]
async fn a_tool_call_with_the_tool_s_scopes_is_let_through_unchanged() {
    let s = Setup::new().await;
    let body = call("search");
    let (response, seen) = s.post("docs:read", body.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen, [(http::Method::POST, Bytes::from(body))]);
    let (response, _) = s.post("docs:write admin", call("delete")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (response, _) = s.post("admin", call("audit")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tool_call_without_them_is_403_naming_every_scope_the_tool_needs() {
    let s = Setup::new().await;
    let (response, seen) = s.post("docs:write", call("delete")).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(seen.is_empty());
    // The one held is named too: one challenge, every scope (MCP 2026-07-28).
    assert_eq!(scope_of(&response).as_deref(), Some("docs:write admin"));
    assert!(challenge(&response).starts_with("Bearer realm="));
    // An any-requirement is named by its first scope.
    assert_eq!(
        s.needs_with("docs:read", call("audit").as_bytes())
            .await
            .as_deref(),
        Some("audit:read")
    );
    assert_eq!(s.needs(call("echo").as_bytes()).await, None);
}

#[tokio::test]
async fn an_unlisted_tool_needs_every_scope_by_default() {
    let s = Setup::new().await;
    assert_eq!(
        s.needs(call("drop_tables").as_bytes()).await.as_deref(),
        Some(STRICTEST)
    );
    assert_eq!(
        s.needs_with("docs:read docs:write admin", call("drop_tables").as_bytes())
            .await
            .as_deref(),
        Some(STRICTEST)
    );
    assert_eq!(
        s.needs_with(STRICTEST, call("drop_tables").as_bytes())
            .await,
        None
    );

    let open = rules().unlisted_tools(McpRequirement::Authenticated);
    let (response, _) = s.send_with(open, "", post(call("drop_tables"))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_batch_needs_the_union_of_its_members() {
    let s = Setup::new().await;
    let batch = format!("[{},{},{}]", call("search"), call("echo"), call("delete"));
    assert_eq!(
        s.needs(batch.as_bytes()).await.as_deref(),
        Some("docs:read docs:write admin")
    );
    // One member short is refused, and the challenge still names them all.
    assert_eq!(
        s.needs_with("docs:read admin", batch.as_bytes())
            .await
            .as_deref(),
        Some("docs:read docs:write admin")
    );
    assert_eq!(
        s.needs_with("docs:read docs:write admin", batch.as_bytes())
            .await,
        None
    );
    let with_method = format!(
        r#"[{},{{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{{"uri":"x"}}}}]"#,
        call("echo")
    );
    assert_eq!(
        s.needs(with_method.as_bytes()).await.as_deref(),
        Some("docs:read")
    );
    // A batch with one unclassifiable member is unclassifiable.
    let bad = format!("[{},7]", call("echo"));
    assert_eq!(s.needs(bad.as_bytes()).await.as_deref(), Some(STRICTEST));
    assert_eq!(s.needs(b"[]").await.as_deref(), Some(STRICTEST));
}

// --- Other methods, responses, GET and DELETE.

#[tokio::test]
async fn other_methods_need_what_is_configured_for_them() {
    let s = Setup::new().await;
    let messages: [&[u8]; 5] = [
        br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"delete","version":"1"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        br#"{"jsonrpc":"2.0","id":7,"result":{}}"#,
        br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"no"}}"#,
    ];
    for body in messages {
        assert_eq!(
            s.needs(body).await,
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let read =
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///x"}}"#;
    assert_eq!(s.needs(read).await.as_deref(), Some("docs:read"));
    assert_eq!(s.needs_with("docs:read", read).await, None);

    // `other_methods` raises the floor for everything but tools.
    let floor = rules().other_methods(ScopeRequirement::all(["mcp"]));
    let (response, _) = s.send_with(floor, "", post(messages[1])).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(scope_of(&response).as_deref(), Some("mcp"));
}

#[tokio::test]
async fn get_and_delete_need_what_other_methods_need_and_are_not_read() {
    let s = Setup::new().await;
    for method in [http::Method::GET, http::Method::DELETE] {
        // A body that is not JSON: it is not read, and passed on as it is.
        let req = || {
            Request::builder()
                .method(method.clone())
                .uri("/mcp")
                .header("mcp-session-id", "abc")
                .body(Body::from("not json"))
                .unwrap()
        };
        let (response, seen) = s.send_with(rules(), "", req()).await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
        assert_eq!(seen, [(method.clone(), Bytes::from("not json"))]);

        let floor = rules().other_methods(ScopeRequirement::any(["mcp", "admin"]));
        let (response, seen) = s.send_with(floor.clone(), "", req()).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
        assert_eq!(scope_of(&response).as_deref(), Some("mcp"));
        assert!(seen.is_empty());
        let (response, _) = s.send_with(floor, "admin", req()).await;
        assert_eq!(response.status(), StatusCode::OK, "{method}");
    }
}

#[tokio::test]
async fn without_a_principal_the_layer_answers_401() {
    // The layer alone, without the gate in front: nobody authenticated.
    let inner = tower::service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let svc = rules().layer(inner);
    for req in [
        post(call("echo")),
        Request::get("/mcp").body(Body::empty()).unwrap(),
    ] {
        let response = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&response).starts_with("Bearer"));
    }
}

// --- The body: bounded, unchanged.

/// A body that records whether it was polled, then fails.
struct Untouchable(Arc<AtomicBool>);

impl http_body::Body for Untouchable {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.store(true, Ordering::SeqCst);
        Poll::Ready(Some(Err(std::io::Error::other("read"))))
    }
}

/// `chunks` data frames, then optionally an error; no size hint.
struct Chunks {
    chunks: Vec<Bytes>,
    fail: bool,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.chunks.is_empty() {
            let fail = std::mem::take(&mut self.fail);
            return Poll::Ready(fail.then(|| Err(std::io::Error::other("connection reset"))));
        }
        let chunk = self.chunks.remove(0);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

fn chunked(chunks: Vec<Bytes>, fail: bool) -> Request<Body> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .body(Body::new(Chunks { chunks, fail }))
        .unwrap()
}

#[tokio::test]
async fn a_content_length_above_the_bound_is_413_without_reading() {
    let s = Setup::new().await;
    let polled = Arc::new(AtomicBool::new(false));
    let req = Request::post("/mcp")
        .header("content-length", (LIMIT + 1).to_string())
        .body(Body::new(Untouchable(polled.clone())))
        .unwrap();
    let (response, seen) = s.send_with(rules(), STRICTEST, req).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!polled.load(Ordering::SeqCst), "the body was read");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_streamed_body_growing_past_the_bound_is_413() {
    let s = Setup::new().await;
    let chunks = vec![Bytes::from(vec![b' '; 1000]); 5];
    let (response, seen) = s
        .send_with(rules(), STRICTEST, chunked(chunks, false))
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_body_of_exactly_the_bound_in_pieces_arrives_unchanged() {
    let s = Setup::new().await;
    let mut body = call("search").into_bytes();
    body.resize(LIMIT, b' ');
    let pieces: Vec<Bytes> = body.chunks(1000).map(Bytes::copy_from_slice).collect();
    assert!(pieces.len() > 1);
    let (response, seen) = s
        .send_with(rules(), "docs:read", chunked(pieces, false))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen, [(http::Method::POST, Bytes::from(body))]);
}

#[tokio::test]
async fn a_body_that_fails_to_arrive_is_400() {
    let s = Setup::new().await;
    let pieces = vec![Bytes::from(call("echo"))];
    let (response, seen) = s.send_with(rules(), STRICTEST, chunked(pieces, true)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(seen.is_empty());
}

// --- JSON tricks, each compared with rmcp's reading of the same bytes.

/// What rmcp's server would dispatch for `body`: `Err` when it refuses
/// the body, else the method and, for a tool call, the tool.
fn rmcp_dispatch(body: &[u8]) -> Result<(String, Option<String>), String> {
    let message: ClientJsonRpcMessage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(match message {
        JsonRpcMessage::Request(request) => match request.request {
            ClientRequest::CallToolRequest(call) => {
                ("tools/call".into(), Some(call.params.name.into_owned()))
            }
            other => (other.method().to_owned(), None),
        },
        JsonRpcMessage::Notification(n) => {
            let value = serde_json::to_value(&n.notification).unwrap();
            (value["method"].as_str().unwrap().to_owned(), None)
        }
        JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_) => ("(response)".into(), None),
    })
}

/// Asserts what our layer requires for `body` and that it is what rmcp
/// would run, or the strictest set.
async fn trick(
    s: &Setup,
    body: &[u8],
    expected: Needs,
) -> Result<(String, Option<String>), String> {
    let ours = s.needs(body).await;
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    assert_eq!(ours, expected, "our layer, for {shown}");
    let theirs = rmcp_dispatch(body);
    if ours.as_deref() != Some(STRICTEST) {
        match &theirs {
            Ok((_, Some(tool))) => {
                assert_eq!(ours, tool_needs(tool), "rmcp runs {tool} for {shown}")
            }
            // rmcp's fallback for a malformed tool call is a custom request
            // named `tools/call`, which runs no tool.
            Ok((method, None)) if method == "tools/call" => {}
            Ok((method, None)) => {
                assert_eq!(ours, method_needs(method), "rmcp runs {method} for {shown}")
            }
            Err(_) => {}
        }
    }
    theirs
}

fn strict() -> Needs {
    Some(STRICTEST.into())
}

#[tokio::test]
async fn rmcp_and_the_layer_read_plain_calls_alike() {
    let s = Setup::new().await;
    for tool in ["search", "delete", "audit", "echo", "other"] {
        let theirs = trick(&s, call(tool).as_bytes(), tool_needs(tool)).await;
        assert_eq!(theirs, Ok(("tools/call".into(), Some(tool.into()))));
    }
    // Members in another order, and a `name` inside the arguments.
    let body = br#"{"params":{"arguments":{"name":"echo"},"name":"delete"},"method":"tools/call","id":1,"jsonrpc":"2.0"}"#;
    assert_eq!(
        trick(&s, body, tool_needs("delete")).await,
        Ok(("tools/call".into(), Some("delete".into())))
    );
}

#[tokio::test]
async fn a_duplicate_method_is_unclassifiable() {
    let s = Setup::new().await;
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"delete"}}"#;
    assert!(trick(&s, body, strict()).await.is_err());
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/call","params":{"name":"echo"}}"#;
    assert!(trick(&s, body, strict()).await.is_err());
    // Escaped, the second is still the same name.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call","params":{"name":"delete"}}"#;
    assert!(trick(&s, body, strict()).await.is_err());
}

#[tokio::test]
async fn a_duplicate_tool_name_is_unclassifiable() {
    let s = Setup::new().await;
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"delete"}}"#;
    let theirs = trick(&s, body, strict()).await;
    // rmcp does not run either tool (it falls back to a custom request).
    assert!(!matches!(theirs, Ok((_, Some(_)))), "{theirs:?}");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":{"name":"delete"}}"#;
    let theirs = trick(&s, body, strict()).await;
    assert!(!matches!(theirs, Ok((_, Some(_)))), "{theirs:?}");
}

#[tokio::test]
async fn escapes_are_decoded_as_the_server_decodes_them() {
    let s = Setup::new().await;
    let delete = Ok(("tools/call".to_owned(), Some("delete".to_owned())));
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"delete"}}"#;
    assert_eq!(trick(&s, body, tool_needs("delete")).await, delete);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"na\u006de":"delete"}}"#;
    assert_eq!(trick(&s, body, tool_needs("delete")).await, delete);
    let body =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"d\u0065l\u0065te"}}"#;
    assert_eq!(trick(&s, body, tool_needs("delete")).await, delete);
    let body =
        br#"{"jsonrpc":"2.0","id":1,"\u006dethod":"tools/call","\u0070arams":{"name":"delete"}}"#;
    assert_eq!(trick(&s, body, tool_needs("delete")).await, delete);
    // Case matters to both: not a tool call, so what other methods need.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"delete"}}"#;
    assert_eq!(trick(&s, body, None).await, Ok(("Tools/Call".into(), None)));
    // A lone surrogate is refused by serde_json, so by both.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo\ud800"}}"#;
    assert!(trick(&s, body, strict()).await.is_err());
}

/// A tool call whose `arguments` are `arguments` (raw JSON).
fn call_with(tool: &str, arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
    )
}

#[tokio::test]
async fn what_the_server_refuses_in_a_skipped_value_does_not_lower_the_bar() {
    // The layer skips the values that choose nothing (ids, arguments,
    // `_meta`) with serde_json's own skipping, which does not check
    // number ranges, surrogates, UTF-8 or depth inside them. rmcp refuses
    // such bodies, so nothing runs; and the tool they name still needs its
    // own scopes, so none of these is a way past the layer.
    let s = Setup::new().await;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let skipped = [
        r#"{"n":1e400}"#.to_owned(),
        r#"{"n":-1e999}"#.to_owned(),
        r#"{"s":"\ud800"}"#.to_owned(),
        format!(r#"{{"a":{}}}"#, deep(1_000)),
    ];
    for arguments in &skipped {
        for tool in ["delete", "search", "echo"] {
            let body = call_with(tool, arguments);
            let theirs = trick(&s, body.as_bytes(), tool_needs(tool)).await;
            assert!(theirs.is_err(), "rmcp refuses {body:.80}: {theirs:?}");
        }
    }
    // The same in the id.
    let body = br#"{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"delete"}}"#;
    assert!(trick(&s, body, tool_needs("delete")).await.is_err());
    // Invalid UTF-8 inside an argument string.
    let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete\",\"arguments\":{\"s\":\"\xff\xfe\"}}}";
    assert!(trick(&s, body, tool_needs("delete")).await.is_err());
    // A large integer is a valid (float) number to serde_json: the tool is
    // read; rmcp refuses the id.
    let body = br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"delete"}}"#;
    trick(&s, body, tool_needs("delete")).await.unwrap_err();
}

#[tokio::test]
async fn deep_nesting_is_bounded_by_the_body_not_the_stack() {
    let s = Setup::new().await;
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let big = || rules().max_body_bytes(1 << 20);
    // 100 000 levels inside the arguments: skipped without recursion, so
    // the tool's scopes decide. Refused without them, and never read by
    // the inner service...
    let body = call_with("delete", &format!(r#"{{"a":{}}}"#, deep(100_000)));
    let (response, seen) = s.send_with(big(), "", post(body.clone())).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(scope_of(&response), tool_needs("delete"));
    assert!(seen.is_empty());
    // ...let through, unchanged, with them; rmcp then refuses it.
    let (response, seen) = s
        .send_with(big(), "docs:write admin", post(body.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1, body.as_bytes());
    assert!(rmcp_dispatch(body.as_bytes()).is_err());
    // Where the structure is read (a batch, a message), serde_json's
    // recursion limit applies: unclassifiable.
    let body = format!("[{}]", deep(1_000));
    assert!(trick(&s, body.as_bytes(), strict()).await.is_err());
    // Shallow nesting is fine.
    let body = call_with("echo", &format!(r#"{{"a":{}}}"#, deep(100)));
    assert!(trick(&s, body.as_bytes(), None).await.is_ok());
}

#[tokio::test]
async fn a_byte_order_mark_or_trailing_garbage_is_unclassifiable() {
    let s = Setup::new().await;
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(call("echo").as_bytes());
    assert!(trick(&s, &bom, strict()).await.is_err());
    for tail in ["x", "}", ",", &call("delete"), "\0"] {
        let body = format!("{}{tail}", call("echo"));
        assert!(
            trick(&s, body.as_bytes(), strict()).await.is_err(),
            "{tail:?}"
        );
    }
    // Whitespace around the value is JSON.
    let body = format!(" \n{}\r\n\t", call("echo"));
    assert!(trick(&s, body.as_bytes(), None).await.is_ok());
}

#[tokio::test]
async fn other_unclassifiable_bodies_need_every_scope() {
    let s = Setup::new().await;
    let bodies: [&[u8]; 13] = [
        b"",
        b"not json",
        b"\"tools/call\"",
        b"null",
        b"{}",
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete"]}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":7,"params":{"name":"echo"}}"#,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"ec\xFFho\"}}",
        // Invalid UTF-8 in the method, in a member name beside `method`,
        // and in a member name beside `params` (which an unknown member
        // would not change): no reading of it, so no method and no tool.
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/ca\xFFll\",\"params\":{\"name\":\"echo\"}}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"me\xFFthod\":\"tools/list\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"par\xC3ams\":{\"name\":\"delete\"},\"params\":{\"name\":\"echo\"}}",
    ];
    for body in bodies {
        let theirs = trick(&s, body, strict()).await;
        assert!(
            !matches!(theirs, Ok((_, Some(_)))),
            "rmcp runs a tool for {body:?}: {theirs:?}"
        );
    }
    // Every scope opens them (the server then refuses what it cannot read).
    assert_eq!(s.needs_with(STRICTEST, b"not json").await, None);
}
