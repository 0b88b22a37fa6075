//! MCP per-tool scopes (feature `mcp`): [`McpScopes`] reads the JSON-RPC
//! body of a streamable-HTTP MCP request, finds what it asks for (a
//! `tools/call` and its tool's `params.name`, or another method) and lets it
//! through only if the [`Principal`] the gate authenticated has the scopes
//! configured for that. The check is the crate's own
//! ([`ScopeRequirement`]); a refusal is the gate's own answer: 403
//! `insufficient_scope` naming, in one challenge, every scope the request
//! needs (MCP authorization 2026-07-28: no incremental challenges), or 401
//! when no principal is there.
//!
//! # Placement
//!
//! Inside the gate: the gate puts the [`Principal`] in the request
//! extensions, this layer reads it. With axum,
//! `Router::new().route_service("/mcp", mcp_service).layer(scopes).layer(gate.layer())`
//! (or `.route_layer(scopes)`), the protected-resource metadata route
//! outside both. A CORS layer, when there is one, goes outside the gate.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::{Router, body::Body};
//! use http::{Request, Response, StatusCode};
//! use tokengate::ScopeRequirement;
//! use tokengate::mcp::{McpRequirement, McpScopes};
//! use tower::ServiceExt;
//! # use tokengate::testing::TestIssuer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let test_issuer = TestIssuer::start().await?;
//! # let (issuer, audience) = (test_issuer.issuer(), test_issuer.audience());
//! let gate = tokengate::TokenGate::builder()
//!     .issuer(issuer)
//!     .audience(audience)
//!     .build()
//!     .await?;
//! let scopes = McpScopes::new()
//!     .tool("search", ScopeRequirement::all(["docs:read"]))
//!     .tool("delete", ScopeRequirement::all(["docs:write", "admin"]))
//!     .tool("echo", McpRequirement::Authenticated);
//!
//! // In a real server: rmcp's `StreamableHttpService`.
//! let mcp = tower::service_fn(|_: Request<Body>| async {
//!     Ok::<_, Infallible>(Response::new(Body::from("{}")))
//! });
//! let app: Router = Router::new()
//!     .route_service("/mcp", mcp)
//!     .layer(scopes)
//!     .layer(gate.layer());
//!
//! let token = test_issuer.token().scope("docs:read").sign();
//! let call = |tool: &str| {
//!     Request::post("/mcp")
//!         .header("authorization", format!("Bearer {token}"))
//!         .header("content-type", "application/json")
//!         .body(Body::from(format!(
//!             r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
//!         )))
//!         .unwrap()
//! };
//! assert_eq!(app.clone().oneshot(call("search")).await?.status(), StatusCode::OK);
//! let refused = app.oneshot(call("delete")).await?;
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//! assert!(refused.headers()["www-authenticate"]
//!     .to_str()?
//!     .contains(r#"scope="docs:write admin""#));
//! # Ok(()) }
//! ```
//!
//! # What each request needs
//!
//! | request | needs |
//! |---|---|
//! | POST, `tools/call` of a listed tool | that tool's [`McpRequirement`] |
//! | POST, `tools/call` of another tool | [`unlisted_tools`](McpScopes::unlisted_tools): by default [`McpRequirement::Strictest`] (fail closed) |
//! | POST, another method listed with [`method`](McpScopes::method) | its requirement |
//! | POST, any other method (`initialize`, `tools/list`, notifications…), or a JSON-RPC response or error (a client answering the server) | [`other_methods`](McpScopes::other_methods): by default [`McpRequirement::Authenticated`] |
//! | POST, a batch (JSON array) | what every member needs, all at once |
//! | POST, a body that cannot be classified | [`McpRequirement::Strictest`]: every scope any rule names |
//! | GET (the SSE stream), DELETE (end of session), any other HTTP method | [`other_methods`](McpScopes::other_methods); the body is not read |
//!
//! Every request needs a principal: without one the answer is 401, before
//! the body is read.
//!
//! # The body
//!
//! Only a POST's body is read, and only up to
//! [`max_body_bytes`](McpScopes::max_body_bytes) (1 MiB by default): a
//! `Content-Length` (or a body size hint) above it is answered 413 at once,
//! without reading; a body that grows past it while read is 413 too; a body
//! that fails to arrive is 400. The inner service gets the very bytes that
//! were read, as a body built with `From<Bytes>` (axum's `Body` and
//! `http_body_util::Full<Bytes>` are); trailers, which JSON-RPC never uses,
//! are not passed on.
//!
//! # Reading JSON the way the server does
//!
//! The method and tool name that are checked must be the ones the MCP
//! server dispatches, or a crafted body could be checked as one tool and run
//! as another. The body is read with `serde_json`, the parser `rmcp` (the
//! official Rust SDK) uses, through the same derive-like rules:
//!
//! - `\u` escapes are decoded, in member names (`"na\u006de"` is `name`) and
//!   in values (`"tools\u002fcall"` is `tools/call`);
//! - a message that names `method` or `params` twice, or whose `params`
//!   names `name` twice, cannot be classified (rmcp refuses duplicate fields
//!   too);
//! - the structure of the body is read by the same tokenizer: where a
//!   string, an object or an array begins and ends, which members belong to
//!   which object; what serde_json refuses in that structure (not JSON, a
//!   byte-order mark, anything after the JSON value, nesting deeper than 128
//!   where messages and `params` are read, invalid UTF-8 or a lone surrogate
//!   in a member name, `method` or `name`) makes the body unclassifiable;
//! - the values that choose nothing (`id`, `jsonrpc`, `arguments`, `_meta`,
//!   any other member) are skipped with serde_json's own skipping
//!   (`IgnoredAny`), which finds where they end but does not check number
//!   ranges (`1e400`), surrogates, UTF-8 or depth inside them. A body with
//!   such a value is read by its method and tool like any other, and the
//!   server then refuses to parse it: no tool runs, and the tool it names
//!   needed its own scopes anyway. Skipping them so takes a fifth less work
//!   than parsing them (README, Performance), and a deeply nested value is skipped
//!   without recursion, so its depth is bounded by
//!   [`max_body_bytes`](McpScopes::max_body_bytes), not by the stack;
//! - a message is an object with a string `method`, or without one but with
//!   `result` or `error` (a response); anything else (not JSON, a scalar, an
//!   empty batch, a batch member that is not an object, a `tools/call`
//!   without a string `params.name`, `{}`) cannot be classified.
//!
//! An unclassifiable body needs every scope any rule of the layer names:
//! a principal that has them all could call any tool anyway, so nothing is
//! gained by crafting such a body, and nobody else gets through with one.
//!
//! # The challenge
//!
//! A refusal names every scope the whole request needs, not only the ones
//! missing: clients that replace their token with one holding the
//! challenge's scopes would otherwise lose the ones they had and loop. An
//! [`any`](ScopeRequirement::any) requirement is named by the scope of it
//! the principal holds, or else by its first scope, as [`ScopeRequirement`]
//! documents.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use bytes::{Buf, BufMut, BytesMut};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, header};
use http_body::Body;
use pin_project_lite::pin_project;
use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::AuthError;
use crate::principal::Principal;
use crate::requirement::hierarchy::{ScopeHierarchy, scopes_met};
use crate::requirement::{ScopeRequirement, counted, hierarchy, missing_principal};
use crate::response::{Wire, wire};
use crate::scope::Scopes;
use crate::verify::gate::respond;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The default bound on a POST body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// What a tool, a method or a stream requires of the principal.
///
/// ```
/// use tokengate::ScopeRequirement;
/// use tokengate::mcp::McpRequirement;
///
/// let write: McpRequirement = ScopeRequirement::all(["docs:write"]).into();
/// assert_eq!(write, McpRequirement::Scopes(ScopeRequirement::all(["docs:write"])));
/// assert_ne!(McpRequirement::Authenticated, McpRequirement::Strictest);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum McpRequirement {
    /// Any authenticated principal, whatever its scopes.
    Authenticated,
    /// These scopes.
    Scopes(ScopeRequirement),
    /// Every scope that any rule of the layer names, all at once: what an
    /// unclassifiable body needs. With no scope named anywhere, nobody
    /// meets it (fail closed, as "all of no scopes" would let everyone in).
    Strictest,
}

