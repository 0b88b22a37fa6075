//! What the test issuer knows, shared between the [`TestIssuer`] handle and
//! its server task: the published and retired keys, the injected faults, the
//! tokens it issued (for RFC 7662 introspection), the clients it registered,
//! and the request counters.
//!
//! [`TestIssuer`]: crate::testing::TestIssuer

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::keys::Algorithm;
use crate::testing::faults::{Counters, Endpoint, Fault};
use crate::testing::keys::TestKey;

/// The client the test issuer registers for introspection.
pub const INTROSPECTION_CLIENT_ID: &str = "tokengate-resource-server";
/// Its secret. It contains characters that RFC 6749 §2.3.1's
/// form-urlencoding changes, so a client that skips the encoding fails.
pub const INTROSPECTION_CLIENT_SECRET: &str = "s3cret:with/special+chars%&=";

/// A token the issuer knows, for introspection.
pub(super) struct Issued {
    pub(super) claims: Map<String, Value>,
    pub(super) revoked: bool,
}

/// How a client may authenticate at the introspection endpoint.
pub(super) enum ClientCredential {
    Secret(String),
    /// Checked with jsonwebtoken, not with this crate's verifier: the test
    /// issuer is an oracle for the crate, so it must not share its code.
    PublicKey {
        key: Box<jsonwebtoken::DecodingKey>,
        algorithms: Vec<Algorithm>,
    },
}

#[derive(Default)]
pub(super) struct State {
    /// Published keys, in JWKS order; the first signs by default.
    pub(super) keys: Vec<Arc<TestKey>>,
    pub(super) faults: HashMap<Endpoint, Fault>,
    pub(super) jwks_max_age: Option<u64>,
    pub(super) metadata_issuer: Option<String>,
    /// Tokens by their exact text (this is a test server).
    pub(super) issued: HashMap<String, Issued>,
    pub(super) clients: HashMap<String, ClientCredential>,
    pub(super) last_client_auth: Option<&'static str>,
}

pub(super) struct Shared {
    pub(super) issuer: String,
    state: Mutex<State>,
    pub(super) counters: Counters,
    /// Keys rotated out of the JWKS, kept so tests can still sign with them.
    retired: Mutex<Vec<Arc<TestKey>>>,
}

impl Shared {
    /// The state of a new issuer: no key yet, and the introspection client
    /// registered.
    pub(super) fn new(issuer: String) -> Self {
        let mut state = State::default();
        state.clients.insert(
            INTROSPECTION_CLIENT_ID.to_owned(),
            ClientCredential::Secret(INTROSPECTION_CLIENT_SECRET.to_owned()),
        );
        Shared {
            issuer,
            state: Mutex::new(state),
            counters: Counters::default(),
            retired: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers a minted token, so introspection can answer for it.
    pub(super) fn remember(&self, token: &str, claims: &Map<String, Value>) {
        self.state().issued.insert(
            token.to_owned(),
            Issued {
                claims: claims.clone(),
                revoked: false,
            },
        );
    }

    /// Keeps keys that left the JWKS, for signing tokens nobody vouches for.
    pub(super) fn retire(&self, keys: Vec<Arc<TestKey>>) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keys);
    }

    /// The key that signs by default: the first published one, or the last
    /// retired one when none is published.
    pub(super) fn signing_key(&self) -> Arc<TestKey> {
        self.state()
            .keys
            .first()
            .cloned()
            .or_else(|| self.retired.lock().ok().and_then(|r| r.last().cloned()))
            .expect("the test issuer has no key; add one with add_key")
    }

    /// A published or retired key.
    pub(super) fn find_key(&self, kid: &str) -> Option<Arc<TestKey>> {
        let published = self.state().keys.iter().find(|k| k.kid == kid).cloned();
        published.or_else(|| {
            self.retired
                .lock()
                .ok()
                .and_then(|r| r.iter().find(|k| k.kid == kid).cloned())
        })
    }
}
