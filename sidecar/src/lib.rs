//! Outband's sidecar: a reverse proxy in front of one API's pods that validates each
//! request's JWT access token itself and enforces the caller's subscription to this API.
//!
//! The decision is one pure function, [`decision::decide`], over a pure core — [`token`],
//! [`keys`], [`config::compiled`], [`policy`], [`routes`] — with a thin I/O shell around it:
//! [`auth`] (the verified-token cache, the JWKS fetch and one retry, metrics),
//! [`config::source`] and [`config::watch`] (the mounted config), [`refresh`] (JWKS
//! fetches), [`proxy`] (hyper), [`admin`] (probes and metrics) and [`run`] (wiring and
//! signals). [`explain`] is the troubleshooting tool; it decides with the same function.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod decision;
pub mod denial;
pub mod explain;
pub mod identity;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod refresh;
pub mod routes;
pub mod run;
pub mod settings;
pub mod token;

#[cfg(test)]
#[path = "../tests/support/mod.rs"]
pub(crate) mod test_support;
