//! The config compiler: one API's sidecar config from the index. Pure and deterministic:
//! KeyManagers sorted by name, keys in canonical order, subscriptions sorted by
//! (keyManager, consumerKey).

use outband_crds::KeyManagerSpec;
use outband_crds::sidecar_config::{
    ApiRef, CONFIG_FORMAT, JwksRefresh, KeyManagerConfig, SidecarConfig, SubscriptionConfig,
};

use crate::index::{BindingEntry, Index, ObjectKey, Observed, Published};

/// The compiler's answer for one API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compiled {
    /// The config to publish.
    Config(SidecarConfig),
    /// Some KeyManager the API uses has not been reconciled by this process yet; compile
    /// again once it has (so a restart never drops keys from a published config).
    Deferred {
        /// The pending KeyManagers.
        pending: Vec<String>,
    },
    /// No pod serves the API: its ConfigMaps are obsolete.
    NotServed,
}

/// Compiles `api`'s config.
pub fn compile(index: &Index, api: &ApiRef) -> Compiled {
    let Some(entry) = index.api(api) else {
        return Compiled::NotServed;
    };
    let mut pending = Vec::new();
    let mut key_managers = Vec::new();
    for (name, km) in index.key_managers() {
        if !km.spec.enabled || !entry.settings.key_managers.allows(name) {
            continue;
        }
        match &km.observed {
            Observed::Pending => pending.push(name.clone()),
            Observed::Ready(published) => {
                key_managers.push(key_manager_config(name, &km.spec, published))
            }
            Observed::NotReady { .. } => {}
        }
    }
    if !pending.is_empty() {
        return Compiled::Deferred { pending };
    }
    let mut subscriptions = Vec::new();
    for (key, binding) in index.subscribers(api) {
        if verdict(index, key, binding, api).is_err() {
            continue;
        }
        for subscription in &binding.spec.subscriptions {
            let namespace = subscription.namespace.as_deref().unwrap_or(&key.namespace);
            if namespace != api.namespace || subscription.api != api.name {
                continue;
            }
            subscriptions.push(SubscriptionConfig {
                key_manager: binding.spec.key_manager.clone(),
                consumer_key: binding.spec.consumer_key.clone(),
                key_type: binding.spec.key_type,
                application: binding.spec.application.name.clone(),
                binding: key.to_string(),
                tier: subscription.tier.clone(),
                state: subscription.state,
            });
        }
    }
    subscriptions
        .sort_by(|a, b| (&a.key_manager, &a.consumer_key).cmp(&(&b.key_manager, &b.consumer_key)));
    Compiled::Config(SidecarConfig {
        format: CONFIG_FORMAT.to_string(),
        critical: Vec::new(),
        api: api.clone(),
        key_managers,
        subscriptions,
    })
}

/// One KeyManager as the sidecar needs it.
pub fn key_manager_config(
    name: &str,
    spec: &KeyManagerSpec,
    published: &Published,
) -> KeyManagerConfig {
    let claims = spec.claims.clone().unwrap_or_default();
    let mut algorithms = spec.token_validation.algorithms.clone();
    algorithms.sort();
    algorithms.dedup();
    let mut audiences = spec.token_validation.audiences.clone();
    audiences.sort();
    audiences.dedup();
    KeyManagerConfig {
        name: name.to_string(),
        issuer: published.issuer.clone(),
        consumer_key_claim: claims
            .consumer_key
            .unwrap_or_else(|| spec.type_.default_consumer_key_claim().to_string()),
        scopes_claim: claims
            .scopes
            .unwrap_or_else(|| spec.type_.default_scopes_claim().to_string()),
        algorithms,
        clock_skew_seconds: spec.token_validation.clock_skew_seconds,
        audiences,
        required_type: spec.token_validation.required_type.clone(),
        keys: published.keys.clone(),
        jwks_refresh: published.jwks_url.as_ref().map(|url| JwksRefresh {
            url: url.clone(),
            ca_bundle: spec.connection.ca_bundle.clone(),
            allow_loopback: spec.connection.allow_loopback,
            timeout_seconds: spec.connection.timeout_seconds,
        }),
    }
}

/// Why a subscription is not in effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotEffective {
    /// `spec.keyManager` names no KeyManager.
    KeyManagerNotFound,
    /// The KeyManager is disabled.
    KeyManagerDisabled,
    /// The KeyManager has not been reconciled yet.
    KeyManagerPending,
    /// The KeyManager is not Ready.
    KeyManagerNotReady(String),
    /// An older binding has the same (keyManager, consumerKey).
    DuplicateConsumerKey(ObjectKey),
    /// No workload serves the API.
    ApiNotFound,
    /// The API's owners do not allow the binding's namespace.
    NamespaceNotAllowed,
    /// The API does not accept tokens of this KeyManager (`outband.dev/key-managers`).
    KeyManagerNotAllowedByApi,
}

