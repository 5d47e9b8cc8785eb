//! The operator as a process: its metrics pass `promtool check metrics`, two replicas elect
//! one leader and the standby takes over, and SIGTERM stops it cleanly and frees the lease.

mod operator_common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use operator_common::*;
use outband_tests::control_plane::wait_until;
use outband_tests::paths;

async fn leader_gauge(operator: &Operator) -> f64 {
    operator
        .metric("outband_operator_leader", "")
        .await
        .unwrap_or(-1.0)
}

async fn lease_holder(cluster: &Cluster) -> Option<String> {
    Api::<Lease>::namespaced(cluster.client.clone(), "default")
        .get_opt("outband-operator")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn promtool_accepts_the_metrics() {
    let promtool = paths::tool_on_path("promtool", "make tools").unwrap();
    let (cluster, _idp, operator) = start_with_idp(&["shop"]).await;
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .apply_binding("shop", "a", binding_spec("idp", "client-a", &["orders"]))
        .await
        .unwrap();
    cluster
        .apply_binding(
            "shop",
            "b",
            binding_spec("nowhere", "client-b", &["orders"]),
        )
        .await
        .unwrap();
    cluster
        .wait_for_binding("shop", "a", "True", Some("Bound"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    cluster
        .wait_for_binding("shop", "b", "False", Some("KeyManagerNotFound"))
        .await
        .unwrap();

    let metrics = operator.metrics().await.unwrap();
    for family in [
        "outband_operator_reconciles_total",
        "outband_operator_reconcile_duration_seconds",
        "outband_operator_jwks_fetches_total",
        "outband_operator_keys_loaded",
        "outband_operator_keys_last_refresh_success_timestamp_seconds",
        "outband_operator_configmap_writes_total",
        "outband_operator_bindings",
        "outband_operator_leader",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family} missing:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("outband_operator_bindings{state=\"Bound\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outband_operator_bindings{state=\"KeyManagerNotFound\"} 1"),
        "{metrics}"
    );

    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused /metrics:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() {
    let cluster = Cluster::start().await.unwrap();
    let idp = provider(&[]).await.unwrap();
    cluster.namespace("shop").await.unwrap();
    // Both replicas are Ready: the standby keeps its watches (and a webhook) serving.
    let a = Operator::start(&cluster.plane, "operator-a", &[])
        .await
        .unwrap();
    let b = Operator::start(&cluster.plane, "operator-b", &[])
        .await
        .unwrap();
    wait_until(CONVERGE, "one leader", || async {
        Ok(leader_gauge(&a).await + leader_gauge(&b).await == 1.0)
    })
    .await
    .unwrap();
    let (mut leader, standby, standby_name) = if leader_gauge(&a).await == 1.0 {
        (a, b, "operator-b")
    } else {
        (b, a, "operator-a")
    };
    cluster
        .apply_key_manager("idp", discovery_spec(&idp))
        .await
        .unwrap();
    cluster
        .create_pod("shop", "orders-1", "orders", &[])
        .await
        .unwrap();
    cluster
        .wait_for_config("shop", "orders", "the keys", |c| !kids(c, "idp").is_empty())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", leader.log()));
    assert_eq!(leader_gauge(&standby).await, 0.0);
    assert_eq!(
        standby
            .metric(
                "outband_operator_configmap_writes_total",
                "operation=\"apply\",result=\"success\""
            )
            .await
            .unwrap(),
        0.0,
        "the standby writes nothing"
    );

    // The leader dies without releasing its lease: the standby takes over once it expires.
    leader.process.kill();
    wait_until(Duration::from_secs(30), "the standby to lead", || async {
        Ok(leader_gauge(&standby).await == 1.0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", standby.log()));
    assert_eq!(lease_holder(&cluster).await.as_deref(), Some(standby_name));
    cluster
        .apply_binding("shop", "app", binding_spec("idp", "client-a", &["orders"]))
        .await
        .unwrap();
    cluster
        .wait_for_config(
            "shop",
            "orders",
            "the subscription from the new leader",
            |c| c.subscriptions.len() == 1,
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", standby.log()));
}

#[tokio::test]
async fn sigterm_stops_the_operator_cleanly_and_frees_the_lease() {
    let cluster = Cluster::start().await.unwrap();
    let mut operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    wait_until(CONVERGE, "the operator to lead", || async {
        Ok(leader_gauge(&operator).await == 1.0)
    })
    .await
    .unwrap();
    assert_eq!(lease_holder(&cluster).await.as_deref(), Some("operator"));

    let status = Command::new("kill")
        .args(["-TERM", &operator.process.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = operator.process.exited() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still running:\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}\n{}", operator.log());
    assert_eq!(
        lease_holder(&cluster).await,
        None,
        "the lease is released on shutdown"
    );
}

#[tokio::test]
async fn with_the_webhook_it_is_not_ready_before_its_serving_certificate_is_loaded() {
    let cluster = Cluster::start().await.unwrap();
    let webhook_port = outband_tests::ports::free_port();
    // The webhook's Secret goes into a namespace that does not exist yet: the certificate
    // cannot be stored, so the webhook cannot answer a TLS handshake.
    let listen = format!("--webhook-listen=127.0.0.1:{webhook_port}");
    let operator = Operator::spawn(
        &cluster.plane,
        "operator",
        &[&listen, "--webhook-namespace=webhook-home"],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let last = loop {
        let last = operator.readyz().await.unwrap_or_default();
        if last.1 == "waiting for: webhook-certificate\n" {
            break last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never waited for the certificate alone: {last:?}\n{}",
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last.0, 503);

    cluster.namespace("webhook-home").await.unwrap();
    wait_until(Duration::from_secs(60), "/readyz 200", || {
        let readyz = operator.readyz();
        async move { Ok(readyz.await?.0 == 200) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", operator.log()));
    assert!(
        operator
            .log()
            .contains("webhook serving certificate loaded")
    );
}
