//! The sidecar config: compiled from the operator's wire format into lookup tables with
//! pre-parsed keys ([`compiled`]), read from the mounted directory ([`source`]) and kept
//! current by watching the kubelet's `..data` swap ([`watch`]).

pub mod compiled;
pub mod source;
pub mod watch;

pub use compiled::{CompileError, CompiledConfig, CompiledKeyManager, IssuerMatch, Subscription};
