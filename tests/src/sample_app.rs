//! The sample app behind the sidecar in tests and the demo: a real HTTP server on
//! loopback that answers every request with what it received — method, path, and the
//! identity headers the sidecar added — as JSON.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running sample app; stops when dropped.
pub struct SampleApp {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SampleApp {
    /// Starts the app on `127.0.0.1:port` (0 for any free port).
    pub async fn start(port: u16) -> anyhow::Result<SampleApp> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(SampleApp { addr, task })
    }

    /// The app's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The app's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for SampleApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let identity: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-outband-"))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                serde_json::Value::String(value.to_str().unwrap_or("<binary>").to_string()),
            )
        })
        .collect();
    let authorization_seen = request.headers().contains_key(http::header::AUTHORIZATION);
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let reply = serde_json::json!({
        "app": "sample-app",
        "method": method,
        "path": path,
        "identity": identity,
        "authorizationHeaderSeen": authorization_seen,
        "bodyBytes": body,
    });
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(reply.to_string())))
        .expect("static response parts are valid"))
}
