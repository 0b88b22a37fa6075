//! Compile errors of `#[require_scopes]` and `scope_set!` for malformed
//! scopes (trybuild).

#[test]
fn malformed_scopes_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
