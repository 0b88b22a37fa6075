//! Certificate-bound access tokens (RFC 8705 §3) over a real mutual-TLS
//! connection: a tokio-rustls accept loop that asks clients for a
//! certificate and puts it in each request's extensions as a
//! `tokengate::mtls::ClientCertificate`, in front of an axum router behind
//! the gate. A token whose `cnf["x5t#S256"]` names the client's certificate
//! is accepted only on a connection made with that certificate.
//!
//! ```text
//! cargo run --example mtls
//! ```
//!
//! It makes a CA, a server certificate for 127.0.0.1 and a client
//! certificate (in a temporary directory), starts a test issuer, and prints
//! curl commands: with the client certificate the bound token gets 200,
//! without it 401.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokengate::mtls::ClientCertificate;
use tokengate::testing::TestIssuer;
use tokengate::{Principal, TokenGate};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A CA and what it signed: the server's certificate and key, and client
/// certificates on demand.
pub(crate) struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    server: (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>),
}

/// A client certificate: its DER, and the PEM of certificate and key that
/// clients load (reqwest's `Identity::from_pem`, curl's `--cert`/`--key`).
pub(crate) struct ClientCert {
    pub(crate) der: Vec<u8>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Pki {
    pub(crate) fn new() -> Result<Self, Error> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name = named("tokengate example CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
        server.distinguished_name = named("127.0.0.1");
        let cert = server.signed_by(&key, &ca)?;
        Ok(Pki {
            server: (
                cert.der().clone(),
                PrivatePkcs8KeyDer::from(key.serialize_der()),
            ),
            ca,
        })
    }

    pub(crate) fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A new client certificate signed by the CA.
    pub(crate) fn client(&self) -> Result<ClientCert, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.distinguished_name = named("tokengate example client");
        let cert = params.signed_by(&key, &self.ca)?;
        Ok(ClientCert {
            der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The TLS server: this certificate, and client certificates from this
    /// CA asked for (a client without one still connects: unbound tokens
    /// need none, and the gate refuses bound ones).
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, Error> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone())?;
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()?;
        let config = ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![self.server.0.clone()],
                PrivateKeyDer::Pkcs8(self.server.1.clone_key()),
            )?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// The API: `GET /items` names the certificate its token is bound to.
pub(crate) fn router(gate: &TokenGate) -> Router {
    Router::new()
        .route(
            "/items",
            get(|p: Principal| async move {
                format!(
                    "bound to {}",
                    p.certificate_thumbprint().unwrap_or("no certificate")
                )
            }),
        )
        .layer(gate.layer())
}

/// Serves `app` over TLS: each connection's client certificate, when it
/// sent one, goes into the extensions of every request on it.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| ClientCertificate::new(der.as_ref()));
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    app.clone().oneshot(request.map(axum::body::Body::new))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

/// A distinguished name of one common name: each certificate its own, or
/// OpenSSL takes a certificate whose subject is its issuer's for
/// self-signed.
fn named(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pki = Pki::new()?;
    let client = pki.client()?;
    let issuer = TestIssuer::start().await?;
    let gate = TokenGate::builder()
        .issuer(issuer.issuer())
        .audience(issuer.audience())
        .build()
        .await?;
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 3443))).await?;
    let addr = listener.local_addr()?;
    let dir = std::env::temp_dir().join(format!("tokengate-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = write(&dir, "ca.pem", &pki.ca_pem())?;
    let cert = write(&dir, "client.pem", &client.cert_pem)?;
    let key = write(&dir, "client-key.pem", &client.key_pem)?;
    let bound = issuer
        .token()
        .claim(
            "cnf",
            serde_json::json!({ "x5t#S256": ClientCertificate::new(&client.der).thumbprint() }),
        )
        .expires_in(3600)
        .sign();
    println!("listening on https://{addr}\n");
    println!(
        "# 200: the bound token with its certificate\ncurl -s --cacert {ca} --cert {cert} --key {key} -H 'Authorization: Bearer {bound}' https://{addr}/items\n",
        ca = ca.display(),
        cert = cert.display(),
        key = key.display()
    );
    println!(
        "# 401: the same token without it\ncurl -s -i --cacert {ca} -H 'Authorization: Bearer {bound}' https://{addr}/items\n",
        ca = ca.display()
    );
    serve(listener, pki.acceptor()?, router(&gate)).await;
    Ok(())
}
