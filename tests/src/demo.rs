//! The whole Outband story, run locally: `make demo` narrates it, and the end-to-end test
//! runs the same code headlessly and asserts every outcome.
//!
//! 1. a real control plane (etcd, kube-apiserver, kube-controller-manager), a real OpenID
//!    provider and the operator with its injection webhook;
//! 2. a KeyManager by discovery and bindings for a production and a sandbox key;
//! 3. a labelled Deployment: the ReplicaSet controller creates its pod through the real
//!    webhook; with no kubelet here, we run the injected sidecar's exact command locally,
//!    with the operator's ConfigMaps laid out the way the kubelet does, in front of a sample
//!    app;
//! 4. tokens from the provider's token endpoint with client_credentials (the seed's Step 4);
//! 5. the outcomes, with their reasons; then a subscription is blocked and refused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::control_plane::{ControlPlane, ControlPlaneOptions, wait_for, wait_until};
use crate::kubelet::{
    AtomicVolume, ConfigMapVolumeSync, ContainerMapping, SidecarRun, find_container,
    projected_configmaps, run_container,
};
use crate::oidc::{OidcClient, OidcOptions, OidcProvider};
use crate::operator::{OperatorOptions, OperatorProcess};
use crate::paths;
use crate::ports::free_port;
use crate::sample_app::SampleApp;

/// Namespace of the demo's API and bindings.
pub const NAMESPACE: &str = "shop";
/// The demo's API.
pub const API: &str = "orders";
/// The KeyManager the demo registers.
pub const KEY_MANAGER: &str = "demo-idp";

/// Prints the story as it happens, or stays silent (for the test).
#[derive(Clone, Copy, Debug)]
pub struct Narrator {
    enabled: bool,
    started: Instant,
}

impl Narrator {
    /// A narrator that prints when `enabled`.
    pub fn new(enabled: bool) -> Narrator {
        Narrator {
            enabled,
            started: Instant::now(),
        }
    }

