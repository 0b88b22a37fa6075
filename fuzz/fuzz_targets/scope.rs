//! `Scopes::parse`, `Scopes::try_from_iter` and `is_scope_token` on
//! arbitrary strings, checked against an independent reading of RFC 6749
//! §3.3:
//!
//! ```text
//! scope       = scope-token *( SP scope-token )
//! scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
//! ```
//!
//! Properties: `is_scope_token` agrees with the grammar; `parse` succeeds
//! exactly when every space-separated piece is a scope token; every parsed
//! token satisfies `is_scope_token`; the set is sorted, deduplicated and
//! holds exactly the pieces; `to_string` round-trips through `parse`;
//! `try_from_iter` over the pieces gives the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::{Scopes, is_scope_token};

fn reference_is_token(s: &str) -> bool {
    !s.is_empty()
        && s
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();

    assert_eq!(is_scope_token(s), reference_is_token(s), "is_scope_token({s:?})");

    let pieces: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
    let expected_ok = pieces.iter().all(|p| reference_is_token(p));
    let parsed = Scopes::parse(s);
    assert_eq!(parsed.is_ok(), expected_ok, "parse({s:?}) = {parsed:?}");
    assert_eq!(Scopes::try_from_iter(&pieces), parsed, "try_from_iter vs parse for {s:?}");

    let Ok(scopes) = parsed else {
        return;
    };
    let tokens: Vec<&str> = scopes.iter().collect();
    assert_eq!(tokens.len(), scopes.len());
    assert_eq!(scopes.is_empty(), pieces.is_empty());
    for t in &tokens {
        assert!(is_scope_token(t), "parsed a non-token {t:?}");
        assert!(scopes.contains(t));
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "not sorted/deduplicated: {tokens:?}");
    let mut distinct = pieces.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(tokens, distinct, "the set is not the pieces");
    assert!(scopes.contains_all(&pieces));
    assert_eq!(scopes.contains_any(&pieces), !pieces.is_empty());

    // Round trip through the RFC 6749 §3.3 form.
    let text = scopes.to_string();
    assert!(!text.contains("  ") && !text.starts_with(' ') && !text.ends_with(' '));
    let again = Scopes::parse(&text).expect("to_string output parses");
    assert_eq!(again, scopes, "round trip changed the set: {text:?}");
    assert_eq!(again.to_string(), text);
    if is_scope_token(s) {
        assert_eq!(tokens, [s], "a single token parses to itself");
    }
    // A string that is not all tokens never matches a set member.
    if !is_scope_token(s) {
        assert!(!scopes.contains(s) || s.is_empty());
    }
    let _ = format!("{scopes:?}");
});
