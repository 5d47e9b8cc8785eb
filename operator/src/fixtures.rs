//! Test doubles for the reconcile tests: a [`Context`] whose client talks to a mocked API
//! server, and the [`ApiServerVerifier`] that plays that API server. A test runs the
//! reconcile and, beside it, the requests it expects, in order: each step asserts what the
//! reconcile sent and answers as the API server would. [`ApiServerVerifier::done`] then
//! asserts that nothing else was sent. These tests run in milliseconds; the real API server
//! tests (`tests/tests/operator_*.rs`) cover the same behaviours end to end.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use crate::context::{Context, FIELD_MANAGER};
use crate::metrics::Metrics;

/// The mocked API server's side of the client.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

/// A request the reconcile sent.
#[derive(Debug)]
pub struct Received {
    /// Its method.
    pub method: Method,
    /// Its path.
    pub path: String,
    /// Its query string.
    pub query: String,
    /// Its body as JSON (`null` when empty).
    pub body: Value,
}

/// A context whose client reaches the returned verifier, and that verifier.
pub fn context() -> (Arc<Context>, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(client, Arc::new(Metrics::new()), None, Duration::ZERO);
    (Arc::new(ctx), ApiServerVerifier(handle))
}

/// Runs `reconcile` beside `scenario` (which owns the verifier and usually returns it with
/// what it saw), each within a second, and returns both outcomes.
pub async fn run<T, S>(
    scenario: impl Future<Output = S> + Send + 'static,
    reconcile: impl Future<Output = T>,
) -> (T, S)
where
    S: Send + 'static,
{
    let scenario = tokio::spawn(scenario);
    let result = tokio::time::timeout(Duration::from_secs(1), reconcile)
        .await
        .expect("the reconcile finished (did it send a request the scenario does not answer?)");
    let outcome = tokio::time::timeout(Duration::from_secs(1), scenario)
        .await
        .expect("the scenario finished (did the reconcile skip a request?)")
        .expect("the scenario's assertions held");
    (result, outcome)
}

impl ApiServerVerifier {
    /// The next request and the means to answer it.
    pub async fn next(&mut self) -> (Received, SendResponse<Response<Body>>) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the reconcile sent a request");
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON body")
        };
        (
            Received {
                method,
                path,
                query,
                body,
            },
            send,
        )
    }

    /// Expects a server-side apply under the operator's field manager to `path`.
    pub async fn expect_apply(&mut self, path: &str) -> (Received, SendResponse<Response<Body>>) {
        let (received, send) = self.next().await;
        assert_eq!(received.method, Method::PATCH, "{received:?}");
        assert_eq!(received.path, path, "{received:?}");
        assert!(
            received
                .query
                .contains(&format!("fieldManager={FIELD_MANAGER}"))
                && received.query.contains("force=true"),
            "a forced apply by the operator: {received:?}"
        );
        (received, send)
    }

    /// Expects the server-side apply of `object`'s status, answers with `object` holding
    /// the applied status, and returns that status.
    pub async fn apply_status<K>(&mut self, object: &K) -> Value
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
    {
        let (received, send) = self.expect_apply(&status_path(object)).await;
        assert_eq!(received.body["apiVersion"], json!(K::api_version(&())));
        assert_eq!(received.body["kind"], json!(K::kind(&())));
        let status = received.body["status"].clone();
        let mut stored = serde_json::to_value(object).expect("a serializable object");
        stored["status"] = status.clone();
        send.send_response(json_response(StatusCode::OK, &stored));
        status
    }

    /// Expects the server-side apply of `object`'s status and refuses it with `code`.
    pub async fn refuse_status<K>(&mut self, object: &K, code: u16)
    where
        K: Resource<DynamicType = ()>,
    {
        let (_, send) = self.expect_apply(&status_path(object)).await;
        send.send_response(failure(code));
    }

    /// Expects a new Event and returns it.
    pub async fn event(&mut self) -> Value {
        let (received, send) = self.next().await;
        assert_eq!(received.method, Method::POST, "{received:?}");
        assert!(
            received
                .path
                .starts_with("/apis/events.k8s.io/v1/namespaces/")
                && received.path.ends_with("/events"),
            "{received:?}"
        );
        send.send_response(json_response(StatusCode::CREATED, &received.body));
        received.body
    }

    /// Expects the server-side apply of ConfigMap `namespace/name`, answers with it, and
    /// returns it.
    pub async fn apply_configmap(&mut self, namespace: &str, name: &str) -> Value {
        let path = format!("/api/v1/namespaces/{namespace}/configmaps/{name}");
        let (received, send) = self.expect_apply(&path).await;
        send.send_response(json_response(StatusCode::OK, &received.body));
        received.body
    }

    /// Expects the deletion of ConfigMap `namespace/name`.
    pub async fn delete_configmap(&mut self, namespace: &str, name: &str) {
        let (received, send) = self.next().await;
        assert_eq!(received.method, Method::DELETE, "{received:?}");
        assert_eq!(
            received.path,
            format!("/api/v1/namespaces/{namespace}/configmaps/{name}")
        );
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
        send.send_response(json_response(StatusCode::OK, &status));
    }

    /// Asserts that nothing else was sent. Call it after dropping every clone of the
    /// context, so that the mocked connection closes.
    pub async fn done(mut self) {
        let next = tokio::time::timeout(Duration::from_secs(1), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    }
}

/// The status path of `object`.
pub fn status_path<K: Resource<DynamicType = ()>>(object: &K) -> String {
    let meta = object.meta();
    let name = meta.name.as_deref().expect("a named object");
    let collection = match &meta.namespace {
        Some(namespace) => format!(
            "/apis/{}/namespaces/{namespace}/{}",
            K::api_version(&()),
            K::plural(&())
        ),
        None => format!("/apis/{}/{}", K::api_version(&()), K::plural(&())),
    };
    format!("{collection}/{name}/status")
}

/// An API server answer with a JSON body.
pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).expect("JSON")))
        .expect("a response")
}

/// An API server failure with `code`.
pub fn failure(code: u16) -> Response<Body> {
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("refused with {code}"), "reason": "Refused", "code": code,
    });
    json_response(StatusCode::from_u16(code).expect("an HTTP status"), &status)
}