    /// A numbered step.
    pub fn step(&self, text: &str) {
        if self.enabled {
            println!(
                "\n\x1b[1m==> {text}\x1b[0m  \x1b[2m(+{:.1}s)\x1b[0m",
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// A detail line under the current step.
    pub fn say(&self, text: &str) {
        if self.enabled {
            println!("    {text}");
        }
    }
}

/// One call through the sidecar and what came back.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the call shows, e.g. "subscribed production key".
    pub scenario: String,
    /// The status the story expects.
    pub expected_status: u16,
    /// The status received.
    pub status: u16,
    /// The response body (JSON when the sidecar or the app answered).
    pub body: Value,
    /// The `WWW-Authenticate` challenge of a 401.
    pub www_authenticate: Option<String>,
}

impl Outcome {
    /// Whether the status is the expected one.
    pub fn as_expected(&self) -> bool {
        self.status == self.expected_status
    }

    /// The sidecar's error code, or what the app answered.
    pub fn reason(&self) -> String {
        if let Some(code) = self.body.get("code").and_then(Value::as_str) {
            let message = self
                .body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let challenge = self
                .www_authenticate
                .as_deref()
                .map(|c| format!("  [WWW-Authenticate: {c}]"))
                .unwrap_or_default();
            format!("{code}: {message}{challenge}")
        } else if let Some(identity) = self.body.get("identity") {
            format!("app saw identity {identity}")
        } else {
            self.body.to_string()
        }
    }
}

/// What the demo did and saw.
#[derive(Debug, Default)]
pub struct DemoReport {
    /// Every call, in order.
    pub outcomes: Vec<Outcome>,
    /// The injected sidecar's command line, as run.
    pub sidecar_argv: Vec<String>,
    /// The sidecar's metrics text after the calls.
    pub sidecar_metrics: String,
    /// The operator's metrics text after the calls.
    pub operator_metrics: String,
}

/// Everything the demo started; dropping it stops all of it.
pub struct DemoStack {
    /// The control plane.
    pub plane: ControlPlane,
    /// The OpenID provider.
    pub provider: OidcProvider,
    /// The operator.
    pub operator: OperatorProcess,
    /// The sample app.
    pub app: SampleApp,
    /// The sidecar.
    pub sidecar: SidecarRun,
    /// The kubelet-style ConfigMap sync.
    pub volume_sync: ConfigMapVolumeSync,
    /// Where the sidecar listens (host address).
    pub sidecar_url: String,
    /// The sidecar's admin server (host address).
    pub sidecar_admin_url: String,
    /// Scratch space.
    pub work_dir: PathBuf,
}

struct DemoClient {
    id: &'static str,
    secret: &'static str,
}

const PRODUCTION_CLIENT: DemoClient = DemoClient {
    id: "mobile-app-prod",
    secret: "mobile-prod-secret",
};
const SANDBOX_CLIENT: DemoClient = DemoClient {
    id: "mobile-app-sandbox",
    secret: "mobile-sandbox-secret",
};
const UNSUBSCRIBED_CLIENT: DemoClient = DemoClient {
    id: "reporting-app-prod",
    secret: "reporting-prod-secret",
};

/// Runs the story. With `narrate`, prints it; the stack stays up until the returned
/// [`DemoStack`] is dropped.
pub async fn run(narrate: bool) -> anyhow::Result<(DemoReport, DemoStack)> {
    let say = Narrator::new(narrate);
    let mut report = DemoReport::default();

    say.step("1. Control plane, OpenID provider and operator");
    let plane = ControlPlane::start_with(ControlPlaneOptions {
        controller_manager: true,
    })
    .await?;
    say.say(&format!(
        "kube-apiserver {} at {} (etcd {}, kube-controller-manager)",
        plane.version(),
        plane.server_url(),
        paths::ETCD_VERSION
    ));
    plane.install_crds().await?;
    say.say("CRDs keymanagers.outband.dev and oauthappbindings.outband.dev Established");
    plane.create_namespace(NAMESPACE).await?;

    let provider = OidcProvider::start(OidcOptions {
        clients: [&PRODUCTION_CLIENT, &SANDBOX_CLIENT, &UNSUBSCRIBED_CLIENT]
            .into_iter()
            .map(|c| OidcClient::new(c.id, c.secret, &["orders:read", "orders:write"]))
            .collect(),
        ..OidcOptions::default()
    })
    .await?;
    say.say(&format!(
        "OpenID provider (npm oidc-provider) at {}, token endpoint {}",
        provider.issuer(),
        provider.token_endpoint()
    ));

    let operator = OperatorProcess::start(&plane, OperatorOptions::default()).await?;
    say.say(&format!(
        "outband-operator running: admin {} , webhook {}",
        operator.admin_url(),
        operator.webhook_url()
    ));

    let client = plane.client().await?;

    say.step("2. Step 2 of the seed: the cluster admin adds a Key Manager (by discovery)");
    let key_managers: Api<DynamicObject> = Api::all_with(client.clone(), &resource("KeyManager"));
    let key_manager = json!({
        "apiVersion": "outband.dev/v1alpha1", "kind": "KeyManager",
        "metadata": {"name": KEY_MANAGER},
        "spec": {
            "displayName": "Demo OpenID provider",
            "description": "The local oidc-provider standing in for Cognito, Auth0, Entra ID…",
            "type": "Custom",
            "wellKnownUrl": provider.discovery_url(),
            "claims": {"consumerKey": "client_id", "scopes": "scope"},
            "tokenValidation": {
                "algorithms": ["RS256", "ES256"],
                "audiences": [provider.audience()],
                "requiredType": "at+jwt",
            },
            "connection": {"allowLoopback": true},
        }
    });
    apply(&key_managers, KEY_MANAGER, &key_manager).await?;
    let ready =
        wait_for_condition(&key_managers, KEY_MANAGER, "Ready", Duration::from_secs(60)).await?;
    let token_endpoint = ready.data["status"]["endpoints"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kids: Vec<String> = ready.data["status"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            format!(
                "{} ({})",
                k["kid"].as_str().unwrap_or("-"),
                k["alg"].as_str().unwrap_or("-")
            )
        })
        .collect();
    say.say(&format!(
        "KeyManager {KEY_MANAGER} Ready; issuer {}",
        provider.issuer()
    ));
    say.say(&format!("keys loaded: {}", kids.join(", ")));

    say.step("3. Step 3 of the seed: application teams provide their existing OAuth keys");
    let bindings: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &resource("OAuthAppBinding"));
    for (name, app, key_type, consumer_key, api) in [
        (
            "mobile-app-production",
            "mobile-app",
            "PRODUCTION",
            PRODUCTION_CLIENT.id,
            API,
        ),
        (
            "mobile-app-sandbox",
            "mobile-app",
            "SANDBOX",
            SANDBOX_CLIENT.id,
            API,
        ),
        (
            "reporting-app-production",
            "reporting-app",
            "PRODUCTION",
            UNSUBSCRIBED_CLIENT.id,
            "catalog",
        ),
    ] {
        let binding = json!({
            "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "application": {"name": app},
                "keyManager": KEY_MANAGER,
                "keyType": key_type,
                "consumerKey": consumer_key,
                "subscriptions": [{"api": api, "tier": "Gold"}],
            }
        });
        apply(&bindings, name, &binding).await?;
        say.say(&format!(
            "{name}: {key_type} key {consumer_key} of {app}, subscribed to API {api}"
        ));
    }
    let binding = wait_for_condition(
        &bindings,
        "mobile-app-production",
        "Ready",
        Duration::from_secs(60),
    )
    .await?;
    say.say(&format!(
        "binding status shows where to get tokens: {}",
        binding.data["status"]["tokenEndpoint"]
            .as_str()
            .unwrap_or(&token_endpoint)
    ));

