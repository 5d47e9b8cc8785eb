//! The operator against a real apiserver and a real OpenID provider: KeyManagers found by
//! discovery, their keys in the sidecar config, key rotation, provider outages, and which
//! APIs a KeyManager change recompiles.

mod operator_common;

use std::collections::BTreeSet;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use operator_common::*;
use outband_tests::oidc::decode_unverified;
use serde_json::json;

fn set(items: Vec<String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

#[tokio::test]
async fn a_key_manager_found_by_discovery_becomes_ready_and_its_keys_reach_the_subscribed_api() {
    let (cluster, idp, operator) = start_with_idp(&["shop"]).await;
    eprintln!("kube-apiserver {}", cluster.plane.version());
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding(
            "shop",
            "billing",
            binding_spec("idp", "test-client", &["orders"]),
        )
        .await
        .unwrap();

    let km = cluster
        .wait_for_key_manager("idp", "Ready", "True", Some("Ready"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let status = km.status.unwrap();
    let endpoints = status.endpoints.unwrap();
    assert_eq!(endpoints.issuer.as_deref(), Some(idp.issuer()));
    assert_eq!(
        endpoints.token.as_deref(),
        Some(idp.token_endpoint().as_str())
    );
    assert_eq!(endpoints.jwks.as_deref(), Some(idp.jwks_url().as_str()));
    assert!(has_condition(
        &status.conditions,
        "Discovered",
        "True",
        Some("DiscoverySucceeded")
    ));
    assert!(has_condition(
        &status.conditions,
        "KeysLoaded",
        "True",
        Some("KeysFetched")
    ));
    assert!(status.last_refresh_time.is_some());
    assert_eq!(status.consecutive_failures, 0);
    let published = set(idp.keys().await.unwrap().published_kids);
    let in_status = set(status.keys.iter().filter_map(|k| k.kid.clone()).collect());
    assert_eq!(in_status, published);
    assert!(
        status.keys.iter().any(|k| k.key_type == "RSA-2048"),
        "{:?}",
        status.keys
    );
    assert!(
        status.keys.iter().any(|k| k.key_type == "EC-P-256"),
        "{:?}",
        status.keys
    );

    let config = cluster
        .wait_for_config("shop", "orders", "the idp keys and one subscription", |c| {
            !kids(c, "idp").is_empty() && c.subscriptions.len() == 1
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    assert_eq!(set(kids(&config, "idp")), published);
    let km_config = &config.key_managers[0];
    assert_eq!(km_config.issuer, idp.issuer());
    assert_eq!(km_config.consumer_key_claim, "client_id");
    let refresh = km_config.jwks_refresh.as_ref().unwrap();
    assert_eq!(refresh.url, idp.jwks_url());
    assert!(refresh.allow_loopback);
    assert_eq!(config.subscriptions[0].consumer_key, "test-client");
    assert_eq!(config.subscriptions[0].binding, "shop/billing");

    // A token the provider issues now is signed by a key the sidecar already has.
    let token = idp
        .client_credentials_token("test-client", "test-secret", Some("api:read"))
        .await
        .unwrap();
    let (header, claims) = decode_unverified(&token).unwrap();
    assert!(kids(&config, "idp").contains(&header["kid"].as_str().unwrap().to_string()));
    assert_eq!(claims["client_id"], "test-client");
    assert_eq!(claims["iss"], idp.issuer());

    let binding = cluster
        .wait_for_binding("shop", "billing", "True", Some("Bound"))
        .await
        .unwrap();
    let status = binding.status.unwrap();
    assert_eq!(
        status.token_endpoint.as_deref(),
        Some(idp.token_endpoint().as_str())
    );
    assert!(status.subscriptions[0].effective && status.subscriptions[0].api_known);

    let cms = cluster.configmaps("shop", "orders").await.unwrap();
    let cm = &cms["outband-api-orders"];
    assert_eq!(
        cm.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "outband-operator"
    );
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert_eq!(
        managers,
        ["outband-operator"],
        "server-side apply under our field manager"
    );
}

#[tokio::test]
async fn a_key_rotation_at_the_provider_reaches_the_config() {
    let (cluster, idp, operator) = start_with_idp(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    let before = set(idp.keys().await.unwrap().published_kids);
    cluster
        .wait_for_config("shop", "orders", "the first keys", |c| {
            set(kids(c, "idp")) == before
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));

    idp.rotate_keys(false).await.unwrap();
    let after = set(idp.keys().await.unwrap().published_kids);
    assert!(after.is_disjoint(&before));
    cluster
        .wait_for_config("shop", "orders", "the rotated keys", |c| {
            set(kids(c, "idp")) == after
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let token = idp
        .client_credentials_token("test-client", "test-secret", None)
        .await
        .unwrap();
    let (header, _) = decode_unverified(&token).unwrap();
    assert!(after.contains(header["kid"].as_str().unwrap()));

    let events = Api::<Event>::namespaced(cluster.client.clone(), "default");
    outband_tests::control_plane::wait_until(CONVERGE, "a KeysRotated Event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await?;
            Ok(list.items.iter().any(|e| {
                e.reason.as_deref() == Some("KeysRotated")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("idp")
            }))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn stopping_the_provider_degrades_the_conditions_and_keeps_the_keys() {
    let (cluster, mut idp, operator) = start_with_idp(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    let published = set(idp.keys().await.unwrap().published_kids);
    cluster
        .wait_for_config("shop", "orders", "the keys", |c| {
            set(kids(c, "idp")) == published
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));

    idp.stop().await;
    let km = cluster
        .wait_for_key_manager("idp", "KeysLoaded", "False", Some("RefreshFailed"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let status = km.status.unwrap();
    assert!(has_condition(
        &status.conditions,
        "Ready",
        "True",
        Some("ServingLastKnownGoodKeys")
    ));
    assert!(status.consecutive_failures >= 1);
    assert_eq!(
        set(status.keys.iter().filter_map(|k| k.kid.clone()).collect()),
        published
    );
    // Three failed refreshes later, the sidecars still have the keys.
    operator
        .wait_for_increase(
            "three failed refreshes",
            &[(series::IDP_FAILURES, 0.0, 3.0)],
        )
        .await;
    let (_, config) = cluster
        .sidecar_config("shop", "orders")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set(kids(&config, "idp")), published);

    idp.restart().await.unwrap();
    let km = cluster
        .wait_for_key_manager("idp", "KeysLoaded", "True", Some("KeysFetched"))
        .await
        .unwrap();
    assert_eq!(km.status.unwrap().consecutive_failures, 0);
}

#[tokio::test]
async fn a_key_manager_change_recompiles_exactly_the_apis_that_use_it() {
    let cluster = Cluster::start().await.unwrap();
    let idp = provider(&[]).await.unwrap();
    cluster.namespace("shop").await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    cluster
        .apply_key_manager("idp-a", discovery_spec(&idp))
        .await
        .unwrap();
    cluster
        .apply_key_manager("idp-b", discovery_spec(&idp))
        .await
        .unwrap();
    cluster
        .create_pod(
            "shop",
            "orders-1",
            "orders",
            &[("outband.dev/key-managers", "idp-a")],
        )
        .await
        .unwrap();
    cluster
        .create_pod(
            "shop",
            "cart-1",
            "cart",
            &[("outband.dev/key-managers", "idp-b")],
        )
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "idp-a only", |c| {
            c.key_managers.len() == 1 && c.key_managers[0].name == "idp-a"
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    cluster
        .wait_for_config("shop", "cart", "idp-b only", |c| {
            c.key_managers.len() == 1 && c.key_managers[0].name == "idp-b"
        })
        .await
        .unwrap();
    let cart_before = resource_versions(&cluster, "shop", "cart").await.unwrap();

    let mut spec = discovery_spec(&idp);
    spec["tokenValidation"] = json!({"clockSkewSeconds": 5, "algorithms": ["RS256", "ES256"]});
    cluster.apply_key_manager("idp-a", spec).await.unwrap();
    cluster
        .wait_for_config("shop", "orders", "idp-a's new clock skew", |c| {
            c.key_managers[0].clock_skew_seconds == 5
        })
        .await
        .unwrap();
    // A few resyncs of both APIs and refreshes of idp-b later, the other API's ConfigMap
    // is untouched.
    let unchanged = operator.value(series::UNCHANGED).await;
    let refreshes_b = (
        "outband_operator_jwks_fetches_total",
        "key_manager=\"idp-b\",result=\"success\"",
    );
    let refreshed = operator.value(refreshes_b).await;
    operator
        .wait_for_increase(
            "resyncs of both APIs and refreshes of idp-b",
            &[
                (series::UNCHANGED, unchanged, 4.0),
                (refreshes_b, refreshed, 2.0),
            ],
        )
        .await;
    assert_eq!(
        resource_versions(&cluster, "shop", "cart").await.unwrap(),
        cart_before
    );
}

#[tokio::test]
async fn disabled_key_managers_and_introspection_endpoints_are_reported() {
    let cluster = Cluster::start().await.unwrap();
    let idp = provider(&[]).await.unwrap();
    cluster.namespace("shop").await.unwrap();
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    let mut spec = discovery_spec(&idp);
    spec["endpoints"] = json!({"introspection": format!("{}/token/introspection", idp.issuer())});
    cluster
        .apply_key_manager("idp", spec.clone())
        .await
        .unwrap();
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    let km = cluster
        .wait_for_key_manager(
            "idp",
            "IntrospectionUnsupported",
            "True",
            Some("IntrospectionNotUsed"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    assert!(has_condition(
        &km.status.unwrap().conditions,
        "Ready",
        "True",
        None
    ));
    cluster
        .wait_for_config("shop", "orders", "the KeyManager", |c| {
            c.key_managers.len() == 1
        })
        .await
        .unwrap();

    spec["enabled"] = json!(false);
    cluster.apply_key_manager("idp", spec).await.unwrap();
    cluster
        .wait_for_key_manager("idp", "Ready", "False", Some("Disabled"))
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "no KeyManager", |c| {
            c.key_managers.is_empty()
        })
        .await
        .unwrap();
}
