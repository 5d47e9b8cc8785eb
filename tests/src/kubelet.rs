//! Just enough kubelet to run an injected pod's sidecar on this machine, where there is no
//! kubelet and no container runtime:
//!
//! - [`AtomicVolume`] lays files out the way the kubelet's atomic writer does for
//!   ConfigMap and projected volumes (`..<timestamp>/` holding the files, a `..data`
//!   symlink swapped atomically by rename, and one symlink per file through `..data`);
//! - [`ConfigMapVolumeSync`] keeps such a directory in step with the ConfigMaps of a
//!   projected volume on the real apiserver, as the kubelet's sync loop does;
//! - [`SidecarRun`] starts the sidecar container's exact command line from the pod spec,
//!   rewriting only what a kubelet maps: `$(VAR)` references from the container's env, the
//!   volume's mount path to the local directory, and container ports to free host ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use kube::api::Api;
use tokio::task::JoinHandle;

use crate::process::ManagedProcess;

/// A directory written like a kubelet-managed ConfigMap/projected volume.
pub struct AtomicVolume {
    dir: PathBuf,
    generation: AtomicU64,
}

impl AtomicVolume {
    /// A volume rooted at `dir` (created if missing).
    pub fn new(dir: &Path) -> anyhow::Result<AtomicVolume> {
        std::fs::create_dir_all(dir)?;
        Ok(AtomicVolume {
            dir: dir.to_path_buf(),
            generation: AtomicU64::new(0),
        })
    }

    /// The directory a container would see at its mount path.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces the volume's whole content with `files`, atomically for a reader that
    /// goes through the per-file symlinks (as the sidecar does).
    pub fn write(&self, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst);
        let stamp = format!(
            "..{}_{generation:06}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let new_dir = self.dir.join(&stamp);
        std::fs::create_dir(&new_dir)?;
        for (name, bytes) in files {
            if name.contains('/') || name.starts_with("..") {
                bail!("refusing file name {name:?} in a volume");
            }
            std::fs::write(new_dir.join(name), bytes)?;
        }
        let old_target = std::fs::read_link(self.dir.join("..data")).ok();

        // Swap `..data` atomically: a new symlink renamed over the old one.
        let tmp_link = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp_link);
        std::os::unix::fs::symlink(&stamp, &tmp_link)?;
        std::fs::rename(&tmp_link, self.dir.join("..data"))?;

        // Per-file symlinks through `..data`: add new names, remove vanished ones.
        for name in files.keys() {
            let link = self.dir.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link)?;
            }
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with("..") && !files.contains_key(&name) {
                std::fs::remove_file(entry.path())?;
            }
        }
        if let Some(old) = old_target {
            let old = self.dir.join(old);
            if old != new_dir {
                std::fs::remove_dir_all(old)?;
            }
        }
        Ok(())
    }
}

/// Keeps an [`AtomicVolume`] in step with the ConfigMaps of a projected volume.
pub struct ConfigMapVolumeSync {
    task: JoinHandle<()>,
    syncs: Arc<AtomicU64>,
}

impl ConfigMapVolumeSync {
    /// Starts syncing the ConfigMaps `names` of `namespace` into `volume`, polling every
    /// `period` (the kubelet's sync period is a minute; tests use less). Missing
    /// ConfigMaps are skipped, as for `optional: true` projections. The first sync has
    /// happened when this returns.
    pub async fn start(
        client: kube::Client,
        namespace: &str,
        names: Vec<String>,
        volume: AtomicVolume,
        period: Duration,
    ) -> anyhow::Result<ConfigMapVolumeSync> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let syncs = Arc::new(AtomicU64::new(0));
        let mut last = read_configmaps(&api, &names).await?;
        volume.write(&last)?;
        syncs.fetch_add(1, Ordering::SeqCst);
        let counter = syncs.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Ok(files) = read_configmaps(&api, &names).await else {
                    continue;
                };
                if files != last && volume.write(&files).is_ok() {
                    last = files;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Ok(ConfigMapVolumeSync { task, syncs })
    }

    /// How many times the volume content was written.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }
}

impl Drop for ConfigMapVolumeSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_configmaps(
    api: &Api<ConfigMap>,
    names: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for name in names {
        let Some(configmap) = api.get_opt(name).await? else {
            continue;
        };
        for (key, value) in configmap.data.unwrap_or_default() {
            files.insert(key, value.into_bytes());
        }
        for (key, value) in configmap.binary_data.unwrap_or_default() {
            files.insert(key, value.0);
        }
    }
    Ok(files)
}

/// Names of the ConfigMaps projected into `volume_name` of `pod`.
pub fn projected_configmaps(pod: &Pod, volume_name: &str) -> anyhow::Result<Vec<String>> {
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == volume_name)
        .with_context(|| format!("pod has no volume {volume_name}"))?;
    let sources = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.clone())
        .with_context(|| format!("volume {volume_name} is not a projected volume"))?;
    Ok(sources
        .into_iter()
        .filter_map(|source| source.config_map.map(|cm| cm.name))
        .collect())
}

