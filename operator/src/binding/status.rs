//! A binding's status from the index. Pure. Uses the same rule as the config compiler
//! ([`verdict`]), so "effective" in the status means "in the sidecar config".

use k8s_openapi::jiff::Timestamp;
use outband_crds::{OAuthAppBindingStatus, SubscriptionStatus};

use crate::conditions::{self, Desired, Observed, Status};
use crate::config::compile::{NotEffective, binding_verdict, verdict};
use crate::index::{Index, ObjectKey, targets};

/// The `Ready` condition type.
pub const READY: &str = "Ready";

/// The status to write, and the state label of the `bindings` metric.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingReport {
    /// The new status.
    pub status: OAuthAppBindingStatus,
    /// `Bound` or the reason the binding is not Ready.
    pub state: String,
}

/// The status of binding `key` (whose current conditions are `previous`); `None` when the
/// binding is unknown or its KeyManager has not been reconciled by this process yet (its
/// status is then left as it is).
pub fn report(
    index: &Index,
    key: &ObjectKey,
    generation: Option<i64>,
    previous: &[Observed],
    now: Timestamp,
) -> Option<BindingReport> {
    let binding = index.binding(key)?;
    let overall = binding_verdict(index, key, binding);
    if overall == Err(NotEffective::KeyManagerPending) {
        return None;
    }
    let km_name = &binding.spec.key_manager;
    let token_endpoint = index
        .key_manager(km_name)
        .and_then(|km| km.token_endpoint.clone());

    let subscriptions: Vec<SubscriptionStatus> = targets(&key.namespace, &binding.spec)
        .into_iter()
        .map(|api| {
            let result = verdict(index, key, binding, &api);
            SubscriptionStatus {
                api_known: index.api(&api).is_some(),
                effective: result.is_ok(),
                reason: result.err().map(|e| e.reason().to_string()),
                api: api.name,
                namespace: api.namespace,
            }
        })
        .collect();
    let effective = subscriptions.iter().filter(|s| s.effective).count();

    let ready = match &overall {
        Ok(()) => Desired::new(
            READY,
            Status::True,
            "Bound",
            format!(
                "consumer key {:?} of KeyManager {km_name} is bound; {effective} of {} subscriptions in effect",
                binding.spec.consumer_key,
                subscriptions.len()
            ),
        ),
        Err(reason) => Desired::new(
            READY,
            Status::False,
            reason.reason(),
            message(reason, binding, km_name),
        ),
    };
    let state = ready.reason.clone();
    let status = OAuthAppBindingStatus {
        observed_generation: generation,
        conditions: conditions::merge(previous, vec![ready], generation, now),
        token_endpoint,
        subscriptions,
    };
    Some(BindingReport { status, state })
}

