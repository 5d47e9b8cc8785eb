//! Outband's sidecar: a reverse proxy in front of one API's pods that validates each
//! request's JWT access token itself and enforces the caller's subscription to this API.
//!
//! The decision is a pure core — [`token`], [`keys`], [`config::compiled`], [`policy`],
//! [`routes`], [`pipeline`] — with a thin I/O shell around it: [`auth`] (cache, JWKS
//! fetches, metrics), [`config::source`] and [`config::watch`] (the mounted config),
//! [`proxy`] (hyper), [`admin`] (probes and metrics) and [`run`] (wiring and signals).

pub mod config;
pub mod denial;
pub mod keys;
pub mod pipeline;
pub mod policy;
pub mod routes;
pub mod settings;
pub mod token;

#[cfg(test)]
#[path = "../tests/support/mod.rs"]
pub(crate) mod test_support;
