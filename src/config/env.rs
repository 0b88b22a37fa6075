//! Configuration from environment variables: [`TokenGateBuilder::from_env`]
//! reads every documented setting under a prefix, `<NAME>_FILE` for any of
//! them (secrets from mounted files), parses strictly, and reports every
//! problem at once.

use std::fmt;
use std::io::Read as _;
use std::time::Duration;

use super::TokenGateBuilder;
use crate::authority::introspection::IntrospectionMode;
use crate::keys::{Algorithm, parse_alg};
use crate::response::ErrorDetail;

/// The largest `<NAME>_FILE` read: secrets and URLs are short.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Every variable [`TokenGateBuilder::from_env`] reads, without the
/// prefix, with what it sets. The README's table lists the same.
pub const ENV_VARIABLES: &[(&str, &str)] = &[
    ("ISSUER", "trusted issuer(s), separated by spaces"),
    ("AUDIENCE", "accepted audience(s), separated by spaces"),
    ("RESOURCE", "the RFC 9728 resource identifier"),
    ("CLIENT_ID", "introspection client id"),
    ("CLIENT_SECRET", "introspection client secret"),
    ("INTROSPECTION_ENDPOINT", "introspection endpoint URL"),
    ("INTROSPECTION_MODE", "`opaque`, `all` or `off`"),
    ("JWKS_URI", "key set URL (skips discovery; one issuer)"),
    ("ALGORITHMS", "accepted JWS algorithms, e.g. `ES256 RS256`"),
    ("LEEWAY", "clock leeway, a duration"),
    ("STRICT_RFC9068", "`true` or `false`"),
    ("MAX_TOKEN_LENGTH", "bytes"),
    ("ALLOW_QUERY_TOKEN", "`true` or `false`"),
    ("REALM", "the challenges' realm"),
    ("ERROR_DETAIL", "`describe` or `terse`"),
    ("RETRY_AFTER", "a duration"),
    ("CONNECT_TIMEOUT", "a duration"),
    ("TIMEOUT", "a duration"),
    ("MAX_RESPONSE_BYTES", "bytes"),
    ("JWKS_TTL", "a duration"),
    ("JWKS_MAX_STALE", "a duration"),
    ("REQUIRE_KEYS_AT_STARTUP", "`true` or `false`"),
    ("VERIFIED_TOKEN_CACHE_BYTES", "bytes"),
    ("INTROSPECTION_CACHE_BYTES", "bytes"),
    ("INTROSPECTION_CACHE_TTL", "a duration"),
    ("INTROSPECTION_INACTIVE_TTL", "a duration"),
    ("INTROSPECTION_CONCURRENCY", "calls in flight"),
    ("INTROSPECTION_QUEUE", "requests waiting"),
    (
        "SCOPES_SUPPORTED",
        "scopes the metadata lists, separated by spaces",
    ),
    (
        "CHALLENGE_SCOPE",
        "scopes 401 challenges name, separated by spaces",
    ),
    ("RESOURCE_NAME", "the metadata's resource_name"),
    ("METADATA_AT_ROOT", "`true` or `false`"),
    ("DPOP", "`allowed`, `required` or `disabled` (RFC 9449)"),
    ("DPOP_ALGORITHMS", "JWS algorithms DPoP proofs may use"),
    (
        "PUBLIC_URL",
        "the origin clients use, which DPoP proofs name",
    ),
    (
        "DPOP_NONCE_SECRET",
        "at least 32 bytes shared by the replicas: DPoP proofs then need a server nonce (5-minute steps)",
    ),
];

/// Why [`TokenGateBuilder::from_env`] refused the environment: every
/// problem found, each naming its variable. Values are never shown (they
/// may be secrets).
///
/// ```
/// // SAFETY: a doctest of its own, nothing else reads the environment.
/// unsafe { std::env::set_var("DOC_ENV_LEEWAY", "a minute") };
/// let err = tokengate::TokenGateBuilder::from_env("DOC_ENV_").unwrap_err();
/// assert_eq!(err.problems()[0].0, "DOC_ENV_LEEWAY");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    problems: Vec<(String, String)>,
}