impl From<ScopeRequirement> for McpRequirement {
    fn from(requirement: ScopeRequirement) -> Self {
        McpRequirement::Scopes(requirement)
    }
}

static STRICTEST: McpRequirement = McpRequirement::Strictest;
const TOOLS_CALL: &str = "tools/call";

#[derive(Clone, Debug)]
struct Config {
    tools: HashMap<Box<str>, McpRequirement>,
    unlisted_tools: McpRequirement,
    methods: HashMap<Box<str>, McpRequirement>,
    other_methods: McpRequirement,
    max_body_bytes: usize,
    /// Every scope any rule names, sorted and deduplicated.
    strictest: Box<[Box<str>]>,
}

/// The layer: per-tool scopes for an MCP server behind the gate (see the
/// [module docs](self) for placement, defaults and the rules).
///
/// Built by chained setters; cheap to clone (the configuration is shared).
///
/// ```
/// use tokengate::ScopeRequirement;
/// use tokengate::mcp::{McpRequirement, McpScopes};
///
/// let scopes = McpScopes::new()
///     .tool("search", ScopeRequirement::all(["docs:read"]))
///     .unlisted_tools(ScopeRequirement::all(["admin"]))
///     .method("tools/list", ScopeRequirement::any(["docs:read", "admin"]))
///     .max_body_bytes(256 * 1024);
/// assert_eq!(scopes.strictest_scopes().collect::<Vec<_>>(), ["admin", "docs:read"]);
/// ```
#[derive(Clone)]
pub struct McpScopes {
    config: Arc<Config>,
}

