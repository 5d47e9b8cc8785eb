//! Sidecar injection: a mutating admission webhook for Pods.
//!
//! - [`inject`] is the pure core: a Pod and the injector settings in, a JSON patch out (or a
//!   refusal that names the offending annotation). Golden-file tests pin its output.
//! - [`workload`] reads and validates the `outband.dev/*` annotations.
//! - [`review`] turns an `AdmissionReview` into its response; [`server`] runs the webhook
//!   (its routes on the operator's HTTP server, over TLS) from the flags of [`args`].
//! - [`tls`] keeps the serving certificate: self-managed CA in a Secret with `caBundle`
//!   patching and rotation, or files written by cert-manager.
//!
//! The design (port takeover, native sidecar, what a numeric `targetPort` needs) is in
//! `docs/injection.md`.

pub mod args;
pub mod inject;
pub mod metrics;
pub mod ports;
pub mod review;
pub mod server;
pub mod settings;
pub mod sidecar;
pub mod tls;
pub mod workload;

/// The readiness item of the webhook: pending until its serving certificate is loaded (a
/// replica that is Ready but cannot complete a TLS handshake gets labelled pods refused).
pub const CERTIFICATE_READY: &str = "webhook-certificate";

pub use args::WebhookArgs;
pub use inject::{InjectError, inject, is_injected, is_selected};
pub use settings::InjectorSettings;
