//! The claims tokengate reads, and the rules they must pass: RFC 7519 §4.1
//! (registered claims), RFC 9068 §2.2 (JWT access tokens) and RFC 7662 §2.2
//! (introspection answers). One parser and one set of rules for both
//! sources of claims.
//!
//! The JSON object is read once, into [`Registered`], borrowing its strings
//! from the text wherever they have no escapes: the claims a service never
//! asks for cost no allocation. A claim of the wrong JSON type fails the
//! parse and is reported as [`InvalidToken::MalformedClaim`]: a token whose
//! meaning is in doubt is refused, not half-read. An object with any member
//! twice, registered or not, is not one that every reader reads alike: it
//! is [`InvalidToken::Malformed`].

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::InvalidToken;
use crate::keys::AlgorithmSet;
use crate::requirement::roles::RoleSource;
use crate::scope::Scopes;

/// What claims must satisfy, whether from a JWT or an introspection answer.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub(crate) issuer: String,
    /// The gate's other trusted issuers, which an introspection answer's
    /// `iss` may name too (RFC 7662 cannot tell the issuer of an opaque
    /// token beforehand). A JWT's `iss` must be `issuer` itself.
    pub(crate) other_issuers: std::sync::Arc<[String]>,
    /// A multi-tenant issuer (Entra ID): `issuer` is a template, and `iss`
    /// must be it with the token's `tid` filled in.
    pub(crate) tenants: Option<std::sync::Arc<TenantRule>>,
    /// Empty only when the user opted out of audience checks by name.
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway_secs: u64,
    /// RFC 9068 strictly: `typ` must be `at+jwt` and §2.2's claims present.
    pub(crate) strict_rfc9068: bool,
    /// The JWS algorithms accepted at all (each key narrows them further).
    pub(crate) algorithms: AlgorithmSet,
    /// Where the principal's roles are read from (none: no roles).
    pub(crate) roles: std::sync::Arc<[RoleSource]>,
    /// DPoP is not disabled: tokens bound to a DPoP key are accepted here
    /// (their proof is the layer's to check).
    pub(crate) dpop: bool,
}

/// A multi-tenant issuer: an identifier template with `{tenantid}` (Entra
/// ID's `https://login.microsoftonline.com/{tenantid}/v2.0`), filled with
/// the token's `tid`, and optionally the tenants let in.
#[derive(Debug, Clone)]
pub(crate) struct TenantRule {
    pub(crate) template: String,
    /// `None`: every tenant.
    pub(crate) allowed: Option<Vec<String>>,
}

/// The placeholder of a tenant template.
pub(crate) const TENANT_ID: &str = "{tenantid}";

impl TenantRule {
    /// A tenant id: letters, digits, `-`, `.`, `_`, 1 to 64 bytes.
    pub(crate) fn plausible(tid: &str) -> bool {
        !tid.is_empty()
            && tid.len() <= 64
            && tid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    }

    /// Whether `iss` is the template filled with `tid`, a plausible tenant
    /// id (letters, digits, `-`, `.`, `_`: GUIDs and domain-style ids,
    /// nothing that could change the URL's structure) that is allowed.
    pub(crate) fn admits(&self, iss: &str, tid: Option<&str>) -> bool {
        let Some(tid) = tid else {
            return false;
        };
        Self::plausible(tid)
            && self
                .allowed
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|t| t == tid))
            && fills(&self.template, tid, iss)
    }
}

/// Whether `template` with every `{tenantid}` replaced by `tid` is `iss`,
/// without building the string.
fn fills(template: &str, tid: &str, iss: &str) -> bool {
    let mut rest = iss;
    let mut parts = template.split(TENANT_ID).peekable();
    while let Some(part) = parts.next() {
        let Some(after) = rest.strip_prefix(part) else {
            return false;
        };
        rest = after;
        if parts.peek().is_some() {
            let Some(after) = rest.strip_prefix(tid) else {
                return false;
            };
            rest = after;
        }
    }
    rest.is_empty()
}

#[cfg(test)]
impl ClaimRules {
    /// The rules unit tests start from: issuer `https://as`, audience `api`,
    /// 60 s leeway, RFC 9068 not enforced, every asymmetric algorithm.
    pub(crate) fn for_tests() -> ClaimRules {
        ClaimRules {
            issuer: "https://as".into(),
            other_issuers: std::sync::Arc::new([]),
            tenants: None,
            audiences: vec!["api".into()],
            leeway_secs: 60,
            strict_rfc9068: false,
            algorithms: AlgorithmSet::ASYMMETRIC,
            roles: std::sync::Arc::new([]),
            dpop: false,
        }
    }
}

