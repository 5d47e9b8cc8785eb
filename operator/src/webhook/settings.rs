//! What the cluster operator decides about injected sidecars (chart values → operator flags):
//! image, resources, ports. Everything per-workload comes from annotations instead.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use outband_crds::command_line::LogFilter;

/// Name of the injected container.
pub const SIDECAR_CONTAINER: &str = "outband-sidecar";
/// Name of the projected volume holding the sidecar config.
pub const CONFIG_VOLUME: &str = "outband-config";
/// Where the config volume is mounted in the sidecar.
pub const CONFIG_MOUNT_PATH: &str = "/etc/outband/config";
/// Name of the sidecar's admin port (`/livez`, `/readyz`, `/metrics`).
pub const ADMIN_PORT_NAME: &str = "outband-admin";
/// Name of the sidecar's proxy port when there is no app port name to take over.
pub const PROXY_PORT_NAME: &str = "outband";
/// UID and GID the sidecar runs as (distroless `nonroot`).
pub const SIDECAR_UID: i64 = 65532;

/// Settings for every injected sidecar.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectorSettings {
    /// Sidecar image reference.
    pub image: String,
    /// `IfNotPresent`, `Always` or `Never`.
    pub image_pull_policy: String,
    /// Port the sidecar's proxy listens on (the Service's traffic arrives here).
    pub proxy_port: u16,
    /// Port of the sidecar's admin server.
    pub admin_port: u16,
    /// Resources of the sidecar container.
    pub resources: ResourceRequirements,
    /// Inject as a native sidecar (an init container with `restartPolicy: Always`, Kubernetes
    /// 1.29+) rather than as a regular container.
    pub native_sidecar: bool,
    /// Value written to the `outband.dev/injected` annotation.
    pub injector_version: String,
    /// The sidecar's `--log-level` (tracing `EnvFilter` syntax).
    pub log_level: LogFilter,
    /// Extra arguments appended to the sidecar's command line (e.g. `--log-format=json`).
    pub extra_args: Vec<String>,
}

impl Default for InjectorSettings {
    fn default() -> Self {
        InjectorSettings {
            image: format!(
                "ghcr.io/outband-dev/outband-sidecar:{}",
                env!("CARGO_PKG_VERSION")
            ),
            image_pull_policy: "IfNotPresent".into(),
            proxy_port: 15080,
            admin_port: 15090,
            resources: resources("50m", "64Mi", None, Some("128Mi")),
            native_sidecar: true,
            injector_version: env!("CARGO_PKG_VERSION").into(),
            log_level: LogFilter::default(),
            extra_args: Vec::new(),
        }
    }
}

/// Builds resource requirements from optional quantities (empty strings count as unset).
pub fn resources(
    cpu_request: &str,
    memory_request: &str,
    cpu_limit: Option<&str>,
    memory_limit: Option<&str>,
) -> ResourceRequirements {
    let map = |pairs: [(&str, Option<&str>); 2]| {
        let map: BTreeMap<String, Quantity> = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                v.filter(|v| !v.is_empty())
                    .map(|v| (k.to_string(), Quantity(v.to_string())))
            })
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: map([("cpu", Some(cpu_request)), ("memory", Some(memory_request))]),
        limits: map([("cpu", cpu_limit), ("memory", memory_limit)]),
        ..Default::default()
    }
}
