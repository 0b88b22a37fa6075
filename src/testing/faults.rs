//! What the test issuer can be told to get wrong, and what it counts: its
//! endpoints, the faults injected at them, and per-endpoint counters of
//! requests and of requests in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// An endpoint of the test issuer, for counters and faults.
///
/// ```
/// assert_ne!(tokengate::testing::Endpoint::Jwks, tokengate::testing::Endpoint::Discovery);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Discovery,
    /// `/.well-known/oauth-authorization-server`
    OAuthMetadata,
    /// `/jwks`
    Jwks,
    /// `/introspect`
    Introspection,
    /// Any other path (where a redirect points, or what a `jku` names).
    Other,
}

const ENDPOINTS: [Endpoint; 5] = [
    Endpoint::Discovery,
    Endpoint::OAuthMetadata,
    Endpoint::Jwks,
    Endpoint::Introspection,
    Endpoint::Other,
];

/// A misbehaviour to inject at an endpoint.
///
/// ```
/// use std::time::Duration;
/// use tokengate::testing::Fault;
/// let slow = Fault::Slow(Duration::from_secs(10));
/// # drop(slow);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close the connection without answering.
    Down,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// Answer with this status and an empty JSON object.
    Status(u16),
    /// Answer 200 with a body of this many bytes, announced by
    /// `Content-Length`.
    Oversize(usize),
    /// Answer 200 with a body of this many bytes, streamed in chunks with no
    /// length announced.
    OversizeChunked(usize),
    /// Answer `302 Found` pointing at another path of this server.
    Redirect,
    /// Answer with this 3xx status (`302`, `307`, `308`, …) and this
    /// `Location`: another test issuer's endpoint, say, which would answer
    /// well, so a client that follows the redirect gets a good answer from
    /// the wrong place.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use tokengate::testing::{Endpoint, Fault, TestIssuer};
    /// let (issuer, elsewhere) = (TestIssuer::start().await?, TestIssuer::start().await?);
    /// issuer.set_fault(
    ///     Endpoint::Jwks,
    ///     Some(Fault::RedirectTo { status: 307, location: elsewhere.jwks_uri() }),
    /// );
    /// # Ok(()) }
    /// ```
    RedirectTo {
        /// The redirect status.
        status: u16,
        /// The absolute or relative URL the answer points at.
        location: String,
    },
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer 200 with an HTML page.
    Html,
    /// Answer 200 with this exact body (JSON of the wrong shape, say).
    Body(String),
}

/// Requests per endpoint: how many arrived, how many are in flight, and the
/// most that were in flight at once.
#[derive(Default)]
pub(super) struct Counters {
    requests: [AtomicUsize; 5],
    in_flight: [AtomicUsize; 5],
    max_in_flight: [AtomicUsize; 5],
}

impl Counters {
    fn index(endpoint: Endpoint) -> usize {
        ENDPOINTS.iter().position(|e| *e == endpoint).unwrap_or(4)
    }

    /// Counts a request arriving at `endpoint`; it is in flight until the
    /// guard drops.
    pub(super) fn enter(&self, endpoint: Endpoint) -> InFlight<'_> {
        let index = Self::index(endpoint);
        self.requests[index].fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight[index].fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight[index].fetch_max(now, Ordering::SeqCst);
        InFlight {
            counters: self,
            index,
        }
    }

    pub(super) fn requests(&self, endpoint: Endpoint) -> usize {
        self.requests[Self::index(endpoint)].load(Ordering::SeqCst)
    }

    pub(super) fn max_concurrent(&self, endpoint: Endpoint) -> usize {
        self.max_in_flight[Self::index(endpoint)].load(Ordering::SeqCst)
    }

    /// Zeroes the request counts and high-water marks; requests in flight
    /// stay counted, so their guards still balance.
    pub(super) fn reset(&self) {
        for c in self.requests.iter().chain(&self.max_in_flight) {
            c.store(0, Ordering::SeqCst);
        }
    }
}

/// Counts a request in flight at an endpoint while alive.
pub(super) struct InFlight<'a> {
    counters: &'a Counters,
    index: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counters.in_flight[self.index].fetch_sub(1, Ordering::SeqCst);
    }
}
