//! Scale and steady state: 1,000 bindings to one API converge, and an operator with nothing
//! to do writes nothing, however many resyncs and key refreshes pass.

mod operator_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, Patch, PatchParams};
use operator_common::*;
use outband_crds::OAuthAppBinding;
use tokio::task::JoinSet;

/// Applies `count` bindings `b-0000`… in `namespace`, `parallel` at a time.
async fn apply_bindings(cluster: &Cluster, namespace: &str, count: usize, api: &str) {
    let bindings: Api<OAuthAppBinding> = Api::namespaced(cluster.client.clone(), namespace);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
        let bindings = bindings.clone();
        let api = api.to_string();
        tasks.spawn(async move {
            let name = format!("b-{i:04}");
            let binding: OAuthAppBinding = serde_json::from_value(serde_json::json!({
                "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
                "metadata": {"name": name},
                "spec": binding_spec("idp", &format!("client-{i:04}"), &[api.as_str()]),
            }))
            .unwrap();
            bindings
                .patch(
                    &name,
                    &PatchParams::apply("outband-tests"),
                    &Patch::Apply(&binding),
                )
                .await
                .unwrap();
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

/// resourceVersion of every binding in `namespace`.
async fn binding_versions(cluster: &Cluster, namespace: &str) -> BTreeMap<String, String> {
    Api::<OAuthAppBinding>::namespaced(cluster.client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| {
            (
                b.metadata.name.unwrap(),
                b.metadata.resource_version.unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_thousand_bindings_to_one_api_converge() {
    const COUNT: usize = 1000;
    let (cluster, _idp, operator) = start_with_idp(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "the KeyManager's keys", |c| {
            !kids(c, "idp").is_empty()
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));

    let start = Instant::now();
    apply_bindings(&cluster, "shop", COUNT, "orders").await;
    let created = start.elapsed();
    let config = cluster
        .wait_for_config("shop", "orders", "1,000 subscriptions", |c| {
            c.subscriptions.len() == COUNT
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    let config_converged = start.elapsed();
    outband_tests::control_plane::wait_until(
        Duration::from_secs(120),
        "1,000 bindings Bound",
        || async {
            let list = Api::<OAuthAppBinding>::namespaced(cluster.client.clone(), "shop")
                .list(&ListParams::default())
                .await?;
            Ok(list.items.len() == COUNT
                && list.items.iter().all(|b| {
                    b.status.as_ref().is_some_and(|s| {
                        has_condition(&s.conditions, "Ready", "True", Some("Bound"))
                    })
                }))
        },
    )
    .await
    .unwrap();
    let all_bound = start.elapsed();

    let keys: Vec<_> = config
        .subscriptions
        .iter()
        .map(|s| s.consumer_key.clone())
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "subscriptions are sorted");
    let (manifest, _) = cluster
        .sidecar_config("shop", "orders")
        .await
        .unwrap()
        .unwrap();
    let cms = cluster.configmaps("shop", "orders").await.unwrap();
    let stored: usize = cms
        .values()
        .map(|cm| {
            cm.binary_data
                .iter()
                .flatten()
                .map(|(_, v)| v.0.len())
                .sum::<usize>()
                + cm.data
                    .iter()
                    .flatten()
                    .map(|(_, v)| v.len())
                    .sum::<usize>()
        })
        .sum();
    eprintln!(
        "1,000 bindings: created in {created:?}; config with 1,000 subscriptions after {config_converged:?}; \
         all bindings Bound after {all_bound:?}; {} ConfigMap(s), {} bytes stored ({} bytes gzip), \
         uncompressed document {} bytes",
        cms.len(),
        stored,
        manifest.shards.iter().map(|s| s.size).sum::<u64>(),
        manifest.size,
    );
    assert_eq!(cms.len(), 1);
    assert!(stored < 1024 * 1024);

    // Once converged, nothing more is written.
    let writes = operator
        .metric(
            "outband_operator_configmap_writes_total",
            "operation=\"apply\",result=\"success\"",
        )
        .await
        .unwrap();
    let versions = binding_versions(&cluster, "shop").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        operator
            .metric(
                "outband_operator_configmap_writes_total",
                "operation=\"apply\",result=\"success\""
            )
            .await
            .unwrap(),
        writes
    );
    assert_eq!(binding_versions(&cluster, "shop").await, versions);
}

#[tokio::test]
async fn the_steady_state_writes_no_configmap_over_several_resyncs() {
    let (cluster, _idp, operator) = start_with_idp(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .create_pod("shop", "cart-1", "cart", &[])
        .await
        .unwrap();
    apply_bindings(&cluster, "shop", 50, "orders").await;
    cluster
        .wait_for_config("shop", "orders", "50 subscriptions", |c| {
            c.subscriptions.len() == 50
        })
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    cluster
        .wait_for_config("shop", "cart", "the keys", |c| !kids(c, "idp").is_empty())
        .await
        .unwrap();
    // Let the binding statuses settle too.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let metric = |name: &'static str, labels: &'static str| {
        let operator = &operator;
        async move { operator.metric(name, labels).await.unwrap() }
    };
    let applies = metric(
        "outband_operator_configmap_writes_total",
        "operation=\"apply\",result=\"success\"",
    )
    .await;
    let deletes = metric(
        "outband_operator_configmap_writes_total",
        "operation=\"delete\",result=\"success\"",
    )
    .await;
    let unchanged = metric(
        "outband_operator_config_compilations_total",
        "outcome=\"unchanged\"",
    )
    .await;
    let refreshes = metric(
        "outband_operator_jwks_fetches_total",
        "key_manager=\"idp\",result=\"success\"",
    )
    .await;
    let orders = resource_versions(&cluster, "shop", "orders").await.unwrap();
    let cart = resource_versions(&cluster, "shop", "cart").await.unwrap();
    let bindings = binding_versions(&cluster, "shop").await;

    // --resync-interval=1s and --max-refresh-interval=1s: about six of each.
    tokio::time::sleep(Duration::from_secs(6)).await;

    let resyncs = metric(
        "outband_operator_config_compilations_total",
        "outcome=\"unchanged\"",
    )
    .await
        - unchanged;
    let new_refreshes = metric(
        "outband_operator_jwks_fetches_total",
        "key_manager=\"idp\",result=\"success\"",
    )
    .await
        - refreshes;
    eprintln!(
        "steady state: {resyncs} unchanged compilations and {new_refreshes} key refreshes in 6 s; 0 ConfigMap writes"
    );
    assert!(
        resyncs >= 6.0,
        "several resyncs compiled both APIs: {resyncs}"
    );
    assert!(new_refreshes >= 3.0, "keys were refreshed: {new_refreshes}");
    assert_eq!(
        metric(
            "outband_operator_configmap_writes_total",
            "operation=\"apply\",result=\"success\""
        )
        .await,
        applies
    );
    assert_eq!(
        metric(
            "outband_operator_configmap_writes_total",
            "operation=\"delete\",result=\"success\""
        )
        .await,
        deletes
    );
    assert_eq!(
        resource_versions(&cluster, "shop", "orders").await.unwrap(),
        orders
    );
    assert_eq!(
        resource_versions(&cluster, "shop", "cart").await.unwrap(),
        cart
    );
    assert_eq!(binding_versions(&cluster, "shop").await, bindings);
}
