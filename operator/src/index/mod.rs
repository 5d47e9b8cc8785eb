//! The operator's in-memory picture of the cluster: its single source of truth, fed by the
//! watches, read by the controllers and the config compiler. It keeps what the operator
//! needs of each object (specs, the parsed settings of injected pods, digests of the
//! statuses it writes), not whole objects.
//!
//! Pure: every mutation returns the [`Changes`] it implies (which APIs to recompile, which
//! bindings to re-check, which KeyManagers to refresh), so "a KeyManager change recompiles
//! exactly the APIs that use it" is decided here and tested without an API server.

pub mod digest;
pub mod pod;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use outband_crds::annotations::configmap_labels;
use outband_crds::sidecar_config::{ApiRef, PublicJwk};
use outband_crds::{
    KeyManager, KeyManagerSpec, KeyManagerStatus, OAuthAppBinding, OAuthAppBindingSpec,
    OAuthAppBindingStatus,
};

pub use digest::StatusDigest;
pub use pod::{Allow, ApiSettings, ServedApi};

/// `namespace/name` of a namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<ObjectKey> {
        Some(ObjectKey::new(meta.namespace.clone()?, meta.name.clone()?))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a mutation of the index implies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// APIs whose config must be recompiled (and written if it changed).
    pub apis: BTreeSet<ApiRef>,
    /// Bindings whose status must be recomputed.
    pub bindings: BTreeSet<ObjectKey>,
    /// KeyManagers to refresh (their spec changed) or to forget (deleted).
    pub key_managers: BTreeSet<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.apis.is_empty() && self.bindings.is_empty() && self.key_managers.is_empty()
    }

    /// Adds `other`.
    pub fn extend(&mut self, other: Changes) {
        self.apis.extend(other.apis);
        self.bindings.extend(other.bindings);
        self.key_managers.extend(other.key_managers);
    }
}

/// What the KeyManager controller concluded about a KeyManager in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// Not reconciled by this process yet: configs that use it wait, so a restart of the
    /// operator never publishes a config without keys that were there before.
    Pending,
    /// Ready: its tokens can be validated with these keys.
    Ready(Arc<Published>),
    /// Not ready (disabled, no issuer, no usable keys); its tokens are refused.
    NotReady {
        /// The KeyManager's `Ready` reason.
        reason: String,
    },
}

/// What the sidecars need from a ready KeyManager beyond its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The issuer in effect.
    pub issuer: String,
    /// The JWKS URL the keys come from (absent for PEM).
    pub jwks_url: Option<String>,
    /// The usable keys, in canonical order.
    pub keys: Vec<PublicJwk>,
}

/// A KeyManager as the index knows it.
#[derive(Clone, Debug)]
pub struct KeyManagerEntry {
    /// Its spec.
    pub spec: Arc<KeyManagerSpec>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.uid` (Events refer to it).
    pub uid: Option<String>,
    /// Its status as last seen or written (KeyManagers are few: the whole status is kept).
    pub status: Option<Arc<KeyManagerStatus>>,
    /// Its token endpoint in effect (from the controller, else from its status).
    pub token_endpoint: Option<String>,
    /// The controller's conclusion.
    pub observed: Observed,
}

/// A binding as the index knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingEntry {
    /// Its spec.
    pub spec: Arc<OAuthAppBindingSpec>,
    /// `metadata.creationTimestamp`: the older binding of a consumer key wins.
    pub created: Option<Timestamp>,
    /// The APIs its subscriptions name (namespace defaulted to the binding's).
    pub targets: Vec<ApiRef>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.uid` (Events refer to it).
    pub uid: Option<String>,
    /// Its status as last seen or written.
    pub status: StatusDigest,
}

impl BindingEntry {
    /// Whether `other` describes the same binding for the config and the other bindings
    /// (its status and metadata aside).
    fn same_spec(&self, other: &BindingEntry) -> bool {
        self.spec == other.spec && self.created == other.created
    }
}

/// An API: served by at least one injected pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEntry {
    pods: BTreeSet<ObjectKey>,
    /// Settings merged over its pods.
    pub settings: ApiSettings,
}

