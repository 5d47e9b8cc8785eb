//! The config bundle: how one [`SidecarConfig`] is laid out in ConfigMaps and files.
//!
//! ```text
//! ConfigMap outband-api-<api>      data:       manifest.json
//!                                  binaryData: config-0.json.gz
//! ConfigMap outband-api-<api>-1    binaryData: config-1.json.gz      (only when needed)
//! ...
//! ```
//! The document is canonical JSON, gzip-compressed (deterministically: no name, mtime 0),
//! and cut into shards of at most [`SHARD_BYTES`]. The manifest names every shard with its
//! size and SHA-256, and the SHA-256 of the uncompressed document. The pod mounts all the
//! ConfigMaps into one projected volume, so the files appear side by side; because the
//! kubelet may combine ConfigMaps of different ages, the reader verifies every hash and
//! refuses a torn set (the sidecar then keeps its last good config).

use std::io::{Read, Write};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use sha2::{Digest, Sha256};

use super::{ApiRef, CONFIG_FORMAT, SidecarConfig};

/// The format identifier of [`Manifest`].
pub const BUNDLE_FORMAT: &str = "outband.dev/sidecar-config-bundle/v1";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Largest shard, in bytes: well under the 1 MiB object limit of a ConfigMap.
pub const SHARD_BYTES: usize = 700 * 1024;
/// Most shards per API (the pod's projected volume lists this many ConfigMaps).
pub const MAX_SHARDS: usize = 8;
/// Largest uncompressed document the reader accepts.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Describes a bundle: its shards and the hash of the whole document.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The API the bundle is for.
    pub api: ApiRef,
    /// SHA-256 (hex) of the uncompressed JSON document: the config's generation.
    pub sha256: String,
    /// Size of the uncompressed JSON document.
    pub size: u64,
    /// Number of subscriptions, for humans and metrics.
    pub subscriptions: usize,
    /// The shards, in order.
    pub shards: Vec<ShardRef>,
}

/// One shard of the compressed document.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardRef {
    /// File name, e.g. `config-0.json.gz`.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 (hex) of the shard's bytes.
    pub sha256: String,
}

/// A config ready to be written: the manifest and the shards' bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The manifest (serialized as [`MANIFEST_FILE`] into the first ConfigMap).
    pub manifest: Manifest,
    /// Shard bytes, in the manifest's order; shard `i` goes into ConfigMap `i`.
    pub shards: Vec<Vec<u8>>,
}

/// Why a bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The config does not fit in [`MAX_SHARDS`] ConfigMaps.
    #[error(
        "the config for API {api} needs {needed} ConfigMaps of {SHARD_BYTES} bytes; at most {MAX_SHARDS} are allowed"
    )]
    TooLarge {
        /// The API.
        api: ApiRef,
        /// Shards needed.
        needed: usize,
    },
    /// A file is missing or unreadable.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The manifest or the document is not valid JSON of the expected format.
    #[error("{file} is not a valid {what}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// What was expected.
        what: &'static str,
        /// The cause.
        source: serde_json::Error,
    },
    /// An unknown format identifier.
    #[error("{file} has format {found:?}; this sidecar reads {expected:?}")]
    Format {
        /// The file.
        file: String,
        /// What it says.
        found: String,
        /// What is supported.
        expected: &'static str,
    },
    /// A shard's or the document's hash or size disagrees with the manifest: a torn set.
    #[error(
        "{file} does not match the manifest ({what}); the ConfigMaps are being updated or are inconsistent"
    )]
    Mismatch {
        /// The file.
        file: String,
        /// What differs.
        what: &'static str,
    },
    /// The shard names are not the expected sequence.
    #[error(
        "manifest lists {count} shards with unexpected names; expected config-0.json.gz … config-{last}.json.gz, at most {MAX_SHARDS}"
    )]
    ShardNames {
        /// Number of shards listed.
        count: usize,
        /// Index of the last shard.
        last: usize,
    },
    /// The compressed document is not valid gzip or too large.
    #[error("the config document cannot be decompressed: {0}")]
    Decompress(std::io::Error),
    /// The document lists critical members this reader does not understand.
    #[error(
        "the config document needs members this sidecar does not understand ({}); upgrade the sidecar",
        .0.join(", ")
    )]
    UnsupportedCritical(Vec<String>),
    /// The manifest and the document name different APIs.
    #[error("manifest is for API {manifest} but the document is for API {document}")]
    ApiMismatch {
        /// API in the manifest.
        manifest: ApiRef,
        /// API in the document.
        document: ApiRef,
    },
}

