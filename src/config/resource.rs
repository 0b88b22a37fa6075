//! The protected resource itself (RFC 9728, RFC 8707): its identifier,
//! which is also the default audience, and what its metadata document says
//! besides (scopes, name, documentation and policy pages), plus the scope
//! hint of 401 challenges.

use super::http::{HttpSettings, redacted};
use super::{BuildError, TokenGateBuilder};
use crate::metadata::{self, BadResource, Published, ResourceMetadata};
use crate::scope::is_scope_token;

#[derive(Debug, Clone, Default)]
pub(super) struct ResourceSettings {
    pub(super) resource: Option<String>,
    scopes_supported: Vec<String>,
    name: Option<String>,
    documentation: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    at_root: bool,
    pub(super) challenge_scope: Vec<String>,
    /// `authorization_servers` named by hand, listed after the trusted
    /// issuers that have one identifier.
    authorization_servers: Vec<String>,
}

impl ResourceSettings {
    /// The canonical resource identifier, if one is configured and allowed
    /// by the URL policy (https, or http on loopback).
    pub(super) fn identifier(&self, http: &HttpSettings) -> Result<Option<String>, BuildError> {
        let Some(given) = self.resource.as_deref() else {
            return Ok(None);
        };
        let invalid = |why| BuildError::InvalidUrl {
            what: "resource",
            url: format!("{} ({why})", redacted(given)),
        };
        let (canonical, _) = metadata::canonical(given).map_err(|e| match e {
            BadResource::NotAUrl => invalid("not an absolute URL"),
            BadResource::Extras => invalid("no query, fragment or credentials allowed"),
            BadResource::NotNormal => invalid(
                "not in RFC 3986 normal form: percent-encode spaces, quotes, braces and \
                 non-ASCII characters, give an IDN host in its xn-- form, drop . and .. segments",
            ),
        })?;
        http.checked_url("resource", &canonical)?;
        Ok(Some(canonical))
    }

    /// The scope hint of 401 challenges, checked.
    pub(super) fn hint(&self) -> Result<Option<String>, BuildError> {
        if self.challenge_scope.is_empty() {
            return Ok(None);
        }
        if !self.challenge_scope.iter().all(|s| is_scope_token(s)) {
            return Err(BuildError::InvalidConfig(
                "challenge_scope holds a malformed scope",
            ));
        }
        Ok(Some(self.challenge_scope.join(" ")))
    }

    /// The published document for `resource`, when there is one.
    pub(super) fn publish(
        &self,
        resource: Option<String>,
        issuers: &[String],
        query_tokens: bool,
        dpop: Option<&crate::dpop::Dpop>,
        certificate_bound: bool,
    ) -> Result<Option<Published>, BuildError> {
        if !self.scopes_supported.iter().all(|s| is_scope_token(s)) {
            return Err(BuildError::InvalidConfig(
                "scopes_supported holds a malformed scope",
            ));
        }
        for (what, page) in [
            ("resource_documentation", &self.documentation),
            ("resource_policy_uri", &self.policy_uri),
            ("resource_tos_uri", &self.tos_uri),
        ] {
            if let Some(page) = page {
                page_url(what, page)?;
            }
        }
        if self
            .name
            .as_deref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            return Err(BuildError::InvalidConfig(
                "resource_name contains control characters",
            ));
        }
        for server in &self.authorization_servers {
            page_url("authorization_servers", server)?;
        }
        let Some(resource) = resource else {
            return Ok(None);
        };
        let mut servers = issuers.to_vec();
        for server in &self.authorization_servers {
            if !servers.contains(server) {
                servers.push(server.clone());
            }
        }
        // A client that finds no authorization server cannot get a token:
        // the gate's issuers are all templates (Entra's `{tenantid}`).
        if servers.is_empty() {
            return Err(BuildError::InvalidConfig(
                "the resource metadata would list no authorization server: every trusted issuer \
                 is a template; name the one clients should use with \
                 metadata_authorization_servers(..)",
            ));
        }
        let mut bearer_methods = vec!["header".to_owned()];
        if query_tokens {
            bearer_methods.push("query".to_owned());
        }
        let mut scopes = self.scopes_supported.clone();
        let mut seen = std::collections::HashSet::new();
        scopes.retain(|s| seen.insert(s.clone()));
        let document = ResourceMetadata {
            resource,
            authorization_servers: servers,
            scopes_supported: scopes,
            bearer_methods_supported: bearer_methods,
            resource_name: self.name.clone(),
            resource_documentation: self.documentation.clone(),
            resource_policy_uri: self.policy_uri.clone(),
            resource_tos_uri: self.tos_uri.clone(),
            dpop_signing_alg_values_supported: dpop
                .map(|d| d.algs.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
            dpop_bound_access_tokens_required: dpop
                .is_some_and(|d| d.mode == crate::dpop::DpopMode::Required),
            tls_client_certificate_bound_access_tokens: certificate_bound,
        };
        Ok(Some(Published::new(document, self.at_root)))
    }
}

/// A page URL for the metadata: absolute http(s), nothing that could break
/// out of the JSON string or a log line.
fn page_url(what: &'static str, page: &str) -> Result<(), BuildError> {
    let ok = url::Url::parse(page)
        .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        && !page.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidUrl {
            what,
            url: page.to_owned(),
        })
    }
}