impl fmt::Debug for McpScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("McpScopes")
            .field("tools", &c.tools)
            .field("unlisted_tools", &c.unlisted_tools)
            .field("methods", &c.methods)
            .field("other_methods", &c.other_methods)
            .field("max_body_bytes", &c.max_body_bytes)
            .finish()
    }
}

impl Default for McpScopes {
    fn default() -> Self {
        McpScopes::new()
    }
}

impl McpScopes {
    /// No tool listed: every `tools/call` needs [`McpRequirement::Strictest`],
    /// every other method [`McpRequirement::Authenticated`]; bodies up to
    /// [`DEFAULT_MAX_BODY_BYTES`].
    ///
    /// ```
    /// let scopes = tokengate::mcp::McpScopes::new();
    /// assert_eq!(scopes.strictest_scopes().len(), 0);
    /// ```
    pub fn new() -> Self {
        McpScopes {
            config: Arc::new(Config {
                tools: HashMap::new(),
                unlisted_tools: McpRequirement::Strictest,
                methods: HashMap::new(),
                other_methods: McpRequirement::Authenticated,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                strictest: Box::new([]),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let config = Arc::make_mut(&mut self.config);
        change(config);
        let mut all: Vec<Box<str>> = Vec::new();
        let rules = config
            .tools
            .values()
            .chain(config.methods.values())
            .chain([&config.unlisted_tools, &config.other_methods]);
        for rule in rules {
            if let McpRequirement::Scopes(r) = rule {
                all.extend(r.parts().0.iter().cloned());
            }
        }
        all.sort_unstable();
        all.dedup();
        config.strictest = all.into();
        self
    }

    /// What a `tools/call` of the tool `name` requires (replacing an earlier
    /// rule for the same name).
    ///
    /// ```
    /// use tokengate::ScopeRequirement;
    /// use tokengate::mcp::{McpRequirement, McpScopes};
    ///
    /// let scopes = McpScopes::new()
    ///     .tool("delete", ScopeRequirement::all(["docs:write", "admin"]))
    ///     .tool("echo", McpRequirement::Authenticated);
    /// # let _ = scopes;
    /// ```
    #[must_use]
    pub fn tool(self, name: impl Into<String>, requirement: impl Into<McpRequirement>) -> Self {
        let (name, requirement) = (name.into().into_boxed_str(), requirement.into());
        self.with(|c| {
            c.tools.insert(name, requirement);
        })
    }

    /// What a `tools/call` of a tool not listed with [`tool`](Self::tool)
    /// requires. Default: [`McpRequirement::Strictest`], so a tool added to
    /// the server without a rule is closed to all but the principals that
    /// hold every scope; say [`McpRequirement::Authenticated`] to open
    /// unlisted tools to any authenticated caller.
    ///
    /// ```
    /// use tokengate::mcp::{McpRequirement, McpScopes};
    /// let open = McpScopes::new().unlisted_tools(McpRequirement::Authenticated);
    /// # let _ = open;
    /// ```
    #[must_use]
    pub fn unlisted_tools(self, requirement: impl Into<McpRequirement>) -> Self {
        let requirement = requirement.into();
        self.with(|c| c.unlisted_tools = requirement)
    }

    /// What a JSON-RPC request or notification with this `method` requires
    /// (`initialize`, `tools/list`, `resources/read`,
    /// `notifications/initialized`…), compared exactly after JSON
    /// unescaping.
    ///
    /// # Panics
    /// For `tools/call`, which is governed by [`tool`](Self::tool) and
    /// [`unlisted_tools`](Self::unlisted_tools): a programming error, caught
    /// when the layer is built.
    ///
    /// ```
    /// use tokengate::ScopeRequirement;
    /// use tokengate::mcp::McpScopes;
    /// let scopes = McpScopes::new().method("resources/read", ScopeRequirement::all(["docs:read"]));
    /// # let _ = scopes;
    /// ```
    #[must_use]
    pub fn method(self, method: impl Into<String>, requirement: impl Into<McpRequirement>) -> Self {
        let (method, requirement) = (method.into().into_boxed_str(), requirement.into());
        assert!(
            &*method != TOOLS_CALL,
            "McpScopes::method(\"tools/call\"): use McpScopes::tool and unlisted_tools"
        );
        self.with(|c| {
            c.methods.insert(method, requirement);
        })
    }

    /// What everything else requires: methods not listed with
    /// [`method`](Self::method), JSON-RPC responses and errors sent by the
    /// client, and the requests of streamable HTTP that carry no JSON-RPC
    /// (GET for the SSE stream, DELETE to end the session). Default:
    /// [`McpRequirement::Authenticated`].
    ///
    /// ```
    /// use tokengate::ScopeRequirement;
    /// use tokengate::mcp::McpScopes;
    /// let scopes = McpScopes::new().other_methods(ScopeRequirement::all(["mcp"]));
    /// # let _ = scopes;
    /// ```
    #[must_use]
    pub fn other_methods(self, requirement: impl Into<McpRequirement>) -> Self {
        let requirement = requirement.into();
        self.with(|c| c.other_methods = requirement)
    }

    /// The largest POST body read, in bytes (default
    /// [`DEFAULT_MAX_BODY_BYTES`], 1 MiB); larger ones are answered 413.
    ///
    /// ```
    /// let scopes = tokengate::mcp::McpScopes::new().max_body_bytes(64 * 1024);
    /// # let _ = scopes;
    /// ```
    #[must_use]
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.with(|c| c.max_body_bytes = limit)
    }

    /// Every scope any rule names, sorted: what
    /// [`McpRequirement::Strictest`] requires.
    ///
    /// ```
    /// use tokengate::ScopeRequirement;
    /// let scopes = tokengate::mcp::McpScopes::new()
    ///     .tool("a", ScopeRequirement::any(["y", "x"]))
    ///     .tool("b", ScopeRequirement::all(["x"]));
    /// assert_eq!(scopes.strictest_scopes().collect::<Vec<_>>(), ["x", "y"]);
    /// ```
    pub fn strictest_scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.config.strictest.iter().map(|s| &**s)
    }
}

impl<S> Layer<S> for McpScopes {
    type Service = McpScopesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        McpScopesService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The scopes a principal was granted, and the gate's hierarchy over them.
#[derive(Clone, Copy)]
struct Granted<'a> {
    scopes: &'a Scopes,
    hierarchy: Option<&'a ScopeHierarchy>,
}

impl<'a> Granted<'a> {
    fn of(principal: &'a Principal, extensions: &'a http::Extensions) -> Self {
        Granted {
            scopes: principal.scopes(),
            hierarchy: hierarchy(extensions),
        }
    }

