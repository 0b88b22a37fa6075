//! Certificate-bound tokens (RFC 8705 §3) on tonic's own TLS server: the
//! gate (feature `tonic-tls`) reads the client certificate from tonic's
//! `TlsConnectInfo`, with no acceptor code of the user's. A real tonic
//! client connects over mutual TLS on 127.0.0.1 with one certificate or
//! another, or none.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokengate::TokenGate;
use tokengate::mtls::ClientCertificate;
use tokengate::testing::TestIssuer;
use tokengate_tonic_example::pb::ListItemsRequest;
use tokengate_tonic_example::pb::items_client::ItemsClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Code, Request};

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate's PEM, its key's PEM and its DER.
struct Issued {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Pki {
            ca: CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn issue(&self, names: &[&str], client: bool) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

struct Setup {
    issuer: TestIssuer,
    pki: Pki,
    addr: std::net::SocketAddr,
}

async fn setup() -> Setup {
    setup_with(None).await
}

/// With `header`, the gate also trusts a proxy's certificate header.
async fn setup_with(header: Option<&str>) -> Setup {
    let issuer = TestIssuer::start().await.unwrap();
    let mut builder = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience());
    if let Some(header) = header {
        builder = builder.client_certificate_header(header);
    }
    let gate = builder.build().await.unwrap();
    let pki = Pki::new();
    let server = pki.issue(&["localhost"], false);
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server.cert, &server.key))
        .client_ca_root(Certificate::from_pem(pki.ca.pem()))
        .client_auth_optional(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tokengate_tonic_example::serve_tls(listener, gate, tls));
    Setup { issuer, pki, addr }
}

impl Setup {
    async fn client(&self, identity: Option<&Issued>) -> ItemsClient<Channel> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.pki.ca.pem()))
            .domain_name("localhost");
        if let Some(id) = identity {
            tls = tls.identity(Identity::from_pem(&id.cert, &id.key));
        }
        let channel = Channel::from_shared(format!("https://{}", self.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        ItemsClient::new(channel)
    }

    fn bound_to(&self, cert: &Issued) -> String {
        let thumbprint = ClientCertificate::new(&cert.der).thumbprint().to_owned();
        self.issuer
            .token()
            .scope("items:read")
            .claim("cnf", serde_json::json!({ "x5t#S256": thumbprint }))
            .sign()
    }
}

async fn list(client: &mut ItemsClient<Channel>, token: &str) -> Result<(), tonic::Status> {
    list_with(client, token, None).await
}

/// With `certificate`, also sends it in the `x-client-cert` header (PEM on
/// one line), as a proxy would.
async fn list_with(
    client: &mut ItemsClient<Channel>,
    token: &str,
    certificate: Option<&Issued>,
) -> Result<(), tonic::Status> {
    let mut request = Request::new(ListItemsRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(cert) = certificate {
        let pem = cert.cert.replace('\n', " ");
        request
            .metadata_mut()
            .insert("x-client-cert", pem.trim().parse().unwrap());
    }
    client.list_items(request).await.map(|_| ())
}

#[tokio::test]
async fn a_bound_token_is_accepted_only_from_its_certificate() {
    let s = setup().await;
    let (alice, mallory) = (s.pki.issue(&[], true), s.pki.issue(&[], true));
    let token = s.bound_to(&alice);

    list(&mut s.client(Some(&alice)).await, &token)
        .await
        .expect("the certificate the token is bound to");

    for client in [Some(&mallory), None] {
        let status = list(&mut s.client(client).await, &token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn an_unbound_token_needs_no_certificate() {
    let s = setup().await;
    let token = s.issuer.token().scope("items:read").sign();
    list(&mut s.client(None).await, &token).await.unwrap();
    list(&mut s.client(Some(&s.pki.issue(&[], true))).await, &token)
        .await
        .unwrap();
}

#[tokio::test]
async fn on_tonic_s_tls_connection_a_certificate_header_is_never_read() {
    // The gate trusts a proxy header too, but this connection is tonic's
    // own TLS: what it says of the client's certificate is the answer.
    let s = setup_with(Some("x-client-cert")).await;
    let (alice, mallory) = (s.pki.issue(&[], true), s.pki.issue(&[], true));
    let token = s.bound_to(&alice);
    for client in [None, Some(&mallory)] {
        let status = list_with(&mut s.client(client).await, &token, Some(&alice))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{client:?}",
            client = client.map(|_| "mallory")
        );
    }
    // Its own certificate still works, header or not.
    list_with(&mut s.client(Some(&alice)).await, &token, Some(&mallory))
        .await
        .expect("the connection's certificate wins");
}