impl TokenGateBuilder {
    /// The protected resource's identifier (RFC 9728 §1.2, RFC 8707): the
    /// URL clients name as their `resource` when they ask the authorization
    /// server for a token, e.g. `https://api.example.com/mcp`.
    ///
    /// - It must be an absolute `https` URL (plain `http` on loopback, or
    ///   with [`allow_insecure_http`](Self::allow_insecure_http)), without
    ///   query, fragment or credentials. Scheme and host are lower-cased;
    ///   the rest is kept exactly, and compared code point by code point.
    /// - When no [`audience`](Self::audience) is configured, the resource is
    ///   the audience (what MCP clients and RFC 8707 authorization servers
    ///   put in `aud`); an explicit audience still wins.
    /// - The gate publishes an RFC 9728 metadata document for it
    ///   ([`TokenGate::resource_metadata`](crate::TokenGate::resource_metadata),
    ///   served by [`TokenGate::metadata_service`](crate::TokenGate::metadata_service)),
    ///   and every 401 and 403 challenge names the document's URL in
    ///   `resource_metadata` (§5.1).
    ///
    /// ```
    /// use tokengate::TokenGate;
    /// use tokengate::testing::TestIssuer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let issuer = TestIssuer::start().await?;
    /// let gate = TokenGate::builder()
    ///     .issuer(issuer.issuer())
    ///     .resource("HTTPS://API.example.com/mcp")
    ///     .build()
    ///     .await?;
    /// assert_eq!(gate.resource(), Some("https://api.example.com/mcp"));
    /// assert_eq!(
    ///     gate.resource_metadata_url(),
    ///     Some("https://api.example.com/.well-known/oauth-protected-resource/mcp"),
    /// );
    /// // The resource is the audience.
    /// let token = issuer.token().audience("https://api.example.com/mcp").sign();
    /// assert!(gate.verify(&token).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn resource(mut self, url: impl Into<String>) -> Self {
        self.resource.resource = Some(url.into());
        self
    }

    /// The scopes the metadata lists in `scopes_supported`: what a client
    /// may ask for to use this resource. Nothing is derived from the
    /// routes, so list what your guards require; call again to add more.
    /// Each must be RFC 6749 §3.3 syntax (checked at build); duplicates are
    /// dropped, the order kept.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource("https://api.example.com")
    ///     .scopes_supported(["items:read", "items:write"]);
    /// # drop(builder);
    /// ```
    pub fn scopes_supported<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.resource
            .scopes_supported
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Authorization servers the metadata document lists in
    /// `authorization_servers` besides the trusted issuers (RFC 9728 §2),
    /// which it lists already. Needed when every trusted issuer is a
    /// template, as with Entra ID multi-tenant
    /// ([`Issuer::tenants`](crate::Issuer::tenants)), whose tokens name
    /// each tenant: list the issuer clients should get tokens from, e.g.
    /// your home tenant's `https://login.microsoftonline.com/<tenant>/v2.0`.
    /// A resource whose document would list none fails the build.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource("https://api.example.com/mcp")
    ///     .metadata_authorization_servers([
    ///         "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
    ///     ]);
    /// # drop(builder);
    /// ```
    pub fn metadata_authorization_servers<I, T>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.resource
            .authorization_servers
            .extend(servers.into_iter().map(Into::into));
        self
    }

    /// The scopes 401 challenges name in `scope` (RFC 6750 §3), so that a
    /// client without a token knows what to ask for (MCP 2025-11-25 says a
    /// server SHOULD send it). 403 challenges always name the scopes the
    /// request needed instead. Default: none.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().challenge_scope(["mcp:tools"]);
    /// # drop(builder);
    /// ```
    pub fn challenge_scope<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.resource
            .challenge_scope
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The metadata's `resource_name`: a name for people.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder().resource_name("Items API");
    /// # drop(builder);
    /// ```
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource.name = Some(name.into());
        self
    }

    /// The metadata's `resource_documentation`: a page for developers.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource_documentation("https://docs.example.com/items");
    /// # drop(builder);
    /// ```
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource.documentation = Some(url.into());
        self
    }

    /// The metadata's `resource_policy_uri`: how the resource uses data.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource_policy_uri("https://example.com/privacy");
    /// # drop(builder);
    /// ```
    pub fn resource_policy_uri(mut self, url: impl Into<String>) -> Self {
        self.resource.policy_uri = Some(url.into());
        self
    }

    /// The metadata's `resource_tos_uri`: the terms of service.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource_tos_uri("https://example.com/terms");
    /// # drop(builder);
    /// ```
    pub fn resource_tos_uri(mut self, url: impl Into<String>) -> Self {
        self.resource.tos_uri = Some(url.into());
        self
    }

    /// Also serves the metadata at the root well-known URL
    /// (`/.well-known/oauth-protected-resource`) when the resource has a
    /// path. Default off: every challenge names the path-inserted URL
    /// (RFC 9728 §3.1), which MCP clients try first, and a client that
    /// fetched the root URL must refuse a document whose `resource` is not
    /// the root's (§3.3). Turn it on for clients that only try the root.
    ///
    /// ```
    /// let builder = tokengate::TokenGate::builder()
    ///     .resource("https://api.example.com/mcp")
    ///     .metadata_at_root(true);
    /// # drop(builder);
    /// ```
    pub fn metadata_at_root(mut self, also: bool) -> Self {
        self.resource.at_root = also;
        self
    }
}
