//! Shared by the `operator_*` integration tests: a real control plane, a real OpenID
//! provider and the real `outband-operator` binary (without its webhook), plus helpers to
//! create KeyManagers, bindings and pods and to read the sidecar config back from the
//! ConfigMaps exactly as a sidecar would.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use outband_crds::sidecar_config::SidecarConfig;
use outband_crds::sidecar_config::bundle::{self, MANIFEST_FILE, Manifest};
use outband_crds::{KeyManager, OAuthAppBinding};
use outband_tests::control_plane::{ControlPlane, wait_until};
use outband_tests::oidc::{OidcOptions, OidcProvider};
use outband_tests::paths;
use outband_tests::ports::free_port;
use outband_tests::process::ManagedProcess;
use serde_json::{Value, json};

/// How long the operator may take to converge after a change.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// Flags that keep the tests fast: resyncs and key refreshes every second.
pub const FAST: &[&str] = &[
    "--resync-interval=1s",
    "--max-refresh-interval=1s",
    "--config-debounce=50ms",
    "--refresh-backoff-initial=200ms",
    "--refresh-backoff-max=1s",
    "--lease-duration=4s",
    "--lease-renew-before=1s",
];

/// The usual start of an operator test: a control plane with `namespaces`, the OpenID
/// provider, the operator, and KeyManager `idp` applied by discovery (not waited for).
pub async fn start_with_idp(namespaces: &[&str]) -> (Cluster, OidcProvider, Operator) {
    let cluster = Cluster::start().await.unwrap();
    let idp = provider(&[]).await.unwrap();
    for namespace in namespaces {
        cluster.namespace(namespace).await.unwrap();
    }
    let operator = Operator::start(&cluster.plane, "operator", &[])
        .await
        .unwrap();
    cluster
        .apply_key_manager("idp", discovery_spec(&idp))
        .await
        .unwrap();
    (cluster, idp, operator)
}

/// A running operator process; killed when dropped.
pub struct Operator {
    pub process: ManagedProcess,
    pub admin_port: u16,
    http: reqwest::Client,
}

impl Operator {
    /// Starts the operator binary with [`FAST`] and `extra` flags, and waits for `/readyz`.
    pub async fn start(
        plane: &ControlPlane,
        name: &str,
        extra: &[&str],
    ) -> anyhow::Result<Operator> {
        let operator = Operator::spawn(plane, name, extra)?;
        let ready = wait_until(Duration::from_secs(60), "the operator's /readyz", || {
            let http = operator.http.clone();
            let url = format!("{}/readyz", operator.admin_url());
            async move { Ok(http.get(url).send().await?.status().is_success()) }
        })
        .await;
        if let Err(error) = ready {
            bail!("{error:#}\n{}", operator.log());
        }
        Ok(operator)
    }

    /// Starts the operator binary with [`FAST`] and `extra` flags, without waiting.
    pub fn spawn(plane: &ControlPlane, name: &str, extra: &[&str]) -> anyhow::Result<Operator> {
        let admin_port = free_port();
        let kubeconfig = plane
            .kubeconfig_path()
            .to_str()
            .context("kubeconfig path")?;
        let mut args = vec![
            format!("--admin-listen=127.0.0.1:{admin_port}"),
            format!("--identity={name}"),
        ];
        args.extend(FAST.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let process = ManagedProcess::spawn(
            name,
            &paths::binary("outband-operator")?,
            &args,
            &[
                ("KUBECONFIG", kubeconfig),
                ("RUST_LOG", "info,outband_operator=debug"),
            ],
            &plane.scratch_dir().join(format!("{name}.log")),
        )?;
        Ok(Operator {
            process,
            admin_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Status and body of `GET /readyz`.
    pub async fn readyz(&self) -> anyhow::Result<(u16, String)> {
        let response = self
            .http
            .get(format!("{}/readyz", self.admin_url()))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// `http://127.0.0.1:<admin port>`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The last lines of the operator's log.
    pub fn log(&self) -> String {
        self.process.log_tail(60)
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.admin_url()))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// The value of the series `name{labels}` (labels as in the exposition, e.g.
    /// `operation="apply",result="success"`), 0 when absent.
    pub async fn metric(&self, name: &str, labels: &str) -> anyhow::Result<f64> {
        let text = self.metrics().await?;
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            format!("{name}{{{labels}}}")
        };
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                l.strip_prefix(&series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .map(|v| v.trim().parse().unwrap_or(0.0))
            .unwrap_or(0.0))
    }
}

/// Series of the operator's metrics that tests wait on.
pub mod series {
    /// Successful ConfigMap applies.
    pub const APPLIES: (&str, &str) = (
        "outband_operator_configmap_writes_total",
        "operation=\"apply\",result=\"success\"",
    );
    /// Successful ConfigMap deletions.
    pub const DELETES: (&str, &str) = (
        "outband_operator_configmap_writes_total",
        "operation=\"delete\",result=\"success\"",
    );
    /// Compilations that found the config already written (one per API resync).
    pub const UNCHANGED: (&str, &str) = (
        "outband_operator_config_compilations_total",
        "outcome=\"unchanged\"",
    );
    /// Binding reconciles (one per binding resync).
    pub const BINDING_RECONCILES: (&str, &str) = (
        "outband_operator_reconciles_total",
        "controller=\"oauthappbinding\"",
    );
    /// Successful key refreshes of KeyManager `idp`.
    pub const IDP_REFRESHES: (&str, &str) = (
        "outband_operator_jwks_fetches_total",
        "key_manager=\"idp\",result=\"success\"",
    );
    /// Failed refreshes of KeyManager `idp` since its last success.
    pub const IDP_FAILURES: (&str, &str) = (
        "outband_operator_key_refresh_consecutive_failures",
        "key_manager=\"idp\"",
    );
}

impl Operator {
    /// The value of `series` now.
    pub async fn value(&self, series: (&str, &str)) -> f64 {
        self.metric(series.0, series.1)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()))
    }

    /// Waits until each of `series` has grown by at least its amount since `before` (the
    /// values read with [`Operator::value`] before the wait), and returns how much each grew.
    pub async fn wait_for_increase(
        &self,
        what: &str,
        goals: &[((&str, &str), f64, f64)],
    ) -> Vec<f64> {
        let result = outband_tests::control_plane::wait_for(CONVERGE, what, || async move {
            let mut grown = Vec::new();
            for (series, before, by) in goals {
                let delta = self.metric(series.0, series.1).await? - before;
                if delta < *by {
                    return Ok(None);
                }
                grown.push(delta);
            }
            Ok(Some(grown))
        })
        .await;
        result.unwrap_or_else(|e| panic!("{e:#}\n{}", self.log()))
    }
}

/// A control plane with the CRDs, a provider and a client.
pub struct Cluster {
    pub plane: ControlPlane,
    pub client: Client,
}

impl Cluster {
    pub async fn start() -> anyhow::Result<Cluster> {
        let plane = ControlPlane::start().await?;
        plane.install_crds().await?;
        let client = plane.client().await?;
        Ok(Cluster { plane, client })
    }