/// The container named `name`, among init containers (native sidecars) and containers.
pub fn find_container<'a>(pod: &'a Pod, name: &str) -> anyhow::Result<&'a Container> {
    let spec = pod.spec.as_ref().context("pod without spec")?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == name)
        .with_context(|| format!("pod has no container {name}"))
}

/// A container of an injected pod, run as a local process.
pub struct SidecarRun {
    /// The process.
    pub process: ManagedProcess,
    /// The command line actually run (after the kubelet-style rewrites).
    pub argv: Vec<String>,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
}

/// How [`run_container`] maps the container onto this machine.
pub struct ContainerMapping<'a> {
    /// The binary standing for the image's entrypoint.
    pub binary: &'a Path,
    /// Mount path → local directory.
    pub mounts: BTreeMap<String, PathBuf>,
    /// Container port → host port (ports not listed keep their number).
    pub ports: BTreeMap<u16, u16>,
    /// Where the process's output goes.
    pub log: &'a Path,
}

/// Starts `container` of `pod` with `mapping`, like a kubelet would start it in the pod.
pub fn run_container(
    pod: &Pod,
    container: &Container,
    mapping: ContainerMapping<'_>,
) -> anyhow::Result<SidecarRun> {
    let env = container_env(pod, container)?;
    let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
    argv.extend(container.args.clone().unwrap_or_default());
    let argv: Vec<String> = argv
        .iter()
        .map(|arg| expand_env_refs(arg, &env))
        .map(|arg| rewrite_mounts(&arg, &mapping.mounts))
        .map(|arg| rewrite_ports(&arg, &mapping.ports))
        .collect();
    let env_pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let process = ManagedProcess::spawn(
        &container.name,
        mapping.binary,
        &argv,
        &env_pairs,
        mapping.log,
    )?;
    Ok(SidecarRun {
        process,
        argv,
        ports: mapping.ports,
    })
}

/// The container's environment: literal values and downward-API fields.
fn container_env(pod: &Pod, container: &Container) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            value.clone()
        } else if let Some(field) = var.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            match field.field_path.as_str() {
                "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
                "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
                "status.podIP" => "127.0.0.1".to_string(),
                other => bail!("env {}: field {other} is not supported here", var.name),
            }
        } else {
            bail!(
                "env {}: only values and downward-API fields are supported here",
                var.name
            );
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// Expands `$(VAR)` like the kubelet does (unknown references stay as they are).
fn expand_env_refs(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

fn rewrite_mounts(arg: &str, mounts: &BTreeMap<String, PathBuf>) -> String {
    let mut out = arg.to_string();
    for (mount_path, local) in mounts {
        out = out.replace(mount_path.as_str(), &local.display().to_string());
    }
    out
}

/// `0.0.0.0:P` and `127.0.0.1:P` become `127.0.0.1:<host port of P>`.
fn rewrite_ports(arg: &str, ports: &BTreeMap<u16, u16>) -> String {
    let mut out = arg.to_string();
    for (container_port, host_port) in ports {
        for host in ["0.0.0.0", "127.0.0.1", "localhost"] {
            let from = format!("{host}:{container_port}");
            if let Some(position) = out.find(&from) {
                let end = position + from.len();
                let boundary = out[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_digit());
                if boundary {
                    out.replace_range(position..end, &format!("127.0.0.1:{host_port}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_mapped_on_number_boundaries() {
        let ports = BTreeMap::from([(8080, 41000), (80, 41001)]);
        assert_eq!(
            rewrite_ports("--listen=0.0.0.0:8080", &ports),
            "--listen=127.0.0.1:41000"
        );
        assert_eq!(
            rewrite_ports("--upstream=http://127.0.0.1:80", &ports),
            "--upstream=http://127.0.0.1:41001"
        );
        assert_eq!(
            rewrite_ports("--x=0.0.0.0:8081", &ports),
            "--x=0.0.0.0:8081"
        );
    }

    #[test]
    fn env_references_are_expanded() {
        let env = BTreeMap::from([("POD_NAMESPACE".to_string(), "shop".to_string())]);
        assert_eq!(
            expand_env_refs("--namespace=$(POD_NAMESPACE)", &env),
            "--namespace=shop"
        );
    }

    #[test]
    fn volume_swaps_keep_links_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let volume = AtomicVolume::new(dir.path()).unwrap();
        volume
            .write(&BTreeMap::from([
                ("a".to_string(), b"1".to_vec()),
                ("b".to_string(), b"2".to_vec()),
            ]))
            .unwrap();
        volume
            .write(&BTreeMap::from([("a".to_string(), b"3".to_vec())]))
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"3");
        assert!(std::fs::symlink_metadata(dir.path().join("b")).is_err());
        let stamped: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("..")
                    && e.path().is_dir()
                    && !e.path().is_symlink()
            })
            .collect();
        assert_eq!(stamped.len(), 1, "old generations are removed");
    }
}
