//! The interop harness: the `oidc-provider` fixture of `tests/oidc-provider`
//! as a child process, the OAuth 2.0 client side of its grants (client
//! credentials, authorization code + PKCE, refresh, device), and the API
//! under test: `common::app` behind a gate, served over real HTTP.
//!
//! Everything listens on and talks to 127.0.0.1 only.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokengate::{TokenGate, TokenGateBuilder};
use url::Url;

use crate::common::{self, Answer};

/// The API's resource indicator (RFC 8707), and the `aud` of its tokens.
pub const AUDIENCE: &str = "http://127.0.0.1/api";
/// A second API of the same authorization server.
pub const OTHER_AUDIENCE: &str = "http://127.0.0.1/other-api";
/// The one redirect URI of `app` and `app-opaque`; nothing listens there.
pub const REDIRECT_URI: &str = "http://127.0.0.1/cb";
/// The API's own client, allowed to introspect any token for `AUDIENCE`.
pub const RS_CLIENT_ID: &str = "resource-server";
pub const RS_CLIENT_SECRET: &str = "resource-server-secret";

/// How long the fixture may take to print its READY line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long every call to the fixture may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

fn fixture_dir() -> PathBuf {
    // The workspace root's, also for a member below it that includes this
    // file (examples/mcp_server).
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("tests/oidc-provider"))
        .find(|dir| dir.join("server.js").is_file())
        .unwrap_or_else(|| manifest.join("tests/oidc-provider"))
}

// ---- Node and npm ----------------------------------------------------------

/// Checks for `node` (>= 20) and `npm`, and runs `npm ci` in the fixture
/// directory when `oidc-provider` is not installed. Runs once per test
/// binary: the tests of this binary run on parallel threads and wait here
/// for the first one. A missing tool fails the test, never skips it.
fn ensure_node() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(e) = SETUP.get_or_init(setup) {
        panic!("{e}");
    }
}

