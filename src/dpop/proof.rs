//! One DPoP proof (RFC 9449 §4.2) checked by every rule of §4.3, in the
//! order that refuses garbage cheapest: the size, the header, the key, the
//! signature, then the claims against the request and the token.

use std::time::Duration;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::dpop::replay::ReplayKey;
use crate::error::InvalidDpopProof as Why;
use crate::keys::{AlgorithmSet, VerifyingKey};

/// The proof's `jwk`, as read here: the public members of the three key
/// types a proof can use; a private member of any type (RFC 7518 §6),
/// whatever its value, refuses the key. Read once, by the header's rules
/// (no member twice, other members' values checked), then handed to
/// jsonwebtoken's types directly: their untagged reading would try each
/// key type in turn and format an error for every miss.
#[derive(Default)]
struct ProofJwk {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    /// The members read so far, by bit.
    seen: u8,
}

impl Member for ProofJwk {
    fn member<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let seen = &mut self.seen;
        match name {
            "kty" => once(&mut self.kty, seen, 0, map),
            "crv" => once(&mut self.crv, seen, 1, map),
            "x" => once(&mut self.x, seen, 2, map),
            "y" => once(&mut self.y, seen, 3, map),
            "n" => once(&mut self.n, seen, 4, map),
            "e" => once(&mut self.e, seen, 5, map),
            "d" | "p" | "q" | "dp" | "dq" | "qi" | "oth" | "k" => {
                Err(serde::de::Error::custom("a private key member"))
            }
            _ => Ok(false),
        }
    }
}

impl ProofJwk {
    /// The public key as jsonwebtoken's `Jwk`, for an EC (P-256, P-384),
    /// OKP (Ed25519) or RSA key with its members present.
    fn into_jwk(self) -> Option<Jwk> {
        use jsonwebtoken::jwk::{
            AlgorithmParameters, EllipticCurve, EllipticCurveKeyParameters, OctetKeyPairParameters,
            RSAKeyParameters,
        };
        let algorithm = match (self.kty.as_deref()?, self.crv.as_deref()) {
            ("OKP", Some("Ed25519")) => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: Default::default(),
                curve: EllipticCurve::Ed25519,
                x: self.x?,
            }),
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: Default::default(),
                    curve: if crv == "P-256" {
                        EllipticCurve::P256
                    } else {
                        EllipticCurve::P384
                    },
                    x: self.x?,
                    y: self.y?,
                })
            }
            ("RSA", None) => AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: Default::default(),
                n: self.n?,
                e: self.e?,
            }),
            _ => return None,
        };
        Some(Jwk {
            common: Default::default(),
            algorithm,
        })
    }
}

/// The longest `jti` accepted (RFC 9449 §4.2 asks for enough entropy, not
/// for size; 96 bits of base64url is 16 characters).
const MAX_JTI: usize = 256;

/// What the rules are checked against.
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a Method,
    /// The URL the client used, without query or fragment.
    pub(crate) htu: &'a Url,
    /// The access token presented with the proof.
    pub(crate) token: &'a str,
    /// The token's `cnf.jkt`.
    pub(crate) jkt: Option<&'a str>,
    /// The server's nonces, when it requires one (RFC 9449 §8).
    pub(crate) nonces: Option<&'a crate::dpop::nonce::Nonces>,
    pub(crate) now: u64,
}

/// The proof rules a gate applies.
#[derive(Debug, Clone)]
pub(crate) struct ProofRules {
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) max_len: usize,
    /// How old `iat` may be, and how far in the future.
    pub(crate) past: Duration,
    pub(crate) future: Duration,
}

/// A proof that passed every rule: what its replay check needs.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) replay_key: ReplayKey,
    /// How long the proof stays acceptable: its replay entry must outlive
    /// that.
    pub(crate) ttl: Duration,
}

#[derive(Default)]
struct Header {
    typ: Option<String>,
    alg: Option<String>,
    /// Kept as text, read into the key's members afterwards.
    jwk: Option<Box<serde_json::value::RawValue>>,
    /// No extension is understood here: any `crit` refuses the proof
    /// (RFC 7515 §4.1.11).
    crit: Option<Value>,
    /// The members read so far, by bit.
    seen: u8,
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively,
/// with or without `application/`.
fn is_dpop_type(typ: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case("dpop+jwt")
}

#[derive(Default)]
struct Claims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<u64>,
    ath: Option<String>,
    nonce: Option<String>,
    /// The members read so far, by bit.
    seen: u8,
}

/// Reads an object's members with `member`, refusing one named twice,
/// whatever its name (RFC 7515 §5.2 and RFC 7519 §4 allow that choice; it
/// is tokengate's everywhere): known members by what `member` records,
/// others by name.
struct Members<T>(T);

