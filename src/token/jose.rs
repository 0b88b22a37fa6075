//! JWT access tokens: the JOSE header (RFC 7515 §4, RFC 8725 §3), the
//! signature, and the registered claims (RFC 7519 §4.1, RFC 9068 §2–4).
//!
//! Order of work: the header is read (cheap, and it decides nothing but which
//! key to try), the signature is verified with a key chosen by `kid` and bound
//! to its algorithms, and only then is the payload decoded and validated.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::InvalidToken;
use crate::keys::{Algorithm, VerifyingKey, parse_alg};
use crate::principal::{Principal, TokenSource};
use crate::token::claims::{ClaimRules, Registered, Seen, Str, Strings, non_null_str};

/// A JWT split into its parts, with the header read and checked.
/// `Debug` shows the algorithm and `kid` only: the rest is the token.
pub(crate) struct Jws<'t> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
}

impl std::fmt::Debug for Jws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jws")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The JOSE header parameters we read, borrowed from the decoded header.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Str<'a>,
    // `kid` and `typ` are strings when present (RFC 7515 §4.1.4, §4.1.9):
    // `null` is malformed, not absent.
    #[serde(default, borrow, deserialize_with = "non_null_str")]
    kid: Option<Str<'a>>,
    #[serde(default, borrow, deserialize_with = "non_null_str")]
    typ: Option<Str<'a>>,
    // Present at all means "you must understand these extensions"; we
    // understand none, so its contents do not matter.
    #[serde(default)]
    crit: Seen,
}

/// Whether a token has the JWS compact shape (three parts). Anything else is
/// an opaque token (or a JWE, which a resource server cannot read either).
pub(crate) fn is_jws_compact(token: &str) -> bool {
    let mut dots = token.bytes().filter(|&b| b == b'.');
    matches!(
        (dots.next(), dots.next(), dots.next()),
        (Some(_), Some(_), None)
    )
}

/// Splits a compact JWS and checks its header: a known, allowed-by-name
/// algorithm (never `none`), no `crit`, an access-token `typ`.
pub(crate) fn parse<'t>(token: &'t str, rules: &ClaimRules) -> Result<Jws<'t>, InvalidToken> {
    let (signing_input, signature) = token.rsplit_once('.').ok_or(InvalidToken::Malformed)?;
    let (header_b64, payload) = signing_input
        .split_once('.')
        .ok_or(InvalidToken::Malformed)?;
    if header_b64.is_empty() || payload.is_empty() || signature.is_empty() || payload.contains('.')
    {
        return Err(InvalidToken::Malformed);
    }
    // Headers are small: decode on the stack, and spare the allocator on
    // the path garbage takes.
    let mut stack = [0u8; 512];
    let heap;
    let header_json: &[u8] = match URL_SAFE_NO_PAD.decode_slice(header_b64, &mut stack) {
        Ok(n) => &stack[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = URL_SAFE_NO_PAD
                .decode(header_b64)
                .map_err(|_| InvalidToken::Malformed)?;
            &heap
        }
        Err(_) => return Err(InvalidToken::Malformed),
    };
    // RFC 7515 §4: the header is a JSON object (serde would also take an
    // array for a struct). Checking both ends first also turns most garbage
    // away before the JSON parser is asked.
    let not_ws = |b: &&u8| !b.is_ascii_whitespace();
    if header_json.iter().find(not_ws) != Some(&b'{')
        || header_json.iter().rev().find(not_ws) != Some(&b'}')
    {
        return Err(InvalidToken::Malformed);
    }
    let header: Header =
        serde_json::from_slice(header_json).map_err(|_| InvalidToken::Malformed)?;
    let alg = parse_alg(header.alg.as_str())
        .filter(|alg| rules.algorithms.contains(*alg))
        .ok_or(InvalidToken::UnsupportedAlgorithm)?;
    if header.crit.0 {
        return Err(InvalidToken::UnsupportedCritical);
    }
    check_typ(header.typ.as_ref().map(Str::as_str), rules.strict_rfc9068)?;
    Ok(Jws {
        alg,
        kid: header.kid.map(|kid| kid.as_str().to_owned()),
        signing_input,
        payload,
        signature,
    })
}

