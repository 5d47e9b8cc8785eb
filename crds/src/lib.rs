//! Outband's shared vocabulary: the custom resources (`KeyManager`, `OAuthAppBinding`), the
//! workload annotations, and the two contracts between operator and sidecar — the config
//! wire format ([`sidecar_config`], with the public keys of [`jwk`]) and the sidecar's
//! command line ([`command_line`], with the flag value types both binaries use).
//!
//! Both the operator and the sidecar depend on this crate, so the contract between them is
//! defined once.

pub mod annotations;
pub mod command_line;
pub mod crdgen;
pub mod jwk;
pub mod key_manager;
pub mod oauth_app_binding;
pub mod route_scopes;
pub mod sidecar_config;

pub use key_manager::*;
pub use oauth_app_binding::*;
