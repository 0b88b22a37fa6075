//! [`Requirement`]: what a route requires of the principal, beyond scopes.

use std::cell::OnceCell;
use std::time::Duration;

use serde_json::Value;

use crate::clock;
use crate::error::{AuthError, InvalidToken};
use crate::principal::Principal;
use crate::requirement::ScopeRequirement;
use crate::requirement::hierarchy::{ScopeHierarchy, scopes_met};
use crate::requirement::roles::ClaimPath;

/// What a route requires of the caller: scopes, roles, claims, the client,
/// the kind of caller, the token's age, and for a step-up (RFC 9470) the
/// user's authentication, combined with [`all`](Self::all),
/// [`any`](Self::any) and [`not`](Self::not). Built once (at start-up),
/// checked per request without allocating when it is met.
///
/// A refusal tells the client what to do:
///
/// | what is missing | answer |
/// |---|---|
/// | scopes | 403 `insufficient_scope`, `scope="…"` naming every scope the failing clauses need, in one challenge |
/// | a role, a claim, the client, the kind of caller, or a `not` | 403 `insufficient_scope` without `scope` |
/// | a fresher token ([`issued_within`](Self::issued_within)) | 401 `invalid_token` (get a new token) |
/// | a stronger or more recent login ([`acr`](Self::acr), [`max_auth_age`](Self::max_auth_age)) | 401 `insufficient_user_authentication` with `acr_values` and/or `max_age` (RFC 9470 §3) |
///
/// When several are missing, the 401s come first (a client that gets a new
/// token may then have what it needs). For [`any`](Self::any), the answer
/// is that of its first alternative: list first what clients should ask for.
///
/// ```
/// use std::time::Duration;
/// use tokengate::Requirement;
///
/// // Entra ID's "delegated scope or app role".
/// let read = Requirement::any([
///     Requirement::scopes_any(["Orders.Read"]),
///     Requirement::role("Orders.Read.All"),
/// ]);
/// // An export needs the scope, the auditor role, a known client, and a
/// // multi-factor login within the last 10 minutes.
/// let export = Requirement::all([
///     Requirement::scopes_all(["items:read"]),
///     Requirement::role("auditor"),
///     Requirement::client_in(["reporting-ui", "reporting-cli"]),
///     Requirement::acr(["urn:tokengate:mfa"]),
///     Requirement::max_auth_age(Duration::from_secs(600)),
/// ]);
/// # drop((read, export));
/// ```
#[derive(Clone, Debug)]
pub struct Requirement(Node);

#[derive(Clone, Debug)]
enum Node {
    Scopes(ScopeRequirement),
    Roles {
        roles: Box<[Box<str>]>,
        any: bool,
    },
    ClaimEquals {
        path: ClaimPath,
        value: Value,
    },
    ClaimContains {
        path: ClaimPath,
        value: Value,
    },
    ClientIn(Box<[Box<str>]>),
    /// `true`: machine callers only (client credentials); `false`: users.
    Machine(bool),
    IssuedWithin(u64),
    Acr(Box<[Box<str>]>),
    AuthAge(u64),
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
}

fn names<I, T>(what: &str, items: I) -> Box<[Box<str>]>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let items: Box<[Box<str>]> = items
        .into_iter()
        .map(|s| s.into().into_boxed_str())
        .collect();
    assert!(
        !items.is_empty() && items.iter().all(|s| !s.is_empty()),
        "Requirement: a {what} list must name at least one, and no empty one"
    );
    items
}

fn path(path: impl Into<ClaimPath>) -> ClaimPath {
    let path = path.into();
    assert!(
        path.is_valid(),
        "Requirement: a claim path names at least one member, and no empty one"
    );
    path
}

fn seconds(d: Duration) -> u64 {
    d.as_secs()
}