    pub async fn namespace(&self, name: &str) -> anyhow::Result<()> {
        self.plane.create_namespace(name).await
    }

    /// Applies a KeyManager (server-side apply, so re-applying updates it).
    pub async fn apply_key_manager(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        let km: KeyManager = serde_json::from_value(json!({
            "apiVersion": "outband.dev/v1alpha1", "kind": "KeyManager",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        Api::<KeyManager>::all(self.client.clone())
            .patch(
                name,
                &PatchParams::apply("outband-tests").force(),
                &Patch::Apply(&km),
            )
            .await?;
        Ok(())
    }

    /// Applies an OAuthAppBinding.
    pub async fn apply_binding(
        &self,
        namespace: &str,
        name: &str,
        spec: Value,
    ) -> anyhow::Result<()> {
        let binding: OAuthAppBinding = serde_json::from_value(json!({
            "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec,
        }))?;
        Api::<OAuthAppBinding>::namespaced(self.client.clone(), namespace)
            .patch(
                name,
                &PatchParams::apply("outband-tests").force(),
                &Patch::Apply(&binding),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_binding(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        Api::<OAuthAppBinding>::namespaced(self.client.clone(), namespace)
            .delete(name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    pub async fn key_manager(&self, name: &str) -> anyhow::Result<KeyManager> {
        Ok(Api::<KeyManager>::all(self.client.clone())
            .get(name)
            .await?)
    }

    pub async fn binding(&self, namespace: &str, name: &str) -> anyhow::Result<OAuthAppBinding> {
        Ok(
            Api::<OAuthAppBinding>::namespaced(self.client.clone(), namespace)
                .get(name)
                .await?,
        )
    }

    /// Creates an injected pod (labelled, annotated) serving `api`. There is no kubelet and
    /// no webhook here: the pod only has to exist for the operator to learn the API.
    pub async fn create_pod(
        &self,
        namespace: &str,
        name: &str,
        api: &str,
        annotations: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut all = serde_json::Map::new();
        all.insert("outband.dev/api".into(), json!(api));
        for (k, v) in annotations {
            all.insert(k.to_string(), json!(v));
        }
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"outband.dev/inject": "enabled", "app": api},
                         "annotations": all},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                                     "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))?;
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .create(&PostParams::default(), &pod)
            .await?;
        Ok(())
    }

    pub async fn delete_pod(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .delete(name, &DeleteParams::default().grace_period(0))
            .await?;
        Ok(())
    }

    /// Our ConfigMaps of `api`, by name.
    pub async fn configmaps(
        &self,
        namespace: &str,
        api: &str,
    ) -> anyhow::Result<BTreeMap<String, ConfigMap>> {
        let list = Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/managed-by=outband-operator,outband.dev/api={api}"
            )))
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|cm| Some((cm.metadata.name.clone()?, cm)))
            .collect())
    }

