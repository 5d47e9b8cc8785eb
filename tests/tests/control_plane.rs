//! The harness itself: a real kube-apiserver comes up and answers.

use outband_tests::control_plane::ControlPlane;

#[tokio::test]
async fn starts_a_real_apiserver_of_the_pinned_version() {
    let plane = ControlPlane::start().await.expect("control plane starts");
    assert_eq!(plane.version(), outband_tests::paths::KUBE_VERSION);
    let output = plane
        .kubectl()
        .unwrap()
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(outband_tests::paths::KUBE_VERSION), "{text}");
}

#[tokio::test]
async fn controller_manager_turns_deployments_into_pods() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, ListParams, PostParams};
    use outband_tests::control_plane::{ControlPlaneOptions, wait_for};

    let plane = ControlPlane::start_with(ControlPlaneOptions {
        controller_manager: true,
    })
    .await
    .expect("control plane with kube-controller-manager starts");
    plane.create_namespace("apps").await.unwrap();
    let client = plane.client().await.unwrap();
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "apps")
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "apps");
    let pod = wait_for(
        std::time::Duration::from_secs(60),
        "the ReplicaSet's pod",
        || {
            let pods = pods.clone();
            async move {
                Ok(pods
                    .list(&ListParams::default().labels("app=web"))
                    .await?
                    .items
                    .into_iter()
                    .next())
            }
        },
    )
    .await
    .expect("a pod is created from the Deployment");
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.kind, "ReplicaSet");
}
