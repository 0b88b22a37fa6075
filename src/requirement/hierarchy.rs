//! Scope hierarchies: a broader scope implies narrower ones
//! (`items:write` ⇒ `items:read`, `admin` ⇒ everything under `admin:`),
//! as MCP's 2026-07-28 revision asks servers to honour.

use std::collections::{HashMap, HashSet};

use crate::scope::{InvalidScope, Scopes, is_scope_token};

/// Which scopes imply which, applied by every scope check of a gate
/// ([`TokenGateBuilder::scope_hierarchy`](crate::TokenGateBuilder::scope_hierarchy)).
///
/// A granted scope satisfies a required one when they are equal, when the
/// granted one implies it (directly or through a chain of
/// [`implies`](Self::implies)), or when a [`covers`](Self::covers) rule
/// makes it the owner of a prefix the required scope starts with. Granted
/// scopes are never rewritten: [`Principal::scopes`](crate::Principal::scopes)
/// shows what the token says, and a 403 challenge names the scopes the
/// route declared (the narrowest that satisfy it), not a broader one.
///
/// ```
/// use tokengate::{ScopeHierarchy, Scopes};
///
/// let hierarchy = ScopeHierarchy::new()
///     .implies("items:write", ["items:read"])
///     .implies("items:admin", ["items:write"])
///     .covers("admin", "admin:");
/// let granted = Scopes::parse("items:admin admin").unwrap();
/// assert!(hierarchy.grants(&granted, "items:read"));
/// assert!(hierarchy.grants(&granted, "admin:users"));
/// assert!(!hierarchy.grants(&Scopes::parse("items:read").unwrap(), "items:write"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ScopeHierarchy {
    /// Declared edges: broader ⇒ narrower.
    edges: Vec<(Box<str>, Box<str>)>,
    /// `(owner, prefix)`: `owner` implies every scope starting with `prefix`.
    prefixes: Vec<(Box<str>, Box<str>)>,
    /// For each narrower scope, every scope that implies it (the transitive
    /// closure of `edges`), computed by [`seal`](Self::seal).
    implied_by: HashMap<Box<str>, Box<[Box<str>]>>,
    invalid: bool,
}

impl ScopeHierarchy {
    /// No implications: every scope stands for itself.
    pub fn new() -> Self {
        Self::default()
    }

    /// `broader` implies each of `narrower`. Chains are followed
    /// (`a` ⇒ `b` and `b` ⇒ `c` make `a` imply `c`).
    ///
    /// ```
    /// let h = tokengate::ScopeHierarchy::new().implies("items:write", ["items:read"]);
    /// # drop(h);
    /// ```
    pub fn implies<I, T>(mut self, broader: impl Into<String>, narrower: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let broader = broader.into();
        self.invalid |= !is_scope_token(&broader);
        for narrower in narrower {
            let narrower = narrower.into();
            self.invalid |= !is_scope_token(&narrower);
            self.edges
                .push((broader.clone().into_boxed_str(), narrower.into_boxed_str()));
        }
        self.seal()
    }

    /// `owner` implies every scope that starts with `prefix` (`admin`
    /// covers `admin:`, so it grants `admin:users` and `admin:billing`).
    ///
    /// ```
    /// let h = tokengate::ScopeHierarchy::new().covers("admin", "admin:");
    /// # drop(h);
    /// ```
    pub fn covers(mut self, owner: impl Into<String>, prefix: impl Into<String>) -> Self {
        let (owner, prefix) = (owner.into(), prefix.into());
        self.invalid |= !is_scope_token(&owner) || !is_scope_token(&prefix);
        self.prefixes
            .push((owner.into_boxed_str(), prefix.into_boxed_str()));
        self
    }

    /// Whether `granted` satisfies the single scope `required`.
    pub fn grants(&self, granted: &Scopes, required: &str) -> bool {
        if granted.contains(required) {
            return true;
        }
        let implied = |scope: &str| {
            granted.contains(scope)
                || self
                    .implied_by
                    .get(scope)
                    .is_some_and(|broader| broader.iter().any(|b| granted.contains(b)))
        };
        if self
            .implied_by
            .get(required)
            .is_some_and(|broader| broader.iter().any(|b| granted.contains(b)))
        {
            return true;
        }
        self.prefixes
            .iter()
            .any(|(owner, prefix)| required.starts_with(&**prefix) && implied(owner))
    }

    /// Every scope named is RFC 6749 §3.3 syntax (checked when the gate is
    /// built).
    pub(crate) fn check(&self) -> Result<(), InvalidScope> {
        if self.invalid {
            Err(InvalidScope)
        } else {
            Ok(())
        }
    }

    /// Recomputes the closure of the declared edges.
    fn seal(mut self) -> Self {
        let mut direct: HashMap<&str, Vec<&str>> = HashMap::new();
        for (broader, narrower) in &self.edges {
            direct.entry(&**narrower).or_default().push(&**broader);
        }
        let mut implied_by = HashMap::new();
        for &narrower in direct.keys() {
            // Everything that reaches `narrower`, walking edges backwards.
            let mut seen: HashSet<&str> = HashSet::new();
            let mut stack = vec![narrower];
            while let Some(scope) = stack.pop() {
                for &broader in direct.get(scope).into_iter().flatten() {
                    if broader != narrower && seen.insert(broader) {
                        stack.push(broader);
                    }
                }
            }
            let mut broader: Vec<Box<str>> = seen.into_iter().map(Box::from).collect();
            broader.sort();
            implied_by.insert(Box::from(narrower), broader.into_boxed_slice());
        }
        self.implied_by = implied_by;
        self
    }
}

/// Whether `granted` meets `required` (all of them, or one when `any`),
/// through `hierarchy` when the gate has one. A requirement that names no
/// scope is never met.
pub(crate) fn scopes_met<T: AsRef<str>>(
    granted: &Scopes,
    required: &[T],
    any: bool,
    hierarchy: Option<&ScopeHierarchy>,
) -> bool {
    if required.is_empty() {
        return false;
    }
    let one = |scope: &T| match hierarchy {
        Some(h) => h.grants(granted, scope.as_ref()),
        None => granted.contains(scope.as_ref()),
    };
    if any {
        required.iter().any(one)
    } else {
        required.iter().all(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_and_prefixes_are_followed_but_never_backwards() {
        let h = ScopeHierarchy::new()
            .implies("c", ["b"])
            .implies("b", ["a"])
            .covers("b", "b:");
        let s = |x: &str| Scopes::parse(x).unwrap();
        assert!(h.grants(&s("c"), "a"));
        assert!(h.grants(&s("c"), "b:x"));
        assert!(!h.grants(&s("a"), "b"));
        assert!(!h.grants(&s("a"), "b:x"));
        assert!(!h.grants(&s("b:x"), "b"));
        // A cycle ends.
        let cycle = ScopeHierarchy::new()
            .implies("x", ["y"])
            .implies("y", ["x"]);
        assert!(cycle.grants(&s("x"), "y") && cycle.grants(&s("y"), "x"));
        assert!(!cycle.grants(&s("z"), "x"));
        assert!(
            ScopeHierarchy::new()
                .implies("two words", ["a"])
                .check()
                .is_err()
        );
    }
}
