//! The shape of an authorization server's opaque tokens (prefix, length,
//! alphabet), so tokens of any other shape are refused without a call.

use std::ops::{Bound, RangeBounds};

/// What the authorization server's opaque tokens look like. A token of
/// another shape cannot be one of them: it is refused (401 `invalid_token`)
/// without a call to the introspection endpoint, so a flood of made-up tokens
/// costs the authorization server nothing and takes no slot from real ones.
///
/// Many providers give their tokens a recognizable form: a prefix naming the
/// kind of token, a fixed length, base64url or hex characters. Ask yours, and
/// describe it as tightly as it allows. The default shape admits every
/// RFC 6750 `b64token` (the syntax every bearer token must have anyway).
/// The checks cost a pass over the token and happen before its hash.
///
/// ```
/// use tokengate::{OpaqueTokenShape, TokenAlphabet};
///
/// let shape = OpaqueTokenShape::new()
///     .prefix("ory_at_")
///     .length(40..=200)
///     .alphabet(TokenAlphabet::Base64Url);
/// assert!(shape.admits("ory_at_4Kx1bLh0d1f9ZqLh3v2t0a9UuXo8sYw2eQnR7c6m5kJ"));
/// assert!(!shape.admits("4Kx1bLh0d1f9ZqLh3v2t0a9UuXo8sYw2eQnR7c6m5kJ"), "no prefix");
/// assert!(!shape.admits("ory_at_4Kx1bLh0"), "too short");
/// assert!(!shape.admits("ory_at_4Kx1bLh0d1f9ZqLh3v2t0a9UuXo8sYw2eQnR7c6m5k+"), "not base64url");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueTokenShape {
    prefix: String,
    min_len: usize,
    max_len: usize,
    alphabet: TokenAlphabet,
}

/// The characters an opaque token may have after its
/// [prefix](OpaqueTokenShape::prefix).
///
/// ```
/// use tokengate::{OpaqueTokenShape, TokenAlphabet};
/// assert!(OpaqueTokenShape::new().alphabet(TokenAlphabet::Hex).admits("00ff3a"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenAlphabet {
    /// Any RFC 6750 `b64token`: letters, digits, `-._~+/`, then optional
    /// trailing `=`. The default.
    #[default]
    B64Token,
    /// Unpadded base64url (RFC 4648 §5): letters, digits, `-` and `_`.
    Base64Url,
    /// Letters and digits.
    Alphanumeric,
    /// Hexadecimal digits, either case.
    Hex,
}

impl TokenAlphabet {
    fn admits(self, b: u8) -> bool {
        match self {
            // The bearer extraction already held the token to b64token.
            TokenAlphabet::B64Token => true,
            TokenAlphabet::Base64Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
            TokenAlphabet::Alphanumeric => b.is_ascii_alphanumeric(),
            TokenAlphabet::Hex => b.is_ascii_hexdigit(),
        }
    }
}

impl Default for OpaqueTokenShape {
    fn default() -> Self {
        OpaqueTokenShape {
            prefix: String::new(),
            min_len: 0,
            max_len: usize::MAX,
            alphabet: TokenAlphabet::B64Token,
        }
    }
}

impl OpaqueTokenShape {
    /// The shape that admits every token (the default): narrow it with the
    /// methods below.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens start with this exact, case-sensitive text.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Tokens are this many bytes long, prefix included: `43..=43`,
    /// `32..`, `..=512`.
    #[must_use]
    pub fn length(mut self, bytes: impl RangeBounds<usize>) -> Self {
        self.min_len = match bytes.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        self.max_len = match bytes.end_bound() {
            Bound::Included(&n) => n,
            // `..0` admits nothing: tokens are never empty.
            Bound::Excluded(&n) => n.saturating_sub(1),
            Bound::Unbounded => usize::MAX,
        };
        self
    }

    /// The characters allowed after the prefix.
    #[must_use]
    pub fn alphabet(mut self, alphabet: TokenAlphabet) -> Self {
        self.alphabet = alphabet;
        self
    }

    /// Whether `token` has this shape.
    pub fn admits(&self, token: &str) -> bool {
        (self.min_len..=self.max_len).contains(&token.len())
            && token
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.bytes().all(|b| self.alphabet.admits(b)))
    }
}
