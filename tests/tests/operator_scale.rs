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

    // Once converged, nothing more is written: two more rounds of resyncs (every API and
    // every binding rechecked twice) write nothing.
    let writes = operator.value(series::APPLIES).await;
    let versions = binding_versions(&cluster, "shop").await;
    let unchanged = operator.value(series::UNCHANGED).await;
    let rechecks = operator.value(series::BINDING_RECONCILES).await;
    operator
        .wait_for_increase(
            "two resyncs of the API and of every binding",
            &[
                (series::UNCHANGED, unchanged, 2.0),
                (series::BINDING_RECONCILES, rechecks, 2.0 * COUNT as f64),
            ],
        )
        .await;
    assert_eq!(operator.value(series::APPLIES).await, writes);
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
    // The binding statuses settle too.
    outband_tests::control_plane::wait_until(CONVERGE, "50 bindings Bound", || async {
        let list = Api::<OAuthAppBinding>::namespaced(cluster.client.clone(), "shop")
            .list(&ListParams::default())
            .await?;
        Ok(list.items.len() == 50
            && list.items.iter().all(|b| {
                b.status
                    .as_ref()
                    .is_some_and(|s| has_condition(&s.conditions, "Ready", "True", Some("Bound")))
            }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));

    let applies = operator.value(series::APPLIES).await;
    let deletes = operator.value(series::DELETES).await;
    let unchanged = operator.value(series::UNCHANGED).await;
    let refreshes = operator.value(series::IDP_REFRESHES).await;
    let rechecks = operator.value(series::BINDING_RECONCILES).await;
    let orders = resource_versions(&cluster, "shop", "orders").await.unwrap();
    let cart = resource_versions(&cluster, "shop", "cart").await.unwrap();
    let bindings = binding_versions(&cluster, "shop").await;

    // --resync-interval=1s and --max-refresh-interval=1s: wait for three resyncs of both
    // APIs and of every binding, and three key refreshes.
    let grown = operator
        .wait_for_increase(
            "three resyncs and three key refreshes",
            &[
                (series::UNCHANGED, unchanged, 6.0),
                (series::BINDING_RECONCILES, rechecks, 150.0),
                (series::IDP_REFRESHES, refreshes, 3.0),
            ],
        )
        .await;
    eprintln!(
        "steady state: {} unchanged compilations, {} binding rechecks and {} key refreshes; 0 ConfigMap writes",
        grown[0], grown[1], grown[2]
    );
    assert_eq!(operator.value(series::APPLIES).await, applies);
    assert_eq!(operator.value(series::DELETES).await, deletes);
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
