//! The pure core of the webhook: a Pod in, a JSON patch out.
//!
//! The patch is a list of targeted operations (never a rewrite of whole lists), so fields this
//! operator's Kubernetes types do not know survive untouched. An unselected or already
//! injected pod gets an empty patch: injecting twice changes nothing.

use std::collections::BTreeMap;

use json_patch::Patch;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use outband_crds::annotations as ann;
use serde_json::{Value, json};

use super::ports::{self, Takeover};
use super::settings::{CONFIG_VOLUME, InjectorSettings, SIDECAR_CONTAINER};
use super::sidecar;
use super::workload::{self, AnnotationError};

/// Why a pod is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    /// An `outband.dev/*` annotation is missing or wrong.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// A container port collides with one of the sidecar's ports.
    #[error(
        "container {container} declares port {port}, which the outband sidecar needs for its \
         {role} port; move the app to another port"
    )]
    PortConflict {
        /// The port.
        port: u16,
        /// `proxy` or `admin`.
        role: &'static str,
        /// The container declaring it.
        container: String,
    },
    /// Something the sidecar would add already exists under the same name.
    #[error("the pod already has a {what} named {name:?}, which the outband sidecar needs")]
    NameConflict {
        /// What kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The pod shares the node's network, so the sidecar cannot own its ports.
    #[error("pods with hostNetwork: true cannot be protected by the outband sidecar")]
    HostNetwork,
    /// The pod has no spec.
    #[error("the pod has no spec")]
    NoSpec,
}

impl InjectError {
    /// A stable, CamelCase reason for metrics, logs and the admission status.
    pub fn reason(&self) -> &'static str {
        match self {
            InjectError::Annotation(_) => "InvalidAnnotation",
            InjectError::PortConflict { .. } => "PortConflict",
            InjectError::NameConflict { .. } => "NameConflict",
            InjectError::HostNetwork => "HostNetwork",
            InjectError::NoSpec => "InvalidPod",
        }
    }
}

/// Whether the pod opted in with `outband.dev/inject: enabled`.
pub fn is_selected(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(ann::INJECT_LABEL))
        .is_some_and(|value| value == ann::INJECT_ENABLED)
}

/// Whether the pod already has the sidecar.
pub fn is_injected(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == SIDECAR_CONTAINER)
    })
}

/// The JSON patch that injects the sidecar into `pod`; empty when the pod is not selected or
/// already injected.
pub fn inject(pod: &Pod, settings: &InjectorSettings) -> Result<Patch, InjectError> {
    if !is_selected(pod) || is_injected(pod) {
        return Ok(Patch::default());
    }
    let spec = pod.spec.as_ref().ok_or(InjectError::NoSpec)?;
    let empty = BTreeMap::new();
    let workload = workload::parse(pod.metadata.annotations.as_ref().unwrap_or(&empty))?;
    if spec.host_network == Some(true) {
        return Err(InjectError::HostNetwork);
    }
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == CONFIG_VOLUME)
    {
        return Err(InjectError::NameConflict {
            what: "volume",
            name: CONFIG_VOLUME.into(),
        });
    }
    let ports = ports::plan(spec, &workload, settings)?;

    let mut ops = Vec::new();
    match &pod.metadata.annotations {
        Some(_) => ops.push(add(
            &format!("/metadata/annotations/{}", escape(ann::INJECTED)),
            json!(settings.injector_version),
        )),
        None => ops.push(add(
            "/metadata/annotations",
            json!({ (ann::INJECTED): settings.injector_version }),
        )),
    }
    if let Some(takeover) = &ports.takeover {
        ops.extend(takeover_ops(
            &spec.containers[takeover.container],
            takeover,
            ports.upstream,
        ));
    }
    let container = to_value(&sidecar::container(&workload, &ports, settings));
    // As a native sidecar it is the last init container: it starts after the app's own init
    // containers and before (and stops after) the app containers.
    ops.push(match (settings.native_sidecar, &spec.init_containers) {
        (false, _) => add("/spec/containers/-", container),
        (true, Some(_)) => add("/spec/initContainers/-", container),
        (true, None) => add("/spec/initContainers", json!([container])),
    });
    let volume = to_value(&sidecar::config_volume(&workload.api));
    ops.push(match spec.volumes {
        Some(_) => add("/spec/volumes/-", volume),
        None => add("/spec/volumes", json!([volume])),
    });
    Ok(serde_json::from_value(Value::Array(ops)).expect("well-formed JSON patch operations"))
}

/// Removes the name from the app's port and rewrites the app's probes and hooks that used it.
fn takeover_ops(app: &Container, takeover: &Takeover, number: u16) -> Vec<Value> {
    let base = format!("/spec/containers/{}", takeover.container);
    let mut ops = vec![json!({
        "op": "remove",
        "path": format!("{base}/ports/{}/name", takeover.port),
    })];
    let by_name = |port: &IntOrString| *port == IntOrString::String(takeover.name.clone());
    let probes = [
        ("livenessProbe", app.liveness_probe.as_ref()),
        ("readinessProbe", app.readiness_probe.as_ref()),
        ("startupProbe", app.startup_probe.as_ref()),
    ];
    for (field, probe) in probes {
        let Some(probe) = probe else { continue };
        if probe.http_get.as_ref().is_some_and(|h| by_name(&h.port)) {
            ops.push(replace(
                &format!("{base}/{field}/httpGet/port"),
                json!(number),
            ));
        }
        if probe.tcp_socket.as_ref().is_some_and(|t| by_name(&t.port)) {
            ops.push(replace(
                &format!("{base}/{field}/tcpSocket/port"),
                json!(number),
            ));
        }
    }
    let lifecycle = app.lifecycle.as_ref();
    let hooks = [
        ("postStart", lifecycle.and_then(|l| l.post_start.as_ref())),
        ("preStop", lifecycle.and_then(|l| l.pre_stop.as_ref())),
    ];
    for (field, hook) in hooks {
        let Some(hook) = hook else { continue };
        if hook.http_get.as_ref().is_some_and(|h| by_name(&h.port)) {
            ops.push(replace(
                &format!("{base}/lifecycle/{field}/httpGet/port"),
                json!(number),
            ));
        }
        if hook.tcp_socket.as_ref().is_some_and(|t| by_name(&t.port)) {
            ops.push(replace(
                &format!("{base}/lifecycle/{field}/tcpSocket/port"),
                json!(number),
            ));
        }
    }
    ops
}

fn add(path: &str, value: Value) -> Value {
    json!({ "op": "add", "path": path, "value": value })
}

fn replace(path: &str, value: Value) -> Value {
    json!({ "op": "replace", "path": path, "value": value })
}

/// RFC 6901 escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("Kubernetes types always serialize")
}
