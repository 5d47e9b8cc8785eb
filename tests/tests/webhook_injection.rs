//! The injection webhook against a real kube-apiserver: the operator binary serves it on
//! 127.0.0.1, and the apiserver calls it through a MutatingWebhookConfiguration registered
//! with `clientConfig.url` (the test control plane has no Services to route to). The
//! operator itself creates the TLS Secret and writes the `caBundle`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use outband_tests::control_plane::{ControlPlane, ControlPlaneOptions, wait_until};
use outband_tests::operator::{
    OPERATOR_NAMESPACE, OperatorOptions, OperatorProcess, WEBHOOK_CONFIGURATION as CONFIGURATION,
};
use outband_tests::paths;
use outband_tests::ports::free_port;
use outband_tests::process::ManagedProcess;
use serde_json::json;

const APP_NAMESPACE: &str = "shop";
const SIDECAR_IMAGE: &str = "registry.example/outband-sidecar:test";

/// A control plane, the operator with its webhook, and the webhook registered.
struct Injector {
    operator: OperatorProcess,
    client: Client,
    admin_port: u16,
    // Last: dropped after the operator.
    plane: ControlPlane,
}

impl Injector {
    async fn start(options: ControlPlaneOptions) -> anyhow::Result<Injector> {
        Injector::start_with_secret(options, None).await
    }

    /// Like [`Injector::start`], with the webhook TLS Secret created before the operator.
    async fn start_with_secret(
        options: ControlPlaneOptions,
        secret: Option<Secret>,
    ) -> anyhow::Result<Injector> {
        let plane = ControlPlane::start_with(options).await?;
        plane.install_crds().await?;
        plane.create_namespace(OPERATOR_NAMESPACE).await?;
        plane.create_namespace(APP_NAMESPACE).await?;
        let client = plane.client().await?;
        if let Some(secret) = secret {
            Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
                .create(&PostParams::default(), &secret)
                .await?;
        }
        let operator = OperatorProcess::start(
            &plane,
            OperatorOptions::with_args([
                format!("--sidecar-image={SIDECAR_IMAGE}"),
                "--sidecar-cpu-request=25m".to_string(),
                "--sidecar-memory-request=48Mi".to_string(),
                "--sidecar-memory-limit=96Mi".to_string(),
                "--sidecar-log-level=info,outband_sidecar=debug".to_string(),
            ]),
        )
        .await?;
        Ok(Injector {
            admin_port: operator.admin_port(),
            operator,
            client,
            plane,
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), APP_NAMESPACE)
    }

    /// The operator's `/metrics` text.
    async fn metrics(&self) -> anyhow::Result<String> {
        let (status, body) = http_get(self.admin_port, "/metrics").await?;
        anyhow::ensure!(status == 200, "GET /metrics: {status}");
        Ok(body)
    }
}

/// `GET http://127.0.0.1:<port><path>`: status and body.
async fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("an HTTP status")?;
    Ok((status, body.to_string()))
}

/// Runs the real sidecar binary with the injected arguments (its ports and config directory
/// moved to free loopback ports and an empty directory), and checks its probes answer as
/// the injected probes expect: alive, and not ready without a config.
async fn run_injected_sidecar(args: &[String], scratch: &std::path::Path) -> anyhow::Result<()> {
    let (proxy, admin) = (free_port(), free_port());
    let config = scratch.join("sidecar-config");
    std::fs::create_dir_all(&config)?;
    let args: Vec<String> = args
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--listen", _)) => format!("--listen=127.0.0.1:{proxy}"),
            Some(("--admin-listen", _)) => format!("--admin-listen=127.0.0.1:{admin}"),
            Some(("--config-dir", _)) => format!("--config-dir={}", config.display()),
            _ => arg.replace("$(POD_NAMESPACE)", APP_NAMESPACE),
        })
        .collect();
    let mut sidecar = ManagedProcess::spawn(
        "outband-sidecar",
        &paths::binary("outband-sidecar")?,
        &args,
        &[],
        &scratch.join("sidecar.log"),
    )?;
    let alive = wait_until(
        Duration::from_secs(30),
        "the sidecar's /livez",
        || async move { Ok(http_get(admin, "/livez").await?.0 == 200) },
    )
    .await;
    if let Some(status) = sidecar.exited() {
        anyhow::bail!(
            "the sidecar exited ({status}) with {args:?}:\n{}",
            sidecar.log_tail(20)
        );
    }
    alive.with_context(|| sidecar.log_tail(20))?;
    let (ready, _) = http_get(admin, "/readyz").await?;
    anyhow::ensure!(ready != 200, "ready without a config");
    Ok(())
}

