//! The authenticated caller: what a verified token says about who is calling
//! and what it may do. Built in one place ([`Principal::from_claims`]) for
//! JWT claims (RFC 7519 §4.1, RFC 9068 §2.2) and introspection answers
//! (RFC 7662 §2.2) alike.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::InvalidToken;
use crate::scope::Scopes;

/// How the token was verified.
///
/// ```
/// assert_eq!(tokengate::TokenSource::Jwt.as_str(), "jwt");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenSource {
    /// A JWT whose signature was checked against the issuer's keys.
    Jwt,
    /// A token the authorization server vouched for at its introspection
    /// endpoint (RFC 7662).
    Introspection,
}

impl TokenSource {
    /// `"jwt"` or `"introspection"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenSource::Jwt => "jwt",
            TokenSource::Introspection => "introspection",
        }
    }
}

/// The authenticated caller, placed in the request extensions by the layer.
///
/// Cheap to clone (one reference count). It never holds the token itself, so
/// its `Debug` output is safe to log.
///
/// ```
/// use serde_json::json;
/// use tokengate::{Principal, TokenSource};
///
/// let claims = json!({
///     "iss": "https://auth.example.com",
///     "sub": "alice",
///     "client_id": "web-app",
///     "aud": ["https://api.example.com"],
///     "scope": "items:read items:write",
///     "exp": 4102444800u64,
///     "tenant": "acme",
/// });
/// let p = Principal::from_claims(claims.as_object().unwrap().clone(), TokenSource::Jwt).unwrap();
/// assert_eq!(p.subject(), Some("alice"));
/// assert_eq!(p.client_id(), Some("web-app"));
/// assert!(p.scopes().contains("items:write"));
/// assert_eq!(p.claim("tenant").and_then(|v| v.as_str()), Some("acme"));
/// assert!(!p.is_client_credentials());
/// ```
#[derive(Clone)]
pub struct Principal {
    inner: Arc<Inner>,
}

// The string claims (`iss`, `sub`, `jti`, …) are read from `claims` when
// asked for rather than copied out: a principal is built on every first-seen
// token, and the copies would be pure overhead.
struct Inner {
    /// Which claim holds the client id: `client_id`, `azp` or `cid`.
    client_id_claim: Option<&'static str>,
    audiences: Vec<String>,
    scopes: Scopes,
    expires_at: Option<u64>,
    issued_at: Option<u64>,
    source: TokenSource,
    claims: Map<String, Value>,
}