    say.step("4. The API team deploys `orders`, labelled for injection");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let deployment: Deployment = serde_json::from_value(orders_deployment())?;
    deployments
        .patch(
            "orders",
            &PatchParams::apply("outband-demo").force(),
            &Patch::Apply(&deployment),
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let pod = wait_for(Duration::from_secs(60), "the Deployment's pod", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=orders"))
                .await?;
            Ok(list.items.into_iter().next())
        }
    })
    .await?;
    say.say(&format!(
        "ReplicaSet controller created pod {}; the webhook injected: {}",
        pod.metadata.name.clone().unwrap_or_default(),
        container_names(&pod).join(", ")
    ));

    say.step("5. No kubelet here: run the injected sidecar locally, the way the kubelet would");
    let configmaps = projected_configmaps(&pod, "outband-config")?;
    let configmap_api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    wait_until(
        Duration::from_secs(60),
        "the operator's ConfigMap for API orders",
        || {
            let api = configmap_api.clone();
            let name = configmaps[0].clone();
            async move { Ok(api.get_opt(&name).await?.is_some()) }
        },
    )
    .await?;
    let work_dir = plane.scratch_dir().join("demo");
    std::fs::create_dir_all(&work_dir)?;
    let volume = AtomicVolume::new(&work_dir.join("volumes/outband-config"))?;
    let volume_dir = volume.dir().to_path_buf();
    let volume_sync = ConfigMapVolumeSync::start(
        client.clone(),
        NAMESPACE,
        configmaps.clone(),
        volume,
        Duration::from_millis(500),
    )
    .await?;
    say.say(&format!(
        "ConfigMaps {} materialised at {} (..data symlink, atomic swaps)",
        configmaps[0],
        volume_dir.display()
    ));
    let app = SampleApp::start(0).await?;
    let sidecar_container = find_container(&pod, "outband-sidecar")?;
    let container_port = |name: &str| -> anyhow::Result<u16> {
        sidecar_container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port as u16)
            .with_context(|| format!("sidecar has no port {name}"))
    };
    let proxy_port = container_port("http")?;
    let admin_port = container_port("outband-admin")?;
    let host_proxy = free_port();
    let host_admin = free_port();
    let sidecar = run_container(
        &pod,
        sidecar_container,
        ContainerMapping {
            binary: &paths::binary("outband-sidecar")?,
            mounts: BTreeMap::from([("/etc/outband/config".to_string(), volume_dir.clone())]),
            ports: BTreeMap::from([
                (proxy_port, host_proxy),
                (admin_port, host_admin),
                (8080, app.port()),
            ]),
            log: &work_dir.join("sidecar.log"),
        },
    )?;
    report.sidecar_argv = sidecar.argv.clone();
    say.say(&format!("outband-sidecar {}", shell_words(&sidecar.argv)));
    let sidecar_url = format!("http://127.0.0.1:{host_proxy}");
    let sidecar_admin_url = format!("http://127.0.0.1:{host_admin}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    wait_until(Duration::from_secs(30), "the sidecar to be ready", || {
        let http = http.clone();
        let url = format!("{sidecar_admin_url}/readyz");
        async move { Ok(http.get(url).send().await?.status().is_success()) }
    })
    .await
    .with_context(|| format!("sidecar log:\n{}", sidecar.process.log_tail(20)))?;
    say.say(&format!(
        "sidecar Ready at {sidecar_url}, forwarding to the sample app on {}",
        app.addr()
    ));

    say.step("6. Step 4 of the seed: get tokens with client_credentials and call the API");
    let production = provider
        .client_credentials_token(
            PRODUCTION_CLIENT.id,
            PRODUCTION_CLIENT.secret,
            Some("orders:read"),
        )
        .await?;
    let sandbox = provider
        .client_credentials_token(
            SANDBOX_CLIENT.id,
            SANDBOX_CLIENT.secret,
            Some("orders:read"),
        )
        .await?;
    let unsubscribed = provider
        .client_credentials_token(
            UNSUBSCRIBED_CLIENT.id,
            UNSUBSCRIBED_CLIENT.secret,
            Some("orders:read"),
        )
        .await?;
    say.say(&format!(
        "POST {} grant_type=client_credentials → 3 JWT access tokens",
        provider.token_endpoint()
    ));

    let cases = [
        ("subscribed production key", Some(production.clone()), 200),
        ("client not subscribed to orders", Some(unsubscribed), 403),
        ("sandbox key on the production API", Some(sandbox), 403),
        (
            "tampered token (payload edited, signature kept)",
            Some(tamper(&production)?),
            401,
        ),
        ("no token", None, 401),
    ];
    for (scenario, token, expected) in cases {
        let outcome = call(&http, &sidecar_url, scenario, token.as_deref(), expected).await?;
        show(&say, &outcome);
        report.outcomes.push(outcome);
    }

    say.step("7. The API owner blocks the mobile app's production subscription");
    let blocked = json!({
        "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
        "metadata": {"name": "mobile-app-production", "namespace": NAMESPACE},
        "spec": {
            "application": {"name": "mobile-app"},
            "keyManager": KEY_MANAGER,
            "keyType": "PRODUCTION",
            "consumerKey": PRODUCTION_CLIENT.id,
            "subscriptions": [{"api": API, "tier": "Gold", "state": "Blocked"}],
        }
    });
    apply(&bindings, "mobile-app-production", &blocked).await?;
    let syncs_before = volume_sync.syncs();
    let started = Instant::now();
    let outcome = wait_for(
        Duration::from_secs(60),
        "the block to reach the sidecar",
        || {
            let http = http.clone();
            let url = sidecar_url.clone();
            let token = production.clone();
            async move {
                let outcome = call(
                    &http,
                    &url,
                    "same production key, subscription Blocked",
                    Some(&token),
                    403,
                )
                .await?;
                Ok(outcome.as_expected().then_some(outcome))
            }
        },
    )
    .await?;
    say.say(&format!(
        "ConfigMap updated by the operator, volume swapped by the kubelet stand-in ({} swap(s)), sidecar reloaded: {:.1}s",
        volume_sync.syncs() - syncs_before,
        started.elapsed().as_secs_f64()
    ));
    show(&say, &outcome);
    report.outcomes.push(outcome);

    say.step("8. Metrics for SREs");
    report.sidecar_metrics = http
        .get(format!("{sidecar_admin_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    report.operator_metrics = http
        .get(format!("{}/metrics", operator.admin_url()))
        .send()
        .await?
        .text()
        .await?;
    say.say(&format!("sidecar:  {sidecar_admin_url}/metrics"));
    for line in report
        .sidecar_metrics
        .lines()
        .filter(|l| l.starts_with("outband_sidecar_decisions_total") && !l.ends_with(" 0"))
    {
        say.say(&format!("  {line}"));
    }
    say.say(&format!("operator: {}/metrics", operator.admin_url()));
    for line in report.operator_metrics.lines().filter(|l| {
        l.starts_with("outband_operator_configmap_writes_total")
            || l.starts_with("outband_operator_keys_loaded")
            || l.starts_with("outband_operator_bindings")
    }) {
        say.say(&format!("  {line}"));
    }

    let stack = DemoStack {
        plane,
        provider,
        operator,
        app,
        sidecar,
        volume_sync,
        sidecar_url,
        sidecar_admin_url,
        work_dir,
    };
    Ok((report, stack))
}

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("outband.dev", "v1alpha1", kind))
}

