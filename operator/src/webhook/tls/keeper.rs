//! Self-managed TLS: keeps the CA and serving certificate in a Secret, loads them into the
//! server, publishes the CA bundle in the MutatingWebhookConfiguration, and rotates early.
//!
//! Secret layout (type `kubernetes.io/tls`): `tls.crt`, `tls.key`, `ca.crt`, `ca.key`,
//! `ca-bundle.crt`; the serving names in the annotation `outband.dev/webhook-sans`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::pki::{self, Lifetimes, Material};
use super::{CertStore, TlsError};

/// Annotation on the Secret listing the serving certificate's names.
pub const SANS_ANNOTATION: &str = "outband.dev/webhook-sans";

/// Where the keeper keeps and publishes its certificates.
#[derive(Clone, Debug)]
pub struct KeeperConfig {
    /// Namespace of the Secret (the operator's).
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Name of the MutatingWebhookConfiguration whose `caBundle`s to keep current.
    pub webhook_configuration: String,
    /// Subject alternative names of the serving certificate.
    pub sans: Vec<String>,
    /// Certificate lifetimes.
    pub lifetimes: Lifetimes,
    /// How often to check when all is well.
    pub interval: Duration,
    /// How soon to retry after a failure.
    pub retry: Duration,
}

/// Runs forever: one [`sync`] per interval (sooner after a failure).
pub async fn run(client: Client, config: KeeperConfig, store: Arc<CertStore>) {
    loop {
        let delay = match sync(&client, &config, &store).await {
            Ok(()) => config.interval,
            Err(error) => {
                tracing::warn!(reason = error.reason(), %error, "webhook certificate not in place yet");
                config.retry
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// One pass: read (or create/rotate) the Secret, load it, publish the CA bundle.
pub async fn sync(
    client: &Client,
    config: &KeeperConfig,
    store: &CertStore,
) -> Result<(), TlsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let material = loop {
        let existing = secrets
            .get_opt(&config.secret)
            .await
            .map_err(|source| kube_error(format!("reading Secret {}", config.secret), source))?;
        let current = existing.as_ref().and_then(from_secret);
        let now = SystemTime::now();
        let plan = pki::plan(current.as_ref(), &config.sans, now, &config.lifetimes);
        let Some(next) =
            pki::execute(plan, current.as_ref(), &config.sans, now, &config.lifetimes)?
        else {
            break current.expect("Keep implies existing material");
        };
        let written = match existing {
            None => {
                secrets
                    .create(&PostParams::default(), &to_secret(config, &next, None))
                    .await
            }
            Some(old) => {
                let version = old.resource_version();
                secrets
                    .replace(
                        &config.secret,
                        &PostParams::default(),
                        &to_secret(config, &next, version),
                    )
                    .await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!(secret = %config.secret, ?plan, "webhook certificate issued");
                break next;
            }
            // Another replica got there first: use what it wrote.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(source) => {
                return Err(kube_error(
                    format!("writing Secret {}", config.secret),
                    source,
                ));
            }
        }
    };
    store.load_pem(&material.tls_cert, &material.tls_key)?;
    publish_ca_bundle(client, &config.webhook_configuration, &material.ca_bundle).await
}

/// Sets `caBundle` on every webhook of the configuration where it differs.
pub async fn publish_ca_bundle(client: &Client, name: &str, bundle: &str) -> Result<(), TlsError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let action = || format!("updating the caBundle of MutatingWebhookConfiguration {name}");
    let configuration = api
        .get(name)
        .await
        .map_err(|source| kube_error(action(), source))?;
    let wanted = ByteString(bundle.as_bytes().to_vec());
    let mut ops = Vec::new();
    for (i, webhook) in configuration.webhooks.iter().flatten().enumerate() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
            ops.push(json!({ "op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name }));
            ops.push(json!({ "op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": wanted }));
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(json!(ops)).expect("well-formed patch");
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|source| kube_error(action(), source))?;
    tracing::info!(configuration = name, "webhook caBundle updated");
    Ok(())
}

fn kube_error(action: String, source: kube::Error) -> TlsError {
    TlsError::Kube { action, source }
}

fn from_secret(secret: &Secret) -> Option<Material> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
    };
    let sans = secret
        .annotations()
        .get(SANS_ANNOTATION)
        .map(|s| {
            s.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Some(Material {
        ca_cert: text("ca.crt")?,
        ca_key: text("ca.key")?,
        tls_cert: text("tls.crt")?,
        tls_key: text("tls.key")?,
        ca_bundle: text("ca-bundle.crt")?,
        sans,
    })
}

fn to_secret(
    config: &KeeperConfig,
    material: &Material,
    resource_version: Option<String>,
) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(config.secret.clone()),
            namespace: Some(config.namespace.clone()),
            resource_version,
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "outband-operator".to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                SANS_ANNOTATION.to_string(),
                material.sans.join(","),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), bytes(&material.tls_cert)),
            ("tls.key".to_string(), bytes(&material.tls_key)),
            ("ca.crt".to_string(), bytes(&material.ca_cert)),
            ("ca.key".to_string(), bytes(&material.ca_key)),
            ("ca-bundle.crt".to_string(), bytes(&material.ca_bundle)),
        ])),
        ..Default::default()
    }
}
