//! Every call to the authorization server goes through here, so every call is
//! bounded the same way: a connect timeout, a total timeout that covers the
//! body, a response size cap, and no redirects.
//!
//! "No redirects" holds whatever client is used. Ours follows none; a client
//! the user brought may follow them before we see the answer, so an answer
//! from any URL other than the one requested is refused too, and the
//! introspection form (token, client secret or assertion) goes in a body
//! that cannot be replayed, so a `307`/`308` cannot carry it to the
//! `Location`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use reqwest::Url;
use tracing::Instrument;

use crate::clock;
use crate::observe::{self, Upstream, UpstreamMetrics};

/// Limits for calls to the authorization server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_bytes: usize,
}

/// Why a call to the authorization server failed. The texts name no token
/// and no secret: they may be logged and reported by health checks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No complete answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection could not be made or broke.
    #[error("connection failed")]
    Connect,
    /// An HTTP status other than the expected one.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// A redirect, which is never followed: its 3xx status, or 0 when an
    /// HTTP client of yours ([`http_client`](crate::TokenGateBuilder::http_client))
    /// followed it and the answer came from another URL, which is refused
    /// all the same.
    #[error("refused to follow a redirect ({})", redirect_status(*.0))]
    Redirect(u16),
    /// The body exceeded the configured cap.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not the JSON we expect.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// Any other transport failure.
    #[error("request failed: {0}")]
    Transport(String),
}

impl FetchError {
    /// A fixed, low-cardinality label for this failure, as the
    /// `tokengate.upstream` span's `result` field (see [`observe`](crate::observe))
    /// shows it: `timeout`, `connect`, `status`, `redirect`, `too_large`,
    /// `malformed` or `transport`.
    ///
    /// ```
    /// use tokengate::FetchError;
    /// assert_eq!(FetchError::Status(500).label(), "status");
    /// assert_eq!(FetchError::TooLarge(1 << 20).label(), "too_large");
    /// ```
    pub fn label(&self) -> &'static str {
        match self {
            FetchError::Timeout => "timeout",
            FetchError::Connect => "connect",
            FetchError::Status(_) => "status",
            FetchError::Redirect(_) => "redirect",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Malformed(_) => "malformed",
            FetchError::Transport(_) => "transport",
        }
    }
}

