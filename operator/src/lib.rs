//! Outband's operator: reconciles KeyManagers and OAuthAppBindings into the ConfigMaps that
//! the sidecars read, and serves the sidecar injection webhook.
//!
//! Pure core, thin I/O shell:
//! - pure: [`discovery`], [`index`] (the cluster as the operator knows it: the single
//!   source of truth), [`config::compile`] (the config compiler), [`config::configmaps`]
//!   (the write plan), [`key_manager::state`] and [`key_manager::report`],
//!   [`binding::status`], [`conditions`];
//! - I/O: [`watch`] (the watches that feed the index), the controllers
//!   ([`key_manager::controller`], [`binding::controller`], [`config::controller`]), each
//!   driven by the one work queue and retry policy of [`runtime::queue`] and wired by
//!   [`controllers`], and the process ([`runtime`], [`operator`]).
//!
//! Keys and fetches from identity providers (the JWK checks, JWKS and PEM reading, the
//! SSRF-guarded client) are `outband_idp`'s, shared with the sidecar.

pub mod args;
pub mod binding;
pub mod conditions;
pub mod config;
pub mod context;
pub mod controllers;
pub mod crypto;
pub mod discovery;
pub mod error;
#[cfg(test)]
pub mod fixtures;
pub mod index;
pub mod key_manager;
pub mod metrics;
pub mod operator;
pub mod runtime;
pub mod telemetry;
pub mod watch;
pub mod webhook;

pub use error::Error;
pub use operator::Operator;
