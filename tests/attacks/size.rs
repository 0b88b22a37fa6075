//! Size and depth: a token over the length limit is refused before any
//! parsing, and JSON nested deeper than the parser's limit, or holding what
//! no JSON reader can represent, is refused rather than crashing or
//! accepted half-read.

use tokengate::InvalidToken;
use tokengate::testing::Endpoint;

use crate::jose::*;
use crate::target::*;

/// `[` × n then `]` × n.
fn brackets(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// `{"a":` × n, `1`, then `}` × n.
fn objects(levels: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
}

#[tokio::test]
async fn a_64_kib_token_is_refused_before_parsing() {
    let t = Target::new().await;
    let (h, _, s) = parts(&t.issuer.token().sign());
    let big_payload = b64(&vec![b' '; 48 * 1024]);
    let jwt_shaped = format!("{h}.{big_payload}.{s}");
    assert!(jwt_shaped.len() >= 64 * 1024);
    let cases = [
        ("64 KiB of 'a'", "a".repeat(64 * 1024)),
        ("64 KiB JWT-shaped", jwt_shaped),
        ("64 KiB of '\"' (not b64token)", "\"".repeat(64 * 1024)),
        ("16 KiB + 1 of 'a'", "a".repeat(16 * 1024 + 1)),
    ];
    for (label, token) in cases {
        let answer = t.check(label, &token, InvalidToken::TooLong).await;
        assert!(answer.challenge().unwrap().contains("too long"), "{label}");
    }
}

#[tokio::test]
async fn deeply_nested_json_in_the_header_is_refused() {
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    let with_header = |header: String| format!("{}.{c}.{s}", b64(header.as_bytes()));
    // Unbalanced, so it fits the default 16 KiB limit.
    let token = with_header(format!(r#"{{"alg":"ES256","x":{}"#, "[".repeat(10_000)));
    assert!(token.len() <= 16 * 1024);
    t.check(
        "header with 10 000 unclosed '['",
        &token,
        InvalidToken::Malformed,
    )
    .await;
    // Balanced, through a gate that allows big tokens, as any member and as
    // the `crit` value.
    let big = Target::with(|b, _| b.max_token_length(256 * 1024)).await;
    let cases = [
        ("header with 10 000 levels of [ ]", brackets(10_000)),
        ("header with 10 000 levels of {\"a\": }", objects(10_000)),
    ]
    .into_iter()
    .flat_map(|(label, nested)| {
        [
            case(
                label,
                with_header(format!(r#"{{"alg":"ES256","x":{nested}}}"#)),
                Expect::Refused,
            ),
            case(
                format!("{label} in crit"),
                with_header(format!(r#"{{"alg":"ES256","crit":{nested}}}"#)),
                Expect::Refused,
            ),
        ]
    });
    big.check_all(cases.collect::<Vec<_>>()).await;
    big.still_serves().await;
    t.still_serves().await;
}

#[tokio::test]
async fn claims_no_json_reader_can_represent_are_refused() {
    // Members tokengate itself never reads must still be readable through
    // Principal::claims(): a number out of range or a lone surrogate is
    // refused, not accepted with claims a handler would then find empty.
    let t = Target::with_shared_secret(16 * 1024).await;
    let tails = [
        ("number out of range", r#","x":1e400}"#),
        ("negative number out of range", r#","x":[{"y":-1e309}]}"#),
        ("lone high surrogate", r#","x":"\ud800"}"#),
        (
            "lone low surrogate in a skipped object",
            r#","x":{"y":"\udfff"}}"#,
        ),
    ];
    let tokens = tails.map(|(label, tail)| (label, t.signed_claims(tail)));
    t.check_all(cases_with(InvalidToken::Malformed, tokens))
        .await;
}

#[tokio::test]
async fn deeply_nested_json_in_the_claims_is_refused() {
    // The claims are parsed only after the signature verifies, so the
    // attacker here holds a signing key: a gate with a shared secret.
    let t = Target::with_shared_secret(256 * 1024).await;
    let deep = |nested: String| t.signed_claims(&format!(r#","deep":{nested}}}"#));
    let scope = format!("{}\"a\"{}", "[".repeat(10_000), "]".repeat(10_000));
    let unclosed = format!(r#","deep":{}"#, "[".repeat(10_000));
    t.check_all(cases_with(
        InvalidToken::Malformed,
        [
            (
                "claims with 10 000 unclosed '['",
                t.signed_claims(&unclosed),
            ),
            ("claims with 10 000 levels of [ ]", deep(brackets(10_000))),
            (
                "claims with 10 000 levels of {\"a\": }",
                deep(objects(10_000)),
            ),
            (
                "scope nested 10 000 deep",
                t.signed_claims(&format!(r#","scope":{scope}}}"#)),
            ),
        ],
    ))
    .await;
    // Within the documented limit (64 levels, the claims object included)
    // nesting is an ordinary claim; one level more is refused.
    let (valid, one_more) = (deep(brackets(63)), deep(brackets(64)));
    let label = "claims with 63 levels of [ ] (valid)";
    t.check(label, &valid, Expect::Served).await;
    let label = "claims with 64 levels of [ ]";
    t.check(label, &one_more, InvalidToken::Malformed).await;
    // No network was needed for any of it.
    assert_eq!(t.issuer.requests(Endpoint::Jwks), 0);
}