fn setup() -> Result<(), String> {
    const INSTALL: &str = "tokengate's interop tests (tests/interop.rs) run the oidc-provider \
        fixture in tests/oidc-provider and need Node.js >= 20 with npm on the PATH: install them \
        (e.g. `apt-get install nodejs npm`, or from https://nodejs.org/)";
    let node = tool_version("node").map_err(|e| format!("{INSTALL}; `node --version`: {e}"))?;
    let major: u32 = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("{INSTALL}; cannot read `node --version`: {node:?}"))?;
    if major < 20 {
        return Err(format!("{INSTALL}; found node {node}"));
    }
    tool_version("npm").map_err(|e| format!("{INSTALL}; `npm --version`: {e}"))?;

    let dir = fixture_dir();
    if dir
        .join("node_modules/oidc-provider/package.json")
        .is_file()
    {
        return Ok(());
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run `npm ci` in {}: {e}", dir.display()))?;
    if !out.status.success() {
        return Err(format!(
            "`npm ci` in {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn tool_version(tool: &str) -> Result<String, String> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("exited with {}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

// ---- the authorization server process --------------------------------------

/// How to start the fixture.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// 0 picks a free port.
    pub port: u16,
    /// A private JWKS from [`genkeys`]; `None`: a fresh set per start.
    pub keys_file: Option<PathBuf>,
}

/// A running `oidc-provider`. Dropping it stops the process.
pub struct Provider {
    child: Child,
    /// The server exits when this closes, also when the test process dies.
    stdin: Option<ChildStdin>,
    issuer: String,
    port: u16,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Provider {
    /// Starts the fixture and waits for its READY line. Panics, with the
    /// server's stderr, if it does not come up.
    pub fn start(options: Options) -> Provider {
        Provider::try_start(&options).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the fixture on a port a previous instance used: a restart.
    /// Retries briefly if the port is not free yet.
    pub fn restart(port: u16, keys_file: Option<PathBuf>) -> Provider {
        let options = Options { port, keys_file };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Provider::try_start(&options) {
                Ok(provider) => return provider,
                Err(e) if attempt < 10 && e.contains("EADDRINUSE") => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn try_start(options: &Options) -> Result<Provider, String> {
        ensure_node();
        let mut command = Command::new("node");
        command
            .arg("server.js")
            .current_dir(fixture_dir())
            .env("PORT", options.port.to_string())
            .env("EXIT_ON_STDIN_CLOSE", "1")
            .env("AUDIENCE", AUDIENCE)
            .env("OTHER_AUDIENCE", OTHER_AUDIENCE)
            .env_remove("TOKEN_TTL")
            .env_remove("APP_ALG")
            .env_remove("KEYS_FILE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(keys) = &options.keys_file {
            command.env("KEYS_FILE", keys);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not start `node server.js`: {e}"))?;
        let stdin = child.stdin.take();

        // stderr: kept (bounded) for failure messages, and always drained.
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                if s.len() < 256 * 1024 {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });

        // stdout: the READY line, then drained until the process exits.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = ready_tx.send(first);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });

        let mut provider = Provider {
            child,
            stdin,
            issuer: String::new(),
            port: 0,
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let line = match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if line.is_empty() => {
                return Err(provider.failed("it exited before printing READY"));
            }
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(provider.failed(&format!("reading its stdout: {e}"))),
            Err(_) => {
                return Err(provider.failed(&format!("no READY line within {START_TIMEOUT:?}")));
            }
        };
        let Some(issuer) = line.strip_prefix("READY ").map(str::trim_end) else {
            return Err(provider.failed(&format!("unexpected first line {line:?}")));
        };
        let port = Url::parse(issuer)
            .ok()
            .filter(|u| u.host_str() == Some("127.0.0.1"))
            .and_then(|u| u.port());
        let Some(port) = port else {
            return Err(provider.failed(&format!("unexpected issuer {issuer:?}")));
        };
        provider.issuer = issuer.to_owned();
        provider.port = port;
        Ok(provider)
    }

    /// Stops the process and describes why it did not come up.
    fn failed(&mut self, why: &str) -> String {
        self.stop();
        format!(
            "oidc-provider fixture (node server.js in {}) did not start: {why}; {}\n--- its stderr ---\n{}",
            fixture_dir().display(),
            self.child
                .try_wait()
                .ok()
                .flatten()
                .map_or_else(|| "still running".to_owned(), |s| s.to_string()),
            self.stderr()
        )
    }

    /// The issuer identifier, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops the server: closes its stdin (it exits at once), and kills it
    /// if it is still running after 5 s. Idempotent.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // The pipe is closed now that the process is gone.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    // ---- client credentials, revocation --------------------------------

    /// `POST /token` with `grant_type=client_credentials`, authenticated
    /// with `client_secret_basic`.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        scope: Option<&str>,
        resource: &str,
    ) -> TokenResponse {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = http_client()
            .post(self.url("/token"))
            .basic_auth(client_id, Some(secret_of(client_id)))
            .form(&form)
            .send()
            .await
            .expect("POST /token");
        TokenResponse::read(response, self).await
    }

    /// A DPoP-bound client-credentials access token for [`AUDIENCE`]
    /// (RFC 9449 §5): the token request carries a proof of `key`.
    pub async fn dpop_token(
        &self,
        client_id: &str,
        scope: &str,
        key: &tokengate::testing::DpopKey,
    ) -> TokenResponse {
        let url = self.url("/token");
        let proof = key.proof("POST", &url).sign();
        let form = [
            ("grant_type", "client_credentials"),
            ("resource", AUDIENCE),
            ("scope", scope),
        ];
        let response = http_client()
            .post(url)
            .basic_auth(client_id, Some(secret_of(client_id)))
            .header("DPoP", proof)
            .form(&form)
            .send()
            .await
            .expect("POST /token");
        TokenResponse::read(response, self).await
    }

    /// A client-credentials access token for [`AUDIENCE`].
    pub async fn token(&self, client_id: &str, scope: &str) -> String {
        self.client_credentials(client_id, Some(scope), AUDIENCE)
            .await
            .access_token()
            .to_owned()
    }

    /// RFC 7009 revocation by the token's owner; the HTTP status.
    pub async fn revoke(&self, client_id: &str, token: &str) -> u16 {
        http_client()
            .post(self.url("/token/revocation"))
            .basic_auth(client_id, Some(secret_of(client_id)))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .expect("POST /token/revocation")
            .status()
            .as_u16()
    }

    // ---- authorization code + PKCE, refresh ----------------------------

    /// The authorization code grant with PKCE (S256) for a public client:
    /// the authorization request, login as `login` and consent driven
    /// through the fixture's dev interactions, then the code exchanged.
    pub async fn authorization_code(&self, client_id: &str, login: &str, scope: &str) -> Value {
        let verifier = random_b64url(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_b64url(12);
        let mut auth = Url::parse(&self.url("/auth")).expect("issuer is a URL");
        auth.query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", scope)
            .append_pair("resource", AUDIENCE)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);

        let browser = Browser::new(login);
        let callback = match browser.visit(Visit::Get(auth)).await {
            Landing::Callback(url) => url,
            Landing::Page(page) => {
                panic!("the flow ended on a page, not the redirect URI:\n{page}")
            }
        };
        let param = |name: &str| {
            callback
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("error"), None, "authorization failed: {callback}");
        assert_eq!(
            param("state").as_deref(),
            Some(state.as_str()),
            "{callback}"
        );
        // RFC 9207: the response names its issuer.
        assert_eq!(param("iss").as_deref(), Some(self.issuer()), "{callback}");
        let code = param("code").unwrap_or_else(|| panic!("no code in {callback}"));

        let response = http_client()
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
                ("resource", AUDIENCE),
            ])
            .send()
            .await
            .expect("POST /token");
        TokenResponse::read(response, self).await.ok()
    }

    /// `grant_type=refresh_token` for a public client.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> TokenResponse {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = http_client()
            .post(self.url("/token"))
            .form(&form)
            .send()
            .await
            .expect("POST /token");
        TokenResponse::read(response, self).await
    }

    // ---- device authorization grant (RFC 8628) -------------------------

    /// The device grant for a public client: the device authorization
    /// request, one poll (pending), the user side (code entry, login as
    /// `login`, consent), and the poll that yields the tokens.
    pub async fn device_flow(&self, client_id: &str, login: &str, scope: &str) -> Value {
        let response = http_client()
            .post(self.url("/device/auth"))
            .form(&[
                ("client_id", client_id),
                ("scope", scope),
                ("resource", AUDIENCE),
            ])
            .send()
            .await
            .expect("POST /device/auth");
        let device = TokenResponse::read(response, self).await.ok();
        let device_code = device["device_code"].as_str().expect("device_code");
        let user_code = device["user_code"].as_str().expect("user_code");
        let verification_uri = device["verification_uri"]
            .as_str()
            .expect("verification_uri");

        let poll = || async {
            let response = http_client()
                .post(self.url("/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", client_id),
                    ("device_code", device_code),
                ])
                .send()
                .await
                .expect("POST /token");
            TokenResponse::read(response, self).await
        };
        let pending = poll().await;
        assert_eq!(
            pending.error(),
            Some("authorization_pending"),
            "{pending:?}"
        );

        let browser = Browser::new(login);
        let entry = Url::parse(verification_uri).expect("verification_uri is a URL");
        let page = match browser.visit(Visit::Get(entry.clone())).await {
            Landing::Page(page) => page,
            Landing::Callback(url) => panic!("unexpected redirect to {url}"),
        };
        let xsrf = hidden_input(&page, "xsrf")
            .unwrap_or_else(|| panic!("no xsrf field on the code entry page:\n{page}"))
            .to_owned();
        let form = vec![
            ("xsrf".to_owned(), xsrf),
            ("user_code".to_owned(), user_code.to_owned()),
            ("confirm".to_owned(), "yes".to_owned()),
        ];
        match browser.visit(Visit::Post(entry, form)).await {
            Landing::Page(page) => assert!(page.contains("Sign-in Success"), "{page}"),
            Landing::Callback(url) => panic!("unexpected redirect to {url}"),
        }
        poll().await.ok()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One fixture shared by the tests that change nothing but their own
/// tokens. It lives as long as the test binary: when the binary exits its
/// stdin closes and the server exits.
pub fn shared() -> &'static Provider {
    static SHARED: OnceLock<Result<Provider, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Provider::try_start(&Options::default())) {
        Ok(provider) => provider,
        Err(e) => panic!("{e}"),
    }
}

fn secret_of(client_id: &str) -> String {
    format!("{client_id}-secret")
}

/// A client for the fixture: 127.0.0.1 only, no redirects followed.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
        .expect("HTTP client")
}

fn random_b64url(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).expect("randomness");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A JSON answer of the token (or device authorization) endpoint.
pub struct TokenResponse {
    pub status: u16,
    pub json: Value,
    /// The server's stderr at the time, for failure messages.
    server_log: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {}\n--- oidc-provider stderr ---\n{}",
            self.status, self.json, self.server_log
        )
    }
}