fn pod_with(name: &str, labels: serde_json::Value, annotations: &[(&str, &str)]) -> Pod {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": labels, "annotations": annotations },
        "spec": { "containers": [{
            "name": "app",
            "image": "registry.example/orders:2.0",
            "ports": [{ "name": "http", "containerPort": 8080 }],
        }]},
    }))
    .expect("a valid pod")
}

/// A labelled pod for API `orders` plus `extra` annotations.
fn labelled_pod(name: &str, extra: &[(&str, &str)]) -> Pod {
    let mut annotations = vec![("outband.dev/api", "orders")];
    annotations.extend_from_slice(extra);
    pod_with(
        name,
        json!({ "app": "orders", "outband.dev/inject": "enabled" }),
        &annotations,
    )
}

fn sidecar(pod: &Pod) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == "outband-sidecar")
}

fn is_injected(pod: &Pod) -> bool {
    sidecar(pod).is_some()
}

fn refusal(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected a refusal from the API server, got {other}"),
    }
}

#[tokio::test]
async fn a_labelled_deployments_pod_comes_back_with_the_sidecar() {
    let injector = Injector::start(ControlPlaneOptions {
        controller_manager: true,
    })
    .await
    .unwrap();
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "orders", "namespace": APP_NAMESPACE },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "orders" } },
            "template": {
                "metadata": {
                    "labels": { "app": "orders", "outband.dev/inject": "enabled" },
                    "annotations": {
                        "outband.dev/api": "orders",
                        "outband.dev/upstream-port": "http",
                        "outband.dev/key-type": "SANDBOX",
                        "outband.dev/key-managers": "auth0",
                        "outband.dev/route-scopes": "GET /orders/* orders:read",
                    },
                },
                "spec": { "containers": [{
                    "name": "app",
                    "image": "registry.example/orders:2.0",
                    "ports": [{ "name": "http", "containerPort": 8080 }],
                    "readinessProbe": { "httpGet": { "path": "/health", "port": "http" } },
                }]},
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(injector.client.clone(), APP_NAMESPACE)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    // The ReplicaSet controller creates the pod; the API server calls the webhook.
    let pods = injector.pods();
    let list = ListParams::default().labels("app=orders");
    wait_until(Duration::from_secs(60), "the Deployment's pod", || {
        let pods = pods.clone();
        let list = list.clone();
        async move { Ok(!pods.list(&list).await?.items.is_empty()) }
    })
    .await
    .unwrap();
    let pod = pods.list(&list).await.unwrap().items.remove(0);
    assert!(
        pod.owner_references()
            .iter()
            .any(|o| o.kind == "ReplicaSet")
    );
    let spec = pod.spec.as_ref().unwrap();

    // A native sidecar: the last init container, restartPolicy Always.
    let sidecar = spec.init_containers.as_ref().unwrap().last().unwrap();
    assert_eq!(sidecar.name, "outband-sidecar");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(sidecar.image.as_deref(), Some(SIDECAR_IMAGE));
    let args = sidecar.args.clone().unwrap();
    for expected in [
        "--listen=0.0.0.0:15080",
        "--upstream=http://127.0.0.1:8080",
        "--admin-listen=0.0.0.0:15090",
        "--config-dir=/etc/outband/config",
        "--api=orders",
        "--api-namespace=$(POD_NAMESPACE)",
        "--key-type=SANDBOX",
        "--key-managers=auth0",
        "--route-scopes=GET /orders/* orders:read",
        "--log-level=info,outband_sidecar=debug",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }

    // The sidecar took over the port name; the app keeps the number, its probe the port.
    let sidecar_ports: Vec<(String, i32)> = sidecar
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        sidecar_ports,
        [
            ("http".to_string(), 15080),
            ("outband-admin".to_string(), 15090)
        ]
    );
    let app = &spec.containers[0];
    let app_port = &app.ports.as_ref().unwrap()[0];
    assert_eq!(
        (app_port.name.as_deref(), app_port.container_port),
        (None, 8080)
    );
    let app_probe = app
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(
        app_probe.port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080)
    );

    // Hardened, probed on the admin port, resources from the operator's flags.
    let security = sidecar.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert_eq!(
        security.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    for (probe, path) in [
        (&sidecar.liveness_probe, "/livez"),
        (&sidecar.readiness_probe, "/readyz"),
    ] {
        let http = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(http.path.as_deref(), Some(path));
        assert_eq!(
            http.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "outband-admin".into()
            )
        );
    }
    let resources = sidecar.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "25m");
    assert_eq!(requests["memory"].0, "48Mi");
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "96Mi");

    // The config: every shard ConfigMap of the API, optional, in one projected volume.
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "outband-config")
        .unwrap();
    let sources = volume.projected.as_ref().unwrap().sources.as_ref().unwrap();
    let names: Vec<(String, Option<bool>)> = sources
        .iter()
        .map(|s| {
            let cm = s.config_map.as_ref().unwrap();
            (cm.name.clone(), cm.optional)
        })
        .collect();
    let expected: Vec<(String, Option<bool>)> = std::iter::once("outband-api-orders".to_string())
        .chain((1..8).map(|i| format!("outband-api-orders-{i}")))
        .map(|n| (n, Some(true)))
        .collect();
    assert_eq!(names, expected);
    let mount = &sidecar.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (
            mount.name.as_str(),
            mount.mount_path.as_str(),
            mount.read_only
        ),
        ("outband-config", "/etc/outband/config", Some(true))
    );
    assert!(pod.annotations().contains_key("outband.dev/injected"));

    // The real sidecar accepts exactly these arguments and answers its probes.
    run_injected_sidecar(&args, injector.plane.scratch_dir())
        .await
        .unwrap();

    // The operator keeps its webhook certificate in a Secret in its namespace.
    let secret = Api::<Secret>::namespaced(injector.client.clone(), OPERATOR_NAMESPACE)
        .get("outband-webhook-tls")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let metrics = injector.metrics().await.unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with("outband_webhook_injections_total{result=\"injected\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unlabelled_pod_is_untouched() {
    let injector = Injector::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    let pod = pod_with(
        "plain",
        json!({ "app": "plain" }),
        &[("outband.dev/api", "orders")],
    );
    let created = injector
        .pods()
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert!(spec.init_containers.is_none());
    assert_eq!(spec.containers.len(), 1);
    assert_eq!(
        spec.containers[0].ports.as_ref().unwrap()[0]
            .name
            .as_deref(),
        Some("http")
    );
    assert!(spec.volumes.is_none());
    assert!(
        !created
            .metadata
            .annotations
            .unwrap()
            .contains_key("outband.dev/injected")
    );
}

