//! A [`ReplayStore`] in Redis (feature `redis`): every replica of a fleet
//! sees the proofs the others accepted.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError, Value};

use super::replay::{ReplayCheck, ReplayError, ReplayKey, ReplayStore};

/// What each key starts with, before the 64 hex digits of the [`ReplayKey`].
const KEY_PREFIX: &str = "tokengate:dpop:";

/// Reconnection attempts after the first one fails, before the attempt is
/// given up (the next command starts a new one).
const RECONNECT_RETRIES: usize = 2;
/// The first pause between reconnection attempts (then doubled, with jitter).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// The longest TTL sent to Redis (100 years): Redis refuses an expiry past
/// its clock's range.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// A [`ReplayStore`] in Redis, shared by every replica that connects to the
/// same server: a proof accepted by one is a replay for all.
///
/// Each [`first_use`](ReplayStore::first_use) is one
/// `SET tokengate:dpop:<key in hex> 1 NX PX <ttl in ms>`: atomic in Redis,
/// so two replicas racing with the same proof cannot both accept it, and
/// the key leaves by itself when its window ends. The key is SHA-256 of the
/// proof's `jti` and `htu`: no client-chosen bytes reach Redis.
///
/// It holds one multiplexed connection through the redis crate's
/// [`ConnectionManager`], which every request shares (no pool to size) and
/// which reconnects by itself after an outage, with a bounded number of
/// attempts. No command waits longer than the timeout
/// ([`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT), 2 s, unless set with
/// [`connect_with_timeout`](Self::connect_with_timeout)): while Redis is
/// unreachable, DPoP requests fail fast with 503 (fail closed) and are
/// accepted again once it is back, without a restart.
///
/// Its `Debug` output names the server without the URL's user name and
/// password, and so do its errors.
///
/// ```no_run
/// use std::time::Duration;
/// use tokengate::dpop::{RedisReplayStore, ReplayCheck, ReplayStore};
///
/// # async fn run() -> Result<(), tokengate::dpop::ReplayError> {
/// let store = RedisReplayStore::connect("redis://127.0.0.1:6379/0").await?;
/// let key = [7u8; 32];
/// let ReplayCheck::Pending(check) = store.first_use(key, Duration::from_secs(60)) else {
///     unreachable!("Redis answers after I/O");
/// };
/// assert!(check.await?, "a new key");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: ConnectionManager,
    timeout: Duration,
    /// The server's address, without user name and password.
    server: Arc<str>,
}

impl RedisReplayStore {
    /// How long a command may wait for Redis, connection included, unless
    /// set with [`connect_with_timeout`](Self::connect_with_timeout): 2 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tokengate::dpop::RedisReplayStore;
    ///
    /// assert_eq!(RedisReplayStore::DEFAULT_TIMEOUT, Duration::from_secs(2));
    /// ```
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to the Redis server at `url`, with the default timeout of
    /// 2 s per command ([`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)).
    ///
    /// `url` is read by the redis crate:
    /// `redis://[<user>][:<password>@]<host>[:<port>][/<db>]`, or
    /// `redis+unix:///<path>[?db=<db>&user=<user>&pass=<password>]` for a
    /// Unix socket. TLS (`rediss://`) is not built in: it fails here.
    ///
    /// Fails when the URL does not parse or the server cannot be reached
    /// (or refuses the credentials) after a few attempts, so that a wrong
    /// address is known at startup. Call it inside the Tokio runtime that
    /// serves the requests: the connection's task runs there.
    ///
    /// ```no_run
    /// use tokengate::dpop::RedisReplayStore;
    ///
    /// # async fn run() -> Result<(), tokengate::dpop::ReplayError> {
    /// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    /// let store = RedisReplayStore::connect(&url).await?;
    /// println!("replay store: {store:?}"); // no password in it
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ReplayError> {
        Self::connect_with_timeout(url, Self::DEFAULT_TIMEOUT).await
    }

