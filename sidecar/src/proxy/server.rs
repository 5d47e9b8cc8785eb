//! Client connections: HTTP/1.1 with keep-alive and h2c (prior knowledge) on one port, header
//! size and read-time limits, an idle timeout, and graceful draining: on shutdown every
//! connection finishes its in-flight requests (HTTP/1.1 closes after the current response,
//! HTTP/2 sends GOAWAY) and the server waits for them, and for upgraded tunnels, up to a
//! deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::IntGauge;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::Proxy;
use crate::metrics::Metrics;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Longest time to receive a request's headers.
    pub header_read_timeout: Duration,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request header block, in bytes.
    pub max_header_bytes: usize,
    /// Most request headers (HTTP/1.1).
    pub max_headers: usize,
    /// Most concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
}

/// Counts connections and tunnels, so draining can wait for them.
#[derive(Default)]
pub struct Tracker {
    active: AtomicUsize,
    idle: Notify,
}

/// Keeps one connection or tunnel counted while alive.
pub struct Tracked(Arc<Tracker>);

impl Tracker {
    /// Counts one more until the returned value is dropped.
    pub fn track(self: &Arc<Self>) -> Tracked {
        self.active.fetch_add(1, Ordering::AcqRel);
        Tracked(self.clone())
    }

    /// Connections and tunnels open.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until nothing is open, or `deadline` passes. Returns what is still open.
    pub async fn wait_idle(&self, deadline: Duration) -> usize {
        let waiting = async {
            loop {
                let notified = self.idle.notified();
                if self.active() == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, waiting).await;
        self.active()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Per-connection activity, for the idle timeout.
pub struct Activity {
    in_flight: AtomicUsize,
    last_millis: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            last_millis: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn touch(&self) {
        self.last_millis
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// When the connection becomes idle-expired, or `None` while a request is in flight.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        (self.in_flight.load(Ordering::Acquire) == 0).then(|| {
            self.epoch + Duration::from_millis(self.last_millis.load(Ordering::Acquire)) + idle
        })
    }
}

/// Marks a request in flight (for the idle timeout and the metrics) until its response body
/// has been sent or dropped.
pub struct RequestGuard {
    activity: Arc<Activity>,
    gauge: IntGauge,
}

impl RequestGuard {
    /// Starts tracking a request.
    pub fn new(activity: Arc<Activity>, gauge: IntGauge) -> RequestGuard {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        gauge.inc();
        RequestGuard { activity, gauge }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.activity.touch();
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// Builds the connection builder for `limits`.
fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Accepts connections on `listener` until `shutdown` turns true, then asks every connection
/// to finish gracefully. Use [`Tracker::wait_idle`] to wait for them.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: ConnectionLimits,
    tracker: Arc<Tracker>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(builder(&limits));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        metrics.connections_total.inc();
        let tracked = tracker.track();
        let proxy = proxy.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let open = metrics.connections_open.clone();
        tokio::spawn(async move {
            open.inc();
            serve_connection(stream, peer, proxy, builder, limits.idle_timeout, shutdown).await;
            open.dec();
            drop(tracked);
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    activity.touch();
    let service_activity = activity.clone();
    let service = service_fn(move |request| {
        proxy
            .clone()
            .handle(request, peer, service_activity.clone())
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle_at = activity
            .idle_deadline(idle_timeout)
            .unwrap_or_else(|| Instant::now() + idle_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait_for(|stop| *stop), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_at.into()), if !closing => {
                if activity.idle_deadline(idle_timeout).is_some_and(|at| at <= Instant::now()) {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
