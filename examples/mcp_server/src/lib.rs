//! An MCP server (the official Rust SDK, `rmcp`, over streamable HTTP)
//! that is an OAuth 2.1 resource server by the MCP authorization spec,
//! with tokengate in front:
//!
//! - `GET /.well-known/oauth-protected-resource/mcp`: the RFC 9728
//!   metadata (no token needed), naming the authorization server;
//! - `POST /mcp`: MCP over streamable HTTP, behind the gate: 401 with
//!   `resource_metadata="…"` without a valid token whose audience is the
//!   resource URL (RFC 8707), 403 `insufficient_scope` naming the scopes of
//!   a tool the token may not call;
//! - `GET /health`: no token needed.
//!
//! The tools and the scopes they need:
//!
//! | tool | scopes |
//! |---|---|
//! | `list_items` | `items:read` |
//! | `add_item` | `items:write` |
//! | `purge` | `admin` |
//! | `whoami` | any valid token: it answers the caller's client id, subject and scopes |

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde_json::json;
use tokengate::mcp::{McpRequirement, McpScopes};
use tokengate::{Principal, ScopeRequirement, TokenGate};

/// Every scope a tool needs, as the metadata lists them in
/// `scopes_supported`.
pub const SCOPES: [&str; 3] = ["items:read", "items:write", "admin"];

/// The tools that need a scope, and which. `whoami` needs none beyond a
/// valid token.
pub const TOOL_SCOPES: [(&str, &str); 3] = [
    ("list_items", "items:read"),
    ("add_item", "items:write"),
    ("purge", "admin"),
];

/// The items every MCP session shares.
pub type Items = Arc<Mutex<Vec<String>>>;

/// `add_item`'s arguments.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddItem {
    /// The new item's name.
    pub name: String,
}

/// The MCP server: its tools read and change the shared items. The scope
/// checks run before a tool does, in the HTTP layers of [`router`].
#[derive(Clone)]
pub struct ItemsServer {
    items: Items,
}

#[tool_router]
impl ItemsServer {
    /// A server over `items`.
    pub fn new(items: Items) -> Self {
        Self { items }
    }

    #[tool(description = "List the items (needs items:read)")]
    fn list_items(&self) -> Result<CallToolResult, ErrorData> {
        let items = self.items.lock().unwrap().clone();
        Ok(CallToolResult::structured(json!({ "items": items })))
    }

    #[tool(description = "Add an item (needs items:write)")]
    fn add_item(
        &self,
        Parameters(AddItem { name }): Parameters<AddItem>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut items = self.items.lock().unwrap();
        items.push(name.clone());
        Ok(CallToolResult::structured(
            json!({ "id": items.len() - 1, "name": name }),
        ))
    }

    #[tool(description = "Remove every item (needs admin)")]
    fn purge(&self) -> Result<CallToolResult, ErrorData> {
        let mut items = self.items.lock().unwrap();
        let removed = items.len();
        items.clear();
        Ok(CallToolResult::structured(json!({ "removed": removed })))
    }

    /// rmcp hands a tool the HTTP request's `Parts`; the gate put the
    /// verified [`Principal`] in their extensions. The token itself is in
    /// `parts.headers` too: never answer or log it.
    #[tool(description = "Who is calling: client id, subject and scopes of the access token")]
    fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let principal = parts.extensions.get::<Principal>().ok_or_else(|| {
            // Only when the router is mounted without the gate.
            ErrorData::internal_error("no principal: is the gate in front of /mcp?", None)
        })?;
        Ok(CallToolResult::structured(json!({
            "client_id": principal.client_id(),
            "sub": principal.subject(),
            "scopes": principal.scopes().iter().collect::<Vec<_>>(),
            "source": principal.source().as_str(),
        })))
    }
}

#[tool_handler]
impl ServerHandler for ItemsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::from_build_env())
            .with_instructions(
                "An items store. list_items needs items:read, add_item items:write, \
                 purge admin; whoami tells who the access token belongs to.",
            )
    }
}

/// The app: the metadata and `/health` in the open, `/mcp` behind `gate`
/// (which must have a [`resource`](tokengate::TokenGateBuilder::resource))
/// and the per-tool scope checks.
///
/// `allowed_hosts` are the `Host` values rmcp accepts (its DNS-rebinding
/// guard; loopback by default): add the resource URL's host when it is not
/// loopback.
pub fn router(gate: &TokenGate, items: Items, allowed_hosts: &[String]) -> Router {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    hosts.extend(allowed_hosts.iter().cloned());
    // Stateless, JSON answers: each POST stands alone, so every request is
    // authenticated and authorized by itself and nothing is kept per
    // session (the gate keeps nothing either).
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(hosts);
    let mcp = StreamableHttpService::new(
        move || Ok(ItemsServer::new(items.clone())),
        LocalSessionManager::default().into(),
        config,
    );
    let protected = Router::new()
        .route_service("/mcp", mcp)
        .layer(tool_scopes())
        // Outside the scope checks: it authenticates, they authorize.
        .layer(gate.layer());
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .merge(tokengate::axum::metadata_router(gate))
        .merge(protected)
}

/// The per-tool scopes of [`TOOL_SCOPES`], `whoami` for any valid token;
/// a tool not listed here needs every scope (tokengate's fail-closed
/// default), as does a body that cannot be read as JSON-RPC.
pub fn tool_scopes() -> McpScopes {
    TOOL_SCOPES
        .into_iter()
        .fold(McpScopes::new(), |scopes, (tool, scope)| {
            scopes.tool(tool, ScopeRequirement::all([scope]))
        })
        .tool("whoami", McpRequirement::Authenticated)
}