fn redirect_status(status: u16) -> String {
    match status {
        0 => "the answer came from another URL".to_owned(),
        status => format!("HTTP {status}"),
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    /// How long the answer stays fresh by its own headers: `max-age` less
    /// `Age`. `None`: the headers do not say (the caller's default applies).
    pub(crate) fresh_for: Option<Duration>,
    pub(crate) etag: Option<HeaderValue>,
}

#[derive(Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    limits: HttpLimits,
    metrics: Arc<UpstreamMetrics>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Our own client, unless the user brought one (for a proxy or mTLS, say);
    /// the timeouts and the size cap apply to either.
    pub(crate) fn new(
        limits: HttpLimits,
        client: Option<reqwest::Client>,
    ) -> Result<Self, reqwest::Error> {
        let client = match client {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(limits.connect_timeout)
                .timeout(limits.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        Ok(Fetcher {
            client,
            limits,
            metrics: Arc::new(UpstreamMetrics::new()),
        })
    }

    /// GET a JSON document, conditionally when `etag` is given.
    pub(crate) async fn get(
        &self,
        endpoint: Upstream,
        url: &Url,
        etag: Option<&HeaderValue>,
    ) -> Result<Fetched, FetchError> {
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        // A 304 means something only as the answer to a conditional GET;
        // otherwise it would install "no change" over nothing.
        let ok: &[StatusCode] = match etag {
            Some(etag) => {
                request = request.header(header::IF_NONE_MATCH, etag.clone());
                &[StatusCode::OK, StatusCode::NOT_MODIFIED]
            }
            None => &[StatusCode::OK],
        };
        self.send(endpoint, url, request, ok).await
    }

    /// POST a form (`application/x-www-form-urlencoded`), expecting JSON.
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: String,
        authorization: Option<&HeaderValue>,
    ) -> Result<Fetched, FetchError> {
        let mut request = self
            .client
            .post(url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            // A wrapped body is a stream to reqwest: it cannot clone it, so
            // a client that follows redirects stops at a 307/308 instead of
            // re-POSTing the token and the client credentials to the
            // `Location` (a 301/302/303 turns into a GET without the body).
            .body(reqwest::Body::wrap(form));
        if let Some(auth) = authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        self.send(Upstream::Introspection, url, request, &[StatusCode::OK])
            .await
    }

    async fn send(
        &self,
        endpoint: Upstream,
        url: &Url,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<Fetched, FetchError> {
        let span = observe::upstream_span(endpoint);
        let started = clock::now();
        // The outer timeout bounds the whole exchange even with a client the
        // user configured without one.
        let result = tokio::time::timeout(self.limits.timeout, self.exchange(url, request, ok))
            .instrument(span.clone())
            .await
            .unwrap_or(Err(FetchError::Timeout));
        let label = match &result {
            Ok(fetched) if fetched.status == StatusCode::NOT_MODIFIED => "not_modified",
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        self.metrics.call(endpoint, label, started.elapsed());
        record(&span, label, &result);
        result
    }

    async fn exchange(
        &self,
        url: &Url,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<Fetched, FetchError> {
        let mut response = request.send().await.map_err(classify)?;
        // The user's client may have followed a redirect already: its status
        // is gone, but the answer's URL tells.
        if !same_resource(response.url(), url) {
            return Err(FetchError::Redirect(0));
        }
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if !ok.contains(&status) {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max = self.limits.max_response_bytes;
        if response.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let fresh_for = freshness(response.headers());
        let etag = response.headers().get(header::ETAG).cloned();
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status,
            body: body.freeze(),
            fresh_for,
            etag,
        })
    }
}

/// Records how a call ended on its `tokengate.upstream` span.
fn record(span: &tracing::Span, label: &'static str, result: &Result<Fetched, FetchError>) {
    if span.is_disabled() {
        return;
    }
    span.record("result", label);
    match result {
        Ok(fetched) => {
            span.record("status", fetched.status.as_u16());
        }
        Err(FetchError::Status(status) | FetchError::Redirect(status @ 300..)) => {
            span.record("status", *status);
        }
        Err(_) => {}
    }
}

fn classify(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout
    } else if e.is_connect() {
        FetchError::Connect
    } else if e.is_redirect() {
        FetchError::Redirect(e.status().map_or(0, |s| s.as_u16()))
    } else {
        // reqwest's text names the URL (configuration, not a secret) and the
        // cause; it never includes a request body, where tokens travel.
        FetchError::Transport(e.without_url().to_string())
    }
}

/// Whether an answer from `got` is the answer for `asked`. reqwest moves
/// userinfo into `Authorization` and never sends the fragment, so those may
/// differ; everything that names the resource may not.
fn same_resource(got: &Url, asked: &Url) -> bool {
    got.scheme() == asked.scheme()
        && got.host() == asked.host()
        && got.port_or_known_default() == asked.port_or_known_default()
        && got.path() == asked.path()
        && got.query() == asked.query()
}

/// How long an answer stays fresh (RFC 9111 §4.2): `max-age` from every
/// `Cache-Control` line, less the `Age` it already has (§4.2.3). `None`
/// when the headers do not say, or say it twice (§4.2.1 allows treating a
/// directive given more than once as absent; picking one would let the
/// last or first line of a confused proxy decide).
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let mut lines = Vec::new();
    for value in headers.get_all(header::CACHE_CONTROL) {
        lines.push(value.to_str().ok()?);
    }
    let max_age = parse_max_age(&lines.join(","))?;
    Some(max_age.saturating_sub(parse_age(headers)))
}

/// `Cache-Control: max-age=N` (RFC 9111 §5.2.2.1). `no-store` and
/// `no-cache` count as zero, which the caller raises to its minimum. More
/// than one `max-age` counts as none.
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    let mut seen = false;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.trim().eq_ignore_ascii_case("max-age") {
            if seen {
                max_age = None;
                continue;
            }
            seen = true;
            max_age = delta_seconds(arg.trim().trim_matches('"')).map(Duration::from_secs);
        }
    }
    max_age
}

