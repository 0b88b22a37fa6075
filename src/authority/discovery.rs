//! Authorization server metadata: OpenID Connect Discovery 1.0 §4
//! (`/.well-known/openid-configuration`), then RFC 8414 §3
//! (`/.well-known/oauth-authorization-server`, inserted before the issuer's
//! path). The document's `issuer` must equal the configured one exactly
//! (RFC 8414 §3.3), or the metadata could be another server's.

use reqwest::Url;
use serde::Deserialize;

use crate::authority::fetch::{FetchError, Fetcher};
use crate::observe::Upstream;

/// The metadata fields a resource server uses; unknown members are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub(crate) struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub(crate) issuer: String,
    /// Where the signing keys are published.
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    /// The RFC 7662 introspection endpoint.
    #[serde(default)]
    pub(crate) introspection_endpoint: Option<String>,
    /// Client authentication methods the introspection endpoint accepts.
    #[serde(default)]
    pub(crate) introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// Neither well-known document could be fetched and parsed.
    #[error("no metadata at {oidc} ({oidc_error}) nor at {rfc8414} ({rfc8414_error})")]
    NotFound {
        /// The OpenID Connect URL tried.
        oidc: String,
        /// What went wrong there.
        oidc_error: FetchError,
        /// The RFC 8414 URL tried.
        rfc8414: String,
        /// What went wrong there.
        rfc8414_error: FetchError,
    },
    /// The document names another issuer.
    #[error("metadata issuer {found:?} does not equal the configured issuer {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
}

/// The two well-known URLs for `issuer`, in the order they are tried.
pub(crate) fn well_known_urls(issuer: &Url) -> (Url, Url) {
    let trimmed = issuer.as_str().trim_end_matches('/');
    let oidc = Url::parse(&format!("{trimmed}/.well-known/openid-configuration"))
        .unwrap_or_else(|_| issuer.clone());
    let mut rfc8414 = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    rfc8414.set_query(None);
    (oidc, rfc8414)
}

pub(crate) async fn discover(
    fetcher: &Fetcher,
    issuer_str: &str,
    issuer: &Url,
) -> Result<AuthorizationServerMetadata, DiscoveryError> {
    let (oidc, rfc8414) = well_known_urls(issuer);
    let first = fetch_metadata(fetcher, &oidc).await;
    let metadata = match first {
        Ok(m) => m,
        Err(oidc_error) => match fetch_metadata(fetcher, &rfc8414).await {
            Ok(m) => m,
            Err(rfc8414_error) => {
                return Err(DiscoveryError::NotFound {
                    oidc: oidc.to_string(),
                    oidc_error,
                    rfc8414: rfc8414.to_string(),
                    rfc8414_error,
                });
            }
        },
    };
    if metadata.issuer != issuer_str {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer_str.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

async fn fetch_metadata(
    fetcher: &Fetcher,
    url: &Url,
) -> Result<AuthorizationServerMetadata, FetchError> {
    let fetched = fetcher.get(Upstream::Discovery, url, None).await?;
    serde_json::from_slice(&fetched.body)
        .map_err(|e| FetchError::Malformed(format!("not server metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_both_specs() {
        let (oidc, rfc) = well_known_urls(&Url::parse("https://as.example").unwrap());
        assert_eq!(
            oidc.as_str(),
            "https://as.example/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc.as_str(),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        let (oidc, rfc) = well_known_urls(&Url::parse("https://as.example/realms/main/").unwrap());
        assert_eq!(
            oidc.as_str(),
            "https://as.example/realms/main/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc.as_str(),
            "https://as.example/.well-known/oauth-authorization-server/realms/main"
        );
    }
}