trait Member: Default {
    /// Reads the value of `name` if it is one of ours; `Ok(false)` for
    /// another name (its value is then skipped). A second value for one of
    /// ours is an error.
    fn member<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<bool, A::Error>;
}

impl<'de, T: Member> Deserialize<'de> for Members<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Member> serde::de::Visitor<'de> for V<T> {
            type Value = Members<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut value = T::default();
                let mut others: Vec<String> = Vec::new();
                while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if !value.member(&name, &mut map)? {
                        if others.iter().any(|o| *o == *name) {
                            return Err(serde::de::Error::custom("a member named twice"));
                        }
                        others.push(name.into_owned());
                        // Checked, not skipped: JSON no reader can hold
                        // (`1e999`, a lone surrogate) is no well-formed
                        // proof, as it is no well-formed token.
                        map.next_value::<crate::token::claims::Checked>()?;
                    }
                }
                Ok(Members(value))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Sets `slot` from the map's next value (`null` leaves it empty), once:
/// bit `bit` of `seen` records that it was given.
fn once<'de, A: serde::de::MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    seen: &mut u8,
    bit: u8,
    map: &mut A,
) -> Result<bool, A::Error> {
    if *seen & (1 << bit) != 0 {
        return Err(serde::de::Error::custom("a member named twice"));
    }
    *seen |= 1 << bit;
    *slot = map.next_value::<Option<T>>()?;
    Ok(true)
}

impl Member for Header {
    fn member<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let seen = &mut self.seen;
        match name {
            "typ" => once(&mut self.typ, seen, 0, map),
            "alg" => once(&mut self.alg, seen, 1, map),
            "jwk" => once(&mut self.jwk, seen, 2, map),
            "crit" => once(&mut self.crit, seen, 3, map),
            _ => Ok(false),
        }
    }
}

impl Member for Claims {
    fn member<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        let seen = &mut self.seen;
        match name {
            "jti" => once(&mut self.jti, seen, 0, map),
            "htm" => once(&mut self.htm, seen, 1, map),
            "htu" => once(&mut self.htu, seen, 2, map),
            "iat" => once(&mut self.iat, seen, 3, map),
            "ath" => once(&mut self.ath, seen, 4, map),
            "nonce" => once(&mut self.nonce, seen, 5, map),
            _ => Ok(false),
        }
    }
}

/// Checks `proof` against `expected` under `rules`.
pub(crate) fn check(
    proof: &[u8],
    rules: &ProofRules,
    expected: &Expected<'_>,
) -> Result<Accepted, Why> {
    if proof.len() > rules.max_len {
        return Err(Why::TooLong);
    }
    let proof = std::str::from_utf8(proof).map_err(|_| Why::Malformed)?;
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Why::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| Why::Malformed);
    // A member named twice, known or not, refuses the proof.
    let Members(header): Members<Header> =
        serde_json::from_slice(&decode(header_b64)?).map_err(|_| Why::Malformed)?;
    if !header.typ.as_deref().is_some_and(is_dpop_type) {
        return Err(Why::WrongType);
    }
    // Present at all, `null` included (bit 3: `crit` was given).
    if header.crit.is_some() || header.seen & (1 << 3) != 0 {
        return Err(Why::Malformed);
    }
    let alg = header
        .alg
        .as_deref()
        .and_then(crate::keys::parse_alg)
        .filter(|alg| rules.algorithms.contains(*alg))
        .ok_or(Why::UnsupportedAlgorithm)?;
    let jwk = header.jwk.ok_or(Why::BadKey)?;
    let Members(jwk): Members<ProofJwk> =
        serde_json::from_str(jwk.get()).map_err(|_| Why::BadKey)?;
    let jwk = jwk.into_jwk().ok_or(Why::BadKey)?;
    let key =
        VerifyingKey::from_jwk(&jwk, AlgorithmSet::from_iter([alg])).map_err(|_| Why::BadKey)?;
    // The key the token is bound to, before the signature costs anything.
    match expected.jkt {
        Some(jkt) if jkt == key.thumbprint() => {}
        _ => return Err(Why::KeyMismatch),
    }
    let signature = decode(sig_b64)?;
    let signed = &proof[..header_b64.len() + 1 + claims_b64.len()];
    key.verify(alg, signed.as_bytes(), &signature)
        .map_err(|_| Why::BadSignature)?;

    let Members(claims): Members<Claims> =
        serde_json::from_slice(&decode(claims_b64)?).map_err(|_| Why::Malformed)?;
    let (Some(jti), Some(htm), Some(htu), Some(iat), Some(ath)) =
        (claims.jti, claims.htm, claims.htu, claims.iat, claims.ath)
    else {
        return Err(Why::MissingClaim);
    };
    if jti.is_empty() || jti.len() > MAX_JTI {
        return Err(Why::Malformed);
    }
    if htm != expected.method.as_str() {
        return Err(Why::WrongMethod);
    }
    // Clients mostly send the URL exactly as it is normalised: then there
    // is nothing to parse.
    if htu != expected.htu.as_str() {
        let host = rfc3986_host(&htu).ok_or(Why::WrongUrl)?;
        let parsed = Url::parse(&htu).map_err(|_| Why::WrongUrl)?;
        // The parser changed nothing in the host but its case (no
        // `0x7f.1` or `2130706433` read as an IPv4 address, no IDNA
        // mapping).
        if parsed.host_str() != Some(host.to_ascii_lowercase().as_str())
            || !same_url(&parsed, expected.htu)
        {
            return Err(Why::WrongUrl);
        }
    }
    let (past, future) = (rules.past.as_secs(), rules.future.as_secs());
    if iat > expected.now.saturating_add(future) || iat.saturating_add(past) < expected.now {
        return Err(Why::Stale);
    }
    if let Some(nonces) = expected.nonces
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.accepts(n, expected.now))
    {
        return Err(Why::UseNonce);
    }
    let token_hash =
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, expected.token.as_bytes()));
    if ath != token_hash {
        return Err(Why::WrongTokenHash);
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(jti.as_bytes());
    // The URL by its normalised parts: two spellings of one URL must not
    // be two entries.
    for part in [
        expected.htu.scheme(),
        expected.htu.host_str().unwrap_or_default(),
        &expected
            .htu
            .port_or_known_default()
            .unwrap_or(0)
            .to_string(),
        expected.htu.path(),
    ] {
        ctx.update(&[0]);
        ctx.update(part.as_bytes());
    }
    let mut replay_key = [0u8; 32];
    replay_key.copy_from_slice(ctx.finish().as_ref());
    Ok(Accepted {
        replay_key,
        // The window, and as much again as a replica's clock may lag
        // another's (RFC 9449 §11.1 asks for clock offsets to be counted).
        ttl: rules
            .past
            .saturating_add(rules.future)
            .saturating_add(rules.future.max(Duration::from_secs(5))),
    })
}

