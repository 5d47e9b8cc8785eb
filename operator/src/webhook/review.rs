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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn review(pod: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": { "group": "", "version": "v1", "kind": "Pod" },
                "resource": { "group": "", "version": "v1", "resource": "pods" },
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
                "object": pod,
                "dryRun": false,
            },
        }))
        .unwrap()
    }

    fn pod(labelled: bool, annotations: Value) -> Value {
        let labels = if labelled {
            json!({ "outband.dev/inject": "enabled" })
        } else {
            json!({})
        };
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "generateName": "orders-", "labels": labels, "annotations": annotations },
            "spec": { "containers": [{ "name": "app", "image": "app",
                "ports": [{ "name": "http", "containerPort": 8080 }] }] },
        })
    }

    fn response(body: &[u8]) -> Value {
        let review: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(review["kind"], "AdmissionReview");
        review["response"].clone()
    }

    #[test]
    fn a_labelled_pod_is_allowed_with_a_json_patch() {
        let (body, result) = handle(
            &review(pod(true, json!({ "outband.dev/api": "orders" }))),
            &InjectorSettings::default(),
        );
        let response = response(&body);
        assert_eq!(result, InjectionResult::Injected);
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        // kube serializes the patch bytes as a JSON array of numbers, which the API server
        // reads like base64.
        let bytes: Vec<u8> = serde_json::from_value(response["patch"].clone()).unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        assert!(!patch.is_empty());
    }

    #[test]
    fn an_unlabelled_pod_is_allowed_unchanged() {
        let (body, result) = handle(&review(pod(false, json!({}))), &InjectorSettings::default());
        let response = response(&body);
        assert_eq!(result, InjectionResult::NotSelected);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
    }

    #[test]
    fn a_bad_annotation_is_refused_with_its_name_and_a_stable_reason() {
        let (body, result) = handle(
            &review(pod(
                true,
                json!({ "outband.dev/api": "orders", "outband.dev/key-type": "x" }),
            )),
            &InjectorSettings::default(),
        );
        let response = response(&body);
        assert_eq!(result, InjectionResult::Refused);
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(response["status"]["reason"], "InvalidAnnotation");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("annotation outband.dev/key-type"),
            "{message}"
        );
    }

    #[test]
    fn garbage_is_answered_as_invalid() {
        let (body, result) = handle(b"{not json", &InjectorSettings::default());
        assert_eq!(result, InjectionResult::Invalid);
        assert_eq!(response(&body)["allowed"], false);
    }
}
