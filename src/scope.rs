//! Scopes: RFC 6749 §3.3 syntax and set operations. The one place where
//! scope strings are parsed, for JWT claims, introspection answers and guards.
//!
//! ```text
//! scope       = scope-token *( SP scope-token )
//! scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
//! ```

use std::fmt;
use std::sync::Arc;

/// A set of OAuth 2.0 scopes, as granted to a token.
///
/// Order and duplicates in the source are not significant. Cheap to clone.
///
/// ```
/// use tokengate::Scopes;
///
/// let scopes = Scopes::parse("items:read items:write").unwrap();
/// assert!(scopes.contains("items:read"));
/// assert!(scopes.contains_all(["items:read", "items:write"]));
/// assert!(scopes.contains_any(["admin", "items:write"]));
/// assert!(!scopes.contains_all(["items:read", "admin"]));
/// assert_eq!(scopes.to_string(), "items:read items:write");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes {
    // Sorted and deduplicated, so equality and lookups ignore source order.
    tokens: Arc<[Box<str>]>,
}

/// A scope string that is not RFC 6749 §3.3 syntax.
///
/// ```
/// assert!(tokengate::Scopes::parse("a \"b\"").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope is not RFC 6749 §3.3 syntax")]
pub struct InvalidScope;

impl Scopes {
    /// Parses a space-separated scope string (RFC 6749 §3.3). Runs of spaces
    /// are tolerated; any character outside `scope-token` is an error. The
    /// empty string is the empty set.
    ///
    /// ```
    /// let s = tokengate::Scopes::parse("b a  a").unwrap();
    /// assert_eq!(s.len(), 2);
    /// ```
    pub fn parse(s: &str) -> Result<Self, InvalidScope> {
        Self::try_from_iter(s.split(' ').filter(|t| !t.is_empty()))
    }

    /// Builds a set from individual scope tokens, checking each one.
    ///
    /// ```
    /// let s = tokengate::Scopes::try_from_iter(["openid", "items:read"]).unwrap();
    /// assert!(s.contains("openid"));
    /// assert!(tokengate::Scopes::try_from_iter(["two words"]).is_err());
    /// ```
    pub fn try_from_iter<I, T>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut v: Vec<Box<str>> = Vec::new();
        for token in tokens {
            let token = token.as_ref();
            if !is_scope_token(token) {
                return Err(InvalidScope);
            }
            v.push(token.into());
        }
        v.sort_unstable();
        v.dedup();
        Ok(Scopes { tokens: v.into() })
    }

    /// Whether `scope` is granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.tokens
            .binary_search_by(|t| t.as_ref().cmp(scope))
            .is_ok()
    }

    /// Whether every one of `scopes` is granted (true for an empty list).
    pub fn contains_all<I, T>(&self, scopes: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        scopes.into_iter().all(|s| self.contains(s.as_ref()))
    }

    /// Whether at least one of `scopes` is granted (false for an empty list).
    pub fn contains_any<I, T>(&self, scopes: I) -> bool
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        scopes.into_iter().any(|s| self.contains(s.as_ref()))
    }

    /// The scopes, in sorted order.
    ///
    /// ```
    /// let s = tokengate::Scopes::parse("b a").unwrap();
    /// assert_eq!(s.iter().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.tokens.iter().map(|t| t.as_ref())
    }

    /// How many distinct scopes.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Whether `s` is one RFC 6749 §3.3 `scope-token`: visible ASCII except `"`
/// and `\`, at least one character.
///
/// ```
/// assert!(tokengate::is_scope_token("items:write"));
/// assert!(!tokengate::is_scope_token("items write"));
/// assert!(!tokengate::is_scope_token(""));
/// ```
pub const fn is_scope_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b == 0x21 || (b >= 0x23 && b <= 0x5B) || (b >= 0x5D && b <= 0x7E)) {
            return false;
        }
        i += 1;
    }
    true
}

impl fmt::Display for Scopes {
    /// The RFC 6749 §3.3 form: scopes separated by single spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.tokens.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc6749_scope_syntax() {
        let s = Scopes::parse(
            "openid items:read https://api.example.com/x.y!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
        )
        .unwrap();
        assert_eq!(s.len(), 3);
        assert!(Scopes::parse("").unwrap().is_empty());
        assert!(Scopes::parse("  ").unwrap().is_empty());
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "a\tb", "é", "a\u{7f}", "a\nb"] {
            assert_eq!(Scopes::parse(bad), Err(InvalidScope), "{bad:?}");
        }
    }

    #[test]
    fn set_semantics_ignore_order_and_duplicates() {
        assert_eq!(
            Scopes::parse("b a b").unwrap(),
            Scopes::parse("a b").unwrap()
        );
        let s = Scopes::parse("a b").unwrap();
        assert!(s.contains_all::<_, &str>([]));
        assert!(!s.contains_any::<_, &str>([]));
        assert!(!s.contains("c"));
    }
}
