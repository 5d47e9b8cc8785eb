//! The config controller: compiles one API's config from the index and applies the
//! ConfigMap plan with server-side apply (field manager `outband-operator`). Nothing is
//! written when the ConfigMaps already hold the config. Changes wait `--config-debounce` in
//! the queue, so that a burst of them is compiled once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use outband_crds::sidecar_config::ApiRef;
use outband_crds::sidecar_config::bundle;

use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::index::{CachedConfigMap, ObjectKey};
use crate::runtime::queue::{Action, Reconciler};

use super::compile::{Compiled, compile};
use super::configmaps::{self, Write};

/// The controller's name in metrics.
pub const CONTROLLER: &str = "config";

/// The config controller.
pub struct Configs {
    ctx: Arc<Context>,
    resync: Duration,
}

impl Configs {
    /// A controller that recompiles every served API each `resync` even without changes.
    pub fn new(ctx: Arc<Context>, resync: Duration) -> Configs {
        Configs { ctx, resync }
    }
}

impl Reconciler for Configs {
    type Key = ApiRef;
    const NAME: &'static str = CONTROLLER;

    fn context(&self) -> &Context {
        &self.ctx
    }

    async fn reconcile(self: Arc<Self>, api: ApiRef) -> Result<Action, Error> {
        Ok(match sync(&self.ctx, &api).await? {
            Synced::Served => Action::requeue(self.resync),
            Synced::NotServed | Synced::Deferred => Action::await_change(),
        })
    }

    fn regarding(&self, _: &ApiRef) -> Option<ObjectReference> {
        // An API is no Kubernetes object: its failures are in the logs and the metrics.
        None
    }
}

/// What [`sync`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    /// The API's config is in its ConfigMaps.
    Served,
    /// No pod serves the API: its ConfigMaps are gone.
    NotServed,
    /// A KeyManager it uses has not been checked yet: nothing was written.
    Deferred,
}

/// Brings `api`'s ConfigMaps up to date.
pub async fn sync(ctx: &Context, api: &ApiRef) -> Result<Synced, Error> {
    let (compiled, existing): (Compiled, BTreeMap<String, CachedConfigMap>) = {
        let index = ctx.index();
        let existing = index
            .configmaps_of(api)
            .into_iter()
            .map(|(name, cm)| (name, cm.clone()))
            .collect();
        (compile(&index, api), existing)
    };
    let desired = match compiled {
        Compiled::Deferred { pending } => {
            ctx.metrics
                .compilations
                .with_label_values(&["deferred"])
                .inc();
            tracing::debug!(api = %api, ?pending, "waiting for KeyManagers before compiling");
            return Ok(Synced::Deferred);
        }
        Compiled::NotServed => {
            ctx.metrics
                .compilations
                .with_label_values(&["not_served"])
                .inc();
            ctx.metrics.forget_api(&api.namespace, &api.name);
            Vec::new()
        }
        Compiled::Config(config) => {
            let bundle = bundle::encode(&config).inspect_err(|_| {
                ctx.metrics.compilations.with_label_values(&["error"]).inc();
            })?;
            let size: usize = bundle.shards.iter().map(Vec::len).sum();
            ctx.metrics
                .config_bytes
                .with_label_values(&[&api.namespace, &api.name])
                .set(size as i64);
            ctx.metrics
                .config_subscriptions
                .with_label_values(&[&api.namespace, &api.name])
                .set(config.subscriptions.len() as i64);
            configmaps::render(&bundle)
        }
    };
    let synced = if desired.is_empty() {
        Synced::NotServed
    } else {
        Synced::Served
    };
    let existing_refs: BTreeMap<String, &CachedConfigMap> =
        existing.iter().map(|(k, v)| (k.clone(), v)).collect();
    let writes = configmaps::plan(api, &desired, &existing_refs);
    if writes.is_empty() {
        if !desired.is_empty() {
            ctx.metrics
                .compilations
                .with_label_values(&["unchanged"])
                .inc();
        }
        return Ok(synced);
    }
    if !desired.is_empty() {
        ctx.metrics
            .compilations
            .with_label_values(&["changed"])
            .inc();
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &api.namespace);
    for write in writes {
        match write {
            Write::Apply(cm) => {
                let name = cm.metadata.name.clone().unwrap_or_default();
                let result = configmaps
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&*cm),
                    )
                    .await;
                count(ctx, "apply", result.is_ok());
                let written = result?;
                ctx.index().record_written(&written);
                tracing::info!(api = %api, configmap = name, "config written");
            }
            Write::Delete(name) => {
                let result = configmaps.delete(&name, &DeleteParams::default()).await;
                let ok = match &result {
                    Ok(_) => true,
                    Err(kube::Error::Api(status)) if status.code == 404 => true,
                    Err(_) => false,
                };
                count(ctx, "delete", ok);
                if !ok {
                    result?;
                }
                ctx.index()
                    .delete_configmap(&ObjectKey::new(&api.namespace, &name));
                tracing::info!(api = %api, configmap = name, "obsolete config deleted");
            }
        }
    }
    Ok(synced)
}

