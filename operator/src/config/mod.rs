//! From the index to the sidecars' ConfigMaps.
//!
//! - [`compile`]: the config compiler, a pure function from the index to one API's
//!   [`SidecarConfig`](outband_crds::sidecar_config::SidecarConfig), and the rule that
//!   decides whether a subscription is in effect (shared with the binding status).
//! - [`configmaps`]: the bundle laid out as ConfigMaps, and the plan of writes that brings
//!   the cluster there (pure).
//! - [`controller`]: compiles an API whose inputs changed and applies the plan.

pub mod compile;
pub mod configmaps;
pub mod controller;