impl Requirement {
    /// Every one of `scopes` (see [`ScopeRequirement::all`], whose panics
    /// it shares).
    ///
    /// ```
    /// let r = tokengate::Requirement::scopes_all(["items:write", "admin"]);
    /// # drop(r);
    /// ```
    pub fn scopes_all<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ScopeRequirement::all(scopes).into()
    }

    /// One of `scopes` (see [`ScopeRequirement::any`]).
    ///
    /// ```
    /// let r = tokengate::Requirement::scopes_any(["items:read", "admin"]);
    /// # drop(r);
    /// ```
    pub fn scopes_any<I, T>(scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        ScopeRequirement::any(scopes).into()
    }

    /// The role `role` (from the gate's
    /// [`roles_from`](crate::TokenGateBuilder::roles_from) sources).
    ///
    /// # Panics
    /// If `role` is empty.
    ///
    /// ```
    /// let r = tokengate::Requirement::role("auditor");
    /// # drop(r);
    /// ```
    pub fn role(role: impl Into<String>) -> Self {
        Self::roles_all([role])
    }

    /// Every one of `roles`.
    ///
    /// # Panics
    /// If the list is empty or names an empty role.
    ///
    /// ```
    /// let r = tokengate::Requirement::roles_all(["auditor", "eu-staff"]);
    /// # drop(r);
    /// ```
    pub fn roles_all<I, T>(roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Requirement(Node::Roles {
            roles: names("role", roles),
            any: false,
        })
    }

    /// One of `roles`.
    ///
    /// # Panics
    /// As [`roles_all`](Self::roles_all).
    ///
    /// ```
    /// let r = tokengate::Requirement::roles_any(["admin", "support"]);
    /// # drop(r);
    /// ```
    pub fn roles_any<I, T>(roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Requirement(Node::Roles {
            roles: names("role", roles),
            any: true,
        })
    }

    /// The claim at `path` equals `value` (JSON equality: `"1"` is not `1`).
    ///
    /// # Panics
    /// If the path is empty or has an empty member name.
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let eu = Requirement::claim_equals("tenant.region", "eu");
    /// let verified = Requirement::claim_equals(["https://example.com/verified"], true);
    /// # drop((eu, verified));
    /// ```
    pub fn claim_equals(claim: impl Into<ClaimPath>, value: impl Into<Value>) -> Self {
        Requirement(Node::ClaimEquals {
            path: path(claim),
            value: value.into(),
        })
    }

    /// The claim at `path` contains `value`: an array with an element equal
    /// to it, or a string whose space-separated words include it.
    ///
    /// # Panics
    /// As [`claim_equals`](Self::claim_equals).
    ///
    /// ```
    /// let r = tokengate::Requirement::claim_contains("amr", "mfa");
    /// # drop(r);
    /// ```
    pub fn claim_contains(claim: impl Into<ClaimPath>, value: impl Into<Value>) -> Self {
        Requirement(Node::ClaimContains {
            path: path(claim),
            value: value.into(),
        })
    }

    /// The token's client ([`Principal::client_id`]) is one of `clients`.
    ///
    /// # Panics
    /// If the list is empty or names an empty client.
    ///
    /// ```
    /// let r = tokengate::Requirement::client_in(["billing", "reporting"]);
    /// # drop(r);
    /// ```
    pub fn client_in<I, T>(clients: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Requirement(Node::ClientIn(names("client", clients)))
    }

    /// Machine callers only: a token a client got for itself
    /// ([`Principal::is_client_credentials`]).
    ///
    /// ```
    /// let r = tokengate::Requirement::machine();
    /// # drop(r);
    /// ```
    pub fn machine() -> Self {
        Requirement(Node::Machine(true))
    }

    /// Users only: a token issued on behalf of a user.
    ///
    /// ```
    /// let r = tokengate::Requirement::user();
    /// # drop(r);
    /// ```
    pub fn user() -> Self {
        Requirement(Node::Machine(false))
    }

    /// The token was issued (`iat`) at most `age` ago; a token without
    /// `iat` does not meet it. Refused with 401 `invalid_token`, so that
    /// the client gets a fresh token.
    ///
    /// ```
    /// let r = tokengate::Requirement::issued_within(std::time::Duration::from_secs(300));
    /// # drop(r);
    /// ```
    pub fn issued_within(age: Duration) -> Self {
        Requirement(Node::IssuedWithin(seconds(age)))
    }

    /// Step-up (RFC 9470): the user authenticated with one of these
    /// authentication context classes (`acr`, from the JWT or the
    /// introspection answer). Refused with 401
    /// `insufficient_user_authentication` and `acr_values="…"`.
    ///
    /// # Panics
    /// If the list is empty or names an empty value.
    ///
    /// ```
    /// let r = tokengate::Requirement::acr(["urn:tokengate:mfa"]);
    /// # drop(r);
    /// ```
    pub fn acr<I, T>(values: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Requirement(Node::Acr(names("acr value", values)))
    }

    /// Step-up (RFC 9470): the user authenticated (`auth_time`) at most
    /// `max_age` ago. Refused with 401 `insufficient_user_authentication`
    /// and `max_age=…` (in whole seconds).
    ///
    /// ```
    /// let r = tokengate::Requirement::max_auth_age(std::time::Duration::from_secs(900));
    /// # drop(r);
    /// ```
    pub fn max_auth_age(max_age: Duration) -> Self {
        Requirement(Node::AuthAge(seconds(max_age)))
    }

    /// Every one of `requirements`.
    ///
    /// # Panics
    /// If there is none: "all of nothing" would let everyone in.
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let r = Requirement::all([Requirement::role("auditor"), Requirement::user()]);
    /// # drop(r);
    /// ```
    pub fn all(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let nodes: Box<[Node]> = requirements.into_iter().map(|r| r.0).collect();
        assert!(!nodes.is_empty(), "Requirement::all of no requirement");
        Requirement(Node::All(nodes))
    }

    /// One of `requirements`.
    ///
    /// # Panics
    /// If there is none.
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let r = Requirement::any([Requirement::scopes_all(["admin"]), Requirement::role("admin")]);
    /// # drop(r);
    /// ```
    pub fn any(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let nodes: Box<[Node]> = requirements.into_iter().map(|r| r.0).collect();
        assert!(!nodes.is_empty(), "Requirement::any of no requirement");
        Requirement(Node::Any(nodes))
    }

    /// Met when `requirement` is not (a refusal is 403 without `scope`).
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let not_suspended = Requirement::not(Requirement::role("suspended"));
    /// # drop(not_suspended);
    /// ```
    #[allow(clippy::should_implement_trait)]
    pub fn not(requirement: Requirement) -> Self {
        Requirement(Node::Not(Box::new(requirement.0)))
    }

    /// This and `other`.
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let r = Requirement::role("auditor").and(Requirement::machine());
    /// # drop(r);
    /// ```
    pub fn and(self, other: Requirement) -> Self {
        Self::all([self, other])
    }

    /// This or `other`.
    ///
    /// ```
    /// use tokengate::Requirement;
    /// let r = Requirement::role("admin").or(Requirement::scopes_all(["admin"]));
    /// # drop(r);
    /// ```
    pub fn or(self, other: Requirement) -> Self {
        Self::any([self, other])
    }

    /// Whether `principal` meets this requirement, scopes compared exactly
    /// (the guards also apply the gate's
    /// [`scope_hierarchy`](crate::TokenGateBuilder::scope_hierarchy)).
    ///
    /// ```
    /// use tokengate::{Principal, Requirement, TokenSource};
    /// let claims = serde_json::json!({"scope": "items:read", "sub": "alice", "client_id": "web"});
    /// let p = Principal::from_claims(claims.as_object().unwrap().clone(), TokenSource::Jwt).unwrap();
    /// assert!(Requirement::scopes_all(["items:read"]).and(Requirement::user()).is_met_by(&p));
    /// assert!(!Requirement::client_in(["billing"]).is_met_by(&p));
    /// ```
    pub fn is_met_by(&self, principal: &Principal) -> bool {
        self.0.met(&Subject::new(principal, None))
    }

    /// The refusal for a principal that does not meet this requirement.
    pub(crate) fn verdict(
        &self,
        principal: &Principal,
        hierarchy: Option<&ScopeHierarchy>,
    ) -> Result<(), AuthError> {
        let subject = Subject::new(principal, hierarchy);
        if self.0.met(&subject) {
            return Ok(());
        }
        let mut needs = Needs::default();
        self.0.needs(&subject, &mut needs);
        Err(needs.into_error())
    }
}