/// The claims we read from a JSON object of claims (a JWT payload or an
/// introspection answer). Every other member is checked to be JSON that any
/// reader can represent (numbers in range, no lone surrogates, nesting
/// within the limit), without being kept: a token is accepted only if all
/// of its claims can be read later through
/// [`Principal::claims`](crate::Principal::claims).
#[derive(Default)]
pub(crate) struct Registered<'a> {
    /// `iss`: a string when present (`null` is malformed).
    pub(crate) iss: Option<Str<'a>>,
    pub(crate) sub: Option<Str<'a>>,
    pub(crate) aud: Strings<'a>,
    pub(crate) exp: Option<u64>,
    pub(crate) nbf: Option<u64>,
    pub(crate) iat: Option<u64>,
    pub(crate) jti: Option<Str<'a>>,
    pub(crate) client_id: Option<Str<'a>>,
    /// OpenID Connect's authorized party (Keycloak, Entra).
    pub(crate) azp: Option<Str<'a>>,
    /// Okta's client id.
    pub(crate) cid: Option<Str<'a>>,
    /// Entra ID v1's client id.
    pub(crate) appid: Option<Str<'a>>,
    pub(crate) username: Option<Str<'a>>,
    /// Entra ID's tenant id.
    pub(crate) tid: Option<Str<'a>>,
    /// RFC 6749 §3.3 scope string (RFC 9068 §2.2.3, RFC 8693 §4.2).
    pub(crate) scope: Option<Str<'a>>,
    /// Entra's and Okta's scopes: a string or an array of strings.
    pub(crate) scp: Strings<'a>,
    /// RFC 7800 confirmation (present and not `null`): the token is bound
    /// to a key. Kept whole: it is small, and DPoP reads its `jkt`.
    pub(crate) cnf: Option<Value>,
    /// Claims only an OpenID Connect ID token carries (`nonce`, `at_hash`,
    /// `c_hash`), present with any value. `auth_time` is not one: RFC 9068
    /// §2.2.1 allows it in access tokens.
    pub(crate) id_token_claims: bool,
    // Introspection answers: what the server says the token is.
    pub(crate) token_type: Option<Value>,
    pub(crate) token_use: Option<Value>,
    pub(crate) typ: Option<Value>,
    /// A member name appeared twice; [`Registered::parse`] refuses it.
    duplicate: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Registered<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RegisteredVisitor)
    }
}

struct RegisteredVisitor;

impl<'de> Visitor<'de> for RegisteredVisitor {
    type Value = Registered<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut r = Registered::default();
        // Any member twice refuses the object (RFC 7519 §4 allows refusing
        // or last-wins; a JSON reader that kept the first would see another
        // token). Registered claims are tracked by bit; the others, usually
        // a handful, are compared once all are read.
        let (mut seen, mut duplicate) = (0u32, false);
        let mut others: Vec<Str<'de>> = Vec::new();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let mut once = |bit: u32| {
                duplicate |= seen & (1 << bit) != 0;
                seen |= 1 << bit;
            };
            match key.as_str() {
                "iss" => {
                    once(0);
                    r.iss = Some(map.next_value()?);
                }
                "sub" => {
                    once(1);
                    r.sub = map.next_value()?;
                }
                "aud" => {
                    once(2);
                    r.aud = map.next_value()?;
                }
                "exp" => {
                    once(3);
                    r.exp = Some(map.next_value::<NumericDate>()?.0);
                }
                "nbf" => {
                    once(4);
                    r.nbf = Some(map.next_value::<NumericDate>()?.0);
                }
                "iat" => {
                    once(5);
                    r.iat = Some(map.next_value::<NumericDate>()?.0);
                }
                "jti" => {
                    once(6);
                    r.jti = map.next_value()?;
                }
                "client_id" => {
                    once(7);
                    r.client_id = map.next_value()?;
                }
                "azp" => {
                    once(8);
                    r.azp = map.next_value()?;
                }
                "cid" => {
                    once(9);
                    r.cid = map.next_value()?;
                }
                "appid" => {
                    once(10);
                    r.appid = map.next_value()?;
                }
                "username" => {
                    once(11);
                    r.username = map.next_value()?;
                }
                "scope" => {
                    once(12);
                    r.scope = map.next_value()?;
                }
                "scp" => {
                    once(13);
                    r.scp = map.next_value()?;
                }
                "cnf" => {
                    once(14);
                    r.cnf = map.next_value::<Option<Value>>()?;
                }
                "nonce" | "at_hash" | "c_hash" => {
                    map.next_value::<Checked>()?;
                    r.id_token_claims = true;
                    others.push(key);
                }
                "token_type" => {
                    once(15);
                    r.token_type = map.next_value()?;
                }
                "token_use" => {
                    once(16);
                    r.token_use = map.next_value()?;
                }
                "typ" => {
                    once(17);
                    r.typ = map.next_value()?;
                }
                "tid" => {
                    once(18);
                    r.tid = map.next_value()?;
                }
                _ => {
                    map.next_value::<Checked>()?;
                    others.push(key);
                }
            }
        }
        if others.len() > 1 {
            others.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
            duplicate |= others.windows(2).any(|w| w[0].as_str() == w[1].as_str());
        }
        r.duplicate = duplicate;
        Ok(r)
    }
}

