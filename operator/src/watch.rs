//! The watches that feed the index: KeyManagers, OAuthAppBindings, injected Pods (metadata
//! only) and the operator's own ConfigMaps. Watch events go straight into the index (there
//! is no second copy of the objects); a relist (after a watch restart) removes what
//! disappeared meanwhile. Each watch reports its first complete list to [`Readiness`].
//!
//! A KeyManager or binding that cannot be read (a stored object that no longer fits the
//! types) is logged and left out, as if deleted, instead of stalling its watch. A failed
//! watch is retried after at most [`RETRY_MAX`], so the operator catches up within about a
//! second of the API server coming back.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, ExponentialBackoff, watcher};
use kube::{Api, Resource};
use outband_crds::annotations;
use outband_crds::{KeyManager, OAuthAppBinding};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

use crate::config::configmaps;
use crate::context::Context;
use crate::index::{Changes, Index, ObjectKey};
use crate::metrics::Metrics;
use crate::runtime::readiness::Readiness;

/// First delay before a failed watch is restarted.
pub const RETRY_MIN: Duration = Duration::from_millis(250);
/// Longest delay before a failed watch is restarted.
pub const RETRY_MAX: Duration = Duration::from_secs(1);

/// A resource the index keeps.
pub trait Indexed: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// Name of the watch (readiness, metrics, logs).
    const WATCH: &'static str;
    /// The index's key of the object.
    type Key: Ord + Clone + Send + Debug;
    /// The key of the object with metadata `meta`.
    fn key_of(meta: &ObjectMeta) -> Option<Self::Key>;
    /// The object's key.
    fn key(&self) -> Option<Self::Key> {
        Self::key_of(self.meta())
    }
    /// Adds or updates the object.
    fn apply(&self, index: &mut Index) -> Changes;
    /// Removes the object of `key`.
    fn delete(key: &Self::Key, index: &mut Index) -> Changes;
    /// Every key in the index.
    fn keys(index: &Index) -> Vec<Self::Key>;
    /// Drops the metrics of a deleted object.
    fn forget(_key: &Self::Key, _metrics: &Metrics) {}
}

fn namespaced_key(meta: &ObjectMeta) -> Option<ObjectKey> {
    Some(ObjectKey::new(meta.namespace.clone()?, meta.name.clone()?))
}

impl Indexed for KeyManager {
    const WATCH: &'static str = "keymanagers";
    type Key = String;
    fn key_of(meta: &ObjectMeta) -> Option<String> {
        meta.name.clone()
    }
    fn apply(&self, index: &mut Index) -> Changes {
        index.apply_key_manager(self)
    }
    fn delete(key: &String, index: &mut Index) -> Changes {
        index.delete_key_manager(key)
    }
    fn keys(index: &Index) -> Vec<String> {
        index.key_manager_names()
    }
    fn forget(key: &String, metrics: &Metrics) {
        metrics.forget_key_manager(key);
    }
}

impl Indexed for OAuthAppBinding {
    const WATCH: &'static str = "oauthappbindings";
    type Key = ObjectKey;
    fn key_of(meta: &ObjectMeta) -> Option<ObjectKey> {
        namespaced_key(meta)
    }
    fn apply(&self, index: &mut Index) -> Changes {
        index.apply_binding(self)
    }
    fn delete(key: &ObjectKey, index: &mut Index) -> Changes {
        index.delete_binding(key)
    }
    fn keys(index: &Index) -> Vec<ObjectKey> {
        index.binding_key_list()
    }
    fn forget(key: &ObjectKey, metrics: &Metrics) {
        metrics.set_binding_state(key, None);
    }
}

impl<K: Indexed> Indexed for DeserializeGuard<K>
where
    K: Resource<DynamicType = ()>,
{
    const WATCH: &'static str = K::WATCH;
    type Key = K::Key;
    fn key_of(meta: &ObjectMeta) -> Option<K::Key> {
        K::key_of(meta)
    }
    /// An object that could not be read is left out, as if deleted.
    fn apply(&self, index: &mut Index) -> Changes {
        match &self.0 {
            Ok(object) => object.apply(index),
            Err(invalid) => {
                let key = self.key();
                tracing::warn!(watch = K::WATCH, object = ?key, error = %invalid,
                    "cannot read the object: ignored until it is fixed");
                key.map(|key| K::delete(&key, index)).unwrap_or_default()
            }
        }
    }
    fn delete(key: &K::Key, index: &mut Index) -> Changes {
        K::delete(key, index)
    }
    fn keys(index: &Index) -> Vec<K::Key> {
        K::keys(index)
    }
    fn forget(key: &K::Key, metrics: &Metrics) {
        K::forget(key, metrics);
    }
}

impl Indexed for PartialObjectMeta<Pod> {
    const WATCH: &'static str = "pods";
    type Key = ObjectKey;
    fn key_of(meta: &ObjectMeta) -> Option<ObjectKey> {
        namespaced_key(meta)
    }
    fn apply(&self, index: &mut Index) -> Changes {
        index.apply_pod(self)
    }
    fn delete(key: &ObjectKey, index: &mut Index) -> Changes {
        index.delete_pod(key)
    }
    fn keys(index: &Index) -> Vec<ObjectKey> {
        index.pod_keys()
    }
}