async fn apply(api: &Api<DynamicObject>, name: &str, object: &Value) -> anyhow::Result<()> {
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    api.patch(
        name,
        &PatchParams::apply("outband-demo").force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// Waits until condition `type_` of `name` is True; fails with the condition's reason.
pub async fn wait_for_condition(
    api: &Api<DynamicObject>,
    name: &str,
    type_: &str,
    timeout: Duration,
) -> anyhow::Result<DynamicObject> {
    let deadline = Instant::now() + timeout;
    loop {
        let object = api.get(name).await?;
        let condition = object.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .cloned();
        if condition.as_ref().is_some_and(|c| c["status"] == "True") {
            return Ok(object);
        }
        if Instant::now() > deadline {
            bail!("{name} is not {type_} after {timeout:?}: {condition:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn orders_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "orders", "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "orders"}},
            "template": {
                "metadata": {
                    "labels": {"app": "orders", "outband.dev/inject": "enabled"},
                    "annotations": {
                        "outband.dev/api": API,
                        "outband.dev/route-scopes": "GET /orders/** orders:read; POST /orders orders:write",
                    }
                },
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "registry.example.com/shop/orders:1.0",
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }]
                }
            }
        }
    })
}

fn container_names(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    let init = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| format!("{} (native sidecar)", c.name));
    let main = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.clone());
    init.chain(main).collect()
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    scenario: &str,
    token: Option<&str>,
    expected_status: u16,
) -> anyhow::Result<Outcome> {
    let mut request = http.get(format!("{base}/orders/42"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let www_authenticate = response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Outcome {
        scenario: scenario.to_string(),
        expected_status,
        status,
        body,
        www_authenticate,
    })
}

fn show(say: &Narrator, outcome: &Outcome) {
    let mark = if outcome.as_expected() {
        "\x1b[32m✔\x1b[0m"
    } else {
        "\x1b[31m✘\x1b[0m"
    };
    say.say(&format!(
        "{mark} {:<48} → {}  {}",
        outcome.scenario,
        outcome.status,
        outcome.reason()
    ));
}

/// The token with one payload claim changed and the original signature kept.
fn tamper(token: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        bail!("not a JWS");
    }
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1])?)?;
    claims["scope"] = json!("orders:read orders:write admin");
    let payload = engine.encode(serde_json::to_vec(&claims)?);
    parts[1] = &payload;
    Ok(parts.join("."))
}

/// Arguments joined for a shell, quoting those with spaces or `;`.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            if arg.contains([' ', ';', '*']) {
                format!("'{arg}'")
            } else {
                arg.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
