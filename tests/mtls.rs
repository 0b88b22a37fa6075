//! Certificate-bound tokens (RFC 8705 §3): accepted only on a request whose
//! `ClientCertificate` (put in the extensions by the TLS acceptor) has the
//! token's `x5t#S256`; refused without one, with another, and by
//! `gate.verify`, which sees no connection. JWT and introspected alike.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use serde_json::json;
use tokengate::mtls::ClientCertificate;
use tokengate::testing::{INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer};
use tokengate::{Principal, TokenGate};
use tower::ServiceExt;

async fn status(
    app: &Router,
    token: &str,
    certificate: Option<&ClientCertificate>,
) -> (StatusCode, String) {
    let mut request = Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    if let Some(certificate) = certificate {
        request.extensions_mut().insert(certificate.clone());
    }
    let response = app.clone().oneshot(request).await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status(), challenge)
}

#[tokio::test]
async fn a_bound_token_needs_its_certificate() {
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/items",
            get(|p: Principal| async move { p.certificate_thumbprint().unwrap_or("-").to_owned() }),
        )
        .layer(gate.layer());
    let mine = ClientCertificate::new(b"the DER of the client's certificate");
    let other = ClientCertificate::new(b"the DER of another certificate");
    let cnf = json!({ "x5t#S256": mine.thumbprint() });
    let jwt = issuer.token().claim("cnf", cnf.clone()).sign();
    let opaque = issuer.token().claim("cnf", cnf).opaque();
    for token in [&jwt, &opaque] {
        let (ok, _) = status(&app, token, Some(&mine)).await;
        assert_eq!(ok, StatusCode::OK);
        for certificate in [None, Some(&other)] {
            let (refused, challenge) = status(&app, token, certificate).await;
            assert_eq!(refused, StatusCode::UNAUTHORIZED);
            assert!(
                challenge.contains("error=\"invalid_token\"")
                    && challenge.contains("the token is bound to another client certificate"),
                "{challenge}"
            );
        }
    }
    assert!(gate.verify(&jwt).await.is_err());
    // An unbound token does not care about certificates.
    let plain = issuer.token().sign();
    assert_eq!(status(&app, &plain, Some(&other)).await.0, StatusCode::OK);
    assert_eq!(status(&app, &plain, None).await.0, StatusCode::OK);
    // A binding of another shape is refused as before.
    let odd = issuer
        .token()
        .claim("cnf", json!({ "x5t#S256": "too-short" }))
        .sign();
    assert_eq!(
        status(&app, &odd, Some(&mine)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Behind a TLS-terminating proxy, opted in: the certificate the proxy
/// forwards in a header (URL-encoded PEM, as nginx's
/// `$ssl_client_escaped_cert`, or base64 DER) stands for the connection's.
#[tokio::test]
async fn a_trusted_proxy_header_carries_the_certificate() {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = cert.der().to_vec();
    let escaped: String = cert
        .pem()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    let bare = base64::engine::general_purpose::STANDARD.encode(&der);

    let issuer = TestIssuer::start().await.unwrap();
    let build = |header: bool| {
        let mut b = TokenGate::builder()
            .issuer(issuer.issuer())
            .audience(issuer.audience());
        if header {
            b = b.client_certificate_header("x-client-cert");
        }
        b.build()
    };
    let app = |gate: &TokenGate| {
        Router::new()
            .route("/items", get(|| async { "ok" }))
            .layer(gate.layer())
    };
    let (trusting, plain) = (
        app(&build(true).await.unwrap()),
        app(&build(false).await.unwrap()),
    );
    let thumbprint = ClientCertificate::new(&der).thumbprint().to_owned();
    let bound = issuer
        .token()
        .claim("cnf", json!({ "x5t#S256": thumbprint }))
        .sign();
    let send = |app: Router, value: String| {
        let request = Request::get("/items")
            .header("authorization", format!("Bearer {bound}"))
            .header("x-client-cert", value)
            .body(Body::empty())
            .unwrap();
        async move { app.oneshot(request).await.unwrap().status() }
    };
    for value in [escaped.clone(), bare.clone()] {
        assert_eq!(send(trusting.clone(), value.clone()).await, StatusCode::OK);
        assert_eq!(send(plain.clone(), value).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        send(trusting.clone(), "not a certificate".to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
}