impl EnvError {
    /// `(variable, what is wrong)`, in the order of [`ENV_VARIABLES`].
    pub fn problems(&self) -> &[(String, String)] {
        &self.problems
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration in the environment:")?;
        for (variable, problem) in &self.problems {
            write!(f, "\n  {variable}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EnvError {}

/// Reads variables under a prefix, collecting problems.
struct Env<'p> {
    prefix: &'p str,
    problems: Vec<(String, String)>,
    lookup: &'p dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn problem(&mut self, name: &str, what: impl Into<String>) {
        self.problems
            .push((format!("{}{name}", self.prefix), what.into()));
    }

    /// The value of `<prefix><name>`, or of the file `<prefix><name>_FILE`
    /// names; both set is a problem.
    fn get(&mut self, name: &str) -> Option<String> {
        let var = format!("{}{name}", self.prefix);
        let direct = (self.lookup)(&var);
        let file = (self.lookup)(&format!("{var}_FILE"));
        match (direct, file) {
            (Some(_), Some(_)) => {
                self.problem(name, format!("set both {var} and {var}_FILE"));
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(path)) => match read_file(&path) {
                Ok(v) => Some(v),
                Err(why) => {
                    self.problems.push((format!("{var}_FILE"), why));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.get(name)?;
        match parse(raw.trim()) {
            Ok(v) => Some(v),
            Err(why) => {
                self.problem(name, why);
                None
            }
        }
    }

    fn list(&mut self, name: &str) -> Option<Vec<String>> {
        let items: Vec<String> = self
            .get(name)?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if items.is_empty() {
            self.problem(name, "is empty");
            return None;
        }
        Some(items)
    }
}

fn read_file(path: &str) -> Result<String, String> {
    // Before opening: opening a FIFO (or a device) for reading may block
    // until someone writes to it, and the build would hang.
    let kind = std::fs::metadata(path).map_err(|e| format!("cannot open the file: {e}"))?;
    if !kind.is_file() {
        return Err("is not a regular file".into());
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the file as UTF-8: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("the file is larger than {MAX_FILE_BYTES} bytes"));
    }
    // A file written by `echo` ends with a newline that is not the secret's.
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// `90`, `90s`, `500ms`, `2m`, `1h`: a number and an optional unit.
fn duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| "must be a duration such as 30s, 500ms, 5m or 1h".to_owned())?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => 60,
        "h" => 3600,
        _ => return Err("must be a duration such as 30s, 500ms, 5m or 1h".into()),
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| "is too long".into())
}

/// `65536`, `64KiB`, `16MiB`, `1GiB`.
fn bytes(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| "must be a size such as 65536, 64KiB or 16MiB".to_owned())?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err("must be a size such as 65536, 64KiB or 16MiB".into()),
    };
    n.checked_mul(scale).ok_or_else(|| "is too large".into())
}

fn count(s: &str) -> Result<usize, String> {
    s.parse().map_err(|_| "must be a whole number".into())
}

fn algorithms(s: &str) -> Result<Vec<Algorithm>, String> {
    let algs: Option<Vec<Algorithm>> = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|a| !a.is_empty())
        .map(parse_alg)
        .collect();
    match algs {
        Some(algs) if !algs.is_empty() => Ok(algs),
        _ => Err("must list JWS algorithms such as ES256 RS256".into()),
    }
}