impl Principal {
    /// Builds a principal from a JSON object of claims (a JWT payload or an
    /// introspection answer), checking the types of the claims it reads.
    ///
    /// Read: `iss`, `sub`, `client_id` (else `azp`, else `cid`), `username`,
    /// `aud` (string or array of strings), `scope` or else `scp` (a
    /// space-separated string or an array of strings), `exp`, `iat`, `jti`. A claim of the
    /// wrong JSON type is an error ([`InvalidToken::MalformedClaim`]): a
    /// token whose meaning is in doubt is refused, not half-read.
    ///
    /// This does not validate the token (issuer, audience, expiry): the gate
    /// does that before calling it. It is public so that tests and custom
    /// verifiers can build principals.
    pub fn from_claims(
        claims: Map<String, Value>,
        source: TokenSource,
    ) -> Result<Self, InvalidToken> {
        for name in ["iss", "sub", "username", "jti"] {
            opt_str(&claims, name)?;
        }
        let mut client_id_claim = None;
        for name in ["client_id", "azp", "cid"] {
            if opt_str(&claims, name)?.is_some() {
                client_id_claim = Some(name);
                break;
            }
        }
        let audiences = audiences(&claims)?;
        let scopes = scopes(&claims)?;
        let expires_at = opt_numeric_date(&claims, "exp")?;
        let issued_at = opt_numeric_date(&claims, "iat")?;
        Ok(Principal {
            inner: Arc::new(Inner {
                client_id_claim,
                audiences,
                scopes,
                expires_at,
                issued_at,
                source,
                claims,
            }),
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> Option<&str> {
        self.str_claim("iss")
    }

    /// The subject (`sub`). Client-credentials tokens often have none, or
    /// the client id.
    pub fn subject(&self) -> Option<&str> {
        self.str_claim("sub")
    }

    /// The OAuth client the token was issued to: `client_id` (RFC 9068,
    /// RFC 7662), else `azp` (OpenID Connect, Keycloak, Entra), else `cid`
    /// (Okta).
    pub fn client_id(&self) -> Option<&str> {
        self.str_claim(self.inner.client_id_claim?)
    }

    /// The human-readable `username`, when introspection reports one.
    pub fn username(&self) -> Option<&str> {
        self.str_claim("username")
    }

    /// The audiences (`aud`), as a list even when the token had one string.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.inner.scopes
    }

    /// When the token expires (`exp`).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner
            .expires_at
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// `exp` in seconds since the epoch.
    pub(crate) fn exp_secs(&self) -> Option<u64> {
        self.inner.expires_at
    }

    /// When the token was issued (`iat`).
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.inner
            .issued_at
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// The token's unique id (`jti`).
    pub fn token_id(&self) -> Option<&str> {
        self.str_claim("jti")
    }

    /// A string claim; `from_claims` checked that those we expose are
    /// strings when present.
    fn str_claim(&self, name: &str) -> Option<&str> {
        self.inner.claims.get(name).and_then(Value::as_str)
    }

    /// How the token was verified.
    pub fn source(&self) -> TokenSource {
        self.inner.source
    }

    /// Every claim of the token (or field of the introspection answer).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.inner.claims
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.inner.claims.get(name)
    }

    /// The claims deserialized into your own type.
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// #[derive(serde::Deserialize)]
    /// struct Custom { tenant: String }
    /// # let claims = serde_json::json!({"tenant": "acme"}).as_object().unwrap().clone();
    /// # let principal = Principal::from_claims(claims, TokenSource::Jwt).unwrap();
    /// let custom: Custom = principal.claims_as().unwrap();
    /// assert_eq!(custom.tenant, "acme");
    /// ```
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object(self.inner.claims.clone()))
    }

    /// Whether the token was issued to a client acting for itself (the
    /// client-credentials grant): it has a client id, and either no subject
    /// or a subject equal to the client id.
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// let claims = serde_json::json!({"client_id": "billing", "sub": "billing"});
    /// let p = Principal::from_claims(claims.as_object().unwrap().clone(), TokenSource::Jwt).unwrap();
    /// assert!(p.is_client_credentials());
    /// ```
    pub fn is_client_credentials(&self) -> bool {
        match (self.client_id(), self.subject()) {
            (Some(_), None) => true,
            (Some(client), Some(sub)) => client == sub,
            (None, _) => false,
        }
    }
}

impl fmt::Debug for Principal {
    // Claims are left out: they may hold personal data, and `Debug` output
    // ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("issuer", &self.issuer())
            .field("subject", &self.subject())
            .field("client_id", &self.client_id())
            .field("scopes", &self.inner.scopes)
            .field("expires_at", &self.inner.expires_at)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

fn opt_str<'c>(
    claims: &'c Map<String, Value>,
    name: &str,
) -> Result<Option<&'c str>, InvalidToken> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(InvalidToken::MalformedClaim),
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds, possibly fractional.
/// Strings, negative numbers and values past year 9999 are refused. Fractions
/// are dropped, which only makes `exp` earlier.
pub(crate) fn opt_numeric_date(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<u64>, InvalidToken> {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let secs = match (n.as_u64(), n.as_f64()) {
                (Some(u), _) => u,
                (None, Some(f)) if f.is_finite() && f >= 0.0 && f <= MAX as f64 => f as u64,
                _ => return Err(InvalidToken::MalformedClaim),
            };
            if secs > MAX {
                return Err(InvalidToken::MalformedClaim);
            }
            Ok(Some(secs))
        }
        Some(_) => Err(InvalidToken::MalformedClaim),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, InvalidToken> {
    match claims.get("aud") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(InvalidToken::MalformedClaim),
            })
            .collect(),
        Some(_) => Err(InvalidToken::MalformedClaim),
    }
}