/// The host of `htu` as written, if `htu` is an RFC 3986 URI with an
/// authority that the WHATWG parser (which `url` follows for http(s)) reads
/// as RFC 3986 does; `None` where it would repair something into another
/// URL. The parser drops tabs and newlines, strips spaces and controls at
/// either end (a leading space was found by the dpop fuzz target), reads a
/// backslash as a slash, skips extra slashes (`https:///host/`, found by
/// the fuzz target), finds an authority after `http:/` or `http:` (a
/// reviewer found `http:/host/items?x=://y`), drops an empty userinfo,
/// percent-decodes and IDNA-maps the host, and reads `2130706433` or
/// `0x7f.1` as an IPv4 address. So, before the query or fragment (which
/// are ignored): a scheme, `//`, an authority with no userinfo and no
/// percent sign, and only characters RFC 3986 allows, `%` followed by two
/// hex digits; no space or control anywhere.
fn rfc3986_host(htu: &str) -> Option<&str> {
    if htu.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return None;
    }
    let end = htu.find(['?', '#']).unwrap_or(htu.len());
    let (scheme, rest) = htu[..end].split_once(':')?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = rest.strip_prefix("//")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // RFC 3986 §2: unreserved, sub-delims, `:`, `@`, `/` and `%HH`
    // (`[` and `]` only around an IPv6 host).
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'%'
            )
    };
    let escapes_ok = path
        .split('%')
        .skip(1)
        .all(|after| after.len() >= 2 && after.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit));
    let authority_ok = !authority.is_empty()
        && !authority.contains(['@', '%'])
        && authority
            .bytes()
            .all(|b| allowed(b) || matches!(b, b'[' | b']'));
    if !(scheme_ok && authority_ok && escapes_ok && path.bytes().all(allowed)) {
        return None;
    }
    // The host: an IPv6 literal up to its `]`, else up to the port's `:`.
    let host = match authority.strip_prefix('[') {
        Some(v6) => &authority[..v6.find(']')? + 2],
        None => authority.split(':').next()?,
    };
    Some(host)
}

/// RFC 9449 §4.3 rule 9: the same URL after RFC 3986 §6.2.2 and §6.2.3
/// normalisation (the parser lower-cases scheme and host, drops a default
/// port, resolves dot segments), query and fragment ignored.
fn same_url(got: &Url, expected: &Url) -> bool {
    // Userinfo is part of the authority (RFC 3986 §3.2): another URI.
    got.username().is_empty()
        && got.password().is_none()
        && got.scheme() == expected.scheme()
        && got.host() == expected.host()
        && got.port_or_known_default() == expected.port_or_known_default()
        && got.path() == expected.path()
}
