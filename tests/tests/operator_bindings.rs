//! OAuthAppBindings against a real apiserver: their subscriptions in the sidecar config,
//! duplicate consumer keys, cross-namespace subscriptions, and ConfigMaps that follow the
//! APIs' pods.

mod operator_common;

use operator_common::*;
use outband_crds::{KeyType, SubscriptionState};
use serde_json::json;

/// A cluster with KeyManager `idp` Ready and the operator running.
async fn setup(namespaces: &[&str]) -> (Cluster, outband_tests::oidc::OidcProvider, Operator) {
    let (cluster, idp, operator) = start_with_idp(namespaces).await;
    cluster
        .wait_for_key_manager("idp", "Ready", "True", None)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    (cluster, idp, operator)
}

#[tokio::test]
async fn binding_create_update_and_delete_change_the_config() {
    let (cluster, _idp, operator) = setup(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .create_pod("shop", "cart-1", "cart", &[])
        .await
        .unwrap();

    cluster
        .apply_binding(
            "shop",
            "billing",
            binding_spec("idp", "client-b", &["orders"]),
        )
        .await
        .unwrap();
    let config = cluster
        .wait_for_config("shop", "orders", "the new subscription", |c| {
            c.subscriptions.len() == 1
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let subscription = &config.subscriptions[0];
    assert_eq!(subscription.consumer_key, "client-b");
    assert_eq!(subscription.application, "app-client-b");
    assert_eq!(subscription.key_type, KeyType::Production);
    assert_eq!(subscription.state, SubscriptionState::Active);

    // Update: block the orders subscription, add cart as a sandbox key with a tier.
    cluster
        .apply_binding(
            "shop",
            "billing",
            json!({
                "application": {"name": "billing"}, "keyManager": "idp", "keyType": "SANDBOX",
                "consumerKey": "client-b",
                "subscriptions": [{"api": "orders", "state": "Blocked"}, {"api": "cart", "tier": "Gold"}],
            }),
        )
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "the blocked subscription", |c| {
            c.subscriptions.len() == 1
                && c.subscriptions[0].state == SubscriptionState::Blocked
                && c.subscriptions[0].key_type == KeyType::Sandbox
                && c.subscriptions[0].application == "billing"
        })
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "cart", "the cart subscription", |c| {
            c.subscriptions.len() == 1 && c.subscriptions[0].tier.as_deref() == Some("Gold")
        })
        .await
        .unwrap();

    // Update: drop the orders subscription.
    cluster
        .apply_binding(
            "shop",
            "billing",
            binding_spec("idp", "client-b", &["cart"]),
        )
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "no subscription", |c| {
            c.subscriptions.is_empty()
        })
        .await
        .unwrap();

    cluster.delete_binding("shop", "billing").await.unwrap();
    cluster
        .wait_for_config("shop", "cart", "no subscription", |c| {
            c.subscriptions.is_empty()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_duplicate_consumer_key_is_refused_with_a_reason() {
    let (cluster, _idp, operator) = setup(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding(
            "shop",
            "first",
            binding_spec("idp", "client-x", &["orders"]),
        )
        .await
        .unwrap();
    let first = cluster
        .wait_for_binding("shop", "first", "True", Some("Bound"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    // Creation timestamps have a one-second resolution: make "second" clearly later.
    let created = first.metadata.creation_timestamp.unwrap().0.as_second();
    outband_tests::control_plane::wait_until(CONVERGE, "the next second", || async move {
        Ok(k8s_openapi::jiff::Timestamp::now().as_second() > created)
    })
    .await
    .unwrap();
    cluster
        .apply_binding(
            "shop",
            "second",
            binding_spec("idp", "client-x", &["orders"]),
        )
        .await
        .unwrap();

    let refused = cluster
        .wait_for_binding("shop", "second", "False", Some("DuplicateConsumerKey"))
        .await
        .unwrap();
    let status = refused.status.unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(ready.message.contains("shop/first"), "{}", ready.message);
    assert_eq!(
        status.subscriptions[0].reason.as_deref(),
        Some("DuplicateConsumerKey")
    );
    assert!(!status.subscriptions[0].effective);
    let config = cluster
        .wait_for_config("shop", "orders", "one subscription", |c| {
            c.subscriptions.len() == 1
        })
        .await
        .unwrap();
    assert_eq!(config.subscriptions[0].binding, "shop/first");
    cluster
        .wait_for_binding("shop", "first", "True", Some("Bound"))
        .await
        .unwrap();

    // The older binding goes away: the later one takes over.
    cluster.delete_binding("shop", "first").await.unwrap();
    cluster
        .wait_for_binding("shop", "second", "True", Some("Bound"))
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "the second binding", |c| {
            c.subscriptions.len() == 1 && c.subscriptions[0].binding == "shop/second"
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_binding_to_a_missing_key_manager_is_not_ready() {
    let (cluster, _idp, operator) = setup(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding(
            "shop",
            "lost",
            binding_spec("nowhere", "client-l", &["orders"]),
        )
        .await
        .unwrap();
    cluster
        .wait_for_binding("shop", "lost", "False", Some("KeyManagerNotFound"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let (_, config) = cluster
        .sidecar_config("shop", "orders")
        .await
        .unwrap()
        .unwrap();
    assert!(config.subscriptions.is_empty());
}

#[tokio::test]
async fn cross_namespace_subscriptions_count_only_when_the_api_owners_allow_the_namespace() {
    let (cluster, _idp, operator) = setup(&["shop", "team"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding(
            "team",
            "app",
            json!({
                "application": {"name": "team-app"}, "keyManager": "idp", "keyType": "PRODUCTION",
                "consumerKey": "client-t", "subscriptions": [{"api": "orders", "namespace": "shop"}],
            }),
        )
        .await
        .unwrap();
    let binding = cluster
        .wait_for_binding("team", "app", "True", Some("Bound"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let subscription = &binding.status.unwrap().subscriptions[0];
    assert!(subscription.api_known);
    assert!(!subscription.effective);
    assert_eq!(subscription.reason.as_deref(), Some("NamespaceNotAllowed"));
    let (_, config) = cluster
        .sidecar_config("shop", "orders")
        .await
        .unwrap()
        .unwrap();
    assert!(config.subscriptions.is_empty());

    // The API's owners roll out pods that allow namespace "team".
    cluster
        .create_pod(
            "shop",
            "orders-2",
            "orders",
            &[("outband.dev/allowed-subscriber-namespaces", "team")],
        )
        .await
        .unwrap();
    cluster.delete_pod("shop", "orders-1").await.unwrap();
    cluster
        .wait_for_config("shop", "orders", "the cross-namespace subscription", |c| {
            c.subscriptions.len() == 1 && c.subscriptions[0].binding == "team/app"
        })
        .await
        .unwrap();
    outband_tests::control_plane::wait_until(CONVERGE, "the subscription in effect", || async {
        let binding = cluster.binding("team", "app").await?;
        Ok(binding.status.is_some_and(|s| s.subscriptions[0].effective))
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_api_without_subscriptions_gets_a_config_and_loses_it_when_its_pods_go() {
    let (cluster, _idp, operator) = setup(&["shop"]).await;
    cluster
        .create_pod("shop", "payments-1", "payments", &[])
        .await
        .unwrap();
    let config = cluster
        .wait_for_config("shop", "payments", "a config without subscriptions", |c| {
            c.key_managers.len() == 1
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    assert!(config.subscriptions.is_empty());

    // A ConfigMap deleted by hand is written again.
    kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(cluster.client.clone(), "shop")
        .delete("outband-api-payments", &Default::default())
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "payments", "the config written again", |c| {
            c.key_managers.len() == 1
        })
        .await
        .unwrap();

    cluster.delete_pod("shop", "payments-1").await.unwrap();
    outband_tests::control_plane::wait_until(
        CONVERGE,
        "the obsolete ConfigMaps deleted",
        || async { Ok(cluster.configmaps("shop", "payments").await?.is_empty()) },
    )
    .await
    .unwrap();
}