impl TokenGateBuilder {
    /// A builder configured from the environment variables named
    /// `prefix` + each name of [`ENV_VARIABLES`] (e.g. `TOKENGATE_ISSUER`):
    /// what is unset keeps its default, and the builder can be adjusted
    /// further before [`build`](Self::build).
    ///
    /// - Any variable may instead be given as `<NAME>_FILE`, the path of a
    ///   regular file (at most 64 KiB; a trailing newline is dropped), for
    ///   secrets mounted by Kubernetes or Docker. Setting both is an error.
    /// - Parsing is strict: booleans are `true`/`false` (or `1`/`0`,
    ///   `yes`/`no`, `on`/`off`), durations a number with `ms`, `s`, `m` or
    ///   `h` (bare: seconds), sizes a number with `KiB`, `MiB` or `GiB`
    ///   (bare: bytes). Anything else is an error naming the variable.
    /// - Every problem is reported at once ([`EnvError::problems`]), and no
    ///   value is ever shown in it.
    /// - Variables with the prefix that it does not know are left alone, so
    ///   an application can keep its own (`TOKENGATE_LISTEN`, say).
    ///
    /// ```
    /// // SAFETY: a doctest of its own, nothing else reads the environment.
    /// unsafe {
    ///     std::env::set_var("DOC_TG_ISSUER", "https://a.example https://b.example");
    ///     std::env::set_var("DOC_TG_AUDIENCE", "https://api.example.com");
    ///     std::env::set_var("DOC_TG_LEEWAY", "30s");
    /// }
    /// let builder = tokengate::TokenGateBuilder::from_env("DOC_TG_")?;
    /// # drop(builder);
    /// # Ok::<(), tokengate::EnvError>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<TokenGateBuilder, EnvError> {
        Self::from_lookup(prefix, &|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables, for
    /// tests and for configuration kept elsewhere.
    ///
    /// ```
    /// let vars = std::collections::HashMap::from([("TG_STRICT_RFC9068", "maybe")]);
    /// let err = tokengate::TokenGateBuilder::from_lookup("TG_", &|name| {
    ///     vars.get(name).map(|v| v.to_string())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.problems()[0].0, "TG_STRICT_RFC9068");
    /// ```
    pub fn from_lookup(
        prefix: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<TokenGateBuilder, EnvError> {
        let mut env = Env {
            prefix,
            problems: Vec::new(),
            lookup,
        };
        let mut b = TokenGateBuilder::default();
        if let Some(issuers) = env.list("ISSUER") {
            b = b.issuers(issuers);
        }
        if let Some(audiences) = env.list("AUDIENCE") {
            for audience in audiences {
                b = b.audience(audience);
            }
        }
        if let Some(resource) = env.get("RESOURCE") {
            b = b.resource(resource.trim());
        }
        match (env.get("CLIENT_ID"), env.get("CLIENT_SECRET")) {
            (Some(id), Some(secret)) => b = b.introspection_credentials(id.trim(), secret),
            (Some(_), None) => env.problem("CLIENT_SECRET", "is required with CLIENT_ID"),
            (None, Some(_)) => env.problem("CLIENT_ID", "is required with CLIENT_SECRET"),
            (None, None) => {}
        }
        if let Some(url) = env.get("INTROSPECTION_ENDPOINT") {
            b = b.introspection_endpoint(url.trim());
        }
        if let Some(mode) = env.parsed("INTROSPECTION_MODE", |s| match s {
            "opaque" => Ok(IntrospectionMode::OpaqueOnly),
            "all" => Ok(IntrospectionMode::All),
            "off" => Ok(IntrospectionMode::Off),
            _ => Err("must be opaque, all or off".to_owned()),
        }) {
            b = b.introspection_mode(mode);
        }
        if let Some(url) = env.get("JWKS_URI") {
            b = b.jwks_uri(url.trim());
        }
        if let Some(algs) = env.parsed("ALGORITHMS", algorithms) {
            b = b.algorithms(algs);
        }
        if let Some(d) = env.parsed("LEEWAY", duration) {
            b = b.leeway(d);
        }
        if let Some(on) = env.parsed("STRICT_RFC9068", boolean) {
            b = b.strict_rfc9068(on);
        }
        if let Some(n) = env.parsed("MAX_TOKEN_LENGTH", count) {
            b = b.max_token_length(n);
        }
        if let Some(on) = env.parsed("ALLOW_QUERY_TOKEN", boolean) {
            b = b.allow_query_token(on);
        }
        if let Some(realm) = env.get("REALM") {
            b = b.realm(realm);
        }
        if let Some(detail) = env.parsed("ERROR_DETAIL", |s| match s {
            "describe" => Ok(ErrorDetail::Describe),
            "terse" => Ok(ErrorDetail::Terse),
            _ => Err("must be describe or terse".to_owned()),
        }) {
            b = b.error_detail(detail);
        }
        if let Some(d) = env.parsed("RETRY_AFTER", duration) {
            b = b.retry_after(d);
        }
        if let Some(d) = env.parsed("CONNECT_TIMEOUT", duration) {
            b = b.connect_timeout(d);
        }
        if let Some(d) = env.parsed("TIMEOUT", duration) {
            b = b.timeout(d);
        }
        if let Some(n) = env.parsed("MAX_RESPONSE_BYTES", bytes) {
            match usize::try_from(n) {
                Ok(n) => b = b.max_response_bytes(n),
                Err(_) => env.problem("MAX_RESPONSE_BYTES", "is too large"),
            }
        }
        if let Some(d) = env.parsed("JWKS_TTL", duration) {
            b = b.jwks_ttl(d);
        }
        if let Some(d) = env.parsed("JWKS_MAX_STALE", duration) {
            b = b.jwks_max_stale(d);
        }
        if let Some(on) = env.parsed("REQUIRE_KEYS_AT_STARTUP", boolean) {
            b = b.require_keys_at_startup(on);
        }
        if let Some(n) = env.parsed("VERIFIED_TOKEN_CACHE_BYTES", bytes) {
            b = b.verified_token_cache_bytes(n);
        }
        if let Some(n) = env.parsed("INTROSPECTION_CACHE_BYTES", bytes) {
            b = b.introspection_cache_bytes(n);
        }
        if let Some(d) = env.parsed("INTROSPECTION_CACHE_TTL", duration) {
            b = b.introspection_cache_ttl(d);
        }
        if let Some(d) = env.parsed("INTROSPECTION_INACTIVE_TTL", duration) {
            b = b.introspection_inactive_ttl(d);
        }
        if let Some(n) = env.parsed("INTROSPECTION_CONCURRENCY", count) {
            b = b.introspection_concurrency(n);
        }
        if let Some(n) = env.parsed("INTROSPECTION_QUEUE", count) {
            b = b.introspection_queue(n);
        }
        if let Some(scopes) = env.list("SCOPES_SUPPORTED") {
            b = b.scopes_supported(scopes);
        }
        if let Some(scopes) = env.list("CHALLENGE_SCOPE") {
            b = b.challenge_scope(scopes);
        }
        if let Some(name) = env.get("RESOURCE_NAME") {
            b = b.resource_name(name);
        }
        if let Some(on) = env.parsed("METADATA_AT_ROOT", boolean) {
            b = b.metadata_at_root(on);
        }
        if let Some(mode) = env.parsed("DPOP", |s| match s {
            "allowed" => Ok(crate::dpop::DpopMode::Allowed),
            "required" => Ok(crate::dpop::DpopMode::Required),
            "disabled" => Ok(crate::dpop::DpopMode::Disabled),
            _ => Err("must be allowed, required or disabled".to_owned()),
        }) {
            b = b.dpop(mode);
        }
        if let Some(algs) = env.parsed("DPOP_ALGORITHMS", algorithms) {
            b = b.dpop_algorithms(algs);
        }
        if let Some(url) = env.get("PUBLIC_URL") {
            b = b.public_url(url.trim());
        }
        if let Some(secret) = env.get("DPOP_NONCE_SECRET") {
            b = b.dpop_nonce(secret.as_bytes(), std::time::Duration::from_secs(300));
        }
        if env.problems.is_empty() {
            Ok(b)
        } else {
            Err(EnvError {
                problems: env.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_strictly() {
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "1.5s",
            "-1",
            "1 s",
            "1d",
            "ten",
            "99999999999999999999",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(bytes("65536"), Ok(65536));
        assert_eq!(bytes("64KiB"), Ok(65536));
        assert_eq!(bytes("16MiB"), Ok(16 << 20));
        for bad in ["", "1KB", "1 MiB", "1.5MiB", "-1", "99999999999GiB"] {
            assert!(bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(boolean("true"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("True").is_err());
        assert!(boolean("").is_err());
        assert_eq!(
            algorithms("ES256, RS256"),
            Ok(vec![Algorithm::ES256, Algorithm::RS256])
        );
        assert!(algorithms("ES256 none").is_err());
        assert!(algorithms(" ").is_err());
    }
}