/// Name of the ConfigMap that holds shard `index` of `api`'s bundle (and, for index 0, the
/// manifest).
pub fn configmap_name(api_name: &str, index: usize) -> String {
    if index == 0 {
        format!("outband-api-{api_name}")
    } else {
        format!("outband-api-{api_name}-{index}")
    }
}

/// File name of shard `index`.
pub fn shard_file(index: usize) -> String {
    format!("config-{index}.json.gz")
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serializes `config` into a bundle. Deterministic: equal configs give equal bytes.
pub fn encode(config: &SidecarConfig) -> Result<Bundle, BundleError> {
    let document = serde_json::to_vec(config).expect("SidecarConfig always serializes");
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(&document)
        .expect("writing to a Vec cannot fail");
    let compressed = encoder.finish().expect("writing to a Vec cannot fail");

    let shards: Vec<Vec<u8>> = compressed.chunks(SHARD_BYTES).map(<[u8]>::to_vec).collect();
    if shards.len() > MAX_SHARDS {
        return Err(BundleError::TooLarge {
            api: config.api.clone(),
            needed: shards.len(),
        });
    }
    let manifest = Manifest {
        format: BUNDLE_FORMAT.to_string(),
        api: config.api.clone(),
        sha256: sha256_hex(&document),
        size: document.len() as u64,
        subscriptions: config.subscriptions.len(),
        shards: shards
            .iter()
            .enumerate()
            .map(|(index, bytes)| ShardRef {
                file: shard_file(index),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    Ok(Bundle { manifest, shards })
}

/// Reads and verifies a bundle through `read_file` (a file name → its bytes), e.g. from
/// the sidecar's mounted config directory. Every hash is checked; nothing partial is
/// returned.
pub fn decode(
    read_file: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<(Manifest, SidecarConfig), BundleError> {
    let read = |file: &str| {
        read_file(file).map_err(|source| BundleError::Read {
            file: file.to_string(),
            source,
        })
    };
    let manifest_bytes = read(MANIFEST_FILE)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|source| BundleError::Parse {
            file: MANIFEST_FILE.to_string(),
            what: "config manifest",
            source,
        })?;
    if manifest.format != BUNDLE_FORMAT {
        return Err(BundleError::Format {
            file: MANIFEST_FILE.to_string(),
            found: manifest.format,
            expected: BUNDLE_FORMAT,
        });
    }
    let names_ok = !manifest.shards.is_empty()
        && manifest.shards.len() <= MAX_SHARDS
        && manifest
            .shards
            .iter()
            .enumerate()
            .all(|(index, shard)| shard.file == shard_file(index));
    if !names_ok {
        return Err(BundleError::ShardNames {
            count: manifest.shards.len(),
            last: manifest.shards.len().saturating_sub(1),
        });
    }

    let mut compressed = Vec::new();
    for shard in &manifest.shards {
        let bytes = read(&shard.file)?;
        if bytes.len() as u64 != shard.size || sha256_hex(&bytes) != shard.sha256 {
            return Err(BundleError::Mismatch {
                file: shard.file.clone(),
                what: "shard size or SHA-256",
            });
        }
        compressed.extend_from_slice(&bytes);
    }

    let mut document = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut document)
        .map_err(BundleError::Decompress)?;
    if document.len() as u64 != manifest.size || sha256_hex(&document) != manifest.sha256 {
        return Err(BundleError::Mismatch {
            file: "config document".to_string(),
            what: "document size or SHA-256",
        });
    }
    let config: SidecarConfig =
        serde_json::from_slice(&document).map_err(|source| BundleError::Parse {
            file: "config document".to_string(),
            what: "sidecar config",
            source,
        })?;
    if config.format != CONFIG_FORMAT {
        return Err(BundleError::Format {
            file: "config document".to_string(),
            found: config.format,
            expected: CONFIG_FORMAT,
        });
    }
    let unsupported = config.unsupported_critical();
    if !unsupported.is_empty() {
        return Err(BundleError::UnsupportedCritical(
            unsupported.into_iter().map(str::to_string).collect(),
        ));
    }
    if config.api != manifest.api {
        return Err(BundleError::ApiMismatch {
            manifest: manifest.api,
            document: config.api,
        });
    }
    Ok((manifest, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_config::SubscriptionConfig;
    use crate::{KeyType, SubscriptionState};
    use std::collections::BTreeMap;

    fn api() -> ApiRef {
        ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        }
    }

    fn config_with(subscriptions: usize) -> SidecarConfig {
        let mut config = SidecarConfig::empty(api());
        config.subscriptions = (0..subscriptions)
            .map(|i| SubscriptionConfig {
                key_manager: "idp".into(),
                consumer_key: format!("client-{i:08}-{:x}", i * 2654435761usize),
                key_type: KeyType::Production,
                application: format!("app-{i}"),
                binding: format!("team-{}/binding-{i}", i % 17),
                tier: Some("Gold".into()),
                state: SubscriptionState::Active,
            })
            .collect();
        config
    }

    fn files(bundle: &Bundle) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        files.insert(
            MANIFEST_FILE.to_string(),
            serde_json::to_vec(&bundle.manifest).unwrap(),
        );
        for (i, shard) in bundle.shards.iter().enumerate() {
            files.insert(shard_file(i), shard.clone());
        }
        files
    }

    fn reader(files: &BTreeMap<String, Vec<u8>>) -> impl Fn(&str) -> std::io::Result<Vec<u8>> + '_ {
        |name| {
            files
                .get(name)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }

    #[test]
    fn round_trips_a_config() {
        let config = config_with(3);
        let bundle = encode(&config).unwrap();
        let files = files(&bundle);
        let (manifest, decoded) = decode(reader(&files)).unwrap();
        assert_eq!(decoded, config);
        assert_eq!(manifest.subscriptions, 3);
    }

    #[test]
    fn encoding_is_deterministic() {
        assert_eq!(
            encode(&config_with(50)).unwrap(),
            encode(&config_with(50)).unwrap()
        );
    }

    #[test]
    fn ten_thousand_subscriptions_fit_in_one_configmap() {
        let bundle = encode(&config_with(10_000)).unwrap();
        assert_eq!(bundle.shards.len(), 1, "{:?}", bundle.manifest.shards);
        assert!(bundle.shards[0].len() < SHARD_BYTES);
    }

    #[test]
    fn large_configs_are_sharded_and_read_back() {
        let config = config_with(150_000);
        let bundle = encode(&config).unwrap();
        assert!(bundle.shards.len() > 1);
        assert!(bundle.shards.iter().all(|s| s.len() <= SHARD_BYTES));
        let files = files(&bundle);
        assert_eq!(decode(reader(&files)).unwrap().1, config);
    }

    #[test]
    fn a_torn_set_is_refused() {
        let old = encode(&config_with(150_000)).unwrap();
        let mut new_config = config_with(150_000);
        new_config.subscriptions[0].state = SubscriptionState::Blocked;
        let new = encode(&new_config).unwrap();
        let mut files = files(&new);
        files.insert(shard_file(1), old.shards[1].clone());
        let err = decode(reader(&files)).unwrap_err();
        assert!(matches!(err, BundleError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn a_missing_shard_is_refused() {
        let bundle = encode(&config_with(1)).unwrap();
        let mut files = files(&bundle);
        files.remove(&shard_file(0));
        assert!(matches!(
            decode(reader(&files)).unwrap_err(),
            BundleError::Read { .. }
        ));
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let bundle = encode(&config_with(1)).unwrap();
        let mut manifest = bundle.manifest.clone();
        manifest.format = "outband.dev/sidecar-config-bundle/v9".into();
        let mut files = files(&bundle);
        files.insert(MANIFEST_FILE.into(), serde_json::to_vec(&manifest).unwrap());
        assert!(matches!(
            decode(reader(&files)).unwrap_err(),
            BundleError::Format { .. }
        ));
    }

    #[test]
    fn shard_names_outside_the_sequence_are_refused() {
        let bundle = encode(&config_with(1)).unwrap();
        let mut manifest = bundle.manifest.clone();
        manifest.shards[0].file = "../../etc/passwd".into();
        let mut files = files(&bundle);
        files.insert(MANIFEST_FILE.into(), serde_json::to_vec(&manifest).unwrap());
        assert!(matches!(
            decode(reader(&files)).unwrap_err(),
            BundleError::ShardNames { .. }
        ));
    }

    #[test]
    fn configmap_names_follow_the_api() {
        assert_eq!(configmap_name("orders", 0), "outband-api-orders");
        assert_eq!(configmap_name("orders", 3), "outband-api-orders-3");
    }
}