fn count(ctx: &Context, operation: &str, ok: bool) {
    ctx.metrics
        .configmap_writes
        .with_label_values(&[operation, if ok { "success" } else { "error" }])
        .inc();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::index::tests::{api, key_manager, pod, test_keys};
    use crate::index::{Observed, Published};
    use crate::metrics::Metrics;

    /// `len` bytes that do not compress.
    fn incompressible(len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 32);
        let mut block = Sha256::digest(b"outband");
        while bytes.len() < len {
            bytes.extend_from_slice(&block);
            block = Sha256::digest(block);
        }
        bytes.truncate(len);
        bytes
    }

    #[tokio::test]
    async fn a_config_that_cannot_be_encoded_is_a_failed_compilation() {
        // Never called: the encoding fails before any request.
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap()))
                .unwrap();
        let ctx = Context::new(client, Arc::new(Metrics::new()), None, Duration::ZERO);
        let orders = api("shop", "orders");
        ctx.update(|index| {
            index.apply_key_manager(&key_manager("idp", serde_json::json!({})));
            index.apply_pod(&pod("shop", "orders-1", "orders", &[]));
            // An issuer of 8 MB that does not compress: more than 8 ConfigMaps of 700 KiB.
            index.set_observed(
                "idp",
                None,
                Observed::Ready(Arc::new(Published {
                    issuer: URL_SAFE_NO_PAD.encode(incompressible(6 * 1024 * 1024)),
                    jwks_url: None,
                    keys: test_keys(),
                })),
            )
        });

        let error = sync(&ctx, &orders).await.unwrap_err();
        assert_eq!(error.reason(), "ConfigTooLarge");
        let compilations =
            |outcome: &str| ctx.metrics.compilations.with_label_values(&[outcome]).get();
        assert_eq!(compilations("error"), 1);
        assert_eq!(compilations("changed") + compilations("unchanged"), 0);
    }

    /// KeyManager `idp` Ready and API shop/orders served, against a mocked API server.
    fn served() -> (Arc<Context>, crate::fixtures::ApiServerVerifier, ApiRef) {
        let (ctx, server) = crate::fixtures::context();
        ctx.update(|index| {
            let mut changes = index.apply_key_manager(&key_manager("idp", serde_json::json!({})));
            changes.extend(crate::index::tests::ready(index, "idp"));
            changes.extend(index.apply_pod(&pod("shop", "orders-1", "orders", &[])));
            changes
        });
        (ctx, server, api("shop", "orders"))
    }

    #[tokio::test]
    async fn a_served_api_gets_its_configmap_once() {
        let (ctx, server, orders) = served();
        let (synced, (server, written)) = crate::fixtures::run(
            async move {
                let mut server = server;
                let written = server.apply_configmap("shop", "outband-api-orders").await;
                (server, written)
            },
            sync(&ctx, &orders),
        )
        .await;
        assert_eq!(synced.unwrap(), Synced::Served);
        assert_eq!(written["metadata"]["labels"]["outband.dev/api"], "orders");
        assert!(written["data"]["manifest.json"].is_string());
        assert!(written["binaryData"]["config-0.json.gz"].is_string());
        let count = |outcome: &str| ctx.metrics.compilations.with_label_values(&[outcome]).get();
        assert_eq!(count("changed"), 1);

        // What was written is recorded: compiling again writes nothing.
        let (synced, server) =
            crate::fixtures::run(async move { server }, sync(&ctx, &orders)).await;
        assert_eq!(synced.unwrap(), Synced::Served);
        assert_eq!(count("unchanged"), 1);
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn an_api_no_pod_serves_any_more_loses_its_configmaps() {
        let (ctx, server, orders) = served();
        let (_, server) = crate::fixtures::run(
            async move {
                let mut server = server;
                server.apply_configmap("shop", "outband-api-orders").await;
                server
            },
            sync(&ctx, &orders),
        )
        .await;
        ctx.update(|index| index.delete_pod(&ObjectKey::new("shop", "orders-1")));
        let (synced, server) = crate::fixtures::run(
            async move {
                let mut server = server;
                server.delete_configmap("shop", "outband-api-orders").await;
                server
            },
            sync(&ctx, &orders),
        )
        .await;
        assert_eq!(synced.unwrap(), Synced::NotServed);
        assert!(ctx.index().configmaps_of(&orders).is_empty());
        drop(ctx);
        server.done().await;
    }

    #[tokio::test]
    async fn an_api_waits_for_a_key_manager_not_checked_yet() {
        let (ctx, server, orders) = served();
        ctx.update(|index| index.apply_key_manager(&key_manager("new", serde_json::json!({}))));
        let (synced, server) =
            crate::fixtures::run(async move { server }, sync(&ctx, &orders)).await;
        assert_eq!(synced.unwrap(), Synced::Deferred);
        drop(ctx);
        server.done().await;
    }
}
