//! Encoding and shape (RFC 7515 §3.1, §4, §7.1; RFC 6750 §2.1 b64token):
//! base64url exactly, three parts, a JOSE header that is a JSON object of
//! valid UTF-8.

use base64::Engine as _;
use tokengate::InvalidToken;

use crate::jose::*;
use crate::target::*;

/// `part` with the character at `index` replaced by `c`.
fn with_char(part: &str, index: usize, c: char) -> String {
    let mut s: Vec<char> = part.chars().collect();
    s[index] = c;
    s.into_iter().collect()
}

/// A base64url string of the same decoded bytes but with the unused low
/// bits of the last character set: a non-canonical encoding.
fn non_canonical(part: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match part.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *part.as_bytes().last()?;
    let value = ALPHABET.iter().position(|&b| b == last)?;
    let changed = value | ((1 << unused_bits) - 1);
    if changed == value {
        return None;
    }
    let mut s = part[..part.len() - 1].to_owned();
    s.push(ALPHABET[changed] as char);
    Some(s)
}

/// `part` grown to a length no base64 string can have (4n + 1).
fn impossible_length(part: &str) -> String {
    let mut s = part.to_owned();
    while s.len() % 4 != 1 {
        s.push('A');
    }
    s
}

/// Decodes ignoring non-canonical trailing bits.
fn unb64_lenient(part: &str) -> Vec<u8> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(part).unwrap()
}

/// A token whose header is these raw bytes, with claims and signature of a
/// genuine token.
fn with_header_bytes(header: &[u8], c: &str, s: &str) -> String {
    format!("{}.{c}.{s}", b64(header))
}

#[tokio::test]
async fn invalid_base64url_in_each_part_is_refused() {
    let t = Target::new().await;
    let (h, c, s) = parts(&t.issuer.token().sign());
    let in_header = |x: String| format!("{x}.{c}.{s}");
    let in_payload = |x: String| format!("{h}.{x}.{s}");
    let in_signature = |x: String| format!("{h}.{c}.{x}");
    // Characters b64token allows but base64url does not: the token is
    // well-formed for RFC 6750, malformed for RFC 7515.
    let mut cases = cases_with(
        InvalidToken::Malformed,
        [
            ("header with '+'", in_header(with_char(&h, 3, '+'))),
            ("header with '/'", in_header(with_char(&h, 3, '/'))),
            ("header with '~'", in_header(with_char(&h, 3, '~'))),
            (
                "header of impossible length",
                in_header(impossible_length(&h)),
            ),
            ("signature with '+'", in_signature(with_char(&s, 3, '+'))),
            ("signature with '/'", in_signature(with_char(&s, 3, '/'))),
            ("signature padded with '=='", in_signature(format!("{s}=="))),
            (
                "signature of impossible length",
                in_signature(impossible_length(&s)),
            ),
        ],
    );
    // The payload is covered by the signature, so any change to its text
    // fails there first.
    cases.extend(cases_with(
        InvalidToken::BadSignature,
        [
            ("payload with '+'", in_payload(with_char(&c, 3, '+'))),
            ("payload with '~'", in_payload(with_char(&c, 3, '~'))),
            (
                "payload of impossible length",
                in_payload(impossible_length(&c)),
            ),
        ],
    ));
    // Non-canonical base64url: same bytes, different text.
    if let Some(sig) = non_canonical(&s) {
        assert_eq!(unb64_lenient(&sig), unb64(&s));
        let label = "signature base64url non-canonical (same bytes)";
        cases.push(case(label, in_signature(sig), InvalidToken::Malformed));
    }
    if let Some(header) = non_canonical(&h) {
        let label = "header base64url non-canonical (same bytes)";
        cases.push(case(label, in_header(header), InvalidToken::Malformed));
    }
    // Characters outside b64token (RFC 6750 §2.1; '=' only at the end): the
    // request itself is malformed.
    cases.extend(cases_with(
        Expect::BadRequest,
        [
            ("header with '!'", in_header(with_char(&h, 3, '!'))),
            ("payload with '*'", in_payload(with_char(&c, 3, '*'))),
            ("signature with '%'", in_signature(with_char(&s, 3, '%'))),
            ("header padded ('=' mid-token)", in_header(format!("{h}="))),
            ("header padded twice", in_header(format!("{h}=="))),
        ],
    ));
    t.check_all(cases).await;
}