impl From<ScopeRequirement> for Requirement {
    fn from(scopes: ScopeRequirement) -> Self {
        Requirement(Node::Scopes(scopes))
    }
}

/// A principal under examination, with the clock read at most once.
struct Subject<'a> {
    principal: &'a Principal,
    hierarchy: Option<&'a ScopeHierarchy>,
    now: OnceCell<u64>,
}

impl<'a> Subject<'a> {
    fn new(principal: &'a Principal, hierarchy: Option<&'a ScopeHierarchy>) -> Self {
        Subject {
            principal,
            hierarchy,
            now: OnceCell::new(),
        }
    }

    fn now(&self) -> u64 {
        *self.now.get_or_init(clock::unix_secs)
    }

    /// Whether the time claim `name` is at most `max` seconds old.
    fn recent(&self, at: Option<u64>, max: u64) -> bool {
        at.is_some_and(|at| self.now().saturating_sub(at) <= max)
    }
}

fn contains(found: &Value, wanted: &Value) -> bool {
    match (found, wanted) {
        (Value::Array(items), _) => items.contains(wanted),
        (Value::String(words), Value::String(word)) => words.split(' ').any(|w| w == word),
        _ => false,
    }
}

impl Node {
    fn met(&self, s: &Subject<'_>) -> bool {
        let p = s.principal;
        match self {
            Node::Scopes(scopes) => {
                let (required, any) = scopes.parts();
                scopes_met(p.scopes(), required, any, s.hierarchy)
            }
            Node::Roles { roles, any: true } => roles.iter().any(|r| p.roles().contains(r)),
            Node::Roles { roles, any: false } => roles.iter().all(|r| p.roles().contains(r)),
            Node::ClaimEquals { path, value } => path.find(p.claims()) == Some(value),
            Node::ClaimContains { path, value } => path
                .find(p.claims())
                .is_some_and(|found| contains(found, value)),
            Node::ClientIn(clients) => p
                .client_id()
                .is_some_and(|c| clients.iter().any(|allowed| **allowed == *c)),
            Node::Machine(machine) => p.is_client_credentials() == *machine,
            Node::IssuedWithin(max) => s.recent(p.issued_at_secs(), *max),
            Node::Acr(values) => p
                .claim("acr")
                .and_then(Value::as_str)
                .is_some_and(|acr| values.iter().any(|v| **v == *acr)),
            Node::AuthAge(max) => s.recent(p.claim("auth_time").and_then(Value::as_u64), *max),
            Node::All(nodes) => nodes.iter().all(|n| n.met(s)),
            Node::Any(nodes) => nodes.iter().any(|n| n.met(s)),
            Node::Not(node) => !node.met(s),
        }
    }

