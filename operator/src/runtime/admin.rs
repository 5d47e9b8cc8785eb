//! The admin server: `/livez`, `/readyz` (every watch has listed once and, with the webhook,
//! its serving certificate is loaded) and `/metrics`.

use std::sync::Arc;

use http::{HeaderValue, StatusCode, header};

use super::http::{Routes, text};
use super::readiness::Readiness;
use crate::metrics::Metrics;

/// The admin endpoints.
pub fn routes(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Routes {
    Routes::new()
        .get("/livez", |_| text(StatusCode::OK, "ok\n"))
        .get("/readyz", move |_| {
            if readiness.is_ready() {
                text(StatusCode::OK, "ok\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("waiting for: {}\n", readiness.pending().join(", ")),
                )
            }
        })
        .get("/metrics", move |_| {
            let mut response = text(StatusCode::OK, &metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::Request;

    use super::*;

    fn get(routes: &Routes, path: &str) -> (StatusCode, String) {
        let response = routes.respond(Request::get(path).body(Bytes::new()).unwrap());
        let status = response.status();
        let body =
            futures::executor::block_on(http_body_util::BodyExt::collect(response.into_body()))
                .unwrap()
                .to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn serves_liveness_readiness_and_metrics() {
        let readiness = Arc::new(Readiness::new(&["pods"]));
        let routes = routes(Arc::new(Metrics::new()), readiness.clone());

        assert_eq!(get(&routes, "/livez").0, StatusCode::OK);
        let (status, body) = get(&routes, "/readyz");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "waiting for: pods\n");
        readiness.listed("pods");
        assert_eq!(get(&routes, "/readyz").0, StatusCode::OK);
        let (status, metrics) = get(&routes, "/metrics");
        assert_eq!(status, StatusCode::OK);
        assert!(metrics.contains("outband_operator_leader 0"), "{metrics}");
        assert_eq!(get(&routes, "/nope").0, StatusCode::NOT_FOUND);
    }
}
