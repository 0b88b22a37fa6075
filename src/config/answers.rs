//! How refusals are answered: the challenge's `realm`, how much the
//! `error_description` reveals, and the `Retry-After` of a 503.

use std::time::Duration;

use super::{BuildError, TokenGateBuilder};
use crate::response::{ErrorDetail, Responder};

#[derive(Debug, Clone)]
pub(super) struct AnswerSettings {
    pub(super) realm: Option<String>,
    pub(super) detail: ErrorDetail,
    pub(super) retry_after: Duration,
}

impl Default for AnswerSettings {
    fn default() -> Self {
        AnswerSettings {
            realm: None,
            detail: ErrorDetail::Describe,
            retry_after: Duration::from_secs(5),
        }
    }
}

impl AnswerSettings {
    /// The one renderer, with the realm defaulting to the first audience.
    pub(super) fn responder(&self, audiences: &[String]) -> Result<Responder, BuildError> {
        let realm = self
            .realm
            .clone()
            .or_else(|| audiences.first().cloned())
            .unwrap_or_else(|| "api".to_owned());
        if realm.chars().any(char::is_control) {
            return Err(BuildError::InvalidConfig(
                "realm contains control characters",
            ));
        }
        Ok(Responder::new(
            &realm,
            self.detail,
            self.retry_after.as_secs().max(1),
        ))
    }
}

impl TokenGateBuilder {
    /// The `realm` of `WWW-Authenticate` challenges. Default: the first
    /// audience, else `"api"`.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.answers.realm = Some(realm.into());
        self
    }

    setters! {
        /// How much rejections tell the client. Default
        /// [`ErrorDetail::Describe`].
        error_detail(detail: ErrorDetail) => answers.detail;

        /// The `Retry-After` sent with 503 answers. Default 5 s.
        retry_after(after: Duration) => answers.retry_after;
    }
}
