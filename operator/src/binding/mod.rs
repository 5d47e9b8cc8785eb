//! The OAuthAppBinding controller: is the binding usable, where does the team get its
//! tokens, and which of its subscriptions are in effect.
//!
//! - [`status`]: the status from the index (pure).
//! - [`controller`]: writes it when it changed, with Events on transitions.

pub mod controller;
pub mod status;