/// The content of one of our ConfigMaps, as last seen or written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedConfigMap {
    /// The API (its `outband.dev/api` label).
    pub api: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// `data`.
    pub data: BTreeMap<String, String>,
    /// `binaryData`, decoded.
    pub binary_data: BTreeMap<String, Vec<u8>>,
}

impl CachedConfigMap {
    /// Reads one of our ConfigMaps; `None` when it has no API label.
    pub fn from_object(cm: &ConfigMap) -> Option<(ObjectKey, CachedConfigMap)> {
        let key = ObjectKey::of(&cm.metadata)?;
        let labels = cm.metadata.labels.clone().unwrap_or_default();
        let api = labels.get(configmap_labels::API)?.clone();
        let cached = CachedConfigMap {
            api,
            labels,
            data: cm.data.clone().unwrap_or_default(),
            binary_data: cm
                .binary_data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        };
        Some((key, cached))
    }
}

/// (KeyManager, consumer key).
type ConsumerKey = (String, String);
/// A binding's claim on a consumer key: oldest first, then by namespace/name.
type Claim = (Option<Timestamp>, ObjectKey);

#[derive(Clone, Debug)]
struct PodEntry {
    api: ApiRef,
    settings: ApiSettings,
}

/// The index. See the module documentation.
#[derive(Debug, Default)]
pub struct Index {
    key_managers: BTreeMap<String, KeyManagerEntry>,
    bindings: BTreeMap<ObjectKey, BindingEntry>,
    pods: BTreeMap<ObjectKey, PodEntry>,
    apis: BTreeMap<ApiRef, ApiEntry>,
    subscribers: BTreeMap<ApiRef, BTreeSet<ObjectKey>>,
    consumer_keys: BTreeMap<ConsumerKey, BTreeSet<Claim>>,
    configmaps: BTreeMap<ObjectKey, CachedConfigMap>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    // ---- KeyManagers ------------------------------------------------------------------

    /// Adds or updates a KeyManager.
    pub fn apply_key_manager(&mut self, km: &KeyManager) -> Changes {
        let Some(name) = km.metadata.name.clone() else {
            return Changes::default();
        };
        let generation = km.metadata.generation;
        let uid = km.metadata.uid.clone();
        let status = km.status.clone().map(Arc::new);
        let status_token = km
            .status
            .as_ref()
            .and_then(|s| s.endpoints.as_ref())
            .and_then(|e| e.token.clone());
        let mut changes = Changes::default();
        match self.key_managers.get_mut(&name) {
            Some(entry) if *entry.spec == km.spec && entry.generation == generation => {
                entry.uid = uid;
                entry.status = status;
                if entry.observed == Observed::Pending && entry.token_endpoint != status_token {
                    entry.token_endpoint = status_token;
                    changes.bindings.extend(self.bindings_of_key_manager(&name));
                }
                return changes;
            }
            Some(entry) => {
                entry.spec = Arc::new(km.spec.clone());
                entry.generation = generation;
                entry.uid = uid;
                entry.status = status;
            }
            None => {
                self.key_managers.insert(
                    name.clone(),
                    KeyManagerEntry {
                        spec: Arc::new(km.spec.clone()),
                        generation,
                        uid,
                        status,
                        token_endpoint: status_token,
                        observed: Observed::Pending,
                    },
                );
            }
        }
        changes.key_managers.insert(name.clone());
        changes.apis.extend(self.apis_using(&name));
        changes.bindings.extend(self.bindings_of_key_manager(&name));
        changes
    }

    /// Removes a KeyManager (and marks it, so that its controller forgets it).
    pub fn delete_key_manager(&mut self, name: &str) -> Changes {
        let mut changes = Changes::default();
        if self.key_managers.remove(name).is_some() {
            changes.key_managers.insert(name.to_string());
            changes.apis.extend(self.apis_using(name));
            changes.bindings.extend(self.bindings_of_key_manager(name));
        }
        changes
    }

