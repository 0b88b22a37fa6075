//! Building a gate: discovery (OIDC, then RFC 8414), the exact issuer
//! match, and the configurations that are refused.

mod common;

use common::*;
use tokengate::testing::{Endpoint, Fault, TestIssuer};
use tokengate::{BuildError, DiscoveryError, JwkSet, TokenGate};

#[tokio::test]
async fn discovery_uses_openid_configuration_first() {
    let issuer = TestIssuer::start().await.unwrap();
    gate(&issuer).await;
    assert_eq!(issuer.requests(Endpoint::Discovery), 1);
    assert_eq!(issuer.requests(Endpoint::OAuthMetadata), 0);
    assert_eq!(issuer.requests(Endpoint::Jwks), 1);
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Discovery, Some(Fault::Status(404)));
    let gate = gate(&issuer).await;
    assert_eq!(issuer.requests(Endpoint::OAuthMetadata), 1);
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
}

#[tokio::test]
async fn metadata_naming_another_issuer_fails_the_build() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_metadata_issuer(Some(format!("{}/", issuer.issuer())));
    let err = builder(&issuer).build().await.unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Discovery(DiscoveryError::IssuerMismatch { .. })
        ),
        "{err}"
    );
    assert_eq!(issuer.requests(Endpoint::Jwks), 0);
}

#[tokio::test]
async fn missing_metadata_fails_the_build_with_both_urls() {
    let issuer = TestIssuer::start().await.unwrap();
    issuer.set_fault(Endpoint::Discovery, Some(Fault::Status(404)));
    issuer.set_fault(Endpoint::OAuthMetadata, Some(Fault::Garbage));
    let err = builder(&issuer).build().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("openid-configuration") && text.contains("oauth-authorization-server"),
        "{text}"
    );
}

#[tokio::test]
async fn explicit_jwks_uri_skips_discovery() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = builder(&issuer)
        .jwks_uri(issuer.jwks_uri())
        .build()
        .await
        .unwrap();
    assert_eq!(issuer.requests(Endpoint::Discovery), 0);
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
}

#[tokio::test]
async fn static_keys_need_no_network() {
    let issuer = TestIssuer::start().await.unwrap();
    let keys: JwkSet = serde_json::from_value(issuer.jwks()).unwrap();
    let gate = builder(&issuer).static_keys(keys).build().await.unwrap();
    assert!(gate.verify(&issuer.token().sign()).await.is_ok());
    // Unknown kids are refused at once: there is nothing to refresh.
    assert!(
        gate.verify(&issuer.token().header("kid", "x").sign())
            .await
            .is_err()
    );
    assert_eq!(
        issuer.requests(Endpoint::Discovery) + issuer.requests(Endpoint::Jwks),
        0
    );
    let empty = builder(&issuer)
        .static_keys(JwkSet { keys: vec![] })
        .build()
        .await;
    assert!(matches!(empty, Err(BuildError::NoUsableKeys)));
}

#[tokio::test]
async fn issuer_and_audience_are_required() {
    let err = TokenGate::builder()
        .audience("a")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::MissingIssuer));
    let err = TokenGate::builder()
        .issuer("https://as.example")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::MissingAudience));
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let keys = JwkSet { keys: vec![] };
    let err = TokenGate::builder()
        .issuer("http://auth.example.com")
        .audience("api")
        .static_keys(keys.clone())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, BuildError::InsecureUrl { what: "issuer", .. }),
        "{err}"
    );
    let err = TokenGate::builder()
        .issuer("https://auth.example.com")
        .audience("api")
        .jwks_uri("http://auth.example.com/jwks")
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::InsecureUrl {
                what: "jwks_uri",
                ..
            }
        ),
        "{err}"
    );
    let err = TokenGate::builder()
        .issuer("ftp://as")
        .audience("api")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidUrl { .. }), "{err}");
    // With the opt-in the URL passes the check (and the build goes on to the keys).
    let err = TokenGate::builder()
        .issuer("http://auth.example.com")
        .audience("api")
        .allow_insecure_http()
        .static_keys(keys)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoUsableKeys), "{err}");
}

#[tokio::test]
async fn credentials_in_a_url_are_refused_and_never_printed() {
    for (issuer, jwks_uri) in [
        ("https://admin:hunter2@auth.example.com", None),
        (
            "https://auth.example.com",
            Some("https://admin:hunter2@auth.example.com/jwks"),
        ),
        ("https://admin:hunter2@[::1", None),
    ] {
        let mut builder = TokenGate::builder().issuer(issuer).audience("api");
        if let Some(uri) = jwks_uri {
            builder = builder.jwks_uri(uri);
        }
        let err = builder.build().await.unwrap_err();
        assert!(matches!(err, BuildError::InvalidUrl { .. }), "{err}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***@"), "{shown}");
    }
}

#[tokio::test]
async fn loopback_http_is_allowed_by_name_too() {
    let issuer = TestIssuer::start().await.unwrap();
    let localhost = issuer.issuer().replace("127.0.0.1", "localhost");
    // Discovery would find a document naming 127.0.0.1, so skip it.
    let gate = TokenGate::builder()
        .issuer(localhost.clone())
        .audience(issuer.audience())
        .jwks_uri(issuer.jwks_uri())
        .build()
        .await
        .unwrap();
    let token = issuer.token().claim("iss", localhost).sign();
    assert!(gate.verify(&token).await.is_ok());
}