/// RFC 9068 §2.1 says access tokens carry `typ: at+jwt`; media types compare
/// case-insensitively and may carry the `application/` prefix (RFC 7515
/// §4.1.9). Outside strict mode, the many issuers that send `JWT` or nothing
/// are accepted too; any other type (an ID token's or a DPoP proof's, say) is
/// never an access token.
fn check_typ(typ: Option<&str>, strict: bool) -> Result<(), InvalidToken> {
    let Some(typ) = typ else {
        return if strict {
            Err(InvalidToken::WrongType)
        } else {
            Ok(())
        };
    };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    let ok = bare.eq_ignore_ascii_case("at+jwt") || (!strict && bare.eq_ignore_ascii_case("jwt"));
    if ok {
        Ok(())
    } else {
        Err(InvalidToken::WrongType)
    }
}

/// The one claim read before the signature is checked, to choose among
/// trusted issuers. A repeated `iss` is an error (derived structs refuse
/// duplicate fields), as it is when the claims are validated.
#[derive(Deserialize)]
struct Issuer<'a> {
    #[serde(default, borrow, deserialize_with = "non_null_str")]
    iss: Option<Str<'a>>,
    /// A multi-tenant issuer's `tid`.
    #[serde(default, borrow, deserialize_with = "non_null_str")]
    tid: Option<Str<'a>>,
}

impl Jws<'_> {
    /// Calls `route` with the payload's `iss`, unverified: it may only
    /// choose among configured issuers (by exact match), never build a URL.
    /// The chosen issuer's rules check `iss` again once the signature
    /// verifies. `None`: no `iss`, or a payload that does not decode.
    pub(crate) fn with_unverified_issuer<T>(
        &self,
        route: impl FnOnce(Option<&str>, Option<&str>) -> T,
    ) -> T {
        let Ok(payload) = URL_SAFE_NO_PAD.decode(self.payload) else {
            return route(None, None);
        };
        match serde_json::from_slice::<Issuer>(&payload) {
            Ok(Issuer {
                iss: Some(iss),
                tid,
            }) => route(Some(iss.as_str()), tid.as_ref().map(Str::as_str)),
            _ => route(None, None),
        }
    }

    /// Verifies the signature with `key`, then decodes and validates the
    /// claims, and builds the principal.
    pub(crate) fn verify(
        &self,
        key: &VerifyingKey,
        rules: &ClaimRules,
        now: u64,
    ) -> Result<Principal, InvalidToken> {
        let signature = URL_SAFE_NO_PAD
            .decode(self.signature)
            .map_err(|_| InvalidToken::Malformed)?;
        key.verify(self.alg, self.signing_input.as_bytes(), &signature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| InvalidToken::Malformed)?;
        let claims = String::from_utf8(payload).map_err(|_| InvalidToken::Malformed)?;
        Principal::from_json(claims, TokenSource::Jwt, &rules.roles, |claims| {
            validate(claims, rules, now)
        })
    }
}

