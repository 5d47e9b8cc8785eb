use std::path::Path;

use outband_crds::sidecar_config::SidecarConfig;
use outband_crds::sidecar_config::bundle::{MANIFEST_FILE, encode, shard_file};

use super::*;
use crate::cache::TokenCache;
use crate::refresh::{HttpSource, JwksRefresher};
use crate::settings::Settings;
use crate::test_support;

fn authenticator(metrics: &Metrics) -> Arc<Authenticator> {
    Arc::new(Authenticator::new(
        Arc::new(Settings::new(test_support::API)),
        TokenCache::new(100, Duration::from_secs(60)),
        JwksRefresher::new(
            Arc::new(HttpSource::new()),
            Duration::ZERO,
            Duration::ZERO,
            metrics.clone(),
        ),
        metrics.clone(),
        Duration::from_secs(60),
    ))
}

/// Writes `files` the way the kubelet does: a new timestamped directory, then an atomic
/// rename of `..data`, then per-file links.
fn kubelet_write(dir: &Path, version: u32, files: &[(String, Vec<u8>)]) {
    let name = format!("..2026_01_01_00_00_00.{version:09}");
    std::fs::create_dir(dir.join(&name)).unwrap();
    for (file, bytes) in files {
        std::fs::write(dir.join(&name).join(file), bytes).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&name, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (file, _) in files {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{file}"), &link).unwrap();
        }
    }
}

fn bundle_files(config: &SidecarConfig) -> Vec<(String, Vec<u8>)> {
    let bundle = encode(config).unwrap();
    let mut files = vec![(
        MANIFEST_FILE.to_string(),
        serde_json::to_vec(&bundle.manifest).unwrap(),
    )];
    for (i, shard) in bundle.shards.iter().enumerate() {
        files.push((shard_file(i), shard.clone()));
    }
    files
}

fn generation(auth: &Authenticator) -> String {
    auth.snapshot().unwrap().config.generation.clone()
}

#[test]
fn not_ready_until_a_valid_config_appears() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let mut watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics.clone(),
        Duration::from_secs(1),
    );
    assert_eq!(watcher.check(), Check::Refused("missing"));
    assert!(!auth.is_ready());
    kubelet_write(dir.path(), 1, &bundle_files(&test_support::config()));
    assert_eq!(watcher.check(), Check::Loaded);
    assert!(auth.is_ready());
    assert_eq!(metrics.config_loaded.get(), 1);
    assert_eq!(watcher.check(), Check::Unchanged);
}

#[test]
fn a_swap_installs_the_new_config() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let mut watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics.clone(),
        Duration::from_secs(1),
    );
    kubelet_write(dir.path(), 1, &bundle_files(&test_support::config()));
    watcher.check();
    let first = generation(&auth);
    let mut changed = test_support::config();
    changed.subscriptions.pop();
    kubelet_write(dir.path(), 2, &bundle_files(&changed));
    assert_eq!(watcher.check(), Check::Loaded);
    assert_ne!(generation(&auth), first);
    assert_eq!(auth.snapshot().unwrap().config.subscription_count(), 4);
    assert_eq!(metrics.config_generation.get(), 2);
}

#[test]
fn a_bad_update_keeps_the_last_good_config_and_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let mut watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics.clone(),
        Duration::from_secs(1),
    );
    kubelet_write(dir.path(), 1, &bundle_files(&test_support::config()));
    watcher.check();
    let good = generation(&auth);
    let mut torn = bundle_files(&test_support::config());
    torn[1].1 = b"not gzip".to_vec();
    kubelet_write(dir.path(), 2, &torn);
    assert_eq!(metrics.config_pending_failure.get(), 0);
    assert_eq!(watcher.check(), Check::Refused("torn"));
    assert_eq!(watcher.check(), Check::Refused("torn"));
    assert_eq!(generation(&auth), good);
    assert_eq!(
        metrics.config_pending_failure.get(),
        1,
        "stuck on a refused config while the last good one serves"
    );
    assert_eq!(
        metrics
            .config_reload_failures
            .with_label_values(&["torn"])
            .get(),
        1
    );
    assert_eq!(
        metrics.config_reloads.with_label_values(&["failure"]).get(),
        1
    );
    kubelet_write(dir.path(), 3, &bundle_files(&test_support::config()));
    assert_eq!(
        watcher.check(),
        Check::Same,
        "the same document is not a new config"
    );
    assert_eq!(metrics.config_pending_failure.get(), 0);
}

#[test]
fn a_refused_first_config_is_not_a_pending_failure() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let mut watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics.clone(),
        Duration::from_secs(1),
    );
    assert_eq!(watcher.check(), Check::Refused("missing"));
    assert_eq!(metrics.config_loaded.get(), 0);
    assert_eq!(metrics.config_pending_failure.get(), 0);
    assert_eq!(
        metrics
            .config_reload_failures
            .with_label_values(&["missing"])
            .get(),
        1
    );
}

#[test]
fn a_config_for_another_api_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let mut watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics,
        Duration::from_secs(1),
    );
    let mut other = test_support::config();
    other.api.name = "payments".into();
    kubelet_write(dir.path(), 1, &bundle_files(&other));
    assert_eq!(watcher.check(), Check::Refused("wrong_api"));
    assert!(!auth.is_ready());
}

#[tokio::test]
async fn the_watch_picks_up_a_swap_without_waiting_for_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let auth = authenticator(&metrics);
    let watcher = ConfigWatcher::new(
        dir.path().into(),
        auth.clone(),
        metrics,
        Duration::from_secs(3600),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(watcher.run(stop_rx));
    tokio::task::yield_now().await;
    kubelet_write(dir.path(), 1, &bundle_files(&test_support::config()));
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while !auth.is_ready() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "the inotify watch did not load the config");
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}