fn message(reason: &NotEffective, binding: &crate::index::BindingEntry, km: &str) -> String {
    match reason {
        NotEffective::KeyManagerNotFound => format!("KeyManager {km} does not exist"),
        NotEffective::KeyManagerDisabled => {
            format!("KeyManager {km} is disabled: its tokens are refused")
        }
        NotEffective::KeyManagerPending => format!("KeyManager {km} has not been checked yet"),
        NotEffective::KeyManagerNotReady(why) => format!("KeyManager {km} is not Ready ({why})"),
        NotEffective::DuplicateConsumerKey(owner) => format!(
            "consumer key {:?} of KeyManager {km} is already bound by the older OAuthAppBinding {owner}; this binding is refused",
            binding.spec.consumer_key
        ),
        other => other.reason().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Observed;
    use crate::index::tests::*;

    fn observed(
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ) -> Vec<conditions::Observed> {
        conditions::Observed::all(conditions)
    }
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn status_of(index: &Index, ns: &str, name: &str) -> BindingReport {
        report(index, &ObjectKey::new(ns, name), Some(1), &[], now()).unwrap()
    }

    fn base() -> Index {
        let mut index = Index::new();
        index.apply_key_manager(&key_manager("idp", json!({})));
        ready(&mut index, "idp");
        index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
        index
    }

    #[test]
    fn a_bound_binding_shows_the_token_endpoint_and_its_subscriptions() {
        let mut index = base();
        index.apply_binding(&binding(
            "shop",
            "app",
            1,
            json!({"application": {"name": "app"}, "keyManager": "idp", "keyType": "PRODUCTION", "consumerKey": "c",
                   "subscriptions": [{"api": "orders"}, {"api": "payments"}]}),
        ));
        let report = status_of(&index, "shop", "app");
        assert_eq!(report.state, "Bound");
        let ready = &report.status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Bound")
        );
        assert_eq!(
            report.status.token_endpoint.as_deref(),
            Some("https://idp.example/token")
        );
        assert_eq!(
            report.status.subscriptions,
            vec![
                SubscriptionStatus {
                    api: "orders".into(),
                    namespace: "shop".into(),
                    api_known: true,
                    effective: true,
                    reason: None
                },
                SubscriptionStatus {
                    api: "payments".into(),
                    namespace: "shop".into(),
                    api_known: false,
                    effective: false,
                    reason: Some("ApiNotFound".into())
                },
            ]
        );
    }

    #[test]
    fn the_later_binding_of_a_consumer_key_is_refused_with_a_reason() {
        let mut index = base();
        index.apply_binding(&simple_binding("shop", "first", 1, "idp", "c", "orders"));
        index.apply_binding(&simple_binding("other", "second", 2, "idp", "c", "orders"));
        let report = status_of(&index, "other", "second");
        let ready = &report.status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "DuplicateConsumerKey")
        );
        assert!(ready.message.contains("shop/first"), "{}", ready.message);
        assert_eq!(status_of(&index, "shop", "first").state, "Bound");
    }

    #[test]
    fn a_missing_disabled_or_unready_key_manager_makes_the_binding_not_ready() {
        let mut index = base();
        index.apply_binding(&simple_binding("shop", "a", 1, "nope", "c", "orders"));
        assert_eq!(status_of(&index, "shop", "a").state, "KeyManagerNotFound");

        index.apply_binding(&simple_binding("shop", "a", 1, "idp", "c", "orders"));
        index.set_observed(
            "idp",
            None,
            Observed::NotReady {
                reason: "KeysExpired".into(),
            },
        );
        let report = status_of(&index, "shop", "a");
        assert_eq!(report.state, "KeyManagerNotReady");
        assert!(report.status.conditions[0].message.contains("KeysExpired"));

        index.apply_key_manager(&key_manager("idp", json!({"enabled": false})));
        index.set_observed(
            "idp",
            None,
            Observed::NotReady {
                reason: "Disabled".into(),
            },
        );
        assert_eq!(status_of(&index, "shop", "a").state, "KeyManagerDisabled");
    }

    #[test]
    fn a_pending_key_manager_leaves_the_status_alone() {
        let mut index = Index::new();
        index.apply_key_manager(&key_manager("idp", json!({})));
        index.apply_binding(&simple_binding("shop", "a", 1, "idp", "c", "orders"));
        assert!(report(&index, &ObjectKey::new("shop", "a"), Some(1), &[], now()).is_none());
    }

    #[test]
    fn a_cross_namespace_subscription_not_allowed_says_so() {
        let mut index = base();
        index.apply_binding(&simple_binding_ns(
            "team", "a", 1, "idp", "c", "shop", "orders",
        ));
        let report = status_of(&index, "team", "a");
        assert_eq!(report.state, "Bound");
        assert_eq!(
            report.status.subscriptions[0].reason.as_deref(),
            Some("NamespaceNotAllowed")
        );
        assert!(report.status.subscriptions[0].api_known);
    }

    #[test]
    fn recomputing_gives_an_equal_status() {
        let mut index = base();
        index.apply_binding(&simple_binding("shop", "a", 1, "idp", "c", "orders"));
        let first = status_of(&index, "shop", "a").status;
        let later = Timestamp::from_second(1_900_000_000).unwrap();
        let again = report(
            &index,
            &ObjectKey::new("shop", "a"),
            Some(1),
            &observed(&first.conditions),
            later,
        )
        .unwrap();
        assert_eq!(again.status, first);
    }
}
