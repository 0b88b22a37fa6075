//! `examples/mtls.rs` over real mutual TLS on 127.0.0.1: reqwest clients
//! with and without client certificates, and a token bound to one of them
//! (RFC 8705 §3). The example's own code runs: its file is compiled into
//! this test.

#[allow(dead_code)]
#[path = "../examples/mtls.rs"]
mod mtls;

use http::StatusCode;
use tokengate::TokenGate;
use tokengate::mtls::ClientCertificate;
use tokengate::testing::TestIssuer;

fn client(identity: Option<&mtls::ClientCert>, ca_pem: &str) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()]);
    if let Some(id) = identity {
        let pem = format!("{}{}", id.cert_pem, id.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn a_bound_token_works_only_over_its_certificate() {
    let pki = mtls::Pki::new().unwrap();
    let (mine, other) = (pki.client().unwrap(), pki.client().unwrap());
    let issuer = TestIssuer::start().await.unwrap();
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/items", listener.local_addr().unwrap());
    tokio::spawn(mtls::serve(
        listener,
        pki.acceptor().unwrap(),
        mtls::router(&gate),
    ));

    let thumbprint = ClientCertificate::new(&mine.der).thumbprint().to_owned();
    let bound = issuer
        .token()
        .claim("cnf", serde_json::json!({ "x5t#S256": thumbprint }))
        .sign();
    let get = |client: reqwest::Client, token: String| {
        let url = url.clone();
        async move {
            let response = client.get(url).bearer_auth(token).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let ca = pki.ca_pem();
    let (status, body) = get(client(Some(&mine), &ca), bound.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("bound to {thumbprint}"));
    for identity in [Some(&other), None] {
        let (status, _) = get(client(identity, &ca), bound.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // An unbound token needs no certificate.
    let (status, body) = get(client(None, &ca), issuer.token().sign()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "bound to no certificate");
}
