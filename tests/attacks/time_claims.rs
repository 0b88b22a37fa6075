//! Time claims (RFC 7519 §4.1.4–4.1.6) with the default leeway of 60 s: the
//! boundaries to the second, and NumericDates of the wrong type or out of
//! range.

use serde_json::{Value, json};
use tokengate::InvalidToken;

use crate::jose::now_secs;
use crate::target::*;

/// For each `(offset, expect)`, a token whose `claim` is `now + offset` (and
/// each of `others` is `now +` its offset) made for the current second gets
/// `expect`. Labelled `<claim> = now ± n`.
async fn leeway_boundary(claim: &str, others: &[(&str, i64)], rows: &[(i64, Expect)]) {
    let t = Target::new().await;
    for &(offset, expect) in rows {
        let label = match offset {
            0 => format!("{claim} = now"),
            -60 | 60 => format!("{claim} = now {} (boundary)", Signed(offset)),
            _ => format!("{claim} = now {}", Signed(offset)),
        };
        let make = |now: u64| {
            let at = |offset: i64| now as i64 + offset;
            let token = t.issuer.token().claim(claim, at(offset));
            let token = others.iter().fold(token, |token, &(name, offset)| {
                token.claim(name, at(offset))
            });
            token.sign()
        };
        t.check_at_this_second(&label, make, expect).await;
    }
}

/// Formats `-61` as `- 61` and `59` as `+ 59`.
struct Signed(i64);

impl std::fmt::Display for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        write!(f, "{sign} {}", self.0.unsigned_abs())
    }
}

const SERVED: Expect = Expect::Served;

#[tokio::test]
async fn exp_at_and_around_the_leeway_boundary() {
    // Valid while now < exp + leeway (RFC 7519 §4.1.4).
    let expired = Expect::RefusedFor(InvalidToken::Expired);
    let rows = [(-61, expired), (-60, expired), (-59, SERVED), (0, SERVED)];
    leeway_boundary("exp", &[("iat", -600)], &rows).await;
}

#[tokio::test]
async fn nbf_at_and_around_the_leeway_boundary() {
    // Valid once now + leeway >= nbf (RFC 7519 §4.1.5).
    let early = Expect::RefusedFor(InvalidToken::NotYetValid);
    leeway_boundary("nbf", &[], &[(59, SERVED), (60, SERVED), (61, early)]).await;
}

#[tokio::test]
async fn iat_at_and_around_the_leeway_boundary() {
    let future = Expect::RefusedFor(InvalidToken::IssuedInFuture);
    leeway_boundary("iat", &[], &[(59, SERVED), (60, SERVED), (61, future)]).await;
}

#[tokio::test]
async fn exp_of_the_wrong_type_or_out_of_range_is_refused() {
    let t = Target::new().await;
    let now = now_secs();
    let malformed = [
        json!((now + 300).to_string()),
        json!(1e308),
        json!(-1e308),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-1),
        json!(-0.5),
        json!(253_402_300_800u64), // 10000-01-01: past the NumericDate range we accept
        json!(true),
        Value::Null,
        json!([now + 300]),
        json!({"exp": now + 300}),
    ];
    let malformed = claim_rows(&t.issuer, "", "exp", malformed);
    t.check_all(cases_with(InvalidToken::MalformedClaim, malformed))
        .await;
    let expired = [json!(0), json!(now as f64 - 120.5), json!(1e-300)];
    let expired = claim_rows(&t.issuer, "", "exp", expired);
    t.check_all(cases_with(InvalidToken::Expired, expired))
        .await;
    // RFC 7519 §2: a NumericDate may be fractional; a fraction in the
    // future is valid.
    let token = t.issuer.token().claim("exp", now as f64 + 300.5).sign();
    t.check("exp now + 300.5 (float, future)", &token, SERVED)
        .await;
    let mut others = claim_rows(&t.issuer, "", "nbf", [json!("0"), json!(-1), json!(1e308)]);
    others.extend(claim_rows(
        &t.issuer,
        "",
        "iat",
        [json!(u64::MAX), json!("now")],
    ));
    t.check_all(cases_with(InvalidToken::MalformedClaim, others))
        .await;
}

#[tokio::test]
async fn far_future_exp_at_the_range_limit_does_not_break_the_caches() {
    // 9999-12-31T23:59:59Z, the largest exp accepted: the verified-token
    // cache keeps it "until exp", thousands of years away.
    let t = Target::new().await;
    let token = t.issuer.token().claim("exp", 253_402_300_799u64).sign();
    t.check_all((0..2).map(|round| {
        case(
            format!("exp 9999-12-31T23:59:59Z, round {round}"),
            token.clone(),
            SERVED,
        )
    }))
    .await;
}
