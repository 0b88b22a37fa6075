//! Every call to the authorization server goes through here, so every call is
//! bounded the same way: a connect timeout, a total timeout that covers the
//! body, a response size cap, and no redirects.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, StatusCode, header};
use reqwest::Url;

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
    /// A redirect, which is never followed.
    #[error("refused to follow a redirect (HTTP {0})")]
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

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) max_age: Option<Duration>,
    pub(crate) etag: Option<HeaderValue>,
}

#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    limits: HttpLimits,
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
        Ok(Fetcher { client, limits })
    }

    /// GET a JSON document, conditionally when `etag` is given.
    pub(crate) async fn get(
        &self,
        url: &Url,
        etag: Option<&HeaderValue>,
    ) -> Result<Fetched, FetchError> {
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
        }
        self.send(request, &[StatusCode::OK, StatusCode::NOT_MODIFIED])
            .await
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
            .body(form);
        if let Some(auth) = authorization {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        self.send(request, &[StatusCode::OK]).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<Fetched, FetchError> {
        // The outer timeout bounds the whole exchange even with a client the
        // user configured without one.
        tokio::time::timeout(self.limits.timeout, self.exchange(request, ok))
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<Fetched, FetchError> {
        let mut response = request.send().await.map_err(classify)?;
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
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
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
            max_age,
            etag,
        })
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

/// `Cache-Control: max-age=N` (RFC 9111 §5.2.2.1). `no-store` and
/// `no-cache` count as zero, which the caller raises to its minimum.
fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            max_age = arg
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