    /// Records the KeyManager controller's conclusion.
    pub fn set_observed(
        &mut self,
        name: &str,
        token_endpoint: Option<String>,
        observed: Observed,
    ) -> Changes {
        let mut changes = Changes::default();
        let Some(entry) = self.key_managers.get_mut(name) else {
            return changes;
        };
        let observed_changed = entry.observed != observed;
        let token_changed = entry.token_endpoint != token_endpoint;
        entry.observed = observed;
        entry.token_endpoint = token_endpoint;
        if observed_changed {
            changes.apis.extend(self.apis_using(name));
        }
        if observed_changed || token_changed {
            changes.bindings.extend(self.bindings_of_key_manager(name));
        }
        changes
    }

    /// Records the status the operator wrote for KeyManager `name` (so the watch's echo is
    /// no change).
    pub fn record_key_manager_status(&mut self, name: &str, status: KeyManagerStatus) {
        if let Some(entry) = self.key_managers.get_mut(name) {
            entry.status = Some(Arc::new(status));
        }
    }

    /// A KeyManager.
    pub fn key_manager(&self, name: &str) -> Option<&KeyManagerEntry> {
        self.key_managers.get(name)
    }

    /// Every KeyManager, by name.
    pub fn key_managers(&self) -> &BTreeMap<String, KeyManagerEntry> {
        &self.key_managers
    }

    /// The APIs whose config includes (or would include) KeyManager `name`.
    pub fn apis_using(&self, name: &str) -> BTreeSet<ApiRef> {
        self.apis
            .iter()
            .filter(|(_, entry)| entry.settings.key_managers.allows(name))
            .map(|(api, _)| api.clone())
            .collect()
    }

    /// The bindings whose `spec.keyManager` is `name`.
    pub fn bindings_of_key_manager(&self, name: &str) -> BTreeSet<ObjectKey> {
        self.consumer_keys
            .range((name.to_string(), String::new())..)
            .take_while(|((km, _), _)| km == name)
            .flat_map(|(_, owners)| owners.iter().map(|(_, key)| key.clone()))
            .collect()
    }

    // ---- Bindings ---------------------------------------------------------------------

    /// Adds or updates a binding.
    pub fn apply_binding(&mut self, binding: &OAuthAppBinding) -> Changes {
        let Some(key) = ObjectKey::of(&binding.metadata) else {
            return Changes::default();
        };
        let created = binding.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let status = binding.status.as_ref();
        let entry = BindingEntry {
            targets: targets(&key.namespace, &binding.spec),
            spec: Arc::new(binding.spec.clone()),
            created,
            generation: binding.metadata.generation,
            uid: binding.metadata.uid.clone(),
            status: StatusDigest::of(status, status.map_or(&[], |s| s.conditions.as_slice())),
        };
        if let Some(old) = self.bindings.get_mut(&key)
            && old.same_spec(&entry)
        {
            // Only its status or metadata changed: re-check the binding itself when its
            // status is not the one last written (someone else edited it) or its generation
            // moved.
            let mut changes = Changes::default();
            if old.status != entry.status || old.generation != entry.generation {
                changes.bindings.insert(key);
            }
            *old = entry;
            return changes;
        }
        let mut changes = self.unlink_binding(&key);
        self.link_binding(&key, &entry, &mut changes);
        self.bindings.insert(key, entry);
        changes
    }

    /// Removes a binding.
    pub fn delete_binding(&mut self, key: &ObjectKey) -> Changes {
        let changes = self.unlink_binding(key);
        self.bindings.remove(key);
        changes
    }

    fn unlink_binding(&mut self, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        let Some(old) = self.bindings.get(key).cloned() else {
            return changes;
        };
        changes.bindings.insert(key.clone());
        changes.apis.extend(old.targets.iter().cloned());
        for api in &old.targets {
            if let Some(set) = self.subscribers.get_mut(api) {
                set.remove(key);
                if set.is_empty() {
                    self.subscribers.remove(api);
                }
            }
        }
        let group = (old.spec.key_manager.clone(), old.spec.consumer_key.clone());
        self.touch_group(&group, &mut changes);
        if let Some(owners) = self.consumer_keys.get_mut(&group) {
            owners.remove(&(old.created, key.clone()));
            if owners.is_empty() {
                self.consumer_keys.remove(&group);
            }
        }
        changes
    }

