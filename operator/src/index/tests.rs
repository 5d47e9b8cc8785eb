//! Fixtures shared by the pure tests (index, compiler, statuses), and the index's own tests.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::core::PartialObjectMeta;
use outband_crds::sidecar_config::{ApiRef, PublicJwk};
use outband_crds::{KeyManager, OAuthAppBinding, OAuthAppBindingStatus};
use serde_json::{Value, json};

use super::*;

pub fn api(namespace: &str, name: &str) -> ApiRef {
    ApiRef {
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A KeyManager with an explicit issuer and token endpoint, plus `extra` spec members.
pub fn key_manager(name: &str, extra: Value) -> KeyManager {
    let spec = merge(
        json!({"displayName": name, "issuer": "https://idp.example",
               "endpoints": {"token": "https://idp.example/token", "jwks": "https://idp.example/jwks"}}),
        extra,
    );
    serde_json::from_value(json!({
        "apiVersion": "outband.dev/v1alpha1", "kind": "KeyManager",
        "metadata": {"name": name, "generation": 1},
        "spec": spec
    }))
    .unwrap()
}

pub fn test_keys() -> Vec<PublicJwk> {
    vec![PublicJwk::Ec(outband_crds::jwk::EcJwk {
        kid: Some("k1".into()),
        alg: None,
        crv: outband_crds::jwk::EcCurve::P256,
        x: vec![1].into(),
        y: vec![2].into(),
    })]
}

/// Marks KeyManager `name` Ready with [`test_keys`].
pub fn ready(index: &mut Index, name: &str) -> Changes {
    index.set_observed(
        name,
        Some("https://idp.example/token".into()),
        Observed::Ready(Arc::new(Published {
            issuer: "https://idp.example".into(),
            jwks_url: Some("https://idp.example/jwks".into()),
            keys: test_keys(),
        })),
    )
}

/// An injected pod serving `api` with extra annotations.
pub fn pod(
    namespace: &str,
    name: &str,
    api: &str,
    annotations: &[(&str, &str)],
) -> PartialObjectMeta<Pod> {
    let mut all = serde_json::Map::new();
    all.insert("outband.dev/api".into(), json!(api));
    for (k, v) in annotations {
        all.insert(k.to_string(), json!(v));
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"outband.dev/inject": "enabled"}, "annotations": all}
    }))
    .unwrap()
}

/// A binding created at `created` (seconds since the epoch) with `spec`.
pub fn binding(namespace: &str, name: &str, created: i64, spec: Value) -> OAuthAppBinding {
    let created = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + created).unwrap();
    serde_json::from_value(json!({
        "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
        "metadata": {"name": name, "namespace": namespace, "generation": 1,
                     "creationTimestamp": created.to_string()},
        "spec": spec
    }))
    .unwrap()
}

/// A production binding of `consumer_key` subscribed to `api` in its own namespace.
pub fn simple_binding(
    namespace: &str,
    name: &str,
    created: i64,
    km: &str,
    consumer_key: &str,
    api: &str,
) -> OAuthAppBinding {
    binding(
        namespace,
        name,
        created,
        json!({"application": {"name": name}, "keyManager": km, "keyType": "PRODUCTION",
               "consumerKey": consumer_key, "subscriptions": [{"api": api}]}),
    )
}

/// Like [`simple_binding`], subscribed to `api` in `api_namespace`.
pub fn simple_binding_ns(
    namespace: &str,
    name: &str,
    created: i64,
    km: &str,
    consumer_key: &str,
    api_namespace: &str,
    api: &str,
) -> OAuthAppBinding {
    binding(
        namespace,
        name,
        created,
        json!({"application": {"name": name}, "keyManager": km, "keyType": "PRODUCTION",
               "consumerKey": consumer_key, "subscriptions": [{"api": api, "namespace": api_namespace}]}),
    )
}

pub fn configmap(namespace: &str, name: &str, api: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "outband-operator", "outband.dev/api": api}},
        "data": {"manifest.json": data}
    }))
    .unwrap()
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

