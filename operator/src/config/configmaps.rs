//! A config bundle laid out as ConfigMaps, and the writes that bring the cluster there.
//!
//! Shard 0 (`outband-api-<api>`) holds `manifest.json` in `data` and `config-0.json.gz` in
//! `binaryData`; shard i holds `config-i.json.gz`. Extra shards are written before shard 0
//! (whose manifest names them) and obsolete ones are deleted after it, so a reader that
//! follows the manifest never finds a shard missing; the hashes in the manifest catch the
//! rest.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use outband_crds::annotations::configmap_labels;
use outband_crds::sidecar_config::ApiRef;
use outband_crds::sidecar_config::bundle::{self, Bundle, MANIFEST_FILE};

use crate::index::CachedConfigMap;

/// The labels on every ConfigMap the operator owns.
pub fn labels(api: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            configmap_labels::MANAGED_BY.to_string(),
            configmap_labels::OPERATOR.to_string(),
        ),
        (configmap_labels::API.to_string(), api.to_string()),
    ])
}

/// The label selector of the operator's ConfigMaps.
pub fn selector() -> String {
    format!(
        "{}={}",
        configmap_labels::MANAGED_BY,
        configmap_labels::OPERATOR
    )
}

/// The ConfigMaps that hold `bundle`, shard 0 first.
pub fn render(bundle: &Bundle) -> Vec<ConfigMap> {
    let api = &bundle.manifest.api;
    let manifest = serde_json::to_string(&bundle.manifest).expect("the manifest always serializes");
    bundle
        .shards
        .iter()
        .enumerate()
        .map(|(index, shard)| ConfigMap {
            metadata: ObjectMeta {
                name: Some(bundle::configmap_name(&api.name, index)),
                namespace: Some(api.namespace.clone()),
                labels: Some(labels(&api.name)),
                ..ObjectMeta::default()
            },
            data: (index == 0)
                .then(|| BTreeMap::from([(MANIFEST_FILE.to_string(), manifest.clone())])),
            binary_data: Some(BTreeMap::from([(
                bundle::shard_file(index),
                ByteString(shard.clone()),
            )])),
            ..ConfigMap::default()
        })
        .collect()
}

/// One write.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Server-side apply of this ConfigMap.
    Apply(Box<ConfigMap>),
    /// Delete the ConfigMap of this name (in the API's namespace).
    Delete(String),
}

/// The writes that turn `existing` (our ConfigMaps of the API, by name) into `desired`:
/// nothing when they already match; extra shards before shard 0; deletions last.
pub fn plan(
    api: &ApiRef,
    desired: &[ConfigMap],
    existing: &BTreeMap<String, &CachedConfigMap>,
) -> Vec<Write> {
    let mut applies: Vec<Write> = desired
        .iter()
        .filter(|cm| {
            let name = cm.metadata.name.as_deref().unwrap_or_default();
            !existing
                .get(name)
                .is_some_and(|current| matches(cm, current))
        })
        .map(|cm| Write::Apply(Box::new(cm.clone())))
        .collect();
    // Shard 0 (first in `desired`) goes last among the applies.
    if let Some(pos) = applies.iter().position(|w| match w {
        Write::Apply(cm) => {
            cm.metadata.name.as_deref() == Some(&bundle::configmap_name(&api.name, 0))
        }
        Write::Delete(_) => false,
    }) {
        let first = applies.remove(pos);
        applies.push(first);
    }
    let wanted: Vec<&str> = desired
        .iter()
        .filter_map(|cm| cm.metadata.name.as_deref())
        .collect();
    let deletes = existing
        .keys()
        .filter(|name| !wanted.contains(&name.as_str()))
        .map(|name| Write::Delete(name.clone()));
    applies.into_iter().chain(deletes).collect()
}