    fn has(&self, scope: &str) -> bool {
        match self.hierarchy {
            Some(h) => h.grants(self.scopes, scope),
            None => self.scopes.contains(scope),
        }
    }
}

impl Config {
    fn tool(&self, name: &str) -> &McpRequirement {
        self.tools.get(name).unwrap_or(&self.unlisted_tools)
    }

    fn method(&self, method: &str) -> &McpRequirement {
        self.methods.get(method).unwrap_or(&self.other_methods)
    }

    fn satisfied(&self, need: &McpRequirement, granted: Granted<'_>) -> bool {
        match need {
            McpRequirement::Authenticated => true,
            McpRequirement::Scopes(r) => {
                let (scopes, any) = r.parts();
                scopes_met(granted.scopes, scopes, any, granted.hierarchy)
            }
            McpRequirement::Strictest => {
                !self.strictest.is_empty() && self.strictest.iter().all(|s| granted.has(s))
            }
        }
    }

    /// Adds the scopes `need` stands for to `out`, once each.
    fn name_into<'c>(
        &'c self,
        need: &'c McpRequirement,
        granted: Granted<'_>,
        out: &mut Vec<&'c str>,
    ) {
        let mut push = |s: &'c str| {
            if !out.contains(&s) {
                out.push(s);
            }
        };
        match need {
            McpRequirement::Authenticated => {}
            McpRequirement::Scopes(r) => match r.parts() {
                (scopes, true) => {
                    // One alternative: the one held (so the client keeps
                    // it), or the first, which clients should ask for.
                    if let Some(s) = scopes.iter().find(|s| granted.has(s)).or(scopes.first()) {
                        push(s);
                    }
                }
                (scopes, false) => scopes.iter().for_each(|s| push(s)),
            },
            McpRequirement::Strictest => self.strictest.iter().for_each(|s| push(s)),
        }
    }

    /// Calls `each` with what every message of `body` needs; `false` when
    /// the body cannot be classified (what `each` saw is then void).
    fn classify<'c>(&'c self, body: &[u8], each: &mut dyn FnMut(&'c McpRequirement)) -> bool {
        let mut de = serde_json::Deserializer::from_slice(body);
        (&mut de)
            .deserialize_any(Top { config: self, each })
            .and_then(|()| de.end())
            .is_ok()
    }

    /// Whether a principal with `granted` may send `body`, and if not the
    /// error naming every scope the body needs.
    fn decide(&self, body: &[u8], granted: Granted<'_>) -> Result<(), AuthError> {
        let mut ok = true;
        let classified = self.classify(body, &mut |need| ok &= self.satisfied(need, granted));
        if (classified && ok) || (!classified && self.satisfied(&STRICTEST, granted)) {
            return Ok(());
        }
        // Refusals are rare and may cost a second pass; the first one
        // allocates nothing.
        let mut names = Vec::new();
        if !self.classify(body, &mut |need| self.name_into(need, granted, &mut names)) {
            names.clear();
            self.name_into(&STRICTEST, granted, &mut names);
        }
        Err(self.insufficient(names))
    }

    fn decide_one(&self, need: &McpRequirement, granted: Granted<'_>) -> Result<(), AuthError> {
        if self.satisfied(need, granted) {
            return Ok(());
        }
        let mut names = Vec::new();
        self.name_into(need, granted, &mut names);
        Err(self.insufficient(names))
    }

    fn insufficient(&self, names: Vec<&str>) -> AuthError {
        if names.is_empty() {
            tracing::error!(
                target: "tokengate",
                "an MCP request needs every configured scope and no rule names one: it is refused \
                 (give McpScopes tool rules)"
            );
        }
        AuthError::InsufficientScope {
            required: names.join(" "),
        }
    }
}

