//! The process-wide TLS crypto provider (aws-lc-rs), shared by kube, reqwest and rustls.

/// Installs aws-lc-rs as rustls's default provider. Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