    fn link_binding(&mut self, key: &ObjectKey, entry: &BindingEntry, changes: &mut Changes) {
        changes.bindings.insert(key.clone());
        changes.apis.extend(entry.targets.iter().cloned());
        for api in &entry.targets {
            self.subscribers
                .entry(api.clone())
                .or_default()
                .insert(key.clone());
        }
        let group = (
            entry.spec.key_manager.clone(),
            entry.spec.consumer_key.clone(),
        );
        self.consumer_keys
            .entry(group.clone())
            .or_default()
            .insert((entry.created, key.clone()));
        self.touch_group(&group, changes);
    }

    /// Marks every binding sharing a consumer key (and their APIs) as changed: which of them
    /// wins may have changed.
    fn touch_group(&self, group: &(String, String), changes: &mut Changes) {
        let Some(owners) = self.consumer_keys.get(group) else {
            return;
        };
        for (_, key) in owners {
            changes.bindings.insert(key.clone());
            if let Some(entry) = self.bindings.get(key) {
                changes.apis.extend(entry.targets.iter().cloned());
            }
        }
    }

    /// Records the status the operator wrote for binding `key` (so the watch's echo is no
    /// change).
    pub fn record_binding_status(&mut self, key: &ObjectKey, status: &OAuthAppBindingStatus) {
        if let Some(entry) = self.bindings.get_mut(key) {
            entry.status = StatusDigest::of(Some(status), &status.conditions);
        }
    }

    /// A binding.
    pub fn binding(&self, key: &ObjectKey) -> Option<&BindingEntry> {
        self.bindings.get(key)
    }

