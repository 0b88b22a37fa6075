//! The target of every attack (a test issuer, a gate on it and the app
//! behind the gate), and how an outcome is checked.

use std::fmt;
use std::time::Duration;

use axum::Router;
use http::StatusCode;
use serde_json::{Value, json};
use tokengate::testing::{
    Endpoint, INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET, TestIssuer,
};
use tokengate::{Algorithm, InvalidToken, TokenGateBuilder};

use crate::common::*;
use crate::jose::{hs256, now_secs};

/// A shared secret for the gates that accept HS256, so a test can sign any
/// bytes it likes and reach the claims parser.
pub const SHARED_SECRET: &[u8] = b"attack-suite-shared-secret-of-32+bytes";

/// What a client must see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 200: the token is valid after all.
    Served,
    /// 401 `invalid_token`, whatever the reason.
    Refused,
    /// 401 `invalid_token` with this reason as `error_description`.
    RefusedFor(InvalidToken),
    /// 400 `invalid_request`.
    BadRequest,
    /// 503 with `Retry-After: 5`.
    Unavailable,
}

impl From<InvalidToken> for Expect {
    fn from(reason: InvalidToken) -> Self {
        Expect::RefusedFor(reason)
    }
}

impl Expect {
    /// Asserts that `answer` is this outcome; a failure names `what`.
    #[track_caller]
    pub fn check(self, answer: &Answer, what: &str) {
        let seen = (answer.status, answer.error_code());
        let challenge = answer.challenge();
        let invalid_token = (StatusCode::UNAUTHORIZED, Some("invalid_token".to_owned()));
        match self {
            Expect::Served => {
                assert_eq!(answer.status, StatusCode::OK, "{what}: {challenge:?}");
            }
            Expect::Refused => assert_eq!(seen, invalid_token, "{what}: {challenge:?}"),
            Expect::RefusedFor(reason) => {
                assert_eq!(seen, invalid_token, "{what}: {challenge:?}");
                assert_eq!(
                    description(answer).as_deref(),
                    Some(reason.text()),
                    "{what}"
                );
            }
            Expect::BadRequest => assert_eq!(
                seen,
                (StatusCode::BAD_REQUEST, Some("invalid_request".to_owned())),
                "{what}: {challenge:?}"
            ),
            Expect::Unavailable => {
                assert_eq!(
                    answer.status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{what}: {challenge:?}"
                );
                assert_eq!(
                    answer.headers.get("retry-after").map(|v| v.as_bytes()),
                    Some(&b"5"[..]),
                    "{what}: Retry-After"
                );
            }
        }
    }
}

/// One row of an attack table: a token, what it is, and what it must get.
pub struct Case {
    pub label: String,
    pub token: String,
    pub expect: Expect,
}

/// A [`Case`].
pub fn case(label: impl fmt::Display, token: impl Into<String>, expect: impl Into<Expect>) -> Case {
    Case {
        label: label.to_string(),
        token: token.into(),
        expect: expect.into(),
    }
}

/// Rows of `(label, token)` that all expect the same outcome.
pub fn cases_with<L: fmt::Display, T: Into<String>>(
    expect: impl Into<Expect>,
    rows: impl IntoIterator<Item = (L, T)>,
) -> Vec<Case> {
    let expect = expect.into();
    rows.into_iter()
        .map(|(label, token)| case(label, token, expect))
        .collect()
}

/// For each value, a token of `signer` whose `name` claim is that value,
/// labelled `<prefix><name> <value>`.
pub fn claim_rows(
    signer: &TestIssuer,
    prefix: &str,
    name: &str,
    values: impl IntoIterator<Item = Value>,
) -> Vec<(String, String)> {
    values
        .into_iter()
        .map(|value| {
            let token = signer.token().claim(name, value.clone()).sign();
            (format!("{prefix}{name} {value}"), token)
        })
        .collect()
}

/// A test issuer, a gate on it and the app behind the gate.
pub struct Target {
    pub issuer: TestIssuer,
    pub app: Router,
    /// The gate verifies HS256 with [`SHARED_SECRET`] instead of the JWKS.
    hmac: bool,
}

impl Target {
    /// The default gate: discovery, the issuer's JWKS, default limits.
    pub async fn new() -> Self {
        Self::with(|b, _| b).await
    }

    pub async fn with(
        configure: impl FnOnce(TokenGateBuilder, &TestIssuer) -> TokenGateBuilder,
    ) -> Self {
        let issuer = TestIssuer::start().await.unwrap();
        let gate = configure(builder(&issuer), &issuer).build().await.unwrap();
        let app = app(&gate);
        Target {
            issuer,
            app,
            hmac: false,
        }
    }

