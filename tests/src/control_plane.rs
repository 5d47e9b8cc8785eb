//! A real Kubernetes control plane for tests: etcd and kube-apiserver (optionally
//! kube-controller-manager) from the version-keyed cache that `make envtest` fills,
//! started on free loopback ports with their own PKI and temp dirs, the way
//! controller-runtime's envtest does it. Dropping the [`ControlPlane`] stops everything.
//!
//! Why our own harness rather than the `envtest` crate: that crate wraps controller-runtime
//! through cgo (Go and clang at `cargo build` time) and pins an older kube; spawning the
//! cached binaries keeps `cargo build` free of Go.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tempfile::TempDir;

use crate::paths;
use crate::pki::{CertPair, TestCa};
use crate::ports::free_port;
use crate::process::ManagedProcess;

/// How long the control plane may take to become ready (2 cores, cold caches).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Options for [`ControlPlane::start_with`].
#[derive(Clone, Debug, Default)]
pub struct ControlPlaneOptions {
    /// Also run kube-controller-manager (ReplicaSets and Pods from Deployments, namespace
    /// deletion, garbage collection).
    pub controller_manager: bool,
}

/// A running etcd + kube-apiserver (+ kube-controller-manager).
pub struct ControlPlane {
    // Field order is drop order: controller-manager, then apiserver, then etcd.
    controller_manager: Option<ManagedProcess>,
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    dir: TempDir,
    kubeconfig: PathBuf,
    server_url: String,
    ca: TestCa,
    version: String,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the apiserver is ready.
    pub async fn start() -> anyhow::Result<ControlPlane> {
        ControlPlane::start_with(ControlPlaneOptions::default()).await
    }

    /// Starts a control plane with `options`.
    pub async fn start_with(options: ControlPlaneOptions) -> anyhow::Result<ControlPlane> {
        install_crypto_provider();
        let etcd_bin = paths::etcd_binary()?;
        let apiserver_bin = paths::kube_binary("kube-apiserver")?;
        let controller_manager_bin = if options.controller_manager {
            Some(paths::kube_binary("kube-controller-manager")?)
        } else {
            None
        };

        let dir = tempfile::Builder::new()
            .prefix("outband-control-plane-")
            .tempdir()?;
        let root = dir.path();
        let ca = TestCa::new("outband-test-ca")?;
        let serving = ca.serving_cert(&["kubernetes", "kubernetes.default"])?;
        let admin = ca.client_cert("admin", Some("system:masters"))?;
        let (sa_private, sa_public) = crate::pki::service_account_keys()?;
        write(root, "ca.crt", &ca.cert_pem)?;
        write(root, "serving.crt", &serving.cert_pem)?;
        write(root, "serving.key", &serving.key_pem)?;
        write(root, "sa.key", &sa_private)?;
        write(root, "sa.pub", &sa_public)?;

        let (etcd, etcd_url) = start_etcd(&etcd_bin, root)?;
        let (apiserver, port) = start_apiserver(&apiserver_bin, root, &etcd_url)?;
        let server_url = format!("https://127.0.0.1:{port}");
        let kubeconfig = root.join("kubeconfig");
        write(
            root,
            "kubeconfig",
            &kubeconfig_yaml(&server_url, &ca.cert_pem, &admin),
        )?;

        let mut plane = ControlPlane {
            controller_manager: None,
            apiserver,
            etcd,
            dir,
            kubeconfig,
            server_url,
            ca,
            version: String::new(),
        };
        plane.wait_ready().await?;
        if let Some(bin) = controller_manager_bin {
            plane.controller_manager = Some(plane.start_controller_manager(&bin)?);
        }
        eprintln!(
            "control plane ready: kube-apiserver {} at {} (etcd {})",
            plane.version,
            plane.server_url,
            paths::ETCD_VERSION
        );
        Ok(plane)
    }

    /// A new client with cluster-admin rights. Make one per test runtime.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        let config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// The admin kubeconfig (for `KUBECONFIG=` of kubectl or our binaries).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The apiserver's `gitVersion`, e.g. `v1.36.3`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The CA that signed the apiserver's certificate; can sign more (e.g. for webhooks).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// A scratch directory that lives as long as the control plane.
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `kubectl` command (same version as the apiserver) using the admin kubeconfig.
    pub fn kubectl(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(paths::kube_binary("kubectl")?);
        command.env("KUBECONFIG", &self.kubeconfig);
        Ok(command)
    }

