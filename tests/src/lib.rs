//! Test harness: starts real components (kube-apiserver + etcd, the OpenID provider, our
//! binaries) on loopback for the integration and end-to-end tests, and stops them again.
//!
//! A component that cannot be found makes the test fail with the make target that
//! installs it; nothing is skipped.

pub mod control_plane;
pub mod demo;
pub mod kubelet;
pub mod oidc;
pub mod operator;
pub mod paths;
pub mod pki;
pub mod ports;
pub mod process;
pub mod sample_app;
