//! Where things are: the repository, the version-keyed cache of control-plane binaries,
//! and our own binaries (built on demand so a test never runs a stale one).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// Kubernetes release the harness runs (see `hack/install-envtest.sh`).
pub const KUBE_VERSION: &str = "v1.36.3";
/// etcd release the harness runs.
pub const ETCD_VERSION: &str = "v3.6.16";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The user's cache folder for Outband (`$OUTBAND_CACHE`, else `$XDG_CACHE_HOME/outband`,
/// else `~/.cache/outband`), shared by every clone.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OUTBAND_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("outband")
}

/// A cached Kubernetes binary (`kube-apiserver`, `kube-controller-manager`, `kubectl`).
pub fn kube_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = cache_root().join(format!("k8s-{KUBE_VERSION}")).join(name);
    require(&path, "make envtest")
}

/// The cached etcd binary.
pub fn etcd_binary() -> anyhow::Result<PathBuf> {
    let path = cache_root()
        .join(format!("etcd-{ETCD_VERSION}"))
        .join("etcd");
    require(&path, "make envtest")
}

/// `path` if it exists, else an error that names the make target installing it.
pub fn require(path: &Path, make_target: &str) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        bail!(
            "{} not found: run `{make_target}` to install it",
            path.display()
        )
    }
}

/// A tool expected on PATH, else an error naming the make target that installs it.
pub fn tool_on_path(name: &str, make_target: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("`{name}` not found on PATH: run `{make_target}` to install it"))
}

/// Path of one of this workspace's binaries (`outband-operator`, `outband-sidecar`, …),
/// built with cargo first (once per test process) so tests never run a stale build.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let target_dir = target_dir();
    let path = target_dir.join("debug").join(name);
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bin", name])
            .current_dir(repo_root())
            .status()
            .with_context(|| format!("running cargo build --bin {name}"))?;
        if !status.success() {
            bail!("cargo build --bin {name} failed ({status})");
        }
        built.push(name.to_string());
    }
    require(&path, "make build")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}