    /// Applies the generated CRDs (`charts/outband/crds/`) and waits until both are
    /// Established.
    pub async fn install_crds(&self) -> anyhow::Result<()> {
        let client = self.client().await?;
        let crds: Api<CustomResourceDefinition> = Api::all(client);
        let dir = paths::repo_root().join(outband_crds::crdgen::CRD_DIR);
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let crd: CustomResourceDefinition =
                yaml_serde::from_str(&std::fs::read_to_string(&path)?)
                    .with_context(|| format!("parsing {}", path.display()))?;
            let name = crd.metadata.name.clone().context("CRD without a name")?;
            crds.patch(
                &name,
                &PatchParams::apply("outband-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .with_context(|| format!("applying {name}"))?;
            names.push(name);
        }
        for name in names {
            wait_until(
                Duration::from_secs(30),
                &format!("CRD {name} Established"),
                || {
                    let crds = crds.clone();
                    let name = name.clone();
                    async move {
                        let crd = crds.get(&name).await?;
                        Ok(crd
                            .status
                            .and_then(|s| s.conditions)
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True"))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Creates namespace `name` (idempotent).
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client().await?);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))?;
        namespaces
            .patch(
                name,
                &PatchParams::apply("outband-tests"),
                &Patch::Apply(&namespace),
            )
            .await?;
        Ok(())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error: String;
        loop {
            if let Some(status) = self.etcd.exited() {
                bail!("etcd exited ({status}):\n{}", self.etcd.log_tail(30));
            }
            if let Some(status) = self.apiserver.exited() {
                bail!(
                    "kube-apiserver exited ({status}):\n{}",
                    self.apiserver.log_tail(40)
                );
            }
            match self.probe().await {
                Ok(version) => {
                    self.version = version;
                    return Ok(());
                }
                Err(e) => last_error = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {READY_TIMEOUT:?}: {last_error}\n{}",
                    self.apiserver.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Ready means `/readyz` is ok and the `default` namespace exists.
    async fn probe(&self) -> anyhow::Result<String> {
        let client = self.client().await?;
        let readyz = client
            .request_text(http::Request::get("/readyz").body(Vec::new())?)
            .await?;
        if readyz.trim() != "ok" {
            bail!("/readyz says {readyz}");
        }
        Api::<Namespace>::all(client.clone()).get("default").await?;
        Ok(client.apiserver_version().await?.git_version)
    }

    fn start_controller_manager(&self, bin: &Path) -> anyhow::Result<ManagedProcess> {
        let root = self.dir.path();
        let args = vec![
            format!("--kubeconfig={}", self.kubeconfig.display()),
            format!("--authentication-kubeconfig={}", self.kubeconfig.display()),
            format!("--authorization-kubeconfig={}", self.kubeconfig.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            "--leader-elect=false".into(),
            "--controllers=*,-serviceaccount-token".into(),
            format!("--root-ca-file={}", root.join("ca.crt").display()),
            format!(
                "--service-account-private-key-file={}",
                root.join("sa.key").display()
            ),
            format!("--cert-dir={}", root.join("kcm-certs").display()),
            "--use-service-account-credentials=false".into(),
        ];
        ManagedProcess::spawn(
            "kube-controller-manager",
            bin,
            &args,
            &[],
            &root.join("kube-controller-manager.log"),
        )
    }
}

fn start_etcd(bin: &Path, root: &Path) -> anyhow::Result<(ManagedProcess, String)> {
    let client_url = format!("http://127.0.0.1:{}", free_port());
    let peer_url = format!("http://127.0.0.1:{}", free_port());
    let args = vec![
        format!("--data-dir={}", root.join("etcd").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=default={peer_url}"),
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ];
    let etcd = ManagedProcess::spawn("etcd", bin, &args, &[], &root.join("etcd.log"))?;
    Ok((etcd, client_url))
}

fn start_apiserver(
    bin: &Path,
    root: &Path,
    etcd_url: &str,
) -> anyhow::Result<(ManagedProcess, u16)> {
    let port = free_port();
    let p = |file: &str| root.join(file).display().to_string();
    let args = vec![
        format!("--etcd-servers={etcd_url}"),
        format!("--secure-port={port}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--endpoint-reconciler-type=none".into(),
        "--authorization-mode=RBAC".into(),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--tls-cert-file={}", p("serving.crt")),
        format!("--tls-private-key-file={}", p("serving.key")),
        format!("--service-account-issuer=https://127.0.0.1:{port}/"),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--disable-admission-plugins=ServiceAccount".into(),
        format!("--cert-dir={}", p("apiserver-certs")),
        "--allow-privileged=true".into(),
        "--v=0".into(),
    ];
    let apiserver = ManagedProcess::spawn(
        "kube-apiserver",
        bin,
        &args,
        &[],
        &root.join("kube-apiserver.log"),
    )?;
    Ok((apiserver, port))
}

fn kubeconfig_yaml(server: &str, ca_pem: &str, admin: &CertPair) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        r#"apiVersion: v1
kind: Config
clusters:
- name: outband-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: outband-test
  context:
    cluster: outband-test
    user: admin
current-context: outband-test
"#,
        ca = b64(ca_pem),
        cert = b64(&admin.cert_pem),
        key = b64(&admin.key_pem),
    )
}

fn write(root: &Path, file: &str, contents: &str) -> anyhow::Result<()> {
    std::fs::write(root.join(file), contents).with_context(|| format!("writing {file}"))
}

/// Installs aws-lc-rs as rustls's process-wide crypto provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Polls `check` every 200 ms until it returns `Ok(true)`, or fails after `timeout` with
/// the last error.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => "condition false".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `check` every 200 ms until it returns `Ok(Some(value))`, and returns the value;
/// fails after `timeout` with the last error.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
