//! The webhook's serving certificate.
//!
//! - [`store`]: the certificate the TLS server presents, swapped in place on rotation.
//! - [`pki`]: pure certificate work — issue a CA and a serving certificate, decide when to
//!   rotate.
//! - [`keeper`]: the default mode. The operator keeps its own CA and serving certificate in a
//!   Secret, writes the CA bundle into its MutatingWebhookConfiguration, and rotates both
//!   before they expire. Every replica runs it; optimistic concurrency on the Secret makes
//!   one replica's rotation everyone's.
//! - [`files`]: the cert-manager mode. The certificate is a mounted Secret, re-read when it
//!   changes; cert-manager's CA injector fills the `caBundle`.

pub mod files;
pub mod keeper;
pub mod pki;
pub mod store;

pub use store::CertStore;

/// Why the webhook's certificate could not be issued, loaded or published.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to issue a certificate.
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
    /// A PEM certificate or key could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The cause.
        detail: String,
    },
    /// Reading certificate files failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The cause.
        source: kube::Error,
    },
}

impl TlsError {
    /// A stable reason for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::Issue(_) => "IssueFailed",
            TlsError::Parse { .. } => "InvalidPem",
            TlsError::Read { .. } => "ReadFailed",
            TlsError::Kube { .. } => "KubeApiError",
        }
    }
}
