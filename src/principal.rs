//! The authenticated caller: what a verified token says about who is calling
//! and what it may do. Built in one place for JWT claims (RFC 7519 §4.1,
//! RFC 9068 §2.2) and introspection answers (RFC 7662 §2.2) alike, from the
//! claims' JSON text read by [`crate::token::claims::Registered`].

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::InvalidToken;
use crate::requirement::roles::{RoleSource, Roles};
use crate::scope::Scopes;
use crate::token::claims::{Registered, Str};

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

// A principal keeps the claims' JSON text and where in it the claims it
// exposes lie: building one on every first-seen token then costs no copy of
// each claim, and a cached one holds little more than the text. The full
// claims map is parsed only if a handler asks for it.
struct Inner {
    json: Box<str>,
    /// Parsed from `json` on first use.
    claims: OnceLock<Map<String, Value>>,
    issuer: Option<Text>,
    subject: Option<Text>,
    client_id: Option<Text>,
    username: Option<Text>,
    token_id: Option<Text>,
    audiences: Vec<String>,
    scopes: Scopes,
    /// Read from the gate's role sources when the token was verified.
    roles: Roles,
    /// `cnf.jkt`: the DPoP key the token is bound to.
    jkt: Option<Box<str>>,
    /// `cnf["x5t#S256"]`: the client certificate it is bound to.
    x5t_s256: Option<Box<str>>,
    expires_at: Option<u64>,
    issued_at: Option<u64>,
    source: TokenSource,
}

/// A string claim: where it lies in the JSON text, or its unescaped copy.
enum Text {
    Span(usize, usize),
    Owned(Box<str>),
}

impl Text {
    fn new(s: &Str<'_>, json: &str) -> Text {
        match &s.0 {
            // Borrowed strings point into `json`: keep the offsets, which
            // stay valid when the text moves. Should one ever point elsewhere,
            // a copy is kept instead of a wrong span.
            Cow::Borrowed(b) => (b.as_ptr() as usize)
                .checked_sub(json.as_ptr() as usize)
                .filter(|&start| json.get(start..start + b.len()) == Some(*b))
                .map_or_else(
                    || Text::Owned((*b).into()),
                    |start| Text::Span(start, start + b.len()),
                ),
            Cow::Owned(o) => Text::Owned(o.as_str().into()),
        }
    }

    fn get<'j>(&'j self, json: &'j str) -> &'j str {
        match self {
            Text::Span(start, end) => &json[*start..*end],
            Text::Owned(s) => s,
        }
    }
}

impl Principal {
    /// Builds a principal from a JSON object of claims (a JWT payload or an
    /// introspection answer), checking the types of the claims it reads.
    ///
    /// Read: `iss`, `sub`, `client_id` (else `azp`, else `cid`), `username`,
    /// `aud` (string or array of strings), `scope` (a space-separated string)
    /// or else `scp` (a string or an array of strings), `exp`, `iat`, `jti`.
    /// A claim of the wrong JSON type is an error
    /// ([`InvalidToken::MalformedClaim`]): a token whose meaning is in doubt
    /// is refused, not half-read.
    ///
    /// This does not verify anything: the layer or the introspection path
    /// does that before calling it. It is public so that tests and custom
    /// verifiers can build principals.
    pub fn from_claims(
        claims: Map<String, Value>,
        source: TokenSource,
    ) -> Result<Self, InvalidToken> {
        Self::from_claims_with_roles(claims, source, &[])
    }

    /// [`from_claims`](Self::from_claims), with the roles `sources` name
    /// (see [`RoleSource`]).
    ///
    /// ```
    /// use tokengate::{Principal, RoleSource, TokenSource};
    /// let claims = serde_json::json!({"realm_access": {"roles": ["auditor"]}});
    /// let p = Principal::from_claims_with_roles(
    ///     claims.as_object().unwrap().clone(),
    ///     TokenSource::Jwt,
    ///     &[RoleSource::keycloak_realm()],
    /// )
    /// .unwrap();
    /// assert!(p.roles().contains("auditor"));
    /// ```
    pub fn from_claims_with_roles(
        claims: Map<String, Value>,
        source: TokenSource,
        roles: &[RoleSource],
    ) -> Result<Self, InvalidToken> {
        let json = serde_json::to_string(&claims).map_err(|_| InvalidToken::Malformed)?;
        let roles = Roles::read(&claims, roles);
        let principal = Principal::build(json, source, roles, |_| Ok(()))?;
        let _ = principal.inner.claims.set(claims);
        Ok(principal)
    }

