//! One AdmissionReview in, one out: decodes the request, calls [`inject`], and encodes the
//! allowed-with-patch or refused response. No I/O.

use k8s_openapi::api::core::v1::Pod;
use kube::core::Status;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

use super::inject::{inject, is_injected, is_selected};
use super::metrics::InjectionResult;
use super::settings::InjectorSettings;

/// Handles the body of a `POST /mutate`; returns the response body and what happened.
pub fn handle(body: &[u8], settings: &InjectorSettings) -> (Vec<u8>, InjectionResult) {
    let (response, result) = respond(body, settings);
    let body =
        serde_json::to_vec(&response.into_review()).expect("an AdmissionReview always serializes");
    (body, result)
}

fn respond(body: &[u8], settings: &InjectorSettings) -> (AdmissionResponse, InjectionResult) {
    let review: AdmissionReview<Pod> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => {
            return (
                AdmissionResponse::invalid(format!("cannot read the AdmissionReview: {error}")),
                InjectionResult::Invalid,
            );
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(request) => request,
        Err(error) => {
            return (
                AdmissionResponse::invalid(format!("not an admission request: {error}")),
                InjectionResult::Invalid,
            );
        }
    };
    let response = AdmissionResponse::from(&request);
    let Some(pod) = &request.object else {
        return (response, InjectionResult::NotSelected);
    };
    match inject(pod, settings) {
        Ok(patch) if patch.is_empty() => {
            let result = if !is_selected(pod) {
                InjectionResult::NotSelected
            } else if is_injected(pod) {
                InjectionResult::AlreadyInjected
            } else {
                unreachable!("a selected pod without the sidecar always gets a patch")
            };
            (response, result)
        }
        Ok(patch) => match response.clone().with_patch(patch) {
            Ok(response) => (response, InjectionResult::Injected),
            Err(error) => (
                response.deny(format!("outband sidecar injection failed: {error}")),
                InjectionResult::Invalid,
            ),
        },
        Err(error) => {
            let message = format!("outband sidecar injection refused this pod: {error}");
            let mut response = response.deny(&message);
            response.result = Status::failure(&message, error.reason()).with_code(400);
            (response, InjectionResult::Refused)
        }
    }
}
