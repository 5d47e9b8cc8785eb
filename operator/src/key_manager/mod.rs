//! The KeyManager controller: discovery, keys, refresh, status.
//!
//! - [`source`]: where a KeyManager's keys come from, and fetching them (I/O).
//! - [`state`]: what this process remembers per KeyManager between refreshes: the last
//!   good keys and discovery document, failures, backoff (pure).
//! - [`report`]: status conditions and what the index learns, from the state (pure).
//! - [`controller`]: the reconcile loop (I/O shell).

pub mod controller;
pub mod report;
pub mod source;
pub mod state;