    /// Every binding's key.
    pub fn binding_keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.bindings.keys()
    }

    /// The binding that owns (`keyManager`, `consumerKey`): the oldest, then by
    /// namespace/name.
    pub fn consumer_key_owner(&self, key_manager: &str, consumer_key: &str) -> Option<&ObjectKey> {
        self.consumer_keys
            .get(&(key_manager.to_string(), consumer_key.to_string()))
            .and_then(|owners| owners.first())
            .map(|(_, key)| key)
    }

    /// The bindings that subscribe to `api`.
    pub fn subscribers(&self, api: &ApiRef) -> impl Iterator<Item = (&ObjectKey, &BindingEntry)> {
        self.subscribers
            .get(api)
            .into_iter()
            .flatten()
            .filter_map(|key| self.bindings.get(key).map(|entry| (key, entry)))
    }

    // ---- Pods (APIs) ------------------------------------------------------------------

    /// Adds or updates an injected pod (metadata only).
    pub fn apply_pod(&mut self, pod: &PartialObjectMeta<Pod>) -> Changes {
        let Some(key) = ObjectKey::of(&pod.metadata) else {
            return Changes::default();
        };
        let parsed = pod::from_metadata(
            &pod.metadata.labels.clone().unwrap_or_default(),
            &pod.metadata.annotations.clone().unwrap_or_default(),
        );
        let Some(parsed) = parsed else {
            return self.delete_pod(&key);
        };
        let entry = PodEntry {
            api: ApiRef {
                namespace: key.namespace.clone(),
                name: parsed.api,
            },
            settings: parsed.settings,
        };
        if let Some(old) = self.pods.get(&key)
            && old.api == entry.api
            && old.settings == entry.settings
        {
            return Changes::default();
        }
        let mut changes = self.delete_pod(&key);
        let api = entry.api.clone();
        let before = self.apis.get(&api).map(|a| a.settings.clone());
        self.pods.insert(key.clone(), entry);
        self.apis
            .entry(api.clone())
            .or_insert_with(|| ApiEntry {
                pods: BTreeSet::new(),
                settings: ApiSettings {
                    key_managers: Allow::Any,
                    subscriber_namespaces: Allow::Any,
                },
            })
            .pods
            .insert(key);
        self.remerge(&api, before, &mut changes);
        changes
    }

    /// Removes a pod.
    pub fn delete_pod(&mut self, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        let Some(old) = self.pods.remove(key) else {
            return changes;
        };
        let before = self.apis.get(&old.api).map(|a| a.settings.clone());
        if let Some(api) = self.apis.get_mut(&old.api) {
            api.pods.remove(key);
        }
        self.remerge(&old.api, before, &mut changes);
        changes
    }

    /// Recomputes an API's merged settings after its pods changed.
    fn remerge(&mut self, api: &ApiRef, before: Option<ApiSettings>, changes: &mut Changes) {
        let after = match self.apis.get(api) {
            Some(entry) if !entry.pods.is_empty() => {
                let mut settings = entry
                    .pods
                    .iter()
                    .filter_map(|p| self.pods.get(p))
                    .map(|p| &p.settings);
                let first = settings.next().cloned();
                first.map(|first| settings.fold(first, |acc, s| acc.merge(s)))
            }
            _ => None,
        };
        match &after {
            Some(settings) => {
                if let Some(entry) = self.apis.get_mut(api) {
                    entry.settings = settings.clone();
                }
            }
            None => {
                self.apis.remove(api);
            }
        }
        if before != after {
            changes.apis.insert(api.clone());
            changes
                .bindings
                .extend(self.subscribers.get(api).into_iter().flatten().cloned());
        }
    }

    /// An API, if some pod serves it.
    pub fn api(&self, api: &ApiRef) -> Option<&ApiEntry> {
        self.apis.get(api)
    }

    /// Every API that is served or still has ConfigMaps: what a full resync looks at.
    pub fn all_apis(&self) -> BTreeSet<ApiRef> {
        let mut apis: BTreeSet<ApiRef> = self.apis.keys().cloned().collect();
        apis.extend(self.configmaps.iter().map(|(key, cm)| ApiRef {
            namespace: key.namespace.clone(),
            name: cm.api.clone(),
        }));
        apis
    }

    /// Every pod key (for relists).
    pub fn pod_keys(&self) -> Vec<ObjectKey> {
        self.pods.keys().cloned().collect()
    }

    // ---- ConfigMaps -------------------------------------------------------------------

    /// Records a ConfigMap seen by the watch. An external change or deletion marks its API
    /// for recompilation, so it is repaired.
    pub fn apply_configmap(&mut self, cm: &ConfigMap) -> Changes {
        let mut changes = Changes::default();
        let Some((key, cached)) = CachedConfigMap::from_object(cm) else {
            return changes;
        };
        if self.configmaps.get(&key) != Some(&cached) {
            changes.apis.insert(ApiRef {
                namespace: key.namespace.clone(),
                name: cached.api.clone(),
            });
            self.configmaps.insert(key, cached);
        }
        changes
    }

    /// Records what the operator just wrote, so the watch's echo is no change.
    pub fn record_written(&mut self, cm: &ConfigMap) {
        if let Some((key, cached)) = CachedConfigMap::from_object(cm) {
            self.configmaps.insert(key, cached);
        }
    }

    /// Forgets a ConfigMap (deleted).
    pub fn delete_configmap(&mut self, key: &ObjectKey) -> Changes {
        let mut changes = Changes::default();
        if let Some(old) = self.configmaps.remove(key) {
            changes.apis.insert(ApiRef {
                namespace: key.namespace.clone(),
                name: old.api,
            });
        }
        changes
    }

    /// Our ConfigMaps for `api`, by name.
    pub fn configmaps_of(&self, api: &ApiRef) -> BTreeMap<String, &CachedConfigMap> {
        self.configmaps
            .iter()
            .filter(|(key, cm)| key.namespace == api.namespace && cm.api == api.name)
            .map(|(key, cm)| (key.name.clone(), cm))
            .collect()
    }

    /// Every ConfigMap key (for relists).
    pub fn configmap_keys(&self) -> Vec<ObjectKey> {
        self.configmaps.keys().cloned().collect()
    }

    /// Every KeyManager name (for relists).
    pub fn key_manager_names(&self) -> Vec<String> {
        self.key_managers.keys().cloned().collect()
    }

    /// Every binding key (for relists).
    pub fn binding_key_list(&self) -> Vec<ObjectKey> {
        self.bindings.keys().cloned().collect()
    }
}

/// The APIs a binding's subscriptions name, in spec order.
pub fn targets(namespace: &str, spec: &OAuthAppBindingSpec) -> Vec<ApiRef> {
    spec.subscriptions
        .iter()
        .map(|s| ApiRef {
            namespace: s.namespace.clone().unwrap_or_else(|| namespace.to_string()),
            name: s.api.clone(),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
