//! Which app port the sidecar protects, and how it takes the port's place.
//!
//! A Service that targets the app's port *by name* must reach the sidecar without any change
//! by the team. So the sidecar takes the name over: the app's container port loses its name
//! (its number stays, for the sidecar to forward to on localhost), and the sidecar declares
//! the name on its own proxy port. Endpoints resolve a named `targetPort` against regular
//! containers first, then native sidecars, so the name must not stay on the app.
//! App probes and lifecycle hooks that used the name are rewritten to the number, so they
//! keep reaching the app directly.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use outband_crds::annotations as ann;

use super::inject::InjectError;
use super::settings::{ADMIN_PORT_NAME, InjectorSettings, PROXY_PORT_NAME};
use super::workload::{AnnotationError, PortRef, WorkloadAnnotations};

/// The outcome of port resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortPlan {
    /// The app's port on localhost that the sidecar forwards to.
    pub upstream: u16,
    /// Name of the sidecar's proxy port: the app's former port name, or [`PROXY_PORT_NAME`].
    pub proxy_port_name: String,
    /// The app container port whose name moves to the sidecar.
    pub takeover: Option<Takeover>,
}

/// An app container port that gives its name to the sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Takeover {
    /// Index in `spec.containers`.
    pub container: usize,
    /// Index in that container's `ports`.
    pub port: usize,
    /// The name.
    pub name: String,
}

struct Declared<'a> {
    container: usize,
    port: usize,
    number: i32,
    name: Option<&'a str>,
    tcp: bool,
}

fn declared(containers: &[Container]) -> impl Iterator<Item = Declared<'_>> {
    containers.iter().enumerate().flat_map(|(c, container)| {
        container
            .ports
            .iter()
            .flatten()
            .enumerate()
            .map(move |(p, port)| Declared {
                container: c,
                port: p,
                number: port.container_port,
                name: port.name.as_deref(),
                tcp: port.protocol.as_deref().is_none_or(|p| p == "TCP"),
            })
    })
}

fn bad_port(problem: String) -> InjectError {
    InjectError::Annotation(AnnotationError {
        annotation: ann::UPSTREAM_PORT,
        problem,
    })
}

/// Resolves the upstream port of `spec` and checks that the sidecar's ports are free.
pub fn plan(
    spec: &PodSpec,
    workload: &WorkloadAnnotations,
    settings: &InjectorSettings,
) -> Result<PortPlan, InjectError> {
    let found = match &workload.upstream_port {
        Some(PortRef::Name(name)) => {
            let port = declared(&spec.containers)
                .find(|d| d.name == Some(name.as_str()))
                .ok_or_else(|| {
                    bad_port(format!(
                        "no app container declares a port named {name:?}; declare it under \
                         ports or give the port number"
                    ))
                })?;
            Some(port)
        }
        Some(PortRef::Number(number)) => {
            declared(&spec.containers).find(|d| d.number == i32::from(*number) && d.tcp)
        }
        None => {
            let tcp: Vec<Declared> = declared(&spec.containers).filter(|d| d.tcp).collect();
            let count = tcp.len();
            match <[Declared; 1]>::try_from(tcp) {
                Ok([only]) => Some(only),
                Err(_) => {
                    return Err(bad_port(format!(
                        "is required because the app containers declare {count} TCP ports; \
                         name the port (or number) the sidecar should protect"
                    )));
                }
            }
        }
    };
    if let Some(port) = &found
        && !port.tcp
    {
        return Err(bad_port(format!(
            "port {} is not TCP; the sidecar proxies HTTP over TCP",
            port.number
        )));
    }
    let upstream = match (&found, &workload.upstream_port) {
        (Some(port), _) => u16::try_from(port.number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_port(format!("container port {} is out of range", port.number)))?,
        (None, Some(PortRef::Number(number))) => *number,
        (None, _) => unreachable!("a named or defaulted port is always declared"),
    };

    for (role, number) in [
        ("proxy", settings.proxy_port),
        ("admin", settings.admin_port),
    ] {
        if upstream == number {
            return Err(bad_port(format!(
                "port {upstream} is the sidecar's {role} port; the app must listen elsewhere"
            )));
        }
        let in_use = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| {
                c.ports
                    .iter()
                    .flatten()
                    .any(|p| p.container_port == i32::from(number))
            });
        if let Some(container) = in_use {
            return Err(InjectError::PortConflict {
                port: number,
                role,
                container: container.name.clone(),
            });
        }
    }

    let takeover = found.and_then(|port| {
        port.name.map(|name| Takeover {
            container: port.container,
            port: port.port,
            name: name.to_string(),
        })
    });
    let proxy_port_name = takeover
        .as_ref()
        .map_or_else(|| PROXY_PORT_NAME.to_string(), |t| t.name.clone());
    for name in [proxy_port_name.as_str(), ADMIN_PORT_NAME] {
        let clash = declared(&spec.containers)
            .chain(declared(
                spec.init_containers.as_deref().unwrap_or_default(),
            ))
            .filter(|d| d.name == Some(name))
            .count();
        let taken_over = usize::from(takeover.as_ref().is_some_and(|t| t.name == name));
        if clash > taken_over {
            return Err(InjectError::NameConflict {
                what: "container port",
                name: name.to_string(),
            });
        }
    }
    Ok(PortPlan {
        upstream,
        proxy_port_name,
        takeover,
    })
}