impl TokenResponse {
    async fn read(response: reqwest::Response, provider: &Provider) -> TokenResponse {
        let status = response.status().as_u16();
        let body = response.text().await.expect("response body");
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        TokenResponse {
            status,
            json,
            server_log: provider.stderr(),
        }
    }

    /// The JSON of a 200 answer; panics on anything else.
    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        self.json
    }

    #[track_caller]
    pub fn access_token(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        self.json["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {self:?}"))
    }

    /// The OAuth `error` code of a failed answer.
    pub fn error(&self) -> Option<&str> {
        self.json["error"].as_str()
    }
}

// ---- a browser without a browser --------------------------------------------

enum Visit {
    Get(Url),
    Post(Url, Vec<(String, String)>),
}

enum Landing {
    /// Redirected to [`REDIRECT_URI`] (not followed: nothing listens there).
    Callback(Url),
    /// A page with no login or consent form on it.
    Page(String),
}

/// Follows redirects by hand with one cookie jar, and fills in the
/// fixture's login (any login and password) and consent forms.
struct Browser {
    client: reqwest::Client,
    login: String,
}

impl Browser {
    fn new(login: &str) -> Browser {
        let client = reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .expect("HTTP client");
        Browser {
            client,
            login: login.to_owned(),
        }
    }