/// `Age` (RFC 9111 §5.1): the first member of the first line; anything but
/// a non-negative integer is ignored (zero).
fn parse_age(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| delta_seconds(v.trim()))
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// RFC 9111 §1.2.2 `delta-seconds = 1*DIGIT`; a value too large to
/// represent is the largest one (it must not wrap, or be read as zero).
fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds_too_large_saturate() {
        assert_eq!(
            parse_max_age("max-age=99999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AGE,
            HeaderValue::from_static("99999999999999999999"),
        );
        assert_eq!(parse_age(&headers), Duration::from_secs(u64::MAX));
        headers.insert(header::AGE, HeaderValue::from_static("-5"));
        assert_eq!(parse_age(&headers), Duration::ZERO);
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse_max_age("MAX-AGE=\"60\""),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn freshness_is_max_age_less_age() {
        let fresh = |lines| freshness(&headers(lines));
        assert_eq!(
            fresh(&[("cache-control", "max-age=600"), ("age", "100")]),
            Some(Duration::from_secs(500))
        );
        assert_eq!(
            fresh(&[("cache-control", "max-age=600"), ("age", "900")]),
            Some(Duration::ZERO)
        );
        // §5.1: the first member of a list; an invalid value is ignored.
        assert_eq!(
            fresh(&[("cache-control", "max-age=600"), ("age", "60, 300")]),
            Some(Duration::from_secs(540))
        );
        assert_eq!(
            fresh(&[("cache-control", "max-age=600"), ("age", "-5")]),
            Some(Duration::from_secs(600))
        );
        assert_eq!(fresh(&[("age", "100")]), None);
    }

    #[test]
    fn a_max_age_given_twice_counts_as_none() {
        let fresh = |lines| freshness(&headers(lines));
        assert_eq!(
            fresh(&[("cache-control", "max-age=60, max-age=3600")]),
            None
        );
        assert_eq!(fresh(&[("cache-control", "max-age=60, max-age=60")]), None);
        assert_eq!(fresh(&[("cache-control", "max-age=60, max-age=x")]), None);
        // Across header lines too (RFC 9110 §5.3: one list).
        assert_eq!(
            fresh(&[
                ("cache-control", "public, max-age=60"),
                ("cache-control", "max-age=3600")
            ]),
            None
        );
        assert_eq!(
            fresh(&[("cache-control", "public"), ("cache-control", "max-age=60")]),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn redirect_errors_say_what_was_refused() {
        assert_eq!(
            FetchError::Redirect(307).to_string(),
            "refused to follow a redirect (HTTP 307)"
        );
        assert_eq!(
            FetchError::Redirect(0).to_string(),
            "refused to follow a redirect (the answer came from another URL)"
        );
    }

    #[test]
    fn an_answer_from_another_url_is_another_resource() {
        let url = |s: &str| Url::parse(s).unwrap();
        let asked = url("https://as.example/jwks?v=1");
        assert!(same_resource(
            &url("https://as.example:443/jwks?v=1#x"),
            &asked
        ));
        assert!(same_resource(
            &url("https://u:p@as.example/jwks?v=1"),
            &asked
        ));
        for other in [
            "http://as.example/jwks?v=1",
            "https://as.example:8443/jwks?v=1",
            "https://evil.example/jwks?v=1",
            "https://as.example/moved?v=1",
            "https://as.example/jwks?v=2",
            "https://as.example/jwks",
        ] {
            assert!(!same_resource(&url(other), &asked), "{other}");
        }
    }
}
