//! Certificate-bound access tokens (RFC 8705 §3): a token whose
//! `cnf["x5t#S256"]` names the SHA-256 of a client certificate is accepted
//! only on a request made over a TLS connection authenticated by that
//! certificate.
//!
//! tokengate does not terminate TLS: the accept loop that does (tokio-rustls,
//! a TLS-terminating proxy) puts the client's certificate in the request
//! extensions as a [`ClientCertificate`], and the layer compares. A bound
//! token without one, or with another certificate, is 401 `invalid_token`;
//! so is a bound token given to [`TokenGate::verify`](crate::TokenGate::verify),
//! which sees no connection.
//!
//! With tonic's own TLS server there is nothing to write: with the feature
//! `tonic-tls`, the gate reads the client certificate from the
//! `TlsConnectInfo` tonic puts in every request's extensions (what
//! `tonic::Request::peer_certs` reads), when no `ClientCertificate` is
//! there; on such a connection (over TCP, what tonic's `serve` accepts) the
//! trusted-proxy header is never read.
//!
//! ```
//! use tokengate::mtls::ClientCertificate;
//!
//! // In the accept loop, after the TLS handshake:
//! # let der: Vec<u8> = vec![0x30, 0x00];
//! let mut request = http::Request::new(());
//! request.extensions_mut().insert(ClientCertificate::new(der));
//! ```

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The DER of the certificate the client authenticated the TLS connection
/// with, as the acceptor puts it in the request extensions.
#[derive(Clone)]
pub struct ClientCertificate {
    /// `x5t#S256`: the base64url SHA-256 of the DER (RFC 8705 §3.1).
    thumbprint: String,
}

impl ClientCertificate {
    /// The certificate from its DER encoding (the end-entity certificate of
    /// the client's chain, as `rustls` hands it out).
    ///
    /// ```
    /// let cert = tokengate::mtls::ClientCertificate::new(vec![0x30, 0x00]);
    /// assert_eq!(cert.thumbprint().len(), 43);
    /// ```
    pub fn new(der: impl AsRef<[u8]>) -> Self {
        ClientCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der.as_ref())),
        }
    }

    /// Its `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

/// The certificate a TLS-terminating proxy forwards in a header: PEM,
/// URL-encoded or not (nginx's `$ssl_client_escaped_cert`), or bare
/// base64 DER. `None` for anything else: a bound token then finds no
/// certificate, and is refused.
pub(crate) fn from_header(value: &http::HeaderValue) -> Option<ClientCertificate> {
    use base64::engine::general_purpose::STANDARD;
    let text = percent_encoding::percent_decode(value.as_bytes())
        .decode_utf8()
        .ok()?;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let body = match text.find(BEGIN) {
        Some(start) => {
            let rest = &text[start + BEGIN.len()..];
            &rest[..rest.find(END)?]
        }
        None => &text,
    };
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).ok()?;
    // A DER certificate is a SEQUENCE.
    (der.first() == Some(&0x30)).then(|| ClientCertificate::new(der))
}

/// tonic's TLS connection info, when tonic's own TLS server accepted the
/// connection (it puts a `TlsConnectInfo` in every request's extensions).
#[cfg(feature = "tonic-tls")]
pub(crate) fn tonic_tls(
    extensions: &http::Extensions,
) -> Option<&tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>> {
    extensions.get()
}

/// The end-entity certificate of that connection (first in rustls's peer
/// chain; what `tonic::Request::peer_certs` reads), if the client sent one.
#[cfg(feature = "tonic-tls")]
pub(crate) fn from_tonic(
    tls: &tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>,
) -> Option<ClientCertificate> {
    tls.peer_certs()?.first().map(ClientCertificate::new)
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .finish()
    }
}
