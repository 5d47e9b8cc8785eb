//! The KeyManager controller: discovery, keys, refresh, status.
//!
//! - [`source`]: where a KeyManager's keys come from, and fetching them (I/O).
//! - [`state`]: what this process remembers per KeyManager between refreshes: the last
//!   good keys and discovery document, failures, backoff (pure).
//! - [`report`]: status conditions and what the index learns, from the state (pure).
//! - [`controller`]: the reconcile loop (I/O shell).

pub mod controller;
pub mod report;
pub mod source;
pub mod state;

/// Key sets for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use outband_crds::jwk::{EcCurve, EcJwk, PublicJwk};
    use outband_idp::jwks::{KeySet, finish};

    /// A set of P-256 keys with these kids (not real points: nothing here verifies).
    pub fn key_set(kids: &[&str]) -> KeySet {
        let keys = kids
            .iter()
            .map(|kid| {
                PublicJwk::Ec(EcJwk {
                    kid: Some(kid.to_string()),
                    alg: None,
                    crv: EcCurve::P256,
                    x: vec![1].into(),
                    y: vec![2].into(),
                })
            })
            .collect();
        finish(keys, Vec::new())
    }
}
