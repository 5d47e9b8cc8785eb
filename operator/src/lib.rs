//! Outband's operator: reconciles KeyManagers and OAuthAppBindings into the ConfigMaps that
//! the sidecars read.

pub mod conditions;
pub mod config;
pub mod discovery;
pub mod fetch;
pub mod index;
pub mod key_manager;
pub mod keys;
pub mod tls;
