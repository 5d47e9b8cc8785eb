//! The reverse proxy: every request is authorised ([`crate::auth`]) and then forwarded to the
//! app on localhost over pooled connections, with bodies streamed both ways and HTTP/1.1
//! upgrades (WebSocket) tunnelled. See [`server`] for connections, timeouts and draining.

pub mod forward;
pub mod hop;
pub mod respond;
pub mod server;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::auth::Authenticator;
use crate::denial::Denial;
use crate::metrics::{Metrics, status_class};
use crate::policy::Route;
use crate::routes::normalize;
pub use forward::Upstream;
use server::{Activity, RequestGuard, Tracker};

/// The response body type: the app's streamed body or a small body of our own.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// How requests are forwarded.
#[derive(Clone, Debug)]
pub struct ForwardSettings {
    /// The app.
    pub upstream: Upstream,
    /// The realm of `WWW-Authenticate` challenges.
    pub realm: String,
    /// Longest wait for the app's response headers (`None`: no limit).
    pub upstream_timeout: Option<Duration>,
    /// Longest wait to connect to the app.
    pub connect_timeout: Duration,
    /// Whether to remove the `Authorization` header before forwarding.
    pub strip_authorization: bool,
}

/// The proxy's shared state.
pub struct Proxy {
    auth: Arc<Authenticator>,
    client: Client<HttpConnector, Incoming>,
    settings: ForwardSettings,
    metrics: Metrics,
    tracker: Arc<Tracker>,
}

impl Proxy {
    /// A proxy deciding with `auth` and forwarding per `settings`.
    pub fn new(
        auth: Arc<Authenticator>,
        settings: ForwardSettings,
        metrics: Metrics,
        tracker: Arc<Tracker>,
    ) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.enforce_http(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .http2_only(settings.upstream.h2c);
        Proxy {
            auth,
            client: builder.build(connector),
            settings,
            metrics,
            tracker,
        }
    }

    /// Serves one request from `peer`.
    pub async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        activity: Arc<Activity>,
    ) -> Result<Response<Body>, Infallible> {
        let guard = RequestGuard::new(activity, self.metrics.requests_in_flight.clone());
        crate::identity::strip_inbound(request.headers_mut());

        let rules_apply = !self.auth.settings().routes.is_empty();
        let path = if rules_apply {
            match normalize(request.uri().path(), true) {
                Ok(path) => Some(path),
                Err(denial) => {
                    self.metrics.denied(&denial);
                    return Ok(self.refuse(&denial, guard));
                }
            }
        } else {
            None
        };
        let route = path.as_ref().map(|path| Route {
            method: request.method().as_str(),
            path,
        });
        let identity = match self.auth.authorize(request.headers(), route).await {
            Ok(identity) => identity,
            Err(denial) => return Ok(self.refuse(&denial, guard)),
        };

        let upgrade = request.version() == Version::HTTP_11 && hop::is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let request = forward::upstream_request(
            request,
            &self.settings,
            path.map(|p| p.forward),
            peer,
            identity,
            upgrade,
        );

        let started = Instant::now();
        let sent = self.client.request(request);
        let result = match self.settings.upstream_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(result) => result,
                Err(_) => {
                    self.metrics
                        .upstream_errors
                        .with_label_values(&["timeout"])
                        .inc();
                    return Ok(finish(respond::gateway_timeout(), guard));
                }
            },
            None => sent.await,
        };
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                let kind = if err.is_connect() {
                    "connect"
                } else {
                    "protocol"
                };
                self.metrics
                    .upstream_errors
                    .with_label_values(&[kind])
                    .inc();
                tracing::warn!(error = %err, kind, "forwarding to the app failed");
                return Ok(finish(respond::bad_gateway(), guard));
            }
        };
        self.metrics
            .upstream_duration
            .with_label_values(&[status_class(response.status().as_u16())])
            .observe(started.elapsed().as_secs_f64());

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let tunnel = self.tracker.track();
            tokio::spawn(async move {
                let _tunnel = tunnel;
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(err) => tracing::debug!(error = %err, "upgrade failed"),
                }
            });
        }
        hop::strip(response.headers_mut(), switching, false);
        Ok(response.map(|body| {
            body.map_frame(move |frame| {
                let _keep_until_the_body_ends = &guard;
                frame
            })
            .boxed_unsync()
        }))
    }

    fn refuse(&self, denial: &Denial, guard: RequestGuard) -> Response<Body> {
        finish(respond::denial(denial, &self.settings.realm), guard)
    }
}

fn finish(response: Response<http_body_util::Full<Bytes>>, guard: RequestGuard) -> Response<Body> {
    drop(guard);
    response.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}
