//! Server-provided DPoP nonces (RFC 9449 §8, §9), stateless: a nonce is
//! its time step and an HMAC of it under a secret the replicas share, so
//! any replica accepts any other's nonce with no store. The current step's
//! nonce and the previous one are accepted, so a nonce handed out just
//! before a step ends still works.

use std::time::Duration;

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The shortest secret accepted.
pub(crate) const MIN_SECRET: usize = 32;

#[derive(Clone)]
pub(crate) struct Nonces {
    key: hmac::Key,
    step: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("step_secs", &self.step)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    pub(crate) fn new(secret: &[u8], step: Duration) -> Result<Self, &'static str> {
        if secret.len() < MIN_SECRET {
            return Err("the DPoP nonce secret must be at least 32 bytes");
        }
        if step.as_secs() == 0 {
            return Err("the DPoP nonce step must be at least a second");
        }
        Ok(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            step: step.as_secs(),
        })
    }

    fn for_step(&self, index: u64) -> String {
        let tag = hmac::sign(&self.key, &index.to_be_bytes());
        let mut raw = Vec::with_capacity(24);
        raw.extend_from_slice(&index.to_be_bytes());
        raw.extend_from_slice(&tag.as_ref()[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out at `now` (Unix seconds).
    pub(crate) fn current(&self, now: u64) -> String {
        self.for_step(now / self.step)
    }

    /// Whether `nonce` is this step's or the previous one's.
    pub(crate) fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((index, tag)) = raw.split_first_chunk::<8>() else {
            return false;
        };
        let index = u64::from_be_bytes(*index);
        let current = now / self.step;
        if index != current && index.checked_add(1) != Some(current) {
            return false;
        }
        let expected = hmac::sign(&self.key, &index.to_be_bytes());
        tag.len() == 16
            && constant_time::verify_slices_are_equal(tag, &expected.as_ref()[..16]).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_for_its_step_and_the_next_and_needs_the_secret() {
        let n = Nonces::new(&[7; 32], Duration::from_secs(60)).unwrap();
        let nonce = n.current(6_000);
        assert!(n.accepts(&nonce, 6_000));
        assert!(n.accepts(&nonce, 6_059 + 60));
        assert!(!n.accepts(&nonce, 6_000 + 120));
        assert!(!n.accepts(&nonce, 5_900));
        let other = Nonces::new(&[8; 32], Duration::from_secs(60)).unwrap();
        assert!(!other.accepts(&nonce, 6_000));
        for bad in ["", "AAAA", "not base64!", &format!("{nonce}A")] {
            assert!(!n.accepts(bad, 6_000), "{bad}");
        }
        assert!(Nonces::new(&[1; 31], Duration::from_secs(60)).is_err());
    }
}