    /// What a node that is not met needs, added to `needs`.
    fn needs<'n>(&'n self, s: &Subject<'_>, needs: &mut Needs<'n>) {
        match self {
            Node::Scopes(scopes) => {
                let (required, any) = scopes.parts();
                let named = if any { &required[..1] } else { required };
                for scope in named {
                    if !needs.scopes.contains(&&**scope) {
                        needs.scopes.push(scope);
                    }
                }
            }
            Node::IssuedWithin(_) => needs.fresh_token = true,
            Node::Acr(values) => {
                needs.step_up = true;
                for value in values {
                    if !needs.acr.contains(&&**value) {
                        needs.acr.push(value);
                    }
                }
            }
            Node::AuthAge(max) => {
                needs.step_up = true;
                needs.max_age = Some(needs.max_age.map_or(*max, |m| m.min(*max)));
            }
            Node::All(nodes) => {
                for node in nodes.iter().filter(|n| !n.met(s)) {
                    node.needs(s, needs);
                }
                // A step-up challenge names every condition of the login at
                // once, met or not: a client that asks for `max_age` alone
                // could come back without the `acr`.
                if needs.step_up {
                    for node in nodes.iter() {
                        if matches!(node, Node::Acr(_) | Node::AuthAge(_)) {
                            node.needs(s, needs);
                        }
                    }
                }
            }
            // Not met: no alternative is. The first one says what to do.
            Node::Any(nodes) => nodes[0].needs(s, needs),
            Node::Roles { .. }
            | Node::ClaimEquals { .. }
            | Node::ClaimContains { .. }
            | Node::ClientIn(_)
            | Node::Machine(_)
            | Node::Not(_) => {}
        }
    }
}