/// Any JSON value, walked through and dropped: it must be representable
/// (serde_json refuses numbers out of range and lone surrogates when it
/// reads them, which skipping would not), and it costs no allocation unless
/// a string has escapes.
pub(crate) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked)
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

impl<'a> Registered<'a> {
    /// Reads a JSON object of claims. Text that is not a JSON object is
    /// [`InvalidToken::Malformed`]; a claim of the wrong type is
    /// [`InvalidToken::MalformedClaim`].
    pub(crate) fn parse(json: &'a str) -> Result<Self, InvalidToken> {
        // serde would also take an array for a struct.
        if json.trim_start().as_bytes().first() != Some(&b'{') || !nesting_within_limit(json) {
            return Err(InvalidToken::Malformed);
        }
        let registered: Registered<'a> =
            serde_json::from_str(json).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => InvalidToken::MalformedClaim,
                _ => InvalidToken::Malformed,
            })?;
        // Not one object every reader sees alike: not readable JSON, which
        // introspection reports as a broken answer, not a bad token.
        if registered.duplicate {
            return Err(InvalidToken::Malformed);
        }
        Ok(registered)
    }

    /// `exp` (required or not, as the caller says), `nbf` and `iat`, each
    /// with the leeway. RFC 7519 §4.1.4: valid only while now is before
    /// `exp`.
    pub(crate) fn check_times(
        &self,
        exp_required: bool,
        leeway: u64,
        now: u64,
    ) -> Result<(), InvalidToken> {
        match self.exp {
            Some(exp) if now >= exp.saturating_add(leeway) => return Err(InvalidToken::Expired),
            Some(_) => {}
            None if exp_required => return Err(InvalidToken::MissingClaim),
            None => {}
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(InvalidToken::NotYetValid);
        }
        if self.iat.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(InvalidToken::IssuedInFuture);
        }
        Ok(())
    }

    /// `iss` equals the issuer exactly (RFC 8725 §3.8), when `required` or
    /// present.
    pub(crate) fn check_issuer(&self, issuer: &str, required: bool) -> Result<(), InvalidToken> {
        match &self.iss {
            None if !required => Ok(()),
            None => Err(InvalidToken::MissingClaim),
            Some(iss) if iss.as_str() == issuer => Ok(()),
            Some(_) => Err(InvalidToken::WrongIssuer),
        }
    }

    /// `iss` as `rules` require it of a JWT: present, and the issuer's
    /// exactly, or for a multi-tenant issuer its template filled with the
    /// token's own `tid` (from the allowed tenants, when they are listed).
    pub(crate) fn check_jwt_issuer(&self, rules: &ClaimRules) -> Result<(), InvalidToken> {
        let Some(tenants) = &rules.tenants else {
            return self.check_issuer(&rules.issuer, true);
        };
        let iss = self.iss.as_ref().ok_or(InvalidToken::MissingClaim)?;
        let tid = self.tid.as_ref().map(Str::as_str);
        if tenants.admits(iss.as_str(), tid) {
            Ok(())
        } else {
            Err(InvalidToken::WrongIssuer)
        }
    }

    /// `iss`, when present, is `issuer` or one of `others` (an
    /// introspection answer at a gate that trusts several issuers).
    pub(crate) fn check_issuer_among(
        &self,
        issuer: &str,
        others: &[String],
    ) -> Result<(), InvalidToken> {
        match &self.iss {
            Some(iss) if others.iter().any(|o| o == iss.as_str()) => Ok(()),
            _ => self.check_issuer(issuer, false),
        }
    }

    /// `aud` names one of our audiences (RFC 7519 §4.1.3, RFC 8725 §3.9),
    /// when `required` or present. No configured audiences means the user
    /// opted out.
    pub(crate) fn check_audience(
        &self,
        audiences: &[String],
        required: bool,
    ) -> Result<(), InvalidToken> {
        if audiences.is_empty() {
            return Ok(());
        }
        match &self.aud {
            Strings::Absent if !required => Ok(()),
            Strings::Absent => Err(InvalidToken::MissingClaim),
            Strings::Null => Err(InvalidToken::MalformedClaim),
            aud => aud
                .iter()
                .any(|a| audiences.iter().any(|x| x == a))
                .then_some(())
                .ok_or(InvalidToken::WrongAudience),
        }
    }

    /// A token bound to a key (`cnf`, RFC 7800) proves nothing when
    /// presented as a bearer token: RFC 9449 §7 (DPoP) and RFC 8705 §3
    /// (mTLS) require the resource server to check the binding, which a
    /// bearer-only server cannot.
    ///
    /// With `dpop`, a binding to a DPoP key (`cnf` holding `jkt` alone,
    /// RFC 9449 §6) is accepted here: the layer then requires the proof.
    /// Any other binding (mTLS's `x5t#S256`, unknown members) is refused.
    ///
    /// A binding to a client certificate (`cnf` holding `x5t#S256` alone,
    /// RFC 8705 §3.1) is accepted here too: the layer then compares it with
    /// the request's [`ClientCertificate`](crate::mtls::ClientCertificate).
    pub(crate) fn check_binding(&self, dpop: bool) -> Result<(), InvalidToken> {
        match &self.cnf {
            None => Ok(()),
            Some(_) if dpop && self.jkt().is_some() => Ok(()),
            Some(_) if self.x5t_s256().is_some() => Ok(()),
            Some(_) => Err(InvalidToken::SenderConstrained),
        }
    }

    /// The base64url SHA-256 of the client certificate the token is bound
    /// to (`cnf["x5t#S256"]`, RFC 8705 §3.1), when `cnf` holds it alone.
    pub(crate) fn x5t_s256(&self) -> Option<&str> {
        match &self.cnf {
            Some(Value::Object(cnf)) if cnf.len() == 1 => cnf
                .get("x5t#S256")
                .and_then(Value::as_str)
                .filter(|t| t.len() == 43),
            _ => None,
        }
    }

    /// The RFC 7638 thumbprint of the DPoP key the token is bound to
    /// (`cnf.jkt`), when `cnf` is exactly `{"jkt": "<thumbprint>"}`.
    pub(crate) fn jkt(&self) -> Option<&str> {
        match &self.cnf {
            Some(Value::Object(cnf)) if cnf.len() == 1 => cnf
                .get("jkt")
                .and_then(Value::as_str)
                .filter(|jkt| !jkt.is_empty() && jkt.len() <= 128),
            _ => None,
        }
    }

    /// Whether the token says, in its issuer's own words, that it is not an
    /// access token: Cognito and Hydra name it in `token_use` (`id`,
    /// `refresh`), Keycloak in the payload's `typ` (`ID`, `Refresh`,
    /// `Logout`). A value that is not a string says nothing trustworthy
    /// either, and counts as "not an access token".
    pub(crate) fn says_not_an_access_token(&self) -> bool {
        let not_access = |claim: &Option<Value>, access: &[&str]| match claim {
            None => false,
            Some(Value::String(v)) => !access.iter().any(|a| v.eq_ignore_ascii_case(a)),
            Some(_) => true,
        };
        not_access(&self.token_use, &["access", "access_token"])
            || not_access(&self.typ, &["Bearer", "at+jwt", "JWT"])
    }

    /// Whether ID-token-only claims are present (`nonce`, `at_hash`,
    /// `c_hash`).
    pub(crate) fn has_id_token_claims(&self) -> bool {
        self.id_token_claims
    }

    /// The client id: `client_id` (RFC 9068, RFC 7662), else `azp`, else
    /// `cid`, else `appid`.
    pub(crate) fn client(&self) -> Option<&Str<'a>> {
        self.client_id
            .as_ref()
            .or(self.azp.as_ref())
            .or(self.cid.as_ref())
            .or(self.appid.as_ref())
    }

    /// The granted scopes: `scope` when present, else `scp`; each token of
    /// RFC 6749 §3.3 syntax.
    pub(crate) fn scopes(&self) -> Result<Scopes, InvalidToken> {
        let scopes = match (&self.scope, &self.scp) {
            (Some(s), _) | (None, Strings::One(s)) => Scopes::parse(s.as_str()),
            (None, Strings::Absent | Strings::Null) => Ok(Scopes::default()),
            (None, many) => Scopes::try_from_iter(many.iter()),
        };
        scopes.map_err(|_| InvalidToken::MalformedClaim)
    }
}

