//! `RedisReplayStore` against a real `redis-server`, started here on a free
//! loopback port: once-only keys, a fleet sharing them, expiry, races, an
//! outage and a hung server, no password in what it prints; and a fleet:
//! two gates sharing one Redis through a Redis outage.
//!
//! Needs the `redis-server` binary (Debian package `redis-server`); without
//! it these tests fail, they do not skip.

#![cfg(feature = "redis")]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokengate::dpop::{RedisReplayStore, ReplayCheck, ReplayError, ReplayKey, ReplayStore};

/// How long a started server may take to accept connections.
const STARTUP: Duration = Duration::from_secs(10);

/// A `redis-server` child process on 127.0.0.1, killed on drop.
struct RedisServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl RedisServer {
    /// A server on a free port.
    fn start(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        Self::start_on(port, extra)
    }

    /// A server on `port`, once it answers PING.
    fn start_on(port: u16, extra: &[&str]) -> Self {
        let binary = redis_server_binary();
        let dir = std::env::temp_dir().join(format!(
            "tokengate-redis-{}-{port}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let log = dir.join("redis.log");
        let child = Command::new(&binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", binary.display()));
        let mut server = RedisServer {
            child: Some(child),
            port,
            log,
        };
        server.wait_ready();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Polls with PING until the server answers, within [`STARTUP`].
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "redis-server exited at startup ({status}) on port {}; its log:\n{}",
                    self.port,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if ping(self.port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {STARTUP:?}; its log:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server and waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running server").id()
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    fn signal(&self, signal: &str) {
        let status = Command::new("bash")
            .args([
                "-c",
                "kill -s \"$0\" \"$1\"",
                signal,
                &self.pid().to_string(),
            ])
            .status()
            .expect("bash runs");
        assert!(status.success(), "kill -s {signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The `redis-server` binary, found with `which` (or on `PATH`); a failure,
/// not a skip, when it is missing.
fn redis_server_binary() -> PathBuf {
    if let Ok(out) = Command::new("which").arg("redis-server").output()
        && out.status.success()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
    {
        return path;
    }
    panic!(
        "redis-server is not installed: these tests need it. Install the Debian package \
         `redis-server` (apt-get install -y redis-server), or run `bash scripts/test`, \
         which does."
    );
}

/// Whether a server on `port` answers PING (`+PONG`, or `-NOAUTH` from a
/// server with a password).
fn ping(port: u16) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).is_ok()
        && (answer.starts_with("+PONG") || answer.starts_with("-NOAUTH"))
}

/// A key no other test uses.
fn key(tag: u8) -> ReplayKey {
    let mut key = [tag; 32];
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    key[..8].copy_from_slice(&n);
    key[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    key
}

async fn first_use(
    store: &RedisReplayStore,
    key: ReplayKey,
    ttl: Duration,
) -> Result<bool, ReplayError> {
    match store.first_use(key, ttl) {
        ReplayCheck::Pending(answer) => answer.await,
        ReplayCheck::Done(_) => panic!("a Redis store answers after I/O"),
    }
}

fn hex(key: &ReplayKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_key_is_new_once_and_the_fleet_shares_keys() {
    let server = RedisServer::start(&[]);
    let a = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");
    let b = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");

    let (k1, k2, k3) = (key(1), key(2), key(3));
    assert_eq!(first_use(&a, k1, MINUTE).await, Ok(true), "a new key");
    assert_eq!(
        first_use(&a, k1, MINUTE).await,
        Ok(false),
        "the same key again"
    );
    assert_eq!(first_use(&a, k2, MINUTE).await, Ok(true), "another key");
    // A second replica, on the same server, sees what the first accepted.
    assert_eq!(
        first_use(&b, k1, MINUTE).await,
        Ok(false),
        "seen by the other replica"
    );
    assert_eq!(first_use(&b, k3, MINUTE).await, Ok(true));
    assert_eq!(
        first_use(&a, k3, MINUTE).await,
        Ok(false),
        "and the other way round"
    );

    // The key's layout in Redis: the prefix, the key in hex, a TTL.
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let name = format!("tokengate:dpop:{}", hex(&k1));
    let value: Option<String> = redis::cmd("GET")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("1"), "{name}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(pttl > 50_000 && pttl <= 60_000, "PTTL {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_accept_a_proof_once() {
    let server = RedisServer::start(&[]);
    let a = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");
    let b = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");
    let k = key(4);
    // Started at once, on two connections: Redis decides, not the order.
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let store = if i % 2 == 0 { &a } else { &b };
            match store.first_use(k, MINUTE) {
                ReplayCheck::Pending(answer) => tokio::spawn(answer),
                ReplayCheck::Done(_) => panic!("a Redis store answers after I/O"),
            }
        })
        .collect();
    let mut answers = Vec::with_capacity(handles.len());
    for handle in handles {
        answers.push(handle.await.expect("no panic"));
    }
    let new = answers.iter().filter(|a| **a == Ok(true)).count();
    let seen = answers.iter().filter(|a| **a == Ok(false)).count();
    assert_eq!((new, seen), (1, 63), "{answers:?}");
}

#[tokio::test]
async fn a_key_is_new_again_after_its_ttl() {
    let server = RedisServer::start(&[]);
    let store = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");
    let k = key(5);
    let ttl = Duration::from_millis(200);
    assert_eq!(first_use(&store, k, ttl).await, Ok(true));
    assert_eq!(first_use(&store, k, ttl).await, Ok(false), "within its TTL");
    // Redis keeps its own clock: a real wait, past the TTL.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(first_use(&store, k, ttl).await, Ok(true), "expired");
    assert_eq!(first_use(&store, k, ttl).await, Ok(false), "recorded again");
    // A zero TTL is sent as 1 ms (Redis refuses PX 0), not as an error.
    assert_eq!(first_use(&store, key(6), Duration::ZERO).await, Ok(true));
}

#[tokio::test]
async fn an_outage_fails_fast_and_the_same_store_recovers() {
    let mut server = RedisServer::start(&[]);
    let port = server.port;
    let store = RedisReplayStore::connect(&server.url())
        .await
        .expect("connects");
    assert_eq!(first_use(&store, key(7), MINUTE).await, Ok(true));

    server.stop();
    // Several calls: the first meets the dropped connection, the next ones
    // the reconnection attempts. Each fails, within 3 s.
    let k = key(8);
    for attempt in 0..3 {
        let started = Instant::now();
        let answer = first_use(&store, k, MINUTE).await;
        let elapsed = started.elapsed();
        eprintln!("outage, attempt {attempt}: {answer:?} after {elapsed:?}");
        assert!(
            matches!(
                answer,
                Err(ReplayError::Timeout | ReplayError::Unavailable(_))
            ),
            "attempt {attempt} during the outage: {answer:?}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "attempt {attempt} took {elapsed:?}"
        );
        if let Err(ReplayError::Unavailable(text)) = &answer {
            assert!(!text.contains(&hex(&k)), "{text}");
        }
    }

    // Back on the same port: the same store object answers again.
    let _server = RedisServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let k = key(9);
    let mut last;
    loop {
        let started = Instant::now();
        last = first_use(&store, k, MINUTE).await;
        eprintln!("after the outage: {last:?} after {:?}", started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        if last == Ok(true) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last,
        Ok(true),
        "no recovery within 5 s of the server's return"
    );
    assert_eq!(first_use(&store, k, MINUTE).await, Ok(false));
}

#[tokio::test]
async fn a_hung_server_times_out_within_the_timeout() {
    let server = RedisServer::start(&[]);
    let timeout = Duration::from_millis(300);
    let store = RedisReplayStore::connect_with_timeout(&server.url(), timeout)
        .await
        .expect("connects");
    assert_eq!(store.timeout(), timeout);
    assert_eq!(first_use(&store, key(10), MINUTE).await, Ok(true));

    // Stopped, not killed: the connection stays open and nothing answers.
    server.signal("STOP");
    let started = Instant::now();
    let answer = first_use(&store, key(11), MINUTE).await;
    let elapsed = started.elapsed();
    server.signal("CONT");
    assert_eq!(answer, Err(ReplayError::Timeout));
    assert!(elapsed >= timeout && elapsed < timeout * 3, "{elapsed:?}");

    let deadline = Instant::now() + Duration::from_secs(5);
    let k = key(12);
    let mut last;
    loop {
        last = first_use(&store, k, MINUTE).await;
        if last == Ok(true) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, Ok(true), "answers again once the server resumes");
}

#[tokio::test]
async fn connecting_to_no_server_fails_at_startup() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = RedisReplayStore::connect(&format!("redis://:hunter2-pw@127.0.0.1:{port}/"))
        .await
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert!(matches!(err, ReplayError::Unavailable(_)), "{err:?}");
    assert!(text.contains("could not connect to Redis"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("hunter2-pw"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn passwords_stay_out_of_debug_and_errors() {
    let server = RedisServer::start(&["--requirepass", "s3cret-pw"]);
    let port = server.port;
    let store = RedisReplayStore::connect(&format!("redis://:s3cret-pw@127.0.0.1:{port}/0"))
        .await
        .expect("the right password");
    assert_eq!(first_use(&store, key(13), MINUTE).await, Ok(true));
    let debug = format!("{store:?}");
    assert!(!debug.contains("s3cret-pw"), "{debug}");
    assert!(
        debug.contains(&format!("redis://***@127.0.0.1:{port}/0")),
        "{debug}"
    );

    let err = RedisReplayStore::connect(&format!("redis://default:wrong-pw@127.0.0.1:{port}/0"))
        .await
        .expect_err("the wrong password");
    let text = err.to_string();
    assert!(text.contains("could not connect to Redis"), "{text}");
    assert!(!text.contains("wrong-pw"), "{text}");
    assert!(!text.contains("default:"), "{text}");
}

/// The fleet: two gates (two replicas of a service) sharing one Redis. A
/// proof used on one is refused on the other; Redis stopped: DPoP requests
/// get 503 and bearer requests are still served; Redis back: DPoP is
/// served again, without a restart.
#[tokio::test]
async fn two_replicas_share_proofs_and_survive_a_redis_outage() {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tokengate::testing::{DpopKey, TestIssuer};
    use tokengate::{Algorithm, TokenGate};
    use tower::ServiceExt;

    let mut server = RedisServer::start(&[]);
    let port = server.port;
    let issuer = TestIssuer::start().await.unwrap();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = RedisReplayStore::connect(&server.url()).await.unwrap();
        let gate = TokenGate::builder()
            .issuer(issuer.issuer())
            .audience(issuer.audience())
            .public_url("https://api.tokengate.test")
            .dpop_replay_store(Arc::new(store))
            .build()
            .await
            .unwrap();
        replicas.push(
            axum::Router::new()
                .route("/items", get(|| async { "items" }))
                .layer(gate.layer()),
        );
    }
    let key = DpopKey::new(Algorithm::ES256);
    let bound = issuer.token().dpop_bound(&key).sign();
    let bearer = issuer.token().sign();
    let url = "https://api.tokengate.test/items";
    let send = |app: &axum::Router, auth: String, proof: Option<String>| {
        let mut request = Request::get("/items").header("authorization", auth);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        let app = app.clone();
        async move {
            app.oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    let dpop = || format!("DPoP {bound}");
    let proof = key.proof("GET", url).token(&bound).sign();
    assert_eq!(
        send(&replicas[0], dpop(), Some(proof.clone())).await,
        StatusCode::OK
    );
    assert_eq!(
        send(&replicas[1], dpop(), Some(proof.clone())).await,
        StatusCode::UNAUTHORIZED,
        "a proof used on one replica is refused on the other"
    );

    server.stop();
    let started = Instant::now();
    let fresh = key.proof("GET", url).token(&bound).sign();
    assert_eq!(
        send(&replicas[1], dpop(), Some(fresh)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        send(&replicas[0], format!("Bearer {bearer}"), None).await,
        StatusCode::OK
    );

    let _server = RedisServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let fresh = key.proof("GET", url).token(&bound).sign();
        let status = send(&replicas[0], dpop(), Some(fresh)).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "DPoP not served again: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