// --- The JSON reader: serde_json visitors that read the structure of each
// message, its `method` and `params.name`, and skip every other value with
// serde_json's own skipping (`IgnoredAny`).

/// The scalar `visit_*` methods of a visitor that accepts any value,
/// answering `$value`.
macro_rules! accept_scalars {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The body: one message, or a batch of them.
struct Top<'c, 'f> {
    config: &'c Config,
    each: &'f mut dyn FnMut(&'c McpRequirement),
}

impl<'de, 'c> Visitor<'de> for Top<'c, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        (self.each)(message(self.config, map)?);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut members = 0usize;
        while let Some(need) = seq.next_element_seed(MessageSeed(self.config))? {
            (self.each)(need);
            members += 1;
        }
        if members == 0 {
            return Err(de::Error::custom("empty batch"));
        }
        Ok(())
    }
}

struct MessageSeed<'c>(&'c Config);

impl<'de, 'c> DeserializeSeed<'de> for MessageSeed<'c> {
    type Value = &'c McpRequirement;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 'c> Visitor<'de> for MessageSeed<'c> {
    type Value = &'c McpRequirement;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        message(self.0, map)
    }
}

/// A message's member names that matter, unescaped.
enum Member {
    Method,
    Params,
    Answer,
    Other,
}

impl<'de> de::Deserialize<'de> for Member {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Member, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
                Ok(match v {
                    "method" => Member::Method,
                    "params" => Member::Params,
                    "result" | "error" => Member::Answer,
                    _ => Member::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

enum Called<'c> {
    Tool,
    Method(&'c McpRequirement),
}

/// What one message needs. Member order does not matter: `params` may come
/// before `method`, so the tool's rule is looked up whatever the method.
fn message<'de, 'c, A: MapAccess<'de>>(
    config: &'c Config,
    mut map: A,
) -> Result<&'c McpRequirement, A::Error> {
    let mut called: Option<Called<'c>> = None;
    let mut tool: Option<Option<&'c McpRequirement>> = None;
    let mut answer = false;
    while let Some(member) = map.next_key::<Member>()? {
        match member {
            Member::Method => {
                if called.is_some() {
                    return Err(de::Error::duplicate_field("method"));
                }
                called = Some(map.next_value_seed(MethodSeed(config))?);
            }
            Member::Params => {
                if tool.is_some() {
                    return Err(de::Error::duplicate_field("params"));
                }
                tool = Some(map.next_value_seed(ParamsSeed(config))?);
            }
            Member::Answer => {
                answer = true;
                map.next_value::<IgnoredAny>()?;
            }
            Member::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(match called {
        Some(Called::Tool) => tool.flatten().unwrap_or(&STRICTEST),
        Some(Called::Method(rule)) => rule,
        None if answer => &config.other_methods,
        None => &STRICTEST,
    })
}

struct MethodSeed<'c>(&'c Config);

impl<'de, 'c> DeserializeSeed<'de> for MethodSeed<'c> {
    type Value = Called<'c>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'c> Visitor<'_> for MethodSeed<'c> {
    type Value = Called<'c>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a method name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(if v == TOOLS_CALL {
            Called::Tool
        } else {
            Called::Method(self.0.method(v))
        })
    }
}