    /// Lays `api`'s ConfigMaps out in `dir` as the kubelet does in the pod's projected
    /// volume (atomic `..data` swap), for a real sidecar to read.
    pub async fn write_config_volume(
        &self,
        namespace: &str,
        api: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let mut files = BTreeMap::new();
        for configmap in self.configmaps(namespace, api).await?.into_values() {
            for (name, text) in configmap.data.into_iter().flatten() {
                files.insert(name, text.into_bytes());
            }
            for (name, bytes) in configmap.binary_data.into_iter().flatten() {
                files.insert(name, bytes.0);
            }
        }
        outband_tests::kubelet::AtomicVolume::new(dir)?.write(&files)?;
        Ok(())
    }

    /// The sidecar config of `api`, read and verified the way the sidecar reads it; `None`
    /// while there is no complete bundle.
    pub async fn sidecar_config(
        &self,
        namespace: &str,
        api: &str,
    ) -> anyhow::Result<Option<(Manifest, SidecarConfig)>> {
        let cms = self.configmaps(namespace, api).await?;
        if cms.is_empty() {
            return Ok(None);
        }
        let read = |file: &str| -> std::io::Result<Vec<u8>> {
            cms.values()
                .find_map(|cm| {
                    if file == MANIFEST_FILE {
                        cm.data.as_ref()?.get(file).map(|s| s.as_bytes().to_vec())
                    } else {
                        cm.binary_data.as_ref()?.get(file).map(|b| b.0.clone())
                    }
                })
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        };
        Ok(bundle::decode(read).ok())
    }

    /// Waits until `api`'s config satisfies `check`, and returns it.
    pub async fn wait_for_config(
        &self,
        namespace: &str,
        api: &str,
        what: &str,
        check: impl Fn(&SidecarConfig) -> bool,
    ) -> anyhow::Result<SidecarConfig> {
        let deadline = std::time::Instant::now() + CONVERGE;
        loop {
            let last = self.sidecar_config(namespace, api).await?;
            if let Some((_, config)) = &last
                && check(config)
            {
                return Ok(config.clone());
            }
            if std::time::Instant::now() > deadline {
                bail!("timed out after {CONVERGE:?} waiting for {what}; last config: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until KeyManager `name` has condition `type_` with `status` (and `reason`).
    pub async fn wait_for_key_manager(
        &self,
        name: &str,
        type_: &str,
        status: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<KeyManager> {
        let what = format!("KeyManager {name} {type_}={status} {reason:?}");
        wait_until(CONVERGE, &what, || async move {
            let km = self.key_manager(name).await?;
            Ok(has_condition(
                km.status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default(),
                type_,
                status,
                reason,
            ))
        })
        .await?;
        self.key_manager(name).await
    }

    /// Waits until binding `namespace/name` is Ready=`status` (with `reason`).
    pub async fn wait_for_binding(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        reason: Option<&str>,
    ) -> anyhow::Result<OAuthAppBinding> {
        let what = format!("binding {namespace}/{name} Ready={status} {reason:?}");
        wait_until(CONVERGE, &what, || async move {
            let binding = self.binding(namespace, name).await?;
            Ok(has_condition(
                binding
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or_default(),
                "Ready",
                status,
                reason,
            ))
        })
        .await?;
        self.binding(namespace, name).await
    }
}

pub fn has_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status && reason.is_none_or(|r| c.reason == r))
}

/// A provider with the default client plus `extra` clients (ids), EC key on.
pub async fn provider(extra_clients: &[&str]) -> anyhow::Result<OidcProvider> {
    let mut options = OidcOptions {
        ec_key: true,
        ..OidcOptions::default()
    };
    for id in extra_clients {
        options.clients.push(outband_tests::oidc::OidcClient::new(
            id,
            "secret",
            &["api:read"],
        ));
    }
    OidcProvider::start(options).await
}

/// The spec of a KeyManager found by discovery at `provider` (plain http on loopback).
pub fn discovery_spec(provider: &OidcProvider) -> Value {
    json!({
        "displayName": "Test IdP",
        "type": "Custom",
        "wellKnownUrl": provider.discovery_url(),
        "connection": {"allowLoopback": true, "timeoutSeconds": 2, "minRefreshSeconds": 30, "maxRefreshSeconds": 60},
    })
}

/// A production binding of `consumer_key` at KeyManager `km`, subscribed to `apis`.
pub fn binding_spec(km: &str, consumer_key: &str, apis: &[&str]) -> Value {
    json!({
        "application": {"name": format!("app-{consumer_key}")},
        "keyManager": km,
        "keyType": "PRODUCTION",
        "consumerKey": consumer_key,
        "subscriptions": apis.iter().map(|a| json!({"api": a})).collect::<Vec<_>>(),
    })
}

/// The kids in a config's KeyManager `km`.
pub fn kids(config: &SidecarConfig, km: &str) -> Vec<String> {
    config
        .key_managers
        .iter()
        .find(|k| k.name == km)
        .map(|k| {
            k.keys
                .iter()
                .filter_map(|j| j.kid().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resourceVersions of `api`'s ConfigMaps.
pub async fn resource_versions(
    cluster: &Cluster,
    namespace: &str,
    api: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(cluster
        .configmaps(namespace, api)
        .await?
        .into_iter()
        .map(|(name, cm)| (name, cm.metadata.resource_version.unwrap_or_default()))
        .collect())
}