#[test]
fn a_key_manager_change_marks_exactly_the_apis_that_use_it() {
    let mut index = Index::new();
    index.apply_key_manager(&key_manager("okta", json!({})));
    index.apply_key_manager(&key_manager("auth0", json!({})));
    index.apply_pod(&pod(
        "shop",
        "orders-1",
        "orders",
        &[("outband.dev/key-managers", "okta")],
    ));
    index.apply_pod(&pod(
        "shop",
        "cart-1",
        "cart",
        &[("outband.dev/key-managers", "auth0")],
    ));
    index.apply_pod(&pod("shop", "all-1", "all", &[]));

    let changes = index.apply_key_manager(&key_manager("okta", json!({"description": "changed"})));
    assert_eq!(
        changes.apis,
        set(&[api("shop", "all"), api("shop", "orders")])
    );
    assert_eq!(changes.key_managers, set(&["okta".to_string()]));

    let changes = ready(&mut index, "auth0");
    assert_eq!(
        changes.apis,
        set(&[api("shop", "all"), api("shop", "cart")])
    );
}

#[test]
fn an_unchanged_key_manager_changes_nothing() {
    let mut index = Index::new();
    index.apply_key_manager(&key_manager("okta", json!({})));
    index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
    assert!(
        index
            .apply_key_manager(&key_manager("okta", json!({})))
            .is_empty()
    );
    ready(&mut index, "okta");
    assert!(ready(&mut index, "okta").is_empty());
}

#[test]
fn a_binding_change_marks_its_old_and_new_apis() {
    let mut index = Index::new();
    let changes = index.apply_binding(&simple_binding("shop", "b", 1, "idp", "c", "orders"));
    assert_eq!(changes.apis, set(&[api("shop", "orders")]));
    assert_eq!(changes.bindings, set(&[ObjectKey::new("shop", "b")]));
    let changes = index.apply_binding(&simple_binding("shop", "b", 1, "idp", "c", "cart"));
    assert_eq!(
        changes.apis,
        set(&[api("shop", "cart"), api("shop", "orders")])
    );
    let changes = index.delete_binding(&ObjectKey::new("shop", "b"));
    assert_eq!(changes.apis, set(&[api("shop", "cart")]));
}

#[test]
fn the_echo_of_our_own_status_write_changes_nothing() {
    let mut index = Index::new();
    let mut b = simple_binding("shop", "b", 1, "idp", "c", "orders");
    index.apply_binding(&b);
    let status = OAuthAppBindingStatus {
        observed_generation: Some(1),
        token_endpoint: Some("https://idp.example/token".into()),
        ..Default::default()
    };
    index.record_binding_status(&ObjectKey::new("shop", "b"), &status);
    b.status = Some(status);
    b.metadata.resource_version = Some("42".into());
    assert!(index.apply_binding(&b).is_empty());
}

#[test]
fn a_status_edited_by_someone_else_rechecks_only_its_binding() {
    let mut index = Index::new();
    let mut b = simple_binding("shop", "b", 1, "idp", "c", "orders");
    index.apply_binding(&b);
    b.status = Some(OAuthAppBindingStatus {
        token_endpoint: Some("https://elsewhere.example/token".into()),
        ..Default::default()
    });
    let changes = index.apply_binding(&b);
    assert_eq!(changes.bindings, set(&[ObjectKey::new("shop", "b")]));
    assert!(changes.apis.is_empty());
    assert!(changes.key_managers.is_empty());
}

#[test]
fn the_index_keeps_a_digest_of_a_binding_status_not_the_status() {
    let mut index = Index::new();
    let mut b = simple_binding("shop", "b", 1, "idp", "c", "orders");
    let status = OAuthAppBindingStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    b.status = Some(status.clone());
    index.apply_binding(&b);
    let entry = index.binding(&ObjectKey::new("shop", "b")).unwrap();
    assert!(entry.status.matches(&status));
    assert_eq!(entry.generation, Some(1));
}

