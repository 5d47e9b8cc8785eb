//! The config writer: takes dirty APIs from the queue, compiles each, and applies the
//! ConfigMap plan with server-side apply (field manager `outband-operator`). Nothing is
//! written when the cached ConfigMaps already hold the config.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use outband_crds::sidecar_config::ApiRef;
use outband_crds::sidecar_config::bundle;

use crate::context::{Context, FIELD_MANAGER};
use crate::error::Error;
use crate::index::{CachedConfigMap, ObjectKey};
use crate::runtime::shutdown::ShutdownSignal;

use super::compile::{Compiled, compile};
use super::configmaps::{self, Write};

/// The controller's name in metrics.
pub const CONTROLLER: &str = "config";

/// Longest retry delay after a failed write.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Runs the writer until `shutdown`.
pub async fn run(ctx: Arc<Context>, debounce: Duration, shutdown: ShutdownSignal) {
    let mut failures: HashMap<ApiRef, u32> = HashMap::new();
    loop {
        let batch = tokio::select! {
            batch = ctx.apis.next_batch(debounce) => batch,
            () = shutdown.clone().wait() => return,
        };
        for api in batch {
            if shutdown.is_triggered() {
                return;
            }
            match sync(&ctx, &api).await {
                Ok(()) => {
                    failures.remove(&api);
                }
                Err(error) => {
                    ctx.metrics.reconcile_failed(CONTROLLER, error.reason());
                    let count = failures.entry(api.clone()).or_default();
                    *count = count.saturating_add(1);
                    let delay = Duration::from_millis(500)
                        .saturating_mul(1 << (*count - 1).min(8))
                        .min(MAX_RETRY);
                    tracing::warn!(api = %api, reason = error.reason(), %error, retry_in = ?delay, "writing the config failed");
                    let queue = ctx.apis.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        queue.add(api);
                    });
                }
            }
        }
    }
}

/// Brings `api`'s ConfigMaps up to date.
pub async fn sync(ctx: &Context, api: &ApiRef) -> Result<(), Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
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
            return Ok(());
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
        return Ok(());
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
    Ok(())
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
        let ctx = Context::new(client, Arc::new(Metrics::new()), None);
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
}