#[tokio::test]
async fn a_pod_with_a_bad_annotation_is_refused_with_a_message_naming_it() {
    let injector = Injector::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    let cases = [
        ("no-api", vec![("outband.dev/api", "")], "outband.dev/api"),
        (
            "bad-key-type",
            vec![("outband.dev/key-type", "production")],
            "outband.dev/key-type",
        ),
        (
            "bad-port",
            vec![("outband.dev/upstream-port", "70000")],
            "outband.dev/upstream-port",
        ),
        (
            "bad-scopes",
            vec![("outband.dev/route-scopes", "GET orders read")],
            "outband.dev/route-scopes",
        ),
        (
            "bad-kms",
            vec![("outband.dev/key-managers", "a,,b")],
            "outband.dev/key-managers",
        ),
        (
            "bad-namespaces",
            vec![("outband.dev/allowed-subscriber-namespaces", "Team_B")],
            "outband.dev/allowed-subscriber-namespaces",
        ),
    ];
    for (name, annotations, named) in cases {
        let error = injector
            .pods()
            .create(&PostParams::default(), &labelled_pod(name, &annotations))
            .await
            .expect_err(name);
        let (code, message) = refusal(error);
        assert_eq!(code, 400, "{name}: {message}");
        assert!(
            message.contains(&format!("annotation {named}")),
            "{name}: {message}"
        );
        assert!(message.contains("inject.outband.dev"), "{name}: {message}");
        assert!(injector.pods().get_opt(name).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_second_pass_changes_nothing() {
    let injector = Injector::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    let pods = injector.pods();
    let first = pods
        .create(&PostParams::default(), &labelled_pod("first", &[]))
        .await
        .unwrap();
    assert!(is_injected(&first));

    // Submit the injected pod again, as a copy: the webhook must leave it exactly as it is.
    let mut again = first.clone();
    again.metadata = kube::api::ObjectMeta {
        name: Some("again".into()),
        labels: first.metadata.labels.clone(),
        annotations: first.metadata.annotations.clone(),
        ..Default::default()
    };
    again.status = None;
    let second = pods.create(&PostParams::default(), &again).await.unwrap();
    assert_eq!(second.metadata.annotations, first.metadata.annotations);
    let (a, b) = (first.spec.unwrap(), second.spec.unwrap());
    assert_eq!(a.init_containers, b.init_containers);
    assert_eq!(a.containers, b.containers);
    assert_eq!(a.volumes, b.volumes);
    let metrics = injector.metrics().await.unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with("outband_webhook_injections_total{result=\"already_injected\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_the_webhook_down_a_labelled_pod_is_refused() {
    let mut injector = Injector::start(ControlPlaneOptions::default())
        .await
        .unwrap();
    injector.operator.process.kill();

    let error = injector
        .pods()
        .create(&PostParams::default(), &labelled_pod("unprotected", &[]))
        .await
        .expect_err("a labelled pod must not be created without the webhook");
    let (_, message) = refusal(error);
    assert!(message.contains("failed calling webhook"), "{message}");
    assert!(
        injector
            .pods()
            .get_opt("unprotected")
            .await
            .unwrap()
            .is_none()
    );

    // Unlabelled pods never reach the webhook, so they still start.
    let plain = pod_with("plain", json!({ "app": "plain" }), &[]);
    injector
        .pods()
        .create(&PostParams::default(), &plain)
        .await
        .expect("an unlabelled pod does not depend on the webhook");
}

/// A CA and a serving certificate for the operator's names that expires in `valid_for`, laid
/// out as the operator's Secret.
fn expiring_tls_secret(valid_for: Duration) -> (Secret, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let now = std::time::SystemTime::now();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.not_before = (now - Duration::from_secs(3600)).into();
    ca.not_after = (now + Duration::from_secs(5 * 365 * 86400)).into();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let ca_key_pem = ca_key.serialize_pem();
    let sans: Vec<String> = [
        "outband-webhook.outband-system.svc",
        "outband-webhook.outband-system.svc.cluster.local",
        "outband-webhook.outband-system",
        "outband-webhook",
        "127.0.0.1",
    ]
    .map(String::from)
    .to_vec();
    let key = KeyPair::generate().unwrap();
    let mut serving = CertificateParams::new(sans.clone()).unwrap();
    serving.not_before = (now - Duration::from_secs(3600)).into();
    serving.not_after = (now + valid_for).into();
    let tls_pem = serving
        .signed_by(&key, &Issuer::new(ca, ca_key))
        .unwrap()
        .pem();
    let secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": "outband-webhook-tls",
            "namespace": OPERATOR_NAMESPACE,
            "annotations": { "outband.dev/webhook-sans": sans.join(",") },
        },
        "stringData": {
            "tls.crt": tls_pem,
            "tls.key": key.serialize_pem(),
            "ca.crt": ca_pem,
            "ca.key": ca_key_pem,
            "ca-bundle.crt": ca_pem,
        },
    }))
    .unwrap();
    (secret, ca_pem, tls_pem)
}