/// Whether `current` already holds everything `desired` sets (our labels and keys; other
/// managers' additions are theirs).
fn matches(desired: &ConfigMap, current: &CachedConfigMap) -> bool {
    let labels_ok = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| current.labels.get(k) == Some(v));
    let data_ok = desired
        .data
        .iter()
        .flatten()
        .all(|(k, v)| current.data.get(k) == Some(v));
    let binary_ok = desired
        .binary_data
        .iter()
        .flatten()
        .all(|(k, v)| current.binary_data.get(k) == Some(&v.0));
    labels_ok && data_ok && binary_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use outband_crds::sidecar_config::SidecarConfig;

    fn api() -> ApiRef {
        ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        }
    }

    fn bundle_with_shards(shards: usize) -> Bundle {
        let mut bundle = bundle::encode(&SidecarConfig::empty(api())).unwrap();
        bundle.shards = (0..shards).map(|i| vec![i as u8; 10]).collect();
        bundle
    }

    fn cached(cm: &ConfigMap) -> CachedConfigMap {
        CachedConfigMap::from_object(cm).unwrap().1
    }

    fn names(writes: &[Write]) -> Vec<String> {
        writes
            .iter()
            .map(|w| match w {
                Write::Apply(cm) => format!("apply {}", cm.metadata.name.clone().unwrap()),
                Write::Delete(name) => format!("delete {name}"),
            })
            .collect()
    }

    #[test]
    fn shard_zero_holds_the_manifest_and_the_first_shard() {
        let cms = render(&bundle_with_shards(2));
        assert_eq!(cms.len(), 2);
        assert_eq!(cms[0].metadata.name.as_deref(), Some("outband-api-orders"));
        assert_eq!(cms[0].metadata.namespace.as_deref(), Some("shop"));
        assert!(cms[0].data.as_ref().unwrap().contains_key("manifest.json"));
        assert!(
            cms[0]
                .binary_data
                .as_ref()
                .unwrap()
                .contains_key("config-0.json.gz")
        );
        assert_eq!(
            cms[1].metadata.name.as_deref(),
            Some("outband-api-orders-1")
        );
        assert!(cms[1].data.is_none());
        assert!(
            cms[1]
                .binary_data
                .as_ref()
                .unwrap()
                .contains_key("config-1.json.gz")
        );
        assert_eq!(
            cms[1]
                .metadata
                .labels
                .as_ref()
                .unwrap()
                .get("outband.dev/api")
                .map(String::as_str),
            Some("orders")
        );
    }

    #[test]
    fn nothing_is_written_when_everything_matches() {
        let desired = render(&bundle_with_shards(2));
        let current: Vec<_> = desired.iter().map(cached).collect();
        let existing: BTreeMap<_, _> = desired
            .iter()
            .zip(&current)
            .map(|(cm, c)| (cm.metadata.name.clone().unwrap(), c))
            .collect();
        assert!(plan(&api(), &desired, &existing).is_empty());
    }

    #[test]
    fn extra_shards_are_written_before_shard_zero() {
        let desired = render(&bundle_with_shards(3));
        assert_eq!(
            names(&plan(&api(), &desired, &BTreeMap::new())),
            [
                "apply outband-api-orders-1",
                "apply outband-api-orders-2",
                "apply outband-api-orders"
            ]
        );
    }

    #[test]
    fn obsolete_shards_are_deleted_after_shard_zero() {
        let old = render(&bundle_with_shards(3));
        let current: Vec<_> = old.iter().map(cached).collect();
        let existing: BTreeMap<_, _> = old
            .iter()
            .zip(&current)
            .map(|(cm, c)| (cm.metadata.name.clone().unwrap(), c))
            .collect();
        let mut new = bundle_with_shards(1);
        new.shards[0] = vec![9; 10];
        assert_eq!(
            names(&plan(&api(), &render(&new), &existing)),
            [
                "apply outband-api-orders",
                "delete outband-api-orders-1",
                "delete outband-api-orders-2"
            ]
        );
    }

    #[test]
    fn keys_added_by_others_do_not_cause_writes() {
        let desired = render(&bundle_with_shards(1));
        let mut current = cached(&desired[0]);
        current.data.insert("note".into(), "added by hand".into());
        current.labels.insert("team".into(), "x".into());
        let existing = BTreeMap::from([("outband-api-orders".to_string(), &current)]);
        assert!(plan(&api(), &desired, &existing).is_empty());
    }

    #[test]
    fn a_changed_shard_is_rewritten() {
        let desired = render(&bundle_with_shards(1));
        let mut current = cached(&desired[0]);
        current
            .binary_data
            .insert("config-0.json.gz".into(), vec![1, 2, 3]);
        let existing = BTreeMap::from([("outband-api-orders".to_string(), &current)]);
        assert_eq!(
            names(&plan(&api(), &desired, &existing)),
            ["apply outband-api-orders"]
        );
    }
}

/// Reads back the config published in our ConfigMaps of one API (by name), if they hold a
/// complete, verified bundle.
pub fn decode_published(
    configmaps: &BTreeMap<String, &CachedConfigMap>,
) -> Option<outband_crds::sidecar_config::SidecarConfig> {
    let read = |file: &str| -> std::io::Result<Vec<u8>> {
        let found = configmaps.values().find_map(|cm| {
            if file == MANIFEST_FILE {
                cm.data.get(file).map(|s| s.as_bytes().to_vec())
            } else {
                cm.binary_data.get(file).cloned()
            }
        });
        found.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    bundle::decode(read).ok().map(|(_, config)| config)
}

#[cfg(test)]
mod decode_tests {
    use super::*;
    use outband_crds::sidecar_config::SidecarConfig;

    #[test]
    fn a_published_config_reads_back() {
        let config = SidecarConfig::empty(ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        });
        let cms = render(&bundle::encode(&config).unwrap());
        let cached: Vec<_> = cms
            .iter()
            .map(|cm| CachedConfigMap::from_object(cm).unwrap())
            .collect();
        let by_name: BTreeMap<_, _> = cached.iter().map(|(k, c)| (k.name.clone(), c)).collect();
        assert_eq!(decode_published(&by_name), Some(config));
        assert_eq!(decode_published(&BTreeMap::new()), None);
    }
}
