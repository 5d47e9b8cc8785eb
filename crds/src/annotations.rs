//! The workload contract: the label and `outband.dev/*` annotations that application teams
//! put on pod templates, read by the injection webhook and the operator.

/// Pod label that opts a workload in to sidecar injection (value [`INJECT_ENABLED`]).
pub const INJECT_LABEL: &str = "outband.dev/inject";
/// The only value of [`INJECT_LABEL`] that enables injection.
pub const INJECT_ENABLED: &str = "enabled";
/// Required: the API this workload serves (a DNS label).
pub const API: &str = "outband.dev/api";
/// `PRODUCTION` (default) or `SANDBOX`: which keys this workload accepts.
pub const KEY_TYPE: &str = "outband.dev/key-type";
/// Comma-separated KeyManager names allowed for this workload (default: all).
pub const KEY_MANAGERS: &str = "outband.dev/key-managers";
/// The app's port (name or number) that the sidecar forwards to.
pub const UPSTREAM_PORT: &str = "outband.dev/upstream-port";
/// Per-route scope rules, e.g. `GET /orders/* orders:read; POST /orders orders:write`.
pub const ROUTE_SCOPES: &str = "outband.dev/route-scopes";
/// Comma-separated namespaces whose bindings may subscribe to this API (`*` for any).
pub const ALLOWED_SUBSCRIBER_NAMESPACES: &str = "outband.dev/allowed-subscriber-namespaces";
/// Set by the webhook on injected pods: the injector version (makes injection idempotent).
pub const INJECTED: &str = "outband.dev/injected";

/// Labels the operator puts on the ConfigMaps it owns.
pub mod configmap_labels {
    /// `app.kubernetes.io/managed-by`.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of [`MANAGED_BY`].
    pub const OPERATOR: &str = "outband-operator";
    /// The API a ConfigMap holds config for.
    pub const API: &str = "outband.dev/api";
}