    /// A gate that knows only [`SHARED_SECRET`] (HS256): no network at all.
    pub async fn with_shared_secret(max_token_length: usize) -> Self {
        let mut t = Self::with(|b, _| {
            b.hmac_secret(None, SHARED_SECRET, Algorithm::HS256)
                .max_token_length(max_token_length)
        })
        .await;
        t.hmac = true;
        t
    }

    /// A gate that also introspects opaque tokens, with a short timeout.
    pub async fn introspecting() -> Self {
        Self::with(|b, _| {
            b.introspection_credentials(INTROSPECTION_CLIENT_ID, INTROSPECTION_CLIENT_SECRET)
                .timeout(Duration::from_millis(300))
        })
        .await
    }

    /// `GET /me` with `Bearer <token>`, reported under `label`, checked
    /// against `expect`; then the service must still serve a valid token.
    pub async fn check(&self, label: &str, token: &str, expect: impl Into<Expect>) -> Answer {
        let answer = me(&self.app, token).await;
        report(label, &answer);
        expect.into().check(&answer, label);
        self.still_serves().await;
        answer
    }

    /// [`Target::check`] of every row, in order.
    pub async fn check_all(&self, cases: impl IntoIterator<Item = Case>) {
        for Case {
            label,
            token,
            expect,
        } in cases
        {
            self.check(&label, &token, expect).await;
        }
    }

    /// Like [`Target::check`] with a token made by `make` for the current
    /// second, made and sent again if the clock ticked before the answer
    /// came back, so that `now ± n` in a time claim is exact.
    pub async fn check_at_this_second(
        &self,
        label: &str,
        make: impl Fn(u64) -> String,
        expect: Expect,
    ) {
        for _ in 0..10 {
            let now = now_secs();
            let answer = me(&self.app, &make(now)).await;
            if now_secs() == now {
                report(label, &answer);
                expect.check(&answer, label);
                self.still_serves().await;
                return;
            }
        }
        panic!("{label}: the clock ticked during every attempt");
    }

    /// A valid token for this gate.
    pub fn valid_token(&self) -> String {
        if self.hmac {
            self.issuer
                .token()
                .header("alg", "HS256")
                .without_header("kid")
                .sign_with_secret(SHARED_SECRET)
        } else {
            self.issuer.token().scope("items:read").sign()
        }
    }

    /// The service still answers a valid request with 200.
    pub async fn still_serves(&self) {
        let answer = me(&self.app, &self.valid_token()).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "a valid token after the attack: {:?}",
            answer.challenge()
        );
    }

    /// Unplanned JWKS fetches stayed within the budget: the initial fetch
    /// plus at most two for unknown `kid`s (default 2 per 30 s).
    pub fn jwks_fetches_bounded(&self) {
        let fetches = self.issuer.requests(Endpoint::Jwks);
        assert!(fetches <= 3, "{fetches} JWKS fetches");
    }

    /// A token that a [`Target::with_shared_secret`] gate can verify (HS256,
    /// `typ: at+jwt`) whose claims are the text of
    /// [`Target::valid_claims_prefix`] followed by `tail`, byte for byte.
    pub fn signed_claims(&self, tail: &str) -> String {
        let header = br#"{"alg":"HS256","typ":"at+jwt"}"#;
        let claims = format!("{}{tail}", self.valid_claims_prefix());
        hs256(header, claims.as_bytes())
    }

    /// Claims a [`Target::with_shared_secret`] gate accepts, as JSON text
    /// without the closing brace, so a test can append raw members.
    pub fn valid_claims_prefix(&self) -> String {
        format!(
            r#"{{"iss":{},"aud":{},"sub":"mallory","exp":{}"#,
            json!(self.issuer.issuer()),
            json!(self.issuer.audience()),
            now_secs() + 300
        )
    }
}

/// One line per attack, for `--nocapture`.
pub fn report(label: &str, answer: &Answer) {
    println!(
        "ATTACK {label:<64} -> {} {} {}",
        answer.status.as_u16(),
        answer.error_code().as_deref().unwrap_or("-"),
        description(answer)
            .map(|d| format!("({d})"))
            .unwrap_or_default()
    );
}

/// The `error_description` of the challenge.
fn description(answer: &Answer) -> Option<String> {
    let c = answer.challenge()?;
    let start = c.find("error_description=\"")? + "error_description=\"".len();
    let end = c[start..].find('"')? + start;
    Some(c[start..end].to_owned())
}