fn validate(claims: &Registered<'_>, rules: &ClaimRules, now: u64) -> Result<(), InvalidToken> {
    claims.check_times(true, rules.leeway_secs, now)?;
    claims.check_jwt_issuer(rules)?;
    claims.check_audience(&rules.audiences, true)?;
    claims.check_binding(rules.dpop)?;
    // An OpenID Connect ID token whose audience happens to be ours (a client
    // id that is also an API, common on Entra) is not an access token
    // (RFC 9068 §4, RFC 8725 §3.11). Outside strict mode `typ` cannot tell
    // them apart, so the claims only an ID token carries do.
    if claims.has_id_token_claims() && !rules.strict_rfc9068 {
        return Err(InvalidToken::WrongType);
    }
    // Nor is a token whose issuer says, in the payload, that it is an ID or
    // refresh token (Cognito's `token_use: id`, Keycloak's `typ: ID`): a
    // Cognito ID token's `aud` is the client id, which an API that takes
    // Cognito access tokens (no `aud`) cannot otherwise tell apart.
    if claims.says_not_an_access_token() {
        return Err(InvalidToken::WrongType);
    }
    if rules.strict_rfc9068 {
        // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat and jti are REQUIRED.
        let present = [
            claims.sub.is_some(),
            claims.client_id.is_some(),
            claims.iat.is_some(),
            claims.jti.is_some(),
            matches!(claims.aud, Strings::One(_) | Strings::Many(_)),
        ];
        if present.contains(&false) {
            return Err(InvalidToken::MissingClaim);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value, json};

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn token(header: serde_json::Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({})))
    }

    fn header_rules(strict: bool) -> ClaimRules {
        ClaimRules {
            strict_rfc9068: strict,
            ..ClaimRules::for_tests()
        }
    }

    /// What [`parse`] says of a token with this header.
    fn parse_header(header: serde_json::Value, strict: bool) -> Result<(), InvalidToken> {
        parse(&token(header), &header_rules(strict)).map(drop)
    }

    fn claims(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    /// The rules on claims as JSON: parsed, then checked.
    fn validate(
        claims: &Map<String, Value>,
        rules: &ClaimRules,
        now: u64,
    ) -> Result<(), InvalidToken> {
        let json = serde_json::to_string(claims).unwrap();
        super::validate(&Registered::parse(&json)?, rules, now)
    }

    #[test]
    fn shape_is_three_parts() {
        assert!(is_jws_compact("a.b.c"));
        assert!(!is_jws_compact("a.b"));
        assert!(!is_jws_compact("a.b.c.d.e"));
        assert!(!is_jws_compact("opaque"));
    }

    #[test]
    fn none_and_unknown_algorithms_are_refused() {
        for alg in ["none", "None", "NONE", "nOnE", "RS1", "", "HS256 "] {
            assert_eq!(
                parse_header(json!({"alg": alg}), false),
                Err(InvalidToken::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        assert_eq!(
            parse_header(json!({"alg": 256}), false),
            Err(InvalidToken::Malformed)
        );
    }

    #[test]
    fn null_kid_or_typ_is_malformed() {
        for header in [
            json!({"alg": "ES256", "kid": null}),
            json!({"alg": "ES256", "typ": null}),
            json!({"alg": "ES256", "kid": 7}),
        ] {
            assert_eq!(
                parse_header(header.clone(), false),
                Err(InvalidToken::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn crit_is_refused() {
        assert_eq!(
            parse_header(json!({"alg": "ES256", "crit": ["exp"], "exp": 1}), false),
            Err(InvalidToken::UnsupportedCritical)
        );
    }

    #[test]
    fn typ_rules() {
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
            "JWT",
            "jwt",
            "application/jwt",
        ] {
            assert_eq!(
                parse_header(json!({"alg": "ES256", "typ": typ}), false),
                Ok(()),
                "{typ}"
            );
        }
        assert_eq!(parse_header(json!({"alg": "ES256"}), false), Ok(()));
        for typ in ["dpop+jwt", "id_token", "JOSE", "secevent+jwt", ""] {
            assert_eq!(
                parse_header(json!({"alg": "ES256", "typ": typ}), false),
                Err(InvalidToken::WrongType),
                "{typ}"
            );
        }
        assert_eq!(
            parse_header(json!({"alg": "ES256", "typ": "JWT"}), true),
            Err(InvalidToken::WrongType)
        );
        assert_eq!(
            parse_header(json!({"alg": "ES256"}), true),
            Err(InvalidToken::WrongType)
        );
        assert_eq!(
            parse_header(json!({"alg": "ES256", "typ": "at+jwt"}), true),
            Ok(())
        );
    }

    #[test]
    fn malformed_encodings_are_refused() {
        for t in [
            "..",
            "a..c",
            ".b.c",
            "a.b.",
            "!!!.e30.c2ln",
            "e30=.e30.c2ln",
            "bnVsbA.e30.c2ln",
        ] {
            assert!(parse(t, &header_rules(false)).is_err(), "{t}");
        }
        let dup = format!(
            "{}.e30.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","alg":"ES256"}"#)
        );
        assert_eq!(
            parse(&dup, &header_rules(false)).unwrap_err(),
            InvalidToken::Malformed
        );
    }

    #[test]
    fn expiry_is_required_and_checked_with_leeway() {
        let r = ClaimRules::for_tests();
        let base = json!({"iss": "https://as", "aud": "api"});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims(base.clone());
            c.insert(k.into(), v);
            c
        };
        assert_eq!(
            validate(&claims(base.clone()), &r, 1000),
            Err(InvalidToken::MissingClaim)
        );
        assert_eq!(validate(&with("exp", json!(1000)), &r, 1000), Ok(()));
        assert_eq!(validate(&with("exp", json!(1000)), &r, 1059), Ok(()));
        assert_eq!(
            validate(&with("exp", json!(1000)), &r, 1060),
            Err(InvalidToken::Expired)
        );
        assert_eq!(
            validate(&with("exp", json!("2000")), &r, 1000),
            Err(InvalidToken::MalformedClaim)
        );
    }

    #[test]
    fn nbf_and_iat_allow_leeway_only() {
        let r = ClaimRules::for_tests();
        let c =
            |k: &str, v: u64| claims(json!({"iss": "https://as", "aud": "api", "exp": 5000, k: v}));
        assert_eq!(validate(&c("nbf", 1060), &r, 1000), Ok(()));
        assert_eq!(
            validate(&c("nbf", 1061), &r, 1000),
            Err(InvalidToken::NotYetValid)
        );
        assert_eq!(validate(&c("iat", 1060), &r, 1000), Ok(()));
        assert_eq!(
            validate(&c("iat", 1061), &r, 1000),
            Err(InvalidToken::IssuedInFuture)
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let r = ClaimRules::for_tests();
        let c = |iss: serde_json::Value| claims(json!({"iss": iss, "aud": "api", "exp": 5000}));
        assert_eq!(
            validate(&c(json!("https://as/")), &r, 1000),
            Err(InvalidToken::WrongIssuer)
        );
        assert_eq!(
            validate(&c(json!("https://AS")), &r, 1000),
            Err(InvalidToken::WrongIssuer)
        );
        assert_eq!(
            validate(&c(json!(["https://as"])), &r, 1000),
            Err(InvalidToken::MalformedClaim)
        );
        let no_iss = claims(json!({"aud": "api", "exp": 5000}));
        assert_eq!(validate(&no_iss, &r, 1000), Err(InvalidToken::MissingClaim));
    }

    #[test]
    fn audience_must_contain_ours() {
        let r = ClaimRules::for_tests();
        let c =
            |aud: serde_json::Value| claims(json!({"iss": "https://as", "aud": aud, "exp": 5000}));
        assert_eq!(validate(&c(json!(["x", "api"])), &r, 1000), Ok(()));
        assert_eq!(
            validate(&c(json!("apix")), &r, 1000),
            Err(InvalidToken::WrongAudience)
        );
        assert_eq!(
            validate(&c(json!([])), &r, 1000),
            Err(InvalidToken::WrongAudience)
        );
        assert_eq!(
            validate(&c(json!(["api", 1])), &r, 1000),
            Err(InvalidToken::MalformedClaim)
        );
        let none = claims(json!({"iss": "https://as", "exp": 5000}));
        assert_eq!(validate(&none, &r, 1000), Err(InvalidToken::MissingClaim));
        let any = ClaimRules {
            audiences: vec![],
            ..ClaimRules::for_tests()
        };
        assert_eq!(validate(&none, &any, 1000), Ok(()));
    }

    #[test]
    fn strict_mode_requires_rfc9068_claims() {
        let strict = ClaimRules {
            strict_rfc9068: true,
            ..ClaimRules::for_tests()
        };
        let full = json!({"iss": "https://as", "aud": "api", "exp": 5000, "sub": "s", "client_id": "c", "iat": 900, "jti": "j"});
        assert_eq!(validate(&claims(full.clone()), &strict, 1000), Ok(()));
        for missing in ["sub", "client_id", "iat", "jti"] {
            let mut c = claims(full.clone());
            c.remove(missing);
            assert_eq!(
                validate(&c, &strict, 1000),
                Err(InvalidToken::MissingClaim),
                "{missing}"
            );
        }
    }
}
