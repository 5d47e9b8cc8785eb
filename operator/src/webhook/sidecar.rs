//! The injected container and its config volume, built from the settings (pure).
//!
//! Hardened by default: non-root, read-only root filesystem, no capabilities, no privilege
//! escalation, `RuntimeDefault` seccomp. The config arrives through a projected volume of
//! every ConfigMap the operator may write for the API (`outband-api-<api>` and its shards),
//! each optional, so the pod starts before the operator has compiled anything; the sidecar
//! stays unready until a valid config appears.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, Probe, ProjectedVolumeSource, SeccompProfile,
    SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use outband_crds::command_line::{
    DEFAULT_MAX_TOKEN_BYTES, POD_NAMESPACE_REFERENCE, PodArgs, SidecarCommandLine, WorkloadArgs,
};
use outband_crds::sidecar_config::bundle::{MAX_SHARDS, configmap_name};

use super::ports::PortPlan;
use super::settings::{
    ADMIN_PORT_NAME, CONFIG_MOUNT_PATH, CONFIG_VOLUME, InjectorSettings, SIDECAR_CONTAINER,
    SIDECAR_UID,
};
use super::workload::WorkloadAnnotations;

/// The sidecar's command line (see `outband-sidecar --help`): the typed contract of
/// `outband_crds::command_line`, which the sidecar parses with the same types.
pub fn command_line(
    workload: &WorkloadAnnotations,
    ports: &PortPlan,
    settings: &InjectorSettings,
) -> SidecarCommandLine {
    SidecarCommandLine {
        pod: PodArgs {
            listen: (Ipv4Addr::UNSPECIFIED, settings.proxy_port).into(),
            admin_listen: (Ipv4Addr::UNSPECIFIED, settings.admin_port).into(),
            upstream: format!("http://127.0.0.1:{}", ports.upstream),
            config_dir: CONFIG_MOUNT_PATH.into(),
        },
        workload: WorkloadArgs {
            api: Some(workload.api.clone()),
            api_namespace: Some(POD_NAMESPACE_REFERENCE.into()),
            key_type: workload.key_type,
            key_managers: workload.key_managers.clone(),
            route_scopes: workload.route_scopes.clone().unwrap_or_default(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        },
        log_level: settings.log_level.clone(),
        // Last, so that an extra `--log-level` wins (the sidecar takes the last one).
        extra: settings.extra_args.clone(),
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(ADMIN_PORT_NAME.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(1),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The sidecar container.
pub fn container(
    workload: &WorkloadAnnotations,
    ports: &PortPlan,
    settings: &InjectorSettings,
) -> Container {
    let port = |name: &str, number: u16| ContainerPort {
        name: Some(name.into()),
        container_port: i32::from(number),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Container {
        name: SIDECAR_CONTAINER.into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(command_line(workload, ports, settings).to_args()),
        env: Some(vec![
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("POD_NAME", "metadata.name"),
        ]),
        ports: Some(vec![
            port(&ports.proxy_port_name, settings.proxy_port),
            port(ADMIN_PORT_NAME, settings.admin_port),
        ]),
        // Native sidecar: started before the app, stopped after it.
        restart_policy: settings.native_sidecar.then(|| "Always".to_string()),
        // The app starts once the sidecar answers; traffic once it has a valid config.
        startup_probe: Some(probe("/livez", 1, 30)),
        liveness_probe: Some(probe("/livez", 10, 3)),
        readiness_probe: Some(probe("/readyz", 2, 2)),
        resources: Some(settings.resources.clone()),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SIDECAR_UID),
            run_as_group: Some(SIDECAR_UID),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: CONFIG_MOUNT_PATH.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

/// The projected volume of the API's config ConfigMaps (all optional).
pub fn config_volume(api: &str) -> Volume {
    Volume {
        name: CONFIG_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o444),
            sources: Some(
                (0..MAX_SHARDS)
                    .map(|index| VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: configmap_name(api, index),
                            optional: Some(true),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    }
}