impl NotEffective {
    /// Stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            NotEffective::KeyManagerNotFound => "KeyManagerNotFound",
            NotEffective::KeyManagerDisabled => "KeyManagerDisabled",
            NotEffective::KeyManagerPending => "KeyManagerPending",
            NotEffective::KeyManagerNotReady(_) => "KeyManagerNotReady",
            NotEffective::DuplicateConsumerKey(_) => "DuplicateConsumerKey",
            NotEffective::ApiNotFound => "ApiNotFound",
            NotEffective::NamespaceNotAllowed => "NamespaceNotAllowed",
            NotEffective::KeyManagerNotAllowedByApi => "KeyManagerNotAllowedByApi",
        }
    }
}

/// Whether binding `key`'s subscription to `api` is in effect. The compiler includes
/// exactly the subscriptions for which this is `Ok`, and the binding status reports it.
pub fn verdict(
    index: &Index,
    key: &ObjectKey,
    binding: &BindingEntry,
    api: &ApiRef,
) -> Result<(), NotEffective> {
    binding_verdict(index, key, binding)?;
    let Some(entry) = index.api(api) else {
        return Err(NotEffective::ApiNotFound);
    };
    if api.namespace != key.namespace
        && !entry.settings.subscriber_namespaces.allows(&key.namespace)
    {
        return Err(NotEffective::NamespaceNotAllowed);
    }
    if !entry
        .settings
        .key_managers
        .allows(&binding.spec.key_manager)
    {
        return Err(NotEffective::KeyManagerNotAllowedByApi);
    }
    Ok(())
}

