//! RFC 9728 protected-resource metadata: the resource identifier, the
//! document that describes it, and the well-known URL it is published at.
//! Built once at startup; the layer's challenges point at the URL
//! (`resource_metadata`, §5.1) and [`MetadataService`](crate::MetadataService)
//! serves the document.

use serde::{Deserialize, Serialize};
use url::Url;

/// The well-known suffix of RFC 9728 §3.
pub(crate) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An RFC 9728 §2 protected-resource metadata document, as
/// [`TokenGate::resource_metadata`](crate::TokenGate::resource_metadata)
/// returns it and [`MetadataService`](crate::MetadataService) serves it.
/// Members that are not set are left out of the JSON (§3.2: no `null`, no
/// empty array).
///
/// ```
/// use tokengate::ResourceMetadata;
///
/// let document: ResourceMetadata = serde_json::from_str(
///     r#"{"resource":"https://api.example.com/mcp","bearer_methods_supported":["header"]}"#,
/// ).unwrap();
/// assert_eq!(document.resource, "https://api.example.com/mcp");
/// assert!(document.authorization_servers.is_empty());
/// assert_eq!(
///     serde_json::to_string(&document).unwrap(),
///     r#"{"resource":"https://api.example.com/mcp","bearer_methods_supported":["header"]}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// The protected resource's identifier (§2 `resource`, required).
    pub resource: String,
    /// Issuer identifiers of the authorization servers whose tokens are
    /// accepted here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Scopes a client may ask for to reach this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How a token may be presented: `header` (RFC 6750 §2.1), and `query`
    /// (§2.3) only when the gate accepts it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page with documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// A page about how the resource uses data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// The resource's terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// The JWS algorithms DPoP proofs may use (RFC 9728 §2, RFC 9449),
    /// when DPoP is not disabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Only DPoP-bound tokens are accepted (RFC 9728 §2), when DPoP is
    /// required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens_required: bool,
    /// Certificate-bound access tokens are supported (RFC 9728 §2, RFC
    /// 8705): said when the service asks clients for certificates
    /// ([`TokenGateBuilder::certificate_bound_tokens`](crate::TokenGateBuilder::certificate_bound_tokens)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// The document as published: its JSON, serialized once, and where it lives.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) document: ResourceMetadata,
    pub(crate) json: String,
    /// The absolute well-known URL, as the challenges name it.
    pub(crate) url: String,
    /// The request paths it answers at: the path-inserted one, and `/`'s
    /// well-known path too when asked for.
    pub(crate) paths: Vec<String>,
}

impl Published {
    pub(crate) fn new(document: ResourceMetadata, at_root: bool) -> Published {
        let (url, path) = well_known(&document.resource);
        let mut paths = vec![path];
        // `https://h/mcp/` is also asked for without its last slash by
        // clients that trim it; both paths name this one document.
        if let Some(trimmed) = paths[0].strip_suffix('/')
            && trimmed.len() > WELL_KNOWN.len()
        {
            paths.push(trimmed.to_owned());
        }
        if at_root && paths[0] != WELL_KNOWN {
            paths.push(WELL_KNOWN.to_owned());
        }
        // Only strings and arrays of strings: serializing cannot fail.
        let json = serde_json::to_string(&document).unwrap_or_default();
        Published {
            document,
            json,
            url,
            paths,
        }
    }
}

/// Why a resource identifier is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadResource {
    /// Not an absolute URL with a host.
    NotAUrl,
    /// A query or a fragment (RFC 9728 §1.2, RFC 8707 §2), or credentials.
    Extras,
    /// Not in RFC 3986 normal form: a character that must be
    /// percent-encoded (space, `"`, `{`, non-ASCII…), a malformed `%`
    /// escape, or a `.`/`..` segment. Clients send the identifier
    /// byte for byte, so it must already be the form they send.
    NotNormal,
}

/// RFC 3986 `pchar` and `/`, except `%` (checked with its two hex digits).
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// The host and port of an authority that is already in normal form
/// (an IDN host must be given in its A-label, `xn--`, form).
fn authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b)
}

/// Whether `path` is made of RFC 3986 path characters and well-formed
/// `%HH` escapes only.
fn path_is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
            }
            b if path_byte(b) => i += 1,
            _ => return false,
        }
    }
    !path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// `resource` in canonical form: scheme and host lower-cased (RFC 3986