#[tokio::test]
async fn extra_dots_are_refused() {
    let t = Target::new().await;
    let (h, c, s) = parts(&t.issuer.token().sign());
    let mut cases = cases_with(
        InvalidToken::NotAJwt,
        [
            ("4 parts", format!("{h}.{c}.{s}.{s}")),
            ("5 parts (JWE-shaped)", format!("{h}.{c}.{s}.{c}.{s}")),
            ("trailing dot", format!("{h}.{c}.{s}.")),
            ("leading dot", format!(".{h}.{c}.{s}")),
            ("double dot", format!("{h}..{c}.{s}")),
            ("dots only (....)", "....".to_owned()),
        ],
    );
    cases.extend(cases_with(
        InvalidToken::Malformed,
        [
            ("empty header", format!(".{c}.{s}")),
            ("empty payload", format!("{h}..{s}")),
            ("dots only (..)", "..".to_owned()),
        ],
    ));
    t.check_all(cases).await;
}

#[tokio::test]
async fn non_utf8_and_control_bytes_in_the_header_are_refused() {
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    let malformed: [(&str, &[u8]); 13] = [
        (
            "invalid UTF-8 in kid",
            b"{\"alg\":\"ES256\",\"kid\":\"\xff\"}",
        ),
        ("truncated UTF-8 in alg", b"{\"alg\":\"ES256\xc3\"}"),
        (
            "overlong UTF-8 '/'",
            b"{\"alg\":\"ES256\",\"kid\":\"\xc0\xaf\"}",
        ),
        ("UTF-8 byte order mark", b"\xef\xbb\xbf{\"alg\":\"ES256\"}"),
        (
            "raw NUL in a string",
            b"{\"alg\":\"ES256\",\"kid\":\"a\x00b\"}",
        ),
        (
            "raw control byte as whitespace",
            b"{\"alg\":\"ES256\",\x01\"kid\":\"k\"}",
        ),
        ("trailing NUL after the object", b"{\"alg\":\"ES256\"}\x00"),
        (
            "lone surrogate escape in kid",
            b"{\"alg\":\"ES256\",\"kid\":\"\\ud800\"}",
        ),
        (
            "duplicate alg (none, then ES256)",
            b"{\"alg\":\"none\",\"alg\":\"ES256\"}",
        ),
        ("header JSON null", b"null"),
        ("header JSON string", b"\"ES256\""),
        ("header empty object", b"{}"),
        ("header not JSON", b"alg=ES256"),
    ];
    let header = |bytes: &[u8]| with_header_bytes(bytes, &c, &s);
    let malformed = malformed.map(|(label, bytes)| (label, header(bytes)));
    t.check_all(cases_with(InvalidToken::Malformed, malformed))
        .await;
    // Well-formed JSON whose values hold escaped control characters.
    let nul_alg = header(br#"{"alg":"ES256\u0000","typ":"at+jwt"}"#);
    t.check(
        "escaped NUL in alg",
        &nul_alg,
        InvalidToken::UnsupportedAlgorithm,
    )
    .await;
    let nul_kid = header(br#"{"alg":"ES256","kid":"a\u0000b"}"#);
    t.check("escaped NUL in kid", &nul_kid, InvalidToken::UnknownKey)
        .await;
    t.jwks_fetches_bounded();
}

/// JOSE headers that are JSON arrays naming `alg` first (RFC 7515 §4 wants
/// an object), labelled by their text.
fn array_headers(alg: &str) -> [String; 2] {
    [
        format!(r#"["{alg}"]"#),
        format!(r#"["{alg}",null,"at+jwt"]"#),
    ]
}

#[tokio::test]
async fn non_object_jose_header_is_refused() {
    // RFC 7515 §4: the JOSE header is a JSON object. A JSON array in its
    // place should be malformed; today it is read positionally as (alg, kid,
    // typ, crit) and refused only because the signature does not verify (see
    // `signed_token_with_an_array_header_is_refused`), so the reason is not
    // pinned here.
    let t = Target::new().await;
    let (_, c, s) = parts(&t.issuer.token().sign());
    let rows = array_headers("ES256").map(|header| {
        let token = with_header_bytes(header.as_bytes(), &c, &s);
        (format!("header JSON array {header}"), token)
    });
    t.check_all(cases_with(Expect::Refused, rows)).await;
}

#[tokio::test]
async fn signed_token_with_an_array_header_is_refused() {
    // With a key the attacker holds (here a shared secret), a token whose
    // header is `["HS256"]` verifies. The header is not a JSON object, so
    // RFC 7515 §4 says it is not a JWS; other parsers on the path (a
    // gateway, a logger) will read it differently.
    let t = Target::with_shared_secret(16 * 1024).await;
    let claims = format!("{}}}", t.valid_claims_prefix());
    let rows = array_headers("HS256").map(|header| {
        let token = hs256(header.as_bytes(), claims.as_bytes());
        (format!("HS256-signed, header {header}"), token)
    });
    t.check_all(cases_with(InvalidToken::Malformed, rows)).await;
}
