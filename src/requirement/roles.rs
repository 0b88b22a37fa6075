//! Roles, and the claim paths they (and claim requirements) are read from.

use std::fmt;

use serde_json::{Map, Value};

/// Where a claim lies in the token's claims: a path of member names, from
/// the top-level object down. A dotted string is split at the dots
/// (`"realm_access.roles"`); an array keeps each name whole, for claim
/// names that contain dots (`["https://example.com/roles"]`).
///
/// ```
/// use tokengate::ClaimPath;
/// let dotted = ClaimPath::from("realm_access.roles");
/// let whole = ClaimPath::from(["https://example.com/claims", "roles"]);
/// assert_eq!(dotted.segments().collect::<Vec<_>>(), ["realm_access", "roles"]);
/// assert_eq!(whole.segments().count(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath(Box<[Box<str>]>);

impl ClaimPath {
    /// The member names, outermost first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    /// The value at this path in `claims`, if every member is there.
    pub(crate) fn find<'c>(&self, claims: &'c Map<String, Value>) -> Option<&'c Value> {
        let (first, rest) = self.0.split_first()?;
        rest.iter()
            .try_fold(claims.get(&**first)?, |value, name| value.get(&**name))
    }

    pub(crate) fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.iter().all(|s| !s.is_empty())
    }
}

impl From<&str> for ClaimPath {
    fn from(dotted: &str) -> Self {
        ClaimPath(dotted.split('.').map(Box::from).collect())
    }
}

impl From<String> for ClaimPath {
    fn from(dotted: String) -> Self {
        ClaimPath::from(dotted.as_str())
    }
}

impl<const N: usize> From<[&str; N]> for ClaimPath {
    fn from(segments: [&str; N]) -> Self {
        ClaimPath(segments.into_iter().map(Box::from).collect())
    }
}

impl From<Vec<String>> for ClaimPath {
    fn from(segments: Vec<String>) -> Self {
        ClaimPath(segments.into_iter().map(String::into_boxed_str).collect())
    }
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.segments()).finish()
    }
}

/// A claim that holds roles (or groups, or permissions), read when a token
/// is verified: an array of strings, or one string (one role). Configure
/// one or more with [`TokenGateBuilder::roles_from`](crate::TokenGateBuilder::roles_from);
/// their roles are merged.
///
/// ```
/// use tokengate::RoleSource;
/// let sources = [
///     RoleSource::keycloak_realm(),
///     RoleSource::keycloak_client("orders-api"),
///     RoleSource::claim(["https://example.com/roles"]),
/// ];
/// # drop(sources);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSource(ClaimPath);

impl RoleSource {
    /// Roles at a claim path of your choice.
    pub fn claim(path: impl Into<ClaimPath>) -> Self {
        RoleSource(path.into())
    }

    /// Keycloak realm roles: `realm_access.roles`.
    pub fn keycloak_realm() -> Self {
        Self::claim(["realm_access", "roles"])
    }

    /// Keycloak client roles of `client`: `resource_access.<client>.roles`.
    pub fn keycloak_client(client: &str) -> Self {
        Self::claim(["resource_access", client, "roles"])
    }

    /// Entra ID app roles: `roles` (the only authorization claim of an
    /// app-only token; delegated tokens carry `scp` as scopes).
    pub fn entra() -> Self {
        Self::claim(["roles"])
    }

    /// Auth0 RBAC permissions: `permissions`.
    pub fn auth0() -> Self {
        Self::claim(["permissions"])
    }

    /// Okta groups: `groups` (when the authorization server adds a groups
    /// claim).
    pub fn okta() -> Self {
        Self::claim(["groups"])
    }

    /// AWS Cognito user pool groups: `cognito:groups`.
    pub fn cognito() -> Self {
        Self::claim(["cognito:groups"])
    }

    pub(crate) fn path(&self) -> &ClaimPath {
        &self.0
    }
}

/// The roles of a principal, read once when its token was verified (and
/// cached with it): see [`Principal::roles`](crate::Principal::roles).
///
/// ```
/// let roles = tokengate::Roles::default();
/// assert!(roles.is_empty());
/// assert!(!roles.contains("auditor"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles(Box<[Box<str>]>);

impl Roles {
    /// The roles the `sources` name in `claims`, sorted, each once.
    /// Anything but a string or an array of strings there names no role.
    pub(crate) fn read(claims: &Map<String, Value>, sources: &[RoleSource]) -> Roles {
        let mut roles: Vec<Box<str>> = Vec::new();
        for source in sources {
            match source.path().find(claims) {
                Some(Value::String(role)) => roles.push(role.as_str().into()),
                Some(Value::Array(items)) => {
                    roles.extend(items.iter().filter_map(Value::as_str).map(Box::<str>::from))
                }
                _ => {}
            }
        }
        roles.sort();
        roles.dedup();
        Roles(roles.into_boxed_slice())
    }

    /// Whether `role` is one of them (exact, case-sensitive).
    pub fn contains(&self, role: &str) -> bool {
        self.0.binary_search_by(|r| (**r).cmp(role)).is_ok()
    }

    /// The roles, sorted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|r| &**r)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_are_merged_from_every_source_and_odd_shapes_name_none() {
        let claims = json!({
            "realm_access": {"roles": ["offline_access", "auditor"]},
            "resource_access": {"orders": {"roles": ["writer", "auditor"]}},
            "roles": "single",
            "groups": [1, "ops", null],
            "permissions": {"not": "a list"},
            "a.b": ["dotted"],
        });
        let claims = claims.as_object().unwrap();
        let roles = Roles::read(
            claims,
            &[
                RoleSource::keycloak_realm(),
                RoleSource::keycloak_client("orders"),
                RoleSource::entra(),
                RoleSource::okta(),
                RoleSource::auth0(),
                RoleSource::claim(["a.b"]),
                RoleSource::claim("a.b"),
            ],
        );
        assert_eq!(
            roles.iter().collect::<Vec<_>>(),
            [
                "auditor",
                "dotted",
                "offline_access",
                "ops",
                "single",
                "writer"
            ]
        );
        assert!(roles.contains("ops") && !roles.contains("Ops"));
    }
}
