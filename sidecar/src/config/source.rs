//! Reading the config bundle from the mounted directory.
//!
//! The kubelet writes a ConfigMap volume as a timestamped directory, points the `..data`
//! symlink at it with an atomic rename, and exposes each file as `name -> ..data/name`. We
//! resolve `..data` once and read every file from that one directory, so a load never mixes
//! two versions; a plain directory (no `..data`) is read as is, for local runs.

use std::path::{Path, PathBuf};

use outband_crds::sidecar_config::SidecarConfig;
use outband_crds::sidecar_config::bundle::{self, BundleError, MANIFEST_FILE, Manifest};

/// The kubelet's symlink to the current version of the volume.
pub const DATA_LINK: &str = "..data";

/// A bundle read from disk.
#[derive(Debug)]
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// The config document.
    pub config: SidecarConfig,
    /// The directory the files were read from.
    pub from: PathBuf,
}

/// Why the directory holds no usable bundle.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bundle is missing, torn or invalid.
    #[error("{0}")]
    Bundle(#[from] BundleError),
}

impl LoadError {
    /// Every value [`LoadError::reason`] returns.
    pub const REASONS: [&'static str; 9] = [
        "missing",
        "unreadable",
        "invalid_json",
        "unknown_format",
        "torn",
        "bad_shard_names",
        "bad_compression",
        "api_mismatch",
        "too_large",
    ];

    /// A stable name for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::Bundle(err) => match err {
                BundleError::Read { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    "missing"
                }
                BundleError::Read { .. } => "unreadable",
                BundleError::Parse { .. } => "invalid_json",
                BundleError::Format { .. } | BundleError::UnsupportedCritical(_) => {
                    "unknown_format"
                }
                BundleError::Mismatch { .. } => "torn",
                BundleError::ShardNames { .. } => "bad_shard_names",
                BundleError::Decompress(_) => "bad_compression",
                BundleError::ApiMismatch { .. } => "api_mismatch",
                BundleError::TooLarge { .. } => "too_large",
            },
        }
    }

    /// Whether trying again at once may succeed (the kubelet removed the version we were
    /// reading while we read it).
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Bundle(BundleError::Read { .. }))
    }
}

/// The directory holding the current files: the target of `..data` when present.
pub fn current_dir(dir: &Path) -> PathBuf {
    let link = dir.join(DATA_LINK);
    match std::fs::read_link(&link) {
        Ok(target) if target.is_absolute() => target,
        Ok(target) => dir.join(target),
        Err(_) => dir.to_path_buf(),
    }
}

/// A cheap token that changes whenever the volume's content may have changed: the `..data`
/// target, or the manifest's modification time and size for a plain directory.
pub fn version_marker(dir: &Path) -> Option<String> {
    if let Ok(target) = std::fs::read_link(dir.join(DATA_LINK)) {
        return Some(format!("link:{}", target.display()));
    }
    let meta = std::fs::metadata(dir.join(MANIFEST_FILE)).ok()?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Some(format!("file:{modified}:{}", meta.len()))
}

/// Reads and verifies the bundle in `dir`, retrying a few times when the version being read
/// disappears underneath (the kubelet deletes the old version right after a swap).
pub fn load(dir: &Path) -> Result<Loaded, LoadError> {
    let mut attempt = 0;
    loop {
        let from = current_dir(dir);
        match bundle::decode(|name| std::fs::read(from.join(name))) {
            Ok((manifest, config)) => {
                return Ok(Loaded {
                    manifest,
                    config,
                    from,
                });
            }
            Err(err) => {
                let err = LoadError::from(err);
                attempt += 1;
                if !err.is_transient() || attempt >= 3 {
                    return Err(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;
    use outband_crds::sidecar_config::bundle::{encode, shard_file};

    fn write_plain(dir: &Path, config: &SidecarConfig) {
        let bundle = encode(config).unwrap();
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&bundle.manifest).unwrap(),
        )
        .unwrap();
        for (i, shard) in bundle.shards.iter().enumerate() {
            std::fs::write(dir.join(shard_file(i)), shard).unwrap();
        }
    }

    #[test]
    fn every_reason_is_listed() {
        let io = |kind| std::io::Error::from(kind);
        let json = || serde_json::from_slice::<()>(b"{").unwrap_err();
        let api = || outband_crds::sidecar_config::ApiRef {
            namespace: "shop".into(),
            name: "orders".into(),
        };
        let errors = [
            BundleError::Read {
                file: "f".into(),
                source: io(std::io::ErrorKind::NotFound),
            },
            BundleError::Read {
                file: "f".into(),
                source: io(std::io::ErrorKind::PermissionDenied),
            },
            BundleError::Parse {
                file: "f".into(),
                what: "w",
                source: json(),
            },
            BundleError::Format {
                file: "f".into(),
                found: "x".into(),
                expected: "y",
            },
            BundleError::Mismatch {
                file: "f".into(),
                what: "w",
            },
            BundleError::ShardNames { count: 9, last: 8 },
            BundleError::Decompress(io(std::io::ErrorKind::InvalidData)),
            BundleError::ApiMismatch {
                manifest: api(),
                document: api(),
            },
            BundleError::TooLarge {
                api: api(),
                needed: 9,
            },
        ];
        let reasons: Vec<&str> = errors
            .into_iter()
            .map(|e| LoadError::Bundle(e).reason())
            .collect();
        assert_eq!(reasons, LoadError::REASONS);
    }

    #[test]
    fn reads_a_plain_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_plain(dir.path(), &test_support::config());
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.config, test_support::config());
        assert!(version_marker(dir.path()).unwrap().starts_with("file:"));
    }

    #[test]
    fn follows_the_data_link() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("..2026_01_01_00_00_00.000000001");
        std::fs::create_dir(&version).unwrap();
        write_plain(&version, &test_support::config());
        std::os::unix::fs::symlink(version.file_name().unwrap(), dir.path().join(DATA_LINK))
            .unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.from, version);
        assert_eq!(
            version_marker(dir.path()).unwrap(),
            "link:..2026_01_01_00_00_00.000000001"
        );
    }

    #[test]
    fn a_missing_bundle_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path()).unwrap_err();
        assert_eq!(err.reason(), "missing");
        assert_eq!(version_marker(dir.path()), None);
    }

    #[test]
    fn a_corrupt_shard_is_reported_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        write_plain(dir.path(), &test_support::config());
        std::fs::write(dir.path().join(shard_file(0)), b"garbage").unwrap();
        assert_eq!(load(dir.path()).unwrap_err().reason(), "torn");
    }
}