fn scopes(claims: &Map<String, Value>) -> Result<Scopes, InvalidToken> {
    // `scope` (RFC 9068 §2.2.3, RFC 8693 §4.2) is one space-separated
    // string; `scp` (Entra, Okta) is read only when `scope` is absent, as a
    // string or an array of scope tokens. Any other shape is doubt, refused.
    let bad = |_| InvalidToken::MalformedClaim;
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => Scopes::parse(s).map_err(bad),
        (Some(Value::Null) | None, None | Some(Value::Null)) => Ok(Scopes::default()),
        (Some(Value::Null) | None, Some(Value::String(s))) => Scopes::parse(s).map_err(bad),
        (Some(Value::Null) | None, Some(Value::Array(items))) => {
            let mut tokens = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => tokens.push(s.as_str()),
                    _ => return Err(InvalidToken::MalformedClaim),
                }
            }
            Scopes::try_from_iter(tokens).map_err(bad)
        }
        _ => Err(InvalidToken::MalformedClaim),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(v: Value) -> Result<Principal, InvalidToken> {
        Principal::from_claims(v.as_object().unwrap().clone(), TokenSource::Jwt)
    }

    #[test]
    fn reads_scope_from_scope_or_scp() {
        let p = principal(json!({"scope": "a b"})).unwrap();
        assert!(p.scopes().contains_all(["a", "b"]));
        let p = principal(json!({"scp": ["a", "b"]})).unwrap();
        assert!(p.scopes().contains_all(["a", "b"]));
        let p = principal(json!({"scp": "a b"})).unwrap();
        assert!(p.scopes().contains_all(["a", "b"]));
        let p = principal(json!({"scope": "a b", "scp": "c"})).unwrap();
        assert!(p.scopes().contains_all(["a", "b"]) && !p.scopes().contains("c"));
        assert!(principal(json!({})).unwrap().scopes().is_empty());
    }

    #[test]
    fn scope_of_the_wrong_type_is_refused() {
        for v in [
            json!({"scope": [1]}),
            json!({"scope": ["a"]}),
            json!({"scope": 1}),
            json!({"scp": [1]}),
            json!({"scp": {"a": 1}}),
            json!({"scope": "a \"b\""}),
        ] {
            assert_eq!(
                principal(v.clone()).unwrap_err(),
                InvalidToken::MalformedClaim,
                "{v}"
            );
        }
    }

    #[test]
    fn client_id_falls_back_to_azp_then_cid() {
        assert_eq!(
            principal(json!({"azp": "x"})).unwrap().client_id(),
            Some("x")
        );
        assert_eq!(
            principal(json!({"cid": "y"})).unwrap().client_id(),
            Some("y")
        );
        assert_eq!(
            principal(json!({"client_id": "z", "azp": "x"}))
                .unwrap()
                .client_id(),
            Some("z")
        );
    }

    #[test]
    fn audience_may_be_string_or_array() {
        assert_eq!(principal(json!({"aud": "a"})).unwrap().audiences(), ["a"]);
        assert_eq!(
            principal(json!({"aud": ["a", "b"]})).unwrap().audiences(),
            ["a", "b"]
        );
        assert!(principal(json!({"aud": [1]})).is_err());
        assert!(principal(json!({"aud": 1})).is_err());
    }

    #[test]
    fn numeric_dates_refuse_strings_negatives_and_absurd_values() {
        assert_eq!(principal(json!({"exp": 10})).unwrap().exp_secs(), Some(10));
        assert_eq!(
            principal(json!({"exp": 10.9})).unwrap().exp_secs(),
            Some(10)
        );
        for v in [
            json!("10"),
            json!(-1),
            json!(1e300),
            json!(u64::MAX),
            json!(true),
        ] {
            assert!(principal(json!({ "exp": v })).is_err(), "{v}");
        }
    }

    #[test]
    fn debug_leaves_claims_out() {
        let p = principal(json!({"sub": "a", "secret_claim": "s3cr3t"})).unwrap();
        let dbg = format!("{p:?}");
        assert!(dbg.contains("\"a\""));
        assert!(!dbg.contains("s3cr3t"));
    }

    #[test]
    fn client_credentials_is_told_from_a_user() {
        assert!(
            principal(json!({"client_id": "c"}))
                .unwrap()
                .is_client_credentials()
        );
        assert!(
            !principal(json!({"client_id": "c", "sub": "alice"}))
                .unwrap()
                .is_client_credentials()
        );
        assert!(
            !principal(json!({"sub": "alice"}))
                .unwrap()
                .is_client_credentials()
        );
    }
}
