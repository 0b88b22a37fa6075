//! Header parameters with rules of their own: `crit` (RFC 7515 §4.1.11)
//! and, in strict RFC 9068 mode, `typ: at+jwt`.

use serde_json::json;
use tokengate::InvalidToken;

use crate::target::*;

#[tokio::test]
async fn unknown_crit_is_refused() {
    let t = Target::new().await;
    let crit = |value| t.issuer.token().header("crit", value);
    t.check_all(
        [
            (
                "crit names an unknown extension",
                crit(json!(["https://example.com/ext"]))
                    .header("https://example.com/ext", true)
                    .sign(),
            ),
            (
                "crit names an absent extension",
                crit(json!(["nope"])).sign(),
            ),
            (
                "crit b64=false (RFC 7797)",
                crit(json!(["b64"])).header("b64", false).sign(),
            ),
            ("crit empty list", crit(json!([])).sign()),
            ("crit not a list", crit(json!("exp")).sign()),
        ]
        .map(|(label, token)| case(label, token, InvalidToken::UnsupportedCritical)),
    )
    .await;
}

#[tokio::test]
async fn wrong_typ_is_refused_in_strict_mode() {
    let t = Target::with(|b, _| b.strict_rfc9068(true)).await;
    let typs = [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("dpop+jwt"),
        json!("id_token+jwt"),
        json!("at+jwt "),
        json!(""),
    ];
    let mut wrong: Vec<_> = typs
        .into_iter()
        .map(|typ| {
            let token = t.issuer.token().header("typ", typ.clone()).sign();
            (format!("strict mode, typ {typ}"), token)
        })
        .collect();
    let no_typ = t.issuer.token().without_header("typ").sign();
    wrong.push(("strict mode, no typ".to_owned(), no_typ));
    t.check_all(cases_with(InvalidToken::WrongType, wrong))
        .await;
    let number = t.issuer.token().header("typ", 9068).sign();
    t.check(
        "strict mode, typ 9068 (a number)",
        &number,
        InvalidToken::Malformed,
    )
    .await;
}