impl Indexed for ConfigMap {
    const WATCH: &'static str = "configmaps";
    type Key = ObjectKey;
    fn key_of(meta: &ObjectMeta) -> Option<ObjectKey> {
        namespaced_key(meta)
    }
    fn apply(&self, index: &mut Index) -> Changes {
        index.apply_configmap(self)
    }
    fn delete(key: &ObjectKey, index: &mut Index) -> Changes {
        index.delete_configmap(key)
    }
    fn keys(index: &Index) -> Vec<ObjectKey> {
        index.configmap_keys()
    }
}

/// Every watch the readiness waits for.
pub const WATCHES: [&str; 4] = [
    KeyManager::WATCH,
    OAuthAppBinding::WATCH,
    <PartialObjectMeta<Pod> as Indexed>::WATCH,
    ConfigMap::WATCH,
];

/// The restart policy of every watch: exponential from [`RETRY_MIN`] to [`RETRY_MAX`],
/// with jitter.
fn retry() -> ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN)
        .with_max_delay(RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

fn watch<K>(api: Api<K>, config: watcher::Config) -> impl Stream<Item = watcher::Result<Event<K>>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, config).backoff(retry())
}

/// Starts every watch, each feeding the index until the set is dropped.
pub fn start(ctx: Arc<Context>, readiness: Arc<Readiness>) -> JoinSet<()> {
    let client = ctx.client.clone();
    let mut watches = JoinSet::new();
    watches.spawn(feed(
        watch(
            Api::<DeserializeGuard<KeyManager>>::all(client.clone()),
            watcher::Config::default(),
        ),
        ctx.clone(),
        readiness.clone(),
    ));
    watches.spawn(feed(
        watch(
            Api::<DeserializeGuard<OAuthAppBinding>>::all(client.clone()),
            watcher::Config::default(),
        ),
        ctx.clone(),
        readiness.clone(),
    ));
    watches.spawn(feed(
        watch(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default().labels(&format!(
                "{}={}",
                annotations::INJECT_LABEL,
                annotations::INJECT_ENABLED
            )),
        ),
        ctx.clone(),
        readiness.clone(),
    ));
    watches.spawn(feed(
        watch(
            Api::<ConfigMap>::all(client),
            watcher::Config::default().labels(&configmaps::selector()),
        ),
        ctx,
        readiness,
    ));
    watches
}

/// Feeds `events` into the index until the stream ends.
pub async fn feed<K: Indexed>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
) {
    let mut events = std::pin::pin!(events);
    let mut relisted: Option<BTreeSet<K::Key>> = None;
    let mut failing = false;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => {
                if std::mem::take(&mut failing) {
                    tracing::info!(watch = K::WATCH, "watch recovered");
                }
                event
            }
            Err(error) => {
                if failing {
                    tracing::debug!(watch = K::WATCH, %error, "watch still failing; retrying");
                } else {
                    tracing::warn!(watch = K::WATCH, %error, "watch failed; retrying");
                }
                failing = true;
                continue;
            }
        };
        ctx.metrics
            .watch_events
            .with_label_values(&[K::WATCH])
            .inc();
        let changes = {
            let mut index = ctx.index();
            match event {
                Event::Init => {
                    relisted = Some(BTreeSet::new());
                    Changes::default()
                }
                Event::InitApply(object) => {
                    if let (Some(seen), Some(key)) = (relisted.as_mut(), object.key()) {
                        seen.insert(key);
                    }
                    object.apply(&mut index)
                }
                Event::InitDone => {
                    let seen = relisted.take().unwrap_or_default();
                    let mut changes = Changes::default();
                    for key in K::keys(&index) {
                        if !seen.contains(&key) {
                            changes.extend(K::delete(&key, &mut index));
                            K::forget(&key, &ctx.metrics);
                        }
                    }
                    readiness.listed(K::WATCH);
                    changes
                }
                Event::Apply(object) => object.apply(&mut index),
                Event::Delete(object) => match object.key() {
                    Some(key) => {
                        K::forget(&key, &ctx.metrics);
                        K::delete(&key, &mut index)
                    }
                    None => Changes::default(),
                },
            }
        };
        ctx.dispatch(changes);
    }
    tracing::error!(watch = K::WATCH, "watch stream ended");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::tests::simple_binding;

    fn guarded(value: serde_json::Value) -> DeserializeGuard<OAuthAppBinding> {
        serde_json::from_value(value).expect("a guard reads any object with metadata")
    }

    #[test]
    fn a_binding_that_cannot_be_read_is_left_out_as_if_deleted() {
        let mut index = Index::new();
        let good = simple_binding("shop", "app", 1, "idp", "client-a", "orders");
        let applied = guarded(serde_json::to_value(&good).unwrap()).apply(&mut index);
        assert!(applied.bindings.contains(&ObjectKey::new("shop", "app")));

        let broken = guarded(json!({
            "apiVersion": "outband.dev/v1alpha1", "kind": "OAuthAppBinding",
            "metadata": {"name": "app", "namespace": "shop"},
            "spec": {"keyManager": 42},
        }));
        assert!(broken.0.is_err());
        assert_eq!(broken.key(), Some(ObjectKey::new("shop", "app")));
        let changes = broken.apply(&mut index);
        assert!(index.binding(&ObjectKey::new("shop", "app")).is_none());
        assert!(
            changes
                .apis
                .contains(&crate::index::tests::api("shop", "orders"))
        );
    }
}