    /// Builds a principal from the JSON text of a claims object, once
    /// `check` has accepted its registered claims.
    pub(crate) fn from_json(
        json: String,
        source: TokenSource,
        roles: &[RoleSource],
        check: impl FnOnce(&Registered<'_>) -> Result<(), InvalidToken>,
    ) -> Result<Self, InvalidToken> {
        if roles.is_empty() {
            return Self::build(json, source, Roles::default(), check);
        }
        // Roles are read once, here, and cached with the principal; the
        // claims map they are read from is kept for the handlers.
        let claims: Map<String, Value> =
            serde_json::from_str(&json).map_err(|_| InvalidToken::Malformed)?;
        let principal = Self::build(json, source, Roles::read(&claims, roles), check)?;
        let _ = principal.inner.claims.set(claims);
        Ok(principal)
    }

    fn build(
        json: String,
        source: TokenSource,
        roles: Roles,
        check: impl FnOnce(&Registered<'_>) -> Result<(), InvalidToken>,
    ) -> Result<Self, InvalidToken> {
        let registered = Registered::parse(&json)?;
        check(&registered)?;
        let text = |s: &Option<Str<'_>>| s.as_ref().map(|s| Text::new(s, &json));
        let inner = Inner {
            issuer: text(&registered.iss),
            subject: text(&registered.sub),
            client_id: registered.client().map(|s| Text::new(s, &json)),
            username: text(&registered.username),
            token_id: text(&registered.jti),
            audiences: registered.aud.iter().map(str::to_owned).collect(),
            scopes: registered.scopes()?,
            roles,
            jkt: registered.jkt().map(Box::from),
            x5t_s256: registered.x5t_s256().map(Box::from),
            expires_at: registered.exp,
            issued_at: registered.iat,
            source,
            claims: OnceLock::new(),
            json: Box::default(),
        };
        drop(registered);
        Ok(Principal {
            inner: Arc::new(Inner {
                json: json.into_boxed_str(),
                ..inner
            }),
        })
    }

    fn text<'p>(&'p self, t: &'p Option<Text>) -> Option<&'p str> {
        t.as_ref().map(|t| t.get(&self.inner.json))
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> Option<&str> {
        self.text(&self.inner.issuer)
    }

    /// The subject (`sub`). Client-credentials tokens often have none, or
    /// the client id.
    pub fn subject(&self) -> Option<&str> {
        self.text(&self.inner.subject)
    }

    /// The OAuth client the token was issued to: `client_id` (RFC 9068,
    /// RFC 7662), else `azp` (OpenID Connect, Keycloak, Entra v2), else
    /// `cid` (Okta), else `appid` (Entra v1).
    pub fn client_id(&self) -> Option<&str> {
        self.text(&self.inner.client_id)
    }

    /// The human-readable `username`, when introspection reports one.
    pub fn username(&self) -> Option<&str> {
        self.text(&self.inner.username)
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

    pub(crate) fn issued_at_secs(&self) -> Option<u64> {
        self.inner.issued_at
    }

    /// The roles the gate's [`roles_from`](crate::TokenGateBuilder::roles_from)
    /// sources name in the token (or introspection answer): Keycloak's
    /// realm or client roles, Entra ID app roles, Auth0 permissions, Okta
    /// groups… Read once, when the token was verified. Empty when no source
    /// is configured.
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// # let p = Principal::from_claims(serde_json::Map::new(), TokenSource::Jwt).unwrap();
    /// assert!(p.roles().is_empty());
    /// ```
    pub fn roles(&self) -> &Roles {
        &self.inner.roles
    }

    /// The RFC 7638 thumbprint of the key the token is bound to (`cnf.jkt`,
    /// RFC 9449 §6): a DPoP-bound token, which the layer accepted only with
    /// a proof signed by that key. `None` for a bearer token.
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// # let p = Principal::from_claims(serde_json::Map::new(), TokenSource::Jwt).unwrap();
    /// assert_eq!(p.dpop_thumbprint(), None);
    /// ```
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.inner.jkt.as_deref()
    }

    /// The base64url SHA-256 of the client certificate the token is bound
    /// to (`cnf["x5t#S256"]`, RFC 8705 §3.1): the layer accepted it only on
    /// a request whose [`ClientCertificate`](crate::mtls::ClientCertificate)
    /// has that thumbprint. `None` for a token not bound to a certificate.
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// # let p = Principal::from_claims(serde_json::Map::new(), TokenSource::Jwt).unwrap();
    /// assert_eq!(p.certificate_thumbprint(), None);
    /// ```
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.inner.x5t_s256.as_deref()
    }

    /// The token's unique id (`jti`).
    pub fn token_id(&self) -> Option<&str> {
        self.text(&self.inner.token_id)
    }

    /// How the token was verified.
    pub fn source(&self) -> TokenSource {
        self.inner.source
    }

    /// Every claim of the token (or field of the introspection answer).
    /// Parsed from the claims' text on the first call for this token. Each
    /// holds the one value the token gave it: a token or answer that names
    /// a claim twice is refused before a principal is built.
    pub fn claims(&self) -> &Map<String, Value> {
        self.inner.claims.get_or_init(|| {
            // The text was read as an object, within the nesting limit,
            // when the principal was built: this cannot fail.
            let parsed = serde_json::from_str(&self.inner.json);
            debug_assert!(parsed.is_ok(), "claims text no longer parses");
            parsed.unwrap_or_default()
        })
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
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
        serde_json::from_str(&self.inner.json)
    }

    /// Whether the token was issued to a client acting for itself (the
    /// client-credentials grant), not to a user: it has a client id, and
    /// either no subject or a subject equal to the client id (RFC 9068
    /// §2.2, Okta, oidc-provider) — or the server says so in its own claim,
    /// for servers whose machine tokens carry a subject of their own: Auth0
    /// (`gty: "client-credentials"`) and Microsoft Entra ID (`idtyp:
    /// "app"`, an optional claim to turn on).
    ///
    /// ```
    /// # use tokengate::{Principal, TokenSource};
    /// # let p = |v: serde_json::Value| Principal::from_claims(v.as_object().unwrap().clone(), TokenSource::Jwt).unwrap();
    /// assert!(p(serde_json::json!({"client_id": "billing", "sub": "billing"})).is_client_credentials());
    /// assert!(p(serde_json::json!({"azp": "billing", "sub": "billing@clients", "gty": "client-credentials"})).is_client_credentials());
    /// assert!(!p(serde_json::json!({"client_id": "web", "sub": "alice"})).is_client_credentials());
    /// ```
    pub fn is_client_credentials(&self) -> bool {
        let Some(client) = self.client_id() else {
            return false;
        };
        let says =
            |name: &str, value: &str| self.claim(name).and_then(Value::as_str) == Some(value);
        match self.subject() {
            None => true,
            Some(sub) => sub == client || says("gty", "client-credentials") || says("idtyp", "app"),
        }
    }
}

impl fmt::Debug for Principal {
    // Claims are left out, and the subject is only said to be there: they
    // identify people, and `Debug` output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("issuer", &self.issuer())
            .field("subject", &self.subject().map(|_| "<redacted>"))
            .field("client_id", &self.client_id())
            .field("scopes", &self.inner.scopes)
            .field("roles", &self.inner.roles.len())
            .field("expires_at", &self.inner.expires_at)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// What an entry costs besides the claims it holds: moka's bookkeeping
/// (its entry, access-order and timer nodes, the hash table slot), the key
/// hash, the principal's fields and reference counts. Measured with a
/// counting allocator in `benches/memory.rs` (which prints this estimate
/// next to the measured figure).
pub(crate) const ENTRY_OVERHEAD: usize = 750;

/// An entry's weight in bytes: the fixed overhead, the claims' JSON text
/// (`claims_text` bytes) and what the principal copies out of it (audiences,
/// scopes). Saturates at moka's `u32`.
pub(crate) fn cache_weight(principal: &Principal, claims_text: usize) -> u32 {
    let audiences: usize = principal
        .audiences()
        .iter()
        .map(|a| size_of::<String>() + a.len())
        .sum();
    let scopes: usize = principal
        .scopes()
        .iter()
        .map(|s| size_of::<Box<str>>() + s.len())
        .sum();
    let bytes = ENTRY_OVERHEAD
        .saturating_add(claims_text)
        .saturating_add(audiences)
        .saturating_add(scopes);
    u32::try_from(bytes).unwrap_or(u32::MAX)
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
    fn machine_tokens_are_told_from_user_tokens() {
        let cc = |v: Value| principal(v).unwrap().is_client_credentials();
        assert!(cc(json!({"client_id": "svc"})));
        assert!(cc(json!({"client_id": "svc", "sub": "svc"})));
        assert!(cc(
            json!({"azp": "svc", "sub": "svc@clients", "gty": "client-credentials"})
        ));
        assert!(cc(json!({"azp": "svc", "sub": "0b5e", "idtyp": "app"})));
        assert!(!cc(json!({"client_id": "web", "sub": "alice"})));
        assert!(!cc(
            json!({"azp": "web", "sub": "alice", "gty": "password"})
        ));
        assert!(!cc(json!({"sub": "svc"})));
    }

    #[test]
    fn client_id_falls_back_to_azp_then_cid_then_appid() {
        assert_eq!(
            principal(json!({"appid": "w", "sub": "oid"}))
                .unwrap()
                .client_id(),
            Some("w")
        );
        assert_eq!(
            principal(json!({"azp": "x", "appid": "w"}))
                .unwrap()
                .client_id(),
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
    fn debug_leaves_claims_and_the_subject_out() {
        let p = principal(
            json!({"sub": "alice-subject", "client_id": "web", "secret_claim": "s3cr3t"}),
        )
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(
            dbg.contains("\"web\"") && dbg.contains("<redacted>"),
            "{dbg}"
        );
        assert!(
            !dbg.contains("s3cr3t") && !dbg.contains("alice-subject"),
            "{dbg}"
        );
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