/// §6.2.2.1), everything else exactly as given, so that what clients send
/// as their RFC 8707 `resource` and find in our metadata is what was
/// configured. Returns the parsed URL too, for the scheme policy.
pub(crate) fn canonical(resource: &str) -> Result<(String, Url), BadResource> {
    let url = Url::parse(resource).map_err(|_| BadResource::NotAUrl)?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(BadResource::NotAUrl);
    }
    if resource.contains(['?', '#']) || !url.username().is_empty() || url.password().is_some() {
        return Err(BadResource::Extras);
    }
    let (scheme, rest) = resource.split_once("://").ok_or(BadResource::NotAUrl)?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.is_empty() {
        return Err(BadResource::NotAUrl);
    }
    if !authority.bytes().all(authority_byte) || !path_is_normal(path) {
        return Err(BadResource::NotNormal);
    }
    let canonical = format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase(),
        path
    );
    Ok((canonical, url))
}

/// The metadata URL of a canonical resource identifier and its path (RFC
/// 9728 §3.1): the well-known suffix goes between the host and the path; a
/// lone `/` after the host is dropped first, so `https://h/` and `https://h`
/// share `https://h/.well-known/oauth-protected-resource`.
pub(crate) fn well_known(resource: &str) -> (String, String) {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("", resource));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let path = if path == "/" { "" } else { path };
    let well_known_path = format!("{WELL_KNOWN}{path}");
    (
        format!("{scheme}://{authority}{well_known_path}"),
        well_known_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_url_inserts_the_suffix_before_the_path() {
        for (resource, url, path) in [
            (
                "https://h",
                "https://h/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource",
            ),
            (
                "https://h/",
                "https://h/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource",
            ),
            (
                "https://h/mcp",
                "https://h/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://h:8443/a/b/",
                "https://h:8443/.well-known/oauth-protected-resource/a/b/",
                "/.well-known/oauth-protected-resource/a/b/",
            ),
            (
                "http://127.0.0.1:3000",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource",
            ),
        ] {
            assert_eq!(
                well_known(resource),
                (url.to_owned(), path.to_owned()),
                "{resource}"
            );
        }
    }

    #[test]
    fn canonical_form_lowercases_scheme_and_host_only() {
        for (given, expected) in [
            ("HTTPS://API.Example.COM/MCP", "https://api.example.com/MCP"),
            ("https://h", "https://h"),
            ("https://h/", "https://h/"),
            ("https://H:8443/a%2Fb", "https://h:8443/a%2Fb"),
        ] {
            assert_eq!(canonical(given).unwrap().0, expected, "{given}");
        }
    }

    #[test]
    fn identifiers_with_extras_are_refused() {
        for bad in [
            "https://h/mcp?x=1",
            "https://h/mcp#frag",
            "https://h/mcp?",
            "https://user:pw@h/mcp",
        ] {
            assert_eq!(canonical(bad).unwrap_err(), BadResource::Extras, "{bad}");
        }
        for bad in ["/mcp", "mcp", "urn:example:api", "https:///mcp", ""] {
            assert_eq!(canonical(bad).unwrap_err(), BadResource::NotAUrl, "{bad}");
        }
        // What a client would percent-encode or resolve before sending it,
        // and what would break a header, a JSON string or a router path.
        for bad in [
            "https://h/a b",
            "https://h/a\"b",
            "https://h/{id}",
            "https://h/caf\u{e9}",
            "https://h/a%2",
            "https://h/a%zz",
            "https://h/a/../b",
            "https://h/./b",
            "https://h/a\\b",
            "https://h/a|b",
            "https://b\u{fc}cher.example/mcp",
        ] {
            assert_eq!(canonical(bad).unwrap_err(), BadResource::NotNormal, "{bad}");
        }
        for good in [
            "https://h/a%20b",
            "https://h/a:b@c/d~e",
            "https://[::1]:8443/x",
            "https://xn--bcher-kva.example/mcp",
        ] {
            assert!(canonical(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn root_is_added_only_for_a_resource_with_a_path() {
        let document = |resource: &str| ResourceMetadata {
            resource: resource.to_owned(),
            authorization_servers: vec!["https://as".into()],
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: None,
            resource_documentation: None,
            resource_policy_uri: None,
            resource_tos_uri: None,
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: false,
            tls_client_certificate_bound_access_tokens: false,
        };
        let with_path = Published::new(document("https://h/mcp"), true);
        assert_eq!(
            with_path.paths,
            [
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            Published::new(document("https://h/mcp"), false).paths,
            ["/.well-known/oauth-protected-resource/mcp"]
        );
        assert_eq!(
            Published::new(document("https://h"), true).paths,
            ["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            Published::new(document("https://h/mcp/"), false).paths,
            [
                "/.well-known/oauth-protected-resource/mcp/",
                "/.well-known/oauth-protected-resource/mcp"
            ]
        );
        assert_eq!(
            with_path.json,
            r#"{"resource":"https://h/mcp","authorization_servers":["https://as"],"bearer_methods_supported":["header"]}"#
        );
    }
}