    async fn visit(&self, first: Visit) -> Landing {
        let mut next = first;
        for _ in 0..16 {
            let (url, response) = match next {
                Visit::Get(url) => {
                    let r = self.client.get(url.clone()).send().await;
                    (url, r)
                }
                Visit::Post(url, form) => {
                    let r = self.client.post(url.clone()).form(&form).send().await;
                    (url, r)
                }
            };
            let response = response.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_else(|| panic!("{url}: {status} without a Location"));
                // Locations are sometimes relative, sometimes absolute.
                let target = url.join(location).expect("a valid Location");
                if target.as_str().starts_with(REDIRECT_URI) {
                    return Landing::Callback(target);
                }
                next = Visit::Get(target);
                continue;
            }
            let page = response.text().await.expect("page body");
            assert!(status.is_success(), "{url}: {status}\n{page}");
            let fields: Vec<(&str, &str)> = match hidden_input(&page, "prompt") {
                Some("login") => vec![
                    ("prompt", "login"),
                    ("login", &self.login),
                    ("password", "any password"),
                ],
                Some("consent") => vec![("prompt", "consent")],
                Some(other) => panic!("{url}: unexpected prompt {other:?}\n{page}"),
                None => return Landing::Page(page),
            };
            let action = form_action(&page).unwrap_or_else(|| panic!("{url}: no form\n{page}"));
            let action = url.join(action).expect("a valid form action");
            let fields = fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            next = Visit::Post(action, fields);
        }
        panic!("more than 16 steps without reaching the redirect URI or a final page");
    }
}