/// The checks that concern the binding as a whole (its `Ready` condition).
pub fn binding_verdict(
    index: &Index,
    key: &ObjectKey,
    binding: &BindingEntry,
) -> Result<(), NotEffective> {
    let Some(km) = index.key_manager(&binding.spec.key_manager) else {
        return Err(NotEffective::KeyManagerNotFound);
    };
    if !km.spec.enabled {
        return Err(NotEffective::KeyManagerDisabled);
    }
    match index.consumer_key_owner(&binding.spec.key_manager, &binding.spec.consumer_key) {
        Some(owner) if owner != key => {
            return Err(NotEffective::DuplicateConsumerKey(owner.clone()));
        }
        _ => {}
    }
    match &km.observed {
        Observed::Ready(_) => Ok(()),
        Observed::Pending => Err(NotEffective::KeyManagerPending),
        Observed::NotReady { reason } => Err(NotEffective::KeyManagerNotReady(reason.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::*;
    use outband_crds::{JwsAlgorithm, KeyType, SubscriptionState};
    use serde_json::json;

    fn orders() -> ApiRef {
        api("shop", "orders")
    }

    fn config(index: &Index, api: &ApiRef) -> SidecarConfig {
        match compile(index, api) {
            Compiled::Config(config) => config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    /// An index with KeyManager `idp` ready and API shop/orders served.
    fn base() -> Index {
        let mut index = Index::new();
        index.apply_key_manager(&key_manager("idp", json!({})));
        ready(&mut index, "idp");
        index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
        index
    }

    #[test]
    fn an_api_without_subscriptions_gets_a_config_with_its_key_managers() {
        let config = config(&base(), &orders());
        assert_eq!(config.format, CONFIG_FORMAT);
        assert_eq!(config.api, orders());
        assert!(config.subscriptions.is_empty());
        assert_eq!(config.key_managers.len(), 1);
        let km = &config.key_managers[0];
        assert_eq!(km.issuer, "https://idp.example");
        assert_eq!(km.consumer_key_claim, "client_id");
        assert_eq!(km.scopes_claim, "scope");
        assert_eq!(km.algorithms, [JwsAlgorithm::RS256, JwsAlgorithm::ES256]);
        assert_eq!(km.keys, test_keys());
        assert_eq!(
            km.jwks_refresh.as_ref().unwrap().url,
            "https://idp.example/jwks"
        );
    }

    #[test]
    fn subscriptions_carry_application_key_type_tier_and_state() {
        let mut index = base();
        index.apply_binding(&binding(
            "shop",
            "billing",
            10,
            json!({"application": {"name": "billing-app"}, "keyManager": "idp", "keyType": "SANDBOX",
                   "consumerKey": "client-b", "subscriptions": [{"api": "orders", "tier": "Gold", "state": "ProductionOnlyBlocked"}]}),
        ));
        let config = config(&index, &orders());
        assert_eq!(
            config.subscriptions,
            vec![SubscriptionConfig {
                key_manager: "idp".into(),
                consumer_key: "client-b".into(),
                key_type: KeyType::Sandbox,
                application: "billing-app".into(),
                binding: "shop/billing".into(),
                tier: Some("Gold".into()),
                state: SubscriptionState::ProductionOnlyBlocked,
            }]
        );
    }

    #[test]
    fn subscriptions_are_sorted_and_the_output_is_deterministic() {
        let mut a = base();
        let mut b = base();
        let bindings: Vec<_> = (0..20)
            .map(|i| {
                simple_binding(
                    "shop",
                    &format!("b{i}"),
                    i,
                    "idp",
                    &format!("client-{:02}", 19 - i),
                    "orders",
                )
            })
            .collect();
        for binding in &bindings {
            a.apply_binding(binding);
        }
        for binding in bindings.iter().rev() {
            b.apply_binding(binding);
        }
        let config_a = config(&a, &orders());
        assert_eq!(config_a, config(&b, &orders()));
        let keys: Vec<_> = config_a
            .subscriptions
            .iter()
            .map(|s| s.consumer_key.clone())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 20);
    }

    #[test]
    fn the_later_binding_of_a_consumer_key_is_left_out() {
        let mut index = base();
        index.apply_binding(&simple_binding(
            "shop", "newer", 20, "idp", "client-a", "orders",
        ));
        index.apply_binding(&simple_binding(
            "shop", "older", 10, "idp", "client-a", "orders",
        ));
        let config = config(&index, &orders());
        assert_eq!(config.subscriptions.len(), 1);
        assert_eq!(config.subscriptions[0].binding, "shop/older");
    }

    #[test]
    fn equal_creation_times_fall_back_to_the_name() {
        let mut index = base();
        index.apply_binding(&simple_binding(
            "shop", "b", 10, "idp", "client-a", "orders",
        ));
        index.apply_binding(&simple_binding(
            "shop", "a", 10, "idp", "client-a", "orders",
        ));
        assert_eq!(config(&index, &orders()).subscriptions[0].binding, "shop/a");
    }

    #[test]
    fn cross_namespace_subscriptions_need_the_api_owners_permission() {
        let cross = simple_binding_ns("team-a", "app", 1, "idp", "client-x", "shop", "orders");
        let mut index = base();
        index.apply_binding(&cross);
        assert!(config(&index, &orders()).subscriptions.is_empty());

        let mut index = base();
        index.apply_pod(&pod(
            "shop",
            "orders-1",
            "orders",
            &[("outband.dev/allowed-subscriber-namespaces", "team-a")],
        ));
        index.apply_binding(&cross);
        assert_eq!(config(&index, &orders()).subscriptions.len(), 1);

        let mut index = base();
        index.apply_pod(&pod(
            "shop",
            "orders-1",
            "orders",
            &[("outband.dev/allowed-subscriber-namespaces", "*")],
        ));
        index.apply_binding(&cross);
        assert_eq!(config(&index, &orders()).subscriptions.len(), 1);
    }

    #[test]
    fn only_the_key_managers_the_api_allows_are_included() {
        let mut index = base();
        index.apply_key_manager(&key_manager("other", json!({})));
        ready(&mut index, "other");
        index.apply_pod(&pod(
            "shop",
            "orders-1",
            "orders",
            &[("outband.dev/key-managers", "other")],
        ));
        index.apply_binding(&simple_binding("shop", "a", 1, "idp", "client-a", "orders"));
        index.apply_binding(&simple_binding(
            "shop", "b", 1, "other", "client-b", "orders",
        ));
        let config = config(&index, &orders());
        let names: Vec<_> = config
            .key_managers
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["other"]);
        assert_eq!(config.subscriptions.len(), 1);
        assert_eq!(config.subscriptions[0].key_manager, "other");
    }

    #[test]
    fn disabled_and_not_ready_key_managers_are_left_out_with_their_subscriptions() {
        let mut index = base();
        index.apply_binding(&simple_binding("shop", "a", 1, "idp", "client-a", "orders"));
        index.set_observed(
            "idp",
            None,
            Observed::NotReady {
                reason: "KeysExpired".into(),
            },
        );
        let config_not_ready = config(&index, &orders());
        assert!(config_not_ready.key_managers.is_empty());
        assert!(config_not_ready.subscriptions.is_empty());

        let mut index = base();
        index.apply_key_manager(&key_manager("idp", json!({"enabled": false})));
        ready(&mut index, "idp");
        let config_disabled = config(&index, &orders());
        assert!(config_disabled.key_managers.is_empty());
    }

    #[test]
    fn a_pending_key_manager_defers_the_api() {
        let mut index = base();
        index.apply_key_manager(&key_manager("new", json!({})));
        assert_eq!(
            compile(&index, &orders()),
            Compiled::Deferred {
                pending: vec!["new".into()]
            }
        );
    }

    #[test]
    fn an_api_no_pod_serves_is_not_served() {
        let index = base();
        assert_eq!(
            compile(&index, &api("shop", "payments")),
            Compiled::NotServed
        );
    }

    #[test]
    fn claims_follow_the_type_unless_given() {
        let mut index = base();
        index.apply_key_manager(&key_manager("idp", json!({"type": "Okta"})));
        ready(&mut index, "idp");
        let km = &config(&index, &orders()).key_managers[0];
        assert_eq!(
            (km.consumer_key_claim.as_str(), km.scopes_claim.as_str()),
            ("cid", "scp")
        );

        index.apply_key_manager(&key_manager(
            "idp",
            json!({"type": "Okta", "claims": {"consumerKey": "azp", "scopes": "scope"}}),
        ));
        ready(&mut index, "idp");
        let km = &config(&index, &orders()).key_managers[0];
        assert_eq!(
            (km.consumer_key_claim.as_str(), km.scopes_claim.as_str()),
            ("azp", "scope")
        );
    }

    #[test]
    fn jwks_refresh_carries_the_connection_settings() {
        let mut index = base();
        index.apply_key_manager(&key_manager(
            "idp",
            json!({"connection": {"allowLoopback": true, "timeoutSeconds": 3, "caBundle": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}}),
        ));
        ready(&mut index, "idp");
        let refresh = config(&index, &orders()).key_managers[0]
            .jwks_refresh
            .clone()
            .unwrap();
        assert!(refresh.allow_loopback);
        assert_eq!(refresh.timeout_seconds, 3);
        assert!(refresh.ca_bundle.unwrap().contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn validation_settings_are_copied() {
        let mut index = base();
        index.apply_key_manager(&key_manager(
            "idp",
            json!({"tokenValidation": {"algorithms": ["ES384", "PS256"], "clockSkewSeconds": 5,
                    "audiences": ["b", "a"], "requiredType": "at+jwt"}}),
        ));
        ready(&mut index, "idp");
        let km = &config(&index, &orders()).key_managers[0];
        assert_eq!(km.algorithms, [JwsAlgorithm::PS256, JwsAlgorithm::ES384]);
        assert_eq!(km.clock_skew_seconds, 5);
        assert_eq!(km.audiences, ["a", "b"]);
        assert_eq!(km.required_type.as_deref(), Some("at+jwt"));
    }

    #[test]
    fn ten_thousand_subscriptions_compile_and_fit_one_configmap() {
        let mut index = base();
        for i in 0..10_000 {
            index.apply_binding(&simple_binding(
                "shop",
                &format!("b{i:05}"),
                i,
                "idp",
                &format!("client-{i:05}"),
                "orders",
            ));
        }
        let config = config(&index, &orders());
        assert_eq!(config.subscriptions.len(), 10_000);
        let bundle = outband_crds::sidecar_config::bundle::encode(&config).unwrap();
        assert_eq!(bundle.shards.len(), 1);
    }

    #[test]
    fn verdict_names_the_reason() {
        let mut index = base();
        index.apply_binding(&simple_binding(
            "shop", "a", 1, "missing", "client-a", "orders",
        ));
        let key = ObjectKey::new("shop", "a");
        let entry = index.binding(&key).unwrap().clone();
        assert_eq!(
            verdict(&index, &key, &entry, &orders()),
            Err(NotEffective::KeyManagerNotFound)
        );

        index.apply_binding(&simple_binding(
            "shop", "b", 1, "idp", "client-b", "payments",
        ));
        let key = ObjectKey::new("shop", "b");
        let entry = index.binding(&key).unwrap().clone();
        assert_eq!(
            verdict(&index, &key, &entry, &api("shop", "payments")),
            Err(NotEffective::ApiNotFound)
        );
    }
}