/// Everything the failing clauses ask for.
#[derive(Default)]
struct Needs<'n> {
    scopes: Vec<&'n str>,
    fresh_token: bool,
    step_up: bool,
    acr: Vec<&'n str>,
    max_age: Option<u64>,
}

impl Needs<'_> {
    fn into_error(self) -> AuthError {
        if self.fresh_token {
            AuthError::InvalidToken(InvalidToken::TooOld)
        } else if self.step_up {
            AuthError::InsufficientUserAuthentication {
                acr_values: self.acr.join(" "),
                max_age: self.max_age,
            }
        } else {
            AuthError::InsufficientScope {
                required: self.scopes.join(" "),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::TokenSource;
    use crate::requirement::roles::RoleSource;
    use serde_json::json;

    fn principal(claims: Value) -> Principal {
        Principal::from_claims_with_roles(
            claims.as_object().unwrap().clone(),
            TokenSource::Jwt,
            &[RoleSource::keycloak_realm()],
        )
        .unwrap()
    }

    fn verdict(r: &Requirement, claims: Value) -> Result<(), AuthError> {
        r.verdict(&principal(claims), None)
    }

    fn scope(required: &str) -> AuthError {
        AuthError::InsufficientScope {
            required: required.to_owned(),
        }
    }

    #[test]
    fn each_kind_of_clause() {
        let now = clock::unix_secs();
        let user = json!({
            "sub": "alice", "client_id": "web", "scope": "a b",
            "realm_access": {"roles": ["auditor"]},
            "tenant": {"region": "eu"}, "amr": ["pwd", "mfa"], "groups": "x y",
            "https://e.com/v": true, "iat": now - 100, "acr": "urn:mfa", "auth_time": now - 100,
        });
        for (r, met) in [
            (Requirement::scopes_all(["a", "b"]), true),
            (Requirement::scopes_all(["a", "c"]), false),
            (Requirement::scopes_any(["c", "b"]), true),
            (Requirement::role("auditor"), true),
            (Requirement::roles_all(["auditor", "admin"]), false),
            (Requirement::roles_any(["admin", "auditor"]), true),
            (Requirement::claim_equals("tenant.region", "eu"), true),
            (Requirement::claim_equals("tenant.region", "us"), false),
            (Requirement::claim_equals(["https://e.com/v"], true), true),
            (Requirement::claim_equals("https://e.com/v", true), false),
            (Requirement::claim_equals("missing.path", "x"), false),
            (Requirement::claim_contains("amr", "mfa"), true),
            (Requirement::claim_contains("groups", "y"), true),
            (Requirement::claim_contains("groups", "x y"), false),
            (Requirement::client_in(["billing", "web"]), true),
            (Requirement::client_in(["billing"]), false),
            (Requirement::user(), true),
            (Requirement::machine(), false),
            (Requirement::issued_within(Duration::from_secs(200)), true),
            (Requirement::issued_within(Duration::from_secs(50)), false),
            (Requirement::acr(["urn:mfa"]), true),
            (Requirement::acr(["urn:hwk"]), false),
            (Requirement::max_auth_age(Duration::from_secs(200)), true),
            (Requirement::max_auth_age(Duration::from_secs(50)), false),
            (Requirement::not(Requirement::role("auditor")), false),
            (Requirement::not(Requirement::role("banned")), true),
        ] {
            assert_eq!(verdict(&r, user.clone()).is_ok(), met, "{r:?}");
        }
        let machine = json!({"sub": "svc", "client_id": "svc"});
        assert!(verdict(&Requirement::machine(), machine.clone()).is_ok());
        // No `iat`, no `acr`, no `auth_time`: not met.
        for r in [
            Requirement::issued_within(Duration::from_secs(3600)),
            Requirement::acr(["urn:mfa"]),
            Requirement::max_auth_age(Duration::from_secs(3600)),
        ] {
            assert!(verdict(&r, machine.clone()).is_err(), "{r:?}");
        }
    }

    #[test]
    fn refusals_say_what_would_help() {
        let p = json!({"sub": "alice", "client_id": "web", "scope": "a"});
        let both = Requirement::all([
            Requirement::scopes_all(["a", "b"]),
            Requirement::scopes_any(["c", "d"]),
            Requirement::role("auditor"),
        ]);
        // Every scope the failing clauses need, in one challenge.
        assert_eq!(verdict(&both, p.clone()), Err(scope("a b c")));
        assert_eq!(
            verdict(&Requirement::role("auditor"), p.clone()),
            Err(scope(""))
        );
        let step_up = Requirement::all([
            Requirement::scopes_all(["b"]),
            Requirement::acr(["urn:mfa", "urn:hwk"]),
            Requirement::max_auth_age(Duration::from_secs(600)),
            Requirement::max_auth_age(Duration::from_secs(300)),
        ]);
        assert_eq!(
            verdict(&step_up, p.clone()),
            Err(AuthError::InsufficientUserAuthentication {
                acr_values: "urn:mfa urn:hwk".into(),
                max_age: Some(300),
            })
        );
        let fresh = Requirement::issued_within(Duration::from_secs(1)).and(step_up);
        assert_eq!(
            verdict(&fresh, p.clone()),
            Err(AuthError::InvalidToken(InvalidToken::TooOld))
        );
        // The first alternative says what to do.
        let entra =
            Requirement::scopes_any(["Orders.Read"]).or(Requirement::role("Orders.Read.All"));
        assert_eq!(verdict(&entra, p.clone()), Err(scope("Orders.Read")));
        assert!(
            verdict(
                &entra,
                json!({"realm_access": {"roles": ["Orders.Read.All"]}})
            )
            .is_ok()
        );
    }

    #[test]
    fn scopes_follow_the_hierarchy_and_challenges_name_the_route_s_scope() {
        let h = ScopeHierarchy::new().implies("items:write", ["items:read"]);
        let p = principal(json!({"scope": "items:write"}));
        let read = Requirement::scopes_all(["items:read"]);
        assert!(read.verdict(&p, Some(&h)).is_ok());
        assert!(read.verdict(&p, None).is_err());
        let admin = Requirement::scopes_all(["items:admin"]);
        assert_eq!(admin.verdict(&p, Some(&h)), Err(scope("items:admin")));
    }

    #[test]
    #[should_panic(expected = "Requirement::all of no requirement")]
    fn all_of_nothing_is_refused() {
        let _ = Requirement::all([]);
    }
}