/// serde_json limits nesting when it builds values (to 127 levels), but not
/// in the members it skips. This holds the whole text to a lower limit, so
/// that a claims object the layer accepts is one that
/// [`Principal::claims`](crate::Principal::claims), and any other JSON
/// reader, can read in full. No real token nests its claims this deep.
pub(crate) fn nesting_within_limit(json: &str) -> bool {
    const MAX_DEPTH: usize = 64;
    let bytes = json.as_bytes();
    // Cheap and vectorized: too few brackets to nest that deep at all.
    if bytes.iter().filter(|&&b| b == b'[' || b == b'{').count() <= MAX_DEPTH {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// A JSON string, borrowed from the text when it has no escapes.
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl Str<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

/// A string claim that may be absent but not `null`.
pub(crate) fn non_null_str<'de: 'a, 'a, D: de::Deserializer<'de>>(
    d: D,
) -> Result<Option<Str<'a>>, D::Error> {
    Str::deserialize(d).map(Some)
}

/// A claim that is a string or an array of strings (`aud`, `scp`), telling
/// absent from `null`.
#[derive(Default)]
pub(crate) enum Strings<'a> {
    #[default]
    Absent,
    Null,
    One(Str<'a>),
    Many(Vec<Str<'a>>),
}

impl Strings<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&Str<'_>>, &[Str<'_>]) = match self {
            Strings::One(s) => (Some(s), &[]),
            Strings::Many(v) => (None, v),
            Strings::Absent | Strings::Null => (None, &[]),
        };
        one.into_iter().chain(many).map(Str::as_str)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Strings<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StringsVisitor;
        impl<'de> Visitor<'de> for StringsVisitor {
            type Value = Strings<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Strings::Null)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Strings::One(Str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Strings::One(Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(item) = seq.next_element::<Str<'de>>()? {
                    items.push(item);
                }
                Ok(Strings::Many(items))
            }
        }
        d.deserialize_any(StringsVisitor)
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds, possibly fractional.
/// Strings, `null`, negative numbers and values past year 9999 are
/// refused. Fractions are dropped, which only makes `exp` earlier.
struct NumericDate(u64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        struct DateVisitor;
        impl Visitor<'_> for DateVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                if v <= MAX {
                    Ok(NumericDate(v))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("negative NumericDate"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                if v.is_finite() && v >= 0.0 && v <= MAX as f64 {
                    Ok(NumericDate(v as u64))
                } else {
                    Err(E::custom("NumericDate out of range"))
                }
            }
        }
        d.deserialize_any(DateVisitor)
    }
}

