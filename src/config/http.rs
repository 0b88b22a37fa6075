//! The bounds of every call to the authorization server (timeouts, size
//! cap, an optional client of the user's) and the URL policy: https, or
//! plain http on loopback only, no credentials in a URL, no query or
//! fragment in an issuer (RFC 8414 §2).

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

use super::{BuildError, TokenGateBuilder};
use crate::authority::fetch::{Fetcher, HttpLimits};

#[derive(Debug, Clone)]
pub(super) struct HttpSettings {
    pub(super) limits: HttpLimits,
    pub(super) insecure: bool,
    pub(super) client: Option<reqwest::Client>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            limits: HttpLimits {
                connect_timeout: Duration::from_secs(2),
                timeout: Duration::from_secs(5),
                max_response_bytes: 1024 * 1024,
            },
            insecure: false,
            client: None,
        }
    }
}

impl HttpSettings {
    pub(super) fn fetcher(&self) -> Result<Fetcher, BuildError> {
        Fetcher::new(self.limits, self.client.clone())
            .map_err(|e| BuildError::HttpClient(e.to_string()))
    }

    /// `url`, if this policy allows it for the setting `what`.
    pub(super) fn checked_url(&self, what: &'static str, url: &str) -> Result<Url, BuildError> {
        let parsed = Url::parse(url).map_err(|_| BuildError::InvalidUrl {
            what,
            url: redacted(url),
        })?;
        // RFC 8414 §2: no query or fragment in an issuer; and credentials in
        // a URL would end up in logs (so the error shows them redacted).
        let issuer_extras =
            what == "issuer" && (parsed.query().is_some() || parsed.fragment().is_some());
        if issuer_extras || !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(BuildError::InvalidUrl {
                what,
                url: redacted(url),
            });
        }
        match parsed.scheme() {
            "https" => Ok(parsed),
            "http" if self.insecure || is_loopback(&parsed) => Ok(parsed),
            "http" => Err(BuildError::InsecureUrl {
                what,
                url: url.to_owned(),
            }),
            _ => Err(BuildError::InvalidUrl {
                what,
                url: url.to_owned(),
            }),
        }
    }
}

impl TokenGateBuilder {
    setters! {
        /// Connect timeout for calls to the authorization server. Default 2 s.
        connect_timeout(timeout: Duration) => http.limits.connect_timeout;

        /// Total timeout of one call to the authorization server, body
        /// included. Default 5 s.
        timeout(timeout: Duration) => http.limits.timeout;

        /// The largest response accepted from the authorization server.
        /// Default 1 MiB.
        max_response_bytes(bytes: usize) => http.limits.max_response_bytes;
    }

    /// Allows plain `http://` URLs off loopback. Loopback (`127.0.0.0/8`,
    /// `::1`, `localhost`) is always allowed; anywhere else, tokens and keys
    /// would travel unprotected, so this is for tests only.
    pub fn allow_insecure_http(mut self) -> Self {
        self.http.insecure = true;
        self
    }

    /// Uses your HTTP client (a proxy, a private CA, mTLS). The timeouts and
    /// size cap of this builder still bound every call, and redirects are
    /// refused whatever its policy: an answer from another URL than the one
    /// asked is an error ([`FetchError::Redirect`](crate::FetchError::Redirect)), and the introspection
    /// form (token, client credentials) is sent so that it cannot be
    /// replayed to a `Location`. A client that follows redirects may still
    /// send a GET without a body there before the answer is refused (reqwest
    /// keeps an `Authorization` header when the `Location` is on the same
    /// host), and a chain that ends back at the URL asked (A → B → A) is
    /// read as A's answer, since reqwest does not report the hops; build
    /// yours with `redirect(reqwest::redirect::Policy::none())` to avoid
    /// both.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http.client = Some(client);
        self
    }
}

/// `url` for an error message: any `user:password@` part replaced, since
/// errors are printed and logged.
pub(super) fn redacted(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
