//! The operator's errors. Every variant has a stable [`Error::reason`], its category: the
//! `reason` label of the error metrics and the reason of the Warning Event a failed
//! reconcile publishes on its object.

use outband_crds::sidecar_config::bundle::BundleError;

/// An error of a reconcile or of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// A config does not fit in the ConfigMaps allowed for one API.
    #[error("cannot encode the sidecar config: {0}")]
    Bundle(#[from] BundleError),
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
    /// This replica lost the lease; it stops so that only the new leader writes.
    #[error("leadership lost")]
    LeadershipLost,
    /// The admin server could not start or failed.
    #[error("admin server on {address}: {source}")]
    Admin {
        /// The listen address.
        address: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A reconcile panicked (a bug); it is retried like any failure.
    #[error("the reconcile panicked")]
    Panicked,
}

impl Error {
    /// The reasons of a failed Kubernetes API request (every controller's reconciles can
    /// fail with these).
    pub const API_REASONS: [&'static str; 8] = [
        "Forbidden",
        "NotFound",
        "Conflict",
        "Invalid",
        "TooManyRequests",
        "ApiServerError",
        "ApiError",
        "ApiUnreachable",
    ];

    /// The reasons of a config that cannot be encoded (the config writer only).
    pub const CONFIG_REASONS: [&'static str; 2] = ["ConfigTooLarge", "ConfigEncoding"];

    /// Whether the object the request was about does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(status)) if status.code == 404)
    }

    /// A stable, machine-readable name.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(status)) => match status.code {
                403 => "Forbidden",
                404 => "NotFound",
                409 => "Conflict",
                422 => "Invalid",
                429 => "TooManyRequests",
                500..=599 => "ApiServerError",
                _ => "ApiError",
            },
            Error::Kube(_) => "ApiUnreachable",
            Error::Bundle(BundleError::TooLarge { .. }) => "ConfigTooLarge",
            Error::Bundle(_) => "ConfigEncoding",
            Error::LeaderElection(_) => "LeaderElection",
            Error::LeadershipLost => "LeadershipLost",
            Error::Admin { .. } => "AdminServer",
            Error::Panicked => "Panicked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_are_named_by_status_code() {
        let status = kube::core::Status::failure("conflict", "Conflict").with_code(409);
        assert_eq!(
            Error::Kube(kube::Error::Api(Box::new(status))).reason(),
            "Conflict"
        );
        assert_eq!(Error::LeadershipLost.reason(), "LeadershipLost");
    }

    #[test]
    fn every_api_reason_is_listed() {
        let api = |code: u16| {
            let status = kube::core::Status::failure("failed", "Failed").with_code(code);
            Error::Kube(kube::Error::Api(Box::new(status))).reason()
        };
        let mut reasons: Vec<&str> = [403, 404, 409, 422, 429, 503, 400]
            .into_iter()
            .map(api)
            .collect();
        reasons.push(Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded).reason());
        assert_eq!(reasons, Error::API_REASONS);
        let too_large = BundleError::TooLarge {
            api: outband_crds::sidecar_config::ApiRef {
                namespace: "shop".into(),
                name: "orders".into(),
            },
            needed: 9,
        };
        assert_eq!(Error::Bundle(too_large).reason(), Error::CONFIG_REASONS[0]);
    }
}
