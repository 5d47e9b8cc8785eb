//! The admin server: `/livez`, `/readyz` (every watch has listed once and, with the webhook,
//! its serving certificate is loaded) and `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::metrics::Metrics;

use super::readiness::Readiness;
use super::shutdown::ShutdownSignal;

/// What the admin endpoints report.
pub struct AdminState {
    /// Metrics to render.
    pub metrics: Arc<Metrics>,
    /// Readiness to report.
    pub readiness: Arc<Readiness>,
}

/// Binds `address` now (so a bad address fails at startup) and returns the server task.
pub async fn bind(
    address: SocketAddr,
    state: Arc<AdminState>,
    shutdown: ShutdownSignal,
) -> Result<impl Future<Output = Result<(), Error>> + Send + 'static, Error> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| Error::Admin { address, source })?;
    tracing::info!(%address, "admin server listening");
    Ok(serve(listener, state, shutdown))
}

async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: ShutdownSignal,
) -> Result<(), Error> {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.clone().wait() => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(&state, &request)) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}

fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    match request.uri().path() {
        "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => {
            if state.readiness.is_ready() {
                text(StatusCode::OK, "ok\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("waiting for: {}\n", state.readiness.pending().join(", ")),
                )
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::shutdown::Shutdown;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_liveness_readiness_and_metrics() {
        let readiness = Arc::new(Readiness::new(&["pods"]));
        let state = Arc::new(AdminState {
            metrics: Arc::new(Metrics::new()),
            readiness: readiness.clone(),
        });
        let shutdown = Shutdown::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(listener, state, shutdown.signal()));

        assert!(get(address, "/livez").await.starts_with("HTTP/1.1 200"));
        let not_ready = get(address, "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.1 503"), "{not_ready}");
        assert!(not_ready.contains("pods"));
        readiness.listed("pods");
        assert!(get(address, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(address, "/metrics").await;
        assert!(metrics.contains("outband_operator_leader 0"), "{metrics}");
        assert!(get(address, "/nope").await.starts_with("HTTP/1.1 404"));

        shutdown.trigger();
        server.await.unwrap().unwrap();
    }
}
