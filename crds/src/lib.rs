//! Outband's shared vocabulary: the custom resources (`KeyManager`, `OAuthAppBinding`), the
//! workload annotations, and the operator → sidecar config wire format.
//!
//! Both the operator and the sidecar depend on this crate, so the contract between them is
//! defined once.

pub mod annotations;
pub mod crdgen;
pub mod jwk;
pub mod key_manager;
pub mod oauth_app_binding;
pub mod route_scopes;
pub mod sidecar_config;

pub use key_manager::*;
pub use oauth_app_binding::*;