#[tokio::test]
async fn a_webhook_certificate_close_to_expiry_is_renewed_from_the_same_ca() {
    let (secret, ca_pem, old_tls_pem) = expiring_tls_secret(Duration::from_secs(2 * 86400));
    let injector = Injector::start_with_secret(ControlPlaneOptions::default(), Some(secret))
        .await
        .unwrap();
    let secret = Api::<Secret>::namespaced(injector.client.clone(), OPERATOR_NAMESPACE)
        .get("outband-webhook-tls")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    assert_ne!(
        text("tls.crt"),
        old_tls_pem,
        "the serving certificate was not renewed"
    );
    assert_eq!(text("ca.crt"), ca_pem, "a serving renewal keeps the CA");
    let configuration = Api::<MutatingWebhookConfiguration>::all(injector.client.clone())
        .get(CONFIGURATION)
        .await
        .unwrap();
    let bundle = &configuration.webhooks.unwrap()[0].client_config.ca_bundle;
    assert_eq!(
        bundle.as_ref().map(|b| b.0.clone()),
        Some(ca_pem.into_bytes())
    );
    // The apiserver trusts the renewed certificate: a labelled pod is injected.
    let pod = injector
        .pods()
        .create(&PostParams::default(), &labelled_pod("after-renewal", &[]))
        .await
        .unwrap();
    assert!(is_injected(&pod));
}
