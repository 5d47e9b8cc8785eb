//! What the index keeps of a status the operator writes: a fingerprint of the whole status
//! (to tell whether a recomputed one differs, so that unchanged statuses are never written)
//! and its conditions without their messages (to keep `lastTransitionTime` and to tell
//! transitions). The status itself is not kept: at ten thousand bindings it would be most
//! of the operator's memory.

use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::Serialize;

use crate::conditions::Observed;

/// A status as the index remembers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusDigest {
    /// [`fingerprint`] of the whole status; `None` when there is no status.
    pub fingerprint: Option<u64>,
    /// Its conditions, without their messages.
    pub conditions: Vec<Observed>,
}

impl StatusDigest {
    /// The digest of `status` (with its `conditions`), or of no status.
    pub fn of<S: Serialize>(status: Option<&S>, conditions: &[Condition]) -> StatusDigest {
        StatusDigest {
            fingerprint: status.map(fingerprint),
            conditions: Observed::all(conditions),
        }
    }

    /// Whether `status` is the status this digest was made of.
    pub fn matches<S: Serialize>(&self, status: &S) -> bool {
        self.fingerprint == Some(fingerprint(status))
    }
}

/// A 64-bit fingerprint of `value`'s JSON form. Stable within one process, which is all the
/// index needs: it only compares statuses fingerprinted by the same process.
pub fn fingerprint<S: Serialize>(value: &S) -> u64 {
    let mut hasher = DefaultHasher::new();
    match serde_json::to_vec(value) {
        Ok(json) => json.hash(&mut hasher),
        // Never for our status types; a value that cannot be serialized never matches.
        Err(_) => return u64::MAX,
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use outband_crds::{OAuthAppBindingStatus, SubscriptionStatus};

    use super::*;
    use crate::conditions::{Desired, Status, merge};

    fn status(effective: bool) -> OAuthAppBindingStatus {
        OAuthAppBindingStatus {
            observed_generation: Some(1),
            conditions: merge(
                &[],
                vec![Desired::new("Ready", Status::True, "Bound", "ok")],
                Some(1),
                Timestamp::from_second(1_800_000_000).unwrap(),
            ),
            token_endpoint: Some("https://idp.example/token".into()),
            subscriptions: vec![SubscriptionStatus {
                api: "orders".into(),
                namespace: "shop".into(),
                api_known: true,
                effective,
                reason: None,
            }],
        }
    }

    #[test]
    fn a_status_read_back_from_the_api_server_matches_its_digest() {
        let written = status(true);
        let digest = StatusDigest::of(Some(&written), &written.conditions);
        let read_back: OAuthAppBindingStatus =
            serde_json::from_value(serde_json::to_value(&written).unwrap()).unwrap();
        assert!(digest.matches(&read_back));
        assert!(!digest.matches(&status(false)));
        assert_eq!(digest.conditions[0].status, Status::True);
        assert_eq!(digest.conditions[0].reason, "Bound");
    }

    #[test]
    fn no_status_matches_nothing() {
        let digest = StatusDigest::of::<OAuthAppBindingStatus>(None, &[]);
        assert_eq!(digest, StatusDigest::default());
        assert!(!digest.matches(&status(true)));
    }
}