    /// Connects to the Redis server at `url` (as [`connect`](Self::connect)
    /// does), where no command waits longer than `timeout`: it bounds each
    /// connection attempt, each answer, and each
    /// [`first_use`](ReplayStore::first_use) as a whole (a zero `timeout`
    /// counts as 1 ms). Connecting here may take a few attempts of
    /// `timeout` each.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tokengate::dpop::RedisReplayStore;
    ///
    /// # async fn run() -> Result<(), tokengate::dpop::ReplayError> {
    /// let store =
    ///     RedisReplayStore::connect_with_timeout("redis://127.0.0.1:6379", Duration::from_millis(250))
    ///         .await?;
    /// assert_eq!(store.timeout(), Duration::from_millis(250));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self, ReplayError> {
        let timeout = timeout.max(Duration::from_millis(1));
        let info: ConnectionInfo = url.into_connection_info().map_err(|e| {
            ReplayError::Unavailable(format!("the Redis URL is not valid: {}", scrub(&e, &[url])))
        })?;
        let server = describe(&info);
        let secrets =
            [Some(url), info.redis_settings().password()].map(|s| s.unwrap_or_default().to_owned());
        let client = Client::open(info).map_err(|e| {
            ReplayError::Unavailable(format!(
                "the Redis URL for {server} is not valid: {}",
                scrub(&e, &secrets)
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        // The manager's attempts are bounded already; this bounds them as a
        // whole, whatever happens inside one.
        let deadline = timeout * (RECONNECT_RETRIES as u32 + 1) + RECONNECT_MAX_DELAY * 2;
        let connection = match tokio::time::timeout(
            deadline,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => {
                return Err(ReplayError::Unavailable(format!(
                    "could not connect to Redis at {server}: {}",
                    scrub(&e, &secrets)
                )));
            }
            Err(_) => {
                return Err(ReplayError::Unavailable(format!(
                    "could not connect to Redis at {server}: no answer within {deadline:?}"
                )));
            }
        };
        Ok(RedisReplayStore {
            connection,
            timeout,
            server: server.into(),
        })
    }

    /// How long a command may wait for Redis.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), tokengate::dpop::ReplayError> {
    /// let store = tokengate::dpop::RedisReplayStore::connect("redis://127.0.0.1:6379").await?;
    /// assert_eq!(store.timeout(), tokengate::dpop::RedisReplayStore::DEFAULT_TIMEOUT);
    /// # Ok(())
    /// # }
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ReplayStore for RedisReplayStore {
    fn first_use(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck {
        let mut connection = self.connection.clone();
        let timeout = self.timeout;
        let server = self.server.clone();
        ReplayCheck::Pending(Box::pin(async move {
            let hex_key = hex(&key);
            let ttl_ms = u64::try_from(ttl.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, MAX_TTL_MS);
            let mut set = ::redis::cmd("SET");
            set.arg(format!("{KEY_PREFIX}{hex_key}"))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms);
            let answer = tokio::time::timeout(timeout, set.query_async::<Value>(&mut connection));
            match answer.await {
                Err(_) => Err(ReplayError::Timeout),
                Ok(Err(e)) if e.is_timeout() => Err(ReplayError::Timeout),
                Ok(Err(e)) => Err(ReplayError::Unavailable(format!(
                    "Redis at {server}: {}",
                    scrub(&e, &[&hex_key])
                ))),
                Ok(Ok(Value::Okay)) => Ok(true),
                Ok(Ok(Value::SimpleString(s))) if s == "OK" => Ok(true),
                Ok(Ok(Value::Nil)) => Ok(false),
                Ok(Ok(other)) => Err(ReplayError::Unavailable(format!(
                    "Redis at {server} answered SET NX with {}",
                    kind_of(&other)
                ))),
            }
        }))
    }
}

/// `info`'s server as a URL without user name and password.
fn describe(info: &ConnectionInfo) -> String {
    let redis = info.redis_settings();
    let credentials = redis.username().is_some() || redis.password().is_some();
    match info.addr() {
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={}", path.display(), redis.db()),
        addr => {
            let scheme = if matches!(addr, ConnectionAddr::Tcp(..)) {
                "redis"
            } else {
                "rediss"
            };
            let userinfo = if credentials { "***@" } else { "" };
            let host_port = match addr {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. }
                    if host.contains(':') =>
                {
                    format!("[{host}]:{port}")
                }
                _ => addr.to_string(),
            };
            format!("{scheme}://{userinfo}{host_port}/{}", redis.db())
        }
    }
}

/// `e`'s text, without any of `secrets` (the URL, its credentials, a key)
/// should one appear in it.
fn scrub<S: AsRef<str>>(e: &RedisError, secrets: &[S]) -> String {
    let mut text = e.to_string();
    for secret in secrets.iter().map(AsRef::as_ref).filter(|s| !s.is_empty()) {
        if text.contains(secret) {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

/// The kind of an unexpected answer, without its content.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. } => "a string",
        Value::Array(_) | Value::Set(_) | Value::Map(_) => "a collection",
        Value::ServerError(_) => "an error",
        _ => "another type",
    }
}

/// Lowercase hexadecimal.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f, 0xf0]), "00ab0ff0");
        assert_eq!(hex(&[0u8; 32]).len(), 64);
    }

    #[test]
    fn descriptions_hide_credentials() {
        let info = "redis://alice:s3cret@cache.internal:6380/2"
            .into_connection_info()
            .unwrap();
        let text = describe(&info);
        assert_eq!(text, "redis://***@cache.internal:6380/2");
        let info = "redis://:s3cret@[::1]/".into_connection_info().unwrap();
        assert_eq!(describe(&info), "redis://***@[::1]:6379/0");
        let info = "redis://127.0.0.1".into_connection_info().unwrap();
        assert_eq!(describe(&info), "redis://127.0.0.1:6379/0");
        let info = "redis+unix:///run/redis.sock?db=3&pass=s3cret"
            .into_connection_info()
            .unwrap();
        assert_eq!(describe(&info), "redis+unix:///run/redis.sock?db=3");
    }

    #[tokio::test]
    async fn bad_urls_fail_without_echoing_them() {
        for url in [
            "http://u:s3cret@host/",
            "redis://:s3cret@host:6379/notadb",
            "not a url s3cret",
        ] {
            let err = RedisReplayStore::connect(url).await.unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, ReplayError::Unavailable(_)), "{url}: {text}");
            assert!(!text.contains("s3cret"), "{url}: {text}");
        }
    }
}