#[test]
fn a_deleted_key_manager_is_marked_for_its_controller_to_forget() {
    let mut index = Index::new();
    index.apply_key_manager(&key_manager("okta", json!({})));
    let changes = index.delete_key_manager("okta");
    assert_eq!(changes.key_managers, set(&["okta".to_string()]));
    assert!(index.delete_key_manager("okta").is_empty());
}

#[test]
fn deleting_the_owner_of_a_consumer_key_marks_the_next_binding() {
    let mut index = Index::new();
    index.apply_binding(&simple_binding("shop", "old", 1, "idp", "c", "orders"));
    index.apply_binding(&simple_binding("team", "new", 2, "idp", "c", "cart"));
    assert_eq!(
        index.consumer_key_owner("idp", "c"),
        Some(&ObjectKey::new("shop", "old"))
    );
    let changes = index.delete_binding(&ObjectKey::new("shop", "old"));
    assert!(changes.bindings.contains(&ObjectKey::new("team", "new")));
    assert!(changes.apis.contains(&api("team", "cart")));
    assert_eq!(
        index.consumer_key_owner("idp", "c"),
        Some(&ObjectKey::new("team", "new"))
    );
}

#[test]
fn a_new_api_marks_the_bindings_that_subscribe_to_it() {
    let mut index = Index::new();
    index.apply_binding(&simple_binding("shop", "b", 1, "idp", "c", "orders"));
    let changes = index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
    assert_eq!(changes.apis, set(&[api("shop", "orders")]));
    assert_eq!(changes.bindings, set(&[ObjectKey::new("shop", "b")]));
}

#[test]
fn another_pod_with_the_same_settings_changes_nothing() {
    let mut index = Index::new();
    index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
    assert!(
        index
            .apply_pod(&pod("shop", "orders-2", "orders", &[]))
            .is_empty()
    );
    assert!(
        index
            .delete_pod(&ObjectKey::new("shop", "orders-1"))
            .is_empty()
    );
    let changes = index.delete_pod(&ObjectKey::new("shop", "orders-2"));
    assert_eq!(changes.apis, set(&[api("shop", "orders")]));
    assert!(index.api(&api("shop", "orders")).is_none());
}

#[test]
fn a_pod_that_narrows_the_settings_changes_the_api() {
    let mut index = Index::new();
    index.apply_pod(&pod(
        "shop",
        "orders-1",
        "orders",
        &[("outband.dev/allowed-subscriber-namespaces", "a,b")],
    ));
    let changes = index.apply_pod(&pod(
        "shop",
        "orders-2",
        "orders",
        &[("outband.dev/allowed-subscriber-namespaces", "a")],
    ));
    assert_eq!(changes.apis, set(&[api("shop", "orders")]));
    let settings = &index.api(&api("shop", "orders")).unwrap().settings;
    assert!(settings.subscriber_namespaces.allows("a"));
    assert!(!settings.subscriber_namespaces.allows("b"));
}

#[test]
fn the_echo_of_our_own_write_changes_nothing_but_an_external_edit_does() {
    let mut index = Index::new();
    let cm = configmap("shop", "outband-api-orders", "orders", "{}");
    index.record_written(&cm);
    assert!(index.apply_configmap(&cm).is_empty());
    let edited = configmap("shop", "outband-api-orders", "orders", "{\"edited\":true}");
    assert_eq!(
        index.apply_configmap(&edited).apis,
        set(&[api("shop", "orders")])
    );
    assert_eq!(
        index
            .delete_configmap(&ObjectKey::new("shop", "outband-api-orders"))
            .apis,
        set(&[api("shop", "orders")])
    );
}

#[test]
fn all_apis_includes_apis_that_only_have_configmaps_left() {
    let mut index = Index::new();
    index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
    index.record_written(&configmap("shop", "outband-api-gone", "gone", "{}"));
    assert_eq!(
        index.all_apis(),
        set(&[api("shop", "gone"), api("shop", "orders")])
    );
}
