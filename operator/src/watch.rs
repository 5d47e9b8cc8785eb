//! The watches that feed the index: KeyManagers, OAuthAppBindings, injected Pods (metadata
//! only) and the operator's own ConfigMaps. A relist (after a watch restart) removes what
//! disappeared meanwhile. Each watch reports its first complete list to [`Readiness`].

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use outband_crds::{KeyManager, OAuthAppBinding};
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::index::{Changes, Index, ObjectKey};
use crate::runtime::readiness::Readiness;

/// A resource the index keeps.
pub trait Indexed: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// Name of the watch (readiness, metrics, logs).
    const WATCH: &'static str;
    /// The index's key of the object.
    type Key: Ord + Clone + Send;
    /// The object's key.
    fn key(&self) -> Option<Self::Key>;
    /// Adds or updates the object.
    fn apply(&self, index: &mut Index) -> Changes;
    /// Removes the object of `key`.
    fn delete(key: &Self::Key, index: &mut Index) -> Changes;
    /// Every key in the index.
    fn keys(index: &Index) -> Vec<Self::Key>;
}

fn namespaced_key<K: Resource>(object: &K) -> Option<ObjectKey> {
    let meta = object.meta();
    Some(ObjectKey::new(meta.namespace.clone()?, meta.name.clone()?))
}

impl Indexed for KeyManager {
    const WATCH: &'static str = "keymanagers";
    type Key = String;
    fn key(&self) -> Option<String> {
        self.metadata.name.clone()
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
}

impl Indexed for OAuthAppBinding {
    const WATCH: &'static str = "oauthappbindings";
    type Key = ObjectKey;
    fn key(&self) -> Option<ObjectKey> {
        namespaced_key(self)
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
}

impl Indexed for PartialObjectMeta<Pod> {
    const WATCH: &'static str = "pods";
    type Key = ObjectKey;
    fn key(&self) -> Option<ObjectKey> {
        namespaced_key(self)
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
    fn key(&self) -> Option<ObjectKey> {
        namespaced_key(self)
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

/// Feeds `events` into the index until the stream ends. `on_delete` runs for every key
/// removed (metrics cleanup).
pub async fn feed<K: Indexed>(
    events: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    ctx: Arc<Context>,
    readiness: Arc<Readiness>,
    on_delete: impl Fn(&K::Key),
) {
    let mut events = std::pin::pin!(events);
    let mut relisted: Option<BTreeSet<K::Key>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(watch = K::WATCH, %error, "watch error; retrying");
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
                            on_delete(&key);
                        }
                    }
                    readiness.listed(K::WATCH);
                    changes
                }
                Event::Apply(object) => object.apply(&mut index),
                Event::Delete(object) => match object.key() {
                    Some(key) => {
                        on_delete(&key);
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