/// `params`: the rule of the tool its `name` names, if it is an object with
/// a string `name`. Any other `params` is parsed and is worth nothing.
struct ParamsSeed<'c>(&'c Config);

impl<'de, 'c> DeserializeSeed<'de> for ParamsSeed<'c> {
    type Value = Option<&'c McpRequirement>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'c> Visitor<'de> for ParamsSeed<'c> {
    type Value = Option<&'c McpRequirement>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("params")
    }

    accept_scalars!(None);

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name: Option<Option<&'c McpRequirement>> = None;
        while let Some(key) = map.next_key::<ParamsMember>()? {
            match key {
                ParamsMember::Name => {
                    if name.is_some() {
                        return Err(de::Error::duplicate_field("name"));
                    }
                    name = Some(map.next_value_seed(NameSeed(self.0))?);
                }
                ParamsMember::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(name.flatten())
    }
}

enum ParamsMember {
    Name,
    Other,
}

impl<'de> de::Deserialize<'de> for ParamsMember {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<ParamsMember, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ParamsMember;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamsMember, E> {
                Ok(if v == "name" {
                    ParamsMember::Name
                } else {
                    ParamsMember::Other
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `params.name`: the tool's rule if it is a string (looked up while the
/// unescaped text is at hand, so nothing is copied), nothing otherwise.
struct NameSeed<'c>(&'c Config);

impl<'de, 'c> DeserializeSeed<'de> for NameSeed<'c> {
    type Value = Option<&'c McpRequirement>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'c> Visitor<'de> for NameSeed<'c> {
    type Value = Option<&'c McpRequirement>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tool name")
    }

    accept_scalars!(None);

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(self.0.tool(v)))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| None)
    }
}

// --- The service.

/// The service made by [`McpScopes`].
///
/// ```
/// # fn demo<S>(inner: S) {
/// use tower_layer::Layer;
/// let guarded = tokengate::mcp::McpScopes::new().layer(inner);
/// let _inner: &S = guarded.get_ref();
/// # }
/// ```
#[derive(Clone)]
pub struct McpScopesService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for McpScopesService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpScopesService")
            .field("inner", &self.inner)
            .field(
                "layer",
                &McpScopes {
                    config: self.config.clone(),
                },
            )
            .finish()
    }
}

impl<S> McpScopesService<S> {
    /// The inner service.
    ///
    /// ```
    /// # use tower_layer::Layer;
    /// let svc = tokengate::mcp::McpScopes::new().layer(7_u8);
    /// assert_eq!(*svc.get_ref(), 7);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// # use tower_layer::Layer;
    /// let mut svc = tokengate::mcp::McpScopes::new().layer(7_u8);
    /// *svc.get_mut() = 8;
    /// assert_eq!(*svc.get_ref(), 8);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// ```
    /// # use tower_layer::Layer;
    /// let svc = tokengate::mcp::McpScopes::new().layer(7_u8);
    /// assert_eq!(svc.into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}

/// The body read so far: the first chunk as it came (a body of one chunk,
/// the usual case, is neither copied nor collected into a list), later ones
/// appended to a copy.
#[derive(Default)]
struct BodySoFar {
    first: Bytes,
    more: Option<BytesMut>,
}

impl BodySoFar {
    fn len(&self) -> usize {
        self.more.as_ref().map_or(self.first.len(), BytesMut::len)
    }

