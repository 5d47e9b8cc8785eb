//! Runs the real `outband-operator` binary against a test control plane, with its
//! injection webhook served on 127.0.0.1 and registered by `clientConfig.url` (a control
//! plane without nodes has no Service routing). The operator creates its own CA and serving
//! certificate and writes the `caBundle` itself, as in a cluster.

use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::control_plane::{ControlPlane, wait_until};
use crate::paths;
use crate::ports::free_port;
use crate::process::ManagedProcess;

/// Namespace the operator keeps its webhook Secret in.
pub const OPERATOR_NAMESPACE: &str = "outband-system";
/// Name of the MutatingWebhookConfiguration.
pub const WEBHOOK_CONFIGURATION: &str = "outband-sidecar-injector";

/// How to run the operator.
#[derive(Clone, Debug, Default)]
pub struct OperatorOptions {
    /// Extra command-line arguments.
    pub extra_args: Vec<String>,
}

impl OperatorOptions {
    /// Options with these extra arguments.
    pub fn with_args<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> OperatorOptions {
        OperatorOptions {
            extra_args: args.into_iter().map(Into::into).collect(),
        }
    }
}

/// A running operator; stopped when dropped.
pub struct OperatorProcess {
    /// The process.
    pub process: ManagedProcess,
    admin_port: u16,
    webhook_port: u16,
}

impl OperatorProcess {
    /// Registers the webhook, starts the operator and waits until its admin server is
    /// ready, the webhook configuration carries its CA, and a labelled pod is injected (a
    /// server-side dry run in `default`, which calls the webhook like a real create).
    pub async fn start(
        plane: &ControlPlane,
        options: OperatorOptions,
    ) -> anyhow::Result<OperatorProcess> {
        let client = plane.client().await?;
        plane.create_namespace(OPERATOR_NAMESPACE).await?;
        let admin_port = free_port();
        let webhook_port = free_port();
        register_webhook(&client, webhook_port).await?;
        let kubeconfig = plane
            .kubeconfig_path()
            .to_str()
            .context("kubeconfig path")?;
        let mut args = vec![
            format!("--admin-listen=127.0.0.1:{admin_port}"),
            format!("--webhook-listen=127.0.0.1:{webhook_port}"),
            format!("--webhook-namespace={OPERATOR_NAMESPACE}"),
            format!("--webhook-configuration={WEBHOOK_CONFIGURATION}"),
            "--webhook-extra-sans=127.0.0.1".to_string(),
        ];
        args.extend(options.extra_args);
        let process = ManagedProcess::spawn(
            "outband-operator",
            &paths::binary("outband-operator")?,
            &args,
            &[("KUBECONFIG", kubeconfig), ("RUST_LOG", "info")],
            &plane.scratch_dir().join("operator.log"),
        )?;
        let mut operator = OperatorProcess {
            process,
            admin_port,
            webhook_port,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let configurations: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let ready = wait_until(Duration::from_secs(90), "the operator to be ready", || {
            let http = http.clone();
            let url = format!("{}/readyz", operator.admin_url());
            let configurations = configurations.clone();
            let pods = pods.clone();
            async move {
                if !http.get(url).send().await?.status().is_success() {
                    return Ok(false);
                }
                let configuration = configurations.get(WEBHOOK_CONFIGURATION).await?;
                let has_ca = configuration.webhooks.iter().flatten().all(|w| {
                    w.client_config
                        .ca_bundle
                        .as_ref()
                        .is_some_and(|b| !b.0.is_empty())
                });
                if !has_ca {
                    return Ok(false);
                }
                let dry_run = PostParams {
                    dry_run: true,
                    ..Default::default()
                };
                let pod = pods.create(&dry_run, &probe_pod()).await?;
                Ok(pod
                    .metadata
                    .annotations
                    .is_some_and(|a| a.contains_key(outband_crds::annotations::INJECTED)))
            }
        })
        .await;
        if let Err(error) = ready {
            let exited = operator.process.exited();
            anyhow::bail!(
                "{error:#} (operator exited: {exited:?})\n{}",
                operator.process.log_tail(40)
            );
        }
        Ok(operator)
    }

    /// `http://127.0.0.1:<port>` of the admin server (`/livez`, `/readyz`, `/metrics`).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The admin server's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `https://127.0.0.1:<port>/mutate`.
    pub fn webhook_url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.webhook_port)
    }
}

fn probe_pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "outband-readiness-probe",
            "labels": { "outband.dev/inject": "enabled" },
            "annotations": { "outband.dev/api": "readiness-probe" },
        },
        "spec": { "containers": [{
            "name": "app", "image": "registry.example/probe:1",
            "ports": [{ "name": "http", "containerPort": 8080 }],
        }]},
    }))
    .expect("a valid pod")
}

/// The MutatingWebhookConfiguration of the chart, with a loopback URL instead of a Service.
pub async fn register_webhook(client: &kube::Client, port: u16) -> anyhow::Result<()> {
    let configuration: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": { "name": WEBHOOK_CONFIGURATION },
        "webhooks": [{
            "name": "inject.outband.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "reinvocationPolicy": "IfNeeded",
            "clientConfig": { "url": format!("https://127.0.0.1:{port}/mutate") },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                "operations": ["CREATE"], "scope": "Namespaced",
            }],
            "objectSelector": { "matchLabels": { "outband.dev/inject": "enabled" } },
            "namespaceSelector": { "matchExpressions": [{
                "key": "kubernetes.io/metadata.name", "operator": "NotIn",
                "values": ["kube-system", OPERATOR_NAMESPACE],
            }]},
        }],
    }))?;
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            WEBHOOK_CONFIGURATION,
            &PatchParams::apply("outband-tests").force(),
            &Patch::Apply(&configuration),
        )
        .await?;
    Ok(())
}
