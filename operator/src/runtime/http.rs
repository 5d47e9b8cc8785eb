//! The operator's one HTTP server, shared by the admin server (plain HTTP) and the admission
//! webhook (HTTPS): an accept loop with an optional TLS handshake, HTTP/1.1 and HTTP/2,
//! routes by method and path, request bodies read whole up to a limit, and a graceful
//! shutdown on a [`CancellationToken`].
//!
//! Handlers are plain functions from a request (its body already read) to a response, so a
//! new endpoint is one more [`Routes::get`] or [`Routes::post`] line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// A response with its whole body.
pub type HttpResponse = Response<Full<Bytes>>;

type Handler = Arc<dyn Fn(Request<Bytes>) -> HttpResponse + Send + Sync>;

/// The endpoints of a server.
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(Method, &'static str, Handler)>,
}

impl Routes {
    /// No endpoints yet.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Serves `GET path` (and `HEAD path`) with `handler`.
    pub fn get(
        self,
        path: &'static str,
        handler: impl Fn(Request<Bytes>) -> HttpResponse + Send + Sync + 'static,
    ) -> Routes {
        self.route(Method::GET, path, handler)
    }

    /// Serves `POST path` with `handler`.
    pub fn post(
        self,
        path: &'static str,
        handler: impl Fn(Request<Bytes>) -> HttpResponse + Send + Sync + 'static,
    ) -> Routes {
        self.route(Method::POST, path, handler)
    }

    fn route(
        mut self,
        method: Method,
        path: &'static str,
        handler: impl Fn(Request<Bytes>) -> HttpResponse + Send + Sync + 'static,
    ) -> Routes {
        self.routes.push((method, path, Arc::new(handler)));
        self
    }

    /// The response to `request`: its handler's, `404` for an unknown path, `405` (with
    /// `Allow`) for a known path with another method.
    pub fn respond(&self, request: Request<Bytes>) -> HttpResponse {
        let path = request.uri().path();
        let method = match *request.method() {
            Method::HEAD => Method::GET,
            ref other => other.clone(),
        };
        let mut allowed = Vec::new();
        for (route_method, route_path, handler) in &self.routes {
            if *route_path != path {
                continue;
            }
            if *route_method == method {
                return handler(request);
            }
            allowed.push(route_method.as_str());
        }
        if allowed.is_empty() {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

/// How a server runs.
#[derive(Clone)]
pub struct ServerOptions {
    /// Name in logs (`admin`, `webhook`).
    pub name: &'static str,
    /// TLS: `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Largest request body read; larger requests get `413`.
    pub max_body_bytes: usize,
    /// How long a client may take for its TLS handshake and its request headers.
    pub handshake_timeout: Duration,
    /// How long open connections may finish after the cancellation.
    pub drain_timeout: Duration,
}

impl ServerOptions {
    /// Plain HTTP with small bodies, for `name`.
    pub fn plain(name: &'static str) -> ServerOptions {
        ServerOptions {
            name,
            tls: None,
            max_body_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Binds `address` (so that a bad address fails at start-up).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves `routes` on `listener` until `cancel`, then lets open connections finish within
/// the drain timeout.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: ServerOptions,
    cancel: CancellationToken,
) {
    let routes = Arc::new(routes);
    let acceptor = options.tls.clone().map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let name = options.name;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(server = name, %error, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = cancel.cancelled() => break,
                    }
                }
            },
            () = cancel.cancelled() => break,
        };
        let connection = Connection {
            routes: routes.clone(),
            options: options.clone(),
            watcher: graceful.watcher(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let result = match acceptor {
                None => connection.serve(stream).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        connection.options.handshake_timeout,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(tls)) => connection.serve(tls).await,
                        Ok(Err(error)) => Err(error.into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(error) = result {
                tracing::debug!(server = name, %peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!(
            server = name,
            "connections still open after the drain timeout"
        );
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Connection {
    routes: Arc<Routes>,
    options: ServerOptions,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn serve<S>(self, stream: S) -> Result<(), BoxError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let routes = self.routes;
        let max_body = self.options.max_body_bytes;
        let service = service_fn(move |request: Request<Incoming>| {
            let routes = routes.clone();
            async move { Ok::<_, Infallible>(handle(&routes, request, max_body).await) }
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.handshake_timeout);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        self.watcher.watch(connection.into_owned()).await
    }
}

async fn handle(routes: &Routes, request: Request<Incoming>, max_body: usize) -> HttpResponse {
    let (parts, body) = request.into_parts();
    match Limited::new(body, max_body).collect().await {
        Ok(body) => routes.respond(Request::from_parts(parts, body.to_bytes())),
        Err(error) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("cannot read the request body: {error}\n"),
        ),
    }
}

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &str) -> HttpResponse {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// A response with `content_type` and `body`.
pub fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, body: &str) -> Request<Bytes> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    fn routes() -> Routes {
        Routes::new()
            .get("/livez", |_| text(StatusCode::OK, "ok\n"))
            .post("/echo", |request| {
                reply(StatusCode::OK, "text/plain", request.into_body().to_vec())
            })
    }

    #[test]
    fn requests_go_to_the_route_of_their_method_and_path() {
        let routes = routes();
        assert_eq!(
            routes.respond(request(Method::GET, "/livez", "")).status(),
            200
        );
        assert_eq!(
            routes.respond(request(Method::HEAD, "/livez", "")).status(),
            200
        );
        let echoed = routes.respond(request(Method::POST, "/echo", "hello"));
        assert_eq!(echoed.status(), 200);
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405_with_allow() {
        let routes = routes();
        assert_eq!(
            routes.respond(request(Method::GET, "/nope", "")).status(),
            404
        );
        let refused = routes.respond(request(Method::GET, "/echo", ""));
        assert_eq!(refused.status(), 405);
        assert_eq!(refused.headers()[header::ALLOW], "POST");
    }

    async fn exchange(address: SocketAddr, raw: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_over_a_socket_refuses_large_bodies_and_stops_on_cancel() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let options = ServerOptions {
            max_body_bytes: 8,
            ..ServerOptions::plain("test")
        };
        let server = tokio::spawn(serve(listener, routes(), options, cancel.clone()));

        let ok = exchange(
            address,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("hello"), "{ok}");
        let large = exchange(
            address,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789",
        )
        .await;
        assert!(large.starts_with("HTTP/1.1 413"), "{large}");

        cancel.cancel();
        server.await.unwrap();
        assert!(tokio::net::TcpStream::connect(address).await.is_err());
    }
}