/// Whether a member is present at all, whatever its value (`null`
/// included).
#[derive(Default)]
pub(crate) struct Seen(pub(crate) bool);

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Seen(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_unless_escaped() {
        let json = r#"{"sub":"alice","iss":"https:\/\/as","aud":["a","b\u0063"]}"#;
        let r = Registered::parse(json).unwrap();
        assert!(matches!(r.sub.as_ref().unwrap().0, Cow::Borrowed("alice")));
        assert_eq!(r.iss.as_ref().unwrap().as_str(), "https://as");
        assert_eq!(r.aud.iter().collect::<Vec<_>>(), ["a", "bc"]);
    }

    #[test]
    fn wrong_types_are_malformed_claims_and_bad_json_is_malformed() {
        for json in [
            r#"{"exp":"1"}"#,
            r#"{"exp":null}"#,
            r#"{"exp":-1}"#,
            r#"{"exp":1e300}"#,
            r#"{"iss":null}"#,
            r#"{"sub":7}"#,
            r#"{"aud":[1]}"#,
            r#"{"scope":["a"]}"#,
            r#"{"scp":{"a":1}}"#,
        ] {
            assert_eq!(
                Registered::parse(json).err(),
                Some(InvalidToken::MalformedClaim),
                "{json}"
            );
        }
        // Members no reader can represent, even where nobody reads them.
        for json in [
            r#"["exp"]"#,
            "{",
            r#"{"a":}"#,
            "null",
            "",
            r#"{"x":1e400}"#,
            r#"{"x":[{"y":-1e309}]}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"cnf":"\udfff"}"#,
        ] {
            assert_eq!(
                Registered::parse(json).err(),
                Some(InvalidToken::Malformed),
                "{json}"
            );
        }
    }

    #[test]
    fn any_member_twice_is_malformed() {
        for json in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"sub":"a","sub":"a"}"#,
            r#"{"exp":1,"sub":"a","exp":2}"#,
            r#"{"tenant":"acme","exp":1,"tenant":"evil"}"#,
            r#"{"tenant":"acme","tenant":"acme"}"#,
            r#"{"nonce":"n","nonce":"n"}"#,
            // Names are compared as decoded: escapes do not hide a twin.
            r#"{"tenant":1,"\u0074enant":2}"#,
            r#"{"sub":"a","\u0073ub":"b"}"#,
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"a":10}"#,
        ] {
            assert_eq!(
                Registered::parse(json).err(),
                Some(InvalidToken::Malformed),
                "{json}"
            );
        }
        // Nested objects are values, read by whoever reads them.
        let nested = r#"{"a":{"x":1},"b":{"x":2},"tenant":"acme","sub":"s","x":1}"#;
        assert!(Registered::parse(nested).is_ok());
    }

    #[test]
    fn null_is_absent_for_optional_strings_but_not_for_aud() {
        let r = Registered::parse(r#"{"sub":null,"aud":null,"cnf":null,"nonce":null}"#).unwrap();
        assert!(r.sub.is_none());
        assert!(matches!(r.aud, Strings::Null));
        assert!(r.check_binding(false).is_ok());
        assert!(r.has_id_token_claims());
        assert_eq!(
            r.check_audience(&["api".into()], false),
            Err(InvalidToken::MalformedClaim)
        );
    }

    #[test]
    fn nesting_is_limited_even_in_skipped_members() {
        let deep = |n: usize| format!(r#"{{"x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        // The object itself is one level: 63 more are the most accepted.
        assert!(Registered::parse(&deep(63)).is_ok());
        for n in [64, 127, 128, 200] {
            assert_eq!(
                Registered::parse(&deep(n)).err(),
                Some(InvalidToken::Malformed),
                "{n}"
            );
        }
        // Brackets inside strings do not count.
        let quoted = format!(r#"{{"x":"{}"}}"#, "[".repeat(500));
        assert!(Registered::parse(&quoted).is_ok());
        let escaped = format!(r#"{{"x":"\"{}"}}"#, "{".repeat(500));
        assert!(Registered::parse(&escaped).is_ok());
    }

    #[test]
    fn fractional_dates_round_down() {
        let r = Registered::parse(r#"{"exp":1000.9,"nbf":5,"iat":0}"#).unwrap();
        assert_eq!((r.exp, r.nbf, r.iat), (Some(1000), Some(5), Some(0)));
    }

    #[test]
    fn tenant_templates_are_filled_with_the_tokens_own_tid() {
        let rule = TenantRule {
            template: "https://login.example/{tenantid}/v2.0".into(),
            allowed: None,
        };
        let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let iss = format!("https://login.example/{tid}/v2.0");
        assert!(rule.admits(&iss, Some(tid)));
        assert!(!rule.admits(&iss, None));
        assert!(!rule.admits(&iss, Some("other")));
        assert!(!rule.admits("https://login.example/a/b/v2.0", Some("a/b")));
        assert!(!rule.admits("https://login.example//v2.0", Some("")));
        assert!(!rule.admits(&format!("{iss}/"), Some(tid)));
        let both = TenantRule {
            template: "https://{tenantid}.login.example/{tenantid}/v2.0".into(),
            allowed: Some(vec!["t1".into()]),
        };
        assert!(both.admits("https://t1.login.example/t1/v2.0", Some("t1")));
        assert!(!both.admits("https://t1.login.example/t2/v2.0", Some("t1")));
        assert!(!both.admits("https://t2.login.example/t2/v2.0", Some("t2")));
    }
}