    /// Adds `data`; `Err` when the body would exceed `limit` bytes.
    fn push(&mut self, mut data: impl Buf, limit: usize) -> Result<(), ()> {
        let n = data.remaining();
        if n > limit.saturating_sub(self.len()) {
            return Err(());
        }
        if n == 0 {
            return Ok(());
        }
        match &mut self.more {
            Some(more) => more.put(data),
            None if self.first.is_empty() => self.first = data.copy_to_bytes(n),
            None => {
                let mut more = BytesMut::with_capacity(self.first.len() + n);
                more.put_slice(&self.first);
                more.put(data);
                self.more = Some(more);
            }
        }
        Ok(())
    }

    fn take(&mut self) -> Bytes {
        match self.more.take() {
            Some(more) => more.freeze(),
            None => std::mem::take(&mut self.first),
        }
    }
}

fn declared_length<B: Body>(req: &Request<B>) -> u64 {
    let header = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    header.max(req.body().size_hint().lower())
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for McpScopesService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ReqBody: Body + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = McpScopesFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let wire = wire(&req);
        let reject = |response| McpScopesFuture {
            state: State::Reject {
                response: Some(response),
            },
        };
        let Some(principal) = req.extensions().get::<Principal>() else {
            let err = counted(req.extensions(), missing_principal(req.extensions()));
            return reject(respond(req.extensions(), &err, wire));
        };
        let config = &self.config;
        if req.method() != Method::POST {
            return match config.decide_one(
                &config.other_methods,
                Granted::of(principal, req.extensions()),
            ) {
                Ok(()) => McpScopesFuture {
                    state: State::Call {
                        fut: self.inner.call(req),
                    },
                },
                Err(err) => {
                    tracing::debug!(target: "tokengate", reason = %err, "MCP request rejected");
                    let err = counted(req.extensions(), err);
                    reject(respond(req.extensions(), &err, wire))
                }
            };
        }
        let limit = config.max_body_bytes;
        if declared_length(&req) > limit as u64 {
            tracing::debug!(target: "tokengate", "MCP request body above the limit");
            return reject(status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        // The body must be read before the inner service is called: take
        // the service that `poll_ready` readied, and leave a clone in its
        // place (tower's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        McpScopesFuture {
            state: State::Read {
                body,
                read: BodySoFar::default(),
                limit,
                parts: Some(parts),
                inner: Some(inner),
                config: self.config.clone(),
                wire,
            },
        }
    }
}

pin_project! {
    /// The response future of [`McpScopesService`]: reads the body, checks
    /// it, then calls the inner service.
    pub struct McpScopesFuture<S, B>
    where
        S: Service<Request<B>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
        B: Body,
        B::Error: Into<BoxError>,
    {
        Read {
            #[pin]
            body: B,
            read: BodySoFar,
            limit: usize,
            parts: Option<Parts>,
            inner: Option<S>,
            config: Arc<Config>,
            wire: Wire,
        },
        Call { #[pin] fut: S::Future },
        Reject { response: Option<S::Response> },
    }
}

impl<S, B, ResBody> Future for McpScopesFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    B: Body + From<Bytes>,
    B::Error: Into<BoxError>,
    ResBody: Default,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut state = self.as_mut().project().state;
            let next = match state.as_mut().project() {
                StateProj::Call { fut } => return fut.poll(cx),
                StateProj::Reject { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("McpScopesFuture polled after completion")));
                }
                StateProj::Read {
                    mut body,
                    read,
                    limit,
                    parts,
                    inner,
                    config,
                    wire,
                } => {
                    let collected = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break Ok(read.take()),
                            Some(Ok(frame)) => {
                                // Trailers are dropped: JSON-RPC has none.
                                if let Ok(data) = frame.into_data()
                                    && let Err(()) = read.push(data, *limit)
                                {
                                    break Err(StatusCode::PAYLOAD_TOO_LARGE);
                                }
                            }
                            Some(Err(_)) => break Err(StatusCode::BAD_REQUEST),
                        }
                    };
                    let parts = parts
                        .take()
                        .expect("McpScopesFuture polled after completion");
                    match collected {
                        Ok(bytes) => {
                            let verdict = match parts.extensions.get::<Principal>() {
                                Some(p) => config.decide(&bytes, Granted::of(p, &parts.extensions)),
                                None => Err(missing_principal(&parts.extensions)),
                            };
                            match verdict {
                                Ok(()) => {
                                    let req = Request::from_parts(parts, B::from(bytes));
                                    let mut inner = inner
                                        .take()
                                        .expect("McpScopesFuture polled after completion");
                                    State::Call {
                                        fut: inner.call(req),
                                    }
                                }
                                Err(err) => {
                                    tracing::debug!(target: "tokengate", reason = %err, "MCP request rejected");
                                    let err = counted(&parts.extensions, err);
                                    State::Reject {
                                        response: Some(respond(&parts.extensions, &err, *wire)),
                                    }
                                }
                            }
                        }
                        Err(code) => {
                            tracing::debug!(target: "tokengate", status = code.as_u16(), "MCP request body not read");
                            State::Reject {
                                response: Some(status(code)),
                            }
                        }
                    }
                }
            };
            state.set(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(scopes: &Scopes) -> Granted<'_> {
        Granted {
            scopes,
            hierarchy: None,
        }
    }

    #[test]
    fn a_hierarchy_grants_tools_and_the_challenge_names_the_tool_s_scope() {
        let config = layer().config;
        let h = ScopeHierarchy::new().implies("admin", ["x"]);
        let granted = scopes("admin");
        let with = Granted {
            scopes: &granted,
            hierarchy: Some(&h),
        };
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"either"}}"#;
        assert!(config.decide(call, bare(&granted)).is_err());
        assert!(config.decide(call, with).is_ok());
    }

    fn scopes(s: &str) -> Scopes {
        Scopes::parse(s).unwrap()
    }

    fn layer() -> McpScopes {
        McpScopes::new()
            .tool("read", ScopeRequirement::all(["r"]))
            .tool("write", ScopeRequirement::all(["w", "r"]))
            .tool("either", ScopeRequirement::any(["x", "r"]))
            .tool("open", McpRequirement::Authenticated)
            .method("tools/list", ScopeRequirement::all(["list"]))
    }

    fn required(body: &str, granted: &str) -> Result<(), String> {
        layer()
            .config
            .decide(body.as_bytes(), bare(&scopes(granted)))
            .map_err(|e| match e {
                AuthError::InsufficientScope { required } => required,
                other => panic!("{other:?}"),
            })
    }

    #[test]
    fn tool_calls_need_their_tool_s_scopes() {
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )
        };
        assert_eq!(required(&call("read"), "r"), Ok(()));
        assert_eq!(required(&call("write"), "r"), Err("w r".into()));
        assert_eq!(required(&call("open"), ""), Ok(()));
        assert_eq!(required(&call("either"), ""), Err("x".into()));
        assert_eq!(required(&call("nope"), "r w x"), Err("list r w x".into()));
        assert_eq!(required(&call("nope"), "list r w x"), Ok(()));
    }

    #[test]
    fn members_may_come_in_any_order() {
        let body = r#"{"params":{"arguments":{"name":"open"},"name":"write"},"id":1,"method":"tools/call","jsonrpc":"2.0"}"#;
        assert_eq!(required(body, "r"), Err("w r".into()));
    }

    #[test]
    fn a_batch_names_every_scope_it_needs() {
        let body = r#"[{"id":1,"method":"tools/call","params":{"name":"either"}},
                       {"id":2,"method":"tools/call","params":{"name":"write"}},
                       {"id":3,"method":"tools/list"}]"#;
        // `either` is met by `r`, and named by it so the client keeps it.
        assert_eq!(required(body, "r"), Err("r w list".into()));
        assert_eq!(required(body, "r w list"), Ok(()));
    }

    #[test]
    fn a_body_is_read_up_to_its_limit_and_one_chunk_is_not_copied() {
        let chunk = Bytes::from_static(b"0123456789");
        let mut read = BodySoFar::default();
        read.push(Bytes::new(), 10).unwrap();
        read.push(chunk.clone(), 10).unwrap();
        read.push(Bytes::new(), 10).unwrap();
        let one = read.take();
        assert_eq!(one.as_ptr(), chunk.as_ptr(), "the very chunk, not a copy");

        let mut read = BodySoFar::default();
        read.push(&b"0123"[..], 10).unwrap();
        read.push(&b"45678"[..], 10).unwrap();
        read.push(&b"9"[..], 10).unwrap(); // exactly the limit
        assert_eq!(read.push(&b"x"[..], 10), Err(()));
        assert_eq!(read.take(), &b"0123456789"[..]);

        let mut read = BodySoFar::default();
        assert_eq!(read.push(&b"0123456789x"[..], 10), Err(()));
    }

    #[test]
    fn nothing_named_anywhere_refuses_unclassifiable_bodies() {
        let config = McpScopes::new().config;
        assert!(config.decide(b"{}", bare(&scopes("a"))).is_err());
        assert!(
            config
                .decide(br#"{"method":"ping"}"#, bare(&scopes("")))
                .is_ok()
        );
    }
}