/// The value of `<input type="hidden" name="NAME" value="..."/>`.
fn hidden_input<'p>(page: &'p str, name: &str) -> Option<&'p str> {
    attribute_after(page, &format!("name=\"{name}\" value=\""))
}

/// The `action` of the first form.
fn form_action(page: &str) -> Option<&str> {
    let form = page.find("<form")?;
    attribute_after(&page[form..], "action=\"")
}

fn attribute_after<'p>(page: &'p str, marker: &str) -> Option<&'p str> {
    let start = page.find(marker)? + marker.len();
    let len = page[start..].find('"')?;
    Some(&page[start..start + len])
}

// ---- keys -------------------------------------------------------------------

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tokengate-interop-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `node genkeys.js <dir>/<prefix>.json <prefix>`: a private JWKS with one
/// ES256, RS256, PS256 and EdDSA key, kids `<prefix>-<alg>-<hex>`.
pub fn genkeys(dir: &Path, prefix: &str) -> PathBuf {
    ensure_node();
    let file = dir.join(format!("{prefix}.json"));
    let out = Command::new("node")
        .arg("genkeys.js")
        .arg(&file)
        .arg(prefix)
        .current_dir(fixture_dir())
        .stdin(Stdio::null())
        .output()
        .expect("node genkeys.js");
    assert!(
        out.status.success(),
        "genkeys.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    file
}

// ---- JWTs, read without verifying (to check what the server sent) ----------

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWS compact token");
    let json = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&json).expect("JSON")
}

pub fn jwt_header(token: &str) -> Value {
    jwt_part(token, 0)
}

pub fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

// ---- the API under test ------------------------------------------------------

/// The gate the interop tests put in front of the API.
pub fn gate_builder(provider: &Provider) -> TokenGateBuilder {
    TokenGate::builder()
        .issuer(provider.issuer())
        .audience(AUDIENCE)
        .introspection_credentials(RS_CLIENT_ID, RS_CLIENT_SECRET)
}

pub async fn gate(provider: &Provider) -> TokenGate {
    gate_builder(provider).build().await.unwrap_or_else(|e| {
        panic!(
            "gate for {}: {e}\n--- oidc-provider stderr ---\n{}",
            provider.issuer(),
            provider.stderr()
        )
    })
}

/// `common::app` behind `gate`, served by axum on 127.0.0.1 over real HTTP
/// for as long as the test's runtime lives.
pub struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    pub async fn serve(gate: &TokenGate) -> Api {
        Self::serve_router(common::app(gate)).await
    }

    /// `app`, served the same way.
    pub async fn serve_router(app: axum::Router) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Api {
            base: format!("http://{addr}"),
            client: http_client(),
        }
    }

    /// `GET /me` with `Authorization: Bearer <token>`.
    pub async fn me(&self, token: &str) -> Answer {
        self.get("/me", token).await
    }

    /// Where it listens: `http://127.0.0.1:<port>`.
    #[allow(dead_code)]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.get_with(path, &format!("Bearer {token}"), None).await
    }

    /// `GET path` with this `Authorization` and, when given, a `DPoP`
    /// header.
    pub async fn get_with(&self, path: &str, authorization: &str, dpop: Option<&str>) -> Answer {
        let mut request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("authorization", authorization);
        if let Some(proof) = dpop {
            request = request.header("dpop", proof);
        }
        let response = request.send().await.expect("GET");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body"),
        }
    }
}
